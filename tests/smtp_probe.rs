//! Issue #21, item 4: the `smtp` check — banner, EHLO, STARTTLS with the certificate
//! captured, QUIT — against a real mail server (aiosmtpd) with generated certificates:
//! valid, expiring in five days, issued for another host; and against hostile servers.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use vigil::model::Health;
use vigil::probe::{FailureReason, Prober};

/// The outcome of each check of `checks` (the `checks:` entries of one system), by id.
async fn probe_all(dir: &std::path::Path, checks: &str) -> Vec<(String, vigil::probe::ProbeOutcome)> {
    write_config(dir, &format!("systems:\n  - id: mail\n    checks:\n{checks}"));
    let config = vigil::config::load(&dir.join("vigil.yaml")).expect("config");
    let prober = Prober::new();
    let mut out = Vec::new();
    for (_, check, target) in config.targets() {
        out.push((check.id.clone(), prober.probe(check, target).await));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_checked_with_the_certificate_it_presents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new();
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).expect("ca");
    let (cert, key) = pki.leaf_files(dir.path(), "valid", &["127.0.0.1"]);
    let valid = SmtpSink::start_tls(dir.path(), "valid", "starttls", &cert, &key);
    let (cert, key) = pki.leaf_files_until(dir.path(), "expiring", &["127.0.0.1"], 5);
    let expiring = SmtpSink::start_tls(dir.path(), "expiring", "starttls", &cert, &key);
    let (cert, key) = pki.leaf_files(dir.path(), "elsewhere", &["mail.laichau.test"]);
    let elsewhere = SmtpSink::start_tls(dir.path(), "elsewhere", "starttls", &cert, &key);
    let plain = SmtpSink::start(dir.path());
    let check = |id: &str, port: u16, extra: &str| {
        format!(
            "      - {{ id: {id}, smtp: {{ address: \"127.0.0.1:{port}\", ca_file: ca.pem{extra} }}, conditions: [\"[STATUS] == 221\", \"[CERTIFICATE_EXPIRATION] > 7d\"] }}\n"
        )
    };
    let checks = [
        check("valid", valid.port, ""),
        check("expiring", expiring.port, ""),
        check("elsewhere", elsewhere.port, ""),
        check("plain", plain.port, ""),
        format!("      - {{ id: cleartext, smtp: {{ address: \"127.0.0.1:{}\", starttls: false }} }}\n", plain.port),
    ]
    .concat();
    let outcomes = probe_all(dir.path(), &checks).await;
    let get = |id: &str| &outcomes.iter().find(|(i, _)| i == id).expect("outcome").1;

    let ok = get("valid");
    assert_eq!(ok.health, Health::Up, "{}", ok.message);
    assert_eq!(ok.observations.status, Some(221));
    assert!(ok.observations.tls_version.is_some(), "the rest of the conversation was encrypted");
    let days = ok.observations.earliest_not_after().map(|t| (t - jiff::Timestamp::now().as_second()) / 86_400);
    assert!(days.is_some_and(|d| (29..=30).contains(&d)), "the certificate's expiry is measured: {days:?}");
    assert!(ok.observations.body.as_ref().is_some_and(|b| !b.is_empty()), "the banner is [BODY]");

    let soon = get("expiring");
    assert_eq!((soon.health, soon.reason), (Health::Down, Some(FailureReason::Condition)), "{}", soon.message);
    assert!(soon.message.contains("CERTIFICATE_EXPIRATION"), "names the condition: {}", soon.message);

    let wrong = get("elsewhere");
    assert_eq!((wrong.health, wrong.reason), (Health::Down, Some(FailureReason::Tls)), "{}", wrong.message);
    assert_eq!(wrong.observations.certificates.len(), 1, "the certificate presented is kept");

    let no_tls = get("plain");
    assert_eq!((no_tls.health, no_tls.reason), (Health::Down, Some(FailureReason::Tls)));
    assert!(no_tls.message.contains("does not offer STARTTLS"), "{}", no_tls.message);
    let cleartext = get("cleartext");
    assert_eq!(cleartext.health, Health::Up, "starttls: false talks in clear: {}", cleartext.message);
}

