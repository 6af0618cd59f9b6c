//! `/probe?target=…&module=…`: one probe on demand, answered with blackbox_exporter's
//! metric names, so Prometheus multi-target jobs and dashboards built for blackbox work
//! unchanged. Off unless `server.probe_endpoint.enabled`; limited to its allow-list.
//!
//! size: `render` writes blackbox_exporter's metric names kind by kind, as blackbox lists them.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::{AllowRule, Config, Kind, Target, TargetKey};
use crate::metrics::text;
use crate::probe::{Observations, ProbeOutcome, Prober};

/// blackbox_exporter's default: leave half a second of the scrape timeout for the reply.
const TIMEOUT_OFFSET: Duration = Duration::from_millis(500);

/// Why a `/probe` request was refused, with the HTTP status to answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal { status, message: message.into() }
}

/// Runs the requested probe; returns the exposition text.
pub async fn probe(
    config: &Config,
    prober: &Prober,
    query: Option<&str>,
    scrape_timeout: Option<&str>,
) -> Result<String, Refusal> {
    if !config.server.probe_endpoint.enabled {
        return Err(refuse(403, "the /probe endpoint is off: set server.probe_endpoint.enabled"));
    }
    let mut target = None;
    let mut module_name = "http_2xx".to_string();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "target" => target = Some(v.into_owned()),
            "module" => module_name = v.into_owned(),
            _ => {}
        }
    }
    let target = target.filter(|t| !t.is_empty()).ok_or_else(|| refuse(400, "Target parameter is missing"))?;
    let module = config
        .modules
        .iter()
        .find(|m| m.name == module_name)
        .ok_or_else(|| refuse(400, format!("Unknown module \"{module_name}\"")))?;
    let kind = module.check.probe.kind();
    let address = if kind == Kind::Http && !target.contains("://") { format!("http://{target}") } else { target };
    let host = host_of(kind, &address)
        .ok_or_else(|| refuse(400, format!("invalid target \"{address}\" for a {kind} module")))?;
    // The module's check as it is, unless the scrape leaves less time than its timeout.
    let check = match scrape_budget(scrape_timeout)? {
        Some(budget) if budget < module.check.timeout => {
            let mut shorter = module.check.clone();
            shorter.timeout = budget;
            std::borrow::Cow::Owned(shorter)
        }
        _ => std::borrow::Cow::Borrowed(&module.check),
    };
    let rules = &config.server.probe_endpoint.allow;
    let resolver = config.server.probe_endpoint.resolver;
    let checked = admit(rules, &host, resolver).await?;
    let pinned = checked.first().copied();
    // ICMP and DNS resolve their target themselves: they get the checked address instead of
    // the name. HTTP, TCP and TLS keep the name (Host, SNI) and are checked as they connect.
    let address = match (pinned, kind) {
        (Some(ip), Kind::Icmp) => ip.to_string(),
        (Some(ip), Kind::Dns) => match address.rsplit_once(':') {
            Some((h, port)) if port.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')) => {
                std::net::SocketAddr::new(ip, port.parse().unwrap_or(53)).to_string()
            }
            _ => ip.to_string(),
        },
        _ => address,
    };
    let key = TargetKey { system: "probe".into(), check: module.name.clone(), target: host.clone() };
    // HTTP, TCP and TLS connect to the checked addresses of the name, not to a new lookup's.
    let pin = (!checked.is_empty() && host.parse::<IpAddr>().is_err()).then_some((host.as_str(), checked.as_slice()));
    let outcome = prober.probe_within(&check, &Target::new(key, address), Some(rules), pin).await;
    Ok(render(kind, &outcome))
}

/// The probe's time budget from Prometheus's `X-Prometheus-Scrape-Timeout-Seconds` header
/// (less a small offset, at least 100 ms). A value that is not a positive number of seconds
/// a duration can hold (`abc`, `-1`, `1e300`) is refused, as blackbox_exporter refuses an
/// unparsable one, and never reaches a conversion that could panic.
fn scrape_budget(header: Option<&str>) -> Result<Option<Duration>, Refusal> {
    let Some(text) = header else {
        return Ok(None);
    };
    let secs = text
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
        refuse(400, format!("X-Prometheus-Scrape-Timeout-Seconds: \"{}\" is not a timeout", text.trim()))
    })?;
    Ok(Some(secs.saturating_sub(TIMEOUT_OFFSET).max(Duration::from_millis(100))))
}

