//! Issue #20, item 6: `--shard i/n` — independent instances that cover one configuration,
//! each target owned by exactly one, root cause still judged when a target and its parent
//! land on different shards.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use vigil::app::{App, ConfigSource, Overrides};
use vigil::config::shard::{Shard, owner};

/// The shipped example's secrets (check-config reads them from the environment).
const SECRETS: &[&str] = &[
    "VIGIL_ACK_KEY",
    "VIGIL_HEARTBEAT_DOCUMENTS_BACKUP",
    "VIGIL_HEARTBEAT_REPORTING",
    "VIGIL_SMTP_PASSWORD",
    "VIGIL_SMS_WEBHOOK_SECRET",
    "VIGIL_PORTAL_PASSWORD",
    "VIGIL_SNMP_AUTH",
    "VIGIL_SNMP_PRIV",
    "VIGIL_VANTAGE_SIN_HO",
    "VIGIL_VANTAGE_MUONG_TE",
    "VIGIL_VANTAGE_TAN_PHONG",
];

/// `vigil check-config --shard i/n` over the shipped example: (owned targets, helpers).
fn shard_listing(shard: &str) -> (Vec<String>, Vec<String>) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    command.args(["check-config", "-c", "vigil.yaml", "--shard", shard]);
    for name in SECRETS {
        command.env(name, format!("{}-0123456789abcdef0123456789abcdef", name.to_lowercase()));
    }
    let out = command.output().expect("vigil check-config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let pick = |prefix: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|l| l.split(' ').next().unwrap_or(l).to_string())
            .collect()
    };
    (pick("target "), pick("helper "))
}

#[test]
fn shards_cover_the_shipped_config_exactly_once_and_a_fourth_takes_a_quarter() {
    let mut owners: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for i in 0..3 {
        let (owned, helpers) = shard_listing(&format!("{i}/3"));
        assert!(!owned.is_empty(), "shard {i}/3 runs something");
        for id in owned {
            owners.entry(id).or_default().push(i);
        }
        // A helper is a parent another shard owns.
        assert!(helpers.iter().all(|h| owner(h, 3) != i), "{helpers:?}");
    }
    let (all, _) = shard_listing("0/1");
    assert_eq!(
        owners.keys().cloned().collect::<Vec<_>>(),
        {
            let mut a = all.clone();
            a.sort();
            a
        },
        "every target"
    );
    assert!(owners.values().all(|o| o.len() == 1), "exactly once: {owners:?}");
    // Four shards: only the targets the new shard wins move.
    let moved: Vec<&String> = all.iter().filter(|id| owner(id, 3) != owner(id, 4)).collect();
    assert!(moved.iter().all(|id| owner(id, 4) == 3), "nothing moves between the old shards");
    let share = moved.len() as f64 / all.len() as f64;
    eprintln!("{} of {} targets move from 3 to 4 shards ({:.0} %)", moved.len(), all.len(), share * 100.0);
    assert!((0.12..=0.38).contains(&share), "about a quarter: {share}");
}

/// The first `system/check-N` id that `shard` of 2 owns.
fn id_owned_by(prefix: &str, shard: usize) -> String {
    (0..).map(|n| format!("{prefix}-{n}")).find(|id| owner(id, 2) == shard).expect("an id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_on_another_shard_still_decides_the_root_cause() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let router = id_owned_by("net/router", 0);
    let portal = id_owned_by("app/portal", 1);
    let check = |id: &str| id.split('/').nth(1).unwrap_or_default().to_string();
    let mut apps = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..2 {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "instance: {{ name: shard-{i} }}\n\
             server: {{ listen: \"127.0.0.1:0\" }}\n\
             storage: {{ path: \"{}\" }}\n\
             defaults: {{ interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1 }}\n\
             receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/hook\" }} }} ] }}\nroutes:\n  - {{ receivers: [team] }}\n\
             systems:\n  - id: net\n    checks: [ {{ id: {}, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }} ]\n\
             \x20 - id: app\n    checks: [ {{ id: {}, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"], depends_on: [{router}] }} ]\n",
            dir.path().join("vigil.db").display(),
            hooks.addr,
            check(&router),
            web.addr,
            check(&portal),
            web.addr,
        );
        let source = ConfigSource::Text { path: dir.path().join("vigil.yaml"), text, env: Vec::new() };
        let shard = Some(Shard { index: i, count: 2 });
        apps.push(App::start(source, Overrides { shard, ..Overrides::default() }).await.expect("shard starts"));
        dirs.push(dir);
    }
    // Each shard exports only what it owns.
    for (i, app) in apps.iter().enumerate() {
        let base = format!("http://{}", app.addr());
        let (own, other) = if i == 0 { (&router, &portal) } else { (&portal, &router) };
        let metrics = metrics_until(&base, "its own target", |m| {
            sample(m, "vigil_check_up", &[&format!("check=\"{}\"", check(own))]) == Some(1.0)
        })
        .await;
        assert_eq!(sample(&metrics, "vigil_check_up", &[&format!("check=\"{}\"", check(other))]), None, "shard {i}");
    }

    // Both fail at once: the router's owner pages the router; the portal's shard, which
    // watches the router as a helper, sees the portal unreachable and pages nothing.
    web.switch.store(503, Ordering::SeqCst);
    let about =
        |h: &Hook, target: &str, event: &str| h.body["incident"]["target"] == target && h.body["event"] == event;
    hooks
        .wait_until(Duration::from_secs(20), "the router's page", |h| h.iter().any(|x| about(x, &router, "firing")))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for app in &apps {
        app.settle().await;
    }
    let seen = hooks.hooks();
    assert_eq!(seen.iter().filter(|h| about(h, &router, "firing")).count(), 1, "the router is paged once");
    assert_eq!(seen.iter().filter(|h| about(h, &portal, "firing")).count(), 0, "its dependant is not paged");
    let held = vigil::store::query::incidents(dirs[1].path().join("vigil.db"), true, None, 10).expect("incidents");
    let helper = held.iter().find(|i| i.target == router).expect("the helper's incident is kept on shard 1");
    assert!(helper.told.is_empty(), "and not announced there");
    assert!(helper.why.iter().any(|w| w.decision == vigil::model::incident::Decision::OtherShard), "{:?}", helper.why);

    web.switch.store(200, Ordering::SeqCst);
    hooks
        .wait_until(Duration::from_secs(20), "the router's resolution", |h| {
            h.iter().any(|x| about(x, &router, "resolved"))
        })
        .await;
    for app in &apps {
        app.settle().await;
    }
    assert_eq!(hooks.hooks().iter().filter(|h| about(h, &router, "resolved")).count(), 1);
    for app in apps {
        app.shutdown().await;
    }
}