/// A one-connection SMTP server that answers each line read with the next of `answers`
/// (the first is the banner), then keeps the connection open.
async fn scripted(answers: Vec<&'static str>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else { return };
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        for (i, answer) in answers.iter().enumerate() {
            if i > 0 && !matches!(lines.next_line().await, Ok(Some(_))) {
                return;
            }
            if write.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_broken_mail_servers_fail_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refusing = scripted(vec!["554 5.3.2 no service here\r\n"]).await;
    // Data sent right after the STARTTLS answer would be taken as encrypted (CVE-2011-0411).
    let injecting =
        scripted(vec!["220 mail\r\n", "250-mail\r\n250 STARTTLS\r\n", "220 go ahead\r\n250 injected\r\n"]).await;
    let garbage = scripted(vec!["HELLO there, I am not SMTP\r\n"]).await;
    let long = scripted(vec![Box::leak(format!("220 {}\r\n", "x".repeat(10_000)).into_boxed_str())]).await;
    let silent = scripted(vec!["220 mail\r\n"]).await; // answers nothing to EHLO
    let checks: String =
        [("refusing", refusing), ("injecting", injecting), ("garbage", garbage), ("long", long), ("silent", silent)]
            .iter()
            .map(|(id, port)| {
                format!("      - {{ id: {id}, timeout: 1s, smtp: {{ address: \"127.0.0.1:{port}\" }} }}\n")
            })
            .collect();
    let outcomes = probe_all(dir.path(), &checks).await;
    let get = |id: &str| &outcomes.iter().find(|(i, _)| i == id).expect("outcome").1;
    let r = get("refusing");
    assert_eq!((r.health, r.reason, r.observations.status), (Health::Down, Some(FailureReason::SmtpReply), Some(554)));
    assert!(r.message.contains("banner: 554"), "{}", r.message);
    let i = get("injecting");
    assert_eq!(i.reason, Some(FailureReason::SmtpReply), "{}", i.message);
    assert!(i.message.contains("before the handshake"), "{}", i.message);
    assert_eq!(get("garbage").reason, Some(FailureReason::Network), "{}", get("garbage").message);
    assert_eq!(get("long").reason, Some(FailureReason::Network), "{}", get("long").message);
    assert_eq!(get("silent").reason, Some(FailureReason::Timeout), "{}", get("silent").message);
}

/// The alert mail's own account still logs in (AUTH PLAIN after STARTTLS): the right
/// password passes, a wrong one fails with the server's 535 and no password in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mail_account_logs_in_after_starttls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new();
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).expect("ca");
    let (cert, key) = pki.leaf_files(dir.path(), "mail", &["127.0.0.1"]);
    let server = SmtpSink::start_tls_auth(dir.path(), "mail", &cert, &key, "vigil:mật-khẩu-thư-2026");
    std::fs::write(dir.path().join("good.password"), "mật-khẩu-thư-2026\n").expect("password");
    std::fs::write(dir.path().join("old.password"), "mat-khau-cu-2025\n").expect("password");
    let check = |id: &str, file: &str| {
        format!(
            "      - {{ id: {id}, smtp: {{ address: \"127.0.0.1:{}\", ca_file: ca.pem, username: vigil, password_file: {file} }} }}\n",
            server.port
        )
    };
    let outcomes =
        probe_all(dir.path(), &[check("login", "good.password"), check("old", "old.password")].concat()).await;
    let get = |id: &str| &outcomes.iter().find(|(i, _)| i == id).expect("outcome").1;
    let ok = get("login");
    assert_eq!((ok.health, ok.observations.status), (Health::Up, Some(221)), "{}", ok.message);
    assert!(ok.observations.phases.iter().any(|(name, _)| *name == "auth"), "the login is timed");
    let refused = get("old");
    assert_eq!((refused.health, refused.reason), (Health::Down, Some(FailureReason::SmtpReply)), "{}", refused.message);
    assert_eq!(refused.observations.status, Some(535), "{}", refused.message);
    assert!(refused.message.starts_with("AUTH as vigil: 535"), "{}", refused.message);
    assert!(!refused.message.contains("mat-khau-cu"), "no password in the message: {}", refused.message);
}
