//! Alertmanager v2: `POST /api/v2/alerts`. Firing alerts carry an `endsAt` a few minutes
//! ahead and are re-posted while the incident is open (as Alertmanager expects of its
//! clients); the resolution posts `endsAt` = the recovery time. Labels are stable, so
//! Alertmanager's own fingerprint is the idempotency key.

use std::time::Duration;

use serde_json::json;

use super::{HttpClient, SendError, post_json};
use crate::alert::message::{MessageContext, Rendered};
use crate::config::alerting::AlertmanagerChannel;
use crate::model::incident::{EventKind, Incident, Notification};

/// How far ahead a firing alert's `endsAt` is set; re-posts come well before it.
pub const FIRING_TTL: Duration = Duration::from_secs(300);

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}

/// The Alertmanager alert of an incident.
pub fn alert(incident: &Incident, summary: &str, description: &str, ctx: &MessageContext) -> serde_json::Value {
    let now_ms = crate::model::now_ms();
    let ends = incident.resolved_ms.unwrap_or(now_ms + FIRING_TTL.as_millis() as i64);
    let alertname = match incident.severity {
        crate::model::incident::Severity::Critical => "VigilCheckDown",
        crate::model::incident::Severity::Warning => "VigilCheckDegraded",
    };
    let generator = ctx
        .public_url
        .as_ref()
        .map(|u| format!("{}/checks/{}", u.trim_end_matches('/'), incident.target))
        .unwrap_or_default();
    json!({
        "labels": {
            "alertname": alertname,
            "system": incident.system,
            "check": incident.check,
            "target": incident.target_name,
            "severity": incident.severity.as_str(),
            "vigil_instance": ctx.instance,
        },
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": incident.runbook.clone().unwrap_or_default(),
            "incident_id": incident.id.to_string(),
        },
        "startsAt": rfc3339(incident.started_ms),
        "endsAt": rfc3339(ends),
        "generatorURL": generator,
    })
}

/// Posts alerts to an Alertmanager.
pub async fn post_alerts(http: &HttpClient, url: &str, alerts: &[serde_json::Value]) -> Result<(), SendError> {
    let body = serde_json::to_vec(alerts).map_err(|e| SendError::permanent(e.to_string()))?;
    post_json(http, &format!("{url}/api/v2/alerts"), body, &[]).await
}

pub(super) async fn send(
    channel: &AlertmanagerChannel,
    n: &Notification,
    rendered: &Rendered,
    ctx: &MessageContext,
    http: &HttpClient,
) -> Result<(), SendError> {
    if n.event == EventKind::Test {
        let mut a = alert(&n.incident, &rendered.subject, &rendered.text, ctx);
        a["labels"]["alertname"] = json!("VigilNotifyTest");
        a["endsAt"] = json!(rfc3339(n.created_ms + 60_000));
        return post_alerts(http, &channel.url, &[a]).await;
    }
    // A grouped announcement posts every member: Alertmanager groups them itself.
    let mut alerts = vec![alert(&n.incident, &rendered.subject, &rendered.text, ctx)];
    for g in n.group.iter().filter(|g| g.incident_id != n.incident.id) {
        let mut member = n.incident.clone();
        (member.id, member.target, member.target_name, member.cause) =
            (g.incident_id, g.target.clone(), g.target_name.clone(), g.cause.clone());
        alerts.push(alert(&member, &rendered.subject, &g.cause, ctx));
    }
    post_alerts(http, &channel.url, &alerts).await
}
