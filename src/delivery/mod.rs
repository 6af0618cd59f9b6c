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
    /// Receivers a reload removed (their last definition): what was already decided for
    /// them — the resolution of an incident they were told about — still reaches them.
    pub retired: Vec<crate::config::alerting::Receiver>,
}

impl Outlook {
    /// The receiver `id`: configured now, or removed by a reload since Vigil started.
    pub fn receiver(&self, id: &str) -> Option<&crate::config::alerting::Receiver> {
        self.config.receivers.iter().find(|r| r.id == id).or_else(|| self.retired.iter().find(|r| r.id == id))
    }
}
