//! Prometheus metrics: names as constants, families in a registry the app owns (never the
//! global default) for the instance-wide families, and a compact [`targets::TargetTable`]
//! for the per-target ones.
//!
//! size: `Metrics::new` registers every metric Vigil exports, one after the other — the list is the contract.

mod echo_histogram;
mod interface_series;
mod targets;
pub mod text;

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::config::TargetKey;
use crate::model::State;
use crate::probe::ProbeOutcome;
use targets::{TableCursor, TargetSeries, TargetTable};

pub const CHECK_UP: &str = "vigil_check_up";
pub const CHECK_STATE: &str = "vigil_check_state";
pub const CHECK_FAILURE_INFO: &str = "vigil_check_failure_info";
pub const CHECK_DURATION: &str = "vigil_check_duration_seconds";
pub const PROBE_DURATION: &str = "vigil_probe_duration_seconds";
pub const CHECK_RUNS: &str = "vigil_check_runs_total";
pub const CHECK_LAST_RUN: &str = "vigil_check_last_run_timestamp_seconds";
pub const HTTP_STATUS_CODE: &str = "vigil_http_status_code";
/// With `ip: all`: each address's last result (label `address`).
pub const CHECK_ADDRESS_UP: &str = "vigil_check_address_up";
pub const TLS_NOT_AFTER: &str = "vigil_tls_cert_not_after_timestamp_seconds";
pub const SYSTEM_UP: &str = "vigil_system_up";
pub const SYSTEM_SLA: &str = "vigil_system_sla_objective_ratio";
pub const SCHEDULER_LAG: &str = "vigil_scheduler_lag_seconds";
pub const CHECKS_CONFIGURED: &str = "vigil_checks_configured";
pub const CHECKS_STALE: &str = "vigil_checks_stale";
pub const RELOAD_OK: &str = "vigil_config_last_reload_successful";
pub const RELOAD_TIME: &str = "vigil_config_last_reload_success_timestamp_seconds";
pub const BUILD_INFO: &str = "vigil_build_info";
pub const ICMP_RTT: &str = "vigil_icmp_rtt_seconds";
pub const ICMP_LOSS: &str = "vigil_icmp_packet_loss_ratio";
/// Every echo's round trip, as a histogram (the smoke of SmokePing).
pub const ICMP_ECHO_RTT: &str = "vigil_icmp_echo_rtt_seconds";
/// With `sizes:`: the largest packet the path carried unfragmented.
pub const ICMP_PATH_MTU: &str = "vigil_icmp_path_mtu_bytes";
pub const DNS_LOOKUP: &str = "vigil_dns_lookup_duration_seconds";
pub const EXEC_PERFDATA: &str = "vigil_exec_perfdata";
pub const HEARTBEAT_LAST_SEEN: &str = "vigil_heartbeat_last_seen_timestamp_seconds";
pub const INCIDENTS_OPEN: &str = "vigil_incidents_open";
pub const INCIDENTS_TOTAL: &str = "vigil_incidents_total";
pub const NOTIFICATIONS: &str = "vigil_notifications_total";
pub const NOTIFICATION_QUEUE: &str = "vigil_notification_queue_depth";
pub const NOTIFICATION_DELIVERY: &str = "vigil_notification_delivery_seconds";
pub const STORE_WRITE_ERRORS: &str = "vigil_store_write_errors_total";
pub const STORE_LAST_WRITE: &str = "vigil_store_last_successful_write_timestamp_seconds";
pub const STORE_PENDING: &str = "vigil_store_pending_records";
pub const STORE_SHED: &str = "vigil_store_shed_results_total";
pub const DEPENDENCY_CHECKS: &str = "vigil_dependency_checks_total";
pub const DEPENDENCY_HOLD: &str = "vigil_dependency_hold_seconds";
pub const AGENT_BACKLOG: &str = "vigil_agent_backlog_records";
pub const AGENT_FORWARDED: &str = "vigil_agent_forwarded_records_total";
pub const AGENT_CENTRE_UP: &str = "vigil_agent_centre_reachable";
pub const VANTAGE_RECEIVED: &str = "vigil_vantage_received_records_total";
pub const VANTAGE_UP: &str = "vigil_vantage_up";
pub const VANTAGE_CLOCK_OFFSET: &str = "vigil_vantage_clock_offset_seconds";
pub const VANTAGE_NEWEST: &str = "vigil_vantage_newest_result_timestamp_seconds";
pub const VANTAGE_LAST_SEEN: &str = "vigil_vantage_last_seen_timestamp_seconds";
pub const VANTAGE_CHECK_UP: &str = "vigil_vantage_check_up";
pub const CHECK_COMBINED_UP: &str = "vigil_check_combined_up";
pub const CLUSTER_MEMBERS: &str = "vigil_cluster_members";
pub const CLUSTER_ASSIGNED: &str = "vigil_cluster_assigned_targets";
pub const CLUSTER_FAILOVERS: &str = "vigil_cluster_failovers_total";
pub const CLUSTER_DATABASE_UP: &str = "vigil_cluster_database_up";

