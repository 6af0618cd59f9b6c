//! DNS probe (hickory): one query of `query_type` for `query_name`, asked of the target
//! server (UDP, falling back to TCP, or TCP only), with no cache; reports the response
//! code, the answers and the lookup time.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;
use serde::Serialize;

use super::{FailureReason, Observations, ProbeError};
use crate::config::{DnsSpec, DnsTransport};

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsAnswer {
    /// Response code, e.g. `NOERROR`, `NXDOMAIN`, `SERVFAIL`.
    pub rcode: String,
    /// Answer records' data, e.g. `127.0.0.5` or `10 mail.laichau.example.`.
    pub answers: Vec<String>,
    /// Records in the authority section (NS of a referral, SOA of a negative answer).
    pub authorities: usize,
    /// Records in the additional section (glue; the EDNS OPT record is not counted).
    pub additionals: usize,
    pub lookup_time: Duration,
}

/// The conventional name of a response code.
fn rcode_name(code: ResponseCode) -> String {
    match u16::from(code) {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("RCODE{other}"),
    }
}

/// Splits `host[:port]` (IPv6 in brackets) into host and port (53 by default).
fn split_server(server: &str) -> (&str, u16) {
    if let Some(rest) = server.strip_prefix('[')
        && let Some((host, tail)) = rest.split_once(']')
    {
        return (host, tail.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(53));
    }
    match server.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().unwrap_or(53)),
        _ => (server, 53),
    }
}

pub(super) async fn observe(spec: &DnsSpec, server: &str, timeout: Duration) -> Result<Observations, ProbeError> {
    let mut obs = Observations::default();
    let (host, port) = split_server(server);
    let started = Instant::now();
    let ip: IpAddr = match host.parse() {
        Ok(ip) => ip,
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .map(|a: SocketAddr| a.ip())
            .ok_or_else(|| ProbeError::new(FailureReason::Dns, format!("cannot resolve DNS server {host}")))?,
    };
    obs.phases.push(("resolve", started.elapsed()));
    obs.ip = Some(ip);

    let resolver = one_server_resolver(SocketAddr::new(ip, port), spec.transport == DnsTransport::Udp, timeout)
        .map_err(|e| ProbeError::new(FailureReason::Network, format!("dns client: {e}")))?;
    let record_type = RecordType::from_str(&spec.query_type)
        .map_err(|e| ProbeError::new(FailureReason::Network, format!("query type {}: {e}", spec.query_type)))?;
    let name = if spec.query_name.ends_with('.') { spec.query_name.clone() } else { format!("{}.", spec.query_name) };

    let asked = Instant::now();
    let result = resolver.lookup(name.as_str(), record_type).await;
    let lookup_time = asked.elapsed();
    obs.phases.push(("request", lookup_time));
    let (rcode, answers, authorities, additionals) = match result {
        Ok(lookup) => (
            "NOERROR".to_string(),
            lookup.answers().iter().map(|r| r.data.to_string()).collect(),
            lookup.authorities().len(),
            lookup.additionals().len(),
        ),
        Err(NetError::Dns(DnsError::NoRecordsFound(none))) => {
            let authorities = none.authorities.as_ref().map_or(usize::from(none.soa.is_some()), |a| a.len());
            (rcode_name(none.response_code), Vec::new(), authorities, 0)
        }
        Err(NetError::Dns(DnsError::ResponseCode(code))) => (rcode_name(code), Vec::new(), 0, 0),
        Err(NetError::Timeout) => {
            return Err(ProbeError::new(FailureReason::Timeout, "no DNS answer in time").with(obs));
        }
        Err(e) => return Err(ProbeError::new(FailureReason::Network, format!("dns: {e}")).with(obs)),
    };
    obs.connected = Some(true);
    obs.response_time = Some(lookup_time);
    obs.body = Some(Bytes::from(answers.join("\n")));
    obs.dns = Some(DnsAnswer { rcode, answers, authorities, additionals, lookup_time });
    Ok(obs)
}

/// A resolver that asks only `server` (over UDP then TCP, or TCP alone), once, with no
/// cache, hosts file or search domains: what it answers is what the server said.
fn one_server_resolver(
    server: SocketAddr,
    udp: bool,
    timeout: Duration,
) -> Result<Resolver<TokioRuntimeProvider>, impl std::fmt::Display> {
    let on_port = |mut c: ConnectionConfig| {
        c.port = server.port();
        c
    };
    let mut connections = vec![on_port(ConnectionConfig::tcp())];
    if udp {
        connections.insert(0, on_port(ConnectionConfig::udp()));
    }
    let config =
        ResolverConfig::from_parts(None, Vec::new(), vec![NameServerConfig::new(server.ip(), true, connections)]);
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    Resolver::builder_with_config(config, TokioRuntimeProvider::default()).with_options(opts).build()
}

/// The addresses `host` resolves to, asked of `server` (a DNS server, over UDP then TCP)
/// or, without one, of the system's resolver.
pub async fn resolve_with(server: Option<SocketAddr>, host: &str, timeout: Duration) -> Result<Vec<IpAddr>, String> {
    let Some(server) = server else {
        return match tokio::time::timeout(timeout, tokio::net::lookup_host((host, 0))).await {
            Ok(Ok(addrs)) => Ok(addrs.map(|a| a.ip()).collect()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in time".into()),
        };
    };
    let resolver = one_server_resolver(server, true, timeout).map_err(|e| e.to_string())?;
    let name = if host.ends_with('.') { host.to_string() } else { format!("{host}.") };
    let lookup = resolver.lookup_ip(name.as_str()).await.map_err(|e| e.to_string())?;
    Ok(lookup.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(split_server("127.0.0.1:5353"), ("127.0.0.1", 5353));
        assert_eq!(split_server("ns1.laichau.example"), ("ns1.laichau.example", 53));
        assert_eq!(split_server("[::1]:5353"), ("::1", 5353));
        assert_eq!(split_server("::1"), ("::1", 53));
    }
}
