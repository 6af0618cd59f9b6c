//! The store's reader: one long-lived connection (for SQLite read-only: WAL lets it read
//! beside the writer), opened on first use and opened again after an error, with the
//! queries every view needs — set queries answer for all targets at once, so a page costs
//! a few statements however many checks there are.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use super::db::{Database, DbError, Row, vals};
use super::query::{Change, Exclusion, Rollup, StateHistory, StoredResult};
use super::{AuditRecord, Location, ROLLUP_BUCKETS_MS, StoreError, failed, load_json};
use crate::model::State;
use crate::model::incident::Incident;

use super::histories::{FileId, HistoryCache};

/// Reads one store through one connection.
#[derive(Debug)]
pub struct Reader {
    location: Location,
    /// The open connection and, for a file, the file it was opened on.
    conn: Mutex<Option<(Database, Option<FileId>)>>,
    /// Every target's state history, kept between reads of a file (see `histories`).
    histories: HistoryCache,
}

/// The file at `path` now: (device, inode), if there is one.
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Opens a reading connection: a file read-only (it must exist), a database as it is.
fn open(location: &Location) -> Result<(Database, Option<FileId>), StoreError> {
    match location {
        Location::File(path) => {
            let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| failed(location)(e.into()))?;
            conn.set_prepared_statement_cache_capacity(64);
            match file_id(path) {
                Some(id) => Ok((Database::Sqlite(conn), Some(id))),
                None => Err(StoreError::Missing { path: path.clone() }),
            }
        }
        Location::Postgres(dsn) => Ok((Database::postgres(dsn.expose()).map_err(failed(location))?, None)),
    }
}

impl Reader {
    /// A reader of the store at `location` (nothing is opened yet).
    pub fn new(location: impl Into<Location>) -> Reader {
        Reader { location: location.into(), conn: Mutex::new(None), histories: HistoryCache::default() }
    }

    /// Where the store is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Runs `f` on the connection, opening it first if needed. The connection is opened
    /// afresh after an error, and when the file at the path is no longer the one it was
    /// opened on (moved, replaced, deleted): a moved store is unreadable, not silently old.
    fn with<T>(&self, f: impl FnOnce(&mut Database) -> Result<T, DbError>) -> Result<T, StoreError> {
        self.with_file(|db, _| f(db))
    }

    /// [`Reader::with`], also telling `f` which file the connection reads (None for
    /// PostgreSQL).
    fn with_file<T>(
        &self,
        f: impl FnOnce(&mut Database, Option<FileId>) -> Result<T, DbError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.location.file().and_then(file_id);
        let (mut db, id) = match guard.take() {
            Some((db, id)) if id == now => (db, id),
            _ => open(&self.location)?,
        };
        let result = f(&mut db, id).map_err(failed(&self.location));
        if result.is_ok() {
            *guard = Some((db, id));
        }
        result
    }

