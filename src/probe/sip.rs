//! SIP probe (e-meeting trunks): one `OPTIONS` request over UDP, TCP or TLS, and the final
//! answer (`[SIP_STATUS]`). Over UDP the request is sent again on RFC 3261's timer E
//! (500 ms, doubling) until the deadline, and only an answer carrying this request's
//! Call-ID and Via branch counts — a stray or forged datagram is ignored; provisional
//! answers (1xx) are waited past.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;

use super::reaching::{addresses, connected, finished, host_port};
use super::tls::TlsContext;
use super::{FailureReason, Observations, ProbeError, Reach};
use crate::config::{SipSpec, SipTransport};

/// Largest answer read.
const MAX_ANSWER: usize = 64 * 1024;
/// RFC 3261 T1: the first UDP retransmission interval.
const T1: Duration = Duration::from_millis(500);

/// This request's identity, to recognise its answer.
struct Ids {
    call_id: String,
    branch: String,
    tag: String,
}

impl Ids {
    fn new() -> Ids {
        let hex = || {
            let mut b = [0u8; 8];
            let _ = SystemRandom::new().fill(&mut b);
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        };
        Ids { call_id: format!("{}@vigil", hex()), branch: format!("z9hG4bK{}", hex()), tag: hex() }
    }
}

/// The OPTIONS request to `host:port`, sent from `local`.
fn request(ids: &Ids, transport: SipTransport, host: &str, port: u16, local: SocketAddr) -> String {
    let via = local.to_string();
    let local_ip = match local {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    format!(
        "OPTIONS sip:{host}:{port} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {via};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:vigil@{local_ip}>;tag={tag}\r\n\
         To: <sip:{host}:{port}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:vigil@{via}>\r\n\
         Accept: application/sdp\r\n\
         User-Agent: Vigil/{version}\r\n\
         Content-Length: 0\r\n\r\n",
        transport = transport.as_str(),
        branch = ids.branch,
        tag = ids.tag,
        call_id = ids.call_id,
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// The status code of `answer` if it is a SIP response to this request (its Call-ID and
/// Via branch); None for anything else.
fn status_of(answer: &[u8], ids: &Ids) -> Option<u16> {
    let text = std::str::from_utf8(answer).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let mut status = lines.next()?.strip_prefix("SIP/2.0 ")?.split(' ');
    let code: u16 = status.next()?.parse().ok().filter(|c| (100..700).contains(c))?;
    let header = |name: &str, short: &str| -> Vec<&str> {
        head.split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name) || n.trim().eq_ignore_ascii_case(short))
            .map(|(_, v)| v.trim())
            .collect()
    };
    let call_matches = header("Call-ID", "i").first() == Some(&ids.call_id.as_str());
    let via_matches = header("Via", "v").first().is_some_and(|v| v.contains(&format!("branch={}", ids.branch)));
    (call_matches && via_matches).then_some(code)
}

pub(super) async fn observe(
    spec: &SipSpec,
    address: &str,
    tls: &TlsContext,
    reach: Reach<'_>,
) -> Result<Observations, ProbeError> {
    let started = Instant::now();
    let mut obs = Observations::default();
    let result = ask(spec, address, tls, reach, &mut obs).await;
    finished(started, obs, result)
}

async fn ask(
    spec: &SipSpec,
    address: &str,
    tls: &TlsContext,
    reach: Reach<'_>,
    obs: &mut Observations,
) -> Result<(), ProbeError> {
    let (host, port) = host_port(address)?;
    let addrs = addresses(host, port, reach, obs).await?;
    let ids = Ids::new();
    let code = match spec.transport {
        SipTransport::Udp => over_udp(&addrs, host, port, &ids, reach.deadline, obs).await?,
        SipTransport::Tcp | SipTransport::Tls => {
            let stream = connected(&addrs, reach, obs).await?;
            let local = stream.local_addr().map_err(|e| ProbeError::new(FailureReason::Network, e.to_string()))?;
            let text = request(&ids, spec.transport, host, port, local);
            if spec.transport == SipTransport::Tls {
                let phase = Instant::now();
                let (result, certs) = tls.connect(&spec.tls, host, stream, &[]).await;
                obs.certificates = certs;
                let stream = result?;
                obs.phases.push(("tls", phase.elapsed()));
                over_stream(stream, &text, &ids).await?
            } else {
                over_stream(stream, &text, &ids).await?
            }
        }
    };
    obs.sip_status = Some(code);
    Ok(())
}

/// Sends over UDP (again on timer E) and waits for this request's final answer.
async fn over_udp(
    addrs: &[SocketAddr],
    host: &str,
    port: u16,
    ids: &Ids,
    deadline: tokio::time::Instant,
    obs: &mut Observations,
) -> Result<u16, ProbeError> {
    let peer = *addrs.first().ok_or_else(|| ProbeError::new(FailureReason::Dns, "no address"))?;
    let bind: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    let io = |e: std::io::Error| {
        let reason = if e.kind() == std::io::ErrorKind::ConnectionRefused {
            FailureReason::Refused
        } else {
            FailureReason::Network
        };
        ProbeError::new(reason, format!("sip: {e}"))
    };
    let socket = UdpSocket::bind(bind).await.map_err(io)?;
    socket.connect(peer).await.map_err(io)?;
    obs.ip = Some(peer.ip());
    let local = socket.local_addr().map_err(io)?;
    let text = request(ids, SipTransport::Udp, host, port, local);
    let mut wait = T1;
    let mut buf = vec![0u8; MAX_ANSWER];
    loop {
        socket.send(text.as_bytes()).await.map_err(io)?;
        let resend_at = tokio::time::Instant::now() + wait;
        loop {
            let received = tokio::select! {
                r = socket.recv(&mut buf) => r.map_err(io)?,
                _ = tokio::time::sleep_until(resend_at.min(deadline)) => break,
            };
            match status_of(&buf[..received], ids) {
                Some(code) if code >= 200 => {
                    obs.connected = Some(true);
                    return Ok(code);
                }
                Some(_) => {
                    // Provisional: the server is there; stop resending and wait for the final one.
                    obs.connected = Some(true);
                    wait = Duration::from_secs(3600);
                }
                None => {} // not ours
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProbeError::new(FailureReason::Timeout, "sip: no answer to OPTIONS"));
        }
        wait = (wait * 2).min(Duration::from_secs(4));
    }
}

/// Sends over a stream and reads answers until this request's final one.
async fn over_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    text: &str,
    ids: &Ids,
) -> Result<u16, ProbeError> {
    let network = |e: std::io::Error| ProbeError::new(FailureReason::Network, format!("sip: {e}"));
    stream.write_all(text.as_bytes()).await.map_err(network)?;
    stream.flush().await.map_err(network)?;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(network)?;
        if n == 0 {
            return Err(ProbeError::new(FailureReason::Network, "sip: the server closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
        // Each complete answer (no body is expected from OPTIONS' answers we judge).
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let answer: Vec<u8> = buf.drain(..end + 4).collect();
            let body = content_length(&answer);
            if buf.len() < body {
                // Its body has not fully arrived: put the head back and read on.
                let mut whole = answer;
                whole.extend_from_slice(&buf);
                buf = whole;
                break;
            }
            buf.drain(..body);
            if let Some(code) = status_of(&answer, ids).filter(|c| *c >= 200) {
                return Ok(code);
            }
        }
        if buf.len() > MAX_ANSWER {
            return Err(ProbeError::new(FailureReason::Network, "sip: an answer over 64 KiB"));
        }
    }
}

/// The Content-Length of an answer's head (0 when absent or unreadable).
fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("Content-Length") || n.trim().eq_ignore_ascii_case("l"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}
