//! The condition language: Gatus-style expressions such as `[STATUS] == 200`,
//! `[BODY].queue.pending < 500`, `len([BODY].items) > 0`, `[BODY] == pat(*ok*)`,
//! `[STATUS] == any(200, 204)`, `[RESPONSE_TIME] < 3s` or `[BODY].used < [BODY].limit`.
//!
//! Conditions are parsed and type-checked when the configuration loads (errors carry the
//! column inside the expression); evaluation never fails, it only passes or not. Either
//! side of a comparison may be a placeholder; at least one must be. A failed condition is
//! displayed with every observed value in brackets: `[STATUS] (503) == 200`.
//! This module knows nothing of how values are measured: probes hand it [`Facts`].
//!
//! Layout: this file holds the vocabulary and the judging; `parse.rs` reads the text,
//! `compare.rs` decides equality and order between observed values and literals.

mod compare;
mod parse;
#[cfg(test)]
mod tests;

use std::cell::OnceCell;
use std::fmt;
use std::time::Duration;

use serde_json_path::JsonPath;

use crate::model::format_duration;

/// A value a probe measures, named in brackets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    Status,
    Body,
    ResponseTime,
    Connected,
    Ip,
    CertificateExpiration,
    DnsRcode,
    PacketLoss,
    RttAvg,
    RttMax,
    Jitter,
    ExitCode,
    SipStatus,
    NtpOffset,
    NtpStratum,
    NtpRootDistance,
    /// The largest IP packet a don't-fragment sweep got through, in bytes.
    PathMtu,
    /// An interface's `ifOperStatus` (`up`, `down`, `lowerLayerDown`, …).
    IfOperStatus,
    /// An interface's `ifAdminStatus`.
    IfAdminStatus,
    /// Bits per second received, from the octet counters' difference.
    IfInBps,
    /// Bits per second sent.
    IfOutBps,
    /// The busier direction's share of the interface speed, in percent.
    IfUtilisation,
    /// Receive errors per second.
    IfInErrorsRate,
    /// Send errors per second.
    IfOutErrorsRate,
    /// Received packets discarded per second.
    IfInDiscardsRate,
    /// Packets to send discarded per second.
    IfOutDiscardsRate,
}

/// The type a placeholder's values have, which decides how literals are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    Number,
    Duration,
    Text,
    Bool,
}

impl ValueType {
    /// What a literal of this type looks like, for error messages.
    fn expected(self) -> &'static str {
        match self {
            ValueType::Number => "a number",
            ValueType::Duration => "a duration such as 300ms, 3s or 21d",
            ValueType::Bool => "true or false",
            ValueType::Text => "text",
        }
    }
}

impl Placeholder {
    /// Every placeholder.
    pub const ALL: [Placeholder; 26] = [
        Placeholder::Status,
        Placeholder::Body,
        Placeholder::ResponseTime,
        Placeholder::Connected,
        Placeholder::Ip,
        Placeholder::CertificateExpiration,
        Placeholder::DnsRcode,
        Placeholder::PacketLoss,
        Placeholder::RttAvg,
        Placeholder::RttMax,
        Placeholder::Jitter,
        Placeholder::ExitCode,
        Placeholder::SipStatus,
        Placeholder::NtpOffset,
        Placeholder::NtpStratum,
        Placeholder::NtpRootDistance,
        Placeholder::PathMtu,
        Placeholder::IfOperStatus,
        Placeholder::IfAdminStatus,
        Placeholder::IfInBps,
        Placeholder::IfOutBps,
        Placeholder::IfUtilisation,
        Placeholder::IfInErrorsRate,
        Placeholder::IfOutErrorsRate,
        Placeholder::IfInDiscardsRate,
        Placeholder::IfOutDiscardsRate,
    ];

