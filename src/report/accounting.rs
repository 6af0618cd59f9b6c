//! Uptime arithmetic (pure, times in Unix milliseconds).
//!
//! Over a period, every moment of a target is exactly one of: **up** (up or degraded),
//! **down** (down, or unreachable — which is down, attributed to the root cause's incident),
//! **maintenance** (inside a window), **no data** (Vigil was not running, or could not judge:
//! unknown), or **excluded** (inside an incident an operator excluded from the SLA, with a
//! recorded reason). Uptime = up / (period − maintenance − no data − excluded), i.e.
//! up / (up + down): the four quantities are shown side by side so anyone can recompute it.
//!
//! Several targets (a check's, or a system's critical checks') combine moment by moment:
//! down if any is down; otherwise excluded if any is excluded; otherwise maintenance if any
//! is in maintenance; otherwise no data if any has no data; otherwise up.
//!
//! An exclusion belongs to its incident: it turns only that incident's target's downtime
//! (and the unreachable time of the dependants attributed to it) into excluded time, never
//! another target's. This is the only uptime arithmetic in Vigil: pages, badges, the API
//! and every report format call [`account`] through [`super::ledger::Ledger`].

use crate::model::State;

/// Time per category over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Accounting {
    pub up_ms: i64,
    pub down_ms: i64,
    pub maintenance_ms: i64,
    pub no_data_ms: i64,
    pub excluded_ms: i64,
}

/// Accountings of consecutive periods add up to the accounting of the whole span.
impl std::iter::Sum for Accounting {
    fn sum<I: Iterator<Item = Accounting>>(periods: I) -> Accounting {
        periods.fold(Accounting::default(), |sum, p| Accounting {
            up_ms: sum.up_ms + p.up_ms,
            down_ms: sum.down_ms + p.down_ms,
            maintenance_ms: sum.maintenance_ms + p.maintenance_ms,
            no_data_ms: sum.no_data_ms + p.no_data_ms,
            excluded_ms: sum.excluded_ms + p.excluded_ms,
        })
    }
}

impl Accounting {
    /// up / (up + down); None when nothing could be judged.
    pub fn uptime(&self) -> Option<f64> {
        let judged = self.up_ms + self.down_ms;
        (judged > 0).then(|| self.up_ms as f64 / judged as f64)
    }
}

/// What a moment counts as, from the mildest to the worst (the order targets combine in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Category {
    Up = 0,
    NoData = 1,
    Maintenance = 2,
    Excluded = 3,
    Down = 4,
}

impl Category {
    const ALL: [Category; 5] =
        [Category::Up, Category::NoData, Category::Maintenance, Category::Excluded, Category::Down];
}

fn category(state: Option<State>) -> Category {
    match state {
        Some(State::Up | State::Degraded) => Category::Up,
        Some(State::Down | State::Unreachable) => Category::Down,
        Some(State::Maintenance) => Category::Maintenance,
        Some(State::Unknown) | None => Category::NoData,
    }
}

/// One target's history: its state at the period's start and its changes after.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub initial: Option<State>,
    pub changes: Vec<(i64, State)>,
    /// Spans of this target's excluded downtime.
    pub excluded: Vec<Excluded>,
}

/// A span of excluded downtime of one target: its own excluded incident (down or
/// unreachable), or a root cause's excluded incident (its unreachable time only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Excluded {
    pub from_ms: i64,
    pub to_ms: i64,
    /// Only unreachable time is excluded (the span is another target's incident).
    pub unreachable_only: bool,
}

impl Excluded {
    fn covers(&self, at: i64, state: Option<State>) -> bool {
        (self.from_ms..self.to_ms).contains(&at)
            && match state {
                Some(State::Unreachable) => true,
                Some(State::Down) => !self.unreachable_only,
                _ => false,
            }
    }
}

/// A target's category from `from` to `end` as (start, category) steps, the first at
/// `from`; linear in the target's changes.
fn steps(h: &History, from: i64, end: i64) -> Vec<(i64, Category)> {
    let mut points: Vec<i64> = vec![from];
    points.extend(h.changes.iter().map(|(t, _)| *t).filter(|t| *t > from && *t < end));
    for e in &h.excluded {
        points.extend([e.from_ms, e.to_ms].into_iter().filter(|t| *t > from && *t < end));
    }
    points.sort_unstable();
    points.dedup();
    let mut next = 0; // changes[..next] are at or before the current point
    let mut state = h.initial;
    let mut out: Vec<(i64, Category)> = Vec::with_capacity(points.len());
    for at in points {
        while let Some((_, s)) = h.changes.get(next).filter(|(t, _)| *t <= at) {
            state = Some(*s);
            next += 1;
        }
        let mut c = category(state);
        if c == Category::Down && h.excluded.iter().any(|e| e.covers(at, state)) {
            c = Category::Excluded;
        }
        if out.last().is_none_or(|(_, last)| *last != c) {
            out.push((at, c));
        }
    }
    out
}

