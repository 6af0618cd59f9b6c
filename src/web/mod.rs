//! The HTTP server (hyper) and its route table. Machine endpoints: `/metrics`, `/probe`
//! (blackbox-compatible), `/-/healthy`, `/-/ready`, `POST /-/reload`; the API:
//! `/api/v1/status`, `/api/v1/incidents` (+ `POST …/{id}/ack`, `…/{id}/exclude`),
//! `/api/v1/checks/{system}/{check}/history`, `/api/v1/maintenance` (GET, POST),
//! `/api/v1/heartbeat/{token}` (GET, POST), `/api/v1/audit`; `/reports`; signed
//! acknowledgement links (`/ack`, GET then POST); and the pages ([`pages`]: `/`,
//! `/systems/…`, `/checks/…`, `/badge/…`, `/ui/…`). Every write needs the admin bearer
//! token (compared in constant time) or a session; no request can panic the server, and
//! slow clients are cut off by header and connection time limits ([`server`]).
//!
//! size: `route` is the route table — every endpoint in one match, so none hides.

mod ack_links;
mod api;
mod blackbox;
mod i18n;
mod ingest;
mod pages;
mod scrape;
mod server;
mod sessions;

use ack_links::*;
use api::*;
pub use server::{MAX_CONNECTIONS, MAX_PER_CLIENT, serve};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::alert::message::AckClaim;
use crate::config::Secret;
use crate::metrics::Metrics;
use crate::model::now_ms;
use crate::pipeline::Control;
use crate::probe::Prober;
use crate::probe::heartbeat::{Beat, HeartbeatBook};
use crate::status::Board;
use crate::store::{HeartbeatRecord, Record, StoreWriter};

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid; the previous one keeps running.
    #[error(transparent)]
    Invalid(#[from] crate::config::ConfigErrors),
    #[error("shutting down")]
    ShuttingDown,
}

/// A request to reload the configuration; answered with its warnings, or the errors.
#[derive(Debug)]
pub struct ReloadRequest {
    pub respond: oneshot::Sender<Result<Vec<String>, ReloadError>>,
}

/// What the handlers read.
pub struct WebState {
    pub metrics: Arc<Metrics>,
    pub board: Arc<RwLock<Board>>,
    pub reload: mpsc::Sender<ReloadRequest>,
    /// HTTPS (`server.tls`), replaced at each reload (certificate rotation).
    pub tls: RwLock<Option<tokio_rustls::TlsAcceptor>>,
    /// The admin token of the running configuration (updated on reload).
    pub admin_token: RwLock<Option<Secret>>,
    /// Set once the first configuration is running.
    pub ready: AtomicBool,
    /// Where pushed heartbeats go.
    pub heartbeats: Arc<HeartbeatBook>,
    /// Persists heartbeats, so a restart remembers the last push.
    pub store: Option<StoreWriter>,
    /// The probes' shared state, also used by `/probe`.
    pub prober: Arc<Prober>,
    /// Commands to the pipeline (acknowledgements).
    pub pipeline: mpsc::Sender<Control>,
    /// The store's reader: one long-lived read connection for every page and API read.
    pub reader: crate::store::Reader,
    /// How the store's writer is doing (readiness and the status page say so).
    pub store_health: Arc<crate::store::StoreHealth>,
    /// `/probe` requests in flight at most ([`PROBE_CONCURRENCY`]).
    pub probe_permits: tokio::sync::Semaphore,
    /// Administrator sessions of the status pages, and failed logins.
    pub sessions: sessions::Sessions,
    /// Heavy handlers in flight at most ([`HEAVY_AT_ONCE`]).
    pub heavy: tokio::sync::Semaphore,
    /// The whole cluster, on a node sharing its store with one (pages and status show it).
    pub cluster_view: Option<Arc<RwLock<crate::status::ClusterView>>>,
}

impl WebState {
    /// The board the pages and status API show: this node's, or on a cluster node sharing
    /// its store, the whole cluster's.
    pub fn shown_board(&self) -> Board {
        let board = self.board.read().unwrap_or_else(|p| p.into_inner());
        match &self.cluster_view {
            Some(view) => board.with_cluster(&view.read().unwrap_or_else(|p| p.into_inner())),
            None => board.clone(),
        }
    }
}

/// `/probe` requests served at once at most.
pub const PROBE_CONCURRENCY: usize = 64;

/// The error a streamed body ends with: the connection is aborted, never ended as if the
/// body were whole.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An answer's body: whole (pages, the API) or streamed (`/metrics`).
pub(crate) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

type Reply = Response<Body>;

/// A whole body.
pub(crate) fn whole(bytes: Bytes) -> Body {
    use http_body_util::BodyExt;
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(whole(body.into()));
    *r.status_mut() = status;
    // Room for these two and the security headers at once (it grew twice per answer).
    r.headers_mut().reserve(8);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    let mut body = body.into();
    body.push('\n');
    reply(status, "text/plain; charset=utf-8", body)
}