    /// The name as written between brackets.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Status => "STATUS",
            Placeholder::Body => "BODY",
            Placeholder::ResponseTime => "RESPONSE_TIME",
            Placeholder::Connected => "CONNECTED",
            Placeholder::Ip => "IP",
            Placeholder::CertificateExpiration => "CERTIFICATE_EXPIRATION",
            Placeholder::DnsRcode => "DNS_RCODE",
            Placeholder::PacketLoss => "PACKET_LOSS",
            Placeholder::RttAvg => "RTT_AVG",
            Placeholder::RttMax => "RTT_MAX",
            Placeholder::Jitter => "JITTER",
            Placeholder::ExitCode => "EXIT_CODE",
            Placeholder::SipStatus => "SIP_STATUS",
            Placeholder::NtpOffset => "NTP_OFFSET",
            Placeholder::NtpStratum => "NTP_STRATUM",
            Placeholder::NtpRootDistance => "NTP_ROOT_DISTANCE",
            Placeholder::PathMtu => "PATH_MTU",
            Placeholder::IfOperStatus => "IF_OPER_STATUS",
            Placeholder::IfAdminStatus => "IF_ADMIN_STATUS",
            Placeholder::IfInBps => "IF_IN_BPS",
            Placeholder::IfOutBps => "IF_OUT_BPS",
            Placeholder::IfUtilisation => "IF_UTILISATION",
            Placeholder::IfInErrorsRate => "IF_IN_ERRORS_RATE",
            Placeholder::IfOutErrorsRate => "IF_OUT_ERRORS_RATE",
            Placeholder::IfInDiscardsRate => "IF_IN_DISCARDS_RATE",
            Placeholder::IfOutDiscardsRate => "IF_OUT_DISCARDS_RATE",
        }
    }

    /// Whether it is read per interface (SNMP's interfaces mode, `[IF_…]`).
    pub fn is_interface(self) -> bool {
        self.name().starts_with("IF_")
    }

    fn value_type(self) -> ValueType {
        match self {
            Placeholder::Status
            | Placeholder::PacketLoss
            | Placeholder::ExitCode
            | Placeholder::SipStatus
            | Placeholder::NtpStratum
            | Placeholder::PathMtu
            | Placeholder::IfInBps
            | Placeholder::IfOutBps
            | Placeholder::IfUtilisation
            | Placeholder::IfInErrorsRate
            | Placeholder::IfOutErrorsRate
            | Placeholder::IfInDiscardsRate
            | Placeholder::IfOutDiscardsRate => ValueType::Number,
            Placeholder::ResponseTime
            | Placeholder::CertificateExpiration
            | Placeholder::RttAvg
            | Placeholder::RttMax
            | Placeholder::Jitter
            | Placeholder::NtpOffset
            | Placeholder::NtpRootDistance => ValueType::Duration,
            Placeholder::Connected => ValueType::Bool,
            Placeholder::Body
            | Placeholder::Ip
            | Placeholder::DnsRcode
            | Placeholder::IfOperStatus
            | Placeholder::IfAdminStatus => ValueType::Text,
        }
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.name())
    }
}

/// An observed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Duration(Duration),
    Text(String),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{}", *n as i64),
            Value::Number(n) if n.abs() >= 1e15 => write!(f, "{n:e}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::Duration(d) => write!(f, "{}", format_duration(*d)),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Text(t) => {
                let mut chars = t.chars();
                let head: String = chars.by_ref().take(60).collect();
                let head = head.replace(['\n', '\r'], " ");
                if chars.next().is_some() { write!(f, "{head}…") } else { write!(f, "{head}") }
            }
        }
    }
}

/// What a probe observed, as the condition language sees it.
pub trait Facts {
    /// The value of a placeholder, if this probe measured it.
    fn value(&self, placeholder: Placeholder) -> Option<Value>;
    /// The response body, for JSON paths and `len([BODY])`.
    fn body(&self) -> Option<&[u8]>;
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    fn is_ordering(self) -> bool {
        !matches!(self, Op::Eq | Op::Ne)
    }

    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => ord == Equal,
            Op::Ne => ord != Equal,
            Op::Lt => ord == Less,
            Op::Le => ord != Greater,
            Op::Gt => ord == Greater,
            Op::Ge => ord != Less,
        }
    }
}

/// A placeholder, optionally followed by a JSON path into the body.
#[derive(Debug, Clone)]
struct Subject {
    placeholder: Placeholder,
    json_path: Option<JsonPath>,
}

/// A measured side: a placeholder, its length, or whether it exists.
#[derive(Debug, Clone)]
enum Measure {
    Plain(Subject),
    Len(Subject),
    Has(Subject),
}

impl Measure {
    fn subject(&self) -> &Subject {
        match self {
            Measure::Plain(s) | Measure::Len(s) | Measure::Has(s) => s,
        }
    }

    /// The type of the measured values, when it is known before the probe runs (a JSON
    /// path can yield anything).
    fn value_type(&self) -> Option<ValueType> {
        match self {
            Measure::Len(_) => Some(ValueType::Number),
            Measure::Has(_) => Some(ValueType::Bool),
            Measure::Plain(s) if s.json_path.is_some() => None,
            Measure::Plain(s) => Some(s.placeholder.value_type()),
        }
    }
}

/// One side of a comparison.
#[derive(Debug, Clone)]
enum Operand {
    Measured(Measure),
    Literal(String),
    Pattern(glob::Pattern),
    Any(Vec<String>),
}

/// One side as written, with its parsed meaning.
#[derive(Debug, Clone)]
struct Side {
    text: String,
    operand: Operand,
}

/// A parsed condition.
#[derive(Debug, Clone)]
pub struct Condition {
    text: String,
    left: Side,
    op: Op,
    right: Side,
}

/// A condition that could not be parsed; `column` is 1-based within the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

fn parse_error(column: usize, message: impl Into<String>) -> ParseError {
    ParseError { column, message: message.into() }
}

