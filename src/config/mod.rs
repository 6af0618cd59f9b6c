//! Configuration: YAML files → validated, typed [`Config`].
//!
//! Loading is three steps: read each file (`source`), decode it into the raw structs
//! (`raw`), and validate (`validate`), a pure step that collects *every* error with its
//! `file:line:col: key.path: message`. The typed config is plain data: no runtime inside.

pub mod addresses;
pub mod alerting;
pub mod cluster;
mod conversations;
pub use conversations::{NtpSpec, SipSpec, SipTransport, SmtpSpec, WebsocketSpec};
pub mod env;
mod fields;
mod icmp;
mod kind;
mod kinds;
pub mod maintenance;
mod modules;
mod raw;
mod secrets;
pub mod shard;
pub mod snmp;
mod source;
mod standalone;
pub mod steps;
mod target;
pub use target::Target;
mod validate;
pub mod vantage;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::model::TargetKey;
pub use fields::{parse_duration, parse_percent};
pub use kinds::{DNS_TYPES, Kind, KindSpec, default_condition};
pub use modules::{AllowRule, Module, ProbeEndpoint, is_credential_header};
pub use secrets::redact_url;
pub use source::{Pos, SourceFile};

use crate::condition::Condition;

/// One configuration error, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// The key path, e.g. `systems[0].checks[2].interval`; empty when not tied to a key.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found in a configuration, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Loads and validates the root file at `path` with all its includes, `${NAME}` taken
/// from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    validate::load(path, &env::process_env)
}

/// Like [`load`], with `${NAME}` values from `env` (tests give a map; nothing reads the
/// process environment then).
pub fn load_with_env(path: &Path, env: env::Lookup<'_>) -> Result<Config, ConfigErrors> {
    validate::load(path, env)
}

/// Loads a configuration held in memory (the demo's); `path` is used in messages and as
/// the folder that relative includes and files resolve against; `${NAME}` from `env`.
pub fn load_from_text(path: &Path, text: &str, env: env::Lookup<'_>) -> Result<Config, ConfigErrors> {
    validate::load_text(path, text, env)
}

impl Config {
    /// What the configuration allows but an operator should hear about, loudly, at load:
    /// `/probe` enabled with an empty allow-list on a listener others can reach.
    pub fn warnings(&self, listen: Option<std::net::SocketAddr>) -> Vec<String> {
        let listen = listen.unwrap_or(self.server.listen);
        let p = &self.server.probe_endpoint;
        let mut out = Vec::new();
        if p.enabled && p.allow.is_empty() && !listen.ip().is_loopback() {
            out.push(format!(
                "/probe is enabled with an empty server.probe_endpoint.allow on {listen}: whoever reaches it can make \
                 Vigil connect anywhere — set allow (and token)"
            ));
        }
        out
    }
}

/// `reports.monthly`: mail the previous month's report on `day` at `hour:minute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthlyReport {
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub receivers: Vec<String>,
    pub language: Language,
}

/// A secret (token, password): never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for comparing or sending; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub instance: Instance,
    pub server: Server,
    pub storage: Storage,
    pub scheduler: SchedulerConfig,
    /// Systems in configuration order.
    pub systems: Vec<System>,
    /// Modules of the `/probe` endpoint.
    pub modules: Vec<Module>,
    pub alerting: alerting::Alerting,
    pub receivers: Vec<alerting::Receiver>,
    pub routes: Vec<alerting::Route>,
    /// Maintenance windows from the configuration.
    pub maintenance: Vec<maintenance::Window>,
    /// The monthly report mail, if configured.
    pub monthly_report: Option<MonthlyReport>,
    /// Every file read (root first).
    pub files: Vec<PathBuf>,
    /// This Vigil's vantage point and centre, when it runs as an agent.
    pub agent: Option<vantage::Agent>,
    /// The agents this Vigil (a centre) accepts results from.
    pub vantages: Vec<vantage::Vantage>,
    /// With `--shard`: targets another shard owns, kept here only because a target of this
    /// shard depends on them (probed and judged for root cause, never announced or
    /// exported here), by id, with their owner.
    pub helpers: std::collections::BTreeMap<String, String>,
    /// With `--shard` or a cluster: the targets another owner runs, by id, with their owner
    /// (an incident of one that moved away is handed over, not closed as removed).
    pub elsewhere: std::collections::BTreeMap<String, String>,
    /// This Vigil's cluster, when it shares the work with other nodes.
    pub cluster: Option<cluster::Cluster>,
}

impl Config {
    /// Every check target (the identities that carry state), in configuration order.
    pub fn targets(&self) -> impl Iterator<Item = (&System, &Check, &Target)> {
        self.systems.iter().flat_map(|s| s.checks.iter().flat_map(move |c| c.targets.iter().map(move |t| (s, &**c, t))))
    }
}

