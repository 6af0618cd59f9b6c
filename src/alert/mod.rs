//! Alerting decisions, pure: the per-target state machine (`state`), incidents and who
//! hears of them (`engine`, `route`), and what the messages say (`message`). No I/O: the
//! engine returns effects; storing them is the pipeline's job and sending them
//! [`crate::delivery`]'s.

pub mod engine;
pub mod message;
pub mod route;
pub mod state;
