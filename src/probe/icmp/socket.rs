//! One ICMP socket per address family, shared by every probe: probes send their echo
//! requests through it, and one task reads every reply and hands it to the probe that
//! waits for it. Sockets and packets are surge-ping's and pnet's; what is ours is the
//! bookkeeping, done for a whole run at once (one registration, one wake-up per run)
//! rather than per echo.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pnet_packet::Packet;
use pnet_packet::icmp::{IcmpTypes, echo_request::MutableEchoRequestPacket};
use pnet_packet::icmpv6::{Icmpv6Types, echo_request::MutableEchoRequestPacket as MutableEcho6RequestPacket};
use surge_ping::{AsyncSocket, ICMP, IcmpPacket, Icmpv4Packet, Icmpv6Packet};
use tokio::sync::Notify;

/// What came back for one echo request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// An echo reply, after this round trip, with the reply's TTL or hop limit.
    Reply { rtt: Duration, hop_limit: Option<u8> },
    /// An ICMP error quoting the request (unreachable, time exceeded), or a send that failed.
    Error(String),
}

/// An echo request on the wire: its destination and sequence number.
type EchoKey = (IpAddr, u16);

/// The answers of one run, by echo index; `None` for the echoes nothing came back for.
pub type Answers = Vec<Option<Answer>>;

/// A run in progress: the answers so far, and a wake-up for when all are in.
struct Run {
    answers: Mutex<Answers>,
    all_in: Notify,
}

impl Run {
    /// Records the answer of echo `index`; wakes the run when it was the last one missing.
    /// An answer that comes after the run has taken its answers (the receiving task had
    /// just unlisted the echo when the run gave up waiting) is dropped.
    fn answer(&self, index: usize, answer: Answer) {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot @ None) = answers.get_mut(index) {
            *slot = Some(answer);
            if answers.iter().all(Option::is_some) {
                self.all_in.notify_one();
            }
        }
    }
}

/// An echo request on its way: which run it belongs to, and when it left.
struct Pending {
    run: Arc<Run>,
    index: usize,
    sent: Instant,
}

/// State shared by the probes and the receiving task.
struct Shared {
    socket: AsyncSocket,
    kind: ICMP,
    /// Identifier of our echo requests (raw sockets see every ICMP packet of the host;
    /// datagram sockets get only their own, the kernel sets the identifier).
    ident: u16,
    next_sequence: AtomicU16,
    pending: Mutex<HashMap<EchoKey, Pending>>,
}

/// A shared ICMP socket and the task reading its replies (stopped when this is dropped).
pub struct EchoSocket {
    shared: Arc<Shared>,
    receiver: tokio::task::JoinHandle<()>,
}

impl Drop for EchoSocket {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// Identifiers differ between the sockets of one process, and likely between processes.
fn next_ident() -> u16 {
    static SOCKETS: AtomicU16 = AtomicU16::new(0);
    (std::process::id() as u16).wrapping_add(SOCKETS.fetch_add(1, Ordering::Relaxed).wrapping_mul(7919))
}

impl EchoSocket {
    /// Wraps an opened socket and starts reading its replies.
    pub fn new(socket: AsyncSocket, kind: ICMP) -> EchoSocket {
        let shared = Arc::new(Shared {
            socket,
            kind,
            ident: next_ident(),
            next_sequence: AtomicU16::new(0),
            pending: Mutex::new(HashMap::new()),
        });
        let receiver = tokio::spawn(receive(shared.clone()));
        EchoSocket { shared, receiver }
    }

    /// Whether the task reading replies still runs (it ends only by a bug, or when the
    /// runtime that started it shuts down).
    pub fn is_receiving(&self) -> bool {
        !self.receiver.is_finished()
    }