/// Runs the parsing of `/probe`'s parameters over arbitrary text (the fuzz target): the
/// query, the scrape timeout header, and the host of a target of every kind. Returns how
/// much was accepted, so that nothing is optimised away.
#[doc(hidden)]
pub fn fuzz_params(text: &str) -> usize {
    let query: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes()).into_owned().collect();
    let mut accepted = query.len();
    accepted += usize::from(matches!(scrape_budget(Some(text)), Ok(Some(_))));
    for kind in Kind::ALL {
        accepted += host_of(kind, text).map_or(0, |h| h.len());
        for (_, value) in &query {
            accepted += host_of(kind, value).map_or(0, |h| h.len());
        }
    }
    accepted
}

/// The host part of a target, per kind.
fn host_of(kind: Kind, address: &str) -> Option<String> {
    let host = match kind {
        Kind::Http | Kind::Websocket => url::Url::parse(address).ok()?.host_str()?.to_string(),
        Kind::Tcp | Kind::Tls | Kind::Smtp | Kind::Sip => {
            address.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok())?.0.to_string()
        }
        Kind::Dns => match address.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')) => h.to_string(),
            _ => address.to_string(),
        },
        Kind::Icmp | Kind::Exec | Kind::Heartbeat | Kind::Steps => address.to_string(),
        Kind::Ntp | Kind::Snmp => {
            address.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(address, |(h, _)| h).to_string()
        }
    };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// How long `/probe` waits for a target name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the allow-list admits `host`; with the addresses to use when they were checked
/// (resolved once, by `resolver` or the system's). An empty list admits all (and pins
/// nothing); a name passes by a host pattern, or when every address it resolves to is in an
/// allowed network — and then those addresses are the ones to connect to. A name no network
/// rule could admit is refused without a lookup.
async fn admit(
    rules: &[AllowRule],
    host: &str,
    resolver: Option<std::net::SocketAddr>,
) -> Result<Vec<IpAddr>, Refusal> {
    let refused = || refuse(403, format!("target host \"{host}\" is not in server.probe_endpoint.allow"));
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return if AllowRule::admits_ip(rules, ip) { Ok(vec![ip]) } else { Err(refused()) };
    }
    if AllowRule::admits_name(rules, host) {
        return Ok(Vec::new());
    }
    if !rules.iter().any(|r| matches!(r, AllowRule::Network(_))) {
        return Err(refused());
    }
    let ips = crate::probe::dns::resolve_with(resolver, host, RESOLVE_TIMEOUT)
        .await
        .map_err(|e| refuse(400, format!("target host \"{host}\" does not resolve: {e}")))?;
    if !ips.is_empty() && ips.iter().all(|ip| AllowRule::admits_ip(rules, *ip)) { Ok(ips) } else { Err(refused()) }
}

/// FNV-1a (32 bit) of the address octets, as blackbox_exporter's `probe_ip_addr_hash`.
fn ip_hash(ip: IpAddr) -> f64 {
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    f64::from(octets.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)))
}

/// The exposition of one response, built family by family.
struct Sheet(String);

impl Sheet {
    /// Room for the largest answer (an HTTP probe's is about 2 KB) in one allocation: grown
    /// from empty, the text was reallocated some fifteen times per request.
    fn new() -> Sheet {
        Sheet(String::with_capacity(4096))
    }

    fn set(&mut self, name: &str, help: &str, value: f64) {
        text::header(&mut self.0, name, help, "gauge");
        text::sample(&mut self.0, name, "", value);
    }

    fn set_labelled(&mut self, name: &str, help: &str, label: &str, values: &[(&str, f64)]) {
        text::header(&mut self.0, name, help, "gauge");
        let mut labels = String::with_capacity(64);
        for (l, v) in values {
            labels.clear();
            text::label(&mut labels, true, label, l);
            text::sample(&mut self.0, name, &labels, *v);
        }
    }
}

fn phase(obs: &Observations, names: &[&str]) -> f64 {
    obs.phases.iter().filter(|(n, _)| names.contains(n)).map(|(_, d)| d.as_secs_f64()).sum()
}

