//! One target of a check: what the scheduler runs, the pipeline judges and the pages look up.

use crate::model::TargetKey;

/// One target of a check: its identity and the address the probe uses.
#[derive(Debug, Clone)]
pub struct Target {
    pub key: TargetKey,
    /// URL for http, `host:port` for tcp and tls, host for icmp, the server for dns; the
    /// command line for exec and `heartbeat` for heartbeats.
    pub address: String,
    /// `key.id()`, spelled once: pages and the pipeline look targets up by it at every turn.
    id: String,
}

impl Target {
    /// The target `key` probed at `address`.
    pub fn new(key: TargetKey, address: String) -> Target {
        Target { id: key.id(), key, address }
    }

    /// Its id (`system/check` or `system/check/target`), as [`TargetKey::id`] spells it.
    pub fn id(&self) -> &str {
        &self.id
    }
}
