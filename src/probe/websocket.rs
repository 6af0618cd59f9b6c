//! WebSocket probe (e-meeting signalling): connect, TLS for `wss://` (certificate captured),
//! the HTTP upgrade, then — with `send` — one text message and the first message back.
//! `[STATUS]` is 101 after the upgrade (the HTTP status when it is refused), `[BODY]` the
//! first message received; phases `upgrade` and `first_message` are timed.

use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use url::Url;

use super::reaching::{addresses, connected, finished};
use super::tls::TlsContext;
use super::{FailureReason, Observations, ProbeError, Reach};
use crate::config::WebsocketSpec;

/// Largest message (and frame) accepted from the server.
const MAX_MESSAGE: usize = 1 << 20;

pub(super) async fn observe(
    spec: &WebsocketSpec,
    address: &str,
    tls: &TlsContext,
    reach: Reach<'_>,
) -> Result<Observations, ProbeError> {
    let started = Instant::now();
    let mut obs = Observations::default();
    let result = talk(spec, address, tls, reach, &mut obs).await;
    finished(started, obs, result)
}

async fn talk(
    spec: &WebsocketSpec,
    address: &str,
    tls: &TlsContext,
    reach: Reach<'_>,
    obs: &mut Observations,
) -> Result<(), ProbeError> {
    let url = Url::parse(address).map_err(|e| ProbeError::new(FailureReason::Network, format!("invalid URL: {e}")))?;
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(if url.scheme() == "wss" { 443 } else { 80 });
    let addrs = addresses(&host, port, reach, obs).await?;
    let stream = connected(&addrs, reach, obs).await?;
    if url.scheme() == "wss" {
        let phase = Instant::now();
        let (result, certs) = tls.connect(&spec.tls, &host, stream, &[b"http/1.1"]).await;
        obs.certificates = certs;
        let stream = result?;
        obs.phases.push(("tls", phase.elapsed()));
        obs.tls_version = super::tls::version_name(&stream);
        converse(spec, &url, stream, obs).await
    } else {
        converse(spec, &url, stream, obs).await
    }
}

async fn converse<S>(spec: &WebsocketSpec, url: &Url, stream: S, obs: &mut Observations) -> Result<(), ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ProbeError::new(FailureReason::Network, format!("websocket request: {e}")))?;
    if let Ok(agent) = concat!("Vigil/", env!("CARGO_PKG_VERSION")).parse() {
        request.headers_mut().insert(hyper::header::USER_AGENT, agent);
    }
    let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
    let phase = Instant::now();
    let (mut ws, response) = match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
        Ok(done) => done,
        Err(WsError::Http(response)) => {
            obs.status = Some(response.status().as_u16());
            let message = format!("upgrade refused: HTTP {}", response.status());
            return Err(ProbeError::new(FailureReason::HttpStatus, message));
        }
        Err(e) => return Err(ProbeError::new(FailureReason::Network, format!("websocket upgrade: {e}"))),
    };
    obs.status = Some(response.status().as_u16());
    obs.phases.push(("upgrade", phase.elapsed()));
    if let Some(text) = &spec.send {
        let phase = Instant::now();
        let failed = |e: WsError| ProbeError::new(FailureReason::Network, format!("websocket: {e}"));
        ws.send(Message::text(text.as_str())).await.map_err(failed)?;
        let first = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => break Bytes::copy_from_slice(t.as_bytes()),
                Some(Ok(Message::Binary(b))) => break b,
                Some(Ok(Message::Close(_))) | None => {
                    return Err(ProbeError::new(FailureReason::Network, "websocket: closed before answering"));
                }
                Some(Ok(_)) => continue, // ping, pong, frame
                Some(Err(e)) => return Err(failed(e)),
            }
        };
        obs.body = Some(first);
        obs.phases.push(("first_message", phase.elapsed()));
    }
    // A courtesy: a server that never completes the closing handshake is not a failure.
    let bye = CloseFrame { code: CloseCode::Normal, reason: "".into() };
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), ws.close(Some(bye))).await;
    Ok(())
}
