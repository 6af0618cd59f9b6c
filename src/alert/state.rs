//! The per-target state machine: pure, no I/O, no clock reads.
//!
//! `unknown` → `up` on the first success; → `down`/`degraded` after `failure_threshold`
//! consecutive failing results. A state gets worse only after `failure_threshold`
//! consecutive worse results and better only after `success_threshold` better ones, so a
//! single blip neither pages nor clears. A probe that could not tell (health `unknown`)
//! changes nothing and breaks a streak.
//!
//! Dependencies: a failure while one of the target's dependencies is failing is not the
//! target's own — it leads to `unreachable` (no alert of its own) instead of `down`. If the
//! dependency recovers while the target still fails, the target goes `down` at once: it
//! has already failed long enough.
//!
//! Maintenance: inside a window the state is `maintenance`, whatever the results; after it
//! the target is judged afresh, as after a start. Monitor blind: while Vigil's own uplink
//! fails, a target's state is `unknown` (no data), and it is judged afresh afterwards.
//!
//! Flapping ([`FlapTracker`]): enough changes within a window make a target flapping until
//! it has been stable for the window.

use crate::model::{Health, State, Streak, TargetState};

/// Thresholds of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

/// How far from healthy a state is for the streak rules: up (and the states judged afresh)
/// < degraded < down or unreachable. Not the display order ([`State::severity`]).
fn judgement_rank(s: State) -> u8 {
    match s {
        State::Up | State::Unknown | State::Maintenance => 0,
        State::Degraded => 1,
        State::Down | State::Unreachable => 2,
    }
}

/// A change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub at_ms: i64,
}

fn state_of(health: Health) -> Option<State> {
    match health {
        Health::Up => Some(State::Up),
        Health::Degraded => Some(State::Degraded),
        Health::Down => Some(State::Down),
        Health::Unknown => None,
    }
}

/// What, besides its own result, decides a target's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// A dependency is down, unreachable, or failing on its way there.
    pub dependency_failing: bool,
    /// A maintenance window covers the target now.
    pub maintenance: bool,
    /// Vigil's own uplink fails, so it cannot judge this target.
    pub blind: bool,
}

/// Feeds one probe result into the state.
pub fn step(
    prev: &TargetState,
    observed: Health,
    rule: Rule,
    ctx: Context,
    now_ms: i64,
) -> (TargetState, Option<Transition>) {
    let enter = |to: State| {
        (
            TargetState { state: to, since_ms: now_ms, streak: None },
            Some(Transition { from: prev.state, to, at_ms: now_ms }),
        )
    };
    let keep = || (TargetState { streak: None, ..*prev }, None);
    if ctx.maintenance {
        return if prev.state == State::Maintenance { keep() } else { enter(State::Maintenance) };
    }
    if ctx.blind {
        return if prev.state == State::Unknown { keep() } else { enter(State::Unknown) };
    }
    if prev.state == State::Maintenance {
        // The window ended: judge afresh, as after a start.
        let (next, t) = judge(&TargetState::new(now_ms), observed, rule, ctx.dependency_failing, now_ms);
        let to = t.map_or(next.state, |t| t.to);
        return (next, Some(Transition { from: State::Maintenance, to, at_ms: now_ms }));
    }
    judge(prev, observed, rule, ctx.dependency_failing, now_ms)
}

/// Thresholds and dependencies, outside maintenance and blindness.
fn judge(
    prev: &TargetState,
    observed: Health,
    rule: Rule,
    dependency_failing: bool,
    now_ms: i64,
) -> (TargetState, Option<Transition>) {
    let Some(mut observed) = state_of(observed) else {
        return (TargetState { streak: None, ..*prev }, None);
    };
    if dependency_failing && observed == State::Down {
        observed = State::Unreachable;
    }
    let unchanged = observed == prev.state || (prev.state == State::Down && observed == State::Unreachable);
    if unchanged {
        return (TargetState { streak: None, ..*prev }, None);
    }
    if prev.state == State::Unreachable && observed == State::Down {
        // The dependency recovered and this target still fails: its own outage now.
        let next = TargetState { state: State::Down, since_ms: now_ms, streak: None };
        return (next, Some(Transition { from: prev.state, to: State::Down, at_ms: now_ms }));
    }
    let worse = if prev.state == State::Unknown {
        observed != State::Up
    } else {
        judgement_rank(observed) > judgement_rank(prev.state)
    };
    let (count, since_ms) = match prev.streak {
        Some(s) if s.worse == worse => (s.count + 1, s.since_ms),
        _ => (1, now_ms),
    };
    let streak = Streak { worse, count, target: observed, since_ms };
    let threshold = match (prev.state, worse) {
        (State::Unknown, false) => 1,
        (_, true) => rule.failure_threshold,
        (_, false) => rule.success_threshold,
    };
    if count >= threshold {
        let next = TargetState { state: observed, since_ms: now_ms, streak: None };
        (next, Some(Transition { from: prev.state, to: observed, at_ms: now_ms }))
    } else {
        (TargetState { streak: Some(streak), ..*prev }, None)
    }
}

