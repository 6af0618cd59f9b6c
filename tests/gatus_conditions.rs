//! Gatus compatibility of the condition language (issue #17): every case of Gatus's own
//! condition tests and README table (`fixtures/gatus-conditions.yaml`, data only) is run
//!
//! - through the evaluator, against exactly the result the case describes, and
//! - through the real daemon, as an HTTP check against a loopback server answering with
//!   that status, body and delay (a closed port for "not connected", an HTTPS server whose
//!   certificate expires when the case says), for every case a network can reproduce: a
//!   measured response time is the server's delay plus the network's, so a case on the
//!   boundary of its threshold (Gatus's `[RESPONSE_TIME] <= 500` at exactly 500 ms) is left
//!   to the evaluator, and no address but 127.0.0.1 is ever connected to.
//!
//! Both must agree with Gatus's verdict, except the deliberate differences each case names
//! (`vigil:` with `why:`), which the README lists under "Conditions: differences from Gatus".

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use vigil::condition::{Condition, Facts, Placeholder, Value, failures};
use vigil::model::Health;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    validate: Vec<ValidateCase>,
    evaluate: Vec<EvaluateCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateCase {
    condition: String,
    valid: bool,
    vigil: Option<String>,
    why: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluateCase {
    name: String,
    condition: String,
    result: Observed,
    success: bool,
    vigil: Option<String>,
    why: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Observed {
    status: Option<u16>,
    body: Option<String>,
    response_ms: Option<u64>,
    ip: Option<String>,
    connected: Option<bool>,
    cert_hours: Option<u64>,
}

/// The deliberate differences the README documents (section "Conditions: differences
/// from Gatus"); a case may only differ for one of these.
const DOCUMENTED: &[&str] = &[
    "malformed-rejected",
    "no-placeholder",
    "operator-spacing",
    "domain-expiration",
    "missing-certificate",
    "len-object",
];

/// What Vigil must answer for a case: Gatus's verdict unless a documented difference says
/// otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Pass,
    Fail,
    LoadError,
}

impl EvaluateCase {
    fn expected(&self) -> Expect {
        match self.vigil.as_deref() {
            None if self.success => Expect::Pass,
            None => Expect::Fail,
            Some("pass") => Expect::Pass,
            Some("fail") => Expect::Fail,
            Some("load_error") => Expect::LoadError,
            Some(other) => panic!("case {}: unknown vigil verdict {other}", self.name),
        }
    }
}

fn cases() -> Cases {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gatus-conditions.yaml");
    let text = std::fs::read_to_string(path).expect("read the Gatus case table");
    let cases: Cases = yaml_serde::from_str(&text).expect("parse the Gatus case table");
    for why in cases
        .validate
        .iter()
        .filter_map(|c| c.why.as_deref())
        .chain(cases.evaluate.iter().filter_map(|c| c.why.as_deref()))
    {
        assert!(DOCUMENTED.contains(&why), "difference \"{why}\" is not one the README documents");
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let section = readme.split("### Conditions: differences from Gatus").nth(1).expect("README has the section");
    for why in DOCUMENTED {
        assert!(section.contains(&format!("`{why}`")), "README's differences section does not explain `{why}`");
    }
    cases
}

/// A case's result as the condition language sees it.
impl Facts for Observed {
    fn value(&self, p: Placeholder) -> Option<Value> {
        match p {
            Placeholder::Status => self.status.map(|s| Value::Number(s.into())),
            Placeholder::Body => self.body.clone().map(Value::Text),
            Placeholder::ResponseTime => self.response_ms.map(|ms| Value::Duration(Duration::from_millis(ms))),
            Placeholder::Connected => Some(Value::Bool(self.connected.unwrap_or(false))),
            Placeholder::Ip => self.ip.clone().map(Value::Text),
            Placeholder::CertificateExpiration => {
                self.cert_hours.map(|h| Value::Duration(Duration::from_secs(h * 3600)))
            }
            _ => None,
        }
    }

    fn body(&self) -> Option<&[u8]> {
        self.body.as_deref().map(str::as_bytes)
    }
}

fn evaluate(condition: &str, observed: &Observed) -> Expect {
    match Condition::parse(condition) {
        Err(_) => Expect::LoadError,
        Ok(c) if failures(std::slice::from_ref(&c), observed).is_empty() => Expect::Pass,
        Ok(_) => Expect::Fail,
    }
}

#[test]
fn gatus_validation_cases_agree() {
    let cases = cases();
    assert!(cases.validate.len() >= 25, "the table lost its validation cases");
    let mut wrong = Vec::new();
    for case in &cases.validate {
        let expected = match case.vigil.as_deref() {
            None => case.valid,
            Some("valid") => true,
            Some("invalid") => false,
            Some(other) => panic!("{}: unknown vigil verdict {other}", case.condition),
        };
        let valid = Condition::parse(&case.condition).is_ok();
        if valid != expected {
            wrong.push(format!("{:?}: valid {valid}, expected {expected}", case.condition));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} validation cases disagree:\n{}",
        wrong.len(),
        cases.validate.len(),
        wrong.join("\n")
    );
}

#[test]
fn gatus_evaluation_cases_agree_in_the_evaluator() {
    let cases = cases();
    assert!(cases.evaluate.len() >= 150, "the table lost its evaluation cases");
    let wrong: Vec<String> = cases
        .evaluate
        .iter()
        .filter_map(|case| {
            let got = evaluate(&case.condition, &case.result);
            (got != case.expected())
                .then(|| format!("{} {:?}: {got:?}, expected {:?}", case.name, case.condition, case.expected()))
        })
        .collect();
    assert!(wrong.is_empty(), "{} of {} cases disagree:\n{}", wrong.len(), cases.evaluate.len(), wrong.join("\n"));
}

/// Whether the daemon can reproduce a case on loopback: it loads, connects to 127.0.0.1
/// only, and its verdict does not hang on the network's few milliseconds.
fn reproducible(case: &EvaluateCase) -> bool {
    let on_loopback = case.result.ip.as_deref().is_none_or(|ip| ip == "127.0.0.1");
    let timing_safe = case.result.response_ms.is_none_or(|ms| {
        let later = Observed { response_ms: Some(ms + 300), ..case.result.clone() };
        evaluate(&case.condition, &case.result) == evaluate(&case.condition, &later)
    });
    case.expected() != Expect::LoadError && on_loopback && timing_safe
}

/// What the loopback server answers for one case.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: Bytes,
    delay: Duration,
}

/// An HTTP server on 127.0.0.1 answering `/c/N` with case N's status, body and delay.
async fn case_server(replies: Arc<Vec<Reply>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let replies = replies.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let reply = req
                        .uri()
                        .path()
                        .strip_prefix("/c/")
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| replies.get(n).cloned());
                    async move {
                        let reply = reply.unwrap_or(Reply { status: 404, body: Bytes::new(), delay: Duration::ZERO });
                        tokio::time::sleep(reply.delay).await;
                        let mut r = Response::new(Full::new(reply.body));
                        *r.status_mut() = StatusCode::from_u16(reply.status).expect("status");
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gatus_evaluation_cases_agree_through_the_daemon() {
    let cases: Vec<EvaluateCase> = cases().evaluate.into_iter().filter(reproducible).collect();
    assert!(cases.len() >= 130, "only {} cases reproducible on loopback", cases.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new();
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).expect("write CA");

    let replies: Vec<Reply> = cases
        .iter()
        .map(|c| Reply {
            status: c.result.status.unwrap_or(200),
            body: Bytes::from(c.result.body.clone().unwrap_or_default()),
            delay: Duration::from_millis(c.result.response_ms.unwrap_or(0)),
        })
        .collect();
    let plain = case_server(Arc::new(replies)).await;
    let closed = closed_port().await;
    let mut https: BTreeMap<u64, SocketAddr> = BTreeMap::new();
    for hours in cases.iter().filter_map(|c| c.result.cert_hours).collect::<BTreeSet<_>>() {
        let now = time::OffsetDateTime::now_utc();
        let not_after = now + time::Duration::hours(hours as i64);
        let server =
            web_server(Some(pki.server_config(&["127.0.0.1"], now - time::Duration::days(1), not_after))).await;
        https.insert(hours, server.addr);
    }

    let mut checks = String::new();
    for (i, case) in cases.iter().enumerate() {
        let url = match (case.result.connected, case.result.cert_hours) {
            (Some(false), _) => format!("http://{closed}/"),
            (_, Some(hours)) => format!("https://{}/ok", https[&hours]),
            _ => format!("http://{plain}/c/{i}"),
        };
        let condition = serde_json::to_string(&case.condition).expect("quote");
        checks.push_str(&format!(
            "      - {{ id: c{i:03}, http: {{ url: \"{url}\", ca_file: ca.pem }}, interval: 3s, timeout: 3s, conditions: [{condition}] }}\n"
        ));
    }
    write_config(dir.path(), &format!("systems:\n  - id: gatus\n    checks:\n{checks}"));
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();

    let mut seen: BTreeMap<usize, Health> = BTreeMap::new();
    while seen.len() < cases.len() {
        let e = wait_for(&mut events, Duration::from_secs(60), |e| e.target_id.starts_with("gatus/c")).await;
        let i: usize = e.target_id["gatus/c".len()..].parse().expect("case number");
        seen.entry(i).or_insert(e.health);
    }
    app.shutdown().await;

    let wrong: Vec<String> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, case)| {
            let want = if case.expected() == Expect::Pass { Health::Up } else { Health::Down };
            (seen[&i] != want).then(|| format!("{} {:?}: {:?}, expected {want:?}", case.name, case.condition, seen[&i]))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} cases disagree through the daemon:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// `[CONNECTED] == false` (issue #17, item 5): a port that must stay closed is up while it
/// refuses or drops, down once something listens — through the daemon, tcp and http alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_must_stay_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = closed_port().await;
    let open = banner_server("hello\n").await;
    // A host in a test-made namespace whose firewall drops every SYN to port 5432: the
    // connection times out rather than being refused.
    let firewalled = Netns::new(1, &["tcp dport 5432 drop"], false);
    let dropped = format!("{}:5432", firewalled.hosts[0]);
    write_config(
        dir.path(),
        &format!(
            r#"systems:
  - id: guard
    checks:
      - {{ id: closed-tcp, tcp: {{ address: "{closed}" }}, conditions: ["[CONNECTED] == false"] }}
      - {{ id: closed-http, http: {{ url: "http://{closed}/" }}, conditions: ["[CONNECTED] == false"] }}
      - {{ id: open-tcp, tcp: {{ address: "{open}" }}, conditions: ["[CONNECTED] == false"] }}
      - {{ id: must-connect, tcp: {{ address: "{closed}" }}, conditions: ["[CONNECTED] == true"] }}
      - {{ id: dropped-tcp, tcp: {{ address: "{dropped}" }}, timeout: 500ms, conditions: ["[CONNECTED] == false"] }}
      - {{ id: dropped-must-connect, tcp: {{ address: "{dropped}" }}, timeout: 500ms, conditions: ["[CONNECTED] == true"] }}
"#
        ),
    );
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let mut seen: BTreeMap<String, Health> = BTreeMap::new();
    while seen.len() < 6 {
        let e = wait_for(&mut events, Duration::from_secs(20), |e| e.target_id.starts_with("guard/")).await;
        seen.entry(e.target_id.clone()).or_insert(e.health);
    }
    let status = get(&format!("http://{}/api/v1/status", app.addr())).await;
    app.shutdown().await;
    assert_eq!(seen["guard/closed-tcp"], Health::Up, "{status}");
    assert_eq!(seen["guard/closed-http"], Health::Up, "{status}");
    assert_eq!(seen["guard/open-tcp"], Health::Down, "{status}");
    assert_eq!(seen["guard/must-connect"], Health::Down, "{status}");
    assert_eq!(seen["guard/dropped-tcp"], Health::Up, "a connect that timed out is not connected: {status}");
    assert_eq!(seen["guard/dropped-must-connect"], Health::Down, "{status}");
    // The refused connection is still named as the reason where it matters.
    assert!(status.contains("refused"), "{status}");
}
