//! Issue #20, item 1: the store's whole behaviour, case by case, on both backends — the
//! embedded SQLite file and a real PostgreSQL (Debian's server, initdb in a temporary
//! directory, a loopback port). Each case runs on a store of its own (a fresh file; a fresh
//! database on the one server) and asserts what a restart restores and what the pages,
//! reports and API read back.

mod common;

use std::collections::HashMap;

use vigil::config::maintenance::ApiWindow;
use vigil::model::incident::{Incident, Notification};
use vigil::model::{State, Streak, TargetState};
use vigil::store::forward::{Forwarded, IngestBatch};
use vigil::store::query::Exclusion;
use vigil::store::{
    AuditRecord, ChangeRecord, DeliveryRecord, HeartbeatRecord, Location, Reader, Record, Restored, ResultRecord, Store,
};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_790_000_000_000;

fn result(target: &str, at_ms: i64, health: &'static str, duration_ms: f64, state: State) -> Record {
    Record::Result(ResultRecord {
        target: target.into(),
        at_ms,
        health,
        reason: (health == "down").then_some("http_status"),
        duration_ms,
        message: format!("{health} at {at_ms}"),
        state: TargetState { state, since_ms: at_ms, streak: None },
        day_ms: at_ms - at_ms.rem_euclid(DAY),
        // An ICMP run's echoes ride along with every result here (the smoke graph's data).
        echoes: Some(format!("3:{duration_ms:.2},1.25")),
    })
}

fn change(target: &str, at_ms: i64, from: State, to: State) -> Record {
    Record::Change(ChangeRecord {
        target: target.into(),
        at_ms,
        from,
        to,
        reason: (to == State::Down).then_some("http_status"),
        message: format!("{} → {}", from.as_str(), to.as_str()),
    })
}

fn incident(id: i64, target: &str, started_ms: i64, resolved_ms: Option<i64>) -> Incident {
    serde_json::from_value(serde_json::json!({
        "id": id, "target": target, "system": target.split('/').next().unwrap(), "system_name": "Hệ thống",
        "check": "c", "check_name": "C", "target_name": "T", "kind": "http", "severity": "critical",
        "started_ms": started_ms, "detected_ms": started_ms, "resolved_ms": resolved_ms, "cause": "HTTP 503",
        "reason": "http_status", "failed_conditions": [], "affected": [], "ack": null, "told": [],
        "runbook": null, "reminders": 0, "escalated": false, "last_notified_ms": started_ms
    }))
    .expect("an incident")
}

fn notification(key: &str, incident: &Incident, created_ms: i64) -> Notification {
    serde_json::from_value(serde_json::json!({
        "key": key, "receiver": "team", "event": "firing", "incident": incident, "created_ms": created_ms
    }))
    .expect("a notification")
}

async fn write(store: &Store, records: Vec<Record>) {
    for r in records {
        store.send(r);
    }
    store.flush().await;
}

/// Closes the store and opens it again: what a restart restores.
async fn reopen(store: Store, location: &Location) -> (Store, Restored) {
    store.close().await;
    vigil::store::open(location).expect("the store opens again")
}

