//! The `vigil` command line (clap): subcommands call into the library.

pub mod probe;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::{self, ConfigSource, Overrides};
use crate::config;

/// Vigil — health monitor for critical 24/7 systems.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    /// Threads that run probes and serve HTTP (default: half the cores, at least one).
    /// Probes wait on the network, not the CPU: fewer threads wake each other less often
    /// (BENCHMARKS.md); store writes, report building and /metrics encoding have threads
    /// of their own.
    #[arg(long, global = true, env = "VIGIL_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether the command runs on the calling thread alone: `vigil probe` only waits on
    /// the network, and a second thread would only add wake-ups between the two.
    pub fn single_threaded(&self) -> bool {
        matches!(self.command, Command::Probe(_))
    }

    /// Whether the command runs on a small box (an agent in a commune office): memory matters
    /// more than allocation speed there.
    pub fn small_footprint(&self) -> bool {
        matches!(self.command, Command::Agent { .. })
    }

    /// The number of runtime worker threads to start.
    pub fn worker_threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.worker_threads.unwrap_or(cores / 2).max(1)
    }
}

/// How log lines look.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the monitor daemon.
    Run {
        /// Root configuration file.
        #[arg(short, long, default_value = "vigil.yaml")]
        config: PathBuf,
        /// Run one shard of the configuration, `i/n` (0 <= i < n): several instances with
        /// the same configuration and shards 0/n … n-1/n cover every target exactly once.
        #[arg(long)]
        shard: Option<crate::config::shard::Shard>,
    },
    /// Run as an agent at a vantage point: probe the configured checks and forward every
    /// result to the centre named in `agent:` (results wait on disk while it is unreachable).
    Agent {
        /// Configuration file with an `agent:` section.
        #[arg(short, long, default_value = "agent.yaml")]
        config: PathBuf,
    },
    /// Start simulated systems on loopback and monitor them, with a fault schedule.
    Demo {
        /// Where the monitor listens.
        #[arg(long, default_value = "127.0.0.1:9898")]
        listen: SocketAddr,
        /// Compress the fault schedule (2 = twice as fast).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Validate the configuration and print a summary (exit 1 on any error).
    CheckConfig {
        /// Root configuration file.
        #[arg(short, long, default_value = "vigil.yaml")]
        config: PathBuf,
        /// Also list the targets shard `i/n` would run.
        #[arg(long)]
        shard: Option<crate::config::shard::Shard>,
    },
    /// Send a test notification through every channel of a receiver and report each.
    NotifyTest {
        /// Root configuration file.
        #[arg(short, long, default_value = "vigil.yaml")]
        config: PathBuf,
        /// The receiver's id.
        #[arg(long)]
        receiver: String,
    },
    /// Uptime report from the store or Prometheus (default: the current month, HTML, instance language).
    Report {
        /// Root configuration file.
        #[arg(short, long, default_value = "vigil.yaml")]
        config: PathBuf,
        /// The month, e.g. 2026-10.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        month: Option<String>,
        /// First day, e.g. 2026-10-01 (with --to).
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// Last day, inclusive.
        #[arg(long, requires = "from")]
        to: Option<String>,
        #[arg(long, value_enum, default_value_t = crate::report::Format::Html)]
        format: crate::report::Format,
        /// vi or en (default: the instance language).
        #[arg(long)]
        lang: Option<String>,
        /// Write here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Report as of this time (RFC 3339; default now): the same --at gives the same report.
        #[arg(long)]
        at: Option<String>,
        /// Where state history comes from: the local store, or Prometheus (several instances).
        #[arg(long, value_enum, default_value_t = ReportSource::Store)]
        source: ReportSource,
        /// Prometheus base URL (with --source prometheus).
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        prometheus_url: String,
        /// Resolution of the Prometheus range queries; use the scrape interval.
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        step: Duration,
    },
    /// Probe one or many targets now (any kind: http, tcp, tls, icmp, dns) and print each result.
    Probe(probe::ProbeArgs),
}

/// Where `vigil report` reads state history from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportSource {
    /// The instance's own SQLite store (exact to the probe).
    Store,
    /// `vigil_check_state` in Prometheus, at `--step` resolution.
    Prometheus,
}

