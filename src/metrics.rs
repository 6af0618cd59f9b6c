//! Prometheus metrics: names as constants, families in a registry the app owns (never the
//! global default), and per-target handles whose label values are bound once.

use std::collections::HashMap;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::alert::state::State;
use crate::config::TargetKey;
use crate::probe::{FailureReason, ProbeOutcome};

pub const CHECK_UP: &str = "vigil_check_up";
pub const CHECK_STATE: &str = "vigil_check_state";
pub const CHECK_FAILURE_INFO: &str = "vigil_check_failure_info";
pub const CHECK_DURATION: &str = "vigil_check_duration_seconds";
pub const PROBE_DURATION: &str = "vigil_probe_duration_seconds";
pub const CHECK_RUNS: &str = "vigil_check_runs_total";
pub const CHECK_LAST_RUN: &str = "vigil_check_last_run_timestamp_seconds";
pub const HTTP_STATUS_CODE: &str = "vigil_http_status_code";
pub const TLS_NOT_AFTER: &str = "vigil_tls_cert_not_after_timestamp_seconds";
pub const SYSTEM_UP: &str = "vigil_system_up";
pub const SYSTEM_SLA: &str = "vigil_system_sla_objective_ratio";
pub const SCHEDULER_LAG: &str = "vigil_scheduler_lag_seconds";
pub const CHECKS_CONFIGURED: &str = "vigil_checks_configured";
pub const RELOAD_OK: &str = "vigil_config_last_reload_successful";
pub const RELOAD_TIME: &str = "vigil_config_last_reload_success_timestamp_seconds";
pub const BUILD_INFO: &str = "vigil_build_info";
pub const ICMP_RTT: &str = "vigil_icmp_rtt_seconds";
pub const ICMP_LOSS: &str = "vigil_icmp_packet_loss_ratio";
pub const DNS_LOOKUP: &str = "vigil_dns_lookup_duration_seconds";
pub const EXEC_PERFDATA: &str = "vigil_exec_perfdata";
pub const HEARTBEAT_LAST_SEEN: &str = "vigil_heartbeat_last_seen_timestamp_seconds";
pub const INCIDENTS_OPEN: &str = "vigil_incidents_open";
pub const INCIDENTS_TOTAL: &str = "vigil_incidents_total";
pub const NOTIFICATIONS: &str = "vigil_notifications_total";
pub const NOTIFICATION_QUEUE: &str = "vigil_notification_queue_depth";
pub const NOTIFICATION_DELIVERY: &str = "vigil_notification_delivery_seconds";

/// The `stat` values of `vigil_icmp_rtt_seconds`.
const RTT_STATS: [&str; 4] = ["min", "avg", "max", "jitter"];

const TARGET_LABELS: [&str; 4] = ["system", "check", "target", "kind"];

/// Buckets for probe durations and scheduler lag (seconds).
const DURATION_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// All of Vigil's metric families.
pub struct Metrics {
    registry: Registry,
    check_up: GaugeVec,
    check_state: GaugeVec,
    failure_info: GaugeVec,
    check_duration: GaugeVec,
    probe_duration: HistogramVec,
    runs: IntCounterVec,
    last_run: GaugeVec,
    http_status: GaugeVec,
    tls_not_after: GaugeVec,
    icmp_rtt: GaugeVec,
    icmp_loss: GaugeVec,
    dns_lookup: GaugeVec,
    exec_perfdata: GaugeVec,
    heartbeat_last_seen: GaugeVec,
    system_up: IntGaugeVec,
    system_sla: GaugeVec,
    /// Open incidents by system and severity.
    pub incidents_open: IntGaugeVec,
    /// Incidents opened by system and severity.
    pub incidents_total: IntCounterVec,
    /// Delivery attempts by receiver, channel and outcome (`delivered`, `failed`, `expired`).
    pub notifications: IntCounterVec,
    /// Notifications waiting per receiver.
    pub notification_queue: IntGaugeVec,
    /// Time from a notification's creation to its delivery.
    pub notification_delivery: Histogram,
    /// Scheduler lag: time from a probe's scheduled tick to its start.
    pub scheduler_lag: Histogram,
    /// Number of check targets configured.
    pub checks_configured: IntGauge,
    /// 1 if the last reload succeeded.
    pub reload_ok: IntGauge,
    /// Time of the last successful (re)load.
    pub reload_time: Gauge,
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry.register(Box::new(c.clone())).expect("metric names are unique");
    c
}

