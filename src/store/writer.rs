//! The writer's transaction: every record of a batch in one transaction, so a
//! state change, its incident and its notifications are stored together or not at all.
//! The records are only read: a batch that fails is kept whole and written again.
//!
//! size: `write` is one match arm per record kind, the whole schema's write side in one view.

use super::Record;
use super::db::{Database, DbError, vals};
use super::fence::{Fence, FenceCheck};

/// What one batch did besides its rows.
struct Written<'a> {
    /// The keys of the notifications it added to the outbox (not those already there).
    added: Vec<String>,
    fence: FenceCheck<'a>,
    /// Whether it renamed a target (kept histories are stale once it commits).
    renamed: bool,
}

/// Writes `batch` in one transaction (all of it or nothing), through the node's `fence`
/// when it shares a cluster's store; returns the keys of the notifications it added to
/// the outbox (not those already there).
pub(super) fn write_batch(
    db: &mut Database,
    batch: &[Record],
    fence: Option<&Fence>,
    owned: &mut std::collections::HashSet<String>,
) -> Result<Vec<String>, DbError> {
    let (added, dropped, renamed) = db.transaction(|db| {
        let mut written = Written { added: Vec::new(), fence: FenceCheck::new(fence, owned), renamed: false };
        batch.iter().try_for_each(|record| write(db, record, &mut written))?;
        Ok((written.added, written.fence.dropped, written.renamed))
    })?;
    if renamed {
        super::histories::renamed();
    }
    if dropped > 0 {
        tracing::warn!(
            records = dropped,
            "kept while this node was cut from the shared store, for targets another node has run since: not written"
        );
    }
    Ok(added)
}

