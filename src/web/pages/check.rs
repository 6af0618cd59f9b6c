//! A check's page: each target's state, recent runs, a latency chart, its changes and
//! incidents, over 24 h, 7 d or 30 d; addresses shown without their secrets.

use super::*;

pub(super) fn check_page(state: &WebState, req: &Head, board: &Board, id: &str) -> Reply {
    let config = &board.config;
    let Some((system, check)) = config
        .systems
        .iter()
        .flat_map(|s| s.checks.iter().map(move |c| (s, c)))
        .find(|(s, c)| format!("{}/{}", s.id, c.id) == id)
    else {
        return text(StatusCode::NOT_FOUND, "no such check");
    };
    let v = visitor(state, req, config);
    let tz = &config.instance.timezone;
    let query_map: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let range = match query_map.get("range").map(String::as_str) {
        Some("7d") => ("7d", 7 * 86_400_000),
        Some("30d") => ("30d", 30 * 86_400_000),
        _ => ("24h", 86_400_000),
    };
    let now = now_ms();
    let lang_param = if v.q.is_empty() { String::new() } else { format!("&{}", &v.q[1..]) };
    let here = format!("/checks/{id}{}", v.q);
    let ranges: Vec<Value> = ["24h", "7d", "30d"]
        .iter()
        .map(|r| json!({ "label": r, "current": *r == range.0, "url": format!("/checks/{id}?range={r}{lang_param}") }))
        .collect();
    // Vantage points' views are figures like any other: from the ledger.
    let ledger = if check.vantages.is_empty() {
        crate::report::Ledger::default()
    } else {
        match crate::report::Ledger::load(config, &state.reader, now - range.1, now, now) {
            Ok(ledger) => ledger,
            Err(e) => return super::super::store_unreadable(&e),
        }
    };
    let mut stored: HashMap<String, Vec<query::StoredResult>> = HashMap::new();
    for t in &check.targets {
        match state.reader.results(t.id(), now - range.1) {
            Ok(results) => stored.insert(t.id().to_string(), results),
            Err(e) => return super::super::store_unreadable(&e),
        };
    }
    let targets: Vec<Value> = check
        .targets
        .iter()
        .map(|t| {
            let tid = t.id().to_string();
            let view = board.targets.get(&tid);
            let st = view.map_or(State::Unknown, |x| x.state.state);
            let (word, icon) = state_word(st, v.lang);
            let results = stored.remove(&tid).unwrap_or_default();
            let runs = runs_of_the_day(&results, now, v.lang, tz);
            let chart = latency_chart(&results, now - range.1, now);
            let smoke = super::smoke::smoke_graph(&results, now - range.1, now, super::smoke::windows_for(range.1));
            let last = view.and_then(|x| x.last.as_ref()).map(|l| last_result(l, v.lang, tz));
            let incidents: Vec<Value> = state.reader.incidents_of(&tid, 20)
                .unwrap_or_default()
                .iter()
                .map(|i| json!({
                    "id": i.id, "since": local(i.started_ms, tz), "open": i.is_open(), "cause": i.cause, "ack": i.ack,
                    "why": i.why.iter().map(|w| format!("{} — {}", local(w.at_ms, tz), w.decision.describe(&w.who, v.lang == Language::Vi))).collect::<Vec<_>>(),
                    "duration": i.resolved_ms.map(|r| format_duration(Duration::from_millis((r - i.started_ms).max(0) as u64))).unwrap_or_else(|| "…".into()),
                }))
                .collect();
            json!({ "name": t.key.target, "state": st.as_str(), "word": word, "icon": icon,
                    "since": view.map(|x| local(x.state.since_ms, tz)).unwrap_or_default(),
                    "stale": view.is_some_and(|x| x.stale),
                    "seen_from": super::views::seen_from_rows(board, check, &tid, &ledger, (now - range.1, now), v.lang),
                    "address": shown_address(&t.address), "runs": runs, "chart": chart, "smoke": smoke, "last": last, "incidents": incidents })
        })
        .collect();
    let ctx = merge(
        base_context(&v, config, &format!("/checks/{id}")),
        json!({ "refresh": REFRESH_SECONDS, "ranges": ranges, "range_label": range.0, "here": here, "check": {
            "name": check.name, "kind": check.probe.kind(), "system": system.id,
            "system_name": if v.lang == Language::Vi { &system.name_vi } else { &system.name_en }, "targets": targets,
        }}),
    );
    render("check.html", ctx)
}

