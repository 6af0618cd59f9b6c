//! Forwarding between a vantage point and its centre, in the store. On an agent, triggers
//! copy every result and state change into `forward_queue` in the transaction that writes
//! it (so nothing committed is missed, whatever happens next); rows leave the queue only
//! once the centre has committed them. On a centre, each agent's records are kept once per
//! sequence number, so a batch sent twice (a lost answer, a killed agent) is harmless.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::db::{Database, DbError, Row, vals};
use super::{Location, StoreError, connect, failed};

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
    let location = Location::File(path.to_path_buf());
    let mut db = connect(&location)?;
    let sql =
        if on { TRIGGERS } else { "DROP TRIGGER IF EXISTS forward_results; DROP TRIGGER IF EXISTS forward_changes;" };
    db.batch(sql).map_err(failed(&location))?;
    if on {
        // This store's incarnation, made once: it tells the centre these sequence numbers
        // are not an earlier store's.
        let mut id = [0u8; 16];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).is_err() {
            // No system randomness: the clock, to the nanosecond, still tells stores apart.
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            id = nanos.as_nanos().to_be_bytes();
        }
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        db.exec(
            "INSERT INTO agent_identity (incarnation) SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM agent_identity)",
            &vals![hex],
        )
        .map_err(failed(&location))?;
    }
    Ok(())
}

