//! Issue #21, item 8: the `ntp` check against a real time server (Debian's chronyd on a
//! loopback port) and against servers written for the test: one whose clock is 5 s ahead,
//! one not synchronized, one answering kiss-o'-death, one answering for another request.

mod common;

use common::*;
use vigil::model::Health;
use vigil::probe::{FailureReason, Prober};

/// A UDP server answering each NTP request through `shape(request, reply)` (the reply
/// prefilled as an honest stratum-2 server would); returns its port.
async fn scripted(shape: fn(&[u8], &mut [u8; 48])) -> u16 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = socket.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
            let secs = ((now.as_secs() + 2_208_988_800) as u32).to_be_bytes();
            let frac = ((f64::from(now.subsec_nanos()) / 1e9 * 4_294_967_296.0) as u32).to_be_bytes();
            let mut reply = [0u8; 48];
            reply[0] = (4 << 3) | 4;
            reply[1] = 2;
            reply[24..32].copy_from_slice(&buf[40..48.min(n)]);
            for at in [32, 40] {
                reply[at..at + 4].copy_from_slice(&secs);
                reply[at + 4..at + 8].copy_from_slice(&frac);
            }
            shape(&buf[..n], &mut reply);
            let _ = socket.send_to(&reply, from).await;
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_stratum_and_refusals_are_measured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chrony = Chrony::start(dir.path(), 7);
    let ahead = scripted(|_, r| {
        for at in [32, 40] {
            let s = u32::from_be_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]) + 5;
            r[at..at + 4].copy_from_slice(&s.to_be_bytes());
        }
    })
    .await;
    let unsynced = scripted(|_, r| r[0] |= 3 << 6).await;
    let kissing = scripted(|_, r| {
        r[1] = 0;
        r[12..16].copy_from_slice(b"RATE");
    })
    .await;
    let forged = scripted(|_, r| r[24] ^= 0xff).await;
    let checks: String = [("chrony", chrony.port), ("ahead", ahead), ("unsynced", unsynced), ("kissing", kissing), ("forged", forged)]
        .iter()
        .map(|(id, port)| {
            format!(
                "      - {{ id: {id}, interval: 5s, timeout: 1500ms, ntp: {{ host: \"127.0.0.1:{port}\" }}, conditions: [\"[NTP_OFFSET] < 100ms\", \"[NTP_STRATUM] < 10\"] }}\n"
            )
        })
        .collect();
    write_config(dir.path(), &format!("systems:\n  - id: time\n    checks:\n{checks}"));
    let config = vigil::config::load(&dir.path().join("vigil.yaml")).expect("config");
    let prober = Prober::new();
    let mut out = std::collections::HashMap::new();
    for (_, check, target) in config.targets() {
        out.insert(check.id.clone(), prober.probe(check, target).await);
    }
    let real = &out["chrony"];
    assert_eq!(real.health, Health::Up, "{}", real.message);
    let reading = real.observations.ntp.as_ref().expect("a reading");
    assert_eq!(reading.stratum, 7, "chronyd's `local stratum 7`");
    assert!(reading.offset_seconds.abs() < 0.1, "same machine, same clock: {reading:?}");

    let skewed = &out["ahead"];
    assert_eq!((skewed.health, skewed.reason), (Health::Down, Some(FailureReason::Ntp)), "{}", skewed.message);
    let offset = skewed.observations.ntp.as_ref().expect("a reading").offset_seconds;
    assert!((offset - 5.0).abs() < 0.1, "the server is 5 s ahead: {offset}");
    assert!(skewed.message.contains("NTP_OFFSET") && skewed.message.contains("5s"), "shows it: {}", skewed.message);

    for (id, says) in [("unsynced", "not synchronized"), ("kissing", "kiss-o'-death RATE")] {
        assert_eq!((out[id].health, out[id].reason), (Health::Down, Some(FailureReason::Ntp)), "{id}");
        assert!(out[id].message.contains(says), "{id}: {}", out[id].message);
    }
    assert_eq!(out["forged"].reason, Some(FailureReason::Timeout), "another request's answer is ignored");
}
