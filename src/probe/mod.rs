//! Probes: one attempt against one target, turned into a [`ProbeOutcome`].
//!
//! Each kind lives in its own file behind one signature (`observe`), producing
//! [`Observations`] or a [`ProbeError`] with a reason code. [`Prober::probe`] enforces the
//! deadline and judges the observations against the check's conditions. Thresholds,
//! retries and dependencies are not here: they belong to the state machine.
//!
//! size: the probe vocabulary (outcome, observations, failure reasons) and the dispatch to every kind, together.

pub mod addresses;
pub mod dns;
mod exec;
pub mod heartbeat;
mod http;
pub mod icmp;
pub mod ntp;
pub mod perfdata;
mod reaching;
mod sip;
mod smtp;
pub mod snmp;
mod steps;
mod tcp;
pub mod tls;
mod websocket;

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::FutureExt;
use serde::Serialize;
use std::panic::AssertUnwindSafe;

use crate::condition::{Condition, Facts, Placeholder, Value};
use crate::config::{AllowRule, Check, ProbeSpec, Target};
pub use crate::model::Health;

pub use exec::ExecResult;
pub use tls::CertInfo;

/// Why a probe failed: one bounded vocabulary shared by every kind (metric label `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// No complete answer within the check's timeout.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// The connection was refused.
    Refused,
    /// Other connection or protocol errors (reset, unreachable, malformed response).
    Network,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// A condition on `[STATUS]` failed.
    HttpStatus,
    /// Another condition failed.
    Condition,
    /// More redirects than allowed (or a loop).
    Redirects,
    /// The body exceeded the size cap.
    BodySize,
    /// The TCP answer did not match `expect`.
    Expect,
    /// Echo requests were lost (a condition on `[PACKET_LOSS]` failed).
    Loss,
    /// The network reported the host unreachable.
    Unreachable,
    /// The monitor may not open an ICMP socket (needs CAP_NET_RAW or ping_group_range).
    Permission,
    /// The DNS answer's code was not the expected one.
    Rcode,
    /// A plugin exited with a non-OK status (or a condition on `[EXIT_CODE]` failed).
    Exit,
    /// The monitor could not start the plugin.
    Spawn,
    /// No heartbeat within `period + grace`.
    Missed,
    /// The job pushed a heartbeat reporting a failure.
    Reported,
    /// The probe itself failed (a bug in Vigil, logged as an error); state `unknown`.
    Internal,
    /// A mail server answered a step of the SMTP conversation with another reply code than
    /// the protocol expects (or sent data before the STARTTLS handshake).
    SmtpReply,
    /// A SIP server's final answer was not the expected one (a condition on `[SIP_STATUS]`).
    SipStatus,
    /// A time server is not synchronized, refused us (kiss-o'-death), or a condition on
    /// its offset, stratum or root distance failed.
    Ntp,
    /// An SNMP agent refused us (authentication, privacy, an error status), answered
    /// nonsense, or a condition on an interface failed.
    Snmp,
}

impl FailureReason {
    /// Every reason, in documentation order.
    pub const ALL: [FailureReason; 23] = [
        FailureReason::Timeout,
        FailureReason::Dns,
        FailureReason::Refused,
        FailureReason::Network,
        FailureReason::Tls,
        FailureReason::HttpStatus,
        FailureReason::Condition,
        FailureReason::Redirects,
        FailureReason::BodySize,
        FailureReason::Expect,
        FailureReason::Loss,
        FailureReason::Unreachable,
        FailureReason::Permission,
        FailureReason::Rcode,
        FailureReason::Exit,
        FailureReason::Spawn,
        FailureReason::Missed,
        FailureReason::Reported,
        FailureReason::Internal,
        FailureReason::SmtpReply,
        FailureReason::SipStatus,
        FailureReason::Ntp,
        FailureReason::Snmp,
    ];

