//! Incidents and the notifications they cause, as plain data (stored as JSON, sent to
//! channels, shown by the API).

use serde::{Deserialize, Serialize};

/// How bad an incident is: `critical` for down, `warning` for degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
}

impl Severity {
    /// Lowercase name, as in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// Who acknowledged an incident, when, and what they said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub comment: String,
    pub at_ms: i64,
}

/// A receiver told about an incident, and whether it wants to hear of the resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Told {
    pub receiver: String,
    pub send_resolved: bool,
    /// Key of the first notification this receiver got about the incident (later ones
    /// thread under it).
    #[serde(default)]
    pub first_key: String,
    /// For grouped routes: the group (receiver and label values) it is announced with.
    #[serde(default)]
    pub group: Option<String>,
    /// How long the group collects before it is announced, in milliseconds.
    #[serde(default)]
    pub group_wait_ms: i64,
    /// Whether the receiver has been told (false while a group is still collecting).
    #[serde(default = "announced_default")]
    pub announced: bool,
}

fn announced_default() -> bool {
    true
}

/// A decision about telling people of an incident — kept with it, so its page can say why
/// it was (or was not) announced, and to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Told at once.
    Announced,
    /// Waiting for its group's announcement (`group_wait`).
    Grouped,
    /// Told with its group.
    GroupAnnounced,
    /// No route matched: nobody is told.
    NoRoute,
    /// Not told: the target was flapping.
    QuietFlapping,
    /// Told late: the flapping ended (or went on too long) with the incident still open.
    AnnouncedAfterFlapping,
    /// Told to the escalation receivers.
    Escalated,
    /// The target became unreachable: its root cause's incident speaks for it (reminders pause).
    Unreachable,
    /// Listed under the root cause's incident, which failed just after it was announced.
    Reattributed,
    /// Not announced: seen failing from a vantage point whose own link is down (the link's
    /// incident speaks for it).
    QuietLink,
    /// Not announced: seen from a vantage point that could not report it in time (it
    /// arrived with a back-fill, longer after the fact than the vantage's grace).
    Late,
    /// Not announced by this agent: its centre could be reached, and alerts for it.
    CentreSpeaks,
    /// Announced by this agent itself: its centre could not be reached for `alert_after`.
    AnnouncedLocally,
    /// Closed because its check was removed from the configuration.
    Removed,
    /// Not announced by this shard: the target belongs to another (`--shard`), which
    /// announces it; kept here only to judge its dependants' root cause.
    OtherShard,
    /// Closed here because its target moved to another shard or cluster node, which watches
    /// it now (and pages again if it still fails).
    Moved,
    /// Not announced yet: this cluster node cannot reach its database, its lease ran out,
    /// and the nodes that took its targets page for them.
    DatabaseLost,
    /// Announced by this cluster node although its database stayed unreachable for twice
    /// its lease (duplicates over silence).
    AnnouncedWithoutDatabase,
    /// Announced once the database answered again (the target is still this node's).
    DatabaseBack,
}

impl Decision {
    /// What the decision means, for people; `who` are the receivers (or root causes).
    pub fn describe(self, who: &[String], vietnamese: bool) -> String {
        let who = who.join(", ");
        match (self, vietnamese) {
            (Decision::Announced, true) => format!("Đã báo cho {who}"),
            (Decision::Announced, false) => format!("Announced to {who}"),
            (Decision::Grouped, true) => format!("Chờ gộp nhóm trước khi báo cho {who}"),
            (Decision::Grouped, false) => format!("Waiting for its group before telling {who}"),
            (Decision::GroupAnnounced, true) => format!("Đã báo cho {who} cùng nhóm"),
            (Decision::GroupAnnounced, false) => format!("Announced to {who} with its group"),
            (Decision::NoRoute, true) => "Không báo: không tuyến cảnh báo nào khớp".into(),
            (Decision::NoRoute, false) => "Not announced: no route matched".into(),
            (Decision::QuietFlapping, true) => "Không báo: đối tượng đang dao động".into(),
            (Decision::QuietFlapping, false) => "Not announced: the target was flapping".into(),
            (Decision::AnnouncedAfterFlapping, true) => "Báo muộn: hết dao động mà sự cố vẫn còn".into(),
            (Decision::AnnouncedAfterFlapping, false) => {
                "Announced late: the flapping is over (or went on too long) and it still fails".into()
            }
            (Decision::Escalated, true) => format!("Leo thang tới {who}"),
            (Decision::Escalated, false) => format!("Escalated to {who}"),
            (Decision::Unreachable, true) => format!("Không truy cập được do {who} lỗi; tạm dừng nhắc lại"),
            (Decision::Unreachable, false) => format!("Unreachable because {who} fails; reminders paused"),
            (Decision::Reattributed, true) => format!("Gộp vào sự cố gốc của {who}"),
            (Decision::Reattributed, false) => format!("Re-attributed to the root cause, {who}"),
            (Decision::QuietLink, true) => format!("Không báo: đường truyền của điểm đo {who} đang lỗi"),
            (Decision::QuietLink, false) => format!("Not announced: the link of vantage point {who} is down"),
            (Decision::Late, true) => {
                format!("Không báo: dữ liệu từ điểm đo {who} đến muộn (bổ sung sau khi mất kết nối)")
            }
            (Decision::Late, false) => format!("Not announced: it arrived late from vantage point {who} (a back-fill)"),
            (Decision::CentreSpeaks, true) => "Điểm đo không báo: trung tâm vẫn liên lạc được và sẽ báo".into(),
            (Decision::CentreSpeaks, false) => "Not announced here: the centre could be reached and alerts".into(),
            (Decision::AnnouncedLocally, true) => "Điểm đo tự báo: mất liên lạc với trung tâm".into(),
            (Decision::AnnouncedLocally, false) => {
                "Announced by this vantage point: the centre could not be reached".into()
            }
            (Decision::Removed, true) => "Đóng: kiểm tra đã bị gỡ khỏi cấu hình".into(),
            (Decision::Removed, false) => "Closed: the check was removed from the configuration".into(),
            (Decision::OtherShard, true) => format!("Không báo ở đây: {who} giám sát và báo đối tượng này"),
            (Decision::OtherShard, false) => format!("Not announced here: {who} owns this target and announces it"),
            (Decision::Moved, true) => format!("Đóng ở đây: {who} giám sát đối tượng này từ nay"),
            (Decision::Moved, false) => format!("Closed here: {who} watches this target from now on"),
            (Decision::DatabaseLost, true) => {
                "Tạm chưa báo: máy này mất kết nối cơ sở dữ liệu cụm, máy khác đang giám sát thay".into()
            }
            (Decision::DatabaseLost, false) => {
                "Held: this node cannot reach the cluster's database; the nodes that took over page".into()
            }
            (Decision::AnnouncedWithoutDatabase, true) => "Máy này tự báo: mất cơ sở dữ liệu cụm quá lâu".into(),
            (Decision::AnnouncedWithoutDatabase, false) => {
                "Announced by this node: the cluster's database stayed unreachable (duplicates over silence)".into()
            }
            (Decision::DatabaseBack, true) => "Đã báo khi cơ sở dữ liệu cụm trở lại".into(),
            (Decision::DatabaseBack, false) => "Announced when the cluster's database answered again".into(),
        }
    }
}