/// Language of messages and pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Vi,
    En,
}

/// `instance:` — who this monitor is.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    /// Constant `location` label on every metric, when set.
    pub location: Option<String>,
    pub timezone: jiff::tz::TimeZone,
    pub timezone_name: String,
    pub language: Language,
    /// Target ids of Vigil's own uplink checks: when all fail, Vigil is blind.
    pub uplink: Vec<String>,
}

/// `server:` — the HTTP listener and its admin token.
#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    /// Bearer token for writes; writes are refused when none is configured.
    pub admin_token: Option<Secret>,
    pub probe_endpoint: ProbeEndpoint,
    /// A read credential for pages, API and metrics (none: they are open to whoever reaches
    /// the listener).
    pub pages_auth: Option<PagesAuth>,
    /// HTTPS (`server.tls`): the certificate and key, read at each (re)load.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

/// `server.pages_auth`: what a reader must present.
#[derive(Debug, Clone)]
pub enum PagesAuth {
    /// HTTP Basic (browsers ask for it).
    Basic { user: String, password: Secret },
    /// `Authorization: Bearer …` (Prometheus, scripts).
    Bearer(Secret),
}

/// `storage:` — the embedded SQLite store, or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Storage {
    pub path: PathBuf,
    pub raw_retention: Duration,
    /// `storage.postgres`: the connection string of a PostgreSQL store (then `path` is unused).
    pub postgres: Option<Secret>,
    /// `storage.postgres.grace`: how long notifications wait for an unanswering database.
    pub postgres_grace: Duration,
}

/// `scheduler:` — global bounds.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How many probes may run at once across all checks.
    pub max_concurrent_probes: usize,
}

/// A monitored system (e.g. the administrative-procedure system).
#[derive(Debug, Clone)]
pub struct System {
    pub id: String,
    pub name_vi: String,
    pub name_en: String,
    pub description: Option<String>,
    /// SLA objective as a ratio (0.999 for `99.9%`).
    pub sla: Option<f64>,
    /// Its checks, each shared with the pipeline that judges its targets (not copied).
    pub checks: Vec<Arc<Check>>,
}

/// A check of a system, already expanded into its targets.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: String,
    pub name: String,
    pub probe: ProbeSpec,
    /// One entry per identity; a check without `targets:` has one, named after the check.
    pub targets: Vec<Target>,
    pub interval: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub conditions: Vec<Condition>,
    pub warning_conditions: Vec<Condition>,
    /// Resolved `depends_on`, as target ids (`system/check` or `system/check/target`).
    pub depends_on: Vec<String>,
    /// Resolved `depends_on_any`: redundant parents, unreachable only when all fail.
    pub depends_on_any: Vec<String>,
    /// Whether this check counts for its system being up (default true).
    pub critical: bool,
    pub runbook: Option<String>,
    /// `nodes:` — labels of the cluster nodes that may run it (empty: any node).
    pub nodes: Vec<String>,
    /// `renamed_from:` its former id, `system/check`: history, state and incidents move over.
    pub renamed_from: Option<String>,
    /// The vantage points that also run this check (resolved names).
    pub vantages: Vec<String>,
    /// How many observers must see a target down for it to be down (with `vantages`).
    pub quorum: Option<vantage::Quorum>,
    /// What an agent assigned the check receives: as written, less the centre's keys.
    pub assigned_source: Option<yaml_serde::Value>,
    /// `ip: all`: each address of the target probed on its own.
    pub each_address: Option<addresses::EachAddress>,
}

/// The probe kind and its settings (one `kind: {...}` section of a check).
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeSpec {
    Http(HttpSpec),
    Tcp(TcpSpec),
    /// A bare TLS endpoint: handshake and certificate.
    Tls(TlsSpec),
    Icmp(IcmpSpec),
    Dns(DnsSpec),
    Exec(ExecSpec),
    Heartbeat(HeartbeatSpec),
    /// A mail server: banner, EHLO, STARTTLS (certificate captured), QUIT.
    Smtp(SmtpSpec),
    /// A WebSocket endpoint: upgrade, an optional message and its first answer.
    Websocket(WebsocketSpec),
    /// A SIP server: OPTIONS and its final answer.
    Sip(SipSpec),
    /// A time server: offset, stratum, root distance.
    Ntp(NtpSpec),
    /// An SNMP agent: named values, and interfaces with their rates.
    Snmp(snmp::SnmpSpec),
    /// A transaction (`steps:`).
    Steps(steps::StepsSpec),
}

