//! The pipeline: the one task that consumes probe results in order. For each result it
//! updates metrics, steps the target's state machine (with its dependencies' states),
//! opens and resolves incidents, and writes the result, the state change, the incident and
//! its notifications to the store in one transaction before handing the notifications to
//! the outbox dispatcher. Being the only writer of alert state, it needs no locks for it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::alert::engine::{Effect, Engine, Opening, Routing};
use crate::alert::state::{self, Flap, FlapTracker, Rule, Transition};
use crate::config::maintenance::{ApiWindow, Schedule, Window};
use crate::config::{Check, Config, ProbeSpec};
use crate::delivery::Outlook;
use crate::metrics::{Metrics, TargetMetrics};
use crate::model::Health;
use crate::model::incident::{Incident, Notification, Severity};
use crate::model::now_ms;
use crate::model::{State, TargetState};
use crate::probe::ProbeOutcome;
use crate::scheduler::ProbeResult;
use crate::status::{Board, LastResult, TargetView, system_state};
use crate::store::{ChangeRecord, Record, ResultRecord, Store};

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
    Reconfigure(Arc<Config>),
    /// Acknowledge an open incident; answers with the incident, or why not.
    Ack { id: i64, by: String, comment: String, respond: oneshot::Sender<Result<Incident, String>> },
    /// Open a maintenance window (stored, then in force).
    AddMaintenance(ApiWindow),
}

struct Entry {
    system: String,
    kind: &'static str,
    rule: Rule,
    check: Arc<Check>,
    target_name: String,
    /// Target ids this target depends on.
    depends_on: Vec<String>,
    state: TargetState,
    metrics: TargetMetrics,
    flaps: FlapTracker,
    /// When its last result came (or when it was configured), Unix ms: the watchdog's clock.
    last_run_ms: i64,
    /// The stored history ends in "not watched" (Vigil stopped or crashed): the first
    /// result records the state again, even when it did not change.
    resume_history: bool,
}

/// The perfdata labels a check exports as metrics.
fn perfdata_labels(check: &Check) -> &[String] {
    match &check.probe {
        ProbeSpec::Exec(e) => &e.perfdata,
        _ => &[],
    }
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
    entries: HashMap<String, Entry>,
    /// States read from the store at start-up, used when a target first appears.
    restored: HashMap<String, TargetState>,
    /// Maintenance windows opened through the API.
    api_windows: Vec<Window>,
    /// The current day (instance time zone) for rollups: [start, end) in Unix ms.
    day: Option<(i64, i64)>,
    /// The last month whose report was queued (or found queued).
    report_done: Option<String>,
    /// Plain results waiting to be written (see [`RESULTS_EVERY`]).
    waiting_results: Vec<Record>,
    /// Whether results are expected (off when Vigil only serves, without probing).
    watchdog: bool,
    /// Since when the store fails, once every receiver has been told (straight, not through
    /// the store).
    store_alerted: Option<i64>,
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
}

/// Expands `depends_on` references (check or target ids) to target ids.
fn expand_dependencies(config: &Config, refs: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for r in refs {
        for (s, c, t) in config.targets() {
            let check_id = format!("{}/{}", s.id, c.id);
            if &check_id == r || &t.key.id() == r {
                out.push(t.key.id());
            }
        }
    }
    out
}

