//! The status pages: real headless Chromium reads them, logs in and acknowledges an
//! incident; the home page of the shipped example stays under 60 KB compressed; every
//! action needs the login and a same-site form; everything a target or a user says is
//! escaped.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use vigil::app::{App, ConfigSource, Overrides};
use vigil::model::State;

const WAIT: Duration = Duration::from_secs(20);

fn five_systems(web: std::net::SocketAddr) -> String {
    format!(
        r#"systems:
  - id: procedures
    name: {{ vi: "Hệ thống giải quyết thủ tục hành chính", en: "Administrative procedures" }}
    checks: [ {{ id: portal, name: "Cổng dịch vụ công", http: {{ url: "http://{web}/ok" }} }} ]
  - id: documents
    name: {{ vi: "Hệ thống quản lý văn bản", en: "Documents" }}
    checks: [ {{ id: web, http: {{ url: "http://{web}/ok" }} }} ]
  - id: e-meeting
    name: {{ vi: "Hệ thống hội nghị truyền hình", en: "E-meeting" }}
    checks: [ {{ id: mcu, name: "Bộ điều khiển <b>MCU</b>", http: {{ url: "http://{web}/script" }}, conditions: ["[BODY] == pat(*all good*)"] }} ]
  - id: reporting
    name: {{ vi: "Hệ thống thông tin báo cáo", en: "Reporting" }}
    checks: [ {{ id: api, http: {{ url: "http://{web}/ok" }} }} ]
  - id: network
    name: {{ vi: "Mạng truyền số liệu chuyên dùng", en: "Data network" }}
    checks: [ {{ id: core, http: {{ url: "http://{web}/ok" }} }} ]
"#
    )
}

