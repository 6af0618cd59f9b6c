//! What the store knew at one moment: every target's state history, the incidents and
//! their exclusions — as of `at`, so that a figure computed later for the same moment comes
//! out the same. Pages, badges, the API and the reports read their figures from a ledger;
//! the arithmetic itself is [`super::accounting::account`].
//!
//! As of `at` means: state changes after `at` are ignored, an incident detected after `at`
//! does not exist, a resolution or an acknowledgement after `at` has not happened, and an
//! exclusion made after `at` has not been made. Only resolved incidents are excluded.
//!
//! Time Vigil did not watch is no data. A clean stop and the gap before a restart are
//! recorded in the history (see the pipeline); while Vigil is not running at all, a target
//! whose last result is older than one interval, its timeout and [`SILENCE_GRACE_MS`] has
//! no data from one interval after that result — the same span a restart later records.

use std::collections::HashMap;
use std::time::Duration;

use super::accounting::{Accounting, Excluded, History, account};
use crate::config::Config;
use crate::model::State;
use crate::model::incident::{Incident, Severity};
use crate::store::{Reader, StoreError, query};

/// How long past one interval and the timeout a target's last result still counts as
/// watched (results are written in batches) before its silence means Vigil is not running.
pub const SILENCE_GRACE_MS: i64 = 5_000;

/// An incident as known at the ledger's moment.
#[derive(Debug, Clone)]
pub struct KnownIncident {
    /// Without a resolution or an acknowledgement that came after the moment.
    pub incident: Incident,
    /// Its exclusion from the SLA, if one was made by the moment.
    pub exclusion: Option<query::Exclusion>,
}

impl KnownIncident {
    /// An outage: a critical incident that is not excluded. MTTA, MTTR and the longest
    /// outage are computed over outages only.
    pub fn is_outage(&self) -> bool {
        self.incident.severity == Severity::Critical && self.exclusion.is_none()
    }
}

/// Histories, incidents and exclusions as known at one moment.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    at: i64,
    histories: HashMap<String, History>,
    incidents: Vec<KnownIncident>,
}

impl Ledger {
    /// Reads what the store knew at `at` about the configured targets over [from, to)
    /// (a few set queries, whatever the number of targets).
    pub fn load(config: &Config, store: &Reader, from: i64, to: i64, at: i64) -> Result<Ledger, StoreError> {
        let histories = Ledger::histories(config, store, from, at)?;
        Ledger::with_histories(Some(store), histories, from, to, at)
    }

    /// What pages that draw bars and uptimes need: the same histories and figures as
    /// [`Ledger::load`], but [`Ledger::incidents`] holds only the excluded incidents (all
    /// that the figures need; an incident storm is not read for a bar).
    pub fn load_figures(config: &Config, store: &Reader, from: i64, to: i64, at: i64) -> Result<Ledger, StoreError> {
        let histories = Ledger::histories(config, store, from, at)?;
        let incidents = known_incidents(store.excluded_incidents_between(from, to)?, store, at)?;
        Ok(Ledger::assemble(histories, incidents, at))
    }

    /// The configured targets' histories from `from`, as known at `at`.
    fn histories(config: &Config, store: &Reader, from: i64, at: i64) -> Result<HashMap<String, History>, StoreError> {
        let mut histories =
            store.state_histories_as(from, |(initial, changes)| History { initial, changes, excluded: Vec::new() })?;
        // Only a target silent for longer than its interval and timeout can have an
        // unwatched tail: those whose last result is older than the shortest of them.
        let shortest = config.targets().map(|(_, c, _)| (c.interval + c.timeout).as_millis() as i64).min();
        let stored = store.last_stored_before(at - SILENCE_GRACE_MS - shortest.unwrap_or(0))?;
        for (_, check, t) in config.targets().filter(|_| !stored.is_empty()) {
            let Some(last_at) = stored.get(t.id()) else { continue };
            let history = histories.entry(t.id().to_string()).or_default();
            // The state the history ended on: its last change, or the state it began in.
            let last = (*last_at, history.changes.last().map(|(_, s)| *s).or(history.initial));
            unwatched_tail(history, Some(last), check.interval, check.timeout, from, at);
        }
        if !config.vantages.is_empty() {
            vantage_views(config, store, &mut histories, from, at)?;
        }
        Ok(histories)
    }

