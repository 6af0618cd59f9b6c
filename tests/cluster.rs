//! Issue #20, item 2 (in part): nodes of one cluster share the targets through a real
//! PostgreSQL (leases on the database's clock, rendezvous hashing over the live nodes);
//! a node killed with SIGKILL loses its targets to the others within `failover_delay` plus
//! one interval.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;

const TARGETS: usize = 12;
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn node_config(
    dir: &std::path::Path,
    node: &str,
    port: u16,
    dsn: &str,
    web: std::net::SocketAddr,
    hooks: std::net::SocketAddr,
) -> String {
    let targets: String =
        (0..TARGETS).map(|i| format!("          - {{ name: t{i}, url: \"http://{web}/switch\" }}\n")).collect();
    format!(
        "instance: {{ name: {node} }}\n\
         server: {{ listen: \"127.0.0.1:{port}\" }}\n\
         storage: {{ path: \"{}\" }}\n\
         defaults: {{ interval: 1s, timeout: 800ms }}\n\
         cluster: {{ name: lai-chau, node: {node}, dsn: \"{dsn}\", failover_delay: 3s }}\n\
         receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{hooks}/hook\" }} }} ] }}\nroutes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: web\n    checks:\n      - id: pages\n        http: {{}}\n        targets:\n{targets}",
        dir.join("vigil.db").display()
    )
}

