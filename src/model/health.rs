//! What a probe concluded about its target, before any threshold.

use serde::Serialize;

/// What a probe concluded about its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    /// Only warning conditions failed.
    Degraded,
    Down,
    /// The monitor could not tell (its own fault); never paged to the target's owner.
    Unknown,
}

impl Health {
    /// Lowercase name, as used in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Degraded => "degraded",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
}