async fn results_rollups_and_states(location: Location) {
    let (store, _) = vigil::store::open(&location).expect("open");
    let streak = Streak { worse: true, count: 2, target: State::Down, since_ms: T0 + 2_000 };
    let mut last = result("web/a", T0 + 3_000, "down", 4.0, State::Up);
    if let Record::Result(r) = &mut last {
        r.state.streak = Some(streak);
    }
    write(
        &store,
        vec![
            result("web/a", T0, "up", 3.0, State::Up),
            result("web/a", T0 + 1_000, "up", 40.0, State::Up),
            result("web/a", T0 + 2_000, "unknown", 0.0, State::Up),
            last,
            result("web/b", T0, "up", 7.0, State::Up),
        ],
    )
    .await;
    let (store, restored) = reopen(store, &location).await;
    let a = &restored.states["web/a"];
    assert_eq!((a.state, a.since_ms, a.streak), (State::Up, T0 + 3_000, Some(streak)));
    assert_eq!(restored.states["web/b"].streak, None);
    let reader = Reader::new(&location);
    assert_eq!(reader.result_count("web/a").unwrap(), 4);
    let results = reader.results("web/a", T0 + 1_000).unwrap();
    assert_eq!(results.iter().map(|r| r.at_ms).collect::<Vec<_>>(), [T0 + 1_000, T0 + 2_000, T0 + 3_000]);
    assert_eq!((results[2].health.as_str(), results[2].reason.as_deref()), ("down", Some("http_status")));
    assert_eq!(results[0].duration_ms, 40.0);
    assert_eq!(results[0].echoes.as_deref(), Some("3:40.00,1.25"), "echoes are kept");
    let day = T0 - T0.rem_euclid(DAY);
    let rollups = reader.rollups("web/a", day, day + DAY).unwrap();
    assert_eq!(rollups.len(), 1);
    let r = &rollups[0];
    assert_eq!((r.day_ms, r.runs, r.failures), (day, 4, 1));
    assert_eq!((r.latency_min_ms, r.latency_max_ms), (Some(3.0), Some(40.0)));
    assert!((r.latency_avg_ms.unwrap() - 47.0 / 3.0).abs() < 1e-9, "the unknown result measured nothing: {r:?}");
    assert_eq!(r.latency_p95_ms, Some(50.0), "the bucket holding the 95th percentile");
    assert_eq!(reader.last_watched("web/a").unwrap().map(|w| w.0), Some(T0 + 3_000));
    assert_eq!(reader.last_watched("web/none").unwrap(), None);
    store.close().await;
}

async fn state_changes_and_histories(location: Location) {
    let (store, _) = vigil::store::open(&location).expect("open");
    let now = vigil::model::now_ms();
    write(
        &store,
        vec![
            change("web/a", now - 50_000, State::Unknown, State::Up),
            change("web/a", now - 40_000, State::Up, State::Down),
            change("web/a", now - 30_000, State::Down, State::Up),
            change("web/b", now - 45_000, State::Unknown, State::Degraded),
        ],
    )
    .await;
    let (store, restored) = reopen(store, &location).await;
    assert_eq!(
        restored.flap_changes["web/a"],
        [now - 40_000, now - 30_000],
        "only changes between judged states count (not the first one, from unknown)"
    );
    let reader = Reader::new(&location);
    let changes = reader.changes("web/a").unwrap();
    assert_eq!(changes.iter().map(|c| c.to.as_str()).collect::<Vec<_>>(), ["up", "down", "up"]);
    assert_eq!(changes[1].reason.as_deref(), Some("http_status"));
    let (initial, after) = reader.state_history("web/a", now - 45_000).unwrap();
    assert_eq!(initial, Some(State::Up));
    assert_eq!(after, [(now - 40_000, State::Down), (now - 30_000, State::Up)]);
    let all = reader.state_histories(now - 45_000).unwrap();
    assert_eq!(all["web/a"], (initial, after.clone()));
    assert_eq!(all["web/b"], (Some(State::Degraded), vec![]));
    assert_eq!(reader.failure_causes("web/a", now - 60_000).unwrap(), [(now - 40_000, "up → down".to_string())]);
    let causes = reader.failure_causes_all(now - 60_000).unwrap();
    assert_eq!(causes["web/b"], [(now - 45_000, "unknown → degraded".to_string())]);
    store.close().await;
}

