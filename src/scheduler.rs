//! The scheduler: one timer per check target with a deterministic start offset (so that
//! checks spread over their interval and keep their phase across restarts), a global
//! bound on concurrent probes, and the probe deadline enforced by the prober.
//! Results go, in completion order, to one consumer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::model::Clock;
use crate::probe::{ProbeOutcome, Prober};

/// One finished probe.
#[derive(Debug)]
pub struct ProbeResult {
    pub target_id: String,
    pub outcome: ProbeOutcome,
    /// Wall-clock time the probe finished, Unix milliseconds.
    pub finished_ms: i64,
    /// Delay between the scheduled tick and the probe's start.
    pub lag: Duration,
}

/// Probes on demand: the pipeline asks for a target's probe now (a parent whose result is
/// older than a failing child's, see `pipeline::judge`); the target's timer runs it at once,
/// within the concurrency bound, and keeps its schedule.
#[derive(Debug, Default)]
pub struct OnDemand {
    wake: std::sync::RwLock<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl OnDemand {
    /// Asks for a probe of `target_id` now; false if no timer runs it.
    pub fn probe_now(&self, target_id: &str) -> bool {
        let wake = self.wake.read().unwrap_or_else(|p| p.into_inner());
        wake.get(target_id).map(|n| n.notify_one()).is_some()
    }

    /// Asks for a probe of `target_id` as soon as a timer runs it: now, or the moment its
    /// timer starts (a target just taken over from another node is probed at once, not at
    /// its next slot).
    pub fn probe_soon(&self, target_id: &str) {
        self.register(target_id.to_string()).notify_one();
    }

    fn register(&self, target_id: String) -> Arc<tokio::sync::Notify> {
        let mut wake = self.wake.write().unwrap_or_else(|p| p.into_inner());
        wake.entry(target_id).or_default().clone()
    }
}

/// Runs the probe timers of one configuration at a time.
pub struct Scheduler {
    prober: Arc<Prober>,
    results: mpsc::Sender<ProbeResult>,
    permits: Arc<Semaphore>,
    generation: CancellationToken,
    tasks: JoinSet<()>,
    on_demand: Arc<OnDemand>,
    /// What stamps each result.
    clock: Arc<dyn Clock>,
}

/// Start offsets are multiples of this: targets that share a slot start together, so the
/// runtime wakes once for several probes (and their echoes and replies) instead of once
/// each, while the checks still spread over their interval.
const START_SLOT_MS: u64 = 50;

/// A stable offset within the interval, from the target id (FNV-1a), on a
/// [`START_SLOT_MS`] grid.
pub fn start_offset(target_id: &str, interval: Duration) -> Duration {
    let hash =
        target_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let slots = (interval.as_millis() as u64 / START_SLOT_MS).max(1);
    Duration::from_millis(hash % slots * START_SLOT_MS)
}

impl Scheduler {
    /// A scheduler sending results to `results`, running at most `max_concurrent` probes,
    /// and probes on demand asked through `on_demand`; results are stamped by `clock` (the
    /// one the pipeline decides by).
    pub fn new(
        prober: Arc<Prober>,
        results: mpsc::Sender<ProbeResult>,
        max_concurrent: usize,
        on_demand: Arc<OnDemand>,
        clock: Arc<dyn Clock>,
    ) -> Scheduler {
        Scheduler {
            clock,
            prober,
            results,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            generation: CancellationToken::new(),
            tasks: JoinSet::new(),
            on_demand,
        }
    }

    /// Replaces the running timers with those of `config`. Probes already running finish
    /// (within their timeout) and still report.
    pub fn apply(&mut self, config: &Arc<Config>) {
        self.generation.cancel();
        self.generation = CancellationToken::new();
        // Finished tasks of earlier generations are reaped here; running ones detach.
        while self.tasks.try_join_next().is_some() {}
        for (s, system) in config.systems.iter().enumerate() {
            for (c, check) in system.checks.iter().enumerate() {
                for (t, target) in check.targets.iter().enumerate() {
                    let timer = Timer {
                        wake: self.on_demand.register(target.id().to_string()),
                        config: config.clone(),
                        place: (s, c, t),
                        prober: self.prober.clone(),
                        results: self.results.clone(),
                        permits: self.permits.clone(),
                        cancel: self.generation.clone(),
                        clock: self.clock.clone(),
                    };
                    self.tasks.spawn(timer.run());
                }
            }
        }
    }

