//! Re-attribution: a root cause that fails just after some of its dependents were paged
//! takes their incidents under its own, once, with one "update" of its incident.

use std::collections::HashSet;

use super::{Effect, Engine, REATTRIBUTE_WAIT_MS, REATTRIBUTE_WITHIN_MS, notification};
use crate::model::incident::{Decision, EventKind};

impl Engine {
    /// `dependent` failed because of `root`, which failed just after the dependent's own
    /// incident was announced (within [`REATTRIBUTE_WITHIN_MS`]): the dependent's incident
    /// is re-attributed to the root cause, once, and the people told about either hear it
    /// in one "update" of the root's incident (see `tick`).
    pub fn reattribute(&mut self, root: &str, dependent: &str, now: i64) -> Vec<Effect> {
        let Some(root_detected) = self.open.get(root).map(|r| r.detected_ms) else { return Vec::new() };
        let Some(incident) = self.open.get_mut(dependent) else { return Vec::new() };
        let announced = incident.told.iter().any(|t| t.announced);
        let recent = (0..=REATTRIBUTE_WITHIN_MS).contains(&(root_detected - incident.detected_ms));
        if !announced || !recent || incident.why.iter().any(|w| w.decision == Decision::Reattributed) {
            return Vec::new();
        }
        incident.decided(now, Decision::Reattributed, vec![root.to_string()]);
        let entry = self.reattributed.entry(root.to_string()).or_insert((now + REATTRIBUTE_WAIT_MS, Vec::new()));
        entry.1.push(dependent.to_string());
        vec![Effect::Save(incident.clone())]
    }

    /// The updates of root causes whose re-attributed dependents are collected: one per
    /// receiver told about the root or any of them.
    pub(super) fn flush_reattributed(&mut self, now: i64) -> Vec<Effect> {
        let due: Vec<String> =
            self.reattributed.iter().filter(|(_, (at, _))| *at <= now).map(|(k, _)| k.clone()).collect();
        let mut effects = Vec::new();
        for root in due {
            let Some((_, dependents)) = self.reattributed.remove(&root) else { continue };
            let Some(incident) = self.open.get(&root) else { continue };
            let mut receivers: Vec<String> = Vec::new();
            for i in std::iter::once(incident).chain(dependents.iter().filter_map(|d| self.open.get(d))) {
                for t in i.told.iter().filter(|t| t.announced) {
                    if !receivers.contains(&t.receiver) {
                        receivers.push(t.receiver.clone());
                    }
                }
            }
            for receiver in receivers {
                let mut note = notification(incident, &receiver, EventKind::Update, 0, now);
                note.key = format!("{}-{now}", note.key);
                effects.push(Effect::Notify(note));
            }
        }
        effects
    }

    /// Incidents re-attributed to a root cause that is still open: its incident speaks for
    /// them (no reminders or escalations of their own).
    pub(super) fn under_open_roots(&self) -> HashSet<String> {
        self.open
            .values()
            .filter(|i| {
                i.why
                    .iter()
                    .rev()
                    .find(|w| w.decision == Decision::Reattributed)
                    .is_some_and(|w| w.who.iter().any(|root| self.open.contains_key(root)))
            })
            .map(|i| i.target.clone())
            .collect()
    }
}