fn json(value: &serde_json::Value) -> Reply {
    reply(StatusCode::OK, "application/json", serde_json::to_vec_pretty(value).unwrap_or_default())
}

/// Records an administrative action in the audit trail (the store, and an INFO log): who,
/// from where, what, on what, and how it ended. Text is bounded and single-line.
pub(crate) fn audit(state: &WebState, peer: std::net::IpAddr, who: &str, action: &str, detail: &str) {
    let clean =
        |s: &str, max: usize| s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect::<String>();
    let (who, detail) = (clean(who, 100), clean(detail, 500));
    tracing::info!(who = %who, address = %peer, action, detail = %detail, "administrative action");
    if let Some(store) = &state.store {
        store.send(Record::Audit(crate::store::AuditRecord {
            at_ms: now_ms(),
            who,
            address: peer.to_string(),
            action: action.to_string(),
            detail,
        }));
    }
}

/// The answer when the store cannot be read: a 503 that says so, never a page or a figure
/// computed from nothing (a locked or corrupt store must not look like "no data").
pub(crate) fn store_unreadable(e: &dyn std::fmt::Display) -> Reply {
    tracing::error!(error = %e, "cannot read the store");
    text(StatusCode::SERVICE_UNAVAILABLE, format!("the store cannot be read: {e}"))
}

/// Runs a handler that reads the store or renders a large page: at most [`HEAVY_AT_ONCE`]
/// at a time (a flood of page requests queues here instead of crowding the runtime), and
/// the runtime moves this worker's other tasks (the probes) elsewhere meanwhile, so they
/// keep their schedule.
pub(crate) async fn heavy<T: Send + 'static>(
    state: &Arc<WebState>,
    handler: impl FnOnce(&WebState) -> T + Send + 'static,
) -> T {
    let _permit = state.heavy.acquire().await;
    let state = state.clone();
    // On the blocking pool (block_in_place would panic on a current-thread runtime); a
    // panic in the handler is the request's, as if it had run here.
    match tokio::task::spawn_blocking(move || handler(&state)).await {
        Ok(value) => value,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("a page handler was cancelled: {e}"),
        },
    }
}

/// Heavy handlers (store reads, page rendering) running at once at most.
pub const HEAVY_AT_ONCE: usize = 4;

/// Paths served by the status pages.
fn is_page(path: &str) -> bool {
    path == "/" || ["/static/", "/systems/", "/checks/", "/badge/", "/ui/"].iter().any(|p| path.starts_with(p))
}

