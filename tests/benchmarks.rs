//! The benchmark scripts run end to end in their short smoke mode, against the debug
//! binary; their figures are not judged here (speed is measured by running them, see
//! BENCHMARKS.md). ICMP needs root, as the ICMP tests do.

use std::process::Command;

/// Runs `bench/NAME --smoke` and returns its standard output.
fn smoke(name: &str) -> String {
    let script = format!("{}/bench/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&script)
        .arg("--smoke")
        .env("VIGIL_BIN", env!("CARGO_BIN_EXE_vigil"))
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{name} --smoke failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn compare_blackbox_prints_a_ratio_for_every_case() {
    let stdout = smoke("compare-blackbox");
    let modules = ["http_2xx", "tcp_connect", "icmp"];
    for case in modules.iter().flat_map(|m| [format!("{m}, saturation"), format!("{m}, paced 200/s")]) {
        assert!(stdout.lines().any(|l| l.starts_with(&case) && l.trim_end().ends_with('×')), "{case} in\n{stdout}");
    }
}

#[test]
fn compare_fping_prints_the_ratio_per_echo() {
    let stdout = smoke("compare-fping");
    assert!(stdout.starts_with("case (20 addresses × 3 echoes)"), "{stdout}");
    for row in ["vigil probe -f, one process", "vigil checks, every", "vigil /probe, one request per address"] {
        assert!(stdout.lines().any(|l| l.starts_with(row) && l.ends_with('×')), "{row} in\n{stdout}");
    }
}

#[test]
fn scale_run_reports_every_figure_and_starves_nothing() {
    let stdout = smoke("scale-run");
    for figure in ["CPU", "RSS", "scheduler lag p99", "/metrics scrape", "store writes"] {
        assert!(stdout.lines().any(|l| l.starts_with(figure)), "{figure} in\n{stdout}");
    }
    let starved = stdout.lines().find(|l| l.starts_with("starved targets")).expect("starved line");
    let words: Vec<&str> = starved.split_whitespace().collect();
    assert_eq!(words[2..5], ["0", "of", "120"], "no target waits past its interval + timeout: {starved}");
}

#[test]
fn alert_latency_measures_every_incident() {
    let stdout = smoke("alert-latency");
    let incidents = stdout.lines().find(|l| l.starts_with("incidents")).expect("incidents line");
    assert_eq!(incidents.split_whitespace().last(), Some("5"), "{stdout}");
    let behind = stdout.lines().find(|l| l.starts_with("incidents behind a parent")).expect("behind line");
    assert_eq!(behind.split_whitespace().last(), Some("5"), "{stdout}");
    for figure in ["latency p50", "latency p99", "latency max", "behind p50", "behind p99", "behind max"] {
        let line = stdout.lines().find(|l| l.starts_with(figure)).unwrap_or_else(|| panic!("{figure} in\n{stdout}"));
        let ms: i64 = line.split_whitespace().nth(2).and_then(|v| v.parse().ok()).expect("a number of ms");
        assert!(ms >= 0, "a mail cannot arrive before the probe that caused it: {line}");
    }
}

#[test]
fn web_abuse_serves_the_checks_and_a_legitimate_client_through_an_attack() {
    let stdout = smoke("web-abuse");
    for figure in ["connections refused", "refusal time max", "RSS peak", "scheduler lag p99", "legit /api/v1/status"] {
        assert!(stdout.lines().any(|l| l.starts_with(figure)), "{figure} in\n{stdout}");
    }
    let changes = stdout.lines().find(|l| l.starts_with("false state changes")).expect("state changes line");
    assert_eq!(changes.split_whitespace().nth(3), Some("0"), "the attack changed no check's state: {stdout}");
}

#[test]
fn vantage_bench_back_fills_everything_and_carries_the_national_load() {
    let stdout = smoke("vantage");
    for figure in
        ["back-fill", "live results meanwhile", "agent RSS", "national load", "centre CPU", "forward-to-visible"]
    {
        assert!(stdout.lines().any(|l| l.starts_with(figure)), "{figure} in\n{stdout}");
    }
    // The script itself fails unless the centre holds every back-filled result and every
    // ingest succeeded; here only that it measured something.
    let backfill = stdout.lines().find(|l| l.starts_with("back-fill")).expect("back-fill line");
    assert!(backfill.contains("1000 results"), "{backfill}");
}

#[test]
fn cluster_bench_reports_each_node_the_database_and_a_failover() {
    let stdout = smoke("cluster");
    for figure in ["node-a CPU / RSS", "database rows written", "database growth", "every one probed by the others"] {
        assert!(stdout.contains(figure), "{figure} missing:\n{stdout}");
    }
}

#[test]
fn idle_slope_reports_memory_per_idle_check() {
    let stdout = smoke("idle-slope");
    for size in ["200", "400"] {
        assert!(stdout.lines().any(|l| l.trim_start().starts_with(size)), "{size} checks in\n{stdout}");
    }
    let slope = stdout.lines().find(|l| l.starts_with("slope")).expect("slope line");
    assert!(slope.contains("KB a check over a base of"), "{slope}");
}
