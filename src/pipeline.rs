//! The pipeline: the one task that consumes probe results in order. For each result it
//! updates metrics, steps the target's state machine, queues the store writes and updates
//! the status board. Being the only writer of alert state, it needs no locks for it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, mpsc};

use crate::alert::state::{self, Rule, State, TargetState, Transition};
use crate::config::Config;
use crate::metrics::{Metrics, TargetMetrics};
use crate::probe::Health;
use crate::scheduler::{ProbeResult, now_ms};
use crate::status::{Board, LastResult, TargetView, system_state};
use crate::store::{ChangeRecord, Record, ResultRecord, Store};

/// Something that happened to a target, published for tests and live views.
#[derive(Debug, Clone)]
pub struct Event {
    pub target_id: String,
    pub health: Health,
    pub state: State,
    pub transition: Option<Transition>,
}

/// Commands from the control loop.
#[derive(Debug)]
pub enum Control {
    /// Switch to a new (validated) configuration, keeping the state of targets that stay.
    Reconfigure(Arc<Config>),
}

struct Entry {
    system: String,
    kind: &'static str,
    rule: Rule,
    state: TargetState,
    metrics: TargetMetrics,
}

/// The perfdata labels a check exports as metrics.
fn perfdata_labels(check: &crate::config::Check) -> &[String] {
    match &check.probe {
        crate::config::ProbeSpec::Exec(e) => &e.perfdata,
        _ => &[],
    }
}

/// The result consumer.
pub struct Pipeline {
    metrics: Arc<Metrics>,
    board: Arc<RwLock<Board>>,
    store: Store,
    events: broadcast::Sender<Event>,
    entries: HashMap<String, Entry>,
    /// States read from the store at start-up, used when a target first appears.
    restored: HashMap<String, TargetState>,
}

impl Pipeline {
    /// A pipeline for `config`, resuming from the `restored` states (keyed by target id).
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        board: Arc<RwLock<Board>>,
        store: Store,
        restored: HashMap<String, TargetState>,
        events: broadcast::Sender<Event>,
    ) -> Pipeline {
        let mut p = Pipeline { metrics, board, store, events, entries: HashMap::new(), restored };
        p.configure(config);
        p
    }

    fn configure(&mut self, config: Arc<Config>) {
        let now = now_ms();
        let mut old = std::mem::take(&mut self.entries);
        for (system, check, target) in config.targets() {
            let id = target.key.id();
            let kind = check.probe.kind();
            let rule = Rule { failure_threshold: check.failure_threshold, success_threshold: check.success_threshold };
            let (state, metrics) = match old.remove(&id) {
                Some(e) if e.kind == kind => (e.state, e.metrics),
                Some(e) => {
                    self.metrics.remove(&e.metrics);
                    (e.state, self.metrics.target(&target.key, kind, perfdata_labels(check)))
                }
                None => {
                    let state = self.restored.remove(&id).unwrap_or_else(|| TargetState::new(now));
                    (state, self.metrics.target(&target.key, kind, perfdata_labels(check)))
                }
            };
            self.metrics.set_state(&metrics, state.state);
            self.entries.insert(id, Entry { system: system.id.clone(), kind, rule, state, metrics });
        }
        for entry in old.values() {
            self.metrics.remove(&entry.metrics);
        }
        self.metrics.checks_configured.set(self.entries.len() as i64);

        let mut board = self.board.write().unwrap_or_else(|p| p.into_inner());
        for system in &board.config.systems {
            if !config.systems.iter().any(|s| s.id == system.id) {
                self.metrics.remove_system(&system.id);
            }
        }
        let mut views = std::mem::take(&mut board.targets);
        board.targets = self
            .entries
            .iter()
            .map(|(id, e)| {
                let last = views.remove(id).and_then(|v| v.last);
                (id.clone(), TargetView { state: e.state, last })
            })
            .collect();
        board.config = config;
        for system in &board.config.systems {
            let up = system_state(system, &board.targets) != State::Down;
            self.metrics.set_system(&system.id, up, system.sla);
        }
    }

    fn handle(&mut self, result: ProbeResult) {
        let Some(entry) = self.entries.get_mut(&result.target_id) else {
            return; // A target removed by a reload while its probe was running.
        };
        let outcome = &result.outcome;
        self.metrics.scheduler_lag.observe(result.lag.as_secs_f64());
        self.metrics.record(&mut entry.metrics, outcome, result.finished_ms as f64 / 1000.0);
        let (next, transition) = state::step(&entry.state, outcome.health, entry.rule, result.finished_ms);
        entry.state = next;
        let reason = outcome.reason.map(|r| r.code());
        if let Some(t) = transition {
            tracing::info!(target_id = %result.target_id, from = t.from.as_str(), to = t.to.as_str(), reason = reason.unwrap_or(""), message = %outcome.message, "state changed");
            self.store.send(Record::Change(ChangeRecord {
                target: result.target_id.clone(),
                at_ms: t.at_ms,
                from: t.from,
                to: t.to,
                reason,
                message: outcome.message.clone(),
            }));
            self.metrics.set_state(&entry.metrics, t.to);
        } else {
            tracing::debug!(target_id = %result.target_id, health = outcome.health.as_str(), message = %outcome.message, "probe result");
        }
        self.store.send(Record::Result(ResultRecord {
            target: result.target_id.clone(),
            at_ms: result.finished_ms,
            health: outcome.health.as_str(),
            reason,
            duration_ms: outcome.duration.as_secs_f64() * 1000.0,
            message: outcome.message.clone(),
            state: next,
        }));
        let system_id = entry.system.clone();
        let event =
            Event { target_id: result.target_id.clone(), health: outcome.health, state: next.state, transition };
        {
            let mut board = self.board.write().unwrap_or_else(|p| p.into_inner());
            let mut outcome = result.outcome;
            outcome.observations.body = None; // bodies are not kept beyond the judgement
            board.targets.insert(
                result.target_id,
                TargetView { state: next, last: Some(LastResult { at_ms: result.finished_ms, outcome }) },
            );
            if transition.is_some()
                && let Some(system) = board.config.systems.iter().find(|s| s.id == system_id)
            {
                let up = system_state(system, &board.targets) != State::Down;
                self.metrics.set_system(&system.id, up, system.sla);
            }
        }
        let _ = self.events.send(event);
    }

    /// Consumes results and commands until the results channel closes (every timer has
    /// stopped); returns the store so the caller can flush and close it.
    pub async fn run(
        mut self,
        mut results: mpsc::Receiver<ProbeResult>,
        mut control: mpsc::Receiver<Control>,
    ) -> Store {
        loop {
            tokio::select! {
                biased;
                cmd = control.recv() => match cmd {
                    Some(Control::Reconfigure(config)) => self.configure(config),
                    None => break,
                },
                r = results.recv() => match r {
                    Some(r) => self.handle(r),
                    None => return self.store,
                },
            }
        }
        // Control closed: drain what is left of the results.
        while let Some(r) = results.recv().await {
            self.handle(r);
        }
        self.store
    }
}
