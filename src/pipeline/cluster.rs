//! A cluster node cut from its database (issue #20, item 4): once its lease has run out
//! (`failover_delay` without a renewal) the other nodes take its targets and page for them,
//! so its new incidents are held (decision `database_lost`) from half a lease without a
//! renewal, rather than paged twice. If the cut lasts long enough for the others to have
//! taken over and paged (`failover_delay` plus the store's grace with a shared store, twice
//! `failover_delay` otherwise), the node may be the only one still watching — the
//! database may be down for every node — and it pages what it held (duplicates over
//! silence). When the database answers again, what it held and still owns is paged; what
//! moved away is handed over without a word (nobody was told of it).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::Pipeline;
use crate::alert::engine::Routing;
use crate::model::TargetState;
use crate::model::incident::Decision;

impl Pipeline {
    /// How long since this cluster node last renewed its lease, with when it holds new
    /// incidents and when it speaks anyway (ms of silence); None when not a node.
    fn database_silence(&self, now: i64) -> Option<(i64, i64, i64)> {
        let (Some(cluster), Some(contact)) = (&self.config.cluster, &self.centre_contact) else { return None };
        let lease = cluster.failover_delay.as_millis() as i64;
        let speak = if self.shares_store() { self.config.unstored_grace().as_millis() as i64 } else { 2 * lease };
        Some((now - contact.load(Ordering::Relaxed), lease / 2, speak))
    }

    /// Whether a new incident is held: this node has missed renewals, and not for long.
    pub(super) fn database_holds(&self, now: i64) -> bool {
        self.database_silence(now).is_some_and(|(silent, hold, speak)| silent > hold && silent < speak)
    }

    /// Pages the incidents held while the database was lost: at once when it answers again
    /// (for the targets this node still runs), or when it has been silent for twice the
    /// lease (duplicates over silence).
    pub(super) fn page_held_without_database(&mut self, now: i64) {
        let Some((silent, hold, speak)) = self.database_silence(now) else { return };
        let decision = if silent <= hold {
            Decision::DatabaseBack
        } else if silent >= speak {
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

impl Pipeline {
    /// Puts in force a maintenance window another node of the cluster opened, unless this
    /// node has it already (its own, or learnt before).
    pub(super) fn learn_window(&mut self, w: &crate::config::maintenance::ApiWindow) {
        use crate::config::maintenance::Schedule;
        let known = self.api_windows.iter().any(|x| {
            x.name == w.name
                && matches!(x.schedule, Schedule::Once { from_ms, to_ms } if from_ms == w.from_ms && to_ms == w.to_ms)
        });
        if !known {
            tracing::info!(name = %w.name, by = %w.by, "maintenance window opened on another node: in force here too");
            self.api_windows.push(w.window());
        }
    }
}

/// Below this many incident ids left in its block, a node reserves the next block.
const IDS_LOW: i64 = crate::store::shared::ID_BLOCK / 10;

impl Pipeline {
    /// Whether this node shares its store with the other nodes of its cluster (PostgreSQL):
    /// then a target's state and open incident are one for the cluster.
    pub(super) fn shares_store(&self) -> bool {
        self.config.cluster.is_some() && self.config.storage.postgres.is_some()
    }

    /// The node's name in its cluster, stamped on the notifications it makes.
    pub(super) fn node(&self) -> Option<String> {
        self.config.cluster.as_ref().map(|c| c.node.clone())
    }

    /// Reserves the next block of incident ids in the shared store when few are left (at
    /// start, then from the tick). A store that does not answer leaves the engine on ids
    /// from the clock (see `Engine::use_id_block`).
    pub(super) fn refill_incident_ids(&mut self) {
        if !self.shares_store() || self.engine.ids_left().is_some_and(|left| left >= IDS_LOW) {
            return;
        }
        let location = crate::store::Location::of(&self.config.storage);
        match crate::store::shared::reserve_incident_ids(&location) {
            Ok(Some(block)) => {
                let salt = self.node().map_or(0, |n| xxhash_rust::xxh3::xxh3_64(n.as_bytes()) % 1000) as i64;
                self.engine.use_id_block(block, salt);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reserve incident ids in the shared store"),
        }
    }

    /// Before a configuration is applied: the targets it makes this node the owner of
    /// (new here, or run until now as a standby or helper) are read from the shared store —
    /// another node ran them until now — so their incident goes on (same id, same
    /// receivers) instead of a second one opening. Returns their states as the store has them.
    pub(super) fn take_over_from_store(&mut self, config: &crate::config::Config) -> HashMap<String, TargetState> {
        // At start the store was just read: only later configurations take targets over.
        if !self.shares_store() || !self.configured {
            return HashMap::new();
        }
        let new: Vec<String> = config
            .systems
            .iter()
            .flat_map(|s| s.checks.iter().flat_map(|c| c.targets.iter().map(|t| t.id().to_string())))
            .filter(|id| !config.helpers.contains_key(id) && self.entries.get(id).is_none_or(|e| e.helper))
            .collect();
        if new.is_empty() {
            return HashMap::new();
        }
        let location = crate::store::Location::of(&self.config.storage);
        match crate::store::shared::taken_over(&location, &new) {
            Ok(Some(mut taken)) => {
                tracing::info!(targets = new.len(), incidents = taken.open_incidents.len(), "targets taken over");
                let mut open: HashMap<String, _> =
                    taken.open_incidents.drain(..).map(|i| (i.target.clone(), i)).collect();
                for id in &new {
                    self.engine.adopt(id, open.remove(id));
                    // Judged now, not a probe interval later: a handover leaves no blind spot.
                    self.on_demand.probe_soon(id);
                }
                self.store.send(crate::store::Record::Owned(new));
                taken.states
            }
            Ok(None) => HashMap::new(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the targets taken over: they start afresh");
                HashMap::new()
            }
        }
    }

    /// Drops what judging `target` would store or send when this node runs it as a standby
    /// or helper and shares the store with its owner: the owner stores the target's records
    /// and incident, and speaks for it.
    pub(super) fn drop_standby_part(
        &self,
        target: &str,
        records: &mut Vec<crate::store::Record>,
        effects: &mut Vec<crate::alert::engine::Effect>,
    ) {
        use crate::alert::engine::Effect;
        if !(self.shares_store() && self.config.helpers.contains_key(target)) {
            return;
        }
        records.clear();
        effects.retain(|e| match e {
            Effect::Save(i) => i.target != target,
            Effect::Notify(n) => n.incident.target != target,
        });
    }
}
