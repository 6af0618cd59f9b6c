//! Alerting: per-target state (`state`), incidents and who hears of them (`incident`,
//! `route`, `engine`), and their delivery (`outbox`, `notify`, `message`).

pub mod engine;
pub mod incident;
pub mod message;
pub mod notify;
pub mod outbox;
pub mod route;
pub mod state;