    /// Runs one query and turns each row into a `T`.
    fn rows<T>(
        &self,
        sql: &str,
        params: &[super::db::Value],
        each: impl Fn(&Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, StoreError> {
        self.with(|db| db.query(sql, params)?.iter().map(each).collect())
    }

    /// The exclusion of an incident, if any.
    pub fn exclusion(&self, incident_id: i64) -> Result<Option<Exclusion>, StoreError> {
        let mut all = self.rows(
            "SELECT reason, \"by\", at_ms FROM exclusions WHERE incident_id = ?1",
            &vals![incident_id],
            |r| Ok(Exclusion { incident_id, reason: r.text(0)?, by: r.text(1)?, at_ms: r.int(2)? }),
        )?;
        Ok(all.pop())
    }

    /// Every exclusion, keyed by incident id.
    pub fn exclusions(&self) -> Result<HashMap<i64, Exclusion>, StoreError> {
        let all = self.rows("SELECT incident_id, reason, \"by\", at_ms FROM exclusions", &[], |r| {
            Ok(Exclusion { incident_id: r.int(0)?, reason: r.text(1)?, by: r.text(2)?, at_ms: r.int(3)? })
        })?;
        Ok(all.into_iter().map(|e| (e.incident_id, e)).collect())
    }

    /// When a target's last result was stored, and the state its history ended on (`unknown`
    /// after a clean stop); None for a target never probed.
    pub fn last_watched(&self, target: &str) -> Result<Option<(i64, Option<State>)>, StoreError> {
        self.with(|db| {
            let Some(updated) =
                db.query_opt("SELECT updated_ms FROM target_state WHERE target = ?1", &vals![target])?
            else {
                return Ok(None);
            };
            let tail = db.query_opt(
                "SELECT to_state FROM state_changes WHERE target = ?1 ORDER BY at_ms DESC, id DESC LIMIT 1",
                &vals![target],
            )?;
            let tail = tail.map(|r| r.text(0)).transpose()?;
            Ok(Some((updated.int(0)?, tail.and_then(|s| State::from_name(&s)))))
        })
    }

    /// Incidents that overlap [from, to), oldest first.
    pub fn incidents_between(&self, from: i64, to: i64) -> Result<Vec<Incident>, StoreError> {
        self.with(|db| {
            load_json(
                db,
                "SELECT data FROM incidents WHERE started_ms < ?2 AND (resolved_ms IS NULL OR resolved_ms > ?1) ORDER BY id",
                &vals![from, to],
            )
        })
    }

    /// Incidents that overlap [from, to) and have been excluded from the SLA, oldest first.
    pub fn excluded_incidents_between(&self, from: i64, to: i64) -> Result<Vec<Incident>, StoreError> {
        self.with(|db| {
            load_json(
                db,
                "SELECT data FROM incidents WHERE id IN (SELECT incident_id FROM exclusions)
                   AND started_ms < ?2 AND (resolved_ms IS NULL OR resolved_ms > ?1) ORDER BY id",
                &vals![from, to],
            )
        })
    }

    /// One incident by id.
    pub fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        self.with(|db| Ok(load_json(db, "SELECT data FROM incidents WHERE id = ?1", &vals![id])?.pop()))
    }

    /// The state changes of one target, oldest first.
    pub fn changes(&self, target: &str) -> Result<Vec<Change>, StoreError> {
        self.rows(
            "SELECT at_ms, from_state, to_state, reason FROM state_changes WHERE target = ?1 ORDER BY id",
            &vals![target],
            |r| Ok(Change { at_ms: r.int(0)?, from: r.text(1)?, to: r.text(2)?, reason: r.opt_text(3)? }),
        )
    }

    /// A target's state history from `from_ms`: the state it was in then (None if
    /// unknown to the store) and every change since, in time order.
    pub fn state_history(&self, target: &str, from_ms: i64) -> Result<StateHistory, StoreError> {
        self.with(|db| {
            let initial = db.query_opt(
                "SELECT to_state FROM state_changes WHERE target = ?1 AND at_ms <= ?2 ORDER BY at_ms DESC, id DESC LIMIT 1",
                &vals![target, from_ms],
            )?;
            let initial = initial.map(|r| r.text(0)).transpose()?.and_then(|s| State::from_name(&s));
            let rows = db.query(
                "SELECT at_ms, to_state FROM state_changes WHERE target = ?1 AND at_ms > ?2 ORDER BY at_ms, id",
                &vals![target, from_ms],
            )?;
            let mut changes = Vec::new();
            for r in rows {
                if let Some(s) = State::from_name(r.str(1)?) {
                    changes.push((r.int(0)?, s));
                }
            }
            Ok((initial, changes))
        })
    }

    /// When a target went down, degraded or unreachable since `from_ms`, and why.
    pub fn failure_causes(&self, target: &str, from_ms: i64) -> Result<Vec<(i64, String)>, StoreError> {
        self.rows(
            "SELECT at_ms, message FROM state_changes WHERE target = ?1 AND at_ms > ?2
             AND to_state IN ('down', 'degraded', 'unreachable') ORDER BY at_ms, id",
            &vals![target, from_ms],
            |r| Ok((r.int(0)?, r.text(1)?)),
        )
    }

    /// The daily rollups of a target from `from_ms` to `to_ms`.
    pub fn rollups(&self, target: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Rollup>, StoreError> {
        self.rows(
            "SELECT day_ms, runs, failures, lat_min, lat_max, lat_sum, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11
             FROM rollups WHERE target = ?1 AND day_ms >= ?2 AND day_ms < ?3 ORDER BY day_ms",
            &vals![target, from_ms, to_ms],
            rollup,
        )
    }

    /// A target's results since `from_ms`, oldest first (raw results are kept for
    /// `storage.raw_retention`).
    pub fn results(&self, target: &str, from_ms: i64) -> Result<Vec<StoredResult>, StoreError> {
        self.rows(
            "SELECT at_ms, health, reason, duration_ms, message, echoes FROM results WHERE target = ?1 AND at_ms >= ?2 ORDER BY at_ms, id",
            &vals![target, from_ms],
            |r| {
                Ok(StoredResult {
                    at_ms: r.int(0)?,
                    health: r.text(1)?,
                    reason: r.opt_text(2)?,
                    duration_ms: r.real(3)?,
                    message: r.text(4)?,
                    echoes: r.opt_text(5)?,
                })
            },
        )
    }

    /// Incidents of one target, newest first.
    pub fn incidents_of(&self, target: &str, limit: usize) -> Result<Vec<Incident>, StoreError> {
        self.with(|db| {
            load_json(
                db,
                "SELECT data FROM incidents WHERE target = ?1 ORDER BY id DESC LIMIT ?2",
                &vals![target, limit as i64],
            )
        })
    }

    /// Maintenance windows opened through the API, oldest first.
    pub fn maintenance(&self) -> Result<Vec<crate::config::maintenance::ApiWindow>, StoreError> {
        self.with(|db| load_json(db, "SELECT data FROM maintenance ORDER BY id", &[]))
    }

    /// Whether a notification with this key was ever written to the outbox.
    pub fn outbox_has(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.count("SELECT COUNT(*) FROM outbox WHERE key = ?1", &vals![key])? > 0)
    }

    /// The delivery state of every notification: (key, state, channel), oldest first.
    pub fn deliveries(&self) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        self.rows("SELECT key, state, channel FROM outbox ORDER BY created_ms, rowid", &[], |r| {
            Ok((r.text(0)?, r.text(1)?, r.opt_text(2)?))
        })
    }

