//! `ip: all` on a check (issue #21, item 5): every address its target's name resolves to
//! (each A and AAAA answer) is probed on its own, with its own outcome, and the check's
//! state follows `ip_rule` — `all` (every address must pass; the default) or `any` (one is
//! enough). `resolver: host:port` asks that DNS server instead of the system's resolver.

use std::net::SocketAddr;

use super::fields::Errors;
use super::raw::RawCheck;
use super::source::SourceFile;

/// How the addresses' outcomes make the check's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRule {
    /// Every address must pass: the check is as bad as its worst address.
    All,
    /// One address passing is enough: the check is as good as its best address.
    Any,
}

/// `ip: all` of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EachAddress {
    pub rule: AddressRule,
    /// The DNS server to ask (else the system's resolver).
    pub resolver: Option<SocketAddr>,
}

/// The kinds that connect to an address, and so can probe each one.
const KINDS: [&str; 4] = ["http", "tcp", "tls", "icmp"];

/// Reads `ip`, `ip_rule` and `resolver` of a check of `kind`.
pub(super) fn each_address(
    file: &SourceFile,
    path: &str,
    raw: &RawCheck,
    kind: Option<super::Kind>,
    errors: &mut Errors,
) -> Option<EachAddress> {
    let Some(ip) = raw.ip.as_deref() else {
        for (key, given) in [("ip_rule", raw.ip_rule.is_some()), ("resolver", raw.resolver.is_some())] {
            if given {
                errors.at(file, &format!("{path}.{key}"), format!("{key} goes with \"ip: all\""));
            }
        }
        return None;
    };
    if ip != "all" {
        errors.at(file, &format!("{path}.ip"), format!("ip \"{ip}\" is not known (all: probe every address)"));
        return None;
    }
    if let Some(kind) = kind.filter(|k| !KINDS.contains(&k.as_str())) {
        let message =
            format!("\"ip: all\" is for checks that connect to an address ({}), not {kind}", KINDS.join(", "));
        errors.at(file, &format!("{path}.ip"), message);
    }
    let rule = match raw.ip_rule.as_deref() {
        None | Some("all") => AddressRule::All,
        Some("any") => AddressRule::Any,
        Some(other) => {
            errors.at(file, &format!("{path}.ip_rule"), format!("ip_rule \"{other}\" is not known (all, any)"));
            AddressRule::All
        }
    };
    let resolver = raw.resolver.as_deref().and_then(|r| match r.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errors.at(file, &format!("{path}.resolver"), format!("resolver \"{r}\" is not an address:port"));
            None
        }
    });
    Some(EachAddress { rule, resolver })
}
