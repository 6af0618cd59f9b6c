//! What the nodes of a cluster do together in their shared PostgreSQL store: reserve
//! blocks of incident ids, read the state and open incident of targets taken over from
//! another node, and claim the notifications a dead node left undelivered.

use std::collections::HashMap;

use super::db::{Database, DbError, Value, vals};
use super::{Location, StoreError, failed, load_json};
use crate::model::incident::{Incident, Notification};
use crate::model::{State, Streak, TargetState};

/// Incident ids per reserved block.
pub const ID_BLOCK: i64 = 10_000;

fn connect(location: &Location) -> Result<Option<Database>, StoreError> {
    match location {
        Location::File(_) => Ok(None),
        Location::Postgres(dsn) => Database::postgres(dsn.expose()).map(Some).map_err(failed(location)),
    }
}

/// Reserves the next block of incident ids; None for a store of one's own (a file), whose
/// ids simply follow the last one.
pub fn reserve_incident_ids(location: &Location) -> Result<Option<std::ops::Range<i64>>, StoreError> {
    let Some(mut db) = connect(location)? else { return Ok(None) };
    let block = db.query("SELECT nextval('incident_blocks')", &[]).map_err(failed(location))?;
    let block = block.first().map(|r| r.int(0)).transpose().map_err(failed(location))?.unwrap_or(1);
    Ok(Some(block * ID_BLOCK..(block + 1) * ID_BLOCK))
}

/// What the shared store knows of targets another node ran: their states and open incidents.
#[derive(Debug, Default)]
pub struct TakenOver {
    pub states: HashMap<String, TargetState>,
    pub open_incidents: Vec<Incident>,
}

/// Reads the state and open incident of each of `targets` (None for a file store).
pub fn taken_over(location: &Location, targets: &[String]) -> Result<Option<TakenOver>, StoreError> {
    let Some(mut db) = connect(location)? else { return Ok(None) };
    let mut out = TakenOver::default();
    // A few hundred targets per statement: a failover of thousands is a few round trips.
    let read = |db: &mut Database, out: &mut TakenOver, targets: &[String]| -> Result<(), DbError> {
        let list = (1..=targets.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        let params: Vec<Value> = targets.iter().map(|t| Value::Text(t.clone())).collect();
        let rows = db.query(
            &format!(
                "SELECT target, state, since_ms, streak_worse, streak_count, streak_target, streak_since_ms
                 FROM target_state WHERE target IN ({list})"
            ),
            &params,
        )?;
        for r in rows {
            let count = r.int(4).unwrap_or(0);
            let streak = r.opt_text(5)?.and_then(|t| State::from_name(&t)).filter(|_| count > 0).map(|to| Streak {
                worse: r.int(3).unwrap_or(0) != 0,
                count: count as u32,
                target: to,
                since_ms: r.int(6).unwrap_or(0),
            });
            let state = State::from_name(r.str(1)?).unwrap_or(State::Unknown);
            out.states.insert(r.text(0)?, TargetState { state, since_ms: r.int(2)?, streak });
        }
        let sql = format!("SELECT data FROM incidents WHERE open = 1 AND target IN ({list}) ORDER BY id");
        out.open_incidents.extend(load_json::<Incident>(db, &sql, &params)?);
        Ok(())
    };
    for chunk in targets.chunks(500) {
        read(&mut db, &mut out, chunk).map_err(failed(location))?;
    }
    Ok(Some(out))
}

/// Claims for `node` the undelivered notifications whose maker is no longer a live member
/// of `cluster` (its lease ran out on the database's clock) or that no node made, at most
/// `limit`, oldest first; rows another node is claiming at the same moment are skipped
/// (`FOR UPDATE SKIP LOCKED`), so each is claimed once. `held` is the connection the caller
/// keeps between rounds (made here when there is none or it broke; none for a file store).
pub fn claim_orphans(
    location: &Location,
    held: &mut Option<Database>,
    cluster: &str,
    node: &str,
    limit: i64,
) -> Result<Vec<Notification>, StoreError> {
    if held.as_ref().is_none_or(Database::is_broken) {
        *held = connect(location)?;
    }
    let Some(db) = held.as_mut() else { return Ok(Vec::new()) };
    let claimed = db.transaction(|db| {
        load_json::<Notification>(
            db,
            "UPDATE outbox SET claimed_by = ?2 WHERE key IN (
               SELECT o.key FROM outbox o WHERE o.state = 'pending' AND (o.claimed_by IS NULL OR NOT EXISTS (
                 SELECT 1 FROM vigil_cluster_members m
                 WHERE m.cluster = ?1 AND m.node = o.claimed_by AND m.lease_until > now()))
               ORDER BY o.created_ms, o.id LIMIT ?3 FOR UPDATE SKIP LOCKED)
             RETURNING data",
            &vals![cluster, node, limit],
        )
    });
    let mut claimed = claimed.map_err(failed(location))?;
    claimed.sort_by_key(|n| n.created_ms);
    for n in &mut claimed {
        n.node = Some(node.to_string());
    }
    Ok(claimed)
}
