//! `ip: all` (issue #21, item 5): the target's name is resolved once, and each address it
//! resolves to is probed on its own — the connection pinned to that address (the HTTP
//! `Host` and TLS name stay the name) — at the same time. The check's outcome follows its
//! `ip_rule`: with `all` it is its worst address's, with `any` its best's; the message names
//! every address and how it fared, and the observations list them (`addresses`), for the
//! status API and the per-address metric.

use std::net::IpAddr;
use std::time::Instant;

use serde::Serialize;

use super::{FailureReason, Observations, ProbeOutcome, Prober};
use crate::config::addresses::{AddressRule, EachAddress};
use crate::config::{Check, ProbeSpec, Target};
use crate::model::Health;

/// Addresses probed at most per run: a name that resolves to more (a hostile or broken
/// DNS answer) has its first ones probed, and the message says how many were left out.
pub const MAX_ADDRESSES: usize = 16;

/// How one address fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressOutcome {
    pub ip: IpAddr,
    pub health: Health,
    /// Why it is not up (empty when it is).
    pub message: String,
}

/// The host name a check's target address holds.
fn host_of(probe: &ProbeSpec, address: &str) -> Option<String> {
    let host = match probe {
        ProbeSpec::Http(_) => url::Url::parse(address).ok()?.host_str()?.to_string(),
        ProbeSpec::Tcp(_) | ProbeSpec::Tls(_) => super::reaching::host_port(address).ok()?.0.to_string(),
        _ => address.to_string(),
    };
    Some(host.trim_start_matches('[').trim_end_matches(']').to_string())
}

/// Worse first: how a check under `ip_rule: all` picks the address it reports.
fn badness(health: Health) -> u8 {
    match health {
        Health::Up => 0,
        Health::Degraded => 1,
        Health::Unknown => 2,
        Health::Down => 3,
    }
}

impl Prober {
    /// Probes every address of `target` (see the module doc).
    pub(super) async fn probe_each_address(&self, check: &Check, target: &Target, each: &EachAddress) -> ProbeOutcome {
        let started = Instant::now();
        let failed = |reason, message: String| ProbeOutcome::down(reason, message, started.elapsed());
        let Some(host) = host_of(&check.probe, &target.address) else {
            return failed(FailureReason::Network, format!("no host name in \"{}\"", target.address));
        };
        let mut ips = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match super::dns::resolve_with(each.resolver, &host, check.timeout).await {
                Ok(mut ips) if !ips.is_empty() => {
                    ips.sort();
                    ips.dedup();
                    ips
                }
                Ok(_) => return failed(FailureReason::Dns, format!("{host} resolves to no address")),
                Err(e) => return failed(FailureReason::Dns, format!("{host} does not resolve: {e}")),
            },
        };
        let left_out = ips.len().saturating_sub(MAX_ADDRESSES);
        ips.truncate(MAX_ADDRESSES);
        // The lookup counts against the check's timeout: the probes get what is left of it.
        let Some(left) = check.timeout.checked_sub(started.elapsed()).filter(|d| !d.is_zero()) else {
            return failed(FailureReason::Timeout, format!("{host}: the lookup took the whole timeout"));
        };
        let check = &Check { timeout: left, ..check.clone() };
        let probes = ips.iter().map(|ip| {
            let (host, ip) = (host.as_str(), std::slice::from_ref(ip));
            async move {
                // ICMP sends to the address itself; the others connect to the name, pinned.
                let pinned_target;
                let target = match check.probe {
                    ProbeSpec::Icmp(_) => {
                        pinned_target = Target::new(target.key.clone(), ip[0].to_string());
                        &pinned_target
                    }
                    _ => target,
                };
                self.probe_within(check, target, None, Some((host, ip))).await
            }
        });
        let outcomes = futures_util::future::join_all(probes).await;
        combine(each.rule, ips.into_iter().zip(outcomes).collect(), left_out, started.elapsed())
    }
}

/// The check's outcome from its addresses' under `rule` (`left_out` more not probed).
fn combine(
    rule: AddressRule,
    per_address: Vec<(IpAddr, ProbeOutcome)>,
    left_out: usize,
    duration: std::time::Duration,
) -> ProbeOutcome {
    let addresses: Vec<AddressOutcome> = per_address
        .iter()
        .map(|(ip, o)| AddressOutcome {
            ip: *ip,
            health: o.health,
            message: if o.health == Health::Up { String::new() } else { o.message.clone() },
        })
        .collect();
    let chosen = match rule {
        AddressRule::All => per_address.into_iter().max_by_key(|(_, o)| badness(o.health)),
        AddressRule::Any => per_address.into_iter().min_by_key(|(_, o)| badness(o.health)),
    };
    let Some((_, mut outcome)) = chosen else {
        let message = "no address to probe".to_string();
        return ProbeOutcome {
            health: Health::Unknown,
            reason: Some(FailureReason::Internal),
            message,
            failed_conditions: Vec::new(),
            observations: Observations::default(),
            duration,
        };
    };
    let up = addresses.iter().filter(|a| a.health == Health::Up).count();
    let each: Vec<String> = addresses
        .iter()
        .map(|a| match a.health {
            Health::Up => format!("{} up", a.ip),
            other => format!("{} {}: {}", a.ip, other.as_str(), a.message),
        })
        .collect();
    let more = if left_out > 0 { format!(" ({left_out} more not probed)") } else { String::new() };
    outcome.message = format!("{up} of {} addresses up{more} — {}", addresses.len(), each.join("; "));
    outcome.observations.addresses = addresses;
    outcome.duration = duration;
    outcome
}
