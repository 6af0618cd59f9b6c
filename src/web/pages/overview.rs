//! The home page and the system pages: every system's state, 90-day bar and uptime (from
//! the [`Ledger`], like every figure), open incidents, maintenance and Vigil's own health.

use super::*;
use crate::config::Target;

/// Up to this many targets the home page lists every check with its 90-day bar; beyond,
/// it lists per system only the checks that are not up (the rest are on the system page).
pub(super) const HOME_CHECK_BARS_UP_TO: usize = 300;

/// Targets of one check whose views from vantage points the system page spells out (the
/// rest are on the check page).
const SEEN_FROM_LINES: usize = 10;

/// Checks listed per system on a compact home page, at most.
pub(super) const HOME_LISTED_AT_MOST: usize = 50;

/// Open incidents the home page spells out, at most (the newest unacknowledged critical
/// ones first): with a core link cut, 40,000 cards made a 570 KB page. Every system's card
/// counts its open incidents; the API lists them all.
pub(super) const HOME_INCIDENTS_AT_MOST: usize = 50;

/// Names an incident card lists under "also affected", at most (then a count).
const AFFECTED_LISTED_AT_MOST: usize = 20;

/// The last days of every target: the ledger every figure comes from, the day bounds
/// and why targets failed (time, message) — what the bars are drawn from.
pub(super) struct Recent {
    ledger: Ledger,
    bounds: Vec<i64>,
    causes: HashMap<String, Vec<(i64, String)>>,
}

/// Reads the last `days` days of every target (a few set queries).
pub(super) fn recent(state: &WebState, board: &Board, days: u32) -> Result<Recent, StoreError> {
    let now = now_ms();
    let bounds = day_bounds(now, days, &board.config.instance.timezone);
    let (Some(&from), Some(&to)) = (bounds.first(), bounds.last()) else {
        return Ok(Recent { ledger: Ledger::default(), bounds, causes: HashMap::new() });
    };
    let ledger = Ledger::load_figures(&board.config, &state.reader, from, to, now)?;
    let causes = state.reader.failure_causes_all(from)?;
    Ok(Recent { ledger, bounds, causes })
}

/// Brings the store's kept histories up to what the home page accounts (see
/// `store::histories`), so that no page pays for reading what was written since the last.
pub(super) fn keep_recent(state: &WebState, tz: &jiff::tz::TimeZone) -> Result<(), StoreError> {
    let bounds = day_bounds(now_ms(), 90, tz);
    match bounds.first() {
        Some(&from) => state.reader.keep_state_histories(from),
        None => Ok(()),
    }
}

/// A system's critical targets.
pub(super) fn critical_targets(system: &crate::config::System) -> Vec<&Target> {
    system.checks.iter().filter(|c| c.critical).flat_map(|c| c.targets.iter()).collect()
}

/// One bar for `targets` combined (a system's critical targets, a check's targets) and
/// their uptime over its whole span, formatted for the language: each cell is the worst
/// state of the day, its tooltip the date, the state, the downtime (the accounting's) and
/// the day's last cause; the uptime is the days' accountings summed. Each target's
/// history is looked up once.
pub(super) fn bar(
    recent: &Recent,
    targets: &[&Target],
    lang: Language,
    tz: &jiff::tz::TimeZone,
) -> (Vec<Value>, Option<String>) {
    if targets.is_empty() {
        return (Vec::new(), None);
    }
    let known: Vec<Option<&crate::report::History>> = targets.iter().map(|t| recent.ledger.history(t.id())).collect();
    let histories: Vec<&crate::report::History> = known.iter().flatten().copied().collect();
    let worst = worst_per_period(&histories, &recent.bounds, recent.ledger.at());
    let per_day = recent.ledger.account_split_of(&known, &recent.bounds);
    let causes: Vec<&(i64, String)> = if recent.causes.is_empty() {
        Vec::new()
    } else {
        targets.iter().filter_map(|t| recent.causes.get(t.id())).flatten().collect()
    };
    let whole: crate::report::Accounting = per_day.iter().copied().sum();
    let cells = recent
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
        .collect();
    (cells, format_uptime(whole.uptime(), lang))
}

/// An uptime as the pages show it: three decimals, a decimal comma in Vietnamese (the
/// reports' format).
pub(super) fn format_uptime(uptime: Option<f64>, lang: Language) -> Option<String> {
    let shown = format!("{:.3}%", uptime? * 100.0);
    Some(if lang == Language::Vi { shown.replace('.', ",") } else { shown })
}

