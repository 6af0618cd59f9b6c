//! `vigil check-config`: the shipped example is valid, and every invalid fixture under
//! `tests/fixtures/invalid/` reports exactly the errors written in its `# expect:` lines.

use std::path::{Path, PathBuf};

use std::process::Command;
use vigil::config::ProbeSpec;

const FIXTURES: &str = "tests/fixtures/invalid";

/// The secrets the shipped example reads from the environment, with test values.
const SHIPPED_SECRETS: &[(&str, &str)] = &[
    ("VIGIL_ACK_KEY", "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978"),
    ("VIGIL_HEARTBEAT_DOCUMENTS_BACKUP", "backup-token-5f0c9a7d2e"),
    ("VIGIL_HEARTBEAT_REPORTING", "reporting-token-8b41e6f3a9"),
    ("VIGIL_SMTP_PASSWORD", "smtp-password-for-tests"),
    ("VIGIL_SMS_WEBHOOK_SECRET", "sms-webhook-secret-for-tests"),
    ("VIGIL_PORTAL_PASSWORD", "portal-password-for-tests"),
    ("VIGIL_SNMP_AUTH", "snmp-auth-password-for-tests"),
    ("VIGIL_SNMP_PRIV", "snmp-priv-password-for-tests"),
    ("VIGIL_VANTAGE_SIN_HO", "vantage-sin-ho-token-0123456789abcdef"),
    ("VIGIL_VANTAGE_MUONG_TE", "vantage-muong-te-token-0123456789abcdef"),
    ("VIGIL_VANTAGE_TAN_PHONG", "vantage-tan-phong-token-0123456789abcdef"),
];

fn shipped_env(name: &str) -> Option<String> {
    SHIPPED_SECRETS.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
}

/// The shipped example, loaded with its secrets set (and nothing read from this process's
/// environment).
fn load_shipped() -> vigil::config::Config {
    vigil::config::load_with_env(Path::new("vigil.yaml"), &shipped_env)
        .unwrap_or_else(|e| panic!("vigil.yaml is invalid:\n{e}"))
}

/// `vigil` with the shipped example's secrets in its environment.
fn vigil() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command.envs(SHIPPED_SECRETS.iter().copied());
    command
}

#[test]
fn shipped_example_is_valid_and_lists_five_systems() {
    let config = load_shipped();
    let ids: Vec<&str> = config.systems.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["procedures", "documents", "e-meeting", "reporting", "network"]);
    let gateways =
        config.systems[4].checks.iter().find(|c| c.id == "commune-gateways").expect("commune gateways check");
    assert_eq!(gateways.targets.len(), 38, "one gateway per commune and ward");
    assert_eq!(gateways.probe.kind().as_str(), "icmp");
    let kinds: std::collections::BTreeSet<&str> = config.targets().map(|(_, c, _)| c.probe.kind().as_str()).collect();
    assert_eq!(kinds.len(), vigil::config::Kind::ALL.len(), "the example shows every probe kind: {kinds:?}");
    assert!(gateways.targets.iter().any(|t| t.key.id() == "network/commune-gateways/sin-ho"));
    // The portal is measured from the communes too: the group names all three.
    let portal = &config.systems[0].checks[0];
    assert_eq!(portal.vantages, ["sin-ho", "muong-te", "tan-phong"], "vantages: all-communes");
    assert_eq!(config.vantages[0].link.as_deref(), Some("network/commune-gateways/sin-ho"));
}

