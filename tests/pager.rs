//! The pager tells the truth (issue #16, items 4–7): a fallback channel that sticks and
//! switches on time, flapping detection that survives reloads and restarts, and reloads
//! that close what they remove — real daemon, loopback targets, a webhook sink.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use vigil::model::State;

const WAIT: Duration = Duration::from_secs(30);

/// Issue #16, item 7: with the first channel failing throughout, the first alert switches
/// to the second channel when `fallback_after` is over (not at the next retry after it), a
/// later alert goes straight to the second channel, and the first channel gets the
/// notifications again only once it has answered a background try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_sticks_and_switches_on_time() {
    let (a, b) = (web_server(None).await, web_server(None).await);
    let hooks = HookSink::start().await;
    let first_port = free_port(); // nobody listens there yet: every try is refused
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "receivers:\n  - id: team\n    fallback_after: 4s\n    channels:\n      - webhook: {{ url: \"http://127.0.0.1:{first_port}/first\" }}\n      - webhook: {{ url: \"http://{h}/second\" }}\n\
         routes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: web\n    checks:\n      - {{ id: a, http: {{ url: \"http://{a}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n      - {{ id: b, http: {{ url: \"http://{b}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
        h = hooks.addr,
        a = a.addr,
        b = b.addr
    );
    write_config(dir.path(), &config);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("web/a", State::Up), ("web/b", State::Up)]).await;
    let on_second = |target: &'static str, event: &'static str| {
        move |h: &[Hook]| {
            h.iter().any(|x| x.path == "/second" && x.body["incident"]["target"] == target && x.body["event"] == event)
        }
    };

    a.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("web/a", State::Down)]).await;
    let down = Instant::now();
    hooks.wait_until(WAIT, "a's alert on the second channel", on_second("web/a", "firing")).await;
    let switched = down.elapsed();
    // Tries at 0 s, ~1 s and ~3 s, then the switch at 4 s; before the fix the next retry (~7 s).
    assert!(switched < Duration::from_millis(5_500), "switched after {switched:?}, fallback_after is 4 s");

    tokio::time::sleep(Duration::from_secs(5)).await; // past fallback_after since the switch
    b.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("web/b", State::Down)]).await;
    let down = Instant::now();
    hooks.wait_until(WAIT, "b's alert on the second channel", on_second("web/b", "firing")).await;
    let took = down.elapsed();
    assert!(took < Duration::from_secs(2), "the fallback sticks: b's alert took {took:?}");

    // The first channel comes back: the next notification still goes to the second channel
    // (it is the one that works) and a copy tries the first in the background …
    let first = HookSink::start_on(first_port).await;
    b.switch.store(200, Ordering::SeqCst);
    hooks.wait_until(WAIT, "b's resolution on the second channel", on_second("web/b", "resolved")).await;
    first
        .wait_until(WAIT, "the background try of the first channel", |h| {
            h.iter().any(|x| x.body["incident"]["target"] == "web/b" && x.body["event"] == "resolved")
        })
        .await;
    // … which answered, so the next one goes to the first channel again, and only there.
    a.switch.store(200, Ordering::SeqCst);
    first
        .wait_until(WAIT, "a's resolution on the first channel", |h| {
            h.iter().any(|x| x.body["incident"]["target"] == "web/a" && x.body["event"] == "resolved")
        })
        .await;
    app.settle().await;
    assert!(
        !hooks.hooks().iter().any(|x| x.body["incident"]["target"] == "web/a" && x.body["event"] == "resolved"),
        "back on the first channel, the second is not used"
    );
    app.shutdown().await;
}

/// Issue #16, item 4: flapping detection survives a reload that keeps the target and a
/// restart (it is resumed from the stored state changes): a still-flapping target is not
/// paged again and no second "flapping" notice goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_survives_reloads_and_restarts() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &flapping_config(&hooks, web.addr));
    let app = start_daemon(dir.path()).await;
    wait_states(&mut app.subscribe(), WAIT, &[("network/sin-ho", State::Up)]).await;
    flip(&web, &mut app.subscribe(), 0, 5).await; // the fourth change starts flapping; down at the end
    app.settle().await;
    let told = outbox_rows(dir.path(), "");
    assert_eq!(outbox_rows(dir.path(), "flapping-"), 1, "one flapping notice");

    app.reload().await.expect("a reload without changes");
    flip(&web, &mut app.subscribe(), 5, 2).await; // up, down: still flapping
    app.settle().await;
    assert_eq!(outbox_rows(dir.path(), ""), told, "a reload does not reset flapping");
    app.shutdown().await;

    let app = start_daemon(dir.path()).await;
    wait_states(&mut app.subscribe(), WAIT, &[("network/sin-ho", State::Down)]).await;
    flip(&web, &mut app.subscribe(), 7, 2).await; // up, down
    app.settle().await;
    assert_eq!(outbox_rows(dir.path(), ""), told, "nor does a restart");
    app.shutdown().await;
}

