//! The store failing under the daemon (issue #14, items 2 and 3): a full disk and another
//! process holding SQLite's lock for 20 s. Writes are retried, nothing but plain results may be
//! shed, no notification leaves before its outbox row is committed, and once the store
//! takes writes again every state change, incident and notification is there exactly once
//! and every notification reaches a real SMTP server exactly once.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use vigil::model::State;

const TARGETS: usize = 20;
const WAIT: Duration = Duration::from_secs(60);

/// A size-limited tmpfs the test mounts (as root) and unmounts when dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("mount point");
        run_ok("mount", "mount", &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &dir.display().to_string()]);
        SmallDisk { dir: dir.to_path_buf() }
    }

    /// Fills the disk to the last byte; returns the filler to delete.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.dir.join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&chunk[..512]).is_ok() {}
        while f.write_all(&chunk[..1]).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn config(dir: &Path, store: &Path, web: &WebServer, smtp: &SmtpSink) -> String {
    let targets: String = (1..=TARGETS)
        .map(|i| format!("          - {{ name: t{i:02}, url: \"http://{}/switch\" }}\n", web.addr))
        .collect();
    let text = format!(
        "instance: {{ name: faults }}\n\
         server: {{ listen: \"127.0.0.1:0\", admin_token: \"{TOKEN}\" }}\n\
         storage: {{ path: \"{}\" }}\n\
         defaults: {{ interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1 }}\n\
         alerting: {{ store_alert_after: 2s }}\n\
         receivers:\n  - id: team\n    channels:\n      - email: {{ to: [\"ung-cuu@laichau.test\"], from: \"vigil@laichau.test\", smtp: {{ host: 127.0.0.1, port: {}, security: none }} }}\n\
         routes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: web\n    checks:\n      - id: many\n        http: {{}}\n        conditions: [\"[STATUS] == 200\"]\n        targets:\n{targets}",
        store.display(),
        smtp.port
    );
    std::fs::write(dir.join("vigil.yaml"), text).expect("config");
    dir.join("vigil.yaml").display().to_string()
}

/// Every target down, then up again: 20 incidents opened and closed.
async fn outage_and_recovery(web: &WebServer, events: &mut tokio::sync::broadcast::Receiver<vigil::pipeline::Event>) {
    let ids: Vec<String> = (1..=TARGETS).map(|i| format!("web/many/t{i:02}")).collect();
    web.switch.store(503, Ordering::SeqCst);
    let down: Vec<(&str, State)> = ids.iter().map(|id| (id.as_str(), State::Down)).collect();
    wait_states(events, WAIT, &down).await;
    web.switch.store(200, Ordering::SeqCst);
    let up: Vec<(&str, State)> = ids.iter().map(|id| (id.as_str(), State::Up)).collect();
    wait_states(events, WAIT, &up).await;
}

/// What the store holds once the daemon has stopped: (state changes per target, incidents,
/// delivered outbox rows, outbox rows).
fn stored(store: &Path) -> (BTreeMap<String, Vec<String>>, i64, i64, i64) {
    let conn = rusqlite::Connection::open(store).expect("open the store");
    let mut changes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // The judged changes (a clean stop's "no data from here" row is counted apart, by the
    // uptime tests).
    let mut stmt = conn
        .prepare(
            "SELECT target, to_state FROM state_changes WHERE coalesce(reason, '') != 'stopped' ORDER BY at_ms, rowid",
        )
        .expect("query");
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).expect("rows");
    for row in rows {
        let (target, to) = row.expect("row");
        changes.entry(target).or_default().push(to);
    }
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).expect("count");
    (
        changes,
        count("SELECT COUNT(*) FROM incidents"),
        count("SELECT COUNT(*) FROM outbox WHERE state = 'delivered'"),
        count("SELECT COUNT(*) FROM outbox"),
    )
}

/// Whether a mail is the notice that the store fails (or writes again), sent straight.
fn is_store_notice(mail: &serde_json::Value) -> bool {
    mail["message_id"].as_str().is_some_and(|id| id.starts_with("<vigil-store-failing-"))
}

/// The incident mails (everything but the store notices).
fn incident_mails(mails: &[serde_json::Value]) -> usize {
    mails.iter().filter(|m| !is_store_notice(m)).count()
}

