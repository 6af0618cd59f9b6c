//! What the pipeline watches besides results: the time Vigil did not watch (recorded as no
//! data), stopped timers (the watchdog), a failing store, flapping that settles, and the
//! incident engine's timers (reminders, escalations, group announcements).

use std::collections::HashMap;

use super::Pipeline;
use crate::alert::engine::Routing;
use crate::alert::state::Flap;
use crate::config::maintenance::Schedule;
use crate::model::State;
use crate::model::incident::Notification;
use crate::store::{ChangeRecord, Record};

/// A target that never stops flapping keeps the team uninformed at most this many flapping
/// windows: then its quiet incident, if one is open, is announced.
const QUIET_WINDOWS_MAX: i64 = 3;

impl Pipeline {
    /// Time Vigil did not watch is no data: after a crash (the history does not end in a
    /// clean stop), each target's gap is recorded from one interval after its last result;
    /// and every restored target records its state again with its first result.
    pub(super) fn record_unwatched(&mut self, watched: &HashMap<String, (i64, Option<State>)>, now: i64) {
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
    pub(super) fn record_stop(&mut self, now: i64) {
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

    /// The watchdog: a target with no result for more than three intervals (and its
    /// timeout) has a timer that stopped — a bug; it is logged, counted in
    /// `vigil_checks_stale` and marked on the board.
    pub(super) fn watch_timers(&mut self, now: i64) {
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
    pub(super) fn watch_store(&mut self, now: i64, failing: Option<&(i64, String)>) {
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

    pub(super) fn tick(&mut self) {
        self.release_held();
        self.refill_incident_ids();
        let now = self.clock.now_ms();
        if self.watchdog {
            self.watch_timers(now);
        }
        self.watch_vantages(now);
        self.speak_for_the_centre(now);
        self.page_held_without_database(now);
        // Windows opened through the API are dropped once they have ended (they piled up).
        self.api_windows.retain(|w| !matches!(w.schedule, Schedule::Once { to_ms, .. } if to_ms <= now));
        let store = self.store.health().snapshot();
        self.metrics.set_store(store.write_errors, store.last_success_ms, store.pending, store.shed_results);
        self.watch_store(now, store.failing.as_ref());
        let window = self.config.alerting.flapping.window.as_millis() as i64;
        let mut settled = Vec::new();
        for (id, e) in self.entries.iter_mut() {
            if e.flaps.settle(now, window) == Flap::Ended {
                tracing::info!(target_id = %id, "target is stable again; notifications resume");
                settled.push(id.clone());
            } else if e.flaps.overdue(now, window, QUIET_WINDOWS_MAX) {
                settled.push(id.clone());
            }
        }
        let (config, location) = self.routing();
        // Flapping never hides an outage: an incident opened quietly while the target
        // flapped is announced when the flapping ends — or, for a target that never stops,
        // every QUIET_WINDOWS_MAX windows — if it is still open.
        let mut announced = Vec::new();
        for id in &settled {
            announced.extend(self.engine.announce_quiet(
                id,
                Routing { routes: &config.routes, location: &location },
                now,
            ));
        }
        if !announced.is_empty() {
            self.apply(announced, Vec::new());
        }
        let entries = &self.entries;
        // In maintenance, or unreachable (its root cause's incident speaks for it).
        let paused =
            |t: &str| entries.get(t).is_some_and(|e| matches!(e.state.state, State::Maintenance | State::Unreachable));
        let effects = self.engine.tick(Routing { routes: &config.routes, location: &location }, now, &paused);
        if !effects.is_empty() {
            self.apply(effects, Vec::new());
        }
    }
}
