//! Alerting end to end with real peers on loopback: a real SMTP server (aiosmtpd) receives
//! firing, reminder, escalation and resolved mails, threaded and in Vietnamese; a real
//! Alertmanager shows the alert active, then resolved; a webhook sink receives the generic,
//! Slack and Telegram formats; acknowledgement stops reminders; 40 targets behind one
//! failing dependency make one notification; an SMTP outage loses nothing.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use vigil::model::State;

const WAIT: Duration = Duration::from_secs(30);

fn email_receiver(id: &str, port: u16, to: &str) -> String {
    format!(
        "  - id: {id}\n    channels:\n      - email: {{ to: [\"{to}\"], from: \"vigil@laichau.test\", smtp: {{ host: 127.0.0.1, port: {port}, security: none }} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_firing_reminder_escalation_and_resolved() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(dir.path());
    let config = format!(
        "alerting: {{ ack_key: {ACK_KEY} }}\n\
         receivers:\n{}{}\
         routes:\n  - {{ match: {{ severity: critical }}, receivers: [team], repeat_every: 2s, escalate: {{ after: 3s, to: [managers] }} }}\n\
         systems:\n  - id: procedures\n    name: {{ vi: \"Hệ thống giải quyết thủ tục hành chính\", en: \"Administrative procedures\" }}\n    checks:\n      - {{ id: portal, name: \"Cổng dịch vụ công\", http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"], runbook: \"https://wiki.laichau.test/portal\" }}\n",
        email_receiver("team", smtp.port, "ung-cuu@laichau.test"),
        email_receiver("managers", smtp.port, "lanh-dao@laichau.test"),
        web.addr
    );
    write_config_with(dir.path(), "public_url: \"http://monitor.laichau.test\"", &config);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("procedures/portal", State::Up)]).await;

    web.switch.store(503, Ordering::SeqCst);
    let mails = smtp
        .wait_until(WAIT, "firing, reminder and escalation", |m| {
            let subjects: Vec<&str> = m.iter().filter_map(|x| x["subject"].as_str()).collect();
            subjects.iter().any(|s| s.contains("NHẮC LẠI")) && subjects.iter().any(|s| s.contains("LEO THANG"))
        })
        .await;
    let firing = &mails[0];
    assert_eq!(
        firing["subject"],
        "[Vigil] SỰ CỐ: Hệ thống giải quyết thủ tục hành chính – Cổng dịch vụ công ngừng hoạt động"
    );
    assert!(
        firing["raw_subject"].as_str().is_some_and(|s| s.to_ascii_lowercase().contains("=?utf-8?")),
        "encoded subject: {firing}"
    );
    assert_eq!(firing["message_id"], "<incident-1-firing-team@vigil>");
    assert_eq!(firing["rcpt_to"][0], "ung-cuu@laichau.test");
    assert_eq!(firing["content_type"], "multipart/alternative");
    let text = firing["text"].as_str().unwrap_or_default();
    assert!(text.contains("Nguyên nhân:   [STATUS] (503) == 200"), "{text}");
    assert!(text.contains("Hướng dẫn xử lý: https://wiki.laichau.test/portal"), "{text}");
    assert!(text.contains("http://monitor.laichau.test/ack?incident=1&target=procedures%2Fportal&expires="), "{text}");
    assert!(firing["html"].as_str().is_some_and(|h| h.contains("Xác nhận đã tiếp nhận")));
    for m in mails[1..].iter().filter(|m| m["rcpt_to"][0] == "ung-cuu@laichau.test") {
        assert_eq!(m["in_reply_to"], "<incident-1-firing-team@vigil>", "threaded under the first mail: {m}");
    }
    let escalation =
        mails.iter().find(|m| m["subject"].as_str().is_some_and(|s| s.contains("LEO THANG"))).expect("escalation");
    assert_eq!(escalation["rcpt_to"][0], "lanh-dao@laichau.test");
    assert_eq!(escalation["in_reply_to"], serde_json::Value::Null, "the managers' first mail starts their thread");

    web.switch.store(200, Ordering::SeqCst);
    let mails = smtp
        .wait_until(WAIT, "resolved to the team and the managers", |m| {
            m.iter().filter(|x| x["subject"].as_str().is_some_and(|s| s.starts_with("[Vigil] ĐÃ KHẮC PHỤC"))).count()
                == 2
        })
        .await;
    let resolved: Vec<&serde_json::Value> =
        mails.iter().filter(|m| m["subject"].as_str().is_some_and(|s| s.contains("ĐÃ KHẮC PHỤC"))).collect();
    let to: std::collections::BTreeSet<&str> = resolved.iter().filter_map(|m| m["rcpt_to"][0].as_str()).collect();
    assert_eq!(
        to,
        ["lanh-dao@laichau.test", "ung-cuu@laichau.test"].into_iter().collect(),
        "resolution reaches the escalated receiver too"
    );
    assert!(resolved.iter().all(|m| m["text"].as_str().is_some_and(|t| t.contains("gián đoạn"))));
    let to_managers = resolved.iter().find(|m| m["rcpt_to"][0] == "lanh-dao@laichau.test").expect("managers");
    assert_eq!(to_managers["in_reply_to"], "<incident-1-escalation-managers@vigil>");

    let base = format!("http://{}", app.addr());
    let list: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/incidents")).await).expect("json");
    let incident = &list["incidents"][0];
    assert_eq!(incident["id"], 1);
    assert!(incident["resolved_ms"].is_i64());
    assert_eq!(incident["told"].as_array().map(Vec::len), Some(2));
    let metrics = get(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(&metrics, "vigil_incidents_total", &[r#"system="procedures""#, r#"severity="critical""#]),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "vigil_incidents_open", &[r#"system="procedures""#, r#"severity="critical""#]),
        Some(0.0)
    );
    assert!(
        sample(
            &metrics,
            "vigil_notifications_total",
            &[r#"receiver="team""#, r#"channel="email""#, r#"outcome="delivered""#]
        )
        .is_some_and(|n| n >= 3.0)
    );
    app.shutdown().await;
}

/// Issue #13, items 1 and 9: the link in an alert, opened with GET the way a mail gateway's
/// link scanner does, acknowledges nothing (the next reminder still reaches the real SMTP
/// server); the confirmation form's POST acknowledges and records the name; a signature
/// for another instance or target is refused; the previous key works while it is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgement_links_survive_link_scanners_and_stop_reminders() {
    use vigil::alert::message::AckClaim;
    use vigil::config::Secret;
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(dir.path());
    let previous_key = "previous-ack-key-0123456789abcdef0123";
    let config = format!(
        "alerting: {{ ack_keys: [{ACK_KEY}, {previous_key}] }}\n\
         receivers:\n{}\
         routes:\n  - {{ receivers: [team], repeat_every: 1s }}\n\
         systems:\n  - id: web\n    checks:\n      - {{ id: a, http: {{ url: \"http://{w}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
        email_receiver("team", smtp.port, "ung-cuu@laichau.test"),
        w = web.addr
    );
    write_config_with(dir.path(), "public_url: \"http://monitor.laichau.test\"", &config);
    let clock = vigil::model::TestClock::new();
    let app = start_daemon_with_clock(dir.path(), clock.clone()).await;
    let base = format!("http://{}", app.addr());
    web.switch.store(500, Ordering::SeqCst);
    let mails = smtp.wait_until(WAIT, "the alert", |m| !m.is_empty()).await;
    let text = mails[0]["text"].as_str().unwrap_or_default();
    let at = text.find("http://monitor.laichau.test/ack?").expect("an ack link in the alert");
    let ack_url = text[at..].split_whitespace().next().expect("link").to_string();
    assert!(ack_url.starts_with("http://monitor.laichau.test/ack?incident=1&target=web%2Fa&"), "{ack_url}");

    // Writes need the token.
    assert_eq!(request("POST", &format!("{base}/api/v1/incidents/1/ack"), None).await.0, 401);
    let (code, _) =
        request("GET", &format!("{base}/ack?incident=1&target=web%2Fa&expires=9999999999&sig=00"), None).await;
    assert_eq!(code, 403, "a forged link is refused");

    // The link scanner's GET: a confirmation form, no acknowledgement, reminders go on.
    let link = ack_url.replace("http://monitor.laichau.test", &base);
    let (code, page) = request("GET", &link, None).await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("<form method=post action=ack>"), "{page}");
    let reminders = |m: &[serde_json::Value]| {
        m.iter().filter(|x| x["subject"].as_str().is_some_and(|s| s.contains("NHẮC LẠI"))).count()
    };
    let before = reminders(&smtp.mails());
    smtp.wait_until(WAIT, "a reminder after the GET", |m| reminders(m) > before).await;
    let list: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/incidents?state=open")).await).expect("json");
    assert!(list["incidents"][0]["ack"].is_null(), "a GET acknowledged: {list}");

    // Misdirected signatures are refused: another instance of an HA pair, another target,
    // another incident number.
    let form_headers = [("content-type", "application/x-www-form-urlencoded")];
    let expires = 9_999_999_999;
    let post = |instance: &str, target: &str, incident: i64, key: &str, by: &str| {
        let claim = AckClaim { instance, target, incident, expires };
        let sig = claim.signature(&Secret::new(key));
        let target: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let by: String = url::form_urlencoded::byte_serialize(by.as_bytes()).collect();
        let body = format!("incident={incident}&target={target}&expires={expires}&sig={sig}&by={by}");
        let url = format!("{base}/ack");
        async move { send("POST", &url, &form_headers, &body).await.0 }
    };
    assert_eq!(post("peer", "web/a", 1, ACK_KEY, "x").await, 403, "signed for another instance");
    assert_eq!(post("test", "web/b", 1, ACK_KEY, "x").await, 403, "signed for another target");
    assert_eq!(post("test", "web/a", 1, "some-other-key-0123456789abcdef0123", "x").await, 403, "unknown key");
    // The previous key, still listed, acknowledges; the name is recorded.
    assert_eq!(post("test", "web/a", 1, previous_key, "Nguyễn Văn An").await, 200);
    let list: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/incidents?state=open")).await).expect("json");
    assert_eq!(list["incidents"][0]["ack"]["by"], "Nguyễn Văn An");
    // Reminders come every second while unacknowledged; none after the acknowledgement,
    // however long the incident stays open: an hour passes on the daemon's clock, its
    // timers run, and no reminder is decided (every decision is in the outbox first).
    app.settle().await;
    let reminders = outbox_rows(dir.path(), "reminder");
    clock.advance(Duration::from_secs(3_600));
    app.settle().await;
    assert_eq!(outbox_rows(dir.path(), "reminder"), reminders, "no reminder after the acknowledgement");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_formats_and_signature() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let h = hooks.addr;
    let config = format!(
        "receivers:\n  - id: generic\n    channels: [ {{ webhook: {{ url: \"http://{h}/generic\", secret: s3cret }} }} ]\n  - id: slack\n    channels: [ {{ webhook: {{ url: \"http://{h}/slack\", format: slack }} }} ]\n  - id: telegram\n    channels: [ {{ webhook: {{ url: \"http://{h}/telegram\", format: telegram, chat_id: \"-100123\" }} }} ]\n\
         routes:\n  - {{ receivers: [generic, slack, telegram] }}\n\
         systems:\n  - id: web\n    checks:\n      - {{ id: a, http: {{ url: \"http://{w}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
        w = web.addr
    );
    write_config(dir.path(), &config);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("web/a", State::Up)]).await;
    web.switch.store(503, Ordering::SeqCst);
    let got = hooks.wait_until(WAIT, "three formats", |h| h.len() >= 3).await;
    let by_path = |p: &str| got.iter().find(|x| x.path == p).unwrap_or_else(|| panic!("{p} not received"));
    let generic = by_path("/generic");
    assert_eq!(generic.body["version"], 1);
    assert_eq!(generic.body["event"], "firing");
    assert_eq!(generic.body["id"], "incident-1-firing-generic");
    assert_eq!(generic.body["incident"]["severity"], "critical");
    assert_eq!(generic.body["incident"]["failed_conditions"][0], "[STATUS] (503) == 200");
    assert_eq!(generic.headers["x-vigil-id"], "incident-1-firing-generic");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
    let expected: String = ring::hmac::sign(&key, &generic.raw).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(generic.headers["x-vigil-signature"], format!("sha256={expected}"));
    assert!(by_path("/slack").body["text"].as_str().is_some_and(|t| t.starts_with("*[Vigil] SỰ CỐ")));
    let telegram = &by_path("/telegram").body;
    assert_eq!(telegram["chat_id"], "-100123");
    assert!(telegram["text"].as_str().is_some_and(|t| t.contains("[STATUS] (503) == 200")));
    app.shutdown().await;
}

