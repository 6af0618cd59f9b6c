//! The embedded store (SQLite, WAL): every probe result, every state change with its exact
//! time, and each target's current state, so that a restart resumes where it stopped.
//!
//! One writer thread owns the connection; callers send [`Record`]s over a channel and are
//! never blocked by disk I/O. The writer drains what is queued and writes it in one
//! transaction, so the write rate stays flat however many checks report at once.

mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use crate::alert::state::{State, Streak, TargetState};

/// Most records written in one transaction.
const MAX_BATCH: usize = 2_000;

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
}

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

/// What the writer is asked to do.
#[derive(Debug)]
pub enum Record {
    Result(ResultRecord),
    Change(ChangeRecord),
    Heartbeat(HeartbeatRecord),
    /// Answers once everything sent before it is on disk.
    Flush(oneshot::Sender<()>),
}

/// What the store remembers at start-up.
#[derive(Debug, Default)]
pub struct Restored {
    /// Each target's state, keyed by target id.
    pub states: HashMap<String, TargetState>,
    /// The last heartbeat of each heartbeat check.
    pub heartbeats: Vec<HeartbeatRecord>,
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
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite { path: path.to_path_buf(), source }
}

/// Opens (or creates) the store at `path`, migrates it, and returns it with what it
/// remembers.
pub fn open(path: &Path) -> Result<(Store, Restored), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
    }
    let mut conn = Connection::open(path).map_err(sqlite(path))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(sqlite(path))?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(sqlite(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite(path))?;
    schema::migrate(&mut conn).map_err(sqlite(path))?;
    let states = load_states(&conn).map_err(sqlite(path))?;
    let heartbeats = load_heartbeats(&conn).map_err(sqlite(path))?;
    let (sender, receiver) = mpsc::unbounded_channel();
    let writer_path = path.to_path_buf();
    let writer = std::thread::Builder::new()
        .name("vigil-store".into())
        .spawn(move || write_loop(conn, receiver, &writer_path))
        .map_err(|e| StoreError::CreateDir { path: path.to_path_buf(), source: e })?;
    Ok((
        Store { path: path.to_path_buf(), sender: Some(sender), writer: Some(writer) },
        Restored { states, heartbeats },
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
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }

    /// The file this store writes to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn load_states(conn: &Connection) -> rusqlite::Result<HashMap<String, TargetState>> {
    let mut stmt =
        conn.prepare("SELECT target, state, since_ms, streak_worse, streak_count, streak_target FROM target_state")?;
    let rows = stmt.query_map([], |r| {
        let state: String = r.get(1)?;
        let streak_count: i64 = r.get(4)?;
        let streak_target: Option<String> = r.get(5)?;
        let streak = streak_target
            .and_then(|t| State::from_name(&t))
            .filter(|_| streak_count > 0)
            .map(|target| Streak { worse: r.get::<_, bool>(3).unwrap_or(false), count: streak_count as u32, target });
        Ok((
            r.get::<_, String>(0)?,
            TargetState { state: State::from_name(&state).unwrap_or(State::Unknown), since_ms: r.get(2)?, streak },
        ))
    })?;
    rows.collect()
}

fn load_heartbeats(conn: &Connection) -> rusqlite::Result<Vec<HeartbeatRecord>> {
    let mut stmt = conn.prepare("SELECT target, at_ms, ok, message FROM heartbeats")?;
    let rows = stmt.query_map([], |r| {
        Ok(HeartbeatRecord { target: r.get(0)?, at_ms: r.get(1)?, ok: r.get(2)?, message: r.get(3)? })
    })?;
    rows.collect()
}

fn write_loop(mut conn: Connection, mut receiver: mpsc::UnboundedReceiver<Record>, path: &Path) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut waiters = Vec::new();
        if let Err(e) = write_batch(&mut conn, batch, &mut waiters) {
            tracing::error!(store = %path.display(), error = %e, "cannot write to the store");
        }
        for w in waiters {
            let _ = w.send(());
        }
    }
}

fn write_batch(
    conn: &mut Connection,
    batch: Vec<Record>,
    waiters: &mut Vec<oneshot::Sender<()>>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert_result = tx.prepare_cached(
            "INSERT INTO results (target, at_ms, health, reason, duration_ms, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut upsert_state = tx.prepare_cached(
            "INSERT INTO target_state (target, state, since_ms, streak_worse, streak_count, streak_target, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(target) DO UPDATE SET state = excluded.state, since_ms = excluded.since_ms,
               streak_worse = excluded.streak_worse, streak_count = excluded.streak_count,
               streak_target = excluded.streak_target, updated_ms = excluded.updated_ms",
        )?;
        let mut insert_change = tx.prepare_cached(
            "INSERT INTO state_changes (target, at_ms, from_state, to_state, reason, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for record in batch {
            match record {
                Record::Result(r) => {
                    insert_result.execute(params![r.target, r.at_ms, r.health, r.reason, r.duration_ms, r.message])?;
                    let streak = r.state.streak;
                    upsert_state.execute(params![
                        r.target,
                        r.state.state.as_str(),
                        r.state.since_ms,
                        streak.is_some_and(|s| s.worse),
                        streak.map_or(0, |s| s.count),
                        streak.map(|s| s.target.as_str()),
                        r.at_ms,
                    ])?;
                }
                Record::Change(c) => {
                    insert_change.execute(params![
                        c.target,
                        c.at_ms,
                        c.from.as_str(),
                        c.to.as_str(),
                        c.reason,
                        c.message
                    ])?;
                }
                Record::Heartbeat(h) => {
                    tx.prepare_cached(
                        "INSERT INTO heartbeats (target, at_ms, ok, message) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(target) DO UPDATE SET at_ms = excluded.at_ms, ok = excluded.ok, message = excluded.message",
                    )?
                    .execute(params![h.target, h.at_ms, h.ok, h.message])?;
                }
                Record::Flush(w) => waiters.push(w),
            }
        }
    }
    tx.commit()
}

/// Read-only queries, on their own connection (WAL lets them run beside the writer).
pub mod query {
    use super::*;

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

    /// How many results are stored for one target.
    pub fn result_count(path: &Path, target: &str) -> Result<u64, StoreError> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(path))?;
        conn.query_row("SELECT COUNT(*) FROM results WHERE target = ?1", [target], |r| r.get(0)).map_err(sqlite(path))
    }
}
