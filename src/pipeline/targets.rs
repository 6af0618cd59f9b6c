//! The pipeline's targets: one entry per configured target (its state, thresholds,
//! dependencies, metrics handle and flapping history), rebuilt on every reload without
//! losing state, and the questions asked of them (maintenance, dependencies, blindness).

use std::sync::Arc;

use super::Pipeline;
use crate::alert::state::{FlapTracker, Rule};
use crate::config::{Check, Config, ProbeSpec};
use crate::metrics::TargetMetrics;
use crate::model::{State, TargetKey, TargetState};
use crate::status::{TargetView, system_state};
use crate::store::Record;

pub(super) struct Entry {
    pub(super) system: String,
    pub(super) kind: crate::config::Kind,
    pub(super) rule: Rule,
    pub(super) check: Arc<Check>,
    pub(super) target_name: String,
    /// Target ids this target depends on.
    pub(super) depends_on: Vec<String>,
    /// Its redundant parents (`depends_on_any`): it depends on them only all together.
    pub(super) depends_on_any: Vec<String>,
    pub(super) state: TargetState,
    pub(super) metrics: TargetMetrics,
    pub(super) flaps: FlapTracker,
    /// When its last result came (or when it was configured), Unix ms: the watchdog's clock.
    pub(super) last_run_ms: i64,
    /// The stored history ends in "not watched" (Vigil stopped or crashed): the first
    /// result records the state again, even when it did not change.
    pub(super) resume_history: bool,
    /// Another shard's target, watched here for its dependants (`--shard`): its series
    /// are not exported here.
    pub(super) helper: bool,
}

/// The perfdata labels a check exports as metrics.
pub(super) fn perfdata_labels(check: &Check) -> &[String] {
    match &check.probe {
        ProbeSpec::Exec(e) => &e.perfdata,
        _ => &[],
    }
}

/// The id a target had before its check was renamed (`renamed_from: system/check`).
fn former_id(check: &Check, key: &TargetKey) -> Option<String> {
    let (system, former) = check.renamed_from.as_deref()?.split_once('/')?;
    let target = if key.target == check.id { former } else { key.target.as_str() };
    Some(TargetKey { system: system.into(), check: former.into(), target: target.into() }.id())
}

/// Expands `depends_on` references (check or target ids) to target ids.
pub(super) fn expand_dependencies(config: &Config, refs: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for r in refs {
        for (s, c, t) in config.targets() {
            let check_id = format!("{}/{}", s.id, c.id);
            if &check_id == r || t.id() == r {
                out.push(t.id().to_string());
            }
        }
    }
    out
}