    /// The reason code, e.g. `http_status`.
    pub fn code(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Dns => "dns",
            FailureReason::Refused => "refused",
            FailureReason::Network => "network",
            FailureReason::Tls => "tls",
            FailureReason::HttpStatus => "http_status",
            FailureReason::Condition => "condition",
            FailureReason::Redirects => "redirects",
            FailureReason::BodySize => "body_size",
            FailureReason::Expect => "expect",
            FailureReason::Loss => "loss",
            FailureReason::Unreachable => "unreachable",
            FailureReason::Permission => "permission",
            FailureReason::Rcode => "rcode",
            FailureReason::Exit => "exit",
            FailureReason::Spawn => "spawn",
            FailureReason::Missed => "missed",
            FailureReason::Reported => "reported",
            FailureReason::Internal => "internal",
            FailureReason::SmtpReply => "smtp_reply",
            FailureReason::SipStatus => "sip_status",
            FailureReason::Ntp => "ntp",
            FailureReason::Snmp => "snmp",
        }
    }

    /// Whether the failure is the monitor's own (its outcome is `unknown`, not `down`).
    pub fn is_monitor_fault(self) -> bool {
        matches!(self, FailureReason::Permission | FailureReason::Spawn | FailureReason::Internal)
    }

    /// Parses a reason code back (for the store).
    pub fn from_code(code: &str) -> Option<FailureReason> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// What a probe measured. Fields a kind does not measure stay empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observations {
    pub status: Option<u16>,
    #[serde(skip)]
    pub body: Option<Bytes>,
    pub response_time: Option<Duration>,
    pub connected: Option<bool>,
    pub ip: Option<IpAddr>,
    /// Named phases in order (`dns`, `connect`, `tls`, `processing`, `transfer`).
    pub phases: Vec<(&'static str, Duration)>,
    /// The peer's certificate chain, leaf first.
    pub certificates: Vec<CertInfo>,
    pub redirects: u32,
    /// HTTP version of the final response (1.0, 1.1, 2.0).
    pub http_version: Option<f64>,
    /// Negotiated TLS version, e.g. `TLS 1.3`.
    pub tls_version: Option<String>,
    pub icmp: Option<icmp::IcmpStats>,
    pub dns: Option<dns::DnsAnswer>,
    pub exec: Option<exec::ExecResult>,
    /// The final SIP response code.
    pub sip_status: Option<u16>,
    /// A time server's answer.
    pub ntp: Option<ntp::NtpReading>,
    /// When the last heartbeat arrived, Unix milliseconds.
    pub heartbeat_last_seen_ms: Option<i64>,
    /// With `ip: all`: how each address the target resolved to fared.
    pub addresses: Vec<addresses::AddressOutcome>,
    /// With `snmp: { interfaces: … }`: every interface, its statuses and rates.
    pub interfaces: Vec<snmp::Interface>,
    /// The response headers, lowercased names, when the spec keeps them (transactions).
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
    /// The kind's own judgement (plugins, heartbeats), merged with the conditions'.
    #[serde(skip)]
    pub verdict: Option<Verdict>,
}

/// A health a probe kind decides itself (a plugin's exit code, a missed heartbeat).
#[derive(Debug, Clone)]
pub struct Verdict {
    pub health: Health,
    pub reason: Option<FailureReason>,
    pub message: String,
}

impl Observations {
    /// The earliest `not_after` of the chain, in Unix seconds.
    pub fn earliest_not_after(&self) -> Option<i64> {
        self.certificates.iter().map(|c| c.not_after).min()
    }
}

