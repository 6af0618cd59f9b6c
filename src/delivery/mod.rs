//! Delivery: the outbox that hands every stored notification to its receiver's channels
//! (retries, backoff, fallback, the dead-man's switch, Alertmanager refresh) and the
//! notifiers that send one message once. It decides nothing: what to say and to whom comes
//! from [`crate::alert`]; what it needs of the running configuration comes through a watch
//! channel ([`Outlook`]).

pub mod notify;
pub mod outbox;

use std::sync::Arc;

use crate::config::Config;
use crate::model::incident::Incident;

/// What delivery sees of the running daemon: the configuration (receivers, channels,
/// the dead-man's switch) and the incidents open now (re-posted to Alertmanager).
#[derive(Debug, Clone)]
pub struct Outlook {
    pub config: Arc<Config>,
    pub open_incidents: Vec<Incident>,
}