/// A reader that keeps the histories between reads (SQLite) answers what a fresh reader
/// reads whole: after appended changes (one older than the newest, one at the same
/// moment as another), from a later bound, after a rename, and after a change before the
/// kept bound.
async fn kept_histories_answer_as_read_whole(location: Location) {
    let (store, _) = vigil::store::open(&location).expect("open");
    let kept = Reader::new(&location);
    let same = |from: i64| {
        let whole = Reader::new(&location).state_histories(from).unwrap();
        assert_eq!(kept.state_histories(from).unwrap(), whole, "from {from}");
        whole
    };
    write(
        &store,
        vec![change("web/a", T0, State::Unknown, State::Up), change("web/a", T0 + 10, State::Up, State::Down)],
    )
    .await;
    same(T0 - 1);
    write(
        &store,
        vec![
            change("web/a", T0 + 20, State::Down, State::Up),
            change("web/a", T0 + 5, State::Up, State::Unknown),
            change("web/a", T0 + 10, State::Down, State::Degraded),
            change("web/b", T0 + 30, State::Unknown, State::Up),
        ],
    )
    .await;
    let all = same(T0 - 1);
    let a = [
        (T0, State::Up),
        (T0 + 5, State::Unknown),
        (T0 + 10, State::Down),
        (T0 + 10, State::Degraded),
        (T0 + 20, State::Up),
    ];
    assert_eq!(all["web/a"], (None, a.to_vec()), "in time order, the later written of two at one moment last");
    let later = same(T0 + 10);
    assert_eq!(later["web/a"], (Some(State::Degraded), vec![(T0 + 20, State::Up)]));
    write(&store, vec![Record::Rename { from: "web/a".into(), to: "web/c".into() }]).await;
    let renamed = same(T0 - 1);
    assert!(!renamed.contains_key("web/a") && renamed["web/c"].1.len() == 5, "the rename is seen: {renamed:?}");
    write(&store, vec![change("web/b", T0 - 100, State::Unknown, State::Down)]).await;
    assert_eq!(same(T0 - 1)["web/b"], (Some(State::Down), vec![(T0 + 30, State::Up)]), "a change before the bound");
    store.close().await;
}

async fn incidents_outbox_and_deliveries(location: Location) {
    let (store, restored) = vigil::store::open(&location).expect("open");
    assert_eq!(restored.last_incident_id, 0);
    let open = incident(7, "web/a", T0, None);
    let closed = incident(8, "mail/b", T0 + 10_000, Some(T0 + 20_000));
    let first = notification("vigil-7-firing@x", &open, T0 + 1);
    let second = notification("vigil-8-firing@x", &closed, T0 + 2);
    write(
        &store,
        vec![
            Record::Batch(vec![
                Record::Incident(Box::new(incident(8, "mail/b", T0 + 10_000, None))),
                Record::Outbox(Box::new(second.clone())),
            ]),
            Record::Incident(Box::new(open.clone())),
            Record::Outbox(Box::new(first.clone())),
            // The idempotency key: the same notification written again is one row.
            Record::Outbox(Box::new(first.clone())),
            Record::Incident(Box::new(closed.clone())),
            Record::Attempt { key: first.key.clone(), attempts: 3 },
            Record::Delivery(DeliveryRecord {
                key: second.key.clone(),
                state: "delivered",
                channel: "email".into(),
                attempts: 1,
                at_ms: T0 + 30_000,
                error: None,
            }),
        ],
    )
    .await;
    // A stale copy of the closed incident written late (a node that was cut from a shared
    // store) does not reopen it.
    write(&store, vec![Record::Incident(Box::new(incident(8, "mail/b", T0 + 10_000, None)))]).await;
    let (store, restored) = reopen(store, &location).await;
    assert_eq!(restored.last_incident_id, 8);
    assert_eq!(restored.open_incidents, std::slice::from_ref(&open));
    assert_eq!(restored.pending.iter().map(|n| n.key.as_str()).collect::<Vec<_>>(), [first.key.as_str()]);
    assert_eq!(restored.pending_attempts, HashMap::from([(first.key.clone(), 3)]));
    let reader = Reader::new(&location);
    assert_eq!(reader.incident(8).unwrap(), Some(closed.clone()));
    assert_eq!(reader.incident(9).unwrap(), None);
    assert_eq!(reader.incidents_between(T0 + 5_000, T0 + 15_000).unwrap(), [open.clone(), closed.clone()]);
    assert_eq!(reader.incidents_between(T0 + 25_000, T0 + 35_000).unwrap(), std::slice::from_ref(&open));
    assert_eq!(reader.incidents(true, None, 10).unwrap(), std::slice::from_ref(&open));
    assert_eq!(reader.incidents(false, None, 10).unwrap(), [closed.clone(), open.clone()]);
    assert_eq!(reader.incidents(false, Some("mail"), 10).unwrap(), std::slice::from_ref(&closed));
    assert_eq!(reader.incidents(false, None, 1).unwrap(), std::slice::from_ref(&closed));
    assert_eq!(reader.incidents_of("web/a", 5).unwrap(), std::slice::from_ref(&open));
    assert!(reader.outbox_has(&first.key).unwrap() && !reader.outbox_has("vigil-9@x").unwrap());
    assert_eq!(reader.pending_deliveries().unwrap(), 1);
    let deliveries = reader.deliveries().unwrap();
    assert_eq!(
        deliveries,
        [
            (first.key.clone(), "pending".to_string(), None),
            (second.key.clone(), "delivered".to_string(), Some("email".to_string()))
        ]
    );
    // Pruning takes finished deliveries older than the cut, never a pending one.
    write(&store, vec![Record::Prune(T0 + 40_000)]).await;
    assert_eq!(reader.deliveries().unwrap().len(), 1);
    assert!(reader.outbox_has(&first.key).unwrap());
    store.close().await;
}

