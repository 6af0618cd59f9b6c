//! `vigil probe`: probe one or many targets now, side by side, and print each result (like
//! `fping` for a list of hosts, for every probe kind).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use futures_util::StreamExt;

use crate::condition::Condition;
use crate::config::{
    self, Check, DnsSpec, DnsTransport, HttpSpec, IcmpSpec, IpPreference, ProbeSpec, Target, TargetKey, TcpSpec,
    TlsSpec,
};
use crate::model::Health;
use crate::model::format_duration;
use crate::probe::{ProbeOutcome, Prober};

/// What `vigil probe` is asked to do.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// `https://host/path`, `host:port` (tcp, tls, dns server) or `host` (icmp, dns server);
    /// several are probed side by side.
    #[arg(required_unless_present = "files")]
    targets: Vec<String>,
    /// Read more targets from this file, one per line (`-` for standard input; blank lines
    /// and `#` comments are skipped). Repeatable.
    #[arg(short, long = "file")]
    files: Vec<PathBuf>,
    /// Probe kind (inferred from the first target when omitted: a URL is http, else tcp).
    #[arg(long, value_enum)]
    kind: Option<ProbeKind>,
    /// A condition to check (repeatable), e.g. "[STATUS] == 200".
    #[arg(long = "condition")]
    conditions: Vec<String>,
    /// Timeout of each probe.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Do not verify TLS certificates (they are still shown).
    #[arg(long)]
    insecure: bool,
    /// ICMP: echo requests per target.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    count: u16,
    /// ICMP: gap between two echo requests to the same target (at least 10ms).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    spacing: Duration,
    /// DNS: the name to look up.
    #[arg(long, default_value = ".")]
    query_name: String,
    /// DNS: the record type to ask for (A, AAAA, CNAME, MX, TXT, NS, SOA, PTR).
    #[arg(long, default_value = "NS")]
    query_type: String,
    /// Targets probed at the same time.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    parallel: u32,
    /// Print only targets that are not up, and a count of the rest.
    #[arg(short, long)]
    quiet: bool,
    /// Print JSON instead of text (one object for one target, an array for several; each
    /// names its `target`).
    #[arg(long)]
    json: bool,
}

/// Kinds `vigil probe` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeKind {
    Http,
    Tcp,
    Tls,
    Icmp,
    Dns,
}

/// Probes every target and prints the results in the order given. Exits 0 when all are up,
/// else with the worst health's code: degraded 1, down 2, unknown 3.
pub async fn run(mut args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let mut targets = std::mem::take(&mut args.targets);
    for path in &args.files {
        targets.extend(read_targets(path)?);
    }
    anyhow::ensure!(!targets.is_empty(), "no targets to probe");
    let kind = args.kind.unwrap_or(if targets[0].contains("://") { ProbeKind::Http } else { ProbeKind::Tcp });
    let check = check(&args, kind)?;
    let prober = Prober::new();
    let probe = |address: String| {
        let (check, prober) = (&check, &prober);
        async move {
            let key = TargetKey { system: "cli".into(), check: "probe".into(), target: "probe".into() };
            let target = Target::new(key, address);
            let outcome = prober.probe(check, &target).await;
            (target.address, outcome)
        }
    };
    // Printed as they come in (in the order given), so a long list shows progress and no
    // more than `parallel` results are held at once — except for JSON, printed whole.
    let mut results = futures_util::stream::iter(targets).map(probe).buffered(args.parallel as usize);
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let (mut worst, mut total, mut up) = (0, 0, 0);
    let mut objects = Vec::new();
    while let Some((target, outcome)) = results.next().await {
        worst = worst.max(exit_code(outcome.health));
        total += 1;
        if args.json {
            let mut object = serde_json::to_value(&outcome)?;
            object["target"] = target.into();
            objects.push(object);
        } else if args.quiet && outcome.health == Health::Up {
            up += 1;
        } else {
            out.write_all(describe(&target, &outcome).as_bytes())?;
        }
    }
    if args.json {
        let json = if objects.len() == 1 { objects.remove(0) } else { serde_json::Value::Array(objects) };
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else if args.quiet {
        writeln!(out, "{up} of {total} up")?;
    }
    out.flush()?;
    Ok(ExitCode::from(worst))
}

fn read_targets(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    };
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect())
}

