//! The probe kinds as a type, and the one table of what each declares: its section name
//! (also the `kind` metric label), the field its targets give, its default condition and
//! the placeholders its probe measures (`tests/probes.rs` checks each probe fills exactly
//! those). A new kind: its variant and table entry here, its config struct and validation
//! (`raw.rs`, `kinds.rs`), its probe file; every exhaustive `match` on [`Kind`] then names
//! what else must learn of it.

use crate::condition::Placeholder;

/// A probe kind. Every `match` on it is exhaustive: a new kind makes the compiler point
/// at each place that must learn about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Http,
    Tcp,
    Tls,
    Icmp,
    Dns,
    Exec,
    Heartbeat,
    Smtp,
    Websocket,
    Sip,
    Ntp,
    Snmp,
    Steps,
}

/// What a kind declares: its section name (also the `kind` metric label), the field its
/// targets give, its default condition, and the placeholders its probe measures.
#[derive(Debug)]
pub struct KindSpec {
    pub name: &'static str,
    pub address_field: Option<&'static str>,
    pub default_condition: Option<&'static str>,
    pub measures: &'static [Placeholder],
}

use Placeholder::*;

/// The one table of kinds, in the order they are documented.
const SPECS: [KindSpec; 13] = [
    KindSpec {
        name: "http",
        address_field: Some("url"),
        default_condition: Some("[STATUS] < 400"),
        measures: &[Status, Body, ResponseTime, Connected, Ip, CertificateExpiration],
    },
    KindSpec {
        name: "tcp",
        address_field: Some("address"),
        default_condition: Some("[CONNECTED] == true"),
        measures: &[Body, ResponseTime, Connected, Ip, CertificateExpiration],
    },
    KindSpec {
        name: "tls",
        address_field: Some("address"),
        default_condition: Some("[CONNECTED] == true"),
        measures: &[ResponseTime, Connected, Ip, CertificateExpiration],
    },
    KindSpec {
        name: "icmp",
        address_field: Some("host"),
        default_condition: Some("[PACKET_LOSS] < 100%"),
        measures: &[PacketLoss, RttAvg, RttMax, Jitter, PathMtu, Connected, Ip, ResponseTime],
    },
    KindSpec {
        name: "dns",
        address_field: Some("host"),
        default_condition: Some("[DNS_RCODE] == NOERROR"),
        measures: &[DnsRcode, Body, ResponseTime, Connected, Ip],
    },
    KindSpec { name: "exec", address_field: None, default_condition: None, measures: &[ExitCode, Body, ResponseTime] },
    KindSpec { name: "heartbeat", address_field: None, default_condition: None, measures: &[] },
    KindSpec {
        name: "smtp",
        address_field: Some("address"),
        default_condition: Some("[STATUS] == 221"),
        measures: &[Status, Body, ResponseTime, Connected, Ip, CertificateExpiration],
    },
    KindSpec {
        name: "websocket",
        address_field: Some("url"),
        default_condition: Some("[STATUS] == 101"),
        measures: &[Status, Body, ResponseTime, Connected, Ip, CertificateExpiration],
    },
    KindSpec {
        name: "sip",
        address_field: Some("address"),
        default_condition: Some("[SIP_STATUS] == 200"),
        measures: &[SipStatus, ResponseTime, Connected, Ip],
    },
    KindSpec {
        name: "ntp",
        address_field: Some("host"),
        default_condition: Some("[NTP_OFFSET] < 1s"),
        measures: &[NtpOffset, NtpStratum, NtpRootDistance, ResponseTime, Connected, Ip],
    },
    KindSpec {
        name: "snmp",
        address_field: Some("address"),
        default_condition: Some("[CONNECTED] == true"),
        measures: &[
            Body,
            ResponseTime,
            Connected,
            Ip,
            IfOperStatus,
            IfAdminStatus,
            IfInBps,
            IfOutBps,
            IfUtilisation,
            IfInErrorsRate,
            IfOutErrorsRate,
            IfInDiscardsRate,
            IfOutDiscardsRate,
        ],
    },
    // A transaction: its conditions are each step's (see `config::steps`).
    KindSpec { name: "steps", address_field: None, default_condition: None, measures: &[ResponseTime] },
];

impl Kind {
    /// Every kind, in the order they are documented.
    pub const ALL: [Kind; 13] = [
        Kind::Http,
        Kind::Tcp,
        Kind::Tls,
        Kind::Icmp,
        Kind::Dns,
        Kind::Exec,
        Kind::Heartbeat,
        Kind::Smtp,
        Kind::Websocket,
        Kind::Sip,
        Kind::Ntp,
        Kind::Snmp,
        Kind::Steps,
    ];

    /// What the kind declares.
    pub fn spec(self) -> &'static KindSpec {
        &SPECS[match self {
            Kind::Http => 0,
            Kind::Tcp => 1,
            Kind::Tls => 2,
            Kind::Icmp => 3,
            Kind::Dns => 4,
            Kind::Exec => 5,
            Kind::Heartbeat => 6,
            Kind::Smtp => 7,
            Kind::Websocket => 8,
            Kind::Sip => 9,
            Kind::Ntp => 10,
            Kind::Snmp => 11,
            Kind::Steps => 12,
        }]
    }

    /// The section name, as in the configuration and the `kind` metric label.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// Whether its probe measures `placeholder`.
    pub fn measures(self, placeholder: Placeholder) -> bool {
        self.spec().measures.contains(&placeholder)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
