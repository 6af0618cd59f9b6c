//! Micro-benchmarks of the per-probe hot paths: condition evaluation, the state-machine
//! step, perfdata parsing, `/metrics` encoding at 10,000 targets and recording results
//! into the store. `cargo bench --bench hot_paths`; `cargo test` runs each once.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vigil::alert::state::{Context, Rule, step};
use vigil::condition::{Condition, failures};
use vigil::config::TargetKey;
use vigil::model::Health;
use vigil::model::{State, TargetState};
use vigil::probe::{Observations, ProbeOutcome};

fn observations() -> Observations {
    Observations {
        status: Some(200),
        body: Some(br#"{"status": "ok", "queue": {"pending": 12}}"#.to_vec().into()),
        response_time: Some(Duration::from_millis(42)),
        connected: Some(true),
        ..Observations::default()
    }
}

fn conditions(c: &mut Criterion) {
    let conditions: Vec<Condition> =
        ["[STATUS] == 200", "[RESPONSE_TIME] < 500ms", "[BODY].status == ok", "[BODY].queue.pending < 100"]
            .iter()
            .map(|t| Condition::parse(t).expect("condition"))
            .collect();
    let seen = observations();
    c.bench_function("conditions: 4 (status, time, 2 JSON paths)", |b| {
        b.iter(|| black_box(failures(black_box(&conditions), &seen)))
    });
}

fn state_step(c: &mut Criterion) {
    let rule = Rule { failure_threshold: 3, success_threshold: 2 };
    let mut state = TargetState::new(0);
    let mut now = 0;
    c.bench_function("state step: alternating results", |b| {
        b.iter(|| {
            now += 1000;
            let observed = if now % 7000 < 3000 { Health::Down } else { Health::Up };
            state = step(&state, observed, rule, Context::default(), now).0;
            black_box(state.state == State::Down)
        })
    });
}

fn perfdata(c: &mut Criterion) {
    let text = "rta=0.052000ms;200.000000;500.000000;0.000000 pl=0%;40;80;0 rtmax=0.071000ms;;;; rtmin=0.040000ms;;;;";
    c.bench_function("perfdata: check_ping line", |b| {
        b.iter(|| black_box(vigil::probe::perfdata::parse_perfdata(text)))
    });
}

fn metrics_encoding(c: &mut Criterion) {
    let metrics = std::sync::Arc::new(vigil::metrics::Metrics::new(Some("lai-chau")));
    let outcome = ProbeOutcome {
        health: Health::Up,
        reason: None,
        message: String::new(),
        failed_conditions: Vec::new(),
        observations: observations(),
        duration: Duration::from_millis(42),
    };
    for i in 0..10_000 {
        let key = TargetKey {
            system: format!("system-{}", i % 5),
            check: format!("check-{i}"),
            target: format!("check-{i}"),
        };
        let t = metrics.target(&key, "http", &[]);
        metrics.record(&t, &outcome, 1_790_000_000.0);
    }
    let mut group = c.benchmark_group("metrics");
    group.sample_size(10);
    group.bench_function("encode /metrics, 10,000 http targets", |b| b.iter(|| black_box(metrics.encode().len())));
    group.finish();
}

fn store_writes(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = vigil::store::open(dir.path().join("bench.db")).expect("store");
    let mut at = 1_790_000_000_000;
    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.bench_function("record 1,000 results and flush", |b| {
        b.iter(|| {
            for i in 0..1000 {
                at += 1;
                store.send(vigil::store::Record::Result(vigil::store::ResultRecord {
                    target: format!("system/check-{i}"),
                    at_ms: at,
                    health: "up",
                    reason: None,
                    duration_ms: 42.0,
                    message: String::new(),
                    state: TargetState { state: State::Up, since_ms: 0, streak: None },
                    day_ms: at - at % 86_400_000,
                    echoes: None,
                }));
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            store.send(vigil::store::Record::Flush(tx));
            rx.blocking_recv().expect("flushed");
        })
    });
    group.finish();
}

criterion_group!(benches, conditions, state_step, perfdata, metrics_encoding, store_writes);
criterion_main!(benches);
