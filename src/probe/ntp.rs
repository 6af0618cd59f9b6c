//! NTP probe: one client request (RFC 5905, mode 3) to a time server, sent again every
//! second until the timeout. Only an answer in server mode whose origin timestamp is this
//! request's transmit time counts (a stray or forged datagram is ignored). `[NTP_OFFSET]`
//! is the server's clock minus ours, as an absolute duration (the message gives its sign);
//! `[NTP_STRATUM]` its stratum; `[NTP_ROOT_DISTANCE]` its root delay / 2 + root dispersion.
//! A server that is not synchronized (leap indicator 3) or answers with a kiss-o'-death
//! (stratum 0) fails with reason `ntp`.
//!
//! Written here rather than with an SNTP crate: the ones available do not expose the root
//! delay and dispersion the root distance needs.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::net::UdpSocket;

use super::reaching::{addresses, finished};
use super::{FailureReason, Observations, ProbeError, Reach};

/// Seconds from 1900 (NTP's epoch) to 1970.
const NTP_EPOCH_OFFSET: f64 = 2_208_988_800.0;

/// What a time server answered.
#[derive(Debug, Clone, Serialize)]
pub struct NtpReading {
    /// The server's clock minus ours, in seconds (negative: ours is ahead).
    pub offset_seconds: f64,
    pub stratum: u8,
    pub root_distance: Duration,
    /// Round trip minus the server's processing time.
    pub delay: Duration,
}

impl NtpReading {
    /// The offset without its sign.
    pub fn offset_abs(&self) -> Duration {
        Duration::from_secs_f64(self.offset_seconds.abs().min(1e9))
    }
}

/// Now as NTP seconds.
fn ntp_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0) + NTP_EPOCH_OFFSET
}

/// A 64-bit NTP timestamp (32.32 fixed point) as seconds.
fn timestamp(b: &[u8]) -> f64 {
    let secs = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let frac = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    f64::from(secs) + f64::from(frac) / 4_294_967_296.0
}

/// A 32-bit NTP short (16.16 fixed point) as a duration.
fn short(b: &[u8]) -> Duration {
    Duration::from_secs_f64(f64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])) / 65_536.0)
}

/// The request, with `t1` as its transmit timestamp.
fn request(t1: f64) -> [u8; 48] {
    let mut p = [0u8; 48];
    p[0] = (4 << 3) | 3; // version 4, client mode
    let secs = t1.trunc() as u32;
    let frac = (t1.fract() * 4_294_967_296.0) as u32;
    p[40..44].copy_from_slice(&secs.to_be_bytes());
    p[44..48].copy_from_slice(&frac.to_be_bytes());
    p
}

/// Reads an answer to `sent` (received at `t4`): None when it is not one.
fn answer(reply: &[u8], sent: &[u8; 48], t1: f64, t4: f64) -> Option<Result<NtpReading, ProbeError>> {
    if reply.len() < 48 || reply[0] & 7 != 4 || reply[24..32] != sent[40..48] {
        return None;
    }
    let stratum = reply[1];
    if stratum == 0 {
        let code: String = reply[12..16].iter().map(|b| char::from(*b)).filter(char::is_ascii_graphic).collect();
        return Some(Err(ProbeError::new(FailureReason::Ntp, format!("the server refused: kiss-o'-death {code}"))));
    }
    if reply[0] >> 6 == 3 {
        return Some(Err(ProbeError::new(FailureReason::Ntp, "the server is not synchronized (leap indicator 3)")));
    }
    let (t2, t3) = (timestamp(&reply[32..40]), timestamp(&reply[40..48]));
    let offset_seconds = ((t2 - t1) + (t3 - t4)) / 2.0;
    let delay = ((t4 - t1) - (t3 - t2)).max(0.0);
    let root_distance = short(&reply[4..8]) / 2 + short(&reply[8..12]);
    Some(Ok(NtpReading { offset_seconds, stratum, root_distance, delay: Duration::from_secs_f64(delay.min(1e6)) }))
}

pub(super) async fn observe(address: &str, reach: Reach<'_>) -> Result<Observations, ProbeError> {
    let started = Instant::now();
    let mut obs = Observations::default();
    let result = ask(address, reach, &mut obs).await.map(|reading| obs.ntp = Some(reading));
    finished(started, obs, result)
}

async fn ask(address: &str, reach: Reach<'_>, obs: &mut Observations) -> Result<NtpReading, ProbeError> {
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')) => {
            (h, p.parse::<u16>().unwrap_or(123))
        }
        _ => (address, 123),
    };
    let addrs = addresses(host, port, reach, obs).await?;
    let peer = *addrs.first().ok_or_else(|| ProbeError::new(FailureReason::Dns, "no address"))?;
    let io = |e: std::io::Error| {
        let reason = if e.kind() == std::io::ErrorKind::ConnectionRefused {
            FailureReason::Refused
        } else {
            FailureReason::Network
        };
        ProbeError::new(reason, format!("ntp: {e}"))
    };
    let bind: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    let socket = UdpSocket::bind(bind).await.map_err(io)?;
    socket.connect(peer).await.map_err(io)?;
    obs.ip = Some(peer.ip());
    let mut buf = [0u8; 512];
    loop {
        let t1 = ntp_now();
        let sent = request(t1);
        socket.send(&sent).await.map_err(io)?;
        let resend_at = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let n = tokio::select! {
                r = socket.recv(&mut buf) => r.map_err(io)?,
                _ = tokio::time::sleep_until(resend_at.min(reach.deadline)) => break,
            };
            if let Some(result) = answer(&buf[..n], &sent, t1, ntp_now()) {
                obs.connected = Some(true);
                return result;
            }
        }
        if tokio::time::Instant::now() >= reach.deadline {
            return Err(ProbeError::new(FailureReason::Timeout, "ntp: no answer"));
        }
    }
}
