//! Issue #21, item 7: the `snmp` check against Debian's snmpd in a test namespace with veth
//! interfaces — v2c and v3 authPriv, a wrong v3 password, the interfaces mode: traffic
//! pushed over a veth read back as bits per second, an interface brought down.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::snmpd::{COMMUNITY, V3_AUTH, V3_PRIV, V3_USER};
use common::*;
use vigil::model::Health;
use vigil::probe::{FailureReason, ProbeOutcome, Prober};

/// Packets per second and payload bytes of the test traffic; on the veth each is a frame
/// of payload + UDP 8 + IPv4 20 + Ethernet 14 bytes.
const PACKETS_PER_SECOND: u64 = 1_000;
const PAYLOAD: usize = 1_000;

fn checks(agent: &str, veth: &str) -> String {
    format!(
        "systems:\n  - id: network\n    checks:\n\
         \x20     - id: v2c\n        timeout: 3s\n        interval: 10s\n\
         \x20       snmp: {{ address: \"{agent}\", community: {COMMUNITY}, get: {{ uptime: 1.3.6.1.2.1.1.3.0, name: 1.3.6.1.2.1.1.5.0 }}, walk: {{ descr: 1.3.6.1.2.1.2.2.1.2 }} }}\n\
         \x20       conditions: [\"[BODY].uptime > 0\", \"[BODY].name == vigil-test-agent\"]\n\
         \x20     - id: switch\n        timeout: 3s\n        interval: 10s\n\
         \x20       snmp:\n          address: \"{agent}\"\n          version: 3\n          username: {V3_USER}\n\
         \x20         auth_protocol: sha\n          auth_password: {V3_AUTH}\n          priv_protocol: aes\n          priv_password: {V3_PRIV}\n\
         \x20         interfaces: {{ names: [\"port.\", \"{veth}\"], admin_down: true }}\n\
         \x20       conditions: [\"[IF_OPER_STATUS] == up\", \"[IF_IN_ERRORS_RATE] < 1/s\", \"[IF_UTILISATION] < 80%\"]\n\
         \x20     - id: wrong-password\n        timeout: 3s\n        interval: 10s\n\
         \x20       snmp: {{ address: \"{agent}\", version: 3, username: {V3_USER}, auth_password: not-the-password, priv_password: {V3_PRIV}, get: {{ uptime: 1.3.6.1.2.1.1.3.0 }} }}\n"
    )
}

/// Every check probed once, by id.
async fn probe_all(prober: &Prober, config: &vigil::config::Config) -> HashMap<String, ProbeOutcome> {
    let mut out = HashMap::new();
    for (_, check, target) in config.targets() {
        out.insert(check.id.clone(), prober.probe(check, target).await);
    }
    out
}

async fn probe_one(prober: &Prober, config: &vigil::config::Config, id: &str) -> ProbeOutcome {
    let (_, check, target) = config.targets().find(|(_, c, _)| c.id == id).expect("check");
    prober.probe(check, target).await
}

