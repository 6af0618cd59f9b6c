//! The live status board: each target's state and last result, in configuration order.
//! Written by the pipeline, read by the web server (`/api/v1/status`, pages).

use std::collections::HashMap;
use std::sync::Arc;

mod document;

pub use document::Document;
use serde_json::Value as Json;
#[cfg(test)]
use serde_json::json;

use crate::config::{Config, System};
use crate::model::incident::Incident;
use crate::model::{State, TargetState};
use crate::probe::ProbeOutcome;

/// The whole cluster as its shared store holds it (issue #20, item 5): the full
/// configuration, each target's state as its owner last wrote it, and every open incident —
/// read every few seconds, so the pages and status API of any node show every target.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub config: Arc<Config>,
    pub states: HashMap<String, TargetState>,
    pub open_incidents: Vec<Incident>,
}

/// The last result of a target.
#[derive(Debug, Clone)]
pub struct LastResult {
    pub at_ms: i64,
    pub outcome: ProbeOutcome,
}

/// What the board knows of one target.
#[derive(Debug, Clone)]
pub struct TargetView {
    pub state: TargetState,
    /// Shared: the board is cloned for each page and API answer, its results are not.
    pub last: Option<Arc<LastResult>>,
    /// The target keeps changing state (its notifications pause).
    pub flapping: bool,
    /// No result for more than three intervals: the check has stopped running (a bug the
    /// watchdog reports), and its state is not current.
    pub stale: bool,
}

/// The board: the running configuration and every target's view, keyed by target id.
#[derive(Debug, Clone)]
pub struct Board {
    pub config: Arc<Config>,
    pub targets: HashMap<String, TargetView>,
    /// Incidents open now.
    pub open_incidents: Vec<Incident>,
    /// What the centre knows of each configured vantage point, by name.
    pub vantages: std::collections::BTreeMap<String, VantageView>,
}

/// A target's state over all who watch it: the centre and the vantage points that run its
/// check. A lost vantage point, or one whose link check fails, does not vote.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    pub state: State,
    /// Observers that see it down (the centre by its instance name, vantage points by theirs).
    pub down: Vec<String>,
    /// Every observer that voted, with what it sees.
    pub observers: Vec<(String, State)>,
    /// Down votes needed.
    pub needed: usize,
}

/// The combined state of `target_id` (of `check`), or None when no vantage point runs it.
pub fn combined(
    config: &Config,
    check: &crate::config::Check,
    target_id: &str,
    targets: &HashMap<String, TargetView>,
    vantages: &std::collections::BTreeMap<String, VantageView>,
) -> Option<Combined> {
    if check.vantages.is_empty() {
        return None;
    }
    let failing = |s: State| matches!(s, State::Down | State::Unreachable);
    let mut observers = Vec::new();
    if let Some(own) = targets.get(target_id).map(|v| v.state.state).filter(|s| *s != State::Unknown) {
        observers.push((config.instance.name.clone(), own));
    }
    for name in &check.vantages {
        let Some(view) = vantages.get(name).filter(|v| !v.lost) else { continue };
        let link = config.vantages.iter().find(|v| &v.name == name).and_then(|v| v.link.as_ref());
        if link.is_some_and(|l| targets.get(l).is_some_and(|t| failing(t.state.state))) {
            continue;
        }
        if let Some((state, _)) = view.states.get(target_id) {
            observers.push((name.clone(), *state));
        }
    }
    let down: Vec<String> = observers.iter().filter(|(_, s)| failing(*s)).map(|(n, _)| n.clone()).collect();
    let needed = check.quorum.unwrap_or(crate::config::vantage::Quorum::Any).needed(observers.len());
    let state = if !down.is_empty() && down.len() >= needed {
        State::Down
    } else if observers.is_empty() {
        State::Unknown
    } else {
        State::Up
    };
    Some(Combined { state, down, observers, needed })
}

/// A vantage point as the centre sees it: when its agent was last heard from, whether it is
/// lost (silent past its grace), and its targets' states as measured from there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VantageView {
    /// Last batch received, Unix ms (None: never since the centre started and none stored).
    pub last_seen_ms: Option<i64>,
    pub lost: bool,
    /// Target id → (state, since), from the agent's state changes.
    pub states: std::collections::BTreeMap<String, (State, i64)>,
}

/// Since when a system is in its state: the latest change among its critical checks'
/// targets (a non-critical check's change does not move it); None without critical targets.
pub fn system_since(system: &System, targets: &HashMap<String, TargetView>) -> Option<i64> {
    system_state_since(system, targets).1
}

/// The state of a system: the worst state among its critical checks' targets
/// ([`State::severity`]: down > unreachable > degraded > maintenance > unknown > up).
pub fn system_state(system: &System, targets: &HashMap<String, TargetView>) -> State {
    system_state_since(system, targets).0
}

