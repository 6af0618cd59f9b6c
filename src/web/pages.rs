//! Server-rendered status pages (minijinja, HTML auto-escaped; no JavaScript): the home
//! page with every system, open incidents and maintenance; a page per system and per
//! check; admin actions (acknowledge, maintenance, SLA exclusion) behind a login kept in an
//! HttpOnly, SameSite=Strict cookie with CSRF-checked forms; SVG badges.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use hyper::{Method, Request, StatusCode};
use minijinja::Environment;
use serde_json::{Value, json};

use super::i18n::{state_word, strings};
use super::{Reply, WebState, heavy, reply, text};
use crate::config::{Config, Language};
use crate::history::{day_bounds, worst_per_period};
use crate::model::State;
use crate::model::format_duration;
use crate::model::now_ms;
use crate::pipeline::Control;
use crate::report::Ledger;
use crate::status::{Board, system_state};
use crate::store::{StoreError, query};

const CSS: &str = include_str!("static/vigil.css");
const SESSION_COOKIE: &str = "vigil_session";
/// Up to this many targets the home page lists every check with its 90-day bar; beyond,
/// it lists per system only the checks that are not up (the rest are on the system page).
const HOME_CHECK_BARS_UP_TO: usize = 300;
/// Checks listed per system on a compact home page, at most.
const HOME_LISTED_AT_MOST: usize = 50;
/// Auto-refresh of the pages, without JavaScript.
const REFRESH_SECONDS: u32 = 30;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("home.html", include_str!("templates/home.html")),
            ("system.html", include_str!("templates/system.html")),
            ("check.html", include_str!("templates/check.html")),
            ("login.html", include_str!("templates/login.html")),
        ] {
            env.add_template(name, source).expect("built-in templates are valid");
        }
        env
    })
}

/// Who is asking and in which language.
struct Visitor {
    lang: Language,
    /// The query suffix keeping an explicit language choice (`?lang=en`), or empty.
    q: String,
    logged_in: bool,
    csrf: String,
}

fn cookie(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers().get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn visitor(state: &WebState, req: &Request<Incoming>, config: &Config) -> Visitor {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let explicit = query.get("lang").map(String::as_str);
    let lang = match explicit {
        Some("en") => Language::En,
        Some("vi") => Language::Vi,
        _ => match req.headers().get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) {
            Some(al) if al.trim_start().to_ascii_lowercase().starts_with("en") => Language::En,
            Some(al) if al.trim_start().to_ascii_lowercase().starts_with("vi") => Language::Vi,
            _ => config.instance.language,
        },
    };
    let q = match explicit {
        Some(l @ ("en" | "vi")) => format!("?lang={l}"),
        _ => String::new(),
    };
    let token = state.admin_token.read().unwrap_or_else(|p| p.into_inner()).clone();
    let csrf = match (token, cookie(req, SESSION_COOKIE)) {
        (Some(t), Some(id)) => state.sessions.check(&id, &t, now_ms()),
        _ => None,
    };
    Visitor { lang, q, logged_in: csrf.is_some(), csrf: csrf.unwrap_or_default() }
}

fn local(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(tz.clone()).strftime("%d/%m/%Y %H:%M").to_string())
        .unwrap_or_default()
}

fn base_context(v: &Visitor, config: &Config, path: &str) -> Value {
    let (other, other_url) = match v.lang {
        Language::Vi => ("en", format!("{path}?lang=en")),
        Language::En => ("vi", format!("{path}?lang=vi")),
    };
    json!({
        "lang": if v.lang == Language::Vi { "vi" } else { "en" },
        "t": strings(v.lang),
        "q": v.q,
        "instance": config.instance.name,
        "timezone": config.instance.timezone_name,
        "now": local(now_ms(), &config.instance.timezone),
        "version": env!("CARGO_PKG_VERSION"),
        "logged_in": v.logged_in,
        "csrf": v.csrf,
        "other_lang": other,
        "other_lang_url": other_url,
    })
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

fn render(name: &str, ctx: Value) -> Reply {
    match templates().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => reply(StatusCode::OK, "text/html; charset=utf-8", html),
        Err(e) => {
            tracing::error!(template = name, error = %e, "cannot render page");
            text(StatusCode::INTERNAL_SERVER_ERROR, "cannot render this page")
        }
    }
}

