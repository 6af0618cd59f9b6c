//! The document of `/api/v1/status`, serialised straight from the board: at 50,000 targets
//! building it as a `serde_json::Value` tree first (a map per target and per result) took
//! seconds; these borrowed structs write the same fields in one pass.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Board, Combined, LastResult, TargetView, combined, local_time, system_since, system_state};
use crate::config::{Check, System};
use crate::model::State;

/// The whole document.
#[derive(Serialize)]
pub struct Document<'a> {
    instance: Instance<'a>,
    systems: Vec<SystemDoc<'a>>,
    vantages: Vec<VantageDoc<'a>>,
}

#[derive(Serialize)]
struct Instance<'a> {
    name: &'a str,
    location: &'a Option<String>,
    timezone: &'a str,
}

#[derive(Serialize)]
struct Names<'a> {
    vi: &'a str,
    en: &'a str,
}

#[derive(Serialize)]
struct SystemDoc<'a> {
    id: &'a str,
    name: Names<'a>,
    state: &'static str,
    since: Option<String>,
    sla_objective: Option<f64>,
    checks: Vec<CheckDoc<'a>>,
}

#[derive(Serialize)]
struct CheckDoc<'a> {
    id: &'a str,
    name: &'a str,
    kind: crate::config::Kind,
    critical: bool,
    depends_on: &'a [String],
    targets: Vec<TargetDoc<'a>>,
}

#[derive(Serialize)]
struct TargetDoc<'a> {
    combined: Option<CombinedDoc>,
    id: String,
    name: &'a str,
    state: &'static str,
    flapping: bool,
    stale: bool,
    since: Option<String>,
    last_result: Option<LastDoc<'a>>,
}

#[derive(Serialize)]
struct CombinedDoc {
    state: &'static str,
    down: Vec<String>,
    needed: usize,
    observers: Vec<Observer>,
}

#[derive(Serialize)]
struct Observer {
    name: String,
    state: &'static str,
}

#[derive(Serialize)]
struct LastDoc<'a> {
    at: String,
    health: &'static str,
    reason: Option<&'static str>,
    message: &'a str,
    failed_conditions: &'a [String],
    duration_seconds: f64,
    status_code: Option<u16>,
    ip: Option<std::net::IpAddr>,
    redirects: u32,
    phases: BTreeMap<&'static str, f64>,
    certificates: &'a [crate::probe::CertInfo],
    ntp: &'a Option<crate::probe::ntp::NtpReading>,
    sip_status: Option<u16>,
    addresses: &'a [crate::probe::addresses::AddressOutcome],
}

#[derive(Serialize)]
struct VantageDoc<'a> {
    name: &'a str,
    state: &'static str,
    last_seen: Option<String>,
    targets: Vec<VantageTarget<'a>>,
}

#[derive(Serialize)]
struct VantageTarget<'a> {
    id: &'a str,
    state: &'static str,
    since: String,
}

impl Board {
    /// The document of `/api/v1/status`, borrowing from the board.
    pub fn document(&self) -> Document<'_> {
        let tz = &self.config.instance.timezone;
        let vantages = self
            .vantages
            .iter()
            .map(|(name, v)| VantageDoc {
                name,
                state: if v.lost {
                    "lost"
                } else if v.last_seen_ms.is_some() {
                    "connected"
                } else {
                    "never_seen"
                },
                last_seen: v.last_seen_ms.map(|ms| local_time(ms, tz)),
                targets: v
                    .states
                    .iter()
                    .map(|(id, (state, since))| VantageTarget {
                        id,
                        state: state.as_str(),
                        since: local_time(*since, tz),
                    })
                    .collect(),
            })
            .collect();
        Document {
            instance: Instance {
                name: &self.config.instance.name,
                location: &self.config.instance.location,
                timezone: &self.config.instance.timezone_name,
            },
            systems: self.config.systems.iter().map(|s| self.system_doc(s)).collect(),
            vantages,
        }
    }

    fn system_doc<'a>(&'a self, system: &'a System) -> SystemDoc<'a> {
        let tz = &self.config.instance.timezone;
        SystemDoc {
            id: &system.id,
            name: Names { vi: &system.name_vi, en: &system.name_en },
            state: system_state(system, &self.targets).as_str(),
            since: system_since(system, &self.targets).map(|ms| local_time(ms, tz)),
            sla_objective: system.sla,
            checks: system.checks.iter().map(|c| self.check_doc(c)).collect(),
        }
    }

    fn check_doc<'a>(&'a self, check: &'a Check) -> CheckDoc<'a> {
        let targets = check
            .targets
            .iter()
            .map(|t| {
                let id = t.id().to_string();
                let view = self.targets.get(&id);
                let combined = combined(&self.config, check, &id, &self.targets, &self.vantages).map(combined_doc);
                self.target_doc(id, &t.key.target, view, combined)
            })
            .collect();
        CheckDoc {
            id: &check.id,
            name: &check.name,
            kind: check.probe.kind(),
            critical: check.critical,
            depends_on: &check.depends_on,
            targets,
        }
    }

    fn target_doc<'a>(
        &'a self,
        id: String,
        name: &'a str,
        view: Option<&'a TargetView>,
        combined: Option<CombinedDoc>,
    ) -> TargetDoc<'a> {
        let tz = &self.config.instance.timezone;
        TargetDoc {
            combined,
            id,
            name,
            state: view.map_or(State::Unknown, |v| v.state.state).as_str(),
            flapping: view.is_some_and(|v| v.flapping),
            stale: view.is_some_and(|v| v.stale),
            since: view.map(|v| local_time(v.state.since_ms, tz)),
            last_result: view.and_then(|v| v.last.as_deref()).map(|l| last_doc(l, tz)),
        }
    }
}

fn combined_doc(c: Combined) -> CombinedDoc {
    CombinedDoc {
        state: c.state.as_str(),
        down: c.down,
        needed: c.needed,
        observers: c.observers.into_iter().map(|(name, s)| Observer { name, state: s.as_str() }).collect(),
    }
}

fn last_doc<'a>(last: &'a LastResult, tz: &jiff::tz::TimeZone) -> LastDoc<'a> {
    let o = &last.outcome;
    let obs = &o.observations;
    LastDoc {
        at: local_time(last.at_ms, tz),
        health: o.health.as_str(),
        reason: o.reason.map(|r| r.code()),
        message: &o.message,
        failed_conditions: &o.failed_conditions,
        duration_seconds: o.duration.as_secs_f64(),
        status_code: obs.status,
        ip: obs.ip,
        redirects: obs.redirects,
        phases: obs.phases.iter().map(|(name, d)| (*name, d.as_secs_f64())).collect(),
        certificates: &obs.certificates,
        ntp: &obs.ntp,
        sip_status: obs.sip_status,
        addresses: &obs.addresses,
    }
}
