//! The status home page at national scale: 10,000 checks with 90 days of history seeded
//! through the store's writer, served by the real daemon (in-process, serving without
//! probing), fetched over loopback HTTP. The page reads the store through one long-lived
//! connection with set queries (`store::Reader`), so its cost is a few statements plus
//! the accounting, not two connections per target.
//! `cargo bench --bench home_page`; `cargo test` runs it once on 50 checks.

use std::hint::black_box;
use std::path::Path;

use criterion::Criterion;
use vigil::model::State;
use vigil::store::{ChangeRecord, Record};

const DAY: i64 = 86_400_000;

/// `checks` TCP checks over ten systems (never run: the daemon serves without probing).
fn write_config(dir: &Path, checks: usize) {
    let mut text = format!(
        "instance: {{ name: bench, timezone: Asia/Ho_Chi_Minh }}\nserver: {{ listen: \"127.0.0.1:0\" }}\nstorage: {{ path: \"{}\" }}\nsystems:\n",
        dir.join("vigil.db").display()
    );
    for s in 0..10 {
        text.push_str(&format!("  - id: system-{s}\n    sla: 99.9%\n    checks:\n"));
        for c in (s..checks).step_by(10) {
            text.push_str(&format!(
                "      - {{ id: check-{c}, tcp: {{ address: \"svc-{c}.laichau.example:443\" }} }}\n"
            ));
        }
    }
    std::fs::write(dir.join("vigil.yaml"), text).expect("write config");
}

/// 90 days: every check up from the start and down for 10 minutes every 30 days.
fn seed(dir: &Path, checks: usize, now: i64) {
    let (store, _) = vigil::store::open(dir.join("vigil.db")).expect("store");
    let start = now - 90 * DAY;
    for c in 0..checks {
        let target = format!("system-{}/check-{c}", c % 10);
        let change = |at_ms, from, to| {
            Record::Change(ChangeRecord { target: target.clone(), at_ms, from, to, reason: None, message: "x".into() })
        };
        store.send(change(start, State::Unknown, State::Up));
        for month in 0..3 {
            let down = start + month * 30 * DAY + (c as i64 * 60_000) % (30 * DAY);
            store.send(change(down, State::Up, State::Down));
            store.send(change(down + 600_000, State::Down, State::Up));
        }
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.send(Record::Flush(tx));
    rx.blocking_recv().expect("flushed");
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let checks = if smoke { 50 } else { 10_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), checks);
    seed(dir.path(), checks, vigil::model::now_ms());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let app = runtime
        .block_on(vigil::app::App::start(
            vigil::app::ConfigSource::File(dir.path().join("vigil.yaml")),
            vigil::app::Overrides { no_probes: true, ..Default::default() },
        ))
        .expect("daemon");
    let url = format!("http://{}/", app.addr());
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let fetch = || {
        runtime.block_on(async {
            let response = client.get(url.parse().expect("url")).await.expect("GET /");
            assert_eq!(response.status(), 200);
            http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes()
        })
    };
    let page = String::from_utf8(fetch().to_vec()).expect("utf-8");
    assert!(page.contains("system-9") && page.contains('%'), "the page lists every system with its uptime");

    let mut c = Criterion::default().configure_from_args().sample_size(10);
    c.bench_function(&format!("home page: GET /, {checks} checks × 90 days"), |b| b.iter(|| black_box(fetch().len())));
    c.final_summary();
    runtime.block_on(app.shutdown());
}
