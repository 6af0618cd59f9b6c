//! The store's reader: one long-lived read-only connection (WAL lets it read beside the
//! writer), opened on first use and opened again after an error, with the queries every
//! view needs — set queries answer for all targets at once, so a page costs a few
//! statements however many checks there are.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

use super::query::{Change, Exclusion, Rollup, StateHistory, StoredResult};
use super::{AuditRecord, ROLLUP_BUCKETS_MS, StoreError, load_json, sqlite};
use crate::model::State;
use crate::model::incident::Incident;

/// Reads the store at one path through one connection.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    /// The open connection and the file (device, inode) it was opened on.
    conn: Mutex<Option<(Connection, (u64, u64))>>,
}

/// The file at `path` now: (device, inode), if there is one.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Reader {
    /// A reader of the store at `path` (nothing is opened yet).
    pub fn new(path: &Path) -> Reader {
        Reader { path: path.to_path_buf(), conn: Mutex::new(None) }
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, opening it first if needed. The connection is opened
    /// afresh after an error, and when the file at the path is no longer the one it was
    /// opened on (moved, replaced, deleted): a moved store is unreadable, not silently old.
    fn with<T>(&self, f: impl FnOnce(&Connection, &Path) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let now = file_id(&self.path);
        let (conn, id) = match guard.take() {
            Some((conn, id)) if Some(id) == now => (conn, id),
            _ => {
                let conn = Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .map_err(sqlite(&self.path))?;
                match file_id(&self.path) {
                    Some(id) => (conn, id),
                    None => return Err(StoreError::Missing { path: self.path.clone() }),
                }
            }
        };
        let result = f(&conn, &self.path);
        if result.is_ok() {
            *guard = Some((conn, id));
        }
        result
    }

    /// The exclusion of an incident, if any.
    pub fn exclusion(&self, incident_id: i64) -> Result<Option<Exclusion>, StoreError> {
        self.with(|conn, path| {
            let row =
                conn.query_row("SELECT reason, by, at_ms FROM exclusions WHERE incident_id = ?1", [incident_id], |r| {
                    Ok(Exclusion { incident_id, reason: r.get(0)?, by: r.get(1)?, at_ms: r.get(2)? })
                });
            match row {
                Ok(e) => Ok(Some(e)),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(sqlite(path)(e)),
            }
        })
    }

    /// Every exclusion, keyed by incident id.
    pub fn exclusions(&self) -> Result<HashMap<i64, Exclusion>, StoreError> {
        self.with(|conn, path| {
            let mut stmt =
                conn.prepare("SELECT incident_id, reason, by, at_ms FROM exclusions").map_err(sqlite(path))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Exclusion { incident_id: r.get(0)?, reason: r.get(1)?, by: r.get(2)?, at_ms: r.get(3)? })
                })
                .map_err(sqlite(path))?;
            rows.map(|r| r.map(|e| (e.incident_id, e))).collect::<Result<_, _>>().map_err(sqlite(path))
        })
    }

    /// When a target's last result was stored, and the state its history ended on (`unknown`
    /// after a clean stop); None for a target never probed.
    pub fn last_watched(&self, target: &str) -> Result<Option<(i64, Option<State>)>, StoreError> {
        self.with(|conn, path| {
            let updated =
                conn.query_row("SELECT updated_ms FROM target_state WHERE target = ?1", [target], |r| r.get(0));
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
        })
    }

    /// Incidents that overlap [from, to), oldest first.
    pub fn incidents_between(&self, from: i64, to: i64) -> Result<Vec<Incident>, StoreError> {
        self.with(|conn, path| {
        load_json(
            conn,
            "SELECT data FROM incidents WHERE started_ms < ?2 AND (resolved_ms IS NULL OR resolved_ms > ?1) ORDER BY id",
            [from, to],
        )
        .map_err(sqlite(path))
        })
    }

    /// One incident by id.
    pub fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        self.with(|conn, path| {
            Ok(load_json(conn, "SELECT data FROM incidents WHERE id = ?1", [id]).map_err(sqlite(path))?.pop())
        })
    }

    /// The state changes of one target, oldest first.
    pub fn changes(&self, target: &str) -> Result<Vec<Change>, StoreError> {
        self.with(|conn, path| {
            let mut stmt = conn
                .prepare("SELECT at_ms, from_state, to_state, reason FROM state_changes WHERE target = ?1 ORDER BY id")
                .map_err(sqlite(path))?;
            let rows = stmt
                .query_map([target], |r| {
                    Ok(Change { at_ms: r.get(0)?, from: r.get(1)?, to: r.get(2)?, reason: r.get(3)? })
                })
                .map_err(sqlite(path))?;
            rows.collect::<Result<_, _>>().map_err(sqlite(path))
        })
    }

    /// A target's state history from `from_ms`: the state it was in then (None if
    /// unknown to the store) and every change since, in time order.
    pub fn state_history(&self, target: &str, from_ms: i64) -> Result<StateHistory, StoreError> {
        self.with(|conn, path| {
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
        })
    }

    /// When a target went down, degraded or unreachable since `from_ms`, and why.
    pub fn failure_causes(&self, target: &str, from_ms: i64) -> Result<Vec<(i64, String)>, StoreError> {
        self.with(|conn, path| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT at_ms, message FROM state_changes WHERE target = ?1 AND at_ms > ?2
                 AND to_state IN ('down', 'degraded', 'unreachable') ORDER BY at_ms, id",
                )
                .map_err(sqlite(path))?;
            let rows = stmt
                .query_map(rusqlite::params![target, from_ms], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sqlite(path))?;
            rows.collect::<Result<_, _>>().map_err(sqlite(path))
        })
    }

    /// The daily rollups of a target from `from_ms` to `to_ms`.
    pub fn rollups(&self, target: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Rollup>, StoreError> {
        self.with(|conn, path| {
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
        })
    }

    /// A target's results since `from_ms`, oldest first (raw results are kept for
    /// `storage.raw_retention`).
    pub fn results(&self, target: &str, from_ms: i64) -> Result<Vec<StoredResult>, StoreError> {
        self.with(|conn, path| {
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
        })
    }

    /// Incidents of one target, newest first.
    pub fn incidents_of(&self, target: &str, limit: usize) -> Result<Vec<Incident>, StoreError> {
        self.with(|conn, path| {
            load_json(
                conn,
                "SELECT data FROM incidents WHERE target = ?1 ORDER BY id DESC LIMIT ?2",
                rusqlite::params![target, limit as i64],
            )
            .map_err(sqlite(path))
        })
    }

    /// Maintenance windows opened through the API, oldest first.
    pub fn maintenance(&self) -> Result<Vec<crate::config::maintenance::ApiWindow>, StoreError> {
        self.with(|conn, path| load_json(conn, "SELECT data FROM maintenance ORDER BY id", []).map_err(sqlite(path)))
    }

    /// Whether a notification with this key was ever written to the outbox.
    pub fn outbox_has(&self, key: &str) -> Result<bool, StoreError> {
        self.with(|conn, path| {
            conn.query_row("SELECT COUNT(*) FROM outbox WHERE key = ?1", [key], |r| r.get::<_, i64>(0))
                .map(|n| n > 0)
                .map_err(sqlite(path))
        })
    }

    /// The delivery state of every notification: (key, state, channel), oldest first.
    pub fn deliveries(&self) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        self.with(|conn, path| {
            let mut stmt = conn
                .prepare("SELECT key, state, channel FROM outbox ORDER BY created_ms, rowid")
                .map_err(sqlite(path))?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(sqlite(path))?;
            rows.collect::<Result<_, _>>().map_err(sqlite(path))
        })
    }

    /// The audit trail, newest first, at most `limit` entries.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.with(|conn, path| {
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
        })
    }

    /// How many results are stored for one target.
    pub fn result_count(&self, target: &str) -> Result<u64, StoreError> {
        self.with(|conn, path| {
            conn.query_row("SELECT COUNT(*) FROM results WHERE target = ?1", [target], |r| r.get(0))
                .map_err(sqlite(path))
        })
    }

    /// Incidents, newest first: open ones only, or all; optionally of one system.
    pub fn incidents(&self, open_only: bool, system: Option<&str>, limit: usize) -> Result<Vec<Incident>, StoreError> {
        self.with(|conn, path| {
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
        })
    }

    /// Every vantage point the centre has heard from.
    pub fn vantages(&self) -> Result<Vec<super::forward::VantageSeen>, StoreError> {
        self.with(|conn, path| super::forward::vantages(conn).map_err(sqlite(path)))
    }

    /// Each vantage point's view of each target, as far as the centre can vouch for it
    /// (see [`super::forward::vantage_histories`]).
    pub fn vantage_histories(&self, from_ms: i64) -> Result<super::forward::VantageHistories, StoreError> {
        self.with(|conn, path| super::forward::vantage_histories(conn, from_ms).map_err(sqlite(path)))
    }

    /// The stretches of vantage points' measurements back-filled over [from_ms, to_ms).
    pub fn backfills(&self, from_ms: i64, to_ms: i64) -> Result<Vec<super::forward::Backfill>, StoreError> {
        self.with(|conn, path| super::forward::backfills(conn, from_ms, to_ms).map_err(sqlite(path)))
    }

    /// The records the centre holds from `vantage`, in sequence order.
    pub fn received(&self, vantage: &str) -> Result<Vec<super::forward::Forwarded>, StoreError> {
        self.with(|conn, path| super::forward::received(conn, vantage).map_err(sqlite(path)))
    }

    /// How many notifications wait for delivery (one statement, not a read of the outbox).
    pub fn pending_deliveries(&self) -> Result<u64, StoreError> {
        self.with(|conn, path| {
            conn.query_row("SELECT COUNT(*) FROM outbox WHERE state = 'pending'", [], |r| r.get(0))
                .map_err(sqlite(path))
        })
    }

    /// Every target's state history from `from_ms` (see [`Reader::state_history`]), in three
    /// statements whatever the number of targets.
    pub fn state_histories(&self, from_ms: i64) -> Result<HashMap<String, StateHistory>, StoreError> {
        self.with(|conn, path| {
            let mut out: HashMap<String, StateHistory> = HashMap::new();
            let mut initial = conn
                .prepare_cached(
                    "SELECT t.target, (SELECT c.to_state FROM state_changes c WHERE c.target = t.target
                       AND c.at_ms <= ?1 ORDER BY c.at_ms DESC, c.id DESC LIMIT 1) AS s
                     FROM (SELECT DISTINCT target FROM state_changes) t WHERE s IS NOT NULL",
                )
                .map_err(sqlite(path))?;
            let rows = initial
                .query_map([from_ms], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(sqlite(path))?;
            for row in rows {
                let (target, state) = row.map_err(sqlite(path))?;
                out.entry(target).or_default().0 = State::from_name(&state);
            }
            // In index order (target, time): no sort, and one string per target, not per row.
            let mut changes = conn
                .prepare_cached(
                    "SELECT target, at_ms, to_state FROM state_changes INDEXED BY state_changes_cover
                     WHERE at_ms > ?1 ORDER BY target, at_ms, id",
                )
                .map_err(sqlite(path))?;
            let mut rows = changes.query([from_ms]).map_err(sqlite(path))?;
            let mut current: Option<(String, StateHistory)> = None;
            while let Some(row) = rows.next().map_err(sqlite(path))? {
                let target = row.get_ref(0).and_then(|v| Ok(v.as_str()?)).map_err(sqlite(path))?;
                let at: i64 = row.get(1).map_err(sqlite(path))?;
                let state = row.get_ref(2).and_then(|v| Ok(v.as_str()?)).map_err(sqlite(path))?;
                if current.as_ref().is_none_or(|(t, _)| t != target) {
                    if let Some((t, h)) = current.take() {
                        out.entry(t).or_default().1 = h.1;
                    }
                    current = Some((target.to_string(), (None, Vec::new())));
                }
                if let (Some((_, h)), Some(state)) = (current.as_mut(), State::from_name(state)) {
                    h.1.push((at, state));
                }
            }
            if let Some((t, h)) = current.take() {
                out.entry(t).or_default().1 = h.1;
            }
            Ok(out)
        })
    }

    /// Every target's last result and the state its history ended on (see
    /// [`Reader::last_watched`]).
    pub fn last_watched_all(&self) -> Result<HashMap<String, (i64, Option<State>)>, StoreError> {
        self.with(|conn, path| super::load_watched(conn).map_err(sqlite(path)))
    }

    /// Every target's failure causes since `from_ms` (see [`Reader::failure_causes`]).
    pub fn failure_causes_all(&self, from_ms: i64) -> Result<HashMap<String, Vec<(i64, String)>>, StoreError> {
        self.with(|conn, path| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT target, at_ms, message FROM state_changes WHERE at_ms > ?1
                     AND to_state IN ('down', 'degraded', 'unreachable') ORDER BY at_ms, id",
                )
                .map_err(sqlite(path))?;
            let rows = stmt
                .query_map([from_ms], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))
                .map_err(sqlite(path))?;
            let mut out: HashMap<String, Vec<(i64, String)>> = HashMap::new();
            for row in rows {
                let (target, at, message) = row.map_err(sqlite(path))?;
                out.entry(target).or_default().push((at, message));
            }
            Ok(out)
        })
    }
}