/// UDP datagrams to `to` at a steady pace for `seconds` (a bounded loop), on a thread.
fn push_traffic(to: String, seconds: u64) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        let payload = vec![0x5au8; PAYLOAD];
        let start = Instant::now();
        let mut sent = 0;
        // Ten datagrams every 10 ms, on an absolute schedule: the average rate holds.
        for tick in 0..seconds * 100 {
            let due = start + Duration::from_millis(tick * 10);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            for _ in 0..PACKETS_PER_SECOND / 100 {
                if socket.send_to(&payload, &to).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2c_v3_rates_and_a_downed_interface_from_a_real_agent() {
    let ns = Netns::new(7, &[], false);
    // Two more interfaces inside the namespace, wired to each other.
    run_ok("ip", "iproute2", &["-n", &ns.name, "link", "add", "port1", "type", "veth", "peer", "name", "port2"]);
    for port in ["port1", "port2"] {
        run_ok("ip", "iproute2", &["-n", &ns.name, "link", "set", port, "up"]);
    }
    let veth = format!("vg{}x7b", std::process::id() % 60);
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Snmpd::start(dir.path(), Some(&ns.name), &ns.hosts[0], 1161);
    write_config(dir.path(), &checks(&agent.address, &veth));
    let config = vigil::config::load(&dir.path().join("vigil.yaml")).expect("config");
    let prober = Prober::new();

    // v2c and v3 authPriv read the agent; a wrong v3 password is refused, and not shown.
    let first = probe_all(&prober, &config).await;
    let v2c = &first["v2c"];
    assert_eq!(v2c.health, Health::Up, "{}", v2c.message);
    let body: serde_json::Value =
        serde_json::from_slice(v2c.observations.body.as_deref().expect("body")).expect("json");
    assert_eq!(body["name"], "vigil-test-agent");
    assert_eq!(body["descr"]["1"], "lo", "the walk keyed by index: {body}");
    assert_eq!(agent.get("1.3.6.1.2.1.2.2.1.2.1").as_deref(), Some("lo"), "net-snmp's own snmpget reads the same");
    let switch = &first["switch"];
    assert_eq!(switch.health, Health::Up, "{}", switch.message);
    let names: Vec<&str> =
        switch.observations.interfaces.iter().filter(|i| i.judged).map(|i| i.name.as_str()).collect();
    assert_eq!(names.len(), 3, "port1, port2 and the veth are judged, lo is not: {names:?}");
    assert!(switch.observations.interfaces.iter().all(|i| i.rates.is_none()), "no rate on a first run");
    // net-snmp refuses it with an unauthenticated report, which a forger could send too:
    // no trusted answer came, and the message says what that may mean.
    let wrong = &first["wrong-password"];
    assert_eq!((wrong.health, wrong.reason), (Health::Down, Some(FailureReason::Timeout)), "{}", wrong.message);
    assert!(wrong.message.contains("refused the v3 username or passwords"), "{}", wrong.message);
    assert!(!wrong.message.contains("not-the-password") && !wrong.message.contains(V3_PRIV), "{}", wrong.message);

    // Traffic over the veth into the namespace: read back as bits per second within 10 %.
    let traffic = push_traffic(format!("{}:9", ns.hosts[1]), 6);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = probe_one(&prober, &config, "switch").await;
    assert_eq!(before.health, Health::Up, "{}", before.message);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = probe_one(&prober, &config, "switch").await;
    assert_eq!(during.health, Health::Up, "{}", during.message);
    let measured = during.observations.interfaces.iter().find(|i| i.name == veth).expect("the veth");
    let rates = measured.rates.clone().expect("rates on a second run");
    let expected = (PACKETS_PER_SECOND * (PAYLOAD as u64 + 8 + 20 + 14) * 8) as f64;
    let in_bps = rates.in_bps.expect("in bps");
    assert!((in_bps - expected).abs() <= expected * 0.10, "{in_bps:.0} bit/s measured, {expected:.0} sent");
    assert!(rates.in_errors.is_some_and(|r| r >= 0.0) && rates.out_bps.is_some_and(|r| r >= 0.0), "{rates:?}");
    eprintln!("measured {in_bps:.0} bit/s for {expected:.0} sent ({:+.2} %)", (in_bps - expected) * 100.0 / expected);
    let sent = tokio::task::spawn_blocking(move || traffic.join().expect("traffic")).await.expect("join");
    assert_eq!(sent, 6 * PACKETS_PER_SECOND, "the bounded loop sent every datagram");

    // An interface brought down: the check names it (and its peer, whose link went down).
    run_ok("ip", "iproute2", &["-n", &ns.name, "link", "set", "port1", "down"]);
    let down = probe_one(&prober, &config, "switch").await;
    assert_eq!((down.health, down.reason), (Health::Down, Some(FailureReason::Snmp)), "{}", down.message);
    assert!(down.message.contains("port1: [IF_OPER_STATUS] (down) == up"), "{}", down.message);
    assert!(down.message.contains("port2: [IF_OPER_STATUS] ("), "the peer lost its link too: {}", down.message);
    assert!(!down.message.contains(&format!("{veth}:")), "the veth is fine: {}", down.message);
    run_ok("ip", "iproute2", &["-n", &ns.name, "link", "set", "port1", "up"]);
    // The veth pair's carrier comes back within moments: probed until up, 10 s at most.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let back = probe_one(&prober, &config, "switch").await;
        if back.health == Health::Up {
            break;
        }
        assert!(Instant::now() < deadline, "up again: {}", back.message);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(Path::new(&dir.path().join("snmpd-1161/snmpd.log")).exists());
}

/// An agent written for the test (async-snmp's, in this process): an endless subtree (every
/// GETNEXT answers the next number), another endless one of kilobyte strings, and one interface whose name is a kilobyte of text with
/// control characters and whose 32-bit octet counter (no 64-bit one) wraps: each read of it
/// adds 2,000, from 1,000 below 2³².
struct HostileAgent {
    reads: std::sync::atomic::AtomicU32,
}

const ENDLESS: [u32; 8] = [1, 3, 6, 1, 4, 1, 99999, 1];
const BULKY: [u32; 8] = [1, 3, 6, 1, 4, 1, 99999, 2];

impl async_snmp::handler::MibHandler for HostileAgent {
    fn get<'a>(
        &'a self,
        _ctx: &'a async_snmp::handler::RequestContext,
        oid: &'a async_snmp::Oid,
    ) -> async_snmp::handler::BoxFuture<'a, async_snmp::handler::HandlerResult<async_snmp::handler::GetResult>> {
        use async_snmp::handler::GetResult;
        let uptime = oid.arcs() == [1, 3, 6, 1, 2, 1, 1, 3, 0];
        Box::pin(async move {
            Ok(if uptime { GetResult::Value(async_snmp::Value::TimeTicks(100)) } else { GetResult::NoSuchObject })
        })
    }

    fn get_next<'a>(
        &'a self,
        _ctx: &'a async_snmp::handler::RequestContext,
        oid: &'a async_snmp::Oid,
    ) -> async_snmp::handler::BoxFuture<'a, async_snmp::handler::HandlerResult<async_snmp::handler::GetNextResult>>
    {
        use async_snmp::handler::GetNextResult;
        use async_snmp::{Oid, Value, VarBind};
        let arcs = oid.arcs().to_vec();
        Box::pin(async move {
            let next = if arcs.starts_with(&ENDLESS) {
                let n = arcs.get(ENDLESS.len()).copied().unwrap_or(0);
                let mut next = ENDLESS.to_vec();
                next.push(n + 1);
                Some((next, Value::Integer(n as i32)))
            } else if arcs.starts_with(&BULKY) {
                let n = arcs.get(BULKY.len()).copied().unwrap_or(0);
                let mut next = BULKY.to_vec();
                next.push(n + 1);
                Some((next, Value::OctetString("y".repeat(1000).into())))
            } else if arcs.starts_with(&[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1])
                || arcs.starts_with(&[1, 3, 6, 1, 2, 1, 2, 2, 1])
            {
                // One row per column: ifIndex 1 only.
                let column_len = if arcs[6] == 31 { 11 } else { 10 };
                let column = &arcs[..column_len];
                let value = match column.last() {
                    Some(1) if arcs[6] == 31 => {
                        Value::OctetString(format!("eth0\n\u{1b}[31m{}", "x".repeat(1000)).into())
                    }
                    Some(2) => Value::OctetString("eth0".into()),
                    Some(7 | 8) => Value::Integer(1),
                    Some(10) => {
                        let reads = self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Value::Counter32((u32::MAX - 999).wrapping_add(reads.wrapping_mul(2_000)))
                    }
                    _ => Value::Counter32(5),
                };
                (arcs.len() == column_len).then(|| {
                    let mut next = column.to_vec();
                    next.push(1);
                    (next, value)
                })
            } else {
                None
            };
            Ok(match next {
                Some((arcs, value)) => GetNextResult::Value(VarBind::new(Oid::from_slice(&arcs), value)),
                None => GetNextResult::EndOfMibView,
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_agent_cannot_flood_the_probe() {
    let agent = async_snmp::agent::Agent::builder()
        .bind("127.0.0.1:0")
        .community(COMMUNITY.as_bytes().to_vec())
        .handler(async_snmp::Oid::from_slice(&[1, 3, 6, 1]), std::sync::Arc::new(HostileAgent { reads: 0.into() }))
        .allow_all_access()
        .build()
        .await
        .expect("agent");
    let address = agent.local_addr();
    tokio::spawn(async move { agent.run().await });
    let dir = tempfile::tempdir().expect("tempdir");
    let checks = format!(
        "systems:\n  - id: network\n    checks:\n\
         \x20     - {{ id: endless, timeout: 20s, interval: 30s, snmp: {{ address: \"{address}\", community: {COMMUNITY}, walk: {{ all: 1.3.6.1.4.1.99999.1 }} }} }}\n\
         \x20     - {{ id: bulky, timeout: 20s, interval: 30s, snmp: {{ address: \"{address}\", community: {COMMUNITY}, walk: {{ big: 1.3.6.1.4.1.99999.2 }} }} }}\n\
         \x20     - {{ id: names, timeout: 5s, interval: 30s, snmp: {{ address: \"{address}\", community: {COMMUNITY}, interfaces: true }}, conditions: [\"[IF_OPER_STATUS] == down\"] }}\n"
    );
    write_config(dir.path(), &checks);
    let config = vigil::config::load(&dir.path().join("vigil.yaml")).expect("config");
    let prober = Prober::new();
    let started = Instant::now();
    let endless = probe_one(&prober, &config, "endless").await;
    assert_eq!((endless.health, endless.reason), (Health::Down, Some(FailureReason::Snmp)), "{}", endless.message);
    assert!(endless.message.contains("more than 10000 values"), "{}", endless.message);
    assert!(started.elapsed() < Duration::from_secs(20), "stopped at the cap, not the timeout");
    // Kilobyte values: the run's walks stop at 1 MiB of them in all, not at 10,000 values.
    let bulky = probe_one(&prober, &config, "bulky").await;
    assert_eq!((bulky.health, bulky.reason), (Health::Down, Some(FailureReason::Snmp)), "{}", bulky.message);
    assert!(bulky.message.contains("more than 1024 KiB of values"), "{}", bulky.message);
    let names = probe_one(&prober, &config, "names").await;
    let name = &names.observations.interfaces.first().expect("one interface").name;
    assert!(name.chars().count() <= 128 && !name.chars().any(char::is_control), "cut and cleaned: {name:?}");
    assert!(names.message.starts_with("eth0"), "the failure names it, cleaned: {}", names.message);
    assert!(!names.message.contains('\n') && names.message.chars().count() <= 300, "{}", names.message);
    // The 32-bit counter wrapped between the two runs: 2,000 octets, not −4 GB nor +16 EB.
    let between = Instant::now();
    let wrapped = probe_one(&prober, &config, "names").await;
    let rates = wrapped.observations.interfaces[0].rates.clone().expect("a rate on the second run");
    let in_bps = rates.in_bps.expect("in bps");
    let gap = between.elapsed().as_secs_f64(); // at least the time between the two readings
    assert!(in_bps > 0.0 && in_bps < 2_000.0 * 8.0 / gap * 100.0, "{in_bps} bit/s across the wrap");
}
