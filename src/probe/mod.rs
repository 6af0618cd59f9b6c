//! Probes: one attempt against one target, turned into a [`ProbeOutcome`].
//!
//! Each kind lives in its own file behind one signature (`observe`), producing
//! [`Observations`] or a [`ProbeError`] with a reason code. [`Prober::probe`] enforces the
//! deadline and judges the observations against the check's conditions. Thresholds,
//! retries and dependencies are not here: they belong to the state machine.

mod http;
mod tcp;
pub mod tls;

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::Serialize;

use crate::condition::{self, Condition, Facts, Placeholder, Value};
use crate::config::{Check, ProbeSpec, Target};

pub use tls::CertInfo;

/// What a probe concluded about its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    /// Only warning conditions failed.
    Degraded,
    Down,
    /// The monitor could not tell (its own fault); never paged to the target's owner.
    Unknown,
}

impl Health {
    /// Lowercase name, as used in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Degraded => "degraded",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
}

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
}

impl FailureReason {
    /// Every reason, in documentation order.
    pub const ALL: [FailureReason; 10] = [
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
        }
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
            _ => None,
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

/// Runs probes. Holds what is reused across runs (TLS roots and verifiers).
#[derive(Debug, Default)]
pub struct Prober {
    tls: tls::TlsContext,
}

impl Prober {
    /// A prober with empty caches.
    pub fn new() -> Prober {
        Prober::default()
    }

    /// Probes `target` once, within the check's timeout, and judges the result.
    pub async fn probe(&self, check: &Check, target: &Target) -> ProbeOutcome {
        let started = Instant::now();
        let observed = tokio::time::timeout(check.timeout, self.observe(&check.probe, &target.address)).await;
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
            Ok(Err(e)) => ProbeOutcome {
                health: Health::Down,
                reason: Some(e.reason),
                message: e.message,
                failed_conditions: Vec::new(),
                observations: *e.observations,
                duration,
            },
            Ok(Ok(observations)) => judge(observations, &check.conditions, &check.warning_conditions, duration),
        }
    }

    async fn observe(&self, spec: &ProbeSpec, address: &str) -> Result<Observations, ProbeError> {
        match spec {
            ProbeSpec::Http(http) => http::observe(http, address, &self.tls).await,
            ProbeSpec::Tcp(tcp) => tcp::observe(tcp, address, &self.tls).await,
        }
    }
}

/// Judges observations against the conditions: any failed condition → down; only warning
/// conditions failed → degraded; otherwise up.
pub fn judge(
    observations: Observations,
    conditions: &[Condition],
    warnings: &[Condition],
    duration: Duration,
) -> ProbeOutcome {
    let failed = condition::failures(conditions, &observations);
    let (health, failed) = if !failed.is_empty() {
        (Health::Down, failed)
    } else {
        let warned = condition::failures(warnings, &observations);
        if warned.is_empty() { (Health::Up, warned) } else { (Health::Degraded, warned) }
    };
    let reason = match health {
        Health::Up => None,
        _ if failed.iter().any(|f| f.placeholder == Placeholder::Status) => Some(FailureReason::HttpStatus),
        _ => Some(FailureReason::Condition),
    };
    let failed_conditions: Vec<String> = failed.into_iter().map(|f| f.display).collect();
    ProbeOutcome { health, reason, message: failed_conditions.join("; "), failed_conditions, observations, duration }
}
