//! ICMP probe: `count` echo requests sent `spacing` apart — without waiting for replies,
//! so a dead host costs no more time than a live one — then loss, RTT min/avg/max and
//! jitter, and with `sizes:` the path MTU (see [`mtu`]). One socket per address family and
//! set of socket options (surge-ping's), shared by every probe using them.

mod mtu;
mod options;
mod socket;

/// Decodes `message` as an answer arriving on each kind of socket (raw and datagram, IPv4
/// and IPv6); for the fuzz target, which only asks that it never panics.
#[doc(hidden)]
pub fn decode_any(message: &[u8]) -> usize {
    let sources = [std::net::IpAddr::from([127, 0, 0, 1]), std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)];
    let mut decoded = 0;
    for from in sources {
        for kind in [socket2::Type::RAW, socket2::Type::DGRAM] {
            decoded += usize::from(socket::decode_packet(message, from, kind, 0x5647).is_some());
        }
    }
    decoded
}

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use socket::{Answer, EchoSocket};
use surge_ping::{AsyncSocket, Config, ICMP};

use super::{FailureReason, Observations, ProbeError};
use crate::config::{IcmpPath, IcmpSpec, IpPreference};

/// Loss and round-trip times of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IcmpStats {
    pub sent: u16,
    pub received: u16,
    /// Lost share in percent (0–100).
    pub loss_percent: f64,
    pub rtt_min: Duration,
    pub rtt_avg: Duration,
    pub rtt_max: Duration,
    /// Mean absolute difference of consecutive round-trip times.
    pub jitter: Duration,
    /// TTL (IPv4) or hop limit (IPv6) of the first reply.
    pub reply_hop_limit: Option<u8>,
    /// With `sizes:`: the largest IP packet that got through unfragmented, in bytes (0
    /// when none did).
    pub path_mtu: Option<u16>,
    /// Each answered echo's round trip, in the order sent (the smoke graph's raw data).
    #[serde(skip)]
    pub rtts: Vec<Duration>,
}

impl IcmpStats {
    /// Computes the statistics from the round-trip times of the echoes that came back, in
    /// the order they were sent.
    pub fn from_rtts(sent: u16, rtts: &[Duration]) -> IcmpStats {
        let received = rtts.len() as u16;
        let loss_percent = if sent == 0 { 100.0 } else { f64::from(sent - received) * 100.0 / f64::from(sent) };
        if rtts.is_empty() {
            return IcmpStats { sent, received, loss_percent, ..IcmpStats::default() };
        }
        let total: Duration = rtts.iter().sum();
        let jitter = if rtts.len() < 2 {
            Duration::ZERO
        } else {
            let diffs: Duration = rtts.windows(2).map(|w| w[0].abs_diff(w[1])).sum();
            diffs / (rtts.len() as u32 - 1)
        };
        IcmpStats {
            sent,
            received,
            loss_percent,
            rtt_min: *rtts.iter().min().unwrap_or(&Duration::ZERO),
            rtt_avg: total / u32::from(received),
            rtt_max: *rtts.iter().max().unwrap_or(&Duration::ZERO),
            jitter,
            reply_hop_limit: None,
            path_mtu: None,
            rtts: rtts.to_vec(),
        }
    }

    /// The run's echoes as the store keeps them: `sent:rtt,rtt,…` (milliseconds, two
    /// decimals; the lost ones are `sent` minus the count).
    pub fn echoes(&self) -> String {
        let rtts: Vec<String> = self.rtts.iter().map(|r| format!("{:.2}", r.as_secs_f64() * 1000.0)).collect();
        format!("{}:{}", self.sent, rtts.join(","))
    }
}

/// Reads [`IcmpStats::echoes`] back: echoes sent, and the round trips (ms) that came back.
/// `None` for text that is not such a record.
pub fn parse_echoes(text: &str) -> Option<(u16, Vec<f64>)> {
    let (sent, rtts) = text.split_once(':')?;
    let sent: u16 = sent.parse().ok()?;
    let rtts: Vec<f64> = if rtts.is_empty() {
        Vec::new()
    } else {
        rtts.split(',').map(|r| r.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)).collect::<Option<_>>()?
    };
    (rtts.len() <= usize::from(sent)).then_some((sent, rtts))
}

