//! The embedded store (SQLite, WAL): every probe result, every state change with its exact
//! time, and each target's current state, so that a restart resumes where it stopped.
//!
//! One writer thread owns the connection; callers send [`Record`]s over a channel and are
//! never blocked by disk I/O. The writer drains what is queued and writes it in one
//! transaction, so the write rate stays flat however many checks report at once.

mod schema;
mod writer;
mod writing;

pub use writing::{StoreHealth, StoreHealthSnapshot};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::model::incident::{Incident, Notification};
use crate::model::{State, Streak, TargetState};

/// A store error (opening, migrating, reading).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create folder {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// One probe result of one target.
#[derive(Debug, Clone)]
pub struct ResultRecord {
    pub target: String,
    pub at_ms: i64,
    pub health: &'static str,
    pub reason: Option<&'static str>,
    pub duration_ms: f64,
    pub message: String,
    /// The target's state after this result (kept as the current state).
    pub state: TargetState,
    /// Start of the result's day in the instance time zone (its rollup), Unix ms.
    pub day_ms: i64,
}

/// An administrative action: who (as they identified), from where, what, and on what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    pub at_ms: i64,
    /// `admin (token)`, `admin (session)`, or the name given on an acknowledgement link.
    pub who: String,
    /// The client's address.
    pub address: String,
    /// `acknowledge`, `maintenance`, `exclude`, `reload`, `login`, `login failed`, `logout`.
    pub action: String,
    /// On what: the incident, the window, the outcome.
    pub detail: String,
}

/// Upper bounds (ms) of the latency histogram of the daily rollups; the last is open.
pub const ROLLUP_BUCKETS_MS: [f64; 12] =
    [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, f64::INFINITY];

/// A change of state of one target.
#[derive(Debug, Clone)]
pub struct ChangeRecord {
    pub target: String,
    pub at_ms: i64,
    pub from: State,
    pub to: State,
    pub reason: Option<&'static str>,
    pub message: String,
}

/// A heartbeat pushed by a job.
#[derive(Debug, Clone)]
pub struct HeartbeatRecord {
    pub target: String,
    pub at_ms: i64,
    pub ok: bool,
    pub message: String,
}

/// How a notification's delivery ended.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub key: String,
    /// `delivered` or `failed` (given up).
    pub state: &'static str,
    /// The channel that reached the receiver (or was tried last).
    pub channel: String,
    pub attempts: u32,
    pub at_ms: i64,
    pub error: Option<String>,
}

/// What the writer is asked to do.
#[derive(Debug)]
pub enum Record {
    Result(ResultRecord),
    Change(ChangeRecord),
    Heartbeat(HeartbeatRecord),
    /// An incident, new or changed.
    Incident(Box<Incident>),
    /// A notification to deliver.
    Outbox(Box<Notification>),
    Delivery(DeliveryRecord),
    /// A maintenance window opened through the API.
    Maintenance(crate::config::maintenance::ApiWindow),
    /// An incident excluded from the SLA.
    Exclusion(query::Exclusion),
    /// Records written in the same transaction (a state change and what it causes).
    Batch(Vec<Record>),
    /// Answers once everything sent before it is on disk.
    Flush(oneshot::Sender<()>),
    /// Hands a notification to delivery once everything sent before it — its outbox row
    /// among them — is committed: no alert leaves for an incident that is not stored.
    Release(Box<Notification>, mpsc::UnboundedSender<Notification>),
    /// Deletes raw results older than this (Unix ms); state changes and incidents stay.
    Prune(i64),
    /// One administrative action, for the audit trail.
    Audit(AuditRecord),
    /// Ends the writer after what was sent before it (other senders may still exist).
    Stop,
}

