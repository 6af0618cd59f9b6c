//! TCP probe: connect (optionally TLS), optionally send a line and expect a regex. The
//! `tls` kind is the same connection with the handshake as the whole conversation.

use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::http::{connect, resolve};
use super::tls::TlsContext;
use super::{FailureReason, Observations, ProbeError};
use crate::config::{RegexSpec, TcpSpec, TlsSpec};

/// How much of the answer is read while waiting for `expect` to match.
const MAX_READ: usize = 64 * 1024;

pub(super) async fn observe(
    spec: &TcpSpec,
    address: &str,
    tls: &TlsContext,
    deadline: tokio::time::Instant,
) -> Result<Observations, ProbeError> {
    let talk = Talk { send: spec.send.as_deref(), expect: spec.expect.as_ref() };
    connect_and_talk(address, spec.tls.as_ref(), talk, tls, deadline).await
}

/// The `tls` kind: connect and complete a TLS handshake.
pub(super) async fn observe_tls(
    spec: &TlsSpec,
    address: &str,
    tls: &TlsContext,
    deadline: tokio::time::Instant,
) -> Result<Observations, ProbeError> {
    connect_and_talk(address, Some(spec), Talk { send: None, expect: None }, tls, deadline).await
}

/// What to say and what to wait for once connected.
struct Talk<'a> {
    send: Option<&'a str>,
    expect: Option<&'a RegexSpec>,
}

async fn connect_and_talk(
    address: &str,
    tls_spec: Option<&TlsSpec>,
    Talk { send, expect }: Talk<'_>,
    tls: &TlsContext,
    deadline: tokio::time::Instant,
) -> Result<Observations, ProbeError> {
    let started = Instant::now();
    let mut obs = Observations::default();
    let (host, port) = address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| ProbeError::new(FailureReason::Network, format!("\"{address}\" is not host:port")))?;

    let mut phase = Instant::now();
    let addrs = resolve(host, port).await?;
    obs.phases.push(("dns", phase.elapsed()));
    obs.ip = addrs.first().map(|a| a.ip());
    phase = Instant::now();
    let stream = connect(&addrs, deadline).await.map_err(|e| e.with(obs.clone()))?;
    obs.ip = stream.peer_addr().ok().map(|a| a.ip());
    obs.connected = Some(true);
    obs.phases.push(("connect", phase.elapsed()));

    let result = match tls_spec {
        Some(tls_spec) => {
            phase = Instant::now();
            let (result, certs) = tls.connect(tls_spec, host, stream, &[]).await;
            obs.certificates = certs;
            match result {
                Ok(stream) => {
                    obs.phases.push(("tls", phase.elapsed()));
                    obs.tls_version = super::tls::version_name(&stream);
                    converse(send, expect, stream, &mut obs).await
                }
                Err(e) => Err(e),
            }
        }
        None => converse(send, expect, stream, &mut obs).await,
    };
    match result {
        Ok(()) => {
            obs.response_time = Some(started.elapsed());
            Ok(obs)
        }
        Err(e) => Err(e.with(obs)),
    }
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    send: Option<&str>,
    expect: Option<&RegexSpec>,
    mut stream: S,
    obs: &mut Observations,
) -> Result<(), ProbeError> {
    let io = |what: &str, e: std::io::Error| ProbeError::new(FailureReason::Network, format!("{what}: {e}"));
    if let Some(send) = send {
        stream.write_all(send.as_bytes()).await.map_err(|e| io("send", e))?;
        stream.flush().await.map_err(|e| io("send", e))?;
    }
    let Some(expect) = expect else {
        return Ok(());
    };
    let phase = Instant::now();
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let text = String::from_utf8_lossy(&buf);
        if expect.0.is_match(&text) {
            break;
        }
        if buf.len() >= MAX_READ {
            obs.body = Some(buf.freeze());
            return Err(ProbeError::new(
                FailureReason::Expect,
                format!("no match for /{}/ in the first {MAX_READ} bytes", expect.0.as_str()),
            ));
        }
        let n = stream.read_buf(&mut buf).await.map_err(|e| io("read", e))?;
        if n == 0 {
            let got = String::from_utf8_lossy(&buf).chars().take(80).collect::<String>();
            obs.body = Some(buf.freeze());
            return Err(ProbeError::new(
                FailureReason::Expect,
                format!("answer {got:?} does not match /{}/", expect.0.as_str()),
            ));
        }
    }
    obs.phases.push(("expect", phase.elapsed()));
    obs.body = Some(buf.freeze());
    Ok(())
}