impl Facts for Observations {
    fn value(&self, placeholder: Placeholder) -> Option<Value> {
        match placeholder {
            Placeholder::Status => self.status.map(|s| Value::Number(s.into())),
            Placeholder::Body => self.body.as_ref().map(|b| Value::Text(String::from_utf8_lossy(b).into_owned())),
            Placeholder::ResponseTime => self.response_time.map(Value::Duration),
            Placeholder::Connected => Some(Value::Bool(self.connected.unwrap_or(false))),
            Placeholder::Ip => self.ip.map(|ip| Value::Text(ip.to_string())),
            Placeholder::CertificateExpiration => self.earliest_not_after().map(|t| {
                let now = unix_now();
                Value::Duration(Duration::from_secs(t.saturating_sub(now).max(0) as u64))
            }),
            Placeholder::PacketLoss => self.icmp.as_ref().map(|i| Value::Number(i.loss_percent)),
            Placeholder::RttAvg => self.icmp.as_ref().filter(|i| i.received > 0).map(|i| Value::Duration(i.rtt_avg)),
            Placeholder::RttMax => self.icmp.as_ref().filter(|i| i.received > 0).map(|i| Value::Duration(i.rtt_max)),
            Placeholder::Jitter => self.icmp.as_ref().filter(|i| i.received > 0).map(|i| Value::Duration(i.jitter)),
            Placeholder::DnsRcode => self.dns.as_ref().map(|d| Value::Text(d.rcode.clone())),
            Placeholder::ExitCode => self.exec.as_ref().and_then(|e| e.exit_code).map(|c| Value::Number(c.into())),
            Placeholder::SipStatus => self.sip_status.map(|s| Value::Number(s.into())),
            Placeholder::NtpOffset => self.ntp.as_ref().map(|n| Value::Duration(n.offset_abs())),
            Placeholder::NtpStratum => self.ntp.as_ref().map(|n| Value::Number(n.stratum.into())),
            Placeholder::NtpRootDistance => self.ntp.as_ref().map(|n| Value::Duration(n.root_distance)),
            Placeholder::PathMtu => self.icmp.as_ref().and_then(|i| i.path_mtu).map(|m| Value::Number(m.into())),
            p @ (Placeholder::IfOperStatus
            | Placeholder::IfAdminStatus
            | Placeholder::IfInBps
            | Placeholder::IfOutBps
            | Placeholder::IfUtilisation
            | Placeholder::IfInErrorsRate
            | Placeholder::IfOutErrorsRate
            | Placeholder::IfInDiscardsRate
            | Placeholder::IfOutDiscardsRate) => snmp::interface_value(&self.interfaces, p),
        }
    }

    fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A probe that could not complete: the reason code, a short message, and whatever was
/// observed before the failure (a certificate is still reported when verification fails).
#[derive(Debug)]
pub struct ProbeError {
    pub reason: FailureReason,
    pub message: String,
    pub observations: Box<Observations>,
}

impl ProbeError {
    fn new(reason: FailureReason, message: impl Into<String>) -> ProbeError {
        ProbeError { reason, message: message.into(), observations: Box::default() }
    }

    fn with(mut self, observations: Observations) -> ProbeError {
        self.observations = Box::new(observations);
        self
    }
}

/// Maps a connection error to its reason code.
fn connect_error(e: &std::io::Error) -> ProbeError {
    let reason = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => FailureReason::Refused,
        std::io::ErrorKind::TimedOut => FailureReason::Timeout,
        _ => FailureReason::Network,
    };
    ProbeError::new(reason, format!("connect: {e}"))
}

/// The result of one probe run.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeOutcome {
    pub health: Health,
    pub reason: Option<FailureReason>,
    /// One line for people: the error, or the failed conditions with observed values.
    pub message: String,
    /// Failed conditions with observed values, e.g. `[STATUS] (503) == 200`.
    pub failed_conditions: Vec<String>,
    pub observations: Observations,
    pub duration: Duration,
}

impl ProbeOutcome {
    /// A failure the probe found before it observed anything.
    pub fn down(reason: FailureReason, message: String, duration: Duration) -> ProbeOutcome {
        ProbeOutcome {
            health: Health::Down,
            reason: Some(reason),
            message,
            failed_conditions: Vec::new(),
            observations: Observations::default(),
            duration,
        }
    }
}

/// Runs probes. Holds what is reused across runs (TLS roots and verifiers, ICMP sockets)
/// and the heartbeats pushed to the server.
#[derive(Debug, Default)]
pub struct Prober {
    tls: tls::TlsContext,
    icmp: icmp::IcmpClients,
    snmp: snmp::SnmpState,
    heartbeats: std::sync::Arc<heartbeat::HeartbeatBook>,
}

impl Prober {
    /// A prober with empty caches and its own heartbeat book.
    pub fn new() -> Prober {
        Prober::default()
    }

