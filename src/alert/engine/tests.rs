//! The incident engine's scenarios.

use super::*;
use crate::config::alerting::{Escalation, Matcher};

fn route(matchers: &[(&str, &str)], receivers: &[&str]) -> Route {
    Route {
        matchers: matchers
            .iter()
            .map(|(l, p)| Matcher { label: l.to_string(), pattern: glob::Pattern::new(p).expect("pattern") })
            .collect(),
        receivers: receivers.iter().map(|r| r.to_string()).collect(),
        continue_matching: false,
        group_by: Vec::new(),
        repeat_every: None,
        escalate: None,
        send_resolved: true,
        group_wait: Duration::from_secs(10),
    }
}

fn opening(target: &str, severity: Severity) -> Opening {
    let (system, check) = target.split_once('/').expect("system/check");
    Opening {
        target: target.into(),
        system: system.into(),
        system_name: system.into(),
        check: check.into(),
        check_name: check.into(),
        target_name: check.into(),
        kind: "http".into(),
        severity,
        started_ms: 0,
        cause: "[STATUS] (503) == 200".into(),
        reason: Some("http_status".into()),
        failed_conditions: vec!["[STATUS] (503) == 200".into()],
        affected: Vec::new(),
        runbook: None,
        monitor_blind: false,
        vantage: None,
        cause_class: None,
    }
}

fn notified(effects: &[Effect]) -> Vec<(String, EventKind)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(n) => Some((n.receiver.clone(), n.event)),
            _ => None,
        })
        .collect()
}

#[test]
fn routes_pick_receivers_in_order() {
    let mut first = route(&[("severity", "critical")], &["team"]);
    first.continue_matching = true;
    let routes = vec![first, route(&[("system", "proc*")], &["managers"]), route(&[], &["everyone"])];
    let routing = Routing { routes: &routes, location: "dc" };
    let mut engine = Engine::default();
    let effects = engine.open(opening("procedures/portal", Severity::Critical), routing, 10, false);
    assert_eq!(notified(&effects), [("team".into(), EventKind::Firing), ("managers".into(), EventKind::Firing)]);
    let effects = engine.open(opening("network/router", Severity::Warning), routing, 10, false);
    assert_eq!(notified(&effects), [("everyone".into(), EventKind::Firing)]);
}

#[test]
fn reminders_stop_after_ack_and_resolution_reaches_escalated_receivers() {
    let mut r = route(&[], &["team"]);
    r.repeat_every = Some(Duration::from_secs(60));
    r.escalate = Some(Escalation { after: Duration::from_secs(120), to: vec!["managers".into()] });
    let routes = vec![r];
    let routing = Routing { routes: &routes, location: "" };
    let mut engine = Engine::default();
    engine.open(opening("web/portal", Severity::Critical), routing, 0, false);
    let scenario: &[(i64, &[(&str, EventKind)])] = &[
        (30_000, &[]),
        (60_000, &[("team", EventKind::Reminder)]),
        (90_000, &[]),
        (120_000, &[("managers", EventKind::Escalation), ("team", EventKind::Reminder)]),
        (150_000, &[]),
    ];
    for (now, expected) in scenario {
        let got = notified(&engine.tick(routing, *now, &|_| false));
        let want: Vec<(String, EventKind)> = expected.iter().map(|(r, e)| (r.to_string(), *e)).collect();
        assert_eq!(got, want, "at {now} ms");
    }
    let id = engine.open_incident("web/portal").expect("open").id;
    engine.ack(id, "duty", "on it", 160_000).expect("ack");
    assert!(notified(&engine.tick(routing, 400_000, &|_| false)).is_empty(), "no reminder after ack");
    let resolved = notified(&engine.resolve("web/portal", 500_000));
    assert_eq!(resolved, [("team".into(), EventKind::Resolved), ("managers".into(), EventKind::Resolved)]);
}

#[test]
fn flapping_targets_go_quiet() {
    let routes = vec![route(&[], &["team"])];
    let routing = Routing { routes: &routes, location: "" };
    let mut engine = Engine::default();
    let note = notified(&engine.flapping(opening("net/gw", Severity::Critical), routing, 5));
    assert_eq!(note, [("team".into(), EventKind::Flapping)]);
    let quiet = engine.open(opening("net/gw", Severity::Critical), routing, 6, true);
    assert!(notified(&quiet).is_empty(), "no alert while flapping");
    assert!(notified(&engine.resolve("net/gw", 7)).is_empty(), "nobody told, nobody to tell of the end");
}

