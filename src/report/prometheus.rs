//! Prometheus as the report's source, for deployments with several Vigil instances: each
//! target's state history is read back from `vigil_check_state` with range queries, at a
//! given resolution, then accounted exactly as from the store.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::History;
use crate::alert::state::State;
use crate::config::Config;

/// Most points Prometheus returns per series and query.
const MAX_POINTS: i64 = 10_000;

/// Reads each target's history over [from, to) from Prometheus at `step_ms` resolution.
pub async fn histories(
    config: &Config,
    url: &str,
    from: i64,
    to: i64,
    step_ms: i64,
) -> anyhow::Result<HashMap<String, History>> {
    let http = crate::alert::notify::http_client();
    let step_ms = step_ms.max(1000);
    let mut out = HashMap::new();
    for (_, _, t) in config.targets() {
        let k = &t.key;
        let query = format!(
            "max by (state) (vigil_check_state{{system=\"{}\", check=\"{}\", target=\"{}\"}} == 1)",
            k.system, k.check, k.target
        );
        let mut samples: Vec<(i64, State)> = Vec::new();
        let mut start = from;
        while start < to {
            let end = (start + step_ms * MAX_POINTS).min(to);
            samples.extend(range(&http, url, &query, start, end, step_ms).await?);
            start = end + step_ms;
        }
        samples.sort_by_key(|(t, _)| *t);
        // A gap of more than one step between samples is time without data.
        let mut changes: Vec<(i64, State)> = Vec::new();
        let mut last: Option<(i64, State)> = None;
        for (at, state) in samples {
            match last {
                Some((prev_at, _)) if at - prev_at > step_ms => {
                    changes.push((prev_at + step_ms, State::Unknown));
                    changes.push((at, state));
                }
                Some((_, prev)) if prev != state => changes.push((at, state)),
                None => changes.push((at, state)),
                _ => {}
            }
            last = Some((at, state));
        }
        if let Some((at, _)) = last
            && at + step_ms < to
        {
            changes.push((at + step_ms, State::Unknown));
        }
        out.insert(k.id(), History { initial: None, changes });
    }
    Ok(out)
}

async fn range(
    http: &crate::alert::notify::HttpClient,
    url: &str,
    query: &str,
    start: i64,
    end: i64,
    step_ms: i64,
) -> anyhow::Result<Vec<(i64, State)>> {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("query", query)
        .append_pair("start", &format!("{:.3}", start as f64 / 1000.0))
        .append_pair("end", &format!("{:.3}", end as f64 / 1000.0))
        .append_pair("step", &format!("{:.3}", step_ms as f64 / 1000.0))
        .finish();
    let req = hyper::Request::get(format!("{}/api/v1/query_range?{q}", url.trim_end_matches('/')))
        .body(Full::new(Bytes::new()))?;
    let resp = http.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let doc: serde_json::Value = serde_json::from_slice(&body)?;
    if !status.is_success() || doc["status"] != "success" {
        anyhow::bail!("Prometheus answered {status}: {}", String::from_utf8_lossy(&body));
    }
    let mut out = Vec::new();
    for series in doc["data"]["result"].as_array().into_iter().flatten() {
        let Some(state) = series["metric"]["state"].as_str().and_then(State::from_name) else { continue };
        for v in series["values"].as_array().into_iter().flatten() {
            if let Some(t) = v[0].as_f64() {
                out.push(((t * 1000.0).round() as i64, state));
            }
        }
    }
    Ok(out)
}
