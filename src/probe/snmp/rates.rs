//! Counter rates: the difference of two readings of an interface's counters over the time
//! between them — wrap-safe (a 32-bit counter that passed 2³² − 1, a 64-bit one that passed
//! 2⁶⁴ − 1), and never across a discontinuity (the agent restarted: its uptime went back).

use std::collections::HashMap;
use std::time::Instant;

/// One reading of a counter and its width in bits (32 or 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub value: u64,
    pub bits: u8,
}

/// The counters of one interface at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub in_octets: Option<Counter>,
    pub out_octets: Option<Counter>,
    pub in_errors: Option<Counter>,
    pub out_errors: Option<Counter>,
    pub in_discards: Option<Counter>,
    pub out_discards: Option<Counter>,
}

/// Every interface's counters read in one run, with the agent's uptime.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    /// `sysUpTime` in hundredths of a second (a value lower than the last one's: restarted).
    pub uptime: Option<u64>,
    pub interfaces: HashMap<u32, Counters>,
}

/// Per-second rates of one interface between two samples.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Rates {
    pub in_bps: Option<f64>,
    pub out_bps: Option<f64>,
    pub in_errors: Option<f64>,
    pub out_errors: Option<f64>,
    pub in_discards: Option<f64>,
    pub out_discards: Option<f64>,
}

/// How far a counter went from `before` to `after`: once around when it wrapped. A width
/// that changed (the agent began answering the 64-bit counter) gives nothing.
pub fn delta(before: Counter, after: Counter) -> Option<u64> {
    if before.bits != after.bits {
        return None;
    }
    if after.value >= before.value {
        return Some(after.value - before.value);
    }
    let modulus_minus_one = if after.bits == 64 { u64::MAX } else { u64::from(u32::MAX) };
    // after < before: (max − before) + after + 1 ≤ max, no overflow.
    Some(modulus_minus_one - before.value + after.value + 1)
}

/// The rates of interface `index` from `before` to `after`, or `None` when there is no
/// honest answer: the agent restarted in between, or no time passed.
pub fn rates(before: &Sample, after: &Sample, index: u32) -> Option<Rates> {
    if let (Some(a), Some(b)) = (before.uptime, after.uptime)
        && b < a
    {
        return None; // restarted: its counters started again from zero
    }
    let seconds = after.at.saturating_duration_since(before.at).as_secs_f64();
    if seconds <= 0.0 {
        return None;
    }
    let (old, new) = (before.interfaces.get(&index)?, after.interfaces.get(&index)?);
    let per_second = |pick: fn(&Counters) -> Option<Counter>, factor: f64| {
        let d = delta(pick(old)?, pick(new)?)?;
        Some(d as f64 * factor / seconds)
    };
    Some(Rates {
        in_bps: per_second(|c| c.in_octets, 8.0),
        out_bps: per_second(|c| c.out_octets, 8.0),
        in_errors: per_second(|c| c.in_errors, 1.0),
        out_errors: per_second(|c| c.out_errors, 1.0),
        in_discards: per_second(|c| c.in_discards, 1.0),
        out_discards: per_second(|c| c.out_discards, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn c32(value: u64) -> Counter {
        Counter { value, bits: 32 }
    }

    fn c64(value: u64) -> Counter {
        Counter { value, bits: 64 }
    }

    #[test]
    fn deltas_wrap_at_their_width_and_never_go_negative() {
        // name, before, after, expected
        let cases: &[(&str, Counter, Counter, Option<u64>)] = &[
            ("plain", c32(100), c32(350), Some(250)),
            ("no change", c64(7), c64(7), Some(0)),
            ("32-bit wrap", c32(u64::from(u32::MAX) - 99), c32(150), Some(250)),
            ("32-bit wrap to zero", c32(u64::from(u32::MAX)), c32(0), Some(1)),
            ("64-bit wrap", c64(u64::MAX - 9), c64(5), Some(15)),
            ("64-bit wrap to zero", c64(u64::MAX), c64(0), Some(1)),
            ("width changed", c32(5), c64(9), None),
        ];
        for (name, before, after, expected) in cases {
            assert_eq!(delta(*before, *after), *expected, "{name}");
        }
    }

    fn sample(at: Instant, uptime: u64, in_octets: Counter) -> Sample {
        let counters = Counters { in_octets: Some(in_octets), in_errors: Some(c32(3)), ..Counters::default() };
        Sample { at, uptime: Some(uptime), interfaces: HashMap::from([(2, counters)]) }
    }

    #[test]
    fn a_wrapped_counter_gives_its_true_rate_and_a_restart_gives_none() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        // A 32-bit octet counter wrapped during 10 s: 1,000 octets → 800 bit/s, not negative.
        let before = sample(t0, 1_000, c32(u64::from(u32::MAX) - 499));
        let after = sample(t1, 2_000, c32(500));
        let r = rates(&before, &after, 2).expect("rates");
        assert_eq!(r.in_bps, Some(800.0));
        assert_eq!(r.in_errors, Some(0.0));
        assert_eq!(r.out_bps, None, "a counter not read has no rate");
        // The agent restarted (uptime went back): its counters restarted too — no rate.
        let restarted = sample(t1, 50, c32(10));
        assert_eq!(rates(&before, &restarted, 2), None);
        assert_eq!(rates(&before, &after, 9), None, "an interface not in both samples");
        assert_eq!(rates(&after, &before, 2), None, "no time passed (or went back)");
    }
}