/// What the store remembers at start-up.
#[derive(Debug, Default)]
pub struct Restored {
    /// Each target's state, keyed by target id.
    pub states: HashMap<String, TargetState>,
    /// The last heartbeat of each heartbeat check.
    pub heartbeats: Vec<HeartbeatRecord>,
    /// Incidents still open.
    pub open_incidents: Vec<Incident>,
    /// The highest incident id ever used.
    pub last_incident_id: i64,
    /// Notifications not yet delivered (nor given up), oldest first.
    pub pending: Vec<Notification>,
    /// Maintenance windows opened through the API that have not ended.
    pub maintenance: Vec<crate::config::maintenance::ApiWindow>,
    /// Each target's last result (Unix ms) and the state its history ended on (`unknown`
    /// after a clean stop), keyed by target id.
    pub watched: HashMap<String, (i64, Option<State>)>,
}

/// A cloneable sender of records, for writers other than the pipeline.
#[derive(Debug, Clone)]
pub struct StoreWriter(mpsc::UnboundedSender<Record>);

impl StoreWriter {
    /// Queues a record; never blocks.
    pub fn send(&self, record: Record) {
        if self.0.send(record).is_err() {
            tracing::error!("store writer has stopped; record lost");
        }
    }
}

/// Handle to the store's writer.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    sender: Option<mpsc::UnboundedSender<Record>>,
    writer: Option<JoinHandle<()>>,
    health: std::sync::Arc<StoreHealth>,
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite { path: path.to_path_buf(), source }
}

/// Opens (or creates) the database at `path` and migrates it.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
    }
    let mut conn = Connection::open(path).map_err(sqlite(path))?;
    // The busy timeout first: a lock held at start (a backup) is waited for, not fatal.
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite(path))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(sqlite(path))?;
    // FULL: a committed batch — a state change, its incident and its outbox row — survives
    // a power loss, not only a crash of the process (WAL with NORMAL may lose the last
    // commits). Batches are grouped (every 250 ms at most), so this is a few syncs a second.
    conn.pragma_update(None, "synchronous", "FULL").map_err(sqlite(path))?;
    schema::migrate(&mut conn).map_err(sqlite(path))?;
    Ok(conn)
}

/// Opens the store, or — when it cannot be opened (corrupt, unwritable, locked) — a
/// degraded one: Vigil probes and alerts from memory (notifications leave at once), keeps
/// records in memory and tries to open the file again in the background, and says so in
/// its health. The error is logged here; a start never fails on the store.
pub fn open_or_degraded(path: &Path) -> (Store, Restored) {
    match open(path) {
        Ok(opened) => opened,
        Err(e) => {
            tracing::error!(
                store = %path.display(), error = %e,
                "cannot open the store: running from memory (alerts still go out) and retrying"
            );
            let (sender, receiver) = mpsc::unbounded_channel();
            let health = std::sync::Arc::new(StoreHealth::default());
            let (writer_path, writer_health) = (path.to_path_buf(), health.clone());
            let first_error = e.to_string();
            let writer = std::thread::Builder::new().name("vigil-store".into()).spawn(move || {
                writing::degraded_loop(&writer_path, &|p: &Path| connect(p), &first_error, receiver, &writer_health)
            });
            let now = crate::model::now_ms();
            // Incident numbers from the clock: when the file opens later, they cannot
            // overwrite the incidents it already holds.
            let restored = Restored { last_incident_id: now, ..Restored::default() };
            (Store { path: path.to_path_buf(), sender: Some(sender), writer: writer.ok(), health }, restored)
        }
    }
}

