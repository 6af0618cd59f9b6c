//! Validation of the probe sections (`http:`, `tcp:`, `tls:`, `icmp:`, `dns:`, `exec:`,
//! `heartbeat:`, `smtp:`): one function per kind, plus what each kind measures and the address
//! field its targets use.

use std::path::Path;
use std::time::Duration;

use super::fields::{Errors, duration_field};
pub use super::kind::{Kind, KindSpec};
use super::raw::{RawCheck, RawDns, RawExec, RawHeartbeat, RawHttp, RawTcp, RawTlsProbe};
use super::secrets::{self, Strength};
use super::source::SourceFile;
use super::*;
use crate::condition::Condition;

pub(super) const DEFAULT_MAX_BODY: u64 = 1 << 20;
pub(super) const DEFAULT_MAX_REDIRECTS: u32 = 10;
const DEFAULT_MAX_OUTPUT: usize = 64 * 1024;

/// The probe sections a raw check sets.
pub(super) fn sections(raw: &RawCheck) -> Vec<&'static str> {
    let set = [
        raw.http.is_some(),
        raw.tcp.is_some(),
        raw.tls.is_some(),
        raw.icmp.is_some(),
        raw.dns.is_some(),
        raw.exec.is_some(),
        raw.heartbeat.is_some(),
        raw.smtp.is_some(),
        raw.websocket.is_some(),
        raw.sip.is_some(),
        raw.ntp.is_some(),
        raw.snmp.is_some(),
        raw.steps.is_some(),
    ];
    Kind::ALL.iter().zip(set).filter(|(_, on)| *on).map(|(k, _)| k.as_str()).collect()
}

/// The section names, for error messages.
pub(super) fn section_names() -> Vec<&'static str> {
    Kind::ALL.iter().map(|k| k.as_str()).collect()
}

/// The field a kind's targets give (`url`, `address`, `host`), if it takes targets.
pub(super) fn address_field(kind: Kind) -> Option<&'static str> {
    kind.spec().address_field
}

/// The condition a check of this kind gets when it sets none.
pub fn default_condition(kind: Kind) -> Option<&'static str> {
    kind.spec().default_condition
}

pub(super) fn parse_conditions(
    file: &SourceFile,
    path: &str,
    raw: &[String],
    kind: Option<Kind>,
    errors: &mut Errors,
) -> Vec<Condition> {
    let mut out = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let key = format!("{path}[{i}]");
        match Condition::parse(text) {
            Ok(c) => match kind.and_then(|kind| c.placeholders().find(|p| !kind.measures(*p)).map(|p| (kind, p))) {
                Some((kind, missing)) => errors.at(file, &key, format!("{missing} is not measured by {kind} checks")),
                None => out.push(c),
            },
            Err(e) => errors.at(file, &key, format!("invalid condition \"{text}\": {e}")),
        }
    }
    out
}

/// The probe spec and its address (None when the address comes from `targets:`).
pub(super) fn probe_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawCheck,
    errors: &mut Errors,
) -> Option<(ProbeSpec, Option<String>)> {
    let base = file.path.parent().unwrap_or(Path::new(""));
    if let Some(http) = &raw.http {
        return http_spec(file, &format!("{path}.http"), http, base, errors);
    }
    if raw.steps.is_some() {
        return super::steps::steps_spec(file, path, raw, base, errors);
    }
    if let Some(tcp) = &raw.tcp {
        return tcp_spec(file, &format!("{path}.tcp"), tcp, base, errors);
    }
    if let Some(tls) = &raw.tls {
        return tls_probe_spec(file, &format!("{path}.tls"), tls, base, errors);
    }
    if let Some(icmp) = &raw.icmp {
        return super::icmp::icmp_spec(file, &format!("{path}.icmp"), icmp, errors);
    }
    if let Some(dns) = &raw.dns {
        return dns_spec(file, &format!("{path}.dns"), dns, errors);
    }
    if let Some(exec) = &raw.exec {
        return exec_spec(file, &format!("{path}.exec"), exec, errors);
    }
    if let Some(heartbeat) = &raw.heartbeat {
        return heartbeat_spec(file, &format!("{path}.heartbeat"), heartbeat, base, errors);
    }
    if let Some(smtp) = &raw.smtp {
        return super::conversations::smtp_spec(file, &format!("{path}.smtp"), smtp, base, errors);
    }
    if let Some(ntp) = &raw.ntp {
        return super::conversations::ntp_spec(file, &format!("{path}.ntp"), ntp, errors);
    }
    if let Some(sip) = &raw.sip {
        return super::conversations::sip_spec(file, &format!("{path}.sip"), sip, base, errors);
    }
    if let Some(snmp) = &raw.snmp {
        return super::snmp::snmp_spec(file, &format!("{path}.snmp"), snmp, base, errors);
    }
    if let Some(ws) = &raw.websocket {
        return super::conversations::websocket_spec(file, &format!("{path}.websocket"), ws, base, errors);
    }
    None
}

