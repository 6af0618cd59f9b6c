//! Time as the crate speaks of it: Unix milliseconds from one clock, and one way to write
//! a duration for people.
//!
//! The [`Clock`] is a parameter of whatever decides by time (the app hands the pipeline
//! the [`SystemClock`]; tests may hand in a [`TestClock`] they jump forward instead of
//! sleeping). [`now_ms`] is the system clock for code that is not handed one.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix milliseconds now.
    fn now_ms(&self) -> i64;
}

/// The system's clock (shifted in `fault-injection` builds, see [`now_ms`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// The system clock shifted by however far a test moved it forward: time goes on as
/// usual, and a test can jump it (past a reminder, an escalation, a window) without
/// waiting. Clones share the shift.
#[derive(Debug, Clone, Default)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// A clock showing the system's time.
    pub fn new() -> TestClock {
        TestClock::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        now_ms() + self.0.load(Ordering::SeqCst)
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64) + clock_offset_ms()
}

/// Tests built with `fault-injection` may shift Vigil's clock (`VIGIL_FAULT_CLOCK_OFFSET_MS`),
/// e.g. to put an outage across a local midnight; timers are not affected.
#[cfg(feature = "fault-injection")]
fn clock_offset_ms() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| std::env::var("VIGIL_FAULT_CLOCK_OFFSET_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0))
}

#[cfg(not(feature = "fault-injection"))]
fn clock_offset_ms() -> i64 {
    0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_jumps_when_told() {
        let clock = TestClock::new();
        let shared = clock.clone();
        assert!((clock.now_ms() - SystemClock.now_ms()).abs() < 1_000);
        shared.advance(Duration::from_secs(3_600));
        assert!((clock.now_ms() - SystemClock.now_ms() - 3_600_000).abs() < 1_000, "clones share the shift");
    }
}
