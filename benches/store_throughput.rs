//! Store throughput (issue #22, goal 3): results written into a real SQLite store at a
//! centre's national rate, with their daily rollups and state changes, for a measured
//! window; raw results pruned every minute past a short retention, as the pipeline prunes
//! past `storage.raw_retention`.
//!
//!     cargo bench --bench store_throughput                  # 2,600 results/s for 10 minutes
//!     cargo bench --bench store_throughput -- --smoke       # 500/s for 5 s
//!
//! `cargo test --all-targets` (the suite) runs it without `--bench`: the smoke.
//!     STORE_RATE=5000 STORE_WINDOW=120 cargo bench --bench store_throughput
//!
//! Reports the rate written, the write latency (a tick's records sent to their commit)
//! p50/p99/max, the database's growth per result and per day at that rate, its size at each
//! minute once pruning holds it, and the results shed (none is the goal).

use std::time::{Duration, Instant};

use vigil::model::{State, TargetState};
use vigil::store::{ChangeRecord, Record, ResultRecord};

/// Targets: 3,321 communes × 20 checks, rounded up to the rate asked for at 30 s each.
const INTERVAL_S: f64 = 30.0;
/// Ticks per second: a tick's results are sent together, then a flush that times them.
const TICKS_PER_S: u32 = 10;
/// One target in fifty flaps: down, then up again, every few runs.
const FLAPPING_EVERY: usize = 50;

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke") || !std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let rate = env("STORE_RATE", if smoke { 500 } else { 2_600 }) as usize;
    let window = Duration::from_secs(env("STORE_WINDOW", if smoke { 5 } else { 600 }));
    let retention = Duration::from_secs(env("STORE_RETENTION", if smoke { 2 } else { 120 }));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(run(rate, window, retention));
}

async fn run(rate: usize, window: Duration, retention: Duration) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("centre.db");
    let (store, _) = vigil::store::open(path.as_path()).expect("open the store");
    let targets = (rate as f64 * INTERVAL_S) as usize;
    let per_tick = rate / TICKS_PER_S as usize;
    let names: Vec<String> = (0..targets).map(|i| format!("commune-{}/check-{}", i / 20, i % 20)).collect();
    let mut down = vec![false; targets];
    let (mut next, mut sent, mut changes) = (0usize, 0usize, 0usize);
    let mut latencies: Vec<Duration> = Vec::new();
    let mut flushes = tokio::task::JoinSet::new();
    let mut sizes = Vec::new();
    let day_ms = vigil::model::now_ms() / 86_400_000 * 86_400_000;
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / TICKS_PER_S);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (begin, mut last_prune, mut last_size) = (Instant::now(), Instant::now(), Instant::now());
    while begin.elapsed() < window {
        ticker.tick().await;
        let sent_at = Instant::now();
        let now_ms = vigil::model::now_ms();
        for _ in 0..per_tick {
            let i = next % targets;
            next += 1;
            // The flapping targets fail in every other quarter of the window.
            let phase = (begin.elapsed().as_secs_f64() / window.as_secs_f64() * 4.0) as u32 % 2 == 1;
            let failing = i.is_multiple_of(FLAPPING_EVERY) && phase;
            if failing != down[i] {
                down[i] = failing;
                changes += 1;
                let (from, to) = if failing { (State::Up, State::Down) } else { (State::Down, State::Up) };
                store.send(Record::Change(ChangeRecord {
                    target: names[i].clone(),
                    at_ms: now_ms,
                    from,
                    to,
                    reason: failing.then_some("timeout"),
                    message: if failing { "timed out after 5s".into() } else { String::new() },
                }));
            }
            store.send(Record::Result(ResultRecord {
                target: names[i].clone(),
                at_ms: now_ms,
                health: if failing { "down" } else { "up" },
                reason: failing.then_some("timeout"),
                duration_ms: 2.0 + (i % 97) as f64,
                message: if failing { "timed out after 5s".into() } else { "HTTP 200".into() },
                state: TargetState {
                    state: if failing { State::Down } else { State::Up },
                    since_ms: now_ms,
                    streak: None,
                },
                day_ms,
                echoes: None,
            }));
            sent += 1;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        store.send(Record::Flush(tx));
        flushes.spawn(async move { rx.await.map(|_| sent_at.elapsed()) });
        while let Some(done) = flushes.try_join_next() {
            latencies.extend(done.ok().and_then(Result::ok));
        }
        if last_prune.elapsed() >= Duration::from_secs(60).min(retention) {
            last_prune = Instant::now();
            store.send(Record::Prune(now_ms - retention.as_millis() as i64));
        }
        if last_size.elapsed() >= Duration::from_secs(60).min(window / 2) {
            last_size = Instant::now();
            sizes.push(database_bytes(&path));
        }
    }
    while let Some(done) = flushes.join_next().await {
        latencies.extend(done.ok().and_then(Result::ok));
    }
    let elapsed = begin.elapsed();
    let shed = store.health().snapshot().shed_results;
    store.close().await;
    report(rate, sent, changes, elapsed, &mut latencies, &sizes, retention, shed, &path);
}

/// The database file with its write-ahead log.
fn database_bytes(path: &std::path::Path) -> u64 {
    let size = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    size(path.to_path_buf()) + size(path.with_extension("db-wal"))
}

#[allow(clippy::too_many_arguments)]
fn report(
    rate: usize,
    sent: usize,
    changes: usize,
    elapsed: Duration,
    latencies: &mut [Duration],
    sizes: &[u64],
    retention: Duration,
    shed: u64,
    path: &std::path::Path,
) {
    latencies.sort();
    let at = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    let conn = rusqlite::Connection::open(path).expect("open for counting");
    let kept: i64 = conn.query_row("SELECT count(*) FROM results", [], |r| r.get(0)).expect("count");
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).expect("pages");
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).expect("page size");
    let used = (pages * page_size) as f64;
    let per_result = used / kept.max(1) as f64;
    let rate_done = sent as f64 / elapsed.as_secs_f64();
    println!("{:38} {:>24}", "asked", format!("{rate} results/s, {:.0} s", elapsed.as_secs_f64()));
    println!("{:38} {:>24}   goal >= 2,500 (national)", "written", format!("{rate_done:.0} results/s"));
    println!("{:38} {:>24}", "state changes", changes);
    println!(
        "{:38} {:>24}   goal p99 < 1,000 ms",
        "write latency p50 / p99 / max",
        format!("{:.1} / {:.1} / {:.1} ms", ms(at(0.5)), ms(at(0.99)), ms(latencies.last()))
    );
    println!("{:38} {:>24}", "results shed", shed);
    println!(
        "{:38} {:>24}   {} results kept ({} s retention)",
        "bytes per stored result",
        format!("{per_result:.0} B"),
        kept,
        retention.as_secs()
    );
    println!(
        "{:38} {:>24}",
        "raw results per day at this rate",
        format!("{:.1} GB", per_result * rate_done * 86_400.0 / 1e9)
    );
    let minutes: Vec<String> = sizes.iter().map(|s| format!("{:.0}", *s as f64 / 1e6)).collect();
    println!("{:38} {:>24}", "database size at each minute (MB)", minutes.join(" "));
    assert!(!latencies.is_empty(), "no write was timed");
    assert!(changes > 0, "the flapping targets changed state");
    assert_eq!(shed, 0, "results were shed");
}