/// The last 24 hours in 96 cells of 15 minutes: each the worst result in it.
fn runs_of_the_day(results: &[query::StoredResult], now: i64, lang: Language, tz: &jiff::tz::TimeZone) -> Vec<Value> {
    let day_start = now - 86_400_000;
    (0..96)
        .map(|i| {
            let (a, b) = (day_start + i * 900_000, day_start + (i + 1) * 900_000);
            let worst = results
                .iter()
                .filter(|r| r.at_ms >= a && r.at_ms < b)
                .max_by_key(|r| State::from_name(&r.health).unwrap_or(State::Unknown).severity());
            match worst {
                Some(r) => {
                    let s = State::from_name(&r.health).unwrap_or(State::Unknown);
                    let msg = if r.message.is_empty() { String::new() } else { format!(" – {}", r.message) };
                    json!({ "cls": s.as_str(), "title": format!("{}: {}{msg}", local(r.at_ms, tz), state_word(s, lang).0) })
                }
                None => json!({ "cls": "", "title": format!("{}: –", local(a, tz)) }),
            }
        })
        .collect()
}

/// The last result of a target, in detail.
fn last_result(l: &crate::status::LastResult, lang: Language, tz: &jiff::tz::TimeZone) -> Value {
    let o = &l.outcome;
    let hs = match o.health {
        crate::model::Health::Up => State::Up,
        crate::model::Health::Degraded => State::Degraded,
        crate::model::Health::Down => State::Down,
        crate::model::Health::Unknown => State::Unknown,
    };
    let ms = |d: Duration| format_duration(d);
    json!({
        "at": local(l.at_ms, tz), "health": hs.as_str(), "health_word": state_word(hs, lang).0,
        "reason": o.reason.map(|r| r.code()), "message": o.message, "failed": o.failed_conditions,
        "duration": ms(o.duration), "status": o.observations.status,
        "icmp": o.observations.icmp.as_ref().map(|i| json!({ "loss": format!("{}%", i.loss_percent), "avg": ms(i.rtt_avg), "min": ms(i.rtt_min), "max": ms(i.rtt_max), "jitter": ms(i.jitter) })),
        "certs": o.observations.certificates.iter().map(|c| json!({ "subject": c.subject, "issuer": c.issuer, "not_after": local(c.not_after * 1000, tz), "sans": c.sans.join(", ") })).collect::<Vec<_>>(),
    })
}

/// A polyline of average response time over 48 slots of the range (numbers only).
pub(super) fn latency_chart(results: &[query::StoredResult], from: i64, to: i64) -> Value {
    const SLOTS: usize = 48;
    let width = ((to - from) / SLOTS as i64).max(1);
    let mut sums = [(0.0f64, 0u32); SLOTS];
    for r in results.iter().filter(|r| r.health != "unknown") {
        let i = (((r.at_ms - from) / width).max(0) as usize).min(SLOTS - 1);
        sums[i].0 += r.duration_ms;
        sums[i].1 += 1;
    }
    let avgs: Vec<(usize, f64)> =
        sums.iter().enumerate().filter(|(_, (_, n))| *n > 0).map(|(i, (s, n))| (i, s / f64::from(*n))).collect();
    let max = avgs.iter().map(|(_, a)| *a).fold(0.0, f64::max);
    if avgs.is_empty() || max <= 0.0 {
        return json!({ "points": "", "max": null });
    }
    let points: Vec<String> = avgs
        .iter()
        .map(|(i, a)| format!("{:.0},{:.0}", *i as f64 * 600.0 / (SLOTS - 1) as f64, 115.0 - a / max * 105.0))
        .collect();
    json!({ "points": points.join(" "), "max": format_duration(Duration::from_secs_f64(max / 1000.0)) })
}

/// A target's address as a page may show it: a URL without its userinfo, query and
/// fragment (which may hold a password or an API key); anything else as configured.
pub(super) fn shown_address(address: &str) -> String {
    match url::Url::parse(address) {
        Ok(mut url) if matches!(url.scheme(), "http" | "https") => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        _ => address.to_string(),
    }
}
