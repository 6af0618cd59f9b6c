//! A target's state as everyone speaks of it: the state, the streak pulling away from it,
//! and since when. The state machine that moves it is [`crate::alert::state`].

use serde::{Deserialize, Serialize};

/// The state of one check target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Unknown,
    Up,
    Degraded,
    Down,
    /// Failing because a dependency is down: counted against the root cause.
    Unreachable,
    /// Inside a maintenance window: no alerts, excluded from the SLA.
    Maintenance,
}

impl State {
    /// Every state, for one metric series each.
    pub const ALL: [State; 6] =
        [State::Up, State::Degraded, State::Down, State::Unreachable, State::Maintenance, State::Unknown];

    /// Lowercase name, as in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Degraded => "degraded",
            State::Down => "down",
            State::Unreachable => "unreachable",
            State::Maintenance => "maintenance",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<State> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// How bad a state looks on a page or a badge, worst highest: down, unreachable,
    /// degraded, maintenance, unknown (no data), up. The one order every view uses.
    pub fn severity(self) -> u8 {
        match self {
            State::Up => 0,
            State::Unknown => 1,
            State::Maintenance => 2,
            State::Degraded => 3,
            State::Unreachable => 4,
            State::Down => 5,
        }
    }
}

/// Consecutive results pulling away from the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streak {
    /// Whether the results are worse than the current state.
    pub worse: bool,
    pub count: u32,
    /// The state the streak leads to (the latest result's).
    pub target: State,
    /// When the first result of the streak came, Unix milliseconds.
    #[serde(default)]
    pub since_ms: i64,
}

/// The remembered state of one target; `since` in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    pub state: State,
    pub since_ms: i64,
    pub streak: Option<Streak>,
}

impl TargetState {
    /// The state of a target never probed.
    pub fn new(now_ms: i64) -> TargetState {
        TargetState { state: State::Unknown, since_ms: now_ms, streak: None }
    }
}