#[test]
fn shipped_example_targets_only_reserved_example_names() {
    let config = load_shipped();
    for (_, check, target) in config.targets() {
        let host = match &check.probe {
            ProbeSpec::Http(_) | ProbeSpec::Websocket(_) => {
                url::Url::parse(&target.address).expect("url").host_str().unwrap_or_default().to_string()
            }
            ProbeSpec::Tcp(_) | ProbeSpec::Tls(_) | ProbeSpec::Smtp(_) | ProbeSpec::Sip(_) => {
                target.address.rsplit_once(':').expect("host:port").0.to_string()
            }
            ProbeSpec::Icmp(_) | ProbeSpec::Dns(_) | ProbeSpec::Ntp(_) | ProbeSpec::Snmp(_) => target.address.clone(),
            ProbeSpec::Exec(e) => {
                e.command.windows(2).find(|w| w[0] == "-H").map(|w| w[1].clone()).expect("plugin -H host")
            }
            ProbeSpec::Heartbeat(_) => continue,
            ProbeSpec::Steps(flow) => {
                for step in &flow.steps {
                    let url = url::Url::parse(&step.url.replace("{{", "x").replace("}}", "x")).expect("url");
                    let host = url.host_str().unwrap_or_default();
                    assert!(host.ends_with(".laichau.example"), "{}: step {} probes {host}", target.key, step.name);
                }
                continue;
            }
        };
        assert!(
            host.ends_with(".laichau.example"),
            "{} probes {host}, which is not under .laichau.example",
            target.key
        );
        assert!(host.parse::<std::net::IpAddr>().is_err(), "{} uses an IP literal", target.key);
    }
}

#[test]
fn check_config_command_prints_a_summary() {
    let out = vigil().args(["check-config", "-c", "vigil.yaml"]).output().expect("run vigil");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("systems: 5, checks: 26, targets: 66"), "{stdout}");
    assert!(stdout.contains("procedures — Hệ thống giải quyết thủ tục hành chính"), "{stdout}");
}

/// The `# expect:` lines of a fixture, with the file made relative to the crate root.
fn expectations(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read fixture")
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| format!("{FIXTURES}/{e}"))
        .collect()
}

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(FIXTURES)
        .expect("fixtures folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_invalid_fixture_reports_its_expected_errors() {
    let files = fixtures();
    assert!(files.len() >= 15, "expected at least 15 invalid fixtures, found {}", files.len());
    for path in files {
        let expected = expectations(&path);
        assert!(!expected.is_empty(), "{} has no # expect: line", path.display());
        let errors = match vigil::config::load(&path) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(e) => e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        };
        assert_eq!(errors, expected, "errors of {}", path.display());
    }
}

#[test]
fn three_errors_in_one_file_are_all_reported_by_the_command() {
    let out =
        vigil().args(["check-config", "-c", &format!("{FIXTURES}/three-errors.yaml")]).output().expect("run vigil");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let located: Vec<&str> = stderr.lines().filter(|l| l.starts_with(FIXTURES)).collect();
    assert_eq!(located.len(), 3, "{stderr}");
    assert!(located[0].contains(":5:19: systems[0].checks[0].interval:"), "{stderr}");
    assert!(located[1].contains(":7:22: systems[0].checks[0].conditions[0]:"), "{stderr}");
    assert!(located[2].contains(":10:22: systems[0].checks[1].depends_on[0]:"), "{stderr}");
    assert!(stderr.trim_end().ends_with("3 errors"), "{stderr}");
}

#[test]
fn secrets_come_from_the_environment_and_files_and_never_show() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), "file-secret-0123456789abcdef\n").expect("write token");
    let root = dir.path().join("vigil.yaml");
    std::fs::write(&root, "server: { admin_token_file: token }\nsystems: []\n").expect("write config");
    let config = vigil::config::load(&root).expect("valid");
    let token = config.server.admin_token.expect("token read");
    assert_eq!(token.expose(), "file-secret-0123456789abcdef");
    assert!(!format!("{token:?}").contains("file-secret"), "Debug must redact secrets");
}

