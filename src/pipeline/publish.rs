//! What the pipeline publishes after it judged: the open incidents (for the pages, the API
//! and delivery) and the open-incident and system gauges — kept cheap at national scale.
//!
//! At 50,000 targets thousands of incidents are open, and a start-up opens them one after
//! another: rebuilding the whole list on every change cloned them all each time
//! (quadratic), and recomputing a system's state on every transition walked all its
//! targets. The list is now changed in place by what was saved, and a system's gauge is
//! recomputed at most once per [`super::RESULTS_EVERY`] for the systems whose targets
//! changed.

use crate::model::State;
use crate::model::incident::{Incident, Severity};
use crate::status::system_state;

use super::Pipeline;

/// Puts `saved` in `open` (sorted by target, as the engine keeps them): an open incident
/// replaces its former self or joins, a closed one leaves.
fn merge(open: &mut Vec<Incident>, saved: &[Incident]) {
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

impl Pipeline {
    /// Rebuilds the open incidents from the engine, and their gauges.
    pub(super) fn publish_incidents(&self) {
        let open: Vec<Incident> = self.engine.open_incidents().cloned().collect();
        self.count_incidents(&open);
        self.outlook.send_modify(|o| o.open_incidents = open.clone());
        self.board.write().unwrap_or_else(|p| p.into_inner()).open_incidents = open;
    }

    /// Updates the open incidents with the incidents just saved; rebuilds them when the
    /// result would not be the engine's list (a change that was not saved).
    pub(super) fn publish_saved(&self, saved: &[Incident]) {
        let mut board = self.board.write().unwrap_or_else(|p| p.into_inner());
        merge(&mut board.open_incidents, saved);
        if board.open_incidents.len() != self.engine.open_incidents().len() {
            drop(board);
            tracing::debug!("open incidents rebuilt from the engine");
            return self.publish_incidents();
        }
        self.count_incidents(&board.open_incidents);
        drop(board);
        self.outlook.send_modify(|o| merge(&mut o.open_incidents, saved));
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
}
