//! Issue #21, item 6: path MTU and the smoke graph. Three network namespaces made by the
//! test — centre, router, commune — where the router's commune-side link has an MTU of
//! 1,400 bytes and nftables drops the "fragmentation needed" it would send back (an MTU
//! black hole, as on a VPN or radio hop). Vigil runs in the centre namespace.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Reaped, TOKEN, run_ok, sample, tool};

/// Three namespaces in a line, removed when dropped (also when the test fails). Addresses
/// are from 198.19.N.0/28 (in the benchmarking range 198.18.0.0/15), on links that exist
/// only between these namespaces.
struct Line {
    centre: String,
    router: String,
    commune: String,
    commune_ip: String,
}

impl Line {
    fn new() -> Line {
        let pid = std::process::id();
        let n = pid % 250;
        let [centre, router, commune] = ["c", "r", "m"].map(|t| format!("vigil-mtu-{pid}-{t}"));
        let line = Line { centre, router, commune, commune_ip: format!("198.19.{n}.10") };
        for ns in [&line.centre, &line.router, &line.commune] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            run_ok("ip", "iproute2", &["netns", "add", ns]);
            run_ok("ip", "iproute2", &["-n", ns, "link", "set", "lo", "up"]);
        }
        // centre [vmc…] 198.19.N.1 — 198.19.N.2 [vmr…] router [vmq…] 198.19.N.9 — 198.19.N.10 [vmm…] commune
        let links = [
            (&line.centre, format!("vmc{n}"), &line.router, format!("vmr{n}"), "1", "2"),
            (&line.router, format!("vmq{n}"), &line.commune, format!("vmm{n}"), "9", "10"),
        ];
        for (a, a_if, b, b_if, a_host, b_host) in &links {
            run_ok("ip", "iproute2", &["-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b]);
            run_ok("ip", "iproute2", &["-n", a, "addr", "add", &format!("198.19.{n}.{a_host}/29"), "dev", a_if]);
            run_ok("ip", "iproute2", &["-n", b, "addr", "add", &format!("198.19.{n}.{b_host}/29"), "dev", b_if]);
            run_ok("ip", "iproute2", &["-n", a, "link", "set", a_if, "up"]);
            run_ok("ip", "iproute2", &["-n", b, "link", "set", b_if, "up"]);
        }
        run_ok("ip", "iproute2", &["-n", &line.router, "link", "set", &format!("vmq{n}"), "mtu", "1400"]);
        run_ok(
            "ip",
            "iproute2",
            &["-n", &line.centre, "route", "add", &format!("198.19.{n}.8/29"), "via", &format!("198.19.{n}.2")],
        );
        run_ok(
            "ip",
            "iproute2",
            &["-n", &line.commune, "route", "add", &format!("198.19.{n}.0/29"), "via", &format!("198.19.{n}.9")],
        );
        run_ok("ip", "iproute2", &["netns", "exec", &line.router, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        for rule in [
            "add table inet vigil",
            "add chain inet vigil output { type filter hook output priority 0 ; }",
            "add rule inet vigil output icmp type destination-unreachable icmp code frag-needed counter drop",
        ] {
            run_ok("ip", "iproute2", &["netns", "exec", &line.router, "nft", rule]);
        }
        line
    }

    /// A command run inside the centre namespace.
    fn in_centre(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.centre, program]);
        c
    }

    /// `GET url` from the centre (where Vigil listens on its own loopback).
    fn get(&self, url: &str) -> String {
        let out = self.in_centre("curl").args(["-s", "--max-time", "5", url]).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Packets the router's "fragmentation needed" rule dropped.
    fn dropped_frag_needed(&self) -> u64 {
        let out = tool("ip", "iproute2")
            .args(["netns", "exec", &self.router, "nft", "list", "chain", "inet", "vigil", "output"])
            .output()
            .expect("nft list");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("packets ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        for ns in [&self.centre, &self.router, &self.commune] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn write_config(dir: &Path, commune: &str) {
    let text = format!(
        "instance: {{ name: centre, location: centre }}\n\
         server: {{ listen: \"127.0.0.1:9898\", admin_token: \"{TOKEN}\" }}\n\
         storage: {{ path: \"{}\" }}\n\
         defaults: {{ interval: 2s, timeout: 1500ms, failure_threshold: 1, success_threshold: 1 }}\n\
         systems:\n\
         \x20 - id: network\n\
         \x20   checks:\n\
         \x20     - {{ id: small, icmp: {{ host: \"{commune}\", count: 5, spacing: 20ms }} }}\n\
         \x20     - {{ id: full-size, icmp: {{ host: \"{commune}\", count: 3, spacing: 20ms, dont_fragment: true, size: 1472 }} }}\n\
         \x20     - id: path\n\
         \x20       icmp: {{ host: \"{commune}\", count: 3, spacing: 20ms, dont_fragment: true, sizes: [64, 1200, 1472] }}\n\
         \x20       conditions: [\"[PATH_MTU] >= 1500\"]\n",
        dir.join("vigil.db").display()
    );
    std::fs::write(dir.join("vigil.yaml"), text).expect("write config");
}

fn series(check: &str) -> String {
    format!("check=\"{check}\"")
}

/// Small echoes pass; 1,472-byte don't-fragment echoes vanish; the sweep finds the path MTU
/// between 1,372 and 1,400 and its condition fails showing it; every echo lands in the
/// histogram; the smoke graph renders in Chromium, without console error, under 20 KB.
#[test]
fn an_mtu_black_hole_is_found_and_the_smoke_graph_renders() {
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test does this)"
    );
    tool("chromium", "chromium");
    tool("curl", "curl");
    let line = Line::new();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &line.commune_ip);
    let _vigil = Reaped(
        line.in_centre(env!("CARGO_BIN_EXE_vigil"))
            .args(["run", "-c"])
            .arg(dir.path().join("vigil.yaml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vigil in the centre namespace"),
    );

    // Three runs of each check.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let m = line.get("http://127.0.0.1:9898/metrics");
        let runs = |c: &str| {
            ["success", "failure"]
                .iter()
                .filter_map(|r| sample(&m, "vigil_check_runs_total", &[&series(c), &format!("result=\"{r}\"")]))
                .sum::<f64>()
        };
        if ["small", "full-size", "path"].iter().all(|c| runs(c) >= 3.0) {
            break m;
        }
        assert!(Instant::now() < deadline, "three runs of each check within 30 s:\n{m}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let value = |name: &str, check: &str| sample(&metrics, name, &[&series(check)]);
    assert_eq!(value("vigil_check_up", "small"), Some(1.0), "small echoes pass:\n{metrics}");
    assert_eq!(value("vigil_icmp_packet_loss_ratio", "small"), Some(0.0));
    assert_eq!(value("vigil_check_up", "full-size"), Some(0.0), "1,472-byte DF echoes vanish");
    assert_eq!(value("vigil_icmp_packet_loss_ratio", "full-size"), Some(1.0));
    let mtu = value("vigil_icmp_path_mtu_bytes", "path").expect("the path MTU is exported");
    assert!((1372.0..=1400.0).contains(&mtu), "path MTU {mtu}");
    assert_eq!(value("vigil_check_up", "path"), Some(0.0), "[PATH_MTU] >= 1500 fails");
    assert!(line.dropped_frag_needed() > 0, "the router did send \"fragmentation needed\", and it was dropped");
    // Every answered echo is in the histogram: the small check's five a run, none lost.
    let count = value("vigil_icmp_echo_rtt_seconds_count", "small").expect("histogram count");
    let inf = sample(&metrics, "vigil_icmp_echo_rtt_seconds_bucket", &[&series("small"), "le=\"+Inf\""]);
    assert!(count >= 15.0 && count % 5.0 == 0.0, "five echoes per run: {count}");
    assert_eq!(inf, Some(count));
    assert_eq!(value("vigil_icmp_echo_rtt_seconds_count", "full-size"), Some(0.0), "lost echoes have no round trip");

    // The check page says why, with the measured value.
    let page = line.get("http://127.0.0.1:9898/checks/network/path");
    assert!(page.contains(&format!("[PATH_MTU] ({mtu}) &gt;= 1500")), "the failed condition shows the MTU: {page}");

    // The smoke graph, in Chromium.
    let out = line
        .in_centre(tool("node", "nodejs").get_program().to_str().expect("node path"))
        .arg(browser.join("smoke-graph.mjs"))
        .arg("http://127.0.0.1:9898/checks/network/small")
        .output()
        .expect("run the browser script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser script failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let graph: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("json");
    assert_eq!(graph["status"], 200, "{graph}");
    assert_eq!(graph["consoleErrors"], serde_json::json!([]), "{graph}");
    assert_eq!(graph["graphs"], 1, "{graph}");
    assert_eq!(graph["scripts"], 0, "no script: {graph}");
    assert!(graph["svgBytes"].as_u64().is_some_and(|b| b > 0 && b < 20_000), "{graph}");
    assert!(graph["paths"].as_u64().is_some_and(|p| p >= 3), "{graph}");
    assert!(graph["width"].as_f64().is_some_and(|w| w > 300.0), "{graph}");
    eprintln!("path MTU {mtu}; smoke graph: {} bytes, {} paths", graph["svgBytes"], graph["paths"]);
}
