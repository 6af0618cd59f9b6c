//! The per-target families (`vigil_check_up`, `vigil_check_state`, …): one small record of
//! plain numbers per target, written straight to text at scrape time.
//!
//! At 10,000 targets the `prometheus` crate's label-keyed vectors cost about 1 KB per series
//! (each child clones its descriptor and label pairs) and every `gather()` copies all
//! 150,000 series into protobuf structs first; this table holds ~300 bytes per target and
//! encodes without copying, locking each target only for the moment its record is read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

mod exposition;

pub use exposition::TableCursor;

use super::echo_histogram::EchoHistogram;
use super::text;
use crate::config::TargetKey;
use crate::model::State;
use crate::probe::{FailureReason, ProbeOutcome};

/// Perfdata series kept per target at most.
pub const MAX_PERFDATA_SERIES: usize = 64;
/// The `stat` values of `vigil_icmp_rtt_seconds`.
const RTT_STATS: [&str; 4] = ["min", "avg", "max", "jitter"];

/// The latest readings of one target.
#[derive(Debug, PartialEq)]
pub(super) struct Readings {
    up: bool,
    state: State,
    reason: Option<FailureReason>,
    duration: f64,
    last_run: f64,
    runs_success: u64,
    runs_failure: u64,
    http_status: Option<u16>,
    tls_not_after: Option<i64>,
    icmp_loss: Option<f64>,
    icmp_rtt: Option<[f64; 4]>,
    /// Every echo's round trip since start (ICMP checks only).
    echo_rtts: Option<Box<EchoHistogram>>,
    icmp_path_mtu: Option<f64>,
    dns_lookup: Option<f64>,
    heartbeat_last_seen: Option<f64>,
    /// `(label, uom, value)` of every perfdata series reported so far.
    perfdata: Vec<(String, String, f64)>,
    /// With `ip: all`: each address of the last run, and whether it was up.
    addresses: Vec<(String, bool)>,
    /// With the SNMP interfaces mode: the judged interfaces of the last run.
    pub(super) interfaces: Vec<crate::probe::snmp::Interface>,
}

impl Default for Readings {
    fn default() -> Self {
        Readings {
            up: false,
            state: State::Unknown,
            reason: None,
            duration: 0.0,
            last_run: 0.0,
            runs_success: 0,
            runs_failure: 0,
            http_status: None,
            tls_not_after: None,
            icmp_loss: None,
            icmp_rtt: None,
            echo_rtts: None,
            icmp_path_mtu: None,
            dns_lookup: None,
            heartbeat_last_seen: None,
            perfdata: Vec::new(),
            addresses: Vec::new(),
            interfaces: Vec::new(),
        }
    }
}

/// One target's rendered labels and readings.
#[derive(Debug)]
struct Slot {
    /// `check="…",kind="…",system="…",target="…"`, escaped once.
    labels: String,
    readings: Mutex<Readings>,
}