/// This agent store's incarnation (None before it forwards).
pub fn incarnation(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT incarnation FROM agent_identity LIMIT 1", [], |r| r.get(0)).optional()
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

/// The same, from either backend.
fn forwarded_row(r: &Row) -> Result<Forwarded, DbError> {
    Ok(Forwarded {
        seq: r.int(0)?,
        kind: r.text(1)?,
        target: r.text(2)?,
        at_ms: r.int(3)?,
        data: serde_json::from_str(r.str(4)?).unwrap_or(serde_json::Value::Null),
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
pub fn acknowledged(db: &mut Database, seqs: &[i64]) -> Result<(), DbError> {
    for seq in seqs {
        db.exec("DELETE FROM forward_queue WHERE seq = ?1", &vals![*seq])?;
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
    /// The vantage's grace: measured time counted later than this after it happened was
    /// back-filled (and is recorded as such).
    pub late_after_ms: i64,
    /// The agent store's incarnation, when the agent sends it.
    pub incarnation: Option<String>,
}

/// Keeps an agent's records at the centre, each sequence number once, and moves what the
/// centre can vouch for forward; returns how many were new.
pub fn ingest(db: &mut Database, batch: &IngestBatch) -> Result<usize, DbError> {
    let (vantage, records, now_ms) = (batch.vantage.as_str(), &batch.records, batch.received_ms);
    let base = seq_base(db, vantage, batch.incarnation.as_deref(), now_ms)?;
    let mut new = 0;
    for r in records {
        let seq = r.seq.saturating_add(base);
        new += db.exec(
            "INSERT INTO vantage_results (vantage, seq, kind, target, at_ms, data, received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            &vals![vantage, seq, r.kind, r.target, r.at_ms, r.data.to_string(), now_ms],
        )? as usize;
    }
    let last_seq = records.iter().map(|r| r.seq.saturating_add(base)).max().unwrap_or(0);
    db.exec(
        "INSERT INTO vantages (name, last_seen_ms, last_seq, clock_offset_ms, received) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(name) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,
           last_seq = CASE WHEN vantages.last_seq > excluded.last_seq THEN vantages.last_seq ELSE excluded.last_seq END,
           clock_offset_ms = excluded.clock_offset_ms, received = vantages.received + excluded.received",
        &vals![vantage, now_ms, last_seq, batch.clock_offset_ms, new as i64],
    )?;
    if let Some(oldest) = records.iter().map(|r| r.seq.saturating_add(base)).min() {
        advance_contiguous(db, vantage, oldest, now_ms, batch.late_after_ms)?;
    }
    Ok(new)
}

/// What the vantage's sequence numbers are shifted by: 0, unless its agent's store is a new
/// incarnation — then its records are filed after every one the centre holds, as a new
/// series (a store made anew restarts at 1; without this they would be taken for replays
/// and dropped).
fn seq_base(db: &mut Database, vantage: &str, incarnation: Option<&str>, now_ms: i64) -> Result<i64, DbError> {
    db.exec(
        "INSERT INTO vantages (name, last_seen_ms, last_seq, clock_offset_ms, received) VALUES (?1, ?2, 0, 0, 0)
         ON CONFLICT DO NOTHING",
        &vals![vantage, now_ms],
    )?;
    let row = db.query("SELECT incarnation, seq_base, last_seq FROM vantages WHERE name = ?1", &vals![vantage])?;
    let row = row.first().ok_or(DbError::Column(0, "the vantage's row is missing"))?;
    let (known, base, last) = (row.opt_text(0)?, row.int(1)?, row.int(2)?);
    let Some(incarnation) = incarnation else { return Ok(base) };
    match known {
        Some(known) if known == incarnation => Ok(base),
        Some(_) => {
            tracing::warn!(vantage, "the agent's store is new: its records are filed after the old ones");
            db.exec(
                "UPDATE vantages SET incarnation = ?2, seq_base = ?3, contiguous_seq = ?3 WHERE name = ?1",
                &vals![vantage, incarnation, last],
            )?;
            Ok(last)
        }
        None => {
            db.exec("UPDATE vantages SET incarnation = ?2 WHERE name = ?1", &vals![vantage, incarnation])?;
            Ok(base)
        }
    }
}

/// Moves the vantage's contiguous sequence over the records now held without a hole.
/// A batch starts with the oldest record the agent still has (its backlog goes oldest
/// first), so a hole below `oldest` will never be filled: it is passed over. When the
/// stretch newly counted ends more than `late_after_ms` before now, it was back-filled:
/// recorded in `vantage_backfills`.
fn advance_contiguous(
    db: &mut Database,
    vantage: &str,
    oldest: i64,
    now_ms: i64,
    late_after_ms: i64,
) -> Result<(), DbError> {
    let row = db.query("SELECT contiguous_seq, horizon_ms FROM vantages WHERE name = ?1", &vals![vantage])?;
    let row = row.first().ok_or(DbError::Column(0, "the vantage's row is missing"))?;
    let (was, horizon) = (row.int(0)?, row.opt_int(1)?);
    let mut seq = was.max(oldest - 1);
    let mut newest = horizon;
    let rows = db.query(
        "SELECT seq, at_ms FROM vantage_results WHERE vantage = ?1 AND seq > ?2 ORDER BY seq",
        &vals![vantage, seq],
    )?;
    for row in rows {
        let (next, at) = (row.int(0)?, row.int(1)?);
        if next != seq + 1 {
            break;
        }
        seq = next;
        newest = Some(newest.map_or(at, |n| n.max(at)));
    }
    if seq == was {
        return Ok(());
    }
    if let (Some(from), Some(to)) = (horizon, newest)
        && to > from
        && now_ms - from > late_after_ms
    {
        // A back-fill comes in many batches: each continues the stretch the last one began.
        let continued = db.exec(
            "UPDATE vantage_backfills SET to_ms = ?4, counted_ms = ?2 WHERE vantage = ?1 AND to_ms = ?3",
            &vals![vantage, now_ms, from, to],
        )?;
        if continued == 0 {
            db.exec(
                "INSERT INTO vantage_backfills (vantage, counted_ms, from_ms, to_ms) VALUES (?1, ?2, ?3, ?4)",
                &vals![vantage, now_ms, from, to],
            )?;
        }
    }
    db.exec("UPDATE vantages SET contiguous_seq = ?2, horizon_ms = ?3 WHERE name = ?1", &vals![vantage, seq, newest])?;
    Ok(())
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
pub fn vantages(db: &mut Database) -> Result<Vec<VantageSeen>, DbError> {
    let rows = db.query(
        "SELECT v.name, v.last_seen_ms, v.last_seq, v.clock_offset_ms, v.received,
                (SELECT max(at_ms) FROM vantage_results r WHERE r.vantage = v.name)
         FROM vantages v ORDER BY v.name",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok(VantageSeen {
                name: r.text(0)?,
                last_seen_ms: r.int(1)?,
                last_seq: r.int(2)?,
                clock_offset_ms: r.int(3)?,
                received: r.int(4)?,
                newest_ms: r.opt_int(5)?,
            })
        })
        .collect()
}

/// The records the centre holds from `vantage`, in sequence order.
pub fn received(db: &mut Database, vantage: &str) -> Result<Vec<Forwarded>, DbError> {
    let rows = db.query(
        "SELECT seq, kind, target, at_ms, data FROM vantage_results WHERE vantage = ?1 ORDER BY seq",
        &vals![vantage],
    )?;
    rows.iter().map(forwarded_row).collect()
}

/// The last sequence number the centre holds from `vantage`, if any.
pub fn last_seq(db: &mut Database, vantage: &str) -> Result<Option<i64>, DbError> {
    db.query_opt("SELECT last_seq FROM vantages WHERE name = ?1", &vals![vantage])?.map(|r| r.int(0)).transpose()
}

/// Each vantage point's view of each target as far as the centre can vouch for it: per
/// `target@vantage`, the state at `from_ms` and the changes after it (only records up to
/// the vantage's contiguous sequence), and per vantage the time its measurements reach.
pub fn vantage_histories(db: &mut Database, from_ms: i64) -> Result<VantageHistories, DbError> {
    let mut out = VantageHistories::default();
    for row in db.query("SELECT name, horizon_ms FROM vantages WHERE horizon_ms IS NOT NULL", &[])? {
        out.horizons.insert(row.text(0)?, row.int(1)?);
    }
    // State changes are few (results are not read): every one up to the contiguous sequence.
    let rows = db.query(
        "SELECT r.vantage, r.target, r.at_ms, json_extract(r.data, '$.to') FROM vantage_results r
         JOIN vantages v ON v.name = r.vantage
         WHERE r.kind = 'change' AND r.seq <= v.contiguous_seq ORDER BY r.vantage, r.target, r.at_ms, r.seq",
        &[],
    )?;
    for row in rows {
        let (vantage, target, at) = (row.str(0)?, row.str(1)?, row.int(2)?);
        let Some(state) = row.opt_text(3)?.as_deref().and_then(crate::model::State::from_name) else {
            continue;
        };
        let h = out.histories.entry(format!("{target}@{vantage}")).or_default();
        if at <= from_ms {
            h.0 = Some(state);
        } else {
            h.1.push((at, state));
        }
    }
    Ok(out)
}

/// See [`vantage_histories`].
#[derive(Debug, Clone, Default)]
pub struct VantageHistories {
    /// `target@vantage` → (state at the start, changes after it).
    pub histories: std::collections::HashMap<String, super::query::StateHistory>,
    /// Vantage → the newest measurement time the centre holds with nothing missing before it.
    pub horizons: std::collections::HashMap<String, i64>,
}

/// A stretch of a vantage point's measurements that reached the centre late (after a cut
/// link, say): measured from `from_ms` to `to_ms`, counted at `counted_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backfill {
    pub vantage: String,
    pub counted_ms: i64,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The back-filled stretches overlapping [from_ms, to_ms), oldest first.
pub fn backfills(db: &mut Database, from_ms: i64, to_ms: i64) -> Result<Vec<Backfill>, DbError> {
    let rows = db.query(
        "SELECT vantage, counted_ms, from_ms, to_ms FROM vantage_backfills
         WHERE to_ms > ?1 AND from_ms < ?2 ORDER BY from_ms, vantage",
        &vals![from_ms, to_ms],
    )?;
    rows.iter()
        .map(|r| Ok(Backfill { vantage: r.text(0)?, counted_ms: r.int(1)?, from_ms: r.int(2)?, to_ms: r.int(3)? }))
        .collect()
}
