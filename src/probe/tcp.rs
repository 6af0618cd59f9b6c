//! TCP probe: connect (optionally TLS), optionally send a line and expect a regex. The
//! `tls` kind is the same connection with the handshake as the whole conversation.

use std::time::Instant;

use bytes::BytesMut;
use regex_automata::Anchored;
use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::start;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::http::{connect, resolve};
use super::tls::TlsContext;
use super::{FailureReason, Observations, ProbeError, Reach};
use crate::config::{RegexSpec, TcpSpec, TlsSpec};

/// How much of the answer is read while waiting for `expect` to match.
const MAX_READ: usize = 64 * 1024;

pub(super) async fn observe(
    spec: &TcpSpec,
    address: &str,
    tls: &TlsContext,
    reach: Reach<'_>,
) -> Result<Observations, ProbeError> {
    let talk = Talk { send: spec.send.as_deref(), expect: spec.expect.as_ref() };
    connect_and_talk(address, spec.tls.as_ref(), talk, tls, reach).await
}

/// The `tls` kind: connect and complete a TLS handshake.
pub(super) async fn observe_tls(
    spec: &TlsSpec,
    address: &str,
    tls: &TlsContext,
    reach: Reach<'_>,
) -> Result<Observations, ProbeError> {
    connect_and_talk(address, Some(spec), Talk { send: None, expect: None }, tls, reach).await
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
    reach: Reach<'_>,
) -> Result<Observations, ProbeError> {
    let started = Instant::now();
    let mut obs = Observations::default();
    let (host, port) = address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| ProbeError::new(FailureReason::Network, format!("\"{address}\" is not host:port")))?;

    let mut phase = Instant::now();
    let addrs = match reach.pinned_addrs(host, port) {
        Some(addrs) => addrs,
        None => resolve(host, port).await?,
    };
    obs.phases.push(("dns", phase.elapsed()));
    obs.ip = addrs.first().map(|a| a.ip());
    reach.admit(host, &addrs)?;
    phase = Instant::now();
    let (stream, peer) = connect(&addrs, reach.deadline).await.map_err(|e| e.with(obs.clone()))?;
    obs.ip = Some(peer);
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

/// Decides whether what was read so far matches `expect`, in time linear in what is read:
/// a lazy DFA is fed only the new bytes of each read (a server that drips its answer one
/// byte at a time used to make every read re-run the regex over the whole buffer).
/// Patterns the DFA cannot run (a Unicode `\b` meeting non-ASCII text) fall back to
/// re-running the regex over the buffer.
enum Matcher<'a> {
    Streaming(Box<Stream<'a>>),
    Rescan(&'a regex::Regex),
}

/// The lazy DFA, its cache, where it stands, and how much of the buffer it has read.
struct Stream<'a> {
    dfa: DFA,
    cache: Cache,
    state: LazyStateID,
    fed: usize,
    regex: &'a regex::Regex,
}

impl<'a> Matcher<'a> {
    fn new(regex: &'a regex::Regex) -> Matcher<'a> {
        let config = DFA::config().unicode_word_boundary(true);
        let streaming = DFA::builder().configure(config).build(regex.as_str()).ok().and_then(|dfa| {
            let mut cache = dfa.create_cache();
            let state = dfa.start_state(&mut cache, &start::Config::new().anchored(Anchored::No)).ok()?;
            Some(Matcher::Streaming(Box::new(Stream { dfa, cache, state, fed: 0, regex })))
        });
        streaming.unwrap_or(Matcher::Rescan(regex))
    }

    /// Whether `buf` (what was read so far, grown since the last call) holds a match, the
    /// end of `buf` counting as the end of the text as it did for the whole-buffer regex.
    fn matches(&mut self, buf: &[u8]) -> bool {
        if let Matcher::Streaming(s) = self {
            match s.feed(buf) {
                Some(matched) => return matched,
                None => *self = Matcher::Rescan(s.regex),
            }
        }
        let Matcher::Rescan(regex) = self else { return false };
        regex.is_match(&String::from_utf8_lossy(buf))
    }
}

impl Stream<'_> {
    /// Feeds the new bytes; `None` when the DFA gave up (a Unicode `\b` met non-ASCII).
    fn feed(&mut self, buf: &[u8]) -> Option<bool> {
        for &byte in &buf[self.fed..] {
            let next = self.dfa.next_state(&mut self.cache, self.state, byte).ok().filter(|n| !n.is_quit())?;
            self.state = next;
            if next.is_match() {
                return Some(true);
            }
        }
        self.fed = buf.len();
        // Match states come one transition late: ask as if the text ended here.
        Some(self.dfa.next_eoi_state(&mut self.cache, self.state).is_ok_and(|s| s.is_match()))
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
    let mut matcher = Matcher::new(&expect.0);
    loop {
        if matcher.matches(&buf) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` in chunks of `step` bytes; returns after how many bytes a match was seen.
    fn first_match(pattern: &str, text: &[u8], step: usize) -> Option<usize> {
        let regex = regex::Regex::new(pattern).expect("pattern");
        let mut matcher = Matcher::new(&regex);
        (step..=text.len() + step - 1)
            .step_by(step)
            .map(|end| end.min(text.len()))
            .find(|end| matcher.matches(&text[..*end]))
    }

    /// The streaming matcher answers exactly as the regex over the whole buffer does, at
    /// every read, whatever the chunking (issue #14, item 9: it no longer re-reads the buffer).
    #[test]
    fn streaming_agrees_with_the_whole_buffer_regex() {
        let cases: &[(&str, &[u8])] = &[
            ("^220 ", b"220 mail.laichau.example ESMTP\r\n"),
            ("^220 ", b"554 go away\r\n"),
            ("ESMTP$", b"220 mail ESMTP"),
            ("ready\\r\\n", b"+OK ready\r\nmore"),
            ("(?i)dịch vụ", "Cổng DỊCH VỤ công".as_bytes()),
            ("\\bOK\\b", b"status: OK."),
            ("\\bOK\\b", "trạng thái: OK.".as_bytes()),
            ("[0-9]{3} ", b"abc"),
        ];
        for (pattern, text) in cases {
            let regex = regex::Regex::new(pattern).expect("pattern");
            let whole = (1..=text.len()).find(|end| regex.is_match(&String::from_utf8_lossy(&text[..*end])));
            for step in [1, 2, 7, 1024] {
                let expected = whole.map(|end| end.div_ceil(step) * step).map(|e| e.min(text.len()));
                assert_eq!(first_match(pattern, text, step), expected, "/{pattern}/ in steps of {step}");
            }
        }
    }

    #[test]
    fn each_byte_is_fed_once() {
        let regex = regex::Regex::new("^never$").expect("pattern");
        let mut matcher = Matcher::new(&regex);
        let drip = vec![b'x'; 4096];
        for end in 1..=drip.len() {
            assert!(!matcher.matches(&drip[..end]));
            match &matcher {
                Matcher::Streaming(s) => assert_eq!(s.fed, end),
                Matcher::Rescan(_) => panic!("an ASCII pattern must stream"),
            }
        }
    }
}
