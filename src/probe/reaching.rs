//! What the conversation probes (smtp, websocket, sip, ntp) do first and last: split
//! `host:port`, resolve it (or take the pinned addresses), admit them, connect; and turn
//! the conversation's end into observations with its response time.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::TcpStream;

use super::http::{connect, resolve};
use super::{FailureReason, Observations, ProbeError, Reach};

/// `host:port` split (the port required).
pub(super) fn host_port(address: &str) -> Result<(&str, u16), ProbeError> {
    address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| ProbeError::new(FailureReason::Network, format!("\"{address}\" is not host:port")))
}

/// The addresses of `host:port` this probe may reach (timed as phase `dns`).
pub(super) async fn addresses(
    host: &str,
    port: u16,
    reach: Reach<'_>,
    obs: &mut Observations,
) -> Result<Vec<SocketAddr>, ProbeError> {
    let phase = Instant::now();
    let addrs = match reach.pinned_addrs(host, port) {
        Some(addrs) => addrs,
        None => resolve(host, port).await?,
    };
    obs.phases.push(("dns", phase.elapsed()));
    reach.admit(host, &addrs)?;
    Ok(addrs)
}

/// A TCP connection to the first of `addrs` that answers (timed as phase `connect`).
pub(super) async fn connected(
    addrs: &[SocketAddr],
    reach: Reach<'_>,
    obs: &mut Observations,
) -> Result<TcpStream, ProbeError> {
    let phase = Instant::now();
    let (stream, peer) = connect(addrs, reach.deadline).await?;
    obs.ip = Some(peer);
    obs.connected = Some(true);
    obs.phases.push(("connect", phase.elapsed()));
    Ok(stream)
}

/// The observations of a conversation that began at `started`: with its response time
/// when it succeeded, attached to its error when not.
pub(super) fn finished(
    started: Instant,
    mut obs: Observations,
    result: Result<(), ProbeError>,
) -> Result<Observations, ProbeError> {
    match result {
        Ok(()) => {
            obs.response_time = Some(started.elapsed());
            Ok(obs)
        }
        Err(e) => Err(e.with(obs)),
    }
}
