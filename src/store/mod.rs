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

/// A store error (opening, migrating, reading). The message carries the cause, once: it
/// is not also a `source()`, so a chain printer does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create folder {path}: {error}")]
    CreateDir { path: PathBuf, error: std::io::Error },
    #[error("store {path}: {error}")]
    Sqlite { path: PathBuf, error: rusqlite::Error },
    #[error("store {path}: no such file")]
    Missing { path: PathBuf },
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
    /// A failed delivery attempt of a pending notification: how many so far (kept across
    /// restarts, so the delivery log counts every try).
    Attempt {
        key: String,
        attempts: u32,
    },
    /// A maintenance window opened through the API.
    Maintenance(crate::config::maintenance::ApiWindow),
    /// A target renamed (`renamed_from`): its history, state and incidents move to the new id.
    Rename {
        from: String,
        to: String,
    },
    /// An agent's records, kept at the centre once per sequence number.
    Ingest(Box<forward::IngestBatch>),
    /// Records the centre has committed: they leave the agent's forwarding queue.
    Forwarded(Vec<i64>),
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
    /// Delivery attempts already made for pending notifications, by key.
    pub pending_attempts: HashMap<String, u32>,
    /// Maintenance windows opened through the API that have not ended.
    pub maintenance: Vec<crate::config::maintenance::ApiWindow>,
    /// Each target's last result (Unix ms) and the state its history ended on (`unknown`
    /// after a clean stop), keyed by target id.
    pub watched: HashMap<String, (i64, Option<State>)>,
    /// When each target changed between judged states (up, degraded, down, unreachable)
    /// in the last [`FLAP_HISTORY`], oldest first: flapping detection goes on after a restart.
    pub flap_changes: HashMap<String, Vec<i64>>,
}

/// How far back state changes are read to resume flapping detection after a restart.
pub const FLAP_HISTORY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

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
    move |error| StoreError::Sqlite { path: path.to_path_buf(), error }
}

/// Opens (or creates) the database at `path` and migrates it.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| StoreError::CreateDir { path: dir.to_path_buf(), error })?;
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
    let pending_attempts = load_attempts(&conn).map_err(sqlite(path))?;
    let since = crate::model::now_ms() - FLAP_HISTORY.as_millis() as i64;
    let flap_changes = load_flap_changes(&conn, since).map_err(sqlite(path))?;
    let (sender, receiver) = mpsc::unbounded_channel();
    let writer_path = path.to_path_buf();
    let health = std::sync::Arc::new(StoreHealth::default());
    let writer_health = health.clone();
    let writer = std::thread::Builder::new()
        .name("vigil-store".into())
        .spawn(move || writing::write_loop(conn, receiver, &writer_path, &writer_health, Default::default()))
        .map_err(|error| StoreError::CreateDir { path: path.to_path_buf(), error })?;
    Ok((
        Store { path: path.to_path_buf(), sender: Some(sender), writer: Some(writer), health },
        Restored {
            states,
            heartbeats,
            open_incidents,
            last_incident_id,
            pending,
            maintenance,
            watched,
            pending_attempts,
            flap_changes,
        },
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

fn load_attempts(conn: &Connection) -> rusqlite::Result<HashMap<String, u32>> {
    let mut stmt = conn.prepare("SELECT key, attempts FROM outbox WHERE state = 'pending' AND attempts > 0")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?;
    rows.collect()
}

fn load_flap_changes(conn: &Connection, since_ms: i64) -> rusqlite::Result<HashMap<String, Vec<i64>>> {
    let mut stmt = conn.prepare(
        "SELECT target, at_ms FROM state_changes WHERE at_ms > ?1
           AND from_state IN ('up', 'degraded', 'down', 'unreachable')
           AND to_state IN ('up', 'degraded', 'down', 'unreachable') ORDER BY at_ms, id",
    )?;
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    let rows = stmt.query_map([since_ms], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (target, at) = row?;
        out.entry(target).or_default().push(at);
    }
    Ok(out)
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

pub mod forward;
pub mod query;
mod reader;
pub use reader::Reader;