/// Checks a target address for a kind; true if valid.
pub(super) fn check_target_address(
    file: &SourceFile,
    path: &str,
    kind: Kind,
    value: &str,
    errors: &mut Errors,
) -> bool {
    match kind {
        Kind::Http => check_url(file, path, value, errors),
        Kind::Websocket => super::conversations::check_ws_url(file, path, value, errors),
        Kind::Tcp | Kind::Tls | Kind::Smtp | Kind::Sip => check_address(file, path, value, errors),
        Kind::Icmp => check_host(file, path, value, false, errors),
        Kind::Dns | Kind::Ntp | Kind::Snmp => check_host(file, path, value, true, errors),
        Kind::Exec | Kind::Heartbeat | Kind::Steps => true,
    }
}

/// A host name or IP address (with an optional port when `port_allowed`).
pub(super) fn check_host(file: &SourceFile, path: &str, host: &str, port_allowed: bool, errors: &mut Errors) -> bool {
    let bare = match host.rsplit_once(':') {
        Some((h, p))
            if port_allowed && !h.is_empty() && p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')) =>
        {
            h
        }
        _ => host,
    };
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    let is_ip = bare.parse::<std::net::IpAddr>().is_ok();
    let is_name = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !(is_ip || is_name) {
        let expected = if port_allowed {
            "a host name or IP address, with an optional :port"
        } else {
            "a host name or IP address"
        };
        errors.at(file, path, format!("\"{host}\" is not {expected}"));
    }
    is_ip || is_name
}

fn tls_probe_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawTlsProbe,
    base: &Path,
    errors: &mut Errors,
) -> Option<(ProbeSpec, Option<String>)> {
    let mut ok = true;
    if let Some(address) = &raw.address {
        ok &= check_address(file, &format!("{path}.address"), address, errors);
    }
    let tls =
        tls_spec(file, path, raw.insecure_skip_verify, raw.ca_file.as_ref(), raw.server_name.as_ref(), base, errors)?;
    ok.then_some((ProbeSpec::Tls(tls), raw.address.clone()))
}

/// Record types the dns probe asks for.
pub const DNS_TYPES: [&str; 8] = ["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "PTR"];

fn dns_spec(file: &SourceFile, path: &str, raw: &RawDns, errors: &mut Errors) -> Option<(ProbeSpec, Option<String>)> {
    let mut ok = true;
    if let Some(host) = &raw.host {
        ok &= check_host(file, &format!("{path}.host"), host, true, errors);
    }
    let query_name = raw.query_name.clone().unwrap_or_default();
    if query_name.is_empty() {
        errors.at(file, &format!("{path}.query_name"), "query_name is required (the name to look up)");
        ok = false;
    }
    let query_type = raw.query_type.as_deref().unwrap_or("A").to_ascii_uppercase();
    if !DNS_TYPES.contains(&query_type.as_str()) {
        errors.at(
            file,
            &format!("{path}.query_type"),
            format!("unknown query_type \"{query_type}\" (expected one of {})", DNS_TYPES.join(", ")),
        );
        ok = false;
    }
    let transport = match raw.transport.as_deref() {
        None | Some("udp") => DnsTransport::Udp,
        Some("tcp") => DnsTransport::Tcp,
        Some(other) => {
            errors.at(
                file,
                &format!("{path}.transport"),
                format!("unknown transport \"{other}\" (expected udp or tcp)"),
            );
            ok = false;
            DnsTransport::Udp
        }
    };
    ok.then_some((ProbeSpec::Dns(DnsSpec { query_name, query_type, transport }), raw.host.clone()))
}

fn exec_spec(file: &SourceFile, path: &str, raw: &RawExec, errors: &mut Errors) -> Option<(ProbeSpec, Option<String>)> {
    let Some(program) = raw.command.first() else {
        errors.at(file, &format!("{path}.command"), "command is required: the program and its arguments, as a list");
        return None;
    };
    if program.is_empty() {
        errors.at(file, &format!("{path}.command[0]"), "the program name is empty");
        return None;
    }
    for name in raw.env.keys() {
        if name.is_empty() || name.contains('=') {
            errors.at(file, &format!("{path}.env.{name}"), format!("invalid environment variable name \"{name}\""));
            return None;
        }
    }
    let spec = ExecSpec {
        command: raw.command.clone(),
        env: raw.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        perfdata: raw.perfdata.clone(),
        max_output_bytes: raw.max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT),
    };
    // Shown on pages as the target's address: the program only, since its arguments may
    // carry a password (`-p "${DB_PASS}"`).
    Some((ProbeSpec::Exec(spec), Some(program.clone())))
}

