//! The daemon run in-process against real loopback peers: states, reason codes and metrics
//! as scraped over HTTP, promtool on the exposition, thresholds, restart, reload.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use vigil::model::Health;
use vigil::model::State;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_report_states_reasons_and_metrics() {
    let web = web_server(None).await;
    let pki = TestPki::new();
    let valid = web_server(Some(pki.server_config(&["127.0.0.1"], days_from_now(-1), days_from_now(60)))).await;
    let expired = web_server(Some(pki.server_config(&["127.0.0.1"], days_from_now(-90), days_from_now(-1)))).await;
    let wrong_host =
        web_server(Some(pki.server_config(&["wrong.example"], days_from_now(-1), days_from_now(60)))).await;
    let banner = banner_server("SSH-2.0-OpenSSH_9.2\r\n").await;
    let closed = closed_port().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).expect("write ca");
    let w = web.addr;
    let systems = format!(
        r#"systems:
  - id: web
    checks:
      - {{ id: ok, http: {{ url: "http://{w}/ok" }}, conditions: ["[STATUS] == 200", "[BODY] == pat(*good*)"] }}
      - {{ id: json, http: {{ url: "http://{w}/json" }}, conditions: ["[BODY].queue.pending < 500"] }}
      - {{ id: unavailable, http: {{ url: "http://{w}/status/503" }}, conditions: ["[STATUS] == 200"] }}
      - {{ id: slow, timeout: 500ms, http: {{ url: "http://{w}/slow" }} }}
      - {{ id: huge, http: {{ url: "http://{w}/huge", max_body_bytes: 65536 }} }}
      - {{ id: loop, http: {{ url: "http://{w}/loop", max_redirects: 5 }} }}
      - {{ id: redirect, http: {{ url: "http://{w}/redirect" }}, conditions: ["[STATUS] == 200"] }}
  - id: tls
    checks:
      - {{ id: valid, http: {{ url: "https://{valid}/ok", ca_file: ca.pem }}, warning_conditions: ["[CERTIFICATE_EXPIRATION] > 21d"] }}
      - {{ id: expired, http: {{ url: "https://{expired}/ok", ca_file: ca.pem }} }}
      - {{ id: wrong-host, http: {{ url: "https://{wrong}/ok", ca_file: ca.pem }} }}
      - {{ id: insecure, http: {{ url: "https://{expired}/ok", insecure_skip_verify: true }} }}
  - id: tcp
    checks:
      - {{ id: open, tcp: {{ address: "{w}" }} }}
      - {{ id: closed, tcp: {{ address: "{closed}" }} }}
      - {{ id: banner, tcp: {{ address: "{banner}", expect: "^SSH-2\\.0-" }} }}
      - {{ id: wrong-banner, tcp: {{ address: "{banner}", expect: "^220 " }} }}
"#,
        valid = valid.addr,
        expired = expired.addr,
        wrong = wrong_host.addr,
    );
    write_config(dir.path(), &systems);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(
        &mut events,
        WAIT,
        &[
            ("web/ok", State::Up),
            ("web/json", State::Up),
            ("web/unavailable", State::Down),
            ("web/slow", State::Down),
            ("web/huge", State::Down),
            ("web/loop", State::Down),
            ("web/redirect", State::Up),
            ("tls/valid", State::Up),
            ("tls/expired", State::Down),
            ("tls/wrong-host", State::Down),
            ("tls/insecure", State::Up),
            ("tcp/open", State::Up),
            ("tcp/closed", State::Down),
            ("tcp/banner", State::Up),
            ("tcp/wrong-banner", State::Down),
        ],
    )
    .await;

    let base = format!("http://{}", app.addr());
    let metrics = get(&format!("{base}/metrics")).await;
    let labels = |system: &str, check: &str| {
        format!(
            "check=\"{check}\",kind=\"{}\",system=\"{system}\",target=\"{check}\"",
            if system == "tcp" { "tcp" } else { "http" }
        )
    };
    assert!(
        metrics.contains(r#"vigil_check_up{check="ok",kind="http",system="web",target="ok",location="test-lab"} 1"#),
        "constant location label\n{metrics}"
    );
    for (system, check, up, reason) in [
        ("web", "ok", 1.0, None),
        ("web", "unavailable", 0.0, Some("http_status")),
        ("web", "slow", 0.0, Some("timeout")),
        ("web", "huge", 0.0, Some("body_size")),
        ("web", "loop", 0.0, Some("redirects")),
        ("tls", "valid", 1.0, None),
        ("tls", "expired", 0.0, Some("tls")),
        ("tls", "wrong-host", 0.0, Some("tls")),
        ("tcp", "closed", 0.0, Some("refused")),
        ("tcp", "wrong-banner", 0.0, Some("expect")),
    ] {
        let l = labels(system, check);
        assert_eq!(sample(&metrics, "vigil_check_up", &[&l]), Some(up), "{system}/{check} up\n{metrics}");
        let state = if up == 1.0 { "up" } else { "down" };
        assert_eq!(
            sample(&metrics, "vigil_check_state", &[&l, &format!("state=\"{state}\"")]),
            Some(1.0),
            "{system}/{check} state"
        );
        match reason {
            Some(r) => assert_eq!(
                sample(&metrics, "vigil_check_failure_info", &[&l, &format!("reason=\"{r}\"")]),
                Some(1.0),
                "{system}/{check} reason {r}\n{metrics}"
            ),
            None => {
                assert_eq!(sample(&metrics, "vigil_check_failure_info", &[&l]), None, "{system}/{check} has no failure")
            }
        }
    }
    assert_eq!(sample(&metrics, "vigil_http_status_code", &[&labels("web", "unavailable")]), Some(503.0));
    assert_eq!(sample(&metrics, "vigil_http_status_code", &[&labels("web", "redirect")]), Some(200.0));
    assert_eq!(sample(&metrics, "vigil_checks_configured", &[]), Some(15.0));
    assert_eq!(sample(&metrics, "vigil_system_up", &[r#"system="web""#]), Some(0.0));
    assert_eq!(sample(&metrics, "vigil_system_up", &[r#"system="tls""#]), Some(0.0));
    assert!(
        sample(&metrics, "vigil_probe_duration_seconds_count", &[r#"system="web""#, r#"kind="http""#])
            .is_some_and(|n| n >= 7.0)
    );
    assert!(sample(&metrics, "vigil_scheduler_lag_seconds_count", &[]).is_some_and(|n| n >= 15.0));
    assert_eq!(
        sample(&metrics, "vigil_build_info", &[&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))]),
        Some(1.0)
    );
    assert!(sample(&metrics, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0));

    // Certificates: the valid one's not-after is reported; the expired one stays reported.
    let valid_after = sample(&metrics, "vigil_tls_cert_not_after_timestamp_seconds", &[&labels("tls", "valid")])
        .expect("valid cert reported");
    let expired_after = sample(&metrics, "vigil_tls_cert_not_after_timestamp_seconds", &[&labels("tls", "expired")])
        .expect("expired cert still reported");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    assert!((valid_after - now - 60.0 * 86_400.0).abs() < 300.0, "valid cert expires in 60 days: {valid_after}");
    assert!((now - expired_after - 86_400.0).abs() < 300.0, "expired cert ended a day ago: {expired_after}");

    // The status API explains each failure with the observed value.
    let status: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("json");
    let target = |system: usize, check: usize| &status["systems"][system]["checks"][check]["targets"][0];
    assert_eq!(target(0, 2)["state"], "down");
    assert_eq!(target(0, 2)["last_result"]["failed_conditions"][0], "[STATUS] (503) == 200");
    assert_eq!(target(0, 2)["last_result"]["reason"], "http_status");
    assert_eq!(target(0, 6)["last_result"]["redirects"], 1);
    assert_eq!(target(1, 0)["last_result"]["certificates"][0]["subject"], "CN=127.0.0.1");
    assert!(target(1, 1)["last_result"]["message"].as_str().is_some_and(|m| m.contains("xpired")), "{}", target(1, 1));
    assert!(target(0, 0)["since"].as_str().is_some_and(|s| s.ends_with("+07:00")), "since in the instance time zone");

    // The exposition passes the real promtool.
    let mut promtool = tool("promtool", "prometheus")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    promtool.stdin.take().expect("stdin").write_all(metrics.as_bytes()).expect("feed promtool");
    let out = promtool.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Issue #22, item 2: a gzip scrape streams (chunked, no length) and unzips to the same
    // families and series.
    let (code, heads, zipped) = send_raw("GET", &format!("{base}/metrics"), &[("accept-encoding", "gzip")], "").await;
    assert_eq!(code, 200);
    assert_eq!(heads.get("content-encoding").map(String::as_str), Some("gzip"), "{heads:?}");
    assert_eq!(heads.get("transfer-encoding").map(String::as_str), Some("chunked"), "{heads:?}");
    assert!(!heads.contains_key("content-length"), "{heads:?}");
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut unzipped).expect("gzip");
    let series = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with("process_"))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(s, _)| s.to_string())
            .collect()
    };
    assert_eq!(series(&unzipped), series(&metrics), "the same series, zipped or not");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_hold_and_state_survives_a_restart() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |interval: &str| {
        format!(
            "systems:\n  - id: web\n    checks:\n      - {{ id: switch, interval: {interval}, failure_threshold: 3, success_threshold: 2, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
            web.addr
        )
    };
    write_config(dir.path(), &check("1s"));
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("web/switch", State::Up)]).await;

    // Down only after the third consecutive failure.
    web.switch.store(503, Ordering::SeqCst);
    let mut failures = 0;
    let down = wait_for(&mut events, WAIT, |e| {
        if e.health == Health::Down {
            failures += 1;
        }
        e.transition.is_some()
    })
    .await;
    assert_eq!((down.state, failures), (State::Down, 3), "down after failure_threshold = 3 failures");

    // Up again only after the second consecutive success.
    web.switch.store(200, Ordering::SeqCst);
    let mut successes = 0;
    let up = wait_for(&mut events, WAIT, |e| {
        if e.health == Health::Up {
            successes += 1;
        }
        e.transition.is_some()
    })
    .await;
    assert_eq!((up.state, successes), (State::Up, 2), "up after success_threshold = 2 successes");

    web.switch.store(503, Ordering::SeqCst);
    wait_for(&mut events, WAIT, |e| e.state == State::Down && e.transition.is_some()).await;
    let base = format!("http://{}", app.addr());
    let before: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("json");
    let before = before["systems"][0]["checks"][0]["targets"][0].clone();
    assert_eq!(before["state"], "down");
    app.shutdown().await;

    // Restart with a long interval: the state shown before any new probe is the stored one.
    write_config(dir.path(), &check("1h"));
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    let after: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("json");
    let after = &after["systems"][0]["checks"][0]["targets"][0];
    assert_eq!(after["state"], "down", "state restored from the store");
    assert_eq!(after["since"], before["since"], "since restored, not reset");
    let metrics = get(&format!("{base}/metrics")).await;
    assert_eq!(sample(&metrics, "vigil_check_state", &[r#"check="switch""#, r#"state="down""#]), Some(1.0));
    app.shutdown().await;

    let changes = vigil::store::query::changes(dir.path().join("vigil.db"), "web/switch").expect("read store");
    let judged: Vec<(&str, &str)> = changes
        .iter()
        .filter(|c| c.reason.as_deref() != Some("stopped"))
        .map(|c| (c.from.as_str(), c.to.as_str()))
        .collect();
    assert_eq!(judged, [("unknown", "up"), ("up", "down"), ("down", "up"), ("up", "down")]);
    let stops = changes.iter().filter(|c| c.reason.as_deref() == Some("stopped") && c.to == "unknown").count();
    assert_eq!(stops, 2, "each clean stop is recorded: the time after it is no data");
    assert!(changes.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_old_config_on_error_and_applies_a_valid_one() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let one = |id: &str| {
        format!(
            "systems:\n  - id: web\n    checks:\n      - {{ id: {id}, http: {{ url: \"http://{}/ok\" }} }}\n",
            web.addr
        )
    };
    write_config(dir.path(), &one("first"));
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("web/first", State::Up)]).await;
    let base = format!("http://{}", app.addr());

    // Writes need the token.
    assert_eq!(request("POST", &format!("{base}/-/reload"), None).await.0, 401);
    assert_eq!(request("POST", &format!("{base}/-/reload"), Some("wrong")).await.0, 401);

    // A broken config is refused; the old checks keep running and the gauge says so.
    std::fs::write(
        dir.path().join("vigil.yaml"),
        "systems:\n  - id: web\n    checks:\n      - { id: x, interval: never }\n",
    )
    .expect("write");
    let (status, body) = request("POST", &format!("{base}/-/reload"), Some(TOKEN)).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("vigil.yaml:4:"), "errors are located: {body}");
    let metrics = get(&format!("{base}/metrics")).await;
    assert_eq!(sample(&metrics, "vigil_config_last_reload_successful", &[]), Some(0.0));
    let mut first_runs = 0;
    wait_for(&mut events, WAIT, |e| {
        first_runs += usize::from(e.target_id == "web/first");
        first_runs >= 2
    })
    .await;

    // A valid config replaces the checks and their series.
    write_config(dir.path(), &one("second"));
    let (status, body) = request("POST", &format!("{base}/-/reload"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    wait_states(&mut events, WAIT, &[("web/second", State::Up)]).await;
    let metrics =
        metrics_until(&base, "the second check", |m| sample(m, "vigil_check_up", &[r#"check="second""#]).is_some())
            .await;
    assert_eq!(sample(&metrics, "vigil_config_last_reload_successful", &[]), Some(1.0));
    assert_eq!(sample(&metrics, "vigil_check_up", &[r#"check="second""#]), Some(1.0));
    assert!(!metrics.contains(r#"check="first""#), "series of the removed check are gone");
    assert_eq!(sample(&metrics, "vigil_checks_configured", &[]), Some(1.0));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_endpoints_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), "systems: []\n");
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    assert_eq!(request("GET", &format!("{base}/-/healthy"), None).await.0, 200);
    assert_eq!(request("GET", &format!("{base}/-/ready"), None).await.0, 200);
    assert_eq!(request("GET", &format!("{base}/nope"), None).await.0, 404);
    assert_eq!(request("DELETE", &format!("{base}/metrics"), None).await.0, 405);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_command_prints_one_result() {
    let web = web_server(None).await;
    let run = |args: Vec<String>| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(&args)
            .output()
            .await
            .expect("run vigil probe");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, text) = run(vec!["probe".into(), format!("http://{}/ok", web.addr)]).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(": UP in ") && text.contains("status: 200"), "{text}");

    let url = format!("http://{}/status/503", web.addr);
    let (code, text) =
        run(vec!["probe".into(), url, "--condition".into(), "[STATUS] == 200".into(), "--json".into()]).await;
    assert_eq!(code, Some(2), "down exits 2: {text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json output");
    assert_eq!(json["health"], "down");
    assert_eq!(json["reason"], "http_status");
    assert_eq!(json["failed_conditions"][0], "[STATUS] (503) == 200");

    let closed = closed_port().await;
    let (code, text) = run(vec!["probe".into(), closed.to_string()]).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("reason: refused"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_command_probes_many_targets_side_by_side() {
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run vigil probe");
        use std::io::Write;
        let _ = child.stdin.take().expect("stdin").write_all(stdin.unwrap_or("").as_bytes());
        let out = child.wait_with_output().expect("vigil probe output");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // ICMP to three loopback addresses, one of them IPv6: every echo answered.
    let (code, text, err) =
        run(&["probe", "--kind", "icmp", "--count", "2", "--spacing", "10ms", "127.0.0.1", "127.0.0.2", "::1"], None);
    assert_eq!(code, Some(0), "{text}{err}");
    for target in ["127.0.0.1: UP", "127.0.0.2: UP", "::1: UP"] {
        assert!(text.contains(target), "{target} in {text}");
    }
    assert_eq!(text.matches("echoes: 2 sent, 2 received, 0% loss").count(), 3, "{text}");

    // TCP from a file and standard input: one listening port, one closed; the worst wins.
    let web = web_server(None).await;
    let closed = closed_port().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("targets.txt");
    std::fs::write(&list, format!("# listening\n{}\n\n", web.addr)).expect("write list");
    let (code, text, err) =
        run(&["probe", "-q", "-f", &list.display().to_string(), "-f", "-"], Some(&format!("{closed}\n")));
    assert_eq!(code, Some(2), "down exits 2: {text}{err}");
    assert!(text.contains(&format!("{closed}: DOWN")) && text.contains("reason: refused"), "{text}");
    assert!(!text.contains(&format!("{}: UP", web.addr)), "--quiet leaves out what is up: {text}");
    assert!(text.trim_end().ends_with("1 of 2 up"), "{text}");

    // JSON: an array, in the order given.
    let (code, text, err) = run(&["probe", "--json", &web.addr.to_string(), &closed.to_string()], None);
    assert_eq!(code, Some(2), "{err}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json array");
    let results: Vec<(&str, &str)> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|o| (o["target"].as_str().unwrap_or(""), o["health"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(results, [(web.addr.to_string().as_str(), "up"), (closed.to_string().as_str(), "down")]);

    // Bad input is named.
    let (code, _, err) = run(&["probe", "--kind", "dns", "--query-type", "BOGUS", "127.0.0.1"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("--query-type BOGUS"), "{err}");
    let (code, _, err) = run(&["probe", "-f", "/nonexistent/targets"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("/nonexistent/targets"), "{err}");
}

/// Starts `vigil run` under `sh` with the given `ulimit` options; returns the child (its
/// PID is Vigil's, by `exec`) and its standard error, line by line as it arrives.
fn run_with_ulimit(dir: &std::path::Path, ulimit: &str) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let script = format!("ulimit {ulimit} && exec \"$0\" run -c \"$1\"");
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_vigil"), &dir.join("vigil.yaml").display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vigil run");
    let (lines, log) = std::sync::mpsc::channel();
    let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (child, log)
}

/// The soft and hard "Max open files" of a process.
fn open_files_limits(pid: u32) -> Option<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    Some((words[3].to_string(), words[4].to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_files_limit_is_raised_and_a_too_low_one_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), "systems: []\n");

    // A low soft limit under a high hard one: raised to the hard one at start.
    let (mut child, _) = run_with_ulimit(dir.path(), "-Sn 512");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = open_files_limits(child.id());
        if seen.as_ref().is_some_and(|(soft, hard)| soft == hard) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let (soft, hard) = seen.expect("limits of the running daemon");
    assert_eq!(soft, hard, "soft open-files limit raised to the hard one");
    assert_ne!(soft, "512");

    // A hard limit below max_concurrent_probes (default 4,096) + 256: a warning names the setting.
    let (mut child, lines) = run_with_ulimit(dir.path(), "-n 600");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = String::new();
    while !log.contains("max_concurrent_probes") {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines.recv_timeout(left) else { break };
        log.push_str(&line);
        log.push('\n');
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("open-files limit") && log.contains("scheduler.max_concurrent_probes"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_with_a_deep_accept_queue() {
    // Rust's default backlog (128) dropped SYNs when 200 `/probe` requests arrived at once.
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), "systems: []\n");
    let app = start_daemon(dir.path()).await;
    let out =
        tool("ss", "iproute2").args(["-ltnH", &format!("sport = :{}", app.addr().port())]).output().expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // For a listening socket, ss shows the backlog in the Send-Q column.
    let backlog = text.split_whitespace().nth(2);
    assert_eq!(backlog, Some("1024"), "ss: {text}");
    app.shutdown().await;
}

/// Requests that once panicked the server (issue #13, item 5) get a 4xx, and the server
/// goes on answering: a history path with no check in it (sliced out of range), and a
/// `/probe` scrape timeout no duration can hold (`1e300` overflowed the conversion).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_4xx_not_a_panic() {
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config_with(
        dir.path(),
        r#"probe_endpoint: { enabled: true, allow: ["127.0.0.0/8"] }"#,
        &format!(
            "modules:\n  http_2xx: {{ http: {{}}, timeout: 5s }}\n\
             {}",
            one_http_check(web.addr)
        ),
    );
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    // Far times and windows once overflowed the arithmetic (debug builds panicked).
    for path in [
        "/api/v1/checks/history",
        "/api/v1/checks//history",
        "/api/v1/checks/nope/history",
        "/api/v1/checks/web/ok/history?from=-9223372036854775808",
        "/api/v1/checks/web/ok/history?from=0&to=9223372036854775807",
        "/badge/web/uptime/500000y.svg",
        "/badge/web/uptime/401d.svg",
    ] {
        let (code, body) = request("GET", &format!("{base}{path}"), None).await;
        assert!((400..500).contains(&code), "{path}: {code} {body}");
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let target: String = url::form_urlencoded::byte_serialize(format!("http://{}/ok", web.addr).as_bytes()).collect();
    for (timeout, expected) in [("1e300", 400), ("abc", 400), ("-1", 400), ("0", 400), ("NaN", 400), ("2.5", 200)] {
        let req = hyper::Request::get(format!("{base}/probe?module=http_2xx&target={target}"))
            .header("X-Prometheus-Scrape-Timeout-Seconds", timeout)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let resp = client.request(req).await.unwrap_or_else(|e| panic!("scrape timeout {timeout}: {e}"));
        assert_eq!(resp.status().as_u16(), expected, "scrape timeout {timeout}");
    }
    let huge = r#"{"systems": ["web"], "duration": "500000y"}"#;
    let auth = format!("Bearer {TOKEN}");
    let (code, _, body) = send("POST", &format!("{base}/api/v1/maintenance"), &[("authorization", &auth)], huge).await;
    assert_eq!(code, 400, "a maintenance window of 500000 years: {body}");
    // The server still answers (`get` asserts a 200).
    get(&format!("{base}/-/healthy")).await;
    app.shutdown().await;
}

/// Issue #13, item 10: every answer carries the security headers (no script, no framing, no
/// sniffing, no referrer — an acknowledgement link's signature sits in its query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), "systems: []\n");
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/api/v1/status"),
        ("GET", "/metrics"),
        ("GET", "/nope"),
        ("GET", "/ack?incident=1"),
        ("POST", "/-/reload"),
    ] {
        let (code, heads, _) = send(method, &format!("{base}{path}"), &[], "").await;
        let csp = heads.get("content-security-policy").map(String::as_str).unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path} ({code}): {heads:?}"
        );
        assert_eq!(heads.get("x-content-type-options").map(String::as_str), Some("nosniff"), "{path}");
        assert_eq!(heads.get("referrer-policy").map(String::as_str), Some("same-origin"), "{path}");
        assert_eq!(heads.get("x-frame-options").map(String::as_str), Some("DENY"), "{path}");
    }
    app.shutdown().await;
}

/// Issue #13: every administrative action is recorded — who, from which address, what, how
/// it ended — in the store, shown by `GET /api/v1/audit` (admin token) and on an admin page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrative_actions_leave_an_audit_trail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = web_server(None).await;
    write_config(dir.path(), &one_http_check(web.addr));
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    let auth = format!("Bearer {TOKEN}");
    assert_eq!(request("POST", &format!("{base}/-/reload"), Some(TOKEN)).await.0, 200);
    let window = r#"{"systems": ["web"], "duration": "1h", "reason": "upgrade", "by": "Lò Văn Minh"}"#;
    assert_eq!(send("POST", &format!("{base}/api/v1/maintenance"), &[("authorization", &auth)], window).await.0, 201);
    let form = [("content-type", "application/x-www-form-urlencoded")];
    assert_eq!(send("POST", &format!("{base}/ui/login"), &form, "token=wrong-token-0123456789ab&next=/").await.0, 401);
    let (code, heads, _) = send("POST", &format!("{base}/ui/login"), &form, &format!("token={TOKEN}&next=/")).await;
    assert_eq!(code, 303);
    let cookie = heads.get("set-cookie").and_then(|c| c.split(';').next()).expect("cookie").to_string();

    assert_eq!(request("GET", &format!("{base}/api/v1/audit"), None).await.0, 401, "the trail needs the token");
    let deadline = Instant::now() + Duration::from_secs(20);
    let entries = loop {
        let (code, body) = request("GET", &format!("{base}/api/v1/audit"), Some(TOKEN)).await;
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        let entries = v["audit"].as_array().cloned().unwrap_or_default();
        if entries.len() >= 4 {
            break entries;
        }
        assert!(Instant::now() < deadline, "the trail is incomplete: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["login", "login failed", "maintenance", "reload"], "newest first: {entries:?}");
    assert!(entries.iter().all(|e| e["address"] == "127.0.0.1"), "{entries:?}");
    assert!(entries[2]["detail"].as_str().is_some_and(|d| d.contains("upgrade") && d.contains("answered 201")));
    assert_eq!(entries[3]["who"], "admin (token)");

    let (code, _, page) = send("GET", &format!("{base}/ui/audit"), &[("cookie", &cookie)], "").await;
    assert_eq!(code, 200);
    assert!(page.contains("login failed") && page.contains("Lò Văn Minh"), "{page}");
    assert_eq!(send("GET", &format!("{base}/ui/audit"), &[], "").await.0, 303, "the page needs a session");
    app.shutdown().await;
}

/// Issue #13, item 4: one client holding connections is capped (a connection beyond its cap
/// is closed at once) while every other client is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_connections_is_capped_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), "systems: []\n");
    let app = start_daemon(dir.path()).await;
    let addr = app.addr();
    let from_flooder = || async move {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.2:0".parse().expect("addr")).expect("bind 127.0.0.2");
        socket.connect(addr).await.expect("connect")
    };
    // Each of the flooder's connections is known to be accepted once it has been answered
    // (kept alive); then one more is closed at once.
    let mut idle = Vec::new();
    for _ in 0..vigil::web::MAX_PER_CLIENT {
        let mut held = from_flooder().await;
        held.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        let mut head = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(5), held.read_exact(&mut head)).await.expect("in time").expect("read");
        assert_eq!(&head, b"HTTP/1.1 200", "a connection under the cap is served");
        idle.push(held);
    }
    let mut extra = from_flooder().await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the connection beyond the cap was not closed: {read:?}");
    // Another client is served meanwhile.
    get(&format!("http://{addr}/-/healthy")).await;
    // Once the flooder lets go, it is served again (as soon as the server has seen the
    // connections close: tried until then, within 5 s).
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    let answer = loop {
        let mut again = from_flooder().await;
        again.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok();
        let mut answer = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), again.read_to_string(&mut answer)).await;
        if answer.starts_with("HTTP/1.1 200") || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.shutdown().await;
}

/// Issue #13, item 8: `server.pages_auth` puts pages, API and metrics behind a read
/// credential (basic here); liveness, readiness, heartbeats and acknowledgement links keep
/// their own checks; the admin token reads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_api_and_metrics_need_the_read_credential_when_set() {
    use base64::Engine;
    let dir = tempfile::tempdir().expect("tempdir");
    let password = "reader-password-0123456789abcdef";
    write_config_with(
        dir.path(),
        &format!(r#"pages_auth: {{ basic: {{ user: "so-tttt", password: "{password}" }} }}"#),
        "systems: []\n",
    );
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("so-tttt:{password}")));
    let wrong = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("so-tttt:guess"));
    for path in ["/", "/api/v1/status", "/metrics", "/api/v1/incidents", "/reports", "/badge/none.svg"] {
        let (code, heads, _) = send("GET", &format!("{base}{path}"), &[], "").await;
        assert_eq!(code, 401, "{path} without the credential");
        assert!(heads.get("www-authenticate").is_some_and(|h| h.starts_with("Basic")), "{path}: {heads:?}");
        assert_eq!(send("GET", &format!("{base}{path}"), &[("authorization", &wrong)], "").await.0, 401, "{path}");
        let (code, _, _) = send("GET", &format!("{base}{path}"), &[("authorization", &basic)], "").await;
        assert_ne!(code, 401, "{path} with the credential");
    }
    assert_eq!(request("GET", &format!("{base}/metrics"), Some(TOKEN)).await.0, 200, "the admin token reads too");
    assert_eq!(request("GET", &format!("{base}/-/healthy"), None).await.0, 200);
    assert_eq!(request("POST", &format!("{base}/api/v1/heartbeat/unknown-token-0123456789"), None).await.0, 404);
    assert_eq!(request("GET", &format!("{base}/ack?incident=1"), None).await.0, 403, "the link's own check");
    app.shutdown().await;
}
