//! `vigil demo`: simulators of the five Lai Chau systems on 127.0.0.1 (and a commune
//! switch answering SNMP), an embedded configuration that monitors them, and a fault
//! schedule so that within two minutes
//! something goes down (e-meeting), something is slow (documents), a backlog grows
//! (procedures) and a commune link flaps (Sìn Hồ). Nothing leaves the loopback interface.
//!
//! size: `demo_config` is the demo's configuration as data (five systems), not logic.

mod agents;
mod faults;
mod sims;
mod switch;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use faults::Faults;
pub use sims::Simulators;

use crate::app::{App, ConfigSource, Overrides};

/// A fresh random secret (32 bytes, hex): the demo ships no fixed token or key either.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Communes whose gateways the demo simulates (slug, Vietnamese name).
pub const DEMO_COMMUNES: [(&str, &str); 5] = [
    ("tan-phong", "Tân Phong"),
    ("doan-ket", "Đoàn Kết"),
    ("binh-lu", "Bình Lư"),
    ("sin-ho", "Sìn Hồ"),
    ("muong-te", "Mường Tè"),
];

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::DemoTlsError),
    #[error(transparent)]
    Start(#[from] crate::app::StartError),
}

/// A running demo: the simulators, the monitor watching them, and two commune agents.
pub struct Demo {
    pub app: App,
    pub sims: Simulators,
    /// The simulated commune switch (SNMP).
    switch: switch::DemoSwitch,
    agents: agents::Agents,
    /// Folder holding the demo's store.
    pub data_dir: PathBuf,
    /// The admin token of this run (random, printed for the operator).
    pub admin_token: String,
}

impl Demo {
    /// Starts the simulators and the monitor. `speed` compresses the fault schedule and the
    /// probe intervals (1 = real time; tests use more).
    pub async fn start(listen: SocketAddr, speed: f64, data_dir: PathBuf) -> Result<Demo, DemoError> {
        // The configuration names the monitor's own address (for ack links), so bind first.
        // The socket stays bound until the monitor serves on it, so no simulator can take it.
        let listener = Arc::new(std::net::TcpListener::bind(listen)?);
        let listen = listener.local_addr()?;
        let speed = speed.clamp(0.1, 50.0);
        let timing = Timing::for_speed(speed);
        let (ca_pem, tls) = tls::demo_tls(10)?;
        std::fs::create_dir_all(&data_dir)?;
        std::fs::write(data_dir.join("demo-ca.pem"), ca_pem)?;
        let sims = Simulators::start(Faults::new(speed, timing.slow_delay), tls).await?;
        let switch = switch::DemoSwitch::start(random_secret()).await?;
        let admin_token = random_secret();
        let tokens: Vec<String> = agents::DEMO_VANTAGES.iter().map(|_| random_secret()).collect();
        let text = demo_config(&sims, &switch, &timing, &data_dir, &format!("http://{listen}"), &admin_token, &tokens);
        let source = ConfigSource::Text { path: PathBuf::from("demo.yaml"), text, env: Vec::new() };
        let app =
            App::start(source, Overrides { listen: Some(listen), listener: Some(listener), ..Overrides::default() })
                .await?;
        let agents = agents::Agents::start(listen, sims.faults.clone(), &tokens, &data_dir).await?;
        Ok(Demo { app, sims, switch, agents, data_dir, admin_token })
    }

    /// Stops the agents, the monitor, then the simulators.
    pub async fn stop(self) {
        self.agents.stop().await;
        self.app.shutdown().await;
        self.sims.stop();
        self.switch.stop();
    }
}

