//! A cluster node cut from its database (issue #20, item 4): once its lease has run out
//! (`failover_delay` without a renewal) the other nodes take its targets and page for them,
//! so its new incidents are held (decision `database_lost`) rather than paged twice. If the
//! cut lasts twice `failover_delay`, the node may be the only one still watching — the
//! database may be down for every node — and it pages what it held (duplicates over
//! silence). When the database answers again, what it held and still owns is paged; what
//! moved away is handed over without a word (nobody was told of it).

use std::sync::atomic::Ordering;

use super::Pipeline;
use crate::alert::engine::Routing;
use crate::model::incident::Decision;

impl Pipeline {
    /// How long since this cluster node last renewed its lease (None when not a node).
    fn database_silence(&self, now: i64) -> Option<(i64, i64)> {
        let (Some(cluster), Some(contact)) = (&self.config.cluster, &self.centre_contact) else { return None };
        Some((now - contact.load(Ordering::Relaxed), cluster.failover_delay.as_millis() as i64))
    }

    /// Whether a new incident is held: this node's lease has run out, and not for long.
    pub(super) fn database_holds(&self, now: i64) -> bool {
        self.database_silence(now).is_some_and(|(silent, lease)| silent > lease && silent < 2 * lease)
    }

    /// Pages the incidents held while the database was lost: at once when it answers again
    /// (for the targets this node still runs), or when it has been silent for twice the
    /// lease (duplicates over silence).
    pub(super) fn page_held_without_database(&mut self, now: i64) {
        let Some((silent, lease)) = self.database_silence(now) else { return };
        let decision = if silent <= lease {
            Decision::DatabaseBack
        } else if silent >= 2 * lease {
            Decision::AnnouncedWithoutDatabase
        } else {
            return;
        };
        let held: Vec<String> = self
            .engine
            .open_incidents()
            .filter(|i| i.told.is_empty() && i.why.iter().any(|w| w.decision == Decision::DatabaseLost))
            .filter(|i| self.entries.contains_key(&i.target))
            .map(|i| i.target.clone())
            .collect();
        if held.is_empty() {
            return;
        }
        let (config, location) = self.routing();
        let mut effects = Vec::new();
        for target in held {
            let routing = Routing { routes: &config.routes, location: &location };
            effects.extend(self.engine.announce_held(&target, Decision::DatabaseLost, decision, routing, now));
        }
        self.apply(effects, Vec::new());
    }
}
