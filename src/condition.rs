//! The condition language: Gatus-style expressions such as `[STATUS] == 200`,
//! `[BODY].queue.pending < 500`, `len([BODY].items) > 0`, `[BODY] == pat(*ok*)`,
//! `[STATUS] == any(200, 204)` or `[RESPONSE_TIME] < 3s`.
//!
//! Conditions are parsed and type-checked when the configuration loads (errors carry the
//! column inside the expression); evaluation never fails, it only passes or not. A failed
//! condition is displayed with the observed value in brackets: `[STATUS] (503) == 200`.
//! This module knows nothing of how values are measured: probes hand it [`Facts`].

use std::cell::OnceCell;
use std::fmt;
use std::time::Duration;

use serde_json_path::JsonPath;

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
}

/// The type a placeholder's values have, which decides how literals are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    Number,
    Duration,
    Text,
    Bool,
}

impl Placeholder {
    const ALL: [Placeholder; 12] = [
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
        }
    }

    fn value_type(self) -> ValueType {
        match self {
            Placeholder::Status | Placeholder::PacketLoss | Placeholder::ExitCode => ValueType::Number,
            Placeholder::ResponseTime
            | Placeholder::CertificateExpiration
            | Placeholder::RttAvg
            | Placeholder::RttMax
            | Placeholder::Jitter => ValueType::Duration,
            Placeholder::Connected => ValueType::Bool,
            Placeholder::Body | Placeholder::Ip | Placeholder::DnsRcode => ValueType::Text,
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

/// Formats a duration compactly: `850ms`, `3.2s`, `21d 4h`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{}ms", (ms * 10.0).round() / 10.0)
    } else if ms < 120_000.0 {
        format!("{}s", (ms / 100.0).round() / 10.0)
    } else {
        let secs = d.as_secs();
        let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
        match (days, hours) {
            (0, 0) => format!("{mins}m"),
            (0, h) => format!("{h}h {mins}m"),
            (d, h) => format!("{d}d {h}h"),
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

#[derive(Debug, Clone)]
enum Left {
    Plain(Subject),
    Len(Subject),
    Has(Subject),
}

#[derive(Debug, Clone)]
enum Right {
    Literal(String),
    Pattern(glob::Pattern),
    Any(Vec<String>),
}

/// A parsed condition.
#[derive(Debug, Clone)]
pub struct Condition {
    text: String,
    left_text: String,
    right_text: String,
    left: Left,
    op: Op,
    right: Right,
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
        let (op_at, op) =
            find_operator(text).ok_or_else(|| parse_error(1, "expected a comparison (==, !=, <, <=, >, >=)"))?;
        let left_raw = &text[..op_at];
        let right_at = op_at + op.symbol().len();
        let right_raw = &text[right_at..];
        let left_col = 1 + left_raw.len() - left_raw.trim_start().len();
        let right_col = right_at + 1 + right_raw.len() - right_raw.trim_start().len();
        let left = parse_left(left_raw.trim(), left_col)?;
        let right = parse_right(right_raw.trim(), right_col)?;
        let condition = Condition {
            text: text.to_string(),
            left_text: left_raw.trim().to_string(),
            right_text: right_raw.trim().to_string(),
            left,
            op,
            right,
        };
        condition.type_check(right_col)?;
        Ok(condition)
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The placeholder this condition reads.
    pub fn placeholder(&self) -> Placeholder {
        match &self.left {
            Left::Plain(s) | Left::Len(s) | Left::Has(s) => s.placeholder,
        }
    }

    fn left_type(&self) -> Option<ValueType> {
        match &self.left {
            Left::Len(_) => Some(ValueType::Number),
            Left::Has(_) => Some(ValueType::Bool),
            Left::Plain(s) if s.json_path.is_some() => None,
            Left::Plain(s) => Some(s.placeholder.value_type()),
        }
    }

    fn type_check(&self, col: usize) -> Result<(), ParseError> {
        let Some(ty) = self.left_type() else {
            return Ok(());
        };
        let literals: Vec<&String> = match &self.right {
            Right::Literal(l) => vec![l],
            Right::Any(list) => list.iter().collect(),
            Right::Pattern(_) if ty == ValueType::Text => return Ok(()),
            Right::Pattern(_) => {
                return Err(parse_error(col, "pat() only applies to text such as [BODY]"));
            }
        };
        if !matches!(self.right, Right::Literal(_)) && !matches!(self.op, Op::Eq | Op::Ne) {
            return Err(parse_error(col, "any() can only be compared with == or !="));
        }
        for lit in literals {
            if coerce(lit, ty).is_none() {
                let expected = match ty {
                    ValueType::Number => "a number",
                    ValueType::Duration => "a duration such as 300ms, 3s or 21d",
                    ValueType::Bool => "true or false",
                    ValueType::Text => "text",
                };
                return Err(parse_error(col, format!("\"{lit}\" is not {expected}")));
            }
        }
        if ty == ValueType::Bool && !matches!(self.op, Op::Eq | Op::Ne) {
            return Err(parse_error(col, "true/false can only be compared with == or !="));
        }
        Ok(())
    }

    /// Evaluates against what a probe observed. `json` caches the parsed body across the
    /// conditions of one probe run.
    fn evaluate(&self, facts: &dyn Facts, json: &JsonCache) -> (bool, Option<Value>) {
        let observed = match &self.left {
            Left::Plain(s) => resolve(s, facts, json),
            Left::Len(s) => length(s, facts, json).map(|n| Value::Number(n as f64)),
            Left::Has(s) => Some(Value::Bool(resolve(s, facts, json).is_some())),
        };
        let Some(value) = &observed else {
            return (false, None);
        };
        let passed = match &self.right {
            Right::Pattern(p) => {
                let matched = p.matches(&text_of(value));
                if self.op == Op::Ne { !matched } else { matched }
            }
            Right::Any(list) => {
                let any = list.iter().any(|lit| compare(value, Op::Eq, lit));
                if self.op == Op::Ne { !any } else { any }
            }
            Right::Literal(lit) => compare(value, self.op, lit),
        };
        (passed, observed)
    }

    /// Shows the condition with the observed value: `[STATUS] (503) == 200`.
    pub fn display_with(&self, observed: Option<&Value>) -> String {
        let shown = match observed {
            Some(v) => v.to_string(),
            None => "missing".to_string(),
        };
        format!("{} ({shown}) {} {}", self.left_text, self.op.symbol(), self.right_text)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
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
            let (passed, observed) = c.evaluate(facts, &json);
            (!passed).then(|| Failure { placeholder: c.placeholder(), display: c.display_with(observed.as_ref()) })
        })
        .collect()
}

fn parsed_body<'a>(facts: &dyn Facts, json: &'a JsonCache) -> Option<&'a serde_json::Value> {
    json.get_or_init(|| facts.body().and_then(|b| serde_json::from_slice(b).ok())).as_ref()
}

