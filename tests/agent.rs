//! Vantage points (issue #19), first part: an agent (`vigil agent`, a real process) forwards
//! what it measures to a centre (`vigil` in-process) on loopback. The agent is killed with
//! SIGKILL at pseudo-random moments, and the centre is stopped for a while (the agent keeps
//! measuring; its backlog is back-filled when the centre returns, and killed once more in
//! the middle): the centre ends up with every result and state change the agent committed,
//! each exactly once, with its original timestamp.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const VANTAGE_TOKEN: &str = "vantage-token-xa-sin-ho-0123456789";
const KILLS: usize = 10;

fn centre_config(dir: &std::path::Path, port: u16, web: std::net::SocketAddr) -> String {
    format!(
        "instance: {{ name: centre }}\n\
         server: {{ listen: \"127.0.0.1:{port}\", admin_token: \"{TOKEN}\" }}\n\
         storage: {{ path: \"{}\" }}\n\
         vantages:\n  - {{ name: xa-sin-ho, token: \"{VANTAGE_TOKEN}\" }}\n  - {{ name: xa-nam-tam, token: \"another-vantage-token-0123456789\" }}\n\
         systems:\n  - id: core\n    checks:\n      - {{ id: portal, interval: 1s, timeout: 800ms, http: {{ url: \"http://{web}/\" }} }}\n",
        dir.join("vigil.db").display()
    )
}

fn agent_config(dir: &std::path::Path, port: u16, centre: u16, web: std::net::SocketAddr) -> String {
    let targets: String =
        (1..=4).map(|i| format!("          - {{ name: t{i}, url: \"http://{web}/switch\" }}\n")).collect();
    format!(
        "instance: {{ name: xa-sin-ho }}\n\
         server: {{ listen: \"127.0.0.1:{port}\" }}\n\
         storage: {{ path: \"{}\" }}\n\
         defaults: {{ interval: 1s, timeout: 400ms, failure_threshold: 1, success_threshold: 1 }}\n\
         agent: {{ vantage: xa-sin-ho, centre: \"http://127.0.0.1:{centre}\", token: \"{VANTAGE_TOKEN}\" }}\n\
         systems:\n  - id: procedures\n    checks:\n      - id: portal\n        http: {{}}\n        conditions: [\"[STATUS] == 200\"]\n        targets:\n{targets}",
        dir.join("agent.db").display()
    )
}

fn start_agent(dir: &std::path::Path) -> Reaped {
    start_agent_ahead(dir, 0)
}

/// Starts the agent with its clock `ahead_ms` ahead (fault-injection builds). It forwards
/// in small batches (one live record and one old one, 100 ms apart), so that a back-fill of
/// a few seconds' results spans many batches and a kill lands in the middle of it.
fn start_agent_ahead(dir: &std::path::Path, ahead_ms: i64) -> Reaped {
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["agent", "-c", &dir.join("agent.yaml").display().to_string()])
        .env("VIGIL_FAULT_CLOCK_OFFSET_MS", ahead_ms.to_string())
        .env("VIGIL_FAULT_FORWARD", "1,1,100")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vigil agent");
    Reaped(child)
}

async fn start_centre(dir: &std::path::Path) -> vigil::app::App {
    use vigil::app::{App, ConfigSource, Overrides};
    App::start(ConfigSource::File(dir.join("vigil.yaml")), Overrides::default()).await.expect("centre starts")
}

/// (kind, target, at_ms) → how many times, for every record in `rows`.
fn tally(rows: impl Iterator<Item = (String, String, i64)>) -> BTreeMap<(String, String, i64), usize> {
    rows.fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r).or_default() += 1;
        m
    })
}

/// Everything the agent's store committed: its results and state changes.
fn agent_records(db: &std::path::Path) -> BTreeMap<(String, String, i64), usize> {
    let conn = rusqlite::Connection::open(db).expect("agent store");
    let mut rows = Vec::new();
    for (kind, table) in [("result", "results"), ("change", "state_changes")] {
        let mut stmt = conn.prepare(&format!("SELECT target, at_ms FROM {table}")).expect("query");
        let found = stmt.query_map([], |r| Ok((kind.to_string(), r.get(0)?, r.get(1)?))).expect("rows");
        rows.extend(found.map(|r| r.expect("row")));
    }
    tally(rows.into_iter())
}

