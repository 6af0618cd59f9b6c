//! Report generation over a month of history: 1,000 checks × 30 days seeded through the
//! store's writer (state changes and daily rollups), then the whole-month report, its
//! HTML rendering and the history queries behind `/api/v1/checks/…/history`.
//! `cargo bench --bench report`; `cargo test` runs each once on 20 checks (no `--bench` argument).

use std::hint::black_box;
use std::path::Path;

use criterion::Criterion;
use vigil::model::{State, TargetState};
use vigil::store::{ChangeRecord, Record, ResultRecord};

/// 2026-10-01T00:00:00+07:00 (Asia/Ho_Chi_Minh), Unix ms.
const MONTH_START: i64 = 1_790_787_600_000;
const DAY: i64 = 86_400_000;

/// Writes a config of `checks` HTTP checks over five systems (never run: only read).
fn write_config(dir: &Path, checks: usize) {
    let mut text = format!(
        "instance: {{ name: bench, timezone: Asia/Ho_Chi_Minh }}\nstorage: {{ path: \"{}\" }}\nsystems:\n",
        dir.join("vigil.db").display()
    );
    for s in 0..5 {
        text.push_str(&format!("  - id: system-{s}\n    sla: 99.9%\n    checks:\n"));
        for c in (s..checks).step_by(5) {
            text.push_str(&format!(
                "      - {{ id: check-{c}, http: {{ url: \"http://svc-{c}.laichau.example/\" }} }}\n"
            ));
        }
    }
    std::fs::write(dir.join("vigil.yaml"), text).expect("write config");
}

/// Seeds 30 days: each check is down 5 minutes a day (at a time that depends on the check)
/// and has four results a day in its rollup.
fn seed(dir: &Path, checks: usize) {
    let (store, _) = vigil::store::open(dir.join("vigil.db")).expect("store");
    let up = TargetState { state: State::Up, since_ms: MONTH_START, streak: None };
    for c in 0..checks {
        let target = format!("system-{}/check-{c}", c % 5);
        let change = |at_ms, from, to| {
            Record::Change(ChangeRecord {
                target: target.clone(),
                at_ms,
                from,
                to,
                reason: None,
                message: String::new(),
            })
        };
        store.send(change(MONTH_START, State::Unknown, State::Up));
        for day in 0..30 {
            let start = MONTH_START + day * DAY;
            let down = start + (c as i64 * 60_000) % DAY;
            store.send(change(down, State::Up, State::Down));
            store.send(change(down + 300_000, State::Down, State::Up));
            for r in 0..4 {
                store.send(Record::Result(ResultRecord {
                    target: target.clone(),
                    at_ms: start + r * DAY / 4,
                    health: "up",
                    reason: None,
                    duration_ms: 20.0 + r as f64 * 10.0,
                    message: String::new(),
                    state: up,
                    day_ms: start,
                    echoes: None,
                }));
            }
        }
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.send(Record::Flush(tx));
    rx.blocking_recv().expect("flushed");
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let checks = if smoke { 20 } else { 1000 };
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), checks);
    seed(dir.path(), checks);
    let config = vigil::config::load(&dir.path().join("vigil.yaml")).expect("config");
    let db = dir.path().join("vigil.db");
    let tz = config.instance.timezone.clone();
    let span = vigil::report::month("2026-10", &tz).expect("month");
    let now = MONTH_START + 31 * DAY;
    let lang = vigil::config::Language::Vi;

    // The seeded downtime is what the report finds: 30 × 5 min per check.
    let built = vigil::report::build(&config, &vigil::store::Reader::new(&db), &span, lang, now).expect("report");
    let json: serde_json::Value =
        serde_json::from_str(&vigil::report::render(&built, vigil::report::Format::Json, &tz)).expect("json");
    let down: i64 = json["systems"]
        .as_array()
        .expect("systems")
        .iter()
        .filter_map(|s| s["checks"].as_array())
        .flatten()
        .map(|c| c["accounting"]["down_ms"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(down, checks as i64 * 30 * 300_000, "seeded downtime");

    let mut c = Criterion::default().configure_from_args().sample_size(10);
    let label = format!("{checks} checks × 30 days");
    c.bench_function(&format!("report: build the month, {label}"), |b| {
        b.iter(|| {
            black_box(vigil::report::build(&config, &vigil::store::Reader::new(&db), &span, lang, now).expect("report"))
        })
    });
    c.bench_function(&format!("report: render HTML, {label}"), |b| {
        b.iter(|| black_box(vigil::report::render(&built, vigil::report::Format::Html, &tz).len()))
    });
    c.bench_function(&format!("history: intervals + rollups of every check, {label}"), |b| {
        b.iter(|| {
            for (_, _, t) in config.targets() {
                let id = t.key.id();
                black_box(vigil::store::query::state_history(&db, &id, span.from_ms).expect("history"));
                black_box(vigil::store::query::rollups(&db, &id, span.from_ms, span.to_ms).expect("rollups"));
            }
        })
    });
    c.final_summary();
}
