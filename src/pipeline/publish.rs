//! What the pipeline publishes after it judged: the open incidents (for the pages, the API
//! and delivery) and the open-incident and system gauges — kept cheap at national scale.
//!
//! At 50,000 targets thousands of incidents are open, and a start-up (or a cut core link)
//! opens them one after another: rebuilding the whole list on every change cloned them all
//! each time, and inserting each into the sorted list moved half of it (both quadratic:
//! with 40,000 targets down at once the pipeline fell minutes behind). What was saved is
//! now merged in one pass and the gauges counted then: at once while at most
//! [`AT_ONCE_UP_TO`] incidents are open, beyond that at most once per
//! [`super::RESULTS_EVERY`] (and at once after an acknowledgement). A system's gauge is
//! recomputed at most once per [`super::RESULTS_EVERY`], for the systems whose targets
//! changed.

use std::collections::BTreeMap;

use crate::model::State;
use crate::model::incident::{Incident, Severity};
use crate::status::system_state;

use super::Pipeline;

/// Open incidents up to which what is saved is published at once.
pub(super) const AT_ONCE_UP_TO: usize = 1_000;

/// Puts `saved` (in the order saved) in `open` (sorted by target, as the engine keeps
/// them), in one pass: an open incident replaces its target's or joins, a closed one
/// leaves (unless the target's incident is a newer one).
fn merge(open: &mut Vec<Incident>, saved: &[Incident]) {
    if saved.is_empty() {
        return;
    }
    let mut by_target: BTreeMap<&str, Vec<&Incident>> = BTreeMap::new();
    for incident in saved {
        by_target.entry(incident.target.as_str()).or_default().push(incident);
    }
    let settle = |mut current: Option<Incident>, saves: Vec<&Incident>| {
        for incident in saves {
            if incident.is_open() {
                current = Some(incident.clone());
            } else if current.as_ref().is_some_and(|c| c.id == incident.id) {
                current = None;
            }
        }
        current
    };
    let mut updates = by_target.into_iter().peekable();
    let mut merged = Vec::with_capacity(open.len() + saved.len());
    for current in std::mem::take(open) {
        while let Some((_, saves)) = updates.next_if(|(t, _)| *t < current.target.as_str()) {
            merged.extend(settle(None, saves));
        }
        match updates.next_if(|(t, _)| *t == current.target.as_str()) {
            Some((_, saves)) => merged.extend(settle(Some(current), saves)),
            None => merged.push(current),
        }
    }
    for (_, saves) in updates {
        merged.extend(settle(None, saves));
    }
    *open = merged;
}

impl Pipeline {
    /// Rebuilds the open incidents from the engine, and their gauges.
    pub(super) fn publish_incidents(&self) {
        let open: Vec<Incident> = self.engine.open_incidents().cloned().collect();
        self.count_incidents(&open);
        self.outlook.send_modify(|o| o.open_incidents = open.clone());
        self.board.write().unwrap_or_else(|p| p.into_inner()).open_incidents = open;
    }

    /// Updates the open incidents with the incidents saved since the last call; rebuilds
    /// them when the result would not be the engine's list (a change that was not saved).
    pub(super) fn publish_saved(&mut self) {
        if self.unpublished.is_empty() {
            return;
        }
        let saved = std::mem::take(&mut self.unpublished);
        let mut board = self.board.write().unwrap_or_else(|p| p.into_inner());
        merge(&mut board.open_incidents, &saved);
        if board.open_incidents.len() != self.engine.open_incidents().len() {
            drop(board);
            tracing::debug!("open incidents rebuilt from the engine");
            return self.publish_incidents();
        }
        self.count_incidents(&board.open_incidents);
        drop(board);
        self.outlook.send_modify(|o| merge(&mut o.open_incidents, &saved));
    }

    /// The `vigil_incidents_open` gauges of `open` (counted in one pass).
    fn count_incidents(&self, open: &[Incident]) {
        let mut counts: std::collections::HashMap<(&str, &str), i64> = std::collections::HashMap::new();
        // A helper's or standby's judgement is not an incident: its owner holds that.
        for i in open.iter().filter(|i| !self.config.helpers.contains_key(&i.target)) {
            *counts.entry((i.system.as_str(), i.severity.as_str())).or_default() += 1;
        }
        for system in &self.config.systems {
            for severity in [Severity::Critical, Severity::Warning] {
                let n = counts.get(&(system.id.as_str(), severity.as_str())).copied().unwrap_or(0);
                self.metrics.incidents_open.with_label_values(&[&system.id, severity.as_str()]).set(n);
            }
        }
    }

    /// Sets `vigil_system_up` of the systems whose targets changed state since the last call.
    pub(super) fn publish_systems(&mut self) {
        if self.changed_systems.is_empty() {
            return;
        }
        let changed = std::mem::take(&mut self.changed_systems);
        let board = self.board.read().unwrap_or_else(|p| p.into_inner());
        for system in board.config.systems.iter().filter(|s| changed.contains(&s.id)) {
            let up = !matches!(system_state(system, &board.targets), State::Down | State::Unreachable);
            self.metrics.set_system(&system.id, up, system.sla);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(id: i64, target: &str, open: bool) -> Incident {
        let mut i = crate::alert::message::test_notification("test", 0).incident;
        (i.id, i.target, i.resolved_ms) = (id, target.into(), (!open).then_some(1));
        i
    }

    #[test]
    fn saved_incidents_replace_join_and_leave_in_target_order() {
        let mut open = vec![incident(1, "a", true), incident(2, "c", true)];
        merge(&mut open, &[incident(3, "b", true), incident(2, "c", false), incident(4, "d", true)]);
        let shown: Vec<(i64, &str)> = open.iter().map(|i| (i.id, i.target.as_str())).collect();
        assert_eq!(shown, [(1, "a"), (3, "b"), (4, "d")]);
        // The resolution of an older incident does not take a newer one of the target away.
        merge(&mut open, &[incident(0, "a", false)]);
        assert_eq!(open.len(), 3);
        let mut reminded = incident(3, "b", true);
        reminded.reminders = 2;
        merge(&mut open, &[reminded]);
        assert_eq!((open.len(), open[1].reminders), (3, 2), "replaced in place");
    }

    /// One pass over a batch of saves gives what saving them one at a time gave (the
    /// former binary-search insert), also with several saves of one target in a batch.
    #[test]
    fn a_batch_merges_as_its_saves_one_at_a_time() {
        fn one_at_a_time(open: &mut Vec<Incident>, saved: &[Incident]) {
            for incident in saved {
                let at = open.binary_search_by(|i| i.target.as_str().cmp(&incident.target));
                match (at, incident.is_open()) {
                    (Ok(i), true) => open[i] = incident.clone(),
                    (Ok(i), false) if open[i].id == incident.id => {
                        open.remove(i);
                    }
                    (Err(i), true) => open.insert(i, incident.clone()),
                    _ => {}
                }
            }
        }
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let (mut batched, mut single) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let saved: Vec<Incident> =
                (0..next(12)).map(|_| incident(next(6) as i64, &format!("t{}", next(8)), next(3) > 0)).collect();
            merge(&mut batched, &saved);
            one_at_a_time(&mut single, &saved);
            let ids = |v: &[Incident]| v.iter().map(|i| (i.id, i.target.clone())).collect::<Vec<_>>();
            assert_eq!(ids(&batched), ids(&single), "after {saved:?}");
        }
    }
}