/// A check's worst target state and how many of its targets are up.
fn check_state(board: &Board, check: &crate::config::Check) -> (State, usize) {
    let (mut worst, mut up) = (None::<State>, 0);
    for t in &check.targets {
        let s = board.targets.get(t.id()).map_or(State::Unknown, |v| v.state.state);
        up += usize::from(s == State::Up);
        if worst.is_none_or(|w| s.severity() > w.severity()) {
            worst = Some(s);
        }
    }
    (worst.unwrap_or(State::Unknown), up)
}

/// "3/4 up", in the page's language.
fn up_summary(up: usize, of: usize, lang: Language) -> String {
    match lang {
        Language::Vi => format!("{up}/{of} hoạt động"),
        Language::En => format!("{up}/{of} up"),
    }
}

pub(super) fn since_of(board: &Board, ids: &[String], tz: &jiff::tz::TimeZone) -> String {
    ids.iter()
        .filter_map(|id| board.targets.get(id))
        .map(|v| v.state.since_ms)
        .max()
        .map(|ms| local(ms, tz))
        .unwrap_or_default()
}

pub(super) fn home(state: &WebState, req: &Head, board: &Board) -> Reply {
    let config = &board.config;
    let v = visitor(state, req, config);
    let recent = match recent(state, board, 90) {
        Ok(recent) => recent,
        Err(e) => return super::super::store_unreadable(&e),
    };
    let mut per_system: HashMap<&str, usize> = HashMap::new();
    for i in &board.open_incidents {
        *per_system.entry(i.system.as_str()).or_default() += 1;
    }
    let compact = config.targets().count() > HOME_CHECK_BARS_UP_TO;
    let systems: Vec<Value> = config
        .systems
        .iter()
        .map(|s| {
            let mut card = system_card(board, &recent, s, &v, compact);
            card["incidents"] = json!(per_system.get(s.id.as_str()).copied().unwrap_or(0));
            card
        })
        .collect();
    let mut shown: Vec<&crate::model::incident::Incident> = board.open_incidents.iter().collect();
    shown.sort_by_key(|i| (i.ack.is_some(), i.severity != crate::model::incident::Severity::Critical, -i.started_ms));
    shown.truncate(HOME_INCIDENTS_AT_MOST);
    let incidents: Vec<Value> = shown.into_iter().map(|i| incident_card(i, &v, config)).collect();
    let maintenance = match maintenance_list(state, config) {
        Ok(m) => m,
        Err(e) => return super::super::store_unreadable(&e),
    };
    let ctx = merge(
        base_context(&v, config, "/"),
        json!({ "refresh": REFRESH_SECONDS, "systems": systems, "incidents": incidents, "maintenance": maintenance,
                "incidents_total": board.open_incidents.len(),
                "health": health(state, board, &v) }),
    );
    render("home.html", ctx)
}

/// One system on the home page: state, since, 90-day uptime and bar, and its checks — all
/// of them with their bars on a small instance; only those not up beyond
/// [`HOME_CHECK_BARS_UP_TO`] targets (a 10,000-check home page would carry 900,000 cells).
fn system_card(board: &Board, recent: &Recent, s: &crate::config::System, v: &Visitor, compact: bool) -> Value {
    let tz = &board.config.instance.timezone;
    let (st, since) = crate::status::system_state_since(s, &board.targets);
    let (word, icon) = state_word(st, v.lang);
    let (system_bar, uptime) = bar(recent, &critical_targets(s), v.lang, tz);
    let (mut listed, mut hidden) = (0, 0);
    let checks: Vec<Value> = s
        .checks
        .iter()
        .filter_map(|c| {
            let (cs, up) = check_state(board, c);
            if compact && (cs == State::Up || listed >= HOME_LISTED_AT_MOST) {
                hidden += 1;
                return None;
            }
            let summary = up_summary(up, c.targets.len(), v.lang);
            listed += 1;
            let (cw, ci) = state_word(cs, v.lang);
            let bar = if compact { Vec::new() } else { bar(recent, &c.targets.iter().collect::<Vec<_>>(), v.lang, tz).0 };
            Some(json!({ "id": format!("{}/{}", s.id, c.id), "name": c.name, "state": cs.as_str(), "word": cw, "icon": ci,
                    "targets": c.targets.len(), "summary": summary, "bar": bar }))
        })
        .collect();
    json!({
        "id": s.id,
        "name": if v.lang == Language::Vi { &s.name_vi } else { &s.name_en },
        "state": st.as_str(), "word": word, "icon": icon,
        "since": since.map(|ms| local(ms, tz)).unwrap_or_default(),
        "uptime": uptime,
        "bar": system_bar,
        "checks": checks,
        "hidden_checks": hidden,
    })
}

