//! Vigil in the Prometheus ecosystem, checked with the real tools: the demo scraped by a
//! real Prometheus that loads the shipped rules; every dashboard panel query run through
//! its HTTP API; the "system down" alert active for the system the demo takes down;
//! promtool (rules, rule unit tests, scrape config), amtool, systemd-analyze.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run_tool(program: &str, package: &str, args: &[&str]) -> String {
    let out = tool(program, package).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {}:\n{text}", args.join(" "));
    text
}

#[test]
fn rules_alertmanager_config_scrape_config_and_systemd_unit_are_valid() {
    let rules = repo("alerts/prometheus/vigil.rules.yml");
    assert!(
        run_tool("promtool", "prometheus", &["check", "rules", &rules.display().to_string()])
            .contains("SUCCESS: 18 rules found")
    );
    let tests = repo("alerts/prometheus/tests/vigil.test.yml");
    assert!(run_tool("promtool", "prometheus", &["test", "rules", &tests.display().to_string()]).contains("SUCCESS"));
    run_tool("promtool", "prometheus", &["check", "config", &repo("deploy/prometheus.yml").display().to_string()]);
    let am = run_tool(
        "amtool",
        "prometheus-alertmanager",
        &["check-config", &repo("alerts/alertmanager.example.yml").display().to_string()],
    );
    assert!(am.contains("SUCCESS") && am.contains("2 inhibit rules"), "{am}");

    // Every alert has a unit test, and every alert carries the annotations the mixins guide asks.
    let rules_text = std::fs::read_to_string(&rules).expect("rules");
    let tests_text = std::fs::read_to_string(&tests).expect("tests");
    let doc: serde_json::Value = yaml_serde::from_str(&rules_text).expect("yaml");
    for group in doc["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let Some(alert) = rule["alert"].as_str() else { continue };
            assert!(tests_text.contains(&format!("alertname: {alert}")), "{alert} has no unit test");
            assert!(
                ["critical", "warning"].contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
                "{alert} severity"
            );
            for key in ["summary", "description", "runbook_url"] {
                assert!(rule["annotations"][key].is_string(), "{alert} lacks {key}");
            }
            let anchor =
                rule["annotations"]["runbook_url"].as_str().unwrap_or("").rsplit('#').next().unwrap_or("").to_string();
            let readme = std::fs::read_to_string(repo("README.md")).expect("README");
            assert!(readme.contains(&format!("id=\"{anchor}\"")), "README has no runbook anchor {anchor}");
        }
    }

    // The systemd units (the monitor and the agent), pointed at the binary just built.
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["vigil.service", "vigil-agent.service"] {
        let unit = std::fs::read_to_string(repo(&format!("deploy/{name}")))
            .expect("unit")
            .replace("/usr/local/bin/vigil", env!("CARGO_BIN_EXE_vigil"));
        let path = dir.path().join(name);
        std::fs::write(&path, unit).expect("write unit");
        let out = tool("systemd-analyze", "systemd")
            .args(["verify", &path.display().to_string()])
            .output()
            .expect("systemd-analyze");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let problems: Vec<&str> = text.lines().filter(|l| l.contains(name)).collect();
        assert!(problems.is_empty(), "systemd-analyze verify {name}:\n{text}");
    }
}

/// A real Prometheus scraping `target` every second with the shipped rules; stopped when dropped.
struct Prometheus {
    base: String,
    child: Child,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        let config = format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nrule_files: [\"{}\"]\nscrape_configs:\n  - job_name: vigil\n    static_configs: [{{ targets: [\"{target}\"] }}]\n",
            repo("alerts/prometheus/vigil.rules.yml").display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus config");
        let port = free_port();
        let child = tool("prometheus", "prometheus")
            .args([
                &format!("--config.file={}", dir.join("prometheus.yml").display()),
                &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).map(Stdio::from).unwrap_or(Stdio::null()))
            .spawn()
            .expect("start prometheus");
        Prometheus { base: format!("http://127.0.0.1:{port}"), child, log: dir.join("prometheus.log") }
    }

    async fn query(&self, expr: &str) -> serde_json::Value {
        let q: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let (code, body) = request("GET", &format!("{}/api/v1/query?query={q}", self.base), None).await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{expr}: {body}"));
        assert_eq!((code, json["status"].as_str()), (200, Some("success")), "query {expr}:\n{body}");
        json
    }

