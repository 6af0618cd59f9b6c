//! SVG badges: a system's state, and its uptime over a window (at most 400 days), from
//! the same accounting as the pages and reports.

use super::*;

/// `/badge/{system}.svg` and `/badge/{system}/uptime/{30d}.svg`.
pub(super) fn badge(state: &WebState, board: &Board, spec: &str) -> Reply {
    let config = &board.config;
    let mut parts = spec.split('/');
    let Some(system) = parts.next().and_then(|id| config.systems.iter().find(|s| s.id == id)) else {
        return text(StatusCode::NOT_FOUND, "no such system");
    };
    let lang = config.instance.language;
    let (label, value, color) = match (parts.next(), parts.next()) {
        (None, _) => {
            let st = system_state(system, &board.targets);
            let color = match st {
                State::Up => "#1a7f37",
                State::Degraded => "#9a6700",
                State::Down | State::Unreachable => "#b42318",
                State::Maintenance => "#0b57d0",
                State::Unknown => "#6e7781",
            };
            (system.id.clone(), state_word(st, lang).0.to_string(), color)
        }
        (Some("uptime"), Some(window)) => {
            // At most 400 days (a `500000y` window overflowed the arithmetic below).
            let Ok(span) = crate::config::parse_duration(window) else {
                return text(StatusCode::BAD_REQUEST, "bad window: a duration of at most 400d, e.g. 30d");
            };
            let now = now_ms();
            let from = now - span.as_millis() as i64;
            let ledger = match Ledger::load(config, &state.reader, from, now, now) {
                Ok(l) => l,
                Err(e) => return super::super::store_unreadable(&e),
            };
            let uptime = ledger
                .account(&critical_targets(system).iter().map(|t| t.id().to_string()).collect::<Vec<_>>(), from, now)
                .uptime();
            let shown = format_uptime(uptime, lang).unwrap_or_else(|| "–".into());
            let color = match (system.sla, uptime) {
                (Some(sla), Some(u)) if u >= sla => "#1a7f37",
                (Some(_), Some(_)) => "#b42318",
                _ => "#0b57d0",
            };
            (format!("{} {window}", system.id), shown, color)
        }
        _ => return text(StatusCode::NOT_FOUND, "no such badge"),
    };
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let (lw, vw) = (label.chars().count() * 7 + 10, value.chars().count() * 7 + 10);
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"20\" role=\"img\" aria-label=\"{l}: {v}\"><title>{l}: {v}</title><rect width=\"{lw}\" height=\"20\" fill=\"#555\"/><rect x=\"{lw}\" width=\"{vw}\" height=\"20\" fill=\"{color}\"/><g fill=\"#fff\" font-family=\"sans-serif\" font-size=\"11\"><text x=\"5\" y=\"14\">{l}</text><text x=\"{vx}\" y=\"14\">{v}</text></g></svg>",
        w = lw + vw,
        l = esc(&label),
        v = esc(&value),
        vx = lw + 5,
    );
    let mut r = reply(StatusCode::OK, "image/svg+xml", svg);
    r.headers_mut().insert(CACHE_CONTROL, hyper::header::HeaderValue::from_static("max-age=60"));
    r
}