    /// The audit trail, newest first, at most `limit` entries.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.rows(
            "SELECT at_ms, who, address, action, detail FROM audit ORDER BY at_ms DESC, id DESC LIMIT ?1",
            &vals![limit as i64],
            |r| {
                Ok(AuditRecord {
                    at_ms: r.int(0)?,
                    who: r.text(1)?,
                    address: r.text(2)?,
                    action: r.text(3)?,
                    detail: r.text(4)?,
                })
            },
        )
    }

    /// One count.
    fn count(&self, sql: &str, params: &[super::db::Value]) -> Result<u64, StoreError> {
        Ok(self.rows(sql, params, |r| r.int(0))?.first().copied().unwrap_or(0).max(0) as u64)
    }

    /// How many results are stored for one target.
    pub fn result_count(&self, target: &str) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM results WHERE target = ?1", &vals![target])
    }

    /// Acknowledgements waiting for the cluster node that holds their incident, made since
    /// `since_ms`, oldest first.
    pub fn pending_acks(&self, since_ms: i64) -> Result<Vec<super::AckRequest>, StoreError> {
        self.rows(
            "SELECT id, incident_id, by_name, comment, at_ms FROM ack_requests WHERE done = 0 AND at_ms >= ?1 ORDER BY id",
            &vals![since_ms],
            |r| {
                Ok(super::AckRequest {
                    id: r.int(0)?,
                    incident_id: r.int(1)?,
                    by: r.str(2)?.to_string(),
                    comment: r.str(3)?.to_string(),
                    at_ms: r.int(4)?,
                })
            },
        )
    }

    /// Every target's current state, as its last writer stored it.
    pub fn states(&self) -> Result<HashMap<String, crate::model::TargetState>, StoreError> {
        self.with(super::load_states)
    }

    /// Incidents, newest first: open ones only, or all; optionally of one system.
    pub fn incidents(&self, open_only: bool, system: Option<&str>, limit: usize) -> Result<Vec<Incident>, StoreError> {
        let (sql, params) = match system {
            Some(system) => (
                "SELECT data FROM incidents WHERE open >= ?1 AND system = ?2 ORDER BY id DESC LIMIT ?3",
                vals![open_only, system, limit as i64].to_vec(),
            ),
            None => (
                "SELECT data FROM incidents WHERE open >= ?1 ORDER BY id DESC LIMIT ?2",
                vals![open_only, limit as i64].to_vec(),
            ),
        };
        self.with(|db| load_json(db, sql, &params))
    }

    /// Every vantage point the centre has heard from.
    pub fn vantages(&self) -> Result<Vec<super::forward::VantageSeen>, StoreError> {
        self.with(super::forward::vantages)
    }

    /// Each vantage point's view of each target, as far as the centre can vouch for it
    /// (see [`super::forward::vantage_histories`]).
    pub fn vantage_histories(&self, from_ms: i64) -> Result<super::forward::VantageHistories, StoreError> {
        self.with(|db| super::forward::vantage_histories(db, from_ms))
    }

    /// The stretches of vantage points' measurements back-filled over [from_ms, to_ms).
    pub fn backfills(&self, from_ms: i64, to_ms: i64) -> Result<Vec<super::forward::Backfill>, StoreError> {
        self.with(|db| super::forward::backfills(db, from_ms, to_ms))
    }

    /// The records the centre holds from `vantage`, in sequence order.
    pub fn received(&self, vantage: &str) -> Result<Vec<super::forward::Forwarded>, StoreError> {
        self.with(|db| super::forward::received(db, vantage))
    }

    /// How many notifications wait for delivery (one statement, not a read of the outbox).
    pub fn pending_deliveries(&self) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'", &[])
    }

    /// Every target's state history from `from_ms` (see [`Reader::state_history`]), in two
    /// statements whatever the number of targets — for a file, only the changes written
    /// since the last call (see `store::histories`).
    pub fn state_histories(&self, from_ms: i64) -> Result<HashMap<String, StateHistory>, StoreError> {
        self.state_histories_as(from_ms, |h| h)
    }

    /// Brings the state histories kept from `from_ms` up to date (a file's reader keeps
    /// them, see `store::histories`; nothing for PostgreSQL), so that the next
    /// [`Reader::state_histories`] reads only what was written after.
    pub fn keep_state_histories(&self, from_ms: i64) -> Result<(), StoreError> {
        self.with_file(|db, file| match file {
            Some(file) => self.histories.keep(db, file, from_ms),
            None => Ok(()),
        })
    }

    /// [`Reader::state_histories`], each made into an `H` by `make` as it is read.
    pub fn state_histories_as<H>(
        &self,
        from_ms: i64,
        make: impl Fn(StateHistory) -> H,
    ) -> Result<HashMap<String, H>, StoreError> {
        self.with_file(|db, file| match file {
            Some(file) => self.histories.histories(db, file, from_ms, make),
            None => Ok(super::histories::read_all(db, from_ms)?.into_iter().map(|(t, h)| (t, make(h))).collect()),
        })
    }

    /// When each target whose last result is older than `before_ms` had it stored (the
    /// state a history ended on is the history's own last change).
    pub fn last_stored_before(&self, before_ms: i64) -> Result<HashMap<String, i64>, StoreError> {
        let rows =
            self.rows("SELECT target, updated_ms FROM target_state WHERE updated_ms < ?1", &vals![before_ms], |r| {
                Ok((r.text(0)?, r.int(1)?))
            })?;
        Ok(rows.into_iter().collect())
    }

    /// Every target's failure causes since `from_ms` (see [`Reader::failure_causes`]).
    pub fn failure_causes_all(&self, from_ms: i64) -> Result<HashMap<String, Vec<(i64, String)>>, StoreError> {
        let rows = self.rows(
            "SELECT target, at_ms, message FROM state_changes WHERE at_ms > ?1
             AND to_state IN ('down', 'degraded', 'unreachable') ORDER BY at_ms, id",
            &vals![from_ms],
            |r| Ok((r.text(0)?, r.int(1)?, r.text(2)?)),
        )?;
        let mut out: HashMap<String, Vec<(i64, String)>> = HashMap::new();
        for (target, at, message) in rows {
            out.entry(target).or_default().push((at, message));
        }
        Ok(out)
    }
}

/// A rollup row (day, runs, failures, latency min/max/sum, twelve bucket counts).
fn rollup(r: &Row) -> Result<Rollup, DbError> {
    let runs = r.int(1)?;
    let buckets: Vec<i64> = (6..18).map(|i| r.int(i)).collect::<Result<_, _>>()?;
    let measured: i64 = buckets.iter().sum();
    let mut seen = 0;
    let p95 = ROLLUP_BUCKETS_MS.iter().zip(&buckets).find_map(|(bound, n)| {
        seen += n;
        (measured > 0 && seen * 100 >= measured * 95).then_some(*bound)
    });
    let max = r.opt_real(4)?;
    Ok(Rollup {
        day_ms: r.int(0)?,
        runs,
        failures: r.int(2)?,
        latency_min_ms: r.opt_real(3)?,
        latency_max_ms: max,
        latency_avg_ms: (measured > 0).then(|| r.opt_real(5).ok().flatten().unwrap_or(0.0) / measured as f64),
        latency_p95_ms: p95.filter(|b| b.is_finite()).or_else(|| p95.and(max)),
    })
}