    /// Stops every timer and waits for probes in flight to finish and report.
    pub async fn stop(&mut self) {
        self.generation.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

struct Timer {
    /// Wakes the timer for a probe now.
    wake: Arc<tokio::sync::Notify>,
    /// The configuration it runs in, shared by every timer (nothing of it is copied).
    config: Arc<Config>,
    /// Its system's, check's and target's places in `config`.
    place: (usize, usize, usize),
    prober: Arc<Prober>,
    results: mpsc::Sender<ProbeResult>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
    clock: Arc<dyn Clock>,
}

impl Timer {
    async fn run(self) {
        let (s, c, t) = self.place;
        let Some(check) = self.config.systems.get(s).and_then(|s| s.checks.get(c)) else { return };
        let Some(target) = check.targets.get(t) else { return };
        let first = tokio::time::Instant::now() + start_offset(target.id(), check.interval);
        let mut ticker = tokio::time::interval_at(first, check.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // One wait for cancellation for the timer's life (one registration with the token,
        // not two per run).
        let cancelled = self.cancel.cancelled();
        tokio::pin!(cancelled);
        loop {
            let scheduled = tokio::select! {
                _ = &mut cancelled => return,
                t = ticker.tick() => t,
                _ = self.wake.notified() => tokio::time::Instant::now(),
            };
            let permit = tokio::select! {
                _ = &mut cancelled => return,
                p = self.permits.acquire() => match p { Ok(p) => p, Err(_) => return },
            };
            let lag = Instant::now().saturating_duration_since(scheduled.into_std());
            let span = tracing::debug_span!("probe", system = %target.key.system, check = %target.key.check, target = %target.key.target);
            // Boxed: a probe's future is large, and 10,000 idle timers must not each carry one.
            let probe = Box::pin(self.prober.probe(check, target));
            let outcome = tracing::Instrument::instrument(probe, span).await;
            // The probe is over: its place goes to the next, not kept while the pipeline is busy.
            drop(permit);
            let result =
                ProbeResult { target_id: target.id().to_string(), outcome, finished_ms: self.clock.now_ms(), lag };
            // Boxed too: waiting to hand the result on, an idle timer would carry its room.
            if Box::pin(self.results.send(result)).await.is_err() {
                return;
            }
            // Test-only: a timer that dies after its first run, for the watchdog's test.
            #[cfg(feature = "fault-injection")]
            if let crate::config::ProbeSpec::Exec(e) = &check.probe
                && e.command.first().is_some_and(|p| p == "vigil-fault:stop-timer")
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle timer's task is what every target costs between probes: it must not carry
    /// a probe's future or its result (at 50,000 targets each KB is 50 MB).
    #[test]
    fn an_idle_timer_is_small() {
        let text = "systems:\n  - id: s\n    checks: [ { id: c, tcp: { address: \"127.0.0.1:9\" } } ]\n";
        let config =
            crate::config::load_from_text(std::path::Path::new("vigil.yaml"), text, &crate::config::env::process_env)
                .expect("config");
        let (results, _) = mpsc::channel(1);
        let timer = Timer {
            wake: Arc::default(),
            config: Arc::new(config),
            place: (0, 0, 0),
            prober: Arc::new(Prober::new()),
            results,
            permits: Arc::new(Semaphore::new(1)),
            cancel: CancellationToken::new(),
            clock: Arc::new(crate::model::SystemClock),
        };
        let size = std::mem::size_of_val(&timer.run());
        assert!(size <= 1024, "a timer's future is {size} bytes");
    }

    #[test]
    fn start_offset_is_stable_and_within_interval() {
        let interval = Duration::from_secs(30);
        let a = start_offset("procedures/portal", interval);
        assert_eq!(a, start_offset("procedures/portal", interval));
        assert!(a < interval);
        let offsets: std::collections::HashSet<_> =
            (0..50).map(|i| start_offset(&format!("network/gw/c{i}"), interval)).collect();
        assert!(offsets.len() > 40, "offsets should spread, got {} distinct", offsets.len());
        assert!(
            offsets.iter().all(|o| (o.as_millis() as u64).is_multiple_of(START_SLOT_MS)),
            "on the slot grid: {offsets:?}"
        );
        assert_eq!(start_offset("a", Duration::from_millis(20)), Duration::ZERO, "shorter than a slot");
    }
}
