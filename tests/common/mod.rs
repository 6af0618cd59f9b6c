//! Shared helpers for the integration tests: real loopback peers (HTTP/HTTPS servers with
//! generated certificates, TCP services), a daemon started in-process from a config file,
//! an HTTP client, and waiting on the daemon's events instead of sleeping.
#![allow(dead_code)]

pub mod chrony;
pub mod kamailio;
pub mod nodes;
pub mod postgres;
pub mod relay;
pub mod snmpd;
#[allow(unused_imports)]
pub use chrony::Chrony;
#[allow(unused_imports)]
pub use kamailio::{Kamailio, kamailio};
#[allow(unused_imports)]
pub use nodes::{gauge, start_node, wait_gauge, wait_listening};
#[allow(unused_imports)]
pub use postgres::Postgres;
#[allow(unused_imports)]
pub use relay::Relay;
#[allow(unused_imports)]
pub use snmpd::Snmpd;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use vigil::app::{App, ConfigSource, Overrides};
use vigil::model::State;
use vigil::pipeline::Event;

pub const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// An acknowledgement-link key for test configurations (at least 32 bytes).
pub const ACK_KEY: &str = "test-ack-key-0123456789abcdef0123456789";

/// A test HTTP(S) server with fixed routes and one switchable status.
pub struct WebServer {
    pub addr: SocketAddr,
    /// Status answered on `/switch`.
    pub switch: Arc<AtomicU16>,
}

async fn route(path: &str, switch: &AtomicU16) -> Response<Full<Bytes>> {
    let (status, body, location): (u16, Bytes, Option<&str>) = match path {
        "/ok" => (200, Bytes::from_static(b"all good"), None),
        "/json" => (200, Bytes::from_static(br#"{"status":"UP","queue":{"pending":12}}"#), None),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            (200, Bytes::from_static(b"late"), None)
        }
        "/huge" => (200, Bytes::from(vec![b'x'; 2 << 20]), None),
        "/loop" => (302, Bytes::new(), Some("/loop")),
        "/redirect" => (302, Bytes::new(), Some("/ok")),
        "/switch" => (switch.load(Ordering::SeqCst), Bytes::from_static(b"switch"), None),
        "/script" => (200, Bytes::from_static(b"<script>alert(1)</script>"), None),
        p if p.starts_with("/status/") => (p[8..].parse().unwrap_or(500), Bytes::from_static(b"status"), None),
        _ => (404, Bytes::from_static(b"not found"), None),
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).expect("valid status");
    if let Some(l) = location {
        r.headers_mut().insert("location", l.parse().expect("valid header"));
    }
    r
}

/// Starts an HTTP server, or HTTPS with `tls`, on 127.0.0.1.
pub async fn web_server(tls: Option<Arc<rustls::ServerConfig>>) -> WebServer {
    web_server_at("127.0.0.1:0", tls).await
}

/// Starts an HTTP server, or HTTPS with `tls`, on `bind` (loopback, or the host side of a
/// test namespace's veth).
pub async fn web_server_at(bind: &str, tls: Option<Arc<rustls::ServerConfig>>) -> WebServer {
    let listener = TcpListener::bind(bind).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let switch = Arc::new(AtomicU16::new(200));
    let sw = switch.clone();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let sw = sw.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let sw = sw.clone();
                    async move { Ok::<_, Infallible>(route(req.uri().path(), &sw).await) }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    WebServer { addr, switch }
}

/// A TCP service that writes `banner` to every connection.
pub async fn banner_server(banner: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = stream.write_all(banner.as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            });
        }
    });
    addr
}

/// A loopback port with nothing listening (below the ephemeral range, so it stays closed).
pub async fn closed_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], stable_port()))
}

