//! The shared vocabulary at the bottom of the house: a target's [`State`] and the
//! [`Health`] a probe reports, [`incident`]s and the notifications about them, and time
//! ([`now_ms`], [`Clock`], [`format_duration`]). Everyone imports it; it imports nothing of
//! the runtime (no store, no web, no delivery, no scheduler).

mod health;
pub mod incident;
mod state;
mod time;

pub use health::Health;
pub use state::{State, Streak, TargetState};
pub use time::{Clock, SystemClock, TestClock, format_duration, now_ms};
