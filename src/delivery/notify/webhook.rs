//! Webhooks: Vigil's generic JSON (schema in the README), Slack-compatible `{"text"}`, and
//! Telegram's `sendMessage`; optionally signed with `X-Vigil-Signature: sha256=<hmac>`.

use ring::hmac;
use serde_json::json;

use super::{HttpClient, SendError, post_json};
use crate::alert::message::{MessageContext, Rendered, ack_link, local};
use crate::config::Language;
use crate::config::alerting::{WebhookChannel, WebhookFormat};
use crate::model::incident::Notification;

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
            "closed_as": i.closed_as,
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

/// The most characters a chat message carries: Telegram refuses more than 4,096 (a
/// permanent failure, so the alert would be lost on that channel exactly during a mass
/// outage) and Slack cuts long text.
pub const CHAT_LIMIT: usize = 4000;

/// `text` cut to [`CHAT_LIMIT`] characters at a line end, saying how many lines were left out.
pub fn fit_chat(text: &str, language: Language) -> String {
    if text.chars().count() <= CHAT_LIMIT {
        return text.to_string();
    }
    let lines: Vec<&str> = text.lines().collect();
    let more = |n: usize| match language {
        Language::Vi => format!("\n… và {n} dòng nữa"),
        Language::En => format!("\n… and {n} more lines"),
    };
    // Room for the longest possible note.
    let budget = CHAT_LIMIT - more(lines.len()).chars().count();
    let (mut out, mut used, mut kept) = (String::new(), 0, 0);
    for line in &lines {
        let cost = line.chars().count() + usize::from(kept > 0);
        if used + cost > budget {
            break;
        }
        if kept > 0 {
            out.push('\n');
        }
        out.push_str(line);
        used += cost;
        kept += 1;
    }
    if kept == 0 {
        out = lines.first().map(|l| l.chars().take(budget).collect()).unwrap_or_default();
        kept = 1;
    }
    out.push_str(&more(lines.len() - kept));
    out
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
        WebhookFormat::Slack => {
            json!({ "text": fit_chat(&format!("*{}*\n{}", rendered.subject, rendered.text), ctx.language) })
        }
        WebhookFormat::Telegram => json!({
            "chat_id": channel.chat_id,
            "text": fit_chat(&format!("{}\n\n{}", rendered.subject, rendered.text), ctx.language),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #14, item 7: a grouped message of a mass outage fits a chat message and says
    /// how much it left out.
    #[test]
    fn chat_messages_fit_and_say_what_was_left_out() {
        let long: String = (1..=500).map(|i| format!("commune-gateway-{i:03} is down since 10:00\n")).collect();
        let fitted = fit_chat(&long, Language::En);
        assert!(fitted.chars().count() <= CHAT_LIMIT, "{}", fitted.chars().count());
        let kept = fitted.lines().count() - 1;
        assert!(fitted.ends_with(&format!("… and {} more lines", 500 - kept)), "{fitted}");
        assert!(fit_chat(&long, Language::Vi).contains("dòng nữa"));
        let short = "one line";
        assert_eq!(fit_chat(short, Language::En), short);
        let one_huge_line = "x".repeat(10_000);
        assert!(fit_chat(&one_huge_line, Language::En).chars().count() <= CHAT_LIMIT);
    }
}