/// The targets combined moment by moment over [from, end) as (start, category) steps,
/// the first at `from`: one sweep over every target's steps.
fn combined(targets: &[&History], from: i64, end: i64) -> Vec<(i64, Category)> {
    if targets.is_empty() {
        return vec![(from, Category::NoData)];
    }
    let mut events: Vec<(i64, usize, Category)> = Vec::new();
    for (i, h) in targets.iter().enumerate() {
        events.extend(steps(h, from, end).into_iter().map(|(t, c)| (t, i, c)));
    }
    events.sort_by_key(|(t, _, _)| *t);
    let mut current: Vec<Option<Category>> = vec![None; targets.len()];
    let mut counts = [0usize; 5];
    let mut out: Vec<(i64, Category)> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let at = events[i].0;
        while let Some((_, target, c)) = events.get(i).filter(|(t, _, _)| *t == at) {
            if let Some(old) = current[*target].replace(*c) {
                counts[old as usize] -= 1;
            }
            counts[*c as usize] += 1;
            i += 1;
        }
        let worst = Category::ALL.into_iter().rev().find(|c| counts[*c as usize] > 0).unwrap_or(Category::NoData);
        if out.last().is_none_or(|(_, last)| *last != worst) {
            out.push((at, worst));
        }
    }
    out
}

/// Accounts several targets combined over [from, to); time after `now` is no data.
pub fn account(targets: &[&History], from: i64, to: i64, now: i64) -> Accounting {
    account_split(targets, &[from, to], now).pop().unwrap_or_default()
}

/// Accounts several targets combined over each period between consecutive `bounds`
/// (ascending), in one pass; time after `now` is no data.
pub fn account_split(targets: &[&History], bounds: &[i64], now: i64) -> Vec<Accounting> {
    let mut out = vec![Accounting::default(); bounds.len().saturating_sub(1)];
    let (Some(&from), Some(&to)) = (bounds.first(), bounds.last()) else { return out };
    if to <= from {
        return out;
    }
    let end = to.min(now).max(from);
    let timeline = combined(targets, from, end);
    for (k, w) in bounds.windows(2).enumerate() {
        let (a, b) = (w[0], w[1]);
        let acc = &mut out[k];
        for (j, (start, c)) in timeline.iter().enumerate() {
            let stop = timeline.get(j + 1).map_or(end, |(t, _)| *t);
            let (x, y) = ((*start).max(a), stop.min(b));
            if y > x {
                *acc.slot(*c) += y - x;
            }
        }
        acc.no_data_ms += b - a.max(end.min(b));
    }
    out
}