/// Runs a parsed command line.
pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config, shard } => {
            let overrides = Overrides { shard, ..Overrides::default() };
            app::run(ConfigSource::File(config), overrides, app::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent { config } => {
            match crate::config::load(&config) {
                Ok(c) if c.agent.is_none() => {
                    eprintln!("{}: an agent needs an `agent:` section (vantage, centre, token_file)", config.display());
                    return Ok(ExitCode::from(2));
                }
                _ => {}
            }
            app::run(ConfigSource::File(config), Overrides::default(), app::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { listen, speed } => {
            crate::demo::run(listen, speed, app::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config, shard } => Ok(check_config(&config, shard)),
        Command::NotifyTest { config, receiver } => notify_test(&config, &receiver).await,
        Command::Report { config, month, from, to, format, lang, output, at, source, prometheus_url, step } => {
            let now = match at {
                Some(t) => {
                    t.parse::<jiff::Timestamp>().map_err(|e| anyhow::anyhow!("--at \"{t}\": {e}"))?.as_millisecond()
                }
                None => crate::model::now_ms(),
            };
            report(
                &config,
                ReportRequest {
                    month,
                    dates: from.zip(to),
                    format,
                    lang: lang.as_deref(),
                    output: output.as_deref(),
                    now,
                    prometheus: (source == ReportSource::Prometheus)
                        .then_some((prometheus_url, step.as_millis() as i64)),
                },
            )
            .await
        }
        Command::Probe(args) => probe::run(args).await,
    }
}

/// What `vigil report` was asked for.
struct ReportRequest<'a> {
    month: Option<String>,
    dates: Option<(String, String)>,
    format: crate::report::Format,
    lang: Option<&'a str>,
    output: Option<&'a Path>,
    now: i64,
    /// Prometheus URL and step, when history comes from Prometheus.
    prometheus: Option<(String, i64)>,
}

async fn report(path: &Path, req: ReportRequest<'_>) -> anyhow::Result<ExitCode> {
    use crate::report;
    let ReportRequest { month, dates, format, lang, output, now, prometheus } = req;
    let config = config::load(path).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    let tz = &config.instance.timezone;
    let span = match (month, dates) {
        (_, Some((from, to))) => report::dates(&from, &to, tz)?,
        (Some(m), None) => report::month(&m, tz)?,
        (None, None) => report::month(&report::current_month(now, tz), tz)?,
    };
    let lang = match lang {
        Some("en") => config::Language::En,
        Some("vi") => config::Language::Vi,
        Some(other) => anyhow::bail!("unknown language \"{other}\" (expected vi or en)"),
        None => config.instance.language,
    };
    let location = crate::store::Location::of(&config.storage);
    let store = location.exists().then(|| crate::store::Reader::new(&location));
    let built = match (prometheus, store) {
        (Some((url, step)), store) => {
            let to = span.to_ms.min(now);
            let histories = report::prometheus::histories(&config, &url, span.from_ms, to, step).await?;
            report::build_from(&config, store.as_ref(), &histories, &span, lang, now)?
        }
        (None, Some(store)) => report::build(&config, &store, &span, lang, now)?,
        (None, None) => anyhow::bail!("no store at {location} (run vigil first)"),
    };
    let text = report::render(&built, format, tz);
    match output {
        Some(file) => {
            std::fs::write(file, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn notify_test(path: &Path, receiver: &str) -> anyhow::Result<ExitCode> {
    use crate::alert::message::{MessageContext, render, test_notification};
    use crate::delivery::notify;
    let config = config::load(path).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    let rcv = config
        .receivers
        .iter()
        .find(|r| r.id == receiver)
        .ok_or_else(|| anyhow::anyhow!("no receiver \"{receiver}\" in {}", path.display()))?;
    let ctx = MessageContext::from_config(&config);
    let http = notify::http_client();
    let now = crate::model::now_ms();
    let n = test_notification(receiver, now);
    let rendered = render(&n, &ctx, now);
    let mut all_ok = true;
    for (i, channel) in rcv.channels.iter().enumerate() {
        match notify::send(channel, &n, &rendered, &ctx, &http).await {
            Ok(()) => println!("channel {} ({}): delivered", i + 1, channel.kind()),
            Err(e) => {
                all_ok = false;
                println!("channel {} ({}): FAILED — {e}", i + 1, channel.kind());
            }
        }
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `check-config --shard`: the targets the shard owns, and the helpers it watches for them.
fn print_shard(path: &Path, shard: crate::config::shard::Shard, cfg: config::Config) {
    let cfg = shard.apply(cfg);
    let owned = cfg.targets().filter(|(_, _, t)| !cfg.helpers.contains_key(t.id())).count();
    println!("{}: OK; shard {shard}: {owned} targets, {} helpers", path.display(), cfg.helpers.len());
    for (_, _, t) in cfg.targets() {
        match cfg.helpers.get(t.id()) {
            Some(owner) => println!("helper {} (owned by {owner}/{})", t.id(), shard.count),
            None => println!("target {}", t.id()),
        }
    }
}

fn check_config(path: &Path, shard: Option<crate::config::shard::Shard>) -> ExitCode {
    match config::load(path) {
        Ok(cfg) if let Some(shard) = shard => {
            print_shard(path, shard, cfg);
            ExitCode::SUCCESS
        }
        Ok(cfg) => {
            let checks: usize = cfg.systems.iter().map(|s| s.checks.len()).sum();
            println!("{}: OK ({} files)", path.display(), cfg.files.len());
            println!("systems: {}, checks: {}, targets: {}", cfg.systems.len(), checks, cfg.targets().count());
            println!("receivers: {}, routes: {}", cfg.receivers.len(), cfg.routes.len());
            for s in &cfg.systems {
                let targets: usize = s.checks.iter().map(|c| c.targets.len()).sum();
                let sla = s.sla.map(|v| format!(", SLA {}%", v * 100.0)).unwrap_or_default();
                println!("  {} — {}: {} checks, {} targets{sla}", s.id, s.name_vi, s.checks.len(), targets);
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error{}", errors.0.len(), if errors.0.len() == 1 { "" } else { "s" });
            ExitCode::FAILURE
        }
    }
}
