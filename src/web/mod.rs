//! The HTTP server (hyper): metrics, the status API, health and readiness, and reload.
//! Every write needs the admin bearer token (compared in constant time); no request can
//! panic the server, and slow clients are cut off by header and connection time limits.

mod blackbox;
mod i18n;
mod pages;
mod sessions;

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

/// A request to reload the configuration; answered with the errors, if any.
#[derive(Debug)]
pub struct ReloadRequest {
    pub respond: oneshot::Sender<Result<(), ReloadError>>,
}

/// What the handlers read.
pub struct WebState {
    pub metrics: Arc<Metrics>,
    pub board: Arc<RwLock<Board>>,
    pub reload: mpsc::Sender<ReloadRequest>,
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
    /// The last `/metrics` exposition and when it was encoded.
    pub metrics_cache: tokio::sync::Mutex<Option<(std::time::Instant, Bytes)>>,
    /// Heavy handlers in flight at most ([`HEAVY_AT_ONCE`]).
    pub heavy: tokio::sync::Semaphore,
}

/// How old a `/metrics` exposition may be when served again.
const METRICS_MAX_AGE: Duration = Duration::from_secs(1);

/// `/probe` requests served at once at most.
pub const PROBE_CONCURRENCY: usize = 64;

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
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

/// Connections served at once at most; beyond, a new one is closed at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections from one client address at most (a wall display, Prometheus and a few
/// browsers fit; one host holding hundreds idle does not).
pub const MAX_PER_CLIENT: usize = 64;
/// One request's deadline: reading its body, handling it, compressing the answer.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// A connection's whole life (keep-alive included): a client that reads an answer a byte
/// at a time cannot hold it, and its memory, for ever.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// Counts a client's open connections; the count drops with this guard.
struct ClientSlot {
    clients: Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>,
    ip: std::net::IpAddr,
}