impl Condition {
    /// Parses and type-checks a condition.
    pub fn parse(text: &str) -> Result<Condition, ParseError> {
        parse::condition(text)
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The placeholder this condition is about: the first one it reads (which decides
    /// the reason code of a failure).
    pub fn placeholder(&self) -> Placeholder {
        self.placeholders().next().expect("a parsed condition reads at least one placeholder")
    }

    /// Every placeholder this condition reads, left side first.
    pub fn placeholders(&self) -> impl Iterator<Item = Placeholder> + '_ {
        [&self.left, &self.right].into_iter().filter_map(|side| match &side.operand {
            Operand::Measured(m) => Some(m.subject().placeholder),
            _ => None,
        })
    }

    /// Whether this condition reads `placeholder` on either side.
    pub fn mentions(&self, placeholder: Placeholder) -> bool {
        self.placeholders().any(|p| p == placeholder)
    }

    /// Evaluates against what a probe observed. `json` caches the parsed body across the
    /// conditions of one probe run. Returns whether it held and how to show it.
    fn evaluate(&self, facts: &dyn Facts, json: &JsonCache) -> (bool, String) {
        let left = observe(&self.left.operand, facts, json);
        let right = observe(&self.right.operand, facts, json);
        let verdict = match (&left, &right) {
            (Observed::Missing, _) | (_, Observed::Missing) => Err(None),
            _ => compare::judge(&left, self.op, &right),
        };
        let display = self.display_with(&left, &right, verdict.as_ref().err().cloned().flatten());
        (verdict.unwrap_or(false), display)
    }

    /// Shows the condition with the observed values: `[STATUS] (503) == 200`, and why a
    /// comparison could not be made, if it could not.
    fn display_with(&self, left: &Observed, right: &Observed, problem: Option<String>) -> String {
        let shown = |side: &Side, observed: &Observed| match observed {
            Observed::Value(v) => format!("{} ({v})", side.text),
            Observed::Missing => format!("{} (missing)", side.text),
            Observed::Written(_) => side.text.clone(),
        };
        let mut out = format!("{} {} {}", shown(&self.left, left), self.op.symbol(), shown(&self.right, right));
        if let Some(problem) = problem {
            out.push_str(": ");
            out.push_str(&problem);
        }
        out
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One side after the probe: a measured value (or its absence), or what was written.
#[derive(Debug)]
enum Observed<'a> {
    Value(Value),
    Missing,
    Written(&'a Operand),
}

/// One condition that did not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The placeholder it read (to tell an HTTP status failure from others).
    pub placeholder: Placeholder,
    /// The condition with the observed value, e.g. `[STATUS] (503) == 200`.
    pub display: String,
}

type JsonCache = OnceCell<Option<serde_json::Value>>;

/// Evaluates `conditions` and returns those that failed, in order.
pub fn failures(conditions: &[Condition], facts: &dyn Facts) -> Vec<Failure> {
    let json = JsonCache::new();
    conditions
        .iter()
        .filter_map(|c| {
            let (passed, display) = c.evaluate(facts, &json);
            (!passed).then(|| Failure { placeholder: c.placeholder(), display })
        })
        .collect()
}

fn observe<'a>(operand: &'a Operand, facts: &dyn Facts, json: &JsonCache) -> Observed<'a> {
    let Operand::Measured(measure) = operand else {
        return Observed::Written(operand);
    };
    let value = match measure {
        Measure::Plain(s) => resolve(s, facts, json),
        Measure::Len(s) => length(s, facts, json).map(|n| Value::Number(n as f64)),
        Measure::Has(s) => Some(Value::Bool(resolve(s, facts, json).is_some())),
    };
    value.map_or(Observed::Missing, Observed::Value)
}

fn parsed_body<'a>(facts: &dyn Facts, json: &'a JsonCache) -> Option<&'a serde_json::Value> {
    json.get_or_init(|| facts.body().and_then(|b| serde_json::from_slice(b).ok())).as_ref()
}

fn json_node<'a>(path: &JsonPath, facts: &dyn Facts, json: &'a JsonCache) -> Option<&'a serde_json::Value> {
    let body = parsed_body(facts, json)?;
    path.query(body).first()
}

/// A placeholder's value. The whole body is compared without surrounding white space (a
/// trailing newline is not part of the answer), as Gatus does.
fn resolve(s: &Subject, facts: &dyn Facts, json: &JsonCache) -> Option<Value> {
    match &s.json_path {
        None => match facts.value(s.placeholder)? {
            Value::Text(t) if s.placeholder == Placeholder::Body => Some(Value::Text(t.trim().to_string())),
            other => Some(other),
        },
        Some(path) => json_node(path, facts, json).map(json_to_value),
    }
}

/// `len(…)`: items of a JSON array, keys of a JSON object, characters of anything else.
/// The whole body counts as JSON when it parses as an array or an object.
fn length(s: &Subject, facts: &dyn Facts, json: &JsonCache) -> Option<usize> {
    let node = match &s.json_path {
        Some(path) => Some(json_node(path, facts, json)?),
        None if s.placeholder == Placeholder::Body => {
            parsed_body(facts, json).filter(|v| v.is_array() || v.is_object())
        }
        None => None,
    };
    Some(match node {
        Some(serde_json::Value::Array(a)) => a.len(),
        Some(serde_json::Value::Object(o)) => o.len(),
        Some(serde_json::Value::String(t)) => t.chars().count(),
        Some(other) => other.to_string().chars().count(),
        None => match resolve(s, facts, json)? {
            Value::Text(t) => t.chars().count(),
            other => other.to_string().chars().count(),
        },
    })
}

fn json_to_value(node: &serde_json::Value) -> Value {
    match node {
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}