/// The shared ICMP sockets, opened on first use: one per address family and set of
/// socket options.
#[derive(Default)]
pub struct IcmpClients {
    sockets: Mutex<HashMap<(bool, IcmpPath), Arc<EchoSocket>>>,
    permission_logged: AtomicBool,
}

impl std::fmt::Debug for IcmpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IcmpClients")
    }
}

impl IcmpClients {
    fn socket(&self, ip: IpAddr, path: IcmpPath) -> Result<Arc<EchoSocket>, ProbeError> {
        let kind = if ip.is_ipv4() { ICMP::V4 } else { ICMP::V6 };
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let key = (ip.is_ipv6(), path);
        match sockets.get(&key) {
            Some(s) if s.is_receiving() => return Ok(s.clone()),
            Some(_) => tracing::error!("the ICMP reply reader stopped; opening a new socket"),
            None => {}
        }
        // A raw socket first (root or CAP_NET_RAW); surge-ping falls back to the
        // unprivileged datagram socket when raw is refused.
        let config = Config::builder().kind(kind).sock_type_hint(socket2::Type::RAW).build();
        match AsyncSocket::new(&config) {
            Ok(socket) => {
                tune_socket(&socket, kind);
                options::apply(&socket, kind, &path).map_err(|e| {
                    ProbeError::new(FailureReason::Internal, format!("cannot set up the ICMP socket: {e}"))
                })?;
                let shared = Arc::new(EchoSocket::new(socket, kind));
                sockets.insert(key, shared.clone());
                Ok(shared)
            }
            Err(e) => {
                if !self.permission_logged.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, "cannot open an ICMP socket: grant CAP_NET_RAW (setcap cap_net_raw+ep /usr/bin/vigil, or AmbientCapabilities=CAP_NET_RAW in the systemd unit) or allow unprivileged ping with sysctl net.ipv4.ping_group_range=\"0 2147483647\"");
                }
                Err(ProbeError::new(FailureReason::Permission, format!("cannot open an ICMP socket: {e}")))
            }
        }
    }
}

/// Replies to every probe arrive on one shared socket (and on loopback, a raw socket also
/// sees its own requests): the default ~200 KB buffer dropped replies with 200 probes of 3
/// echoes in flight. Asks for 4 MB: forced when privileged, else capped by `rmem_max`;
/// raw sockets also filter out what is not a reply.
const ICMP_RECEIVE_BUFFER: usize = 4 << 20;

fn tune_socket(socket: &AsyncSocket, kind: ICMP) {
    use std::os::fd::BorrowedFd;
    // SAFETY: the descriptor belongs to `socket`, which outlives `fd`.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.get_native_sock()) };
    if nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBufForce, &ICMP_RECEIVE_BUFFER).is_err() {
        let _ = socket2::SockRef::from(&fd).set_recv_buffer_size(ICMP_RECEIVE_BUFFER);
    }
    if socket.get_type() == socket2::Type::RAW {
        only_replies_and_errors(&fd, kind);
    }
}

/// Linux's `ICMP_FILTER` (raw IPv4, `<linux/icmp.h>`; not in libc) and `ICMP6_FILTER`
/// (raw IPv6, `<netinet/icmp6.h>`) options share this number.
const ICMP_FILTER: libc::c_int = 1;

/// A raw ICMP socket receives every ICMP packet the host gets — on loopback even its own
/// echo requests, and for IPv6 neighbour discovery too: keep echo replies and the errors
/// that quote a request (unreachable, time exceeded; IPv6 also "packet too big").
fn only_replies_and_errors(fd: &std::os::fd::BorrowedFd<'_>, kind: ICMP) {
    use std::os::fd::AsRawFd;
    let (level, kept, words): (libc::c_int, &[usize], usize) = match kind {
        ICMP::V4 => (libc::SOL_RAW, &[0, 3, 11], 1),
        ICMP::V6 => (libc::IPPROTO_ICMPV6, &[129, 1, 2, 3], 8),
    };
    // One bit per ICMP type; a set bit blocks the type.
    let mut blocked = [u32::MAX; 8];
    for &t in kept {
        blocked[t / 32] &= !(1 << (t % 32));
    }
    // SAFETY: a valid descriptor, and a pointer to `words` u32s.
    let _ = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            ICMP_FILTER,
            blocked.as_ptr().cast(),
            (words * std::mem::size_of::<u32>()) as libc::socklen_t,
        )
    };
}

