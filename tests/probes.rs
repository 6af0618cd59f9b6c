//! Every probe kind against real peers: ICMP to 127.0.0.1 and through a test-made network
//! namespace with nftables loss, DNS against dnsmasq, TLS with generated certificates,
//! the Debian monitoring plugins and fixture plugins, heartbeats pushed over HTTP.

mod common;

use std::time::{Duration, Instant};

use common::*;
use vigil::config::{IcmpSpec, IpPreference, ProbeSpec};
use vigil::model::Health;
use vigil::model::State;
use vigil::probe::{FailureReason, Prober};

const WAIT: Duration = Duration::from_secs(20);
const PLUGINS: &str = "/usr/lib/nagios/plugins";

fn icmp(count: u16, spacing_ms: u64) -> ProbeSpec {
    ProbeSpec::Icmp(IcmpSpec {
        count,
        spacing: Duration::from_millis(spacing_ms),
        ip_protocol: IpPreference::Auto,
        payload_size: 56,
        path: Default::default(),
        sweep: Vec::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmp_to_loopback_reports_rtt_and_no_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        r#"systems:
  - id: network
    checks:
      - id: loopback
        icmp: { host: 127.0.0.1, count: 3, spacing: 50ms }
        conditions: ["[PACKET_LOSS] < 20%", "[RTT_AVG] < 200ms", "[CONNECTED] == true"]
        warning_conditions: ["[JITTER] < 100ms", "[RTT_MAX] < 200ms"]
"#,
    );
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("network/loopback", State::Up)]).await;
    let metrics = get(&format!("http://{}/metrics", app.addr())).await;
    let l = r#"check="loopback",kind="icmp""#;
    assert_eq!(sample(&metrics, "vigil_icmp_packet_loss_ratio", &[l]), Some(0.0), "{metrics}");
    for stat in ["min", "avg", "max", "jitter"] {
        let v = sample(&metrics, "vigil_icmp_rtt_seconds", &[l, &format!("stat=\"{stat}\"")]);
        // Loopback RTTs can read 0: only presence and range are asserted.
        assert!(v.is_some_and(|v| (0.0..0.2).contains(&v)), "rtt {stat}: {v:?}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmp_measures_loss_through_a_namespace() {
    let lossy = Netns::new(1, &["icmp type echo-request numgen random mod 100 < 30 drop"], false);
    let dead = Netns::new(2, &[], true);
    let prober = Prober::new();

    let check = check_of(icmp(40, 10), Duration::from_secs(2), &["[PACKET_LOSS] < 10%"]);
    let outcome = prober.probe(&check, &target_of("lossy", &lossy.hosts[0])).await;
    let stats = outcome.observations.icmp.clone().expect("icmp statistics");
    assert_eq!(stats.sent, 40);
    assert!((10.0..=55.0).contains(&stats.loss_percent), "30% dropped, measured {}%", stats.loss_percent);
    assert_eq!(outcome.health, Health::Down, "{outcome:?}");
    assert_eq!(outcome.reason, Some(FailureReason::Loss));
    assert!(outcome.message.starts_with("[PACKET_LOSS] ("), "{}", outcome.message);

    let check = check_of(icmp(3, 100), Duration::from_secs(1), &["[PACKET_LOSS] < 100%"]);
    let outcome = prober.probe(&check, &target_of("dead", &dead.hosts[0])).await;
    assert_eq!(outcome.observations.icmp.as_ref().map(|i| i.loss_percent), Some(100.0));
    assert_eq!((outcome.health, outcome.reason), (Health::Down, Some(FailureReason::Loss)));
    assert_eq!(outcome.observations.connected, Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_icmp_error_is_unreachable_not_a_reply() {
    // The namespace answers every echo request with "host unreachable": an ICMP error
    // quoting the request, which must not count as a reply.
    let rejecting = Netns::new(4, &["icmp type echo-request reject with icmp type host-unreachable"], false);
    let check = check_of(icmp(3, 20), Duration::from_secs(1), &["[PACKET_LOSS] < 100%"]);
    let outcome = Prober::new().probe(&check, &target_of("rejecting", &rejecting.hosts[0])).await;
    let stats = outcome.observations.icmp.clone().expect("icmp statistics");
    assert_eq!((stats.sent, stats.received), (3, 0), "{outcome:?}");
    assert_eq!((outcome.health, outcome.reason), (Health::Down, Some(FailureReason::Unreachable)), "{outcome:?}");
    assert!(outcome.message.contains("unreachable"), "{}", outcome.message);
    assert!(outcome.duration < Duration::from_millis(500), "an error ends the wait: {:?}", outcome.duration);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmp_over_ipv6_loopback() {
    let check = check_of(icmp(3, 10), Duration::from_secs(1), &["[PACKET_LOSS] == 0%"]);
    let outcome = Prober::new().probe(&check, &target_of("v6", "::1")).await;
    let stats = outcome.observations.icmp.clone().expect("icmp statistics");
    assert_eq!((stats.sent, stats.received), (3, 3), "{outcome:?}");
    assert_eq!(outcome.health, Health::Up, "{outcome:?}");
    assert!(stats.rtt_max > Duration::ZERO && stats.rtt_max < Duration::from_millis(100), "{stats:?}");
}

#[test]
fn icmp_without_privileges_uses_a_datagram_socket_or_names_the_fix() {
    // Vigil runs as `nobody` in a network namespace of the test's own (loopback only):
    // first with unprivileged ping forbidden (the kernel's default), then allowed.
    let script = r#"ip link set lo up || exit 9
        as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$0" probe --kind icmp --count 3 --spacing 10ms --json 127.0.0.1 ::1; }
        sysctl -qw net.ipv4.ping_group_range="1 0" && as_nobody; echo "exit $?"
        echo ====
        sysctl -qw net.ipv4.ping_group_range="0 2147483647" && as_nobody; echo "exit $?""#;
    let out = tool("unshare", "util-linux")
        .args(["--net", "sh", "-c", script, env!("CARGO_BIN_EXE_vigil")])
        .output()
        .expect("run unshare");
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    let (forbidden, allowed) = text.split_once("====").unwrap_or_else(|| panic!("{text}{errors}"));
    let json_of = |part: &str| -> serde_json::Value {
        let body = &part[..part.rfind("exit").unwrap_or(part.len())];
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {part}{errors}"))
    };

    assert!(forbidden.trim_end().ends_with("exit 3"), "no socket: unknown exits 3: {forbidden}{errors}");
    for run in json_of(forbidden).as_array().expect("array") {
        assert_eq!((run["health"].as_str(), run["reason"].as_str()), (Some("unknown"), Some("permission")), "{run}");
    }
    assert!(errors.contains("CAP_NET_RAW") && errors.contains("ping_group_range"), "the log names the fix: {errors}");

    assert!(allowed.trim_end().ends_with("exit 0"), "{allowed}{errors}");
    for run in json_of(allowed).as_array().expect("array") {
        assert_eq!(run["health"].as_str(), Some("up"), "{run}");
        assert_eq!(run["observations"]["icmp"]["received"].as_u64(), Some(3), "{run}");
    }
}

#[test]
fn icmp_reopens_its_socket_when_the_reply_reader_is_gone() {
    // The reader task lives on the runtime that opened the socket; when that runtime is
    // gone, the next probe opens a new socket instead of waiting for replies nobody reads.
    let prober = Prober::new();
    let check = check_of(icmp(2, 10), Duration::from_secs(1), &["[PACKET_LOSS] == 0%"]);
    for round in 0..2 {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let outcome = runtime.block_on(prober.probe(&check, &target_of("lo", "127.0.0.1")));
        assert_eq!(outcome.health, Health::Up, "round {round}: {outcome:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_icmp_targets_with_five_dead_take_one_round_not_forty() {
    let dead = Netns::new(3, &[], true);
    let prober = std::sync::Arc::new(Prober::new());
    let (count, spacing, timeout) = (3u16, Duration::from_millis(100), Duration::from_secs(1));
    let check = std::sync::Arc::new(check_of(icmp(count, 100), timeout, &["[PACKET_LOSS] < 100%"]));
    let mut addresses: Vec<String> = (1..=35).map(|i| format!("127.0.1.{i}")).collect();
    addresses.extend(dead.hosts.iter().cloned());
    let started = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for (i, address) in addresses.into_iter().enumerate() {
        let (prober, check) = (prober.clone(), check.clone());
        runs.spawn(async move { prober.probe(&check, &target_of(&format!("t{i}"), &address)).await });
    }
    let mut down = 0;
    while let Some(outcome) = runs.join_next().await {
        let outcome = outcome.expect("probe task");
        down += usize::from(outcome.health == Health::Down);
        assert!(
            outcome.duration <= timeout + Duration::from_millis(200),
            "each run ends by its timeout: {:?}",
            outcome.duration
        );
    }
    let round = spacing * u32::from(count - 1) + timeout;
    assert_eq!(down, 5, "exactly the five dead targets are down");
    assert!(
        started.elapsed() < round * 3,
        "a round took {:?}; one run is {round:?}, forty in a row would be {:?}",
        started.elapsed(),
        round * 40
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_icmp_targets_at_once_lose_no_echo() {
    // All replies arrive on one shared socket; with the kernel's default receive buffer,
    // 200 targets × 3 echoes at once lost replies (reported as packet loss).
    let prober = std::sync::Arc::new(Prober::new());
    let check = std::sync::Arc::new(check_of(icmp(3, 10), Duration::from_secs(3), &["[PACKET_LOSS] == 0%"]));
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..500 {
        let (prober, check) = (prober.clone(), check.clone());
        let address = format!("127.0.{}.{}", 20 + i / 250, 1 + i % 250);
        runs.spawn(async move { (prober.probe(&check, &target_of(&format!("t{i}"), &address)).await, address) });
    }
    let mut lossy = Vec::new();
    while let Some(run) = runs.join_next().await {
        let (outcome, address) = run.expect("probe task");
        let stats = outcome.observations.icmp.clone().expect("icmp statistics");
        if stats.received != 3 {
            lossy.push(format!("{address}: {} of 3 ({})", stats.received, outcome.message));
        }
    }
    assert!(lossy.is_empty(), "{} of 500 targets lost echoes: {:?}", lossy.len(), &lossy[..lossy.len().min(5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_against_a_real_server() {
    let dns = Dnsmasq::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = &dns.addr;
    write_config(
        dir.path(),
        &format!(
            r#"systems:
  - id: dns
    checks:
      - id: portal
        dns: {{ host: "{server}", query_name: portal.laichau.test, query_type: A }}
        conditions: ["[DNS_RCODE] == NOERROR", "[BODY] == 127.0.0.5", "[RESPONSE_TIME] < 1s"]
      - id: mx
        dns: {{ host: "{server}", query_name: laichau.test, query_type: MX }}
        conditions: ["[BODY] == pat(*mail.laichau.test*)"]
      - id: txt-over-tcp
        dns: {{ host: "{server}", query_name: laichau.test, query_type: TXT, transport: tcp }}
        conditions: ["[BODY] == pat(*spf1*)"]
      - id: missing
        dns: {{ host: "{server}", query_name: nothing.laichau.test, query_type: A }}
      - id: expect-nxdomain
        dns: {{ host: "{server}", query_name: nothing.laichau.test, query_type: A }}
        conditions: ["[DNS_RCODE] == NXDOMAIN"]
"#
        ),
    );
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(
        &mut events,
        WAIT,
        &[
            ("dns/portal", State::Up),
            ("dns/mx", State::Up),
            ("dns/txt-over-tcp", State::Up),
            ("dns/missing", State::Down),
            ("dns/expect-nxdomain", State::Up),
        ],
    )
    .await;
    let base = format!("http://{}", app.addr());
    let metrics = get(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(&metrics, "vigil_check_failure_info", &[r#"check="missing""#, r#"reason="rcode""#]),
        Some(1.0),
        "{metrics}"
    );
    assert!(sample(&metrics, "vigil_dns_lookup_duration_seconds", &[r#"check="portal""#]).is_some_and(|v| v >= 0.0));
    let status: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("json");
    let missing = &status["systems"][0]["checks"][3]["targets"][0]["last_result"];
    assert_eq!(missing["failed_conditions"][0], "[DNS_RCODE] (NXDOMAIN) == NOERROR");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_valid_expiring_and_expired() {
    let pki = TestPki::new();
    let valid = web_server(Some(pki.server_config(&["127.0.0.1"], days_from_now(-1), days_from_now(90)))).await;
    let soon = web_server(Some(pki.server_config(&["127.0.0.1"], days_from_now(-80), days_from_now(10)))).await;
    let expired = web_server(Some(pki.server_config(&["127.0.0.1"], days_from_now(-90), days_from_now(-1)))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).expect("ca");
    let systems = format!(
        r#"systems:
  - id: e-meeting
    checks:
      - {{ id: valid, tls: {{ address: "{}", ca_file: ca.pem }}, warning_conditions: ["[CERTIFICATE_EXPIRATION] > 21d"] }}
      - {{ id: soon, tls: {{ address: "{}", ca_file: ca.pem }}, warning_conditions: ["[CERTIFICATE_EXPIRATION] > 21d"] }}
      - {{ id: expired, tls: {{ address: "{}", ca_file: ca.pem }}, warning_conditions: ["[CERTIFICATE_EXPIRATION] > 21d"] }}
      - {{ id: tcp-tls, tcp: {{ address: "{}", tls: true, ca_file: ca.pem }}, conditions: ["[CERTIFICATE_EXPIRATION] > 30d"] }}
"#,
        valid.addr, soon.addr, expired.addr, soon.addr
    );
    write_config(dir.path(), &systems);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(
        &mut events,
        WAIT,
        &[
            ("e-meeting/valid", State::Up),
            ("e-meeting/soon", State::Degraded),
            ("e-meeting/expired", State::Down),
            ("e-meeting/tcp-tls", State::Down),
        ],
    )
    .await;
    let base = format!("http://{}", app.addr());
    let metrics = get(&format!("{base}/metrics")).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let not_after = |check: &str| {
        sample(&metrics, "vigil_tls_cert_not_after_timestamp_seconds", &[&format!("check=\"{check}\"")]).expect(check)
    };
    assert!((not_after("soon") - now - 10.0 * 86_400.0).abs() < 600.0);
    assert!((now - not_after("expired") - 86_400.0).abs() < 600.0, "still reported after expiry");
    assert_eq!(sample(&metrics, "vigil_check_failure_info", &[r#"check="expired""#, r#"reason="tls""#]), Some(1.0));
    assert_eq!(
        sample(&metrics, "vigil_check_failure_info", &[r#"check="tcp-tls""#, r#"reason="condition""#]),
        Some(1.0)
    );

    let status: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("json");
    let cert = &status["systems"][0]["checks"][0]["targets"][0]["last_result"]["certificates"][0];
    assert_eq!(cert["subject"], "CN=127.0.0.1");
    assert_eq!(cert["issuer"], "CN=Vigil Test CA");
    assert_eq!(cert["sans"][0], "127.0.0.1");
    let soon_result = &status["systems"][0]["checks"][1]["targets"][0]["last_result"];
    assert!(
        soon_result["failed_conditions"][0]
            .as_str()
            .is_some_and(|c| c.starts_with("[CERTIFICATE_EXPIRATION] (9d ")
                || c.starts_with("[CERTIFICATE_EXPIRATION] (10d 0h)")),
        "{soon_result}"
    );
    app.shutdown().await;
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/plugins/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn process_alive(pid_file: &std::path::Path) -> bool {
    let pid = std::fs::read_to_string(pid_file).expect("pid file").trim().to_string();
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nagios_plugins_real_and_misbehaving() {
    assert!(
        std::path::Path::new(&format!("{PLUGINS}/check_dummy")).exists(),
        "monitoring plugins are not installed: run `apt-get install -y monitoring-plugins-basic` (scripts/test does this)"
    );
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (hang_pid, orphan_pid) = (dir.path().join("hang.pid"), dir.path().join("orphan.pid"));
    let systems = format!(
        r#"systems:
  - id: plugins
    checks:
      - {{ id: dummy-ok, exec: {{ command: [{PLUGINS}/check_dummy, "0", "all fine"] }} }}
      - {{ id: dummy-warning, exec: {{ command: [{PLUGINS}/check_dummy, "1", "disk 85%"] }} }}
      - {{ id: dummy-critical, exec: {{ command: [{PLUGINS}/check_dummy, "2", "service stopped"] }} }}
      - {{ id: dummy-unknown, exec: {{ command: [{PLUGINS}/check_dummy, "3", "no data"] }} }}
      - id: tcp
        exec: {{ command: [{PLUGINS}/check_tcp, -H, 127.0.0.1, -p, "{port}"], perfdata: [time] }}
        conditions: ["[EXIT_CODE] == 0"]
      - id: ping
        interval: 3s
        timeout: 2500ms
        exec: {{ command: [{PLUGINS}/check_ping, -H, 127.0.0.1, -w, "100,20%", -c, "200,50%", -p, "2"], perfdata: ["*"] }}
      - {{ id: hang, timeout: 700ms, exec: {{ command: [{hang}, "{hang_pid}"] }} }}
      - {{ id: orphan, exec: {{ command: [{orphan}, "{orphan_pid}"] }} }}
      - {{ id: garbage, exec: {{ command: [{garbage}] }} }}
      - {{ id: silent, exec: {{ command: [{silent}] }} }}
      - {{ id: unknown, exec: {{ command: [{unknown}] }} }}
      - {{ id: missing, exec: {{ command: [/nonexistent/check_nothing] }} }}
      - {{ id: perfdata-bomb, exec: {{ command: [{bomb}], perfdata: ["*"] }} }}
"#,
        port = web.addr.port(),
        hang = fixture("hang.sh"),
        hang_pid = hang_pid.display(),
        orphan = fixture("orphan.sh"),
        orphan_pid = orphan_pid.display(),
        garbage = fixture("garbage.sh"),
        bomb = fixture("perfdata-bomb.sh"),
        silent = fixture("silent.sh"),
        unknown = fixture("unknown.sh"),
    );
    write_config(dir.path(), &systems);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    // Unknown results do not move a target out of `unknown`, so those are awaited as events.
    let mut unknown_seen = std::collections::HashSet::new();
    let mut pending: Vec<(&str, State)> = vec![
        ("plugins/dummy-ok", State::Up),
        ("plugins/dummy-warning", State::Degraded),
        ("plugins/dummy-critical", State::Down),
        ("plugins/tcp", State::Up),
        ("plugins/ping", State::Up),
        ("plugins/hang", State::Down),
        ("plugins/orphan", State::Up),
        ("plugins/garbage", State::Down),
        // Alive and judged: the daemon survived the output that once aborted it.
        ("plugins/perfdata-bomb", State::Up),
        ("plugins/silent", State::Degraded),
    ];
    let deadline = Instant::now() + WAIT;
    while !pending.is_empty() || unknown_seen.len() < 3 {
        assert!(Instant::now() < deadline, "plugins did not settle: {pending:?}, unknown seen {unknown_seen:?}");
        let e = wait_for(&mut events, WAIT, |_| true).await;
        if e.health == Health::Unknown {
            unknown_seen.insert(e.target_id.clone());
        }
        pending.retain(|(id, s)| !(e.target_id == *id && e.state == *s));
    }
    assert_eq!(
        unknown_seen,
        ["plugins/dummy-unknown", "plugins/unknown", "plugins/missing"].iter().map(|s| s.to_string()).collect(),
    );

    let base = format!("http://{}", app.addr());
    let metrics = get(&format!("{base}/metrics")).await;
    let reason = |check: &str, r: &str| {
        sample(&metrics, "vigil_check_failure_info", &[&format!("check=\"{check}\""), &format!("reason=\"{r}\"")])
    };
    assert_eq!(reason("dummy-critical", "exit"), Some(1.0));
    assert_eq!(reason("hang", "timeout"), Some(1.0));
    assert_eq!(reason("missing", "spawn"), Some(1.0));
    assert!(
        sample(&metrics, "vigil_exec_perfdata", &[r#"check="tcp""#, r#"label="time""#, r#"uom="s""#])
            .is_some_and(|v| v >= 0.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "vigil_exec_perfdata", &[r#"check="ping""#, r#"label="pl""#, r#"uom="%""#]), Some(0.0));
    assert!(sample(&metrics, "vigil_exec_perfdata", &[r#"check="ping""#, r#"label="rta""#, r#"uom="ms""#]).is_some());
    assert!(
        sample(&metrics, "vigil_exec_perfdata", &[r#"check="orphan""#]).is_none(),
        "perfdata not listed is not exported"
    );

    let status: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("json");
    let message = |i: usize| {
        status["systems"][0]["checks"][i]["targets"][0]["last_result"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(message(2), "exit 2: CRITICAL: service stopped");
    assert_eq!(message(9), "exit 1: (no output)");
    assert!(message(6).contains("killed"), "{}", message(6));
    app.shutdown().await;

    // Nothing a plugin started outlives its run.
    assert!(!process_alive(&hang_pid), "the hanging plugin was killed");
    assert!(!process_alive(&orphan_pid), "the child the plugin left behind was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_environment_is_minimal() {
    let check = check_of(
        ProbeSpec::Exec(vigil::config::ExecSpec {
            command: vec![fixture("env.sh")],
            env: vec![("SITE".into(), "lai-chau".into())],
            perfdata: Vec::new(),
            max_output_bytes: 4096,
        }),
        Duration::from_secs(5),
        &[],
    );
    // SAFETY: no other thread of this test reads the variable.
    unsafe { std::env::set_var("VIGIL_SECRET_SHOULD_NOT_LEAK", "x") };
    let outcome = Prober::new().probe(&check, &target_of("env", "env")).await;
    let body = String::from_utf8_lossy(outcome.observations.body.as_deref().unwrap_or_default()).into_owned();
    assert_eq!(outcome.health, Health::Up, "{outcome:?}");
    assert!(body.contains("SITE=lai-chau") && body.contains("LANG=C"), "{body}");
    assert!(!body.contains("VIGIL_SECRET_SHOULD_NOT_LEAK"), "the daemon's environment is not passed on: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_pushed_missed_and_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "nightly-report-0123456789abcdef";
    write_config(
        dir.path(),
        &format!(
            "systems:\n  - id: reporting\n    checks:\n      - {{ id: nightly, heartbeat: {{ token: {token}, period: 2s, grace: 1s }} }}\n"
        ),
    );
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let base = format!("http://{}", app.addr());
    // The start counts as the last push: up first, then missed after period + grace.
    wait_states(&mut events, WAIT, &[("reporting/nightly", State::Up)]).await;
    let missed = wait_for(&mut events, WAIT, |e| e.transition.is_some()).await;
    assert_eq!(missed.state, State::Down);
    let metrics = get(&format!("{base}/metrics")).await;
    assert_eq!(sample(&metrics, "vigil_check_failure_info", &[r#"check="nightly""#, r#"reason="missed""#]), Some(1.0));

    // A GET (a link preview, a scanner) records nothing; the job's POST does.
    assert_eq!(request("GET", &format!("{base}/api/v1/heartbeat/{token}"), None).await.0, 405);
    assert_eq!(request("POST", &format!("{base}/api/v1/heartbeat/{token}"), None).await.0, 200);
    wait_for(&mut events, WAIT, |e| e.state == State::Up).await;
    let last_seen = |m: &str| sample(m, "vigil_heartbeat_last_seen_timestamp_seconds", &[r#"check="nightly""#]);
    let metrics = metrics_until(&base, "the heartbeat's last push", |m| last_seen(m).is_some()).await;
    let seen =
        sample(&metrics, "vigil_heartbeat_last_seen_timestamp_seconds", &[r#"check="nightly""#]).expect("last seen");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    assert!((now - seen).abs() < 5.0);

    let (code, _) = request(
        "POST",
        &format!("{base}/api/v1/heartbeat/{token}?status=fail&msg=disk%20full%0Aforged%20log%20line"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    wait_for(&mut events, WAIT, |e| e.state == State::Down).await;
    let status: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("json");
    let last = &status["systems"][0]["checks"][0]["targets"][0]["last_result"];
    assert_eq!(last["reason"], "reported");
    assert_eq!(last["message"], "the job reported: disk full forged log line", "no newline kept");

    assert_eq!(request("POST", &format!("{base}/api/v1/heartbeat/not-a-token"), None).await.0, 404);
    app.shutdown().await;
}

/// What a recording server received: method, credential-bearing headers, body length.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    path: String,
    method: String,
    credentials: Vec<String>,
    body_len: usize,
}

/// An HTTP(S) server on 127.0.0.1 that answers `/go?to=URL` with `302 Location: URL`
/// (`/go303`, `/go307` likewise), anything else with 200, and records every request.
async fn recording_server(
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, acceptor) = (log.clone(), acceptor.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
                        let credentials = ["authorization", "cookie", "x-api-token", "accept"]
                            .iter()
                            .filter(|h| parts.headers.contains_key(**h))
                            .map(|h| h.to_string())
                            .collect();
                        log.lock().expect("log").push(Received {
                            path: parts.uri.path().to_string(),
                            method: parts.method.to_string(),
                            credentials,
                            body_len: body,
                        });
                        let target = parts.uri.query().and_then(|q| q.strip_prefix("to=")).map(|t| {
                            url::form_urlencoded::parse(format!("t={t}").as_bytes()).next().expect("t").1.into_owned()
                        });
                        let status = match parts.uri.path() {
                            "/go" => 302,
                            "/go303" => 303,
                            "/go307" => 307,
                            _ => 200,
                        };
                        let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"ok")));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                        if let (Some(t), true) = (target, status != 200) {
                            r.headers_mut().insert("location", t.parse().expect("location"));
                        }
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(stream).await {
                            let _ = http.serve_connection(hyper_util::rt::TokioIo::new(s), service).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Issue #13, item 7: a redirect to another origin (here another port) does not carry the
/// check's credentials; a same-origin redirect does; https→http is refused unless allowed;
/// a POST turns into a GET without its body on 302 and 303, and stays a POST on 307.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_redirects_keep_credentials_at_home() {
    use vigil::config::{HttpSpec, TlsSpec};
    let (home, home_seen) = recording_server(None).await;
    let (other, other_seen) = recording_server(None).await;
    let prober = Prober::new();
    let mut spec = HttpSpec::get(TlsSpec::default());
    spec.headers = vec![
        ("Authorization".into(), "Bearer probe-secret".into()),
        ("Cookie".into(), "session=probe-secret".into()),
        ("X-Api-Token".into(), "probe-secret".into()),
        ("Accept".into(), "application/json".into()),
    ];
    let probe = |spec: HttpSpec, url: String| {
        let check = check_of(ProbeSpec::Http(spec), Duration::from_secs(5), &["[STATUS] == 200"]);
        let prober = &prober;
        async move { prober.probe(&check, &target_of("t", &url)).await }
    };
    let encode = |u: String| -> String { url::form_urlencoded::byte_serialize(u.as_bytes()).collect() };
    let all = vec!["authorization".to_string(), "cookie".into(), "x-api-token".into(), "accept".into()];

    let outcome =
        probe(spec.clone(), format!("http://{home}/go?to={}", encode(format!("http://{other}/landing")))).await;
    assert_eq!(outcome.health, Health::Up, "{outcome:?}");
    let first = home_seen.lock().expect("log")[0].clone();
    assert_eq!(first.credentials, all, "the configured origin gets every header");
    let landed = other_seen.lock().expect("log")[0].clone();
    assert_eq!(landed.credentials, ["accept"], "another origin gets no credential: {landed:?}");

    let outcome = probe(spec.clone(), format!("http://{home}/go?to=/same-origin")).await;
    assert_eq!(outcome.health, Health::Up, "{outcome:?}");
    let same = home_seen.lock().expect("log").iter().find(|r| r.path == "/same-origin").cloned().expect("followed");
    assert_eq!(same.credentials, all, "a same-origin redirect keeps them");

    // POST with a body: 302 and 303 become a GET without it, 307 keeps both.
    let mut post = spec.clone();
    post.method = "POST".into();
    post.body = Some("dossier=123".into());
    for (hop, method, body) in [("go", "GET", 0), ("go303", "GET", 0), ("go307", "POST", 11)] {
        let target = format!("http://{home}/{hop}?to=/after-{hop}");
        assert_eq!(probe(post.clone(), target).await.health, Health::Up);
        let after = home_seen.lock().expect("log").iter().find(|r| r.path == format!("/after-{hop}")).cloned();
        let after = after.expect("followed");
        assert_eq!((after.method.as_str(), after.body_len), (method, body), "{hop}: {after:?}");
    }

    // https → http is refused unless the check allows it.
    let pki = TestPki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).expect("ca");
    let (secure, _) =
        recording_server(Some(pki.server_config(&["127.0.0.1"], days_from_now(-1), days_from_now(30)))).await;
    let mut tls_spec = spec.clone();
    tls_spec.tls.ca_file = Some(dir.path().join("ca.pem"));
    let downgrade = format!("https://{secure}/go?to={}", encode(format!("http://{other}/clear")));
    let outcome = probe(tls_spec.clone(), downgrade.clone()).await;
    assert_eq!((outcome.health, outcome.reason), (Health::Down, Some(FailureReason::Redirects)), "{outcome:?}");
    assert!(outcome.message.contains("https to http"), "{}", outcome.message);
    assert!(!other_seen.lock().expect("log").iter().any(|r| r.path == "/clear"), "nothing was sent in clear");
    tls_spec.allow_insecure_redirects = true;
    assert_eq!(probe(tls_spec, downgrade).await.health, Health::Up);
    let clear = other_seen.lock().expect("log").iter().find(|r| r.path == "/clear").cloned().expect("followed");
    assert_eq!(clear.credentials, ["accept"], "allowed, but still without credentials");
}

/// Issue #14, item 5: a panic inside a probe (here injected by the test-only
/// `fault-injection` feature) becomes an `unknown` result with reason `internal`, run after
/// run; the check keeps its schedule and the other checks are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_probe_keeps_its_schedule_and_harms_no_other() {
    require_fault_injection();
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &format!(
            r#"systems:
  - id: faults
    checks:
      - {{ id: exploding, exec: {{ command: [vigil-fault:panic] }} }}
      - {{ id: fine, http: {{ url: "http://{}/ok" }} }}
"#,
            web.addr
        ),
    );
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let (mut exploded, mut fine) = (0, 0);
    while exploded < 3 || fine < 1 {
        let e = wait_for(&mut events, WAIT, |e| e.target_id.starts_with("faults/")).await;
        match e.target_id.as_str() {
            "faults/exploding" => {
                assert_eq!(e.health, Health::Unknown, "{e:?}");
                exploded += 1;
            }
            _ => {
                assert_eq!(e.health, Health::Up, "{e:?}");
                fine += 1;
            }
        }
    }
    let base = format!("http://{}", app.addr());
    let metrics = get(&format!("{base}/metrics")).await;
    let internal = sample(&metrics, "vigil_check_failure_info", &[r#"check="exploding""#, r#"reason="internal""#]);
    assert_eq!(internal, Some(1.0), "{metrics}");
    let status = get(&format!("{base}/api/v1/status")).await;
    assert!(status.contains("internal error in the probe"), "{status}");
    app.shutdown().await;
}

/// Issue #14, item 8: a plugin whose grandchild leaves its process group and keeps stdout and
/// stderr open leaks no pipe: after 20 runs the open descriptors are back at their baseline,
/// and what the plugin printed before exiting is still read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escaped_grandchild_leaks_no_pipe() {
    use vigil::config::ExecSpec;
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("escaped.pids");
    let spec = ExecSpec {
        command: vec![fixture("escape.sh"), pids.display().to_string()],
        env: Vec::new(),
        perfdata: Vec::new(),
        max_output_bytes: 64 * 1024,
    };
    let check = check_of(ProbeSpec::Exec(spec), Duration::from_secs(5), &[]);
    let prober = Prober::new();
    let open_fds = || std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count();
    let run = || async {
        let outcome = prober.probe(&check, &target_of("escape", "escape")).await;
        assert_eq!(outcome.health, Health::Up, "{outcome:?}");
        let said = outcome.observations.exec.as_ref().map(|e| e.message.clone()).unwrap_or_default();
        assert_eq!(said, "OK - a grandchild escaped", "what it printed before exiting is read");
    };
    run().await;
    let baseline = open_fds();
    for _ in 0..20 {
        run().await;
    }
    let after = open_fds();
    // Stop the escaped grandchildren (this test's own processes, by pid).
    for pid in std::fs::read_to_string(&pids).unwrap_or_default().lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    assert!(after <= baseline + 2, "open descriptors grew from {baseline} to {after} over 20 runs");
}

/// Issue #14, item 5: the watchdog marks a check whose timer stopped (here ended by the
/// test-only fault injection after one run): counted in `vigil_checks_stale`, flagged in the
/// status API and on its page; a healthy check beside it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_marks_a_check_whose_timer_stopped() {
    require_fault_injection();
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &format!(
            "systems:\n  - id: faults\n    checks:\n      - {{ id: stopped, exec: {{ command: [vigil-fault:stop-timer] }} }}\n      - {{ id: fine, http: {{ url: \"http://{}/ok\" }} }}\n",
            web.addr
        ),
    );
    let app = start_daemon(dir.path()).await;
    let base = format!("http://{}", app.addr());
    // 3 intervals (1 s) and the timeout (800 ms) after its last run, and a tick.
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = get(&format!("{base}/metrics")).await;
        if sample(&metrics, "vigil_checks_stale", &[]) == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the stopped check was never marked stale:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("json");
    let checks = &status["systems"][0]["checks"];
    assert_eq!(checks[0]["targets"][0]["stale"], true, "{status}");
    assert_eq!(checks[1]["targets"][0]["stale"], false, "{status}");
    let page = get(&format!("{base}/checks/faults/stopped?lang=en")).await;
    assert!(page.contains("has stopped running"), "{page}");
    app.shutdown().await;
}

/// Issue #18: each probe kind measures exactly the placeholders its kind declares
/// (`config::Kind::spec().measures`, which validation checks conditions against): one real
/// probe of every kind against a loopback peer, its observations read back through the
/// condition language's `Facts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_measures_exactly_what_it_declares() {
    use vigil::condition::{Facts, Placeholder};
    use vigil::config::Kind;
    let pki = TestPki::new();
    let https = web_server(Some(pki.server_config(&["127.0.0.1"], days_from_now(-1), days_from_now(90)))).await;
    let dns = Dnsmasq::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).expect("ca");
    let (cert, key) = pki.leaf_files(dir.path(), "mail", &["127.0.0.1"]);
    let mail = SmtpSink::start_tls(dir.path(), "mail", "starttls", &cert, &key);
    let (ws_cert, ws_key) = pki.leaf_files(dir.path(), "ws", &["127.0.0.1"]);
    let websocket = WsServer::start("echo", Some((&ws_cert, &ws_key)));
    let sip_port = free_port();
    let _sip = kamailio(dir.path(), sip_port, "200", "OK");
    let ntp = Chrony::start(dir.path(), 5);
    let agent = Snmpd::start(dir.path(), None, "127.0.0.1", free_port());
    let systems = format!(
        r#"systems:
  - id: kinds
    checks:
      - {{ id: http, http: {{ url: "https://{tls}/ok", ca_file: ca.pem }} }}
      - {{ id: tcp, tcp: {{ address: "{tls}", tls: true, ca_file: ca.pem, send: "GET /ok HTTP/1.0\r\n\r\n", expect: "HTTP" }} }}
      - {{ id: tls, tls: {{ address: "{tls}", ca_file: ca.pem }} }}
      - {{ id: icmp, icmp: {{ host: 127.0.0.1, count: 2, spacing: 20ms, dont_fragment: true, sizes: [64, 1200] }} }}
      - {{ id: dns, dns: {{ host: "{dns}", query_name: portal.laichau.test, query_type: A }} }}
      - {{ id: exec, exec: {{ command: [/bin/echo, "OK - all fine"] }} }}
      - {{ id: heartbeat, heartbeat: {{ token: kinds-test-token-0123456789abcdef, period: 1h, grace: 1m }} }}
      - {{ id: smtp, smtp: {{ address: "127.0.0.1:{mail}", ca_file: ca.pem }} }}
      - {{ id: websocket, websocket: {{ url: "wss://127.0.0.1:{ws}/", send: hi, ca_file: ca.pem }} }}
      - {{ id: sip, sip: {{ address: "127.0.0.1:{sip}" }} }}
      - {{ id: ntp, ntp: {{ host: "127.0.0.1:{ntp}" }} }}
      - {{ id: snmp, snmp: {{ address: "{snmp}", community: {community}, get: {{ uptime: 1.3.6.1.2.1.1.3.0 }}, interfaces: {{ names: [lo] }} }} }}
      - {{ id: steps, steps: [ {{ http: {{ url: "https://{tls}/ok", ca_file: ca.pem }} }} ] }}
"#,
        tls = https.addr,
        dns = dns.addr,
        mail = mail.port,
        ws = websocket.port,
        sip = sip_port,
        ntp = ntp.port,
        snmp = agent.address,
        community = common::snmpd::COMMUNITY
    );
    write_config(dir.path(), &systems);
    let config = vigil::config::load(&dir.path().join("vigil.yaml")).expect("config");
    let prober = Prober::new();
    let mut seen = std::collections::BTreeSet::new();
    for (_, check, target) in config.targets() {
        let kind = check.probe.kind();
        seen.insert(kind.as_str());
        if kind == Kind::Snmp {
            // Rates come from two readings: the run before this one's.
            prober.probe(check, target).await;
        }
        let outcome = prober.probe(check, target).await;
        let obs = &outcome.observations;
        let filled: Vec<Placeholder> = Placeholder::ALL
            .into_iter()
            .filter(|p| match p {
                // `[CONNECTED]` reads false for a probe that never set it (Gatus's meaning of a
                // failed connection): what the probe filled is the field itself.
                Placeholder::Connected => obs.connected.is_some(),
                Placeholder::Body => obs.body().is_some(),
                _ => obs.value(*p).is_some(),
            })
            .collect();
        let mut declared = kind.spec().measures.to_vec();
        declared.sort_by_key(|p| Placeholder::ALL.iter().position(|q| q == p));
        assert_eq!(filled, declared, "{kind}: measured vs declared ({:?}: {})", outcome.health, outcome.message);
    }
    let all: std::collections::BTreeSet<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(seen, all, "every kind was probed");
}

/// `ip: all` (issue #21, item 5): dnsmasq answers two A records for `twin.laichau.test`;
/// a server listens on 127.0.0.2 only, the same port on 127.0.0.3 is closed. Each address
/// is probed on its own: under `ip_rule: all` the check is down and names the closed
/// address, under `any` it is up; the status API and `/metrics` show each address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_address_of_a_name_is_probed_on_its_own() {
    let dns = Dnsmasq::start();
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.2", port)).await.expect("bind 127.0.0.2");
    assert!(std::net::TcpStream::connect(("127.0.0.3", port)).is_err(), "the twin's second address is closed");
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            });
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let server = &dns.addr;
    write_config(
        dir.path(),
        &format!(
            r#"systems:
  - id: portal
    checks:
      - id: every
        http: {{ url: "http://twin.laichau.test:{port}/" }}
        ip: all
        resolver: "{server}"
      - id: one-is-enough
        http: {{ url: "http://twin.laichau.test:{port}/" }}
        ip: all
        ip_rule: any
        resolver: "{server}"
      - id: tcp-every
        tcp: {{ address: "twin.laichau.test:{port}" }}
        ip: all
        resolver: "{server}"
      - id: ping-every
        icmp: {{ host: twin.laichau.test, count: 2, spacing: 50ms }}
        ip: all
        resolver: "{server}"
      - id: crowd
        tcp: {{ address: "crowd.laichau.test:{port}" }}
        ip: all
        ip_rule: any
        resolver: "{server}"
"#
        ),
    );
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(
        &mut events,
        WAIT,
        &[
            ("portal/every", State::Down),
            ("portal/one-is-enough", State::Up),
            ("portal/tcp-every", State::Down),
            ("portal/ping-every", State::Up),
            ("portal/crowd", State::Down),
        ],
    )
    .await;
    let base = format!("http://{}", app.addr());
    let status: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("json");
    let last = &status["systems"][0]["checks"][0]["targets"][0]["last_result"];
    let message = last["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("1 of 2 addresses up"), "{message}");
    assert!(message.contains("127.0.0.2 up") && message.contains("127.0.0.3 down"), "{message}");
    let addresses: Vec<(String, String)> = last["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .map(|a| (a["ip"].as_str().unwrap_or_default().into(), a["health"].as_str().unwrap_or_default().into()))
        .collect();
    assert_eq!(addresses, [("127.0.0.2".into(), "up".into()), ("127.0.0.3".into(), "down".into())]);
    assert_eq!(last["reason"], "refused", "the closed address's reason: {last}");
    let metrics = metrics_until(&base, "per-address series", |m| m.contains("vigil_check_address_up{")).await;
    let series = |address: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("vigil_check_address_up{")
                    && l.contains("check=\"one-is-enough\"")
                    && l.contains(&format!("address=\"{address}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    assert_eq!(series("127.0.0.2").as_deref(), Some("1"), "{metrics}");
    assert_eq!(series("127.0.0.3").as_deref(), Some("0"));
    let ping = &status["systems"][0]["checks"][3]["targets"][0]["last_result"];
    assert!(ping["message"].as_str().unwrap_or_default().starts_with("2 of 2 addresses up"), "{ping}");
    // A name with eighteen addresses: sixteen probed, the rest said.
    let crowd = status["systems"][0]["checks"][4]["targets"][0]["last_result"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(crowd.starts_with("0 of 16 addresses up (2 more not probed) — 127.0.0.10 down"), "{crowd}");
    assert!(crowd.chars().count() <= vigil::probe::MAX_MESSAGE_CHARS, "the message stays bounded: {crowd}");
    app.shutdown().await;
}
