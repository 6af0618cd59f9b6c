//! Judging one result: the state machine's step, flapping, the incident it opens or
//! resolves, the records stored with it, and what the board and the events show.

use super::{Event, Pipeline};
use crate::alert::engine::{Effect, Opening, Routing};
use crate::alert::state::{self, Flap, Transition};
use crate::model::incident::{Decision, Severity};
use crate::model::{State, TargetState};
use crate::probe::ProbeOutcome;
use crate::scheduler::ProbeResult;
use crate::status::{LastResult, TargetView};
use crate::store::{ChangeRecord, Record, ResultRecord};

/// A target's failing results, held until the parents it depends on (its `depends_on`
/// and the instance's uplinks) have answered a probe made after its first failing result —
/// so the root cause is known before anyone is paged, whatever the order probes finish in.
#[derive(Debug)]
pub(super) struct Held {
    /// The results, in arrival order (the first one crosses the threshold).
    queue: Vec<ProbeResult>,
    /// The parents asked for a probe now, and the child's first failing result.
    parents: Vec<String>,
    first_failure_ms: i64,
    /// When the child is judged anyway (its parents' timeout, and a second).
    deadline_ms: i64,
    /// When the hold began.
    held_ms: i64,
}

impl Pipeline {
    /// Takes one result: held behind a hold of its target, held itself when it would turn
    /// its target down while a parent's state is older than the failure, or judged.
    pub(super) fn handle(&mut self, result: ProbeResult) {
        if let Some(held) = self.held.get_mut(&result.target_id) {
            held.queue.push(result);
            return;
        }
        if let Some(held) = self.hold_for_parents(&result) {
            for parent in &held.parents {
                self.on_demand.probe_now(parent);
            }
            let mut held = held;
            held.queue.push(result);
            self.held.insert(held.queue[0].target_id.clone(), held);
            return;
        }
        if result.outcome.health == crate::model::Health::Up {
            self.confirm_parents(&result);
        }
        self.judge(result);
        self.release_held();
    }

    /// A target that answers while a parent of it is down is evidence that the parent is
    /// back: the parent is probed now (at most once a second) instead of at its next tick,
    /// so the root cause's recovery is known as soon as its dependents'.
    fn confirm_parents(&self, result: &ProbeResult) {
        let Some(entry) = self.entries.get(&result.target_id) else { return };
        let uplink = &self.config.instance.uplink;
        let is_uplink = uplink.contains(&result.target_id);
        let uplinks = uplink.iter().filter(|_| !is_uplink);
        for parent in entry.depends_on.iter().chain(&entry.depends_on_any).chain(uplinks) {
            if let Some(p) = self.entries.get(parent)
                && p.state.state == State::Down
                && result.finished_ms - p.last_run_ms >= 1_000
            {
                self.on_demand.probe_now(parent);
            }
        }
    }

    /// The parents of `target` whose state could decide its failure: its dependencies, and
    /// the uplinks when it is not one.
    fn parents_of(&self, target: &str) -> Vec<String> {
        let mut parents =
            self.entries.get(target).map(|e| [&e.depends_on[..], &e.depends_on_any[..]].concat()).unwrap_or_default();
        let uplink = &self.config.instance.uplink;
        if !uplink.iter().any(|u| u == target) {
            parents.extend(uplink.iter().filter(|u| self.entries.contains_key(*u)).cloned());
        }
        parents
    }

    /// A hold for `result` if judging it would turn its target down while a parent has no
    /// result since the target's first failing one (and is not known to be failing).
    fn hold_for_parents(&self, result: &ProbeResult) -> Option<Held> {
        let entry = self.entries.get(&result.target_id)?;
        if result.outcome.health != crate::model::Health::Down {
            return None;
        }
        let parents = self.parents_of(&result.target_id);
        if parents.is_empty() {
            return None;
        }
        let ctx = state::Context {
            dependency_failing: !self.failing_parents(&result.target_id).is_empty(),
            maintenance: self.in_maintenance(&result.target_id, result.finished_ms),
            blind: self.blind_for(&result.target_id),
        };
        let (_, transition) = state::step(&entry.state, result.outcome.health, entry.rule, ctx, result.finished_ms);
        if transition.is_none_or(|t| t.to != State::Down) {
            return None;
        }
        let first_failure_ms = entry.state.streak.map_or(result.finished_ms, |s| s.since_ms.min(result.finished_ms));
        let stale: Vec<String> = parents
            .into_iter()
            .filter(|p| !self.failing(p) && self.entries.get(p).is_some_and(|e| e.last_run_ms < first_failure_ms))
            .collect();
        let wait =
            stale.iter().filter_map(|p| self.entries.get(p)).map(|e| e.check.timeout.as_millis() as i64).max()?;
        let now = self.clock.now_ms();
        Some(Held {
            queue: Vec::new(),
            parents: stale,
            first_failure_ms,
            deadline_ms: now + wait + 1_000,
            held_ms: now,
        })
    }

