//! The HTTP server around the routes: accepting connections within the limits (1,024
//! connections, 64 per client address, a header timeout, a request deadline, a connection
//! lifetime), security headers on every answer, gzip for large ones, a graceful drain.

use super::*;
use hyper::header::{self, HeaderName};

/// Connections served at once at most; beyond, a new one is closed at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// Connections from one client address at most (a wall display, Prometheus and a few
/// browsers fit; one host holding hundreds idle does not).
pub const MAX_PER_CLIENT: usize = 64;

/// One request's deadline: reading its body, handling it, compressing the answer.
pub(super) const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// A connection's whole life (keep-alive included): a client that reads an answer a byte
/// at a time cannot hold it, and its memory, for ever.
pub(super) const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// Counts a client's open connections; the count drops with this guard.
pub(super) struct ClientSlot {
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
    let state_tls = state.clone();
    let state_tls = &state_tls.tls;
    let keeper = tokio::spawn(keep_histories(state.clone()));
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let clients = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let builder = {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
        b
    };
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
            let gzip = super::scrape::accepts_gzip(req.headers());
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
        let tls = state_tls.read().unwrap_or_else(|p| p.into_inner()).clone();
        match tls {
            None => {
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(finish(conn, (permit, slot)));
            }
            Some(acceptor) => {
                let watcher = graceful.watcher();
                let builder = builder.clone();
                tokio::spawn(async move {
                    // The handshake has the time a request's headers have.
                    let stream = match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return tracing::debug!(client = %peer.ip(), error = %e, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(client = %peer.ip(), "TLS handshake took too long"),
                    };
                    let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                    finish(conn, (permit, slot)).await;
                });
            }
        }
    }
    keeper.abort();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

/// Keeps the store's histories that the home page accounts up to date, every
/// [`super::pages::KEEP_HISTORIES_EVERY`] (see `store::histories`).
async fn keep_histories(state: Arc<WebState>) {
    let mut every = tokio::time::interval(super::pages::KEEP_HISTORIES_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        super::heavy(&state, super::pages::keep_histories).await;
    }
}

/// Serves one connection for at most [`CONNECTION_LIFETIME`], holding its slots until it ends.
async fn finish<C, E>(conn: C, _held: (tokio::sync::OwnedSemaphorePermit, ClientSlot))
where
    C: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
        Ok(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
        Err(_) => tracing::debug!("connection closed at the end of its lifetime"),
        Ok(Ok(())) => {}
    }
}

/// The headers every answer carries: no script runs (the pages need none), nothing frames
/// them, types are not sniffed, and no referrer leaves for another site — an
/// acknowledgement link's signature sits in its query. (`same-origin`, not `no-referrer`:
/// with the latter browsers send `Origin: null` on form posts, which the same-site check
/// of the forms refuses.) Inline styles stay allowed (the self-contained report).
pub(super) const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

pub(super) fn with_security_headers(mut r: Reply) -> Reply {
    // Named by constants, not parsed from text for every answer.
    for (name, value) in SECURITY_HEADERS {
        r.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    r
}

/// Bodies above this size are zipped at the fast level.
pub(super) const LARGE_BODY: usize = 1 << 20;

/// Gzips a textual reply of some size (the status pages over weak commune links).
pub(super) async fn compress(r: Reply) -> Reply {
    use std::io::Write;
    let textual = r
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/") || t.starts_with("application/json") || t.starts_with("image/svg"));
    // A streamed body (no length known) is encoded by its producer.
    let streamed = hyper::body::Body::size_hint(r.body()).exact().is_none()
        || r.headers().contains_key(hyper::header::CONTENT_ENCODING);
    if !textual || streamed {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let bytes = http_body_util::BodyExt::collect(body).await.map(|b| b.to_bytes()).unwrap_or_default();
    if bytes.len() < 1024 {
        return Response::from_parts(parts, super::whole(bytes));
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
            Response::from_parts(parts, super::whole(Bytes::from(zipped)))
        }
        _ => Response::from_parts(parts, super::whole(bytes)),
    }
}
