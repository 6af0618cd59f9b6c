//! Issue #21, item 3: the `sip` check — OPTIONS to a real SIP server (Debian's kamailio, a
//! minimal configuration on a loopback port) over UDP and TCP: 200, then 503, then the
//! server stopped, then a silent UDP port and one answering with another request's Call-ID.

mod common;

use std::path::Path;

use common::*;
use vigil::model::Health;
use vigil::probe::{FailureReason, Prober};

/// Probes every check of `checks` (entries of one system's `checks:`), by id.
async fn probe_all(dir: &Path, checks: &str) -> std::collections::HashMap<String, vigil::probe::ProbeOutcome> {
    write_config(dir, &format!("systems:\n  - id: trunks\n    checks:\n{checks}"));
    let config = vigil::config::load(&dir.join("vigil.yaml")).expect("config");
    let prober = Prober::new();
    let mut out = std::collections::HashMap::new();
    for (_, check, target) in config.targets() {
        out.insert(check.id.clone(), prober.probe(check, target).await);
    }
    out
}

fn checks(port: u16) -> String {
    format!(
        "      - {{ id: udp, interval: 5s, timeout: 2s, sip: {{ address: \"127.0.0.1:{port}\" }} }}\n\
         \x20     - {{ id: tcp, interval: 5s, timeout: 2s, sip: {{ address: \"127.0.0.1:{port}\", transport: tcp }} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_answers_decide_the_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = kamailio(dir.path(), port, "200", "OK");
    let up = probe_all(dir.path(), &checks(port)).await;
    for id in ["udp", "tcp"] {
        let o = &up[id];
        assert_eq!((o.health, o.observations.sip_status), (Health::Up, Some(200)), "{id}: {}", o.message);
        assert_eq!(o.observations.connected, Some(true));
    }
    drop(server);

    let server = kamailio(dir.path(), port, "503", "Service Unavailable");
    let busy = probe_all(dir.path(), &checks(port)).await;
    for id in ["udp", "tcp"] {
        let o = &busy[id];
        assert_eq!(
            (o.health, o.reason, o.observations.sip_status),
            (Health::Down, Some(FailureReason::SipStatus), Some(503)),
            "{id}: {}",
            o.message
        );
        assert!(o.message.contains("503"), "shows the answer: {}", o.message);
    }
    drop(server);

    // Stopped: TCP is refused; UDP hears nothing back (or the port-unreachable error).
    let gone = probe_all(dir.path(), &checks(port)).await;
    assert_eq!((gone["tcp"].health, gone["tcp"].reason), (Health::Down, Some(FailureReason::Refused)));
    assert_eq!(gone["udp"].health, Health::Down, "{}", gone["udp"].message);
    assert!(
        matches!(gone["udp"].reason, Some(FailureReason::Refused | FailureReason::Timeout)),
        "{:?}",
        gone["udp"].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_port_and_a_forged_answer_are_timeouts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let forger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let forger_port = forger.local_addr().expect("addr").port();
    // Answers every request with 200 — for another Call-ID and branch.
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok((_, from)) = forger.recv_from(&mut buf).await {
            let forged = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKother\r\nCall-ID: someone-else@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
            let _ = forger.send_to(forged.as_bytes(), from).await;
        }
    });
    // Over TCP, an answer that never ends (no blank line): cut at 64 KiB.
    let endless = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endless_port = endless.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        if let Ok((mut s, _)) = endless.accept().await {
            let _ = s.write_all(b"SIP/2.0 200 OK\r\n").await;
            for _ in 0..100 {
                if s.write_all(&[b'x'; 1024]).await.is_err() {
                    break;
                }
            }
        }
    });
    let checks = format!(
        "      - {{ id: endless, interval: 5s, timeout: 1500ms, sip: {{ address: \"127.0.0.1:{endless_port}\", transport: tcp }} }}\n\
         \x20     - {{ id: silent, interval: 5s, timeout: 1500ms, sip: {{ address: \"{}\" }} }}\n\
         \x20     - {{ id: forged, interval: 5s, timeout: 1500ms, sip: {{ address: \"127.0.0.1:{forger_port}\" }} }}\n",
        silent.local_addr().expect("addr")
    );
    let out = probe_all(dir.path(), &checks).await;
    assert_eq!((out["endless"].health, out["endless"].reason), (Health::Down, Some(FailureReason::Network)));
    assert!(out["endless"].message.contains("64 KiB"), "{}", out["endless"].message);
    for id in ["silent", "forged"] {
        assert_eq!(
            (out[id].health, out[id].reason),
            (Health::Down, Some(FailureReason::Timeout)),
            "{id}: {}",
            out[id].message
        );
    }
    // The silent port heard the request and its retransmissions (timer E: 0, 0.5 s, 1.5 s).
    let mut buf = [0u8; 4096];
    let mut heard = 0;
    while let Ok(Ok(n)) = tokio::time::timeout(std::time::Duration::from_millis(50), silent.recv(&mut buf)).await {
        assert!(buf[..n].starts_with(b"OPTIONS sip:"), "an OPTIONS request");
        heard += 1;
    }
    assert!(heard >= 2, "sent again on timer E: {heard}");
}
