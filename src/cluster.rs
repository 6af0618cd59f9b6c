//! Cluster membership on PostgreSQL (issue #20, item 2, in part): each node upserts its
//! lease — `now() + failover_delay`, the database's clock, never the node's — three times per
//! `failover_delay`, and reads the nodes whose lease is still valid. The live members decide
//! which targets this node runs (rendezvous hashing, [`crate::config::shard::owner_among`]);
//! when they change, the configuration is applied again (a reload), so a dead node's targets
//! move to the others within `failover_delay` plus one probe interval. A node that cannot
//! reach the database keeps the members it last knew (it goes on probing what it had) and
//! raises its store fence ([`crate::store::Fence`]); if its lease ran out meanwhile and it
//! shares its store, it gives its targets up for one renewal and then takes them back from
//! the store, as a joining node does.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::oneshot::error::TryRecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::cluster::Cluster;
use crate::metrics::Metrics;
use crate::web::ReloadRequest;

/// How long one database round may take before it counts as failed.
const ROUND_TIMEOUT: Duration = Duration::from_secs(5);

/// Created by the first node (nodes starting together take turns: an advisory lock).
const SCHEMA: &str = "SET client_min_messages = warning;
BEGIN;
SELECT pg_advisory_xact_lock(7464175);
CREATE TABLE IF NOT EXISTS vigil_cluster_members (
    cluster TEXT NOT NULL,
    node TEXT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    joined TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, node)
);
ALTER TABLE vigil_cluster_members ADD COLUMN IF NOT EXISTS labels TEXT NOT NULL DEFAULT '';
COMMIT;";

/// A database error as PostgreSQL worded it ("db error" alone says nothing).
fn described(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// A live node of the cluster: its name and its labels (`cluster.labels`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    pub name: String,
    pub labels: Vec<String>,
}

/// The live nodes as last known, by name, shared with the control loop (empty: not known yet).
pub type Members = Arc<RwLock<Vec<Member>>>;

/// What one renewal of the lease learnt.
struct Renewal {
    /// The nodes whose lease is valid, this one among them.
    live: Vec<Member>,
    /// Whether this node's lease was still valid when it was renewed (false: it ran out,
    /// and the others may have taken this node's targets meanwhile).
    lease_held: bool,
}

/// One connection to the cluster's database.
struct Database {
    client: tokio_postgres::Client,
    cluster: Cluster,
}

impl Database {
    async fn connect(cluster: &Cluster) -> Result<Database, String> {
        let (client, connection) =
            tokio::time::timeout(ROUND_TIMEOUT, tokio_postgres::connect(cluster.dsn.expose(), tokio_postgres::NoTls))
                .await
                .map_err(|_| "no answer from PostgreSQL".to_string())?
                .map_err(|e| described(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "cluster database connection closed");
            }
        });
        client.batch_execute(SCHEMA).await.map_err(|e| described(&e))?;
        Ok(Database { client, cluster: cluster.clone() })
    }

    /// Renews this node's lease; returns the live nodes, and whether the lease was still
    /// valid before this renewal (by the database's clock).
    async fn renew(&self) -> Result<Renewal, String> {
        let c = &self.cluster;
        let round = async {
            let held = self
                .client
                .query_opt(
                    "SELECT lease_until > now() FROM vigil_cluster_members WHERE cluster = $1 AND node = $2",
                    &[&c.name, &c.node],
                )
                .await?
                .is_some_and(|r| r.get::<_, bool>(0));
            self.client
                .execute(
                    "INSERT INTO vigil_cluster_members (cluster, node, lease_until, labels)
                     VALUES ($1, $2, now() + make_interval(secs => $3), $4)
                     ON CONFLICT (cluster, node) DO UPDATE SET lease_until = EXCLUDED.lease_until,
                       labels = EXCLUDED.labels",
                    &[&c.name, &c.node, &c.failover_delay.as_secs_f64(), &c.labels.join(",")],
                )
                .await?;
            let rows = self
                .client
                .query(
                    "SELECT node, labels FROM vigil_cluster_members WHERE cluster = $1 AND lease_until > now()",
                    &[&c.name],
                )
                .await?;
            let mut live: Vec<Member> = rows
                .iter()
                .map(|r| Member {
                    name: r.get(0),
                    labels: r.get::<_, String>(1).split(',').filter(|l| !l.is_empty()).map(String::from).collect(),
                })
                .collect();
            live.sort();
            Ok::<_, tokio_postgres::Error>(Renewal { live, lease_held: held })
        };
        tokio::time::timeout(ROUND_TIMEOUT, round)
            .await
            .map_err(|_| "no answer from PostgreSQL".to_string())?
            .map_err(|e| described(&e))
    }

    /// Gives this node's targets up at once (a clean stop).
    async fn leave(&self) {
        let c = &self.cluster;
        let _ = self
            .client
            .execute("DELETE FROM vigil_cluster_members WHERE cluster = $1 AND node = $2", &[&c.name, &c.node])
            .await;
    }
}