impl Metrics {
    /// Creates the families; `location`, when set, becomes a constant label on all.
    pub fn new(location: Option<&str>) -> Metrics {
        let labels = location.map(|l| HashMap::from([("location".to_string(), l.to_string())]));
        let registry = Registry::new_custom(None, labels).expect("valid constant labels");
        let gauge = |name: &str, help: &str, extra: &[&str]| {
            let mut names: Vec<&str> = TARGET_LABELS.to_vec();
            names.extend_from_slice(extra);
            register(&registry, GaugeVec::new(Opts::new(name, help), &names).expect("valid metric"))
        };
        let m = Metrics {
            check_up: gauge(CHECK_UP, "1 if the last probe of the target succeeded.", &[]),
            check_state: gauge(CHECK_STATE, "1 for the target's current state, 0 for the others.", &["state"]),
            failure_info: gauge(
                CHECK_FAILURE_INFO,
                "1 while the last probe failed, labelled with the reason code.",
                &["reason"],
            ),
            check_duration: gauge(CHECK_DURATION, "Duration of the last probe.", &[]),
            last_run: gauge(CHECK_LAST_RUN, "Unix time the last probe finished.", &[]),
            http_status: gauge(HTTP_STATUS_CODE, "HTTP status code of the last response.", &[]),
            icmp_rtt: gauge(ICMP_RTT, "Round-trip times of the last ICMP run (min, avg, max, jitter).", &["stat"]),
            icmp_loss: gauge(ICMP_LOSS, "Share of echo requests lost in the last ICMP run.", &[]),
            dns_lookup: gauge(DNS_LOOKUP, "Duration of the last DNS lookup.", &[]),
            exec_perfdata: gauge(
                EXEC_PERFDATA,
                "Performance data of the last plugin run, as the plugin reported it.",
                &["label", "uom"],
            ),
            heartbeat_last_seen: gauge(HEARTBEAT_LAST_SEEN, "Unix time of the last heartbeat pushed.", &[]),
            tls_not_after: gauge(
                TLS_NOT_AFTER,
                "Earliest not-after of the peer's certificate chain, also after it expired.",
                &[],
            ),
            probe_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(PROBE_DURATION, "Probe durations.").buckets(DURATION_BUCKETS.to_vec()),
                    &["system", "kind"],
                )
                .expect("valid metric"),
            ),
            runs: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(CHECK_RUNS, "Probe runs by result."),
                    &["system", "check", "target", "kind", "result"],
                )
                .expect("valid metric"),
            ),
            system_up: register(
                &registry,
                IntGaugeVec::new(Opts::new(SYSTEM_UP, "1 if no critical check of the system is down."), &["system"])
                    .expect("valid metric"),
            ),
            system_sla: register(
                &registry,
                GaugeVec::new(Opts::new(SYSTEM_SLA, "The system's SLA objective as a ratio."), &["system"])
                    .expect("valid metric"),
            ),
            scheduler_lag: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(SCHEDULER_LAG, "Delay from a probe's scheduled time to its start.")
                        .buckets(DURATION_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
            incidents_open: register(
                &registry,
                IntGaugeVec::new(Opts::new(INCIDENTS_OPEN, "Open incidents."), &["system", "severity"])
                    .expect("valid metric"),
            ),
            incidents_total: register(
                &registry,
                IntCounterVec::new(Opts::new(INCIDENTS_TOTAL, "Incidents opened."), &["system", "severity"])
                    .expect("valid metric"),
            ),
            notifications: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(NOTIFICATIONS, "Notification delivery attempts by outcome."),
                    &["receiver", "channel", "outcome"],
                )
                .expect("valid metric"),
            ),
            notification_queue: register(
                &registry,
                IntGaugeVec::new(Opts::new(NOTIFICATION_QUEUE, "Notifications waiting for delivery."), &["receiver"])
                    .expect("valid metric"),
            ),
            notification_delivery: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(NOTIFICATION_DELIVERY, "Time from a notification's creation to its delivery.")
                        .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0]),
                )
                .expect("valid metric"),
            ),
            checks_configured: register(
                &registry,
                IntGauge::new(CHECKS_CONFIGURED, "Check targets configured.").expect("valid metric"),
            ),
            reload_ok: register(
                &registry,
                IntGauge::new(RELOAD_OK, "1 if the last configuration reload succeeded.").expect("valid metric"),
            ),
            reload_time: register(
                &registry,
                Gauge::new(RELOAD_TIME, "Unix time of the last successful configuration load.").expect("valid metric"),
            ),
            registry,
        };
        let build = register(
            &m.registry,
            IntGaugeVec::new(Opts::new(BUILD_INFO, "Vigil's version and revision."), &["version", "revision"])
                .expect("valid metric"),
        );
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), option_env!("VIGIL_REVISION").unwrap_or("unknown")])
            .set(1);
        #[cfg(target_os = "linux")]
        m.registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process metrics register once");
        m
    }

    /// The text exposition of every family.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Binds the label values of one target; `perfdata` lists the plugin perfdata labels
    /// exported (`*` for all).
    pub fn target(&self, key: &TargetKey, kind: &'static str, perfdata: &[String]) -> TargetMetrics {
        let labels = [key.system.clone(), key.check.clone(), key.target.clone(), kind.to_string()];
        let l: [&str; 4] = [&labels[0], &labels[1], &labels[2], &labels[3]];
        let states = State::ALL.map(|s| self.check_state.with_label_values(&with5(l, s.as_str())));
        TargetMetrics {
            up: self.check_up.with_label_values(&l),
            states,
            duration: self.check_duration.with_label_values(&l),
            last_run: self.last_run.with_label_values(&l),
            runs_success: self.runs.with_label_values(&with5(l, "success")),
            runs_failure: self.runs.with_label_values(&with5(l, "failure")),
            probe_duration: self.probe_duration.with_label_values(&[l[0], l[3]]),
            reason: None,
            perfdata_allowed: perfdata.to_vec(),
            perfdata_seen: Vec::new(),
            labels,
        }
    }

    /// Updates one target's series after a probe.
    pub fn record(&self, t: &mut TargetMetrics, outcome: &ProbeOutcome, finished_unix: f64) {
        let ok = outcome.reason.is_none();
        t.up.set(if ok { 1.0 } else { 0.0 });
        t.duration.set(outcome.duration.as_secs_f64());
        t.last_run.set(finished_unix);
        t.probe_duration.observe(outcome.duration.as_secs_f64());
        if ok {
            t.runs_success.inc()
        } else {
            t.runs_failure.inc()
        }
        let l = t.label_refs();
        if outcome.reason != t.reason {
            if let Some(old) = t.reason {
                let _ = self.failure_info.remove_label_values(&[l[0], l[1], l[2], l[3], old.code()]);
            }
            if let Some(new) = outcome.reason {
                self.failure_info.with_label_values(&[l[0], l[1], l[2], l[3], new.code()]).set(1.0);
            }
        }
        if let Some(status) = outcome.observations.status {
            self.http_status.with_label_values(&l).set(status.into());
        }
        let obs = &outcome.observations;
        if let Some(not_after) = obs.earliest_not_after() {
            self.tls_not_after.with_label_values(&l).set(not_after as f64);
        }
        if let Some(icmp) = &obs.icmp {
            self.icmp_loss
                .with_label_values(&l)
                .set(f64::from(icmp.sent - icmp.received) / f64::from(icmp.sent.max(1)));
            if icmp.received > 0 {
                for (stat, d) in RTT_STATS.iter().zip([icmp.rtt_min, icmp.rtt_avg, icmp.rtt_max, icmp.jitter]) {
                    self.icmp_rtt.with_label_values(&with5(l, stat)).set(d.as_secs_f64());
                }
            }
        }
        if let Some(dns) = &obs.dns {
            self.dns_lookup.with_label_values(&l).set(dns.lookup_time.as_secs_f64());
        }
        if let Some(ms) = obs.heartbeat_last_seen_ms {
            self.heartbeat_last_seen.with_label_values(&l).set(ms as f64 / 1000.0);
        }
        let mut fresh = Vec::new();
        if let Some(exec) = &obs.exec {
            let all = t.perfdata_allowed.iter().any(|a| a == "*");
            for p in &exec.perfdata {
                let Some(value) = p.value else { continue };
                if !all && !t.perfdata_allowed.contains(&p.label) {
                    continue;
                }
                let labels = [l[0], l[1], l[2], l[3], p.label.as_str(), p.uom.as_str()];
                self.exec_perfdata.with_label_values(&labels).set(value);
                fresh.push((p.label.clone(), p.uom.clone()));
            }
        }
        t.reason = outcome.reason;
        for key in fresh {
            if !t.perfdata_seen.contains(&key) {
                t.perfdata_seen.push(key);
            }
        }
    }

    /// Sets the one-hot state series of a target.
    pub fn set_state(&self, t: &TargetMetrics, state: State) {
        for (gauge, s) in t.states.iter().zip(State::ALL) {
            gauge.set(if s == state { 1.0 } else { 0.0 });
        }
    }

    /// Removes every series of a target (after a reload dropped it).
    pub fn remove(&self, t: &TargetMetrics) {
        let l = t.label_refs();
        for vec in [
            &self.check_up,
            &self.check_duration,
            &self.last_run,
            &self.http_status,
            &self.tls_not_after,
            &self.icmp_loss,
            &self.dns_lookup,
            &self.heartbeat_last_seen,
        ] {
            let _ = vec.remove_label_values(&l);
        }
        for stat in RTT_STATS {
            let _ = self.icmp_rtt.remove_label_values(&with5(l, stat));
        }
        for (label, uom) in &t.perfdata_seen {
            let _ = self.exec_perfdata.remove_label_values(&[l[0], l[1], l[2], l[3], label, uom]);
        }
        for s in State::ALL {
            let _ = self.check_state.remove_label_values(&with5(l, s.as_str()));
        }
        for r in FailureReason::ALL {
            let _ = self.failure_info.remove_label_values(&with5(l, r.code()));
        }
        for result in ["success", "failure"] {
            let _ = self.runs.remove_label_values(&with5(l, result));
        }
    }

    /// Sets a system's gauges.
    pub fn set_system(&self, system: &str, up: bool, sla: Option<f64>) {
        self.system_up.with_label_values(&[system]).set(i64::from(up));
        match sla {
            Some(v) => self.system_sla.with_label_values(&[system]).set(v),
            None => {
                let _ = self.system_sla.remove_label_values(&[system]);
            }
        }
    }

    /// Removes a system's gauges.
    pub fn remove_system(&self, system: &str) {
        let _ = self.system_up.remove_label_values(&[system]);
        let _ = self.system_sla.remove_label_values(&[system]);
    }
}

/// Target labels plus one more.
fn with5<'a>(l: [&'a str; 4], extra: &'a str) -> [&'a str; 5] {
    [l[0], l[1], l[2], l[3], extra]
}

/// The bound series of one target.
pub struct TargetMetrics {
    up: Gauge,
    states: [Gauge; 6],
    duration: Gauge,
    last_run: Gauge,
    runs_success: IntCounter,
    runs_failure: IntCounter,
    probe_duration: Histogram,
    reason: Option<FailureReason>,
    /// Perfdata labels to export (`*` for all).
    perfdata_allowed: Vec<String>,
    /// Perfdata series created so far, to remove with the target.
    perfdata_seen: Vec<(String, String)>,
    labels: [String; 4],
}

impl TargetMetrics {
    fn label_refs(&self) -> [&str; 4] {
        [&self.labels[0], &self.labels[1], &self.labels[2], &self.labels[3]]
    }
}