async fn maintenance_exclusions_audit_heartbeats(location: Location) {
    let (store, _) = vigil::store::open(&location).expect("open");
    let now = vigil::model::now_ms();
    let window = |name: &str, to_ms: i64| ApiWindow {
        name: name.into(),
        systems: vec!["web".into()],
        checks: vec![],
        targets: vec![],
        from_ms: now - 60_000,
        to_ms,
        reason: Some("nâng cấp".into()),
        by: "admin".into(),
    };
    let exclusion =
        Exclusion { incident_id: 7, reason: "mất điện lưới".into(), by: "admin".into(), at_ms: now };
    let audit = |at_ms: i64, action: &str| AuditRecord {
        at_ms,
        who: "admin (token)".into(),
        address: "127.0.0.1".into(),
        action: action.into(),
        detail: "web/a".into(),
    };
    write(
        &store,
        vec![
            Record::Maintenance(window("ended", now - 1_000)),
            Record::Maintenance(window("running", now + 3_600_000)),
            Record::Exclusion(Exclusion { reason: "first".into(), ..exclusion.clone() }),
            Record::Exclusion(exclusion.clone()),
            Record::Audit(audit(now - 5, "acknowledge")),
            Record::Audit(audit(now, "exclude")),
            Record::Heartbeat(HeartbeatRecord {
                target: "jobs/backup".into(),
                at_ms: now - 9,
                ok: false,
                message: "x".into(),
            }),
            Record::Heartbeat(HeartbeatRecord {
                target: "jobs/backup".into(),
                at_ms: now,
                ok: true,
                message: "ok".into(),
            }),
        ],
    )
    .await;
    let (store, restored) = reopen(store, &location).await;
    assert_eq!(restored.maintenance.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["running"]);
    assert_eq!(restored.heartbeats.len(), 1);
    let beat = &restored.heartbeats[0];
    assert_eq!((beat.at_ms, beat.ok, beat.message.as_str()), (now, true, "ok"));
    let reader = Reader::new(&location);
    assert_eq!(reader.maintenance().unwrap().len(), 2);
    assert_eq!(reader.exclusion(7).unwrap(), Some(exclusion.clone()), "the last decision stands");
    assert_eq!(reader.exclusion(8).unwrap(), None);
    assert_eq!(reader.exclusions().unwrap(), HashMap::from([(7, exclusion)]));
    let trail = reader.audit(10).unwrap();
    assert_eq!(trail.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), ["exclude", "acknowledge"]);
    assert_eq!(reader.audit(1).unwrap().len(), 1);
    store.close().await;
}

