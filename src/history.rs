//! History splitting (pure): a target's exact state intervals, split by day (in the
//! instance's time zone) into time per state — the colour of the status page's bars. No
//! uptime is computed here: every figure comes from [`crate::report::Ledger`]. Times are
//! Unix milliseconds.

use std::collections::BTreeMap;

use crate::model::State;

/// Time a target spent in each state during one period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Period {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Milliseconds per state (states not present were not seen).
    pub time: BTreeMap<&'static str, i64>,
}

impl Period {
    /// The worst state seen in the period (down > unreachable > degraded > maintenance >
    /// unknown > up), or None for a period with no data at all.
    pub fn worst(&self) -> Option<State> {
        State::ALL
            .into_iter()
            .filter(|s| self.time.get(s.as_str()).is_some_and(|t| *t > 0))
            .max_by_key(|s| s.severity())
    }
}

/// Splits a state history into periods. `initial` is the state at `bounds[0]` (None = no
/// data), `changes` the (time, new state) pairs in time order, `bounds` the period limits in
/// ascending order; time after `now_ms` counts for nothing.
pub fn split(initial: Option<State>, changes: &[(i64, State)], bounds: &[i64], now_ms: i64) -> Vec<Period> {
    let mut periods: Vec<Period> =
        bounds.windows(2).map(|w| Period { start_ms: w[0], end_ms: w[1], time: BTreeMap::new() }).collect();
    let (Some(&first), Some(&last)) = (bounds.first(), bounds.last()) else { return periods };
    let end = last.min(now_ms);
    let mut state = initial;
    let mut from = first;
    let mut edges: Vec<(i64, State)> = changes.iter().copied().filter(|(t, _)| *t > first && *t < end).collect();
    edges.push((end, State::Unknown));
    for (at, next) in edges {
        if let Some(s) = state {
            add(&mut periods, from, at, s);
        }
        state = Some(next);
        from = at;
    }
    periods
}

fn add(periods: &mut [Period], from: i64, to: i64, state: State) {
    for p in periods.iter_mut() {
        let (a, b) = (from.max(p.start_ms), to.min(p.end_ms));
        if b > a {
            *p.time.entry(state.as_str()).or_default() += b - a;
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

    #[test]
    fn split_table() {
        let bounds = [0, 24 * H, 48 * H];
        // Up from the start, down 22:00–03:00 across midnight, up again.
        let changes = [(22 * H, State::Down), (27 * H, State::Up)];
        let p = split(Some(State::Up), &changes, &bounds, 100 * H);
        assert_eq!(p[0].time.get("down"), Some(&(2 * H)));
        assert_eq!(p[0].time.get("up"), Some(&(22 * H)));
        assert_eq!(p[1].time.get("down"), Some(&(3 * H)));
        assert_eq!(p[1].worst(), Some(State::Down));
    }

    #[test]
    fn no_data_before_the_first_state_and_after_now() {
        let bounds = [0, 24 * H, 48 * H];
        let p = split(None, &[(30 * H, State::Up)], &bounds, 36 * H);
        assert_eq!(p[0].worst(), None, "nothing known on the first day");
        assert_eq!(p[1].time.get("up"), Some(&(6 * H)), "only up to now");
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