/// Buckets for probe durations and scheduler lag (seconds).
const DURATION_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// All of Vigil's metric families.
pub struct Metrics {
    registry: Registry,
    targets: TargetTable,
    probe_duration: HistogramVec,
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
    /// Failing results held for their parents' answer, by how it ended (`parent_down`,
    /// `parent_up`, `timeout`).
    pub dependency_checks: IntCounterVec,
    /// How long a failing result was held for its parents.
    pub dependency_hold: Histogram,
    /// An agent's records waiting to be forwarded to its centre.
    pub agent_backlog: IntGauge,
    /// Records an agent forwarded (the centre committed them).
    pub agent_forwarded: IntCounter,
    /// 1 while an agent's last attempt to reach its centre succeeded.
    pub agent_centre_up: IntGauge,
    /// Live nodes of this node's cluster, as PostgreSQL last said.
    pub cluster_members: IntGauge,
    /// Targets this cluster node runs as their owner (helpers not counted).
    pub cluster_assigned: IntGauge,
    /// Nodes seen leaving the cluster (lease expired or stopped): their targets moved.
    pub cluster_failovers: IntCounter,
    /// 1 while this node's last lease renewal in PostgreSQL succeeded.
    pub cluster_database_up: IntGauge,
    /// Records a centre received, by vantage (replays included).
    pub vantage_received: IntCounterVec,
    /// 1 while a vantage point is heard from within its grace, 0 once it is lost.
    pub vantage_up: IntGaugeVec,
    /// When a vantage point's agent was last heard from.
    pub vantage_last_seen: GaugeVec,
    /// A target as seen from a vantage point: 1 up, 0 down (no series while the vantage is
    /// lost or has not judged it).
    pub vantage_check_up: IntGaugeVec,
    /// A target run from vantage points, by its `quorum` over every observer: 1 up, 0 down.
    pub check_combined_up: IntGaugeVec,
    /// A vantage point's clock minus the centre's, at its last batch.
    pub vantage_clock_offset: GaugeVec,
    /// When the newest result received from a vantage point was measured: how far behind
    /// its data is (a back-fill in progress, or a silent agent).
    pub vantage_newest: GaugeVec,
    /// Number of check targets configured.
    pub checks_configured: IntGauge,
    /// Check targets with no result for more than three intervals (the watchdog).
    pub checks_stale: IntGauge,
    /// 1 if the last reload succeeded.
    pub reload_ok: IntGauge,
    /// Time of the last successful (re)load.
    pub reload_time: Gauge,
    store: StoreFamilies,
}

/// The store writer's health: writes that fail must show before anything is lost.
struct StoreFamilies {
    write_errors: IntCounter,
    last_write: Gauge,
    pending: IntGauge,
    shed: IntCounter,
}

