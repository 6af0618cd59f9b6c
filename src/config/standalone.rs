//! Checks made outside any configuration file: `/probe` and `vigil probe`.

use std::time::Duration;

use super::{Check, ProbeSpec};
use crate::condition::Condition;

impl Check {
    /// A check outside any system, for probing on demand (`/probe`, `vigil probe`):
    /// thresholds 1/1, critical, no targets or dependencies.
    pub fn standalone(
        name: &str,
        probe: ProbeSpec,
        timeout: Duration,
        conditions: Vec<Condition>,
        warning_conditions: Vec<Condition>,
    ) -> Check {
        Check {
            id: name.to_string(),
            name: name.to_string(),
            probe,
            targets: Vec::new(),
            interval: timeout,
            timeout,
            failure_threshold: 1,
            success_threshold: 1,
            conditions,
            warning_conditions,
            depends_on: Vec::new(),
            depends_on_any: Vec::new(),
            renamed_from: None,
            vantages: Vec::new(),
            quorum: None,
            assigned_source: None,
            critical: true,
            runbook: None,
            nodes: Vec::new(),
            each_address: None,
        }
    }
}