/// Issue #16, item 2 (the bound): a target that never stops flapping — down, with a short
/// blip up every few minutes — has its outage announced after at most three flapping
/// windows, although the flapping never ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_stops_flapping_is_still_paged() {
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &flapping_config(&hooks, web.addr));
    let clock = vigil::model::TestClock::new();
    let app = start_daemon_with_clock(dir.path(), clock.clone()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("network/sin-ho", State::Up)]).await;
    let mut flip_to = async |status: u16, want: State| {
        web.switch.store(status, Ordering::SeqCst);
        wait_for(&mut events, WAIT, |e| e.transition.is_some_and(|t| t.to == want)).await;
    };
    for _ in 0..2 {
        flip_to(503, State::Down).await;
        flip_to(200, State::Up).await;
    }
    flip_to(503, State::Down).await; // flapping since the fourth change; down, quietly
    let db = dir.path().join("vigil.db");
    let latest_quiet = || {
        let open = vigil::store::query::incidents(&db, true, None, 10).expect("incidents");
        open.first().map(|i| (i.id, i.told.is_empty())).expect("an open incident")
    };
    for _ in 0..3 {
        clock.advance(Duration::from_secs(9 * 60)); // never a whole window without a change
        flip_to(200, State::Up).await;
        flip_to(503, State::Down).await;
        app.settle().await;
        assert!(latest_quiet().1, "within three windows of flapping, the outage stays quiet");
    }
    clock.advance(Duration::from_secs(4 * 60)); // 31 min since the flapping began
    app.settle().await;
    let (id, quiet) = latest_quiet();
    assert!(!quiet, "the outage is announced although the target still flaps");
    assert_eq!(outbox_rows(dir.path(), &format!("incident-{id}-firing-")), 1);
    app.shutdown().await;
}

/// The configuration of `reload_reconciles_incidents`: `gone/a`, `moved/<b>` and `kept/c`,
/// each on its own test server; `kept` goes to receiver `<ops>`, the rest to `team`.
fn reconcile_config(hooks: &HookSink, servers: [std::net::SocketAddr; 3], v2: bool) -> String {
    let (b, ops, rename, gone) = if v2 {
        ("b2", "ops2", ", renamed_from: b", String::new())
    } else {
        (
            "b",
            "ops",
            "",
            format!(
                "  - id: gone\n    checks:\n      - {{ id: a, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
                servers[0]
            ),
        )
    };
    format!(
        "receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{h}/team\" }} }} ] }}\n  - {{ id: {ops}, channels: [ {{ webhook: {{ url: \"http://{h}/{ops}\" }} }} ] }}\n\
         routes:\n  - {{ receivers: [{ops}], match: {{ system: kept }} }}\n  - {{ receivers: [team] }}\n\
         systems:\n{gone}  - id: moved\n    checks:\n      - {{ id: {b}, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"]{rename} }}\n  - id: kept\n    checks:\n      - {{ id: c, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
        servers[1],
        servers[2],
        h = hooks.addr
    )
}