impl StoreFamilies {
    fn new(registry: &Registry) -> StoreFamilies {
        StoreFamilies {
            write_errors: register(
                registry,
                IntCounter::new(STORE_WRITE_ERRORS, "Failed attempts to write to the store (each is retried).")
                    .expect("valid metric"),
            ),
            last_write: register(
                registry,
                Gauge::new(STORE_LAST_WRITE, "Unix time of the last committed write to the store.")
                    .expect("valid metric"),
            ),
            pending: register(
                registry,
                IntGauge::new(STORE_PENDING, "Records waiting to be written to the store.").expect("valid metric"),
            ),
            shed: register(
                registry,
                IntCounter::new(STORE_SHED, "Plain results dropped because the store failed for long.")
                    .expect("valid metric"),
            ),
        }
    }
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
        let m = Metrics {
            targets: TargetTable::new(location),
            probe_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(PROBE_DURATION, "Probe durations.").buckets(DURATION_BUCKETS.to_vec()),
                    &["system", "kind"],
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
            dependency_checks: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        DEPENDENCY_CHECKS,
                        "Failing results held until their parents answered a probe, by result (parent_down, parent_up, timeout).",
                    ),
                    &["result"],
                )
                .expect("valid metric"),
            ),
            dependency_hold: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(DEPENDENCY_HOLD, "How long a failing result was held for its parents' answer.")
                        .buckets(DURATION_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
            agent_backlog: register(
                &registry,
                IntGauge::new(AGENT_BACKLOG, "Records waiting to be forwarded to the centre (agent).")
                    .expect("valid metric"),
            ),
            agent_forwarded: register(
                &registry,
                IntCounter::new(AGENT_FORWARDED, "Records the centre committed (agent).").expect("valid metric"),
            ),
            agent_centre_up: register(
                &registry,
                IntGauge::new(AGENT_CENTRE_UP, "1 while the last attempt to reach the centre succeeded (agent).")
                    .expect("valid metric"),
            ),
            cluster_members: register(
                &registry,
                IntGauge::new(CLUSTER_MEMBERS, "Live nodes of the cluster (cluster node).").expect("valid metric"),
            ),
            cluster_assigned: register(
                &registry,
                IntGauge::new(CLUSTER_ASSIGNED, "Targets this node runs as their owner (cluster node).")
                    .expect("valid metric"),
            ),
            cluster_failovers: register(
                &registry,
                IntCounter::new(CLUSTER_FAILOVERS, "Nodes seen leaving the cluster; their targets moved (cluster node).")
                    .expect("valid metric"),
            ),
            cluster_database_up: register(
                &registry,
                IntGauge::new(CLUSTER_DATABASE_UP, "1 while the last lease renewal in PostgreSQL succeeded (cluster node).")
                    .expect("valid metric"),
            ),
            vantage_received: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(VANTAGE_RECEIVED, "Records received from agents, by vantage (centre; replays included)."),
                    &["vantage"],
                )
                .expect("valid metric"),
            ),
            vantage_up: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(VANTAGE_UP, "1 while a vantage point's agent is heard from within its grace, 0 once lost."),
                    &["vantage"],
                )
                .expect("valid metric"),
            ),
            vantage_clock_offset: register(
                &registry,
                GaugeVec::new(
                    Opts::new(VANTAGE_CLOCK_OFFSET, "A vantage point's clock minus the centre's, at its last batch."),
                    &["vantage"],
                )
                .expect("valid metric"),
            ),
            vantage_newest: register(
                &registry,
                GaugeVec::new(
                    Opts::new(VANTAGE_NEWEST, "When the newest result received from a vantage point was measured."),
                    &["vantage"],
                )
                .expect("valid metric"),
            ),
            vantage_check_up: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(VANTAGE_CHECK_UP, "A target as seen from a vantage point: 1 up, 0 down (centre)."),
                    &["system", "check", "target", "vantage"],
                )
                .expect("valid metric"),
            ),
            check_combined_up: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(CHECK_COMBINED_UP, "A target run from vantage points, combined by its quorum: 1 up, 0 down."),
                    &["system", "check", "target"],
                )
                .expect("valid metric"),
            ),
            vantage_last_seen: register(
                &registry,
                GaugeVec::new(
                    Opts::new(VANTAGE_LAST_SEEN, "Unix time a vantage point's agent was last heard from."),
                    &["vantage"],
                )
                .expect("valid metric"),
            ),
            checks_configured: register(
                &registry,
                IntGauge::new(CHECKS_CONFIGURED, "Check targets configured.").expect("valid metric"),
            ),
            checks_stale: register(
                &registry,
                IntGauge::new(CHECKS_STALE, "Check targets with no result for more than three intervals.")
                    .expect("valid metric"),
            ),
            reload_ok: register(
                &registry,
                IntGauge::new(RELOAD_OK, "1 if the last configuration reload succeeded.").expect("valid metric"),
            ),
            reload_time: register(
                &registry,
                Gauge::new(RELOAD_TIME, "Unix time of the last successful configuration load.").expect("valid metric"),
            ),
            store: StoreFamilies::new(&registry),
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

    /// Copies the store writer's figures (counters only grow).
    pub fn set_store(&self, write_errors: u64, last_write_ms: i64, pending: u64, shed_results: u64) {
        let s = &self.store;
        s.write_errors.inc_by(write_errors.saturating_sub(s.write_errors.get()));
        s.shed.inc_by(shed_results.saturating_sub(s.shed.get()));
        if last_write_ms > 0 {
            s.last_write.set(last_write_ms as f64 / 1000.0);
        }
        s.pending.set(pending as i64);
    }

    /// The text exposition of every family, whole (benchmarks, tests); a scrape streams it
    /// with [`Metrics::exposition`].
    pub fn encode(self: &Arc<Self>) -> String {
        let mut out = String::new();
        let mut exposition = self.exposition();
        while let Some(chunk) = exposition.next_chunk() {
            out.push_str(&chunk);
        }
        out
    }

    /// A scrape's exposition, to be read chunk by chunk.
    pub fn exposition(self: &Arc<Self>) -> Exposition {
        Exposition { metrics: self.clone(), head_written: false, cursor: TableCursor::default() }
    }

    /// The instance-wide families (the registry's): small, encoded at once.
    fn encode_registry(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Adds the series of one target; `perfdata` lists the plugin perfdata labels exported
    /// (`*` for all).
    pub fn target(&self, key: &TargetKey, kind: &'static str, perfdata: &[String]) -> TargetMetrics {
        TargetMetrics {
            series: self.targets.add(key, kind, perfdata),
            probe_duration: self.probe_duration.with_label_values(&[&key.system, kind]),
        }
    }

    /// Updates one target's series after a probe.
    pub fn record(&self, t: &TargetMetrics, outcome: &ProbeOutcome, finished_unix: f64) {
        t.probe_duration.observe(outcome.duration.as_secs_f64());
        t.series.record(outcome, finished_unix);
    }

    /// Sets the one-hot state series of a target.
    pub fn set_state(&self, t: &TargetMetrics, state: State) {
        t.series.set_state(state);
    }

    /// Removes every series of a target (after a reload dropped it).
    pub fn remove(&self, t: &TargetMetrics) {
        self.targets.remove(&t.series);
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
        for severity in ["critical", "warning"] {
            let _ = self.incidents_open.remove_label_values(&[system, severity]);
        }
    }
}

/// The bytes of text a scrape's chunk holds at least (but the last).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A scrape in progress: the registry's families, then the per-target ones, [`CHUNK_BYTES`]
/// at a time.
pub struct Exposition {
    metrics: Arc<Metrics>,
    head_written: bool,
    cursor: TableCursor,
}

impl Exposition {
    /// The next piece of the text, or `None` once all is written.
    pub fn next_chunk(&mut self) -> Option<String> {
        let mut out = String::with_capacity(CHUNK_BYTES + 4096);
        if !std::mem::replace(&mut self.head_written, true) {
            out = self.metrics.encode_registry();
        }
        let more = self.metrics.targets.encode_some(&mut self.cursor, &mut out, CHUNK_BYTES);
        (more || !out.is_empty()).then_some(out)
    }
}

/// The series of one target.
pub struct TargetMetrics {
    series: TargetSeries,
    probe_duration: Histogram,
}