/// One decision, when it was taken, and whom it concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Why {
    pub at_ms: i64,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub who: Vec<String>,
}

/// One incident of a grouped announcement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupItem {
    pub incident_id: i64,
    pub target: String,
    pub target_name: String,
    pub check_name: String,
    pub cause: String,
}

impl GroupItem {
    /// The summary of an incident.
    pub fn of(i: &Incident) -> GroupItem {
        GroupItem {
            incident_id: i.id,
            target: i.target.clone(),
            target_name: i.target_name.clone(),
            check_name: i.check_name.clone(),
            cause: i.cause.clone(),
        }
    }
}

/// An incident: one target down (critical) or degraded (warning), from detection to recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: i64,
    /// Target id (`system/check[/target]`).
    pub target: String,
    pub system: String,
    pub system_name: String,
    pub check: String,
    pub check_name: String,
    pub target_name: String,
    pub kind: String,
    pub severity: Severity,
    /// When the failing results began, Unix milliseconds.
    pub started_ms: i64,
    /// When the threshold was crossed and the incident opened.
    pub detected_ms: i64,
    pub resolved_ms: Option<i64>,
    /// The failure as people read it (the error, or failed conditions with values).
    pub cause: String,
    pub reason: Option<String>,
    pub failed_conditions: Vec<String>,
    /// Targets failing because of this one (`unreachable`), listed as "also affected".
    pub affected: Vec<String>,
    pub ack: Option<Ack>,
    pub told: Vec<Told>,
    pub runbook: Option<String>,
    pub reminders: u32,
    pub escalated: bool,
    pub last_notified_ms: i64,
    /// The failing target is Vigil's own uplink: Vigil cannot judge the others.
    #[serde(default)]
    pub monitor_blind: bool,
    /// Why it was closed, when not because the target recovered: `removed` (its check was
    /// removed from the configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_as: Option<String>,
    /// Why it was, or was not, announced — every decision, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<Why>,
    /// The vantage point the failure is seen from (an agent's view), if not the centre's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vantage: Option<String>,
    /// For a vantage's view: `link` (the vantage's own link to the network fails) or
    /// `target` (the target fails as seen from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause_class: Option<String>,
}

impl Incident {
    /// Records a decision about telling people of it.
    pub fn decided(&mut self, at_ms: i64, decision: Decision, who: Vec<String>) {
        self.why.push(Why { at_ms, decision, who });
    }

    /// Whether the incident is still open.
    pub fn is_open(&self) -> bool {
        self.resolved_ms.is_none()
    }
}

/// What a notification announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Firing,
    Reminder,
    Escalation,
    Resolved,
    /// The target keeps changing state; notifications pause until it is stable.
    Flapping,
    /// The incident turned out to be the root cause of others already announced: it now
    /// lists them as also affected.
    Update,
    /// The monthly uptime report.
    Report,
    Test,
}

impl EventKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Firing => "firing",
            EventKind::Reminder => "reminder",
            EventKind::Escalation => "escalation",
            EventKind::Resolved => "resolved",
            EventKind::Flapping => "flapping",
            EventKind::Update => "update",
            EventKind::Report => "report",
            EventKind::Test => "test",
        }
    }
}

/// One message for one receiver, as written to the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key: the email Message-ID, the webhook `id`.
    pub key: String,
    pub receiver: String,
    pub event: EventKind,
    /// The incident as it was when the notification was made.
    pub incident: Incident,
    pub created_ms: i64,
    /// The key of the earlier notification this one follows up (reminders, resolution).
    #[serde(default)]
    pub reply_to: Option<String>,
    /// For a grouped announcement: every incident it announces (the first is `incident`).
    #[serde(default)]
    pub group: Vec<GroupItem>,
    /// For the monthly report: the rendered report.
    #[serde(default)]
    pub report: Option<Box<ReportMail>>,
    /// The cluster node that made it and delivers it (None outside a cluster); another
    /// node takes it over only once this one's lease has run out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A rendered report to mail: subject, HTML body, CSV attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportMail {
    /// The month, e.g. `2026-10`.
    pub month: String,
    pub subject: String,
    pub html: String,
    pub csv: String,
}
