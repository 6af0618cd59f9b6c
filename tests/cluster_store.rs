//! Issue #20, items 1–3 together: three nodes sharing one PostgreSQL store (a real
//! server). Each target's state and incident are one for the cluster; a node killed with
//! SIGKILL in the middle of an outage loses nothing — the nodes taking its targets over go
//! on with its incidents (same ids), and the notifications it left undelivered are claimed
//! by one of them once its lease has run out — and a real SMTP server receives each
//! notification exactly once across 36 incidents opened around the kill. And the database
//! restarted during twelve incidents: the nodes alert from memory meanwhile (after the grace)
//! and spool to their disks — one of them is killed and started again — then write what
//! they kept — every incident and notification once. And the HA pair
//! (`replicas: 2`): both nodes probe every target, each incident is mailed, through twenty
//! SIGKILLs of either node at random moments. And a node cut from the database (a relay the
//! test controls) while the others reach it: they take its targets over, and when it
//! returns it takes them back from the store — one incident, one history per target.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use vigil::store::{Location, Reader};

const TARGETS: usize = 12;
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// A node's configuration; `tuning` is (the cluster section's extra keys, the store's grace).
fn node_config_with(
    dir: &std::path::Path,
    node: &str,
    port: u16,
    dsn: &str,
    web: std::net::SocketAddr,
    smtp: u16,
    tuning: (&str, &str),
) -> String {
    let (cluster_extra, grace) = tuning;
    let targets: String =
        (0..TARGETS).map(|i| format!("          - {{ name: t{i}, url: \"http://{web}/switch\" }}\n")).collect();
    format!(
        "instance: {{ name: {node} }}\n\
         server: {{ listen: \"127.0.0.1:{port}\", admin_token: \"{TOKEN}\" }}\n\
         storage: {{ path: \"{}\", postgres: {{ dsn: \"{dsn}\", grace: {grace} }} }}\n\
         defaults: {{ interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1 }}\n\
         cluster: {{ name: lai-chau, node: {node}, dsn: \"{dsn}\", {cluster_extra} }}\n\
         alerting: {{ flapping: {{ changes: 1000, window: 1m }} }}\n\
         receivers:\n  - id: team\n    channels:\n      - email: {{ to: [\"ung-cuu@laichau.test\"], from: \"vigil@laichau.test\", smtp: {{ host: 127.0.0.1, port: {smtp}, security: none }} }}\n\
         routes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: web\n    checks:\n      - id: pages\n        http: {{}}\n        conditions: [\"[STATUS] == 200\"]\n        targets:\n{targets}",
        dir.join("vigil.db").display()
    )
}

/// The incidents of the shared store, as any node's pages and reports read them.
fn incidents(dsn: &str) -> Vec<vigil::model::incident::Incident> {
    let reader = Reader::new(Location::Postgres(vigil::config::Secret::new(dsn)));
    let mut all = reader.incidents(false, None, 10_000).expect("the shared store reads");
    all.reverse();
    all
}