/// The daily-rollup upsert for each latency bucket, built once.
fn rollup_upserts() -> &'static [String] {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        (0..super::ROLLUP_BUCKETS_MS.len())
            .map(|b| {
                format!(
                    "INSERT INTO rollups (target, day_ms, runs, failures, lat_min, lat_max, lat_sum, b{b})
                 VALUES (?1, ?2, 1, ?3, ?4, ?4, ?5, ?6)
                 ON CONFLICT(target, day_ms) DO UPDATE SET runs = rollups.runs + 1,
                   failures = rollups.failures + excluded.failures,
                   lat_min = CASE WHEN excluded.lat_min IS NULL OR rollups.lat_min <= excluded.lat_min
                     THEN rollups.lat_min ELSE excluded.lat_min END,
                   lat_max = CASE WHEN excluded.lat_max IS NULL OR rollups.lat_max >= excluded.lat_max
                     THEN rollups.lat_max ELSE excluded.lat_max END,
                   lat_sum = rollups.lat_sum + excluded.lat_sum, b{b} = rollups.b{b} + excluded.b{b}"
                )
            })
            .collect()
    })
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn write(db: &mut Database, record: &Record, written: &mut Written) -> Result<(), DbError> {
    if !written.fence.keeps(db, record)? {
        return Ok(());
    }
    match record {
        Record::Result(r) => {
            db.exec("INSERT INTO results (target, at_ms, health, reason, duration_ms, message, echoes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", &vals![r.target, r.at_ms, r.health, r.reason, r.duration_ms, r.message, r.echoes])?;
            // The daily rollup: latency only of results that measured something.
            let measured = r.health != "unknown";
            let failed = matches!(r.health, "down" | "degraded");
            let bucket = super::ROLLUP_BUCKETS_MS
                .iter()
                .position(|b| r.duration_ms <= *b)
                .unwrap_or(super::ROLLUP_BUCKETS_MS.len() - 1);
            let sql = &rollup_upserts()[bucket];
            let latency = measured.then_some(r.duration_ms);
            db.exec(
                sql,
                &vals![r.target, r.day_ms, i64::from(failed), latency, latency.unwrap_or(0.0), i64::from(measured)],
            )?;
            let streak = r.state.streak;
            db.exec("INSERT INTO target_state (target, state, since_ms, streak_worse, streak_count, streak_target, updated_ms, streak_since_ms, node)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(target) DO UPDATE SET state = excluded.state, since_ms = excluded.since_ms,
                   streak_worse = excluded.streak_worse, streak_count = excluded.streak_count,
                   streak_target = excluded.streak_target, updated_ms = excluded.updated_ms,
                   streak_since_ms = excluded.streak_since_ms, node = excluded.node", &vals![
                r.target,
                r.state.state.as_str(),
                r.state.since_ms,
                streak.is_some_and(|s| s.worse),
                streak.map_or(0, |s| s.count),
                streak.map(|s| s.target.as_str()),
                r.at_ms,
                streak.map_or(0, |s| s.since_ms),
                written.fence.node(),
            ])?;
        }
        Record::Change(c) => {
            db.exec("INSERT INTO state_changes (target, at_ms, from_state, to_state, reason, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &vals![c.target, c.at_ms, c.from.as_str(), c.to.as_str(), c.reason, c.message])?;
        }
        Record::Heartbeat(h) => {
            db.exec("INSERT INTO heartbeats (target, at_ms, ok, message) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(target) DO UPDATE SET at_ms = excluded.at_ms, ok = excluded.ok, message = excluded.message", &vals![h.target, h.at_ms, h.ok, h.message])?;
        }
        Record::Incident(i) => {
            // A resolved incident is final: a stale copy written late (a node cut from a
            // shared store writing what it kept) never reopens or rewrites it.
            db.exec("INSERT INTO incidents (id, target, system, severity, open, started_ms, resolved_ms, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(id) DO UPDATE SET open = excluded.open, resolved_ms = excluded.resolved_ms, data = excluded.data
                 WHERE incidents.open = 1", &vals![i.id, i.target, i.system, i.severity.as_str(), i.is_open(), i.started_ms, i.resolved_ms, json(&**i)])?;
        }
        Record::Outbox(n) => {
            // The key is the idempotency key: a notification already written is not written twice.
            let new = db.exec(
                "INSERT INTO outbox (key, receiver, created_ms, state, data, claimed_by) VALUES (?1, ?2, ?3, 'pending', ?4, ?5)
                 ON CONFLICT DO NOTHING",
                &vals![n.key, n.receiver, n.created_ms, json(&**n), n.node],
            )?;
            if new > 0 {
                written.added.push(n.key.clone());
            }
        }
        Record::Delivery(d) => {
            db.exec("UPDATE outbox SET state = ?2, channel = ?3, attempts = ?4, finished_ms = ?5, error = ?6 WHERE key = ?1", &vals![d.key, d.state, d.channel, d.attempts, d.at_ms, d.error])?;
        }
        Record::Attempt { key, attempts } => {
            db.exec("UPDATE outbox SET attempts = ?2 WHERE key = ?1 AND state = 'pending'", &vals![key, attempts])?;
        }
        Record::Maintenance(w) => {
            db.exec("INSERT INTO maintenance (to_ms, data) VALUES (?1, ?2)", &vals![w.to_ms, json(&w)])?;
        }
        Record::Exclusion(e) => {
            db.exec("INSERT INTO exclusions (incident_id, reason, \"by\", at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(incident_id) DO UPDATE SET reason = excluded.reason, \"by\" = excluded.\"by\", at_ms = excluded.at_ms", &vals![e.incident_id, e.reason, e.by, e.at_ms])?;
        }
        Record::Ingest(b) => {
            super::forward::ingest(db, b)?;
        }
        Record::Forwarded(seqs) => super::forward::acknowledged(db, seqs)?,
        Record::Rename { from, to } => {
            written.renamed = true;
            // The renamed target's rows replace any the new id already has where the key
            // is the target (one row per target, or per target and day).
            for (table, clash) in [
                ("rollups", "AND day_ms IN (SELECT day_ms FROM rollups WHERE target = ?1)"),
                ("heartbeats", "AND EXISTS (SELECT 1 FROM heartbeats WHERE target = ?1)"),
                ("target_state", "AND EXISTS (SELECT 1 FROM target_state WHERE target = ?1)"),
            ] {
                db.exec(&format!("DELETE FROM {table} WHERE target = ?2 {clash}"), &vals![from, to])?;
            }
            for table in ["results", "state_changes", "rollups", "heartbeats", "target_state"] {
                db.exec(&format!("UPDATE {table} SET target = ?2 WHERE target = ?1"), &vals![from, to])?;
            }
            let system = to.split('/').next().unwrap_or_default();
            db.exec("UPDATE incidents SET target = ?2, system = ?3 WHERE target = ?1", &vals![from, to, system])?;
        }
        Record::Batch(records) => {
            for r in records {
                write(db, r, written)?;
            }
        }
        Record::Prune(before) => {
            let gone = db.exec("DELETE FROM results WHERE at_ms < ?1", &vals![*before])?;
            // Finished deliveries and ended API maintenance windows go with the raw results;
            // pending notifications, incidents and state changes stay.
            let delivered = db.exec(
                "DELETE FROM outbox WHERE state != 'pending' AND finished_ms IS NOT NULL AND finished_ms < ?1",
                &vals![*before],
            )?;
            let windows = db.exec("DELETE FROM maintenance WHERE to_ms < ?1", &vals![*before])?;
            db.exec("DELETE FROM ack_requests WHERE at_ms < ?1", &vals![*before])?;
            // Agents' raw results go the same way; their state changes stay, like ours.
            let gone =
                gone + db.exec("DELETE FROM vantage_results WHERE kind = 'result' AND at_ms < ?1", &vals![*before])?;
            if gone + delivered + windows > 0 {
                tracing::info!(
                    results = gone,
                    deliveries = delivered,
                    maintenance = windows,
                    "pruned rows older than storage.raw_retention"
                );
            }
        }
        Record::Owned(targets) => written.fence.own(targets),
        Record::AckRequest(a) => {
            db.exec(
                "INSERT INTO ack_requests (incident_id, by_name, comment, at_ms) VALUES (?1, ?2, ?3, ?4)",
                &vals![a.incident_id, a.by, a.comment, a.at_ms],
            )?;
        }
        Record::AckDone(id) => {
            db.exec("UPDATE ack_requests SET done = 1 WHERE id = ?1", &vals![*id])?;
        }
        Record::Audit(a) => {
            db.exec(
                "INSERT INTO audit (at_ms, who, address, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                &vals![a.at_ms, a.who, a.address, a.action, a.detail],
            )?;
        }
        // Not data: the write loop answers these once the batch is committed.
        Record::Flush(_) | Record::Release(..) | Record::Stop | Record::ReleaseUnstoredAfter(_) | Record::Fence(_) => {}
    }
    Ok(())
}
