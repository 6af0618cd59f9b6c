//! Vantage points through a cut link (issue #19), with hosts that are network namespaces
//! the test creates (198.18.0.0/15 on their veths, nothing else): a centre and a target
//! service on the host, three commune agents each in its own namespace. One commune's link
//! to the centre is cut with nftables (test-scaled: 20 s) while the target also goes down
//! for 8 s. When the link returns, the centre holds every result and state change that
//! agent committed — the outage among them, at its original times — exactly once; the cut
//! made one "vantage lost" alert and one resolution; the other communes were never lost.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

const COMMUNES: [&str; 3] = ["xa-sin-ho", "xa-nam-tam", "xa-pa-tan"];

/// The tests here use the same namespaces (one process, tags 1–3): one at a time.
static NAMESPACES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The host side of a namespace's veth (`198.18.N.1`).
fn host_side(ns: &Netns) -> String {
    let inside = &ns.hosts[0];
    format!("{}.1", &inside[..inside.rfind('.').expect("dotted")])
}

/// The three communes' namespaces, and the centre's address (the host side of the first
/// one's veth; the others reach it through their own). Each namespace accepts everything
/// at first (its one rule matches nothing: port 1).
fn communes() -> (Vec<Netns>, String) {
    let nets: Vec<Netns> = (1..=3).map(|tag| Netns::new(tag, &["tcp dport 1 drop"], false)).collect();
    let centre_ip = host_side(&nets[0]);
    for ns in &nets[1..] {
        run_ok("ip", "iproute2", &["-n", &ns.name, "route", "add", &format!("{centre_ip}/32"), "via", &host_side(ns)]);
    }
    (nets, centre_ip)
}

fn token(commune: &str) -> String {
    format!("vantage-token-{commune}-0123456789abcdef")
}

fn nft(ns: &Netns, args: &str) {
    run_ok("ip", "iproute2", &["netns", "exec", &ns.name, "nft", args]);
}

/// What an agent committed and no longer queues: (kind, target, at_ms) → count.
fn forwarded_by(db: &std::path::Path) -> BTreeMap<(String, String, i64), usize> {
    let conn = rusqlite::Connection::open(db).expect("agent store");
    let mut out: BTreeMap<(String, String, i64), usize> = BTreeMap::new();
    for (kind, table) in [("result", "results"), ("change", "state_changes")] {
        let mut stmt = conn.prepare(&format!("SELECT target, at_ms FROM {table}")).expect("query");
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).expect("rows") {
            let (target, at) = row.expect("row");
            *out.entry((kind.to_string(), target, at)).or_default() += 1;
        }
    }
    let mut stmt = conn.prepare("SELECT kind, target, at_ms FROM forward_queue").expect("query");
    for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).expect("rows") {
        out.remove(&row.expect("row"));
    }
    out
}

