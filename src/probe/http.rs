//! HTTP(S) probe: one request (following redirects up to the cap), with phases timed,
//! the body read up to its cap and the peer's certificate captured.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::header::{HOST, LOCATION, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::Url;

use super::tls::TlsContext;
use super::{FailureReason, Observations, ProbeError, Reach, connect_error};
use crate::config::HttpSpec;
use crate::config::is_credential_header as is_credential;

const USER_AGENT_VALUE: &str = concat!("Vigil/", env!("CARGO_PKG_VERSION"));

/// One response: what redirect handling needs.
struct Response {
    status: u16,
    location: Option<String>,
}

pub(super) async fn observe(
    spec: &HttpSpec,
    address: &str,
    tls: &TlsContext,
    reach: Reach<'_>,
) -> Result<Observations, ProbeError> {
    let started = Instant::now();
    let mut obs = Observations::default();
    let mut url =
        Url::parse(address).map_err(|e| ProbeError::new(FailureReason::Network, format!("invalid URL: {e}")))?;
    let mut hop = Hop::first(spec);
    loop {
        let response = match fetch(spec, &url, &hop, tls, &mut obs, reach).await {
            Ok(r) => r,
            Err(e) => return Err(e.with(obs)),
        };
        let redirect = spec.follow_redirects && (300..400).contains(&response.status);
        match response.location.filter(|_| redirect) {
            Some(location) => {
                if obs.redirects >= spec.max_redirects {
                    let message = format!("more than {} redirects (last to {location})", spec.max_redirects);
                    return Err(ProbeError::new(FailureReason::Redirects, message).with(obs));
                }
                let next = url.join(&location).map_err(|e| {
                    ProbeError::new(FailureReason::Network, format!("bad redirect location \"{location}\": {e}"))
                })?;
                if url.scheme() == "https" && next.scheme() == "http" && !spec.allow_insecure_redirects {
                    let message = format!(
                        "redirect from https to http ({}) refused: set allow_insecure_redirects to follow it",
                        next.origin().ascii_serialization()
                    );
                    return Err(ProbeError::new(FailureReason::Redirects, message).with(obs));
                }
                hop = hop.redirected(response.status, url.origin() == next.origin());
                url = next;
                obs.redirects += 1;
            }
            None => break,
        }
    }
    obs.response_time = Some(started.elapsed());
    Ok(obs)
}

/// What one request of a redirect chain sends: the method, whether the configured body
/// goes along, and whether credentials do.
#[derive(Debug, Clone, PartialEq)]
struct Hop {
    method: Method,
    body: bool,
    credentials: bool,
}

impl Hop {
    fn first(spec: &HttpSpec) -> Hop {
        Hop { method: Method::from_bytes(spec.method.as_bytes()).unwrap_or(Method::GET), body: true, credentials: true }
    }

    /// The request after a redirect with `status`: a POST becomes a GET without its body on
    /// 301, 302 and 303 (and every method but HEAD on 303), as browsers and curl do;
    /// credentials stay behind once the chain leaves the first origin (scheme, host, port).
    fn redirected(self, status: u16, same_origin: bool) -> Hop {
        let to_get = match status {
            303 => self.method != Method::HEAD,
            301 | 302 => self.method == Method::POST,
            _ => false,
        };
        Hop {
            method: if to_get { Method::GET } else { self.method },
            body: self.body && !to_get,
            credentials: self.credentials && same_origin,
        }
    }
}