impl ClientSlot {
    fn take(
        clients: &Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>,
        ip: std::net::IpAddr,
    ) -> Option<ClientSlot> {
        let mut map = clients.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= MAX_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(ClientSlot { clients: clients.clone(), ip })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves until `shutdown` is cancelled, then lets open connections finish briefly. At most
/// [`MAX_CONNECTIONS`] connections, [`MAX_PER_CLIENT`] per client address; each request has
/// [`REQUEST_DEADLINE`], each connection [`CONNECTION_LIFETIME`].
pub async fn serve(listener: TcpListener, state: Arc<WebState>, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let clients = Arc::new(std::sync::Mutex::new(HashMap::new()));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Over a cap, the connection is closed at once: refused quickly, nothing read.
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(client = %peer.ip(), "connection refused: the server is at its connection cap");
            continue;
        };
        let Some(slot) = ClientSlot::take(&clients, peer.ip()) else {
            tracing::debug!(client = %peer.ip(), "connection refused: this client is at its cap");
            continue;
        };
        let state = state.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let state = state.clone();
            let gzip = req
                .headers()
                .get(hyper::header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
            async move {
                let answer = async {
                    let r = with_security_headers(route(&state, req, peer).await);
                    if gzip { compress(r).await } else { r }
                };
                let r = match tokio::time::timeout(REQUEST_DEADLINE, answer).await {
                    Ok(r) => r,
                    Err(_) => with_security_headers(text(StatusCode::SERVICE_UNAVAILABLE, "the request took too long")),
                };
                Ok::<_, std::convert::Infallible>(r)
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _held = (permit, slot);
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
                Err(_) => tracing::debug!("connection closed at the end of its lifetime"),
                Ok(Ok(())) => {}
            }
        });
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
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

/// Records `action` with the status it ended with, and passes the reply on.
fn audited(state: &WebState, peer: std::net::IpAddr, who: &str, action: &str, detail: String, reply: Reply) -> Reply {
    let outcome = reply.status().as_u16();
    let detail =
        if detail.is_empty() { format!("answered {outcome}") } else { format!("{detail} (answered {outcome})") };
    audit(state, peer, who, action, &detail);
    reply
}

/// `GET /api/v1/audit?limit=…`: the audit trail, newest first (admin token).
fn audit_list(state: &WebState, query: Option<&str>) -> Reply {
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

/// The answer when the store cannot be read: a 503 that says so, never a page or a figure
/// computed from nothing (a locked or corrupt store must not look like "no data").
pub(crate) fn store_unreadable(e: &dyn std::fmt::Display) -> Reply {
    tracing::error!(error = %e, "cannot read the store");
    text(StatusCode::SERVICE_UNAVAILABLE, format!("the store cannot be read: {e}"))
}

/// The headers every answer carries: no script runs (the pages need none), nothing frames
/// them, types are not sniffed, and no referrer leaves for another site — an
/// acknowledgement link's signature sits in its query. (`same-origin`, not `no-referrer`:
/// with the latter browsers send `Origin: null` on form posts, which the same-site check
/// of the forms refuses.) Inline styles stay allowed (the self-contained report).
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
];

fn with_security_headers(mut r: Reply) -> Reply {
    for (name, value) in SECURITY_HEADERS {
        r.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    r
}

/// Bodies above this size are zipped at the fast level.
const LARGE_BODY: usize = 1 << 20;

/// Gzips a textual reply of some size (the status pages over weak commune links).
async fn compress(r: Reply) -> Reply {
    use std::io::Write;
    let textual = r
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/") || t.starts_with("application/json") || t.starts_with("image/svg"));
    if !textual {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let bytes = http_body_util::BodyExt::collect(body).await.map(|b| b.to_bytes()).unwrap_or_default();
    if bytes.len() < 1024 {
        return Response::from_parts(parts, Full::new(bytes));
    }
    // A 10,000-target /metrics is ~15 MB: zip it off the runtime, at the fast level.
    let input = bytes.clone(); // a reference count, not a copy
    let zipped = tokio::task::spawn_blocking(move || {
        let level = if input.len() > LARGE_BODY { flate2::Compression::fast() } else { flate2::Compression::default() };
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
        encoder.write_all(&input).and_then(|_| encoder.finish())
    })
    .await;
    match zipped {
        Ok(Ok(zipped)) => {
            parts.headers.insert(hyper::header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            parts.headers.insert(hyper::header::VARY, HeaderValue::from_static("Accept-Encoding"));
            parts.headers.remove(hyper::header::CONTENT_LENGTH);
            Response::from_parts(parts, Full::new(Bytes::from(zipped)))
        }
        _ => Response::from_parts(parts, Full::new(bytes)),
    }
}

/// Runs a handler that reads the store or renders a large page: at most [`HEAVY_AT_ONCE`]
/// at a time (a flood of page requests queues here instead of crowding the runtime), and
/// the runtime moves this worker's other tasks (the probes) elsewhere meanwhile, so they
/// keep their schedule.
pub(crate) async fn heavy<T>(state: &WebState, handler: impl FnOnce() -> T) -> T {
    let _permit = state.heavy.acquire().await;
    tokio::task::block_in_place(handler)
}

/// Heavy handlers (store reads, page rendering) running at once at most.
pub const HEAVY_AT_ONCE: usize = 4;

/// Paths served by the status pages.
fn is_page(path: &str) -> bool {
    path == "/" || ["/static/", "/systems/", "/checks/", "/badge/", "/ui/"].iter().any(|p| path.starts_with(p))
}

async fn route(state: &WebState, req: Request<Incoming>, peer: SocketAddr) -> Reply {
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
        (&Method::GET, "/metrics") => {
            // Encoded at most once a second, and shared: concurrent scrapes (or a flood of
            // them) wait for one encoding instead of each building 15 MB.
            let mut cached = state.metrics_cache.lock().await;
            let body = match &*cached {
                Some((at, body)) if at.elapsed() < METRICS_MAX_AGE => body.clone(),
                _ => {
                    // Encoding 10,000 targets takes a while: off the runtime, so probes keep
                    // their schedule. On the blocking pool, not `blocking()`: block_in_place
                    // moves the worker to a new thread each time, and each new thread's
                    // allocator arena kept ~20 MB more in the scale run.
                    let metrics = state.metrics.clone();
                    let text = tokio::task::spawn_blocking(move || metrics.encode()).await.unwrap_or_default();
                    let body = Bytes::from(text);
                    *cached = Some((std::time::Instant::now(), body.clone()));
                    body
                }
            };
            drop(cached);
            reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", body)
        }
        (&Method::GET, "/api/v1/status") => {
            let doc = state.board.read().unwrap_or_else(|p| p.into_inner()).to_json();
            json(&doc)
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
            heavy(state, || audit_list(state, req.uri().query())).await
        }
        (&Method::GET, "/api/v1/incidents") => heavy(state, || incidents(state, req.uri().query())).await,
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
                    let (reason, by) = (body["reason"].as_str().unwrap_or(""), body["by"].as_str().unwrap_or(""));
                    let reply = match heavy(state, || exclude(state, id, reason, by)).await {
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
        (&Method::GET, "/api/v1/maintenance") => heavy(state, || maintenance_list(state)).await,
        (&Method::GET, "/reports") => heavy(state, || reports(state, req.uri().query())).await,
        (&Method::GET, p) if history_check(p).is_some() => {
            let check_id = history_check(p).unwrap_or_default();
            heavy(state, || history(state, check_id, req.uri().query())).await
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
    matches!(path, "/-/healthy" | "/-/ready" | "/ack" | "/probe") || path.starts_with("/api/v1/heartbeat/")
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

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Reads a JSON request body (at most [`MAX_BODY`]); an empty body is `{}`.
async fn read_json(req: Request<Incoming>) -> Result<serde_json::Value, Reply> {
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
fn incidents(state: &WebState, query: Option<&str>) -> Reply {
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
        list.truncate(limit);
        return json(&serde_json::json!({ "incidents": list }));
    }
    match state.reader.incidents(open_only, system.as_deref(), limit) {
        Ok(list) => json(&serde_json::json!({ "incidents": list })),
        Err(e) => store_unreadable(&e),
    }
}

async fn acknowledge(state: &WebState, id: i64, by: String, comment: String) -> Reply {
    let (respond, answer) = oneshot::channel();
    if state.pipeline.send(Control::Ack { id, by, comment, respond }).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match answer.await {
        Ok(Ok(incident)) => json(&serde_json::json!({ "incident": incident })),
        Ok(Err(why)) => text(StatusCode::NOT_FOUND, why.to_string()),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
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

/// The check id in `/api/v1/checks/{system}/{check}/history`; none for any other path
/// (`/api/v1/checks/history` once sliced out of range and panicked).
fn history_check(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/checks/")?.strip_suffix("/history").filter(|id| !id.is_empty())
}

/// `GET /api/v1/checks/{system}/{check}/history?from=&to=`: each target's exact state
/// intervals and daily rollups (`from`/`to`: RFC 3339 or Unix ms; default the last 7 days).
fn history(state: &WebState, check_id: &str, query: Option<&str>) -> Reply {
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
    let ids: Vec<String> = check.targets.iter().map(|t| t.key.id()).collect();
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
fn reports(state: &WebState, query: Option<&str>) -> Reply {
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
fn exclude(state: &WebState, id: i64, reason: &str, by: &str) -> Option<Reply> {
    let (reason, by) = (reason.trim(), by.trim());
    if reason.is_empty() || by.is_empty() {
        return Some(text(StatusCode::BAD_REQUEST, "an exclusion needs a reason and who decided it"));
    }
    match state.reader.incident(id) {
        Ok(Some(i)) if i.is_open() => {
            return Some(text(StatusCode::CONFLICT, "only a resolved incident can be excluded from the SLA"));
        }
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
fn maintenance_list(state: &WebState) -> Reply {
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
async fn open_maintenance(state: &WebState, body: &serde_json::Value) -> Reply {
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

/// The parameters of a signed acknowledgement link, once its signature is checked.
struct AckLink {
    incident: i64,
    target: String,
    expires: i64,
    sig: String,
}

/// Checks a link's signature — made for this instance, this target and this incident, by
/// one of the listed keys, not expired — and that the incident, if open, is that target's;
/// `None` for a forged, malformed, expired or misdirected link.
fn verified_link(state: &WebState, params: &HashMap<String, String>) -> Option<AckLink> {
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

fn invalid_link() -> Reply {
    text(StatusCode::FORBIDDEN, "this acknowledge link is invalid or has expired")
}

/// `GET /ack?incident=…&target=…&expires=…&sig=…`: the link in alerts shows a confirmation form and
/// acknowledges nothing. Mail gateways' link scanners and chat previews open every link in
/// a message within seconds; if opening it acknowledged, nobody would be reminded again.
fn ack_confirmation(state: &WebState, query: Option<&str>) -> Reply {
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
const MAX_ACK_NAME: usize = 100;

/// `POST /ack` (the confirmation form): acknowledges, recording the name given.
async fn ack_link(state: &WebState, form: &HashMap<String, String>) -> Reply {
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
const MAX_FORM: usize = 4 * 1024;

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_FORM`] bytes.
async fn read_form(req: Request<Incoming>) -> Result<HashMap<String, String>, Reply> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_FORM);
    let bytes = http_body_util::BodyExt::collect(limited)
        .await
        .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))?
        .to_bytes();
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

fn reply_html(status: StatusCode, body: &str) -> Reply {
    reply(status, "text/html; charset=utf-8", body.to_string())
}

/// Longest heartbeat message kept.
const MAX_HEARTBEAT_MESSAGE: usize = 200;

/// `GET|POST /api/v1/heartbeat/{token}[?status=fail&msg=…]`.
fn heartbeat(state: &WebState, token: &str, query: Option<&str>) -> Reply {
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

async fn reload(state: &WebState) -> Reply {
    let (respond, answer) = oneshot::channel();
    if state.reload.send(ReloadRequest { respond }).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match answer.await {
        Ok(Ok(())) => text(StatusCode::OK, "configuration reloaded"),
        Ok(Err(errors)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("configuration not reloaded, the previous one keeps running:\n{errors}"),
        ),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}