impl Slot {
    fn readings(&self) -> MutexGuard<'_, Readings> {
        self.readings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle on one target's series, held by the pipeline.
#[derive(Debug)]
pub struct TargetSeries {
    /// The slot's key in the table (the order targets were added in).
    id: u64,
    slot: Arc<Slot>,
    /// Perfdata labels to export (`*` for all).
    perfdata_allowed: Vec<String>,
}

/// Every target's series.
#[derive(Debug)]
pub struct TargetTable {
    /// `,location="…"` when the instance has a location, else empty.
    location: String,
    /// Every target by id, in the order they were added (the exposition order).
    slots: Mutex<BTreeMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
}

/// Receives one sample: its extra label pairs and value.
pub(super) type Emit<'a> = dyn FnMut(&[(&str, &str)], f64) + 'a;

/// One family: its name, help, type and the samples a target's readings give.
pub(super) struct Family {
    pub(super) name: &'static str,
    pub(super) help: &'static str,
    pub(super) kind: &'static str,
    pub(super) samples: fn(&Readings, &mut Emit<'_>),
}

/// Emits one unlabelled sample when there is a reading.
fn one(reading: Option<f64>, emit: &mut Emit<'_>) {
    if let Some(v) = reading {
        emit(&[], v);
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The families, in exposition order.
const FAMILIES: [Family; 15] = [
    Family {
        name: super::CHECK_UP,
        help: "1 if the last probe of the target succeeded.",
        kind: "gauge",
        samples: |r, emit| emit(&[], flag(r.up)),
    },
    Family {
        name: super::CHECK_STATE,
        help: "1 for the target's current state, 0 for the others.",
        kind: "gauge",
        samples: |r, emit| {
            for s in State::ALL {
                emit(&[("state", s.as_str())], flag(s == r.state));
            }
        },
    },
    Family {
        name: super::CHECK_FAILURE_INFO,
        help: "1 while the last probe failed, labelled with the reason code.",
        kind: "gauge",
        samples: |r, emit| {
            if let Some(reason) = r.reason {
                emit(&[("reason", reason.code())], 1.0);
            }
        },
    },
    Family {
        name: super::CHECK_DURATION,
        help: "Duration of the last probe.",
        kind: "gauge",
        samples: |r, emit| emit(&[], r.duration),
    },
    Family {
        name: super::CHECK_LAST_RUN,
        help: "Unix time the last probe finished.",
        kind: "gauge",
        samples: |r, emit| emit(&[], r.last_run),
    },
    Family {
        name: super::CHECK_RUNS,
        help: "Probe runs by result.",
        kind: "counter",
        samples: |r, emit| {
            emit(&[("result", "failure")], r.runs_failure as f64);
            emit(&[("result", "success")], r.runs_success as f64);
        },
    },
    Family {
        name: super::HTTP_STATUS_CODE,
        help: "HTTP status code of the last response.",
        kind: "gauge",
        samples: |r, emit| one(r.http_status.map(f64::from), emit),
    },
    Family {
        name: super::CHECK_ADDRESS_UP,
        help: "With ip: all, whether each address the target resolved to passed its last probe.",
        kind: "gauge",
        samples: |r, emit| {
            for (address, up) in &r.addresses {
                emit(&[("address", address)], f64::from(u8::from(*up)));
            }
        },
    },
    Family {
        name: super::TLS_NOT_AFTER,
        help: "Earliest not-after of the peer's certificate chain, also after it expired.",
        kind: "gauge",
        samples: |r, emit| one(r.tls_not_after.map(|t| t as f64), emit),
    },
    Family {
        name: super::ICMP_RTT,
        help: "Round-trip times of the last ICMP run (min, avg, max, jitter).",
        kind: "gauge",
        samples: |r, emit| {
            for (stat, v) in RTT_STATS.iter().zip(r.icmp_rtt.iter().flatten()) {
                emit(&[("stat", stat)], *v);
            }
        },
    },
    Family {
        name: super::ICMP_LOSS,
        help: "Share of echo requests lost in the last ICMP run.",
        kind: "gauge",
        samples: |r, emit| one(r.icmp_loss, emit),
    },
    Family {
        name: super::ICMP_PATH_MTU,
        help: "With sizes: the largest IP packet that reached the target unfragmented in the last run.",
        kind: "gauge",
        samples: |r, emit| one(r.icmp_path_mtu, emit),
    },
    Family {
        name: super::DNS_LOOKUP,
        help: "Duration of the last DNS lookup.",
        kind: "gauge",
        samples: |r, emit| one(r.dns_lookup, emit),
    },
    Family {
        name: super::EXEC_PERFDATA,
        help: "Performance data of the last plugin run, as the plugin reported it.",
        kind: "gauge",
        samples: |r, emit| {
            for (label, uom, v) in &r.perfdata {
                emit(&[("label", label), ("uom", uom)], *v);
            }
        },
    },
    Family {
        name: super::HEARTBEAT_LAST_SEEN,
        help: "Unix time of the last heartbeat pushed.",
        kind: "gauge",
        samples: |r, emit| one(r.heartbeat_last_seen, emit),
    },
];

impl TargetTable {
    /// An empty table; `location` becomes a label on every series.
    pub fn new(location: Option<&str>) -> TargetTable {
        let mut rendered = String::new();
        if let Some(l) = location {
            text::label(&mut rendered, false, "location", l);
        }
        TargetTable { location: rendered, slots: Mutex::default(), next_id: AtomicU64::new(0) }
    }

    fn slots(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a target; its series appear from the next scrape.
    pub fn add(&self, key: &TargetKey, kind: &str, perfdata: &[String]) -> TargetSeries {
        let mut labels = String::new();
        text::label(&mut labels, true, "check", &key.check);
        text::label(&mut labels, false, "kind", kind);
        text::label(&mut labels, false, "system", &key.system);
        text::label(&mut labels, false, "target", &key.target);
        let slot = Arc::new(Slot { labels, readings: Mutex::default() });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.slots().insert(id, slot.clone());
        TargetSeries { id, slot, perfdata_allowed: perfdata.to_vec() }
    }

    /// Removes a target's series.
    pub fn remove(&self, t: &TargetSeries) {
        self.slots().remove(&t.id);
    }
}

impl TargetSeries {
    /// Records a probe's outcome.
    pub fn record(&self, outcome: &ProbeOutcome, finished_unix: f64) {
        let obs = &outcome.observations;
        let mut r = self.slot.readings();
        r.up = outcome.reason.is_none();
        r.reason = outcome.reason;
        r.duration = outcome.duration.as_secs_f64();
        r.last_run = finished_unix;
        if r.up {
            r.runs_success += 1;
        } else {
            r.runs_failure += 1;
        }
        if let Some(status) = obs.status {
            r.http_status = Some(status);
        }
        // The addresses of this run only: one that no longer resolves leaves the series.
        r.interfaces = obs.interfaces.iter().filter(|i| i.judged).cloned().collect();
        r.addresses = obs.addresses.iter().map(|a| (a.ip.to_string(), a.health == crate::model::Health::Up)).collect();
        if let Some(not_after) = obs.earliest_not_after() {
            r.tls_not_after = Some(not_after);
        }
        if let Some(icmp) = &obs.icmp {
            r.icmp_loss = Some(f64::from(icmp.sent - icmp.received) / f64::from(icmp.sent.max(1)));
            r.echo_rtts.get_or_insert_default().observe(&icmp.rtts);
            r.icmp_path_mtu = icmp.path_mtu.map(f64::from);
            if icmp.received > 0 {
                r.icmp_rtt = Some([icmp.rtt_min, icmp.rtt_avg, icmp.rtt_max, icmp.jitter].map(|d| d.as_secs_f64()));
            }
        }
        if let Some(dns) = &obs.dns {
            r.dns_lookup = Some(dns.lookup_time.as_secs_f64());
        }
        if let Some(ms) = obs.heartbeat_last_seen_ms {
            r.heartbeat_last_seen = Some(ms as f64 / 1000.0);
        }
        if let Some(exec) = &obs.exec {
            let all = self.perfdata_allowed.iter().any(|a| a == "*");
            for p in &exec.perfdata {
                let Some(value) = p.value else { continue };
                if !all && !self.perfdata_allowed.contains(&p.label) {
                    continue;
                }
                // `perfdata: ["*"]` with a plugin that invents labels run after run would grow
                // the series without end: at most MAX_PERFDATA_SERIES per target.
                let room = r.perfdata.len() < MAX_PERFDATA_SERIES;
                match r.perfdata.iter_mut().find(|(l, u, _)| *l == p.label && *u == p.uom) {
                    Some(series) => series.2 = value,
                    None if room => r.perfdata.push((p.label.clone(), p.uom.clone(), value)),
                    None => {}
                }
            }
        }
    }

    /// Sets the current state (the one-hot `vigil_check_state` series).
    pub fn set_state(&self, state: State) {
        self.slot.readings().state = state;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::Health;
    use crate::probe::{ExecResult, Observations};

    fn key(target: &str) -> TargetKey {
        TargetKey { system: "web".into(), check: "portal".into(), target: target.into() }
    }

    fn outcome(reason: Option<FailureReason>, observations: Observations) -> ProbeOutcome {
        ProbeOutcome {
            health: if reason.is_none() { Health::Up } else { Health::Down },
            reason,
            message: String::new(),
            failed_conditions: Vec::new(),
            observations,
            duration: Duration::from_millis(250),
        }
    }

    #[test]
    fn encodes_one_family_block_per_name_with_every_target() {
        let table = TargetTable::new(Some("Lai Châu"));
        let a = table.add(&key("a"), "http", &[]);
        let b = table.add(&key("b\"x"), "http", &[]);
        a.record(&outcome(None, Observations { status: Some(200), ..Observations::default() }), 1_790_000_000.5);
        a.set_state(State::Up);
        b.record(&outcome(Some(FailureReason::Refused), Observations::default()), 1_790_000_001.0);
        b.set_state(State::Down);
        let mut out = String::new();
        table.encode(&mut out);

        let base = |t: &str| format!(r#"check="portal",kind="http",system="web",target="{t}""#);
        let loc = r#",location="Lai Châu""#;
        for line in [
            format!("vigil_check_up{{{}{loc}}} 1", base("a")),
            format!("vigil_check_up{{{}{loc}}} 0", base(r#"b\"x"#)),
            format!(r#"vigil_check_state{{{},state="up"{loc}}} 1"#, base("a")),
            format!(r#"vigil_check_state{{{},state="down"{loc}}} 0"#, base("a")),
            format!(r#"vigil_check_state{{{},state="down"{loc}}} 1"#, base(r#"b\"x"#)),
            format!(r#"vigil_check_failure_info{{{},reason="refused"{loc}}} 1"#, base(r#"b\"x"#)),
            format!(r#"vigil_check_runs_total{{{},result="success"{loc}}} 1"#, base("a")),
            format!(r#"vigil_check_runs_total{{{},result="failure"{loc}}} 1"#, base(r#"b\"x"#)),
            format!("vigil_check_duration_seconds{{{}{loc}}} 0.25", base("a")),
            format!("vigil_check_last_run_timestamp_seconds{{{}{loc}}} 1790000000.5", base("a")),
            format!("vigil_http_status_code{{{}{loc}}} 200", base("a")),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
        for name in ["vigil_check_up", "vigil_check_state", "vigil_check_runs_total"] {
            assert_eq!(out.matches(&format!("# TYPE {name} ")).count(), 1, "{name} once");
        }
        assert_eq!(out.lines().filter(|l| l.starts_with("vigil_check_failure_info{")).count(), 1);
        assert!(!out.contains("vigil_icmp_rtt_seconds"), "no empty families: {out}");

        // A recovery drops the reason; removal drops every series of the target.
        b.record(&outcome(None, Observations::default()), 1_790_000_002.0);
        table.remove(&a);
        let mut out = String::new();
        table.encode(&mut out);
        assert!(!out.contains("vigil_check_failure_info"), "{out}");
        assert!(!out.contains(r#"target="a""#), "{out}");
        assert_eq!(out.lines().filter(|l| l.starts_with("vigil_check_state{")).count(), 6);
    }

    /// Issue #14, item 7: labels that change on every run do not grow a target's series.
    #[test]
    fn perfdata_series_are_bounded_per_target() {
        let table = TargetTable::new(None);
        let t = table.add(&key("disk"), "exec", &["*".to_string()]);
        for run in 0..100 {
            let perfdata = crate::probe::perfdata::parse_perfdata(&format!("run{run}=1 other{run}=2"));
            let exec = ExecResult { exit_code: Some(0), message: "OK".into(), perfdata };
            t.record(&outcome(None, Observations { exec: Some(exec), ..Observations::default() }), 0.0);
        }
        let mut out = String::new();
        table.encode(&mut out);
        assert_eq!(out.lines().filter(|l| l.starts_with("vigil_exec_perfdata{")).count(), MAX_PERFDATA_SERIES);
    }

    #[test]
    fn perfdata_keeps_each_label_once_and_only_allowed_ones() {
        let table = TargetTable::new(None);
        let t = table.add(&key("disk"), "exec", &["used".to_string()]);
        for used in ["used=10MB;;;0 free=5MB", "used=12MB;;;0 free=3MB"] {
            let perfdata = crate::probe::perfdata::parse_perfdata(used);
            let exec = ExecResult { exit_code: Some(0), message: "OK".into(), perfdata };
            t.record(&outcome(None, Observations { exec: Some(exec), ..Observations::default() }), 0.0);
        }
        let mut out = String::new();
        table.encode(&mut out);
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("vigil_exec_perfdata{")).collect();
        assert_eq!(
            lines,
            [r#"vigil_exec_perfdata{check="portal",kind="exec",system="web",target="disk",label="used",uom="MB"} 12"#]
        );
    }
}