/// A real Alertmanager (single node) on loopback, stopped when dropped.
struct Alertmanager {
    base: String,
    child: std::process::Child,
}

impl Alertmanager {
    fn start(dir: &std::path::Path) -> Alertmanager {
        std::fs::write(dir.join("am.yml"), "route: { receiver: blackhole }\nreceivers: [ { name: blackhole } ]\n")
            .expect("am config");
        let port = free_port();
        let child = tool("prometheus-alertmanager", "prometheus-alertmanager")
            .args([
                &format!("--config.file={}", dir.join("am.yml").display()),
                &format!("--storage.path={}", dir.join("am-data").display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
                "--cluster.listen-address=",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start alertmanager");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "alertmanager did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Alertmanager { base: format!("http://{addr}"), child }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_shows_the_alert_then_resolves_it() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let am = Alertmanager::start(dir.path());
    let config = format!(
        "receivers:\n  - {{ id: am, channels: [ {{ alertmanager: {{ url: \"{}\" }} }} ] }}\n\
         routes:\n  - {{ receivers: [am] }}\n\
         systems:\n  - id: e-meeting\n    checks:\n      - {{ id: web, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
        am.base, web.addr
    );
    write_config(dir.path(), &config);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("e-meeting/web", State::Up)]).await;
    web.switch.store(503, Ordering::SeqCst);
    let active = |alerts: &serde_json::Value| {
        alerts.as_array().map_or(0, |a| a.iter().filter(|x| x["labels"]["alertname"] == "VigilCheckDown").count())
    };
    let deadline = Instant::now() + WAIT;
    let alerts = loop {
        let alerts: serde_json::Value =
            serde_json::from_str(&get(&format!("{}/api/v2/alerts", am.base)).await).expect("json");
        if active(&alerts) == 1 {
            break alerts;
        }
        assert!(Instant::now() < deadline, "alert never active in Alertmanager: {alerts}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let alert = &alerts[0];
    assert_eq!(alert["labels"]["system"], "e-meeting");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["status"]["state"], "active");
    assert!(alert["annotations"]["summary"].as_str().is_some_and(|s| s.contains("SỰ CỐ")));

    web.switch.store(200, Ordering::SeqCst);
    let deadline = Instant::now() + WAIT;
    loop {
        let alerts: serde_json::Value =
            serde_json::from_str(&get(&format!("{}/api/v2/alerts?active=true", am.base)).await).expect("json");
        if active(&alerts) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "alert never resolved in Alertmanager: {alerts}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_targets_behind_one_failing_dependency_make_one_notification() {
    let router = web_server(None).await;
    let gateways = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let targets: String = (1..=40)
        .map(|i| format!("          - {{ name: gw{i:02}, url: \"http://{}/switch\" }}\n", gateways.addr))
        .collect();
    let config = format!(
        "receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/hook\" }} }} ] }}\n\
         routes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: network\n    checks:\n      - {{ id: core-router, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n      - id: gateways\n        failure_threshold: 3\n        http: {{}}\n        conditions: [\"[STATUS] == 200\"]\n        depends_on: [core-router]\n        targets:\n{targets}",
        hooks.addr, router.addr
    );
    write_config(dir.path(), &config);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let mut up: Vec<(String, State)> = (1..=40).map(|i| (format!("network/gateways/gw{i:02}"), State::Up)).collect();
    up.push(("network/core-router".into(), State::Up));
    let up_refs: Vec<(&str, State)> = up.iter().map(|(s, st)| (s.as_str(), *st)).collect();
    wait_states(&mut events, WAIT, &up_refs).await;

    // The core router goes down and everything behind it with it.
    router.switch.store(503, Ordering::SeqCst);
    gateways.switch.store(503, Ordering::SeqCst);
    let unreachable: Vec<(String, State)> =
        (1..=40).map(|i| (format!("network/gateways/gw{i:02}"), State::Unreachable)).collect();
    let refs: Vec<(&str, State)> = unreachable.iter().map(|(s, st)| (s.as_str(), *st)).collect();
    wait_states(&mut events, WAIT, &refs).await;
    let base = format!("http://{}", app.addr());
    let open: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/incidents?state=open")).await).expect("json");
    assert_eq!(open["incidents"].as_array().map(Vec::len), Some(1), "one incident: {open}");
    assert_eq!(open["incidents"][0]["target"], "network/core-router");
    assert_eq!(open["incidents"][0]["affected"].as_array().map(Vec::len), Some(40));

    router.switch.store(200, Ordering::SeqCst);
    gateways.switch.store(200, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &up_refs).await;
    let got = hooks.wait_until(WAIT, "firing and resolved", |h| h.iter().any(|x| x.body["event"] == "resolved")).await;
    let events: Vec<(&str, &str)> = got
        .iter()
        .map(|h| (h.body["event"].as_str().unwrap_or(""), h.body["incident"]["target"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        events,
        [("firing", "network/core-router"), ("resolved", "network/core-router")],
        "exactly one alert for 41 failing targets"
    );
    assert_eq!(
        got[1].body["incident"]["affected"].as_array().map(Vec::len),
        Some(40),
        "the resolution lists everything affected"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_targets_of_one_check_failing_together_are_one_message() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let targets = gateway_targets(web.addr);
    let systems = format!(
        "systems:\n  - id: network\n    checks:\n      - id: gateways\n        http: {{}}\n        conditions: [\"[STATUS] == 200\"]\n        targets:\n{targets}"
    );
    write_config(dir.path(), &webhook_config(&hooks, ", group_by: [system, check], group_wait: 3s", &systems));
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let ids: Vec<String> = (1..=10).map(|i| format!("network/gateways/gw{i:02}")).collect();
    let states = |s: State| ids.iter().map(|id| (id.as_str(), s)).collect::<Vec<_>>();
    wait_states(&mut events, WAIT, &states(State::Up)).await;
    web.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &states(State::Down)).await;
    let got = hooks.wait_until(WAIT, "the group's announcement", |h| !h.is_empty()).await;
    // Every decision is in the outbox before it is sent: after the timers ran, one row.
    app.settle().await;
    assert_eq!(outbox_rows(dir.path(), ""), 1, "one message only: {:?}", events_of(&hooks.hooks()));
    assert_eq!(got[0].body["group"].as_array().map(Vec::len), Some(10), "{}", got[0].body);
    assert!(
        got[0].body["summary"].as_str().is_some_and(|s| s.ends_with("và 9 mục khác")),
        "{}",
        got[0].body["summary"]
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_outage_loses_nothing_and_keeps_order() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut smtp = SmtpSink::start(dir.path());
    let targets: String =
        (1..=20).map(|i| format!("          - {{ name: t{i:02}, url: \"http://{}/switch\" }}\n", web.addr)).collect();
    let config = format!(
        "receivers:\n{}routes:\n  - {{ receivers: [team] }}\nsystems:\n  - id: web\n    checks:\n      - id: many\n        http: {{}}\n        conditions: [\"[STATUS] == 200\"]\n        targets:\n{targets}",
        email_receiver("team", smtp.port, "ung-cuu@laichau.test")
    );
    write_config(dir.path(), &config);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let ids: Vec<String> = (1..=20).map(|i| format!("web/many/t{i:02}")).collect();
    let states = |s: State| ids.iter().map(|id| (id.as_str(), s)).collect::<Vec<_>>();
    wait_states(&mut events, WAIT, &states(State::Up)).await;

    smtp.stop();
    web.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &states(State::Down)).await;
    web.switch.store(200, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &states(State::Up)).await;
    let metrics = get(&format!("http://{}/metrics", app.addr())).await;
    assert!(
        sample(&metrics, "vigil_notifications_total", &[r#"outcome="failed""#]).is_some_and(|n| n >= 1.0),
        "deliveries failed while SMTP was down"
    );
    smtp.resume();

    let mails = smtp.wait_until(Duration::from_secs(90), "40 notifications after the outage", |m| m.len() >= 40).await;
    let keys: Vec<&str> = mails.iter().filter_map(|m| m["message_id"].as_str()).collect();
    let unique: std::collections::BTreeSet<&&str> = keys.iter().collect();
    assert_eq!(unique.len(), 40, "20 firing + 20 resolved, each once: {keys:?}");
    assert_eq!(keys.len(), 40, "nothing delivered twice");
    for n in 1..=20 {
        let firing = keys.iter().position(|k| *k == format!("<incident-{n}-firing-team@vigil>")).expect("firing");
        let resolved = keys.iter().position(|k| *k == format!("<incident-{n}-resolved-team@vigil>")).expect("resolved");
        assert!(firing < resolved, "incident {n}: resolved before firing");
    }
    app.shutdown().await;
    let deliveries = vigil::store::query::deliveries(dir.path().join("vigil.db")).expect("store");
    assert!(
        deliveries.iter().all(|(_, state, channel)| state == "delivered" && channel.as_deref() == Some("email")),
        "{deliveries:?}"
    );
}

/// Ten targets `gw01`…`gw10` answering from the test server's `/switch`, as YAML list items.
fn gateway_targets(addr: std::net::SocketAddr) -> String {
    (1..=10).map(|i| format!("          - {{ name: gw{i:02}, url: \"http://{addr}/switch\" }}\n")).collect()
}

fn events_of(hooks: &[Hook]) -> Vec<String> {
    hooks.iter().map(|h| h.body["event"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_window_mid_incident_pauses_alerts_and_keeps_the_incident() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let systems = format!(
        "systems:\n  - id: documents\n    checks:\n      - {{ id: web, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
        web.addr
    );
    write_config(dir.path(), &webhook_config(&hooks, ", repeat_every: 1s", &systems));
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("documents/web", State::Up)]).await;
    web.switch.store(503, Ordering::SeqCst);
    hooks.wait_until(WAIT, "firing", |h| events_of(h).contains(&"firing".to_string())).await;

    // Writes need the token.
    let (code, _) = request("POST", &format!("{base}/api/v1/maintenance"), None).await;
    assert_eq!(code, 401);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let body = r#"{"name": "thay ổ cứng", "systems": ["documents"], "duration": "4s", "reason": "replace a disk", "by": "tran.van.a"}"#;
    let req = hyper::Request::post(format!("{base}/api/v1/maintenance"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request");
    assert_eq!(client.request(req).await.expect("response").status().as_u16(), 201);
    wait_states(&mut events, WAIT, &[("documents/web", State::Maintenance)]).await;
    let during = hooks.hooks().len();
    let list: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/maintenance")).await).expect("json");
    assert_eq!(list["maintenance"][0]["by"], "tran.van.a");
    assert_eq!(list["maintenance"][0]["active"], true);

    // Inside the window: no reminders although repeat_every is 1s.
    let back = wait_for(&mut events, WAIT, |e| e.transition.is_some_and(|t| t.from == State::Maintenance)).await;
    assert_eq!(back.state, State::Down, "still failing after the window");
    assert_eq!(hooks.hooks().len(), during, "nothing was sent during maintenance");
    let open: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/incidents?state=open")).await).expect("json");
    assert_eq!(open["incidents"].as_array().map(Vec::len), Some(1), "the same incident goes on: {open}");
    assert_eq!(open["incidents"][0]["id"], 1);

    // Recovery: the resolution is delivered for the incident that began before the window.
    web.switch.store(200, Ordering::SeqCst);
    let got = hooks.wait_until(WAIT, "resolved", |h| events_of(h).contains(&"resolved".to_string())).await;
    let firings = events_of(&got).iter().filter(|e| *e == "firing").count();
    assert_eq!(firings, 1, "no second alert after the window: {:?}", events_of(&got));
    assert_eq!(got.last().map(|h| h.body["incident"]["id"].clone()), Some(serde_json::json!(1)));
    let metrics = get(&format!("{base}/metrics")).await;
    assert!(
        sample(&metrics, "vigil_check_state", &[r#"state="maintenance""#]).is_some(),
        "maintenance is a state series"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_recurring_maintenance_is_validated_and_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        "maintenance:\n  - { name: patching, systems: [documents], cron: \"0 22 * * SAT\", duration: 2h }\n  - { name: power, checks: [network/core-router], from: \"2030-01-05 20:00\", to: \"2030-01-06 02:00\" }\nsystems: []\n",
    );
    let app = start_daemon(dir.path()).await;
    let list: serde_json::Value =
        serde_json::from_str(&get(&format!("http://{}/api/v1/maintenance", app.addr())).await).expect("json");
    assert_eq!(list["maintenance"][0]["schedule"]["cron"], "0 22 * * SAT");
    assert_eq!(list["maintenance"][1]["schedule"]["from"], "2030-01-05T20:00:00+07:00");
    assert_eq!(list["maintenance"][1]["active"], false);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_sends_one_notice_then_stays_quiet() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &flapping_config(&hooks, web.addr));
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("network/sin-ho", State::Up)]).await;
    // Six changes, each driven by the previous one.
    flip(&web, &mut events, 0, 6).await;
    let got = hooks.wait_until(WAIT, "the flapping notice", |h| events_of(h).contains(&"flapping".to_string())).await;
    // Every decision is in the outbox before it is sent: after the timers ran, nothing more.
    app.settle().await;
    assert_eq!(outbox_rows(dir.path(), ""), got.len(), "quiet after the notice");
    assert_eq!(events_of(&got), ["firing", "resolved", "firing", "resolved", "flapping"]);
    let status: serde_json::Value =
        serde_json::from_str(&get(&format!("http://{}/api/v1/status", app.addr())).await).expect("json");
    assert_eq!(status["systems"][0]["checks"][0]["targets"][0]["flapping"], true);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_blind_sends_one_alert_and_judges_nothing_else() {
    let uplink = web_server(None).await;
    let service = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let systems = format!(
        "systems:\n  - id: vigil\n    checks:\n      - {{ id: uplink, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n  - id: reporting\n    checks:\n      - {{ id: api, failure_threshold: 2, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
        uplink.addr, service.addr
    );
    write_config(dir.path(), &webhook_config(&hooks, "", &systems));
    let text = std::fs::read_to_string(dir.path().join("vigil.yaml")).expect("read");
    std::fs::write(
        dir.path().join("vigil.yaml"),
        text.replace(
            "instance: { name: test, location: test-lab }",
            "instance: { name: test, location: test-lab, uplink: [vigil/uplink] }",
        ),
    )
    .expect("write");
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("vigil/uplink", State::Up), ("reporting/api", State::Up)]).await;

    uplink.switch.store(503, Ordering::SeqCst);
    service.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("vigil/uplink", State::Down), ("reporting/api", State::Unknown)]).await;
    let got = hooks.wait_until(WAIT, "the blind alert", |h| !h.is_empty()).await;
    assert_eq!(got.len(), 1);
    assert!(
        got[0].body["summary"].as_str().is_some_and(|s| s.starts_with("[Vigil] GIÁM SÁT MẤT KẾT NỐI")),
        "{}",
        got[0].body
    );

    // The uplink is back and the service still fails: now that is an outage of its own.
    uplink.switch.store(200, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("reporting/api", State::Down)]).await;
    let got = hooks
        .wait_until(WAIT, "the service alert", |h| h.iter().any(|x| x.body["incident"]["target"] == "reporting/api"))
        .await;
    assert_eq!(events_of(&got).iter().filter(|e| *e == "firing").count(), 2);
    let changes = vigil::store::query::changes(dir.path().join("vigil.db"), "reporting/api").expect("store");
    assert!(changes.iter().any(|c| c.to == "unknown"), "blind time is recorded as no data: {changes:?}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_chain_reaches_the_team_through_the_next_channel() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dead = closed_port().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "alerting: {{ deadman: {{ url: \"http://{h}/deadman\", interval: 1s }} }}\n\
         receivers:\n  - id: team\n    fallback_after: 1s\n    channels:\n      - webhook: {{ url: \"http://{dead}/sms\" }}\n      - webhook: {{ url: \"http://{h}/chat\", format: slack }}\n\
         routes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: web\n    checks:\n      - {{ id: a, http: {{ url: \"http://{w}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
        h = hooks.addr,
        w = web.addr
    );
    write_config(dir.path(), &config);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("web/a", State::Up)]).await;
    // Vigil's own heartbeat reaches the dead-man's switch.
    hooks.wait_until(WAIT, "the dead-man's switch call", |h| h.iter().any(|x| x.path == "/deadman")).await;
    web.switch.store(503, Ordering::SeqCst);
    let got = hooks.wait_until(WAIT, "the alert via chat", |h| h.iter().any(|x| x.path == "/chat")).await;
    let chat = got.iter().find(|x| x.path == "/chat").expect("chat");
    assert!(chat.body["text"].as_str().is_some_and(|t| t.contains("SỰ CỐ")));
    let metrics = get(&format!("http://{}/metrics", app.addr())).await;
    assert!(
        sample(&metrics, "vigil_notifications_total", &[r#"channel="webhook""#, r#"outcome="failed""#])
            .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(
        sample(&metrics, "vigil_notifications_total", &[r#"channel="slack""#, r#"outcome="delivered""#]),
        Some(1.0)
    );
    app.shutdown().await;
    let log = vigil::store::query::deliveries(dir.path().join("vigil.db")).expect("store");
    assert_eq!(
        log,
        [("incident-1-firing-team".to_string(), "delivered".to_string(), Some("slack".to_string()))],
        "the log shows which channel reached the team"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_reports_each_channel() {
    let hooks = HookSink::start().await;
    let dead = closed_port().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "receivers:\n  - id: team\n    channels:\n      - webhook: {{ url: \"http://{}/hook\" }}\n      - webhook: {{ url: \"http://{dead}/x\" }}\nsystems: []\n",
        hooks.addr
    );
    write_config(dir.path(), &config);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["notify-test", "--receiver", "team", "-c", &dir.path().join("vigil.yaml").display().to_string()])
        .output()
        .await
        .expect("run notify-test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "one channel failed: {stdout}");
    assert!(stdout.contains("channel 1 (webhook): delivered"), "{stdout}");
    assert!(stdout.contains("channel 2 (webhook): FAILED"), "{stdout}");
    let got = hooks.hooks();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["event"], "test");
    assert!(got[0].body["summary"].as_str().is_some_and(|s| s.starts_with("[Vigil] THỬ NGHIỆM")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_starttls_and_implicit_tls_trusting_the_organisations_ca() {
    // Real aiosmtpd servers with a certificate from a CA of the test's own, which only
    // `smtp.ca_file` makes trusted.
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new();
    std::fs::write(dir.path().join("org-ca.pem"), &pki.ca_pem).expect("write CA");
    let (cert, key) = pki.leaf_files(dir.path(), "mail", &["127.0.0.1"]);
    let starttls = SmtpSink::start_tls(dir.path(), "starttls", "starttls", &cert, &key);
    let implicit = SmtpSink::start_tls(dir.path(), "implicit", "tls", &cert, &key);
    let receiver = |id: &str, port: u16, security: &str, ca: &str| {
        format!(
            "  - id: {id}\n    channels:\n      - email: {{ to: [\"ung-cuu@laichau.test\"], from: \"vigil@laichau.test\", smtp: {{ host: 127.0.0.1, port: {port}, security: {security}{ca} }} }}\n"
        )
    };
    let trusted = ", ca_file: org-ca.pem";
    let config = format!(
        "receivers:\n{}{}{}systems: []\n",
        receiver("starttls", starttls.port, "starttls", trusted),
        receiver("implicit", implicit.port, "tls", trusted),
        receiver("untrusted", starttls.port, "starttls", ""),
    );
    write_config(dir.path(), &config);
    let notify_test = |receiver: &'static str| {
        let config = dir.path().join("vigil.yaml");
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
                .args(["notify-test", "--receiver", receiver, "-c", &config.display().to_string()])
                .output()
                .await
                .expect("run notify-test");
            (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
        }
    };

    for (receiver, sink) in [("starttls", &starttls), ("implicit", &implicit)] {
        let (code, stdout) = notify_test(receiver).await;
        assert_eq!(code, Some(0), "{receiver}: {stdout}");
        assert!(stdout.contains("channel 1 (email): delivered"), "{receiver}: {stdout}");
        let mails = sink.mails();
        assert_eq!(mails.len(), 1, "{receiver}: {mails:?}");
        assert!(mails[0]["subject"].as_str().is_some_and(|s| s.starts_with("[Vigil] THỬ NGHIỆM")), "{mails:?}");
    }

    // Without the CA the certificate is refused, and nothing is sent in clear.
    let (code, stdout) = notify_test("untrusted").await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("FAILED") && stdout.to_lowercase().contains("certificate"), "{stdout}");
    assert_eq!(starttls.mails().len(), 1, "the untrusted attempt delivered nothing");
}

/// Issue #13, item 3: a webhook URL is often itself a secret (a chat bot's token in its path):
/// the error stored in the outbox (and logged) names the server, never the path, and a
/// configuration error about such a URL does not quote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_stay_out_of_stored_errors_and_config_errors() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The test server answers 404 on this path: a permanent failure, stored with its error.
    let hook = format!("http://{}/bot-token-canary/sendMessage", web.addr);
    let config = format!(
        "receivers:\n  - {{ id: chat, channels: [ {{ webhook: {{ url: \"{hook}\" }} }} ] }}\n\
         routes:\n  - {{ receivers: [chat] }}\n\
         systems:\n  - id: web\n    checks:\n      - {{ id: a, http: {{ url: \"http://{w}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
        w = web.addr
    );
    write_config(dir.path(), &config);
    web.switch.store(500, Ordering::SeqCst);
    let app = start_daemon(dir.path()).await;
    let db = dir.path().join("vigil.db");
    let deadline = Instant::now() + WAIT;
    let error = loop {
        let conn = rusqlite::Connection::open(&db).expect("store");
        let error: Option<String> =
            conn.query_row("SELECT error FROM outbox WHERE error IS NOT NULL LIMIT 1", [], |r| r.get(0)).ok();
        if let Some(e) = error {
            break e;
        }
        assert!(Instant::now() < deadline, "no failed delivery was stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    app.shutdown().await;
    assert!(error.contains(&format!("http://{}/…", web.addr)), "{error}");
    assert!(!error.contains("bot-token-canary"), "the stored error carries the URL's secret: {error}");

    let bad = "receivers:\n  - { id: chat, channels: [ { webhook: { url: \"ftp://bot-token-canary@chat.laichau.example/x\" } } ] }\nsystems: []\n";
    let errors = match vigil::config::load_from_text(&dir.path().join("bad.yaml"), bad, &|_| None) {
        Ok(_) => panic!("an ftp webhook was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(errors.contains("is not an http(s) URL") && !errors.contains("bot-token-canary"), "{errors}");
}

/// Issue #16, item 1: the root cause is known before anyone is paged, whatever order the
/// probes finish in. A core router and ten commune gateways behind it (`depends_on`) fail
/// at the same instant, `failure_threshold: 1`, 20 rounds at pseudo-random phases: a gateway
/// whose failure arrives first is held while the router is probed at once, so no gateway
/// is ever paged, the router is paged once per round, and its incident lists all ten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_cause_first_in_any_probe_order() {
    const ROUNDS: usize = 20;
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let targets = gateway_targets(web.addr);
    let systems = format!(
        "systems:\n  - id: core\n    checks:\n      - {{ id: router, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n  - id: communes\n    checks:\n      - id: gateways\n        http: {{}}\n        conditions: [\"[STATUS] == 200\"]\n        depends_on: [core/router]\n        targets:\n{targets}",
        web.addr
    );
    let config =
        format!("alerting: {{ flapping: {{ changes: 1000, window: 1m }} }}\n{}", webhook_config(&hooks, "", &systems));
    write_config(dir.path(), &config);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let gateways: Vec<String> = (1..=10).map(|i| format!("communes/gateways/gw{i:02}")).collect();
    let all = |gw: State, router: State| {
        let mut s: Vec<(&str, State)> = gateways.iter().map(|id| (id.as_str(), gw)).collect();
        s.push(("core/router", router));
        s
    };
    wait_states(&mut events, WAIT, &all(State::Up, State::Up)).await;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..ROUNDS {
        // A pseudo-random phase against the 1 s schedules.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(seed % 1000)).await;
        web.switch.store(503, Ordering::SeqCst);
        wait_states(&mut events, WAIT, &all(State::Unreachable, State::Down)).await;
        web.switch.store(200, Ordering::SeqCst);
        wait_states(&mut events, WAIT, &all(State::Up, State::Up)).await;
    }
    app.settle().await;
    let incidents = vigil::store::query::incidents(dir.path().join("vigil.db"), false, None, 1000).expect("incidents");
    let of_gateways = incidents.iter().filter(|i| i.system == "communes").count();
    assert_eq!(of_gateways, 0, "no gateway was paged: {:?}", incidents.iter().map(|i| &i.target).collect::<Vec<_>>());
    assert_eq!(incidents.len(), ROUNDS, "the router, once per round");
    for i in &incidents {
        let mut affected = i.affected.clone();
        affected.sort();
        assert_eq!(affected, gateways, "incident {} lists every gateway as also affected", i.id);
    }
    assert_eq!(outbox_rows(dir.path(), "-firing-"), ROUNDS, "one page per round");
    app.shutdown().await;
}

/// Issue #16, item 8: a degraded target whose dependency goes down is unreachable, not
/// "back up": its incident stays open (no "resolved" is decided) until it really recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_is_never_resolved() {
    let (parent, child) = (web_server(None).await, web_server(None).await);
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let systems = format!(
        "systems:\n  - id: core\n    checks:\n      - {{ id: router, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n  - id: documents\n    checks:\n      - {{ id: web, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] < 500\"], warning_conditions: [\"[STATUS] == 200\"], depends_on: [core/router] }}\n",
        parent.addr, child.addr
    );
    write_config(dir.path(), &webhook_config(&hooks, "", &systems));
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("core/router", State::Up), ("documents/web", State::Up)]).await;
    child.switch.store(404, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("documents/web", State::Degraded)]).await;
    parent.switch.store(503, Ordering::SeqCst);
    child.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("core/router", State::Down), ("documents/web", State::Unreachable)]).await;
    app.settle().await;
    let db = dir.path().join("vigil.db");
    let open = vigil::store::query::incidents(&db, true, Some("documents"), 10).expect("incidents");
    assert_eq!(open.len(), 1, "the degraded incident stays open while unreachable");
    assert_eq!(outbox_rows(dir.path(), "-resolved-"), 0, "nothing says it is back up");
    // Really back: now it is resolved, once.
    parent.switch.store(200, Ordering::SeqCst);
    child.switch.store(200, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("core/router", State::Up), ("documents/web", State::Up)]).await;
    app.settle().await;
    let open = vigil::store::query::incidents(&db, true, Some("documents"), 10).expect("incidents");
    assert!(open.is_empty(), "resolved once it is up");
    app.shutdown().await;
}

/// Issue #16, item 3: reminders and escalations only for incidents their receivers were
/// told about. A grouped route (`group_wait: 8s`, `repeat_every: 3s`): nothing is decided
/// before the group's announcement — no reminder ahead of it — and the first message is the
/// announcement. A flapping target's quiet incident: no reminder and no escalation, however
/// long it stays open (the daemon's clock jumps an hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_announced_incidents_get_reminders_and_escalations() {
    let web = web_server(None).await;
    let flappy = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let systems = format!(
        "systems:\n  - id: documents\n    checks:\n      - {{ id: web, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n  - id: network\n    checks:\n      - {{ id: sin-ho, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
        web.addr, flappy.addr
    );
    let routes = "receivers:\n  - { id: team, channels: [ { webhook: { url: \"http://HOOK/hook\" } } ] }\n  - { id: managers, channels: [ { webhook: { url: \"http://HOOK/hook\" } } ] }\nroutes:\n  - { receivers: [team], match: { system: documents }, group_by: [system], group_wait: 8s, repeat_every: 3s }\n  - { receivers: [team], match: { system: network }, repeat_every: 1s, escalate: { after: 2s, to: [managers] } }\n"
        .replace("HOOK", &hooks.addr.to_string());
    // A flapping window longer than the clock's jump: the quiet incident stays quiet.
    let config = format!("alerting: {{ flapping: {{ changes: 4, window: 2h }} }}\n{routes}{systems}");
    write_config(dir.path(), &config);
    let clock = vigil::model::TestClock::new();
    let app = start_daemon_with_clock(dir.path(), clock.clone()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("documents/web", State::Up), ("network/sin-ho", State::Up)]).await;

    // The grouped incident: 5 s later (past one repeat_every), still nothing decided.
    web.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("documents/web", State::Down)]).await;
    clock.advance(Duration::from_secs(5));
    app.settle().await;
    assert_eq!(outbox_rows(dir.path(), ""), 0, "no reminder before the group's announcement");
    clock.advance(Duration::from_secs(4));
    app.settle().await;
    assert_eq!(outbox_rows(dir.path(), "-firing-"), 1, "then the announcement");
    assert_eq!(outbox_rows(dir.path(), ""), 1, "and only it");

    // The flapping target: five flips (the fourth change starts flapping), then down for good.
    for i in 0..5 {
        let (status, want) = if i % 2 == 0 { (503, State::Down) } else { (200, State::Up) };
        flappy.switch.store(status, Ordering::SeqCst);
        wait_for(&mut events, WAIT, |e| e.target_id == "network/sin-ho" && e.transition.is_some_and(|t| t.to == want))
            .await;
    }
    app.settle().await;
    let before = (outbox_rows(dir.path(), "-reminder-"), outbox_rows(dir.path(), "-escalation-"));
    let quiet = vigil::store::query::incidents(dir.path().join("vigil.db"), true, Some("network"), 10).expect("open");
    assert!(quiet.first().is_some_and(|i| i.told.is_empty()), "the incident under flapping is quiet: {quiet:?}");
    clock.advance(Duration::from_secs(3_600));
    app.settle().await;
    let after = (outbox_rows(dir.path(), "-reminder-"), outbox_rows(dir.path(), "-escalation-"));
    assert_eq!(after.1, before.1, "no escalation of an incident nobody was told about");
    assert_eq!(after.0, before.0 + 1, "one reminder, for the grouped incident only");
    app.shutdown().await;
}

/// Issue #16, item 9: a notification's delivery attempts are counted across restarts —
/// the delivery log says how many times it was really tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_attempts_are_counted_across_restarts() {
    let web = web_server(None).await;
    let port = free_port(); // nothing listens yet: every delivery is refused (and retried)
    let dir = tempfile::tempdir().expect("tempdir");
    let systems = format!(
        "receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://127.0.0.1:{port}/hook\" }} }} ] }}\nroutes:\n  - {{ receivers: [team] }}\nsystems:\n  - id: web\n    checks:\n      - {{ id: a, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
        web.addr
    );
    write_config(dir.path(), &systems);
    let db = dir.path().join("vigil.db");
    let attempts = || {
        let conn = rusqlite::Connection::open(&db).expect("store");
        conn.query_row("SELECT attempts, state FROM outbox WHERE key LIKE '%-firing-%'", [], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?))
        })
        .unwrap_or((0, String::new()))
    };
    let wait_attempts = |at_least: u32| async move {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (n, state) = attempts();
            if n >= at_least {
                return (n, state);
            }
            assert!(std::time::Instant::now() < deadline, "attempts stayed at {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let app = start_daemon(dir.path()).await;
    web.switch.store(503, Ordering::SeqCst);
    wait_attempts(2).await;
    app.shutdown().await;
    let (before, _) = attempts();
    let app = start_daemon(dir.path()).await;
    // The first try after the restart is counted on top of the earlier ones.
    let deadline = std::time::Instant::now() + WAIT;
    let after_restart = loop {
        let (n, _) = attempts();
        if n != before {
            break n;
        }
        assert!(std::time::Instant::now() < deadline, "no try after the restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(after_restart, before + 1, "the count goes on after the restart");
    let hooks = HookSink::start_on(port).await;
    hooks.wait_until(WAIT, "the alert, at last", |h| !h.is_empty()).await;
    app.settle().await;
    let deadline = std::time::Instant::now() + WAIT;
    let (total, state) = loop {
        let (n, state) = attempts();
        if state == "delivered" || std::time::Instant::now() > deadline {
            break (n, state);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state, "delivered");
    assert!(total > after_restart, "every try counted, the successful one too: {total}");
    app.shutdown().await;
}

/// Issue #16, item 2: a flapping target that then stays down is paged. Five flips (the
/// fourth change starts flapping), down for good: its incident opens quietly; once the
/// flapping window has passed without a change (the daemon's clock jumps past it), the
/// still-open incident is announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_never_hides_an_outage() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &flapping_config(&hooks, web.addr));
    let clock = vigil::model::TestClock::new();
    let app = start_daemon_with_clock(dir.path(), clock.clone()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("network/sin-ho", State::Up)]).await;
    flip(&web, &mut events, 0, 5).await;
    app.settle().await;
    let db = dir.path().join("vigil.db");
    let open = vigil::store::query::incidents(&db, true, None, 10).expect("incidents");
    let quiet = open.first().expect("the outage's incident").id;
    assert!(open[0].told.is_empty(), "opened quietly while flapping");
    let announced = || outbox_rows(dir.path(), &format!("incident-{quiet}-firing-"));
    assert_eq!(announced(), 0);
    clock.advance(Duration::from_secs(11 * 60));
    app.settle().await;
    assert_eq!(announced(), 1, "the outage is announced once the flapping is over");
    app.settle().await;
    assert_eq!(announced(), 1, "once");
    app.shutdown().await;
}

/// Redundant parents (`depends_on_any`, issue #21, item 9): a commune office reached over
/// two links. One link down costs redundancy, not service: its incident is a warning
/// ("redundancy lost", naming the link still up) and the office stays up. Both down: the
/// office is unreachable, and the one critical page is the root cause's, listing the office.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_redundant_links_down_is_a_warning_and_both_down_one_root_cause_page() {
    let (vnpt, viettel, office) = (web_server(None).await, web_server(None).await, web_server(None).await);
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/hook\" }} }} ] }}\n\
         routes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: links\n    checks:\n      - {{ id: sin-ho-vnpt, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n      - {{ id: sin-ho-viettel, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n\
         \x20 - id: office\n    checks:\n      - id: sin-ho\n        http: {{ url: \"http://{}/switch\" }}\n        conditions: [\"[STATUS] == 200\"]\n        depends_on_any: [links/sin-ho-vnpt, links/sin-ho-viettel]\n",
        hooks.addr, vnpt.addr, viettel.addr, office.addr
    );
    write_config(dir.path(), &config);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let all_up = [("links/sin-ho-vnpt", State::Up), ("links/sin-ho-viettel", State::Up), ("office/sin-ho", State::Up)];
    wait_states(&mut events, WAIT, &all_up).await;

    // One link fails: a warning, and the office stays up.
    vnpt.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("links/sin-ho-vnpt", State::Down)]).await;
    let got = hooks.wait_until(WAIT, "the redundancy-lost warning", |h| !h.is_empty()).await;
    let warning = &got[0].body["incident"];
    assert_eq!(
        (warning["target"].as_str(), warning["severity"].as_str()),
        (Some("links/sin-ho-vnpt"), Some("warning"))
    );
    let cause = warning["cause"].as_str().unwrap_or_default();
    assert!(cause.starts_with("redundancy lost (still up: links/sin-ho-viettel)"), "{cause}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let base = format!("http://{}", app.addr());
    let status: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("json");
    assert_eq!(status["systems"][1]["checks"][0]["targets"][0]["state"], "up", "the office still works over Viettel");

    // The second link fails, and the office with it: unreachable, under the root cause.
    viettel.switch.store(503, Ordering::SeqCst);
    office.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("links/sin-ho-viettel", State::Down), ("office/sin-ho", State::Unreachable)])
        .await;
    let got = hooks.wait_until(WAIT, "the root cause's page", |h| h.len() >= 2).await;
    let root = &got[1].body["incident"];
    assert_eq!((root["target"].as_str(), root["severity"].as_str()), (Some("links/sin-ho-viettel"), Some("critical")));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let open: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/incidents?state=open")).await).expect("json");
    let viettel_incident =
        open["incidents"].as_array().into_iter().flatten().find(|i| i["target"] == "links/sin-ho-viettel");
    assert_eq!(viettel_incident.map(|i| i["affected"].clone()), Some(serde_json::json!(["office/sin-ho"])), "{open}");
    let paged: Vec<String> =
        hooks.hooks().iter().map(|h| format!("{} {}", h.body["event"], h.body["incident"]["target"])).collect();
    assert_eq!(paged.len(), 2, "one warning, one root-cause page; nothing for the office: {paged:?}");
    app.shutdown().await;
}