    /// A prober reading heartbeats from `book` (shared with the web server).
    pub fn with_heartbeats(book: std::sync::Arc<heartbeat::HeartbeatBook>) -> Prober {
        Prober { heartbeats: book, ..Prober::default() }
    }

    /// Probes `target` once, within the check's timeout, and judges the result. A panic
    /// inside the probe (a bug) becomes an `unknown` outcome with reason `internal` and an
    /// error log: the check keeps its schedule and its state does not freeze.
    pub async fn probe(&self, check: &Check, target: &Target) -> ProbeOutcome {
        self.probe_within(check, target, None, None).await
    }

    /// Like [`Prober::probe`], connecting only where `allow` admits (when it is given and
    /// not empty): every address a name resolves to must be admitted, the connection goes to
    /// those very addresses (no second lookup a rebinding DNS could answer differently), and
    /// every redirect hop is checked the same way. For `/probe`.
    pub async fn probe_within(
        &self,
        check: &Check,
        target: &Target,
        allow: Option<&[AllowRule]>,
        pinned: Option<(&str, &[IpAddr])>,
    ) -> ProbeOutcome {
        let started = Instant::now();
        if let (Some(each), None) = (&check.each_address, pinned) {
            let mut outcome = Box::pin(self.probe_each_address(check, target, each)).await;
            outcome.message = bounded_message(std::mem::take(&mut outcome.message));
            return outcome;
        }
        match AssertUnwindSafe(self.probe_unguarded(check, target, started, allow, pinned)).catch_unwind().await {
            Ok(mut outcome) => {
                // The one place a probe's message is bounded: it is stored with every result,
                // and a hostile target writes what it likes into it (a 400 KB Location).
                outcome.message = bounded_message(std::mem::take(&mut outcome.message));
                outcome
            }
            Err(panic) => {
                let what = panic_message(panic.as_ref());
                tracing::error!(target = %target.key, error = %what, "the probe panicked: a bug in Vigil, please report it");
                ProbeOutcome {
                    health: Health::Unknown,
                    reason: Some(FailureReason::Internal),
                    message: format!("internal error in the probe: {what}"),
                    failed_conditions: Vec::new(),
                    observations: Observations::default(),
                    duration: started.elapsed(),
                }
            }
        }
    }

    async fn probe_unguarded(
        &self,
        check: &Check,
        target: &Target,
        started: Instant,
        allow: Option<&[AllowRule]>,
        pinned: Option<(&str, &[IpAddr])>,
    ) -> ProbeOutcome {
        let deadline = tokio::time::Instant::now() + check.timeout;
        let reach = Reach { deadline, allow: allow.filter(|rules| !rules.is_empty()), pinned };
        let observed = tokio::time::timeout_at(deadline, self.observe(check, target, reach)).await;
        let duration = started.elapsed();
        match observed {
            Err(_) => ProbeOutcome {
                health: Health::Down,
                reason: Some(FailureReason::Timeout),
                message: format!("no answer within {}", humantime::format_duration(check.timeout)),
                failed_conditions: Vec::new(),
                observations: Observations::default(),
                duration,
            },
            Ok(Err(e)) if never_connected(&e) && mentions_connected(check) => {
                let judged = judge(*e.observations, &check.conditions, &check.warning_conditions, duration);
                // "This port must be closed" holds; otherwise the connection error says more
                // than `[CONNECTED] (false) == true`.
                if judged.health == Health::Down {
                    ProbeOutcome { reason: Some(e.reason), message: e.message, failed_conditions: Vec::new(), ..judged }
                } else {
                    judged
                }
            }
            Ok(Err(e)) => ProbeOutcome {
                health: if e.reason.is_monitor_fault() { Health::Unknown } else { Health::Down },
                reason: Some(e.reason),
                message: e.message,
                failed_conditions: Vec::new(),
                observations: *e.observations,
                duration,
            },
            Ok(Ok(observations)) => judge(observations, &check.conditions, &check.warning_conditions, duration),
        }
    }