/// The check every target is probed with.
fn check(args: &ProbeArgs, kind: ProbeKind) -> anyhow::Result<Check> {
    let tls = TlsSpec { insecure_skip_verify: args.insecure, ..TlsSpec::default() };
    anyhow::ensure!(args.spacing >= Duration::from_millis(10), "--spacing must be at least 10ms");
    let query_type = args.query_type.to_ascii_uppercase();
    let probe = match kind {
        ProbeKind::Http => ProbeSpec::Http(HttpSpec::get(tls)),
        ProbeKind::Tcp => ProbeSpec::Tcp(TcpSpec { send: None, expect: None, tls: None }),
        ProbeKind::Tls => ProbeSpec::Tls(tls),
        ProbeKind::Icmp => ProbeSpec::Icmp(IcmpSpec {
            count: args.count,
            spacing: args.spacing,
            ip_protocol: IpPreference::Auto,
            payload_size: config::DEFAULT_ICMP_PAYLOAD,
            path: Default::default(),
            sweep: Vec::new(),
        }),
        ProbeKind::Dns => {
            anyhow::ensure!(
                config::DNS_TYPES.contains(&query_type.as_str()),
                "--query-type {query_type}: expected one of {}",
                config::DNS_TYPES.join(", ")
            );
            ProbeSpec::Dns(DnsSpec { query_name: args.query_name.clone(), query_type, transport: DnsTransport::Udp })
        }
    };
    let mut conditions = Vec::new();
    for c in &args.conditions {
        conditions.push(Condition::parse(c).map_err(|e| anyhow::anyhow!("condition \"{c}\": {e}"))?);
    }
    if conditions.is_empty()
        && let Some(default) = config::default_condition(probe.kind())
    {
        conditions.push(Condition::parse(default).expect("default condition parses"));
    }
    Ok(Check::standalone("probe", probe, args.timeout, conditions, Vec::new()))
}

fn exit_code(health: Health) -> u8 {
    match health {
        Health::Up => 0,
        Health::Degraded => 1,
        Health::Down => 2,
        Health::Unknown => 3,
    }
}

/// A few lines for people: health, reason, and what was measured.
fn describe(target: &str, o: &ProbeOutcome) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "{target}: {} in {}", o.health.as_str().to_uppercase(), format_duration(o.duration));
    if let Some(reason) = o.reason {
        let _ = writeln!(s, "  reason: {} — {}", reason.code(), o.message);
    }
    let obs = &o.observations;
    if let Some(status) = obs.status {
        let _ = writeln!(s, "  status: {status}");
    }
    if let Some(ip) = obs.ip {
        let _ = writeln!(s, "  address: {ip}");
    }
    if let Some(i) = &obs.icmp {
        let _ = writeln!(
            s,
            "  echoes: {} sent, {} received, {}% loss; rtt min/avg/max {}/{}/{}, jitter {}",
            i.sent,
            i.received,
            i.loss_percent,
            format_duration(i.rtt_min),
            format_duration(i.rtt_avg),
            format_duration(i.rtt_max),
            format_duration(i.jitter)
        );
    }
    if let Some(d) = &obs.dns {
        let _ = writeln!(s, "  dns: {}, answers: {}", d.rcode, d.answers.join(", "));
    }
    if !obs.phases.is_empty() {
        let phases: Vec<String> = obs.phases.iter().map(|(n, d)| format!("{n} {}", format_duration(*d))).collect();
        let _ = writeln!(s, "  phases: {}", phases.join(", "));
    }
    for c in &obs.certificates {
        let expires = jiff::Timestamp::from_second(c.not_after).map(|t| t.to_string()).unwrap_or_default();
        let _ = writeln!(s, "  certificate: {} (issuer {}), expires {expires}", c.subject, c.issuer);
    }
    s
}