impl Pipeline {
    /// A pipeline for `config`, resuming from what the store remembers; it publishes to
    /// `outputs` (notifications only after they are stored).
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>, store: Store, resume: Resume, outputs: Outputs) -> Pipeline {
        let Outputs { board, outlook, events, notifications } = outputs;
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
            api_windows: resume.maintenance.iter().map(ApiWindow::window).collect(),
            day: None,
            report_done: None,
            waiting_results: Vec::new(),
            watchdog: true,
            store_alerted: None,
        };
        p.configure(config);
        p.record_unwatched(&resume.watched, now_ms());
        p.publish_incidents();
        p
    }

    /// Time Vigil did not watch is no data: after a crash (the history does not end in a
    /// clean stop), each target's gap is recorded from one interval after its last result;
    /// and every restored target records its state again with its first result.
    fn record_unwatched(&mut self, watched: &HashMap<String, (i64, Option<State>)>, now: i64) {
        let mut records = Vec::new();
        for (id, entry) in self.entries.iter_mut() {
            let Some((last_ms, tail)) = watched.get(id) else { continue };
            entry.resume_history = true;
            let gap = last_ms + entry.check.interval.as_millis() as i64;
            if *tail != Some(State::Unknown) && gap < now {
                records.push(Record::Change(ChangeRecord {
                    target: id.clone(),
                    at_ms: gap,
                    from: entry.state.state,
                    to: State::Unknown,
                    reason: Some("not_watched"),
                    message: "Vigil was not running (no result after this time)".into(),
                }));
            }
        }
        if !records.is_empty() {
            tracing::warn!(
                targets = records.len(),
                "Vigil did not stop cleanly: the time since each target's last result is recorded as no data"
            );
            self.store.send(Record::Batch(records));
        }
    }

    /// A clean stop: from now on nothing is watched, and the history says so.
    fn record_stop(&mut self, now: i64) {
        let records: Vec<Record> = self
            .entries
            .iter()
            .map(|(id, e)| {
                Record::Change(ChangeRecord {
                    target: id.clone(),
                    at_ms: now,
                    from: e.state.state,
                    to: State::Unknown,
                    reason: Some("stopped"),
                    message: "Vigil stopped".into(),
                })
            })
            .collect();
        if !records.is_empty() {
            self.store.send(Record::Batch(records));
        }
    }

    /// A pipeline that expects no results (Vigil serving without probing): no watchdog.
    pub fn without_watchdog(mut self) -> Pipeline {
        self.watchdog = false;
        self
    }

    fn configure(&mut self, config: Arc<Config>) {
        let now = now_ms();
        let mut old = std::mem::take(&mut self.entries);
        for system in &config.systems {
            for check in &system.checks {
                let shared = Arc::new(check.clone());
                let depends_on = expand_dependencies(&config, &check.depends_on);
                for target in &check.targets {
                    let id = target.key.id();
                    let kind = check.probe.kind();
                    let rule =
                        Rule { failure_threshold: check.failure_threshold, success_threshold: check.success_threshold };
                    let last_run_ms = old.get(&id).map_or(now, |e| e.last_run_ms);
                    let resume_history = old.get(&id).is_some_and(|e| e.resume_history);
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
                    let entry = Entry {
                        system: system.id.clone(),
                        kind,
                        rule,
                        check: shared.clone(),
                        target_name: target.key.target.clone(),
                        depends_on: depends_on.clone(),
                        state,
                        metrics,
                        flaps: FlapTracker::default(),
                        last_run_ms,
                        resume_history,
                    };
                    self.entries.insert(id, entry);
                }
            }
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
                (id.clone(), TargetView { state: e.state, last, flapping: e.flaps.is_flapping(), stale: false })
            })
            .collect();
        board.config = config.clone();
        for system in &board.config.systems {
            let up = !matches!(system_state(system, &board.targets), State::Down | State::Unreachable);
            self.metrics.set_system(&system.id, up, system.sla);
        }
        drop(board);
        self.outlook.send_modify(|o| o.config = config.clone());
        self.config = config;
    }

    /// Whether any dependency of `entry` is down, unreachable or failing its way there.
    fn dependency_failing(&self, depends_on: &[String]) -> Vec<String> {
        depends_on
            .iter()
            .filter(|d| {
                self.entries.get(*d).is_some_and(|e| {
                    matches!(e.state.state, State::Down | State::Unreachable) || e.state.streak.is_some_and(|s| s.worse)
                })
            })
            .cloned()
            .collect()
    }

    fn routing(&self) -> (Arc<Config>, String) {
        (self.config.clone(), self.config.instance.location.clone().unwrap_or_default())
    }

    /// The start of the day (instance time zone) holding `at`, cached for the current day.
    fn day_of(&mut self, at: i64) -> i64 {
        if let Some((start, end)) = self.day
            && (start..end).contains(&at)
        {
            return start;
        }
        let tz = &self.config.instance.timezone;
        let bounds = jiff::Timestamp::from_millisecond(at).ok().and_then(|t| {
            let date = t.to_zoned(tz.clone()).date();
            let start = date.to_zoned(tz.clone()).ok()?.timestamp().as_millisecond();
            let end = date.tomorrow().ok()?.to_zoned(tz.clone()).ok()?.timestamp().as_millisecond();
            Some((start, end))
        });
        self.day = bounds;
        bounds.map_or(at - at.rem_euclid(86_400_000), |(s, _)| s)
    }

    /// Whether a maintenance window covers the target now.
    fn in_maintenance(&self, target: &str, now: i64) -> bool {
        if self.config.maintenance.is_empty() && self.api_windows.is_empty() {
            return false;
        }
        let Some(e) = self.entries.get(target) else { return false };
        let check = format!("{}/{}", e.system, e.check.id);
        let tz = &self.config.instance.timezone;
        self.config
            .maintenance
            .iter()
            .chain(&self.api_windows)
            .any(|w| w.covers(&e.system, &check, target) && w.active(now, tz))
    }

    /// Whether target `id` is failing or down (or on its way there).
    fn failing(&self, id: &str) -> bool {
        self.entries.get(id).is_some_and(|e| {
            matches!(e.state.state, State::Down | State::Unreachable) || e.state.streak.is_some_and(|s| s.worse)
        })
    }

    /// Whether Vigil is blind for `target`: every uplink check fails, and `target` is not one.
    fn blind_for(&self, target: &str) -> bool {
        let uplink = &self.config.instance.uplink;
        !uplink.is_empty() && !uplink.iter().any(|u| u == target) && uplink.iter().all(|u| self.failing(u))
    }

    fn handle(&mut self, result: ProbeResult) {
        let Some(depends_on) = self.entries.get(&result.target_id).map(|e| e.depends_on.clone()) else {
            return; // A target removed by a reload while its probe was running.
        };
        let failing_deps = self.dependency_failing(&depends_on);
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
            if flapping_started && let Some(o) = self.opening(&result.target_id, Severity::Critical, outcome, started) {
                let (config, location) = self.routing();
                effects.extend(self.engine.flapping(o, Routing { routes: &config.routes, location: &location }, now));
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
        }));
        self.apply(effects, records);

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
                    last: Some(LastResult { at_ms: result.finished_ms, outcome }),
                    flapping,
                    stale: false,
                },
            );
            if transition.is_some()
                && let Some(system) = board.config.systems.iter().find(|s| s.id == system_id)
            {
                let up = !matches!(system_state(system, &board.targets), State::Down | State::Unreachable);
                self.metrics.set_system(&system.id, up, system.sla);
            }
        }
        let _ = self.events.send(event);
    }

    /// Incidents and notifications caused by a transition.
    /// What an incident of `target` would say.
    fn opening(&self, target: &str, severity: Severity, outcome: &ProbeOutcome, started_ms: i64) -> Option<Opening> {
        let entry = self.entries.get(target)?;
        let system = self.config.systems.iter().find(|s| s.id == entry.system)?;
        let system_name = match self.config.instance.language {
            crate::config::Language::Vi => system.name_vi.clone(),
            crate::config::Language::En => system.name_en.clone(),
        };
        // Dependents already unreachable because of this target are listed at once.
        let mut affected: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.state.state == State::Unreachable && e.depends_on.iter().any(|d| d == target))
            .map(|(id, _)| id.clone())
            .collect();
        affected.sort();
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
        })
    }

    fn on_transition(
        &mut self,
        target: &str,
        t: Transition,
        outcome: &ProbeOutcome,
        started_ms: i64,
        failing_deps: &[String],
        quiet: bool,
    ) -> Vec<Effect> {
        let (config, location) = self.routing();
        let routing = Routing { routes: &config.routes, location: &location };
        let severity = match t.to {
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
                let Some(opening) = self.opening(target, severity, outcome, started_ms) else { return Vec::new() };
                self.metrics.incidents_total.with_label_values(&[&opening.system, severity.as_str()]).inc();
                self.engine.open(opening, routing, t.at_ms, quiet)
            }
            None => self.engine.resolve(target, t.at_ms),
        };
        if t.to == State::Unreachable {
            effects.extend(self.engine.add_affected(failing_deps, target));
        }
        effects
    }

    /// Stores records and effects in one transaction, then hands notifications on.
    fn apply(&mut self, effects: Vec<Effect>, mut records: Vec<Record>) {
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
        let incidents_changed = !effects.is_empty();
        for effect in effects {
            match effect {
                Effect::Save(i) => records.push(Record::Incident(Box::new(i))),
                Effect::Notify(n) => {
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
        if incidents_changed {
            self.publish_incidents();
        }
    }

    /// Updates the open-incident gauges and the board's list.
    fn publish_incidents(&self) {
        let open: Vec<Incident> = self.engine.open_incidents().cloned().collect();
        for system in &self.config.systems {
            for severity in [Severity::Critical, Severity::Warning] {
                let n = open.iter().filter(|i| i.system == system.id && i.severity == severity).count();
                self.metrics.incidents_open.with_label_values(&[&system.id, severity.as_str()]).set(n as i64);
            }
        }
        self.outlook.send_modify(|o| o.open_incidents = open.clone());
        self.board.write().unwrap_or_else(|p| p.into_inner()).open_incidents = open;
    }

    /// Queues the previous month's report for `reports.monthly` once its day and time came.
    fn monthly_report(&mut self, now: i64) {
        let Some(m) = self.config.monthly_report.clone() else { return };
        let tz = self.config.instance.timezone.clone();
        let Ok(local) = jiff::Timestamp::from_millisecond(now).map(|t| t.to_zoned(tz.clone())) else { return };
        if (local.day(), local.hour(), local.minute()) < (m.day as i8, m.hour as i8, m.minute as i8) {
            return;
        }
        let Ok(previous) = local.date().first_of_month().yesterday() else { return };
        let month = previous.strftime("%Y-%m").to_string();
        if self.report_done.as_deref() == Some(month.as_str()) {
            return;
        }
        let store = self.store.path().to_path_buf();
        let key = |r: &str| format!("report-{month}-{r}");
        if m.receivers.iter().all(|r| crate::store::query::outbox_has(&store, &key(r)).unwrap_or(false)) {
            self.report_done = Some(month);
            return;
        }
        let built = crate::report::month(&month, &tz).and_then(|span| {
            crate::report::build(&self.config, &crate::store::Reader::new(&store), &span, m.language, now)
        });
        let report = match built {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(month, error = %e, "cannot build the monthly report");
                self.report_done = Some(month);
                return;
            }
        };
        let mail = crate::model::incident::ReportMail {
            month: month.clone(),
            subject: match m.language {
                crate::config::Language::Vi => {
                    format!("[Vigil] Báo cáo thời gian hoạt động tháng {month} – {}", self.config.instance.name)
                }
                crate::config::Language::En => format!("[Vigil] Uptime report {month} – {}", self.config.instance.name),
            },
            html: crate::report::render(&report, crate::report::Format::Html, &tz),
            csv: crate::report::render(&report, crate::report::Format::Csv, &tz),
        };
        let effects = m
            .receivers
            .iter()
            .map(|r| {
                let mut n = crate::alert::message::test_notification(r, now);
                n.key = key(r);
                n.event = crate::model::incident::EventKind::Report;
                n.report = Some(Box::new(mail.clone()));
                Effect::Notify(n)
            })
            .collect();
        tracing::info!(month, receivers = ?m.receivers, "monthly report queued");
        self.apply(effects, Vec::new());
        self.report_done = Some(month);
    }

    /// The watchdog: a target with no result for more than three intervals (and its
    /// timeout) has a timer that stopped — a bug; it is logged, counted in
    /// `vigil_checks_stale` and marked on the board.
    fn watch_timers(&mut self, now: i64) {
        let stale: std::collections::HashSet<&String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                now - e.last_run_ms > 3 * e.check.interval.as_millis() as i64 + e.check.timeout.as_millis() as i64
            })
            .map(|(id, _)| id)
            .collect();
        self.metrics.checks_stale.set(stale.len() as i64);
        let mut board = self.board.write().unwrap_or_else(|p| p.into_inner());
        for (id, view) in board.targets.iter_mut() {
            let is_stale = stale.contains(id);
            if is_stale && !view.stale {
                tracing::error!(target_id = %id, "no result for more than three intervals: the check has stopped running");
            }
            view.stale = is_stale;
        }
    }

    /// Tells every receiver when the store has failed to write for `store_alert_after`, and
    /// when it writes again. These notices go straight to delivery — the store they would be
    /// written to is the thing failing; every other notification waits for its commit.
    fn watch_store(&mut self, now: i64, failing: Option<&(i64, String)>) {
        let after = self.config.alerting.store_alert_after.as_millis() as i64;
        let receivers = self.config.receivers.iter().map(|r| r.id.as_str());
        let notices: Vec<Notification> = match (failing, self.store_alerted) {
            (Some((since, error)), None) if now - since >= after => {
                tracing::error!(since = *since, error = %error, "the store fails to write: telling every receiver");
                self.store_alerted = Some(*since);
                receivers
                    .map(|r| crate::alert::message::store_failing_notification(r, *since, error, None, now))
                    .collect()
            }
            (None, Some(since)) => {
                self.store_alerted = None;
                receivers
                    .map(|r| crate::alert::message::store_failing_notification(r, since, "", Some(now), now))
                    .collect()
            }
            _ => Vec::new(),
        };
        for n in notices {
            let _ = self.notifications.send(n);
        }
    }

    fn tick(&mut self) {
        let now = now_ms();
        if self.watchdog {
            self.watch_timers(now);
        }
        // Windows opened through the API are dropped once they have ended (they piled up).
        self.api_windows.retain(|w| !matches!(w.schedule, Schedule::Once { to_ms, .. } if to_ms <= now));
        let store = self.store.health().snapshot();
        self.metrics.set_store(store.write_errors, store.last_success_ms, store.pending, store.shed_results);
        self.watch_store(now, store.failing.as_ref());
        self.monthly_report(now);
        let window = self.config.alerting.flapping.window.as_millis() as i64;
        for (id, e) in self.entries.iter_mut() {
            if e.flaps.settle(now, window) == Flap::Ended {
                tracing::info!(target_id = %id, "target is stable again; notifications resume");
            }
        }
        let (config, location) = self.routing();
        let entries = &self.entries;
        let paused = |t: &str| entries.get(t).is_some_and(|e| e.state.state == State::Maintenance);
        let effects = self.engine.tick(Routing { routes: &config.routes, location: &location }, now_ms(), &paused);
        if !effects.is_empty() {
            self.apply(effects, Vec::new());
        }
    }

    fn ack(&mut self, id: i64, by: &str, comment: &str) -> Result<Incident, String> {
        let effects = self.engine.ack(id, by, comment, now_ms()).ok_or_else(|| format!("incident {id} is not open"))?;
        let incident = effects
            .iter()
            .find_map(|e| match e {
                Effect::Save(i) => Some(i.clone()),
                Effect::Notify(_) => None,
            })
            .ok_or_else(|| format!("incident {id} is not open"))?;
        tracing::info!(incident = id, by, comment, "incident acknowledged");
        self.apply(effects, Vec::new());
        Ok(incident)
    }

    /// Sends the waiting plain results to the store.
    fn write_results(&mut self) {
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
        loop {
            tokio::select! {
                biased;
                cmd = control.recv(), if control_open => match cmd {
                    Some(Control::Reconfigure(config)) => self.configure(config),
                    Some(Control::Ack { id, by, comment, respond }) => {
                        let _ = respond.send(self.ack(id, &by, &comment));
                    }
                    Some(Control::AddMaintenance(w)) => {
                        tracing::info!(name = %w.name, by = %w.by, "maintenance window opened");
                        self.api_windows.push(w.window());
                        self.store.send(Record::Maintenance(w));
                    }
                    None => control_open = false,
                },
                r = results.recv() => match r {
                    Some(r) => self.handle(r),
                    None => {
                        self.write_results();
                        self.record_stop(now_ms());
                        return self.store;
                    }
                },
                _ = results_timer.tick() => self.write_results(),
                _ = ticker.tick() => self.tick(),
                _ = pruner.tick() => {
                    let before = now_ms() - self.config.storage.raw_retention.as_millis() as i64;
                    self.store.send(Record::Prune(before));
                }
            }
        }
    }
}