/// Runs the demo until `shutdown` completes, printing where to look.
pub async fn run(listen: SocketAddr, speed: f64, shutdown: impl Future<Output = ()>) -> Result<(), DemoError> {
    let data_dir = std::env::temp_dir().join(format!("vigil-demo-{}", std::process::id()));
    let demo = Demo::start(listen, speed, data_dir.clone()).await?;
    let base = format!("http://{}", demo.app.addr());
    println!("Vigil demo is running. Simulated systems on 127.0.0.1, monitored every few seconds.");
    println!();
    println!("  status API     {base}/api/v1/status");
    println!("  metrics        {base}/metrics");
    println!("  health         {base}/-/healthy");
    println!("  incidents      {base}/api/v1/incidents");
    println!("  reload         curl -X POST -H 'Authorization: Bearer {}' {base}/-/reload", demo.admin_token);
    println!();
    println!("Simulated systems:");
    for (name, url) in demo.sims.urls() {
        println!("  {name:<28} {url}");
    }
    println!();
    let s = |secs: f64| humantime::format_duration(Duration::from_secs_f64(secs / demo.sims.faults.speed()));
    println!("Fault schedule (repeats every {}):", s(faults::CYCLE_SECS));
    println!(
        "  from {}: documents slow (degraded); procedures backlog passes 500 (degraded) around {}",
        s(faults::SLOW_FROM),
        s(faults::BACKLOG_LIMIT_AT)
    );
    println!(
        "  from {} to {}: e-meeting down (web 503, signalling silent)",
        s(faults::OUTAGE_FROM),
        s(faults::OUTAGE_TO)
    );
    println!("  always: the Sìn Hồ commune link flaps every {}", s(faults::FLAP_PERIOD));
    println!(
        "  from {} to {}: the Mường Tè agent cannot reach the monitor (vantage lost, then the back-fill)",
        s(faults::LINK_DOWN_FROM),
        s(faults::LINK_DOWN_TO)
    );
    println!("Vantage points: agents at Tân Phong and Mường Tè run the portal check too ({base}/api/v1/vantages).");
    println!();
    println!("Alerts go to the rapid-response team's webhook and are printed below as they arrive.");
    println!("Store: {}. Press Ctrl-C to stop.", data_dir.join("vigil.db").display());
    println!();
    shutdown.await;
    demo.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// Probe timing of the demo, scaled with its speed: the slow spell stays well inside the
/// timeout (degraded, not down), and its warning threshold halfway below.
struct Timing {
    interval: Duration,
    timeout: Duration,
    slow_delay: Duration,
    slow_threshold: Duration,
}

impl Timing {
    fn for_speed(speed: f64) -> Timing {
        let interval = Duration::from_secs_f64((5.0 / speed).max(1.0));
        let timeout = Duration::from_secs_f64((interval.as_secs_f64() * 0.8).min(3.0));
        Timing { interval, timeout, slow_delay: timeout.mul_f64(0.6), slow_threshold: timeout.mul_f64(0.3) }
    }
}

/// The embedded configuration, pointing at the simulators' ports.
fn demo_config(
    sims: &Simulators,
    switch: &switch::DemoSwitch,
    timing: &Timing,
    data_dir: &std::path::Path,
    public_url: &str,
    admin_token: &str,
    vantage_tokens: &[String],
) -> String {
    let ack_key = random_secret();
    let grace = humantime::format_duration(timing.interval * 4);
    let vantages: String = agents::DEMO_VANTAGES
        .iter()
        .zip(vantage_tokens)
        .map(|((slug, _), token)| {
            format!(
                "  - {{ name: {slug}, token: \"{token}\", grace: {grace}, link: network/commune-gateways/{slug} }}\n"
            )
        })
        .collect();
    let gateways: String = DEMO_COMMUNES
        .iter()
        .zip(&sims.gateways)
        .map(|((slug, _), addr)| format!("          - {{ name: {slug}, address: \"{addr}\" }}\n"))
        .collect();
    // Loopback addresses stand in for the communes' routers (every 127.x address answers).
    let links: String = DEMO_COMMUNES
        .iter()
        .enumerate()
        .map(|(i, (slug, _))| format!("          - {{ name: {slug}, host: 127.0.1.{} }}\n", i + 1))
        .collect();
    format!(
        r#"instance: {{ name: lai-chau-demo, location: demo, timezone: Asia/Ho_Chi_Minh, language: vi }}
server: {{ admin_token: "{admin_token}", public_url: "{public_url}" }}
storage: {{ path: "{store}" }}
alerting: {{ ack_key: "{ack_key}", flapping: {{ changes: 6, window: 2m }} }}
vantages:
{vantages}receivers:
  - id: rapid-response
    channels:
      - webhook: {{ url: "http://{alert_sink}/alerts" }}
routes:
  - receivers: [rapid-response]
defaults: {{ interval: {interval}, timeout: {timeout}, failure_threshold: 2, success_threshold: 2 }}
systems:
  - id: procedures
    name: {{ vi: "Hệ thống giải quyết thủ tục hành chính", en: "Administrative procedure system" }}
    sla: 99.9%
    checks:
      - id: portal
        name: Cổng dịch vụ công
        http: {{ url: "http://{portal}/" }}
        conditions: ["[STATUS] == 200", "[BODY] == pat(*Dịch vụ công*)"]
        vantages: all
      - id: backlog
        name: Hàng đợi liên thông quốc gia
        http: {{ url: "http://{portal}/api/health" }}
        conditions: ["[STATUS] == 200", "[BODY].status == UP"]
        warning_conditions: ["[BODY].queue.pending < 500"]
  - id: documents
    name: {{ vi: "Hệ thống quản lý văn bản và điều hành", en: "Document management" }}
    sla: 99.5%
    checks:
      - id: web
        name: Trang quản lý văn bản
        http: {{ url: "http://{documents}/" }}
        conditions: ["[STATUS] == 200"]
        warning_conditions: ["[RESPONSE_TIME] < {slow_ms}"]
  - id: e-meeting
    name: {{ vi: "Hệ thống hội nghị truyền hình trực tuyến", en: "E-meeting" }}
    sla: 99.5%
    checks:
      - id: web
        name: Trang điều khiển hội nghị
        http: {{ url: "http://{meeting_web}/" }}
        conditions: ["[STATUS] == 200"]
      - id: signalling
        name: Kênh báo hiệu
        tcp: {{ address: "{meeting_signal}", send: "PING\n", expect: "^PONG" }}
  - id: reporting
    name: {{ vi: "Hệ thống thông tin báo cáo", en: "Reporting system" }}
    sla: 99%
    checks:
      - id: api
        name: API tiếp nhận báo cáo
        http: {{ url: "http://{reporting}/api/health" }}
        conditions: ["[STATUS] == 200", "[BODY].database == ok"]
      - id: portal
        name: Cổng báo cáo (HTTPS)
        http: {{ url: "https://{reporting_tls}/", ca_file: "{ca_file}" }}
        conditions: ["[STATUS] == 200"]
        warning_conditions: ["[CERTIFICATE_EXPIRATION] > 21d"]
  - id: network
    name: {{ vi: "Mạng truyền số liệu chuyên dùng", en: "Specialized data network" }}
    sla: 99.5%
    checks:
      - id: commune-gateways
        name: Cổng kết nối xã, phường
        tcp: {{ expect: "^GW READY" }}
        targets:
{gateways}      - id: commune-links
        name: Đường truyền tới xã, phường (ICMP)
        icmp: {{ count: 3, spacing: 100ms }}
        conditions: ["[PACKET_LOSS] < 50%"]
        warning_conditions: ["[RTT_AVG] < 100ms"]
        targets:
{links}      - id: commune-switch
        name: Bộ chuyển mạch xã Sìn Hồ (SNMP)
        snmp: {{ address: "{switch}", community: "{community}", interfaces: true }}
        conditions: ["[IF_OPER_STATUS] == up", "[IF_IN_ERRORS_RATE] < 1/s"]
        warning_conditions: ["[IF_UTILISATION] < 80%"]
"#,
        switch = switch.address,
        community = switch.community,
        store = data_dir.join("vigil.db").display(),
        alert_sink = sims.alert_sink,
        reporting_tls = sims.reporting_tls,
        ca_file = data_dir.join("demo-ca.pem").display(),
        interval = humantime::format_duration(timing.interval),
        timeout = humantime::format_duration(timing.timeout),
        slow_ms = timing.slow_threshold.as_millis(),
        portal = sims.portal,
        documents = sims.documents,
        meeting_web = sims.meeting_web,
        meeting_signal = sims.meeting_signal,
        reporting = sims.reporting,
    )
}
