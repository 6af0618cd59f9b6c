//! Issue #19: reports per vantage point. A vantage's time counts as no data while the
//! centre does not hold its measurements (lost, or live results sent ahead of a back-fill);
//! the back-fill turns that no data into measured time, never changes time already
//! measured, and the report says which stretch arrived late.

use vigil::report::{Accounting, Format, Span};
use vigil::store::Record;
use vigil::store::forward::{Forwarded, IngestBatch};

const MIN: i64 = 60_000;
/// A round hour, so the report's times are easy to read.
const T0: i64 = 1_790_000_000_000 - 1_790_000_000_000 % 3_600_000;

/// The agent's records for one hour of a check every 10 s: up, down from minute 25 to 30.
fn agent_hour() -> Vec<Forwarded> {
    let mut records = Vec::new();
    let mut push = |kind: &str, at_ms: i64, data: serde_json::Value| {
        let seq = records.len() as i64 + 1;
        records.push(Forwarded { seq, kind: kind.into(), target: "web/portal".into(), at_ms, data });
    };
    push("change", T0, serde_json::json!({ "from": "unknown", "to": "up" }));
    for i in 0..360 {
        let at = T0 + i * 10_000;
        if at == T0 + 25 * MIN {
            push("change", at, serde_json::json!({ "from": "up", "to": "down", "message": "503" }));
        }
        if at == T0 + 30 * MIN {
            push("change", at, serde_json::json!({ "from": "down", "to": "up" }));
        }
        let health = if (T0 + 25 * MIN..T0 + 30 * MIN).contains(&at) { "down" } else { "up" };
        push("result", at, serde_json::json!({ "health": health }));
    }
    records
}

fn batch(records: Vec<Forwarded>, received_ms: i64) -> Record {
    Record::Ingest(Box::new(IngestBatch {
        vantage: "xa-sin-ho".into(),
        records,
        clock_offset_ms: 0,
        received_ms,
        late_after_ms: MIN,
        incarnation: None,
    }))
}