    /// Each kind's future is boxed: in place, every probe in flight would take the room of
    /// the largest kind (an HTTPS exchange, ~5 KB), an ICMP run included. Connections give
    /// up at `deadline` themselves, so that a connect that timed out is known as one.
    async fn observe(&self, check: &Check, target: &Target, reach: Reach<'_>) -> Result<Observations, ProbeError> {
        #[cfg(feature = "fault-injection")]
        if let ProbeSpec::Exec(exec) = &check.probe {
            match exec.command.first().map(String::as_str) {
                Some("vigil-fault:panic") => panic!("fault injected: the check's program is vigil-fault:panic"),
                Some("vigil-fault:stop-timer") => return Ok(Observations::default()),
                _ => {}
            }
        }
        let address = target.address.as_str();
        match &check.probe {
            ProbeSpec::Http(http) => Box::pin(http::observe(http, address, &self.tls, reach)).await,
            ProbeSpec::Tcp(tcp) => Box::pin(tcp::observe(tcp, address, &self.tls, reach)).await,
            ProbeSpec::Tls(tls) => Box::pin(tcp::observe_tls(tls, address, &self.tls, reach)).await,
            ProbeSpec::Icmp(icmp) => Box::pin(icmp::observe(icmp, address, check.timeout, &self.icmp)).await,
            ProbeSpec::Dns(dns) => Box::pin(dns::observe(dns, address, check.timeout)).await,
            ProbeSpec::Exec(exec) => Box::pin(exec::observe(exec, check.timeout)).await,
            ProbeSpec::Heartbeat(hb) => Ok(heartbeat::observe(hb, target.id(), &self.heartbeats)),
            ProbeSpec::Smtp(smtp) => Box::pin(smtp::observe(smtp, address, &self.tls, reach)).await,
            ProbeSpec::Websocket(ws) => Box::pin(websocket::observe(ws, address, &self.tls, reach)).await,
            ProbeSpec::Sip(sip) => Box::pin(sip::observe(sip, address, &self.tls, reach)).await,
            ProbeSpec::Ntp(_) => Box::pin(ntp::observe(address, reach)).await,
            ProbeSpec::Snmp(spec) => Box::pin(snmp::observe(spec, address, target.id(), &self.snmp, reach)).await,
            ProbeSpec::Steps(flow) => Box::pin(steps::observe(flow, &self.tls, reach)).await,
        }
    }
}

/// Until when a probe may run, and where it may connect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reach<'a> {
    /// The check's deadline: connections give up at it themselves.
    pub deadline: tokio::time::Instant,
    /// When set (and not empty), the only places a connection may go.
    pub allow: Option<&'a [AllowRule]>,
    /// A host already resolved and checked, and its addresses: connections to it go there,
    /// without a second lookup (that a rebinding DNS could answer differently).
    pub pinned: Option<(&'a str, &'a [IpAddr])>,
}

impl Reach<'_> {
    /// The addresses to connect to for `host:port`: the pinned ones for the pinned host.
    pub(crate) fn pinned_addrs(&self, host: &str, port: u16) -> Option<Vec<std::net::SocketAddr>> {
        let (pinned_host, ips) = self.pinned?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        bare.eq_ignore_ascii_case(pinned_host)
            .then(|| ips.iter().map(|ip| std::net::SocketAddr::new(*ip, port)).collect())
    }

    /// Refuses `host` unless its name or every address it resolved to is admitted.
    fn admit(&self, host: &str, addrs: &[std::net::SocketAddr]) -> Result<(), ProbeError> {
        let Some(rules) = self.allow else { return Ok(()) };
        if AllowRule::admits_name(rules, host) || addrs.iter().all(|a| AllowRule::admits_ip(rules, a.ip())) {
            return Ok(());
        }
        let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        let message = format!("{host} ({}) is not in server.probe_endpoint.allow: not connected", shown.join(", "));
        Err(ProbeError::new(FailureReason::Network, message))
    }
}

