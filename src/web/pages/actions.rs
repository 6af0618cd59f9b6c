//! The form actions behind the login (acknowledge, exclude from the SLA, open
//! maintenance, log in and out): same-site posts with a CSRF token, audited; and the audit
//! trail page.

use super::*;

/// Reads a small urlencoded form.
pub(super) async fn form(req: Request<Incoming>) -> Option<HashMap<String, String>> {
    let limited = http_body_util::Limited::new(req.into_body(), 16 * 1024);
    let bytes: Bytes = http_body_util::BodyExt::collect(limited).await.ok()?.to_bytes();
    Some(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// A path on this server only: `//host` and `/\host` (which browsers read as `//host`)
/// would send the visitor elsewhere.
pub(in crate::web) fn is_local_path(to: &str) -> bool {
    to.starts_with('/') && !to.starts_with("//") && !to.contains('\\') && !to.contains(char::is_control)
}

pub(super) fn redirect(to: &str, cookie: Option<String>) -> Reply {
    let mut r = reply(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    let to = if is_local_path(to) { to } else { "/" };
    if let Ok(v) = hyper::header::HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| hyper::header::HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(SET_COOKIE, c);
    }
    r
}

/// The form actions: login, logout, acknowledge, exclude from the SLA, open maintenance.
pub(super) async fn action(state: &WebState, req: Request<Incoming>, config: &Config, peer: std::net::IpAddr) -> Reply {
    // Cross-site posts are refused: the browser's Origin must be this server.
    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    if let Some(origin) = req.headers().get(ORIGIN).and_then(|o| o.to_str().ok())
        && origin.split("://").nth(1) != Some(host.as_str())
    {
        return text(StatusCode::FORBIDDEN, "cross-site form posts are refused");
    }
    let head = Head::of(&req);
    let v = visitor(state, &head, config);
    let session_id = cookie(&head, SESSION_COOKIE);
    let path = req.uri().path().to_string();
    let Some(fields) = form(req).await else { return text(StatusCode::BAD_REQUEST, "bad form") };
    let field = |k: &str| fields.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let next = fields.get("next").cloned().unwrap_or_else(|| "/".into());
    let token = state.admin_token.read().unwrap_or_else(|p| p.into_inner()).clone();
    if path == "/ui/login" {
        return login(state, &v, config, peer, &fields, token).await;
    }
    if !v.logged_in {
        return text(StatusCode::UNAUTHORIZED, "log in first");
    }
    if !bool::from(subtle::ConstantTimeEq::ct_eq(field("csrf").as_bytes(), v.csrf.as_bytes())) {
        return text(StatusCode::FORBIDDEN, "invalid form token");
    }
    if path == "/ui/logout" {
        if let Some(id) = &session_id {
            state.sessions.close(id);
        }
        super::super::audit(state, peer, "admin (session)", "logout", "");
        return redirect("/", Some(format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")));
    }
    if let Some(rest) = path.strip_prefix("/ui/incidents/") {
        return incident_action(state, peer, rest, &fields).await;
    }
    if path == "/ui/maintenance" {
        let body = json!({
            "name": "maintenance", "systems": fields.get("systems").map(|s| vec![s.clone()]).unwrap_or_default(),
            "checks": fields.get("checks").map(|s| vec![s.clone()]).unwrap_or_default(),
            "duration": field("duration"), "reason": field("reason"), "by": field("by"),
        });
        let r = super::super::open_maintenance(state, &body).await;
        let detail = format!("{body} (answered {})", r.status().as_u16());
        super::super::audit(state, peer, "admin (session)", "maintenance", &detail);
        return if r.status() == StatusCode::CREATED { redirect(&next, None) } else { r };
    }
    text(StatusCode::NOT_FOUND, "no such action")
}

/// `POST /ui/login`: the admin token, throttled per address; a session cookie on success.
async fn login(
    state: &WebState,
    v: &Visitor,
    config: &Config,
    peer: std::net::IpAddr,
    fields: &HashMap<String, String>,
    token: Option<crate::config::Secret>,
) -> Reply {
    let field = |k: &str| fields.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let next = fields.get("next").cloned().unwrap_or_else(|| "/".into());
    let secure = config.server.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    let Some(token) = token else {
        return text(StatusCode::FORBIDDEN, "writes are disabled: set server.admin_token");
    };
    if let Some(wait) = state.sessions.wait_before_login(peer, now_ms()) {
        tracing::warn!(client = %peer, "login refused: too many failed attempts from this address");
        super::super::audit(state, peer, "?", "login refused", "too many failed attempts");
        let message = format!("too many failed logins: try again in {} s", wait.as_secs().max(1));
        return text(StatusCode::TOO_MANY_REQUESTS, message);
    }
    if !bool::from(subtle::ConstantTimeEq::ct_eq(field("token").as_bytes(), token.expose().as_bytes())) {
        state.sessions.login_failed(peer, now_ms());
        tracing::warn!(client = %peer, "failed login to the status pages");
        super::super::audit(state, peer, "?", "login failed", "wrong admin token");
        let ctx = merge(
            base_context(v, config, "/ui/login"),
            json!({ "next": next, "error": strings(v.lang)["wrong_token"] }),
        );
        let mut r = render("login.html", ctx);
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    state.sessions.login_succeeded(peer);
    super::super::audit(state, peer, "admin (session)", "login", "");
    let (session, _) = state.sessions.open(&token, now_ms());
    let cookie = format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        super::super::sessions::LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    redirect(&next, Some(cookie))
}

/// `POST /ui/incidents/{id}/ack` and `…/exclude`, for a logged-in administrator.
async fn incident_action(
    state: &WebState,
    peer: std::net::IpAddr,
    rest: &str,
    fields: &HashMap<String, String>,
) -> Reply {
    let field = |k: &str| fields.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let next = fields.get("next").cloned().unwrap_or_else(|| "/".into());
    let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(id) = id.parse::<i64>() else { return text(StatusCode::NOT_FOUND, "no such incident") };
    // As the API keeps them: a name of 100 characters, a comment of 1,000, no control
    // characters (a newline would forge a line in text logs).
    let clean = |s: String, max: usize| s.chars().filter(|c| !c.is_control()).take(max).collect::<String>();
    let by = clean(field("by"), 100);
    if by.is_empty() {
        return text(StatusCode::BAD_REQUEST, "say who you are");
    }
    match what {
        "ack" => {
            let comment = clean(field("comment"), 1000);
            super::super::audit(state, peer, "admin (session)", "acknowledge", &format!("incident {id}, by {by}"));
            match super::super::api::acknowledge_anywhere(state, id, by, comment).await {
                Ok(_) => redirect(&next, None),
                Err(refusal) => refusal,
            }
        }
        "exclude" => {
            let reason = field("reason");
            super::super::audit(
                state,
                peer,
                "admin (session)",
                "exclude",
                &format!("incident {id}, by {by}: {reason}"),
            );
            match super::super::exclude(state, id, &reason, &by) {
                None => redirect(&next, None),
                Some(refusal) => refusal,
            }
        }
        _ => text(StatusCode::NOT_FOUND, "no such action"),
    }
}

/// The audit trail for a logged-in administrator: the last 500 actions, newest first.
pub(super) fn audit_page(state: &WebState, config: &Config) -> Reply {
    let entries = match state.reader.audit(500) {
        Ok(entries) => entries,
        Err(e) => return super::super::store_unreadable(&e),
    };
    let esc = |s: &str| minijinja::HtmlEscape(s).to_string();
    let rows: String = entries
        .iter()
        .map(|a| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&local(a.at_ms, &config.instance.timezone)),
                esc(&a.who),
                esc(&a.address),
                esc(&a.action),
                esc(&a.detail)
            )
        })
        .collect();
    reply(
        StatusCode::OK,
        "text/html; charset=utf-8",
        format!(
            "<!doctype html><meta charset=utf-8><title>Vigil — nhật ký quản trị / audit trail</title>\
             <link rel=stylesheet href=/static/vigil.css><main><h2>Nhật ký quản trị / Audit trail</h2>\
             <table><thead><tr><th>Thời điểm / When</th><th>Ai / Who</th><th>Từ / From</th><th>Việc / Action</th>\
             <th>Chi tiết / Detail</th></tr></thead><tbody>{rows}</tbody></table></main>"
        ),
    )
}