#[test]
fn grouped_incidents_are_announced_once() {
    let mut r = route(&[], &["team"]);
    r.group_by = vec!["system".into(), "check".into()];
    let routes = vec![r];
    let routing = Routing { routes: &routes, location: "" };
    let mut engine = Engine::new(Vec::new(), 0);
    let mut quiet = Vec::new();
    for t in ["net/gw", "net/gw2", "net/gw3"] {
        let mut o = opening(t, Severity::Critical);
        o.check = "gateways".into();
        quiet.extend(engine.open(o, routing, 0, false));
    }
    assert!(notified(&quiet).is_empty(), "nothing before the group wait is over");
    // One of them recovers before the announcement: it is left out, silently.
    assert!(notified(&engine.resolve("net/gw3", 5_000)).is_empty());
    assert!(notified(&engine.tick(routing, 9_999, &|_| false)).is_empty());
    let effects = engine.tick(routing, 10_000, &|_| false);
    let notes: Vec<&Notification> =
        effects.iter().filter_map(|e| if let Effect::Notify(n) = e { Some(n) } else { None }).collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].group.iter().map(|g| g.target.as_str()).collect::<Vec<_>>(), ["net/gw", "net/gw2"]);
    assert_eq!(notes[0].key, "group-1-firing-team");
    // Each resolution threads under the group's announcement.
    let resolved = engine.resolve("net/gw2", 20_000);
    let Some(Effect::Notify(r)) = resolved.last() else { panic!("resolution") };
    assert_eq!(r.reply_to.as_deref(), Some("group-1-firing-team"));
}

#[test]
fn keys_are_stable_and_distinct() {
    let routes = vec![route(&[], &["team"])];
    let routing = Routing { routes: &routes, location: "" };
    let mut engine = Engine::new(Vec::new(), 41);
    let effects = engine.open(opening("web/portal", Severity::Critical), routing, 0, false);
    let Some(Effect::Notify(n)) = effects.last() else { panic!("a notification") };
    assert_eq!(n.key, "incident-42-firing-team");
    assert_eq!(n.reply_to, None, "the first mail starts the thread");
    let resolved = engine.resolve("web/portal", 5);
    let Some(Effect::Notify(r)) = resolved.last() else { panic!("resolution") };
    assert_eq!(r.reply_to.as_deref(), Some("incident-42-firing-team"));
    engine.open(opening("web/portal", Severity::Critical), routing, 6, false);
    assert!(engine.add_affected(&["web/portal".into()], "web/api").len() == 1);
    assert!(engine.add_affected(&["web/portal".into()], "web/api").is_empty(), "listed once");
}

#[test]
fn a_root_cause_just_after_takes_its_announced_dependents_once() {
    let routes = vec![route(&[("system", "communes")], &["commune-team"]), route(&[], &["core-team"])];
    let routing = Routing { routes: &routes, location: "dc" };
    let mut engine = Engine::default();
    engine.open(opening("communes/gw01", Severity::Critical), routing, 1_000, false);
    engine.open(opening("communes/gw02", Severity::Critical), routing, 1_000, true); // quiet: nobody told
    engine.open(opening("core/router", Severity::Critical), routing, 5_000, false);
    assert_eq!(engine.reattribute("core/router", "communes/gw01", 5_000).len(), 1);
    assert!(engine.reattribute("core/router", "communes/gw01", 5_500).is_empty(), "once");
    assert!(
        engine.reattribute("core/router", "communes/gw02", 5_000).is_empty(),
        "not announced: nothing to take back"
    );
    assert!(notified(&engine.tick(routing, 14_999, &|_| false)).is_empty(), "collecting");
    let update = notified(&engine.tick(routing, 15_000, &|_| false));
    assert_eq!(
        update,
        [("core-team".to_string(), EventKind::Update), ("commune-team".to_string(), EventKind::Update)],
        "one update, to everyone told about the root or the dependent"
    );
    assert!(notified(&engine.tick(routing, 20_000, &|_| false)).is_empty());

    // A root cause failing long after the dependent was announced is a separate story.
    let mut late = Engine::default();
    late.open(opening("communes/gw01", Severity::Critical), routing, 0, false);
    late.open(opening("core/router", Severity::Critical), routing, REATTRIBUTE_WITHIN_MS + 1, false);
    assert!(late.reattribute("core/router", "communes/gw01", REATTRIBUTE_WITHIN_MS + 1).is_empty());
}