/// Joins the cluster before the node starts probing: registers its lease and learns the
/// live members (empty when the database cannot be reached: the node then runs every
/// target — duplicates over silence — until it can). With a `shared_store`, a node joining
/// live others first counts itself out: it takes its targets at its first renewal, a third
/// of `failover_delay` later, when every other node has seen it and handed them over —
/// never two owners of one target writing to the store at once.
pub async fn join(cluster: &Cluster, shared_store: bool) -> Members {
    let live = match Database::connect(cluster).await {
        Ok(db) => db.renew().await.map(|r| r.live),
        Err(e) => Err(e),
    };
    let mut live = live.unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot reach the cluster's database: this node runs every target until it can");
        Vec::new()
    });
    if shared_store && live.iter().any(|n| n.name != cluster.node) {
        live.retain(|n| n.name != cluster.node);
        tracing::info!(others = live.len(), "joining: this node takes its targets once the others have seen it");
    }
    Arc::new(RwLock::new(live))
}

/// What a reload answers.
type ReloadResult = Result<Vec<String>, crate::web::ReloadError>;

/// What the membership loop updates.
pub struct Links {
    /// The live members (a change is applied with a reload).
    pub members: Members,
    pub metrics: Arc<Metrics>,
    pub reload: mpsc::Sender<ReloadRequest>,
    /// When the lease was last renewed, Unix ms (the pipeline holds pages once it is older
    /// than `failover_delay`).
    pub renewed: Arc<std::sync::atomic::AtomicI64>,
    /// The node's store fence, when it shares its store with the cluster: raised while the
    /// lease is not renewed, lowered once the node owns its targets again.
    pub fence: Option<Arc<crate::store::Fence>>,
}

/// Renews the lease every third of `failover_delay` until `shutdown` (then leaves); a
/// change of the live members is written to `members` and applied with a reload.
pub fn spawn(cluster: Cluster, links: Links, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let period = cluster.failover_delay / 3;
        let known = links.members.read().unwrap_or_else(|p| p.into_inner()).len();
        links.metrics.cluster_database_up.set(i64::from(known > 0));
        links.metrics.cluster_members.set(known as i64);
        let mut membership =
            Membership { cluster, links, db: None, back_since: None, lost: false, rejoining: false, taking_back: None };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(period) => {}
            }
            membership.round().await;
        }
        if let Some(conn) = &membership.db {
            conn.leave().await;
        }
    })
}

/// The membership loop's memory between rounds.
struct Membership {
    cluster: Cluster,
    links: Links,
    db: Option<Database>,
    /// Since when the database answers again after it did not: every lease ran out
    /// meanwhile, so for one failover_delay a node missing from the live list may just
    /// not have renewed yet — nobody is dropped then (no targets move back and forth).
    back_since: Option<std::time::Instant>,
    lost: bool,
    /// This node gave its targets up at the last renewal (its lease had run out while it
    /// was cut from a shared store) and takes them back from the store at this one.
    rejoining: bool,
    /// The reload taking the targets back, until it has answered: the fence stays up.
    taking_back: Option<tokio::sync::oneshot::Receiver<ReloadResult>>,
}