fn heartbeat_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawHeartbeat,
    base: &Path,
    errors: &mut Errors,
) -> Option<(ProbeSpec, Option<String>)> {
    if raw.token.is_none() && raw.token_file.is_none() {
        errors.at(file, path, "heartbeat needs a token (or token_file)");
        return None;
    }
    let token_path = format!("{path}.token");
    let token = secrets::read(
        file,
        &token_path,
        raw.token.as_ref(),
        raw.token_file.as_ref(),
        Strength::HeartbeatToken,
        base,
        errors,
    )?;
    // The token is a URL path segment.
    if !token.expose().chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        errors.at(file, &token_path, "the token may hold only letters, digits, '-' and '_'");
        return None;
    }
    let Some(period_text) = &raw.period else {
        errors.at(file, path, "heartbeat needs a period (e.g. 24h)");
        return None;
    };
    let period = duration_field(file, &format!("{path}.period"), Some(period_text), Duration::ZERO, errors);
    if period.is_zero() {
        return None;
    }
    let grace = duration_field(file, &format!("{path}.grace"), raw.grace.as_ref(), period / 10, errors);
    Some((ProbeSpec::Heartbeat(HeartbeatSpec { token, period, grace }), Some("heartbeat".into())))
}

pub(super) fn http_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawHttp,
    base: &Path,
    errors: &mut Errors,
) -> Option<(ProbeSpec, Option<String>)> {
    let method = raw.method.clone().unwrap_or_else(|| "GET".into());
    let known = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];
    let mut ok = true;
    if !known.contains(&method.as_str()) {
        errors.at(
            file,
            &format!("{path}.method"),
            format!("unknown method \"{method}\" (expected one of {})", known.join(", ")),
        );
        ok = false;
    }
    for name in raw.headers.keys() {
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.at(file, &format!("{path}.headers.{name}"), format!("invalid header name \"{name}\""));
            ok = false;
        }
    }
    if let Some(url) = &raw.url {
        ok &= check_url(file, &format!("{path}.url"), url, errors);
    }
    let spec = HttpSpec {
        method,
        headers: raw.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        body: raw.body.clone(),
        follow_redirects: raw.follow_redirects.unwrap_or(true),
        max_redirects: raw.max_redirects.unwrap_or(DEFAULT_MAX_REDIRECTS),
        max_body_bytes: raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
        tls: tls_spec(file, path, raw.insecure_skip_verify, raw.ca_file.as_ref(), None, base, errors)?,
        allow_insecure_redirects: raw.allow_insecure_redirects,
        keep_headers: false,
    };
    ok.then_some((ProbeSpec::Http(spec), raw.url.clone()))
}

pub(super) fn check_url(file: &SourceFile, path: &str, url: &str, errors: &mut Errors) -> bool {
    match url::Url::parse(url) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            errors.at(file, path, format!("URL \"{url}\" must start with http:// or https://"));
            false
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            errors.at(file, path, format!("URL \"{url}\" has no host"));
            false
        }
        Ok(_) => true,
        Err(e) => {
            errors.at(file, path, format!("invalid URL \"{url}\": {e}"));
            false
        }
    }
}

pub(super) fn check_address(file: &SourceFile, path: &str, address: &str, errors: &mut Errors) -> bool {
    let valid = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid {
        errors.at(file, path, format!("\"{address}\" is not host:port (expected e.g. meet.laichau.example:443)"));
    }
    valid
}

pub(super) fn tls_spec(
    file: &SourceFile,
    path: &str,
    insecure: bool,
    ca_file: Option<&String>,
    server_name: Option<&String>,
    base: &Path,
    errors: &mut Errors,
) -> Option<TlsSpec> {
    let ca_file = match ca_file {
        Some(ca) => {
            let full = base.join(ca);
            if !full.is_file() {
                errors.at(file, &format!("{path}.ca_file"), format!("CA file \"{ca}\" does not exist"));
                return None;
            }
            Some(full)
        }
        None => None,
    };
    Some(TlsSpec { insecure_skip_verify: insecure, ca_file, server_name: server_name.cloned() })
}

fn tcp_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawTcp,
    base: &Path,
    errors: &mut Errors,
) -> Option<(ProbeSpec, Option<String>)> {
    let mut ok = true;
    if let Some(address) = &raw.address {
        ok &= check_address(file, &format!("{path}.address"), address, errors);
    }
    let expect = match &raw.expect {
        Some(re) => match regex::Regex::new(re) {
            Ok(r) => Some(RegexSpec(r)),
            Err(e) => {
                let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                errors.at(file, &format!("{path}.expect"), format!("invalid regex \"{re}\": {first}"));
                ok = false;
                None
            }
        },
        None => None,
    };
    let has_tls_settings = raw.insecure_skip_verify || raw.ca_file.is_some() || raw.server_name.is_some();
    if has_tls_settings && !raw.tls {
        errors.at(file, path, "TLS settings (insecure_skip_verify, ca_file, server_name) need tls: true");
        ok = false;
    }
    let tls = if raw.tls {
        Some(tls_spec(
            file,
            path,
            raw.insecure_skip_verify,
            raw.ca_file.as_ref(),
            raw.server_name.as_ref(),
            base,
            errors,
        )?)
    } else {
        None
    };
    ok.then_some((ProbeSpec::Tcp(TcpSpec { send: raw.send.clone(), expect, tls }), raw.address.clone()))
}