/// Handles the pages, badges, static files and form actions; None for other paths.
pub async fn route(
    state: &WebState,
    req: Request<Incoming>,
    peer: std::net::IpAddr,
) -> Result<Reply, Request<Incoming>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let board = state.board.read().unwrap_or_else(|p| p.into_inner()).clone();
    let config = board.config.clone();
    Ok(match (method, path.as_str()) {
        (Method::GET, "/static/vigil.css") => {
            let mut r = reply(StatusCode::OK, "text/css; charset=utf-8", CSS);
            r.headers_mut()
                .insert(CACHE_CONTROL, hyper::header::HeaderValue::from_static("public, max-age=31536000, immutable"));
            r
        }
        (Method::GET, "/") => heavy(state, || home(state, &req, &board)).await,
        (Method::GET, p) if p.starts_with("/systems/") => {
            match config.systems.iter().find(|s| s.id == p["/systems/".len()..]) {
                Some(system) => heavy(state, || system_page(state, &req, &board, system)).await,
                None => text(StatusCode::NOT_FOUND, "no such system"),
            }
        }
        (Method::GET, p) if p.starts_with("/checks/") => {
            heavy(state, || check_page(state, &req, &board, &p["/checks/".len()..])).await
        }
        (Method::GET, p) if p.starts_with("/badge/") && p.ends_with(".svg") => {
            heavy(state, || badge(state, &board, &p["/badge/".len()..p.len() - 4])).await
        }
        (Method::GET, "/ui/login") => {
            let v = visitor(state, &req, &config);
            let ctx =
                merge(base_context(&v, &config, "/ui/login"), json!({ "next": format!("/{}", v.q), "error": null }));
            render("login.html", ctx)
        }
        (Method::GET, "/ui/audit") => {
            let v = visitor(state, &req, &config);
            if !v.logged_in {
                return Ok(redirect("/ui/login", None));
            }
            audit_page(state, &config)
        }
        (Method::POST, p) if p.starts_with("/ui/") => action(state, req, &config, peer).await,
        _ => return Err(req),
    })
}

/// The last days of every target: the ledger every figure comes from, the day bounds
/// and why targets failed (time, message) — what the bars are drawn from.
struct Recent {
    ledger: Ledger,
    bounds: Vec<i64>,
    causes: HashMap<String, Vec<(i64, String)>>,
}

impl Recent {
    /// The uptime of `ids` combined (a system's critical targets, a check's targets) over
    /// the whole span, formatted for the language.
    fn uptime(&self, ids: &[String], lang: Language) -> Option<String> {
        let (Some(&from), Some(&to)) = (self.bounds.first(), self.bounds.last()) else { return None };
        format_uptime(self.ledger.account(ids, from, to).uptime(), lang)
    }
}

/// Reads the last `days` days of every target (a few set queries).
fn recent(state: &WebState, board: &Board, days: u32) -> Result<Recent, StoreError> {
    let now = now_ms();
    let bounds = day_bounds(now, days, &board.config.instance.timezone);
    let (Some(&from), Some(&to)) = (bounds.first(), bounds.last()) else {
        return Ok(Recent { ledger: Ledger::default(), bounds, causes: HashMap::new() });
    };
    let ledger = Ledger::load(&board.config, &state.reader, from, to, now)?;
    let causes = state.reader.failure_causes_all(from)?;
    Ok(Recent { ledger, bounds, causes })
}

/// A system's critical target ids.
fn critical_ids(system: &crate::config::System) -> Vec<String> {
    system.checks.iter().filter(|c| c.critical).flat_map(|c| c.targets.iter().map(|t| t.key.id())).collect()
}