async fn fetch(
    spec: &HttpSpec,
    url: &Url,
    hop: &Hop,
    tls: &TlsContext,
    obs: &mut Observations,
    reach: Reach<'_>,
) -> Result<Response, ProbeError> {
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    obs.phases.clear();
    obs.status = None;
    obs.body = None;

    let mut phase = Instant::now();
    let addrs = match reach.pinned_addrs(&host, port) {
        Some(addrs) => addrs,
        None => resolve(&host, port).await?,
    };
    obs.phases.push(("dns", phase.elapsed()));
    obs.ip = addrs.first().map(|a| a.ip());
    reach.admit(&host, &addrs)?;

    phase = Instant::now();
    let (stream, peer) = connect(&addrs, reach.deadline).await?;
    obs.ip = Some(peer);
    obs.connected = Some(true);
    obs.phases.push(("connect", phase.elapsed()));

    if url.scheme() == "https" {
        phase = Instant::now();
        let (result, certs) = tls.connect(&spec.tls, &host, stream, &[b"http/1.1"]).await;
        obs.certificates = certs;
        let stream = result?;
        obs.phases.push(("tls", phase.elapsed()));
        obs.tls_version = super::tls::version_name(&stream);
        exchange(spec, url, hop, stream, obs).await
    } else {
        exchange(spec, url, hop, stream, obs).await
    }
}

/// Resolves a host (IP literals without a lookup).
pub(super) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ProbeError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| ProbeError::new(FailureReason::Dns, format!("cannot resolve {bare}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(ProbeError::new(FailureReason::Dns, format!("{bare} has no address")));
    }
    Ok(addrs)
}

/// Connects to the first address that accepts, giving up at `deadline` (the check's);
/// returns the stream and the address it reached.
pub(super) async fn connect(
    addrs: &[SocketAddr],
    deadline: tokio::time::Instant,
) -> Result<(TcpStream, IpAddr), ProbeError> {
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok((s, addr.ip()));
            }
            Ok(Err(e)) => last = Some(connect_error(&e)),
            Err(_) => return Err(ProbeError::new(FailureReason::Timeout, format!("connect to {addr}: no answer"))),
        }
    }
    Err(last.unwrap_or_else(|| ProbeError::new(FailureReason::Network, "no address to connect to")))
}

async fn exchange<S>(
    spec: &HttpSpec,
    url: &Url,
    hop: &Hop,
    stream: S,
    obs: &mut Observations,
) -> Result<Response, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let network = |what: &str, e: hyper::Error| ProbeError::new(FailureReason::Network, format!("{what}: {e}"));
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| network("http handshake", e))?;
    // The connection task ends when the request is done and `sender` is dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });

    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let host_header = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let mut request = Request::builder()
        .method(hop.method.clone())
        .uri(path)
        .header(HOST, host_header)
        .header(USER_AGENT, USER_AGENT_VALUE);
    for (name, value) in spec.headers.iter().filter(|(name, _)| hop.credentials || !is_credential(name)) {
        request = request.header(name.as_str(), value.as_str());
    }
    let body = Full::new(Bytes::from(spec.body.clone().filter(|_| hop.body).unwrap_or_default()));
    let request = request
        .body(body)
        .map_err(|e| ProbeError::new(FailureReason::Network, format!("cannot build request: {e}")))?;

    let phase = Instant::now();
    let response = sender.send_request(request).await.map_err(|e| network("request", e))?;
    obs.phases.push(("processing", phase.elapsed()));
    let status = response.status().as_u16();
    obs.status = Some(status);
    obs.http_version = Some(match response.version() {
        hyper::Version::HTTP_09 => 0.9,
        hyper::Version::HTTP_10 => 1.0,
        hyper::Version::HTTP_2 => 2.0,
        hyper::Version::HTTP_3 => 3.0,
        _ => 1.1,
    });
    let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    if spec.keep_headers {
        for (name, value) in response.headers() {
            obs.headers.push((name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()));
        }
    }

    let phase = Instant::now();
    let mut body = response.into_body();
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| network("reading body", e))?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > spec.max_body_bytes {
                return Err(ProbeError::new(
                    FailureReason::BodySize,
                    format!("body larger than {} bytes", spec.max_body_bytes),
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    obs.phases.push(("transfer", phase.elapsed()));
    obs.body = Some(buf.freeze());
    Ok(Response { status, location })
}
