//! The agent's forwarder: what a vantage point measured goes to its centre
//! (`POST /api/v1/ingest`), each record once into the centre's history. Records wait in the
//! agent's store (`forward_queue`, filled in the transaction that writes each result) and
//! leave it only after the centre has committed them; a batch sent twice (a lost answer, a
//! SIGKILL between the centre's commit and ours) is dropped by the centre by sequence
//! number. Each batch carries the newest records first and the oldest behind them, so live
//! results are never starved by a back-fill after a link outage.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::vantage::Agent;
use crate::http_client::HttpClient;
use crate::metrics::Metrics;
use crate::model::Clock;
use crate::store::forward::{self, Forwarded};
use crate::store::{Record, StoreWriter};
use crate::web::ReloadRequest;

/// Keeps the checks the centre assigns this vantage point in `agent.assignment_file`:
/// asked for at start and every `agent.refresh`; a change is saved and loaded (a reload).
/// A copy this agent cannot load is not kept: the previous checks go on.
struct Assignments {
    agent: Agent,
    http: HttpClient,
    reload: mpsc::Sender<ReloadRequest>,
}

impl Assignments {
    async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.refresh().await {
                tracing::debug!(error = %e, "cannot ask the centre for this vantage's checks; the saved ones go on");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.agent.refresh) => {}
            }
        }
    }

    async fn refresh(&self) -> Result<(), String> {
        let req = hyper::Request::get(format!("{}/api/v1/assignment", self.agent.centre))
            .header("authorization", format!("Bearer {}", self.agent.token.expose()))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(req))
            .await
            .map_err(|_| "no answer".to_string())?
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("the centre answered {status}"));
        }
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let new = String::from_utf8_lossy(&body).to_string();
        let path = &self.agent.assignment_file;
        let old = std::fs::read_to_string(path).ok();
        if old.as_deref().unwrap_or("") == new {
            return Ok(());
        }
        write_or_remove(path, &new)?;
        let (respond, answer) = tokio::sync::oneshot::channel();
        self.reload.send(ReloadRequest { respond }).await.map_err(|_| "shutting down".to_string())?;
        match answer.await.map_err(|_| "shutting down".to_string())? {
            Ok(_) => {
                tracing::info!(file = %path.display(), "the centre changed this vantage's checks: now running them");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "the centre's checks cannot run here; the previous ones go on");
                write_or_remove(path, old.as_deref().unwrap_or(""))
            }
        }
    }
}

/// Replaces `path` with `text` atomically (a temporary file renamed over it), or removes it
/// when `text` is empty.
fn write_or_remove(path: &std::path::Path, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        };
    }
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Newest records per batch (live results first).
const LIVE: usize = 200;
/// Oldest records per batch (the back-fill, behind the live ones): small enough that a
/// batch in memory stays well under a MB on a small box.
const BACKLOG: usize = 500;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait between two failed attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Batch sizes (live, backlog) and a pause after each batch: the defaults, or — in
/// fault-injection builds — `VIGIL_FAULT_FORWARD=live,backlog,pause_ms`, so a test's small
/// back-fill spans many batches and can be interrupted in the middle.
fn batching() -> (usize, usize, Duration) {
    #[cfg(feature = "fault-injection")]
    if let Ok(v) = std::env::var("VIGIL_FAULT_FORWARD") {
        let n: Vec<u64> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
        if let [live, backlog, pause] = n[..] {
            return (live as usize, backlog as usize, Duration::from_millis(pause));
        }
    }
    (LIVE, BACKLOG, Duration::ZERO)
}

/// What the agent's tasks work with.
pub struct Links {
    /// The agent's store file (read for the queue).
    pub store: PathBuf,
    pub writer: StoreWriter,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Where a changed assignment is loaded (a reload).
    pub reload: mpsc::Sender<ReloadRequest>,
    /// Set to the time of each answer of the centre.
    pub contact: Arc<AtomicI64>,
}