    async fn wait(&self, what: &str, expr: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if std::net::TcpStream::connect(self.base.trim_start_matches("http://")).is_ok() {
                let (code, body) = request("GET", &format!("{}/-/ready", self.base), None).await;
                if code == 200 {
                    let result = self.query(expr).await;
                    if pred(&result) {
                        return result;
                    }
                } else {
                    let _ = body;
                }
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!("{what}: not within 90 s; prometheus log (last lines, newest first):\n{}", tail.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn series(result: &serde_json::Value) -> usize {
    result["data"]["result"].as_array().map_or(0, Vec::len)
}

/// A panel query with Grafana's variables filled in.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("$__range", "1h")
        .replace("$__interval", "1s")
        .replace("$location", ".*")
        .replace("$system", ".*")
        .replace("$check", ".*")
        .replace("$target", ".*")
}

/// The Vigil metric names an expression uses (histogram series mapped to their family).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\b(vigil_[a-z_]+|process_[a-z_]+|system:vigil_[a-z_:0-9]+)\b").expect("regex");
    re.find_iter(expr)
        .map(|m| m.as_str().trim_end_matches("_bucket").trim_end_matches("_count").trim_end_matches("_sum").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_rules_work_against_a_real_prometheus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = vigil::demo::Demo::start("127.0.0.1:0".parse().expect("addr"), 5.0, dir.path().join("demo"))
        .await
        .expect("demo");
    let vigil_addr = demo.app.addr().to_string();
    let prom = Prometheus::start(dir.path(), &vigil_addr);
    prom.wait("scraped data", "vigil_check_up", |r| series(r) >= 10).await;

    // The system the demo takes down raises the "system down" alert (pending, then firing).
    let alert = prom
        .wait("VigilSystemDown for e-meeting", r#"ALERTS{alertname="VigilSystemDown", system="e-meeting"}"#, |r| {
            series(r) >= 1
        })
        .await;
    assert!(["pending", "firing"].contains(&alert["data"]["result"][0]["metric"]["alertstate"].as_str().unwrap_or("")));
    // The demo's alerts have gone out, so the notification series exist.
    prom.wait("notification metrics", "vigil_notifications_total", |r| series(r) >= 1).await;
    prom.wait("recording rules", "system:vigil_system_error:ratio_rate5m", |r| series(r) >= 5).await;
    prom.wait("two scrapes of ICMP", "count_over_time(vigil_icmp_packet_loss_ratio[1m])", |r| {
        r["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) >= 3.0
    })
    .await;

    // Every panel query of every dashboard parses; overview and data-network panels have data.
    let exported: BTreeSet<String> = get(&format!("http://{vigil_addr}/metrics"))
        .await
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ").and_then(|r| r.split(' ').next()).map(str::to_string))
        .collect();
    let rules_text = std::fs::read_to_string(repo("alerts/prometheus/vigil.rules.yml")).expect("rules");
    let recorded: BTreeSet<String> =
        rules_text.lines().filter_map(|l| l.trim().strip_prefix("- record: ")).map(str::to_string).collect();
    let mut used = metric_names(&rules_text);
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("dashboards"))
        .expect("dashboards")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "six dashboards");
    for file in &files {
        let dash: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("json");
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        assert!(
            dash["uid"].as_str().is_some_and(|u| u.starts_with("vigil-")) && dash.get("id").is_none(),
            "{name}: stable uid, no numeric id"
        );
        let vars: Vec<&str> = dash["templating"]["list"]
            .as_array()
            .expect("templating")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert_eq!(vars, ["datasource", "location", "system", "check", "target"], "{name}");
        let must_have_data = name.contains("overview") || name.contains("network");
        for panel in dash["panels"].as_array().expect("panels") {
            if panel["type"] == "row" {
                continue; // a row only groups the panels under it
            }
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr");
                used.extend(metric_names(expr));
                let result = prom.query(&substitute(expr)).await;
                if must_have_data {
                    assert!(series(&result) > 0, "{name} / {}: no data for {expr}", panel["title"]);
                }
            }
        }
    }
    let unknown: Vec<&String> = used.iter().filter(|m| !exported.contains(*m) && !recorded.contains(*m)).collect();
    assert!(unknown.is_empty(), "dashboards or rules use metrics Vigil does not export: {unknown:?}");
    demo.stop().await;
}

/// `vigil report` over `dir`'s config as of `at`, from the store or Prometheus.
fn report_json(dir: &Path, at: &str, prometheus: Option<&str>) -> serde_json::Value {
    let config = dir.join("vigil.yaml").display().to_string();
    let mut args = vec!["report", "-c", &config, "--format", "json", "--at", at];
    if let Some(url) = prometheus {
        args.extend(["--source", "prometheus", "--prometheus-url", url, "--step", "1s"]);
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil")).args(&args).output().expect("vigil report");
    assert!(out.status.success(), "vigil report {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("report json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_from_prometheus_matches_the_store_within_the_scrape_interval() {
    use std::sync::atomic::Ordering;
    use vigil::model::State;
    let web = web_server(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &format!(
            "systems:\n  - id: procedures\n    checks:\n      - {{ id: portal, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
            web.addr
        ),
    );
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let prom = Prometheus::start(dir.path(), &app.addr().to_string());
    prom.wait("scraped state", r#"vigil_check_state{check="portal", state="up"} == 1"#, |r| series(r) == 1).await;
    for outage in [4, 6] {
        web.switch.store(503, Ordering::SeqCst);
        wait_states(&mut events, Duration::from_secs(20), &[("procedures/portal", State::Down)]).await;
        tokio::time::sleep(Duration::from_secs(outage)).await;
        web.switch.store(200, Ordering::SeqCst);
        wait_states(&mut events, Duration::from_secs(20), &[("procedures/portal", State::Up)]).await;
    }
    // Prometheus has scraped the recovered state; then both reports as of the same moment.
    prom.wait("scraped recovery", r#"vigil_check_state{check="portal", state="up"} == 1"#, |r| series(r) == 1).await;
    let at = jiff::Timestamp::now().to_string();
    let from_store = report_json(dir.path(), &at, None);
    let from_prometheus = report_json(dir.path(), &at, Some(&prom.base));
    app.shutdown().await;

    let down = |r: &serde_json::Value| r["systems"][0]["accounting"]["down_ms"].as_i64().expect("down_ms");
    let (exact, scraped) = (down(&from_store), down(&from_prometheus));
    eprintln!("down: store {exact} ms, Prometheus {scraped} ms");
    assert!(exact >= 10_000, "two outages of at least 4 s and 6 s: {exact} ms");
    // Each of the four state changes is seen at most one scrape plus one step late or early.
    assert!((exact - scraped).abs() <= 4 * 2_000, "store {exact} ms, Prometheus {scraped} ms");
    assert!(scraped > 0, "Prometheus saw the outages");
}
