//! Server-rendered status pages (minijinja, HTML auto-escaped; no JavaScript): the home
//! page with every system, open incidents and maintenance; a page per system and per
//! check; admin actions (acknowledge, maintenance, SLA exclusion) behind a login kept in an
//! HttpOnly, SameSite=Strict cookie with CSRF-checked forms; SVG badges.

mod actions;
mod badge;
mod check;
mod overview;
mod smoke;
mod views;

use std::collections::HashMap;
use std::sync::Arc;
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
use crate::report::Ledger;
use crate::status::{Board, system_state};
use crate::store::{StoreError, query};

pub(super) use actions::is_local_path;
use actions::*;
use badge::*;
use check::*;
use overview::*;

const CSS: &str = include_str!("../static/vigil.css");
const SESSION_COOKIE: &str = "vigil_session";
/// Auto-refresh of the pages, without JavaScript.
const REFRESH_SECONDS: u32 = 30;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("home.html", include_str!("../templates/home.html")),
            ("system.html", include_str!("../templates/system.html")),
            ("check.html", include_str!("../templates/check.html")),
            ("login.html", include_str!("../templates/login.html")),
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

/// What the page handlers read of a request (owned, so they can run on the blocking pool).
struct Head {
    uri: hyper::Uri,
    headers: hyper::HeaderMap,
}

impl Head {
    fn of<B>(req: &Request<B>) -> Head {
        Head { uri: req.uri().clone(), headers: req.headers().clone() }
    }

    fn uri(&self) -> &hyper::Uri {
        &self.uri
    }

    fn headers(&self) -> &hyper::HeaderMap {
        &self.headers
    }
}

fn cookie(req: &Head, name: &str) -> Option<String> {
    req.headers().get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn visitor(state: &WebState, req: &Head, config: &Config) -> Visitor {
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

/// Keeps what the home page accounts (every target's last 90 days) read from the store
/// (see `store::histories`); the server calls it every [`KEEP_HISTORIES_EVERY`].
pub(super) fn keep_histories(state: &WebState) {
    // Only the time zone is needed: no copy of the board.
    let tz = state.board.read().unwrap_or_else(|p| p.into_inner()).config.instance.timezone.clone();
    if let Err(e) = overview::keep_recent(state, &tz) {
        tracing::debug!(error = %e, "the home page's histories will be read at the next page");
    }
}

/// How often the server brings the kept histories up to date.
pub(super) const KEEP_HISTORIES_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Handles the pages, badges, static files and form actions; None for other paths.
pub async fn route(
    state: &Arc<WebState>,
    req: Request<Incoming>,
    peer: std::net::IpAddr,
) -> Result<Reply, Request<Incoming>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let board = state.shown_board();
    let config = board.config.clone();
    let head = Head::of(&req);
    Ok(match (method, path.as_str()) {
        (Method::GET, "/static/vigil.css") => {
            let mut r = reply(StatusCode::OK, "text/css; charset=utf-8", CSS);
            r.headers_mut()
                .insert(CACHE_CONTROL, hyper::header::HeaderValue::from_static("public, max-age=31536000, immutable"));
            r
        }
        (Method::GET, "/") => heavy(state, move |state| home(state, &head, &board)).await,
        (Method::GET, p) if p.starts_with("/systems/") => {
            match config.systems.iter().find(|s| s.id == p["/systems/".len()..]).cloned() {
                Some(system) => heavy(state, move |state| system_page(state, &head, &board, &system)).await,
                None => text(StatusCode::NOT_FOUND, "no such system"),
            }
        }
        (Method::GET, p) if p.starts_with("/checks/") => {
            let id = p["/checks/".len()..].to_string();
            heavy(state, move |state| check_page(state, &head, &board, &id)).await
        }
        (Method::GET, p) if p.starts_with("/badge/") && p.ends_with(".svg") => {
            let spec = p["/badge/".len()..p.len() - 4].to_string();
            heavy(state, move |state| badge(state, &board, &spec)).await
        }
        (Method::GET, "/ui/login") => {
            let v = visitor(state, &head, &config);
            let ctx =
                merge(base_context(&v, &config, "/ui/login"), json!({ "next": format!("/{}", v.q), "error": null }));
            render("login.html", ctx)
        }
        (Method::GET, "/ui/audit") => {
            let v = visitor(state, &head, &config);
            if !v.logged_in {
                return Ok(redirect("/ui/login", None));
            }
            audit_page(state, &config)
        }
        (Method::POST, p) if p.starts_with("/ui/") => action(state, req, &config, peer).await,
        _ => return Err(req),
    })
}
