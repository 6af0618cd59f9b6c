//! The pipeline: the one task that consumes probe results in order. For each result it
//! updates metrics, steps the target's state machine (with its dependencies' states),
//! opens and resolves incidents, and writes the result, the state change, the incident and
//! its notifications to the store in one transaction before handing the notifications to
//! the outbox dispatcher. Being the only writer of alert state, it needs no locks for it.

mod cluster;
mod judge;
mod publish;
mod redundancy;
mod targets;
pub mod vantages;
mod watching;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::alert::engine::{Effect, Engine};
use crate::alert::state::Transition;
use crate::config::Config;
use crate::config::maintenance::{ApiWindow, Window};
use crate::delivery::Outlook;
use crate::metrics::Metrics;
use crate::model::Clock;
use crate::model::Health;
use crate::model::incident::{Incident, Notification};
use crate::model::{State, TargetState};
use crate::scheduler::ProbeResult;
use crate::status::Board;
use crate::store::{Record, Store};
use targets::Entry;

/// How often reminders and escalations are checked.
const TICK: Duration = Duration::from_secs(1);
/// How long plain probe results (no state change) wait to be written together: at 200
/// results a second, one transaction per quarter second instead of one per result. Anything
/// else (a state change, an incident, a notification) is written at once, with the results
/// waiting before it.
const RESULTS_EVERY: Duration = Duration::from_millis(250);
/// Most plain results kept waiting.
const RESULTS_MAX: usize = 1000;
/// How often raw results older than `storage.raw_retention` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Something that happened to a target, published for tests and live views.
#[derive(Debug, Clone)]
pub struct Event {
    pub target_id: String,
    pub health: Health,
    pub state: State,
    pub transition: Option<Transition>,
}

/// Commands from the control loop and the web server.
#[derive(Debug)]
pub enum Control {
    /// Switch to a new (validated) configuration, keeping the state of targets that stay.
    /// Answers with warnings for the operator (e.g. a receiver removed while incidents
    /// announced on it are open).
    Reconfigure(Arc<Config>, oneshot::Sender<Vec<String>>),
    /// Acknowledge an open incident; answers with the incident, or why not.
    Ack { id: i64, by: String, comment: String, respond: oneshot::Sender<Result<Incident, AckError>> },
    /// Open a maintenance window (stored, then in force).
    AddMaintenance(ApiWindow),
    /// A maintenance window another cluster node opened (already stored): in force here too.
    LearnMaintenance(ApiWindow),
    /// An agent's batch is committed: when it was heard from, and its targets' state
    /// changes (target, at, state).
    Ingested { vantage: String, seen_ms: i64, changes: Vec<(String, i64, State, String)> },
    /// Run the timers now (reminders, escalations, flapping, the watchdog) and answer once
    /// everything decided so far is committed: what a test waits on instead of sleeping.
    Settle(oneshot::Sender<()>),
}

/// The result consumer.
pub struct Pipeline {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    board: Arc<RwLock<Board>>,
    /// What delivery sees: the configuration and the open incidents.
    outlook: watch::Sender<Outlook>,
    store: Store,
    events: broadcast::Sender<Event>,
    notifications: mpsc::UnboundedSender<Notification>,
    engine: Engine,
    /// Every target's entry, boxed: the table keeps room for more entries than it holds,
    /// and a box of room is 8 bytes where an entry is 256.
    entries: HashMap<String, Box<Entry>>,
    /// States read from the store at start-up, used when a target first appears.
    restored: HashMap<String, TargetState>,
    /// Recent state changes read from the store, replayed into a target's flapping
    /// detection when it first appears.
    restored_flaps: HashMap<String, Vec<i64>>,
    /// Maintenance windows opened through the API.
    api_windows: Vec<Window>,
    /// The current day (instance time zone) for rollups: [start, end) in Unix ms.
    day: Option<(i64, i64)>,
    /// The last month whose report was queued (or found queued).
    /// Plain results waiting to be written (see [`RESULTS_EVERY`]).
    waiting_results: Vec<Record>,
    /// Whether results are expected (off when Vigil only serves, without probing).
    watchdog: bool,
    /// Since when the store fails, once every receiver has been told (straight, not through
    /// the store).
    store_alerted: Option<i64>,
    /// What "now" is for every decision by time.
    clock: Arc<dyn Clock>,
    on_demand: Arc<crate::scheduler::OnDemand>,
    /// Failing results held until their parents answer (see `judge`), by target id.
    held: HashMap<String, judge::Held>,
    /// When this pipeline started (a vantage point never heard from is lost a grace after).
    started_ms: i64,
    /// Set after the first configuration (what the store restored at start is fresh).
    configured: bool,
    /// On an agent: when its centre last answered.
    centre_contact: Option<Arc<std::sync::atomic::AtomicI64>>,
    /// Systems with a target whose state changed since their gauge was last set.
    changed_systems: std::collections::HashSet<String>,
    /// Incidents saved since the open incidents were last published.
    unpublished: Vec<Incident>,
    /// Who depends on whom (rebuilt with the entries).
    dependents: redundancy::Dependents,
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("incident {0} is not open")]
    NotOpen(i64),
}

