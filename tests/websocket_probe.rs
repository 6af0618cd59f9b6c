//! Issue #21, item 2: the `websocket` check against a real WebSocket server (Debian's
//! python3-websockets): the upgrade refused, the upgrade done but no answer, the answer
//! matching its condition — over ws:// and wss:// (certificate captured).

mod common;

use common::*;
use vigil::model::Health;
use vigil::probe::{FailureReason, Prober};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_and_the_first_answer_decide() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new();
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).expect("ca");
    let (cert, key) = pki.leaf_files(dir.path(), "meet", &["127.0.0.1"]);
    let servers = [
        WsServer::start("echo", None),
        WsServer::start("echo", Some((&cert, &key))),
        WsServer::start("silent", None),
        WsServer::start("refuse", None),
        WsServer::start("huge", None),
    ];
    let [echo, secure, silent, refuse, huge] = [0, 1, 2, 3, 4].map(|i| servers[i].port);
    let checks = format!(
        "      - {{ id: echo, websocket: {{ url: \"ws://127.0.0.1:{echo}/signal\", send: hello }}, conditions: [\"[STATUS] == 101\", \"[BODY] == echo: hello\"] }}\n\
         \x20     - {{ id: secure, websocket: {{ url: \"wss://127.0.0.1:{secure}/signal\", send: hello, ca_file: ca.pem }}, conditions: [\"[BODY] == echo: hello\", \"[CERTIFICATE_EXPIRATION] > 7d\"] }}\n\
         \x20     - {{ id: wrong, websocket: {{ url: \"ws://127.0.0.1:{echo}/signal\", send: hello }}, conditions: [\"[BODY] == pong\"] }}\n\
         \x20     - {{ id: upgrade-only, websocket: {{ url: \"ws://127.0.0.1:{silent}/signal\" }} }}\n\
         \x20     - {{ id: silent, timeout: 1s, websocket: {{ url: \"ws://127.0.0.1:{silent}/signal\", send: hello }} }}\n\
         \x20     - {{ id: refused, websocket: {{ url: \"ws://127.0.0.1:{refuse}/signal\" }} }}\n\
         \x20     - {{ id: huge, websocket: {{ url: \"ws://127.0.0.1:{huge}/signal\", send: hello }} }}\n"
    );
    write_config(dir.path(), &format!("systems:\n  - id: meet\n    checks:\n{checks}"));
    let config = vigil::config::load(&dir.path().join("vigil.yaml")).expect("config");
    let prober = Prober::new();
    let mut outcomes = std::collections::HashMap::new();
    for (_, check, target) in config.targets() {
        outcomes.insert(check.id.clone(), prober.probe(check, target).await);
    }
    let get = |id: &str| &outcomes[id];
    let ok = get("echo");
    assert_eq!((ok.health, ok.observations.status), (Health::Up, Some(101)), "{}", ok.message);
    assert!(ok.observations.phases.iter().any(|(p, _)| *p == "first_message"), "{:?}", ok.observations.phases);
    let tls = get("secure");
    assert_eq!(tls.health, Health::Up, "{}", tls.message);
    assert!(tls.observations.earliest_not_after().is_some(), "wss: the certificate is captured");
    let wrong = get("wrong");
    assert_eq!((wrong.health, wrong.reason), (Health::Down, Some(FailureReason::Condition)), "{}", wrong.message);
    assert!(wrong.message.contains("echo: hello"), "shows what came back: {}", wrong.message);
    assert_eq!(get("upgrade-only").health, Health::Up, "{}", get("upgrade-only").message);
    let silent = get("silent");
    assert_eq!((silent.health, silent.reason), (Health::Down, Some(FailureReason::Timeout)), "{}", silent.message);
    // A 2 MiB answer is over the 1 MiB cap: refused, not buffered.
    let huge = get("huge");
    assert_eq!((huge.health, huge.reason), (Health::Down, Some(FailureReason::Network)), "{}", huge.message);
    let refused = get("refused");
    assert_eq!(
        (refused.health, refused.reason, refused.observations.status),
        (Health::Down, Some(FailureReason::HttpStatus), Some(403)),
        "{}",
        refused.message
    );
}
