//! One truth for every number a manager sees (issue #15). A history is seeded through the
//! real daemon (`vigil run`, a process whose clock is shifted so that an outage crosses local
//! midnight in Asia/Ho_Chi_Minh): two systems, critical and non-critical checks, maintenance
//! inside an outage, a dependency outage, an excluded incident, a clean stop and a SIGKILL
//! with waits. Then every figure — home and system pages, badges, the history API, the
//! report in json, csv, md and html, whole and per day — is compared digit for digit with a
//! ground truth this test computes from the recorded state changes; and reports as of a
//! moment are byte-identical when run again after later outages, exclusions, maintenance,
//! a stop and a crash.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(20);
const TZ: &str = "Asia/Ho_Chi_Minh";

fn real_now() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The daemon's world: its folder, its clock offset and its port.
struct World {
    dir: PathBuf,
    offset: i64,
    port: u16,
}

impl World {
    fn now(&self) -> i64 {
        real_now() + self.offset
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn config(&self) -> String {
        self.dir.join("vigil.yaml").display().to_string()
    }

    fn db(&self) -> PathBuf {
        self.dir.join("vigil.db")
    }

    async fn start(&self) -> Child {
        let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["run", "-c", &self.config()])
            .env("VIGIL_FAULT_CLOCK_OFFSET_MS", self.offset.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vigil run");
        let deadline = Instant::now() + WAIT;
        let addr = format!("127.0.0.1:{}", self.port);
        while std::net::TcpStream::connect(&addr).is_err()
            || request("GET", &format!("{}/-/ready", self.base()), None).await.0 != 200
        {
            assert!(Instant::now() < deadline, "vigil did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child
    }

    /// A clean stop (SIGTERM), waited for.
    fn stop(&self, mut child: Child) {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = child.wait().expect("wait");
        assert!(status.success(), "vigil stopped cleanly: {status}");
    }

    /// `vigil report` with these arguments, on the daemon's clock.
    fn report(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["report", "-c", &self.config()])
            .args(args)
            .env("VIGIL_FAULT_CLOCK_OFFSET_MS", self.offset.to_string())
            .output()
            .expect("vigil report");
        assert!(out.status.success(), "vigil report {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    async fn state_of(&self, id: &str) -> String {
        let status: serde_json::Value =
            serde_json::from_str(&get(&format!("{}/api/v1/status", self.base())).await).expect("status json");
        let targets = status["systems"].as_array().into_iter().flatten().flat_map(|s| {
            s["checks"].as_array().into_iter().flatten().flat_map(|c| c["targets"].as_array().into_iter().flatten())
        });
        targets
            .filter(|t| t["id"] == id)
            .map(|t| t["state"].as_str().unwrap_or("").to_string())
            .next()
            .unwrap_or_default()
    }

    async fn wait_state(&self, id: &str, want: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.state_of(id).await;
            if now == want {
                return;
            }
            assert!(Instant::now() < deadline, "{id} is {now}, not {want}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn sleep_until(&self, t: i64) {
        let wait = t - self.now();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
    }
}

fn write_config(world: &World, servers: &[&WebServer], maintenance: &str) {
    let text = format!(
        "instance: {{ name: test, location: test-lab, timezone: {TZ}, language: vi }}\n\
         server: {{ listen: \"127.0.0.1:{port}\", admin_token: \"{TOKEN}\" }}\n\
         storage: {{ path: \"{db}\" }}\n\
         defaults: {{ interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1 }}\n\
         systems:\n\
         \x20 - id: core\n    sla: 99%\n    checks:\n\
         \x20     - {{ id: router, http: {{ url: \"http://{a}/switch\" }} }}\n\
         \x20 - id: procedures\n    sla: 99.9%\n    checks:\n\
         \x20     - {{ id: portal, http: {{ url: \"http://{b}/switch\" }}, depends_on: [core/router] }}\n\
         \x20     - {{ id: search, critical: false, http: {{ url: \"http://{c}/switch\" }} }}\n\
         {maintenance}",
        port = world.port,
        db = world.db().display(),
        a = servers[0].addr,
        b = servers[1].addr,
        c = servers[2].addr,
    );
    std::fs::write(world.dir.join("vigil.yaml"), text).expect("write config");
}

/// Time per category, as the report's `accounting` names it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Acc {
    up: i64,
    down: i64,
    maintenance: i64,
    no_data: i64,
    excluded: i64,
}

impl Acc {
    fn uptime(&self) -> Option<f64> {
        (self.up + self.down > 0).then(|| self.up as f64 / (self.up + self.down) as f64)
    }

    fn of_json(v: &serde_json::Value) -> Acc {
        let get = |k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k} in {v}"));
        Acc {
            up: get("up_ms"),
            down: get("down_ms"),
            maintenance: get("maintenance_ms"),
            no_data: get("no_data_ms"),
            excluded: get("excluded_ms"),
        }
    }
}

/// The recorded history: each target's state changes in time order.
type Changes = BTreeMap<String, Vec<(i64, String)>>;

fn recorded_changes(db: &Path, ids: &[&str]) -> Changes {
    ids.iter()
        .map(|id| {
            let mut c: Vec<(i64, String)> =
                vigil::store::query::changes(db, id).expect("changes").into_iter().map(|c| (c.at_ms, c.to)).collect();
            c.sort_by_key(|(at, _)| *at); // stable: same-time changes keep their order
            (id.to_string(), c)
        })
        .collect()
}

/// Ground truth, computed independently: for every elementary span between recorded
/// changes, each target's category, combined worst-first (down, excluded, maintenance,
/// no data, up); `excluded` lists (target, from, to) of excluded incidents.
fn truth(changes: &Changes, ids: &[&str], excluded: &[(String, i64, i64)], from: i64, to: i64, at: i64) -> Acc {
    let end = to.min(at).max(from);
    let mut points = vec![from, end];
    for id in ids {
        points.extend(changes[*id].iter().map(|(t, _)| *t).filter(|t| *t > from && *t < end && *t <= at));
    }
    for (_, a, b) in excluded {
        points.extend([*a, *b].into_iter().filter(|t| *t > from && *t < end));
    }
    points.sort_unstable();
    points.dedup();
    let mut acc = Acc::default();
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        let worst = ids
            .iter()
            .map(|id| {
                let state = changes[*id].iter().rfind(|(t, _)| *t <= a && *t <= at).map(|(_, s)| s.as_str());
                match state {
                    Some("up" | "degraded") => 0,
                    Some("down" | "unreachable") => {
                        if excluded.iter().any(|(t, x, y)| t == id && (*x..*y).contains(&a)) { 3 } else { 4 }
                    }
                    Some("maintenance") => 2,
                    _ => 1,
                }
            })
            .max()
            .unwrap_or(1);
        let slot = match worst {
            0 => &mut acc.up,
            1 => &mut acc.no_data,
            2 => &mut acc.maintenance,
            3 => &mut acc.excluded,
            _ => &mut acc.down,
        };
        *slot += b - a;
    }
    acc.no_data += to - end;
    acc
}

/// The figures of one system or check, from the ground truth.
#[derive(Debug)]
struct Expected {
    acc: Acc,
    incidents: usize,
    mttr: Option<i64>,
    longest: Option<i64>,
}

struct Truth<'a> {
    changes: &'a Changes,
    incidents: &'a [vigil::model::incident::Incident],
    excluded: &'a [(String, i64, i64)],
    excluded_ids: &'a [i64],
    at: i64,
}