impl Pipeline {
    /// Switches to `config`, keeping what is known of the targets that stay (or were
    /// renamed); returns warnings for the operator.
    pub(super) fn configure(&mut self, config: Arc<Config>) -> Vec<String> {
        let warnings = self.retire_receivers(&config);
        let taken = self.take_over_from_store(&config);
        let now = self.clock.now_ms();
        let mut old = std::mem::take(&mut self.entries);
        // (former id, new id) of the targets of checks renamed with `renamed_from`.
        let mut renamed: Vec<(String, String)> = Vec::new();
        for system in &config.systems {
            for check in &system.checks {
                let shared = check.clone();
                let depends_on = expand_dependencies(&config, &check.depends_on);
                let depends_on_any = expand_dependencies(&config, &check.depends_on_any);
                for target in &check.targets {
                    let id = target.id().to_string();
                    // What is known under the target's id — or, for a renamed check not yet
                    // known under its new id, under its former one.
                    let known = |x: &str| {
                        old.contains_key(x) || self.restored.contains_key(x) || self.engine.open_incident(x).is_some()
                    };
                    let source = match former_id(check, &target.key) {
                        Some(former) if !known(&id) && known(&former) => {
                            renamed.push((former.clone(), id.clone()));
                            former
                        }
                        _ => id.clone(),
                    };
                    let previous = old.remove(&source);
                    let mut entry = self.entry(&config, &shared, &target.key, &source, previous, now);
                    entry.depends_on = depends_on.clone();
                    entry.depends_on_any = depends_on_any.clone();
                    if let Some(state) = taken.get(&id) {
                        // Taken over: the owner's judgement, which its open incident matches.
                        entry.state = *state;
                        self.metrics.set_state(&entry.metrics, state.state);
                    }
                    self.entries.insert(id, entry);
                }
            }
        }
        for entry in old.values() {
            self.metrics.remove(&entry.metrics);
        }
        self.dependents = super::redundancy::Dependents::of(&self.entries);
        self.metrics.checks_configured.set(self.entries.len() as i64);
        self.config = config.clone();
        self.reconcile_incidents(&renamed, now);

        let mut board = self.board.write().unwrap_or_else(|p| p.into_inner());
        // Sharing its store with a cluster, the node exports each system's state over the
        // whole cluster (cluster::spawn_view), not over its own part.
        let system_metrics = !self.shares_store();
        for system in board.config.systems.iter().filter(|_| system_metrics) {
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
        for system in board.config.systems.iter().filter(|_| system_metrics) {
            let up = !matches!(system_state(system, &board.targets), State::Down | State::Unreachable);
            self.metrics.set_system(&system.id, up, system.sla);
        }
        drop(board);
        self.outlook.send_modify(|o| o.config = config.clone());
        self.config = config;
        warnings
    }

    /// The entry of `key` in `config`, carrying on from what was known under `source` (its
    /// id, or its former one): the `previous` entry, else what the store remembered.
    fn entry(
        &mut self,
        config: &Config,
        check: &Arc<Check>,
        key: &TargetKey,
        source: &str,
        previous: Option<Box<Entry>>,
        now: i64,
    ) -> Box<Entry> {
        let kind = check.probe.kind();
        let same = source == key.id();
        let last_run_ms = previous.as_ref().map_or(now, |e| e.last_run_ms);
        let resume_history = previous.as_ref().is_some_and(|e| e.resume_history);
        // Flapping detection goes on across reloads (and restarts, from the store).
        let helper = config.helpers.contains_key(&key.id());
        let (state, metrics, flaps) = match previous {
            Some(e) if e.kind == kind && same && e.helper == helper => (e.state, e.metrics, e.flaps),
            Some(e) => {
                self.metrics.remove(&e.metrics);
                (e.state, self.metrics.target(key, kind.as_str(), perfdata_labels(check)), e.flaps)
            }
            None => {
                let state = self.restored.remove(source).unwrap_or_else(|| TargetState::new(now));
                let flapping = config.alerting.flapping;
                let flaps = FlapTracker::replay(
                    &self.restored_flaps.remove(source).unwrap_or_default(),
                    flapping.changes,
                    flapping.window.as_millis() as i64,
                    now,
                );
                (state, self.metrics.target(key, kind.as_str(), perfdata_labels(check)), flaps)
            }
        };
        if helper {
            // Exported by its owner: here the series only record (no scrape sees them).
            self.metrics.remove(&metrics);
        }
        self.metrics.set_state(&metrics, state.state);
        Box::new(Entry {
            system: key.system.clone(),
            kind,
            rule: Rule { failure_threshold: check.failure_threshold, success_threshold: check.success_threshold },
            check: check.clone(),
            target_name: key.target.clone(),
            depends_on: Vec::new(),
            depends_on_any: Vec::new(),
            state,
            metrics,
            flaps,
            last_run_ms,
            resume_history,
            helper,
        })
    }

    /// Keeps the receivers `config` removes for delivery (the resolutions of incidents
    /// announced on them still go out, through their former channels), and warns about each
    /// one that open incidents were announced on.
    fn retire_receivers(&mut self, config: &Config) -> Vec<String> {
        let gone: Vec<crate::config::alerting::Receiver> =
            self.config.receivers.iter().filter(|r| !config.receivers.iter().any(|n| n.id == r.id)).cloned().collect();
        let mut warnings = Vec::new();
        for r in &gone {
            let open = self.engine.open_incidents().filter(|i| i.told.iter().any(|t| t.receiver == r.id)).count();
            if open > 0 {
                warnings.push(format!(
                    "receiver \"{}\" was removed while {open} open incident(s) were announced on it: their resolutions still go to its former channels until Vigil restarts",
                    r.id
                ));
            }
        }
        self.outlook.send_modify(|o| {
            o.retired.retain(|r| !config.receivers.iter().any(|n| n.id == r.id) && !gone.iter().any(|g| g.id == r.id));
            o.retired.extend(gone);
        });
        // Receivers neither configured nor kept from a reload (removed while Vigil was stopped).
        let outlook = self.outlook.borrow();
        let mut unknown: Vec<&str> = self
            .engine
            .open_incidents()
            .flat_map(|i| i.told.iter().map(|t| t.receiver.as_str()))
            .filter(|r| outlook.receiver(r).is_none() && !config.receivers.iter().any(|n| n.id == *r))
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        for r in unknown {
            warnings.push(format!(
                "receiver \"{r}\" is not configured, but open incidents were announced on it: their resolutions cannot reach it"
            ));
        }
        drop(outlook);
        warnings
    }

    /// Moves the history and open incidents of renamed targets to their new ids, and closes
    /// the open incidents of targets no longer configured (resolved as `removed`, and the
    /// receivers told hear of it): no incident outlives its check. One whose target moved to
    /// another shard or node is closed as `moved` (handed over) instead.
    fn reconcile_incidents(&mut self, renamed: &[(String, String)], now: i64) {
        let mut records = Vec::new();
        let mut effects = Vec::new();
        let language = self.config.instance.language;
        for (from, to) in renamed {
            tracing::info!(from = %from, to = %to, "check renamed: its history and incidents move to the new id");
            records.push(Record::Rename { from: from.clone(), to: to.clone() });
            let Some(entry) = self.entries.get(to) else { continue };
            let Some(system) = self.config.systems.iter().find(|s| s.id == entry.system) else { continue };
            effects.extend(self.engine.rename(from, to, |i| {
                i.system = system.id.clone();
                i.system_name = match language {
                    crate::config::Language::Vi => system.name_vi.clone(),
                    crate::config::Language::En => system.name_en.clone(),
                };
                i.check = entry.check.id.clone();
                i.check_name = entry.check.name.clone();
                i.target_name = entry.target_name.clone();
            }));
        }
        let removed: Vec<String> = self
            .engine
            .open_incidents()
            .filter(|i| !self.entries.contains_key(&i.target))
            .filter(|i| {
                i.system != super::vantages::VANTAGE_SYSTEM || !self.config.vantages.iter().any(|v| v.name == i.check)
            })
            // A vantage's view of a target lives as long as the target and the vantage.
            .filter(|i| {
                !i.vantage.as_ref().is_some_and(|v| {
                    self.config.vantages.iter().any(|c| &c.name == v)
                        && i.target.rsplit_once('@').is_some_and(|(t, _)| self.entries.contains_key(t))
                })
            })
            .map(|i| i.target.clone())
            .collect();
        if self.shares_store() {
            // Run here as a standby or helper now: the owner goes on with its incident.
            let standby: Vec<String> = self
                .engine
                .open_incidents()
                .filter(|i| self.config.helpers.contains_key(&i.target))
                .map(|i| i.target.clone())
                .collect();
            standby.iter().for_each(|t| self.engine.hand_over(t));
        }
        for target in removed {
            if let Some(owner) = self.config.elsewhere.get(&target) {
                tracing::info!(target_id = %target, %owner, "target moved away: its open incident is handed over");
                if self.shares_store() {
                    // It stays open in the shared store: the new owner goes on with it.
                    self.engine.hand_over(&target);
                    continue;
                }
                effects.extend(self.engine.close_moved(&target, owner, now));
                continue;
            }
            tracing::warn!(target_id = %target, "check removed from the configuration: its open incident is closed");
            effects.extend(self.engine.close_removed(&target, now));
        }
        if !effects.is_empty() || !records.is_empty() {
            self.apply(effects, records);
        }
    }

    /// Whether any dependency of `entry` is down, unreachable or failing its way there.
    pub(super) fn dependency_failing(&self, depends_on: &[String]) -> Vec<String> {
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

    /// The start of the day (instance time zone) holding `at`, cached for the current day.
    pub(super) fn day_of(&mut self, at: i64) -> i64 {
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
    pub(super) fn in_maintenance(&self, target: &str, now: i64) -> bool {
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
    pub(super) fn failing(&self, id: &str) -> bool {
        self.entries.get(id).is_some_and(|e| {
            matches!(e.state.state, State::Down | State::Unreachable) || e.state.streak.is_some_and(|s| s.worse)
        })
    }

    /// Whether Vigil is blind for `target`: every uplink check fails, and `target` is not one.
    pub(super) fn blind_for(&self, target: &str) -> bool {
        let uplink = &self.config.instance.uplink;
        !uplink.is_empty() && !uplink.iter().any(|u| u == target) && uplink.iter().all(|u| self.failing(u))
    }
}
