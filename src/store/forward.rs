//! Forwarding between a vantage point and its centre, in the store. On an agent, triggers
//! copy every result and state change into `forward_queue` in the transaction that writes
//! it (so nothing committed is missed, whatever happens next); rows leave the queue only
//! once the centre has committed them. On a centre, each agent's records are kept once per
//! sequence number, so a batch sent twice (a lost answer, a killed agent) is harmless.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{StoreError, connect, sqlite};

const TRIGGERS: &str = "
    CREATE TRIGGER IF NOT EXISTS forward_results AFTER INSERT ON results BEGIN
        INSERT INTO forward_queue (kind, target, at_ms, data) VALUES ('result', NEW.target, NEW.at_ms,
            json_object('health', NEW.health, 'reason', NEW.reason, 'duration_ms', NEW.duration_ms, 'message', NEW.message));
    END;
    CREATE TRIGGER IF NOT EXISTS forward_changes AFTER INSERT ON state_changes BEGIN
        INSERT INTO forward_queue (kind, target, at_ms, data) VALUES ('change', NEW.target, NEW.at_ms,
            json_object('from', NEW.from_state, 'to', NEW.to_state, 'reason', NEW.reason, 'message', NEW.message));
    END;";

/// Installs (`on`) or removes the triggers that queue results for the centre: only an
/// agent forwards, and a store that stops being one stops queueing.
pub fn set_forwarding(path: &Path, on: bool) -> Result<(), StoreError> {
    let conn = connect(path)?;
    let sql =
        if on { TRIGGERS } else { "DROP TRIGGER IF EXISTS forward_results; DROP TRIGGER IF EXISTS forward_changes;" };
    conn.execute_batch(sql).map_err(sqlite(path))
}

/// One record on its way to the centre: a result or a state change of one target, as it
/// was measured, with the agent's sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forwarded {
    pub seq: i64,
    /// `result` or `change`.
    pub kind: String,
    pub target: String,
    pub at_ms: i64,
    /// The record's fields (health, reason, duration, message; or from, to, reason, message).
    pub data: serde_json::Value,
}

/// A row `seq, kind, target, at_ms, data` as a record.
fn forwarded(r: &rusqlite::Row<'_>) -> rusqlite::Result<Forwarded> {
    let data: String = r.get(4)?;
    Ok(Forwarded {
        seq: r.get(0)?,
        kind: r.get(1)?,
        target: r.get(2)?,
        at_ms: r.get(3)?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
    })
}

/// What is waiting to be forwarded: up to `live` of the newest records (live results go
/// first) and up to `backlog` of the oldest, in sequence order, each once.
pub fn waiting(conn: &Connection, live: usize, backlog: usize) -> rusqlite::Result<Vec<Forwarded>> {
    let read = |sql: &str, limit: usize| -> rusqlite::Result<Vec<Forwarded>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([limit as i64], forwarded)?;
        rows.collect()
    };
    let mut out = read("SELECT seq, kind, target, at_ms, data FROM forward_queue ORDER BY seq DESC LIMIT ?1", live)?;
    out.extend(read("SELECT seq, kind, target, at_ms, data FROM forward_queue ORDER BY seq LIMIT ?1", backlog)?);
    out.sort_by_key(|f| f.seq);
    out.dedup_by_key(|f| f.seq);
    Ok(out)
}

/// How many records wait to be forwarded, and the oldest one's time.
pub fn backlog(conn: &Connection) -> rusqlite::Result<(u64, Option<i64>)> {
    conn.query_row("SELECT count(*), min(at_ms) FROM forward_queue", [], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// Removes records the centre has committed.
pub fn acknowledged(conn: &Connection, seqs: &[i64]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("DELETE FROM forward_queue WHERE seq = ?1")?;
    for seq in seqs {
        stmt.execute([seq])?;
    }
    Ok(())
}

/// A batch an agent sent, as the centre stores it.
#[derive(Debug, Clone)]
pub struct IngestBatch {
    pub vantage: String,
    pub records: Vec<Forwarded>,
    /// The agent's clock minus the centre's when the batch came, in ms.
    pub clock_offset_ms: i64,
    pub received_ms: i64,
}

/// Keeps an agent's records at the centre, each sequence number once; returns how many were new.
pub fn ingest(
    conn: &Connection,
    vantage: &str,
    records: &[Forwarded],
    clock_offset_ms: i64,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO vantage_results (vantage, seq, kind, target, at_ms, data, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut new = 0;
    for r in records {
        new += stmt.execute(params![vantage, r.seq, r.kind, r.target, r.at_ms, r.data.to_string(), now_ms])?;
    }
    let last_seq = records.iter().map(|r| r.seq).max().unwrap_or(0);
    conn.prepare_cached(
        "INSERT INTO vantages (name, last_seen_ms, last_seq, clock_offset_ms, received) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(name) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,
           last_seq = max(last_seq, excluded.last_seq), clock_offset_ms = excluded.clock_offset_ms,
           received = received + excluded.received",
    )?
    .execute(params![vantage, now_ms, last_seq, clock_offset_ms, new as i64])?;
    Ok(new)
}

/// What the centre knows of one vantage point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VantageSeen {
    pub name: String,
    pub last_seen_ms: i64,
    pub last_seq: i64,
    pub clock_offset_ms: i64,
    /// Records received (each once).
    pub received: i64,
    /// The newest measurement received, Unix ms.
    pub newest_ms: Option<i64>,
}

/// Every vantage point the centre has heard from.
pub fn vantages(conn: &Connection) -> rusqlite::Result<Vec<VantageSeen>> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.name, v.last_seen_ms, v.last_seq, v.clock_offset_ms, v.received,
                (SELECT max(at_ms) FROM vantage_results r WHERE r.vantage = v.name)
         FROM vantages v ORDER BY v.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(VantageSeen {
            name: r.get(0)?,
            last_seen_ms: r.get(1)?,
            last_seq: r.get(2)?,
            clock_offset_ms: r.get(3)?,
            received: r.get(4)?,
            newest_ms: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// The records the centre holds from `vantage`, in sequence order.
pub fn received(conn: &Connection, vantage: &str) -> rusqlite::Result<Vec<Forwarded>> {
    let mut stmt = conn
        .prepare_cached("SELECT seq, kind, target, at_ms, data FROM vantage_results WHERE vantage = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([vantage], forwarded)?;
    rows.collect()
}

/// The last sequence number the centre holds from `vantage`, if any.
pub fn last_seq(conn: &Connection, vantage: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT last_seq FROM vantages WHERE name = ?1", [vantage], |r| r.get(0)).optional()
}
