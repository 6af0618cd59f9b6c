//! Entry points of the fuzz targets (`fuzz/`, run with cargo fuzz) and of the suite's replay
//! of their corpus (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes and must return —
//! never panic, never hang — whatever they hold. Not an API.
#![doc(hidden)]

use std::path::Path;
use std::time::Duration;

use crate::condition::{Condition, Facts, Placeholder, Value, failures};

/// One fuzz target: arbitrary bytes in, nothing out (it must simply return).
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (the corpus folders carry these names).
pub const TARGETS: [(&str, Target); 6] = [
    ("config", config),
    ("condition", condition),
    ("perfdata", perfdata),
    ("icmp", icmp),
    ("web_inputs", web_inputs),
    ("probe_params", probe_params),
];

/// A configuration file, loaded and validated. Relative files and includes resolve under a
/// folder that does not exist; every `${NAME}` gets a value.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let env = |_: &str| Some("fuzz-secret-0123456789abcdef0123456789".to_string());
    let _ = crate::config::load_from_text(Path::new("/nonexistent/vigil-fuzz/vigil.yaml"), &text, &env);
}

/// The first line is a condition, the rest a response body it is judged against.
pub fn condition(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (expression, body) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(c) = Condition::parse(expression) {
        let _ = failures(std::slice::from_ref(&c), &Observed(body));
    }
}

/// A plugin's output.
pub fn perfdata(data: &[u8]) {
    let _ = crate::probe::perfdata::parse_output(&String::from_utf8_lossy(data));
}

/// An ICMP packet arriving on each kind of socket.
pub fn icmp(data: &[u8]) {
    let _ = crate::probe::icmp::decode_any(data);
}

/// Paths, queries, forms and headers as the web server parses them.
pub fn web_inputs(data: &[u8]) {
    let _ = crate::web::fuzz_inputs(&String::from_utf8_lossy(data));
}

/// `/probe`'s parameters.
pub fn probe_params(data: &[u8]) {
    let _ = crate::web::fuzz_probe_params(&String::from_utf8_lossy(data));
}

/// A probe result whose every placeholder has a value; the body is the fuzzer's.
struct Observed<'a>(&'a str);

impl Facts for Observed<'_> {
    fn value(&self, placeholder: Placeholder) -> Option<Value> {
        Some(match placeholder {
            Placeholder::Status | Placeholder::ExitCode | Placeholder::SipStatus | Placeholder::NtpStratum => {
                Value::Number(200.0)
            }
            Placeholder::PacketLoss => Value::Number(12.5),
            Placeholder::IfOperStatus | Placeholder::IfAdminStatus => Value::Text("up".into()),
            Placeholder::IfInBps
            | Placeholder::IfOutBps
            | Placeholder::IfUtilisation
            | Placeholder::IfInErrorsRate
            | Placeholder::IfOutErrorsRate
            | Placeholder::IfInDiscardsRate
            | Placeholder::IfOutDiscardsRate => Value::Number(3.5),
            Placeholder::PathMtu => Value::Number(1400.0),
            Placeholder::Body | Placeholder::DnsRcode | Placeholder::Ip => Value::Text(self.0.to_string()),
            Placeholder::Connected => Value::Bool(true),
            Placeholder::ResponseTime
            | Placeholder::CertificateExpiration
            | Placeholder::RttAvg
            | Placeholder::RttMax
            | Placeholder::Jitter
            | Placeholder::NtpOffset
            | Placeholder::NtpRootDistance => Value::Duration(Duration::from_millis(150)),
        })
    }

    fn body(&self) -> Option<&[u8]> {
        Some(self.0.as_bytes())
    }
}