fn queued(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("agent store");
    conn.query_row("SELECT count(*) FROM forward_queue", [], |r| r.get(0)).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_loses_nothing_and_is_one_vantage_lost_alert() {
    let _one_at_a_time = NAMESPACES.lock().await;
    let (nets, centre_ip) = communes();
    let target = web_server_at(&format!("{centre_ip}:0"), None).await;
    let hooks = HookSink::start().await;
    let pki = TestPki::new();
    let centre_dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = pki.leaf_files(centre_dir.path(), "centre", &[&centre_ip]);
    let centre_port = free_port();
    let vantages: String =
        COMMUNES.iter().map(|c| format!("  - {{ name: {c}, token: \"{}\", grace: 5s }}\n", token(c))).collect();
    let centre = format!(
        "instance: {{ name: centre }}\n\
         server: {{ listen: \"{centre_ip}:{centre_port}\", tls: {{ cert_file: \"{}\", key_file: \"{}\" }} }}\n\
         storage: {{ path: \"{}\" }}\n\
         vantages:\n{vantages}\
         receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/hook\" }} }} ] }}\nroutes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: procedures\n    checks:\n      - {{ id: portal, interval: 1s, timeout: 800ms, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"], vantages: [{}] }}\n",
        cert.display(),
        key.display(),
        centre_dir.path().join("vigil.db").display(),
        hooks.addr,
        target.addr,
        COMMUNES.join(", ")
    );
    std::fs::write(centre_dir.path().join("vigil.yaml"), &centre).expect("write");
    let centre_config =
        vigil::config::load_from_text(&centre_dir.path().join("vigil.yaml"), &centre, &vigil::config::env::process_env)
            .expect("centre config");
    let app = vigil::app::App::start(
        vigil::app::ConfigSource::File(centre_dir.path().join("vigil.yaml")),
        vigil::app::Overrides::default(),
    )
    .await
    .expect("centre starts");

    let mut agents: Vec<(tempfile::TempDir, Reaped)> = Vec::new();
    for (commune, ns) in COMMUNES.iter().zip(&nets) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).expect("write CA");
        let config = format!(
            "instance: {{ name: {commune} }}\n\
             server: {{ listen: \"127.0.0.1:{}\" }}\n\
             storage: {{ path: \"{}\" }}\n\
             defaults: {{ interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1 }}\n\
             agent: {{ vantage: {commune}, centre: \"https://{centre_ip}:{centre_port}\", token: \"{}\", ca_file: ca.pem }}\n\
             systems:\n  - id: procedures\n    checks:\n      - {{ id: portal, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
            free_port(),
            dir.path().join("agent.db").display(),
            token(commune),
            target.addr
        );
        std::fs::write(dir.path().join("agent.yaml"), config).expect("write");
        let child = agent_in(ns, dir.path());
        agents.push((dir, child));
    }
    let reader = vigil::store::Reader::new(centre_dir.path().join("vigil.db"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !COMMUNES.iter().all(|c| reader.received(c).map_or(0, |r| r.len()) >= 3) {
        assert!(Instant::now() < deadline, "every agent reaches the centre");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The cut: Xã Sìn Hồ no longer hears the centre. Meanwhile the portal goes down 8 s.
    let cut_at = vigil::model::now_ms();
    nft(&nets[0], &format!("add rule inet vigil input ip saddr {centre_ip} tcp sport {centre_port} drop"));
    tokio::time::sleep(Duration::from_secs(6)).await;
    target.switch.store(503, Ordering::SeqCst);
    let down_at = vigil::model::now_ms();
    tokio::time::sleep(Duration::from_secs(8)).await;
    target.switch.store(200, Ordering::SeqCst);
    let up_at = vigil::model::now_ms();
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Meanwhile the vantage's report knows nothing of the cut's time: no data, not up.
    let span = vigil::report::Span { from_ms: cut_at, to_ms: vigil::model::now_ms(), label: "cut".into() };
    let seen = vantage_accounting(&centre_config, &reader, &span, "xa-sin-ho");
    assert!(seen.no_data_ms >= 15_000 && seen.down_ms == 0, "during the cut: {seen:?}");
    let sin_ho_db = agents[0].0.path().join("agent.db");
    assert!(queued(&sin_ho_db) > 20, "the cut commune's results wait: {}", queued(&sin_ho_db));
    nft(&nets[0], "flush chain inet vigil input");
    let healed_at = vigil::model::now_ms();
    let deadline = Instant::now() + Duration::from_secs(40);
    while queued(&sin_ho_db) > 3 {
        assert!(Instant::now() < deadline, "the back-fill drains: {} left", queued(&sin_ho_db));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let about =
        |h: &Hook, event: &str| h.body["incident"]["target"] == "vantages/xa-sin-ho" && h.body["event"] == event;
    hooks
        .wait_until(Duration::from_secs(20), "the lost vantage's resolution", |h| {
            h.iter().any(|x| about(x, "resolved"))
        })
        .await;
    for (_, child) in &mut agents {
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    app.settle().await;

    // Exactly once, every agent; the outage inside the cut is there at its original times.
    for ((commune, _), (dir, _)) in COMMUNES.iter().zip(&nets).zip(&agents) {
        let expected = forwarded_by(&dir.path().join("agent.db"));
        let received = reader.received(commune).expect("centre store");
        let mut at_centre: BTreeMap<(String, String, i64), usize> = BTreeMap::new();
        for r in &received {
            *at_centre.entry((r.kind.clone(), r.target.clone(), r.at_ms)).or_default() += 1;
        }
        assert!(at_centre.values().all(|n| *n == 1), "{commune}: nothing twice");
        assert_eq!(
            at_centre.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{commune}: every record"
        );
    }
    let during_cut: Vec<_> = reader
        .received("xa-sin-ho")
        .expect("received")
        .into_iter()
        .filter(|r| r.kind == "change" && (cut_at..healed_at).contains(&r.at_ms))
        .map(|r| r.data["to"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(during_cut, ["down", "up"], "the outage measured through the cut arrives with its times");
    // The vantage's report now equals what happened, within one check interval (1 s).
    let span = vigil::report::Span { from_ms: cut_at, to_ms: healed_at, label: "cut".into() };
    let seen = vantage_accounting(&centre_config, &reader, &span, "xa-sin-ho");
    let truth = up_at - down_at;
    assert!((seen.down_ms - truth).abs() <= 1_000, "down {} ms, truly {truth} ms: {seen:?}", seen.down_ms);
    assert!(seen.no_data_ms <= 1_000, "measured through the cut: {seen:?}");
    assert!((seen.up_ms - (healed_at - cut_at - truth)).abs() <= 1_000, "{seen:?}");
    let hooks = hooks.hooks();
    assert_eq!(hooks.iter().filter(|h| about(h, "firing")).count(), 1, "one vantage-lost alert");
    assert_eq!(hooks.iter().filter(|h| about(h, "resolved")).count(), 1, "one resolution");
    let others_lost = hooks
        .iter()
        .filter(|h| h.body["incident"]["system"] == "vantages" && h.body["incident"]["target"] != "vantages/xa-sin-ho");
    assert_eq!(others_lost.count(), 0, "the other communes were never lost");
    // The outage the cut commune measured arrived late: recorded, never paged.
    let late_pages = hooks.iter().filter(|h| h.body["incident"]["target"] == "procedures/portal@xa-sin-ho").count();
    assert_eq!(late_pages, 0, "late data never pages");
    let db = centre_dir.path().join("vigil.db");
    let views = vigil::store::query::incidents(&db, false, None, 100).expect("incidents");
    let late = views.iter().find(|i| i.target == "procedures/portal@xa-sin-ho").expect("the late view is recorded");
    assert!(
        late.why.iter().any(|w| w.decision == vigil::model::incident::Decision::Late),
        "and says why: {:?}",
        late.why
    );
    assert!(!late.is_open(), "and is over");
    app.shutdown().await;
}

/// Waits until the portal's combined state (as `/api/v1/status` shows it) satisfies `pred`.
/// The figures of the portal check as seen from `vantage` over `span`, as known now.
fn vantage_accounting(
    config: &vigil::config::Config,
    reader: &vigil::store::Reader,
    span: &vigil::report::Span,
    vantage: &str,
) -> vigil::report::Accounting {
    let report = vigil::report::build(config, reader, span, vigil::config::Language::En, vigil::model::now_ms())
        .expect("report");
    let check = &report.systems[0].checks[0];
    let view = check.vantages.iter().find(|v| v.name == vantage).expect("a row for the vantage");
    view.accounting
}

/// GET over HTTPS trusting only `ca`; expects 200.
async fn get_tls(url: &str, ca: &std::path::Path) -> String {
    use http_body_util::BodyExt;
    let client = vigil::http_client::with_ca(ca).expect("client");
    let req = hyper::Request::get(url).body(http_body_util::Full::new(bytes::Bytes::new())).expect("request");
    let resp = client.request(req).await.expect("an answer");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let body = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

async fn wait_view(app: &vigil::app::App, what: &str, pred: &dyn Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = app.status_json()["systems"][0]["checks"][0]["targets"][0]["combined"].clone();
        if pred(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "{what}: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts `vigil agent` inside namespace `ns`, on the config in `dir`.
fn agent_in(ns: &Netns, dir: &std::path::Path) -> Reaped {
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_vigil"), "agent", "-c"])
        .arg(dir.join("agent.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start an agent in its namespace");
    Reaped(child)
}

/// Issue #19, quorum and cause classes. The portal runs at the centre and at three communes
/// (`vantages: all`, `quorum: 2`); the centre checks each commune's link (its agent's
/// `/-/healthy`). (1) The portal becomes unreachable from one commune only: that vantage's
/// view is down and paged as such ("from xa-sin-ho", cause `target`), the combined state
/// stays up, the portal itself is not paged. (2) A commune whose link is down sees the
/// portal fail: classed `link`, not paged (its gateway's incident speaks). (3) Two communes
/// see it down: the quorum is met, the portal is paged once, then resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_and_cause_classes_from_three_communes() {
    let _one_at_a_time = NAMESPACES.lock().await;
    let (nets, centre_ip) = communes();
    let portal = web_server_at(&format!("{centre_ip}:0"), None).await;
    let hooks = HookSink::start().await;
    let pki = TestPki::new();
    let centre_dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = pki.leaf_files(centre_dir.path(), "centre", &[&centre_ip]);
    let centre_port = free_port();
    let agent_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let vantages: String = COMMUNES
        .iter()
        .map(|c| format!("  - {{ name: {c}, token: \"{}\", link: network/gateways/{c} }}\n", token(c)))
        .collect();
    let gateways: String = COMMUNES
        .iter()
        .zip(&nets)
        .zip(&agent_ports)
        .map(|((c, ns), port)| {
            format!("          - {{ name: {c}, url: \"http://{}:{port}/-/healthy\" }}\n", ns.hosts[0])
        })
        .collect();
    let centre = format!(
        "instance: {{ name: centre }}\n\
         server: {{ listen: \"{centre_ip}:{centre_port}\", admin_token: \"{TOKEN}\", tls: {{ cert_file: \"{}\", key_file: \"{}\" }} }}\n\
         storage: {{ path: \"{}\" }}\n\
         defaults: {{ interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1 }}\n\
         alerting: {{ flapping: {{ changes: 1000, window: 1m }} }}\n\
         vantages:\n{vantages}\
         receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/hook\" }} }} ] }}\nroutes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: procedures\n    checks:\n      - {{ id: portal, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"], vantages: all, quorum: 2 }}\n\
         \x20 - id: network\n    checks:\n      - id: gateways\n        http: {{}}\n        targets:\n{gateways}",
        cert.display(),
        key.display(),
        centre_dir.path().join("vigil.db").display(),
        hooks.addr,
        portal.addr
    );
    std::fs::write(centre_dir.path().join("vigil.yaml"), centre).expect("write");
    let app = vigil::app::App::start(
        vigil::app::ConfigSource::File(centre_dir.path().join("vigil.yaml")),
        vigil::app::Overrides::default(),
    )
    .await
    .expect("centre starts");
    let mut events = app.subscribe();
    let mut agents: Vec<(tempfile::TempDir, Reaped)> = Vec::new();
    for ((commune, ns), port) in COMMUNES.iter().zip(&nets).zip(&agent_ports) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).expect("write CA");
        let config = format!(
            "instance: {{ name: {commune} }}\n\
             server: {{ listen: \"{}:{port}\" }}\n\
             storage: {{ path: \"{}\" }}\n\
             agent: {{ vantage: {commune}, centre: \"https://{centre_ip}:{centre_port}\", token: \"{}\", ca_file: ca.pem, refresh: 1s }}\n",
            ns.hosts[0],
            dir.path().join("agent.db").display(),
            token(commune),
        );
        std::fs::write(dir.path().join("agent.yaml"), config).expect("write");
        let child = agent_in(ns, dir.path());
        agents.push((dir, child));
    }
    // Everyone sees the portal up, and every gateway is up.
    let mut expected: Vec<(&str, vigil::model::State)> = vec![("procedures/portal", vigil::model::State::Up)];
    let gateway_ids: Vec<String> = COMMUNES.iter().map(|c| format!("network/gateways/{c}")).collect();
    expected.extend(gateway_ids.iter().map(|g| (g.as_str(), vigil::model::State::Up)));
    wait_states(&mut events, Duration::from_secs(30), &expected).await;
    wait_view(&app, "three communes vote", &|v| v["observers"].as_array().is_some_and(|o| o.len() == 4)).await;
    let fired = |target: &str, event: &str| {
        hooks.hooks().iter().filter(|h| h.body["incident"]["target"] == target && h.body["event"] == event).count()
    };
    let port = portal.addr.port();

    // (1) Xã Sìn Hồ alone cannot reach the portal.
    nft(&nets[0], &format!("add rule inet vigil input ip saddr {centre_ip} tcp sport {port} drop"));
    let view = wait_view(&app, "xa-sin-ho sees it down", &|v| v["down"] == serde_json::json!(["xa-sin-ho"])).await;
    assert_eq!(view["state"], "up", "one of four is below the quorum of 2: {view}");
    let got = hooks
        .wait_until(Duration::from_secs(20), "the vantage's own alert", |h| {
            h.iter()
                .any(|x| x.body["incident"]["target"] == "procedures/portal@xa-sin-ho" && x.body["event"] == "firing")
        })
        .await;
    let alert = got.iter().find(|x| x.body["incident"]["target"] == "procedures/portal@xa-sin-ho").expect("alert");
    assert!(
        alert.body["summary"].as_str().is_some_and(|s| s.contains("xa-sin-ho")),
        "names the vantage: {}",
        alert.body
    );
    assert!(
        alert.body["text"].as_str().is_some_and(|s| s.contains("hệ thống lỗi khi nhìn từ điểm đo này")),
        "cause class target"
    );
    // Metrics and pages show both: each vantage's view and the combined state.
    let ca = centre_dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("write CA");
    let base = format!("https://{centre_ip}:{centre_port}");
    let portal_labels = "system=\"procedures\",check=\"portal\"";
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        // The exposition is encoded at most once a second.
        let metrics = get_tls(&format!("{base}/metrics"), &ca).await;
        if sample(&metrics, "vigil_vantage_check_up", &[portal_labels, "vantage=\"xa-sin-ho\""]) == Some(0.0)
            || Instant::now() > deadline
        {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sample(&metrics, "vigil_vantage_check_up", &[portal_labels, "vantage=\"xa-sin-ho\""]), Some(0.0));
    assert_eq!(sample(&metrics, "vigil_vantage_check_up", &[portal_labels, "vantage=\"xa-pa-tan\""]), Some(1.0));
    assert_eq!(sample(&metrics, "vigil_check_combined_up", &[portal_labels]), Some(1.0), "{metrics}");
    let system_page = get_tls(&format!("{base}/systems/procedures?lang=en"), &ca).await;
    assert!(system_page.contains("Up from centre, xa-nam-tam, xa-pa-tan; Down from xa-sin-ho"), "{system_page}");
    let check_page = get_tls(&format!("{base}/checks/procedures/portal?lang=en"), &ca).await;
    assert!(check_page.contains("Seen from vantage points") && check_page.contains(">xa-sin-ho</th>"), "{check_page}");
    nft(&nets[0], "flush chain inet vigil input");
    hooks
        .wait_until(Duration::from_secs(20), "its resolution", |h| {
            h.iter()
                .any(|x| x.body["incident"]["target"] == "procedures/portal@xa-sin-ho" && x.body["event"] == "resolved")
        })
        .await;

    // (2) Xã Nậm Tăm's link is down (the centre cannot reach it), then it sees the portal fail.
    nft(&nets[1], &format!("add rule inet vigil input tcp dport {} drop", agent_ports[1]));
    wait_states(&mut events, Duration::from_secs(20), &[("network/gateways/xa-nam-tam", vigil::model::State::Down)])
        .await;
    nft(&nets[1], &format!("add rule inet vigil input ip saddr {centre_ip} tcp sport {port} drop"));
    let db = centre_dir.path().join("vigil.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    let link_view = loop {
        let open = vigil::store::query::incidents(&db, true, None, 50).expect("incidents");
        if let Some(i) = open.into_iter().find(|i| i.target == "procedures/portal@xa-nam-tam") {
            break i;
        }
        assert!(Instant::now() < deadline, "the view through a broken link is recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(link_view.cause_class.as_deref(), Some("link"));
    assert!(link_view.told.is_empty(), "classed link: not paged");
    app.settle().await;
    assert_eq!(fired("procedures/portal@xa-nam-tam", "firing"), 0, "one cause pages once");
    assert_eq!(fired("network/gateways/xa-nam-tam", "firing"), 1, "the link's own alert is the page");

    // (3) Xã Sìn Hồ and Xã Pa Tần both see it down: the quorum of 2 is met.
    nft(&nets[0], &format!("add rule inet vigil input ip saddr {centre_ip} tcp sport {port} drop"));
    nft(&nets[2], &format!("add rule inet vigil input ip saddr {centre_ip} tcp sport {port} drop"));
    let view = wait_view(&app, "the quorum", &|v| v["state"] == "down").await;
    assert_eq!(view["needed"], 2);
    hooks
        .wait_until(Duration::from_secs(20), "the portal's page", |h| {
            h.iter().any(|x| x.body["incident"]["target"] == "procedures/portal" && x.body["event"] == "firing")
        })
        .await;
    for ns in &nets {
        nft(ns, "flush chain inet vigil input");
    }
    hooks
        .wait_until(Duration::from_secs(30), "the portal's resolution", |h| {
            h.iter().any(|x| x.body["incident"]["target"] == "procedures/portal" && x.body["event"] == "resolved")
        })
        .await;
    app.settle().await;
    assert_eq!(fired("procedures/portal", "firing"), 1, "the portal was paged once");
    for (_, child) in &mut agents {
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    app.shutdown().await;
}