async fn rename_moves_history_and_prune_keeps_changes(location: Location) {
    let (store, _) = vigil::store::open(&location).expect("open");
    write(
        &store,
        vec![
            result("old/a", T0, "up", 5.0, State::Up),
            change("old/a", T0, State::Unknown, State::Up),
            Record::Incident(Box::new(incident(3, "old/a", T0, None))),
            // A stale row of the new id: the renamed target's replaces it.
            result("new/b", T0 - 1, "down", 9.0, State::Down),
            Record::Rename { from: "old/a".into(), to: "new/b".into() },
        ],
    )
    .await;
    let (store, restored) = reopen(store, &location).await;
    assert!(!restored.states.contains_key("old/a"));
    assert_eq!(restored.states["new/b"].state, State::Up);
    assert_eq!(restored.open_incidents[0].target, "old/a", "the incident's data is rewritten by the engine");
    let reader = Reader::new(&location);
    assert_eq!(reader.incidents_of("new/b", 5).unwrap().len(), 1, "the incident row follows the rename");
    assert_eq!(reader.result_count("new/b").unwrap(), 2);
    assert_eq!(reader.result_count("old/a").unwrap(), 0);
    assert_eq!(reader.changes("new/b").unwrap().len(), 1);
    let day = T0 - T0.rem_euclid(DAY);
    assert_eq!(reader.rollups("new/b", day, day + DAY).unwrap()[0].runs, 1, "the renamed day replaced the stale one");
    write(&store, vec![Record::Prune(T0)]).await;
    assert_eq!(reader.result_count("new/b").unwrap(), 1, "results before the cut are pruned");
    assert_eq!(reader.changes("new/b").unwrap().len(), 1, "state changes stay");
    store.close().await;
}

fn forwarded(seq: i64, kind: &str, at_ms: i64, to: &str) -> Forwarded {
    Forwarded {
        seq,
        kind: kind.into(),
        target: "web/a".into(),
        at_ms,
        data: serde_json::json!({ "from": "up", "to": to, "health": to, "message": "" }),
    }
}