async fn daemon_with_incident(dir: &Path) -> App {
    let web = web_server(None).await;
    write_config_with(dir, "public_url: \"http://monitor.laichau.test\"", &five_systems(web.addr));
    let app = start_daemon(dir).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("e-meeting/mcu", State::Down), ("procedures/portal", State::Up)]).await;
    // Keep the server alive with the daemon.
    std::mem::forget(web);
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_reads_the_pages_and_acknowledges_an_incident() {
    let node_modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/playwright-core");
    assert!(
        node_modules.exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test does this)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed: run `apt-get install -y chromium` (scripts/test does this)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let app = daemon_with_incident(dir.path()).await;
    let base = format!("http://{}", app.addr());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/status-pages.mjs");
    let shots = std::env::var("VIGIL_SCREENSHOTS").unwrap_or_default();
    let out = tokio::process::Command::new(tool("node", "nodejs").get_program())
        .args([script.display().to_string(), base.clone(), TOKEN.to_string(), "e-meeting".to_string(), shots])
        .output()
        .await
        .expect("run the browser script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser script failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("json");
    assert_eq!(result["systems"].as_array().map(Vec::len), Some(5), "{result}");
    assert_eq!(result["systems"][0], "Hệ thống giải quyết thủ tục hành chính");
    assert!(
        result["downText"].as_str().is_some_and(|t| t.contains("Ngừng hoạt động")),
        "the down system says so in words: {result}"
    );
    assert!(result["checkTitle"].as_str().is_some_and(|t| t.contains("Bộ điều khiển <b>MCU</b>")), "{result}");
    let acked = result["ackedText"].as_str().unwrap_or_default();
    assert!(acked.contains("Đã tiếp nhận: Trần Văn An") && acked.contains("Đang kiểm tra máy chủ MCU"), "{acked}");
    assert_eq!(result["consoleErrors"], serde_json::json!([]), "no console errors");
    assert_eq!(result["noJsSystems"], 5, "works with JavaScript off");
    assert_eq!(result["mobileOverflow"], false, "fits a 360 px screen");
    let list: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/incidents?state=open")).await).expect("json");
    assert_eq!(list["incidents"][0]["ack"]["by"], "Trần Văn An");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_example_home_page_is_under_60_kb_compressed() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    // The shipped configuration, served without probing (its hosts are only examples).
    let text = std::fs::read_to_string(repo.join("vigil.yaml"))
        .expect("vigil.yaml")
        .replace("path: data/vigil.db", &format!("path: \"{}\"", dir.path().join("vigil.db").display()))
        .replace("listen: 127.0.0.1:9898", "listen: \"127.0.0.1:0\"")
        .replace("  - probes/", &format!("  - {}/probes/", repo.display()))
        .replace("  - alerts/", &format!("  - {}/alerts/", repo.display()));
    // The shipped configuration has no default for any secret: these stand in for them.
    let env = [
        "VIGIL_ACK_KEY",
        "VIGIL_HEARTBEAT_DOCUMENTS_BACKUP",
        "VIGIL_HEARTBEAT_REPORTING",
        "VIGIL_SMTP_PASSWORD",
        "VIGIL_SMS_WEBHOOK_SECRET",
        "VIGIL_PORTAL_PASSWORD",
        "VIGIL_SNMP_AUTH",
        "VIGIL_SNMP_PRIV",
        "VIGIL_VANTAGE_SIN_HO",
        "VIGIL_VANTAGE_MUONG_TE",
        "VIGIL_VANTAGE_TAN_PHONG",
    ]
    .iter()
    .map(|name| (name.to_string(), format!("{}-0123456789abcdef0123456789abcdef", name.to_lowercase())))
    .collect();
    let source = ConfigSource::Text { path: dir.path().join("vigil.yaml"), text, env };
    let app = App::start(source, Overrides { no_probes: true, ..Overrides::default() }).await.expect("start");
    let base = format!("http://{}", app.addr());
    let (code, heads, page) = send("GET", &format!("{base}/"), &[("accept-encoding", "gzip")], "").await;
    assert_eq!(code, 200);
    assert_eq!(heads.get("content-encoding").map(String::as_str), Some("gzip"));
    let (_, css_heads, css) =
        send("GET", &format!("{base}/static/vigil.css"), &[("accept-encoding", "gzip")], "").await;
    assert!(css_heads.get("cache-control").is_some_and(|c| c.contains("max-age=31536000")));
    let total = page.len() + css.len();
    assert!(total < 60 * 1024, "home page and CSS transfer {total} bytes compressed");
    let (_, _, plain) = send("GET", &format!("{base}/"), &[], "").await;
    assert_eq!(plain.matches("<section class=\"system\"").count(), 5);
    assert!(plain.contains("Mạng truyền số liệu chuyên dùng") && plain.contains("Cổng kết nối xã, phường"));
    eprintln!("home page: {} bytes, {} compressed (+ CSS {} compressed)", plain.len(), page.len(), css.len());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_need_login_and_same_site_forms_and_everything_is_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = daemon_with_incident(dir.path()).await;
    let base = format!("http://{}", app.addr());
    let host = app.addr().to_string();
    let form = "by=mallory&comment=x&csrf=nope";

    // Without the login nothing changes.
    assert_eq!(
        send(
            "POST",
            &format!("{base}/ui/incidents/1/ack"),
            &[("content-type", "application/x-www-form-urlencoded")],
            form
        )
        .await
        .0,
        401
    );
    assert_eq!(request("POST", &format!("{base}/api/v1/incidents/1/exclude"), None).await.0, 401);
    let (code, _, _) = send(
        "POST",
        &format!("{base}/ui/login"),
        &[("content-type", "application/x-www-form-urlencoded")],
        "token=wrong&next=/",
    )
    .await;
    assert_eq!(code, 401);
    let (code, heads, _) = send(
        "POST",
        &format!("{base}/ui/login"),
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("token={TOKEN}&next=/"),
    )
    .await;
    assert_eq!(code, 303);
    // After login, only a path on this server: `//host` and `/\host` (browsers read both as
    // another host) send the visitor home instead.
    for next in ["//evil.example/", "/%5Cevil.example/", "https://evil.example/"] {
        let (code, heads, _) = send(
            "POST",
            &format!("{base}/ui/login"),
            &[("content-type", "application/x-www-form-urlencoded")],
            &format!("token={TOKEN}&next={next}"),
        )
        .await;
        assert_eq!((code, heads.get("location").map(String::as_str)), (303, Some("/")), "next={next}");
    }
    let set_cookie = heads.get("set-cookie").cloned().unwrap_or_default();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains(TOKEN), "the cookie does not carry the token itself");
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_string();
    let (_, _, page) = send("GET", &format!("{base}/"), &[("cookie", &cookie)], "").await;
    let csrf =
        page.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("csrf field").to_string();

    fn with_origin<'a>(cookie: &'a str, origin: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let mut h = vec![("content-type", "application/x-www-form-urlencoded"), ("cookie", cookie)];
        if let Some(o) = origin {
            h.push(("origin", o));
        }
        h
    }
    let headers = |origin| with_origin(&cookie, origin);
    let good = format!("by=An&comment=ok&csrf={csrf}&next=/");
    assert_eq!(
        send("POST", &format!("{base}/ui/incidents/1/ack"), &headers(None), form).await.0,
        403,
        "wrong form token"
    );
    assert_eq!(
        send("POST", &format!("{base}/ui/incidents/1/ack"), &headers(Some("http://evil.example")), &good).await.0,
        403,
        "cross-site post"
    );
    let list: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/incidents?state=open")).await).expect("json");
    assert!(list["incidents"][0]["ack"].is_null(), "nothing changed");
    let same_site = format!("http://{host}");
    assert_eq!(send("POST", &format!("{base}/ui/incidents/1/ack"), &headers(Some(&same_site)), &good).await.0, 303);
    let list: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/incidents?state=open")).await).expect("json");
    assert_eq!(list["incidents"][0]["ack"]["by"], "An");

    // Exclusion from the SLA needs a reason, and a resolved incident (this one is open).
    let admin = [("authorization", format!("Bearer {TOKEN}"))];
    let auth: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(send("POST", &format!("{base}/api/v1/incidents/1/exclude"), &auth, r#"{"by": "An"}"#).await.0, 400);
    assert_eq!(
        send(
            "POST",
            &format!("{base}/api/v1/incidents/1/exclude"),
            &auth,
            r#"{"by": "An", "reason": "planned power cut"}"#
        )
        .await
        .0,
        409
    );

    // What targets and people write is shown as text, never as markup.
    let (_, _, check) = send("GET", &format!("{base}/checks/e-meeting/mcu"), &[], "").await;
    assert!(
        check.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            || check.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped body"
    );
    assert!(!check.contains("<script>alert(1)"), "no injected script");
    let (_, _, home) = send("GET", &format!("{base}/?lang=en"), &[], "").await;
    assert!(
        home.contains("Bộ điều khiển &lt;b&gt;MCU&lt;&#x2f;b&gt;")
            || home.contains("Bộ điều khiển &lt;b&gt;MCU&lt;/b&gt;")
    );
    assert!(
        home.contains("Administrative procedures") && home.contains(">Down<") || home.contains("✖</span> Down"),
        "English via ?lang=en"
    );
    let (_, _, english) = send("GET", &format!("{base}/"), &[("accept-language", "en-US,en;q=0.9")], "").await;
    assert!(english.contains("<html lang=\"en\">"), "English via Accept-Language");
    let (_, _, badge) = send("GET", &format!("{base}/badge/e-meeting.svg"), &[], "").await;
    assert!(badge.starts_with("<svg") && badge.contains("Ngừng hoạt động"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_shows_on_the_pages() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &format!(
            "systems:\n  - id: web\n    checks:\n      - {{ id: a, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
            web.addr
        ),
    );
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    web.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("web/a", State::Down)]).await;
    let (_, _, down) = send("GET", &format!("http://{}/", app.addr()), &[], "").await;
    assert!(down.contains("Ngừng hoạt động") && down.contains("Sự cố đang mở"));
    web.switch.store(200, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("web/a", State::Up)]).await;
    let (_, _, up) = send("GET", &format!("http://{}/", app.addr()), &[], "").await;
    assert!(up.contains("Không có sự cố nào đang mở."), "no open incident any more");
    assert!(up.contains("<li class=\"down\""), "today's cell of the 90-day bar shows the outage");
    let cell = up.split("<li class=\"down\" title=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
    assert!(
        cell.contains("Ngừng hoạt động") && cell.contains("[STATUS] (503) == 200"),
        "the tooltip gives state and cause: {cell}"
    );
    app.shutdown().await;
}

