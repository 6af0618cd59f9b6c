//! The embedded store (SQLite, WAL): every probe result, every state change with its exact
//! time, and each target's current state, so that a restart resumes where it stopped.
//!
//! One writer thread owns the connection; callers send [`Record`]s over a channel and are
//! never blocked by disk I/O. The writer drains what is queued and writes it in one
//! transaction, so the write rate stays flat however many checks report at once.

pub mod db;
mod fence;
mod histories;
mod record;
mod schema;
mod spool;
mod writer;
mod writing;

pub use fence::Fence;
pub use record::{
    AckRequest, AuditRecord, ChangeRecord, DeliveryRecord, HeartbeatRecord, ROLLUP_BUCKETS_MS, Record, ResultRecord,
};
pub use spool::SpoolAt;
pub use writing::{StoreHealth, StoreHealthSnapshot};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use db::{Database, DbError, vals};

use crate::model::incident::{Incident, Notification};
use crate::model::{State, Streak, TargetState};

/// A store error (opening, migrating, reading). The message carries the cause, once: it
/// is not also a `source()`, so a chain printer does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create folder {path}: {error}")]
    CreateDir { path: PathBuf, error: std::io::Error },
    #[error("store {store}: {error}")]
    Database { store: String, error: DbError },
    #[error("store {path}: no such file")]
    Missing { path: PathBuf },
}

/// Where the store lives.
#[derive(Debug, Clone)]
pub enum Location {
    /// The embedded SQLite file (the default).
    File(PathBuf),
    /// A PostgreSQL database, shared by a cluster's nodes; the connection string is a secret
    /// and is never shown (the location displays as `PostgreSQL`).
    Postgres(crate::config::Secret),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Postgres(_) => f.write_str("PostgreSQL"),
        }
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::File(path.to_path_buf())
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Location {
        Location::File(path.clone())
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Location {
        Location::File(path)
    }
}

impl From<&Location> for Location {
    fn from(location: &Location) -> Location {
        location.clone()
    }
}

impl Location {
    /// Where the configured store lives: PostgreSQL when `storage.postgres` is set, else
    /// the SQLite file.
    pub fn of(storage: &crate::config::Storage) -> Location {
        match &storage.postgres {
            Some(dsn) => Location::Postgres(dsn.clone()),
            None => Location::File(storage.path.clone()),
        }
    }

    /// Whether there is a store to read: the file exists (a database always may).
    pub fn exists(&self) -> bool {
        match self {
            Location::File(path) => path.exists(),
            Location::Postgres(_) => true,
        }
    }

