//! The colour of the status page's bars (pure): the worst state each day saw, and the
//! days themselves (midnights in the instance's time zone). No uptime is computed here:
//! every figure comes from [`crate::report::Ledger`]. Times are Unix milliseconds.

use crate::model::State;
use crate::report::History;

/// The worst state each period saw across `histories` combined ([`State::severity`]), or
/// None for a period without data. `bounds` are the period limits, ascending; time after
/// `now_ms` counts for nothing. One pass over each history: no per-target periods.
pub fn worst_per_period(histories: &[&History], bounds: &[i64], now_ms: i64) -> Vec<Option<State>> {
    let mut seen = vec![0u8; bounds.len().saturating_sub(1)];
    let (Some(&first), Some(&last)) = (bounds.first(), bounds.last()) else { return Vec::new() };
    let end = last.min(now_ms);
    for h in histories {
        let mut state = h.initial;
        let mut from = first;
        let edges = h.changes.iter().copied().filter(|(t, _)| *t > first && *t < end).map(|(t, s)| (t, Some(s)));
        for (at, next) in edges.chain([(end, None)]) {
            if let Some(s) = state {
                mark(&mut seen, bounds, from, at, s);
            }
            state = next;
            from = at;
        }
    }
    seen.into_iter()
        .map(|bits| State::ALL.into_iter().filter(|s| bits & bit(*s) != 0).max_by_key(|s| s.severity()))
        .collect()
}

fn bit(state: State) -> u8 {
    1 << State::ALL.iter().position(|s| *s == state).unwrap_or(0)
}

/// Marks `state` as seen in every period [from, to) reaches.
fn mark(seen: &mut [u8], bounds: &[i64], from: i64, to: i64, state: State) {
    // Periods are ascending and contiguous: start at the first one the span reaches.
    let first = bounds.partition_point(|b| *b <= from).saturating_sub(1);
    for (i, w) in bounds.windows(2).enumerate().skip(first).take_while(|(_, w)| w[0] < to) {
        if to.min(w[1]) > from.max(w[0]) {
            seen[i] |= bit(state);
        }
    }
}

/// Midnights (instance time zone) from `days` days ago to the coming midnight, ascending:
/// `days + 1` bounds for `days` periods, the last one being today.
pub fn day_bounds(now_ms: i64, days: u32, tz: &jiff::tz::TimeZone) -> Vec<i64> {
    let Ok(now) = jiff::Timestamp::from_millisecond(now_ms) else { return Vec::new() };
    let today = now.to_zoned(tz.clone()).date();
    (0..=days)
        .rev()
        .filter_map(|back| {
            let day = today.checked_add(jiff::Span::new().days(1 - back as i64)).ok()?;
            day.to_zoned(tz.clone()).ok().map(|z| z.timestamp().as_millisecond())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn h(initial: Option<State>, changes: &[(i64, State)]) -> History {
        History { initial, changes: changes.to_vec(), excluded: Vec::new() }
    }

    #[test]
    fn worst_state_per_day() {
        let bounds = [0, 24 * H, 48 * H, 72 * H];
        // Up from the start, down 22:00–03:00 across midnight, up again; another target in
        // maintenance on the third day.
        let a = h(Some(State::Up), &[(22 * H, State::Down), (27 * H, State::Up)]);
        let b = h(Some(State::Up), &[(50 * H, State::Maintenance), (51 * H, State::Up)]);
        let worst = worst_per_period(&[&a, &b], &bounds, 100 * H);
        assert_eq!(worst, [Some(State::Down), Some(State::Down), Some(State::Maintenance)]);
    }

    #[test]
    fn no_data_before_the_first_state_and_after_now() {
        let bounds = [0, 24 * H, 48 * H, 72 * H];
        let a = h(None, &[(30 * H, State::Up)]);
        assert_eq!(worst_per_period(&[&a], &bounds, 36 * H), [None, Some(State::Up), None]);
    }

    #[test]
    fn days_in_hanoi() {
        let tz = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").expect("tz");
        let now: jiff::Timestamp = "2026-11-27T10:00:00Z".parse().expect("ts");
        let b = day_bounds(now.as_millisecond(), 2, &tz);
        let shown: Vec<String> =
            b.iter().map(|ms| jiff::Timestamp::from_millisecond(*ms).expect("ts").to_string()).collect();
        assert_eq!(shown, ["2026-11-25T17:00:00Z", "2026-11-26T17:00:00Z", "2026-11-27T17:00:00Z"]);
    }
}
