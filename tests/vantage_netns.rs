//! Vantage points through a cut link (issue #19), with hosts that are network namespaces
//! the test creates (198.18.0.0/15 on their veths, nothing else): a centre and a target
//! service on the host, three commune agents each in its own namespace. One commune's link
//! to the centre is cut with nftables (test-scaled: 20 s) while the target also goes down
//! for 8 s. When the link returns, the centre holds every result and state change that
//! agent committed — the outage among them, at its original times — exactly once; the cut
//! made one "vantage lost" alert and one resolution; the other communes were never lost.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

const COMMUNES: [&str; 3] = ["xa-sin-ho", "xa-nam-tam", "xa-pa-tan"];

/// The host side of a namespace's veth (`198.18.N.1`).
fn host_side(ns: &Netns) -> String {
    let inside = &ns.hosts[0];
    format!("{}.1", &inside[..inside.rfind('.').expect("dotted")])
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
    // Each namespace accepts everything at first (the rule matches nothing: port 1).
    let nets: Vec<Netns> = (1..=3).map(|tag| Netns::new(tag, &["tcp dport 1 drop"], false)).collect();
    let centre_ip = host_side(&nets[0]);
    // The other communes reach the centre's address through their own veth.
    for ns in &nets[1..] {
        run_ok("ip", "iproute2", &["-n", &ns.name, "route", "add", &format!("{centre_ip}/32"), "via", &host_side(ns)]);
    }
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
         systems:\n  - id: core\n    checks:\n      - {{ id: portal, interval: 1s, timeout: 800ms, http: {{ url: \"http://{}/\" }} }}\n",
        cert.display(),
        key.display(),
        centre_dir.path().join("vigil.db").display(),
        hooks.addr,
        target.addr
    );
    std::fs::write(centre_dir.path().join("vigil.yaml"), centre).expect("write");
    let app = vigil::app::App::start(
        vigil::app::ConfigSource::File(centre_dir.path().join("vigil.yaml")),
        vigil::app::Overrides::default(),
    )
    .await
    .expect("centre starts");

    let mut agents: Vec<(tempfile::TempDir, Child)> = Vec::new();
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
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_vigil"), "agent", "-c"])
            .arg(dir.path().join("agent.yaml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start an agent in its namespace");
        agents.push((dir, child));
    }
    let reader = vigil::store::Reader::new(&centre_dir.path().join("vigil.db"));
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
    tokio::time::sleep(Duration::from_secs(8)).await;
    target.switch.store(200, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(6)).await;
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
    let hooks = hooks.hooks();
    assert_eq!(hooks.iter().filter(|h| about(h, "firing")).count(), 1, "one vantage-lost alert");
    assert_eq!(hooks.iter().filter(|h| about(h, "resolved")).count(), 1, "one resolution");
    let others_lost = hooks
        .iter()
        .filter(|h| h.body["incident"]["system"] == "vantages" && h.body["incident"]["target"] != "vantages/xa-sin-ho");
    assert_eq!(others_lost.count(), 0, "the other communes were never lost");
    app.shutdown().await;
}
