//! Small field parsers shared by the validators: durations, percentages, ids,
//! thresholds, and the error collector.

use std::time::Duration;

use super::ConfigError;
use super::source::SourceFile;

/// Collects errors against the file they belong to.
pub(super) struct Errors(pub(super) Vec<ConfigError>);

impl Errors {
    /// An error at `path`, unless its value named an unset variable (reported already:
    /// one error per missing secret, not a second one about the empty value).
    pub(super) fn at(&mut self, file: &SourceFile, path: &str, message: impl Into<String>) {
        if !file.is_unresolved(path) {
            self.0.push(file.error(path, message));
        }
    }
}

/// The longest duration a configuration may name (a yearly job with its grace fits): any
/// arithmetic on configured durations then stays far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(400 * 86_400);

/// Parses a duration such as `30s`, `5m` or `21d`, at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|_| format!("\"{text}\" is not a duration (expected e.g. 500ms, 30s, 5m, 21d)"))?;
    if d > MAX_DURATION {
        return Err(format!("\"{text}\" is longer than the longest duration accepted, 400d"));
    }
    Ok(d)
}

/// Parses a percentage such as `99.9%` into a ratio (0.999).
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("\"{text}\" is not a percentage (expected e.g. 99.9%)"))?;
    if !(0.0..=100.0).contains(&number) {
        return Err(format!("\"{text}\" must be between 0% and 100%"));
    }
    Ok(number / 100.0)
}

pub(super) fn duration_field(
    file: &SourceFile,
    path: &str,
    value: Option<&String>,
    default: Duration,
    errors: &mut Errors,
) -> Duration {
    match value.map(|v| parse_duration(v)) {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(msg)) => {
            errors.at(file, path, msg);
            default
        }
    }
}

pub(super) fn is_slug(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(super) fn slug_field(
    file: &SourceFile,
    path: &str,
    value: Option<&String>,
    what: &str,
    errors: &mut Errors,
) -> Option<String> {
    match value {
        None => {
            errors.at(file, path, format!("{what} is required"));
            None
        }
        Some(id) if !is_slug(id) => {
            errors.at(file, path, format!("\"{id}\" is not a valid {what} (lowercase letters, digits, '-' and '_')"));
            None
        }
        Some(id) => Some(id.clone()),
    }
}

pub(super) fn threshold(file: &SourceFile, path: &str, value: Option<u32>, default: u32, errors: &mut Errors) -> u32 {
    match value {
        Some(0) => {
            errors.at(file, path, "must be at least 1");
            default
        }
        Some(n) => n,
        None => default,
    }
}
