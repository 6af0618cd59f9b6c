//! The local spool of a store on PostgreSQL (issue #20, item 4): while the database does
//! not take the writer's batches, every record it keeps in memory is also appended to a
//! file on the node's own disk (JSON lines, synced), so a node that stops or dies during the
//! outage loses nothing. The spool is emptied once a batch is committed; a spool left by an
//! earlier run is written to the database when the store opens — before the store is read,
//! so its notifications are delivered like any other pending one — through the node's
//! fence when it shares its store with a cluster.
//!
//! What is spooled: results, state changes, heartbeats, incidents, notifications and
//! deliveries, maintenance windows, exclusions, the audit trail, renames and prunes. Not
//! spooled: an agent's records taken in at a centre (the agent sends them again until
//! the centre has stored them).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use super::Record;
use crate::model::incident::{Incident, Notification};

/// The strings a record holds as `&'static str` (health, reason, delivery state), read back
/// from the spool: each distinct one is kept once for the life of the process.
fn intern(s: String) -> &'static str {
    static SEEN: std::sync::Mutex<Option<std::collections::HashSet<&'static str>>> = std::sync::Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let seen = seen.get_or_insert_with(Default::default);
    if let Some(known) = seen.get(s.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// Deserializes a `&'static str` field (see [`intern`]).
pub(super) fn interned<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    String::deserialize(d).map(intern)
}

/// Deserializes an `Option<&'static str>` field (see [`intern`]).
pub(super) fn interned_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
    Option::<String>::deserialize(d).map(|s| s.map(intern))
}

/// One line of the spool: a record that is data (not a flush, release or setting).
#[derive(Serialize, Deserialize)]
enum Line {
    /// The first line: when the database stopped taking this node's records (Unix ms).
    Since(i64),
    Result(super::ResultRecord),
    Change(super::ChangeRecord),
    Heartbeat(super::HeartbeatRecord),
    Incident(Box<Incident>),
    Outbox(Box<Notification>),
    Delivery(super::DeliveryRecord),
    Attempt(String, u32),
    Maintenance(crate::config::maintenance::ApiWindow),
    Exclusion(super::query::Exclusion),
    Audit(super::AuditRecord),
    Rename(String, String),
    Prune(i64),
    Owned(Vec<String>),
    AckRequest(super::AckRequest),
    AckDone(i64),
}

/// Appends the lines of `record` (a batch's records one by one) to `out`.
fn lines(record: &Record, out: &mut Vec<Line>) {
    let line = match record {
        Record::Result(r) => Line::Result(r.clone()),
        Record::Change(c) => Line::Change(c.clone()),
        Record::Heartbeat(h) => Line::Heartbeat(h.clone()),
        Record::Incident(i) => Line::Incident(i.clone()),
        Record::Outbox(n) => Line::Outbox(n.clone()),
        Record::Delivery(d) => Line::Delivery(d.clone()),
        Record::Attempt { key, attempts } => Line::Attempt(key.clone(), *attempts),
        Record::Maintenance(w) => Line::Maintenance(w.clone()),
        Record::Exclusion(e) => Line::Exclusion(e.clone()),
        Record::Audit(a) => Line::Audit(a.clone()),
        Record::Rename { from, to } => Line::Rename(from.clone(), to.clone()),
        Record::Prune(before) => Line::Prune(*before),
        Record::Owned(targets) => Line::Owned(targets.clone()),
        Record::AckRequest(a) => Line::AckRequest(a.clone()),
        Record::AckDone(id) => Line::AckDone(*id),
        Record::Batch(records) => return records.iter().for_each(|r| lines(r, out)),
        _ => return,
    };
    out.push(line);
}

fn record(line: Line) -> Option<Record> {
    Some(match line {
        Line::Since(_) => return None,
        Line::Result(r) => Record::Result(r),
        Line::Change(c) => Record::Change(c),
        Line::Heartbeat(h) => Record::Heartbeat(h),
        Line::Incident(i) => Record::Incident(i),
        Line::Outbox(n) => Record::Outbox(n),
        Line::Delivery(d) => Record::Delivery(d),
        Line::Attempt(key, attempts) => Record::Attempt { key, attempts },
        Line::Maintenance(w) => Record::Maintenance(w),
        Line::Exclusion(e) => Record::Exclusion(e),
        Line::Audit(a) => Record::Audit(a),
        Line::Rename(from, to) => Record::Rename { from, to },
        Line::Prune(before) => Record::Prune(before),
        Line::Owned(targets) => Record::Owned(targets),
        Line::AckRequest(a) => Record::AckRequest(a),
        Line::AckDone(id) => Record::AckDone(id),
    })
}

/// What a spool left by an earlier run holds.
pub(super) struct Left {
    /// When the database stopped taking the records (Unix ms).
    pub since_ms: i64,
    pub records: Vec<Record>,
}

/// Reads the spool at `path`, if there is one. A line that does not parse (the last one,
/// cut by a crash while it was written) is skipped, and said.
pub(super) fn read(path: &Path) -> std::io::Result<Option<Left>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut left = Left { since_ms: 0, records: Vec::new() };
    for (n, text) in std::io::BufReader::new(file).lines().enumerate() {
        match serde_json::from_str::<Line>(&text?) {
            Ok(Line::Since(since)) => left.since_ms = since,
            Ok(line) => left.records.extend(record(line)),
            Err(e) => {
                tracing::warn!(spool = %path.display(), line = n + 1, error = %e, "a spool line that does not read: skipped")
            }
        }
    }
    Ok(Some(left))
}

