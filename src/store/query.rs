//! One-shot reads for the CLI and tests, and the records reads return. Each call opens
//! the store once; a long-running reader (the web server, reports) keeps a [`Reader`].

use std::collections::HashMap;

use super::{AuditRecord, Location, Reader, StoreError};
use crate::model::State;
use crate::model::incident::Incident;

/// An incident excluded from the SLA: why, and who decided.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exclusion {
    pub incident_id: i64,
    pub reason: String,
    pub by: String,
    pub at_ms: i64,
}

/// One stored state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub at_ms: i64,
    pub from: String,
    pub to: String,
    pub reason: Option<String>,
}

/// The state a target was in at some time (None if unknown), and its changes since.
pub type StateHistory = (Option<State>, Vec<(i64, State)>);

/// One day of a target: runs, failures and latency (ms).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rollup {
    pub day_ms: i64,
    pub runs: i64,
    pub failures: i64,
    pub latency_min_ms: Option<f64>,
    pub latency_avg_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// Upper bound of the histogram bucket holding the 95th percentile.
    pub latency_p95_ms: Option<f64>,
}

/// One stored probe result.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResult {
    pub at_ms: i64,
    pub health: String,
    pub reason: Option<String>,
    pub duration_ms: f64,
    pub message: String,
    /// An ICMP run's echoes (see `IcmpStats::echoes`).
    pub echoes: Option<String>,
}

/// The exclusion of an incident, if any.
pub fn exclusion(store: impl Into<Location>, incident_id: i64) -> Result<Option<Exclusion>, StoreError> {
    Reader::new(store).exclusion(incident_id)
}

/// Every exclusion, keyed by incident id.
pub fn exclusions(store: impl Into<Location>) -> Result<HashMap<i64, Exclusion>, StoreError> {
    Reader::new(store).exclusions()
}

/// When a target's last result was stored, and the state its history ended on (`unknown`
/// after a clean stop); None for a target never probed.
pub fn last_watched(store: impl Into<Location>, target: &str) -> Result<Option<(i64, Option<State>)>, StoreError> {
    Reader::new(store).last_watched(target)
}

/// Incidents that overlap [from, to), oldest first.
pub fn incidents_between(store: impl Into<Location>, from: i64, to: i64) -> Result<Vec<Incident>, StoreError> {
    Reader::new(store).incidents_between(from, to)
}

/// One incident by id.
pub fn incident(store: impl Into<Location>, id: i64) -> Result<Option<Incident>, StoreError> {
    Reader::new(store).incident(id)
}

/// The state changes of one target, oldest first.
pub fn changes(store: impl Into<Location>, target: &str) -> Result<Vec<Change>, StoreError> {
    Reader::new(store).changes(target)
}

/// A target's state history from `from_ms`: the state it was in then (None if
/// unknown to the store) and every change since, in time order.
pub fn state_history(store: impl Into<Location>, target: &str, from_ms: i64) -> Result<StateHistory, StoreError> {
    Reader::new(store).state_history(target, from_ms)
}

/// When a target went down, degraded or unreachable since `from_ms`, and why.
pub fn failure_causes(
    store: impl Into<Location>,
    target: &str,
    from_ms: i64,
) -> Result<Vec<(i64, String)>, StoreError> {
    Reader::new(store).failure_causes(target, from_ms)
}

/// The daily rollups of a target from `from_ms` to `to_ms`.
pub fn rollups(store: impl Into<Location>, target: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Rollup>, StoreError> {
    Reader::new(store).rollups(target, from_ms, to_ms)
}

/// A target's results since `from_ms`, oldest first (raw results are kept for
/// `storage.raw_retention`).
pub fn results(store: impl Into<Location>, target: &str, from_ms: i64) -> Result<Vec<StoredResult>, StoreError> {
    Reader::new(store).results(target, from_ms)
}

/// Incidents of one target, newest first.
pub fn incidents_of(store: impl Into<Location>, target: &str, limit: usize) -> Result<Vec<Incident>, StoreError> {
    Reader::new(store).incidents_of(target, limit)
}

/// Maintenance windows opened through the API, oldest first.
pub fn maintenance(store: impl Into<Location>) -> Result<Vec<crate::config::maintenance::ApiWindow>, StoreError> {
    Reader::new(store).maintenance()
}

/// Whether a notification with this key was ever written to the outbox.
pub fn outbox_has(store: impl Into<Location>, key: &str) -> Result<bool, StoreError> {
    Reader::new(store).outbox_has(key)
}

/// The delivery state of every notification: (key, state, channel), oldest first.
pub fn deliveries(store: impl Into<Location>) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
    Reader::new(store).deliveries()
}

/// The audit trail, newest first, at most `limit` entries.
pub fn audit(store: impl Into<Location>, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
    Reader::new(store).audit(limit)
}

/// How many results are stored for one target.
pub fn result_count(store: impl Into<Location>, target: &str) -> Result<u64, StoreError> {
    Reader::new(store).result_count(target)
}

/// Incidents, newest first: open ones only, or all; optionally of one system.
pub fn incidents(
    store: impl Into<Location>,
    open_only: bool,
    system: Option<&str>,
    limit: usize,
) -> Result<Vec<Incident>, StoreError> {
    Reader::new(store).incidents(open_only, system, limit)
}