/// The store notices received: (firing, resolved).
fn store_notices(mails: &[serde_json::Value]) -> (usize, usize) {
    let ids =
        || mails.iter().filter_map(|m| m["message_id"].as_str()).filter(|id| id.starts_with("<vigil-store-failing-"));
    (ids().filter(|id| id.contains("-firing-")).count(), ids().filter(|id| id.contains("-resolved-")).count())
}

/// The checks made after each fault: exactly once everywhere.
fn assert_exactly_once(store: &Path, smtp: &SmtpSink, rounds: usize) {
    let (changes, incidents, delivered, outbox) = stored(store);
    assert_eq!(changes.len(), TARGETS, "{changes:?}");
    for (target, seq) in &changes {
        let expected: Vec<&str> = ["up"].into_iter().chain((0..rounds).flat_map(|_| ["down", "up"])).collect();
        assert_eq!(seq, &expected, "{target}: every state change, in order, once");
    }
    let notifications = (TARGETS * rounds * 2) as i64;
    assert_eq!(incidents, (TARGETS * rounds) as i64, "every incident, once");
    assert_eq!((outbox, delivered), (notifications, notifications), "every notification stored and delivered once");
    let mails: Vec<serde_json::Value> = smtp.mails().into_iter().filter(|m| !is_store_notice(m)).collect();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for m in &mails {
        *ids.entry(m["message_id"].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    assert_eq!(mails.len() as i64, notifications, "one mail per notification: {ids:?}");
    assert!(ids.values().all(|n| *n == 1), "a notification was mailed twice: {ids:?}");
    assert_eq!(store_notices(&smtp.mails()), (rounds, rounds), "one 'store failing' and one 'writes again' per fault");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_then_a_held_lock_lose_nothing_and_send_nothing_twice() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(dir.path());
    let disk = SmallDisk::mount(&dir.path().join("disk"), "8m");
    let store = disk.dir.join("vigil.db");
    let config = config(dir.path(), &store, &web, &smtp);
    let app = vigil::app::App::start(
        vigil::app::ConfigSource::File(PathBuf::from(&config)),
        vigil::app::Overrides::default(),
    )
    .await
    .expect("daemon starts");
    let base = format!("http://{}", app.addr());
    let mut events = app.subscribe();
    let ups: Vec<String> = (1..=TARGETS).map(|i| format!("web/many/t{i:02}")).collect();
    let up: Vec<(&str, State)> = ups.iter().map(|id| (id.as_str(), State::Up)).collect();
    wait_states(&mut events, WAIT, &up).await;

    // 1. The disk fills up: 20 incidents open and close while nothing can be written.
    let filler = disk.fill();
    outage_and_recovery(&web, &mut events).await;
    let (code, ready) = request("GET", &format!("{base}/-/ready"), None).await;
    assert_eq!(code, 503, "readiness says the store fails: {ready}");
    assert!(ready.contains("store: writes failing since"), "{ready}");
    let metrics = get(&format!("{base}/metrics")).await;
    assert!(sample(&metrics, "vigil_store_write_errors_total", &[]).is_some_and(|n| n > 0.0), "{metrics}");
    // The team hears that the store fails, straight (no store needed); nothing else leaves
    // before its outbox row is committed.
    smtp.wait_until(WAIT, "the 'store failing' notice", |m| store_notices(m).0 == 1).await;
    assert_eq!(incident_mails(&smtp.mails()), 0, "no notification may leave before its outbox row is committed");
    // Space comes back: everything is written, then delivered.
    std::fs::remove_file(filler).expect("free the disk");
    smtp.wait_until(WAIT, "every notification of the full-disk outage", |m| {
        incident_mails(m) >= TARGETS * 2 && store_notices(m) == (1, 1)
    })
    .await;
    assert_eq!(request("GET", &format!("{base}/-/ready"), None).await.0, 200);

    // 2. Another process (a backup tool, say) holds SQLite's lock for 20 s, far past the
    // writer's 5 s busy timeout, while 20 incidents open and close.
    let mut holder = std::process::Command::new(tool("python3", "python3").get_program())
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(20)\n\
             c.execute('COMMIT')",
            &store.display().to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the lock holder");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().expect("stdout")), &mut line)
        .expect("the lock holder speaks");
    assert_eq!(line.trim(), "locked");
    outage_and_recovery(&web, &mut events).await;
    // Past the writer's 5 s busy timeout, readiness says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while request("GET", &format!("{base}/-/ready"), None).await.0 != 503 {
        assert!(std::time::Instant::now() < deadline, "readiness never said the store fails");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    smtp.wait_until(WAIT, "the second 'store failing' notice", |m| store_notices(m).0 == 2).await;
    assert_eq!(incident_mails(&smtp.mails()), TARGETS * 2, "nothing of the locked period has left yet");
    // The holder lets go by itself after its 20 s.
    let waited = tokio::task::spawn_blocking(move || holder.wait()).await.expect("join").expect("wait");
    assert!(waited.success(), "the lock holder failed");
    smtp.wait_until(WAIT, "every notification of the locked period", |m| {
        incident_mails(m) >= TARGETS * 4 && store_notices(m) == (2, 2)
    })
    .await;

    app.shutdown().await;
    // A last moment for a duplicate to show up, if one were on its way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&store, &smtp, 2);
    drop(disk);
}

/// Issue #14, item 6: a store that cannot be read (here: its file moved away) makes the
/// pages, the history API and `vigil report` say so — a 503 or a failing command — never a
/// plausible page or report computed from no data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_store_is_an_error_not_empty_figures() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &one_http_check(web.addr));
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("web/ok", State::Up)]).await;
    let base = format!("http://{}", app.addr());
    assert_eq!(request("GET", &format!("{base}/"), None).await.0, 200, "readable: the page is served");

    // The database file is moved away under the daemon (an unlucky operator, a broken mount):
    // every new read connection fails.
    std::fs::rename(dir.path().join("vigil.db"), dir.path().join("moved.db")).expect("move the store");
    for path in [
        "/",
        "/systems/web",
        "/checks/web/ok",
        "/badge/web/uptime/30d.svg",
        "/api/v1/checks/web/ok/history",
        "/api/v1/maintenance",
    ] {
        let (code, body) = request("GET", &format!("{base}{path}"), None).await;
        assert_eq!(code, 503, "{path}: {body}");
        assert!(body.contains("the store cannot be read"), "{path}: {body}");
    }
    app.shutdown().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["report", "-c", &dir.path().join("vigil.yaml").display().to_string(), "--format", "json"])
        .output()
        .expect("run vigil report");
    assert!(
        !out.status.success(),
        "a report from an unreadable store must fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Issue #14, item 4: a store that cannot be opened at start (here: a corrupt file) does not
/// stop Vigil: it probes, serves /metrics, alerts from memory and says why it is degraded;
/// once the file can be opened, what was kept in memory is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_at_start_still_probes_and_alerts() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vigil.db");
    std::fs::write(&db, vec![0x5a; 64 * 1024]).expect("a corrupt store");
    write_config(
        dir.path(),
        &format!(
            "receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/hook\" }} }} ] }}\n\
             routes:\n  - {{ receivers: [team] }}\n\
             systems:\n  - id: web\n    checks:\n      - {{ id: a, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
            hooks.addr, web.addr
        ),
    );
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("web/a", State::Up)]).await;
    let (code, ready) = request("GET", &format!("{base}/-/ready"), None).await;
    assert_eq!(code, 503, "{ready}");
    assert!(ready.contains("cannot open"), "readiness explains: {ready}");
    let metrics = get(&format!("{base}/metrics")).await;
    assert!(sample(&metrics, "vigil_check_up", &[r#"check="a""#]) == Some(1.0), "{metrics}");

    web.switch.store(503, Ordering::SeqCst);
    hooks.wait_until(WAIT, "the alert, from memory", |h| h.iter().any(|x| x.body["event"] == "firing")).await;

    // The file is repaired (moved away here): the store opens and takes what was kept.
    std::fs::remove_file(&db).expect("remove the corrupt file");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while request("GET", &format!("{base}/-/ready"), None).await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "the store never opened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.shutdown().await;
    let conn = rusqlite::Connection::open(&db).expect("the store");
    let incidents: i64 = conn.query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0)).expect("count");
    let changes: i64 = conn
        .query_row("SELECT COUNT(*) FROM state_changes WHERE coalesce(reason, '') != 'stopped'", [], |r| r.get(0))
        .expect("count");
    assert_eq!((incidents, changes), (1, 2), "the incident and the state changes kept in memory were written");
}
