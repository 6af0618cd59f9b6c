//! Running a transaction (`steps:`, see `config::steps`): each step is one HTTP request
//! (the http probe's, redirects and all) with the variables filled in and the cookies of
//! earlier responses sent along; its conditions judge it alone. The first step that fails
//! ends the flow — but for the `always` steps (logout), which run anyway — and names the
//! outcome: `step "login": [STATUS] (200) == 302`. A step only degraded (its warning
//! conditions) lets the flow go on and the flow is degraded, naming that step. Secret
//! variables never appear in a message.

use std::collections::HashMap;
use std::time::Instant;

use super::tls::TlsContext;
use super::{FailureReason, Observations, ProbeError, ProbeOutcome, Reach, Verdict};
use crate::config::steps::{Capture, Step, StepsSpec, Variable};
use crate::model::Health;

/// The flow's variables, and the secret values among them (hidden in messages).
struct Variables {
    values: HashMap<String, String>,
    secrets: Vec<String>,
}

impl Variables {
    fn of(spec: &StepsSpec) -> Variables {
        let mut values = HashMap::new();
        let mut secrets = Vec::new();
        for (name, value) in &spec.variables {
            let text = match value {
                Variable::Plain(v) => v.clone(),
                Variable::Secret(s) => {
                    secrets.push(s.expose().to_string());
                    s.expose().to_string()
                }
            };
            values.insert(name.clone(), text);
        }
        secrets.retain(|s| !s.is_empty());
        Variables { values, secrets }
    }

    /// `text` with each `{{name}}` replaced by the variable's value (unknown ones stay), in
    /// one pass over the template: a value is never read again as a template, so a captured
    /// value a hostile server chose (`{{password}}`) stays what it is.
    fn fill(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find("}}").and_then(|end| Some((self.values.get(&after[..end])?, end))) {
                Some((value, end)) => {
                    out.push_str(value);
                    rest = &after[end + 2..];
                }
                None => {
                    out.push_str("{{");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// `message` with every secret value hidden.
    fn hide(&self, message: &str) -> String {
        self.secrets.iter().fold(message.to_string(), |m, s| m.replace(s.as_str(), "***"))
    }
}

/// Runs the flow; its judgement is the observations' verdict.
pub(super) async fn observe(spec: &StepsSpec, tls: &TlsContext, reach: Reach<'_>) -> Result<Observations, ProbeError> {
    let started = Instant::now();
    let mut vars = Variables::of(spec);
    let mut jar = cookie_store::CookieStore::default();
    let mut failed: Option<(String, ProbeOutcome)> = None;
    let mut degraded: Option<(String, ProbeOutcome)> = None;
    for step in &spec.steps {
        if failed.is_some() && !step.always {
            continue;
        }
        let outcome = run_step(step, &mut vars, &mut jar, tls, reach).await;
        match outcome.health {
            Health::Up => {}
            Health::Degraded if degraded.is_none() => degraded = Some((step.name.clone(), outcome)),
            Health::Degraded => {}
            _ if failed.is_none() => failed = Some((step.name.clone(), outcome)),
            _ => {}
        }
    }
    // The flow measures its own time; what each step saw, its conditions judged.
    let verdict = failed.or(degraded).map(|(name, o)| Verdict {
        health: o.health,
        reason: o.reason,
        message: vars.hide(&format!("step \"{name}\": {}", o.message)),
    });
    Ok(Observations { response_time: Some(started.elapsed()), verdict, ..Observations::default() })
}

/// One step: its request, cookies and captures, judged by its conditions.
async fn run_step(
    step: &Step,
    vars: &mut Variables,
    jar: &mut cookie_store::CookieStore,
    tls: &TlsContext,
    reach: Reach<'_>,
) -> ProbeOutcome {
    let started = Instant::now();
    let down = |reason, message: String| ProbeOutcome::down(reason, message, started.elapsed());
    let address = vars.fill(&step.url);
    let Ok(url) = url::Url::parse(&address) else {
        return down(FailureReason::Network, "the URL with its variables filled in is not a URL".into());
    };
    let mut http = step.http.clone();
    http.body = http.body.map(|b| vars.fill(&b));
    for (_, value) in &mut http.headers {
        *value = vars.fill(value);
    }
    let cookies: Vec<String> = jar.get_request_values(&url).map(|(n, v)| format!("{n}={v}")).collect();
    if !cookies.is_empty() {
        http.headers.push(("Cookie".into(), cookies.join("; ")));
    }
    let observations = match super::http::observe(&http, url.as_str(), tls, reach).await {
        Ok(obs) => obs,
        Err(e) => return ProbeOutcome { observations: *e.observations, ..down(e.reason, e.message) },
    };
    for (_, cookie) in observations.headers.iter().filter(|(name, _)| name == "set-cookie") {
        let _ = jar.parse(cookie, &url);
    }
    for (name, capture) in &step.captures {
        match captured(capture, &observations) {
            Some(value) => {
                vars.values.insert(name.clone(), value);
            }
            None => return down(FailureReason::Condition, format!("capture {name}: nothing found in the response")),
        }
    }
    super::judge(observations, &step.conditions, &step.warning_conditions, started.elapsed())
}

/// The value `capture` takes from a response.
fn captured(capture: &Capture, obs: &Observations) -> Option<String> {
    let body = || obs.body.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    match capture {
        Capture::Json(path) => {
            let json: serde_json::Value = serde_json::from_str(&body()).ok()?;
            let found = path.query(&json).first()?.clone();
            Some(found.as_str().map_or_else(|| found.to_string(), str::to_string))
        }
        Capture::Regex(re) => {
            let text = body();
            let caps = re.captures(&text)?;
            Some(caps.get(1).or_else(|| caps.get(0))?.as_str().to_string())
        }
        Capture::Header(name) => obs.headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_filled_once_and_a_captured_value_is_never_a_template() {
        let mut vars = Variables { values: HashMap::new(), secrets: vec!["s3cret".into()] };
        vars.values.insert("password".into(), "s3cret".into());
        vars.values.insert("csrf".into(), "{{password}}".into()); // chosen by the server
        vars.values.insert("user".into(), "giam-sat".into());
        assert_eq!(vars.fill("u={{user}}&p={{password}}&c={{csrf}}"), "u=giam-sat&p=s3cret&c={{password}}");
        assert_eq!(vars.fill("{{unknown}} {{user"), "{{unknown}} {{user", "unknown or unclosed: left as written");
        assert_eq!(vars.fill("ồ {{user}}}} ồ"), "ồ giam-sat}} ồ");
        assert_eq!(vars.hide("login as giam-sat with s3cret"), "login as giam-sat with ***");
    }
}
