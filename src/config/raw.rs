//! The configuration exactly as written in YAML, before validation.
//!
//! Every field is optional or defaulted so that decoding never stops at the first gap:
//! the validator reports every missing or malformed field with its position. Unknown keys
//! are not rejected here but collected while decoding (see `source.rs`), so that all of
//! them are reported at once instead of only the first.
//!
//! size: the whole configuration schema as serde structs, one per section, side by side.

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
    pub alerting: RawAlerting,
    pub reports: RawReports,
    pub receivers: Vec<RawReceiver>,
    pub routes: Vec<RawRoute>,
    pub maintenance: Vec<RawMaintenance>,
    pub agent: Option<RawAgent>,
    pub vantages: Vec<RawVantage>,
    pub cluster: Option<RawCluster>,
}

/// `cluster:` — this Vigil is a node sharing the work with others through PostgreSQL.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCluster {
    pub name: Option<String>,
    pub node: Option<String>,
    pub dsn: Option<String>,
    pub dsn_file: Option<String>,
    pub failover_delay: Option<String>,
    pub replicas: Option<u32>,
    pub labels: Vec<String>,
}

/// `agent:` — this Vigil measures from a vantage point and forwards to a centre.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAgent {
    pub assignment_file: Option<String>,
    pub refresh: Option<String>,
    pub alert_after: Option<String>,
    pub vantage: Option<String>,
    pub centre: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub ca_file: Option<String>,
}

/// One entry of `vantages:` — an agent a centre accepts results from.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawVantage {
    pub name: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub grace: Option<String>,
    pub max_clock_offset: Option<String>,
    pub link: Option<String>,
    pub groups: Vec<String>,
}

/// An included file (`probes/*.yaml`): systems only.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawFragment {
    pub systems: Vec<RawSystem>,
    pub receivers: Vec<RawReceiver>,
    pub routes: Vec<RawRoute>,
    pub maintenance: Vec<RawMaintenance>,
}

/// `instance:` — who this monitor is and how it speaks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawInstance {
    pub name: Option<String>,
    pub location: Option<String>,
    pub timezone: Option<String>,
    pub language: Option<String>,
    pub uplink: Vec<String>,
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
    pub pages_auth: Option<RawPagesAuth>,
    pub tls: Option<RawServerTls>,
}

/// `server.tls:` — serve HTTPS with this certificate chain and key (PEM files).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawServerTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

/// `server.pages_auth:` — a read credential for pages, API and metrics.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPagesAuth {
    pub basic: Option<RawBasicAuth>,
    pub bearer: Option<RawBearerAuth>,
}

/// `pages_auth.basic:`
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawBasicAuth {
    pub user: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

/// `pages_auth.bearer:`
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawBearerAuth {
    pub token: Option<String>,
    pub token_file: Option<String>,
}

/// `server.probe_endpoint:` — the blackbox-compatible `/probe`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawProbeEndpoint {
    pub enabled: bool,
    pub allow: Vec<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub resolver: Option<String>,
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
    /// blackbox_exporter has no WebSocket prober; `/probe` offers Vigil's.
    pub websocket: Option<RawWebsocket>,
    pub conditions: Vec<String>,
    pub warning_conditions: Vec<String>,
}

/// `storage:` — the embedded store.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawStorage {
    pub path: Option<String>,
    pub raw_retention: Option<String>,
    pub postgres: Option<RawPostgres>,
}

/// `storage.postgres:` — keep the store in PostgreSQL (a cluster's shared store).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPostgres {
    pub dsn: Option<String>,
    pub dsn_file: Option<String>,
    pub grace: Option<String>,
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
    pub smtp: Option<RawSmtpProbe>,
    pub websocket: Option<RawWebsocket>,
    pub sip: Option<RawSip>,
    pub ntp: Option<RawNtp>,
    pub snmp: Option<super::snmp::RawSnmp>,
    pub targets: Option<Vec<RawTarget>>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub failure_threshold: Option<u32>,
    pub success_threshold: Option<u32>,
    pub conditions: Vec<String>,
    pub warning_conditions: Vec<String>,
    pub depends_on: Vec<String>,
    /// Redundant parents: the check is unreachable only when all of them fail.
    pub depends_on_any: Vec<String>,
    pub critical: Option<bool>,
    pub runbook: Option<String>,
    /// The check's former id (`check` or `system/check`): its history and open incidents
    /// carry over instead of being closed as removed.
    pub renamed_from: Option<String>,
    /// The vantage points (agents) that also run this check: names, or `all`.
    pub vantages: Option<RawVantageList>,
    /// How many observers (the centre and the vantage points) must see it down: `any`,
    /// `all`, or a number.
    pub quorum: Option<RawQuorum>,
    /// Cluster nodes that may run it, by label (`cluster.labels`).
    pub nodes: Vec<String>,
    /// `all`: probe every address the target's name resolves to (config::addresses).
    pub ip: Option<String>,
    /// With `ip: all`: `all` or `any` of the addresses must pass.
    pub ip_rule: Option<String>,
    /// With `ip: all`: the DNS server to ask, `host:port`.
    pub resolver: Option<String>,
    /// A transaction: HTTP requests in order, sharing cookies and variables.
    pub steps: Option<Vec<RawStep>>,
    /// The transaction's variables (`{{name}}` in its steps); `name_file` reads a secret.
    pub variables: BTreeMap<String, String>,
    /// The transaction's secret variables (never shown): values, or `name_file` to read.
    pub secrets: BTreeMap<String, String>,
}

