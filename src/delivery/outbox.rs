//! The outbox dispatcher: delivers the notifications the pipeline stored, one worker per
//! receiver, in order (so an incident's resolution never overtakes its alert). Each
//! attempt goes to the receiver's active channel; failures are retried with capped
//! exponential backoff and jitter; a channel failing for `fallback_after` hands over to the
//! next one on time (no try or wait runs past it), and the fallback sticks: later
//! notifications go straight to the channel that works, while the first channel is tried in
//! the background with a copy of each until it answers again. A notification older than
//! `max_age` is given up with an ERROR log. Outcomes are written back to the store, so a
//! restart resumes exactly the undelivered ones.
//!
//! size: `worker` is one receiver's delivery loop — retries, backoff and fallback share its state.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::notify::{self, HttpClient};
use crate::alert::message::{MessageContext, render};
use crate::config::alerting::Channel;
use crate::metrics::Metrics;
use crate::model::incident::Notification;
use crate::model::now_ms;
use crate::store::{DeliveryRecord, Record, StoreWriter};

/// First retry delay; doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often open incidents are re-posted to Alertmanager.
const ALERTMANAGER_REFRESH: Duration = Duration::from_secs(60);

struct Shared {
    outlook: watch::Receiver<super::Outlook>,
    /// Attempts made before a restart, by notification key (taken when it is tried again).
    prior_attempts: std::sync::Mutex<HashMap<String, u32>>,
    store: Option<StoreWriter>,
    metrics: Arc<Metrics>,
    http: HttpClient,
}

/// Starts delivering: `pending` (from the store) first, then what arrives on `incoming`.
pub fn spawn(
    pending: Vec<Notification>,
    prior_attempts: HashMap<String, u32>,
    mut incoming: mpsc::UnboundedReceiver<Notification>,
    outlook: watch::Receiver<super::Outlook>,
    store: Option<StoreWriter>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let shared = Arc::new(Shared {
        outlook,
        prior_attempts: std::sync::Mutex::new(prior_attempts),
        store,
        metrics,
        http: notify::http_client(),
    });
    tokio::spawn(async move {
        let mut workers: HashMap<String, mpsc::UnboundedSender<Notification>> = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(refresh_alertmanager(shared.clone(), shutdown.clone()));
        tasks.spawn(deadman(shared.clone(), shutdown.clone()));
        let mut route = |n: Notification, tasks: &mut tokio::task::JoinSet<()>| {
            let sender = workers.entry(n.receiver.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tasks.spawn(worker(n.receiver.clone(), rx, shared.clone(), shutdown.clone()));
                tx
            });
            let _ = sender.send(n);
        };
        for n in pending {
            route(n, &mut tasks);
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                n = incoming.recv() => match n {
                    Some(n) => route(n, &mut tasks),
                    None => break,
                },
            }
        }
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
    })
}

fn backoff(attempts: u32) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(10)).min(MAX_BACKOFF);
    // Up to 25% jitter, so receivers that failed together do not retry together.
    let jitter = (now_ms().unsigned_abs() % 1000) as f64 / 4000.0;
    exp.mul_f64(1.0 + jitter)
}

fn record(shared: &Shared, d: DeliveryRecord) {
    if let Some(store) = &shared.store {
        store.send(Record::Delivery(d));
    }
}

/// Records that a notification was given up: `channel` is the last one tried (empty if none).
fn give_up(shared: &Shared, key: &str, channel: &str, attempts: u32, at_ms: i64, error: String) {
    let d = DeliveryRecord {
        key: key.to_string(),
        state: "failed",
        channel: channel.to_string(),
        attempts,
        at_ms,
        error: Some(error),
    };
    record(shared, d);
}