/// Issue #16, items 5 and 6: a reload that removes a check closes its open incident (the
/// team is told it is no longer monitored), one that renames a check with `renamed_from`
/// keeps its incident and history under the new id, and a removed (renamed) receiver still
/// gets the resolution of the incident it was paged about — the reload answer warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reconciles_incidents_and_receivers() {
    let servers = [web_server(None).await, web_server(None).await, web_server(None).await];
    let addrs = [servers[0].addr, servers[1].addr, servers[2].addr];
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &reconcile_config(&hooks, addrs, false));
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    wait_states(&mut events, WAIT, &[("gone/a", State::Up), ("moved/b", State::Up), ("kept/c", State::Up)]).await;
    servers.iter().for_each(|s| s.switch.store(503, Ordering::SeqCst));
    wait_states(&mut events, WAIT, &[("gone/a", State::Down), ("moved/b", State::Down), ("kept/c", State::Down)]).await;
    let fired = |h: &[Hook], path: &str, target: &str, event: &str| {
        h.iter().any(|x| x.path == path && x.body["incident"]["target"] == target && x.body["event"] == event)
    };
    hooks
        .wait_until(WAIT, "three alerts", |h| {
            fired(h, "/team", "gone/a", "firing")
                && fired(h, "/team", "moved/b", "firing")
                && fired(h, "/ops", "kept/c", "firing")
        })
        .await;
    let db = dir.path().join("vigil.db");
    let before = vigil::store::query::incidents(&db, true, Some("moved"), 10).expect("incidents");
    let moved_id = before.first().expect("moved/b's incident").id;

    write_config(dir.path(), &reconcile_config(&hooks, addrs, true));
    let (status, answer) = request("POST", &format!("http://{}/-/reload", app.addr()), Some(TOKEN)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("warning: receiver \"ops\" was removed while 1 open incident"), "{answer}");

    // The removed check: closed, and the team told it is no longer monitored.
    let got = hooks.wait_until(WAIT, "gone/a closed", |h| fired(h, "/team", "gone/a", "resolved")).await;
    let closed = got.iter().find(|x| fired(std::slice::from_ref(x), "/team", "gone/a", "resolved")).expect("closed");
    assert!(closed.body["summary"].as_str().is_some_and(|s| s.contains("gỡ khỏi cấu hình")), "{:?}", closed.body);
    app.settle().await;
    let open = vigil::store::query::incidents(&db, true, None, 10).expect("incidents");
    let mut open_targets: Vec<&str> = open.iter().map(|i| i.target.as_str()).collect();
    open_targets.sort();
    assert_eq!(open_targets, ["kept/c", "moved/b2"], "the removed check's incident is closed, the renamed one moved");
    assert_eq!(open.iter().find(|i| i.target == "moved/b2").map(|i| i.id), Some(moved_id), "the same incident");
    let metrics = get(&format!("http://{}/metrics", app.addr())).await;
    assert_ne!(sample(&metrics, "vigil_incidents_open", &[r#"system="gone""#]), Some(1.0), "no orphan in the gauge");
    let history = vigil::store::query::changes(&db, "moved/b2").expect("changes");
    assert!(history.iter().any(|c| c.to == "down"), "the renamed check keeps its history: {history:?}");
    assert!(vigil::store::query::changes(&db, "moved/b").expect("changes").is_empty(), "nothing left under the old id");

    // Recoveries: the renamed check's resolution to the team; the renamed receiver's
    // incident resolved through the channel it was paged on.
    servers.iter().for_each(|s| s.switch.store(200, Ordering::SeqCst));
    hooks
        .wait_until(WAIT, "both resolutions", |h| {
            fired(h, "/team", "moved/b2", "resolved") && fired(h, "/ops", "kept/c", "resolved")
        })
        .await;
    app.shutdown().await;

    // A restart brings nothing back.
    let app = start_daemon(dir.path()).await;
    app.settle().await;
    assert!(vigil::store::query::incidents(&db, true, None, 10).expect("incidents").is_empty());
    app.shutdown().await;
}

/// A pseudo-random phase (xorshift) below `max_ms`, so rounds start at varied points of
/// the probes' schedules.
fn next_phase(seed: &mut u64, max_ms: u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    Duration::from_millis(*seed % max_ms)
}

/// Issue #16, item 1 (the slow parent): ten gateways probed every second behind a router
/// probed every ten seconds fail at the same instant, 20 rounds at random phases. Each
/// gateway's failure waits for a probe of the router made now, so no gateway is ever
/// paged; the router is paged once per round with every gateway listed as affected. The
/// gateways' answers after the outage bring the router's next probe forward.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_cause_first_when_the_parent_is_probed_ten_times_slower() {
    const ROUNDS: usize = 20;
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let targets: String =
        (1..=10).map(|i| format!("          - {{ name: gw{i:02}, url: \"http://{}/switch\" }}\n", web.addr)).collect();
    let config = format!(
        "alerting: {{ flapping: {{ changes: 1000, window: 1m }} }}\n\
         receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/hook\" }} }} ] }}\nroutes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: core\n    checks:\n      - {{ id: router, interval: 10s, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n  - id: communes\n    checks:\n      - id: gateways\n        http: {{}}\n        conditions: [\"[STATUS] == 200\"]\n        depends_on: [core/router]\n        targets:\n{targets}",
        hooks.addr, web.addr
    );
    write_config(dir.path(), &config);
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let gateways: Vec<String> = (1..=10).map(|i| format!("communes/gateways/gw{i:02}")).collect();
    let all = |gw: State, router: State| {
        let mut s: Vec<(&str, State)> = gateways.iter().map(|id| (id.as_str(), gw)).collect();
        s.push(("core/router", router));
        s
    };
    wait_states(&mut events, WAIT, &all(State::Up, State::Up)).await;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..ROUNDS {
        tokio::time::sleep(next_phase(&mut seed, 1_000)).await;
        web.switch.store(503, Ordering::SeqCst);
        wait_states(&mut events, WAIT, &all(State::Unreachable, State::Down)).await;
        web.switch.store(200, Ordering::SeqCst);
        wait_states(&mut events, WAIT, &all(State::Up, State::Up)).await;
    }
    app.settle().await;
    let incidents = vigil::store::query::incidents(dir.path().join("vigil.db"), false, None, 1000).expect("incidents");
    let paged: Vec<&str> = incidents.iter().map(|i| i.target.as_str()).filter(|t| *t != "core/router").collect();
    assert!(paged.is_empty(), "no gateway was paged: {paged:?}");
    assert_eq!(incidents.len(), ROUNDS, "the router, once per round");
    for i in &incidents {
        let mut affected = i.affected.clone();
        affected.sort();
        assert_eq!(affected, gateways, "incident {} lists every gateway as also affected", i.id);
    }
    assert_eq!(outbox_rows(dir.path(), "-firing-"), ROUNDS, "one page per round");
    let metrics = get(&format!("http://{}/metrics", app.addr())).await;
    let parent_down = sample(&metrics, "vigil_dependency_checks_total", &[r#"result="parent_down""#]);
    // Mostly the gateways' failures come first and wait; in a round where the router's own
    // tick comes first, nothing needs to wait.
    assert!(parent_down.is_some_and(|n| n >= 1.0), "held failures counted: {parent_down:?}");
    app.shutdown().await;
}

/// Issue #16, item 1 (monitor blind): Vigil's uplink and two applications fail at the same
/// instant, 20 rounds at random phases: only "monitor blind" is ever paged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_monitor_blind_when_the_uplink_and_applications_fail_together() {
    const ROUNDS: usize = 20;
    let web = web_server(None).await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |id: &str| {
        format!(
            "      - {{ id: {id}, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n",
            web.addr
        )
    };
    let text = format!(
        "instance: {{ name: test, location: test-lab, uplink: [core/uplink] }}\n\
         server: {{ listen: \"127.0.0.1:0\", admin_token: \"{TOKEN}\" }}\n\
         storage: {{ path: \"{db}\" }}\n\
         defaults: {{ interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1 }}\n\
         alerting: {{ flapping: {{ changes: 1000, window: 1m }} }}\n\
         receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{h}/hook\" }} }} ] }}\nroutes:\n  - {{ receivers: [team] }}\n\
         systems:\n  - id: core\n    checks:\n{uplink}  - id: procedures\n    checks:\n{portal}  - id: documents\n    checks:\n{web}",
        db = dir.path().join("vigil.db").display(),
        h = hooks.addr,
        uplink = check("uplink"),
        portal = check("portal"),
        web = check("web"),
    );
    std::fs::write(dir.path().join("vigil.yaml"), text).expect("write config");
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let all = |apps: State, uplink: State| {
        vec![("core/uplink", uplink), ("procedures/portal", apps), ("documents/web", apps)]
    };
    wait_states(&mut events, WAIT, &all(State::Up, State::Up)).await;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..ROUNDS {
        tokio::time::sleep(next_phase(&mut seed, 1_000)).await;
        web.switch.store(503, Ordering::SeqCst);
        wait_states(&mut events, WAIT, &all(State::Unknown, State::Down)).await;
        web.switch.store(200, Ordering::SeqCst);
        wait_states(&mut events, WAIT, &all(State::Up, State::Up)).await;
    }
    app.settle().await;
    let incidents = vigil::store::query::incidents(dir.path().join("vigil.db"), false, None, 1000).expect("incidents");
    let paged: Vec<&str> = incidents.iter().map(|i| i.target.as_str()).filter(|t| *t != "core/uplink").collect();
    assert!(paged.is_empty(), "no application was paged: {paged:?}");
    assert_eq!(incidents.len(), ROUNDS, "monitor blind, once per round");
    assert!(incidents.iter().all(|i| i.monitor_blind), "each one says the monitor is blind");
    assert_eq!(outbox_rows(dir.path(), "-firing-"), ROUNDS, "one page per round");
    app.shutdown().await;
}

/// Issue #16, item 1 (the settle window): three gateways fail and are paged while their
/// router still answers; the router fails seconds later. The gateways' incidents are
/// re-attributed to it, once: one "update" of the router's incident lists them as also
/// affected, each gateway's incident says why (on its check page too), and nothing more
/// is sent about them while the router is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_cause_failing_just_after_takes_its_dependents_under_it() {
    let (router, gateways) = (web_server(None).await, web_server(None).await);
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let targets: String = (1..=3)
        .map(|i| format!("          - {{ name: gw{i:02}, url: \"http://{}/switch\" }}\n", gateways.addr))
        .collect();
    let config = format!(
        "receivers:\n  - {{ id: team, channels: [ {{ webhook: {{ url: \"http://{}/hook\" }} }} ] }}\nroutes:\n  - {{ receivers: [team], repeat_every: 1m }}\n\
         systems:\n  - id: core\n    checks:\n      - {{ id: router, http: {{ url: \"http://{}/switch\" }}, conditions: [\"[STATUS] == 200\"] }}\n  - id: communes\n    checks:\n      - id: gateways\n        http: {{}}\n        conditions: [\"[STATUS] == 200\"]\n        depends_on: [core/router]\n        targets:\n{targets}",
        hooks.addr, router.addr
    );
    write_config(dir.path(), &config);
    let clock = vigil::model::TestClock::new();
    let app = start_daemon_with_clock(dir.path(), clock.clone()).await;
    let mut events = app.subscribe();
    let ids = ["communes/gateways/gw01", "communes/gateways/gw02", "communes/gateways/gw03"];
    let each = |s: State| ids.iter().map(|id| (*id, s)).collect::<Vec<_>>();
    wait_states(&mut events, WAIT, &[each(State::Up), vec![("core/router", State::Up)]].concat()).await;
    gateways.switch.store(503, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &each(State::Down)).await;
    router.switch.store(503, Ordering::SeqCst);
    // The gateways stay down (their own outage began first); the router's incident takes them.
    wait_states(&mut events, WAIT, &[("core/router", State::Down)]).await;
    app.settle().await;
    assert_eq!(outbox_rows(dir.path(), "-firing-"), 4, "three gateways, then the router");
    assert_eq!(outbox_rows(dir.path(), "-update-"), 0, "the update waits for the others");
    clock.advance(Duration::from_secs(11));
    app.settle().await;
    assert_eq!(outbox_rows(dir.path(), "-update-"), 1, "one update for the three");
    let got = hooks.wait_until(WAIT, "the update", |h| h.iter().any(|x| x.body["event"] == "update")).await;
    let update = got.iter().find(|x| x.body["event"] == "update").expect("update");
    assert_eq!(update.body["incident"]["target"], "core/router");
    let mut affected: Vec<String> = serde_json::from_value(update.body["incident"]["affected"].clone()).expect("list");
    affected.sort();
    assert_eq!(affected, ids, "the router's incident lists the gateways");
    let db = dir.path().join("vigil.db");
    let open = vigil::store::query::incidents(&db, true, Some("communes"), 10).expect("incidents");
    assert_eq!(open.len(), 3, "the gateways' incidents stay open (they still fail)");
    for i in &open {
        let decisions: Vec<_> = i.why.iter().map(|w| w.decision).collect();
        use vigil::model::incident::Decision::*;
        assert_eq!(decisions, [Announced, Reattributed], "incident {}: {:?}", i.id, i.why);
    }
    let page = get(&format!("http://{}/checks/communes/gateways?lang=en", app.addr())).await;
    assert!(page.contains("Re-attributed to the root cause, core&#x2f;router"), "the check page says why: {page}");
    // Nothing more about the gateways while the router is down: no reminder, no second update.
    clock.advance(Duration::from_secs(120));
    app.settle().await;
    assert_eq!(outbox_rows(dir.path(), "-update-"), 1, "once");
    let reminded: Vec<String> =
        vigil::store::query::deliveries(&db).expect("outbox").into_iter().map(|(key, _, _)| key).collect();
    let about_gateways: Vec<&String> = reminded
        .iter()
        .filter(|k| k.contains("-reminder-") && open.iter().any(|i| k.starts_with(&format!("incident-{}-", i.id))))
        .collect();
    assert!(about_gateways.is_empty(), "no reminders about the gateways: {about_gateways:?}");
    assert!(reminded.iter().any(|k| k.contains("-reminder-")), "the router's incident is reminded");
    app.shutdown().await;
}