    /// Sends `count` echo requests of `payload_size` bytes to `ip`, `spacing` apart, and
    /// waits up to `wait` after the last one for the answers.
    pub async fn ping(&self, ip: IpAddr, count: u16, spacing: Duration, payload_size: u16, wait: Duration) -> Answers {
        let count = usize::from(count);
        let run = Arc::new(Run { answers: Mutex::new(vec![None; count]), all_in: Notify::new() });
        let mut registered = Registered { shared: &self.shared, keys: Vec::with_capacity(count) };
        let mut packet = vec![0u8; 8 + usize::from(payload_size)];
        let target = SocketAddr::new(ip, 0);
        let first = tokio::time::Instant::now();
        for index in 0..count {
            if index > 0 {
                tokio::time::sleep_until(first + spacing * index as u32).await;
            }
            let sequence = registered.add(ip, Pending { run: run.clone(), index, sent: Instant::now() });
            self.shared.echo_request(&mut packet, sequence);
            if let Err(e) = self.shared.socket.send_to(&mut packet, &target).await {
                run.answer(index, Answer::Error(format!("{ip} unreachable: {e}")));
            }
        }
        let _ = tokio::time::timeout(wait, run.all_in.notified()).await;
        drop(registered);
        std::mem::take(&mut *run.answers.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The echo requests of one run still listed as pending; unlisted when dropped (also when
/// the run is cancelled), so late replies find nobody and nothing leaks.
struct Registered<'a> {
    shared: &'a Shared,
    keys: Vec<EchoKey>,
}

impl Registered<'_> {
    /// Lists an echo request under a sequence number not in use for `ip`, and returns it.
    fn add(&mut self, ip: IpAddr, pending: Pending) -> u16 {
        let mut table = self.shared.pending.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let sequence = self.shared.next_sequence.fetch_add(1, Ordering::Relaxed);
            if let std::collections::hash_map::Entry::Vacant(slot) = table.entry((ip, sequence)) {
                slot.insert(pending);
                self.keys.push((ip, sequence));
                return sequence;
            }
        }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut table = self.shared.pending.lock().unwrap_or_else(|p| p.into_inner());
        for key in &self.keys {
            table.remove(key);
        }
    }
}

impl Shared {
    /// Writes an echo request with this sequence number into `packet` (header, then payload).
    fn echo_request(&self, packet: &mut [u8], sequence: u16) {
        match self.kind {
            ICMP::V4 => {
                let mut echo = MutableEchoRequestPacket::new(packet).expect("buffer holds the echo header");
                echo.set_icmp_type(IcmpTypes::EchoRequest);
                echo.set_identifier(self.ident);
                echo.set_sequence_number(sequence);
                echo.set_checksum(0);
                let sum = pnet_packet::util::checksum(echo.packet(), 1);
                echo.set_checksum(sum);
            }
            ICMP::V6 => {
                // The kernel fills in the ICMPv6 checksum (RFC 3542, 3.1).
                let mut echo = MutableEcho6RequestPacket::new(packet).expect("buffer holds the echo header");
                echo.set_icmpv6_type(Icmpv6Types::EchoRequest);
                echo.set_identifier(self.ident);
                echo.set_sequence_number(sequence);
            }
        }
    }