/// Issue #13, item 3: a check page shows an exec check's program, never its arguments, and
/// a URL without its userinfo, query or fragment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_pages_show_no_credentials_from_commands_or_urls() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &format!(
            r#"systems:
  - id: web
    checks:
      - {{ id: portal, http: {{ url: "http://monitor:url-password-canary@{}/ok?apikey=query-key-canary#fragment-canary" }} }}
      - {{ id: plugin, exec: {{ command: [/usr/lib/nagios/plugins/check_dummy, "0", "argument-canary"] }} }}
"#,
            web.addr
        ),
    );
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    // The templates escape '/' as an entity.
    let portal = get(&format!("{base}/checks/web/portal")).await.replace("&#x2f;", "/");
    let plugin = get(&format!("{base}/checks/web/plugin")).await.replace("&#x2f;", "/");
    app.shutdown().await;
    assert!(portal.contains(&format!("http://{}/ok", web.addr)), "the address is still shown: {portal}");
    assert!(plugin.contains("/usr/lib/nagios/plugins/check_dummy"), "the program is still shown: {plugin}");
    for canary in ["url-password-canary", "query-key-canary", "fragment-canary", "argument-canary", "monitor:"] {
        assert!(!portal.contains(canary) && !plugin.contains(canary), "{canary} is on a page");
    }
}