async fn vantage_ingest(location: Location) {
    let (store, _) = vigil::store::open(&location).expect("open");
    let batch = |records: Vec<Forwarded>, received_ms: i64| {
        Record::Ingest(Box::new(IngestBatch {
            vantage: "xa-sin-ho".into(),
            records,
            clock_offset_ms: 12,
            received_ms,
            late_after_ms: 60_000,
            incarnation: Some("abc".into()),
        }))
    };
    write(
        &store,
        vec![
            batch(vec![forwarded(1, "change", T0, "up"), forwarded(2, "result", T0 + 1_000, "up")], T0 + 1_500),
            // The oldest waiting (2, sent again: ignored) and the live one (4): 4 is held
            // behind the hole at 3.
            batch(
                vec![forwarded(2, "result", T0 + 1_000, "up"), forwarded(4, "change", T0 + 200_000, "up")],
                T0 + 200_500,
            ),
        ],
    )
    .await;
    let reader = Reader::new(&location);
    assert_eq!(reader.vantage_histories(T0).unwrap().horizons["xa-sin-ho"], T0 + 1_000, "4 waits for 3");
    // 3 fills the hole after the grace: back-filled.
    write(&store, vec![batch(vec![forwarded(3, "change", T0 + 100_000, "down")], T0 + 300_000)]).await;
    let seen = reader.vantages().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].last_seq, seen[0].received, seen[0].clock_offset_ms), (4, 4, 12));
    assert_eq!(seen[0].newest_ms, Some(T0 + 200_000));
    assert_eq!(reader.received("xa-sin-ho").unwrap().iter().map(|f| f.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let views = reader.vantage_histories(T0 + 50_000).unwrap();
    assert_eq!(views.horizons["xa-sin-ho"], T0 + 200_000);
    assert_eq!(
        views.histories["web/a@xa-sin-ho"],
        (Some(State::Up), vec![(T0 + 100_000, State::Down), (T0 + 200_000, State::Up)])
    );
    let backfills = reader.backfills(T0, T0 + DAY).unwrap();
    assert_eq!(backfills.len(), 1, "{backfills:?}");
    assert_eq!(
        (backfills[0].from_ms, backfills[0].to_ms, backfills[0].counted_ms),
        (T0 + 1_000, T0 + 200_000, T0 + 300_000)
    );
    // Agents' raw results are pruned like ours; their state changes stay.
    write(&store, vec![Record::Prune(T0 + 2_000)]).await;
    assert_eq!(reader.received("xa-sin-ho").unwrap().iter().map(|f| f.seq).collect::<Vec<_>>(), [1, 3, 4]);
    store.close().await;
}

/// Two cluster nodes writing one store: node-a, cut from it since T0 + 1 s (its fence
/// raised), writes what it kept only for the targets nobody else wrote meanwhile — until it
/// takes a target back (`Record::Owned`).
async fn a_fenced_node_writes_only_what_nobody_else_wrote(location: Location) {
    let (a, _) = vigil::store::open(&location).expect("open");
    let (b, _) = vigil::store::open(&location).expect("open");
    let (fence_a, fence_b) = (vigil::store::Fence::new("node-a"), vigil::store::Fence::new("node-b"));
    a.send(Record::Fence(fence_a.clone()));
    b.send(Record::Fence(fence_b));
    write(&a, vec![result("web/t1", T0, "up", 1.0, State::Up), result("web/t2", T0, "up", 1.0, State::Up)]).await;
    fence_a.raise(T0 + 1_000);
    // node-b takes web/t1 over while node-a is cut.
    write(&b, vec![result("web/t1", T0 + 5_000, "down", 1.0, State::Down)]).await;
    let kept = |target: &str, id: i64| {
        let opened = incident(id, target, T0 + 2_000, None);
        vec![
            result(target, T0 + 2_000, "down", 1.0, State::Down),
            change(target, T0 + 2_000, State::Up, State::Down),
            Record::Incident(Box::new(opened.clone())),
            Record::Outbox(Box::new(notification(&format!("vigil-{id}-firing@x"), &opened, T0 + 2_000))),
        ]
    };
    write(&a, kept("web/t1", 70).into_iter().chain(kept("web/t2", 71)).collect()).await;
    let reader = Reader::new(&location);
    assert!(reader.changes("web/t1").unwrap().is_empty(), "node-b's history of web/t1 stands alone");
    assert_eq!(reader.changes("web/t2").unwrap().len(), 1, "nobody else wrote web/t2: node-a's change is kept");
    let ids: Vec<i64> = reader.incidents(false, None, 100).unwrap().iter().map(|i| i.id).collect();
    assert_eq!(ids, [71], "no second incident for web/t1");
    assert_eq!(reader.result_count("web/t1").unwrap(), 2, "node-a's kept result of web/t1 is not written");
    // node-a takes web/t1 back: what it writes for it from then on is written.
    write(&a, vec![Record::Owned(vec!["web/t1".into()]), change("web/t1", T0 + 9_000, State::Down, State::Up)]).await;
    assert_eq!(reader.changes("web/t1").unwrap().len(), 1);
    fence_a.lower();
    write(&a, vec![change("web/t1", T0 + 9_500, State::Up, State::Down)]).await;
    assert_eq!(reader.changes("web/t1").unwrap().len(), 2, "the fence is down: everything is written");
    let (a, restored) = reopen(a, &location).await;
    assert_eq!(restored.pending.iter().map(|n| n.key.as_str()).collect::<Vec<_>>(), ["vigil-71-firing@x"]);
    a.close().await;
    b.close().await;
}

/// Every case, each on a store of its own from `fresh`.
async fn every_case(mut fresh: impl FnMut(&str) -> Location) {
    results_rollups_and_states(fresh("results")).await;
    state_changes_and_histories(fresh("changes")).await;
    kept_histories_answer_as_read_whole(fresh("kept")).await;
    incidents_outbox_and_deliveries(fresh("incidents")).await;
    maintenance_exclusions_audit_heartbeats(fresh("admin")).await;
    rename_moves_history_and_prune_keeps_changes(fresh("rename")).await;
    vantage_ingest(fresh("ingest")).await;
    a_fenced_node_writes_only_what_nobody_else_wrote(fresh("fence")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    every_case(|name| Location::File(dir.path().join(format!("{name}.db")))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_on_postgresql() {
    let pg = common::Postgres::start();
    let mut admin = vigil::store::db::Database::postgres(&pg.dsn).expect("connect to the test server");
    every_case(|name| {
        admin.batch(&format!("CREATE DATABASE case_{name}")).expect("a database per case");
        let dsn = pg.dsn.replace("dbname=postgres", &format!("dbname=case_{name}"));
        Location::Postgres(vigil::config::Secret::new(dsn))
    })
    .await;
}