impl ProbeSpec {
    /// The probe's kind.
    pub fn kind(&self) -> Kind {
        match self {
            ProbeSpec::Http(_) => Kind::Http,
            ProbeSpec::Tcp(_) => Kind::Tcp,
            ProbeSpec::Tls(_) => Kind::Tls,
            ProbeSpec::Icmp(_) => Kind::Icmp,
            ProbeSpec::Dns(_) => Kind::Dns,
            ProbeSpec::Exec(_) => Kind::Exec,
            ProbeSpec::Heartbeat(_) => Kind::Heartbeat,
            ProbeSpec::Smtp(_) => Kind::Smtp,
            ProbeSpec::Websocket(_) => Kind::Websocket,
            ProbeSpec::Sip(_) => Kind::Sip,
            ProbeSpec::Ntp(_) => Kind::Ntp,
            ProbeSpec::Snmp(_) => Kind::Snmp,
            ProbeSpec::Steps(_) => Kind::Steps,
        }
    }
}

/// Which address family an ICMP probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpPreference {
    /// Whatever the name resolves to first (IPv4 preferred).
    Auto,
    V4,
    V6,
}

/// The ICMP echo payload when none is set: 56 bytes, as ping sends.
pub const DEFAULT_ICMP_PAYLOAD: u16 = 56;

/// `icmp:` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct IcmpSpec {
    /// Echo requests per run.
    pub count: u16,
    /// Gap between two echo requests.
    pub spacing: Duration,
    pub ip_protocol: IpPreference,
    /// Payload bytes per echo.
    pub payload_size: u16,
    /// How the echoes travel: don't fragment, TTL, source address, DSCP.
    pub path: IcmpPath,
    /// Payload sizes swept for the path MTU, ascending (`sizes:`); empty for no sweep.
    pub sweep: Vec<u16>,
}

/// Socket options of an ICMP check's echoes; checks with the same options share a socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IcmpPath {
    /// Set the don't-fragment bit and ignore the path MTU the kernel learnt: an echo too
    /// big for a hop is lost (or answered by "fragmentation needed"), never split.
    pub dont_fragment: bool,
    /// TTL (IPv4) or hop limit (IPv6); the system's default when unset.
    pub ttl: Option<u8>,
    /// The address echoes leave from.
    pub source: Option<std::net::IpAddr>,
    /// Differentiated services code point (0–63).
    pub dscp: Option<u8>,
}

/// DNS transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsTransport {
    /// UDP, retried over TCP when the answer is truncated.
    Udp,
    Tcp,
}

/// `dns:` settings; the target address is the DNS server (`host` or `host:port`).
#[derive(Debug, Clone, PartialEq)]
pub struct DnsSpec {
    pub query_name: String,
    /// Record type, upper case (A, AAAA, CNAME, MX, TXT, NS, SOA, PTR).
    pub query_type: String,
    pub transport: DnsTransport,
}

/// `exec:` settings (Nagios plugin API).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecSpec {
    /// argv; run without a shell.
    pub command: Vec<String>,
    /// Extra environment (the rest is minimal: PATH, LANG=C).
    pub env: Vec<(String, String)>,
    /// Perfdata labels exported as metrics (`*` for all).
    pub perfdata: Vec<String>,
    pub max_output_bytes: usize,
}

/// `heartbeat:` settings: the job pushes to `/api/v1/heartbeat/{token}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatSpec {
    pub token: Secret,
    /// Expected time between two pushes.
    pub period: Duration,
    /// Extra time allowed before the heartbeat counts as missed.
    pub grace: Duration,
}

/// TLS client settings shared by the kinds that speak TLS.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsSpec {
    /// Skip certificate verification (the certificate is still captured and reported).
    pub insecure_skip_verify: bool,
    /// Extra CA bundle (PEM) trusted for this check, besides the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Name to verify and send as SNI, when it differs from the address's host.
    pub server_name: Option<String>,
}

/// `http:` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSpec {
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub follow_redirects: bool,
    pub max_redirects: u32,
    pub max_body_bytes: u64,
    pub tls: TlsSpec,
    /// Follow a redirect from https to http (refused by default: it would send the
    /// request, and whatever it carries, in clear).
    pub allow_insecure_redirects: bool,
    /// Keep the response headers (a transaction's steps read cookies and captures there).
    pub keep_headers: bool,
}

impl HttpSpec {
    /// A plain GET with the configuration's defaults (redirects followed, body cap).
    pub fn get(tls: TlsSpec) -> HttpSpec {
        HttpSpec {
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
            follow_redirects: true,
            max_redirects: kinds::DEFAULT_MAX_REDIRECTS,
            max_body_bytes: kinds::DEFAULT_MAX_BODY,
            tls,
            allow_insecure_redirects: false,
            keep_headers: false,
        }
    }
}

/// `tcp:` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpSpec {
    pub send: Option<String>,
    /// Regex the response must match (compiled at load).
    pub expect: Option<RegexSpec>,
    pub tls: Option<TlsSpec>,
}

/// A regex compiled at load, compared by its source.
#[derive(Debug, Clone)]
pub struct RegexSpec(pub regex::Regex);

impl PartialEq for RegexSpec {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}