/// Opens (or creates) the store at `path`, migrates it, and returns it with what it
/// remembers.
pub fn open(path: &Path) -> Result<(Store, Restored), StoreError> {
    let conn = connect(path)?;
    let states = load_states(&conn).map_err(sqlite(path))?;
    let heartbeats = load_heartbeats(&conn).map_err(sqlite(path))?;
    let open_incidents =
        load_json(&conn, "SELECT data FROM incidents WHERE open = 1 ORDER BY id", []).map_err(sqlite(path))?;
    let last_incident_id =
        conn.query_row("SELECT COALESCE(MAX(id), 0) FROM incidents", [], |r| r.get(0)).map_err(sqlite(path))?;
    let maintenance =
        load_json(&conn, "SELECT data FROM maintenance WHERE to_ms > ?1 ORDER BY id", [crate::model::now_ms()])
            .map_err(sqlite(path))?;
    let pending = load_json(&conn, "SELECT data FROM outbox WHERE state = 'pending' ORDER BY created_ms, rowid", [])
        .map_err(sqlite(path))?;
    let watched = load_watched(&conn).map_err(sqlite(path))?;
    let (sender, receiver) = mpsc::unbounded_channel();
    let writer_path = path.to_path_buf();
    let health = std::sync::Arc::new(StoreHealth::default());
    let writer_health = health.clone();
    let writer = std::thread::Builder::new()
        .name("vigil-store".into())
        .spawn(move || writing::write_loop(conn, receiver, &writer_path, &writer_health, Default::default()))
        .map_err(|e| StoreError::CreateDir { path: path.to_path_buf(), source: e })?;
    Ok((
        Store { path: path.to_path_buf(), sender: Some(sender), writer: Some(writer), health },
        Restored { states, heartbeats, open_incidents, last_incident_id, pending, maintenance, watched },
    ))
}

impl Store {
    /// Queues a record; never blocks.
    pub fn send(&self, record: Record) {
        if let Some(s) = &self.sender
            && s.send(record).is_err()
        {
            tracing::error!(store = %self.path.display(), "store writer has stopped; record lost");
        }
    }

    /// A sender for other writers (the web server's heartbeats).
    pub fn writer(&self) -> Option<StoreWriter> {
        self.sender.clone().map(StoreWriter)
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(Record::Flush(tx));
        let _ = rx.await;
    }

    /// Writes what is queued and stops the writer.
    pub async fn close(mut self) {
        if let Some(s) = self.sender.take() {
            let _ = s.send(Record::Stop);
        }
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }

    /// The file this store writes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the writer is doing (failing writes, records waiting).
    pub fn health(&self) -> std::sync::Arc<StoreHealth> {
        self.health.clone()
    }
}

fn load_watched(conn: &Connection) -> rusqlite::Result<HashMap<String, (i64, Option<State>)>> {
    let mut stmt = conn.prepare(
        "SELECT t.target, t.updated_ms, (SELECT c.to_state FROM state_changes c WHERE c.target = t.target
           ORDER BY c.at_ms DESC, c.id DESC LIMIT 1) FROM target_state t",
    )?;
    let rows = stmt.query_map([], |r| {
        let tail: Option<String> = r.get(2)?;
        Ok((r.get::<_, String>(0)?, (r.get::<_, i64>(1)?, tail.and_then(|s| State::from_name(&s)))))
    })?;
    rows.collect()
}

fn load_states(conn: &Connection) -> rusqlite::Result<HashMap<String, TargetState>> {
    let mut stmt = conn.prepare(
        "SELECT target, state, since_ms, streak_worse, streak_count, streak_target, streak_since_ms FROM target_state",
    )?;
    let rows = stmt.query_map([], |r| {
        let state: String = r.get(1)?;
        let streak_count: i64 = r.get(4)?;
        let streak_target: Option<String> = r.get(5)?;
        let streak =
            streak_target.and_then(|t| State::from_name(&t)).filter(|_| streak_count > 0).map(|target| Streak {
                worse: r.get::<_, bool>(3).unwrap_or(false),
                count: streak_count as u32,
                target,
                since_ms: r.get(6).unwrap_or(0),
            });
        Ok((
            r.get::<_, String>(0)?,
            TargetState { state: State::from_name(&state).unwrap_or(State::Unknown), since_ms: r.get(2)?, streak },
        ))
    })?;
    rows.collect()
}

/// Loads JSON-encoded rows; a row that no longer decodes is skipped with an error log.
fn load_json<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params, |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        match serde_json::from_str(&row?) {
            Ok(v) => out.push(v),
            Err(e) => tracing::error!(error = %e, "a stored row no longer decodes; skipped"),
        }
    }
    Ok(out)
}

