//! Reading a condition's text: the operator, each side (a placeholder with its JSON path
//! and function, a literal, `pat()` or `any()`), and the checks that can be made before
//! any probe runs — so that a malformed condition is a load error, never a silent "down".

use serde_json_path::JsonPath;

use super::compare::{coerce, literal_is_ordered};
use super::{Condition, Measure, Op, Operand, ParseError, Placeholder, Side, Subject, ValueType, parse_error};

/// The longest JSON path accepted after `[BODY]`.
const MAX_JSON_PATH: usize = 256;
/// Filter selectors (`[?…]`) in one JSON path at most.
const MAX_JSON_FILTERS: usize = 2;
/// Brackets in one JSON path at most.
const MAX_JSON_BRACKETS: usize = 16;

/// Parses and type-checks a whole condition.
pub(super) fn condition(text: &str) -> Result<Condition, ParseError> {
    let (op_at, op) =
        find_operator(text).ok_or_else(|| parse_error(1, "expected a comparison (==, !=, <, <=, >, >=)"))?;
    let left_raw = &text[..op_at];
    let right_at = op_at + op.symbol().len();
    let right_raw = &text[right_at..];
    let left_col = 1 + left_raw.len() - left_raw.trim_start().len();
    let right_col = right_at + 1 + right_raw.len() - right_raw.trim_start().len();
    if left_raw.trim().is_empty() {
        return Err(parse_error(left_col, "missing the value to compare"));
    }
    if right_raw.trim().is_empty() {
        return Err(parse_error(right_col, "missing the value to compare with"));
    }
    let left = Side { text: left_raw.trim().to_string(), operand: operand(left_raw.trim(), left_col)? };
    let right = Side { text: right_raw.trim().to_string(), operand: operand(right_raw.trim(), right_col)? };
    check_sides(&left, op, &right, left_col, right_col)?;
    Ok(Condition { text: text.to_string(), left, op, right })
}

/// The checks that need both sides: one of them is measured, functions stand where they
/// make sense, and literals fit the type of what they are compared with.
fn check_sides(left: &Side, op: Op, right: &Side, left_col: usize, right_col: usize) -> Result<(), ParseError> {
    let (measure, other, other_col) = match (&left.operand, &right.operand) {
        (Operand::Measured(m), other) => (m, other, right_col),
        (other, Operand::Measured(m)) => (m, other, left_col),
        _ => {
            let message = format!(
                "expected a placeholder such as [STATUS] on one side, found \"{}\" and \"{}\"",
                left.text, right.text
            );
            return Err(parse_error(left_col, message));
        }
    };
    let ty = measure.value_type();
    match other {
        Operand::Measured(other) => check_measures(measure, other, other_col),
        Operand::Pattern(_) | Operand::Any(_) if op.is_ordering() => {
            Err(parse_error(other_col, "pat() and any() can only be compared with == or !="))
        }
        Operand::Pattern(_) => match ty {
            Some(ValueType::Duration | ValueType::Bool) => {
                Err(parse_error(other_col, "pat() only applies to text and numbers such as [BODY] or [STATUS]"))
            }
            _ => Ok(()),
        },
        Operand::Any(items) => items.iter().try_for_each(|lit| check_literal(lit, ty, op, other_col)),
        Operand::Literal(lit) => check_literal(lit, ty, op, other_col),
    }?;
    if ty == Some(ValueType::Bool) && op.is_ordering() {
        return Err(parse_error(other_col, "true/false can only be compared with == or !="));
    }
    Ok(())
}

/// Two measured sides must be comparable: true/false only with true/false, text with
/// anything (it is read as a number or a duration when compared with one).
fn check_measures(a: &Measure, b: &Measure, col: usize) -> Result<(), ParseError> {
    use ValueType::*;
    match (a.value_type(), b.value_type()) {
        (Some(Bool), Some(Number | Duration)) | (Some(Number | Duration), Some(Bool)) => Err(parse_error(
            col,
            format!(
                "cannot compare {} with {}: true/false is not a number",
                a.subject().placeholder,
                b.subject().placeholder
            ),
        )),
        _ => Ok(()),
    }
}

fn check_literal(lit: &str, ty: Option<ValueType>, op: Op, col: usize) -> Result<(), ParseError> {
    match ty {
        Some(ty) if coerce(lit, ty).is_none() => Err(parse_error(col, format!("\"{lit}\" is not {}", ty.expected()))),
        // A JSON path yields text or numbers: an order needs a number or a duration.
        None | Some(ValueType::Text) if op.is_ordering() && !literal_is_ordered(lit) => Err(parse_error(
            col,
            format!("\"{lit}\" is not a number or a duration (<, <=, >, >= compare numbers and durations)"),
        )),
        _ => Ok(()),
    }
}