    /// A ledger over given histories (from Prometheus, say); incidents and exclusions come
    /// from the store when there is one.
    pub fn with_histories(
        store: Option<&Reader>,
        histories: HashMap<String, History>,
        from: i64,
        to: i64,
        at: i64,
    ) -> Result<Ledger, StoreError> {
        let incidents = match store {
            Some(store) => known_incidents(store.incidents_between(from, to)?, store, at)?,
            None => Vec::new(),
        };
        Ok(Ledger::assemble(histories, incidents, at))
    }

    /// The ledger of `histories` and `incidents` at `at`: later changes dropped, excluded
    /// incidents' spans marked on their targets and dependants.
    fn assemble(mut histories: HashMap<String, History>, incidents: Vec<KnownIncident>, at: i64) -> Ledger {
        for h in histories.values_mut() {
            h.changes.retain(|(t, _)| *t <= at);
        }
        for k in incidents.iter().filter(|k| k.exclusion.is_some()) {
            let Some(end) = k.incident.resolved_ms else { continue };
            let span = |unreachable_only| Excluded { from_ms: k.incident.started_ms, to_ms: end, unreachable_only };
            if let Some(h) = histories.get_mut(&k.incident.target) {
                h.excluded.push(span(false));
            }
            for dependant in &k.incident.affected {
                if let Some(h) = histories.get_mut(dependant) {
                    h.excluded.push(span(true));
                }
            }
        }
        Ledger { at, histories, incidents }
    }

    /// The moment this ledger describes.
    pub fn at(&self) -> i64 {
        self.at
    }

    /// One target's history, if it is known.
    pub fn history(&self, id: &str) -> Option<&History> {
        self.histories.get(id)
    }

    /// The targets `ids` combined over [from, to) (a target without history is no data).
    pub fn account(&self, ids: &[String], from: i64, to: i64) -> Accounting {
        static NOTHING: History = History { initial: None, changes: Vec::new(), excluded: Vec::new() };
        let histories: Vec<&History> = ids.iter().map(|id| self.histories.get(id).unwrap_or(&NOTHING)).collect();
        account(&histories, from, to, self.at)
    }

    /// Histories already looked up (None: a target without history, no data) combined over
    /// each period between consecutive `bounds` (e.g. the days of a bar), in one pass.
    pub fn account_split_of(&self, histories: &[Option<&History>], bounds: &[i64]) -> Vec<Accounting> {
        static NOTHING: History = History { initial: None, changes: Vec::new(), excluded: Vec::new() };
        let histories: Vec<&History> = histories.iter().map(|h| h.unwrap_or(&NOTHING)).collect();
        super::accounting::account_split(&histories, bounds, self.at)
    }

    /// The incidents overlapping the ledger's span, oldest first.
    pub fn incidents(&self) -> &[KnownIncident] {
        &self.incidents
    }

    /// An incident's downtime inside [from, to): the time its target was down between its
    /// start and its resolution (or the ledger's moment), net of maintenance and no data;
    /// zero for an excluded incident.
    pub fn downtime(&self, k: &KnownIncident, from: i64, to: i64) -> i64 {
        let Some(h) = self.histories.get(&k.incident.target) else { return 0 };
        if k.exclusion.is_some() {
            return 0;
        }
        let start = k.incident.started_ms.max(from);
        let end = k.incident.resolved_ms.unwrap_or(self.at).min(to);
        account(&[h], start, end.max(start), self.at).down_ms
    }
}

