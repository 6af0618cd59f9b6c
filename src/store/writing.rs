//! The writer thread: batches records, commits them, and only then answers flushes and
//! releases notifications to delivery. A batch that cannot be written (disk full, a lock
//! held by a backup tool, a read-only file) is kept and written again with backoff; while
//! it fails, newer records join it, and only plain results are ever shed (counted) — never
//! a state change, an incident or an outbox row. [`StoreHealth`] says how it goes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::Location;
use super::db::Database;
use tokio::sync::{mpsc, oneshot};

use super::{Record, writer};
use crate::model::incident::Notification;

/// Records per transaction when all goes well.
const MAX_BATCH: usize = 2000;
/// Records kept while writes fail; beyond it, plain results are shed (oldest first).
const MAX_PENDING: usize = 200_000;
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);
/// At stop, how long a failing store is retried before what is left is given up (logged).
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// How the writer is doing, read by metrics, readiness and the status page.
#[derive(Debug, Default)]
pub struct StoreHealth {
    write_errors: AtomicU64,
    last_success_ms: AtomicI64,
    pending: AtomicU64,
    shed_results: AtomicU64,
    /// When writes began to fail (Unix ms); 0 while they succeed.
    failing_since_ms: AtomicI64,
    last_error: Mutex<String>,
}

/// A copy of [`StoreHealth`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealthSnapshot {
    /// Failed write attempts since start.
    pub write_errors: u64,
    /// The last committed write, Unix ms (0: none yet).
    pub last_success_ms: i64,
    /// Records waiting to be written.
    pub pending: u64,
    /// Plain results dropped because writes failed for too long.
    pub shed_results: u64,
    /// Since when writes fail, with the last error; `None` while they succeed.
    pub failing: Option<(i64, String)>,
}

impl StoreHealth {
    /// The current figures.
    pub fn snapshot(&self) -> StoreHealthSnapshot {
        let since = self.failing_since_ms.load(Ordering::Relaxed);
        StoreHealthSnapshot {
            write_errors: self.write_errors.load(Ordering::Relaxed),
            last_success_ms: self.last_success_ms.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            shed_results: self.shed_results.load(Ordering::Relaxed),
            failing: (since > 0).then(|| (since, self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone())),
        }
    }

    fn succeeded(&self, now_ms: i64) {
        self.last_success_ms.store(now_ms, Ordering::Relaxed);
        self.failing_since_ms.store(0, Ordering::Relaxed);
    }

