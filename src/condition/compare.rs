//! Comparing what was observed with what was written: equality and order between
//! numbers, durations, text and true/false, with the conversions Gatus users expect
//! (`0x1F`, `0o17`, `0b101` are numbers; a bare number compared with a duration is
//! milliseconds) and none they would not: ordering text that is not a number is a
//! failure that says so, never a silent comparison of letters.

use std::cmp::Ordering;
use std::time::Duration;

use super::{Observed, Op, Operand, Value, ValueType};

/// Whether `left op right` holds. `Err(Some(why))` when the two cannot be compared (the
/// condition fails and shows why); missing values are handled by the caller.
pub(super) fn judge(left: &Observed, op: Op, right: &Observed) -> Result<bool, Option<String>> {
    match (left, right) {
        (Observed::Value(v), Observed::Written(w)) => against_written(v, op, w, false),
        (Observed::Written(w), Observed::Value(v)) => against_written(v, op, w, true),
        (Observed::Value(a), Observed::Value(b)) => values(a, op, b),
        // The parser lets no condition through with nothing measured.
        _ => Err(Some("nothing measured to compare".to_string())),
    }
}

/// A measured value against a literal, `pat()` or `any()`; `reversed` when the value
/// stands on the right (`any(200, 429) == [STATUS]`, `5 < [BODY].n`).
fn against_written(value: &Value, op: Op, written: &Operand, reversed: bool) -> Result<bool, Option<String>> {
    let negate = |held: bool| if op == Op::Ne { !held } else { held };
    match written {
        Operand::Pattern(p) => Ok(negate(p.matches(&text_of(value)))),
        Operand::Any(items) => Ok(negate(items.iter().any(|lit| equal(value, &Value::Text(lit.clone()))))),
        Operand::Literal(lit) => {
            let lit = Value::Text(lit.clone());
            if reversed { values(&lit, op, value) } else { values(value, op, &lit) }
        }
        Operand::Measured(_) => Err(Some("nothing measured to compare".to_string())),
    }
}

fn values(a: &Value, op: Op, b: &Value) -> Result<bool, Option<String>> {
    match op {
        Op::Eq => Ok(equal(a, b)),
        Op::Ne => Ok(!equal(a, b)),
        _ => order(a, b).map(|o| op.holds(o)).map_err(Some),
    }
}

/// Equality. Numbers compare as numbers (text that reads as one included); two texts
/// compare as integers when both are integers (`0x1` equals `1`), else letter for letter.
fn equal(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (Bool(x), Bool(y)) => x == y,
        (Bool(x), Text(t)) | (Text(t), Bool(x)) => t.trim() == if *x { "true" } else { "false" },
        (Bool(_), _) | (_, Bool(_)) => false,
        (Duration(_), _) | (_, Duration(_)) => matches!((as_duration(a), as_duration(b)), (Some(x), Some(y)) if x == y),
        (Number(_), _) | (_, Number(_)) => matches!((as_number(a), as_number(b)), (Some(x), Some(y)) if x == y),
        (Text(x), Text(y)) => match (parse_integer(x), parse_integer(y)) {
            (Some(i), Some(j)) => i == j,
            _ => x == y,
        },
    }
}

/// Order: durations when either side is one (a bare number is milliseconds), numbers
/// otherwise; anything else cannot be ordered.
fn order(a: &Value, b: &Value) -> Result<Ordering, String> {
    if matches!(a, Value::Duration(_)) || matches!(b, Value::Duration(_)) {
        let x = as_duration(a).ok_or_else(|| not_a(a, "duration"))?;
        let y = as_duration(b).ok_or_else(|| not_a(b, "duration"))?;
        return Ok(x.cmp(&y));
    }
    let x = as_number(a).ok_or_else(|| not_a(a, "number"))?;
    let y = as_number(b).ok_or_else(|| not_a(b, "number"))?;
    x.partial_cmp(&y).ok_or_else(|| format!("{x} and {y} cannot be ordered"))
}

fn not_a(value: &Value, what: &str) -> String {
    format!("\"{value}\" is not a {what}")
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Duration(d) => Some(d.as_secs_f64() * 1000.0),
        Value::Text(t) => parse_number(t),
        Value::Bool(_) => None,
    }
}

fn as_duration(v: &Value) -> Option<Duration> {
    match v {
        Value::Duration(d) => Some(*d),
        Value::Number(n) => millis(*n),
        Value::Text(t) => parse_duration_literal(t.trim()),
        Value::Bool(_) => None,
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        other => other.to_string(),
    }
}

/// Reads a literal as a value of the given type (at load, to reject what cannot match).
pub(super) fn coerce(lit: &str, ty: ValueType) -> Option<Value> {
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

/// Whether a literal can stand in an order comparison (a number or a duration).
pub(super) fn literal_is_ordered(lit: &str) -> bool {
    parse_number(lit).is_some() || parse_duration_literal(lit).is_some()
}

/// A number: decimal (exactly as written, no precision lost beyond `f64`'s nearest),
/// `0x`/`0o`/`0b` integers, optionally with a trailing `%` or `/s` (a rate).
pub(super) fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    let t = t.strip_suffix('%').or_else(|| t.strip_suffix("/s")).unwrap_or(t).trim_end();
    if let Some(i) = parse_prefixed_integer(t) {
        return Some(i as f64);
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// An integer in decimal or with a `0x`/`0o`/`0b` prefix.
fn parse_integer(text: &str) -> Option<i128> {
    let t = text.trim();
    parse_prefixed_integer(t).or_else(|| t.parse::<i128>().ok())
}

fn parse_prefixed_integer(t: &str) -> Option<i128> {
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (radix, digits) = match digits.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => (16, &digits[2..]),
        Some("0o") => (8, &digits[2..]),
        Some("0b") => (2, &digits[2..]),
        _ => return None,
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let n = i128::from_str_radix(digits, radix).ok()?;
    Some(if negative { -n } else { n })
}

/// A duration literal; a bare number means milliseconds, as in Gatus.
pub(super) fn parse_duration_literal(lit: &str) -> Option<Duration> {
    if let Ok(ms) = lit.parse::<f64>() {
        return millis(ms);
    }
    humantime::parse_duration(lit).ok()
}

/// Milliseconds as a duration; none for negative, NaN or too large (a hostile body's
/// `1e300` must not panic the probe).
fn millis(ms: f64) -> Option<Duration> {
    if ms < 0.0 { None } else { Duration::try_from_secs_f64(ms / 1000.0).ok() }
}
