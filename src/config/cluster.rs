//! `cluster:` — this Vigil is one node of several sharing the work through PostgreSQL:
//! nodes register there and renew a lease (the database's clock decides), and each target
//! is run by the live node that rendezvous hashing gives it.

use std::path::Path;
use std::time::Duration;

use super::Secret;
use super::fields::{Errors, duration_field, is_slug};
use super::raw::RawCluster;
use super::secrets::{self, Strength};
use super::source::SourceFile;

/// Default `failover_delay`: a node silent this long loses its targets to the others.
pub const DEFAULT_FAILOVER_DELAY: Duration = Duration::from_secs(30);

/// `cluster:` of a node.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The cluster's name: nodes of one name share the work.
    pub name: String,
    /// This node's name, unique in the cluster.
    pub node: String,
    /// The PostgreSQL connection string (`host=… user=… dbname=…` or a `postgres://` URL).
    pub dsn: Secret,
    /// How long a node's lease lasts without renewal (default 30 s).
    pub failover_delay: Duration,
    /// How many live nodes probe each target (default 1): with 2 (the HA pair) the target's
    /// second node in rendezvous order probes it as a standby, ready to take over.
    pub replicas: usize,
    /// This node's labels: a check with `nodes: [label, …]` runs only on nodes with one.
    pub labels: Vec<String>,
}

/// Validates a list of node labels (`cluster.labels`, a check's `nodes`).
pub(super) fn node_labels(file: &SourceFile, path: &str, labels: &[String], errors: &mut Errors) -> Vec<String> {
    for (i, label) in labels.iter().enumerate() {
        if !is_slug(label) {
            errors.at(file, &format!("{path}[{i}]"), format!("\"{label}\" is not a valid label"));
        }
    }
    labels.to_vec()
}

/// Validates `cluster:`.
pub(super) fn cluster(
    file: &SourceFile,
    raw: Option<&RawCluster>,
    base: &Path,
    errors: &mut Errors,
) -> Option<Cluster> {
    let raw = raw?;
    let slug = |field: &str, value: &Option<String>, errors: &mut Errors| match value {
        Some(v) if is_slug(v) => Some(v.clone()),
        Some(v) => {
            errors.at(file, &format!("cluster.{field}"), format!("\"{v}\" is not a valid name"));
            None
        }
        None => {
            errors.at(file, "cluster", format!("a cluster needs `{field}:`"));
            None
        }
    };
    let name = slug("name", &raw.name, errors);
    let node = slug("node", &raw.node, errors);
    let dsn =
        secrets::read(file, "cluster.dsn", raw.dsn.as_ref(), raw.dsn_file.as_ref(), Strength::Credential, base, errors);
    if raw.dsn.is_none() && raw.dsn_file.is_none() {
        errors.at(file, "cluster", "a cluster needs `dsn_file:` (or `dsn:`), the PostgreSQL connection string");
    }
    let failover_delay =
        duration_field(file, "cluster.failover_delay", raw.failover_delay.as_ref(), DEFAULT_FAILOVER_DELAY, errors);
    if failover_delay < Duration::from_secs(2) {
        errors.at(file, "cluster.failover_delay", "at least 2s (a lease is renewed three times per failover_delay)");
    }
    let replicas = raw.replicas.unwrap_or(1);
    if !(1..=3).contains(&replicas) {
        errors.at(file, "cluster.replicas", format!("{replicas}: 1, 2 (an HA pair) or 3 nodes probe each target"));
    }
    let labels = node_labels(file, "cluster.labels", &raw.labels, errors);
    let replicas = replicas.clamp(1, 3) as usize;
    Some(Cluster { name: name?, node: node?, dsn: dsn?, failover_delay, replicas, labels })
}

impl super::Config {
    /// How long this node's notifications wait for a PostgreSQL store that does not
    /// answer before they leave unstored: the grace — plus, in a cluster sharing that
    /// store, the `failover_delay` the other nodes take to run this node's targets (until
    /// then they may be paging for them, and this node keeps quiet).
    pub fn unstored_grace(&self) -> std::time::Duration {
        match &self.cluster {
            Some(cluster) if self.storage.postgres.is_some() => self.storage.postgres_grace + cluster.failover_delay,
            _ => self.storage.postgres_grace,
        }
    }
}