/// Recent state changes of one target, to tell flapping (pure; times in Unix ms).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlapTracker {
    changes: std::collections::VecDeque<i64>,
    flapping: bool,
    /// Since when the team has heard nothing new while it flaps: the start of the spell,
    /// then the last announcement forced by [`FlapTracker::overdue`].
    quiet_since_ms: i64,
}

/// What a change or a quiet spell did to flapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flap {
    Started,
    Ended,
    Unchanged,
}

impl FlapTracker {
    /// Whether the target is flapping now.
    pub fn is_flapping(&self) -> bool {
        self.flapping
    }

    /// Records a state change at `now`.
    pub fn change(&mut self, now_ms: i64, changes: u32, window_ms: i64) -> Flap {
        self.changes.push_back(now_ms);
        while self.changes.front().is_some_and(|c| now_ms - c > window_ms) {
            self.changes.pop_front();
        }
        if !self.flapping && self.changes.len() as u32 >= changes {
            self.flapping = true;
            self.quiet_since_ms = now_ms;
            return Flap::Started;
        }
        Flap::Unchanged
    }

    /// Whether a spell of flapping has kept the team uninformed for `windows` windows (the
    /// target never stops flapping); if so, the clock restarts at `now_ms` — at most one
    /// forced announcement per `windows` windows.
    pub fn overdue(&mut self, now_ms: i64, window_ms: i64, windows: i64) -> bool {
        if self.flapping && now_ms - self.quiet_since_ms >= window_ms.saturating_mul(windows) {
            self.quiet_since_ms = now_ms;
            return true;
        }
        false
    }

    /// The tracker after the changes at `times` (oldest first), as of `now_ms`: what it
    /// would be had it seen them live.
    pub fn replay(times: &[i64], changes: u32, window_ms: i64, now_ms: i64) -> FlapTracker {
        let mut tracker = FlapTracker::default();
        for &t in times {
            tracker.settle(t, window_ms);
            tracker.change(t, changes, window_ms);
        }
        tracker.settle(now_ms, window_ms);
        tracker
    }

