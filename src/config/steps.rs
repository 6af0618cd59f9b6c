//! Transaction checks (`steps:`, issue #21, item 1): HTTP requests in order, sharing a
//! cookie jar and variables. Each step has its own conditions; `capture:` takes values from
//! a response (a JSON path, a regex's first group, a header) into variables that later
//! steps use as `{{name}}` — a syntax apart from the loader's `${ENV}`. `variables:` gives
//! the first ones; `secrets:` (values, or `name_file:` to read one) and `name_file:` among
//! the variables hold secrets (a monitoring account's password), never shown in a message. `always: true` steps (logout) run even after a step failed.

use std::path::Path;

use super::fields::Errors;
use super::raw::{RawCheck, RawStep};
use super::secrets::{self, Strength};
use super::source::SourceFile;
use super::{HttpSpec, ProbeSpec, Secret};
use crate::condition::Condition;

/// Where a captured value comes from.
#[derive(Debug, Clone)]
pub enum Capture {
    /// A JSON path into the body (`$.token` or `token`).
    Json(serde_json_path::JsonPath),
    /// The first group of a regex on the body (the whole match without a group).
    Regex(regex::Regex),
    /// A response header.
    Header(String),
}

/// One step of a transaction.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub http: HttpSpec,
    /// The URL, with `{{name}}` variables.
    pub url: String,
    pub conditions: Vec<Condition>,
    pub warning_conditions: Vec<Condition>,
    pub captures: Vec<(String, Capture)>,
    pub always: bool,
}

/// A transaction check: its steps and first variables.
#[derive(Debug, Clone)]
pub struct StepsSpec {
    pub steps: Vec<Step>,
    /// `variables:`: plain values, and secrets (read from `name_file`).
    pub variables: Vec<(String, Variable)>,
}

/// A variable's first value.
#[derive(Debug, Clone)]
pub enum Variable {
    Plain(String),
    Secret(Secret),
}

/// Reads `steps:` and `variables:` of a check.
pub(super) fn steps_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawCheck,
    base: &Path,
    errors: &mut Errors,
) -> Option<(ProbeSpec, Option<String>)> {
    let raw_steps = raw.steps.as_deref().unwrap_or_default();
    if raw_steps.is_empty() {
        errors.at(file, &format!("{path}.steps"), "a transaction needs at least one step");
        return None;
    }
    let mut variables = Vec::new();
    for (section, secret) in [("variables", false), ("secrets", true)] {
        let given = if secret { &raw.secrets } else { &raw.variables };
        for (name, value) in given {
            let (name, file_given) = match name.strip_suffix("_file") {
                Some(name) => (name, true),
                None => (name.as_str(), false),
            };
            if !file_given && !secret {
                variables.push((name.to_string(), Variable::Plain(value.clone())));
                continue;
            }
            let at = format!("{path}.{section}.{name}");
            let (value, value_file) = if file_given { (None, Some(value)) } else { (Some(value), None) };
            let read = secrets::read(file, &at, value, value_file, Strength::Credential, base, errors);
            variables.extend(read.map(|s| (name.to_string(), Variable::Secret(s))));
        }
    }
    let mut steps = Vec::new();
    let mut ok = true;
    for (i, raw_step) in raw_steps.iter().enumerate() {
        match step(file, &format!("{path}.steps[{i}]"), i, raw_step, base, errors) {
            Some(s) => steps.push(s),
            None => ok = false,
        }
    }
    // The check's one target, shown as where the flow starts.
    let start = steps.first().map(|s: &Step| s.url.clone());
    ok.then_some((ProbeSpec::Steps(StepsSpec { steps, variables }), start))
}

fn step(file: &SourceFile, path: &str, i: usize, raw: &RawStep, base: &Path, errors: &mut Errors) -> Option<Step> {
    let name = raw.name.clone().unwrap_or_else(|| format!("step {}", i + 1));
    let Some(raw_http) = &raw.http else {
        errors.at(file, path, "a step needs an http: request");
        return None;
    };
    let Some(url) = raw_http.url.clone() else {
        errors.at(file, &format!("{path}.http.url"), "url is required");
        return None;
    };
    // Variables are filled in at run time: the URL must be one with any value in them.
    let mut probe_raw = raw_http.clone();
    probe_raw.url = Some(url.replace("{{", "x").replace("}}", "x"));
    let (spec, _) = super::kinds::http_spec(file, &format!("{path}.http"), &probe_raw, base, errors)?;
    let ProbeSpec::Http(mut http) = spec else { return None };
    http.keep_headers = true;
    let kind = Some(super::Kind::Http);
    let conditions = super::kinds::parse_conditions(file, &format!("{path}.conditions"), &raw.conditions, kind, errors);
    let warning_conditions = super::kinds::parse_conditions(
        file,
        &format!("{path}.warning_conditions"),
        &raw.warning_conditions,
        kind,
        errors,
    );
    let mut captures = Vec::new();
    for (var, how) in &raw.capture {
        let at = format!("{path}.capture.{var}");
        let capture = match (&how.json, &how.regex, &how.header) {
            (Some(p), None, None) => {
                let p = if p.starts_with('$') { p.clone() } else { format!("$.{p}") };
                serde_json_path::JsonPath::parse(&p).map(Capture::Json).map_err(|e| format!("json path \"{p}\": {e}"))
            }
            (None, Some(r), None) => regex::Regex::new(r).map(Capture::Regex).map_err(|e| {
                let why = e.to_string();
                format!("regex \"{r}\": {}", why.lines().last().unwrap_or_default().trim_start_matches("error: "))
            }),
            (None, None, Some(h)) => Ok(Capture::Header(h.to_ascii_lowercase())),
            _ => Err("give one of json, regex or header".to_string()),
        };
        match capture {
            Ok(c) => captures.push((var.clone(), c)),
            Err(e) => errors.at(file, &at, e),
        }
    }
    let conditions = if conditions.is_empty() {
        vec![Condition::parse("[STATUS] < 400").expect("the default condition parses")]
    } else {
        conditions
    };
    Some(Step { name, http, url, conditions, warning_conditions, captures, always: raw.always })
}

/// Two transactions are the same when every step sends and judges the same (a reload that
/// changes nothing keeps the check running as it is).
impl PartialEq for StepsSpec {
    fn eq(&self, other: &StepsSpec) -> bool {
        let texts = |c: &[Condition]| c.iter().map(|c| c.text().to_string()).collect::<Vec<_>>();
        let capture = |c: &Capture| match c {
            Capture::Json(p) => format!("json {p}"),
            Capture::Regex(r) => format!("regex {}", r.as_str()),
            Capture::Header(h) => format!("header {h}"),
        };
        let same_step = |a: &Step, b: &Step| {
            (&a.name, &a.http, &a.url, a.always) == (&b.name, &b.http, &b.url, b.always)
                && texts(&a.conditions) == texts(&b.conditions)
                && texts(&a.warning_conditions) == texts(&b.warning_conditions)
                && a.captures.iter().map(|(n, c)| (n, capture(c))).eq(b.captures.iter().map(|(n, c)| (n, capture(c))))
        };
        let value = |v: &Variable| match v {
            Variable::Plain(s) => s.clone(),
            Variable::Secret(s) => s.expose().to_string(),
        };
        self.steps.len() == other.steps.len()
            && self.steps.iter().zip(&other.steps).all(|(a, b)| same_step(a, b))
            && self.variables.iter().map(|(n, v)| (n, value(v))).eq(other.variables.iter().map(|(n, v)| (n, value(v))))
    }
}
