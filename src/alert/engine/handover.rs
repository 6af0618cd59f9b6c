//! Targets changing hands between the nodes of a cluster that share one store: the node
//! giving a target away forgets its open incident (it stays open in the store), the node
//! taking it over adopts it from there — one incident per target for the cluster, with
//! the same id, so its later notifications keep their idempotency keys. Incident ids come
//! in blocks of a sequence in the shared store, so two nodes never give out the same id.

use super::Engine;
use crate::model::incident::Incident;

/// Where new incident ids come from: one after the last (a store of one's own), or blocks
/// reserved in a shared store.
#[derive(Debug, Default)]
pub(super) struct Ids {
    next: i64,
    /// The end (exclusive) of the reserved block, when ids come in blocks.
    block_end: Option<i64>,
    /// Tells apart the ids this node makes from the clock when no block is left.
    salt: i64,
    /// The least clock-made id still free.
    clock_next: i64,
}

impl Ids {
    /// Ids after `last`.
    pub(super) fn after(last: i64) -> Ids {
        Ids { next: last + 1, ..Ids::default() }
    }

    /// The next id. With its block used up (the shared store did not answer for a new
    /// one), ids come from the clock — ms × 1000 plus this node's salt, far above any block
    /// and, salts differing, apart from every other node's.
    pub(super) fn take(&mut self, now_ms: i64) -> i64 {
        if self.block_end.is_some_and(|end| self.next >= end) {
            let id = (now_ms.saturating_mul(1000) + self.salt).max(self.clock_next);
            self.clock_next = id + 1000;
            return id;
        }
        self.next += 1;
        self.next - 1
    }
}

impl Engine {
    /// Takes new incident ids from `block` (reserved in the shared store); `salt` (0–999)
    /// tells this node's clock-made ids apart should blocks run out.
    pub fn use_id_block(&mut self, block: std::ops::Range<i64>, salt: i64) {
        let clock_next = self.ids.clock_next;
        self.ids = Ids { next: block.start, block_end: Some(block.end), salt: salt.rem_euclid(1000), clock_next };
    }

    /// How many ids are left in the reserved block (None: ids do not come in blocks).
    pub fn ids_left(&self) -> Option<i64> {
        self.ids.block_end.map(|end| (end - self.ids.next).max(0))
    }

    /// Forgets the open incident of a target now run by another node sharing the store:
    /// nothing is told and nothing is written — the incident stays open for that node.
    pub fn hand_over(&mut self, target: &str) {
        self.open.remove(target);
        for (_, targets) in self.groups.values_mut() {
            targets.retain(|t| t != target);
        }
    }

    /// Takes over `target` from another node: its open incident is the one the shared store
    /// holds (`None`: it has none) — whatever this node judged of it as a standby or a
    /// helper (never stored, never announced) gives way.
    pub fn adopt(&mut self, target: &str, incident: Option<Incident>) {
        self.hand_over(target);
        if let Some(incident) = incident {
            self.open.insert(target.to_string(), incident);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_block_then_from_the_clock() {
        let mut ids = Ids::after(0);
        assert_eq!((ids.take(5), ids.take(5)), (1, 2));
        let mut engine = Engine::new(Vec::new(), 0);
        engine.use_id_block(10_000..10_002, 1_007);
        assert_eq!(engine.ids_left(), Some(2));
        assert_eq!((engine.ids.take(9), engine.ids.take(9)), (10_000, 10_001));
        assert_eq!(engine.ids_left(), Some(0));
        assert_eq!(engine.ids.take(9), 9_007, "from the clock, with the node's salt");
        assert_eq!(engine.ids.take(9), 10_007, "the same millisecond: the next slot with the same salt");
        assert_eq!(engine.ids.take(20), 20_007);
    }
}