/// Where the pipeline publishes what it learns.
pub struct Outputs {
    /// The status board the pages and the API read.
    pub board: Arc<RwLock<Board>>,
    /// What delivery sees: the configuration and the open incidents.
    pub outlook: watch::Sender<Outlook>,
    /// Every judged result, for tests and live views.
    pub events: broadcast::Sender<Event>,
    /// Notifications, handed on once their outbox rows are committed.
    pub notifications: mpsc::UnboundedSender<Notification>,
    /// Where the pipeline asks the scheduler for a probe now (a stale parent).
    pub on_demand: Arc<crate::scheduler::OnDemand>,
    /// On an agent: when its centre last answered (Unix ms), set by the forwarder.
    pub centre_contact: Option<Arc<std::sync::atomic::AtomicI64>>,
}

/// What the pipeline starts from.
pub struct Resume {
    /// Target states, keyed by target id.
    pub states: HashMap<String, TargetState>,
    pub open_incidents: Vec<Incident>,
    pub last_incident_id: i64,
    /// Maintenance windows opened through the API.
    pub maintenance: Vec<ApiWindow>,
    /// Each target's last result and the state its stored history ended on.
    pub watched: HashMap<String, (i64, Option<State>)>,
    /// Each target's recent changes between judged states, to resume flapping detection.
    pub flap_changes: HashMap<String, Vec<i64>>,
}

