//! Vantage points at the centre (issue #19): each agent's committed batch updates when it
//! was last heard from and its targets' states as seen from there; an agent silent past its
//! `grace` is "vantage lost" — one incident (system `vantages`, routed like any other), which
//! is resolved when the agent is heard from again.

use super::Pipeline;
use crate::alert::engine::{Opening, Routing};
use crate::model::State;
use crate::model::incident::Severity;

/// The `system` label of "vantage lost" incidents: routes match it (`match: { system: vantages }`).
pub const VANTAGE_SYSTEM: &str = "vantages";

/// The incident target id of a vantage point.
pub fn vantage_target(name: &str) -> String {
    format!("{VANTAGE_SYSTEM}/{name}")
}

impl Pipeline {
    /// When each configured vantage point was last heard from, as the store remembers.
    pub(super) fn restore_vantages(&mut self) {
        if self.config.vantages.is_empty() {
            return;
        }
        let seen = crate::store::Reader::new(&self.config.storage.path).vantages().unwrap_or_default();
        let mut board = self.board.write().unwrap_or_else(|p| p.into_inner());
        for s in seen.into_iter().filter(|s| self.config.vantages.iter().any(|v| v.name == s.name)) {
            board.vantages.entry(s.name.clone()).or_default().last_seen_ms = Some(s.last_seen_ms);
        }
        // A vantage point lost before a restart is still lost: its incident is open.
        for v in &self.config.vantages {
            if self.engine.open_incident(&vantage_target(&v.name)).is_some() {
                board.vantages.entry(v.name.clone()).or_default().lost = true;
            }
        }
    }

    /// Takes what an agent's committed batch said: it was heard from at `seen_ms`, and its
    /// targets changed state as `changes` (target, at, new state) say.
    pub(super) fn ingested(&mut self, vantage: &str, seen_ms: i64, changes: Vec<(String, i64, State)>) {
        let was_lost = {
            let mut board = self.board.write().unwrap_or_else(|p| p.into_inner());
            let view = board.vantages.entry(vantage.to_string()).or_default();
            view.last_seen_ms = Some(view.last_seen_ms.map_or(seen_ms, |s| s.max(seen_ms)));
            for (target, at, state) in changes {
                if view.states.get(&target).is_none_or(|(_, since)| *since <= at) {
                    view.states.insert(target, (state, at));
                }
            }
            std::mem::replace(&mut view.lost, false)
        };
        self.metrics.vantage_up.with_label_values(&[vantage]).set(1);
        self.metrics.vantage_last_seen.with_label_values(&[vantage]).set(seen_ms as f64 / 1000.0);
        if was_lost {
            tracing::info!(vantage, "vantage point heard from again");
            let effects = self.engine.resolve(&vantage_target(vantage), seen_ms);
            self.apply(effects, Vec::new());
        }
    }

    /// Declares lost the vantage points silent for longer than their grace (counted from the
    /// centre's start for one never heard from): one incident each.
    pub(super) fn watch_vantages(&mut self, now: i64) {
        let config = self.config.clone();
        let mut lost = Vec::new();
        {
            let mut board = self.board.write().unwrap_or_else(|p| p.into_inner());
            board.vantages.retain(|name, _| config.vantages.iter().any(|v| &v.name == name));
            for v in &config.vantages {
                let view = board.vantages.entry(v.name.clone()).or_default();
                let since = view.last_seen_ms.unwrap_or(self.started_ms);
                if !view.lost && now - since > v.grace.as_millis() as i64 {
                    view.lost = true;
                    lost.push((v.name.clone(), view.last_seen_ms, since));
                }
            }
        }
        for (name, last_seen, since) in lost {
            tracing::warn!(vantage = %name, "vantage point lost: no data from its agent");
            self.metrics.vantage_up.with_label_values(&[&name]).set(0);
            let cause = match last_seen {
                Some(ms) => {
                    format!("no data from the agent since {}", crate::status::local_time(ms, &config.instance.timezone))
                }
                None => "never heard from the agent".to_string(),
            };
            let opening = Opening {
                target: vantage_target(&name),
                system: VANTAGE_SYSTEM.into(),
                system_name: match config.instance.language {
                    crate::config::Language::Vi => "Điểm đo".into(),
                    crate::config::Language::En => "Vantage points".into(),
                },
                check: name.clone(),
                check_name: name.clone(),
                target_name: name.clone(),
                kind: "vantage".into(),
                severity: Severity::Critical,
                started_ms: since,
                cause,
                reason: Some("vantage_lost".into()),
                failed_conditions: Vec::new(),
                affected: Vec::new(),
                runbook: None,
                monitor_blind: false,
            };
            let location = config.instance.location.clone().unwrap_or_default();
            let effects =
                self.engine.open(opening, Routing { routes: &config.routes, location: &location }, now, false);
            self.apply(effects, Vec::new());
        }
    }
}
