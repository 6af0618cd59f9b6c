//! `maintenance:` windows — one-off (`from`/`to`, RFC 3339 or local `YYYY-MM-DD HH:MM`) or
//! recurring (`cron` in the instance time zone, with a `duration`) — for systems, checks or
//! single targets. Windows opened through the API use the same shape.

use std::time::Duration;

use super::fields::{Errors, duration_field};
use super::raw::RawMaintenance;
use super::source::SourceFile;

/// When a window applies.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// From `from_ms` (inclusive) to `to_ms` (exclusive), Unix milliseconds.
    Once { from_ms: i64, to_ms: i64 },
    /// Every occurrence of `cron` (instance time zone), lasting `duration`.
    Recurring { cron: Box<croner::Cron>, pattern: String, duration: Duration },
}

/// A maintenance window.
#[derive(Debug, Clone)]
pub struct Window {
    pub name: String,
    /// System ids, `system/check` ids and target ids it covers.
    pub systems: Vec<String>,
    pub checks: Vec<String>,
    pub targets: Vec<String>,
    pub schedule: Schedule,
    pub reason: Option<String>,
}

impl Window {
    /// Whether the window covers a target.
    pub fn covers(&self, system: &str, check: &str, target: &str) -> bool {
        self.systems.iter().any(|s| s == system)
            || self.checks.iter().any(|c| c == check)
            || self.targets.iter().any(|t| t == target)
    }

    /// Whether the window is in force at `now_ms`.
    pub fn active(&self, now_ms: i64, tz: &jiff::tz::TimeZone) -> bool {
        match &self.schedule {
            Schedule::Once { from_ms, to_ms } => (*from_ms..*to_ms).contains(&now_ms),
            Schedule::Recurring { cron, duration, .. } => {
                // Active if an occurrence falls within the last `duration` (the end is exclusive).
                let start = now_ms - duration.as_millis() as i64;
                let Some(start) = local_time(start, tz) else { return false };
                match cron.find_next_occurrence(&start, false) {
                    Ok(next) => next.timestamp_millis() <= now_ms,
                    Err(_) => false,
                }
            }
        }
    }
}

/// A chrono time at the instance's offset (croner works on chrono).
fn local_time(ms: i64, tz: &jiff::tz::TimeZone) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
    let offset = chrono::FixedOffset::east_opt(tz.to_offset(ts).seconds())?;
    Some(chrono::DateTime::from_timestamp_millis(ms)?.with_timezone(&offset))
}

/// A one-off window opened through the API (stored as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiWindow {
    pub name: String,
    pub systems: Vec<String>,
    pub checks: Vec<String>,
    pub targets: Vec<String>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub reason: Option<String>,
    pub by: String,
}

impl ApiWindow {
    /// The window it opens.
    pub fn window(&self) -> Window {
        Window {
            name: self.name.clone(),
            systems: self.systems.clone(),
            checks: self.checks.clone(),
            targets: self.targets.clone(),
            schedule: Schedule::Once { from_ms: self.from_ms, to_ms: self.to_ms },
            reason: self.reason.clone(),
        }
    }
}

/// Parses a time: RFC 3339, or `YYYY-MM-DD HH:MM[:SS]` in the instance time zone.
pub fn parse_time(text: &str, tz: &jiff::tz::TimeZone) -> Result<i64, String> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let civil = text
        .replace('T', " ")
        .parse::<jiff::civil::DateTime>()
        .map_err(|_| format!("\"{text}\" is not a time (expected 2026-12-05T20:00:00+07:00 or 2026-12-05 20:00)"))?;
    civil.to_zoned(tz.clone()).map(|z| z.timestamp().as_millisecond()).map_err(|e| e.to_string())
}

/// Validates one window (`path` is where it was written).
pub(super) fn window(
    file: &SourceFile,
    path: &str,
    raw: &RawMaintenance,
    tz: &jiff::tz::TimeZone,
    errors: &mut Errors,
) -> Option<Window> {
    let (from, to, cron) = (&raw.from, &raw.to, &raw.cron);
    if raw.systems.is_empty() && raw.checks.is_empty() && raw.targets.is_empty() {
        errors.at(file, path, "a maintenance window needs systems, checks or targets");
        return None;
    }
    let schedule = match (from, to, cron) {
        (Some(f), Some(t), None) => {
            let mut time =
                |key: &str, v: &str| parse_time(v, tz).map_err(|m| errors.at(file, &format!("{path}.{key}"), m)).ok();
            let (from_ms, to_ms) = (time("from", f)?, time("to", t)?);
            if to_ms <= from_ms {
                errors.at(file, &format!("{path}.to"), "the window ends before it starts");
                return None;
            }
            Schedule::Once { from_ms, to_ms }
        }
        (None, None, Some(pattern)) => {
            let cron = match croner::Cron::new(pattern).parse() {
                Ok(c) => c,
                Err(e) => {
                    errors.at(file, &format!("{path}.cron"), format!("invalid cron \"{pattern}\": {e}"));
                    return None;
                }
            };
            let Some(d) = &raw.duration else {
                errors.at(file, path, "a recurring window needs a duration");
                return None;
            };
            let duration = duration_field(file, &format!("{path}.duration"), Some(d), Duration::ZERO, errors);
            if duration.is_zero() {
                return None;
            }
            Schedule::Recurring { cron: Box::new(cron), pattern: pattern.clone(), duration }
        }
        _ => {
            errors.at(file, path, "set either from and to, or cron and duration");
            return None;
        }
    };
    Some(Window {
        name: raw.name.clone().unwrap_or_else(|| "maintenance".into()),
        systems: raw.systems.clone(),
        checks: raw.checks.clone(),
        targets: raw.targets.clone(),
        schedule,
        reason: raw.reason.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hanoi() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").expect("tz")
    }

    #[test]
    fn recurring_windows_follow_the_local_clock() {
        // Saturdays 22:00–24:00 in Hanoi (UTC+7).
        let w = Window {
            name: "patching".into(),
            systems: vec!["documents".into()],
            checks: Vec::new(),
            targets: Vec::new(),
            schedule: Schedule::Recurring {
                cron: Box::new(croner::Cron::new("0 22 * * SAT").parse().expect("cron")),
                pattern: "0 22 * * SAT".into(),
                duration: Duration::from_secs(7200),
            },
            reason: None,
        };
        let at = |s: &str| parse_time(s, &hanoi()).expect("time");
        let cases = [
            ("before", "2026-11-28 21:59", false),
            ("start", "2026-11-28 22:00", true),
            ("inside", "2026-11-28 23:30", true),
            ("end", "2026-11-29 00:00", false),
            ("weekday", "2026-11-25 22:30", false),
        ];
        for (name, time, active) in cases {
            assert_eq!(w.active(at(time), &hanoi()), active, "{name}");
        }
        assert!(w.covers("documents", "documents/web", "documents/web"));
        assert!(!w.covers("network", "network/core-router", "network/core-router"));
    }

    #[test]
    fn times_in_both_forms() {
        let tz = hanoi();
        assert_eq!(parse_time("2026-12-05T20:00:00+07:00", &tz), parse_time("2026-12-05 20:00", &tz));
        assert!(parse_time("soon", &tz).is_err());
    }
}
