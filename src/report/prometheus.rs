//! Prometheus as the report's source, for deployments with several Vigil instances: each
//! target's state history is read back from `vigil_check_state` with range queries, at a
//! given resolution, then accounted exactly as from the store.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::History;
use crate::config::Config;
use crate::model::State;

/// Most points Prometheus returns per series and query.
const MAX_POINTS: i64 = 10_000;

/// Reads each target's history over [from, to) from Prometheus at `step_ms` resolution: one
/// range query per chunk of steps for all targets together.
pub async fn histories(
    config: &Config,
    url: &str,
    from: i64,
    to: i64,
    step_ms: i64,
) -> Result<HashMap<String, History>, PrometheusError> {
    let http = crate::http_client::http_client();
    let step_ms = step_ms.max(1000);
    let ids: HashMap<Labels, String> = config
        .targets()
        .map(|(_, _, t)| ((t.key.system.clone(), t.key.check.clone(), t.key.target.clone()), t.id().to_string()))
        .collect();
    let query = "max by (system, check, target, state) (vigil_check_state == 1)";
    let mut samples: HashMap<&str, Vec<(i64, State)>> = HashMap::new();
    let mut start = from;
    while start < to {
        let end = (start + step_ms * MAX_POINTS).min(to);
        for (labels, at, state) in range(&http, url, query, start, end, step_ms).await? {
            if let Some(id) = ids.get(&labels) {
                samples.entry(id.as_str()).or_default().push((at, state));
            }
        }
        start = end + step_ms;
    }
    Ok(ids
        .values()
        .map(|id| {
            let mut points = samples.remove(id.as_str()).unwrap_or_default();
            points.sort_by_key(|(at, _)| *at);
            (id.clone(), History { initial: None, changes: changes(&points, step_ms, to), excluded: Vec::new() })
        })
        .collect())
}

/// Why Prometheus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("cannot query Prometheus: {0}")]
    Request(String),
    #[error("Prometheus answered {0}")]
    Answer(String),
}

/// `system`, `check` and `target` label values.
type Labels = (String, String, String);

/// State changes from samples sorted by time: a sample holds for one step; a gap of more
/// than one step, and the time after the last sample, is no data.
fn changes(samples: &[(i64, State)], step_ms: i64, to: i64) -> Vec<(i64, State)> {
    let mut out: Vec<(i64, State)> = Vec::new();
    let mut last: Option<(i64, State)> = None;
    for &(at, state) in samples {
        match last {
            Some((prev_at, _)) if at - prev_at > step_ms => {
                out.push((prev_at + step_ms, State::Unknown));
                out.push((at, state));
            }
            Some((_, prev)) if prev != state => out.push((at, state)),
            None => out.push((at, state)),
            _ => {}
        }
        last = Some((at, state));
    }
    if let Some((at, _)) = last
        && at + step_ms < to
    {
        out.push((at + step_ms, State::Unknown));
    }
    out
}

async fn range(
    http: &crate::http_client::HttpClient,
    url: &str,
    query: &str,
    start: i64,
    end: i64,
    step_ms: i64,
) -> Result<Vec<(Labels, i64, State)>, PrometheusError> {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("query", query)
        .append_pair("start", &format!("{:.3}", start as f64 / 1000.0))
        .append_pair("end", &format!("{:.3}", end as f64 / 1000.0))
        .append_pair("step", &format!("{:.3}", step_ms as f64 / 1000.0))
        .finish();
    let req = hyper::Request::get(format!("{}/api/v1/query_range?{q}", url.trim_end_matches('/')))
        .body(Full::new(Bytes::new()))
        .map_err(|e| PrometheusError::Request(e.to_string()))?;
    let resp = http.request(req).await.map_err(|e| PrometheusError::Request(e.to_string()))?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(|e| PrometheusError::Request(e.to_string()))?.to_bytes();
    let answer = || String::from_utf8_lossy(&body).chars().take(500).collect::<String>();
    let doc: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| PrometheusError::Answer(format!("{status}, not JSON ({e}): {}", answer())))?;
    if !status.is_success() || doc["status"] != "success" {
        return Err(PrometheusError::Answer(format!("{status}: {}", answer())));
    }
    let mut out = Vec::new();
    for series in doc["data"]["result"].as_array().into_iter().flatten() {
        let metric = &series["metric"];
        let Some(state) = metric["state"].as_str().and_then(State::from_name) else { continue };
        let label = |name: &str| metric[name].as_str().unwrap_or_default().to_string();
        let labels = (label("system"), label("check"), label("target"));
        for v in series["values"].as_array().into_iter().flatten() {
            if let Some(t) = v[0].as_f64() {
                out.push((labels.clone(), (t * 1000.0).round() as i64, state));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_become_changes_with_gaps_as_no_data() {
        use State::{Down, Unknown, Up};
        let samples = [(0, Up), (15, Up), (30, Down), (45, Down), (60, Up), (120, Up)];
        assert_eq!(
            changes(&samples, 15, 200),
            [(0, Up), (30, Down), (60, Up), (75, Unknown), (120, Up), (135, Unknown)],
            "a gap after 60 and the end after 120 are no data"
        );
        assert_eq!(changes(&[(0, Up), (15, Up)], 15, 30), [(0, Up)], "the last sample holds until `to`");
        assert!(changes(&[], 15, 30).is_empty());
    }
}