/// One bar for targets `ids` combined: each cell is the worst state of the day, its
/// tooltip the date, the state, the downtime (the accounting's) and the day's last cause.
fn bar(recent: &Recent, ids: &[String], lang: Language, tz: &jiff::tz::TimeZone) -> Vec<Value> {
    if ids.is_empty() {
        return Vec::new();
    }
    let histories: Vec<&crate::report::History> = ids.iter().filter_map(|id| recent.ledger.history(id)).collect();
    let worst = worst_per_period(&histories, &recent.bounds, recent.ledger.at());
    let per_day = recent.ledger.account_split(ids, &recent.bounds);
    let causes: Vec<&(i64, String)> = ids.iter().filter_map(|id| recent.causes.get(id)).flatten().collect();
    recent
        .bounds
        .windows(2)
        .enumerate()
        .map(|(i, day)| {
            let down = per_day[i].down_ms;
            let cause = causes
                .iter()
                .filter(|(at, _)| (day[0]..day[1]).contains(at))
                .max_by_key(|(at, _)| *at)
                .map(|(_, m)| format!(" – {m}"))
                .unwrap_or_default();
            let date = jiff::Timestamp::from_millisecond(day[0])
                .map(|t| t.to_zoned(tz.clone()).strftime("%d/%m/%Y").to_string())
                .unwrap_or_default();
            match worst[i] {
                Some(s) => {
                    let word = state_word(s, lang).0;
                    let extra = if down > 0 {
                        format!(" {}", format_duration(Duration::from_millis(down as u64)))
                    } else {
                        String::new()
                    };
                    json!({ "cls": s.as_str(), "title": format!("{date}: {word}{extra}{cause}") })
                }
                None => json!({ "cls": "", "title": format!("{date}: –") }),
            }
        })
        .collect()
}

/// An uptime as the pages show it: three decimals, a decimal comma in Vietnamese (the
/// reports' format).
fn format_uptime(uptime: Option<f64>, lang: Language) -> Option<String> {
    let shown = format!("{:.3}%", uptime? * 100.0);
    Some(if lang == Language::Vi { shown.replace('.', ",") } else { shown })
}

fn check_summary(board: &Board, check: &crate::config::Check, lang: Language) -> (State, String) {
    let states: Vec<State> = check
        .targets
        .iter()
        .map(|t| board.targets.get(&t.key.id()).map_or(State::Unknown, |v| v.state.state))
        .collect();
    let worst = states.iter().copied().max_by_key(|s| s.severity()).unwrap_or(State::Unknown);
    let up = states.iter().filter(|s| **s == State::Up).count();
    let summary = match lang {
        Language::Vi => format!("{up}/{} hoạt động", states.len()),
        Language::En => format!("{up}/{} up", states.len()),
    };
    (worst, summary)
}

fn since_of(board: &Board, ids: &[String], tz: &jiff::tz::TimeZone) -> String {
    ids.iter()
        .filter_map(|id| board.targets.get(id))
        .map(|v| v.state.since_ms)
        .max()
        .map(|ms| local(ms, tz))
        .unwrap_or_default()
}

