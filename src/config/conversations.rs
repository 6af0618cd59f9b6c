//! The probe sections that hold a conversation with a server beyond a connection:
//! `smtp:` (banner, EHLO, STARTTLS, QUIT), `websocket:` (upgrade, a message, its answer) and
//! `sip:` (an OPTIONS request and its final answer), `ntp:` (one time request).

use std::path::Path;

use super::fields::Errors;
use super::kinds::{check_address, check_host, tls_spec};
use super::raw::{RawNtp, RawSip, RawSmtpProbe, RawWebsocket};
use super::source::SourceFile;
use super::{ProbeSpec, TlsSpec};

/// `smtp:` — a mail server's conversation up to QUIT.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpSpec {
    /// STARTTLS after EHLO (default true): a server that does not offer it fails.
    pub starttls: bool,
    /// How the server's certificate is checked when STARTTLS is used.
    pub tls: TlsSpec,
    /// The name given in EHLO.
    pub helo: String,
    /// Log in after STARTTLS (AUTH PLAIN) with this user and password: the account the
    /// alert mails use still works.
    pub auth: Option<(String, super::Secret)>,
}

/// `websocket:` — upgrade (ws/wss), then optionally send a text message and wait for the
/// first message back.
#[derive(Debug, Clone, PartialEq)]
pub struct WebsocketSpec {
    pub send: Option<String>,
    pub tls: TlsSpec,
}

/// How a SIP request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    Tcp,
    Tls,
}

impl SipTransport {
    /// As in a Via header.
    pub fn as_str(self) -> &'static str {
        match self {
            SipTransport::Udp => "UDP",
            SipTransport::Tcp => "TCP",
            SipTransport::Tls => "TLS",
        }
    }
}

/// `sip:` — an OPTIONS request to a SIP server (a trunk, a registrar).
#[derive(Debug, Clone, PartialEq)]
pub struct SipSpec {
    pub transport: SipTransport,
    /// How the server's certificate is checked over TLS.
    pub tls: TlsSpec,
}

/// `ntp:` — one NTP request to a time server: its offset, stratum and root distance.
#[derive(Debug, Clone, PartialEq)]
pub struct NtpSpec {}

pub(super) fn ntp_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawNtp,
    errors: &mut Errors,
) -> Option<(ProbeSpec, Option<String>)> {
    let mut ok = true;
    if let Some(host) = &raw.host {
        ok &= check_host(file, &format!("{path}.host"), host, true, errors);
    }
    ok.then_some((ProbeSpec::Ntp(NtpSpec {}), raw.host.clone()))
}

pub(super) fn sip_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawSip,
    base: &Path,
    errors: &mut Errors,
) -> Option<(ProbeSpec, Option<String>)> {
    let mut ok = true;
    if let Some(address) = &raw.address {
        ok &= check_address(file, &format!("{path}.address"), address, errors);
    }
    let transport = match raw.transport.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("udp") => SipTransport::Udp,
        Some("tcp") => SipTransport::Tcp,
        Some("tls") => SipTransport::Tls,
        Some(other) => {
            errors.at(file, &format!("{path}.transport"), format!("\"{other}\" is not udp, tcp or tls"));
            ok = false;
            SipTransport::Udp
        }
    };
    let has_tls_settings = raw.insecure_skip_verify || raw.ca_file.is_some() || raw.server_name.is_some();
    if has_tls_settings && transport != SipTransport::Tls {
        errors.at(file, path, "TLS settings (insecure_skip_verify, ca_file, server_name) need transport: tls");
        ok = false;
    }
    let tls =
        tls_spec(file, path, raw.insecure_skip_verify, raw.ca_file.as_ref(), raw.server_name.as_ref(), base, errors)?;
    ok.then_some((ProbeSpec::Sip(SipSpec { transport, tls }), raw.address.clone()))
}

pub(super) fn smtp_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawSmtpProbe,
    base: &Path,
    errors: &mut Errors,
) -> Option<(ProbeSpec, Option<String>)> {
    let mut ok = true;
    if let Some(address) = &raw.address {
        ok &= check_address(file, &format!("{path}.address"), address, errors);
    }
    let helo = raw.helo.clone().unwrap_or_else(|| "vigil.invalid".into());
    if helo.is_empty() || helo.len() > 255 || helo.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.at(file, &format!("{path}.helo"), format!("\"{helo}\" is not a host name for EHLO"));
        ok = false;
    }
    let starttls = raw.starttls.unwrap_or(true);
    let has_tls_settings = raw.insecure_skip_verify || raw.ca_file.is_some() || raw.server_name.is_some();
    if has_tls_settings && !starttls {
        errors.at(file, path, "TLS settings (insecure_skip_verify, ca_file, server_name) need starttls: true");
        ok = false;
    }
    let auth = match &raw.username {
        Some(_) if !starttls => {
            errors.at(file, &format!("{path}.username"), "a login needs starttls: true (no password in clear)");
            ok = false;
            None
        }
        Some(_) if raw.password.is_none() && raw.password_file.is_none() => {
            errors.at(file, &format!("{path}.username"), "a login needs password or password_file");
            ok = false;
            None
        }
        Some(user) => {
            let at = format!("{path}.password");
            let strength = super::secrets::Strength::Credential;
            let password = super::secrets::read(
                file,
                &at,
                raw.password.as_ref(),
                raw.password_file.as_ref(),
                strength,
                base,
                errors,
            );
            ok &= password.is_some();
            password.map(|p| (user.clone(), p))
        }
        None if raw.password.is_some() || raw.password_file.is_some() => {
            errors.at(file, &format!("{path}.password"), "a password goes with a username");
            ok = false;
            None
        }
        None => None,
    };
    let tls =
        tls_spec(file, path, raw.insecure_skip_verify, raw.ca_file.as_ref(), raw.server_name.as_ref(), base, errors)?;
    ok.then_some((ProbeSpec::Smtp(SmtpSpec { starttls, tls, helo, auth }), raw.address.clone()))
}

pub(super) fn websocket_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawWebsocket,
    base: &Path,
    errors: &mut Errors,
) -> Option<(ProbeSpec, Option<String>)> {
    let mut ok = true;
    if let Some(url) = &raw.url {
        ok &= check_ws_url(file, &format!("{path}.url"), url, errors);
    }
    if raw.send.as_ref().is_some_and(|s| s.len() > 64 * 1024) {
        errors.at(file, &format!("{path}.send"), "a message of at most 64 KiB");
        ok = false;
    }
    let tls =
        tls_spec(file, path, raw.insecure_skip_verify, raw.ca_file.as_ref(), raw.server_name.as_ref(), base, errors)?;
    ok.then_some((ProbeSpec::Websocket(WebsocketSpec { send: raw.send.clone(), tls }), raw.url.clone()))
}

/// A `ws://` or `wss://` URL with a host.
pub(super) fn check_ws_url(file: &SourceFile, path: &str, url: &str, errors: &mut Errors) -> bool {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "ws" | "wss") && u.host_str().is_some_and(|h| !h.is_empty()) => true,
        Ok(_) => {
            errors.at(file, path, format!("URL \"{url}\" must start with ws:// or wss:// and name a host"));
            false
        }
        Err(e) => {
            errors.at(file, path, format!("invalid URL \"{url}\": {e}"));
            false
        }
    }
}