/// One step of a transaction (`steps:`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawStep {
    pub name: Option<String>,
    pub http: Option<RawHttp>,
    pub conditions: Vec<String>,
    pub warning_conditions: Vec<String>,
    /// Values taken from the response into variables of later steps.
    pub capture: BTreeMap<String, RawCapture>,
    /// Runs even after an earlier step failed (logout, cleanup).
    pub always: bool,
}

/// Where a captured value comes from: a JSON path, a regex's first group, or a header.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCapture {
    pub json: Option<String>,
    pub regex: Option<String>,
    pub header: Option<String>,
}

/// `quorum:` of a check.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawQuorum {
    Count(u32),
    Word(String),
}

/// `vantages:` of a check: `all`, or a list of vantage names.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawVantageList {
    All(String),
    Names(Vec<String>),
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
    pub allow_insecure_redirects: bool,
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

/// `smtp:` probe section (a mail server, up to QUIT).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RawSmtpProbe {
    pub address: Option<String>,
    /// Log in after STARTTLS (AUTH PLAIN) as this user, with `password` or `password_file`.
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub starttls: Option<bool>,
    pub helo: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub ca_file: Option<String>,
}

/// `ntp:` probe section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RawNtp {
    /// The time server (`host` or `host:port`, default port 123).
    pub host: Option<String>,
}

/// `sip:` probe section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RawSip {
    pub address: Option<String>,
    pub transport: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub ca_file: Option<String>,
}

/// `websocket:` probe section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RawWebsocket {
    pub url: Option<String>,
    pub send: Option<String>,
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
    /// `ping -s`: payload bytes per echo (another name for `payload_size`).
    pub size: Option<u16>,
    /// Payload sizes to sweep for the path MTU (needs `dont_fragment`).
    pub sizes: Option<Vec<u16>>,
    pub dont_fragment: Option<bool>,
    pub ttl: Option<u32>,
    /// The address echoes leave from (an IP literal of this host); blackbox_exporter's
    /// `source_ip_address` is the same.
    #[serde(alias = "source_ip_address")]
    pub source: Option<String>,
    pub dscp: Option<u32>,
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

/// `alerting:` — settings shared by every notification.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAlerting {
    pub ack_key: Option<String>,
    pub ack_key_file: Option<String>,
    pub ack_keys: Vec<String>,
    pub ack_link_ttl: Option<String>,
    pub max_age: Option<String>,
    pub store_alert_after: Option<String>,
    pub templates: Option<String>,
    pub flapping: RawFlapping,
    pub deadman: Option<RawDeadman>,
}

/// `reports:`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawReports {
    pub monthly: Option<RawMonthly>,
}

/// `reports.monthly`: the previous month's report, mailed on `day` at `at`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawMonthly {
    pub day: Option<u8>,
    pub at: Option<String>,
    pub receivers: Vec<String>,
    pub language: Option<String>,
}

/// `alerting.flapping`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawFlapping {
    pub changes: Option<u32>,
    pub window: Option<String>,
}

/// `alerting.deadman`: Vigil's own outbound heartbeat.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDeadman {
    pub url: Option<String>,
    pub interval: Option<String>,
}

/// One receiver: who is told, through which channels in fallback order.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawReceiver {
    pub id: Option<String>,
    pub channels: Vec<RawChannel>,
    pub fallback_after: Option<String>,
}

/// One channel of a receiver: exactly one of the sections.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawChannel {
    pub email: Option<RawEmail>,
    pub webhook: Option<RawWebhook>,
    pub alertmanager: Option<RawAlertmanager>,
}

/// `email:` channel.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawEmail {
    pub to: Vec<String>,
    pub from: Option<String>,
    pub smtp: RawSmtp,
}

/// The SMTP server of an email channel.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSmtp {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub security: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub ca_file: Option<String>,
}

/// `webhook:` channel.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawWebhook {
    pub url: Option<String>,
    pub format: Option<String>,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    pub chat_id: Option<String>,
}

/// `alertmanager:` channel.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAlertmanager {
    pub url: Option<String>,
}

/// One route: labels to match and receivers to tell.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRoute {
    #[serde(rename = "match")]
    pub matchers: BTreeMap<String, String>,
    pub receivers: Vec<String>,
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    pub group_by: Vec<String>,
    pub group_wait: Option<String>,
    pub repeat_every: Option<String>,
    pub escalate: Option<RawEscalate>,
    pub send_resolved: Option<bool>,
}

/// `escalate:` of a route.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawEscalate {
    pub after: Option<String>,
    pub to: Vec<String>,
}

/// One maintenance window: a scope, and either `from`/`to` or `cron` + `duration`.
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct RawMaintenance {
    pub name: Option<String>,
    pub systems: Vec<String>,
    pub checks: Vec<String>,
    pub targets: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cron: Option<String>,
    pub duration: Option<String>,
    pub reason: Option<String>,
}