/// A private CA for the tests and the certificates it issues.
pub struct TestPki {
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// `now + days` (negative for the past).
pub fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

impl TestPki {
    /// A new CA valid from a year ago for two years.
    pub fn new() -> TestPki {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Vigil Test CA");
        params.distinguished_name = dn;
        params.not_before = days_from_now(-365);
        params.not_after = days_from_now(365);
        let cert = params.self_signed(&key).expect("ca cert");
        TestPki { ca_pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses) valid between the two
    /// dates, signed by this CA, and its key.
    fn leaf(
        &self,
        names: &[&str],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("leaf params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0]);
        params.distinguished_name = dn;
        params.not_before = not_before;
        params.not_after = not_after;
        (params.signed_by(&key, &self.issuer).expect("leaf cert"), key)
    }

    /// A server config presenting a leaf for `names` valid between the two dates.
    pub fn server_config(
        &self,
        names: &[&str],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Arc<rustls::ServerConfig> {
        let (cert, key) = self.leaf(names, not_before, not_after);
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        Arc::new(config)
    }

    /// Writes a leaf for `names`, valid now, as `dir/NAME.crt` and `dir/NAME.key` (PEM);
    /// returns both paths.
    pub fn leaf_files(&self, dir: &Path, name: &str, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
        self.leaf_files_until(dir, name, names, 30)
    }

    /// [`TestPki::leaf_files`] for a leaf that expires in `days` days.
    pub fn leaf_files_until(
        &self,
        dir: &Path,
        name: &str,
        names: &[&str],
        days: i64,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = self.leaf(names, days_from_now(-1), days_from_now(days));
        let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

/// Writes `dir/vigil.yaml` with test defaults (1 s interval, thresholds 1/1 unless the
/// systems say otherwise) and the given `systems:` block.
/// One system `web` with one HTTP check `ok` of `http://ADDR/ok` (the `systems:` text).
pub fn one_http_check(web: SocketAddr) -> String {
    format!("systems:\n  - id: web\n    checks:\n      - {{ id: ok, http: {{ url: \"http://{web}/ok\" }} }}\n")
}

/// Fails the test, naming the flag, unless it was built with the test-only
/// `fault-injection` feature (`scripts/test` passes it).
pub fn require_fault_injection() {
    if !cfg!(feature = "fault-injection") {
        panic!("this test needs `cargo test --features fault-injection` (scripts/test passes it)");
    }
}

pub fn write_config(dir: &Path, systems: &str) {
    write_config_with(dir, "", systems);
}

/// Like [`write_config`], with more `server:` settings (e.g. `probe_endpoint: {…}`).
pub fn write_config_with(dir: &Path, server_extra: &str, systems: &str) {
    let extra = if server_extra.is_empty() { String::new() } else { format!(", {server_extra}") };
    let text = format!(
        "instance: {{ name: test, location: test-lab }}\n\
         server: {{ listen: \"127.0.0.1:0\", admin_token: \"{TOKEN}\"{extra} }}\n\
         storage: {{ path: \"{}\" }}\n\
         defaults: {{ interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1 }}\n\
         {systems}",
        dir.join("vigil.db").display()
    );
    std::fs::write(dir.join("vigil.yaml"), text).expect("write config");
}

/// Starts the daemon in-process on the config in `dir`.
pub async fn start_daemon(dir: &Path) -> App {
    App::start(ConfigSource::File(dir.join("vigil.yaml")), Overrides::default()).await.expect("daemon starts")
}

/// Starts the daemon in-process on the config in `dir`, deciding by `clock` (a test jumps
/// it forward instead of sleeping, then calls `App::settle`).
pub async fn start_daemon_with_clock(dir: &Path, clock: vigil::model::TestClock) -> App {
    let overrides = Overrides { clock: Some(std::sync::Arc::new(clock)), ..Overrides::default() };
    App::start(ConfigSource::File(dir.join("vigil.yaml")), overrides).await.expect("daemon starts")
}

/// The outbox rows of the store in `dir` whose key contains `part`, e.g. `-reminder-`.
pub fn outbox_rows(dir: &Path, part: &str) -> usize {
    vigil::store::query::deliveries(dir.join("vigil.db"))
        .expect("outbox")
        .iter()
        .filter(|(key, _, _)| key.contains(part))
        .count()
}

/// Waits (up to `within`) for an event matching `pred`.
pub async fn wait_for(
    rx: &mut broadcast::Receiver<Event>,
    within: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("no matching event within {within:?}"),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => panic!("event channel closed: {e}"),
            Ok(Ok(e)) if pred(&e) => return e,
            Ok(Ok(_)) => {}
        }
    }
}

/// Waits until each target in `ids` has reached its expected state.
pub async fn wait_states(rx: &mut broadcast::Receiver<Event>, within: Duration, expected: &[(&str, State)]) {
    let mut pending: Vec<(&str, State)> = expected.to_vec();
    let deadline = tokio::time::Instant::now() + within;
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            panic!("targets did not reach their states in time: {pending:?}");
        }
        let e = wait_for(rx, left, |_| true).await;
        pending.retain(|(id, s)| !(e.target_id == *id && e.state == *s));
    }
}

/// One HTTP request to the daemon; returns status and body.
pub async fn request(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = client.request(req.body(Full::new(Bytes::new())).expect("request")).await.expect("response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// GETs `/metrics` until `pred` holds (an exposition may be up to a second old: Vigil
/// encodes it at most once a second).
pub async fn metrics_until(base: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = get(&format!("{base}/metrics")).await;
        if pred(&metrics) {
            return metrics;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not in /metrics:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET and expect 200.
pub async fn get(url: &str) -> String {
    let (status, body) = request("GET", url, None).await;
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

/// The value of the sample of `name` that has every label pair in `parts` (each part is
/// one or more comma-separated `key="value"` pairs).
pub fn sample(metrics: &str, name: &str, parts: &[&str]) -> Option<f64> {
    let pairs: Vec<&str> = parts.iter().flat_map(|p| p.split(',')).filter(|p| !p.is_empty()).collect();
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| {
            let labels = l.split_once('{').and_then(|(_, rest)| rest.rsplit_once('}')).map_or("", |(inner, _)| inner);
            pairs.iter().all(|p| labels.split(',').any(|have| have == *p))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs a program from the test dependencies, failing with the install step if missing.
pub fn tool(name: &str, package: &str) -> std::process::Command {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file())).unwrap_or(false);
    assert!(found, "{name} is not installed: run `apt-get install -y {package}` (scripts/test does this)");
    std::process::Command::new(name)
}

/// Runs a command that must succeed (test set-up as root: ip, nft, sysctl).
pub fn run_ok(program: &str, package: &str, args: &[&str]) {
    let out = tool(program, package).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A network namespace with a veth pair, made by the test and removed when dropped (also
/// when the test fails). The host side is `198.18.N.1/29` (a benchmarking range that exists
/// only on this link); the namespace answers on `198.18.N.2` to `.6`.
pub struct Netns {
    pub name: String,
    /// The addresses inside the namespace.
    pub hosts: Vec<String>,
}

impl Netns {
    /// Creates the namespace; `nft_rules` are added to an input chain inside it, and
    /// `ignore_echo` makes it drop every echo request.
    pub fn new(tag: u8, nft_rules: &[&str], ignore_echo: bool) -> Netns {
        let id = std::process::id() % 60;
        let subnet = format!("198.18.{}", id * 4 + u32::from(tag));
        let name = format!("vigil-test-{}-{tag}", std::process::id());
        let (outside, inside) = (format!("vg{id}x{tag}a"), format!("vg{id}x{tag}b"));
        let ns = Netns { name: name.clone(), hosts: (2..=6).map(|h| format!("{subnet}.{h}")).collect() };
        let _ = std::process::Command::new("ip").args(["netns", "del", &name]).output();
        run_ok("ip", "iproute2", &["netns", "add", &name]);
        // A namespace of the same name deleted just before (an earlier test of this process)
        // may still hold its veth for a moment: the kernel cleans up asynchronously.
        let _ = std::process::Command::new("ip").args(["link", "del", &outside]).output();
        for _ in 0..50 {
            let added = std::process::Command::new("ip")
                .args(["link", "add", &outside, "type", "veth", "peer", "name", &inside])
                .output()
                .is_ok_and(|o| o.status.success());
            if added {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        run_ok("ip", "iproute2", &["link", "show", &outside]);
        run_ok("ip", "iproute2", &["link", "set", &inside, "netns", &name]);
        run_ok("ip", "iproute2", &["addr", "add", &format!("{subnet}.1/29"), "dev", &outside]);
        run_ok("ip", "iproute2", &["link", "set", &outside, "up"]);
        for host in &ns.hosts {
            run_ok("ip", "iproute2", &["-n", &name, "addr", "add", &format!("{host}/29"), "dev", &inside]);
        }
        run_ok("ip", "iproute2", &["-n", &name, "link", "set", &inside, "up"]);
        run_ok("ip", "iproute2", &["-n", &name, "link", "set", "lo", "up"]);
        if ignore_echo {
            run_ok("ip", "iproute2", &["netns", "exec", &name, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"]);
        }
        if !nft_rules.is_empty() {
            run_ok("ip", "iproute2", &["netns", "exec", &name, "nft", "add", "table", "inet", "vigil"]);
            run_ok(
                "ip",
                "iproute2",
                &["netns", "exec", &name, "nft", "add chain inet vigil input { type filter hook input priority 0 ; }"],
            );
            for rule in nft_rules {
                run_ok(
                    "ip",
                    "iproute2",
                    &["netns", "exec", &name, "nft", &format!("add rule inet vigil input {rule}")],
                );
            }
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the host end.
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A free UDP+TCP port on 127.0.0.1 for a server a test starts as a process: taken from
/// below the ephemeral range, so no `bind(0)` or outgoing connection grabs it meanwhile.
pub fn free_port() -> u16 {
    stable_port()
}

/// A free port below the ephemeral range (which `bind(0)` and outgoing connections use),
/// for servers a test stops and starts again on the same port.
pub fn stable_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let span = low.saturating_sub(20000).max(1);
    let seed = std::process::id() as u64 * 7919
        + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as u64);
    (0..2000u64)
        .map(|i| 20000 + ((seed + i * 104_729) % u64::from(span)) as u16)
        .find(|p| {
            std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", *p)).is_ok()
        })
        .expect("a free port below the ephemeral range")
}

/// A real DNS server (dnsmasq) on 127.0.0.1, stopped when dropped.
pub struct Dnsmasq {
    pub addr: String,
    child: std::process::Child,
}

impl Dnsmasq {
    /// Starts dnsmasq answering for `laichau.test` only, authoritatively: `portal` →
    /// 127.0.0.5, `twin` → 127.0.0.2 and 127.0.0.3 (two A records), an MX and a TXT record;
    /// other names in the zone are NXDOMAIN.
    pub fn start() -> Dnsmasq {
        let port = free_port();
        // `crowd` resolves to eighteen addresses: more than `ip: all` probes in one run.
        let crowd: Vec<String> = (10..28).map(|i| format!("--host-record=crowd.laichau.test,127.0.0.{i}")).collect();
        let child = tool("dnsmasq", "dnsmasq-base")
            .args(&crowd)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                "--pid-file=",
                "--local=/laichau.test/",
                "--host-record=portal.laichau.test,127.0.0.5",
                "--host-record=twin.laichau.test,127.0.0.2",
                "--host-record=twin.laichau.test,127.0.0.3",
                "--mx-host=laichau.test,mail.laichau.test,10",
                "--txt-record=laichau.test,v=spf1 -all",
                // Authoritative for the zone on this address: answers carry an authority
                // section (NS, or SOA when negative), as a real zone's server does.
                "--auth-zone=laichau.test",
                "--auth-server=ns.laichau.test,127.0.0.1",
                "--auth-soa=1,hostmaster.laichau.test",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let addr = format!("127.0.0.1:{port}");
        // Ready once it accepts TCP on its port.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "dnsmasq did not start on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Dnsmasq { addr, child }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A check for calling the prober directly.
pub fn check_of(probe: vigil::config::ProbeSpec, timeout: Duration, conditions: &[&str]) -> vigil::config::Check {
    let conditions = conditions.iter().map(|c| vigil::condition::Condition::parse(c).expect("condition")).collect();
    vigil::config::Check::standalone("c", probe, timeout, conditions, Vec::new())
}

/// A target for calling the prober directly.
pub fn target_of(name: &str, address: &str) -> vigil::config::Target {
    vigil::config::Target::new(
        vigil::config::TargetKey { system: "s".into(), check: "c".into(), target: name.into() },
        address.into(),
    )
}

/// A real SMTP server (aiosmtpd) on 127.0.0.1 that records every mail; stopped when dropped.
pub struct SmtpSink {
    pub port: u16,
    out: std::path::PathBuf,
    /// `starttls` or `tls` (implicit), with the certificate and key files.
    tls: Option<[String; 3]>,
    /// `user:password`: the one login it accepts (it offers AUTH then).
    auth: Option<String>,
    child: Option<std::process::Child>,
}

impl SmtpSink {
    /// Starts the sink on a free port, recording into `dir`. The port is below the
    /// kernel's ephemeral range, so nothing else grabs it while the sink is stopped.
    pub fn start(dir: &Path) -> SmtpSink {
        let mut sink =
            SmtpSink { port: stable_port(), out: dir.join("mails.jsonl"), tls: None, auth: None, child: None };
        sink.resume();
        sink
    }

    /// Starts a sink that speaks TLS: `starttls` (required before MAIL) or `tls` (implicit,
    /// from the first byte), with this certificate and key; records into `dir/NAME.jsonl`.
    pub fn start_tls(dir: &Path, name: &str, mode: &str, cert: &Path, key: &Path) -> SmtpSink {
        let tls = [mode.to_string(), cert.display().to_string(), key.display().to_string()];
        let out = dir.join(format!("{name}.jsonl"));
        let mut sink = SmtpSink { port: stable_port(), out, tls: Some(tls), auth: None, child: None };
        sink.resume();
        sink
    }

    /// Like [`SmtpSink::start_tls`] with STARTTLS, offering AUTH and accepting only `login`
    /// (`user:password`).
    pub fn start_tls_auth(dir: &Path, name: &str, cert: &Path, key: &Path, login: &str) -> SmtpSink {
        let tls = ["starttls".to_string(), cert.display().to_string(), key.display().to_string()];
        let out = dir.join(format!("{name}.jsonl"));
        let mut sink = SmtpSink { port: stable_port(), out, tls: Some(tls), auth: Some(login.into()), child: None };
        sink.resume();
        sink
    }

    /// Starts it again on the same port (after [`SmtpSink::stop`]).
    pub fn resume(&mut self) {
        assert!(
            std::path::Path::new("/usr/lib/python3/dist-packages/aiosmtpd").exists(),
            "aiosmtpd is not installed: run `apt-get install -y python3-aiosmtpd` (scripts/test does this)"
        );
        let script = format!("{}/tests/fixtures/smtp_sink.py", env!("CARGO_MANIFEST_DIR"));
        let mut child = std::process::Command::new("/usr/bin/python3")
            .args([&script, &self.port.to_string(), &self.out.display().to_string()])
            .args(self.tls.iter().flatten())
            .envs(self.auth.iter().map(|login| ("SMTP_SINK_AUTH", login)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the SMTP sink");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("sink output");
        assert_eq!(line.trim(), "ready", "SMTP sink did not start");
        self.child = Some(child);
    }

    /// Stops the server (connections are then refused).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every mail received so far.
    pub fn mails(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `pred` holds for the mails received.
    pub async fn wait_until(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let mails = self.mails();
            if pred(&mails) {
                return mails;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: not within {within:?}; mails: {mails:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One request a [`HookSink`] received.
#[derive(Debug, Clone)]
pub struct Hook {
    pub path: String,
    pub headers: std::collections::HashMap<String, String>,
    pub body: serde_json::Value,
    pub raw: Vec<u8>,
}

/// An HTTP server that records every POST (webhooks, Alertmanager-like clients).
pub struct HookSink {
    pub addr: SocketAddr,
    hooks: Arc<std::sync::Mutex<Vec<Hook>>>,
}

impl HookSink {
    /// Starts the sink on 127.0.0.1.
    pub async fn start() -> HookSink {
        HookSink::start_on(0).await
    }

    /// Starts the sink on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(port: u16) -> HookSink {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hooks: Arc<std::sync::Mutex<Vec<Hook>>> = Arc::default();
        let store = hooks.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let store = store.clone();
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                            .collect();
                        let raw = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                        let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
                        store.lock().expect("lock").push(Hook { path, headers, body, raw });
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        HookSink { addr, hooks }
    }

    /// Every request so far.
    pub fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().expect("lock").clone()
    }

    /// Waits until `pred` holds for the requests received.
    pub async fn wait_until(&self, within: Duration, what: &str, pred: impl Fn(&[Hook]) -> bool) -> Vec<Hook> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let hooks = self.hooks();
            if pred(&hooks) {
                return hooks;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: not within {within:?}; got {hooks:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One HTTP request with headers and a body; returns status, headers and body.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, std::collections::HashMap<String, String>, String) {
    let (status, heads, bytes) = send_raw(method, url, headers, body).await;
    (status, heads, String::from_utf8_lossy(&bytes).into_owned())
}

/// [`send`], with the body's bytes as they came (still compressed, say).
pub async fn send_raw(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, std::collections::HashMap<String, String>, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp =
        client.request(req.body(Full::new(Bytes::from(body.to_string()))).expect("request")).await.expect("response");
    let status = resp.status().as_u16();
    let heads = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    (status, heads, resp.into_body().collect().await.expect("body").to_bytes())
}

/// A receiver `team` (one webhook to `hooks`), one route to it (with `extra_route`), and
/// the `systems:` text.
pub fn webhook_config(hooks: &HookSink, extra_route: &str, systems: &str) -> String {
    format!(
        "receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/hook\" }} }} ] }}\nroutes:\n  - {{ receivers: [team]{extra_route} }}\n{systems}",
        hooks.addr
    )
}

/// One check `network/sin-ho` on the test server's `/switch`, flapping after 4 changes in
/// 10 minutes, its notifications to the webhook sink.
pub fn flapping_config(hooks: &HookSink, addr: std::net::SocketAddr) -> String {
    let systems = format!(
        "systems:\n  - id: network\n    checks:\n      - {{ id: sin-ho, http: {{ url: \"http://{addr}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n"
    );
    format!("alerting: {{ flapping: {{ changes: 4, window: 10m }} }}\n{}", webhook_config(hooks, "", &systems))
}

/// A child process (an agent a test started) that is killed and reaped when dropped — also
/// when the test fails half-way, so no process outlives its test.
pub struct Reaped(pub std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Flips the test server's `/switch` `times` times, counting from `from` (even: down, odd:
/// up), each flip waiting for its transition.
pub async fn flip(web: &WebServer, events: &mut broadcast::Receiver<Event>, from: usize, times: usize) {
    for i in from..from + times {
        let (status, want) = if i % 2 == 0 { (503, State::Down) } else { (200, State::Up) };
        web.switch.store(status, Ordering::SeqCst);
        wait_for(events, Duration::from_secs(30), |e| e.transition.is_some_and(|t| t.to == want)).await;
    }
}

/// A real WebSocket server (`tests/fixtures/ws_server.py`, Debian's python3-websockets) on
/// a loopback port, stopped when dropped.
pub struct WsServer {
    pub port: u16,
    _child: Reaped,
}

impl WsServer {
    /// MODE `echo`, `silent` or `refuse`; TLS (wss) with the certificate and key, if given.
    pub fn start(mode: &str, tls: Option<(&Path, &Path)>) -> WsServer {
        assert!(
            Path::new("/usr/lib/python3/dist-packages/websockets").exists(),
            "python3-websockets is not installed: run `apt-get install -y python3-websockets` (scripts/test does this)"
        );
        let port = free_port();
        let script = format!("{}/tests/fixtures/ws_server.py", env!("CARGO_MANIFEST_DIR"));
        let mut command = std::process::Command::new("/usr/bin/python3");
        command.args([script, port.to_string(), mode.to_string()]);
        if let Some((cert, key)) = tls {
            command.arg(cert).arg(key);
        }
        let mut child = command.stdout(std::process::Stdio::piped()).spawn().expect("start the WebSocket server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("server output");
        assert_eq!(line.trim(), "ready", "the WebSocket server did not start");
        WsServer { port, _child: Reaped(child) }
    }
}
