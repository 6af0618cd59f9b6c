//! Every target's state history from a bound, kept between requests. The home and system
//! pages account 90 days of every target at each request; reading them all again from
//! the file cost about 40 ms a page at 50,000 targets. A SQLite reader keeps them and reads
//! only the changes written since: state changes are only ever appended, and the one
//! writer gives them growing ids in the order it commits. A rename (the one rewrite of
//! state changes) or another file at the path throws them away. PostgreSQL, where nodes
//! commit their ids out of order, is read whole each time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::db::{Database, DbError, vals};
use super::query::StateHistory;
use crate::model::State;

/// Renames this process's writer has committed: kept histories older than the last are
/// stale (a renamed target's changes moved to its new id).
static RENAMES: AtomicU64 = AtomicU64::new(0);

/// Kept histories may begin this much before the bound asked for; beyond, they are read
/// afresh from it (else they would grow by a day every day).
const REREAD_AFTER_MS: i64 = 7 * 86_400_000;

/// Says that a rename has been committed (the writer, after the commit).
pub(super) fn renamed() {
    RENAMES.fetch_add(1, Ordering::AcqRel);
}

/// A (device, inode) pair: the file the histories were read from.
pub(super) type FileId = (u64, u64);

/// The histories one reader keeps (see the module).
#[derive(Debug, Default)]
pub(super) struct HistoryCache {
    kept: Mutex<Option<Kept>>,
}

#[derive(Debug)]
struct Kept {
    file: FileId,
    renames: u64,
    from: i64,
    /// The newest state change read.
    last_id: i64,
    histories: HashMap<String, StateHistory>,
}

impl HistoryCache {
    /// Every target's history from `from` (as [`read_all`] would answer), made into an `H`
    /// by `make`, from the kept histories and the changes written since.
    pub(super) fn histories<H>(
        &self,
        db: &mut Database,
        file: FileId,
        from: i64,
        make: impl Fn(StateHistory) -> H,
    ) -> Result<HashMap<String, H>, DbError> {
        let guard = self.refreshed(db, file, from)?;
        let Some(kept) = guard.as_ref() else { return Ok(HashMap::new()) };
        let mut out = HashMap::with_capacity(kept.histories.len());
        out.extend(kept.histories.iter().filter_map(|(target, h)| Some((target.clone(), make(from_bound(h, from)?)))));
        Ok(out)
    }

    /// Brings the kept histories up to date (read whole if they cannot serve `from`).
    pub(super) fn keep(&self, db: &mut Database, file: FileId, from: i64) -> Result<(), DbError> {
        self.refreshed(db, file, from).map(drop)
    }

    /// The kept histories, usable from `from` and with every change written so far.
    fn refreshed(&self, db: &mut Database, file: FileId, from: i64) -> Result<MutexGuard<'_, Option<Kept>>, DbError> {
        let mut guard = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let renames = RENAMES.load(Ordering::Acquire);
        let usable =
            |k: &Kept| k.file == file && k.renames == renames && k.from <= from && from - k.from <= REREAD_AFTER_MS;
        let mut kept = match guard.take().filter(usable) {
            Some(kept) => kept,
            None => read_kept(db, file, renames, from)?,
        };
        if !append_new(db, &mut kept)? {
            kept = read_kept(db, file, renames, from)?;
        }
        *guard = Some(kept);
        Ok(guard)
    }
}

/// The histories from `from`, read whole in one snapshot with the newest id among them.
fn read_kept(db: &mut Database, file: FileId, renames: u64, from: i64) -> Result<Kept, DbError> {
    db.transaction(|db| {
        let last_id = db.query("SELECT COALESCE(MAX(id), 0) FROM state_changes", &[])?[0].int(0)?;
        Ok(Kept { file, renames, from, last_id, histories: read_all(db, from)? })
    })
}

/// Adds the changes written since the kept ones, each in its place (they may be older than
/// the newest kept: a restart records the gap before it); false when one falls at or
/// before the kept bound (the histories must be read again).
fn append_new(db: &mut Database, kept: &mut Kept) -> Result<bool, DbError> {
    let rows = db.query(
        "SELECT id, target, at_ms, to_state FROM state_changes WHERE id > ?1 ORDER BY id",
        &vals![kept.last_id],
    )?;
    for row in rows {
        let (id, at) = (row.int(0)?, row.int(2)?);
        if at <= kept.from {
            return Ok(false);
        }
        kept.last_id = id;
        let Some(state) = State::from_name(row.str(3)?) else { continue };
        let changes = &mut kept.histories.entry(row.text(1)?).or_default().1;
        let place = changes.partition_point(|(t, _)| *t <= at);
        changes.insert(place, (at, state));
    }
    Ok(true)
}

/// A history kept from an earlier bound, as from `from`: the state at `from` and the
/// changes after it; None when it says nothing (no change before or after).
fn from_bound((initial, changes): &StateHistory, from: i64) -> Option<StateHistory> {
    let split = changes.partition_point(|(t, _)| *t <= from);
    let initial = if split > 0 { Some(changes[split - 1].1) } else { *initial };
    let after = changes[split..].to_vec();
    (initial.is_some() || !after.is_empty()).then_some((initial, after))
}

/// Every target's state history from `from_ms` — the state it was in at `from_ms` and its
/// changes after, oldest first — in two statements whatever the number of targets.
pub(super) fn read_all(db: &mut Database, from_ms: i64) -> Result<HashMap<String, StateHistory>, DbError> {
    let mut out: HashMap<String, StateHistory> = HashMap::new();
    let initial = db.query(
        "SELECT target, s FROM (SELECT t.target, (SELECT c.to_state FROM state_changes c WHERE c.target = t.target
           AND c.at_ms <= ?1 ORDER BY c.at_ms DESC, c.id DESC LIMIT 1) AS s
         FROM (SELECT DISTINCT target FROM state_changes) t) initial WHERE s IS NOT NULL",
        &vals![from_ms],
    )?;
    for row in initial {
        out.entry(row.text(0)?).or_default().0 = State::from_name(row.str(1)?);
    }
    // In index order (target, time): no sort.
    let rows = db.query(
        "SELECT target, at_ms, to_state FROM state_changes INDEXED BY state_changes_cover
         WHERE at_ms > ?1 ORDER BY target, at_ms, id",
        &vals![from_ms],
    )?;
    for row in rows {
        if let Some(state) = State::from_name(row.str(2)?) {
            out.entry(row.text(0)?).or_default().1.push((row.int(1)?, state));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_history_seen_from_a_later_bound() {
        let h = (Some(State::Up), vec![(10, State::Down), (20, State::Up), (20, State::Degraded), (30, State::Up)]);
        assert_eq!(from_bound(&h, 5), Some(h.clone()));
        assert_eq!(
            from_bound(&h, 20),
            Some((Some(State::Degraded), vec![(30, State::Up)])),
            "the later of two at the bound"
        );
        assert_eq!(from_bound(&h, 40), Some((Some(State::Up), Vec::new())));
        assert_eq!(from_bound(&(None, vec![]), 40), None);
        assert_eq!(from_bound(&(None, vec![(50, State::Up)]), 40), Some((None, vec![(50, State::Up)])));
    }
}
