//! What the store's writer is sent: the records it writes, and the requests that wait for
//! their commit.

use tokio::sync::{mpsc, oneshot};

use super::{Fence, forward, query, spool};
use crate::model::incident::{Incident, Notification};
use crate::model::{State, TargetState};

/// An acknowledgement made on one cluster node for an incident another node holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AckRequest {
    /// The request's row id (0 until stored).
    pub id: i64,
    pub incident_id: i64,
    pub by: String,
    pub comment: String,
    pub at_ms: i64,
}

/// A string a record holds that is one of a few fixed words (a health, a reason, a
/// delivery state). Named so, the serde derive does not take it for borrowed text: the
/// spool reads it back through [`spool::interned`].
pub type StaticText = &'static str;

/// One probe result of one target.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ResultRecord {
    pub target: String,
    pub at_ms: i64,
    #[serde(deserialize_with = "spool::interned")]
    pub health: StaticText,
    #[serde(deserialize_with = "spool::interned_opt")]
    pub reason: Option<StaticText>,
    pub duration_ms: f64,
    pub message: String,
    /// The target's state after this result (kept as the current state).
    pub state: TargetState,
    /// Start of the result's day in the instance time zone (its rollup), Unix ms.
    pub day_ms: i64,
    /// An ICMP run's echoes (`sent:rtt,…`, see `IcmpStats::echoes`), for the smoke graph.
    #[serde(default)]
    pub echoes: Option<String>,
}

/// An administrative action: who (as they identified), from where, what, and on what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    pub at_ms: i64,
    /// `admin (token)`, `admin (session)`, or the name given on an acknowledgement link.
    pub who: String,
    /// The client's address.
    pub address: String,
    /// `acknowledge`, `maintenance`, `exclude`, `reload`, `login`, `login failed`, `logout`.
    pub action: String,
    /// On what: the incident, the window, the outcome.
    pub detail: String,
}

/// Upper bounds (ms) of the latency histogram of the daily rollups; the last is open.
pub const ROLLUP_BUCKETS_MS: [f64; 12] =
    [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, f64::INFINITY];

/// A change of state of one target.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ChangeRecord {
    pub target: String,
    pub at_ms: i64,
    pub from: State,
    pub to: State,
    #[serde(deserialize_with = "spool::interned_opt")]
    pub reason: Option<StaticText>,
    pub message: String,
}

/// A heartbeat pushed by a job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatRecord {
    pub target: String,
    pub at_ms: i64,
    pub ok: bool,
    pub message: String,
}

/// How a notification's delivery ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeliveryRecord {
    pub key: String,
    /// `delivered` or `failed` (given up).
    #[serde(deserialize_with = "spool::interned")]
    pub state: StaticText,
    /// The channel that reached the receiver (or was tried last).
    pub channel: String,
    pub attempts: u32,
    pub at_ms: i64,
    pub error: Option<String>,
}

/// What the writer is asked to do.
#[derive(Debug)]
pub enum Record {
    Result(ResultRecord),
    Change(ChangeRecord),
    Heartbeat(HeartbeatRecord),
    /// An incident, new or changed.
    Incident(Box<Incident>),
    /// A notification to deliver.
    Outbox(Box<Notification>),
    Delivery(DeliveryRecord),
    /// A failed delivery attempt of a pending notification: how many so far (kept across
    /// restarts, so the delivery log counts every try).
    Attempt {
        key: String,
        attempts: u32,
    },
    /// A maintenance window opened through the API.
    Maintenance(crate::config::maintenance::ApiWindow),
    /// A target renamed (`renamed_from`): its history, state and incidents move to the new id.
    Rename {
        from: String,
        to: String,
    },
    /// An agent's records, kept at the centre once per sequence number.
    Ingest(Box<forward::IngestBatch>),
    /// Records the centre has committed: they leave the agent's forwarding queue.
    Forwarded(Vec<i64>),
    /// An incident excluded from the SLA.
    Exclusion(query::Exclusion),
    /// Records written in the same transaction (a state change and what it causes).
    Batch(Vec<Record>),
    /// Answers once everything sent before it is on disk.
    Flush(oneshot::Sender<()>),
    /// Hands a notification to delivery once everything sent before it — its outbox row
    /// among them — is committed: no alert leaves for an incident that is not stored.
    Release(Box<Notification>, mpsc::UnboundedSender<Notification>),
    /// Deletes raw results older than this (Unix ms); state changes and incidents stay.
    Prune(i64),
    /// One administrative action, for the audit trail.
    Audit(AuditRecord),
    /// Ends the writer after what was sent before it (other senders may still exist).
    Stop,
    /// Once writes have failed this long, notifications are released before they are
    /// stored (a database that does not answer: duplicates over silence); unset, they wait.
    ReleaseUnstoredAfter(std::time::Duration),
    /// The cluster node's fence (see [`Fence`]): its name goes on the target states it
    /// writes, and while it is raised, records for targets another node wrote are dropped.
    Fence(std::sync::Arc<Fence>),
    /// This node took these targets over from the shared store: what it writes for them
    /// from here on is its own, even while its fence is still up.
    Owned(Vec<String>),
    /// An acknowledgement of an incident another cluster node holds, for that node to apply.
    AckRequest(AckRequest),
    /// An acknowledgement request has been applied by the node holding its incident.
    AckDone(i64),
}