impl Truth<'_> {
    /// `ids`: the targets combined; `checks`: the checks whose incidents count.
    fn expected(&self, ids: &[&str], checks: &[&str], from: i64, to: i64) -> Expected {
        let mine: Vec<&vigil::model::incident::Incident> = self
            .incidents
            .iter()
            .filter(|i| checks.contains(&format!("{}/{}", i.system, i.check).as_str()))
            .filter(|i| i.started_ms < to && i.resolved_ms.is_none_or(|r| r > from) && i.detected_ms <= self.at)
            .collect();
        let outage = |i: &&&vigil::model::incident::Incident| {
            i.severity == vigil::model::incident::Severity::Critical && !self.excluded_ids.contains(&i.id)
        };
        let downtime = |i: &vigil::model::incident::Incident| {
            let (a, b) = (i.started_ms.max(from), i.resolved_ms.unwrap_or(self.at).min(to));
            truth(self.changes, &[i.target.as_str()], &[], a, b.max(a), self.at).down
        };
        let resolved: Vec<i64> =
            mine.iter().filter(outage).filter(|i| i.resolved_ms.is_some()).map(|i| downtime(i)).collect();
        Expected {
            acc: truth(self.changes, ids, self.excluded, from, to, self.at),
            incidents: mine.len(),
            mttr: (!resolved.is_empty()).then(|| resolved.iter().sum::<i64>() / resolved.len() as i64),
            longest: mine.iter().filter(outage).map(|i| downtime(i)).max(),
        }
    }
}