impl Accounting {
    fn slot(&mut self, c: Category) -> &mut i64 {
        match c {
            Category::Up => &mut self.up_ms,
            Category::Down => &mut self.down_ms,
            Category::Maintenance => &mut self.maintenance_ms,
            Category::Excluded => &mut self.excluded_ms,
            Category::NoData => &mut self.no_data_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const DAY: i64 = 24 * H;
    /// A 30-day month starting at t = 0.
    const MONTH: i64 = 30 * DAY;

    fn h(initial: State, changes: &[(i64, State)]) -> History {
        History { initial: Some(initial), changes: changes.to_vec(), excluded: Vec::new() }
    }

    fn own(spans: &[(i64, i64)]) -> Vec<Excluded> {
        spans.iter().map(|(a, b)| Excluded { from_ms: *a, to_ms: *b, unreachable_only: false }).collect()
    }

    #[test]
    fn arithmetic_table() {
        use State::*;
        /// name, targets, excluded spans, expected accounting
        type Case<'a> = (&'a str, Vec<History>, Vec<(i64, i64)>, Accounting);
        let cases: Vec<Case> = vec![
            (
                "a 3 h outage in the month",
                vec![h(Up, &[(10 * DAY, Down), (10 * DAY + 3 * H, Up)])],
                vec![],
                Accounting { up_ms: MONTH - 3 * H, down_ms: 3 * H, ..Accounting::default() },
            ),
            (
                "degraded counts as up",
                vec![h(Up, &[(DAY, Degraded), (2 * DAY, Up)])],
                vec![],
                Accounting { up_ms: MONTH, ..Accounting::default() },
            ),
            (
                "maintenance overlapping an outage: the window is not downtime",
                vec![h(Up, &[(DAY, Down), (DAY + H, Maintenance), (DAY + 3 * H, Down), (DAY + 4 * H, Up)])],
                vec![],
                Accounting { up_ms: MONTH - 4 * H, down_ms: 2 * H, maintenance_ms: 2 * H, ..Accounting::default() },
            ),
            (
                "a no-data gap (Vigil stopped, then judged afresh)",
                vec![h(Up, &[(5 * DAY, Unknown), (5 * DAY + 6 * H, Up)])],
                vec![],
                Accounting { up_ms: MONTH - 6 * H, no_data_ms: 6 * H, ..Accounting::default() },
            ),
            (
                "unreachable under a failed dependency counts as down",
                vec![h(Up, &[(3 * DAY, Unreachable), (3 * DAY + 2 * H, Up)])],
                vec![],
                Accounting { up_ms: MONTH - 2 * H, down_ms: 2 * H, ..Accounting::default() },
            ),
            (
                "an outage crossing midnight is counted whole",
                vec![h(Up, &[(DAY - H, Down), (DAY + 2 * H, Up)])],
                vec![],
                Accounting { up_ms: MONTH - 3 * H, down_ms: 3 * H, ..Accounting::default() },
            ),
            (
                "an outage crossing the month boundary counts only its part inside",
                vec![h(Down, &[(2 * H, Up), (MONTH - H, Down)])],
                vec![],
                Accounting { up_ms: MONTH - 3 * H, down_ms: 3 * H, ..Accounting::default() },
            ),
            (
                "an excluded incident is neither up nor down",
                vec![h(Up, &[(10 * DAY, Down), (10 * DAY + 5 * H, Up)])],
                vec![(10 * DAY, 10 * DAY + 5 * H)],
                Accounting { up_ms: MONTH - 5 * H, excluded_ms: 5 * H, ..Accounting::default() },
            ),
            (
                "a system: down while any critical check is down",
                vec![h(Up, &[(DAY, Down), (DAY + 2 * H, Up)]), h(Up, &[(DAY + H, Down), (DAY + 4 * H, Up)])],
                vec![],
                Accounting { up_ms: MONTH - 4 * H, down_ms: 4 * H, ..Accounting::default() },
            ),
            (
                "no history at all is no data",
                vec![History::default()],
                vec![],
                Accounting { no_data_ms: MONTH, ..Accounting::default() },
            ),
        ];
        for (name, mut targets, excluded, want) in cases {
            for t in &mut targets {
                t.excluded = own(&excluded);
            }
            let refs: Vec<&History> = targets.iter().collect();
            let got = account(&refs, 0, MONTH, MONTH);
            assert_eq!(got, want, "{name}");
            assert_eq!(
                got.up_ms + got.down_ms + got.maintenance_ms + got.no_data_ms + got.excluded_ms,
                MONTH,
                "{name}: adds up"
            );
        }
    }

    #[test]
    fn split_periods_add_up_to_the_whole() {
        use State::*;
        let a = h(Up, &[(DAY - H, Down), (DAY + 2 * H, Maintenance), (DAY + 3 * H, Up), (5 * DAY, Unreachable)]);
        let b = h(Up, &[(DAY + H, Down), (DAY + 4 * H, Up), (5 * DAY + H, Unknown)]);
        let bounds: Vec<i64> = (0..=7).map(|d| d * DAY).collect();
        let now = 6 * DAY + 5 * H;
        let days = account_split(&[&a, &b], &bounds, now);
        for (d, got) in days.iter().enumerate() {
            assert_eq!(*got, account(&[&a, &b], bounds[d], bounds[d + 1], now), "day {d}");
        }
        let sum: Accounting = days.iter().copied().sum();
        assert_eq!(sum, account(&[&a, &b], 0, 7 * DAY, now), "the pages' uptime is the days' sum");
        assert_eq!(days[0].down_ms, H, "the outage before midnight");
        assert_eq!(days[1].down_ms, 4 * H, "and after it, with the other target's overlap");
    }

    #[test]
    fn an_exclusion_belongs_to_its_target() {
        use State::*;
        // Two targets down together; only the first's incident is excluded.
        let mut first = h(Up, &[(DAY, Down), (DAY + H, Up)]);
        first.excluded = own(&[(DAY, DAY + H)]);
        let second = h(Up, &[(DAY, Down), (DAY + H, Up)]);
        assert_eq!(account(&[&first], 0, MONTH, MONTH).excluded_ms, H);
        assert_eq!(account(&[&second], 0, MONTH, MONTH).down_ms, H, "the other target keeps its downtime");
        assert_eq!(account(&[&first, &second], 0, MONTH, MONTH).down_ms, H, "a system with both is down");
        // A dependant's span excludes its unreachable time, not its own outage.
        let mut dependant = h(Up, &[(DAY, Unreachable), (DAY + H, Down), (DAY + 2 * H, Up)]);
        dependant.excluded = vec![Excluded { from_ms: DAY, to_ms: DAY + 2 * H, unreachable_only: true }];
        let acc = account(&[&dependant], 0, MONTH, MONTH);
        assert_eq!((acc.excluded_ms, acc.down_ms), (H, H));
    }

    #[test]
    fn the_future_is_no_data_and_uptime_is_recomputable() {
        let acc = account(&[&h(State::Up, &[(DAY, State::Down), (DAY + H, State::Up)])], 0, MONTH, 2 * DAY);
        assert_eq!(acc.no_data_ms, MONTH - 2 * DAY);
        assert_eq!(acc.uptime(), Some((2 * DAY - H) as f64 / (2 * DAY) as f64));
    }
}