/// The spool of a running writer.
pub(super) struct Spool {
    path: PathBuf,
    /// How many of the writer's pending records are in the file.
    written: usize,
    /// The file has lines.
    dirty: bool,
}

impl Spool {
    /// The spool at `path`, whose first `written` pending records are already in it.
    pub(super) fn new(path: PathBuf, written: usize) -> Spool {
        Spool { path, written, dirty: written > 0 }
    }

    /// Appends the pending records not yet in the file (all of them again after some were
    /// shed, `reset`), and syncs it. A spool that cannot be written is said, not fatal:
    /// the records stay in memory.
    pub(super) fn append(&mut self, pending: &[Record], since_ms: i64, reset: bool) {
        if reset {
            self.written = 0;
        }
        if self.written >= pending.len() && !reset {
            return;
        }
        let mut out = Vec::new();
        pending[self.written.min(pending.len())..].iter().for_each(|r| lines(r, &mut out));
        let result = (|| {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let fresh = reset || !self.dirty;
            let mut file =
                std::fs::OpenOptions::new().create(true).append(!fresh).write(true).truncate(fresh).open(&self.path)?;
            let mut text = String::new();
            if fresh {
                text.push_str(&serde_json::to_string(&Line::Since(since_ms)).unwrap_or_default());
                text.push('\n');
            }
            for line in &out {
                text.push_str(&serde_json::to_string(line).map_err(std::io::Error::other)?);
                text.push('\n');
            }
            file.write_all(text.as_bytes())?;
            file.sync_data()
        })();
        match result {
            Ok(()) => {
                self.written = pending.len();
                self.dirty = true;
            }
            Err(e) => {
                tracing::error!(spool = %self.path.display(), error = %e, "cannot write the local spool: records kept in memory only")
            }
        }
    }

    /// The batch is committed: the spool is emptied.
    pub(super) fn clear(&mut self) {
        self.written = 0;
        if std::mem::take(&mut self.dirty)
            && let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(spool = %self.path.display(), error = %e, "cannot empty the local spool");
        }
    }
}

/// Where a store on PostgreSQL spools, and the cluster node it writes for (when it shares
/// the store with a cluster: a spool left by an earlier run is written through a fence).
#[derive(Debug, Clone)]
pub struct SpoolAt {
    pub path: PathBuf,
    pub node: Option<String>,
}

/// Writes what a spool left by an earlier run holds — for a cluster node, only for the
/// targets nobody else wrote since the spool began — and removes it. A spool that cannot
/// be read is left where it is (and said).
pub(super) fn replay(db: &mut super::db::Database, at: &SpoolAt) -> Result<(), super::db::DbError> {
    let left = match read(&at.path) {
        Ok(Some(left)) => left,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::error!(spool = %at.path.display(), error = %e, "cannot read the local spool: left as it is");
            return Ok(());
        }
    };
    let fence = at.node.as_deref().map(super::Fence::new);
    if let Some(fence) = &fence {
        fence.raise(left.since_ms);
    }
    super::writer::write_batch(db, &left.records, fence.as_deref(), &mut Default::default())?;
    tracing::warn!(spool = %at.path.display(), records = left.records.len(), "the local spool of an earlier run is written to the store");
    Spool::new(at.path.clone(), 1).clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{State, TargetState};

    fn result(at_ms: i64) -> Record {
        Record::Result(super::super::ResultRecord {
            target: "web/a".into(),
            at_ms,
            health: "down",
            reason: Some("http_status"),
            duration_ms: 2.5,
            message: "503".into(),
            state: TargetState::new(0),
            day_ms: 0,
            echoes: None,
        })
    }

    #[test]
    fn a_spool_keeps_what_it_is_given_across_a_torn_last_line_and_empties() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node").join("vigil.spool");
        let mut spool = Spool::new(path.clone(), 0);
        let mut pending = vec![result(1), Record::Flush(tokio::sync::oneshot::channel().0)];
        spool.append(&pending, 77, false);
        pending.push(Record::Batch(vec![result(2), Record::Prune(5)]));
        spool.append(&pending, 99, false);
        spool.append(&pending, 99, false); // nothing new: nothing written twice
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"Result\":{\"tar").unwrap();
        let left = read(&path).unwrap().expect("a spool");
        assert_eq!(left.since_ms, 77, "the moment of the first append");
        assert_eq!(left.records.len(), 3, "two results and a prune; the torn line skipped");
        let Record::Result(r) = &left.records[1] else { panic!("a result") };
        assert_eq!((r.at_ms, r.health, r.reason, r.state.state), (2, "down", Some("http_status"), State::Unknown));
        assert!(matches!(left.records[2], Record::Prune(5)));
        // Shed results: the whole of what is pending is written again.
        spool.append(&pending[..1], 123, true);
        assert_eq!(read(&path).unwrap().unwrap().records.len(), 1);
        spool.clear();
        assert!(read(&path).unwrap().is_none(), "emptied once committed");
    }
}
