//! Fencing a cluster node cut from its shared store (issue #20, item 4). While a node has
//! not renewed its lease, the others may have taken its targets over and written their
//! state, incidents and notifications. What the cut node kept in memory meanwhile is then
//! written only for the targets nobody else wrote since it lost the database: for the
//! others, the cluster's history of those minutes is the new owner's, and the cut node's
//! copy (a second incident for one outage, state changes seen twice, an alert the owner
//! already sent) is dropped, counted in the log. When the database was gone for every
//! node, nobody else wrote, and everything kept is written (the reconciliation).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::Record;
use super::db::{Database, DbError, vals};

/// A node's fence, shared by its membership loop (which raises and lowers it) and its
/// store writer (which checks what it writes while it is raised).
#[derive(Debug)]
pub struct Fence {
    node: String,
    /// Since when (Unix ms, the node's clock) the node may not own its targets; 0: it owns them.
    raised_since_ms: AtomicI64,
}

impl Fence {
    /// A lowered fence for the cluster node `node`.
    pub fn new(node: &str) -> Arc<Fence> {
        Arc::new(Fence { node: node.to_string(), raised_since_ms: AtomicI64::new(0) })
    }

    /// The node's name, stamped on the target states it writes.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The node has not renewed its lease since `since_ms`: from now on, what it writes
    /// for a target another node wrote after that moment is dropped. A fence already
    /// raised keeps its first moment.
    pub fn raise(&self, since_ms: i64) {
        let _ = self.raised_since_ms.compare_exchange(0, since_ms.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The node owns its targets again (its lease held, or it took them back from the store).
    pub fn lower(&self) {
        self.raised_since_ms.store(0, Ordering::Relaxed);
    }

    /// Since when the fence is raised, if it is.
    pub fn raised_since(&self) -> Option<i64> {
        Some(self.raised_since_ms.load(Ordering::Relaxed)).filter(|since| *since > 0)
    }
}

/// The target a record is about, where another node may have written the same target.
fn target_of(record: &Record) -> Option<&str> {
    let target = match record {
        Record::Result(r) => &r.target,
        Record::Change(c) => &c.target,
        Record::Incident(i) => &i.target,
        Record::Outbox(n) => &n.incident.target,
        _ => return None,
    };
    Some(target.as_str()).filter(|t| !t.is_empty())
}

/// The fence as one batch sees it: which targets it keeps, asked of the store once each.
pub(super) struct FenceCheck<'a> {
    fence: Option<&'a Fence>,
    since_ms: Option<i64>,
    kept: HashMap<String, bool>,
    /// The targets this node took back from the store since the fence went up
    /// ([`Record::Owned`]): what it writes for them after that is its own.
    owned: &'a mut HashSet<String>,
    /// Records dropped because another node wrote their target meanwhile.
    pub dropped: usize,
}

impl<'a> FenceCheck<'a> {
    /// The check of a batch written now (the fence's state read once, at its start);
    /// `owned` is kept by the writer from batch to batch while the fence is up.
    pub(super) fn new(fence: Option<&'a Fence>, owned: &'a mut HashSet<String>) -> FenceCheck<'a> {
        let since_ms = fence.and_then(Fence::raised_since);
        if since_ms.is_none() {
            owned.clear();
        }
        FenceCheck { fence, since_ms, kept: HashMap::new(), owned, dropped: 0 }
    }

    /// This node took `targets` over from the store: what follows for them is written.
    pub(super) fn own(&mut self, targets: &[String]) {
        if self.since_ms.is_some() {
            self.owned.extend(targets.iter().cloned());
        }
    }

    /// The node name to stamp on target states (None outside a cluster).
    pub(super) fn node(&self) -> Option<&'a str> {
        self.fence.map(Fence::node)
    }

    /// Whether `record` is written: always, unless the fence is raised and another node
    /// wrote its target's state after the fence went up.
    pub(super) fn keeps(&mut self, db: &mut Database, record: &Record) -> Result<bool, DbError> {
        let (Some(since), Some(fence), Some(target)) = (self.since_ms, self.fence, target_of(record)) else {
            return Ok(true);
        };
        let keep = match self.kept.get(target) {
            _ if self.owned.contains(target) => true,
            Some(keep) => *keep,
            None => {
                let other = db.query_opt(
                    "SELECT 1 FROM target_state WHERE target = ?1 AND node IS NOT NULL AND node <> ?2 AND updated_ms >= ?3",
                    &vals![target, fence.node(), since],
                )?;
                self.kept.insert(target.to_string(), other.is_none());
                other.is_none()
            }
        };
        self.dropped += usize::from(!keep);
        Ok(keep)
    }
}