/// Issue #13, item 8: sessions are random and kept on the server: logout revokes the cookie
/// (a copy the browser kept no longer works), a changed admin token revokes every session,
/// and failed logins from one address are throttled — the right token too, while it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_server_side_revocable_and_logins_throttled() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), "systems: []\n");
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let login = |token: &'static str| {
        let url = format!("{base}/ui/login");
        async move { send("POST", &url, &form, &format!("token={token}&next=/")).await }
    };
    let cookie_of = |heads: &std::collections::HashMap<String, String>| {
        heads.get("set-cookie").and_then(|c| c.split(';').next()).map(str::to_string).expect("a session cookie")
    };
    let csrf_of = |cookie: String| {
        let url = format!("{base}/");
        async move {
            let (_, _, page) = send("GET", &url, &[("cookie", &cookie)], "").await;
            page.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_string)
        }
    };
    let (code, heads, _) = login(TOKEN).await;
    assert_eq!(code, 303);
    let first = cookie_of(&heads);
    let second = cookie_of(&login(TOKEN).await.1);
    assert_ne!(first, second, "session ids are random, not derived from the token");
    assert!(heads.get("set-cookie").is_some_and(|c| c.contains("Max-Age=43200")), "{heads:?}");
    let csrf = csrf_of(first.clone()).await.expect("logged in");

    // Logout revokes the session on the server.
    let logout_headers = [("content-type", "application/x-www-form-urlencoded"), ("cookie", first.as_str())];
    let (code, _, _) = send("POST", &format!("{base}/ui/logout"), &logout_headers, &format!("csrf={csrf}")).await;
    assert_eq!(code, 303);
    assert_eq!(csrf_of(first).await, None, "a copy of the cookie no longer logs in");
    assert!(csrf_of(second.clone()).await.is_some(), "other sessions live on");

    // A new admin token (reloaded) revokes every session opened with the old one.
    let config = dir.path().join("vigil.yaml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, text.replace(TOKEN, "the-new-admin-token-0123456789")).expect("write");
    assert_eq!(request("POST", &format!("{base}/-/reload"), Some(TOKEN)).await.0, 200);
    assert_eq!(csrf_of(second).await, None, "sessions of the old token are revoked");

    // Five failed logins, then the address waits — even with the right token.
    for _ in 0..5 {
        assert_eq!(login("wrong-token-0123456789abcdef").await.0, 401);
    }
    assert_eq!(login("wrong-token-0123456789abcdef").await.0, 429);
    assert_eq!(login("the-new-admin-token-0123456789").await.0, 429, "throttled, whatever the token");
    app.shutdown().await;
}

/// Issue #22, item 4: a storm of 1,200 incidents (more than are published at once, so the
/// deferred publishing is in play too) keeps the home page small: the newest 50 spelled
/// out, the total and each system's count shown, under 60 KB compressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_incidents_keeps_the_home_page_small() {
    let web = web_server(None).await;
    web.switch.store(503, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tempdir");
    let targets: String = (0..1_200)
        .map(|i| format!("          - {{ name: gw{i:04}, url: \"http://{}/switch?{i}\" }}\n", web.addr))
        .collect();
    let systems = format!(
        "systems:\n  - id: network\n    checks:\n      - id: gateways\n        interval: 5s\n        http: {{}}\n        conditions: [\"[STATUS] == 200\"]\n        targets:\n{targets}  - id: portal\n    checks: [ {{ id: web, http: {{ url: \"http://{}/ok\" }} }} ]\n",
        web.addr
    );
    write_config_with(dir.path(), "", &systems);
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let metrics = get(&format!("{base}/metrics")).await;
        let open = sample(&metrics, "vigil_incidents_open", &[r#"system="network""#, r#"severity="critical""#]);
        if open == Some(1_200.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "1,200 incidents not open in time: {open:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, _, zipped) = send_raw("GET", &format!("{base}/"), &[("accept-encoding", "gzip")], "").await;
    assert_eq!(code, 200);
    assert!(zipped.len() < 60 * 1024, "the home page is {} bytes compressed", zipped.len());
    let (_, _, page) = send("GET", &format!("{base}/"), &[], "").await;
    assert_eq!(page.matches("<article class=\"incident").count(), 50, "the newest 50 spelled out");
    assert!(page.contains("(1200)"), "the total is shown");
    assert!(page.contains("50/1200"), "and how many of it are listed");
    assert!(page.contains("<a href=\"#incidents\">Sự cố đang mở: 1200</a>"), "the network card counts them");
    let open: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/incidents?state=open&limit=1000")).await).expect("json");
    assert_eq!(open["incidents"].as_array().map(Vec::len), Some(1_000), "the API lists 1,000 at most");
    assert_eq!(open["total"], 1_200, "and says how many are open");
    app.shutdown().await;
    drop(web);
}