    /// The SQLite file, for what only a file store does (an agent's forwarding queue).
    pub fn file(&self) -> Option<&Path> {
        match self {
            Location::File(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }
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
    location: Location,
    sender: Option<mpsc::UnboundedSender<Record>>,
    writer: Option<JoinHandle<()>>,
    health: std::sync::Arc<StoreHealth>,
}

/// Turns a database error into a store error naming the store (never a connection string).
fn failed(location: &Location) -> impl Fn(DbError) -> StoreError + '_ {
    move |error| StoreError::Database { store: location.to_string(), error }
}

/// Opens (or creates) the store and migrates it.
fn connect(location: &Location) -> Result<Database, StoreError> {
    let mut db = match location {
        Location::File(path) => Database::Sqlite(open_file(path)?),
        Location::Postgres(dsn) => Database::postgres(dsn.expose()).map_err(failed(location))?,
    };
    schema::migrate(&mut db).map_err(failed(location))?;
    Ok(db)
}

/// Opens (or creates) the SQLite file at `path`.
fn open_file(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| StoreError::CreateDir { path: dir.to_path_buf(), error })?;
    }
    let location = Location::File(path.to_path_buf());
    let failed = |e: rusqlite::Error| failed(&location)(e.into());
    let conn = rusqlite::Connection::open(path).map_err(failed)?;
    // The busy timeout first: a lock held at start (a backup) is waited for, not fatal.
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(failed)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(failed)?;
    // FULL: a committed batch — a state change, its incident and its outbox row — survives
    // a power loss, not only a crash of the process (WAL with NORMAL may lose the last
    // commits). Batches are grouped (every 250 ms at most), so this is a few syncs a second.
    conn.pragma_update(None, "synchronous", "FULL").map_err(failed)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Opens the store, or — when it cannot be opened (corrupt, unwritable, locked, a database
/// that does not answer) — a degraded one: Vigil probes and alerts from memory
/// (notifications leave at once), keeps records in memory and tries to open the store again
/// in the background, and says so in its health. The error is logged here; a start never
/// fails on the store. A store on PostgreSQL spools to `spool` while it does not answer.
pub fn open_or_degraded(location: impl Into<Location>, spool: Option<SpoolAt>) -> (Store, Restored) {
    let location = location.into();
    match open_spooled(location.clone(), spool.as_ref()) {
        Ok(opened) => opened,
        Err(e) => {
            // What an earlier run spooled waits in memory (and in its spool) for the store.
            let left = spool.as_ref().and_then(|at| spool::read(&at.path).ok().flatten());
            let records = left.map(|l| l.records).unwrap_or_default();
            let spool = spool.map(|at| spool::Spool::new(at.path, records.len()));
            let pending = writing::Pending::spooling(spool, records);
            tracing::error!(
                store = %location, error = %e,
                "cannot open the store: running from memory (alerts still go out) and retrying"
            );
            let (sender, receiver) = mpsc::unbounded_channel();
            let health = std::sync::Arc::new(StoreHealth::default());
            let (writer_location, writer_health) = (location.clone(), health.clone());
            let first_error = e.to_string();
            let writer = std::thread::Builder::new().name("vigil-store".into()).spawn(move || {
                writing::degraded_loop(&writer_location, &connect, &first_error, receiver, &writer_health, pending)
            });
            let now = crate::model::now_ms();
            // Incident numbers from the clock: when the store opens later, they cannot
            // overwrite the incidents it already holds.
            let restored = Restored { last_incident_id: now, ..Restored::default() };
            (Store { location, sender: Some(sender), writer: writer.ok(), health }, restored)
        }
    }
}

/// Opens (or creates) the store, migrates it, and returns it with what it remembers.
pub fn open(location: impl Into<Location>) -> Result<(Store, Restored), StoreError> {
    open_spooled(location.into(), None)
}

/// Opens the store; with a `spool`, what an earlier run left in it is written first (so
/// it is read back with the rest), and the writer spools while writes fail.
fn open_spooled(location: Location, spool: Option<&SpoolAt>) -> Result<(Store, Restored), StoreError> {
    let mut db = connect(&location)?;
    if let Some(at) = spool {
        spool::replay(&mut db, at).map_err(failed(&location))?;
    }
    let restored = restore(&mut db).map_err(failed(&location))?;
    let pending = writing::Pending::spooling(spool.map(|at| spool::Spool::new(at.path.clone(), 0)), Vec::new());
    let (sender, receiver) = mpsc::unbounded_channel();
    let writer_location = location.clone();
    let health = std::sync::Arc::new(StoreHealth::default());
    let writer_health = health.clone();
    let writer = std::thread::Builder::new()
        .name("vigil-store".into())
        .spawn(move || writing::write_loop(db, receiver, &writer_location, &writer_health, pending))
        .map_err(|error| StoreError::CreateDir { path: PathBuf::from(location.to_string()), error })?;
    Ok((Store { location, sender: Some(sender), writer: Some(writer), health }, restored))
}

/// What the store remembers, read at start.
fn restore(db: &mut Database) -> Result<Restored, DbError> {
    let now = crate::model::now_ms();
    let since = now - FLAP_HISTORY.as_millis() as i64;
    Ok(Restored {
        states: load_states(db)?,
        heartbeats: load_heartbeats(db)?,
        open_incidents: load_json(db, "SELECT data FROM incidents WHERE open = 1 ORDER BY id", &[])?,
        last_incident_id: db.query("SELECT COALESCE(MAX(id), 0) FROM incidents", &[])?[0].int(0)?,
        maintenance: load_json(db, "SELECT data FROM maintenance WHERE to_ms > ?1 ORDER BY id", &vals![now])?,
        pending: load_json(db, "SELECT data FROM outbox WHERE state = 'pending' ORDER BY created_ms, rowid", &[])?,
        watched: load_watched(db)?,
        pending_attempts: load_attempts(db)?,
        flap_changes: load_flap_changes(db, since)?,
    })
}

impl Store {
    /// Queues a record; never blocks.
    pub fn send(&self, record: Record) {
        if let Some(s) = &self.sender
            && s.send(record).is_err()
        {
            tracing::error!(store = %self.location, "store writer has stopped; record lost");
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

    /// Where this store writes.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// How the writer is doing (failing writes, records waiting).
    pub fn health(&self) -> std::sync::Arc<StoreHealth> {
        self.health.clone()
    }
}

fn load_attempts(db: &mut Database) -> Result<HashMap<String, u32>, DbError> {
    let rows = db.query("SELECT key, attempts FROM outbox WHERE state = 'pending' AND attempts > 0", &[])?;
    rows.iter().map(|r| Ok((r.text(0)?, r.int(1)?.clamp(0, i64::from(u32::MAX)) as u32))).collect()
}

fn load_flap_changes(db: &mut Database, since_ms: i64) -> Result<HashMap<String, Vec<i64>>, DbError> {
    let rows = db.query(
        "SELECT target, at_ms FROM state_changes WHERE at_ms > ?1
           AND from_state IN ('up', 'degraded', 'down', 'unreachable')
           AND to_state IN ('up', 'degraded', 'down', 'unreachable') ORDER BY at_ms, id",
        &vals![since_ms],
    )?;
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    for row in rows {
        out.entry(row.text(0)?).or_default().push(row.int(1)?);
    }
    Ok(out)
}

fn load_watched(db: &mut Database) -> Result<HashMap<String, (i64, Option<State>)>, DbError> {
    let rows = db.query(
        "SELECT t.target, t.updated_ms, (SELECT c.to_state FROM state_changes c WHERE c.target = t.target
           ORDER BY c.at_ms DESC, c.id DESC LIMIT 1) FROM target_state t",
        &[],
    )?;
    rows.iter().map(|r| Ok((r.text(0)?, (r.int(1)?, r.opt_text(2)?.and_then(|s| State::from_name(&s)))))).collect()
}

pub(super) fn load_states(db: &mut Database) -> Result<HashMap<String, TargetState>, DbError> {
    let rows = db.query(
        "SELECT target, state, since_ms, streak_worse, streak_count, streak_target, streak_since_ms FROM target_state",
        &[],
    )?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let streak_count = r.int(4)?;
        let streak =
            r.opt_text(5)?.and_then(|t| State::from_name(&t)).filter(|_| streak_count > 0).map(|target| Streak {
                worse: r.opt_int(3).ok().flatten().is_some_and(|w| w != 0),
                count: streak_count as u32,
                target,
                since_ms: r.opt_int(6).ok().flatten().unwrap_or(0),
            });
        let state = State::from_name(r.str(1)?).unwrap_or(State::Unknown);
        out.insert(r.text(0)?, TargetState { state, since_ms: r.int(2)?, streak });
    }
    Ok(out)
}

/// Loads JSON-encoded rows; a row that no longer decodes is skipped with an error log.
fn load_json<T: serde::de::DeserializeOwned>(
    db: &mut Database,
    sql: &str,
    params: &[db::Value],
) -> Result<Vec<T>, DbError> {
    let mut out = Vec::new();
    for row in db.query(sql, params)? {
        match serde_json::from_str(row.str(0)?) {
            Ok(v) => out.push(v),
            Err(e) => tracing::error!(error = %e, "a stored row no longer decodes; skipped"),
        }
    }
    Ok(out)
}

fn load_heartbeats(db: &mut Database) -> Result<Vec<HeartbeatRecord>, DbError> {
    let rows = db.query("SELECT target, at_ms, ok, message FROM heartbeats", &[])?;
    rows.iter()
        .map(|r| Ok(HeartbeatRecord { target: r.text(0)?, at_ms: r.int(1)?, ok: r.int(2)? != 0, message: r.text(3)? }))
        .collect()
}

pub mod forward;
pub mod query;
mod reader;
pub mod shared;
pub use reader::Reader;