/// The targets each node stored a result of in [from, to).
fn probed_by(dirs: &[tempfile::TempDir], from: i64, to: i64) -> Vec<BTreeSet<String>> {
    dirs.iter()
        .map(|d| {
            let conn = rusqlite::Connection::open_with_flags(
                d.path().join("vigil.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .expect("node store");
            let mut stmt =
                conn.prepare("SELECT DISTINCT target FROM results WHERE at_ms >= ?1 AND at_ms < ?2").expect("query");
            stmt.query_map([from, to], |r| r.get::<_, String>(0)).expect("rows").map(|r| r.expect("row")).collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_targets_and_take_over_a_killed_one() {
    let pg = Postgres::start();
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let ports: Vec<u16> = NODES.iter().map(|_| free_port()).collect();
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for (node, port) in NODES.iter().zip(&ports) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("vigil.yaml");
        std::fs::write(&file, node_config(dir.path(), node, *port, &pg.dsn, web.addr, hooks.addr)).expect("write");
        nodes.push(start_node(dir.path()));
        dirs.push(dir);
    }
    wait_listening(&mut nodes, &ports).await;
    // Every node knows all three, and together they run each target once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut members = Vec::new();
        let mut assigned = 0.0;
        for port in &ports {
            members.push(wait_gauge(*port, "vigil_cluster_members").await);
            assigned += wait_gauge(*port, "vigil_cluster_assigned_targets").await;
        }
        if members.iter().all(|m| *m == 3.0) && assigned == TARGETS as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster forms: members {members:?}, assigned {assigned}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = vigil::model::now_ms();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sets = probed_by(&dirs, from, vigil::model::now_ms());
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for set in &sets {
        for t in set {
            *by.entry(t.clone()).or_default() += 1;
        }
    }
    assert_eq!(by.len(), TARGETS, "every target is probed: {sets:?}");
    assert!(by.values().all(|n| *n == 1), "by exactly one node: {sets:?}");
    let members: Vec<String> = NODES.iter().map(|n| n.to_string()).collect();
    for (node, set) in NODES.iter().zip(&sets) {
        for t in set {
            assert_eq!(vigil::config::shard::owner_among(t, &members).map(String::as_str), Some(*node), "{t}");
        }
    }
    let orphans = sets[0].clone();
    assert!(!orphans.is_empty(), "node-a runs some targets");

    // SIGKILL node-a: its lease runs out (the database's clock) and the others take over.
    nodes[0].kill().expect("SIGKILL");
    nodes[0].wait().expect("reaped");
    let killed = Instant::now();
    let killed_ms = vigil::model::now_ms();
    loop {
        let mut assigned = 0.0;
        for port in &ports[1..] {
            assigned += wait_gauge(*port, "vigil_cluster_assigned_targets").await;
        }
        if assigned == TARGETS as f64 {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(15), "the survivors take node-a's targets");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Within failover_delay (3 s) plus one interval (1 s), every orphan is probed again
    // (plus the lease's renewal period, 1 s, and a second for scheduling).
    let deadline = Instant::now() + Duration::from_secs(15);
    let taken_over = loop {
        let later: BTreeSet<String> =
            probed_by(&dirs[1..], killed_ms, vigil::model::now_ms()).into_iter().flatten().collect();
        if orphans.is_subset(&later) {
            break killed.elapsed();
        }
        assert!(Instant::now() < deadline, "node-a's targets run elsewhere: {orphans:?} vs {later:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("node-a's {} targets probed elsewhere {:?} after the kill", orphans.len(), taken_over);
    assert!(taken_over < Duration::from_secs(6), "within failover_delay + one interval (+ slack): {taken_over:?}");
    for port in &ports[1..] {
        assert_eq!(wait_gauge(*port, "vigil_cluster_members").await, 2.0);
        assert_eq!(wait_gauge(*port, "vigil_cluster_failovers_total").await, 1.0);
    }

    // Every target fails; then node-a returns and wins its targets back. The survivors hand
    // their incidents of those over ("moved" — never "removed from the configuration"), and
    // node-a pages them again, since they still fail.
    web.switch.store(503, std::sync::atomic::Ordering::SeqCst);
    let fired = |h: &[Hook], t: &str| {
        h.iter()
            .filter(|x| x.body["incident"]["target"] == format!("web/pages/{t}") && x.body["event"] == "firing")
            .count()
    };
    hooks
        .wait_until(Duration::from_secs(30), "every target paged", |h| {
            (0..TARGETS).all(|i| fired(h, &format!("t{i}")) == 1)
        })
        .await;
    nodes[0] = start_node(dirs[0].path());
    let moved = |h: &[Hook], t: &str| {
        h.iter()
            .filter(|x| {
                x.body["incident"]["target"] == format!("web/pages/{t}")
                    && x.body["event"] == "resolved"
                    && x.body["incident"]["closed_as"] == "moved"
            })
            .count()
    };
    let names: Vec<String> = orphans.iter().map(|t| t.rsplit('/').next().unwrap_or_default().to_string()).collect();
    let got = hooks
        .wait_until(Duration::from_secs(30), "the moved targets handed over and paged by node-a", |h| {
            names.iter().all(|t| moved(h, t) == 1 && fired(h, t) == 2)
        })
        .await;
    let handed = got.iter().find(|x| x.body["incident"]["closed_as"] == "moved").expect("a hand-over");
    assert!(handed.body["summary"].as_str().is_some_and(|s| s.contains("máy giám sát khác")), "{}", handed.body);
    assert!(got.iter().all(|x| x.body["incident"]["closed_as"] != "removed"), "nothing is called removed");
    for i in (0..TARGETS).map(|i| format!("t{i}")).filter(|t| !names.contains(t)) {
        assert_eq!((fired(&got, &i), moved(&got, &i)), (1, 0), "{i} stayed where it was: paged once");
    }
}

/// A TCP relay to PostgreSQL that the test can cut: new connections refused, open ones
/// dropped (a node's link to the database fails while the others keep theirs).
struct Relay {
    port: u16,
    cut: tokio_util::sync::CancellationToken,
}

async fn relay_to(port: u16) -> Relay {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let relay =
        Relay { port: listener.local_addr().expect("addr").port(), cut: tokio_util::sync::CancellationToken::new() };
    let cut = relay.cut.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = cut.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((mut client, _)) = accepted else { return };
            let cut = cut.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return };
                tokio::select! {
                    _ = cut.cancelled() => {}
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                }
            });
        }
    });
    relay
}

/// Issue #20, item 4: a node cut from the database holds its new incidents once its lease
/// has run out (the node that took its targets pages them), and pages them itself only
/// after twice the lease (duplicates over silence).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_from_the_database_holds_its_pages_then_speaks_alone() {
    const LEASE: u64 = 9;
    let pg = Postgres::start();
    let relay = relay_to(pg.port).await;
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for (i, (node, port)) in ["node-a", "node-b"].iter().zip(&ports).enumerate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dsn = if i == 0 {
            pg.dsn.replace(&format!("port={}", pg.port), &format!("port={}", relay.port))
        } else {
            pg.dsn.clone()
        };
        let text = node_config(dir.path(), node, *port, &dsn, web.addr, hooks.addr)
            .replace("failover_delay: 3s", &format!("failover_delay: {LEASE}s"))
            .replace(
                "defaults: { interval: 1s, timeout: 800ms }",
                "defaults: { interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1 }",
            );
        std::fs::write(dir.path().join("vigil.yaml"), text).expect("write");
        nodes.push(start_node(dir.path()));
        dirs.push(dir);
    }
    wait_listening(&mut nodes, &ports).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut assigned = 0.0;
        let mut members = Vec::new();
        for port in &ports {
            members.push(wait_gauge(*port, "vigil_cluster_members").await);
            assigned += wait_gauge(*port, "vigil_cluster_assigned_targets").await;
        }
        if members == [2.0, 2.0] && assigned == TARGETS as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster forms: {members:?} {assigned}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pair: Vec<String> = vec!["node-a".into(), "node-b".into()];
    let a_targets: Vec<String> = (0..TARGETS)
        .map(|i| format!("web/pages/t{i}"))
        .filter(|t| vigil::config::shard::owner_among(t, &pair).map(String::as_str) == Some("node-a"))
        .collect();
    assert!(!a_targets.is_empty(), "node-a runs some targets");

    relay.cut.cancel();
    let cut = Instant::now();
    // node-b takes everything once node-a's lease runs out.
    while wait_gauge(ports[1], "vigil_cluster_assigned_targets").await < TARGETS as f64 {
        assert!(cut.elapsed() < Duration::from_secs(LEASE + 8), "node-b takes over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let takeover = cut.elapsed();
    tokio::time::sleep(Duration::from_secs(LEASE).saturating_sub(takeover) + Duration::from_millis(500)).await;
    web.switch.store(503, std::sync::atomic::Ordering::SeqCst);
    let from = |h: &Hook, node: &str, t: &str| {
        h.body["instance"] == node && h.body["event"] == "firing" && h.body["incident"]["target"] == t
    };
    let mut first_from_a = None;
    let deadline = Instant::now() + Duration::from_secs(3 * LEASE);
    loop {
        let seen = hooks.hooks();
        if first_from_a.is_none() && seen.iter().any(|h| h.body["instance"] == "node-a") {
            first_from_a = Some(cut.elapsed());
        }
        let b_paged = a_targets.iter().all(|t| seen.iter().any(|h| from(h, "node-b", t)));
        let a_paged = a_targets.iter().all(|t| seen.iter().any(|h| from(h, "node-a", t)));
        if b_paged && a_paged {
            break;
        }
        assert!(Instant::now() < deadline, "both pages arrive: b {b_paged}, a {a_paged}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_from_a = first_from_a.expect("node-a paged");
    eprintln!("node-b took over {takeover:?} after the cut; node-a paged alone {first_from_a:?} after it");
    // Its last renewal came at most a third of the lease before the cut.
    let earliest = Duration::from_secs(2 * LEASE) - Duration::from_secs(LEASE / 3) - Duration::from_millis(500);
    assert!(first_from_a >= earliest, "node-a held its pages for twice its lease: {first_from_a:?}");
    let held = vigil::store::query::incidents(dirs[0].path().join("vigil.db"), true, None, 50).expect("incidents");
    for t in &a_targets {
        let i = held.iter().find(|i| &i.target == t).expect("node-a's incident");
        let decisions: Vec<_> = i.why.iter().map(|w| w.decision).collect();
        use vigil::model::incident::Decision;
        assert!(
            decisions.contains(&Decision::DatabaseLost) && decisions.contains(&Decision::AnnouncedWithoutDatabase),
            "{t}: {decisions:?}"
        );
    }
    drop(nodes);
}
