//! Crash safety: the daemon (`vigil run`, a real process) is killed with SIGKILL at
//! pseudo-random points of a scripted incident sequence, 20 times. After each restart it
//! resumes: every stored notification is delivered, every incident is announced once — never
//! a second "down" for the same incident — no incident is opened twice for one outage, and
//! nothing was delivered that the store does not hold (commit before send).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

const KILLS: usize = 20;

fn start(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "-c", &dir.join("vigil.yaml").display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vigil run")
}

async fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(base.trim_start_matches("http://")).is_ok()
            && request("GET", &format!("{base}/-/ready"), None).await.0 == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "vigil did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_nothing_and_never_repeats_a_down() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let targets: String =
        (1..=4).map(|i| format!("          - {{ name: t{i}, url: \"http://{}/switch\" }}\n", web.addr)).collect();
    let config = format!(
        "instance: {{ name: crash }}\n\
         server: {{ listen: \"127.0.0.1:{port}\", admin_token: \"{TOKEN}\" }}\n\
         storage: {{ path: \"{}\" }}\n\
         defaults: {{ interval: 1s, timeout: 500ms, failure_threshold: 1, success_threshold: 1 }}\n\
         alerting: {{ flapping: {{ changes: 1000, window: 1m }} }}\n\
         receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/hook\" }} }} ] }}\n\
         routes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: web\n    checks:\n      - id: many\n        http: {{}}\n        conditions: [\"[STATUS] == 200\"]\n        targets:\n{targets}",
        dir.path().join("vigil.db").display(),
        hooks.addr
    );
    std::fs::write(dir.path().join("vigil.yaml"), config).expect("config");
    let base = format!("http://127.0.0.1:{port}");

    // A fixed pseudo-random sequence of kill delays, so a failure can be replayed.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for cycle in 0..KILLS {
        web.switch.store(if cycle % 2 == 0 { 503 } else { 200 }, Ordering::SeqCst);
        let mut child = start(dir.path());
        wait_ready(&base).await;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(200 + seed % 1800)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    // Let the last run settle: everything up, every notification delivered.
    web.switch.store(200, Ordering::SeqCst);
    let mut child = start(dir.path());
    wait_ready(&base).await;
    let db = dir.path().join("vigil.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = vigil::store::query::incidents(&db, true, None, 100).expect("incidents");
        let pending = vigil::store::query::deliveries(&db)
            .expect("outbox")
            .into_iter()
            .filter(|(_, s, _)| s == "pending")
            .count();
        if open.is_empty() && pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {} open incidents, {pending} pending notifications",
            open.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("SIGTERM");
    assert!(status.success());
    assert!(child.wait().expect("exit").success(), "graceful stop");

    let incidents = vigil::store::query::incidents(&db, false, None, 1000).expect("incidents");
    assert!(incidents.len() >= 4, "the sequence opened incidents: {}", incidents.len());
    // Every stored notification was delivered, and the sink saw every key.
    let outbox = vigil::store::query::deliveries(&db).expect("outbox");
    let received: BTreeMap<String, usize> = hooks.hooks().iter().fold(BTreeMap::new(), |mut m, h| {
        *m.entry(h.body["id"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        m
    });
    for (key, state, _) in &outbox {
        assert_eq!(state, "delivered", "{key} not delivered");
        assert!(received.contains_key(key), "{key} never reached the receiver");
    }
    // Issue #14, item 2: nothing reached the receiver that the store does not hold — no
    // notification left before its outbox row (and its incident) was committed.
    let stored_ids: BTreeSet<i64> = incidents.iter().map(|i| i.id).collect();
    let stored_keys: BTreeSet<&String> = outbox.iter().map(|(k, _, _)| k).collect();
    for key in received.keys() {
        assert!(stored_keys.contains(key), "{key} was delivered, but its outbox row is not stored");
        let id = key.strip_prefix("incident-").and_then(|r| r.split('-').next()).and_then(|n| n.parse::<i64>().ok());
        if let Some(id) = id {
            assert!(stored_ids.contains(&id), "{key} was delivered for incident {id}, which the store does not hold");
        }
    }
    // One firing and one resolution per incident — each a single notification (a repeat
    // after a kill carries the same key, which the receiver drops).
    for incident in &incidents {
        let keys: BTreeSet<&String> =
            received.keys().filter(|k| k.starts_with(&format!("incident-{}-", incident.id))).collect();
        let firing: Vec<&&String> = keys.iter().filter(|k| k.contains("-firing-")).collect();
        let resolved: Vec<&&String> = keys.iter().filter(|k| k.contains("-resolved-")).collect();
        assert_eq!((firing.len(), resolved.len()), (1, 1), "incident {}: {keys:?}", incident.id);
    }
    // No outage was announced twice: a target's incidents never overlap.
    let mut by_target: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for i in &incidents {
        by_target.entry(i.target.as_str()).or_default().push((i.detected_ms, i.resolved_ms.unwrap_or(i64::MAX)));
    }
    for (target, mut spans) in by_target {
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{target} has overlapping incidents: {spans:?}");
    }
    let repeats: usize = received.values().map(|n| n - 1).sum();
    eprintln!(
        "{} incidents, {} notifications, {repeats} repeated deliveries after kills",
        incidents.len(),
        received.len()
    );
}
