//! The centre's side of vantage points: `POST /api/v1/ingest` takes an agent's batch
//! (its bearer token names the vantage), commits it (each sequence number once) and only
//! then answers, so an agent deletes nothing the centre does not hold; `GET
//! /api/v1/vantages` says when each agent was last heard from and how far behind it is.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use subtle::ConstantTimeEq;

use super::{Reply, WebState, json, store_unreadable, text};
use crate::model::{State, now_ms};
use crate::pipeline::Control;
use crate::store::Record;
use crate::store::forward::{Forwarded, IngestBatch};

/// Largest batch body accepted (an agent sends at most a few thousand records).
const MAX_INGEST_BODY: usize = 8 * 1024 * 1024;
/// Most records in one batch.
const MAX_RECORDS: usize = 10_000;

#[derive(serde::Deserialize)]
struct Batch {
    vantage: String,
    sent_ms: i64,
    records: Vec<Forwarded>,
    /// The agent store's incarnation (older agents send none).
    #[serde(default)]
    incarnation: Option<String>,
}

/// The vantage whose token `req` carries, and its clock bound, if any.
fn vantage_of(state: &WebState, req: &Request<Incoming>) -> Option<(String, i64, i64)> {
    let given = req.headers().get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?.to_string();
    let board = state.board.read().unwrap_or_else(|p| p.into_inner());
    // Compared with every token, in constant time each, so timing says nothing about which.
    let mut found = None;
    for v in &board.config.vantages {
        if bool::from(given.as_bytes().ct_eq(v.token.expose().as_bytes())) {
            found = Some((v.name.clone(), v.max_clock_offset.as_millis() as i64, v.grace.as_millis() as i64));
        }
    }
    found
}

/// `POST /api/v1/ingest`.
pub(super) async fn ingest(state: &Arc<WebState>, req: Request<Incoming>) -> Reply {
    let Some((vantage, max_offset, grace)) = vantage_of(state, &req) else {
        return text(StatusCode::UNAUTHORIZED, "missing or unknown vantage token");
    };
    let limited = http_body_util::Limited::new(req.into_body(), MAX_INGEST_BODY);
    let Ok(body) = limited.collect().await.map(|b| b.to_bytes()) else {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "batch too large");
    };
    let mut batch: Batch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid batch: {e}")),
    };
    if batch.vantage != vantage {
        return text(StatusCode::FORBIDDEN, "the token belongs to another vantage");
    }
    if batch.incarnation.as_ref().is_some_and(|i| i.is_empty() || i.len() > 64) {
        return text(StatusCode::BAD_REQUEST, "an incarnation is 1 to 64 characters");
    }
    if batch.records.len() > MAX_RECORDS {
        return text(StatusCode::PAYLOAD_TOO_LARGE, format!("at most {MAX_RECORDS} records per batch"));
    }
    if let Some(bad) = batch.records.iter().find(|r| r.seq <= 0 || !matches!(r.kind.as_str(), "result" | "change")) {
        return text(StatusCode::BAD_REQUEST, format!("record {} is not a result or a state change", bad.seq));
    }
    let Some(store) = &state.store else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "this Vigil has no store");
    };
    let now = now_ms();
    // The agent's clock against ours (its send time includes the trip here: a bound of
    // seconds, not milliseconds). Beyond the bound, its times are corrected and marked.
    // Saturating: an agent's numbers are not trusted to stay in range.
    let offset = batch.sent_ms.saturating_sub(now);
    state.metrics.vantage_clock_offset.with_label_values(&[&vantage]).set(offset as f64 / 1000.0);
    if offset.unsigned_abs() > max_offset.unsigned_abs() {
        tracing::warn!(vantage, offset_ms = offset, "the agent's clock is off: its times are corrected");
        for r in &mut batch.records {
            r.at_ms = r.at_ms.saturating_sub(offset);
            r.data["clock_corrected_ms"] = serde_json::json!(offset);
        }
    }
    let acked = batch.records.iter().map(|r| r.seq).max().unwrap_or(0);
    let count = batch.records.len();
    let changes: Vec<(String, i64, State, String)> = batch
        .records
        .iter()
        .filter(|r| r.kind == "change")
        .filter_map(|r| {
            let state = State::from_name(r.data["to"].as_str()?)?;
            let message = r.data["message"].as_str().unwrap_or_default().chars().take(500).collect();
            Some((r.target.clone(), r.at_ms, state, message))
        })
        .collect();
    state.metrics.vantage_received.with_label_values(&[&vantage]).inc_by(count as u64);
    if let Some(newest) = batch.records.iter().map(|r| r.at_ms).max() {
        let gauge = state.metrics.vantage_newest.with_label_values(&[&vantage]);
        gauge.set(gauge.get().max(newest as f64 / 1000.0));
    }
    store.send(Record::Ingest(Box::new(IngestBatch {
        vantage: vantage.clone(),
        records: batch.records,
        clock_offset_ms: offset,
        received_ms: now,
        late_after_ms: grace,
        incarnation: batch.incarnation,
    })));
    // Answered once committed: the agent deletes what it sent only then.
    let (done, committed) = tokio::sync::oneshot::channel();
    store.send(Record::Flush(done));
    if committed.await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "the store stopped");
    }
    if let Some((_, error)) = state.store_health.snapshot().failing {
        return text(StatusCode::SERVICE_UNAVAILABLE, format!("the store fails to write: {error}"));
    }
    let _ = state.pipeline.send(Control::Ingested { vantage, seen_ms: now, changes }).await;
    json(&serde_json::json!({ "acked": acked, "records": count }))
}

