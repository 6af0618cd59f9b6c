//! The shared vocabulary at the bottom of the house: a target's identity ([`TargetKey`])
//! and [`State`], the [`Health`] a probe reports, [`incident`]s and the notifications about
//! them, and time ([`now_ms`], [`Clock`], [`format_duration`]). Everyone imports it; it
//! imports nothing of the crate (`scripts/check-modules` holds it to that).

mod health;
pub mod incident;
mod state;
mod target;
mod time;

pub use health::Health;
pub use state::{State, Streak, TargetState};
pub use target::TargetKey;
pub use time::{Clock, SystemClock, TestClock, format_duration, now_ms};