fn home(state: &WebState, req: &Request<Incoming>, board: &Board) -> Reply {
    let config = &board.config;
    let v = visitor(state, req, config);
    let tz = &config.instance.timezone;
    // A bar per check only while it stays readable; beyond that the checks' bars are on
    // their system's page (a 10,000-check home page would carry 900,000 day cells).
    let compact = config.targets().count() > HOME_CHECK_BARS_UP_TO;
    let recent = match recent(state, board, 90) {
        Ok(recent) => recent,
        Err(e) => return super::store_unreadable(&e),
    };
    let systems: Vec<Value> = config
        .systems
        .iter()
        .map(|s| {
            let st = system_state(s, &board.targets);
            let (word, icon) = state_word(st, v.lang);
            let ids = critical_ids(s);
            // Compact: only the checks that are not up are listed (at most HOME_LISTED_AT_MOST).
            let mut listed = 0;
            let mut hidden = 0;
            let checks: Vec<Value> = s
                .checks
                .iter()
                .filter_map(|c| {
                    let (cs, summary) = check_summary(board, c, v.lang);
                    if compact && (cs == State::Up || listed >= HOME_LISTED_AT_MOST) {
                        hidden += 1;
                        return None;
                    }
                    listed += 1;
                    let (cw, ci) = state_word(cs, v.lang);
                    let cids: Vec<String> = c.targets.iter().map(|t| t.key.id()).collect();
                    Some(json!({ "id": format!("{}/{}", s.id, c.id), "name": c.name, "state": cs.as_str(), "word": cw, "icon": ci,
                            "targets": c.targets.len(), "summary": summary,
                            "bar": if compact { Vec::new() } else { bar(&recent, &cids, v.lang, tz) } }))
                })
                .collect();
            json!({
                "id": s.id,
                "name": if v.lang == Language::Vi { &s.name_vi } else { &s.name_en },
                "state": st.as_str(), "word": word, "icon": icon,
                "since": crate::status::system_since(s, &board.targets).map(|ms| local(ms, tz)).unwrap_or_default(),
                "uptime": recent.uptime(&ids, v.lang),
                "bar": bar(&recent, &ids, v.lang, tz),
                "checks": checks,
                "hidden_checks": hidden,
            })
        })
        .collect();
    let incidents: Vec<Value> = board
        .open_incidents
        .iter()
        .map(|i| {
            let st = if i.severity == crate::model::incident::Severity::Critical { State::Down } else { State::Degraded };
            let (word, icon) = state_word(st, v.lang);
            json!({ "id": i.id, "system_name": i.system_name, "check_name": i.check_name, "check": i.check, "target_name": i.target_name,
                    "severity": i.severity.as_str(), "state": st.as_str(), "state_word": word, "icon": icon,
                    "since": local(i.started_ms, tz), "cause": i.cause, "affected": i.affected,
                    "ack": i.ack, "ack_at": i.ack.as_ref().map(|a| local(a.at_ms, tz)) })
        })
        .collect();
    let now = now_ms();
    let api = match state.reader.maintenance() {
        Ok(api) => api,
        Err(e) => return super::store_unreadable(&e),
    };
    let maintenance: Vec<Value> = config
        .maintenance
        .iter()
        .cloned()
        .chain(api.iter().filter(|a| a.to_ms > now).map(|a| a.window()))
        .map(|w| {
            let scope: Vec<String> = w.systems.iter().chain(&w.checks).chain(&w.targets).cloned().collect();
            let when = match &w.schedule {
                crate::config::maintenance::Schedule::Once { from_ms, to_ms } => {
                    format!("{} → {}", local(*from_ms, tz), local(*to_ms, tz))
                }
                crate::config::maintenance::Schedule::Recurring { pattern, duration, .. } => {
                    format!("cron {pattern}, {}", format_duration(*duration))
                }
            };
            json!({ "name": w.name, "scope": scope.join(", "), "when": when, "active": w.active(now, tz) })
        })
        .collect();
    let uplink = if config.instance.uplink.is_empty() {
        "–".to_string()
    } else {
        config
            .instance
            .uplink
            .iter()
            .map(|u| {
                format!("{u}: {}", state_word(board.targets.get(u).map_or(State::Unknown, |v| v.state.state), v.lang).0)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let pending = state.reader.deliveries().map(|d| d.iter().filter(|(_, s, _)| s == "pending").count());
    let store = match (state.store_health.snapshot().failing, &pending) {
        (Some((since, error)), _) => {
            format!(
                "{} {} ({error})",
                store_failing_word(v.lang),
                crate::alert::message::local(since, &config.instance.timezone)
            )
        }
        (None, Ok(_)) => "OK".to_string(),
        (None, Err(_)) => "!".to_string(),
    };
    let health = json!({
        "uplink": uplink,
        "store": store,
        "outbox": pending.unwrap_or(0),
    });
    let ctx = merge(
        base_context(&v, config, "/"),
        json!({ "refresh": REFRESH_SECONDS, "systems": systems, "incidents": incidents, "maintenance": maintenance, "health": health }),
    );
    render("home.html", ctx)
}

fn system_page(state: &WebState, req: &Request<Incoming>, board: &Board, system: &crate::config::System) -> Reply {
    let config = &board.config;
    let v = visitor(state, req, config);
    let tz = &config.instance.timezone;
    let recent = match recent(state, board, 90) {
        Ok(recent) => recent,
        Err(e) => return super::store_unreadable(&e),
    };
    let st = system_state(system, &board.targets);
    let (word, icon) = state_word(st, v.lang);
    let ids = critical_ids(system);
    let checks: Vec<Value> = system
        .checks
        .iter()
        .map(|c| {
            let (cs, summary) = check_summary(board, c, v.lang);
            let (cw, ci) = state_word(cs, v.lang);
            let ids: Vec<String> = c.targets.iter().map(|t| t.key.id()).collect();
            json!({ "id": format!("{}/{}", system.id, c.id), "name": c.name, "state": cs.as_str(), "word": cw, "icon": ci,
                    "targets": c.targets.len(), "summary": summary, "since": since_of(board, &ids, tz), "kind": c.probe.kind() })
        })
        .collect();
    let ctx = merge(
        base_context(&v, config, &format!("/systems/{}", system.id)),
        json!({ "refresh": REFRESH_SECONDS, "system": {
            "id": system.id, "name": if v.lang == Language::Vi { &system.name_vi } else { &system.name_en },
            "state": st.as_str(), "word": word, "icon": icon, "sla": system.sla.map(|s| format!("{}%", s * 100.0)),
            "uptime": recent.uptime(&ids, v.lang), "bar": bar(&recent, &ids, v.lang, tz), "checks": checks,
        }}),
    );
    render("system.html", ctx)
}

fn check_page(state: &WebState, req: &Request<Incoming>, board: &Board, id: &str) -> Reply {
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
    let mut stored: HashMap<String, Vec<query::StoredResult>> = HashMap::new();
    for t in &check.targets {
        match state.reader.results(&t.key.id(), now - range.1) {
            Ok(results) => stored.insert(t.key.id(), results),
            Err(e) => return super::store_unreadable(&e),
        };
    }
    let targets: Vec<Value> = check
        .targets
        .iter()
        .map(|t| {
            let tid = t.key.id();
            let view = board.targets.get(&tid);
            let st = view.map_or(State::Unknown, |x| x.state.state);
            let (word, icon) = state_word(st, v.lang);
            let results = stored.remove(&tid).unwrap_or_default();
            let day_start = now - 86_400_000;
            let runs: Vec<Value> = (0..96)
                .map(|i| {
                    let (a, b) = (day_start + i * 900_000, day_start + (i + 1) * 900_000);
                    let in_cell: Vec<&query::StoredResult> = results.iter().filter(|r| r.at_ms >= a && r.at_ms < b).collect();
                    let worst = in_cell.iter().max_by_key(|r| match r.health.as_str() { "down" => 3, "degraded" => 2, "unknown" => 1, _ => 0 });
                    match worst {
                        Some(r) => {
                            let s = State::from_name(&r.health).unwrap_or(State::Unknown);
                            let msg = if r.message.is_empty() { String::new() } else { format!(" – {}", r.message) };
                            json!({ "cls": s.as_str(), "title": format!("{}: {}{msg}", local(r.at_ms, tz), state_word(s, v.lang).0) })
                        }
                        None => json!({ "cls": "", "title": format!("{}: –", local(a, tz)) }),
                    }
                })
                .collect();
            let chart = latency_chart(&results, now - range.1, now);
            let last = view.and_then(|x| x.last.as_ref()).map(|l| {
                let o = &l.outcome;
                let hs = match o.health {
                    crate::model::Health::Up => State::Up,
                    crate::model::Health::Degraded => State::Degraded,
                    crate::model::Health::Down => State::Down,
                    crate::model::Health::Unknown => State::Unknown,
                };
                let ms = |d: Duration| format_duration(d);
                json!({
                    "at": local(l.at_ms, tz), "health": hs.as_str(), "health_word": state_word(hs, v.lang).0,
                    "reason": o.reason.map(|r| r.code()), "message": o.message, "failed": o.failed_conditions,
                    "duration": ms(o.duration), "status": o.observations.status,
                    "icmp": o.observations.icmp.as_ref().map(|i| json!({ "loss": format!("{}%", i.loss_percent), "avg": ms(i.rtt_avg), "min": ms(i.rtt_min), "max": ms(i.rtt_max), "jitter": ms(i.jitter) })),
                    "certs": o.observations.certificates.iter().map(|c| json!({ "subject": c.subject, "issuer": c.issuer, "not_after": local(c.not_after * 1000, tz), "sans": c.sans.join(", ") })).collect::<Vec<_>>(),
                })
            });
            let incidents: Vec<Value> = state.reader.incidents_of(&tid, 20)
                .unwrap_or_default()
                .iter()
                .map(|i| json!({
                    "id": i.id, "since": local(i.started_ms, tz), "open": i.is_open(), "cause": i.cause, "ack": i.ack,
                    "duration": i.resolved_ms.map(|r| format_duration(Duration::from_millis((r - i.started_ms).max(0) as u64))).unwrap_or_else(|| "…".into()),
                }))
                .collect();
            json!({ "name": t.key.target, "state": st.as_str(), "word": word, "icon": icon,
                    "since": view.map(|x| local(x.state.since_ms, tz)).unwrap_or_default(),
                    "stale": view.is_some_and(|x| x.stale),
                    "address": shown_address(&t.address), "runs": runs, "chart": chart, "last": last, "incidents": incidents })
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

/// A polyline of average response time over 48 slots of the range (numbers only).
fn latency_chart(results: &[query::StoredResult], from: i64, to: i64) -> Value {
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

/// `/badge/{system}.svg` and `/badge/{system}/uptime/{30d}.svg`.
fn badge(state: &WebState, board: &Board, spec: &str) -> Reply {
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
                Err(e) => return super::store_unreadable(&e),
            };
            let uptime = ledger.account(&critical_ids(system), from, now).uptime();
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

/// Reads a small urlencoded form.
async fn form(req: Request<Incoming>) -> Option<HashMap<String, String>> {
    let limited = http_body_util::Limited::new(req.into_body(), 16 * 1024);
    let bytes: Bytes = http_body_util::BodyExt::collect(limited).await.ok()?.to_bytes();
    Some(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// A path on this server only: `//host` and `/\host` (which browsers read as `//host`)
/// would send the visitor elsewhere.
pub(super) fn is_local_path(to: &str) -> bool {
    to.starts_with('/') && !to.starts_with("//") && !to.contains('\\') && !to.contains(char::is_control)
}

fn redirect(to: &str, cookie: Option<String>) -> Reply {
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
async fn action(state: &WebState, req: Request<Incoming>, config: &Config, peer: std::net::IpAddr) -> Reply {
    // Cross-site posts are refused: the browser's Origin must be this server.
    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    if let Some(origin) = req.headers().get(ORIGIN).and_then(|o| o.to_str().ok())
        && origin.split("://").nth(1) != Some(host.as_str())
    {
        return text(StatusCode::FORBIDDEN, "cross-site form posts are refused");
    }
    let v = visitor(state, &req, config);
    let session_id = cookie(&req, SESSION_COOKIE);
    let path = req.uri().path().to_string();
    let secure = config.server.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    let Some(fields) = form(req).await else { return text(StatusCode::BAD_REQUEST, "bad form") };
    let field = |k: &str| fields.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let next = fields.get("next").cloned().unwrap_or_else(|| "/".into());
    let token = state.admin_token.read().unwrap_or_else(|p| p.into_inner()).clone();
    if path == "/ui/login" {
        let Some(token) = token else {
            return text(StatusCode::FORBIDDEN, "writes are disabled: set server.admin_token");
        };
        if let Some(wait) = state.sessions.wait_before_login(peer, now_ms()) {
            tracing::warn!(client = %peer, "login refused: too many failed attempts from this address");
            super::audit(state, peer, "?", "login refused", "too many failed attempts");
            let message = format!("too many failed logins: try again in {} s", wait.as_secs().max(1));
            return text(StatusCode::TOO_MANY_REQUESTS, message);
        }
        if !bool::from(subtle::ConstantTimeEq::ct_eq(field("token").as_bytes(), token.expose().as_bytes())) {
            state.sessions.login_failed(peer, now_ms());
            tracing::warn!(client = %peer, "failed login to the status pages");
            super::audit(state, peer, "?", "login failed", "wrong admin token");
            let ctx = merge(
                base_context(&v, config, "/ui/login"),
                json!({ "next": next, "error": strings(v.lang)["wrong_token"] }),
            );
            let mut r = render("login.html", ctx);
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            return r;
        }
        state.sessions.login_succeeded(peer);
        super::audit(state, peer, "admin (session)", "login", "");
        let (session, _) = state.sessions.open(&token, now_ms());
        let cookie = format!(
            "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            super::sessions::LIFETIME.as_secs(),
            if secure { "; Secure" } else { "" }
        );
        return redirect(&next, Some(cookie));
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
        super::audit(state, peer, "admin (session)", "logout", "");
        return redirect("/", Some(format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")));
    }
    if let Some(rest) = path.strip_prefix("/ui/incidents/") {
        let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
        let Ok(id) = id.parse::<i64>() else { return text(StatusCode::NOT_FOUND, "no such incident") };
        // As the API keeps them: a name of 100 characters, a comment of 1,000, no control
        // characters (a newline would forge a line in text logs).
        let clean = |s: String, max: usize| s.chars().filter(|c| !c.is_control()).take(max).collect::<String>();
        let by = clean(field("by"), 100);
        if by.is_empty() {
            return text(StatusCode::BAD_REQUEST, "say who you are");
        }
        return match what {
            "ack" => {
                let (respond, answer) = tokio::sync::oneshot::channel();
                let comment = clean(field("comment"), 1000);
                super::audit(state, peer, "admin (session)", "acknowledge", &format!("incident {id}, by {by}"));
                if state.pipeline.send(Control::Ack { id, by, comment, respond }).await.is_err() {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
                }
                match answer.await {
                    Ok(Ok(_)) => redirect(&next, None),
                    Ok(Err(why)) => text(StatusCode::NOT_FOUND, why.to_string()),
                    Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
                }
            }
            "exclude" => {
                let reason = field("reason");
                super::audit(state, peer, "admin (session)", "exclude", &format!("incident {id}, by {by}: {reason}"));
                match super::exclude(state, id, &reason, &by) {
                    None => redirect(&next, None),
                    Some(refusal) => refusal,
                }
            }
            _ => text(StatusCode::NOT_FOUND, "no such action"),
        };
    }
    if path == "/ui/maintenance" {
        let body = json!({
            "name": "maintenance", "systems": fields.get("systems").map(|s| vec![s.clone()]).unwrap_or_default(),
            "checks": fields.get("checks").map(|s| vec![s.clone()]).unwrap_or_default(),
            "duration": field("duration"), "reason": field("reason"), "by": field("by"),
        });
        let r = super::open_maintenance(state, &body).await;
        let detail = format!("{body} (answered {})", r.status().as_u16());
        super::audit(state, peer, "admin (session)", "maintenance", &detail);
        return if r.status() == StatusCode::CREATED { redirect(&next, None) } else { r };
    }
    text(StatusCode::NOT_FOUND, "no such action")
}

/// A target's address as a page may show it: a URL without its userinfo, query and
/// fragment (which may hold a password or an API key); anything else as configured.
fn shown_address(address: &str) -> String {
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

/// "writes failing since", in the page's language.
fn store_failing_word(lang: Language) -> &'static str {
    match lang {
        Language::Vi => "ghi thất bại từ",
        Language::En => "writes failing since",
    }
}

/// The audit trail for a logged-in administrator: the last 500 actions, newest first.
fn audit_page(state: &WebState, config: &Config) -> Reply {
    let entries = match state.reader.audit(500) {
        Ok(entries) => entries,
        Err(e) => return super::store_unreadable(&e),
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