/// [`system_state`] and [`system_since`] in one look at each critical target.
pub fn system_state_since(system: &System, targets: &HashMap<String, TargetView>) -> (State, Option<i64>) {
    let (mut worst, mut since, mut any) = (State::Up, None, false);
    for t in system.checks.iter().filter(|c| c.critical).flat_map(|c| c.targets.iter()) {
        any = true;
        let view = targets.get(t.id());
        let s = view.map_or(State::Unknown, |v| v.state.state);
        if s.severity() > worst.severity() {
            worst = s;
        }
        since = since.max(view.map(|v| v.state.since_ms));
    }
    (if any { worst } else { State::Unknown }, since)
}

/// Formats Unix milliseconds as RFC 3339 in the given time zone.
pub fn local_time(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        Err(_) => String::new(),
    }
}

impl Board {
    /// This node's board widened to the whole cluster: the targets it runs as owner as it
    /// sees them now, the others as the store has them (with the last result this node has
    /// of a target it runs as a standby or helper); open incidents of the whole cluster,
    /// this node's own in place of the store's copy.
    pub fn with_cluster(&self, view: &ClusterView) -> Board {
        let owned = |id: &str| self.targets.contains_key(id) && !self.config.helpers.contains_key(id);
        let targets = view
            .config
            .targets()
            .filter_map(|(_, _, t)| {
                let id = t.id().to_string();
                let local = self.targets.get(&id);
                let shown = match view.states.get(&id) {
                    Some(state) if !owned(&id) => Some(TargetView {
                        state: *state,
                        last: local.and_then(|l| l.last.clone()),
                        flapping: false,
                        stale: false,
                    }),
                    _ => local.cloned(),
                };
                shown.map(|v| (id, v))
            })
            .collect();
        let mut open_incidents: Vec<Incident> =
            view.open_incidents.iter().filter(|i| !owned(&i.target)).cloned().collect();
        open_incidents.extend(self.open_incidents.iter().filter(|i| owned(&i.target)).cloned());
        open_incidents.sort_by_key(|i| i.id);
        open_incidents.dedup_by_key(|i| i.id);
        Board { config: view.config.clone(), targets, open_incidents, vantages: self.vantages.clone() }
    }

    /// The JSON document of `/api/v1/status`, as a value (tests, the in-process API).
    pub fn to_json(&self) -> Json {
        serde_json::to_value(self.document()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "systems:\n  - id: web\n    checks:\n      - id: pages\n        http: {}\n        targets:\n          - { name: a, url: \"http://a.laichau.example/\" }\n          - { name: b, url: \"http://b.laichau.example/\" }\n          - { name: c, url: \"http://c.laichau.example/\" }\n";
        crate::config::load_from_text(std::path::Path::new("t.yaml"), text, &|_| None).expect("config")
    }

    fn view(state: State) -> TargetView {
        TargetView {
            state: TargetState { state, since_ms: 1, streak: None },
            last: None,
            flapping: false,
            stale: false,
        }
    }

    fn incident(id: i64, target: &str) -> Incident {
        serde_json::from_value(json!({
            "id": id, "target": target, "system": "web", "system_name": "W", "check": "pages", "check_name": "P",
            "target_name": "T", "kind": "http", "severity": "critical", "started_ms": 1, "detected_ms": 1,
            "resolved_ms": null, "cause": "503", "reason": null, "failed_conditions": [], "affected": [],
            "ack": null, "told": [], "runbook": null, "reminders": 0, "escalated": false, "last_notified_ms": 1
        }))
        .expect("an incident")
    }

    #[test]
    fn a_node_shows_the_whole_cluster_with_its_own_targets_as_it_sees_them() {
        let full = Arc::new(config());
        // This node runs web/pages/a (up now; the store still has it down) and nothing else.
        let mut own = (*full).clone();
        std::sync::Arc::make_mut(&mut own.systems[0].checks[0]).targets.truncate(1);
        let local = Board {
            config: Arc::new(own),
            targets: HashMap::from([("web/pages/a".to_string(), view(State::Up))]),
            open_incidents: Vec::new(),
            vantages: Default::default(),
        };
        let stored = |s| TargetState { state: s, since_ms: 5, streak: None };
        let cluster = ClusterView {
            config: full.clone(),
            states: HashMap::from([
                ("web/pages/a".to_string(), stored(State::Down)),
                ("web/pages/b".to_string(), stored(State::Down)),
            ]),
            open_incidents: vec![incident(1, "web/pages/a"), incident(2, "web/pages/b")],
        };
        assert_eq!(system_state(&local.config.systems[0], &local.targets), State::Up, "its own part is up");
        let whole = local.with_cluster(&cluster);
        assert_eq!(whole.targets["web/pages/a"].state.state, State::Up, "its own target as it sees it now");
        assert_eq!(whole.targets["web/pages/b"].state.state, State::Down, "another node's, from the store");
        assert!(!whole.targets.contains_key("web/pages/c"), "never judged by anyone: not shown as anything");
        assert_eq!(system_state(&whole.config.systems[0], &whole.targets), State::Down, "the system over the cluster");
        let ids: Vec<i64> = whole.open_incidents.iter().map(|i| i.id).collect();
        assert_eq!(ids, [2], "the store's stale copy of its own target's incident is not shown");
        let doc = whole.to_json();
        assert_eq!(doc["systems"][0]["checks"][0]["targets"].as_array().map(Vec::len), Some(3));
    }
}
