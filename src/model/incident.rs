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
}

impl Incident {
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