async fn worker(
    receiver: String,
    mut rx: mpsc::UnboundedReceiver<Notification>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let mut queue: VecDeque<Notification> = VecDeque::new();
    let mut active = 0usize;
    let mut failing_since: Option<Instant> = None;
    // Set by the background try of the first channel once it answers again.
    let first_is_back = Arc::new(AtomicBool::new(false));
    let mut trying_first: Option<JoinHandle<()>> = None;
    let mut attempts = 0u32;
    let mut trying: Option<String> = None;
    let depth = shared.metrics.notification_queue.with_label_values(&[&receiver]);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        while let Ok(n) = rx.try_recv() {
            queue.push_back(n);
        }
        depth.set(queue.len() as i64);
        let Some(n) = queue.front().cloned() else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                n = rx.recv() => match n {
                    Some(n) => queue.push_back(n),
                    None => return,
                },
            }
            continue;
        };
        if trying.as_deref() != Some(n.key.as_str()) {
            // A new notification: its count goes on from the tries made before a restart.
            let prior = shared.prior_attempts.lock().unwrap_or_else(|p| p.into_inner()).remove(&n.key);
            attempts = prior.unwrap_or(0);
            trying = Some(n.key.clone());
        }
        let (config, rcv) = {
            let outlook = shared.outlook.borrow();
            (outlook.config.clone(), outlook.receiver(&receiver).cloned())
        };
        let Some(rcv) = rcv else {
            tracing::error!(receiver, key = %n.key, "receiver not configured (removed before a restart); notification dropped");
            give_up(&shared, &n.key, "", attempts, now_ms(), "receiver removed".into());
            queue.pop_front();
            continue;
        };
        let now = now_ms();
        if now - n.created_ms > config.alerting.max_age.as_millis() as i64 {
            tracing::error!(receiver, key = %n.key, attempts, "notification given up after alerting.max_age: nobody was reached");
            shared.metrics.notifications.with_label_values(&[&receiver, "none", "expired"]).inc();
            give_up(&shared, &n.key, "", attempts, now, "max_age exceeded".into());
            queue.pop_front();
            attempts = 0;
            continue;
        }
        // The fallback sticks until the first channel has answered again.
        if active > 0 && first_is_back.swap(false, Ordering::SeqCst) {
            tracing::info!(receiver, channel = rcv.channels[0].kind(), "the first channel answers again; back to it");
            active = 0;
            failing_since = None;
        }
        active = active.min(rcv.channels.len().saturating_sub(1));
        let has_next = active + 1 < rcv.channels.len();
        let since = *failing_since.get_or_insert_with(Instant::now);
        if has_next && since.elapsed() >= rcv.fallback_after {
            active += 1;
            failing_since = None;
            tracing::warn!(receiver, channel = rcv.channels[active].kind(), "falling back to the next channel");
            continue;
        }
        let channel: &Channel = &rcv.channels[active];
        let ctx = MessageContext::from_config(&config);
        let rendered = render(&n, &ctx, now);
        attempts += 1;
        // With a channel to fall back to, no try runs past the moment of the switch.
        let budget = if has_next { rcv.fallback_after.saturating_sub(since.elapsed()) } else { notify::SEND_TIMEOUT };
        let sent = match tokio::time::timeout(budget, notify::send(channel, &n, &rendered, &ctx, &shared.http)).await {
            Ok(sent) => sent,
            Err(_) => Err(notify::SendError::retry("no answer before fallback_after")),
        };
        match sent {
            Ok(()) => {
                let took = (now_ms() - n.created_ms).max(0) as f64 / 1000.0;
                shared.metrics.notifications.with_label_values(&[&receiver, channel.kind(), "delivered"]).inc();
                shared.metrics.notification_delivery.observe(took);
                tracing::info!(receiver, channel = channel.kind(), key = %n.key, event = n.event.as_str(), attempts, "notification delivered");
                record(
                    &shared,
                    DeliveryRecord {
                        key: n.key.clone(),
                        state: "delivered",
                        channel: channel.kind().to_string(),
                        attempts,
                        at_ms: now_ms(),
                        error: None,
                    },
                );
                queue.pop_front();
                attempts = 0;
                failing_since = None;
                if active > 0 && trying_first.as_ref().is_none_or(|t| t.is_finished()) {
                    let first = rcv.channels[0].clone();
                    let (shared, back, receiver) = (shared.clone(), first_is_back.clone(), receiver.clone());
                    trying_first = Some(tokio::spawn(async move {
                        if notify::send(&first, &n, &rendered, &ctx, &shared.http).await.is_ok() {
                            shared
                                .metrics
                                .notifications
                                .with_label_values(&[&receiver, first.kind(), "delivered"])
                                .inc();
                            back.store(true, Ordering::SeqCst);
                        }
                    }));
                }
            }
            Err(e) => {
                shared.metrics.notifications.with_label_values(&[&receiver, channel.kind(), "failed"]).inc();
                tracing::warn!(receiver, channel = channel.kind(), key = %n.key, attempts, error = %e, "notification not delivered; will retry");
                if let Some(store) = &shared.store {
                    store.send(Record::Attempt { key: n.key.clone(), attempts });
                }
                if has_next && (!e.retryable || since.elapsed() >= rcv.fallback_after) {
                    active += 1;
                    failing_since = None;
                    tracing::warn!(receiver, channel = rcv.channels[active].kind(), "falling back to the next channel");
                    continue;
                }
                if !e.retryable {
                    tracing::error!(receiver, key = %n.key, error = %e, "notification refused by its last channel; given up");
                    give_up(&shared, &n.key, channel.kind(), attempts, now_ms(), e.message);
                    queue.pop_front();
                    attempts = 0;
                    continue;
                }
                let mut wait = backoff(attempts);
                if has_next {
                    wait = wait.min(rcv.fallback_after.saturating_sub(since.elapsed()));
                }
                let wait = tokio::time::sleep(wait);
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = &mut wait => break,
                        n = rx.recv() => match n {
                            Some(n) => queue.push_back(n),
                            None => return,
                        },
                    }
                }
            }
        }
    }
}

