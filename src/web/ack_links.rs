//! Signed acknowledgement links from emails: a GET shows a confirmation form (a mail
//! gateway's link scanner that follows the link acknowledges nothing), the POST of that form
//! acknowledges; links carry the instance, the incident and an expiry under an HMAC.

use super::*;

/// The parameters of a signed acknowledgement link, once its signature is checked.
pub(super) struct AckLink {
    incident: i64,
    target: String,
    expires: i64,
    sig: String,
}

/// Checks a link's signature — made for this instance, this target and this incident, by
/// one of the listed keys, not expired — and that the incident, if open, is that target's;
/// `None` for a forged, malformed, expired or misdirected link.
pub(super) fn verified_link(state: &WebState, params: &HashMap<String, String>) -> Option<AckLink> {
    let board = state.board.read().unwrap_or_else(|p| p.into_inner());
    let incident = params.get("incident")?.parse::<i64>().ok()?;
    let target = params.get("target")?;
    let expires = params.get("expires")?.parse::<i64>().ok()?;
    let sig = params.get("sig")?;
    let claim = AckClaim { instance: &board.config.instance.name, target, incident, expires };
    if !claim.verify(&board.config.alerting.ack_keys, sig, now_ms()) {
        return None;
    }
    if board.open_incidents.iter().any(|i| i.id == incident && i.target != *target) {
        return None;
    }
    Some(AckLink { incident, target: target.clone(), expires, sig: sig.clone() })
}

pub(super) fn invalid_link() -> Reply {
    text(StatusCode::FORBIDDEN, "this acknowledge link is invalid or has expired")
}

/// `GET /ack?incident=…&target=…&expires=…&sig=…`: the link in alerts shows a confirmation form and
/// acknowledges nothing. Mail gateways' link scanners and chat previews open every link in
/// a message within seconds; if opening it acknowledged, nobody would be reminded again.
pub(super) fn ack_confirmation(state: &WebState, query: Option<&str>) -> Reply {
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
    let Some(link) = verified_link(state, &params) else {
        return invalid_link();
    };
    // The signature is hex (checked); the target is escaped all the same.
    let AckLink { incident, target, expires, sig } = link;
    let target = minijinja::HtmlEscape(&target).to_string();
    reply_html(
        StatusCode::OK,
        &format!(
            "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
             <title>Vigil — sự cố {incident}</title>\
             <h1>Xác nhận tiếp nhận sự cố số {incident}? / Acknowledge incident {incident}?</h1>\
             <p>Mở liên kết chưa xác nhận gì: bấm nút để xác nhận, nhắc lại và chuyển cấp sẽ dừng. / \
             Opening this link acknowledged nothing: press the button to acknowledge; reminders and \
             escalation then stop.</p>\
             <form method=post action=ack>\
             <input type=hidden name=incident value={incident}><input type=hidden name=expires value={expires}>\
             <input type=hidden name=target value=\"{target}\">\
             <input type=hidden name=sig value=\"{sig}\">\
             <p><label>Người tiếp nhận / Your name <input name=by maxlength={MAX_ACK_NAME} autocomplete=name></label></p>\
             <p><button type=submit>Xác nhận / Acknowledge</button></p></form>"
        ),
    )
}

/// Longest name kept from the confirmation form.
pub(super) const MAX_ACK_NAME: usize = 100;

/// `POST /ack` (the confirmation form): acknowledges, recording the name given.
pub(super) async fn ack_link(state: &WebState, form: &HashMap<String, String>) -> Reply {
    let Some(AckLink { incident, .. }) = verified_link(state, form) else {
        return invalid_link();
    };
    let name: String = form
        .get("by")
        .map(|n| n.chars().filter(|c| !c.is_control()).take(MAX_ACK_NAME).collect::<String>())
        .unwrap_or_default();
    let by = match name.trim() {
        "" => "link".to_string(),
        name => name.to_string(),
    };
    let reply = acknowledge(state, incident, by, "acknowledged through the link in the alert".into()).await;
    if reply.status() != StatusCode::OK {
        return reply;
    }
    reply_html(
        StatusCode::OK,
        &format!(
            "<!doctype html><meta charset=utf-8><title>Vigil</title><p>Đã xác nhận tiếp nhận sự cố số {incident}. / Incident {incident} acknowledged.</p>"
        ),
    )
}

/// Largest form body read (the confirmation form is a few hundred bytes).
pub(super) const MAX_FORM: usize = 4 * 1024;

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_FORM`] bytes.
pub(super) async fn read_form(req: Request<Incoming>) -> Result<HashMap<String, String>, Reply> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_FORM);
    let bytes = http_body_util::BodyExt::collect(limited)
        .await
        .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))?
        .to_bytes();
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

pub(super) fn reply_html(status: StatusCode, body: &str) -> Reply {
    reply(status, "text/html; charset=utf-8", body.to_string())
}