/// Resolves `host` to one address of the preferred family.
async fn resolve(host: &str, preference: IpPreference) -> Result<IpAddr, ProbeError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| ProbeError::new(FailureReason::Dns, format!("cannot resolve {host}: {e}")))?
        .map(|a| a.ip())
        .collect();
    let pick = match preference {
        IpPreference::V4 => addrs.iter().find(|a| a.is_ipv4()),
        IpPreference::V6 => addrs.iter().find(|a| a.is_ipv6()),
        IpPreference::Auto => addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()),
    };
    pick.copied()
        .ok_or_else(|| ProbeError::new(FailureReason::Dns, format!("{host} has no address of the wanted family")))
}

pub(super) async fn observe(
    spec: &IcmpSpec,
    host: &str,
    timeout: Duration,
    clients: &IcmpClients,
) -> Result<Observations, ProbeError> {
    let mut obs = Observations::default();
    let started = std::time::Instant::now();
    let ip = resolve(host, spec.ip_protocol).await?;
    obs.phases.push(("resolve", started.elapsed()));
    obs.ip = Some(ip);
    let setup = std::time::Instant::now();
    let socket = clients.socket(ip, spec.path).map_err(|e| e.with(obs.clone()))?;
    obs.phases.push(("setup", setup.elapsed()));
    // Every echo must be answered before the check's deadline.
    let sending = spec.spacing * u32::from(spec.count.saturating_sub(1));
    let wait = timeout.saturating_sub(sending).saturating_sub(Duration::from_millis(20)).max(Duration::from_millis(50));
    let deadline = tokio::time::Instant::now() + timeout.saturating_sub(started.elapsed());
    let (answers, largest_payload) = tokio::join!(
        socket.ping(ip, spec.count, spec.spacing, spec.payload_size, wait),
        mtu::sweep(&socket, ip, &spec.sweep, deadline)
    );
    let mut rtts = Vec::with_capacity(answers.len());
    let (mut hop_limit, mut unreachable) = (None, None);
    for answer in answers.into_iter().flatten() {
        match answer {
            Answer::Reply { rtt, hop_limit: h } => {
                rtts.push(rtt);
                hop_limit = hop_limit.or(h);
            }
            Answer::Error(message) => unreachable = unreachable.or(Some(message)),
        }
    }
    // A sweep that got no size through says 0 (a condition on it fails and shows it).
    let path_mtu = (!spec.sweep.is_empty()).then(|| largest_payload.map_or(0, |p| p.saturating_add(mtu::headers(ip))));
    let stats = IcmpStats { reply_hop_limit: hop_limit, path_mtu, ..IcmpStats::from_rtts(spec.count, &rtts) };
    obs.phases.push(("rtt", stats.rtt_avg));
    obs.connected = Some(stats.received > 0);
    obs.response_time = Some(stats.rtt_avg);
    obs.icmp = Some(stats);
    if let (Some(message), false) = (unreachable, obs.connected == Some(true)) {
        return Err(ProbeError::new(FailureReason::Unreachable, message).with(obs));
    }
    Ok(obs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn statistics_table() {
        /// name, sent, rtts (ms), loss %, min, avg, max, jitter (ms)
        type Case<'a> = (&'a str, u16, &'a [u64], f64, u64, u64, u64, u64);
        let cases: &[Case] = &[
            ("all answered", 4, &[10, 20, 10, 20], 0.0, 10, 15, 20, 10),
            ("half lost", 4, &[10, 30], 50.0, 10, 20, 30, 20),
            ("one echo", 1, &[7], 0.0, 7, 7, 7, 0),
            ("all lost", 5, &[], 100.0, 0, 0, 0, 0),
        ];
        for (name, sent, rtts, loss, min, avg, max, jitter) in cases {
            let rtts: Vec<Duration> = rtts.iter().map(|v| ms(*v)).collect();
            let s = IcmpStats::from_rtts(*sent, &rtts);
            assert_eq!(s.loss_percent, *loss, "{name}: loss");
            assert_eq!(
                (s.rtt_min, s.rtt_avg, s.rtt_max, s.jitter),
                (ms(*min), ms(*avg), ms(*max), ms(*jitter)),
                "{name}"
            );
        }
    }
}
