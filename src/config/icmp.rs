//! Validation of the `icmp:` section: echoes (count, spacing, size), how they travel
//! (don't fragment, TTL, source, DSCP) and the path MTU sweep (`sizes:`).

use std::net::IpAddr;
use std::time::Duration;

use super::fields::{Errors, duration_field};
use super::kinds::check_host;
use super::raw::RawIcmp;
use super::source::SourceFile;
use super::{DEFAULT_ICMP_PAYLOAD, IcmpPath, IcmpSpec, IpPreference, ProbeSpec};

/// The largest payload an echo may carry without `dont_fragment` (it then fits a
/// 1,500-byte link unfragmented).
const MAX_PAYLOAD: u16 = 1400;
/// The largest payload a don't-fragment echo may carry: a 9,000-byte jumbo frame.
const MAX_DF_PAYLOAD: u16 = 8972;
/// Sizes a sweep may list at most.
const MAX_SWEEP_SIZES: usize = 16;

pub(super) fn icmp_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawIcmp,
    errors: &mut Errors,
) -> Option<(ProbeSpec, Option<String>)> {
    let mut ok = true;
    if let Some(host) = &raw.host {
        ok &= check_host(file, &format!("{path}.host"), host, false, errors);
    }
    let count = raw.count.unwrap_or(5);
    if !(1..=100).contains(&count) {
        errors.at(file, &format!("{path}.count"), format!("count {count} must be between 1 and 100"));
        ok = false;
    }
    let spacing =
        duration_field(file, &format!("{path}.spacing"), raw.spacing.as_ref(), Duration::from_millis(200), errors);
    if spacing < Duration::from_millis(10) {
        errors.at(file, &format!("{path}.spacing"), "spacing must be at least 10ms");
        ok = false;
    }
    let ip_protocol = match raw.ip_protocol.as_deref() {
        None | Some("auto") => IpPreference::Auto,
        Some("ip4") => IpPreference::V4,
        Some("ip6") => IpPreference::V6,
        Some(other) => {
            errors.at(
                file,
                &format!("{path}.ip_protocol"),
                format!("unknown ip_protocol \"{other}\" (expected auto, ip4 or ip6)"),
            );
            ok = false;
            IpPreference::Auto
        }
    };
    let (icmp_path, path_ok) = travel(file, path, raw, errors);
    ok &= path_ok;
    let (payload_size, size_ok) = payload(file, path, raw, icmp_path.dont_fragment, errors);
    ok &= size_ok;
    let (sweep, sweep_ok) = sweep(file, path, raw, icmp_path.dont_fragment, errors);
    ok &= sweep_ok;
    let spec = IcmpSpec { count, spacing, ip_protocol, payload_size, path: icmp_path, sweep };
    ok.then_some((ProbeSpec::Icmp(spec), raw.host.clone()))
}

/// `size` (ping's `-s`) or its other name `payload_size`.
fn payload(file: &SourceFile, path: &str, raw: &RawIcmp, dont_fragment: bool, errors: &mut Errors) -> (u16, bool) {
    let (field, value) = match (raw.size, raw.payload_size) {
        (Some(_), Some(_)) => {
            errors.at(file, &format!("{path}.size"), "set size or payload_size (the same thing), not both");
            return (DEFAULT_ICMP_PAYLOAD, false);
        }
        (Some(size), None) => ("size", size),
        (None, Some(size)) => ("payload_size", size),
        (None, None) => return (DEFAULT_ICMP_PAYLOAD, true),
    };
    let max = if dont_fragment { MAX_DF_PAYLOAD } else { MAX_PAYLOAD };
    if value > max {
        let why = if dont_fragment { "" } else { " (up to 8972 with dont_fragment: true)" };
        errors.at(file, &format!("{path}.{field}"), format!("{field} must be at most {max} bytes{why}"));
        return (DEFAULT_ICMP_PAYLOAD, false);
    }
    (value, true)
}

/// `dont_fragment`, `ttl`, `source`, `dscp`.
fn travel(file: &SourceFile, path: &str, raw: &RawIcmp, errors: &mut Errors) -> (IcmpPath, bool) {
    let mut ok = true;
    let ttl = raw.ttl.and_then(|ttl| match u8::try_from(ttl) {
        Ok(t) if t > 0 => Some(t),
        _ => {
            errors.at(file, &format!("{path}.ttl"), format!("ttl {ttl} must be between 1 and 255"));
            ok = false;
            None
        }
    });
    let dscp = raw.dscp.and_then(|dscp| match u8::try_from(dscp) {
        Ok(d) if d < 64 => Some(d),
        _ => {
            errors.at(file, &format!("{path}.dscp"), format!("dscp {dscp} must be between 0 and 63"));
            ok = false;
            None
        }
    });
    let source = raw.source.as_deref().and_then(|s| match s.trim().parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            errors.at(file, &format!("{path}.source"), format!("\"{s}\" is not an IP address of this host"));
            ok = false;
            None
        }
    });
    let dont_fragment = raw.dont_fragment.unwrap_or(false);
    (IcmpPath { dont_fragment, ttl, source, dscp }, ok)
}

/// `sizes:` — sorted, each a valid don't-fragment payload.
fn sweep(file: &SourceFile, path: &str, raw: &RawIcmp, dont_fragment: bool, errors: &mut Errors) -> (Vec<u16>, bool) {
    let Some(sizes) = &raw.sizes else { return (Vec::new(), true) };
    let field = format!("{path}.sizes");
    if !dont_fragment {
        errors.at(
            file,
            &field,
            "sizes sweeps the path MTU and needs dont_fragment: true (else every size passes in fragments)",
        );
        return (Vec::new(), false);
    }
    if sizes.is_empty() || sizes.len() > MAX_SWEEP_SIZES {
        errors.at(file, &field, format!("sizes lists 1 to {MAX_SWEEP_SIZES} payload sizes"));
        return (Vec::new(), false);
    }
    if let Some(too_big) = sizes.iter().find(|s| **s > MAX_DF_PAYLOAD) {
        errors.at(file, &field, format!("size {too_big} is over the largest payload, {MAX_DF_PAYLOAD} bytes"));
        return (Vec::new(), false);
    }
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    (sorted, true)
}