impl Membership {
    /// One renewal of the lease, and what follows from it.
    async fn round(&mut self) {
        if self.db.is_none() {
            self.db =
                Database::connect(&self.cluster).await.map_err(|e| tracing::warn!(error = %e, "cluster database")).ok();
        }
        let Some(conn) = &self.db else {
            self.lost_contact();
            return;
        };
        match conn.renew().await {
            Ok(renewal) => self.renewed(renewal).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the cluster lease: keeping the targets this node has");
                self.db = None;
                self.lost_contact();
            }
        }
    }

    fn lost_contact(&mut self) {
        self.links.metrics.cluster_database_up.set(0);
        self.lost = true;
        if let Some(fence) = &self.links.fence {
            fence.raise(self.links.renewed.load(std::sync::atomic::Ordering::Relaxed));
        }
    }

    async fn renewed(&mut self, renewal: Renewal) {
        let Renewal { mut live, lease_held } = renewal;
        let links = &self.links;
        if std::mem::take(&mut self.lost) {
            self.back_since = Some(std::time::Instant::now());
        }
        if self.back_since.is_some_and(|t| t.elapsed() < self.cluster.failover_delay) {
            let before = links.members.read().unwrap_or_else(|p| p.into_inner()).clone();
            let missing: Vec<Member> = before.into_iter().filter(|n| !live.iter().any(|l| l.name == n.name)).collect();
            live.extend(missing);
            live.sort();
        }
        links.renewed.store(crate::model::now_ms(), std::sync::atomic::Ordering::Relaxed);
        links.metrics.cluster_database_up.set(1);
        let me = self.cluster.node.as_str();
        let taking_back = std::mem::take(&mut self.rejoining);
        if !lease_held && links.fence.is_some() && live.iter().any(|n| n.name != me) {
            // The others may run this node's targets now and have written them: it gives
            // them up, and takes them back — with their state and incidents from the store
            // — at the next renewal, once every other node has seen it back.
            tracing::warn!(
                "this node's lease ran out while it was cut from the database: it takes its targets back from the store"
            );
            live.retain(|n| n.name != me);
            self.rejoining = true;
        }
        links.metrics.cluster_members.set(live.len() as i64);
        let answer = self.apply(live).await;
        if taking_back {
            self.taking_back = answer;
        }
        // The fence comes down once the node owns its targets: its lease held, and the
        // reload taking them back (if one runs) has answered.
        let reloading =
            self.taking_back.as_mut().is_some_and(|a| a.try_recv().is_err_and(|e| e == TryRecvError::Empty));
        if !reloading {
            self.taking_back = None;
        }
        if let (false, false, Some(fence)) = (self.rejoining, reloading, &self.links.fence) {
            fence.lower();
        }
    }

    /// Writes `live` as the members and, when they changed, asks for a reload (which
    /// moves targets); returns the reload's answer to come.
    async fn apply(&self, live: Vec<Member>) -> Option<tokio::sync::oneshot::Receiver<ReloadResult>> {
        let links = &self.links;
        let before = links.members.read().unwrap_or_else(|p| p.into_inner()).clone();
        if live == before {
            return None;
        }
        let gone = before.iter().filter(|n| !live.iter().any(|l| l.name == n.name)).count();
        links.metrics.cluster_failovers.inc_by(gone as u64);
        let names: Vec<&str> = live.iter().map(|m| m.name.as_str()).collect();
        tracing::info!(live = ?names, gone, "cluster members changed: targets move");
        *links.members.write().unwrap_or_else(|p| p.into_inner()) = live;
        let (respond, answer) = tokio::sync::oneshot::channel();
        let _ = links.reload.send(ReloadRequest { respond }).await;
        Some(answer)
    }
}

/// In a cluster sharing a PostgreSQL store: every third of `failover_delay`, claims the
/// undelivered notifications of nodes whose lease has run out (killed mid-delivery, say)
/// and hands them to this node's delivery — each claimed by one node, the idempotency key
/// travelling with it so a receiver can drop the rare second copy of one that was sent
/// just before its node died.
pub fn spawn_sweeper(
    cluster: Cluster,
    store: crate::store::Location,
    deliver: mpsc::UnboundedSender<crate::model::incident::Notification>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let period = cluster.failover_delay / 3;
        // One connection kept from round to round (not one made every third of the lease).
        let mut held: Option<crate::store::db::Database> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(period) => {}
            }
            let (c, s, mut conn) = (cluster.clone(), store.clone(), held.take());
            let round = tokio::task::spawn_blocking(move || {
                let claimed = crate::store::shared::claim_orphans(&s, &mut conn, &c.name, &c.node, 200);
                (claimed, conn)
            })
            .await;
            let claimed = round.map(|(claimed, conn)| {
                held = conn;
                claimed
            });
            match claimed {
                Ok(Ok(list)) => {
                    if !list.is_empty() {
                        tracing::warn!(
                            notifications = list.len(),
                            "delivering what a node that is gone left undelivered"
                        );
                    }
                    for n in list {
                        let _ = deliver.send(n);
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot claim undelivered notifications"),
                Err(e) => tracing::error!(error = %e, "the notification sweeper failed"),
            }
        }
    })
}