/// Finds the comparison operator outside brackets, parentheses and quotes.
fn find_operator(text: &str) -> Option<(usize, Op)> {
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    for (i, &c) in bytes.iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'"' | b'\'' => quote = Some(c),
                b'[' | b'(' => depth += 1,
                b']' | b')' => depth -= 1,
                b'=' | b'!' | b'<' | b'>' if depth == 0 => {
                    let op = match (c, bytes.get(i + 1).copied()) {
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
    }
    None
}

/// One side: `len(…)`, `has(…)`, a placeholder, `pat(…)`, `any(…)` or a literal.
fn operand(text: &str, col: usize) -> Result<Operand, ParseError> {
    for (name, wrap) in [("len(", Measure::Len as fn(Subject) -> Measure), ("has(", Measure::Has)] {
        if let Some(inner) = strip_prefix_ignore_case(text, name) {
            let inner = inner
                .strip_suffix(')')
                .ok_or_else(|| parse_error(col, format!("{name}…) is missing its closing ')'")))?;
            return Ok(Operand::Measured(wrap(subject(inner.trim(), col + name.len())?)));
        }
    }
    if text.starts_with('[') {
        return Ok(Operand::Measured(Measure::Plain(subject(text, col)?)));
    }
    if let Some(inner) = strip_prefix_ignore_case(text, "pat(") {
        let inner = inner.strip_suffix(')').ok_or_else(|| parse_error(col, "pat(…) is missing its ')'"))?;
        let pattern =
            glob::Pattern::new(inner).map_err(|e| parse_error(col + 4, format!("invalid pattern \"{inner}\": {e}")))?;
        return Ok(Operand::Pattern(pattern));
    }
    if let Some(inner) = strip_prefix_ignore_case(text, "any(") {
        let inner = inner.strip_suffix(')').ok_or_else(|| parse_error(col, "any(…) is missing its ')'"))?;
        let items: Vec<String> = inner.split(',').map(|s| unquote(s.trim())).collect();
        if items.iter().any(String::is_empty) {
            return Err(parse_error(col + 4, "any() has an empty value"));
        }
        return Ok(Operand::Any(items));
    }
    Ok(Operand::Literal(unquote(text)))
}

/// A placeholder (its name in any case, as Gatus reads it) and an optional JSON path.
fn subject(text: &str, col: usize) -> Result<Subject, ParseError> {
    let Some(rest) = text.strip_prefix('[') else {
        return Err(parse_error(col, format!("expected a placeholder such as [STATUS], found \"{text}\"")));
    };
    let end = rest.find(']').ok_or_else(|| parse_error(col, "placeholder is missing its ']'"))?;
    let name = &rest[..end];
    let placeholder = Placeholder::ALL
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| parse_error(col, format!("unknown placeholder [{name}]")))?;
    let path = &rest[end + 1..];
    if path.is_empty() {
        return Ok(Subject { placeholder, json_path: None });
    }
    if placeholder != Placeholder::Body {
        return Err(parse_error(col + end + 2, format!("only [BODY] takes a JSON path, not [{name}]")));
    }
    // The JSON path parser backtracks: found by fuzzing, an 850-byte path with 34 filters
    // took longer than 10 s to parse (a configuration that hangs the load). Monitoring
    // paths are short: bound their length, filters and nesting before parsing.
    let filters = path.matches('?').count();
    let depth = path.matches('[').count();
    if path.len() > MAX_JSON_PATH || filters > MAX_JSON_FILTERS || depth > MAX_JSON_BRACKETS {
        let message = format!(
            "JSON path too long or complex (at most {MAX_JSON_PATH} characters, {MAX_JSON_BRACKETS} brackets and {MAX_JSON_FILTERS} filters)"
        );
        return Err(parse_error(col + end + 2, message));
    }
    let invalid = |why: String| parse_error(col + end + 2, format!("invalid JSON path \"{path}\": {why}"));
    if let Some(why) = unfinished_escape(path) {
        return Err(invalid(why.to_string()));
    }
    // The path parser panics on some inputs it cannot finish (found by fuzzing: a `\u`
    // escape at the very end); the check above refuses those, and any other panic of the
    // parser is a refused path too, never a crashed load.
    let parsed = std::panic::catch_unwind(|| JsonPath::parse(&format!("${path}")))
        .map_err(|_| invalid("not understood by the JSON path parser".to_string()))?;
    let json_path = parsed.map_err(|e| invalid(e.to_string()))?;
    Ok(Subject { placeholder, json_path: Some(json_path) })
}

/// Why a `\u` escape in a JSON path is unfinished (fewer than four hex digits, or a high
/// surrogate without its low half), if one is.
fn unfinished_escape(path: &str) -> Option<&'static str> {
    let mut rest = path;
    while let Some(at) = rest.find('\\') {
        rest = &rest[at + 1..];
        let Some(next) = rest.chars().next() else { return Some("a \\ escape at the end") };
        rest = &rest[next.len_utf8()..];
        if next != 'u' {
            continue;
        }
        let Some(unit) = hex4(rest) else { return Some("\\u needs four hex digits") };
        rest = &rest[4..];
        if (0xD800..0xDC00).contains(&unit) {
            let low = rest.strip_prefix("\\u").and_then(hex4);
            if !low.is_some_and(|low| (0xDC00..0xE000).contains(&low)) {
                return Some("a high surrogate needs \\u and its low half");
            }
            rest = &rest[6..];
        }
    }
    None
}

/// The four hex digits at the start of `s`, as a number.
fn hex4(s: &str) -> Option<u32> {
    let digits = s.get(..4).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))?;
    u32::from_str_radix(digits, 16).ok()
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

fn unquote(s: &str) -> String {
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}
