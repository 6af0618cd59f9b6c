//! The secret canary (issue #13): one distinctive value stands in every place a secret can be
//! configured — admin token, acknowledgement key, SMTP password, a webhook URL's token, an
//! exec argument, an HTTP header, a URL's userinfo and query, a heartbeat token, an SNMP
//! community and SNMPv3 passwords. The daemon (`vigil run`, a real process with debug logs)
//! runs with failing deliveries, a reload with an error and pushed heartbeats; then every
//! page, API answer, metric, log line, store table and `check-config` output is collected,
//! and the canary must appear in none of them.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The distinctive part of every secret (each secret is this plus a suffix of its own).
const CANARY: &str = "Kz7canaryQ";

fn secret(suffix: &str) -> String {
    format!("{CANARY}-{suffix}-0123456789abcdef0123456789")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_page_a_log_an_error_or_the_store() {
    let web = web_server(None).await;
    let hooks_down = closed_port().await;
    let smtp_down = closed_port().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (admin, ack, smtp_password) = (secret("admin"), secret("ack"), secret("smtp"));
    let (hook_token, argument, header) = (secret("hook"), secret("arg"), secret("header"));
    let (userinfo, query, beat) = (secret("user"), secret("query"), secret("beat"));
    let (community, auth_key, priv_key) = (secret("community"), secret("snmp-auth"), secret("snmp-priv"));
    // An SNMP agent that never answers: the checks fail (and log, and store) every run.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let silent_agent = silent.local_addr().expect("addr");
    std::fs::write(dir.path().join("smtp-password"), format!("{smtp_password}\n")).expect("password file");
    let config = format!(
        r#"instance: {{ name: canary, location: test-lab }}
server: {{ listen: "127.0.0.1:{port}", public_url: "http://monitor.laichau.test", admin_token: "${{VIGIL_ADMIN_TOKEN}}" }}
storage: {{ path: "{db}" }}
defaults: {{ interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1 }}
alerting: {{ ack_key: "${{VIGIL_ACK_KEY}}" }}
receivers:
  - id: team
    channels:
      - email: {{ to: ["ung-cuu@laichau.test"], smtp: {{ host: 127.0.0.1, port: {smtp_port}, security: none, username: vigil, password_file: smtp-password }} }}
  - id: chat
    channels:
      - webhook: {{ url: "http://{hooks_down}/bot{hook_token}/sendMessage" }}
routes:
  - {{ receivers: [team, chat] }}
systems:
  - id: web
    checks:
      - id: portal
        http: {{ url: "http://monitor:{userinfo}@{web}/switch?apikey={query}", headers: {{ X-Api-Key: "{header}" }} }}
        conditions: ["[STATUS] == 200"]
      - id: plugin
        exec: {{ command: [sh, -c, "echo OK", sh, "{argument}"] }}
      - id: backup
        heartbeat: {{ token: "${{VIGIL_HEARTBEAT}}", period: 1h }}
      - id: switch-v2c
        snmp: {{ address: "{silent_agent}", community: "{community}", get: {{ uptime: 1.3.6.1.2.1.1.3.0 }} }}
      - id: switch-v3
        snmp: {{ address: "{silent_agent}", version: 3, username: vigil, auth_password: "{auth_key}", priv_password: "{priv_key}", interfaces: true }}
"#,
        db = dir.path().join("vigil.db").display(),
        smtp_port = smtp_down.port(),
        web = web.addr,
    );
    let config_path = dir.path().join("vigil.yaml");
    std::fs::write(&config_path, &config).expect("config");
    let envs =
        [("VIGIL_ADMIN_TOKEN", admin.as_str()), ("VIGIL_ACK_KEY", ack.as_str()), ("VIGIL_HEARTBEAT", beat.as_str())];

    let check = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check-config", "-c", &config_path.display().to_string()])
        .envs(envs)
        .output()
        .expect("check-config");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let mut collected = vec![("check-config".to_string(), [check.stdout, check.stderr].concat())];

    let log = std::fs::File::create(dir.path().join("vigil.log")).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "-c", &config_path.display().to_string(), "--log-level", "debug"])
        .envs(envs)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("vigil run");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "vigil did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Failures and failing deliveries: the portal goes down (mail and webhook both fail),
    // the heartbeat is pushed (ok, then failed with a message), a wrong token is tried.
    web.switch.store(503, std::sync::atomic::Ordering::SeqCst);
    // Until both channels have failed a delivery (their errors are what must stay clean).
    let log_path = dir.path().join("vigil.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let failed =
            |channel: &str| log.lines().any(|l| l.contains("notification not delivered") && l.contains(channel));
        if failed("email") && failed("webhook") {
            break;
        }
        assert!(Instant::now() < deadline, "no failed delivery on both channels within 30 s:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for path in [format!("/api/v1/heartbeat/{beat}"), format!("/api/v1/heartbeat/{beat}?status=fail&msg=disk")] {
        assert_eq!(request("POST", &format!("{base}{path}"), None).await.0, 200);
    }
    assert_eq!(request("POST", &format!("{base}/-/reload"), Some("wrong-token-0123456789abcdef")).await.0, 401);
    // A reload with an error (the running configuration stays).
    std::fs::write(&config_path, config.replace("interval: 1s", "interval: soon")).expect("broken config");
    let (code, reload) = request("POST", &format!("{base}/-/reload"), Some(&admin)).await;
    assert_eq!(code, 500, "{reload}");
    collected.push(("reload answer".into(), reload.into_bytes()));
    std::fs::write(&config_path, &config).expect("config again");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Every page and answer, logged in and not.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let (_, heads, _) = send("POST", &format!("{base}/ui/login"), &form, &format!("token={admin}&next=/")).await;
    let cookie = heads.get("set-cookie").and_then(|c| c.split(';').next()).unwrap_or_default().to_string();
    for path in [
        "/",
        "/systems/web",
        "/checks/web/portal",
        "/checks/web/plugin",
        "/checks/web/backup",
        "/api/v1/status",
        "/api/v1/incidents?state=all",
        "/api/v1/checks/web/portal/history",
        "/api/v1/maintenance",
        "/metrics",
        "/reports",
        "/reports?format=json",
        "/reports?format=csv",
        "/reports?format=md",
        "/badge/web.svg",
        "/ui/audit",
    ] {
        let (_, _, body) = send("GET", &format!("{base}{path}"), &[("cookie", &cookie)], "").await;
        collected.push((path.to_string(), body.into_bytes()));
    }
    let (_, audit) = request("GET", &format!("{base}/api/v1/audit"), Some(&admin)).await;
    collected.push(("/api/v1/audit".into(), audit.into_bytes()));

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("SIGTERM");
    assert!(status.success());
    let _ = child.wait();
    collected.push(("log".into(), std::fs::read(dir.path().join("vigil.log")).expect("log")));

    // Every text cell of every table of the store.
    let conn = rusqlite::Connection::open(dir.path().join("vigil.db")).expect("store");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("names");
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).expect("select");
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).expect("rows");
        let mut text = Vec::new();
        while let Some(row) = rows.next().expect("row") {
            for i in 0..columns {
                if let Ok(rusqlite::types::ValueRef::Text(t)) = row.get_ref(i) {
                    text.extend_from_slice(t);
                    text.push(b'\n');
                }
            }
        }
        collected.push((format!("store table {table}"), text));
    }

    // The run did what it should: a debug log, and the failing webhook in it (redacted).
    let log_text = collected.iter().find(|(w, _)| w == "log").map(|(_, t)| String::from_utf8_lossy(t).into_owned());
    let log_text = log_text.unwrap_or_default();
    assert!(log_text.len() > 1000 && log_text.contains("DEBUG"), "the debug log was collected");
    assert!(log_text.contains(&format!("http://{hooks_down}/…")), "the failing webhook was logged:\n{log_text}");
    let leaks: Vec<String> = collected
        .iter()
        .filter(|(_, bytes)| String::from_utf8_lossy(bytes).contains(CANARY))
        .map(|(where_, bytes)| {
            let text = String::from_utf8_lossy(bytes);
            let at = text.find(CANARY).unwrap_or(0);
            let from = text[..at].char_indices().rev().nth(80).map_or(0, |(i, _)| i);
            format!("{where_}: …{}…", &text[from..(at + 40).min(text.len())])
        })
        .collect();
    assert!(leaks.is_empty(), "the canary leaked into:\n{}", leaks.join("\n"));
}