/// Calls the dead-man's switch (`alerting.deadman.url`) every interval while Vigil runs, so
/// an outside service notices when Vigil itself stops.
async fn deadman(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let deadman = shared.outlook.borrow().config.alerting.deadman.clone();
        let wait = deadman.as_ref().map_or(Duration::from_secs(30), |d| d.interval);
        if let Some(d) = deadman {
            let req = hyper::Request::get(&d.url)
                .header("user-agent", concat!("Vigil/", env!("CARGO_PKG_VERSION")))
                .body(http_body_util::Full::new(bytes::Bytes::new()));
            match req {
                Ok(req) => match tokio::time::timeout(notify::SEND_TIMEOUT, shared.http.request(req)).await {
                    Ok(Ok(resp)) if resp.status().is_success() => {
                        tracing::debug!(url = %crate::config::redact_url(&d.url), "dead-man's switch called")
                    }
                    Ok(Ok(resp)) => {
                        tracing::warn!(url = %crate::config::redact_url(&d.url), status = %resp.status(), "dead-man's switch refused the call")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(url = %crate::config::redact_url(&d.url), error = %e, "cannot reach the dead-man's switch")
                    }
                    Err(_) => {
                        tracing::warn!(url = %crate::config::redact_url(&d.url), "the dead-man's switch did not answer in time")
                    }
                },
                Err(e) => tracing::error!(error = %e, "invalid dead-man's switch URL"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Re-posts open incidents to the Alertmanagers of the receivers told about them, so they
/// stay active there until resolved.
async fn refresh_alertmanager(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(ALERTMANAGER_REFRESH);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (config, open) = {
            let outlook = shared.outlook.borrow();
            (outlook.config.clone(), outlook.open_incidents.clone())
        };
        let ctx = MessageContext::from_config(&config);
        let mut by_url: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
        for incident in &open {
            for told in &incident.told {
                let Some(rcv) = config.receivers.iter().find(|r| r.id == told.receiver) else { continue };
                for ch in &rcv.channels {
                    if let Channel::Alertmanager(am) = ch {
                        let n = Notification {
                            key: String::new(),
                            receiver: told.receiver.clone(),
                            event: crate::model::incident::EventKind::Firing,
                            incident: incident.clone(),
                            created_ms: now_ms(),
                            reply_to: None,
                            group: Vec::new(),
                            report: None,
                            node: None,
                        };
                        let r = render(&n, &ctx, now_ms());
                        by_url
                            .entry(am.url.clone())
                            .or_default()
                            .push(notify::alertmanager_alert(incident, &r.subject, &r.text, &ctx));
                    }
                }
            }
        }
        for (url, alerts) in by_url {
            if let Err(e) = notify::post_alerts(&shared.http, &url, &alerts).await {
                tracing::debug!(url = %crate::config::redact_url(&url), error = %e, "re-posting open alerts to Alertmanager failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = |a: u32| backoff(a).as_secs_f64();
        assert!((1.0..=1.25).contains(&base(1)));
        assert!((2.0..=2.5).contains(&base(2)));
        assert!((4.0..=5.0).contains(&base(3)));
        assert!((30.0..=37.5).contains(&base(20)), "capped: {}", base(20));
    }
}
