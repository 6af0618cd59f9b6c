//! Vantage points at the centre (issue #19): each agent's committed batch updates when it
//! was last heard from and its targets' states as seen from there; an agent silent past its
//! `grace` is "vantage lost" — one incident (system `vantages`, routed like any other), which
//! is resolved when the agent is heard from again.

use super::Pipeline;
use crate::alert::engine::{Opening, Routing};
use crate::model::State;
use crate::model::incident::{Decision, Severity};

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
        let seen =
            crate::store::Reader::new(crate::store::Location::of(&self.config.storage)).vantages().unwrap_or_default();
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

    /// A target of the centre seen changing state from a vantage point: failing there opens
    /// an incident of that view (`target@vantage`, labels `vantage` and `cause`), classed
    /// `link` — and not announced, the link's own incident speaks — while the vantage's link
    /// check fails, else `target`; recovering there resolves it.
    fn view_changed(&mut self, vantage: &str, target: &str, at: i64, state: State, message: &str) {
        let id = format!("{target}@{vantage}");
        let effects = match state {
            State::Down | State::Unreachable if self.engine.open_incident(&id).is_none() => {
                let Some(entry) = self.entries.get(target) else { return };
                let Some(system) = self.config.systems.iter().find(|s| s.id == entry.system) else { return };
                let configured = self.config.vantages.iter().find(|v| v.name == vantage);
                let link = configured.and_then(|v| v.link.clone());
                let link_down = link.as_deref().is_some_and(|l| self.failing(l));
                let grace = configured.map_or(0, |v| v.grace.as_millis() as i64);
                let late = self.clock.now_ms() - at > grace;
                let class = if link_down { "link" } else { "target" };
                let opening = Opening {
                    target: id.clone(),
                    system: entry.system.clone(),
                    system_name: match self.config.instance.language {
                        crate::config::Language::Vi => system.name_vi.clone(),
                        crate::config::Language::En => system.name_en.clone(),
                    },
                    check: entry.check.id.clone(),
                    check_name: entry.check.name.clone(),
                    target_name: entry.target_name.clone(),
                    kind: entry.kind.to_string(),
                    severity: Severity::Critical,
                    started_ms: at,
                    cause: message.to_string(),
                    reason: Some(class.to_string()),
                    failed_conditions: Vec::new(),
                    affected: Vec::new(),
                    runbook: entry.check.runbook.clone(),
                    monitor_blind: false,
                    vantage: Some(vantage.to_string()),
                    cause_class: Some(class.to_string()),
                };
                let who = vec![vantage.to_string()];
                if late {
                    self.engine.open_unannounced(opening, at, crate::model::incident::Decision::Late, who)
                } else if link_down {
                    self.engine.open_unannounced(opening, at, crate::model::incident::Decision::QuietLink, who)
                } else {
                    let (config, location) = self.routing();
                    self.engine.open(opening, Routing { routes: &config.routes, location: &location }, at, false)
                }
            }
            State::Up | State::Degraded => self.engine.resolve(&id, at),
            _ => Vec::new(),
        };
        if !effects.is_empty() {
            self.apply(effects, Vec::new());
        }
    }

    /// `vigil_vantage_check_up` of `target` as seen from `vantage`: 1 up, 0 down, no series
    /// when it has no state (lost, unknown, in maintenance).
    fn publish_view(&self, vantage: &str, target: &str, state: Option<State>) {
        let Some(entry) = self.entries.get(target) else { return };
        let labels = [entry.system.as_str(), entry.check.id.as_str(), entry.target_name.as_str(), vantage];
        match state {
            Some(State::Up | State::Degraded) => self.metrics.vantage_check_up.with_label_values(&labels).set(1),
            Some(State::Down | State::Unreachable) => self.metrics.vantage_check_up.with_label_values(&labels).set(0),
            _ => {
                let _ = self.metrics.vantage_check_up.remove_label_values(&labels);
            }
        }
    }

    /// On an agent: whether its centre answered within `agent.alert_after` — then the centre
    /// alerts for this vantage point and the agent's own receivers stay silent.
    pub(super) fn centre_speaks(&self, now: i64) -> bool {
        let (Some(agent), Some(contact)) = (&self.config.agent, &self.centre_contact) else { return false };
        now - contact.load(std::sync::atomic::Ordering::Relaxed) < agent.alert_after.as_millis() as i64
    }

    /// On an agent whose centre has been silent for `alert_after`: the incidents it held
    /// back while the centre could speak for it, and that the centre never heard of (opened
    /// after its last answer), are announced through the agent's own receivers.
    pub(super) fn speak_for_the_centre(&mut self, now: i64) {
        let Some(contact) = &self.centre_contact else { return };
        if self.centre_speaks(now) {
            return;
        }
        let last = contact.load(std::sync::atomic::Ordering::Relaxed);
        let held: Vec<String> = self
            .engine
            .open_incidents()
            .filter(|i| i.told.is_empty() && i.detected_ms > last)
            .filter(|i| i.why.iter().any(|w| w.decision == Decision::CentreSpeaks))
            .map(|i| i.target.clone())
            .collect();
        let (config, location) = self.routing();
        let mut effects = Vec::new();
        for target in held {
            let routing = Routing { routes: &config.routes, location: &location };
            effects.extend(self.engine.announce_held(
                &target,
                Decision::CentreSpeaks,
                Decision::AnnouncedLocally,
                routing,
                now,
            ));
        }
        if !effects.is_empty() {
            tracing::warn!("the centre cannot be reached: this agent alerts through its own receivers");
            self.apply(effects, Vec::new());
        }
    }

    /// For a check with a `quorum`, its target's incident follows the combined state: it
    /// opens when enough observers see the target down, and is resolved when they no
    /// longer do.
    /// Also publishes the combined state (`vigil_check_combined_up`).
    pub(super) fn reevaluate_quorum(&mut self, target: &str) {
        let Some(entry) = self.entries.get(target) else { return };
        if entry.check.vantages.is_empty() {
            return;
        }
        let check = entry.check.clone();
        let combined = {
            let board = self.board.read().unwrap_or_else(|p| p.into_inner());
            crate::status::combined(&self.config, &check, target, &board.targets, &board.vantages)
        };
        let Some(combined) = combined else { return };
        let labels = [entry.system.as_str(), check.id.as_str(), entry.target_name.as_str()];
        match combined.state {
            State::Unknown => {
                let _ = self.metrics.check_combined_up.remove_label_values(&labels);
            }
            s => self.metrics.check_combined_up.with_label_values(&labels).set(i64::from(s == State::Up)),
        }
        if check.quorum.is_none() {
            return;
        }
        let now = self.clock.now_ms();
        let open = self.engine.open_incident(target).is_some();
        let effects = match (combined.state == State::Down, open) {
            (true, false) => {
                let cause = format!(
                    "down from {} of {} observers ({} needed): {}",
                    combined.down.len(),
                    combined.observers.len(),
                    combined.needed,
                    combined.down.join(", ")
                );
                let outcome = crate::probe::ProbeOutcome {
                    health: crate::model::Health::Down,
                    reason: None,
                    message: cause,
                    failed_conditions: Vec::new(),
                    observations: Default::default(),
                    duration: std::time::Duration::ZERO,
                };
                let Some(opening) = self.opening(target, Severity::Critical, &outcome, now) else { return };
                self.metrics.incidents_total.with_label_values(&[&opening.system, "critical"]).inc();
                let (config, location) = self.routing();
                self.engine.open(opening, Routing { routes: &config.routes, location: &location }, now, false)
            }
            (false, true) => self.engine.resolve(target, now),
            _ => Vec::new(),
        };
        if !effects.is_empty() {
            self.apply(effects, Vec::new());
        }
    }

    /// Takes what an agent's committed batch said: it was heard from at `seen_ms`, and its
    /// targets changed state as `changes` (target, at, new state, message) say.
    pub(super) fn ingested(&mut self, vantage: &str, seen_ms: i64, changes: Vec<(String, i64, State, String)>) {
        let was_lost = {
            let mut board = self.board.write().unwrap_or_else(|p| p.into_inner());
            let view = board.vantages.entry(vantage.to_string()).or_default();
            view.last_seen_ms = Some(view.last_seen_ms.map_or(seen_ms, |s| s.max(seen_ms)));
            let mut news = Vec::new();
            for (target, at, state, message) in changes {
                if view.states.get(&target).is_none_or(|(_, since)| *since <= at) {
                    view.states.insert(target.clone(), (state, at));
                    news.push((target, at, state, message));
                }
            }
            (std::mem::replace(&mut view.lost, false), news)
        };
        let (was_lost, news) = was_lost;
        let mut touched: Vec<String> = Vec::new();
        for (target, at, state, message) in news {
            self.publish_view(vantage, &target, Some(state));
            self.view_changed(vantage, &target, at, state, &message);
            if !touched.contains(&target) {
                touched.push(target);
            }
        }
        // The combined state once the whole batch is in: a back-filled outage that is
        // already over does not open (and close) the target's incident.
        for target in touched {
            self.reevaluate_quorum(&target);
        }
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
            // What it saw is no longer current: no series, and no vote in combined states.
            let seen: Vec<String> = {
                let board = self.board.read().unwrap_or_else(|p| p.into_inner());
                board.vantages.get(&name).map(|v| v.states.keys().cloned().collect()).unwrap_or_default()
            };
            for target in &seen {
                self.publish_view(&name, target, None);
                self.reevaluate_quorum(target);
            }
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
                vantage: None,
                cause_class: None,
            };
            let location = config.instance.location.clone().unwrap_or_default();
            let effects =
                self.engine.open(opening, Routing { routes: &config.routes, location: &location }, now, false);
            self.apply(effects, Vec::new());
        }
    }
}