fn json_node<'a>(path: &JsonPath, facts: &dyn Facts, json: &'a JsonCache) -> Option<&'a serde_json::Value> {
    let body = parsed_body(facts, json)?;
    path.query(body).first()
}

fn resolve(s: &Subject, facts: &dyn Facts, json: &JsonCache) -> Option<Value> {
    match &s.json_path {
        None => facts.value(s.placeholder),
        Some(path) => json_node(path, facts, json).map(json_to_value),
    }
}

fn length(s: &Subject, facts: &dyn Facts, json: &JsonCache) -> Option<usize> {
    match &s.json_path {
        Some(path) => json_node(path, facts, json).map(|node| match node {
            serde_json::Value::Array(a) => a.len(),
            serde_json::Value::Object(o) => o.len(),
            serde_json::Value::String(t) => t.chars().count(),
            other => other.to_string().chars().count(),
        }),
        None => match facts.value(s.placeholder)? {
            Value::Text(t) => Some(t.chars().count()),
            other => Some(other.to_string().chars().count()),
        },
    }
}

fn json_to_value(node: &serde_json::Value) -> Value {
    match node {
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        other => other.to_string(),
    }
}

/// Reads a literal as a value of the given type.
fn coerce(lit: &str, ty: ValueType) -> Option<Value> {
    match ty {
        ValueType::Number => parse_number(lit).map(Value::Number),
        ValueType::Duration => parse_duration_literal(lit).map(Value::Duration),
        ValueType::Bool => match lit {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        ValueType::Text => Some(Value::Text(lit.to_string())),
    }
}

fn parse_number(lit: &str) -> Option<f64> {
    lit.strip_suffix('%').unwrap_or(lit).trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A duration literal; a bare number means milliseconds, as in Gatus.
fn parse_duration_literal(lit: &str) -> Option<Duration> {
    if let Ok(ms) = lit.parse::<f64>() {
        return (ms >= 0.0 && ms.is_finite()).then(|| Duration::from_secs_f64(ms / 1000.0));
    }
    humantime::parse_duration(lit).ok()
}

fn compare(value: &Value, op: Op, lit: &str) -> bool {
    let ordering = match value {
        Value::Number(n) => parse_number(lit).and_then(|l| n.partial_cmp(&l)),
        Value::Duration(d) => parse_duration_literal(lit).map(|l| d.cmp(&l)),
        Value::Bool(b) => match lit {
            "true" => Some(b.cmp(&true)),
            "false" => Some(b.cmp(&false)),
            _ => None,
        },
        Value::Text(t) => match (op, t.trim().parse::<f64>(), parse_number(lit)) {
            (Op::Eq | Op::Ne, _, _) => Some(t.as_str().cmp(lit)),
            (_, Ok(a), Some(b)) => a.partial_cmp(&b),
            _ => Some(t.as_str().cmp(lit)),
        },
    };
    ordering.is_some_and(|o| op.holds(o))
}

/// Finds the comparison operator outside brackets, parentheses and quotes.
fn find_operator(text: &str) -> Option<(usize, Op)> {
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'"' | b'\'' => quote = Some(c),
                b'[' | b'(' => depth += 1,
                b']' | b')' => depth -= 1,
                b'=' | b'!' | b'<' | b'>' if depth == 0 => {
                    let next = bytes.get(i + 1).copied();
                    let op = match (c, next) {
                        (b'=', Some(b'=')) => Op::Eq,
                        (b'!', Some(b'=')) => Op::Ne,
                        (b'<', Some(b'=')) => Op::Le,
                        (b'>', Some(b'=')) => Op::Ge,
                        (b'<', _) => Op::Lt,
                        (b'>', _) => Op::Gt,
                        _ => return None,
                    };
                    return Some((i, op));
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}

fn parse_left(text: &str, col: usize) -> Result<Left, ParseError> {
    for (name, wrap) in [("len(", Left::Len as fn(Subject) -> Left), ("has(", Left::Has)] {
        if let Some(inner) = text.strip_prefix(name) {
            let inner = inner
                .strip_suffix(')')
                .ok_or_else(|| parse_error(col, format!("{name}…) is missing its closing ')'")))?;
            return Ok(wrap(parse_subject(inner.trim(), col + name.len())?));
        }
    }
    Ok(Left::Plain(parse_subject(text, col)?))
}

fn parse_subject(text: &str, col: usize) -> Result<Subject, ParseError> {
    let Some(rest) = text.strip_prefix('[') else {
        return Err(parse_error(col, format!("expected a placeholder such as [STATUS], found \"{text}\"")));
    };
    let end = rest.find(']').ok_or_else(|| parse_error(col, "placeholder is missing its ']'"))?;
    let name = &rest[..end];
    let placeholder = Placeholder::ALL
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| parse_error(col, format!("unknown placeholder [{name}]")))?;
    let path = &rest[end + 1..];
    if path.is_empty() {
        return Ok(Subject { placeholder, json_path: None });
    }
    if placeholder != Placeholder::Body {
        return Err(parse_error(col + end + 2, format!("only [BODY] takes a JSON path, not [{name}]")));
    }
    let json_path = JsonPath::parse(&format!("${path}"))
        .map_err(|e| parse_error(col + end + 2, format!("invalid JSON path \"{path}\": {e}")))?;
    Ok(Subject { placeholder, json_path: Some(json_path) })
}

fn parse_right(text: &str, col: usize) -> Result<Right, ParseError> {
    if text.is_empty() {
        return Err(parse_error(col, "missing the value to compare with"));
    }
    if let Some(inner) = text.strip_prefix("pat(") {
        let inner = inner.strip_suffix(')').ok_or_else(|| parse_error(col, "pat(…) is missing its ')'"))?;
        let pattern =
            glob::Pattern::new(inner).map_err(|e| parse_error(col + 4, format!("invalid pattern \"{inner}\": {e}")))?;
        return Ok(Right::Pattern(pattern));
    }
    if let Some(inner) = text.strip_prefix("any(") {
        let inner = inner.strip_suffix(')').ok_or_else(|| parse_error(col, "any(…) is missing its ')'"))?;
        let items: Vec<String> = inner.split(',').map(|s| unquote(s.trim())).collect();
        if items.iter().any(String::is_empty) {
            return Err(parse_error(col + 4, "any() has an empty value"));
        }
        return Ok(Right::Any(items));
    }
    Ok(Right::Literal(unquote(text)))
}

fn unquote(s: &str) -> String {
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Seen {
        status: Option<u16>,
        body: Option<String>,
        response_time: Option<Duration>,
        connected: Option<bool>,
        loss: Option<f64>,
    }

    impl Facts for Seen {
        fn value(&self, p: Placeholder) -> Option<Value> {
            match p {
                Placeholder::Status => self.status.map(|s| Value::Number(s.into())),
                Placeholder::Body => self.body.clone().map(Value::Text),
                Placeholder::ResponseTime => self.response_time.map(Value::Duration),
                Placeholder::Connected => self.connected.map(Value::Bool),
                Placeholder::PacketLoss => self.loss.map(Value::Number),
                _ => None,
            }
        }
        fn body(&self) -> Option<&[u8]> {
            self.body.as_deref().map(str::as_bytes)
        }
    }

    fn check(cond: &str, seen: &Seen) -> Option<String> {
        let c = Condition::parse(cond).unwrap_or_else(|e| panic!("{cond}: {e}"));
        failures(std::slice::from_ref(&c), seen).pop().map(|f| f.display)
    }

    #[test]
    fn evaluation_table() {
        let json = r#"{"status":"UP","queue":{"pending":612},"items":[1,2,3],"name":"Dịch vụ công"}"#;
        let seen = Seen {
            status: Some(503),
            body: Some(json.to_string()),
            response_time: Some(Duration::from_millis(1200)),
            connected: Some(true),
            loss: Some(20.0),
        };
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("status mismatch shows value", "[STATUS] == 200", Some("[STATUS] (503) == 200")),
            ("status range", "[STATUS] < 600", None),
            ("status any miss", "[STATUS] == any(200, 204)", Some("[STATUS] (503) == any(200, 204)")),
            ("status any hit", "[STATUS] == any(503, 504)", None),
            ("json number", "[BODY].queue.pending < 500", Some("[BODY].queue.pending (612) < 500")),
            ("json string", "[BODY].status == UP", None),
            ("json missing", "[BODY].nope == 1", Some("[BODY].nope (missing) == 1")),
            ("len of array", "len([BODY].items) == 3", None),
            ("has path", "has([BODY].queue) == true", None),
            ("has missing", "has([BODY].nope) == false", None),
            ("pattern unicode", "[BODY] == pat(*Dịch vụ công*)", None),
            (
                "pattern miss",
                "[BODY] != pat(*UP*)",
                Some(r#"[BODY] ({"status":"UP","queue":{"pending":612},"items":[1,2,3],"name…) != pat(*UP*)"#),
            ),
            ("duration seconds", "[RESPONSE_TIME] < 1s", Some("[RESPONSE_TIME] (1.2s) < 1s")),
            ("duration bare ms", "[RESPONSE_TIME] < 1500", None),
            ("bool", "[CONNECTED] == true", None),
            ("percent", "[PACKET_LOSS] < 20%", Some("[PACKET_LOSS] (20) < 20%")),
            ("quoted text", "[BODY].status == \"UP\"", None),
        ];
        for (name, cond, expected) in cases {
            assert_eq!(check(cond, &seen).as_deref(), *expected, "case {name}");
        }
    }

    #[test]
    fn missing_measurement_fails() {
        assert_eq!(check("[STATUS] == 200", &Seen::default()).as_deref(), Some("[STATUS] (missing) == 200"));
    }

    #[test]
    fn parse_errors_carry_columns() {
        let cases: &[(&str, &str, usize, &str)] = &[
            ("no operator", "[STATUS] 200", 1, "expected a comparison"),
            ("unknown placeholder", "[STATU] == 200", 1, "unknown placeholder [STATU]"),
            ("not a number", "[STATUS] == abc", 13, "\"abc\" is not a number"),
            ("bad duration", "[RESPONSE_TIME] < 3 parsecs", 19, "is not a duration"),
            ("path on status", "[STATUS].x == 1", 9, "only [BODY] takes a JSON path"),
            ("missing value", "[STATUS] ==", 12, "missing the value"),
            ("bool ordering", "[CONNECTED] < true", 15, "can only be compared"),
            ("no placeholder", "200 == [STATUS]", 1, "expected a placeholder"),
        ];
        for (name, cond, col, msg) in cases {
            let err = Condition::parse(cond).expect_err(name);
            assert_eq!(err.column, *col, "case {name}: {err}");
            assert!(err.message.contains(msg), "case {name}: {err}");
        }
    }
}