    /// Judges the held results whose parents have now answered (or whose wait is over),
    /// in their order.
    pub(super) fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        let answered = |h: &Held| {
            h.parents.iter().all(|p| self.entries.get(p).is_none_or(|e| e.last_run_ms >= h.first_failure_ms))
        };
        let ready: Vec<(String, &'static str)> = self
            .held
            .iter()
            .filter_map(|(id, h)| {
                let outcome = if !answered(h) {
                    "timeout"
                } else if h.parents.iter().any(|p| self.failing(p)) {
                    "parent_down"
                } else {
                    "parent_up"
                };
                (answered(h) || now >= h.deadline_ms).then(|| (id.clone(), outcome))
            })
            .collect();
        for (id, outcome) in ready {
            if let Some(held) = self.held.remove(&id) {
                self.metrics.dependency_checks.with_label_values(&[outcome]).inc();
                self.metrics.dependency_hold.observe((now - held.held_ms).max(0) as f64 / 1000.0);
                for result in held.queue {
                    self.judge(result);
                }
            }
        }
    }

    /// Judges one result: the state machine's step, its records, incidents and notices.
    fn judge(&mut self, result: ProbeResult) {
        if !self.entries.contains_key(&result.target_id) {
            return; // A target removed by a reload while its probe was running.
        }
        let failing_deps = self.failing_parents(&result.target_id);
        let in_window = self.in_maintenance(&result.target_id, result.finished_ms);
        let blind = self.blind_for(&result.target_id);
        let flapping_rule = self.config.alerting.flapping;
        let Some(entry) = self.entries.get_mut(&result.target_id) else { return };
        entry.last_run_ms = result.finished_ms;
        let outcome = &result.outcome;
        self.metrics.scheduler_lag.observe(result.lag.as_secs_f64());
        self.metrics.record(&entry.metrics, outcome, result.finished_ms as f64 / 1000.0);
        let prev = entry.state;
        let now = result.finished_ms;
        let ctx = state::Context { dependency_failing: !failing_deps.is_empty(), maintenance: in_window, blind };
        let (next, transition) = state::step(&prev, outcome.health, entry.rule, ctx, now);
        entry.state = next;
        let mut flapping_started = false;
        if let Some(t) = transition
            && [t.from, t.to]
                .iter()
                .all(|s| matches!(s, State::Up | State::Degraded | State::Down | State::Unreachable))
            && entry.flaps.change(now, flapping_rule.changes, flapping_rule.window.as_millis() as i64) == Flap::Started
        {
            flapping_started = true;
            tracing::warn!(target_id = %result.target_id, "target is flapping; its notifications pause until it is stable");
        }
        let quiet = entry.flaps.is_flapping();
        let flapping = quiet;
        let reason = outcome.reason.map(|r| r.code());
        let mut records = Vec::new();
        let mut effects = Vec::new();
        if std::mem::take(&mut entry.resume_history) && transition.is_none() {
            records.push(Record::Change(ChangeRecord {
                target: result.target_id.clone(),
                at_ms: now,
                from: State::Unknown,
                to: next.state,
                reason: Some("resumed"),
                message: "monitoring resumed".into(),
            }));
        }
        if let Some(t) = transition {
            tracing::info!(target_id = %result.target_id, from = t.from.as_str(), to = t.to.as_str(), reason = reason.unwrap_or(""), message = %outcome.message, "state changed");
            records.push(Record::Change(ChangeRecord {
                target: result.target_id.clone(),
                at_ms: t.at_ms,
                from: t.from,
                to: t.to,
                reason,
                message: outcome.message.clone(),
            }));
            self.metrics.set_state(&entry.metrics, t.to);
            let started = prev.streak.map_or(t.at_ms, |s| s.since_ms.min(t.at_ms).max(1));
            effects = self.on_transition(&result.target_id, t, outcome, started, &failing_deps, quiet);
            if flapping_started {
                effects.extend(self.flapping_notice(&result.target_id, outcome, started, now));
            }
        }
        records.push(Record::Result(ResultRecord {
            target: result.target_id.clone(),
            at_ms: result.finished_ms,
            health: outcome.health.as_str(),
            reason,
            duration_ms: outcome.duration.as_secs_f64() * 1000.0,
            message: outcome.message.clone(),
            state: next,
            day_ms: self.day_of(result.finished_ms),
            echoes: outcome.observations.icmp.as_ref().map(|i| i.echoes()),
        }));
        self.drop_standby_part(&result.target_id, &mut records, &mut effects);
        self.apply(effects, records);

        let target_id = result.target_id.clone();
        self.publish_result(result, next, flapping, transition);
        if transition.is_some() {
            self.reevaluate_quorum(&target_id);
        }
    }