    /// Records a failure; true for the first of a run of failures.
    fn failed(&self, now_ms: i64, error: &dyn std::fmt::Display) -> bool {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error.to_string();
        self.failing_since_ms.compare_exchange(0, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// What must wait for the commit of the records before it.
enum AfterCommit {
    Flush(oneshot::Sender<()>),
    Release(Box<Notification>, mpsc::UnboundedSender<Notification>),
}

/// Records not yet committed, and what waits for them.
#[derive(Default)]
pub(super) struct Pending {
    records: Vec<Record>,
    after: Vec<AfterCommit>,
    stopping: bool,
    /// Notifications this writer added to the outbox and has not released yet: a release
    /// of one the outbox already held (made twice — by two cluster nodes, or again after a
    /// restart) is dropped, so only the row's maker delivers it.
    added: std::collections::HashSet<String>,
    /// See [`Record::ReleaseUnstoredAfter`].
    release_after: Option<Duration>,
    /// See [`Record::Fence`].
    fence: Option<std::sync::Arc<super::Fence>>,
    /// See [`Record::Owned`].
    owned: std::collections::HashSet<String>,
    /// The local spool, for a store on PostgreSQL.
    spool: Option<super::spool::Spool>,
}

impl Pending {
    /// Pending `records` (left in a spool by an earlier run), spooled to `spool`.
    pub(super) fn spooling(spool: Option<super::spool::Spool>, records: Vec<Record>) -> Pending {
        Pending { spool, records, ..Pending::default() }
    }

    /// Writes have failed since `failing_since_ms`: what is kept in memory goes to the
    /// spool too (all of it again when some was shed).
    fn spool(&mut self, failing_since_ms: i64, shed: bool) {
        if let Some(spool) = &mut self.spool {
            spool.append(&self.records, failing_since_ms, shed);
        }
    }

    fn take(&mut self, record: Record) {
        match record {
            Record::Batch(records) => records.into_iter().for_each(|r| self.take(r)),
            Record::Flush(w) => self.after.push(AfterCommit::Flush(w)),
            Record::Release(n, to) => self.after.push(AfterCommit::Release(n, to)),
            Record::Stop => self.stopping = true,
            Record::ReleaseUnstoredAfter(after) => self.release_after = Some(after),
            Record::Fence(fence) => self.fence = Some(fence),
            data => self.records.push(data),
        }
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.after.is_empty()
    }

    /// Drops the oldest plain results beyond [`MAX_PENDING`]; returns how many.
    fn shed(&mut self) -> u64 {
        let mut excess = self.records.len().saturating_sub(MAX_PENDING);
        let before = self.records.len();
        self.records.retain(|r| {
            let drop = excess > 0 && matches!(r, Record::Result(_));
            excess -= usize::from(drop);
            !drop
        });
        (before - self.records.len()) as u64
    }

    /// Takes a record while there is no database: what waits for a commit is answered at
    /// once — notifications leave from memory, flushes return.
    fn take_without_store(&mut self, record: Record) {
        self.take(record);
        self.committed_after(false);
    }

    /// Answers what waited for the commit; with `guarded`, a notification is released only
    /// if this writer added it to the outbox.
    fn committed_after(&mut self, guarded: bool) {
        for after in self.after.drain(..) {
            match after {
                AfterCommit::Flush(w) => {
                    let _ = w.send(());
                }
                AfterCommit::Release(n, _) if guarded && !self.added.remove(&n.key) => {
                    tracing::debug!(key = %n.key, "notification already in the outbox: its maker delivers it");
                }
                AfterCommit::Release(n, to) => {
                    let _ = to.send(*n);
                }
            }
        }
    }

    /// Writes have failed since `failing_since_ms`: past the grace, notifications waiting
    /// for the commit leave now (their rows are written when the store answers again).
    fn release_unstored(&mut self, failing_since_ms: i64, now_ms: i64) {
        let Some(after) = self.release_after else { return };
        if failing_since_ms == 0 || now_ms - failing_since_ms < after.as_millis() as i64 {
            return;
        }
        let (released, waiting): (Vec<_>, Vec<_>) =
            self.after.drain(..).partition(|a| matches!(a, AfterCommit::Release(..)));
        self.after = waiting;
        if !released.is_empty() {
            tracing::warn!(
                notifications = released.len(),
                "the store has not answered for long: notifications leave before they are stored"
            );
        }
        for a in released {
            if let AfterCommit::Release(n, to) = a {
                let _ = to.send(*n);
            }
        }
    }

    /// The batch is committed, adding `added` to the outbox (a notification's row and its
    /// release travel in one batch).
    fn committed(&mut self, added: Vec<String>) {
        self.records.clear();
        if let Some(spool) = &mut self.spool {
            spool.clear();
        }
        self.added.extend(added);
        self.committed_after(true);
        self.added.clear();
    }
}

/// How often a store that could not be opened is tried again, at most.
const REOPEN_EVERY: Duration = Duration::from_secs(30);

/// The writer of a store that could not be opened: tries again with backoff, answers
/// releases and flushes at once meanwhile, and keeps the records (bounded like failing
/// writes) to write once the file opens.
pub(super) fn degraded_loop(
    location: &Location,
    connect: &dyn Fn(&Location) -> Result<Database, super::StoreError>,
    first_error: &str,
    mut receiver: mpsc::UnboundedReceiver<Record>,
    health: &StoreHealth,
    mut pending: Pending,
) {
    health.failed(crate::model::now_ms(), &format!("cannot open: {first_error}"));
    let mut retry = Duration::from_secs(1);
    loop {
        let deadline = std::time::Instant::now() + retry;
        while std::time::Instant::now() < deadline && !pending.stopping {
            match receiver.try_recv() {
                Ok(r) => pending.take_without_store(r),
                Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(20)),
                Err(mpsc::error::TryRecvError::Disconnected) => pending.stopping = true,
            }
        }
        let shed = pending.shed();
        health.shed_results.fetch_add(shed, Ordering::Relaxed);
        health.pending.store(pending.records.len() as u64, Ordering::Relaxed);
        pending.spool(health.failing_since_ms.load(Ordering::Relaxed), shed > 0);
        match connect(location) {
            Ok(db) => {
                tracing::warn!(
                    store = %location, records = pending.records.len(),
                    "the store opened: writing what was kept in memory"
                );
                return write_loop(db, receiver, location, health, pending);
            }
            Err(e) if pending.stopping => {
                tracing::error!(store = %location, records = pending.records.len(), error = %e,
                    "stopping without a store: the records kept in memory are lost");
                return;
            }
            Err(e) => {
                health.failed(crate::model::now_ms(), &format!("cannot open: {e}"));
                retry = (retry * 2).min(REOPEN_EVERY);
            }
        }
    }
}

/// Writes records until [`Record::Stop`] (or every sender is gone), starting with `pending`.
pub(super) fn write_loop(
    mut db: Database,
    mut receiver: mpsc::UnboundedReceiver<Record>,
    location: &Location,
    health: &StoreHealth,
    mut pending: Pending,
) {
    let mut retry = FIRST_RETRY;
    let mut stop_deadline = None;
    loop {
        if pending.is_empty() {
            if pending.stopping {
                return;
            }
            match receiver.blocking_recv() {
                Some(r) => pending.take(r),
                None => return,
            }
        }
        // While writes fail, everything queued joins the retried batch (the channel does not
        // grow meanwhile); while they succeed, batches stay small.
        let failing = health.failing_since_ms.load(Ordering::Relaxed) > 0;
        while !pending.stopping && (failing || pending.records.len() < MAX_BATCH) {
            match receiver.try_recv() {
                Ok(r) => pending.take(r),
                Err(_) => break,
            }
        }
        let now = crate::model::now_ms();
        match writer::write_batch(&mut db, &pending.records, pending.fence.as_deref(), &mut pending.owned) {
            Ok(added) => {
                if health.snapshot().failing.is_some() {
                    tracing::info!(store = %location, "the store accepts writes again; nothing was lost");
                }
                health.succeeded(now);
                pending.committed(added);
                retry = FIRST_RETRY;
            }
            Err(e) => {
                if health.failed(now, &e) {
                    tracing::error!(store = %location, error = %e, "cannot write to the store: retrying, nothing is dropped");
                }
                // A database connection that broke (a restarted server) is made anew.
                if db.is_broken()
                    && let Ok(fresh) = super::connect(location)
                {
                    tracing::warn!(store = %location, "connected to the store again");
                    db = fresh;
                }
                pending.release_unstored(health.failing_since_ms.load(Ordering::Relaxed), now);
                let shed = pending.shed();
                if shed > 0 {
                    health.shed_results.fetch_add(shed, Ordering::Relaxed);
                    tracing::warn!(results = shed, "the store has failed for long: oldest plain results dropped");
                }
                pending.spool(health.failing_since_ms.load(Ordering::Relaxed), shed > 0);
                if pending.stopping {
                    let deadline = *stop_deadline.get_or_insert_with(|| std::time::Instant::now() + STOP_PATIENCE);
                    if std::time::Instant::now() >= deadline {
                        tracing::error!(
                            store = %location, records = pending.records.len(), error = %e,
                            "stopping with records the store would not take: they are lost"
                        );
                        return;
                    }
                }
                std::thread::sleep(retry);
                retry = (retry * 2).min(LAST_RETRY);
            }
        }
        health.pending.store((pending.records.len() + receiver.len()) as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(i: i64) -> Record {
        Record::Result(super::super::ResultRecord {
            target: format!("t{i}"),
            at_ms: i,
            health: "up",
            reason: None,
            duration_ms: 1.0,
            message: String::new(),
            state: crate::model::TargetState::new(0),
            day_ms: 0,
            echoes: None,
        })
    }

    #[test]
    fn shedding_keeps_everything_but_plain_results() {
        let mut p = Pending::default();
        for i in 0..(MAX_PENDING as i64 + 10) {
            p.take(result(i));
        }
        p.take(Record::Prune(1));
        assert_eq!(p.shed(), 11);
        assert_eq!(p.records.len(), MAX_PENDING);
        assert!(matches!(p.records.last(), Some(Record::Prune(1))), "non-results are never shed");
    }
}