async fn route(state: &Arc<WebState>, req: Request<Incoming>, peer: SocketAddr) -> Reply {
    let path = req.uri().path().to_string();
    if let Some(denied) = refuse_unless_reader(state, &req, &path) {
        return denied;
    }
    let req = if is_page(&path) {
        match pages::route(state, req, peer.ip()).await {
            Ok(reply) => return reply,
            Err(req) => req,
        }
    } else {
        req
    };
    match (req.method(), path.as_str()) {
        (&Method::GET, "/metrics") => scrape::metrics(state, scrape::accepts_gzip(req.headers())),
        (&Method::POST, "/api/v1/ingest") => ingest::ingest(state, req).await,
        (&Method::GET, "/api/v1/vantages") => heavy(state, ingest::vantages).await,
        (&Method::GET, "/api/v1/assignment") => ingest::assignment(state, &req),
        (&Method::GET, "/api/v1/status") => {
            // Off the runtime: at 50,000 targets the document is tens of megabytes.
            heavy(state, |state| {
                let body = serde_json::to_vec(&state.shown_board().document()).unwrap_or_default();
                reply(StatusCode::OK, "application/json", body)
            })
            .await
        }
        (&Method::GET, "/-/healthy") => text(StatusCode::OK, "Vigil is healthy."),
        (&Method::GET, "/-/ready") => {
            if let Some((since, error)) = state.store_health.snapshot().failing {
                let since = jiff::Timestamp::from_millisecond(since).map(|t| t.to_string()).unwrap_or_default();
                text(StatusCode::SERVICE_UNAVAILABLE, format!("store: writes failing since {since}: {error}"))
            } else if state.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "Vigil is ready.")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "Vigil is starting.")
            }
        }
        (&Method::POST, "/-/reload") => {
            if let Some(denied) = refuse_unless_admin(state, &req) {
                return denied;
            }
            let reply = reload(state).await;
            audited(state, peer.ip(), "admin (token)", "reload", String::new(), reply)
        }
        (&Method::GET, "/api/v1/audit") => {
            if let Some(denied) = refuse_unless_admin(state, &req) {
                return denied;
            }
            let query = req.uri().query().map(str::to_string);
            heavy(state, move |state| audit_list(state, query.as_deref())).await
        }
        (&Method::GET, "/api/v1/incidents") => {
            let query = req.uri().query().map(str::to_string);
            heavy(state, move |state| incidents(state, query.as_deref())).await
        }
        (&Method::POST, p) if p.starts_with("/api/v1/incidents/") && p.ends_with("/ack") => {
            if let Some(denied) = refuse_unless_admin(state, &req) {
                return denied;
            }
            let id = p.trim_start_matches("/api/v1/incidents/").trim_end_matches("/ack").parse::<i64>();
            let Ok(id) = id else { return text(StatusCode::NOT_FOUND, "no such incident") };
            match read_json(req).await {
                Ok(body) => {
                    let by: String = body["by"].as_str().unwrap_or("admin").chars().take(100).collect();
                    let comment = body["comment"].as_str().unwrap_or("").chars().take(1000).collect();
                    let detail = format!("incident {id}, by {by}");
                    let reply = acknowledge(state, id, by, comment).await;
                    audited(state, peer.ip(), "admin (token)", "acknowledge", detail, reply)
                }
                Err(r) => r,
            }
        }
        (&Method::GET, "/ack") => ack_confirmation(state, req.uri().query()),
        (&Method::POST, "/ack") => match read_form(req).await {
            Ok(form) => {
                let who = form.get("by").map(|b| b.trim()).filter(|b| !b.is_empty()).unwrap_or("link").to_string();
                let detail =
                    format!("incident {} through the signed link", form.get("incident").map_or("?", String::as_str));
                let reply = ack_link(state, &form).await;
                audited(state, peer.ip(), &who, "acknowledge", detail, reply)
            }
            Err(r) => r,
        },
        (&Method::POST, p) if p.starts_with("/api/v1/incidents/") && p.ends_with("/exclude") => {
            if let Some(denied) = refuse_unless_admin(state, &req) {
                return denied;
            }
            let id = p.trim_start_matches("/api/v1/incidents/").trim_end_matches("/exclude").parse::<i64>();
            let Ok(id) = id else { return text(StatusCode::NOT_FOUND, "no such incident") };
            match read_json(req).await {
                Ok(body) => {
                    let reason = body["reason"].as_str().unwrap_or("").to_string();
                    let by = body["by"].as_str().unwrap_or("").to_string();
                    let (r, b) = (reason.clone(), by.clone());
                    let reply = match heavy(state, move |state| exclude(state, id, &r, &b)).await {
                        None => text(StatusCode::OK, "excluded from the SLA"),
                        Some(refusal) => refusal,
                    };
                    audited(
                        state,
                        peer.ip(),
                        "admin (token)",
                        "exclude",
                        format!("incident {id}, by {by}: {reason}"),
                        reply,
                    )
                }
                Err(r) => r,
            }
        }
        (&Method::GET, "/api/v1/maintenance") => heavy(state, maintenance_list).await,
        (&Method::GET, "/reports") => {
            let query = req.uri().query().map(str::to_string);
            heavy(state, move |state| reports(state, query.as_deref())).await
        }
        (&Method::GET, p) if history_check(p).is_some() => {
            let check_id = history_check(p).unwrap_or_default().to_string();
            let query = req.uri().query().map(str::to_string);
            heavy(state, move |state| history(state, &check_id, query.as_deref())).await
        }
        (&Method::POST, "/api/v1/maintenance") => {
            if let Some(denied) = refuse_unless_admin(state, &req) {
                return denied;
            }
            match read_json(req).await {
                Ok(body) => {
                    let reply = open_maintenance(state, &body).await;
                    audited(state, peer.ip(), "admin (token)", "maintenance", body.to_string(), reply)
                }
                Err(r) => r,
            }
        }
        (&Method::GET, "/probe") => {
            let config = state.board.read().unwrap_or_else(|p| p.into_inner()).config.clone();
            if let Some(token) = &config.server.probe_endpoint.token {
                let given = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
                let given = given.strip_prefix("Bearer ").unwrap_or("");
                if !bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.expose().as_bytes())) {
                    return text(
                        StatusCode::UNAUTHORIZED,
                        "/probe needs server.probe_endpoint.token as a bearer token",
                    );
                }
            }
            // Its own bound: /probe makes Vigil connect on request, and must not crowd out
            // the checks' probes.
            let Ok(_permit) = state.probe_permits.try_acquire() else {
                return text(StatusCode::SERVICE_UNAVAILABLE, "too many /probe requests at once");
            };
            let timeout = req.headers().get("x-prometheus-scrape-timeout-seconds").and_then(|v| v.to_str().ok());
            match blackbox::probe(&config, &state.prober, req.uri().query(), timeout).await {
                Ok(body) => reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", body),
                Err(r) => text(StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST), r.message),
            }
        }
        (&Method::POST, p) if p.starts_with("/api/v1/heartbeat/") => {
            heartbeat(state, &p["/api/v1/heartbeat/".len()..], req.uri().query())
        }
        // A GET records nothing: link previews and scanners open URLs they see.
        (&Method::GET, p) if p.starts_with("/api/v1/heartbeat/") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "a heartbeat is a POST (curl -X POST …)")
        }
        (_, "/metrics" | "/api/v1/status" | "/-/healthy" | "/-/ready" | "/-/reload") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Checks the bearer token and returns the refusal, if any (writes are refused when no
/// token is configured).
/// Paths open without the read credential: liveness and readiness, a job's heartbeat (its
/// own token), an acknowledgement link (its signature) and `/probe` (its own token).
fn open_without_reader(path: &str) -> bool {
    matches!(path, "/-/healthy" | "/-/ready" | "/ack" | "/probe" | "/api/v1/ingest" | "/api/v1/assignment")
        || path.starts_with("/api/v1/heartbeat/")
}

/// With `server.pages_auth`, pages, API and metrics need it (or the admin token).
fn refuse_unless_reader(state: &WebState, req: &Request<Incoming>, path: &str) -> Option<Reply> {
    let auth = state.board.read().unwrap_or_else(|p| p.into_inner()).config.server.pages_auth.clone()?;
    if open_without_reader(path) {
        return None;
    }
    let given = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let same = |a: &[u8], b: &[u8]| bool::from(a.ct_eq(b));
    let admin = state.admin_token.read().unwrap_or_else(|p| p.into_inner()).clone();
    if let (Some(admin), Some(bearer)) = (&admin, given.strip_prefix("Bearer "))
        && same(bearer.as_bytes(), admin.expose().as_bytes())
    {
        return None;
    }
    let (admitted, challenge) = match &auth {
        crate::config::PagesAuth::Bearer(token) => {
            (given.strip_prefix("Bearer ").is_some_and(|t| same(t.as_bytes(), token.expose().as_bytes())), "Bearer")
        }
        crate::config::PagesAuth::Basic { user, password } => {
            use base64::Engine;
            let decoded = given
                .strip_prefix("Basic ")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
                .unwrap_or_default();
            let expected = format!("{user}:{}", password.expose());
            (same(&decoded, expected.as_bytes()), "Basic realm=\"Vigil\", charset=\"UTF-8\"")
        }
    };
    if admitted {
        return None;
    }
    let mut r = text(StatusCode::UNAUTHORIZED, "this Vigil needs its read credential (server.pages_auth)");
    r.headers_mut().insert("www-authenticate", HeaderValue::from_static(challenge));
    Some(r)
}

fn refuse_unless_admin(state: &WebState, req: &Request<Incoming>) -> Option<Reply> {
    let expected = state.admin_token.read().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(expected) = expected else {
        return Some(text(StatusCode::FORBIDDEN, "writes are disabled: set server.admin_token"));
    };
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        None
    } else {
        let mut r = text(StatusCode::UNAUTHORIZED, "missing or wrong admin token");
        r.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer"));
        Some(r)
    }
}

