//! The configuration exactly as written in YAML, before validation.
//!
//! Every field is optional or defaulted so that decoding never stops at the first gap:
//! the validator reports every missing or malformed field with its position. Unknown keys
//! are not rejected here but collected while decoding (see `source.rs`), so that all of
//! them are reported at once instead of only the first.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The root file (`vigil.yaml`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRoot {
    pub instance: RawInstance,
    pub server: RawServer,
    pub storage: RawStorage,
    pub defaults: RawDefaults,
    pub scheduler: RawScheduler,
    pub include: Vec<String>,
    pub systems: Vec<RawSystem>,
    pub modules: BTreeMap<String, RawModule>,
}

/// An included file (`probes/*.yaml`): systems only.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawFragment {
    pub systems: Vec<RawSystem>,
}

/// `instance:` — who this monitor is and how it speaks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawInstance {
    pub name: Option<String>,
    pub location: Option<String>,
    pub timezone: Option<String>,
    pub language: Option<String>,
}

/// `server:` — the HTTP listener.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawServer {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub admin_token: Option<String>,
    pub admin_token_file: Option<String>,
    pub probe_endpoint: RawProbeEndpoint,
}

/// `server.probe_endpoint:` — the blackbox-compatible `/probe`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawProbeEndpoint {
    pub enabled: bool,
    pub allow: Vec<String>,
}

/// One entry of `modules:` (for `/probe`): a probe section, a timeout and conditions.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RawModule {
    pub timeout: Option<String>,
    pub http: Option<RawHttp>,
    pub tcp: Option<RawTcp>,
    pub tls: Option<RawTlsProbe>,
    pub icmp: Option<RawIcmp>,
    pub dns: Option<RawDns>,
    pub conditions: Vec<String>,
    pub warning_conditions: Vec<String>,
}

/// `storage:` — the embedded store.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawStorage {
    pub path: Option<String>,
    pub raw_retention: Option<String>,
}

/// `defaults:` — values every check inherits unless it sets its own.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDefaults {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub failure_threshold: Option<u32>,
    pub success_threshold: Option<u32>,
}

/// `scheduler:` — global bounds of the probe scheduler.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawScheduler {
    pub max_concurrent_probes: Option<usize>,
}

/// One monitored system.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSystem {
    pub id: Option<String>,
    pub name: Option<RawName>,
    pub description: Option<String>,
    pub sla: Option<String>,
    pub checks: Vec<RawCheck>,
}

/// A display name: one string, or one per language.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawName {
    Plain(String),
    Localized(BTreeMap<String, String>),
}

/// One check of a system; `targets:` may expand it into several identities.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawCheck {
    pub id: Option<String>,
    pub name: Option<String>,
    pub http: Option<RawHttp>,
    pub tcp: Option<RawTcp>,
    pub tls: Option<RawTlsProbe>,
    pub icmp: Option<RawIcmp>,
    pub dns: Option<RawDns>,
    pub exec: Option<RawExec>,
    pub heartbeat: Option<RawHeartbeat>,
    pub targets: Option<Vec<RawTarget>>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub failure_threshold: Option<u32>,
    pub success_threshold: Option<u32>,
    pub conditions: Vec<String>,
    pub warning_conditions: Vec<String>,
    pub depends_on: Vec<String>,
    pub critical: Option<bool>,
    pub runbook: Option<String>,
}

/// One entry of `targets:`: a name and the address field of the check's kind.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawTarget {
    pub name: Option<String>,
    pub url: Option<String>,
    pub address: Option<String>,
    pub host: Option<String>,
}

/// `http:` probe section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RawHttp {
    pub url: Option<String>,
    pub method: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub follow_redirects: Option<bool>,
    pub max_redirects: Option<u32>,
    pub max_body_bytes: Option<u64>,
    pub insecure_skip_verify: bool,
    pub ca_file: Option<String>,
}

/// `tcp:` probe section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RawTcp {
    pub address: Option<String>,
    pub send: Option<String>,
    pub expect: Option<String>,
    pub tls: bool,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub ca_file: Option<String>,
}

/// `tls:` probe section (a bare TLS endpoint).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RawTlsProbe {
    pub address: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub ca_file: Option<String>,
}

/// `icmp:` probe section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RawIcmp {
    pub host: Option<String>,
    pub count: Option<u16>,
    pub spacing: Option<String>,
    pub ip_protocol: Option<String>,
    pub payload_size: Option<u16>,
}

/// `dns:` probe section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RawDns {
    /// The DNS server to ask (`host` or `host:port`).
    pub host: Option<String>,
    pub query_name: Option<String>,
    pub query_type: Option<String>,
    pub transport: Option<String>,
}

/// `exec:` probe section (Nagios plugin API).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawExec {
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub perfdata: Vec<String>,
    pub max_output_bytes: Option<usize>,
}

/// `heartbeat:` probe section (pushed by the monitored job).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawHeartbeat {
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub period: Option<String>,
    pub grace: Option<String>,
}