/// Each vantage point's view of each target it runs, as `target@vantage`: the agent's own
/// state changes as far as the centre holds every record (its contiguous sequence); past
/// the newest such measurement — a lost vantage, or one still back-filling — no data, the
/// same way as the centre's own silence. Back-filled records turn that no data into
/// measured time; they never change time already measured.
fn vantage_views(
    config: &Config,
    store: &Reader,
    histories: &mut HashMap<String, History>,
    from: i64,
    at: i64,
) -> Result<(), StoreError> {
    let mut views = store.vantage_histories(from)?;
    for (_, check, t) in config.targets() {
        for vantage in &check.vantages {
            let id = format!("{}@{vantage}", t.id());
            let (initial, changes) = views.histories.remove(&id).unwrap_or_default();
            let mut history = History { initial, changes, excluded: Vec::new() };
            let last = history.changes.last().map(|(_, s)| *s).or(history.initial);
            let horizon = views.horizons.get(vantage).map(|h| (*h, last));
            unwatched_tail(&mut history, horizon, check.interval, check.timeout, from, at);
            histories.insert(id, history);
        }
    }
    Ok(())
}

/// While Vigil is not running nothing is recorded: a target silent for longer than one
/// interval, its timeout and the grace has no data from one interval after its last result.
fn unwatched_tail(
    h: &mut History,
    last: Option<(i64, Option<State>)>,
    interval: Duration,
    timeout: Duration,
    from: i64,
    at: i64,
) {
    let Some((last_ms, tail)) = last else { return };
    if tail == Some(State::Unknown) {
        return; // stopped cleanly or not judged: already no data
    }
    let gap = last_ms + interval.as_millis() as i64;
    if at <= gap + timeout.as_millis() as i64 + SILENCE_GRACE_MS || h.changes.last().is_some_and(|(t, _)| *t >= gap) {
        return;
    }
    if gap <= from {
        h.initial = Some(State::Unknown);
        h.changes.clear();
    } else {
        h.changes.push((gap, State::Unknown));
    }
}

/// `incidents` as known at `at`, with their exclusions.
fn known_incidents(incidents: Vec<Incident>, store: &Reader, at: i64) -> Result<Vec<KnownIncident>, StoreError> {
    let exclusions = store.exclusions()?;
    Ok(incidents
        .into_iter()
        .filter(|i| i.detected_ms <= at)
        .map(|mut i| {
            if i.resolved_ms.is_some_and(|r| r > at) {
                i.resolved_ms = None;
            }
            if i.ack.as_ref().is_some_and(|a| a.at_ms > at) {
                i.ack = None;
            }
            let exclusion = exclusions.get(&i.id).filter(|e| e.at_ms <= at && i.resolved_ms.is_some()).cloned();
            KnownIncident { incident: i, exclusion }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn up_since(t: i64) -> History {
        History { initial: None, changes: vec![(t, State::Up)], excluded: Vec::new() }
    }

    #[test]
    fn silence_after_a_crash_is_no_data_from_one_interval_after_the_last_result() {
        let (interval, timeout) = (Duration::from_secs(10), Duration::from_secs(2));
        // Last result at 100 s; asked at 200 s: no data from 110 s.
        let mut h = up_since(0);
        unwatched_tail(&mut h, Some((100 * S, Some(State::Up))), interval, timeout, 0, 200 * S);
        assert_eq!(h.changes.last(), Some(&(110 * S, State::Unknown)));
        // Asked while the next result may still come: nothing inferred.
        let mut h = up_since(0);
        unwatched_tail(&mut h, Some((100 * S, Some(State::Up))), interval, timeout, 0, 115 * S);
        assert_eq!(h.changes, vec![(0, State::Up)]);
        // A clean stop is already recorded.
        let mut h = up_since(0);
        unwatched_tail(&mut h, Some((100 * S, Some(State::Unknown))), interval, timeout, 0, 200 * S);
        assert_eq!(h.changes, vec![(0, State::Up)]);
        // The silence began before the period: the whole period is no data.
        let mut h = History { initial: Some(State::Up), ..History::default() };
        unwatched_tail(&mut h, Some((100 * S, Some(State::Up))), interval, timeout, 500 * S, 900 * S);
        assert_eq!((h.initial, h.changes.len()), (Some(State::Unknown), 0));
    }
}
