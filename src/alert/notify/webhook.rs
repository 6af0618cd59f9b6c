//! Webhooks: Vigil's generic JSON (schema in the README), Slack-compatible `{"text"}`, and
//! Telegram's `sendMessage`; optionally signed with `X-Vigil-Signature: sha256=<hmac>`.

use ring::hmac;
use serde_json::json;

use super::{HttpClient, SendError, post_json};
use crate::alert::incident::Notification;
use crate::alert::message::{MessageContext, Rendered, ack_link, local};
use crate::config::alerting::{WebhookChannel, WebhookFormat};

/// Schema version of the generic JSON body.
pub const SCHEMA_VERSION: u32 = 1;

/// The generic JSON body of a notification.
pub fn generic_body(n: &Notification, rendered: &Rendered, ctx: &MessageContext) -> serde_json::Value {
    let i = &n.incident;
    let at = |ms: i64| jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default();
    json!({
        "version": SCHEMA_VERSION,
        "id": n.key,
        "event": n.event.as_str(),
        "receiver": n.receiver,
        "instance": ctx.instance,
        "summary": rendered.subject,
        "text": rendered.text,
        "incident": {
            "id": i.id,
            "target": i.target,
            "system": i.system,
            "system_name": i.system_name,
            "check": i.check,
            "check_name": i.check_name,
            "target_name": i.target_name,
            "kind": i.kind,
            "severity": i.severity.as_str(),
            "state": if i.is_open() { "open" } else { "resolved" },
            "started_at": at(i.started_ms),
            "detected_at": at(i.detected_ms),
            "resolved_at": i.resolved_ms.map(at),
            "started_local": local(i.started_ms, &ctx.timezone),
            "cause": i.cause,
            "reason": i.reason,
            "failed_conditions": i.failed_conditions,
            "affected": i.affected,
            "acknowledged": i.ack.as_ref().map(|a| json!({ "by": a.by, "comment": a.comment, "at": at(a.at_ms) })),
            "runbook": i.runbook,
        },
        "ack_url": ack_link(ctx, &i.target, i.id, n.created_ms),
        "group": n.group,
    })
}

pub(super) async fn send(
    channel: &WebhookChannel,
    n: &Notification,
    rendered: &Rendered,
    ctx: &MessageContext,
    http: &HttpClient,
) -> Result<(), SendError> {
    let body = match channel.format {
        WebhookFormat::Generic => generic_body(n, rendered, ctx),
        WebhookFormat::Slack => json!({ "text": format!("*{}*\n{}", rendered.subject, rendered.text) }),
        WebhookFormat::Telegram => json!({
            "chat_id": channel.chat_id,
            "text": format!("{}\n\n{}", rendered.subject, rendered.text),
            "disable_web_page_preview": true,
        }),
    };
    let body = serde_json::to_vec(&body).map_err(|e| SendError::permanent(e.to_string()))?;
    let mut headers = vec![("x-vigil-id", n.key.clone())];
    if let Some(secret) = &channel.secret {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
        let tag = hmac::sign(&key, &body);
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        headers.push(("x-vigil-signature", format!("sha256={hex}")));
    }
    post_json(http, &channel.url, body, &headers).await
}