fn queued(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("agent store");
    conn.query_row("SELECT count(*) FROM forward_queue", [], |r| r.get(0)).expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_result_reaches_the_centre_once_through_kills_and_a_centre_outage() {
    let web = web_server(None).await;
    let (centre_dir, agent_dir) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (centre_port, agent_port) = (free_port(), free_port());
    std::fs::write(centre_dir.path().join("vigil.yaml"), centre_config(centre_dir.path(), centre_port, web.addr))
        .expect("write");
    std::fs::write(
        agent_dir.path().join("agent.yaml"),
        agent_config(agent_dir.path(), agent_port, centre_port, web.addr),
    )
    .expect("write");
    let centre = start_centre(centre_dir.path()).await;
    let base = format!("http://127.0.0.1:{centre_port}");

    // Only the vantage's own token is accepted, and only for its own name.
    let wrong = send("POST", &format!("{base}/api/v1/ingest"), &[("authorization", "Bearer nope")], "{}").await;
    assert_eq!(wrong.0, 401);
    let other = send(
        "POST",
        &format!("{base}/api/v1/ingest"),
        &[("authorization", "Bearer another-vantage-token-0123456789")],
        r#"{"vantage":"xa-sin-ho","sent_ms":0,"records":[]}"#,
    )
    .await;
    assert_eq!(other.0, 403, "a vantage cannot write as another");
    // Hostile or broken batches get a clear 4xx, never a crash, and store nothing.
    let auth = format!("Bearer {VANTAGE_TOKEN}");
    let ingest = |body: String| {
        let (url, auth) = (format!("{base}/api/v1/ingest"), auth.clone());
        async move { send("POST", &url, &[("authorization", auth.as_str())], &body).await.0 }
    };
    assert_eq!(ingest("{not json".into()).await, 400, "invalid JSON");
    let record =
        |seq: i64, kind: &str| format!(r#"{{"seq":{seq},"kind":"{kind}","target":"web/a","at_ms":1,"data":{{}}}}"#);
    let batch = |sent: i64, records: Vec<String>| {
        format!(r#"{{"vantage":"xa-sin-ho","sent_ms":{sent},"records":[{}]}}"#, records.join(","))
    };
    assert_eq!(ingest(batch(0, vec![record(0, "result")])).await, 400, "a sequence number must be positive");
    assert_eq!(ingest(batch(0, vec![record(1, "delete")])).await, 400, "only results and state changes");
    let many: Vec<String> = (1..=10_001).map(|s| record(s, "result")).collect();
    assert_eq!(ingest(batch(0, many)).await, 413, "at most 10,000 records");
    let incarnation = |id: &str| {
        format!(r#"{{"vantage":"xa-sin-ho","sent_ms":0,"incarnation":"{id}","records":[{}]}}"#, record(1, "result"))
    };
    assert_eq!(ingest(incarnation(&"x".repeat(65))).await, 400, "an incarnation of at most 64 characters");
    assert_eq!(ingest(incarnation("")).await, 400, "and not empty");
    assert_eq!(ingest(format!("{{\"pad\":\"{}\"}}", "x".repeat(9 * 1024 * 1024))).await, 413, "at most 8 MB");
    // A clock at the end of time: corrected with saturating arithmetic, not an overflow.
    assert_eq!(ingest(batch(i64::MIN, vec![])).await, 200, "an absurd clock is answered");
    let reader = vigil::store::Reader::new(centre_dir.path().join("vigil.db"));
    assert!(reader.received("xa-sin-ho").expect("centre store").is_empty(), "nothing stored from refused batches");
    assert_eq!(request("GET", &format!("{base}/-/healthy"), None).await.0, 200, "the centre still serves");

    let agent_db = agent_dir.path().join("agent.db");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut pause = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Duration::from_millis(300 + seed % 1500)
    };
    let kill = |mut child: Reaped| {
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    };
    for i in 0..KILLS {
        // The target flips now and then, so state changes travel too.
        web.switch.store(if i % 2 == 0 { 200 } else { 503 }, std::sync::atomic::Ordering::SeqCst);
        let agent = start_agent(agent_dir.path());
        tokio::time::sleep(pause()).await;
        kill(agent);
    }
    // The centre goes away; the agent keeps measuring. Once the centre is back, the agent
    // dies three times in the middle of the back-fill, and the centre restarts in the
    // middle of it too.
    centre.shutdown().await;
    let mut agent = start_agent(agent_dir.path());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let backlog = queued(&agent_db);
    assert!(backlog > 20, "results wait for the centre: {backlog}");
    let centre = start_centre(centre_dir.path()).await;
    // Once the back-fill is under way (the agent reconnects after its back-off), the centre
    // restarts in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(40);
    let left = loop {
        let left = queued(&agent_db);
        if left < backlog {
            break left;
        }
        assert!(Instant::now() < deadline, "the back-fill starts: {left} of {backlog} left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(left > 5, "back-filling when the centre restarts: {left} of {backlog} left");
    centre.shutdown().await;
    let centre = start_centre(centre_dir.path()).await;
    for _ in 0..3 {
        tokio::time::sleep(pause() / 4).await;
        kill(agent);
        agent = start_agent(agent_dir.path());
    }
    web.switch.store(200, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    while queued(&agent_db) > 8 {
        assert!(Instant::now() < deadline, "the backlog drains: {} left", queued(&agent_db));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill(agent);
    centre.settle().await;

    // What the agent committed and no longer queues is exactly what the centre holds.
    let mut measured = agent_records(&agent_db);
    let conn = rusqlite::Connection::open(&agent_db).expect("agent store");
    let mut stmt = conn.prepare("SELECT kind, target, at_ms FROM forward_queue").expect("query");
    let still_queued: Vec<(String, String, i64)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).expect("rows").map(|r| r.expect("row")).collect();
    for key in &still_queued {
        measured.remove(key);
    }
    let reader = vigil::store::Reader::new(centre_dir.path().join("vigil.db"));
    let received = reader.received("xa-sin-ho").expect("centre store");
    let at_centre = tally(received.iter().map(|r| (r.kind.clone(), r.target.clone(), r.at_ms)));
    let twice: Vec<_> = at_centre.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "nothing twice at the centre: {twice:?}");
    let missing: Vec<_> = measured.keys().filter(|k| !at_centre.contains_key(*k)).take(5).collect();
    assert!(missing.is_empty(), "every committed record reached the centre; missing e.g. {missing:?}");
    assert_eq!(measured.len(), at_centre.len(), "and nothing else");
    assert!(measured.keys().any(|(kind, _, _)| kind == "change"), "state changes travelled too");
    assert!(measured.len() > 40, "a real amount of data: {}", measured.len());

    let (status, body) = request("GET", &format!("{base}/api/v1/vantages"), None).await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    let sin_ho = doc["vantages"].as_array().and_then(|v| v.iter().find(|v| v["name"] == "xa-sin-ho")).cloned();
    let sin_ho = sin_ho.expect("xa-sin-ho listed");
    assert_eq!(sin_ho["received"].as_i64(), Some(received.len() as i64), "each record counted once");
    assert!(sin_ho["last_seen_ms"].as_i64().is_some());
    let nam_tam = doc["vantages"].as_array().and_then(|v| v.iter().find(|v| v["name"] == "xa-nam-tam")).cloned();
    assert_eq!(nam_tam.expect("configured vantages are listed")["last_seen_ms"], serde_json::Value::Null);
    centre.shutdown().await;
}

/// Issue #19, vantage health: an agent silent past its grace is one "vantage lost" alert;
/// when it is heard from again, that alert is resolved. Meanwhile the centre shows the
/// targets' states as measured from the vantage point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_is_one_vantage_lost_alert_resolved_when_it_returns() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let (centre_dir, agent_dir) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (centre_port, agent_port) = (free_port(), free_port());
    let centre = format!(
        "instance: {{ name: centre }}\n\
         server: {{ listen: \"127.0.0.1:{centre_port}\", admin_token: \"{TOKEN}\" }}\n\
         storage: {{ path: \"{}\" }}\n\
         vantages:\n  - {{ name: xa-sin-ho, token: \"{VANTAGE_TOKEN}\", grace: 3s }}\n\
         receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/hook\" }} }} ] }}\nroutes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: core\n    checks:\n      - {{ id: portal, interval: 1s, timeout: 800ms, http: {{ url: \"http://{}/\" }} }}\n",
        centre_dir.path().join("vigil.db").display(),
        hooks.addr,
        web.addr
    );
    std::fs::write(centre_dir.path().join("vigil.yaml"), centre).expect("write");
    std::fs::write(
        agent_dir.path().join("agent.yaml"),
        agent_config(agent_dir.path(), agent_port, centre_port, web.addr),
    )
    .expect("write");
    let centre = start_centre(centre_dir.path()).await;
    let base = format!("http://127.0.0.1:{centre_port}");
    let mut agent = start_agent(agent_dir.path());
    // The centre sees the portal from Xã Sìn Hồ.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = request("GET", &format!("{base}/api/v1/status"), None).await;
        let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
        let v = &doc["vantages"][0];
        if v["state"] == "connected" && v["targets"].as_array().is_some_and(|t| t.len() == 4) {
            assert!(v["targets"].as_array().expect("targets").iter().all(|t| t["state"] == "up"), "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "the vantage's states reach the centre: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    agent.kill().expect("SIGKILL");
    agent.wait().expect("reaped");
    let about =
        |h: &Hook, event: &str| h.body["incident"]["target"] == "vantages/xa-sin-ho" && h.body["event"] == event;
    hooks.wait_until(WAIT_LOST, "vantage lost", |h| h.iter().any(|x| about(x, "firing"))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hooks.hooks().iter().filter(|x| about(x, "firing")).count(), 1, "one alert for the lost vantage");
    let metrics = get(&format!("{base}/metrics")).await;
    assert_eq!(sample(&metrics, "vigil_vantage_up", &[r#"vantage="xa-sin-ho""#]), Some(0.0));
    let mut agent = start_agent(agent_dir.path());
    hooks.wait_until(WAIT_LOST, "its resolution", |h| h.iter().any(|x| about(x, "resolved"))).await;
    metrics_until(&base, "the vantage up again", |m| {
        sample(m, "vigil_vantage_up", &[r#"vantage="xa-sin-ho""#]) == Some(1.0)
    })
    .await;
    agent.kill().expect("SIGKILL");
    agent.wait().expect("reaped");
    centre.shutdown().await;
}

const WAIT_LOST: Duration = Duration::from_secs(20);

/// Issue #19, transport: the centre serves HTTPS itself (`server.tls`), and the agent
/// trusts only the CA in its `ca_file`; results arrive. The same port refuses to talk
/// plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reaches_its_centre_over_https_trusting_only_its_ca() {
    let web = web_server(None).await;
    let (centre_dir, agent_dir) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (centre_port, agent_port) = (free_port(), free_port());
    let pki = TestPki::new();
    let (cert, key) = pki.leaf_files(centre_dir.path(), "centre", &["127.0.0.1"]);
    std::fs::write(agent_dir.path().join("centre-ca.pem"), &pki.ca_pem).expect("write CA");
    let centre = centre_config(centre_dir.path(), centre_port, web.addr).replace(
        "admin_token: ",
        &format!("tls: {{ cert_file: \"{}\", key_file: \"{}\" }}, admin_token: ", cert.display(), key.display()),
    );
    std::fs::write(centre_dir.path().join("vigil.yaml"), centre).expect("write");
    let agent = agent_config(agent_dir.path(), agent_port, centre_port, web.addr).replace(
        &format!("centre: \"http://127.0.0.1:{centre_port}\""),
        &format!("centre: \"https://127.0.0.1:{centre_port}\", ca_file: centre-ca.pem"),
    );
    std::fs::write(agent_dir.path().join("agent.yaml"), agent).expect("write");
    let centre = start_centre(centre_dir.path()).await;
    let mut agent = start_agent(agent_dir.path());
    let reader = vigil::store::Reader::new(centre_dir.path().join("vigil.db"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while reader.received("xa-sin-ho").map_or(0, |r| r.len()) < 8 {
        assert!(Instant::now() < deadline, "results arrive over HTTPS");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", centre_port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: centre\r\n\r\n").expect("write");
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        got
    })
    .await
    .expect("plain request");
    assert!(!answer.starts_with(b"HTTP/1.1"), "the HTTPS port does not serve plain HTTP");
    agent.kill().expect("SIGKILL");
    agent.wait().expect("reaped");
    centre.shutdown().await;
}

/// Issue #19, clock sanity: an agent whose clock runs five minutes ahead is detected (its
/// offset is measured on every batch) and its results are stored at the centre shifted back
/// by that offset, each marked with the correction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_five_minutes_ahead_is_corrected_and_marked() {
    require_fault_injection();
    let web = web_server(None).await;
    let (centre_dir, agent_dir) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (centre_port, agent_port) = (free_port(), free_port());
    std::fs::write(centre_dir.path().join("vigil.yaml"), centre_config(centre_dir.path(), centre_port, web.addr))
        .expect("write");
    std::fs::write(
        agent_dir.path().join("agent.yaml"),
        agent_config(agent_dir.path(), agent_port, centre_port, web.addr),
    )
    .expect("write");
    let centre = start_centre(centre_dir.path()).await;
    let started = vigil::model::now_ms();
    let mut agent = start_agent_ahead(agent_dir.path(), 300_000);
    let reader = vigil::store::Reader::new(centre_dir.path().join("vigil.db"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while reader.received("xa-sin-ho").map_or(0, |r| r.len()) < 8 {
        assert!(Instant::now() < deadline, "results arrive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    agent.kill().expect("SIGKILL");
    agent.wait().expect("reaped");
    let now = vigil::model::now_ms();
    for r in reader.received("xa-sin-ho").expect("received") {
        assert!((started - 2_000..=now + 2_000).contains(&r.at_ms), "{r:?} is back on the centre's clock");
        let corrected = r.data["clock_corrected_ms"].as_i64().expect("marked");
        assert!((295_000..=305_000).contains(&corrected), "{r:?}");
    }
    let (_, body) = request("GET", &format!("http://127.0.0.1:{centre_port}/api/v1/vantages"), None).await;
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    let offset = doc["vantages"][0]["clock_offset_ms"].as_i64().expect("offset");
    assert!((295_000..=305_000).contains(&offset), "the offset is reported: {offset}");
    centre.shutdown().await;
}

/// Issue #19, assignment: the agent runs the checks its centre assigns it (`vantages:` on
/// the centre's checks), picks up a change within its `refresh`, and keeps running the saved
/// assignment when it starts while the centre is unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_runs_what_its_centre_assigns_and_keeps_it_offline() {
    let web = web_server(None).await;
    let (centre_dir, agent_dir) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (centre_port, agent_port) = (free_port(), free_port());
    let centre_text = |extra: &str| {
        format!(
            "instance: {{ name: centre }}\n\
             server: {{ listen: \"127.0.0.1:{centre_port}\", admin_token: \"{TOKEN}\" }}\n\
             storage: {{ path: \"{}\" }}\n\
             vantages:\n  - {{ name: xa-sin-ho, token: \"{VANTAGE_TOKEN}\" }}\n\
             systems:\n  - id: procedures\n    checks:\n      - {{ id: portal, interval: 1s, timeout: 800ms, http: {{ url: \"http://{}/switch\" }}, vantages: [xa-sin-ho] }}\n{extra}",
            centre_dir.path().join("vigil.db").display(),
            web.addr
        )
    };
    std::fs::write(centre_dir.path().join("vigil.yaml"), centre_text("")).expect("write");
    let agent = format!(
        "instance: {{ name: xa-sin-ho }}\n\
         server: {{ listen: \"127.0.0.1:{agent_port}\" }}\n\
         storage: {{ path: \"{}\" }}\n\
         agent: {{ vantage: xa-sin-ho, centre: \"http://127.0.0.1:{centre_port}\", token: \"{VANTAGE_TOKEN}\", refresh: 1s }}\n",
        agent_dir.path().join("agent.db").display()
    );
    std::fs::write(agent_dir.path().join("agent.yaml"), agent).expect("write");
    let centre = start_centre(centre_dir.path()).await;
    let base = format!("http://127.0.0.1:{centre_port}");
    assert_eq!(request("GET", &format!("{base}/api/v1/assignment"), None).await.0, 401);
    let mut agent = start_agent(agent_dir.path());
    let reader = vigil::store::Reader::new(centre_dir.path().join("vigil.db"));
    let from_agent =
        |target: &str| reader.received("xa-sin-ho").unwrap_or_default().iter().filter(|r| r.target == target).count();
    let wait = |what: &'static str, target: &'static str| {
        let from_agent = &from_agent;
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while from_agent(target) < 2 {
                assert!(Instant::now() < deadline, "{what}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    wait("the assigned check runs at the vantage point", "procedures/portal").await;
    // A second check, for every vantage point: picked up without touching the agent.
    let extra = format!(
        "  - id: documents\n    checks:\n      - {{ id: web, interval: 1s, timeout: 800ms, http: {{ url: \"http://{}/switch\" }}, vantages: all }}\n",
        web.addr
    );
    std::fs::write(centre_dir.path().join("vigil.yaml"), centre_text(&extra)).expect("write");
    centre.reload().await.expect("centre reload");
    wait("a newly assigned check runs too", "documents/web").await;
    assert!(agent_dir.path().join("assignment.yaml").is_file(), "the assignment is saved");
    // Offline: the centre is gone, the agent restarts and still runs both checks.
    centre.shutdown().await;
    agent.kill().expect("SIGKILL");
    agent.wait().expect("reaped");
    let agent_db = agent_dir.path().join("agent.db");
    let before = queued(&agent_db);
    let mut agent = start_agent(agent_dir.path());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let conn = rusqlite::Connection::open(&agent_db).expect("agent store");
    let targets: Vec<String> = conn
        .prepare("SELECT DISTINCT target FROM forward_queue ORDER BY target")
        .expect("query")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    assert!(queued(&agent_db) > before, "it keeps measuring");
    assert_eq!(targets, ["documents/web", "procedures/portal"], "both saved checks run offline");
    agent.kill().expect("SIGKILL");
    agent.wait().expect("reaped");
}

/// Issue #19, local fallback alerting: while its centre answers, an agent's own receivers
/// stay silent (the centre alerts for the vantage point); once the centre has been gone for
/// `alert_after`, the agent pages through its own channel (an SMS gateway, say), and after
/// it is back the centre does not page that outage again (it arrives late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_alerts_itself_only_when_its_centre_is_gone() {
    let web = web_server(None).await;
    let (centre_hooks, sms) = (HookSink::start().await, HookSink::start().await);
    let (centre_dir, agent_dir) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (centre_port, agent_port) = (free_port(), free_port());
    let portal = format!(
        "systems:\n  - id: procedures\n    checks:\n      - {{ id: portal, interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"]VANTAGES }}\n",
        web.addr
    );
    let centre = format!(
        "instance: {{ name: centre }}\n\
         server: {{ listen: \"127.0.0.1:{centre_port}\", admin_token: \"{TOKEN}\" }}\n\
         storage: {{ path: \"{}\" }}\n\
         vantages:\n  - {{ name: xa-sin-ho, token: \"{VANTAGE_TOKEN}\", grace: 2s }}\n\
         receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/centre\" }} }} ] }}\nroutes:\n  - {{ receivers: [team] }}\n{}",
        centre_dir.path().join("vigil.db").display(),
        centre_hooks.addr,
        portal.replace("VANTAGES", ", vantages: [xa-sin-ho]")
    );
    std::fs::write(centre_dir.path().join("vigil.yaml"), centre).expect("write");
    let agent = format!(
        "instance: {{ name: xa-sin-ho }}\n\
         server: {{ listen: \"127.0.0.1:{agent_port}\" }}\n\
         storage: {{ path: \"{}\" }}\n\
         agent: {{ vantage: xa-sin-ho, centre: \"http://127.0.0.1:{centre_port}\", token: \"{VANTAGE_TOKEN}\", alert_after: 2s, assignment_file: none.yaml }}\n\
         receivers:\n  - {{ id: sms, channels: [ {{ webhook: {{ url: \"http://{}/sms\" }} }} ] }}\nroutes:\n  - {{ receivers: [sms] }}\n{}",
        agent_dir.path().join("agent.db").display(),
        sms.addr,
        portal.replace("VANTAGES", "")
    );
    std::fs::write(agent_dir.path().join("agent.yaml"), agent).expect("write");
    let centre = start_centre(centre_dir.path()).await;
    let mut agent = start_agent(agent_dir.path());
    let reader = vigil::store::Reader::new(centre_dir.path().join("vigil.db"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while reader.received("xa-sin-ho").map_or(0, |r| r.len()) < 3 {
        assert!(Instant::now() < deadline, "the agent reaches the centre");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let view = |h: &Hook, event: &str| {
        h.body["incident"]["target"] == "procedures/portal@xa-sin-ho" && h.body["event"] == event
    };
    let local = |h: &Hook, event: &str| h.body["incident"]["target"] == "procedures/portal" && h.body["event"] == event;

    // The centre answers: it pages (the vantage's view among its alerts); the agent does not.
    web.switch.store(503, std::sync::atomic::Ordering::SeqCst);
    centre_hooks.wait_until(WAIT_LOST, "the centre pages the view", |h| h.iter().any(|x| view(x, "firing"))).await;
    web.switch.store(200, std::sync::atomic::Ordering::SeqCst);
    centre_hooks.wait_until(WAIT_LOST, "and resolves it", |h| h.iter().any(|x| view(x, "resolved"))).await;
    assert!(sms.hooks().is_empty(), "the agent stays silent while its centre answers");

    // The centre is gone for longer than alert_after: the agent pages by itself.
    centre.shutdown().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    web.switch.store(503, std::sync::atomic::Ordering::SeqCst);
    sms.wait_until(WAIT_LOST, "the agent's own page", |h| h.iter().any(|x| local(x, "firing"))).await;
    web.switch.store(200, std::sync::atomic::Ordering::SeqCst);
    sms.wait_until(WAIT_LOST, "and its resolution", |h| h.iter().any(|x| local(x, "resolved"))).await;

    // The centre returns: the back-filled outage is not paged again.
    let centre = start_centre(centre_dir.path()).await;
    let agent_db = agent_dir.path().join("agent.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    while queued(&agent_db) > 3 {
        assert!(Instant::now() < deadline, "the back-fill drains");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    centre.settle().await;
    assert_eq!(centre_hooks.hooks().iter().filter(|x| view(x, "firing")).count(), 1, "no second page for the outage");
    // And the agent is quiet again: a new outage is the centre's to page.
    web.switch.store(503, std::sync::atomic::Ordering::SeqCst);
    centre_hooks
        .wait_until(WAIT_LOST, "the centre pages the new outage", |h| {
            h.iter().filter(|x| view(x, "firing")).count() == 2
        })
        .await;
    assert_eq!(sms.hooks().iter().filter(|x| local(x, "firing")).count(), 1, "the agent did not page it");
    agent.kill().expect("SIGKILL");
    agent.wait().expect("reaped");
    centre.shutdown().await;
}