/// Starts forwarding the agent's store to its centre until `shutdown`, and keeping the
/// centre's assignment (a reload when it changes).
pub fn spawn(agent: Agent, links: Links, shutdown: CancellationToken) -> JoinHandle<()> {
    let Links { store, writer, metrics, clock, reload, contact } = links;
    tokio::spawn(async move {
        let http = match &agent.ca_file {
            Some(ca) => match crate::http_client::with_ca(ca) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot trust the centre: nothing is forwarded");
                    return;
                }
            },
            None => crate::http_client::http_client(),
        };
        let batching = batching();
        let assignments = Assignments { agent: agent.clone(), http: http.clone(), reload };
        tokio::spawn(assignments.run(shutdown.clone()));
        let forwarder = Forwarder { agent, store, writer, metrics, clock, http, batching, contact };
        forwarder.run(shutdown).await;
    })
}

struct Forwarder {
    agent: Agent,
    store: PathBuf,
    writer: StoreWriter,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    http: HttpClient,
    /// Newest and oldest records per batch, and the pause after a full one.
    batching: (usize, usize, Duration),
    /// When the centre last answered (the pipeline's local alerting waits on it).
    contact: Arc<AtomicI64>,
}

impl Forwarder {
    async fn run(self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let pause = match self.round().await {
                Ok(full) => {
                    if failures > 0 {
                        tracing::info!(centre = %self.agent.centre, "the centre answers again; forwarding resumes");
                    }
                    failures = 0;
                    self.metrics.agent_centre_up.set(1);
                    if full { self.batching.2 } else { Duration::from_secs(1) }
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(centre = %self.agent.centre, error = %e, "cannot forward to the centre; results wait in the store");
                    }
                    failures += 1;
                    self.metrics.agent_centre_up.set(0);
                    Duration::from_secs(1 << failures.min(5)).min(MAX_BACKOFF)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Sends one batch; true if more were waiting than a batch holds.
    async fn round(&self) -> Result<bool, String> {
        let path = self.store.clone();
        let (live, backlog, _) = self.batching;
        let (batch, waiting, incarnation) = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| e.to_string())?;
            let batch = forward::waiting(&conn, live, backlog).map_err(|e| e.to_string())?;
            let (waiting, _) = forward::backlog(&conn).map_err(|e| e.to_string())?;
            let incarnation = forward::incarnation(&conn).map_err(|e| e.to_string())?;
            Ok((batch, waiting, incarnation))
        })
        .await
        .map_err(|e| e.to_string())??;
        self.metrics.agent_backlog.set(waiting as i64);
        if batch.is_empty() {
            return Ok(false);
        }
        self.send(&batch, incarnation.as_deref()).await?;
        self.contact.store(self.clock.now_ms(), Ordering::Relaxed);
        let seqs: Vec<i64> = batch.iter().map(|f| f.seq).collect();
        self.metrics.agent_forwarded.inc_by(seqs.len() as u64);
        self.writer.send(Record::Forwarded(seqs));
        // The queue is read again only once these are gone from it.
        let (done, committed) = tokio::sync::oneshot::channel();
        self.writer.send(Record::Flush(done));
        let _ = committed.await;
        Ok(waiting as usize > batch.len())
    }

    async fn send(&self, batch: &[Forwarded], incarnation: Option<&str>) -> Result<(), String> {
        let body = serde_json::json!({
            "vantage": self.agent.vantage,
            "incarnation": incarnation,
            "sent_ms": self.clock.now_ms(),
            "records": batch,
        });
        let req = hyper::Request::post(format!("{}/api/v1/ingest", self.agent.centre))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.agent.token.expose()))
            .header("user-agent", concat!("Vigil-agent/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(req))
            .await
            .map_err(|_| format!("no answer within {}", humantime::format_duration(REQUEST_TIMEOUT)))?
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let text = String::from_utf8_lossy(&text[..text.len().min(300)]).to_string();
            return Err(format!("the centre answered {status}: {text}"));
        }
        Ok(())
    }
}