    /// Reads one packet's meaning (see [`decode_packet`]).
    fn decode(&self, message: &[u8], from: IpAddr) -> Option<(EchoKey, Result<Option<u8>, String>)> {
        decode_packet(message, from, self.socket.get_type(), self.ident)
    }
}

/// Reads one packet's meaning: the echo it answers (destination, sequence), and either the
/// reply's TTL or hop limit or what went wrong. `None` for what is not an answer to us.
/// Whatever the bytes, it returns (fuzzed: `vigil::fuzzing::icmp`).
pub(super) fn decode_packet(
    message: &[u8],
    from: IpAddr,
    socket_type: socket2::Type,
    ident: u16,
) -> Option<(EchoKey, Result<Option<u8>, String>)> {
    let (packet, error) = match from {
        IpAddr::V4(source) => {
            let p = Icmpv4Packet::decode(message, socket_type, source, Ipv4Addr::UNSPECIFIED).ok()?;
            let error = (p.get_icmp_type() != IcmpTypes::EchoReply)
                .then(|| icmp4_error(p.get_icmp_type().0, p.get_icmp_code().0));
            (IcmpPacket::V4(p), error)
        }
        IpAddr::V6(source) => {
            let p = Icmpv6Packet::decode(message, source).ok()?;
            let error = (p.get_icmpv6_type() != Icmpv6Types::EchoReply)
                .then(|| icmp6_error(p.get_icmpv6_type().0, p.get_icmpv6_code().0));
            (IcmpPacket::V6(p), error)
        }
    };
    if socket_type == socket2::Type::RAW && packet.get_identifier().into_u16() != ident {
        return None; // another program's ping
    }
    let destination = packet.real_destination();
    let answer = match error {
        None => Ok(match &packet {
            IcmpPacket::V4(p) => p.get_ttl(),
            IcmpPacket::V6(p) => Some(p.get_max_hop_limit()).filter(|h| *h > 0),
        }),
        Some(error) => Err(format!("{destination} unreachable: {error} (from {from})")),
    };
    Some(((destination, packet.get_sequence().into_u16()), answer))
}

/// Consecutive receive errors after which the reader stops, so that the socket is opened
/// anew on next use.
const MAX_RECEIVE_ERRORS: u32 = 50;

/// Reads every packet that arrives and hands each answer to its run. A receive error is
/// waited out with a growing pause (a persistent one used to spin a core at 100 %); after
/// [`MAX_RECEIVE_ERRORS`] in a row the reader ends and the socket is replaced.
async fn receive(shared: Arc<Shared>) {
    // A jumbo don't-fragment echo comes back whole: room for any IP packet.
    let mut buffer = vec![0u8; 65_536];
    let mut errors = 0u32;
    loop {
        let (size, from) = match shared.socket.recv_from(&mut buffer).await {
            Ok(received) => {
                errors = 0;
                received
            }
            Err(e) => {
                errors += 1;
                if errors == 1 {
                    tracing::warn!(error = %e, "cannot read ICMP answers; retrying");
                }
                if errors >= MAX_RECEIVE_ERRORS {
                    tracing::error!(error = %e, "ICMP answers keep failing; the socket will be opened anew");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10u64 << errors.min(6))).await;
                continue;
            }
        };
        let arrived = Instant::now();
        let Some((key, answer)) = shared.decode(&buffer[..size], from.ip()) else { continue };
        let pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        if let Some(Pending { run, index, sent }) = pending {
            let answer = match answer {
                Ok(hop_limit) => Answer::Reply { rtt: arrived.saturating_duration_since(sent), hop_limit },
                Err(message) => Answer::Error(message),
            };
            run.answer(index, answer);
        }
    }
}

/// ICMPv4 error types and codes in words (RFC 792).
fn icmp4_error(kind: u8, code: u8) -> String {
    match (kind, code) {
        (3, 0) => "network unreachable".into(),
        (3, 1) => "host unreachable".into(),
        (3, 2) => "protocol unreachable".into(),
        (3, 3) => "port unreachable".into(),
        (3, 4) => "fragmentation needed".into(),
        (3, 9 | 10 | 13) => "communication administratively prohibited".into(),
        (3, _) => format!("destination unreachable (code {code})"),
        (11, _) => "time exceeded".into(),
        _ => format!("ICMP type {kind} code {code}"),
    }
}

/// ICMPv6 error types and codes in words (RFC 4443).
fn icmp6_error(kind: u8, code: u8) -> String {
    match (kind, code) {
        (1, 0) => "no route to destination".into(),
        (1, 1) => "communication administratively prohibited".into(),
        (1, 3) => "address unreachable".into(),
        (1, 4) => "port unreachable".into(),
        (1, _) => format!("destination unreachable (code {code})"),
        (2, _) => "packet too big".into(),
        (3, _) => "time exceeded".into(),
        _ => format!("ICMPv6 type {kind} code {code}"),
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    fn reply(ms: u64) -> Answer {
        Answer::Reply { rtt: Duration::from_millis(ms), hop_limit: Some(64) }
    }

    #[test]
    fn a_run_wakes_once_every_echo_is_answered_and_ignores_late_answers() {
        let run = Run { answers: Mutex::new(vec![None; 2]), all_in: Notify::new() };
        run.answer(1, reply(2));
        run.answer(1, reply(9)); // a duplicate reply counts once
        assert!(run.all_in.notified().now_or_never().is_none(), "one of two answered: still waiting");
        run.answer(0, Answer::Error("host unreachable".into()));
        assert!(run.all_in.notified().now_or_never().is_some(), "woken when all are in");
        let answers = std::mem::take(&mut *run.answers.lock().unwrap());
        assert_eq!(answers, vec![Some(Answer::Error("host unreachable".into())), Some(reply(2))]);
        // The receiving task may hand over an answer just after the run took its answers.
        run.answer(1, reply(3));
    }
}