/// An open incident as the home page lists it.
fn incident_card(i: &crate::model::incident::Incident, v: &Visitor, config: &Config) -> Value {
    let tz = &config.instance.timezone;
    let st = if i.severity == crate::model::incident::Severity::Critical { State::Down } else { State::Degraded };
    let (word, icon) = state_word(st, v.lang);
    json!({ "id": i.id, "system_name": i.system_name, "check_name": i.check_name, "check": i.check, "target_name": i.target_name,
            "severity": i.severity.as_str(), "state": st.as_str(), "state_word": word, "icon": icon,
            "since": local(i.started_ms, tz), "cause": i.cause,
            "affected": i.affected.iter().take(AFFECTED_LISTED_AT_MOST).collect::<Vec<_>>(),
            "affected_count": i.affected.len(),
            "affected_more": i.affected.len().saturating_sub(AFFECTED_LISTED_AT_MOST),
            "ack": i.ack, "ack_at": i.ack.as_ref().map(|a| local(a.at_ms, tz)) })
}

/// Maintenance windows from the configuration and those opened through the API that have
/// not ended.
fn maintenance_list(state: &WebState, config: &Config) -> Result<Vec<Value>, StoreError> {
    let tz = &config.instance.timezone;
    let now = now_ms();
    let api = state.reader.maintenance()?;
    Ok(config
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
        .collect())
}

/// Vigil's own health: its uplinks, its store, its outbox.
fn health(state: &WebState, board: &Board, v: &Visitor) -> Value {
    let config = &board.config;
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
    let pending = state.reader.pending_deliveries();
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
    json!({ "uplink": uplink, "store": store, "outbox": pending.unwrap_or(0) })
}

pub(super) fn system_page(state: &WebState, req: &Head, board: &Board, system: &crate::config::System) -> Reply {
    let config = &board.config;
    let v = visitor(state, req, config);
    let tz = &config.instance.timezone;
    let recent = match recent(state, board, 90) {
        Ok(recent) => recent,
        Err(e) => return super::super::store_unreadable(&e),
    };
    let st = system_state(system, &board.targets);
    let (word, icon) = state_word(st, v.lang);
    let (system_bar, uptime) = bar(&recent, &critical_targets(system), v.lang, tz);
    let checks: Vec<Value> = system
        .checks
        .iter()
        .map(|c| {
            let (cs, up) = check_state(board, c);
            let summary = up_summary(up, c.targets.len(), v.lang);
            let (cw, ci) = state_word(cs, v.lang);
            let ids: Vec<String> = c.targets.iter().map(|t| t.id().to_string()).collect();
            let seen: Vec<String> = c
                .targets
                .iter()
                .take(SEEN_FROM_LINES)
                .map(|t| {
                    let s = super::views::seen_from_sentence(board, c, t.id(), v.lang);
                    if c.targets.len() > 1 && !s.is_empty() { format!("{}: {s}", t.key.target) } else { s }
                })
                .filter(|s| !s.is_empty())
                .collect();
            json!({ "id": format!("{}/{}", system.id, c.id), "name": c.name, "state": cs.as_str(), "word": cw, "icon": ci,
                    "targets": c.targets.len(), "summary": summary, "since": since_of(board, &ids, tz), "kind": c.probe.kind(),
                    "seen_from": seen })
        })
        .collect();
    let ctx = merge(
        base_context(&v, config, &format!("/systems/{}", system.id)),
        json!({ "refresh": REFRESH_SECONDS, "system": {
            "id": system.id, "name": if v.lang == Language::Vi { &system.name_vi } else { &system.name_en },
            "state": st.as_str(), "word": word, "icon": icon, "sla": system.sla.map(|s| format!("{}%", s * 100.0)),
            "uptime": uptime, "bar": system_bar, "checks": checks,
        }}),
    );
    render("system.html", ctx)
}

/// "writes failing since", in the page's language.
pub(super) fn store_failing_word(lang: Language) -> &'static str {
    match lang {
        Language::Vi => "ghi thất bại từ",
        Language::En => "writes failing since",
    }
}