/// Longest message kept from one probe run.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// A message of at most [`MAX_MESSAGE_CHARS`] characters, control characters (a newline
/// would forge a line in text logs) turned into spaces. The usual short, clean message is
/// returned as it is (no copy on every probe run).
pub fn bounded_message(message: String) -> String {
    if message.len() <= MAX_MESSAGE_CHARS && !message.chars().any(char::is_control) {
        return message;
    }
    let mut chars = message.chars();
    let mut out: String =
        chars.by_ref().take(MAX_MESSAGE_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if chars.next().is_some() {
        out.pop();
        out.push('…');
    }
    out
}

/// The text of a panic's payload (a `&str` or a `String`, as `panic!` makes them).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Whether a probe failed before any connection was made (refused, timed out, no route).
fn never_connected(e: &ProbeError) -> bool {
    e.observations.connected.is_none()
        && matches!(
            e.reason,
            FailureReason::Refused | FailureReason::Timeout | FailureReason::Network | FailureReason::Unreachable
        )
}

/// Whether the check's conditions read `[CONNECTED]`: then a failed connection is a value
/// to judge (`[CONNECTED] == false` for a port that must stay closed), not a failure.
fn mentions_connected(check: &Check) -> bool {
    check.conditions.iter().chain(&check.warning_conditions).any(|c| c.mentions(Placeholder::Connected))
}

/// Judges observations against the conditions: any failed condition → down; only warning
/// conditions failed → degraded; otherwise up.
pub fn judge(
    observations: Observations,
    conditions: &[Condition],
    warnings: &[Condition],
    duration: Duration,
) -> ProbeOutcome {
    let failed = snmp::failures(conditions, &observations);
    let (health, failed) = if !failed.is_empty() {
        (Health::Down, failed)
    } else {
        let warned = snmp::failures(warnings, &observations);
        if warned.is_empty() { (Health::Up, warned) } else { (Health::Degraded, warned) }
    };
    let reason = match health {
        Health::Up => None,
        _ => Some(failed.iter().find_map(|f| reason_for(f.placeholder)).unwrap_or(FailureReason::Condition)),
    };
    let failed_conditions: Vec<String> = failed.into_iter().map(|f| f.display).collect();
    let mut outcome = ProbeOutcome {
        health,
        reason,
        message: failed_conditions.join("; "),
        failed_conditions,
        observations,
        duration,
    };
    // A kind that judges itself (plugin exit code, heartbeat) can only make things worse.
    if let Some(v) = outcome.observations.verdict.take()
        && severity(v.health) > severity(outcome.health)
    {
        outcome.health = v.health;
        outcome.reason = v.reason;
        outcome.message =
            if outcome.message.is_empty() { v.message } else { format!("{}; {}", v.message, outcome.message) };
    }
    outcome
}

/// The reason code a failed condition on this placeholder stands for.
fn reason_for(placeholder: Placeholder) -> Option<FailureReason> {
    match placeholder {
        Placeholder::Status => Some(FailureReason::HttpStatus),
        Placeholder::PacketLoss => Some(FailureReason::Loss),
        Placeholder::DnsRcode => Some(FailureReason::Rcode),
        Placeholder::ExitCode => Some(FailureReason::Exit),
        Placeholder::SipStatus => Some(FailureReason::SipStatus),
        Placeholder::NtpOffset | Placeholder::NtpStratum | Placeholder::NtpRootDistance => Some(FailureReason::Ntp),
        p if p.is_interface() => Some(FailureReason::Snmp),
        _ => None,
    }
}

fn severity(h: Health) -> u8 {
    match h {
        Health::Up => 0,
        Health::Unknown => 1,
        Health::Degraded => 2,
        Health::Down => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #14, item 7: a probe's message is bounded and keeps no control character.
    #[test]
    fn messages_are_bounded_at_one_place() {
        let hostile = format!("more than 10 redirects (last to /{})\nforged: line", "x".repeat(400_000));
        let bounded = bounded_message(hostile);
        assert_eq!(bounded.chars().count(), MAX_MESSAGE_CHARS);
        assert!(bounded.ends_with('…') && !bounded.contains('\n'));
        assert_eq!(bounded_message("refused\r\n".into()), "refused  ");
        assert_eq!(bounded_message("dịch vụ công".into()), "dịch vụ công");
        let exactly = "é".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(bounded_message(exactly.clone()), exactly, "300 characters (600 bytes) are kept whole");
    }
}
