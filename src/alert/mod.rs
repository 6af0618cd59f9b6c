//! Alerting: per-target state (`state`). Incidents, routing and notification come on top
//! of the transitions the state machine emits.

pub mod state;