fn load_heartbeats(conn: &Connection) -> rusqlite::Result<Vec<HeartbeatRecord>> {
    let mut stmt = conn.prepare("SELECT target, at_ms, ok, message FROM heartbeats")?;
    let rows = stmt.query_map([], |r| {
        Ok(HeartbeatRecord { target: r.get(0)?, at_ms: r.get(1)?, ok: r.get(2)?, message: r.get(3)? })
    })?;
    rows.collect()
}

/// Read-only queries, on their own connection (WAL lets them run beside the writer).
pub mod query {
    use super::*;

    /// An incident excluded from the SLA: why, and who decided.
    #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
    pub struct Exclusion {
        pub incident_id: i64,
        pub reason: String,
        pub by: String,
        pub at_ms: i64,
    }

    /// The exclusion of an incident, if any.
    pub fn exclusion(path: &Path, incident_id: i64) -> Result<Option<Exclusion>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        let row =
            conn.query_row("SELECT reason, by, at_ms FROM exclusions WHERE incident_id = ?1", [incident_id], |r| {
                Ok(Exclusion { incident_id, reason: r.get(0)?, by: r.get(1)?, at_ms: r.get(2)? })
            });
        match row {
            Ok(e) => Ok(Some(e)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(sqlite(path)(e)),
        }
    }