    /// The one "flapping" notification of a target that starts flapping (none on an agent
    /// whose centre speaks for it).
    fn flapping_notice(&mut self, target: &str, outcome: &ProbeOutcome, started: i64, now: i64) -> Vec<Effect> {
        if self.centre_speaks(now) || self.config.helpers.contains_key(target) {
            return Vec::new();
        }
        let Some(o) = self.opening(target, Severity::Critical, outcome, started) else { return Vec::new() };
        let (config, location) = self.routing();
        self.engine.flapping(o, Routing { routes: &config.routes, location: &location }, now)
    }

    /// Shows a judged result on the board (without its body), updates the system's
    /// metric on a transition, and sends the event.
    fn publish_result(
        &mut self,
        result: ProbeResult,
        next: TargetState,
        flapping: bool,
        transition: Option<Transition>,
    ) {
        let system_id = self.entries.get(&result.target_id).map(|e| e.system.clone()).unwrap_or_default();
        let event =
            Event { target_id: result.target_id.clone(), health: result.outcome.health, state: next.state, transition };
        {
            let mut board = self.board.write().unwrap_or_else(|p| p.into_inner());
            let mut outcome = result.outcome;
            outcome.observations.body = None; // bodies are not kept beyond the judgement
            board.targets.insert(
                result.target_id,
                TargetView {
                    state: next,
                    last: Some(std::sync::Arc::new(LastResult { at_ms: result.finished_ms, outcome })),
                    flapping,
                    stale: false,
                },
            );
        }
        if transition.is_some() && !self.shares_store() {
            self.changed_systems.insert(system_id);
        }
        let _ = self.events.send(event);
    }

    /// What an incident of `target` would say.
    pub(super) fn opening(
        &self,
        target: &str,
        severity: Severity,
        outcome: &ProbeOutcome,
        started_ms: i64,
    ) -> Option<Opening> {
        let entry = self.entries.get(target)?;
        let system = self.config.systems.iter().find(|s| s.id == entry.system)?;
        let system_name = match self.config.instance.language {
            crate::config::Language::Vi => system.name_vi.clone(),
            crate::config::Language::En => system.name_en.clone(),
        };
        // Dependents already unreachable because of this target are listed at once.
        let mut affected: Vec<String> = self
            .dependents
            .children(target)
            .iter()
            .filter(|id| self.entries.get(*id).is_some_and(|e| e.state.state == State::Unreachable))
            .cloned()
            .collect();
        affected.sort();
        affected.dedup(); // a child may list it in depends_on and depends_on_any
        Some(Opening {
            target: target.to_string(),
            system: entry.system.clone(),
            system_name,
            check: entry.check.id.clone(),
            check_name: entry.check.name.clone(),
            target_name: entry.target_name.clone(),
            kind: entry.kind.to_string(),
            severity,
            started_ms,
            cause: outcome.message.clone(),
            reason: outcome.reason.map(|r| r.code().to_string()),
            failed_conditions: outcome.failed_conditions.clone(),
            affected,
            runbook: entry.check.runbook.clone(),
            monitor_blind: self.config.instance.uplink.iter().any(|u| u == target),
            vantage: None,
            cause_class: None,
        })
    }