/// An uptime as pages and Vietnamese reports show it.
fn pct(u: Option<f64>) -> String {
    u.map_or("–".into(), |u| format!("{:.3}%", u * 100.0).replace('.', ","))
}

fn check_figures(what: &str, got: &serde_json::Value, want: &Expected) {
    assert_eq!(Acc::of_json(&got["accounting"]), want.acc, "{what}: accounting");
    assert_eq!(got["uptime"].as_f64(), want.acc.uptime(), "{what}: uptime");
    assert_eq!(got["incidents"].as_u64(), Some(want.incidents as u64), "{what}: incidents");
    assert_eq!(got["mttr_ms"].as_i64(), want.mttr, "{what}: MTTR");
    assert_eq!(got["longest_outage_ms"].as_i64(), want.longest, "{what}: longest outage");
}

fn local_date(ms: i64) -> String {
    let tz = jiff::tz::TimeZone::get(TZ).expect("tz");
    jiff::Timestamp::from_millisecond(ms).expect("ts").to_zoned(tz).strftime("%Y-%m-%d").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_figure_agrees_with_the_ground_truth() {
    require_fault_injection();
    let servers = [web_server(None).await, web_server(None).await, web_server(None).await];
    let [router, portal, search] = [&servers[0].switch, &servers[1].switch, &servers[2].switch];
    let dir = tempfile::tempdir().expect("tempdir");
    // The daemon's clock: the next local midnight comes 8 s after it starts.
    let tz = jiff::tz::TimeZone::get(TZ).expect("tz");
    let tomorrow = jiff::Timestamp::now().to_zoned(tz.clone()).date().tomorrow().expect("date");
    let midnight = tomorrow.to_zoned(tz.clone()).expect("midnight").timestamp().as_millisecond();
    let world = World { dir: dir.path().to_path_buf(), offset: midnight - 8_000 - real_now(), port: free_port() };
    write_config(&world, &[&servers[0], &servers[1], &servers[2]], "");
    let ids = ["core/router", "procedures/portal", "procedures/search"];
    let begin = world.now();

    let daemon = world.start().await;
    for id in ids {
        world.wait_state(id, "up").await;
    }
    // A: the portal is down across local midnight.
    world.sleep_until(midnight - 3_000).await;
    portal.store(503, Ordering::SeqCst);
    world.wait_state("procedures/portal", "down").await;
    world.sleep_until(midnight + 2_000).await;
    portal.store(200, Ordering::SeqCst);
    world.wait_state("procedures/portal", "up").await;
    // Reports as of now, to be run again at the end.
    let t1 = world.now();
    tokio::time::sleep(Duration::from_millis(1_500)).await; // the store has everything up to t1
    let at_t1 = jiff::Timestamp::from_millisecond(t1).expect("ts").to_string();
    let early: Vec<(String, String)> = ["json", "csv", "md", "html"]
        .iter()
        .map(|f| (f.to_string(), world.report(&["--format", f, "--at", &at_t1])))
        .collect();

    // B: the router goes down and the portal behind it fails too (unreachable: down for its
    // system, attributed to the router); maintenance opens inside the router's outage and
    // ends before it does.
    router.store(503, Ordering::SeqCst);
    world.wait_state("core/router", "down").await;
    portal.store(503, Ordering::SeqCst);
    world.wait_state("procedures/portal", "unreachable").await;
    portal.store(200, Ordering::SeqCst);
    world.wait_state("procedures/portal", "up").await;
    let auth = format!("Bearer {TOKEN}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let open = vigil::store::query::incidents(world.db(), true, Some("core"), 10).expect("incidents");
    let router_incident = open.first().expect("the router's incident").id;
    let (code, _, body) = send(
        "POST",
        &format!("{}/api/v1/incidents/{router_incident}/exclude", world.base()),
        &[("authorization", &auth)],
        r#"{"reason": "not yet", "by": "An"}"#,
    )
    .await;
    assert_eq!(code, 409, "an open incident cannot be excluded: {body}");
    let (code, _, body) = send(
        "POST",
        &format!("{}/api/v1/maintenance", world.base()),
        &[("authorization", &auth)],
        r#"{"checks": ["core/router"], "duration": "3s", "reason": "swap the line card", "by": "Bình"}"#,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    world.wait_state("core/router", "maintenance").await;
    world.wait_state("core/router", "down").await;
    router.store(200, Ordering::SeqCst);
    world.wait_state("core/router", "up").await;
    // C: the non-critical search check fails for a while.
    search.store(503, Ordering::SeqCst);
    world.wait_state("procedures/search", "down").await;
    search.store(200, Ordering::SeqCst);
    world.wait_state("procedures/search", "up").await;
    // D: a short portal outage, excluded from the SLA once resolved.
    portal.store(503, Ordering::SeqCst);
    world.wait_state("procedures/portal", "down").await;
    portal.store(200, Ordering::SeqCst);
    world.wait_state("procedures/portal", "up").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let last_portal = vigil::store::query::incidents(world.db(), false, Some("procedures"), 10)
        .expect("incidents")
        .into_iter()
        .find(|i| i.check == "portal")
        .expect("the portal's last incident");
    assert!(!last_portal.is_open());
    let (code, _, body) = send(
        "POST",
        &format!("{}/api/v1/incidents/{}/exclude", world.base(), last_portal.id),
        &[("authorization", &auth)],
        r#"{"reason": "planned power cut", "by": "An"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A clean stop: while stopped, the figures do not move (the time is no data).
    world.stop(daemon);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t_stopped = jiff::Timestamp::from_millisecond(world.now()).expect("ts").to_string();
    let stopped = world.report(&["--format", "json", "--at", &t_stopped]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later: serde_json::Value = serde_json::from_str(&world.report(&["--format", "json"])).expect("json");
    let before: serde_json::Value = serde_json::from_str(&stopped).expect("json");
    for s in 0..2 {
        assert_eq!(later["systems"][s]["accounting"]["up_ms"], before["systems"][s]["accounting"]["up_ms"], "stopped");
        assert_eq!(later["systems"][s]["uptime"], before["systems"][s]["uptime"], "stopped: uptime");
    }

    // A SIGKILL: nothing is recorded, and still the silent time is no data.
    let mut daemon = world.start().await;
    for id in ids {
        world.wait_state(id, "up").await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    daemon.kill().expect("SIGKILL");
    daemon.wait().expect("wait");
    // One interval, the timeout and the grace (vigil::report::ledger::SILENCE_GRACE_MS).
    tokio::time::sleep(Duration::from_millis(1_000 + 800 + 5_000 + 700)).await;
    let t_dead = jiff::Timestamp::from_millisecond(world.now()).expect("ts").to_string();
    let dead = world.report(&["--format", "json", "--at", &t_dead]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later: serde_json::Value = serde_json::from_str(&world.report(&["--format", "json"])).expect("json");
    let before: serde_json::Value = serde_json::from_str(&dead).expect("json");
    for s in 0..2 {
        assert_eq!(later["systems"][s]["accounting"]["up_ms"], before["systems"][s]["accounting"]["up_ms"], "killed");
    }

    // Restarted, the gaps are recorded as what the reports already said.
    let daemon = world.start().await;
    for id in ids {
        world.wait_state(id, "up").await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(world.report(&["--format", "json", "--at", &t_dead]), dead, "the crash gap, recorded = inferred");
    assert_eq!(world.report(&["--format", "json", "--at", &t_stopped]), stopped, "the stop, recorded");
    world.stop(daemon);
    let t_final = world.now() + 500;
    for id in ids {
        let reasons: Vec<Option<String>> =
            vigil::store::query::changes(world.db(), id).expect("changes").into_iter().map(|c| c.reason).collect();
        assert!(reasons.contains(&Some("stopped".into())), "{id}: the clean stop is recorded");
        assert!(reasons.contains(&Some("not_watched".into())), "{id}: the crash gap is recorded");
    }

    // The ground truth, from the recorded changes and incidents.
    let db = world.db();
    let changes = recorded_changes(&db, &ids);
    let portal_down = changes["procedures/portal"].iter().find(|(_, s)| s == "down").expect("down").0;
    assert!(portal_down < midnight, "the first portal outage began before midnight");
    let incidents = vigil::store::query::incidents(&db, false, None, 100).expect("incidents");
    let excluded = [(last_portal.target.clone(), last_portal.started_ms, last_portal.resolved_ms.expect("resolved"))];
    let truth = Truth {
        changes: &changes,
        incidents: &incidents,
        excluded: &excluded,
        excluded_ids: &[last_portal.id],
        at: t_final,
    };
    let (d1, d2) = (local_date(midnight - 1), local_date(midnight));
    let day_start = tomorrow.yesterday().expect("date").to_zoned(tz.clone()).expect("z").timestamp().as_millisecond();
    let day_end = tomorrow.tomorrow().expect("date").to_zoned(tz.clone()).expect("z").timestamp().as_millisecond();
    let at_final = jiff::Timestamp::from_millisecond(t_final).expect("ts").to_string();
    let core = |from, to| truth.expected(&["core/router"], &["core/router"], from, to);
    let procedures = |from, to| truth.expected(&["procedures/portal"], &["procedures/portal"], from, to);
    let search_check = |from, to| truth.expected(&["procedures/search"], &["procedures/search"], from, to);
    let whole = (core(day_start, day_end), procedures(day_start, day_end));
    assert!(whole.0.acc.down > 0 && whole.0.acc.maintenance > 0, "the router's outage and its maintenance: {whole:?}");
    assert!(whole.1.acc.excluded > 0 && whole.1.acc.no_data >= 5_000, "an exclusion, a stop and a crash: {whole:?}");
    assert_eq!(whole.1.incidents, 2, "the non-critical check's incident does not count for the system");

    // The report, whole and per day, in every format.
    for (from, to, d_from, d_to) in
        [(day_start, day_end, &d1, &d2), (day_start, midnight, &d1, &d1), (midnight, day_end, &d2, &d2)]
    {
        let args = ["--from", d_from.as_str(), "--to", d_to.as_str(), "--at", &at_final];
        let json: serde_json::Value =
            serde_json::from_str(&world.report(&[&args[..], &["--format", "json"]].concat())).expect("json");
        let what = format!("{d_from}..{d_to}");
        check_figures(&format!("core {what}"), &json["systems"][0], &core(from, to));
        check_figures(&format!("procedures {what}"), &json["systems"][1], &procedures(from, to));
        check_figures(&format!("core/router {what}"), &json["systems"][0]["checks"][0], &core(from, to));
        check_figures(&format!("portal {what}"), &json["systems"][1]["checks"][0], &procedures(from, to));
        check_figures(&format!("search {what}"), &json["systems"][1]["checks"][1], &search_check(from, to));
        if from == day_start && to == day_end {
            let daily: Vec<Option<f64>> =
                json["systems"][1]["daily"].as_array().expect("daily").iter().map(serde_json::Value::as_f64).collect();
            let want = vec![procedures(day_start, midnight).acc.uptime(), procedures(midnight, day_end).acc.uptime()];
            assert_eq!(daily, want, "daily uptime split at local midnight");
            assert!(want.iter().all(Option::is_some));
            let split = (procedures(day_start, midnight).longest, procedures(midnight, day_end).longest);
            assert!(
                split.0.is_some_and(|a| a > 0) && split.1.is_some_and(|b| b > 0),
                "an outage on each day: {split:?}"
            );
        }
        let csv = world.report(&[&args[..], &["--format", "csv"]].concat());
        let csv = csv.strip_prefix('\u{feff}').expect("a UTF-8 BOM");
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
        for (row, want) in
            [(&rows[0], core(from, to)), (&rows[2], procedures(from, to)), (&rows[4], search_check(from, to))]
        {
            let a = want.acc;
            let expect = [a.up, a.down, a.maintenance, a.no_data, a.excluded].map(|v| v.to_string());
            assert_eq!(&row.iter().skip(6).take(5).collect::<Vec<_>>(), &expect, "csv {what}: {row:?}");
            assert_eq!(row[11], want.incidents.to_string(), "csv incidents {what}");
            assert_eq!(row[13], want.mttr.map(|v| v.to_string()).unwrap_or_default(), "csv MTTR {what}");
            assert_eq!(row[14], want.longest.map(|v| v.to_string()).unwrap_or_default(), "csv longest {what}");
        }
        for format in ["md", "html"] {
            let text = world.report(&[&args[..], &["--format", format]].concat());
            for want in [core(from, to), procedures(from, to), search_check(from, to)] {
                let shown = pct(want.acc.uptime());
                let down = vigil::model::format_duration(Duration::from_millis(want.acc.down as u64));
                assert!(text.contains(&shown) && text.contains(&down), "{format} {what}: {shown}, {down}");
            }
        }
    }

    // Served while every target is in maintenance (no figure moves): pages, badges, API.
    let window_from = jiff::Timestamp::from_millisecond(t_final).expect("ts").to_string();
    let window_to = jiff::Timestamp::from_millisecond(t_final + 86_400_000).expect("ts").to_string();
    let maintenance = format!(
        "maintenance:\n  - {{ name: freeze, systems: [core, procedures], from: \"{window_from}\", to: \"{window_to}\" }}\n"
    );
    write_config(&world, &[&servers[0], &servers[1], &servers[2]], &maintenance);
    let daemon = world.start().await;
    for id in ids {
        world.wait_state(id, "maintenance").await;
    }
    let base = world.base();
    let home = get(&format!("{base}/")).await;
    for (system, want) in [("core", &whole.0), ("procedures", &whole.1)] {
        let shown = pct(want.acc.uptime());
        assert!(home.contains(&shown), "home page: {system} {shown}");
        let page = get(&format!("{base}/systems/{system}")).await;
        assert!(page.contains(&shown), "system page: {system} {shown}");
        let badge = get(&format!("{base}/badge/{system}/uptime/2d.svg")).await;
        assert!(badge.contains(&shown), "badge: {system} {shown} in {badge}");
    }
    for (check, want) in
        [("core/router", core(begin - 1_000, t_final)), ("procedures/portal", procedures(begin - 1_000, t_final))]
    {
        let url = format!("{base}/api/v1/checks/{check}/history?from={}&to={t_final}", begin - 1_000);
        let history: serde_json::Value = serde_json::from_str(&get(&url).await).expect("json");
        assert_eq!(Acc::of_json(&history["accounting"]), want.acc, "history API: {check}");
    }
    // Reports as of t1, run again after everything since: byte for byte the same.
    for (format, text) in &early {
        assert_eq!(&world.report(&["--format", format, "--at", &at_t1]), text, "--at {at_t1}, {format}");
    }
    world.stop(daemon);
}