/// What the cluster view refresher reads and updates.
pub struct ViewLinks {
    pub view: Arc<RwLock<crate::status::ClusterView>>,
    /// This node's own board (the targets it runs, as it sees them now).
    pub board: Arc<RwLock<crate::status::Board>>,
    pub metrics: Arc<Metrics>,
    /// This node's pipeline: acknowledgements made on other nodes for incidents it holds,
    /// and maintenance windows opened on other nodes, go there.
    pub pipeline: mpsc::Sender<crate::pipeline::Control>,
    /// Marks the acknowledgements applied.
    pub store: Option<crate::store::StoreWriter>,
}

/// What the refresher reads from the shared store each round.
struct Read {
    states: std::collections::HashMap<String, crate::model::TargetState>,
    open: Vec<crate::model::incident::Incident>,
    acks: Vec<crate::store::AckRequest>,
    windows: Vec<crate::config::maintenance::ApiWindow>,
}

/// How long an acknowledgement passed on through the store waits for its incident's node.
const ACK_PATIENCE_MS: i64 = 3_600_000;

impl ViewLinks {
    /// Applies the acknowledgements waiting for incidents this node holds (and marks them
    /// applied), and puts in force the maintenance windows opened on other nodes.
    async fn apply_requests(&self, read: &Read, applied: &mut std::collections::HashSet<i64>) {
        use crate::pipeline::Control;
        let held: Vec<i64> =
            self.board.read().unwrap_or_else(|p| p.into_inner()).open_incidents.iter().map(|i| i.id).collect();
        applied.retain(|id| read.acks.iter().any(|a| a.id == *id));
        for ack in read.acks.iter().filter(|a| held.contains(&a.incident_id)) {
            if !applied.insert(ack.id) {
                continue; // applied; its row is being marked
            }
            let (respond, answer) = tokio::sync::oneshot::channel();
            let (id, by, comment) = (ack.incident_id, ack.by.clone(), ack.comment.clone());
            if self.pipeline.send(Control::Ack { id, by, comment, respond }).await.is_err() {
                return;
            }
            let outcome = answer.await;
            tracing::info!(incident = id, by = %ack.by, applied = matches!(outcome, Ok(Ok(_))), "acknowledgement passed on by another node");
            if let Some(store) = &self.store {
                store.send(crate::store::Record::AckDone(ack.id));
            }
        }
        for w in &read.windows {
            let _ = self.pipeline.send(Control::LearnMaintenance(w.clone())).await;
        }
    }
}

/// On a node sharing its store with the cluster: reads every target's state and every open
/// incident from the store into the view every `every`, so the node's pages and status API
/// show the whole cluster (one read connection, off the request path), and exports each
/// system's state over the whole cluster (`vigil_system_up` is then the same on every node,
/// so dashboards and recording rules average and alert over instances alike).
pub fn spawn_view(
    links: ViewLinks,
    store: crate::store::Location,
    every: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let reader = Arc::new(crate::store::Reader::new(store));
        let mut exported: Vec<String> = Vec::new();
        let mut applied = std::collections::HashSet::new();
        loop {
            let r = reader.clone();
            let read = tokio::task::spawn_blocking(move || {
                Ok::<_, crate::store::StoreError>(Read {
                    states: r.states()?,
                    open: r.incidents(true, None, 100_000)?,
                    acks: r.pending_acks(crate::model::now_ms() - ACK_PATIENCE_MS)?,
                    windows: r.maintenance()?,
                })
            })
            .await;
            match read {
                Ok(Ok(read)) => {
                    links.apply_requests(&read, &mut applied).await;
                    let mut view = links.view.write().unwrap_or_else(|p| p.into_inner());
                    view.states = read.states;
                    view.open_incidents = read.open;
                    let whole = links.board.read().unwrap_or_else(|p| p.into_inner()).with_cluster(&view);
                    exported = export_systems(&links.metrics, &whole, exported);
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the cluster's targets from the store"),
                Err(e) => tracing::error!(error = %e, "the cluster view reader failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

/// Sets each system's gauges from the whole cluster's board; removes those of systems
/// exported before and gone now. Returns the systems exported.
fn export_systems(metrics: &Metrics, whole: &crate::status::Board, before: Vec<String>) -> Vec<String> {
    use crate::model::State;
    for system in &whole.config.systems {
        let up = !matches!(crate::status::system_state(system, &whole.targets), State::Down | State::Unreachable);
        metrics.set_system(&system.id, up, system.sla);
    }
    for gone in before.iter().filter(|id| !whole.config.systems.iter().any(|s| &s.id == *id)) {
        metrics.remove_system(gone);
    }
    whole.config.systems.iter().map(|s| s.id.clone()).collect()
}
