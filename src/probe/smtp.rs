//! SMTP probe — the path the alert mails take: connect, the banner (220), EHLO, STARTTLS
//! when asked (the certificate captured and verified like any TLS probe, so
//! `[CERTIFICATE_EXPIRATION]` works), EHLO again, QUIT (221). `[STATUS]` is the last reply
//! code (221 after a clean QUIT), `[BODY]` the banner. A reply that is not the one the
//! protocol expects fails with reason `smtp_reply`, naming the step and the reply.

use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::reaching::{addresses, connected, finished, host_port};
use super::tls::TlsContext;
use super::{FailureReason, Observations, ProbeError, Reach};
use crate::config::SmtpSpec;

/// Longest reply line read (RFC 5321 allows 512 octets; servers send longer EHLO lines).
const MAX_LINE: usize = 4096;
/// Most lines in one reply.
const MAX_LINES: usize = 100;

/// One side of an SMTP conversation over any stream.
struct Conversation<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conversation<S> {
    /// Reads one reply (every line of a multi-line one): its code and its text.
    async fn reply(&mut self) -> Result<(u16, String), ProbeError> {
        let mut text = String::new();
        for _ in 0..MAX_LINES {
            let mut line = Vec::new();
            let read = (&mut self.io).take(MAX_LINE as u64).read_until(b'\n', &mut line).await;
            let read = read.map_err(|e| ProbeError::new(FailureReason::Network, format!("smtp: {e}")))?;
            if read == 0 {
                return Err(ProbeError::new(FailureReason::Network, "smtp: the server closed the connection"));
            }
            if !line.ends_with(b"\n") {
                return Err(ProbeError::new(
                    FailureReason::Network,
                    format!("smtp: a reply line over {MAX_LINE} bytes"),
                ));
            }
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let (Some(code), sep) = (code, line.as_bytes().get(3).copied()) else {
                return Err(ProbeError::new(FailureReason::Network, format!("smtp: not a reply: \"{}\"", clip(&line))));
            };
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line.get(4..).unwrap_or_default());
            if sep != Some(b'-') {
                return Ok((code, text));
            }
        }
        Err(ProbeError::new(FailureReason::Network, format!("smtp: a reply of more than {MAX_LINES} lines")))
    }

    /// Sends `line` and reads the reply.
    async fn command(&mut self, line: &str) -> Result<(u16, String), ProbeError> {
        let io = self.io.get_mut();
        io.write_all(format!("{line}\r\n").as_bytes()).await.map_err(|e| network(&e))?;
        io.flush().await.map_err(|e| network(&e))?;
        self.reply().await
    }
}

fn network(e: &std::io::Error) -> ProbeError {
    ProbeError::new(FailureReason::Network, format!("smtp: {e}"))
}

/// Server text as a message shows it: one line, at most 200 characters.
fn clip(text: &str) -> String {
    text.lines().next().unwrap_or_default().chars().take(200).collect()
}

/// Fails unless `reply` has the `expected` code.
fn expect(
    step: &str,
    (code, text): (u16, String),
    expected: u16,
    obs: &mut Observations,
) -> Result<String, ProbeError> {
    obs.status = Some(code);
    if code == expected {
        Ok(text)
    } else {
        Err(ProbeError::new(FailureReason::SmtpReply, format!("{step}: {code} {}", clip(&text))))
    }
}

pub(super) async fn observe(
    spec: &SmtpSpec,
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
    spec: &SmtpSpec,
    address: &str,
    tls: &TlsContext,
    reach: Reach<'_>,
    obs: &mut Observations,
) -> Result<(), ProbeError> {
    let (host, port) = host_port(address)?;
    let addrs = addresses(host, port, reach, obs).await?;
    let stream = connected(&addrs, reach, obs).await?;

    let mut phase = Instant::now();
    let mut plain = Conversation { io: BufReader::new(stream) };
    let banner = expect("banner", plain.reply().await?, 220, obs)?;
    obs.body = Some(Bytes::from(banner));
    let extensions = expect("EHLO", plain.command(&format!("EHLO {}", spec.helo)).await?, 250, obs)?;
    obs.phases.push(("greeting", phase.elapsed()));
    if !spec.starttls {
        expect("QUIT", plain.command("QUIT").await?, 221, obs)?;
        return Ok(());
    }
    if !extensions.lines().any(|l| l.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case("STARTTLS"))) {
        return Err(ProbeError::new(FailureReason::Tls, "the server does not offer STARTTLS"));
    }
    expect("STARTTLS", plain.command("STARTTLS").await?, 220, obs)?;
    // Anything the server sent after its answer would be read as if it came over TLS (a
    // command injection, CVE-2011-0411 and kin): refused.
    if !plain.io.buffer().is_empty() {
        return Err(ProbeError::new(FailureReason::SmtpReply, "STARTTLS: the server sent data before the handshake"));
    }
    phase = Instant::now();
    let (secured, certificates) = tls.connect(&spec.tls, host, plain.io.into_inner(), &[]).await;
    obs.certificates = certificates;
    let secured = secured?;
    obs.tls_version = super::tls::version_name(&secured);
    obs.phases.push(("tls", phase.elapsed()));
    let mut secure = Conversation { io: BufReader::new(secured) };
    expect("EHLO after STARTTLS", secure.command(&format!("EHLO {}", spec.helo)).await?, 250, obs)?;
    if let Some((user, password)) = &spec.auth {
        // AUTH PLAIN (RFC 4616): authorization id empty, then the user and the password.
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{}", password.expose()));
        phase = Instant::now();
        let answer = secure.command(&format!("AUTH PLAIN {token}")).await?;
        obs.phases.push(("auth", phase.elapsed()));
        if answer.0 != 235 {
            obs.status = Some(answer.0);
            let message = format!("AUTH as {user}: {} {}", answer.0, clip(&answer.1));
            return Err(ProbeError::new(FailureReason::SmtpReply, message));
        }
    }
    expect("QUIT", secure.command("QUIT").await?, 221, obs)?;
    Ok(())
}
