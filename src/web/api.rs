//! The JSON API's handlers (`/api/v1/…`), the reports, heartbeats and reload: each reads
//! the store through the [`WebState::reader`] or asks the pipeline, and answers with a
//! status code that says what went wrong.

use super::*;

/// Records `action` with the status it ended with, and passes the reply on.
pub(super) fn audited(
    state: &WebState,
    peer: std::net::IpAddr,
    who: &str,
    action: &str,
    detail: String,
    reply: Reply,
) -> Reply {
    let outcome = reply.status().as_u16();
    let detail =
        if detail.is_empty() { format!("answered {outcome}") } else { format!("{detail} (answered {outcome})") };
    audit(state, peer, who, action, &detail);
    reply
}

/// `GET /api/v1/audit?limit=…`: the audit trail, newest first (admin token).
pub(super) fn audit_list(state: &WebState, query: Option<&str>) -> Reply {
    let limit = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    match state.reader.audit(limit) {
        Ok(entries) => json(&serde_json::json!({ "audit": entries })),
        Err(e) => store_unreadable(&e),
    }
}

/// Largest request body accepted.
pub(super) const MAX_BODY: usize = 64 * 1024;

/// Reads a JSON request body (at most [`MAX_BODY`]); an empty body is `{}`.
pub(super) async fn read_json(req: Request<Incoming>) -> Result<serde_json::Value, Reply> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    let bytes = http_body_util::BodyExt::collect(limited)
        .await
        .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| text(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))
}

/// `GET /api/v1/incidents?state=open|all&system=…&limit=…`
pub(super) fn incidents(state: &WebState, query: Option<&str>) -> Reply {
    let mut open_only = false;
    let mut system = None;
    let mut limit = 100usize;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "state" => open_only = v == "open",
            "system" => system = Some(v.into_owned()),
            "limit" => limit = v.parse().unwrap_or(100).clamp(1, 1000),
            _ => {}
        }
    }
    if open_only {
        // Open incidents from memory: always current, also right after an acknowledgement.
        let board = state.board.read().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<&crate::model::incident::Incident> =
            board.open_incidents.iter().filter(|i| system.as_deref().is_none_or(|s| s == i.system)).collect();
        list.sort_by_key(|i| std::cmp::Reverse(i.id));
        let total = list.len();
        list.truncate(limit);
        return json(&serde_json::json!({ "incidents": list, "total": total }));
    }
    match state.reader.incidents(open_only, system.as_deref(), limit) {
        Ok(list) => json(&serde_json::json!({ "incidents": list })),
        Err(e) => store_unreadable(&e),
    }
}

pub(super) async fn acknowledge(state: &WebState, id: i64, by: String, comment: String) -> Reply {
    match acknowledge_anywhere(state, id, by, comment).await {
        Ok(Acked::Here(incident)) => json(&serde_json::json!({ "incident": incident })),
        Ok(Acked::Passed) => reply(
            StatusCode::ACCEPTED,
            "application/json",
            serde_json::to_vec_pretty(&serde_json::json!({ "incident_id": id, "passed_on": true })).unwrap_or_default(),
        ),
        Err(refusal) => refusal,
    }
}

/// How an acknowledgement was taken.
pub(super) enum Acked {
    /// This node holds the incident and acknowledged it.
    Here(Box<crate::model::incident::Incident>),
    /// Another node of the cluster holds it: the acknowledgement waits in the shared store
    /// for that node, which applies it within a few seconds.
    Passed,
}