fn seen_from(report: &vigil::report::Report) -> Accounting {
    let check = &report.systems[0].checks[0];
    assert_eq!(check.vantages.len(), 1, "one row per vantage point");
    assert_eq!(check.vantages[0].id, "web/portal@xa-sin-ho");
    check.vantages[0].accounting
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vantage_report_counts_missing_time_as_no_data_until_the_back_fill_measures_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vigil.db");
    let (store, _) = vigil::store::open(&db).expect("store");
    let text = format!(
        "storage: {{ path: \"{}\" }}\n\
         vantages:\n  - {{ name: xa-sin-ho, token: \"a-vantage-token-0123456789abcdef\", grace: 1m }}\n\
         systems:\n  - id: web\n    sla: 99%\n    checks: [ {{ id: portal, interval: 10s, timeout: 2s, http: {{ url: \"http://127.0.0.1:9/\" }}, vantages: [xa-sin-ho] }} ]\n",
        db.display()
    );
    let config = vigil::config::load_from_text(&dir.path().join("vigil.yaml"), &text, &vigil::config::env::process_env)
        .expect("config");
    let reader = vigil::store::Reader::new(&db);
    let report = |span: &Span, at: i64| {
        vigil::report::build(&config, &reader, span, vigil::config::Language::En, at).expect("report")
    };
    let closed = Span { from_ms: T0, to_ms: T0 + 35 * MIN, label: "closed".into() };
    let early = Span { from_ms: T0, to_ms: T0 + 20 * MIN, label: "early".into() };

    let records = agent_hour();
    let upto = |min: i64| records.iter().filter(|r| r.at_ms < T0 + min * MIN).count();
    // Live until minute 20; then the link is cut.
    store.send(batch(records[..upto(20)].to_vec(), T0 + 20 * MIN + 1_000));
    store.flush().await;
    let measured_early = seen_from(&report(&early, T0 + 20 * MIN + 2_000));
    assert_eq!(measured_early.up_ms, 20 * MIN, "{measured_early:?}");

    // At minute 40 the link is back: the agent sends its newest (live) records ahead of the
    // oldest two minutes of its backlog.
    let live: Vec<Forwarded> = records[upto(39)..upto(40)].to_vec();
    let mut reconnect = records[upto(20)..upto(22)].to_vec();
    reconnect.extend(live);
    store.send(batch(reconnect.clone(), T0 + 40 * MIN));
    // The same batch again (its answer was lost): harmless.
    store.send(batch(reconnect, T0 + 40 * MIN + 500));
    store.flush().await;
    let during = seen_from(&report(&closed, T0 + 41 * MIN));
    assert_eq!(during.down_ms, 0, "the outage is not known yet: {during:?}");
    assert_eq!(during.up_ms, 22 * MIN, "measured only as far as nothing is missing: {during:?}");
    assert_eq!(during.no_data_ms, 13 * MIN, "the rest of the closed period is no data: {during:?}");
    let check = &report(&closed, T0 + 41 * MIN).systems[0].checks[0];
    assert_eq!(check.accounting.up_ms + check.accounting.down_ms, 0, "the centre's own view is separate");

    // The back-fill arrives an hour later.
    store.send(batch(records[upto(22)..].to_vec(), T0 + 2 * 60 * MIN));
    store.flush().await;
    let after = report(&closed, T0 + 2 * 60 * MIN);
    let now = seen_from(&after);
    assert_eq!((now.up_ms, now.down_ms, now.no_data_ms), (30 * MIN, 5 * MIN, 0), "ground truth: {now:?}");
    // Only no data turned into measured time; what was measured stays as it was.
    assert_eq!(seen_from(&report(&early, T0 + 2 * 60 * MIN)), measured_early);
    assert!(now.up_ms >= during.up_ms && now.down_ms >= during.down_ms);
    assert_eq!(now.up_ms + now.down_ms - during.up_ms - during.down_ms, during.no_data_ms - now.no_data_ms);
    // And the report says so: one back-filled stretch, counted after the period closed.
    assert_eq!(after.backfills.len(), 1, "{:?}", after.backfills);
    let b = &after.backfills[0];
    assert_eq!((b.from_ms, b.counted_ms), (T0 + 20 * MIN - 10_000, T0 + 2 * 60 * MIN), "{b:?}");
    let tz = &config.instance.timezone;
    let md = vigil::report::render(&after, Format::Md, tz);
    assert!(md.contains("## Back-filled data") && md.contains("after the period closed"), "{md}");
    assert!(md.contains("from xa-sin-ho"), "{md}");
    let csv = vigil::report::render(&after, Format::Csv, tz);
    assert!(csv.contains("vantage,web/portal@xa-sin-ho,xa-sin-ho"), "{csv}");
    let html = vigil::report::render(&after, Format::Html, tz);
    assert!(html.contains("Back-filled data") && html.contains("from xa-sin-ho"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_the_agent_no_longer_has_do_not_hold_the_vantage_back_for_ever() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vigil.db");
    let (store, _) = vigil::store::open(&db).expect("store");
    let records = agent_hour();
    store.send(batch(records[..100].to_vec(), T0 + 20 * MIN));
    // Records 101..=110 never come: the agent's next batch starts after them.
    store.send(batch(records[120..].to_vec(), T0 + 61 * MIN));
    store.flush().await;
    let views = vigil::store::Reader::new(&db).vantage_histories(T0).expect("histories");
    assert_eq!(views.horizons.get("xa-sin-ho"), records.last().map(|r| r.at_ms).as_ref());
    // But a hole above the agent's oldest record holds the horizon where it is.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vigil.db");
    let (store, _) = vigil::store::open(&db).expect("store");
    let mut sent = records[..100].to_vec();
    sent.extend(records[300..].iter().cloned());
    store.send(batch(sent, T0 + 61 * MIN));
    store.flush().await;
    let views = vigil::store::Reader::new(&db).vantage_histories(T0).expect("histories");
    assert_eq!(views.horizons.get("xa-sin-ho"), Some(&records[99].at_ms));
}

/// An agent whose store was made anew (a replaced disk) starts its sequence numbers at 1
/// again: with its new incarnation the centre files them after the old ones instead of
/// dropping them as replays, and counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_agent_store_is_a_new_series_not_a_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vigil.db");
    let (store, _) = vigil::store::open(&db).expect("store");
    let records = agent_hour();
    let from = |incarnation: &str, records: Vec<Forwarded>, received_ms: i64| {
        Record::Ingest(Box::new(IngestBatch {
            vantage: "xa-sin-ho".into(),
            records,
            clock_offset_ms: 0,
            received_ms,
            late_after_ms: MIN,
            incarnation: Some(incarnation.into()),
        }))
    };
    store.send(from("first", records[..100].to_vec(), T0 + 20 * MIN));
    // The same records again from the same store: replays, kept once.
    store.send(from("first", records[..100].to_vec(), T0 + 20 * MIN));
    // A new store: its numbering starts again at 1, for later measurements.
    let renumbered: Vec<Forwarded> =
        records[100..150].iter().enumerate().map(|(i, r)| Forwarded { seq: i as i64 + 1, ..r.clone() }).collect();
    store.send(from("second", renumbered, T0 + 30 * MIN));
    store.flush().await;
    let reader = vigil::store::Reader::new(&db);
    let held = reader.received("xa-sin-ho").expect("received");
    assert_eq!(held.len(), 150, "nothing dropped, nothing twice");
    let times: Vec<i64> = held.iter().map(|r| r.at_ms).collect();
    assert_eq!(times, records[..150].iter().map(|r| r.at_ms).collect::<Vec<_>>(), "in order");
    let views = reader.vantage_histories(T0).expect("histories");
    assert_eq!(views.horizons.get("xa-sin-ho"), Some(&records[149].at_ms), "the new series is counted");
}
