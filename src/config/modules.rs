//! `modules:` — probe settings for the blackbox-compatible `/probe` endpoint — and
//! `server.probe_endpoint:`, which turns that endpoint on and limits where it may connect.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Secret;
use super::fields::{Errors, duration_field, is_slug};
use super::kinds;
use super::raw::{RawCheck, RawModule, RawProbeEndpoint};
use super::secrets::{self, Strength};
use super::source::SourceFile;
use super::*;
use crate::condition::Condition;

const DEFAULT_MODULE_TIMEOUT: Duration = Duration::from_secs(10);

/// A `/probe` module: a check without targets (the target comes with each request).
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub check: Check,
}

/// Where `/probe` may connect.
#[derive(Debug, Clone)]
pub enum AllowRule {
    /// An IP network, e.g. `127.0.0.0/8`.
    Network(ipnet::IpNet),
    /// A host name pattern, e.g. `*.laichau.example`.
    Host(glob::Pattern),
}

/// Whether a header carries credentials (`Authorization`, `Cookie`, `Proxy-Authorization`, or a
/// name that speaks of a token, key, secret, session, password or auth): never sent to another
/// origin than the configured one, and never by `/probe` to a target nobody vetted.
pub fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "authorization" | "proxy-authorization" | "cookie")
        || ["token", "secret", "api-key", "apikey", "auth", "session", "password"].iter().any(|w| name.contains(w))
}

impl AllowRule {
    /// Whether a host pattern of `rules` admits the name `host`.
    pub fn admits_name(rules: &[AllowRule], host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        host.parse::<std::net::IpAddr>().is_err()
            && rules.iter().any(|r| matches!(r, AllowRule::Host(p) if p.matches(&host)))
    }

    /// Whether a network of `rules` holds `ip`.
    pub fn admits_ip(rules: &[AllowRule], ip: std::net::IpAddr) -> bool {
        rules.iter().any(|r| matches!(r, AllowRule::Network(n) if n.contains(&ip)))
    }
}

/// `server.probe_endpoint`.
#[derive(Debug, Clone, Default)]
pub struct ProbeEndpoint {
    /// Off by default: `/probe` makes Vigil connect wherever a caller asks.
    pub enabled: bool,
    /// When not empty, the only targets `/probe` accepts.
    pub allow: Vec<AllowRule>,
    /// When set, `/probe` needs `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// The DNS server that resolves `/probe` targets (else the system's resolver).
    pub resolver: Option<std::net::SocketAddr>,
}

pub(super) fn probe_endpoint(
    file: &SourceFile,
    raw: &RawProbeEndpoint,
    base: &std::path::Path,
    errors: &mut Errors,
) -> ProbeEndpoint {
    let token = secrets::read(
        file,
        "server.probe_endpoint.token",
        raw.token.as_ref(),
        raw.token_file.as_ref(),
        Strength::AdminToken,
        base,
        errors,
    );
    let mut allow = Vec::new();
    for (i, entry) in raw.allow.iter().enumerate() {
        let path = format!("server.probe_endpoint.allow[{i}]");
        if let Ok(net) = entry.parse::<ipnet::IpNet>() {
            allow.push(AllowRule::Network(net));
        } else if let Ok(ip) = entry.parse::<std::net::IpAddr>() {
            allow.push(AllowRule::Network(ipnet::IpNet::from(ip)));
        } else if !entry.is_empty()
            && entry.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*'))
        {
            match glob::Pattern::new(&entry.to_ascii_lowercase()) {
                Ok(p) => allow.push(AllowRule::Host(p)),
                Err(e) => errors.at(file, &path, format!("invalid host pattern \"{entry}\": {e}")),
            }
        } else {
            errors.at(
                file,
                &path,
                format!("\"{entry}\" is not a network (10.0.0.0/8), an address, or a host pattern (*.example.org)"),
            );
        }
    }
    let resolver = raw.resolver.as_ref().and_then(|r| match r.parse::<std::net::SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.at(file, "server.probe_endpoint.resolver", format!("\"{r}\" is not an address:port"));
            None
        }
    });
    ProbeEndpoint { enabled: raw.enabled, allow, token, resolver }
}