/// Acknowledges an open incident: here when this node holds it, else — on a cluster node
/// sharing its store — through the store, for the node that holds it.
pub(super) async fn acknowledge_anywhere(
    state: &WebState,
    id: i64,
    by: String,
    comment: String,
) -> Result<Acked, Reply> {
    let (respond, answer) = oneshot::channel();
    let request =
        crate::store::AckRequest { id: 0, incident_id: id, by: by.clone(), comment: comment.clone(), at_ms: now_ms() };
    if state.pipeline.send(Control::Ack { id, by, comment, respond }).await.is_err() {
        return Err(text(StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
    }
    let why = match answer.await {
        Ok(Ok(incident)) => return Ok(Acked::Here(Box::new(incident))),
        Ok(Err(why)) => why,
        Err(_) => return Err(text(StatusCode::SERVICE_UNAVAILABLE, "shutting down")),
    };
    let held_elsewhere = state
        .cluster_view
        .as_ref()
        .is_some_and(|view| view.read().unwrap_or_else(|p| p.into_inner()).open_incidents.iter().any(|i| i.id == id));
    match (held_elsewhere, &state.store) {
        (true, Some(store)) => {
            tracing::info!(incident = id, by = %request.by, "incident held by another node: acknowledgement passed on through the store");
            store.send(crate::store::Record::AckRequest(request));
            Ok(Acked::Passed)
        }
        _ => Err(text(StatusCode::NOT_FOUND, why.to_string())),
    }
}

/// The check id in `/api/v1/checks/{system}/{check}/history`; none for any other path
/// (`/api/v1/checks/history` once sliced out of range and panicked).
pub(super) fn history_check(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/checks/")?.strip_suffix("/history").filter(|id| !id.is_empty())
}

/// `GET /api/v1/checks/{system}/{check}/history?from=&to=`: each target's exact state
/// intervals and daily rollups (`from`/`to`: RFC 3339 or Unix ms; default the last 7 days).
pub(super) fn history(state: &WebState, check_id: &str, query: Option<&str>) -> Reply {
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
    let config = state.board.read().unwrap_or_else(|p| p.into_inner()).config.clone();
    let Some(check) = config
        .systems
        .iter()
        .flat_map(|s| s.checks.iter().map(move |c| (s, c)))
        .find(|(s, c)| format!("{}/{}", s.id, c.id) == check_id)
        .map(|(_, c)| c)
    else {
        return text(StatusCode::NOT_FOUND, "no such check");
    };
    let now = now_ms();
    let time = |key: &str, default: i64| -> Result<i64, String> {
        match params.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .or_else(|_| v.parse::<jiff::Timestamp>().map(|t| t.as_millisecond()))
                .map_err(|_| format!("{key}: \"{v}\" is not a time (RFC 3339 or Unix ms)")),
        }
    };
    // Times Vigil could have recorded (1970 to 2100): far ones overflowed the day arithmetic.
    let plausible = |t: i64| (0..=4_102_444_800_000).contains(&t);
    let (from, to) = match (time("from", now - 7 * 86_400_000), time("to", now)) {
        (Ok(f), Ok(t)) if !plausible(f) || !plausible(t) => {
            return text(StatusCode::BAD_REQUEST, "from and to must lie between 1970 and 2100");
        }
        (Ok(f), Ok(t)) if t > f => (f, t),
        (Ok(_), Ok(_)) => return text(StatusCode::BAD_REQUEST, "to must be after from"),
        (Err(why), _) | (_, Err(why)) => return text(StatusCode::BAD_REQUEST, why),
    };
    let tz = &config.instance.timezone;
    let ledger = match crate::report::Ledger::load(&config, &state.reader, from, to, now) {
        Ok(l) => l,
        Err(e) => return store_unreadable(&e),
    };
    let mut targets = Vec::new();
    let ids: Vec<String> = check.targets.iter().map(|t| t.id().to_string()).collect();
    for id in &ids {
        // Up to now what was recorded; after now (a range in the future) no data.
        let seen_to = to.min(now).max(from);
        let mut edges: Vec<(i64, Option<crate::model::State>)> = Vec::new();
        if seen_to > from {
            let h = ledger.history(id).cloned().unwrap_or_default();
            edges.push((from, h.initial));
            edges.extend(h.changes.iter().filter(|(at, _)| *at < seen_to).map(|(at, s)| (*at, Some(*s))));
        }
        let mut intervals: Vec<serde_json::Value> = edges
            .iter()
            .enumerate()
            .map(|(i, (start, s))| {
                let end = edges.get(i + 1).map_or(seen_to, |(e, _)| *e);
                serde_json::json!({ "from": crate::status::local_time(*start, tz), "to": crate::status::local_time(end, tz),
                                    "state": s.map_or("no_data", |s| s.as_str()) })
            })
            .collect();
        if to > seen_to {
            intervals.push(serde_json::json!({ "from": crate::status::local_time(seen_to, tz),
                "to": crate::status::local_time(to, tz), "state": "no_data" }));
        }
        let rollups = match state.reader.rollups(id, from - 86_400_000, to) {
            Ok(r) => r,
            Err(e) => return store_unreadable(&e),
        };
        let accounting = ledger.account(std::slice::from_ref(id), from, to);
        targets.push(serde_json::json!({ "id": id, "intervals": intervals, "rollups": rollups,
                                         "accounting": accounting, "uptime": accounting.uptime() }));
    }
    let accounting = ledger.account(&ids, from, to);
    json(
        &serde_json::json!({ "check": check_id, "from": crate::status::local_time(from, tz), "to": crate::status::local_time(to, tz),
                              "accounting": accounting, "uptime": accounting.uptime(), "targets": targets }),
    )
}

/// `GET /reports?month=2026-10&lang=vi&format=html|csv|json|md`: the uptime report.
pub(super) fn reports(state: &WebState, query: Option<&str>) -> Reply {
    use crate::report::{self, Format};
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
    let config = state.board.read().unwrap_or_else(|p| p.into_inner()).config.clone();
    let tz = &config.instance.timezone;
    let now = now_ms();
    let month = params.get("month").cloned().unwrap_or_else(|| report::current_month(now, tz));
    let span = match report::month(&month, tz) {
        Ok(s) => s,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let lang = match params.get("lang").map(String::as_str) {
        Some("en") => crate::config::Language::En,
        Some("vi") => crate::config::Language::Vi,
        None => config.instance.language,
        Some(other) => return text(StatusCode::BAD_REQUEST, format!("lang: \"{other}\" is not vi or en")),
    };
    let (format, content_type) = match params.get("format").map(String::as_str) {
        Some("csv") => (Format::Csv, "text/csv; charset=utf-8"),
        Some("json") => (Format::Json, "application/json"),
        Some("md") => (Format::Md, "text/markdown; charset=utf-8"),
        Some("html") | None => (Format::Html, "text/html; charset=utf-8"),
        Some(other) => {
            return text(StatusCode::BAD_REQUEST, format!("format: \"{other}\" is not html, csv, json or md"));
        }
    };
    match report::build(&config, &state.reader, &span, lang, now) {
        Ok(r) => reply(StatusCode::OK, content_type, report::render(&r, format, tz)),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the report");
            text(StatusCode::INTERNAL_SERVER_ERROR, "cannot build the report")
        }
    }
}

/// Excludes a resolved incident from the SLA, with a reason and an author; returns the
/// refusal, if any. An open incident cannot be excluded: its end is not known yet.
pub(super) fn exclude(state: &WebState, id: i64, reason: &str, by: &str) -> Option<Reply> {
    let (reason, by) = (reason.trim(), by.trim());
    if reason.is_empty() || by.is_empty() {
        return Some(text(StatusCode::BAD_REQUEST, "an exclusion needs a reason and who decided it"));
    }
    // Open or not is the pipeline's word (its list is current the moment an incident
    // resolves; the store follows within a write batch).
    let open = state.board.read().unwrap_or_else(|p| p.into_inner()).open_incidents.iter().any(|i| i.id == id);
    if open {
        return Some(text(StatusCode::CONFLICT, "only a resolved incident can be excluded from the SLA"));
    }
    match state.reader.incident(id) {
        Ok(Some(_)) => {}
        Ok(None) => return Some(text(StatusCode::NOT_FOUND, "no such incident")),
        Err(e) => {
            tracing::error!(error = %e, "cannot read incidents");
            return Some(text(StatusCode::INTERNAL_SERVER_ERROR, "cannot read incidents"));
        }
    }
    let Some(store) = &state.store else { return Some(text(StatusCode::SERVICE_UNAVAILABLE, "no store")) };
    let record = crate::store::query::Exclusion {
        incident_id: id,
        reason: reason.chars().take(1000).collect(),
        by: by.chars().take(100).collect(),
        at_ms: now_ms(),
    };
    tracing::info!(incident = id, by = %record.by, reason = %record.reason, "incident excluded from the SLA");
    store.send(crate::store::Record::Exclusion(record));
    None
}

/// `GET /api/v1/maintenance`: windows from the configuration and the API.
pub(super) fn maintenance_list(state: &WebState) -> Reply {
    use crate::config::maintenance::Schedule;
    let config = state.board.read().unwrap_or_else(|p| p.into_inner()).config.clone();
    let tz = &config.instance.timezone;
    let now = now_ms();
    let api = match state.reader.maintenance() {
        Ok(api) => api,
        Err(e) => return store_unreadable(&e),
    };
    let windows: Vec<serde_json::Value> = config
        .maintenance
        .iter()
        .map(|w| (w.clone(), "config", None))
        .chain(api.iter().map(|a| (a.window(), "api", Some(a.by.clone()))))
        .map(|(w, source, by)| {
            let schedule = match &w.schedule {
                Schedule::Once { from_ms, to_ms } => serde_json::json!({
                    "from": crate::status::local_time(*from_ms, tz), "to": crate::status::local_time(*to_ms, tz)
                }),
                Schedule::Recurring { pattern, duration, .. } => serde_json::json!({
                    "cron": pattern, "duration": humantime::format_duration(*duration).to_string()
                }),
            };
            serde_json::json!({
                "name": w.name, "source": source, "by": by, "active": w.active(now, tz),
                "systems": w.systems, "checks": w.checks, "targets": w.targets,
                "schedule": schedule, "reason": w.reason,
            })
        })
        .collect();
    json(&serde_json::json!({ "maintenance": windows }))
}

/// `POST /api/v1/maintenance`: `{name, systems, checks, targets, from?, to | duration, reason, by}`.
pub(super) async fn open_maintenance(state: &WebState, body: &serde_json::Value) -> Reply {
    use crate::config::maintenance::{ApiWindow, parse_time};
    let config = state.board.read().unwrap_or_else(|p| p.into_inner()).config.clone();
    let tz = &config.instance.timezone;
    let list = |key: &str| -> Vec<String> {
        body[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let (systems, checks, targets) = (list("systems"), list("checks"), list("targets"));
    if systems.is_empty() && checks.is_empty() && targets.is_empty() {
        return text(StatusCode::BAD_REQUEST, "give systems, checks or targets");
    }
    let from_ms = match body["from"].as_str() {
        Some(t) => match parse_time(t, tz) {
            Ok(ms) => ms,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("from: {e}")),
        },
        None => now_ms(),
    };
    let to_ms = match (body["to"].as_str(), body["duration"].as_str()) {
        (Some(t), _) => parse_time(t, tz).map_err(|e| format!("to: {e}")),
        (None, Some(d)) => crate::config::parse_duration(d)
            .map(|d| from_ms + d.as_millis() as i64)
            .map_err(|e| format!("duration: {e}")),
        (None, None) => Err("give to or duration".to_string()),
    };
    let to_ms = match to_ms {
        Ok(t) if t > from_ms => t,
        Ok(_) => return text(StatusCode::BAD_REQUEST, "the window ends before it starts"),
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let window = ApiWindow {
        name: body["name"].as_str().unwrap_or("maintenance").chars().take(100).collect(),
        systems,
        checks,
        targets,
        from_ms,
        to_ms,
        reason: body["reason"].as_str().map(|r| r.chars().take(1000).collect()),
        by: body["by"].as_str().unwrap_or("admin").chars().take(100).collect(),
    };
    if state.pipeline.send(Control::AddMaintenance(window.clone())).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let mut r = json(&serde_json::json!({ "maintenance": window }));
    *r.status_mut() = StatusCode::CREATED;
    r
}

/// Longest heartbeat message kept.
pub(super) const MAX_HEARTBEAT_MESSAGE: usize = 200;

/// `GET|POST /api/v1/heartbeat/{token}[?status=fail&msg=…]`.
pub(super) fn heartbeat(state: &WebState, token: &str, query: Option<&str>) -> Reply {
    let mut ok = true;
    let mut message = String::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "status" => ok = !matches!(value.as_ref(), "fail" | "failed" | "error"),
            // No control characters: a newline would forge a line in text logs.
            "msg" => {
                message =
                    value.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_HEARTBEAT_MESSAGE).collect()
            }
            _ => {}
        }
    }
    let beat = Beat { at_ms: now_ms(), ok, message: message.clone() };
    match state.heartbeats.record(token, beat.clone()) {
        Some(target) => {
            if let Some(store) = &state.store {
                store.send(Record::Heartbeat(HeartbeatRecord { target, at_ms: beat.at_ms, ok, message }));
            }
            text(StatusCode::OK, "OK")
        }
        None => text(StatusCode::NOT_FOUND, "unknown heartbeat token"),
    }
}

pub(super) async fn reload(state: &WebState) -> Reply {
    let (respond, answer) = oneshot::channel();
    if state.reload.send(ReloadRequest { respond }).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match answer.await {
        Ok(Ok(warnings)) => {
            let lines: String = warnings.iter().map(|w| format!("\nwarning: {w}")).collect();
            text(StatusCode::OK, format!("configuration reloaded{lines}"))
        }
        Ok(Err(errors)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("configuration not reloaded, the previous one keeps running:\n{errors}"),
        ),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}