    pub(super) fn on_transition(
        &mut self,
        target: &str,
        t: Transition,
        outcome: &ProbeOutcome,
        started_ms: i64,
        failing_deps: &[String],
        quiet: bool,
    ) -> Vec<Effect> {
        // With a quorum, the target's incident follows the combined state (see `vantages`).
        if self.entries.get(target).is_some_and(|e| e.check.quorum.is_some()) {
            return Vec::new();
        }
        let (config, location) = self.routing();
        let routing = Routing { routes: &config.routes, location: &location };
        // A redundant parent whose peers still work costs redundancy, not service.
        let redundancy_left = if t.to == State::Down { self.redundancy_left(target) } else { None };
        let severity = match t.to {
            State::Down if redundancy_left.is_some() => Some(Severity::Warning),
            State::Down => Some(Severity::Critical),
            State::Degraded => Some(Severity::Warning),
            _ => None,
        };
        // Still the same trouble (e.g. back from maintenance): the open incident goes on.
        if let Some(severity) = severity
            && self.engine.open_incident(target).is_some_and(|i| i.severity == severity)
        {
            return Vec::new();
        }
        if matches!(t.to, State::Maintenance | State::Unknown) {
            return Vec::new();
        }
        let mut effects = match severity {
            Some(severity) => {
                let Some(mut opening) = self.opening(target, severity, outcome, started_ms) else { return Vec::new() };
                super::redundancy::mark_lost(&mut opening, redundancy_left.as_deref());
                self.metrics.incidents_total.with_label_values(&[&opening.system, severity.as_str()]).inc();
                if let Some(owner) = self.config.helpers.get(target) {
                    // Another shard's target, watched here for its dependants: the owner speaks.
                    let who = vec![owner.clone()];
                    self.engine.open_unannounced(opening, t.at_ms, Decision::OtherShard, who)
                } else if self.database_holds(t.at_ms) {
                    // Cut from the cluster's database: the nodes that took over page for it.
                    self.engine.open_unannounced(opening, t.at_ms, Decision::DatabaseLost, Vec::new())
                } else if !quiet && self.centre_speaks(t.at_ms) {
                    // An agent whose centre answers: the centre alerts, from what it forwards.
                    self.engine.open_unannounced(opening, t.at_ms, Decision::CentreSpeaks, Vec::new())
                } else {
                    self.engine.open(opening, routing, t.at_ms, quiet)
                }
            }
            // Unreachable is not "back up": the target still fails, now because of its root
            // cause; its open incident stays open (its reminders pause, see `tick`) and it
            // is listed under the root cause's incident.
            None if t.to == State::Unreachable => Vec::new(),
            None => self.engine.resolve(target, t.at_ms),
        };
        if t.to == State::Unreachable {
            effects.extend(self.engine.add_affected(failing_deps, target));
            effects.extend(self.engine.decide(target, t.at_ms, Decision::Unreachable, failing_deps.to_vec()));
        }
        if t.to == State::Down {
            effects.extend(self.take_dependents_under(target, t.at_ms));
        }
        effects
    }

    /// Dependents paged just before their root cause `target` failed are taken under it
    /// (found in the dependents index: walking every target here made a storm of 40,000
    /// failures quadratic).
    fn take_dependents_under(&mut self, target: &str, at_ms: i64) -> Vec<Effect> {
        let mut dependents: Vec<String> = self
            .dependents
            .children(target)
            .iter()
            .filter(|id| {
                self.entries
                    .get(*id)
                    .is_some_and(|e| e.state.state == State::Down && e.depends_on.iter().any(|d| d == target))
            })
            .cloned()
            .collect();
        dependents.sort();
        dependents.dedup();
        let mut effects = Vec::new();
        for dependent in dependents {
            let taken = self.engine.reattribute(target, &dependent, at_ms);
            if !taken.is_empty() {
                effects.extend(taken);
                effects.extend(self.engine.add_affected(&[target.to_string()], &dependent));
            }
        }
        effects
    }
}