pub(super) fn modules(file: &SourceFile, raw: &BTreeMap<String, RawModule>, errors: &mut Errors) -> Vec<Module> {
    if raw.is_empty() {
        return builtin_modules();
    }
    raw.iter().filter_map(|(name, m)| module(file, name, m, errors)).collect()
}

fn module(file: &SourceFile, name: &str, raw: &RawModule, errors: &mut Errors) -> Option<Module> {
    let path = format!("modules.{name}");
    if !is_slug(name) {
        errors.at(
            file,
            &path,
            format!("\"{name}\" is not a valid module name (lowercase letters, digits, '-' and '_')"),
        );
        return None;
    }
    let as_check = RawCheck {
        http: raw.http.clone(),
        tcp: raw.tcp.clone(),
        tls: raw.tls.clone(),
        icmp: raw.icmp.clone(),
        dns: raw.dns.clone(),
        websocket: raw.websocket.clone(),
        ..RawCheck::default()
    };
    let sections = kinds::sections(&as_check);
    if sections.len() != 1 {
        errors.at(file, &path, "a module needs exactly one probe section (http, tcp, tls, icmp, dns or websocket)");
        return None;
    }
    let timeout =
        duration_field(file, &format!("{path}.timeout"), raw.timeout.as_ref(), DEFAULT_MODULE_TIMEOUT, errors);
    let (probe, address) = kinds::probe_spec(file, &path, &as_check, errors)?;
    if let (Some(_), Some(field)) = (address, kinds::address_field(probe.kind())) {
        errors.at(
            file,
            &format!("{path}.{}.{field}", probe.kind()),
            format!("modules take the target from the request; remove \"{field}\""),
        );
        return None;
    }
    let kind = Some(probe.kind());
    let mut conditions = kinds::parse_conditions(file, &format!("{path}.conditions"), &raw.conditions, kind, errors);
    let warning_conditions =
        kinds::parse_conditions(file, &format!("{path}.warning_conditions"), &raw.warning_conditions, kind, errors);
    if conditions.is_empty() {
        conditions = default_conditions(probe.kind());
    }
    Some(Module {
        name: name.to_string(),
        check: Check::standalone(name, probe, timeout, conditions, warning_conditions),
    })
}

/// blackbox_exporter's defaults: http accepts 2xx only.
fn default_conditions(kind: Kind) -> Vec<Condition> {
    let texts: Vec<&str> = match kind {
        Kind::Http => vec!["[STATUS] >= 200", "[STATUS] < 300"],
        other => kinds::default_condition(other).into_iter().collect(),
    };
    texts.into_iter().map(|t| Condition::parse(t).expect("default condition parses")).collect()
}

/// The modules available when the configuration defines none: `http_2xx`, `tcp_connect`
/// and `icmp`, as in blackbox_exporter's example configuration.
fn builtin_modules() -> Vec<Module> {
    let http = ProbeSpec::Http(HttpSpec::get(TlsSpec::default()));
    let tcp = ProbeSpec::Tcp(TcpSpec { send: None, expect: None, tls: None });
    let icmp = ProbeSpec::Icmp(IcmpSpec {
        count: 1,
        spacing: Duration::from_millis(200),
        ip_protocol: IpPreference::Auto,
        payload_size: DEFAULT_ICMP_PAYLOAD,
        path: Default::default(),
        sweep: Vec::new(),
    });
    [("http_2xx", http), ("tcp_connect", tcp), ("icmp", icmp)]
        .into_iter()
        .map(|(name, probe)| {
            let conditions = default_conditions(probe.kind());
            Module {
                name: name.into(),
                check: Check::standalone(name, probe, DEFAULT_MODULE_TIMEOUT, conditions, Vec::new()),
            }
        })
        .collect()
}