    /// Every exclusion, keyed by incident id.
    pub fn exclusions(path: &Path) -> Result<HashMap<i64, Exclusion>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        let mut stmt = conn.prepare("SELECT incident_id, reason, by, at_ms FROM exclusions").map_err(sqlite(path))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Exclusion { incident_id: r.get(0)?, reason: r.get(1)?, by: r.get(2)?, at_ms: r.get(3)? })
            })
            .map_err(sqlite(path))?;
        rows.map(|r| r.map(|e| (e.incident_id, e))).collect::<Result<_, _>>().map_err(sqlite(path))
    }

    /// When a target's last result was stored, and the state its history ended on (`unknown`
    /// after a clean stop); None for a target never probed.
    pub fn last_watched(path: &Path, target: &str) -> Result<Option<(i64, Option<State>)>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        let updated = conn.query_row("SELECT updated_ms FROM target_state WHERE target = ?1", [target], |r| r.get(0));
        let updated: i64 = match updated {
            Ok(u) => u,
            Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(None),
            Err(e) => return Err(sqlite(path)(e)),
        };
        let tail: Option<String> = conn
            .query_row(
                "SELECT to_state FROM state_changes WHERE target = ?1 ORDER BY at_ms DESC, id DESC LIMIT 1",
                [target],
                |r| r.get(0),
            )
            .ok();
        Ok(Some((updated, tail.and_then(|s| State::from_name(&s)))))
    }

    /// Incidents that overlap [from, to), oldest first.
    pub fn incidents_between(path: &Path, from: i64, to: i64) -> Result<Vec<Incident>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        load_json(
            &conn,
            "SELECT data FROM incidents WHERE started_ms < ?2 AND (resolved_ms IS NULL OR resolved_ms > ?1) ORDER BY id",
            [from, to],
        )
        .map_err(sqlite(path))
    }

    /// One incident by id.
    pub fn incident(path: &Path, id: i64) -> Result<Option<Incident>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        Ok(load_json(&conn, "SELECT data FROM incidents WHERE id = ?1", [id]).map_err(sqlite(path))?.pop())
    }

    /// One stored state change.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Change {
        pub at_ms: i64,
        pub from: String,
        pub to: String,
        pub reason: Option<String>,
    }

    /// The state changes of one target, oldest first.
    pub fn changes(path: &Path, target: &str) -> Result<Vec<Change>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        let mut stmt = conn
            .prepare("SELECT at_ms, from_state, to_state, reason FROM state_changes WHERE target = ?1 ORDER BY id")
            .map_err(sqlite(path))?;
        let rows = stmt
            .query_map([target], |r| Ok(Change { at_ms: r.get(0)?, from: r.get(1)?, to: r.get(2)?, reason: r.get(3)? }))
            .map_err(sqlite(path))?;
        rows.collect::<Result<_, _>>().map_err(sqlite(path))
    }

    /// Incidents, newest first: open ones only, or all; optionally of one system.
    pub fn incidents(
        path: &Path,
        open_only: bool,
        system: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        let mut stmt = conn
            .prepare(
                "SELECT data FROM incidents WHERE (?1 = 0 OR open = 1) AND (?2 IS NULL OR system = ?2)
                 ORDER BY id DESC LIMIT ?3",
            )
            .map_err(sqlite(path))?;
        let rows = stmt
            .query_map(rusqlite::params![open_only, system, limit as i64], |r| r.get::<_, String>(0))
            .map_err(sqlite(path))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(i) = serde_json::from_str(&row.map_err(sqlite(path))?) {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// The state a target was in at some time (None if unknown), and its changes since.
    pub type StateHistory = (Option<State>, Vec<(i64, State)>);

    /// A target's state history from `from_ms`: the state it was in then (None if
    /// unknown to the store) and every change since, in time order.
    pub fn state_history(path: &Path, target: &str, from_ms: i64) -> Result<StateHistory, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        let initial: Option<String> = conn
            .query_row(
                "SELECT to_state FROM state_changes WHERE target = ?1 AND at_ms <= ?2 ORDER BY at_ms DESC, id DESC LIMIT 1",
                rusqlite::params![target, from_ms],
                |r| r.get(0),
            )
            .ok();
        let mut stmt = conn
            .prepare_cached(
                "SELECT at_ms, to_state FROM state_changes WHERE target = ?1 AND at_ms > ?2 ORDER BY at_ms, id",
            )
            .map_err(sqlite(path))?;
        let rows = stmt
            .query_map(rusqlite::params![target, from_ms], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(sqlite(path))?;
        let mut changes = Vec::new();
        for row in rows {
            let (at, s) = row.map_err(sqlite(path))?;
            if let Some(s) = State::from_name(&s) {
                changes.push((at, s));
            }
        }
        Ok((initial.and_then(|s| State::from_name(&s)), changes))
    }

    /// When a target went down, degraded or unreachable since `from_ms`, and why.
    pub fn failure_causes(path: &Path, target: &str, from_ms: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT at_ms, message FROM state_changes WHERE target = ?1 AND at_ms > ?2
                 AND to_state IN ('down', 'degraded', 'unreachable') ORDER BY at_ms, id",
            )
            .map_err(sqlite(path))?;
        let rows =
            stmt.query_map(rusqlite::params![target, from_ms], |r| Ok((r.get(0)?, r.get(1)?))).map_err(sqlite(path))?;
        rows.collect::<Result<_, _>>().map_err(sqlite(path))
    }

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

    /// The daily rollups of a target from `from_ms` to `to_ms`.
    pub fn rollups(path: &Path, target: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Rollup>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT day_ms, runs, failures, lat_min, lat_max, lat_sum, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11
                 FROM rollups WHERE target = ?1 AND day_ms >= ?2 AND day_ms < ?3 ORDER BY day_ms",
            )
            .map_err(sqlite(path))?;
        let rows = stmt
            .query_map(rusqlite::params![target, from_ms, to_ms], |r| {
                let runs: i64 = r.get(1)?;
                let buckets: Vec<i64> = (6..18).map(|i| r.get(i)).collect::<Result<_, _>>()?;
                let measured: i64 = buckets.iter().sum();
                let mut seen = 0;
                let p95 = ROLLUP_BUCKETS_MS.iter().zip(&buckets).find_map(|(bound, n)| {
                    seen += n;
                    (measured > 0 && seen * 100 >= measured * 95).then_some(*bound)
                });
                Ok(Rollup {
                    day_ms: r.get(0)?,
                    runs,
                    failures: r.get(2)?,
                    latency_min_ms: r.get(3)?,
                    latency_max_ms: r.get(4)?,
                    latency_avg_ms: (measured > 0).then(|| r.get::<_, f64>(5).unwrap_or(0.0) / measured as f64),
                    latency_p95_ms: p95
                        .filter(|b| b.is_finite())
                        .or_else(|| p95.and(r.get::<_, Option<f64>>(4).ok().flatten())),
                })
            })
            .map_err(sqlite(path))?;
        rows.collect::<Result<_, _>>().map_err(sqlite(path))
    }

    /// One stored probe result.
    #[derive(Debug, Clone, PartialEq)]
    pub struct StoredResult {
        pub at_ms: i64,
        pub health: String,
        pub reason: Option<String>,
        pub duration_ms: f64,
        pub message: String,
    }

    /// A target's results since `from_ms`, oldest first (raw results are kept for
    /// `storage.raw_retention`).
    pub fn results(path: &Path, target: &str, from_ms: i64) -> Result<Vec<StoredResult>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        let mut stmt = conn
            .prepare("SELECT at_ms, health, reason, duration_ms, message FROM results WHERE target = ?1 AND at_ms >= ?2 ORDER BY at_ms")
            .map_err(sqlite(path))?;
        let rows = stmt
            .query_map(rusqlite::params![target, from_ms], |r| {
                Ok(StoredResult {
                    at_ms: r.get(0)?,
                    health: r.get(1)?,
                    reason: r.get(2)?,
                    duration_ms: r.get(3)?,
                    message: r.get(4)?,
                })
            })
            .map_err(sqlite(path))?;
        rows.collect::<Result<_, _>>().map_err(sqlite(path))
    }

    /// Incidents of one target, newest first.
    pub fn incidents_of(path: &Path, target: &str, limit: usize) -> Result<Vec<Incident>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        load_json(
            &conn,
            "SELECT data FROM incidents WHERE target = ?1 ORDER BY id DESC LIMIT ?2",
            rusqlite::params![target, limit as i64],
        )
        .map_err(sqlite(path))
    }

    /// Maintenance windows opened through the API, oldest first.
    pub fn maintenance(path: &Path) -> Result<Vec<crate::config::maintenance::ApiWindow>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        load_json(&conn, "SELECT data FROM maintenance ORDER BY id", []).map_err(sqlite(path))
    }

    /// Whether a notification with this key was ever written to the outbox.
    pub fn outbox_has(path: &Path, key: &str) -> Result<bool, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        conn.query_row("SELECT COUNT(*) FROM outbox WHERE key = ?1", [key], |r| r.get::<_, i64>(0))
            .map(|n| n > 0)
            .map_err(sqlite(path))
    }

    /// The delivery state of every notification: (key, state, channel), oldest first.
    pub fn deliveries(path: &Path) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        let mut stmt =
            conn.prepare("SELECT key, state, channel FROM outbox ORDER BY created_ms, rowid").map_err(sqlite(path))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(sqlite(path))?;
        rows.collect::<Result<_, _>>().map_err(sqlite(path))
    }

    /// The audit trail, newest first, at most `limit` entries.
    pub fn audit(path: &Path, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        let mut stmt = conn
            .prepare("SELECT at_ms, who, address, action, detail FROM audit ORDER BY at_ms DESC, id DESC LIMIT ?1")
            .map_err(sqlite(path))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok(AuditRecord {
                    at_ms: r.get(0)?,
                    who: r.get(1)?,
                    address: r.get(2)?,
                    action: r.get(3)?,
                    detail: r.get(4)?,
                })
            })
            .map_err(sqlite(path))?;
        rows.collect::<Result<_, _>>().map_err(sqlite(path))
    }

    /// How many results are stored for one target.
    pub fn result_count(path: &Path, target: &str) -> Result<u64, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        conn.query_row("SELECT COUNT(*) FROM results WHERE target = ?1", [target], |r| r.get(0)).map_err(sqlite(path))
    }
}
