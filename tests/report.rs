//! Reports end to end: a store seeded by the real daemon (a target switched down and up,
//! one incident excluded from the SLA), then `vigil report` in all four formats giving the
//! same numbers, CSV read by an independent parser, the HTML rendered by Chromium; and
//! retention pruning that leaves old reports unchanged.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use vigil::model::State;

const WAIT: Duration = Duration::from_secs(20);

fn report(dir: &Path, format: &str, at: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["report", "-c", &dir.join("vigil.yaml").display().to_string(), "--format", format, "--at", at])
        .output()
        .expect("run vigil report");
    assert!(out.status.success(), "vigil report --format {format}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_formats_agree_on_a_seeded_store() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let systems = format!(
        "systems:\n  - id: procedures\n    name: {{ vi: \"Hệ thống giải quyết thủ tục hành chính\", en: \"Procedures\" }}\n    sla: 99.9%\n    checks:\n      - {{ id: portal, http: {{ url: \"http://{0}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n      - {{ id: api, http: {{ url: \"http://{0}/ok\" }} }}\n",
        web.addr
    );
    write_config(dir.path(), &systems);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let base = format!("http://{}", app.addr());
    wait_states(&mut events, WAIT, &[("procedures/portal", State::Up), ("procedures/api", State::Up)]).await;
    for _ in 0..2 {
        web.switch.store(503, Ordering::SeqCst);
        wait_states(&mut events, WAIT, &[("procedures/portal", State::Down)]).await;
        web.switch.store(200, Ordering::SeqCst);
        wait_states(&mut events, WAIT, &[("procedures/portal", State::Up)]).await;
    }
    let auth = format!("Bearer {TOKEN}");
    let (code, _, _) = send(
        "POST",
        &format!("{base}/api/v1/incidents/2/exclude"),
        &[("authorization", &auth)],
        r#"{"reason": "planned power cut", "by": "An"}"#,
    )
    .await;
    assert_eq!(code, 200);

    // History: exact intervals and today's rollup.
    // The last state change reaches the store within a write batch: read until it is there.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let history: serde_json::Value = loop {
        let history: serde_json::Value =
            serde_json::from_str(&get(&format!("{base}/api/v1/checks/procedures/portal/history")).await).expect("json");
        let states: Vec<String> = history["targets"][0]["intervals"]
            .as_array()
            .expect("intervals")
            .iter()
            .filter_map(|i| i["state"].as_str().map(str::to_string))
            .collect();
        if states.ends_with(&["up", "down", "up", "down", "up"].map(String::from)) {
            break history;
        }
        assert!(std::time::Instant::now() < deadline, "{states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let target = &history["targets"][0];
    let today = &target["rollups"][0];
    assert!(
        today["runs"].as_i64().is_some_and(|n| n >= 5) && today["failures"].as_i64().is_some_and(|n| n >= 2),
        "{today}"
    );
    let (min, avg, max) =
        (today["latency_min_ms"].as_f64(), today["latency_avg_ms"].as_f64(), today["latency_max_ms"].as_f64());
    assert!(min <= avg && avg <= max && today["latency_p95_ms"].as_f64().is_some(), "{today}");
    assert_eq!(request("GET", &format!("{base}/api/v1/checks/procedures/nope/history"), None).await.0, 404);
    app.shutdown().await;

    let db = dir.path().join("vigil.db");
    let incidents = vigil::store::query::incidents(&db, false, None, 10).expect("incidents");
    let duration = |id: i64| {
        incidents.iter().find(|i| i.id == id).and_then(|i| i.resolved_ms.map(|r| r - i.started_ms)).expect("resolved")
    };

    // Every format as of the same moment.
    let at = jiff::Timestamp::now().to_string();
    let report = |format: &str| report(dir.path(), format, &at);
    let json_text = report("json");
    let json: serde_json::Value = serde_json::from_str(&json_text).expect("json");
    assert_eq!(json["schema"], 2);
    let sys = &json["systems"][0];
    assert_eq!(sys["id"], "procedures");
    assert_eq!(sys["incidents"], 2);
    assert_eq!(sys["accounting"]["down_ms"], duration(1), "downtime is exactly the first outage");
    assert_eq!(sys["accounting"]["excluded_ms"], duration(2), "the excluded outage is not downtime");
    let (up, down) =
        (sys["accounting"]["up_ms"].as_f64().expect("up"), sys["accounting"]["down_ms"].as_f64().expect("down"));
    assert!((sys["uptime"].as_f64().expect("uptime") - up / (up + down)).abs() < 1e-12, "uptime = up / (up + down)");
    assert_eq!(sys["met"], false);
    assert_eq!(sys["incident_list"][1]["excluded"]["reason"], "planned power cut");
    assert_eq!(sys["checks"].as_array().map(Vec::len), Some(2));

    // CSV, read by Python's csv module as a spreadsheet reads it (a UTF-8 byte-order mark
    // first): one row per system and check, the same milliseconds.
    let csv = report("csv");
    assert!(csv.starts_with('\u{feff}'), "a UTF-8 BOM first");
    let parsed = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import csv,io,json,sys; print(json.dumps(list(csv.DictReader(io.TextIOWrapper(sys.stdin.buffer, encoding='utf-8-sig')))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(csv.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3 csv");
    let rows: serde_json::Value = serde_json::from_slice(&parsed.stdout).expect("csv rows");
    assert_eq!(rows.as_array().map(Vec::len), Some(3), "{csv}");
    assert_eq!(rows[0]["level"], "system");
    assert_eq!(rows[0]["down_ms"], duration(1).to_string());
    assert_eq!(rows[0]["excluded_ms"], duration(2).to_string());
    let sum: i64 = ["up_ms", "down_ms", "maintenance_ms", "no_data_ms", "excluded_ms"]
        .iter()
        .map(|k| rows[0][*k].as_str().and_then(|v| v.parse::<i64>().ok()).expect("a number"))
        .sum();
    assert_eq!(sum, json["span"]["to_ms"].as_i64().expect("to") - json["span"]["from_ms"].as_i64().expect("from"));
    assert_eq!(rows[0]["name"], "Hệ thống giải quyết thủ tục hành chính");

    // Markdown and HTML show the same achieved figure.
    let shown = format!("{:.3}%", sys["uptime"].as_f64().expect("uptime") * 100.0).replace('.', ",");
    let md = report("md");
    assert!(md.contains(&shown), "{shown} in\n{md}");
    let html = report("html");
    assert_eq!(report("json"), json_text, "the same --at gives the same report, byte for byte");
    assert!(html.contains(&shown) && html.contains("Loại khỏi SLA: planned power cut (An)"), "{shown}");
    assert!(!html.contains("http://") && !html.contains("https://"), "self-contained: no external resources");

    // Chromium renders it without console errors.
    let file = dir.path().join("report.html");
    std::fs::write(&file, &html).expect("write");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/report.mjs");
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/playwright-core").exists(),
        "run `npm ci --prefix tests/browser` (scripts/test does this)"
    );
    let shot = std::env::var("VIGIL_SCREENSHOTS").map(|d| format!("{d}/report-vi.png")).unwrap_or_default();
    let out = Command::new("node")
        .args([script.display().to_string(), file.display().to_string(), shot])
        .output()
        .expect("node");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["errors"], serde_json::json!([]));
    assert!(result["title"].as_str().is_some_and(|t| t.to_lowercase().contains("báo cáo")), "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_removes_old_raw_results_and_leaves_reports_unchanged() {
    use vigil::model::TargetState;
    use vigil::store::{ChangeRecord, Record, ResultRecord};
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vigil.db");
    let (store, _) = vigil::store::open(&db).expect("store");
    let day = 86_400_000i64;
    let now = vigil::model::now_ms();
    let result = |at_ms: i64| {
        Record::Result(ResultRecord {
            target: "web/a".into(),
            at_ms,
            health: "down",
            reason: Some("http_status"),
            duration_ms: 1.0,
            message: String::new(),
            state: TargetState::new(at_ms),
            day_ms: at_ms - at_ms.rem_euclid(day),
            echoes: None,
        })
    };
    let change = |at_ms: i64, from: State, to: State| {
        Record::Change(ChangeRecord { target: "web/a".into(), at_ms, from, to, reason: None, message: String::new() })
    };
    store.send(change(now - 40 * day, State::Unknown, State::Up));
    store.send(change(now - 30 * day, State::Up, State::Down));
    store.send(result(now - 30 * day));
    store.send(change(now - 30 * day + 3_600_000, State::Down, State::Up));
    store.send(result(now - day));
    store.flush().await;

    let text = format!(
        "storage: {{ path: \"{}\" }}\nsystems:\n  - id: web\n    sla: 99%\n    checks: [ {{ id: a, http: {{ url: \"http://127.0.0.1:9/\" }} }} ]\n",
        db.display()
    );
    let config = vigil::config::load_from_text(&dir.path().join("vigil.yaml"), &text, &vigil::config::env::process_env)
        .expect("config");
    let tz = &config.instance.timezone;
    let span = vigil::report::Span { from_ms: now - 35 * day, to_ms: now - 25 * day, label: "old".into() };
    let render = || {
        let r = vigil::report::build(&config, &vigil::store::Reader::new(&db), &span, vigil::config::Language::En, now)
            .expect("report");
        vigil::report::render(&r, vigil::report::Format::Csv, tz)
    };
    let before = render();
    assert!(before.contains(",3600000,"), "a one-hour outage in the old period: {before}");

    // An agent's records at the centre: an old and a recent result, an old state change.
    let forwarded = |seq: i64, kind: &str, at_ms: i64| vigil::store::forward::Forwarded {
        seq,
        kind: kind.into(),
        target: "web/a".into(),
        at_ms,
        data: serde_json::json!({}),
    };
    store.send(Record::Ingest(Box::new(vigil::store::forward::IngestBatch {
        vantage: "xa-sin-ho".into(),
        records: vec![
            forwarded(1, "change", now - 30 * day),
            forwarded(2, "result", now - 30 * day),
            forwarded(3, "result", now - day),
        ],
        clock_offset_ms: 0,
        received_ms: now,
        late_after_ms: 300_000,
        incarnation: None,
    })));
    store.send(Record::Prune(now - 14 * day));
    store.flush().await;
    let kept: Vec<i64> =
        vigil::store::Reader::new(&db).received("xa-sin-ho").expect("received").iter().map(|r| r.seq).collect();
    assert_eq!(kept, [1, 3], "an agent's old raw result is pruned; its state change and recent result stay");
    assert_eq!(
        vigil::store::query::result_count(&db, "web/a").expect("count"),
        1,
        "only the recent raw result is kept"
    );
    assert_eq!(
        vigil::store::query::changes(&db, "web/a").expect("changes").len(),
        3,
        "state intervals are kept forever"
    );
    assert_eq!(render(), before, "the old month's report is unchanged by pruning");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_report_is_mailed_once_with_the_csv_attached() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(dir.path());
    let config = format!(
        "reports: {{ monthly: {{ day: 1, at: \"00:00\", receivers: [managers] }} }}\n\
         receivers:\n  - id: managers\n    channels:\n      - email: {{ to: [\"lanh-dao@laichau.test\"], from: \"vigil@laichau.test\", smtp: {{ host: 127.0.0.1, port: {}, security: none }} }}\n\
         systems:\n  - id: web\n    sla: 99.5%\n    checks: [ {{ id: a, http: {{ url: \"http://{}/ok\" }} }} ]\n",
        smtp.port, web.addr
    );
    write_config(dir.path(), &config);
    // The previous month, in the instance time zone.
    let tz = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").expect("tz");
    let previous = jiff::Zoned::now()
        .with_time_zone(tz)
        .date()
        .first_of_month()
        .yesterday()
        .expect("date")
        .strftime("%Y-%m")
        .to_string();
    let app = start_daemon(dir.path()).await;
    let mails = smtp.wait_until(WAIT, "the monthly report", |m| !m.is_empty()).await;
    let mail = &mails[0];
    assert_eq!(mail["subject"], format!("[Vigil] Báo cáo thời gian hoạt động tháng {previous} – test"));
    assert_eq!(mail["message_id"], format!("<report-{previous}-managers@vigil>"));
    assert!(
        mail["html"].as_str().is_some_and(|h| h.contains("BÁO CÁO") || h.contains("Báo cáo thời gian hoạt động")),
        "HTML body"
    );
    let attachment = &mail["attachments"][0];
    assert_eq!(attachment["filename"], format!("vigil-report-{previous}.csv"));
    assert!(
        attachment["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("\u{feff}level,id,name") && c.contains("system,web,")),
        "{attachment}"
    );
    app.shutdown().await;

    // Recorded in the outbox like any notification: a restart does not send it again.
    let app = start_daemon(dir.path()).await;
    // The report task has looked at the clock (the report is still due) and queued nothing.
    app.settle().await;
    assert_eq!(app.monthly_reports_queued(), 0, "not queued again after the restart");
    assert_eq!(smtp.mails().len(), 1, "sent once");
    app.shutdown().await;
    let log = vigil::store::query::deliveries(dir.path().join("vigil.db")).expect("outbox");
    assert_eq!(log, [(format!("report-{previous}-managers"), "delivered".to_string(), Some("email".to_string()))]);
}

/// Issue #15, item 6: what is not a report is refused, the future is no data, and a
/// system's "since" follows its critical checks only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_edges_are_refused_or_no_data() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let systems = format!(
        "systems:\n  - id: web\n    checks:\n      - {{ id: main, http: {{ url: \"http://{0}/ok\" }} }}\n      - {{ id: extra, critical: false, http: {{ url: \"http://{0}/switch\" }} }}\n",
        web.addr
    );
    write_config(dir.path(), &systems);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let base = format!("http://{}", app.addr());
    wait_states(&mut events, WAIT, &[("web/main", State::Up), ("web/extra", State::Up)]).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await; // the next change is a later second
    web.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("web/extra", State::Down)]).await;
    let status: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("json");
    let system = &status["systems"][0];
    let (main, extra) = (&system["checks"][0]["targets"][0]["since"], &system["checks"][1]["targets"][0]["since"]);
    assert_eq!(&system["since"], main, "a system's since follows its critical check");
    assert_ne!(main, extra, "the non-critical check changed later");

    for (query, code) in [("format=xml", 400), ("lang=fr", 400), ("format=csv&lang=en", 200), ("", 200)] {
        assert_eq!(request("GET", &format!("{base}/reports?{query}"), None).await.0, code, "/reports?{query}");
    }
    let url = format!("{base}/api/v1/checks/web/main/history?from=2099-06-01T00:00:00Z&to=2099-06-02T00:00:00Z");
    let future: serde_json::Value = serde_json::from_str(&get(&url).await).expect("json");
    let intervals = &future["targets"][0]["intervals"];
    assert_eq!(intervals.as_array().map(Vec::len), Some(1), "{future}");
    assert_eq!(intervals[0]["state"], "no_data", "the future is no data: {future}");
    assert_eq!(future["accounting"]["no_data_ms"], 86_400_000);
    assert_eq!(future["uptime"], serde_json::Value::Null);
    app.shutdown().await;

    for (from, to) in [("2026-10-01T10:00", "2026-10-02"), ("2026-10-01", "2026-10-02 23:00")] {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["report", "-c", &dir.path().join("vigil.yaml").display().to_string(), "--from", from, "--to", to])
            .output()
            .expect("vigil report");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("without a time of day"), "--from {from} --to {to}: {stderr}");
    }
}

/// Issue #22, item 3: pruning raw results past the retention finds them by their time (an
/// index), not by reading the whole table — at a national centre's rate the table holds
/// billions of rows.
#[tokio::test]
async fn pruning_finds_old_results_by_an_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vigil.db");
    let (store, _) = vigil::store::open(path.as_path()).expect("open");
    store.close().await;
    let conn = rusqlite::Connection::open(&path).expect("open the file");
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN DELETE FROM results WHERE at_ms < ?1")
        .expect("plan")
        .query_map([1_i64], |r| r.get::<_, String>(3))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("plan rows");
    assert!(plan.iter().any(|p| p.contains("USING INDEX results_by_time")), "{plan:?}");
}