/// Mails received, by Message-ID.
fn mails_by_id(smtp: &SmtpSink) -> BTreeMap<String, usize> {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for mail in smtp.mails() {
        *by.entry(mail["message_id"].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    by
}

/// Waits until every target has an incident opened after `since` and, with `resolved`,
/// closed; returns those incidents.
async fn wait_round(dsn: &str, since: i64, resolved: bool) -> Vec<vigil::model::incident::Incident> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let round: Vec<_> = incidents(dsn).into_iter().filter(|i| i.detected_ms >= since).collect();
        let targets: BTreeSet<&str> =
            round.iter().filter(|i| !resolved || i.resolved_ms.is_some()).map(|i| i.target.as_str()).collect();
        if targets.len() == TARGETS && (!resolved || round.iter().all(|i| i.resolved_ms.is_some())) {
            return round;
        }
        assert!(Instant::now() < deadline, "every target's incident (resolved: {resolved}): {round:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The peers of a test: PostgreSQL, the target web server, and the SMTP server (with the
/// folder it records into).
async fn servers() -> (Postgres, WebServer, tempfile::TempDir, SmtpSink) {
    let pg = Postgres::start();
    let web = web_server(None).await;
    let sink_dir = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(sink_dir.path());
    (pg, web, sink_dir, smtp)
}

/// Each target's state in a node's `/api/v1/status`, by id.
async fn shown_states(port: u16) -> BTreeMap<String, String> {
    let doc: serde_json::Value =
        serde_json::from_str(&get(&format!("http://127.0.0.1:{port}/api/v1/status")).await).unwrap_or_default();
    let mut by = BTreeMap::new();
    for check in
        doc["systems"].as_array().into_iter().flatten().flat_map(|s| s["checks"].as_array().into_iter().flatten())
    {
        for t in check["targets"].as_array().into_iter().flatten() {
            by.insert(
                t["id"].as_str().unwrap_or_default().to_string(),
                t["state"].as_str().unwrap_or_default().to_string(),
            );
        }
    }
    by
}

/// How many outbox rows of the shared store match `filter`.
fn outbox_count(dsn: &str, filter: &str) -> i64 {
    let mut db = vigil::store::db::Database::postgres(dsn).expect("connect");
    let rows = db.query(&format!("SELECT count(*) FROM outbox WHERE {filter}"), &[]).expect("the outbox");
    rows[0].int(0).expect("a count")
}

/// Waits until `done` holds (checked every 200 ms, for at most 30 s).
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts the nodes and waits until they share the targets.
async fn start_cluster(
    names: &[&str],
    ports: &[u16],
    pg: &Postgres,
    web: &WebServer,
    smtp: &SmtpSink,
) -> (Vec<Reaped>, Vec<tempfile::TempDir>) {
    let configs: Vec<_> = names.iter().map(|_| (pg.dsn.clone(), "2s")).collect();
    start_nodes(names, ports, &configs, web, smtp).await
}

/// Starts the nodes, each with its (database address, grace), and waits until they share
/// the targets.
async fn start_nodes(
    names: &[&str],
    ports: &[u16],
    configs: &[(String, &str)],
    web: &WebServer,
    smtp: &SmtpSink,
) -> (Vec<Reaped>, Vec<tempfile::TempDir>) {
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for ((node, port), (dsn, grace)) in names.iter().zip(ports).zip(configs) {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = node_config_with(dir.path(), node, *port, dsn, web.addr, smtp.port, ("failover_delay: 3s", grace));
        std::fs::write(dir.path().join("vigil.yaml"), text).expect("write");
        nodes.push(start_node(dir.path()));
        dirs.push(dir);
    }
    wait_listening(&mut nodes, ports).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut assigned = 0.0;
        for port in ports {
            assigned += wait_gauge(*port, "vigil_cluster_assigned_targets").await;
        }
        if assigned == TARGETS as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster forms: {assigned} targets assigned");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    (nodes, dirs)
}

/// Every incident's alert and resolution at the SMTP server, each exactly once; returns
/// the raw count of mails.
async fn each_mailed_once(all: &[&vigil::model::incident::Incident], smtp: &SmtpSink) -> usize {
    let got = every_key_mailed(all, smtp).await;
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "no notification twice: {twice:?}");
    let raw: usize = got.values().sum();
    assert_eq!(raw, 2 * all.len());
    raw
}

/// Waits until every incident's alert and resolution reached the SMTP server; returns the
/// mails received of each, by Message-ID.
async fn every_key_mailed(all: &[&vigil::model::incident::Incident], smtp: &SmtpSink) -> BTreeMap<String, usize> {
    let expected: BTreeSet<String> = all
        .iter()
        .flat_map(|i| {
            ["firing", "resolved"].map(|e| vigil::delivery::notify::message_id(&format!("incident-{}-{e}-team", i.id)))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = mails_by_id(smtp);
        if expected.iter().all(|id| got.contains_key(id)) {
            break;
        }
        let missing: Vec<_> = expected.iter().filter(|id| !got.contains_key(*id)).collect();
        assert!(Instant::now() < deadline, "every notification is delivered; missing {missing:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    mails_by_id(smtp).into_iter().filter(|(id, _)| expected.contains(id)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_store_keeps_one_incident_per_target_and_mails_each_once_through_a_kill() {
    let (pg, web, _sink_dir, mut smtp) = servers().await;
    let ports: Vec<u16> = NODES.iter().map(|_| free_port()).collect();
    let (mut nodes, dirs) = start_cluster(&NODES, &ports, &pg, &web, &smtp).await;
    let status = |code: u16| web.switch.store(code, std::sync::atomic::Ordering::SeqCst);

    // Each target is probed by exactly one node: by the results table, one result per
    // interval (1 s) over 4 s — a target two nodes probed would have twice as many.
    let from = vigil::model::now_ms();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut db = vigil::store::db::Database::postgres(&pg.dsn).expect("connect");
    let rows = db
        .query(
            "SELECT target, count(*) FROM results WHERE at_ms >= ?1 AND at_ms < ?2 GROUP BY target",
            &[from.into(), (from + 4_000).into()],
        )
        .expect("results");
    let counts: BTreeMap<String, i64> =
        rows.iter().map(|r| (r.str(0).unwrap_or_default().to_string(), r.int(1).unwrap_or_default())).collect();
    assert_eq!(counts.len(), TARGETS, "{counts:?}");
    assert!(counts.values().all(|n| (3..=5).contains(n)), "one node's results per target: {counts:?}");

    // Three rounds of every target down then up. In the second the mail server is down
    // when the targets fail, so node-a's alerts wait in the outbox when it is killed; the
    // mail server comes back once its targets and its undelivered alerts were taken over.
    let mut rounds = Vec::new();
    for round in 0..3 {
        let since = vigil::model::now_ms();
        if round == 1 {
            smtp.stop();
        }
        status(503);
        if round == 1 {
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            nodes[0].kill().expect("SIGKILL node-a");
            nodes[0].wait().expect("reaped");
        }
        wait_round(&pg.dsn, since, false).await;
        if round == 0 {
            // Every node's status shows the whole cluster: every target, down.
            for port in &ports {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let shown = shown_states(*port).await;
                    if shown.len() == TARGETS && shown.values().all(|s| s == "down") {
                        break;
                    }
                    assert!(Instant::now() < deadline, "node on {port} shows every target down: {shown:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if round == 1 {
            // node-a's lease (3 s) runs out; a live node's sweeper claims its waiting alerts.
            wait_for("node-a's waiting alerts are claimed by a live node", || {
                outbox_count(&pg.dsn, "state = 'pending' AND (data::jsonb ->> 'node') = 'node-a'") > 0
                    && outbox_count(&pg.dsn, "state = 'pending' AND claimed_by = 'node-a'") == 0
            })
            .await;
            smtp.resume();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        status(200);
        rounds.push(wait_round(&pg.dsn, since, true).await);
    }
    let all: Vec<_> = rounds.iter().flatten().collect();
    assert_eq!(all.len(), 3 * TARGETS, "one incident per target per round, none doubled: {all:#?}");
    assert!(all.iter().all(|i| i.closed_as.is_none()), "nothing handed over as moved or removed");
    let ids: BTreeSet<i64> = all.iter().map(|i| i.id).collect();
    assert_eq!(ids.len(), all.len(), "incident ids are unique across the nodes");

    let raw = each_mailed_once(&all, &smtp).await;
    eprintln!("{} incidents, {} mails received, each once (raw SMTP count)", all.len(), raw);
    // node-a's undelivered alerts were claimed by a live node, each by one.
    let mut db = vigil::store::db::Database::postgres(&pg.dsn).expect("connect");
    let rows = db.query("SELECT data, claimed_by, state FROM outbox", &[]).expect("the outbox");
    let taken: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| {
            let made: serde_json::Value = serde_json::from_str(r.str(0).ok()?).ok()?;
            let by = r.opt_text(1).ok()??;
            let key = made["key"].as_str()?.to_string();
            (made["node"] == "node-a" && by != "node-a").then_some((key, by))
        })
        .collect();
    eprintln!("node-a's notifications delivered by others: {taken:?}");
    assert!(!taken.is_empty(), "the kill left node-a's alerts undelivered, and another node claimed them");
    assert!(rows.iter().all(|r| r.str(2).is_ok_and(|s| s == "delivered")), "nothing is left pending");
    // `vigil report` from any node covers the whole cluster: every incident, every target.
    for dir in &dirs[1..] {
        let config = dir.path().join("vigil.yaml").display().to_string();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["report", "-c", &config, "--format", "json"])
            .output()
            .expect("vigil report");
        assert!(out.status.success(), "vigil report: {}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report json");
        assert_eq!(report["systems"][0]["incidents"], 3 * TARGETS, "{}", report["systems"][0]);
    }
    drop(dirs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restarted_during_twelve_incidents_loses_and_doubles_nothing() {
    let (pg, web, _sink_dir, smtp) = servers().await;
    let names = &NODES[..2];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let (mut nodes, dirs) = start_cluster(names, &ports, &pg, &web, &smtp).await;
    let status = |code: u16| web.switch.store(code, std::sync::atomic::Ordering::SeqCst);

    // The database stops; every target fails. Past the grace (2 s) the nodes alert from
    // memory: the team hears of every incident while the database is down.
    let since = vigil::model::now_ms();
    pg.stop();
    status(503);
    let deadline = Instant::now() + Duration::from_secs(30);
    while smtp.mails().len() < TARGETS {
        assert!(Instant::now() < deadline, "alerts leave while the database is down: {} mails", smtp.mails().len());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let alerted_down = smtp.mails().len();
    // Each node spools what the database does not take to its own disk: its incidents
    // and their alerts (sent from memory) are there.
    let spooled = |dir: &tempfile::TempDir| std::fs::read_to_string(dir.path().join("vigil.spool")).unwrap_or_default();
    wait_for("each node spools its incidents and deliveries", || {
        dirs.iter().all(|d| spooled(d).contains("\"Incident\"") && spooled(d).contains("\"Delivery\""))
    })
    .await;
    // node-b dies during the outage: what it kept in memory is gone, its spool is not.
    nodes[1].kill().expect("SIGKILL node-b");
    nodes[1].wait().expect("reaped");
    // The database comes back and node-b starts again: it writes its spool before it reads
    // the store; node-a writes what it kept; then the targets recover.
    pg.run();
    nodes[1] = start_node(dirs[1].path());
    wait_listening(&mut nodes[1..], &ports[1..]).await;
    wait_for("the nodes write what they kept: every alert's row, as delivered", || {
        outbox_count(&pg.dsn, "state = 'delivered'") == TARGETS as i64
    })
    .await;
    status(200);
    let round = wait_round(&pg.dsn, since, true).await;
    let all: Vec<_> = round.iter().collect();
    assert_eq!(all.len(), TARGETS, "one incident per target, none doubled by the reconnection: {all:#?}");
    let raw = each_mailed_once(&all, &smtp).await;
    eprintln!("{} incidents; {alerted_down} alerts sent while the database was down; {raw} mails in all", all.len());
    let mut db = vigil::store::db::Database::postgres(&pg.dsn).expect("connect");
    let rows = db.query("SELECT key, state FROM outbox ORDER BY key", &[]).expect("the outbox");
    assert_eq!(rows.len(), 2 * TARGETS, "every notification is in the outbox once: {rows:?}");
    assert!(rows.iter().all(|r| r.str(1).is_ok_and(|s| s == "delivered")), "all delivered: {rows:?}");
    assert!(dirs.iter().all(|d| !d.path().join("vigil.spool").exists()), "the spools are emptied once written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ha_pair_probes_everything_twice_and_mails_each_incident_through_twenty_kills() {
    let (pg, web, _sink_dir, smtp) = servers().await;
    let names = &NODES[..2];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for (node, port) in names.iter().zip(&ports) {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = node_config_with(
            dir.path(),
            node,
            *port,
            &pg.dsn,
            web.addr,
            smtp.port,
            ("failover_delay: 2s, replicas: 2", "2s"),
        );
        std::fs::write(dir.path().join("vigil.yaml"), text).expect("write");
        nodes.push(start_node(dir.path()));
        dirs.push(dir);
    }
    wait_listening(&mut nodes, &ports).await;
    // Both probe every target; each target has one owner.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (mut assigned, mut probed) = (0.0, Vec::new());
        for port in &ports {
            assigned += wait_gauge(*port, "vigil_cluster_assigned_targets").await;
            probed.push(wait_gauge(*port, "vigil_checks_configured").await);
        }
        if assigned == TARGETS as f64 && probed.iter().all(|p| *p == TARGETS as f64) {
            break;
        }
        assert!(Instant::now() < deadline, "the pair forms: {assigned} owned, {probed:?} probed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let status = |code: u16| web.switch.store(code, std::sync::atomic::Ordering::SeqCst);
    let since = vigil::model::now_ms();
    // Twenty kills of either node, at random moments of outages and recoveries.
    let mut seed = since as u64 | 1;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for kill in 0..20 {
        status(if kill % 2 == 0 { 503 } else { 200 });
        eprintln!("phase {kill} at {} ms", vigil::model::now_ms() - since);
        tokio::time::sleep(Duration::from_millis(random(2_000))).await;
        let victim = random(2) as usize;
        eprintln!("kill {} at {} ms", NODES[victim], vigil::model::now_ms() - since);
        nodes[victim].kill().expect("SIGKILL");
        nodes[victim].wait().expect("reaped");
        // The other node's lease view drops it (2 s) and takes its targets over.
        tokio::time::sleep(Duration::from_millis(2_500 + random(1_000))).await;
        nodes[victim] = start_node(dirs[victim].path());
        wait_listening(&mut nodes[victim..=victim], &ports[victim..=victim]).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    status(200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let round: Vec<_> = loop {
        let all: Vec<_> = incidents(&pg.dsn).into_iter().filter(|i| i.detected_ms >= since).collect();
        if all.iter().all(|i| i.resolved_ms.is_some()) {
            break all;
        }
        assert!(Instant::now() < deadline, "every incident resolves: {all:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // One incident per target per outage (ten outages), none doubled by a kill.
    let mut per_target: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &round {
        *per_target.entry(i.target.as_str()).or_default() += 1;
    }
    assert_eq!(per_target.len(), TARGETS, "{per_target:?}");
    let odd: Vec<(i64, &str, i64, Option<i64>)> = round
        .iter()
        .filter(|i| per_target[i.target.as_str()] != 10)
        .map(|i| (i.id, i.target.as_str(), i.detected_ms - since, i.resolved_ms.map(|r| r - since)))
        .collect();
    assert!(per_target.values().all(|n| *n == 10), "one incident per target per outage: {per_target:?} {odd:?}");
    let all: Vec<_> = round.iter().collect();
    let expected = 2 * all.len();
    let got = every_key_mailed(&all, &smtp).await;
    let raw: usize = got.values().sum();
    eprintln!("HA pair, 20 kills: {} incidents, {expected} notifications, {raw} mails (raw SMTP count)", all.len());
    assert!(raw - expected <= 20, "at most the one mail in flight at each kill comes twice: {raw}");
}

/// Each target's last writer in the shared store, with when it wrote (Unix ms).
fn written_by(dsn: &str) -> BTreeMap<String, (String, i64)> {
    let mut db = vigil::store::db::Database::postgres(dsn).expect("connect");
    let rows = db.query("SELECT target, node, updated_ms FROM target_state", &[]).expect("target states");
    rows.iter().filter_map(|r| Some((r.str(0).ok()?.to_string(), (r.opt_text(1).ok()??, r.int(2).ok()?)))).collect()
}

/// Each target's state changes since `since`, as (from, to), oldest first.
fn changes_since(dsn: &str, since: i64) -> BTreeMap<String, Vec<(String, String)>> {
    let mut db = vigil::store::db::Database::postgres(dsn).expect("connect");
    let rows = db
        .query(
            "SELECT target, from_state, to_state FROM state_changes WHERE at_ms >= ?1 ORDER BY at_ms, id",
            &[since.into()],
        )
        .expect("state changes");
    let mut by: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in &rows {
        let (Ok(t), Ok(from), Ok(to)) = (r.str(0), r.str(1), r.str(2)) else { continue };
        by.entry(t.to_string()).or_default().push((from.to_string(), to.to_string()));
    }
    by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_from_the_database_gives_its_work_up_and_doubles_nothing_when_it_returns() {
    let (pg, web, _sink_dir, smtp) = servers().await;
    // node-a reaches the database through a relay the test cuts; its grace (6 s) keeps it
    // quiet for the whole cut (3 s lease + 6 s), the others' is the usual 2 s.
    let relay = Relay::start(pg.port).await;
    let relayed = format!("host=127.0.0.1 port={} user=vigil dbname=postgres", relay.port);
    let configs = [(relayed, "6s"), (pg.dsn.clone(), "2s"), (pg.dsn.clone(), "2s")];
    let ports: Vec<u16> = NODES.iter().map(|_| free_port()).collect();
    let (_nodes, _dirs) = start_nodes(&NODES, &ports, &configs, &web, &smtp).await;
    let status = |code: u16| web.switch.store(code, std::sync::atomic::Ordering::SeqCst);
    let mut mine = BTreeSet::new();
    wait_for("every target written, some by node-a", || {
        let by = written_by(&pg.dsn);
        mine = by.iter().filter(|(_, (n, _))| n == "node-a").map(|(t, _)| t.clone()).collect();
        by.len() == TARGETS && !mine.is_empty()
    })
    .await;

    // node-a is cut, then every target fails: node-a sees its targets fail first.
    relay.cut();
    let since = vigil::model::now_ms();
    tokio::time::sleep(Duration::from_millis(300)).await;
    status(503);
    // Within its lease (3 s) plus a renewal, the others run node-a's targets and write them.
    wait_for("the others take node-a's targets over", || {
        let by = written_by(&pg.dsn);
        mine.iter().all(|t| by.get(t).is_some_and(|(n, at)| n != "node-a" && *at > since))
    })
    .await;
    let taken = vigil::model::now_ms() - since;
    assert_eq!(gauge(ports[0], "vigil_cluster_database_up").await, Some(0.0), "node-a knows it is cut");
    wait_round(&pg.dsn, since, false).await;
    eprintln!("node-a's {} targets taken over {taken} ms after the cut", mine.len());
    assert!(taken < 6_000, "within the lease and one renewal: {taken} ms");

    // The cut heals; node-a takes its targets back from the store.
    relay.heal();
    let healed = vigil::model::now_ms();
    wait_for("node-a runs its targets again", || {
        written_by(&pg.dsn).values().any(|(n, at)| n == "node-a" && *at > healed)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    status(200);
    let round = wait_round(&pg.dsn, since, true).await;
    let all: Vec<_> = round.iter().collect();
    assert_eq!(all.len(), TARGETS, "one incident per target, none doubled by the cut: {all:#?}");
    let raw = each_mailed_once(&all, &smtp).await;
    eprintln!("cut node: {} incidents, {raw} mails, each once", all.len());
    // One history per target: down once, up once — node-a's copy of the cut was not written.
    let changes = changes_since(&pg.dsn, since);
    let expected = vec![("up".to_string(), "down".to_string()), ("down".to_string(), "up".to_string())];
    assert_eq!(changes.len(), TARGETS, "{changes:#?}");
    assert!(changes.values().all(|c| *c == expected), "no state change twice: {changes:#?}");
    assert_eq!(outbox_count(&pg.dsn, "state <> 'delivered'"), 0, "nothing left pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_and_maintenance_windows_work_from_any_node() {
    let (pg, web, _sink_dir, smtp) = servers().await;
    let names = &NODES[..2];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let (_nodes, _dirs) = start_cluster(names, &ports, &pg, &web, &smtp).await;
    let status = |code: u16| web.switch.store(code, std::sync::atomic::Ordering::SeqCst);

    // An outage: node-a acknowledges an incident node-b holds, and one of its own.
    let since = vigil::model::now_ms();
    status(503);
    let round = wait_round(&pg.dsn, since, false).await;
    let by = written_by(&pg.dsn);
    let held_by = |node: &str| round.iter().find(|i| by[&i.target].0 == node).expect("an incident of the node").id;
    let (theirs, ours) = (held_by("node-b"), held_by("node-a"));
    let ack = |id: i64| {
        let url = format!("http://127.0.0.1:{}/api/v1/incidents/{id}/ack", ports[0]);
        async move {
            let auth = format!("Bearer {TOKEN}");
            send("POST", &url, &[("authorization", &auth)], r#"{"by": "Lò Văn Minh", "comment": "on my way"}"#).await.0
        }
    };
    assert_eq!(ack(ours).await, 200, "node-a holds it: acknowledged at once");
    assert_eq!(ack(theirs).await, 202, "node-b holds it: passed on through the store");
    assert_eq!(ack(999_999).await, 404, "no such open incident anywhere");
    wait_for("node-b applies the acknowledgement node-a passed on", || {
        incidents(&pg.dsn).iter().any(|i| i.id == theirs && i.ack.as_ref().is_some_and(|a| a.by == "Lò Văn Minh"))
    })
    .await;

    // The targets recover; a maintenance window opened on node-a covers node-b's targets too.
    status(200);
    let all = wait_round(&pg.dsn, since, true).await;
    let before = every_key_mailed(&all.iter().collect::<Vec<_>>(), &smtp).await.values().sum::<usize>();
    let auth = format!("Bearer {TOKEN}");
    let url = format!("http://127.0.0.1:{}/api/v1/maintenance", ports[0]);
    let body = r#"{"name": "nâng cấp", "systems": ["web"], "duration": "10m"}"#;
    assert_eq!(send("POST", &url, &[("authorization", &auth)], body).await.0, 201);
    // node-b learns it from the store: its own targets go into maintenance too.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = shown_states(ports[1]).await;
        if shown.len() == TARGETS && shown.values().all(|s| s == "maintenance") {
            break;
        }
        assert!(Instant::now() < deadline, "node-b puts every target in maintenance: {shown:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    status(503);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = smtp.mails().len();
    assert_eq!(after, before, "no node pages during a window opened on any node: {} new mails", after - before);
    let paged: Vec<_> =
        incidents(&pg.dsn).into_iter().filter(|i| !i.told.is_empty() && i.resolved_ms.is_none()).collect();
    assert!(paged.is_empty(), "no incident told during the window: {paged:#?}");
}
