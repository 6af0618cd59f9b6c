//! The demo's fault schedule: a pure function of the time since start (compressed by
//! `speed`), repeating every cycle.

use std::time::{Duration, Instant};

/// Length of one cycle of the schedule (seconds at speed 1).
pub const CYCLE_SECS: f64 = 300.0;
/// Documents answer slowly from here to the end of the cycle.
pub const SLOW_FROM: f64 = 20.0;
/// E-meeting is down in this window.
pub const OUTAGE_FROM: f64 = 30.0;
pub const OUTAGE_TO: f64 = 150.0;
/// The flapping gateway changes state this often.
pub const FLAP_PERIOD: f64 = 15.0;
/// When the procedures backlog passes 500.
pub const BACKLOG_LIMIT_AT: f64 = 40.0;
/// The Mường Tè agent's link to the centre is down in this window.
pub const LINK_DOWN_FROM: f64 = 60.0;
pub const LINK_DOWN_TO: f64 = 120.0;

/// The schedule's clock.
#[derive(Debug, Clone)]
pub struct Faults {
    started: Instant,
    speed: f64,
    slow_delay: Duration,
}

impl Faults {
    /// Starts the clock now; `slow_delay` is how long documents take in the slow spell.
    pub fn new(speed: f64, slow_delay: Duration) -> Faults {
        Faults { started: Instant::now(), speed, slow_delay }
    }

    /// The compression factor.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Seconds into the current cycle, in schedule time.
    fn t(&self) -> f64 {
        (self.started.elapsed().as_secs_f64() * self.speed) % CYCLE_SECS
    }

    /// Whether e-meeting is in its outage.
    pub fn meeting_down(&self) -> bool {
        (OUTAGE_FROM..OUTAGE_TO).contains(&self.t())
    }

    /// How long the documents system takes to answer.
    pub fn documents_delay(&self) -> Duration {
        if self.t() >= SLOW_FROM { self.slow_delay } else { Duration::from_millis(20) }
    }

    /// The procedures system's pending national-sync queue: grows 10 per second.
    pub fn backlog(&self) -> u64 {
        let per_second = 500.0 / BACKLOG_LIMIT_AT;
        (self.t() * per_second) as u64 + 20
    }

    /// Whether the Mường Tè agent can reach the centre.
    pub fn agent_link_up(&self) -> bool {
        !(LINK_DOWN_FROM..LINK_DOWN_TO).contains(&self.t())
    }

    /// Whether a commune gateway answers; `sin-ho` flaps.
    pub fn gateway_up(&self, slug: &str) -> bool {
        slug != "sin-ho" || ((self.t() / FLAP_PERIOD) as u64).is_multiple_of(2)
    }
}