/// The blackbox_exporter exposition of one outcome.
fn render(kind: Kind, outcome: &ProbeOutcome) -> String {
    let mut sheet = Sheet::new();
    let obs = &outcome.observations;
    let success = if outcome.reason.is_none() { 1.0 } else { 0.0 };
    sheet.set("probe_success", "Displays whether or not the probe was a success", success);
    sheet.set(
        "probe_duration_seconds",
        "Returns how long the probe took to complete in seconds",
        outcome.duration.as_secs_f64(),
    );
    let resolve = phase(obs, &["dns", "resolve"]);
    sheet.set("probe_dns_lookup_time_seconds", "Returns the time taken for probe dns lookup in seconds", resolve);
    if let Some(ip) = obs.ip {
        sheet.set(
            "probe_ip_protocol",
            "Specifies whether probe ip protocol is IP4 or IP6",
            if ip.is_ipv4() { 4.0 } else { 6.0 },
        );
        sheet.set(
            "probe_ip_addr_hash",
            "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
            ip_hash(ip),
        );
    }
    let failed_regex = outcome.failed_conditions.iter().any(|c| c.starts_with("[BODY]"))
        || outcome.reason.is_some_and(|r| r.code() == "expect");
    match kind {
        Kind::Http => {
            sheet.set(
                "probe_failed_due_to_regex",
                "Indicates if probe failed due to regex",
                f64::from(u8::from(failed_regex)),
            );
            let body = obs.body.as_ref().map_or(0.0, |b| b.len() as f64);
            sheet.set("probe_http_status_code", "Response HTTP status code", obs.status.map_or(0.0, f64::from));
            sheet.set("probe_http_content_length", "Length of http content response", body);
            sheet.set("probe_http_uncompressed_body_length", "Length of uncompressed response body", body);
            sheet.set(
                "probe_http_version",
                "Returns the version of HTTP of the probe response",
                obs.http_version.unwrap_or(0.0),
            );
            sheet.set("probe_http_redirects", "The number of redirects", f64::from(obs.redirects));
            sheet.set(
                "probe_http_ssl",
                "Indicates if SSL was used for the final redirect",
                f64::from(u8::from(obs.tls_version.is_some())),
            );
            let phases = [
                ("resolve", resolve),
                ("connect", phase(obs, &["connect"])),
                ("tls", phase(obs, &["tls"])),
                ("processing", phase(obs, &["processing"])),
                ("transfer", phase(obs, &["transfer"])),
            ];
            sheet.set_labelled(
                "probe_http_duration_seconds",
                "Duration of http request by phase, summed over all redirects",
                "phase",
                &phases,
            );
        }
        Kind::Tcp | Kind::Tls | Kind::Smtp | Kind::Sip => {
            sheet.set(
                "probe_failed_due_to_regex",
                "Indicates if probe failed due to regex",
                f64::from(u8::from(failed_regex)),
            );
        }
        Kind::Icmp => {
            let rtt = obs.icmp.as_ref().filter(|i| i.received > 0).map_or(0.0, |i| i.rtt_avg.as_secs_f64());
            let phases = [("resolve", resolve), ("setup", phase(obs, &["setup"])), ("rtt", rtt)];
            sheet.set_labelled("probe_icmp_duration_seconds", "Duration of icmp request by phase", "phase", &phases);
            if let Some(hop) = obs.icmp.as_ref().and_then(|i| i.reply_hop_limit) {
                sheet.set("probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)", f64::from(hop));
            }
        }
        Kind::Dns => {
            let (answers, authorities, additionals) =
                obs.dns.as_ref().map_or((0, 0, 0), |d| (d.answers.len(), d.authorities, d.additionals));
            sheet.set(
                "probe_dns_answer_rrs",
                "Returns number of entries in the answer resource record list",
                answers as f64,
            );
            sheet.set(
                "probe_dns_authority_rrs",
                "Returns number of entries in the authority resource record list",
                authorities as f64,
            );
            sheet.set(
                "probe_dns_additional_rrs",
                "Returns number of entries in the additional resource record list",
                additionals as f64,
            );
            sheet.set(
                "probe_dns_query_succeeded",
                "Displays whether or not the query was executed successfully",
                f64::from(u8::from(obs.dns.is_some())),
            );
            let phases =
                [("resolve", resolve), ("connect", phase(obs, &["connect"])), ("request", phase(obs, &["request"]))];
            sheet.set_labelled("probe_dns_duration_seconds", "Duration of DNS request by phase", "phase", &phases);
            if let Some(serial) = obs
                .dns
                .as_ref()
                .and_then(|d| d.answers.iter().find_map(|a| a.split_whitespace().nth(2)?.parse::<f64>().ok()))
            {
                sheet.set("probe_dns_serial", "Returns the serial number of the zone", serial);
            }
        }
        Kind::Exec | Kind::Heartbeat | Kind::Websocket | Kind::Ntp | Kind::Snmp | Kind::Steps => {}
    }
    if let Some(earliest) = obs.earliest_not_after() {
        let earliest = earliest as f64;
        sheet.set("probe_ssl_earliest_cert_expiry", "Returns last SSL chain expiry in unixtime", earliest);
        sheet.set(
            "probe_ssl_last_chain_expiry_timestamp_seconds",
            "Returns last SSL chain expiry in timestamp",
            earliest,
        );
    }
    if let Some(version) = &obs.tls_version {
        sheet.set_labelled(
            "probe_tls_version_info",
            "Returns the TLS version used or NaN when unknown",
            "version",
            &[(version.as_str(), 1.0)],
        );
    }
    sheet.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_hash_matches_blackbox() {
        // Measured from prometheus-blackbox-exporter 0.23 for 127.0.0.1.
        assert_eq!(ip_hash("127.0.0.1".parse().expect("ip")), 3_668_918_509.0);
    }

    /// The largest answer (HTTPS with every phase, a certificate, a failure) is written in
    /// the sheet's first allocation: nothing grows it, request after request.
    #[test]
    fn the_largest_answer_fits_the_first_allocation() {
        let observations = Observations {
            status: Some(503),
            body: Some(bytes::Bytes::from_static(b"down for maintenance")),
            ip: Some("127.0.0.1".parse().expect("ip")),
            phases: vec![("resolve", Duration::from_millis(1)), ("connect", Duration::from_micros(1_234_567))],
            certificates: vec![crate::probe::tls::CertInfo {
                subject: "CN=portal".into(),
                issuer: "CN=ca".into(),
                sans: vec!["portal.laichau.example".into()],
                not_before: 1_700_000_000,
                not_after: 1_800_000_000,
            }],
            redirects: 3,
            http_version: Some(1.1),
            tls_version: Some("TLS 1.3".into()),
            ..Observations::default()
        };
        let outcome = ProbeOutcome {
            health: crate::model::Health::Down,
            reason: Some(crate::probe::FailureReason::Expect),
            message: "body did not match".into(),
            failed_conditions: vec!["[BODY] == pat(*ok*)".into()],
            observations,
            duration: Duration::from_secs_f64(1.234_567_891),
        };
        let text = render(Kind::Http, &outcome);
        assert!(text.contains("probe_tls_version_info{version=\"TLS 1.3\"} 1"), "{text}");
        assert_eq!(text.capacity(), 4096, "grown past its first allocation ({} bytes)", text.len());
    }

    #[test]
    fn hosts_of_targets() {
        assert_eq!(host_of(Kind::Http, "https://Portal.example:8443/x").as_deref(), Some("portal.example"));
        assert_eq!(host_of(Kind::Tcp, "127.0.0.1:22").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of(Kind::Tcp, "no-port"), None);
        assert_eq!(host_of(Kind::Dns, "[::1]:53").as_deref(), Some("::1"));
        assert_eq!(host_of(Kind::Icmp, "gw.example").as_deref(), Some("gw.example"));
    }

    #[tokio::test]
    async fn allow_list() {
        let rules = vec![
            AllowRule::Network("127.0.0.0/8".parse().expect("net")),
            AllowRule::Host(glob::Pattern::new("*.laichau.example").expect("pattern")),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(admit(&rules, "127.0.0.1", None).await, Ok(vec![ip("127.0.0.1")]), "an address is pinned");
        assert_eq!(admit(&rules, "::1", None).await.map_err(|r| r.status), Err(403));
        assert_eq!(admit(&rules, "gw.laichau.example", None).await, Ok(Vec::new()), "a name admitted by pattern");
        let local = admit(&rules, "localhost", None).await.expect("localhost resolves into 127.0.0.0/8");
        assert!(local.contains(&ip("127.0.0.1")), "resolved once, checked, pinned: {local:?}");
        assert_eq!(admit(&[], "::1", None).await, Ok(Vec::new()), "no list admits all");
        let names_only = vec![AllowRule::Host(glob::Pattern::new("*.laichau.example").expect("pattern"))];
        let refused = admit(&names_only, "localhost", None).await.map_err(|r| r.status);
        assert_eq!(refused, Err(403), "refused without a lookup");
    }
}
