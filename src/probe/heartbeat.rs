//! Heartbeats: jobs push `POST /api/v1/heartbeat/{token}`; a heartbeat check is down with
//! reason `missed` when none arrived for `period + grace`, and down with `reported` when
//! the last push said `status=fail`. Before the first push since start (and no stored
//! one), the start time counts as the last push, so a restart never raises a false alarm.

use std::collections::HashMap;
use std::sync::RwLock;

use super::{FailureReason, Health, Observations, Verdict};
use crate::config::{Config, HeartbeatSpec, ProbeSpec};
use crate::model::now_ms;

/// One push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    pub at_ms: i64,
    pub ok: bool,
    pub message: String,
}

/// The tokens of the running configuration and the last push of each heartbeat check.
#[derive(Debug)]
pub struct HeartbeatBook {
    started_ms: i64,
    /// token → target id.
    tokens: RwLock<HashMap<String, String>>,
    /// target id → last push.
    beats: RwLock<HashMap<String, Beat>>,
}

impl Default for HeartbeatBook {
    fn default() -> Self {
        HeartbeatBook { started_ms: now_ms(), tokens: RwLock::default(), beats: RwLock::default() }
    }
}

impl HeartbeatBook {
    /// Learns the tokens of `config` (call on every load and reload).
    pub fn set_tokens(&self, config: &Config) {
        let tokens = config
            .targets()
            .filter_map(|(_, check, target)| match &check.probe {
                ProbeSpec::Heartbeat(hb) => Some((hb.token.expose().to_string(), target.id().to_string())),
                _ => None,
            })
            .collect();
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = tokens;
    }

    /// Records a push; returns the target id, or None for an unknown token.
    pub fn record(&self, token: &str, beat: Beat) -> Option<String> {
        let id = self.tokens.read().unwrap_or_else(|p| p.into_inner()).get(token).cloned()?;
        self.beats.write().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), beat);
        Some(id)
    }

    /// Restores a push remembered by the store.
    pub fn restore(&self, target_id: String, beat: Beat) {
        self.beats.write().unwrap_or_else(|p| p.into_inner()).insert(target_id, beat);
    }

    fn last(&self, target_id: &str) -> Option<Beat> {
        self.beats.read().unwrap_or_else(|p| p.into_inner()).get(target_id).cloned()
    }
}

/// Judges a heartbeat check now.
pub(super) fn observe(spec: &HeartbeatSpec, target_id: &str, book: &HeartbeatBook) -> Observations {
    let now = now_ms();
    let last = book.last(target_id);
    let since = last.as_ref().map_or(book.started_ms, |b| b.at_ms);
    let allowed = (spec.period + spec.grace).as_millis() as i64;
    let verdict = match &last {
        _ if now - since > allowed => Verdict {
            health: Health::Down,
            reason: Some(FailureReason::Missed),
            message: format!(
                "no heartbeat for {} (expected every {}, grace {})",
                humantime::format_duration(std::time::Duration::from_secs(((now - since) / 1000).max(0) as u64)),
                humantime::format_duration(spec.period),
                humantime::format_duration(spec.grace)
            ),
        },
        Some(b) if !b.ok => Verdict {
            health: Health::Down,
            reason: Some(FailureReason::Reported),
            message: if b.message.is_empty() {
                "the job reported a failure".into()
            } else {
                format!("the job reported: {}", b.message)
            },
        },
        _ => Verdict { health: Health::Up, reason: None, message: String::new() },
    };
    Observations { heartbeat_last_seen_ms: last.map(|b| b.at_ms), verdict: Some(verdict), ..Observations::default() }
}