impl Pipeline {
    /// A pipeline for `config`, resuming from what the store remembers; it publishes to
    /// `outputs` (notifications only after they are stored).
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        store: Store,
        resume: Resume,
        outputs: Outputs,
        clock: Arc<dyn Clock>,
    ) -> Pipeline {
        let Outputs { board, outlook, events, notifications, on_demand, centre_contact } = outputs;
        let engine = Engine::new(resume.open_incidents, resume.last_incident_id);
        let mut p = Pipeline {
            config: config.clone(),
            metrics,
            board,
            outlook,
            store,
            events,
            notifications,
            engine,
            entries: HashMap::new(),
            restored: resume.states,
            restored_flaps: resume.flap_changes,
            api_windows: resume.maintenance.iter().map(ApiWindow::window).collect(),
            day: None,
            waiting_results: Vec::new(),
            watchdog: true,
            store_alerted: None,
            clock,
            on_demand,
            held: HashMap::new(),
            started_ms: 0,
            configured: false,
            centre_contact,
            changed_systems: std::collections::HashSet::new(),
            unpublished: Vec::new(),
            dependents: redundancy::Dependents::default(),
        };
        p.started_ms = p.clock.now_ms();
        p.refill_incident_ids();
        p.restore_vantages();
        for warning in p.configure(config) {
            tracing::warn!("{warning}");
        }
        p.configured = true;
        let now = p.clock.now_ms();
        p.record_unwatched(&resume.watched, now);
        p.publish_incidents();
        p
    }

    /// A pipeline that expects no results (Vigil serving without probing): no watchdog.
    pub fn without_watchdog(mut self) -> Pipeline {
        self.watchdog = false;
        self
    }

    pub(super) fn routing(&self) -> (Arc<Config>, String) {
        (self.config.clone(), self.config.instance.location.clone().unwrap_or_default())
    }

    /// Stores records and effects in one transaction, then hands notifications on.
    pub(super) fn apply(&mut self, effects: Vec<Effect>, mut records: Vec<Record>) {
        if effects.is_empty() && records.len() == 1 && matches!(records[0], Record::Result(_)) {
            self.waiting_results.append(&mut records);
            if self.waiting_results.len() >= RESULTS_MAX {
                self.write_results();
            }
            return;
        }
        // Results first, so the store sees every record in the order it happened.
        records.splice(0..0, std::mem::take(&mut self.waiting_results));
        let mut releases = Vec::new();
        let mut saved = Vec::new();
        for effect in effects {
            match effect {
                Effect::Save(i) => {
                    saved.push(i.clone());
                    records.push(Record::Incident(Box::new(i)));
                }
                Effect::Notify(mut n) => {
                    n.node = self.node();
                    records.push(Record::Outbox(Box::new(n.clone())));
                    releases.push(Record::Release(Box::new(n), self.notifications.clone()));
                }
            }
        }
        // Delivery gets a notification only once its batch is committed (the writer
        // answers a release after the transaction before it).
        records.extend(releases);
        if !records.is_empty() {
            self.store.send(Record::Batch(records));
        }
        self.unpublished.extend(saved);
        // Beyond a thousand open incidents, published with the next batch (see `publish`).
        if self.engine.open_incidents().len() <= publish::AT_ONCE_UP_TO {
            self.publish_saved();
        }
    }

    pub(super) fn ack(&mut self, id: i64, by: &str, comment: &str) -> Result<Incident, AckError> {
        let effects = self.engine.ack(id, by, comment, self.clock.now_ms()).ok_or(AckError::NotOpen(id))?;
        let incident = effects
            .iter()
            .find_map(|e| match e {
                Effect::Save(i) => Some(i.clone()),
                Effect::Notify(_) => None,
            })
            .ok_or(AckError::NotOpen(id))?;
        tracing::info!(incident = id, by, comment, "incident acknowledged");
        self.apply(effects, Vec::new());
        self.publish_saved(); // the API answers with the board already showing it
        Ok(incident)
    }

    /// Whether results, saved incidents or system states wait for the next batch.
    fn has_waiting(&self) -> bool {
        !self.waiting_results.is_empty() || !self.unpublished.is_empty() || !self.changed_systems.is_empty()
    }

    /// Sends the waiting plain results to the store.
    pub(super) fn write_results(&mut self) {
        if !self.waiting_results.is_empty() {
            self.store.send(Record::Batch(std::mem::take(&mut self.waiting_results)));
        }
    }

    /// Consumes results and commands until the results channel closes (every timer has
    /// stopped); returns the store so the caller can flush and close it.
    pub async fn run(
        mut self,
        mut results: mpsc::Receiver<ProbeResult>,
        mut control: mpsc::Receiver<Control>,
    ) -> Store {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut pruner = tokio::time::interval(PRUNE_EVERY);
        pruner.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut results_timer = tokio::time::interval(RESULTS_EVERY);
        results_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut control_open = true;
        let mut was_waiting = false;
        loop {
            // The batch timer runs only while something waits for it: an idle Vigil is not
            // woken four times a second (each wake-up costs more than the batch it finds).
            // The first thing to wait starts a full period.
            let waiting = self.has_waiting();
            if waiting && !was_waiting {
                results_timer.reset();
            }
            was_waiting = waiting;
            tokio::select! {
                biased;
                cmd = control.recv(), if control_open => match cmd {
                    Some(Control::Reconfigure(config, respond)) => {
                        let _ = respond.send(self.configure(config));
                    }
                    Some(Control::Ack { id, by, comment, respond }) => {
                        let _ = respond.send(self.ack(id, &by, &comment));
                    }
                    Some(Control::AddMaintenance(w)) => {
                        tracing::info!(name = %w.name, by = %w.by, "maintenance window opened");
                        self.api_windows.push(w.window());
                        self.store.send(Record::Maintenance(w));
                    }
                    Some(Control::LearnMaintenance(w)) => self.learn_window(&w),
                    Some(Control::Ingested { vantage, seen_ms, changes }) => {
                        self.ingested(&vantage, seen_ms, changes);
                    }
                    Some(Control::Settle(done)) => {
                        self.tick();
                        self.write_results();
                        self.publish_saved();
                        self.publish_systems();
                        self.store.send(Record::Flush(done));
                    }
                    None => control_open = false,
                },
                r = results.recv() => match r {
                    Some(r) => self.handle(r),
                    None => {
                        self.write_results();
                        self.publish_saved();
                        self.record_stop(self.clock.now_ms());
                        return self.store;
                    }
                },
                _ = results_timer.tick(), if waiting => {
                    self.write_results();
                    self.publish_saved();
                    self.publish_systems();
                }
                _ = ticker.tick() => self.tick(),
                _ = pruner.tick() => {
                    let before = self.clock.now_ms() - self.config.storage.raw_retention.as_millis() as i64;
                    self.store.send(Record::Prune(before));
                }
            }
        }
    }
}