    /// Ends flapping once no change came for the window.
    pub fn settle(&mut self, now_ms: i64, window_ms: i64) -> Flap {
        if self.flapping && self.changes.back().is_none_or(|last| now_ms - last > window_ms) {
            self.flapping = false;
            self.changes.clear();
            return Flap::Ended;
        }
        Flap::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::{Degraded as D, Down as X, Unknown as Q, Up as U};

    const RULE: Rule = Rule { failure_threshold: 3, success_threshold: 2 };

    /// Feeds results at t = 1, 2, 3… and returns the states after each.
    fn run(results: &[Health]) -> Vec<State> {
        let mut st = TargetState::new(0);
        results
            .iter()
            .enumerate()
            .map(|(i, h)| {
                st = step(&st, *h, RULE, Context::default(), i as i64 + 1).0;
                st.state
            })
            .collect()
    }

    #[test]
    fn scenarios() {
        use State::{Degraded as Dg, Down as Dn, Unknown as Un, Up as Ok};
        let cases: &[(&str, &[Health], &[State])] = &[
            ("first success is up", &[U], &[Ok]),
            ("down after three failures from unknown", &[X, X, X], &[Un, Un, Dn]),
            ("down after three failures from up", &[U, X, X, X], &[Ok, Ok, Ok, Dn]),
            ("blip does not page", &[U, X, X, U, X], &[Ok, Ok, Ok, Ok, Ok]),
            ("recovery needs two successes", &[U, X, X, X, U, U], &[Ok, Ok, Ok, Dn, Dn, Ok]),
            ("single success during outage does not clear", &[U, X, X, X, U, X, U], &[Ok, Ok, Ok, Dn, Dn, Dn, Dn]),
            ("degraded after three warnings", &[U, D, D, D], &[Ok, Ok, Ok, Dg]),
            ("mixed bad results lead to the latest", &[U, X, D, X], &[Ok, Ok, Ok, Dn]),
            ("down to degraded is an improvement", &[U, X, X, X, D, D], &[Ok, Ok, Ok, Dn, Dn, Dg]),
            ("unknown results change nothing", &[U, X, Q, X, X], &[Ok, Ok, Ok, Ok, Ok]),
            ("unknown breaks a streak", &[U, X, X, Q, X, X, X], &[Ok, Ok, Ok, Ok, Ok, Ok, Dn]),
        ];
        for (name, input, expected) in cases {
            assert_eq!(run(input), expected.to_vec(), "scenario: {name}");
        }
    }

    /// Feeds (result, dependency failing) pairs.
    fn run_with_dependency(results: &[(Health, bool)]) -> Vec<State> {
        let mut st = TargetState::new(0);
        results
            .iter()
            .enumerate()
            .map(|(i, (h, dep))| {
                st = step(&st, *h, RULE, Context { dependency_failing: *dep, ..Context::default() }, i as i64 + 1).0;
                st.state
            })
            .collect()
    }

    #[test]
    fn dependency_scenarios() {
        use State::{Down as Dn, Unreachable as Ur, Up as Ok};
        /// name, (result, dependency failing) per step, expected states
        type Case<'a> = (&'a str, &'a [(Health, bool)], &'a [State]);
        let cases: &[Case] = &[
            (
                "failing behind a failing dependency is unreachable",
                &[(U, false), (X, true), (X, true), (X, true)],
                &[Ok, Ok, Ok, Ur],
            ),
            (
                "dependency starts failing mid-streak",
                &[(U, false), (X, false), (X, true), (X, true)],
                &[Ok, Ok, Ok, Ur],
            ),
            (
                "dependency recovers, target still down: down at once",
                &[(U, false), (X, true), (X, true), (X, true), (X, false)],
                &[Ok, Ok, Ok, Ur, Dn],
            ),
            (
                "dependency recovers and so does the target",
                &[(U, false), (X, true), (X, true), (X, true), (U, false), (U, false)],
                &[Ok, Ok, Ok, Ur, Ur, Ok],
            ),
            (
                "down first, then the dependency fails: stays down",
                &[(U, false), (X, false), (X, false), (X, false), (X, true)],
                &[Ok, Ok, Ok, Dn, Dn],
            ),
            (
                "degraded is not masked by a dependency",
                &[(U, false), (D, true), (D, true), (D, true)],
                &[Ok, Ok, Ok, State::Degraded],
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(run_with_dependency(input), expected.to_vec(), "scenario: {name}");
        }
    }

    /// Feeds (result, context) pairs at t = 1, 2, 3…
    fn run_with(results: &[(Health, Context)]) -> Vec<(State, Option<(State, State)>)> {
        let mut st = TargetState::new(0);
        results
            .iter()
            .enumerate()
            .map(|(i, (h, ctx))| {
                let (next, t) = step(&st, *h, RULE, *ctx, i as i64 + 1);
                st = next;
                (st.state, t.map(|t| (t.from, t.to)))
            })
            .collect()
    }

    #[test]
    fn maintenance_and_blind_scenarios() {
        use State::{Down as Dn, Maintenance as Mt, Unknown as Un, Up as Ok};
        let plain = Context::default();
        let mw = Context { maintenance: true, ..plain };
        let blind = Context { blind: true, ..plain };
        /// name, steps, expected (state, transition) per step
        type Case<'a> = (&'a str, &'a [(Health, Context)], &'a [(State, Option<(State, State)>)]);
        let cases: &[Case] = &[
            (
                "window starts mid-incident and ends still failing: down again at once",
                &[(U, plain), (X, plain), (X, plain), (X, plain), (X, mw), (X, mw), (X, plain), (X, plain), (X, plain)],
                &[
                    (Ok, Some((Un, Ok))),
                    (Ok, None),
                    (Ok, None),
                    (Dn, Some((Ok, Dn))),
                    (Mt, Some((Dn, Mt))),
                    (Mt, None),
                    (Un, Some((Mt, Un))),
                    (Un, None),
                    (Dn, Some((Un, Dn))),
                ],
            ),
            (
                "window ends on a success: up at once",
                &[(U, plain), (X, mw), (U, plain)],
                &[(Ok, Some((Un, Ok))), (Mt, Some((Ok, Mt))), (Ok, Some((Mt, Ok)))],
            ),
            (
                "blind: no data, then judged afresh",
                &[(U, plain), (X, blind), (X, blind), (U, plain)],
                &[(Ok, Some((Un, Ok))), (Un, Some((Ok, Un))), (Un, None), (Ok, Some((Un, Ok)))],
            ),
            (
                "maintenance wins over blindness",
                &[(U, plain), (X, Context { blind: true, maintenance: true, ..plain })],
                &[(Ok, Some((Un, Ok))), (Mt, Some((Ok, Mt)))],
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(run_with(input), expected.to_vec(), "scenario: {name}");
        }
    }

    #[test]
    fn flapping_starts_after_enough_changes_and_ends_when_stable() {
        let mut f = FlapTracker::default();
        let window = 60_000;
        let steps: &[(i64, Flap)] = &[
            (0, Flap::Unchanged),
            (10_000, Flap::Unchanged),
            (20_000, Flap::Unchanged),
            (30_000, Flap::Started),
            (40_000, Flap::Unchanged),
        ];
        for (at, want) in steps {
            assert_eq!(f.change(*at, 4, window), *want, "change at {at}");
        }
        assert!(f.is_flapping());
        assert_eq!(f.settle(90_000, window), Flap::Unchanged, "40 s after the last change: not yet stable");
        assert_eq!(f.settle(100_001, window), Flap::Ended);
        assert!(!f.is_flapping());
        // Changes spread wider than the window never start flapping.
        let mut slow = FlapTracker::default();
        assert!((0..6).all(|i| slow.change(i * 61_000, 4, window) == Flap::Unchanged));
    }

    #[test]
    fn replayed_changes_resume_flapping_as_it_was() {
        let window = 60_000;
        let times = [0, 10_000, 20_000, 30_000, 40_000];
        let mut live = FlapTracker::default();
        times.iter().for_each(|t| _ = live.change(*t, 4, window));
        assert_eq!(FlapTracker::replay(&times, 4, window, 50_000), live, "still flapping, same history");
        let mut resumed = FlapTracker::replay(&times, 4, window, 50_000);
        assert_eq!(resumed.change(55_000, 4, window), Flap::Unchanged, "no second start");
        assert!(!FlapTracker::replay(&times, 4, window, 100_001).is_flapping(), "stable for a window: over");
        // An old flapping spell that ended does not count towards a new one.
        let old_then_new = [0, 1_000, 2_000, 3_000, 200_000];
        assert!(!FlapTracker::replay(&old_then_new, 4, window, 200_500).is_flapping());
    }

    #[test]
    fn a_target_that_never_stops_flapping_is_overdue_once_per_windows() {
        let window = 60_000;
        let mut f = FlapTracker::default();
        (0..4).for_each(|i| _ = f.change(i * 10_000, 4, window)); // starts at 30 s
        assert!(!f.overdue(30_000 + 3 * window - 1, window, 3));
        assert!(f.overdue(30_000 + 3 * window, window, 3), "three windows after it started");
        assert!(!f.overdue(30_000 + 3 * window + 1, window, 3), "then the count starts again");
        assert!(f.overdue(30_000 + 6 * window, window, 3));
        assert!(!FlapTracker::default().overdue(i64::MAX / 2, window, 3), "not flapping: never overdue");
    }

    #[test]
    fn streak_remembers_when_it_began() {
        let st = step(&TargetState::new(0), U, RULE, Context::default(), 1).0;
        let st = step(&st, X, RULE, Context::default(), 5).0;
        let st = step(&st, X, RULE, Context::default(), 6).0;
        assert_eq!(st.streak.map(|s| s.since_ms), Some(5));
    }

    #[test]
    fn transition_carries_time_and_since() {
        let st = TargetState::new(0);
        let (st, t) = step(&st, U, RULE, Context::default(), 10);
        assert_eq!(t, Some(Transition { from: State::Unknown, to: State::Up, at_ms: 10 }));
        assert_eq!(st.since_ms, 10);
        let (st, t) = step(&st, U, RULE, Context::default(), 20);
        assert_eq!((t, st.since_ms), (None, 10));
    }

    #[test]
    fn threshold_of_one_is_immediate() {
        let rule = Rule { failure_threshold: 1, success_threshold: 1 };
        let st = step(&TargetState::new(0), U, rule, Context::default(), 1).0;
        let (st, t) = step(&st, X, rule, Context::default(), 2);
        assert_eq!((st.state, t.map(|t| t.to)), (State::Down, Some(State::Down)));
    }
}