/// Issue #13, item 2: the shipped configuration has no default for any secret. Without the
/// variables it does not load, with one located error per missing secret.
#[test]
fn the_shipped_example_needs_every_secret_set() {
    let errors = match vigil::config::load_with_env(Path::new("vigil.yaml"), &|_| None) {
        Ok(_) => panic!("the shipped example started without its secrets"),
        Err(e) => e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
    };
    for (name, _) in SHIPPED_SECRETS {
        let matching: Vec<&String> = errors.iter().filter(|e| e.contains(&format!("\"{name}\" is not set"))).collect();
        assert!(!matching.is_empty(), "no error for {name}: {errors:#?}");
        for e in matching {
            let location = e.split(": ").next().unwrap_or_default();
            assert!(location.split(':').count() == 3, "{e} is not file:line:col");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check-config", "-c", "vigil.yaml"])
        .env_clear()
        .output()
        .expect("run vigil");
    assert_eq!(out.status.code(), Some(1), "check-config without secrets must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Two receivers share VIGIL_SMTP_PASSWORD: one error for each place it is read.
    assert_eq!(stderr.matches("is not set").count(), SHIPPED_SECRETS.len() + 1, "{stderr}");
}

/// A placeholder, a short key or an empty file is refused with its place, and the message
/// never quotes the secret; two heartbeats may not share a token.
#[test]
fn weak_secrets_are_refused_without_being_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("empty-token"), "\n").expect("write");
    let root = dir.path().join("vigil.yaml");
    let short_key = "0123456789abcdef-short";
    std::fs::write(
        &root,
        format!(
            "server: {{ admin_token_file: empty-token }}\n\
             alerting: {{ ack_key: {short_key} }}\n\
             systems:\n\
             \x20 - id: jobs\n\
             \x20   checks:\n\
             \x20     - {{ id: a, heartbeat: {{ token: replace-with-a-long-random-token, period: 1h }} }}\n\
             \x20     - {{ id: b, heartbeat: {{ token: shared-token-0123456789, period: 1h }} }}\n\
             \x20     - {{ id: c, heartbeat: {{ token: shared-token-0123456789, period: 1h }} }}\n"
        ),
    )
    .expect("write config");
    let errors = match vigil::config::load_with_env(&root, &|_| None) {
        Ok(_) => panic!("weak secrets were accepted"),
        Err(e) => e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
    };
    let expect = [
        ":1:29: server.admin_token_file: is empty",
        ":2:22: alerting.ack_key: is 22 bytes long: it must be at least 32",
        ":6:38: systems[0].checks[0].heartbeat.token: contains \"replace-with\"",
        ":8:38: systems[0].checks[2].heartbeat.token: the same token as the heartbeat at",
    ];
    for part in expect {
        assert!(errors.iter().any(|e| e.contains(part)), "no error like {part:?} in {errors:#?}");
    }
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    for e in &errors {
        assert!(!e.contains(short_key) && !e.contains("shared-token-0123456789"), "a secret is quoted: {e}");
    }
}

/// Issue #13, item 3: an error about a value that came from `${…}` does not quote it, be it
/// found by validation or by the decoder.
#[test]
fn errors_never_quote_a_value_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("vigil.yaml");
    std::fs::write(
        &root,
        "defaults: { interval: \"${VIGIL_INTERVAL}\" }\nscheduler: { max_concurrent_probes: \"${VIGIL_PROBES}\" }\nsystems: []\n",
    )
    .expect("write");
    let env = |name: &str| match name {
        "VIGIL_INTERVAL" => Some("soon-Kz7canaryQ".to_string()),
        "VIGIL_PROBES" => Some("many-Kz7canaryQ".to_string()),
        _ => None,
    };
    let errors = match vigil::config::load_with_env(&root, &env) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert!(errors.contains("(the value from the environment)"), "the decoder's error: {errors}");
    assert!(!errors.contains("Kz7canaryQ"), "{errors}");
    // Validation's own error, once the document decodes.
    std::fs::write(&root, "defaults: { interval: \"${VIGIL_INTERVAL}\" }\nsystems: []\n").expect("write");
    let errors = match vigil::config::load_with_env(&root, &env) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert!(errors.contains("defaults.interval: \"(the value from the environment)\" is not a duration"), "{errors}");
    assert!(!errors.contains("Kz7canaryQ"), "{errors}");
}