/// `GET /api/v1/assignment`: the checks the calling vantage point runs, as a configuration
/// fragment (YAML), with an `etag`; 204 when it has none.
pub(super) fn assignment(state: &WebState, req: &Request<Incoming>) -> Reply {
    let Some((vantage, ..)) = vantage_of(state, req) else {
        return text(StatusCode::UNAUTHORIZED, "missing or unknown vantage token");
    };
    let systems = state.board.read().unwrap_or_else(|p| p.into_inner()).config.systems.clone();
    match crate::config::vantage::assignment(&systems, &vantage) {
        Some(yaml) => {
            let etag = format!("\"{:016x}\"", fnv(yaml.as_bytes()));
            let mut r = super::reply(StatusCode::OK, "application/yaml", bytes::Bytes::from(yaml));
            if let Ok(v) = hyper::header::HeaderValue::from_str(&etag) {
                r.headers_mut().insert(hyper::header::ETAG, v);
            }
            r
        }
        None => super::reply(StatusCode::NO_CONTENT, "text/plain", bytes::Bytes::new()),
    }
}

/// FNV-1a, for an assignment's etag.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// `GET /api/v1/vantages`.
pub(super) fn vantages(state: &WebState) -> Reply {
    let configured: Vec<String> = {
        let board = state.board.read().unwrap_or_else(|p| p.into_inner());
        board.config.vantages.iter().map(|v| v.name.clone()).collect()
    };
    let seen = match state.reader.vantages() {
        Ok(seen) => seen,
        Err(e) => return store_unreadable(&e),
    };
    let now = now_ms();
    let list: Vec<serde_json::Value> = configured
        .iter()
        .map(|name| {
            let s = seen.iter().find(|s| &s.name == name);
            serde_json::json!({
                "name": name,
                "last_seen_ms": s.map(|s| s.last_seen_ms),
                "last_seq": s.map(|s| s.last_seq),
                "received": s.map_or(0, |s| s.received),
                "clock_offset_ms": s.map(|s| s.clock_offset_ms),
                "newest_result_ms": s.and_then(|s| s.newest_ms),
                "lag_ms": s.and_then(|s| s.newest_ms).map(|n| now - n),
            })
        })
        .collect();
    json(&serde_json::json!({ "vantages": list }))
}