/// `/probe`'s parameters (see `blackbox::fuzz_params`), for the fuzz target.
#[doc(hidden)]
pub fn fuzz_probe_params(text: &str) -> usize {
    blackbox::fuzz_params(text)
}

/// Runs the hand-written parsing of request paths, queries, forms and headers over
/// arbitrary text (the fuzz target): history paths, `/probe` parameters, signed links,
/// times and durations. Returns how much was accepted, so nothing is optimised away.
#[doc(hidden)]
pub fn fuzz_inputs(text: &str) -> usize {
    let mut accepted = history_check(text).map_or(0, str::len);
    accepted += blackbox::fuzz_params(text);
    accepted += usize::from(pages::is_local_path(text));
    let params: HashMap<String, String> = url::form_urlencoded::parse(text.as_bytes()).into_owned().collect();
    if let (Some(incident), Some(target), Some(expires), Some(sig)) =
        (params.get("incident"), params.get("target"), params.get("expires"), params.get("sig"))
    {
        let (Ok(incident), Ok(expires)) = (incident.parse::<i64>(), expires.parse::<i64>()) else {
            return accepted;
        };
        let claim = AckClaim { instance: "fuzz", target, incident, expires };
        accepted += usize::from(claim.verify(&[crate::config::Secret::new("fuzz-key")], sig, 0));
    }
    let tz = jiff::tz::TimeZone::UTC;
    accepted += usize::from(crate::config::maintenance::parse_time(text, &tz).is_ok());
    accepted += usize::from(crate::config::parse_duration(text).is_ok());
    accepted
}
