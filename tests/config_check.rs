//! `vigil check-config`: the shipped example is valid, and every invalid fixture under
//! `tests/fixtures/invalid/` reports exactly the errors written in its `# expect:` lines.

use std::path::{Path, PathBuf};

use std::process::Command;
use vigil::config::ProbeSpec;

const FIXTURES: &str = "tests/fixtures/invalid";

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

#[test]
fn shipped_example_is_valid_and_lists_five_systems() {
    let config = vigil::config::load(Path::new("vigil.yaml")).unwrap_or_else(|e| panic!("vigil.yaml is invalid:\n{e}"));
    let ids: Vec<&str> = config.systems.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["procedures", "documents", "e-meeting", "reporting", "network"]);
    let gateways =
        config.systems[4].checks.iter().find(|c| c.id == "commune-gateways").expect("commune gateways check");
    assert_eq!(gateways.targets.len(), 38, "one gateway per commune and ward");
    assert_eq!(gateways.probe.kind(), "icmp");
    let kinds: std::collections::BTreeSet<&str> = config.targets().map(|(_, c, _)| c.probe.kind()).collect();
    assert_eq!(kinds.len(), 7, "the example shows every probe kind: {kinds:?}");
    assert!(gateways.targets.iter().any(|t| t.key.id() == "network/commune-gateways/sin-ho"));
}

#[test]
fn shipped_example_targets_only_reserved_example_names() {
    let config = vigil::config::load(Path::new("vigil.yaml")).expect("valid");
    for (_, check, target) in config.targets() {
        let host = match &check.probe {
            ProbeSpec::Http(_) => {
                url::Url::parse(&target.address).expect("url").host_str().unwrap_or_default().to_string()
            }
            ProbeSpec::Tcp(_) | ProbeSpec::Tls(_) => target.address.rsplit_once(':').expect("host:port").0.to_string(),
            ProbeSpec::Icmp(_) | ProbeSpec::Dns(_) => target.address.clone(),
            ProbeSpec::Exec(e) => {
                e.command.windows(2).find(|w| w[0] == "-H").map(|w| w[1].clone()).expect("plugin -H host")
            }
            ProbeSpec::Heartbeat(_) => continue,
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
    assert!(stdout.contains("systems: 5, checks: 18, targets: 55"), "{stdout}");
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
    std::fs::write(dir.path().join("token"), "file-secret\n").expect("write token");
    let root = dir.path().join("vigil.yaml");
    std::fs::write(&root, "server: { admin_token_file: token }\nsystems: []\n").expect("write config");
    let config = vigil::config::load(&root).expect("valid");
    let token = config.server.admin_token.expect("token read");
    assert_eq!(token.expose(), "file-secret");
    assert!(!format!("{token:?}").contains("file-secret"), "Debug must redact secrets");
}
