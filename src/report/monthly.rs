//! The monthly report email as its own task: once a minute it asks whether the previous
//! month's report is due (`reports.monthly`), builds it on the blocking pool — never on
//! the pipeline, whose results channel must keep flowing — and writes one outbox row per
//! receiver; delivery gets each notification only after its row is committed.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Language, MonthlyReport};
use crate::delivery::Outlook;
use crate::model::incident::{EventKind, Notification, ReportMail};
use crate::model::now_ms;
use crate::store::{Location, Reader, Record, StoreWriter};

/// How often the task looks at the clock.
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// The month (`2026-10`) whose report is due at `now`, if the schedule's day and time of
/// the current month have come (pure).
pub fn due_month(now_ms: i64, schedule: &MonthlyReport, tz: &jiff::tz::TimeZone) -> Option<String> {
    let local = jiff::Timestamp::from_millisecond(now_ms).ok()?.to_zoned(tz.clone());
    if (local.day(), local.hour(), local.minute()) < (schedule.day as i8, schedule.hour as i8, schedule.minute as i8) {
        return None;
    }
    let previous = local.date().first_of_month().yesterday().ok()?;
    Some(previous.strftime("%Y-%m").to_string())
}

/// The outbox key of a month's report for one receiver (a restart does not send it again).
fn key(month: &str, receiver: &str) -> String {
    format!("report-{month}-{receiver}")
}

/// The running task, and what it tells about itself.
pub struct MonthlyTask {
    pub task: JoinHandle<()>,
    /// How many times it has looked at the clock (a test waits for the first).
    pub checks: watch::Receiver<u64>,
    /// How many reports it queued since start.
    pub queued: Arc<AtomicU64>,
}

/// Starts the task; it ends with `shutdown`.
pub fn spawn(
    outlook: watch::Receiver<Outlook>,
    store: Location,
    writer: Option<StoreWriter>,
    notifications: mpsc::UnboundedSender<Notification>,
    shutdown: CancellationToken,
) -> MonthlyTask {
    let (checks_tx, checks) = watch::channel(0u64);
    let queued = Arc::new(AtomicU64::new(0));
    let counter = queued.clone();
    let task = tokio::spawn(async move {
        let mut done: Option<String> = None;
        let mut ticker = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            check_once(&outlook, &store, writer.as_ref(), &notifications, &mut done, &counter).await;
            checks_tx.send_modify(|n| *n += 1);
        }
    });
    MonthlyTask { task, checks, queued }
}

/// One look at the clock: queues the previous month's report if it is due and not done.
async fn check_once(
    outlook: &watch::Receiver<Outlook>,
    store: &Location,
    writer: Option<&StoreWriter>,
    notifications: &mpsc::UnboundedSender<Notification>,
    done: &mut Option<String>,
    queued: &AtomicU64,
) {
    let config = outlook.borrow().config.clone();
    let Some(schedule) = config.monthly_report.clone() else { return };
    let now = now_ms();
    let Some(month) = due_month(now, &schedule, &config.instance.timezone) else { return };
    if done.as_deref() == Some(month.as_str()) {
        return;
    }
    let (path, m) = (store.clone(), month.clone());
    let built = tokio::task::spawn_blocking(move || mails(&config, &path, &schedule, &m, now)).await;
    match built {
        Ok(Ok(list)) if !list.is_empty() => {
            tracing::info!(month, receivers = list.len(), "monthly report queued");
            queue(list, writer, notifications);
            queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Ok(_)) => {}
        // Not marked done: the next look tries again (an unreadable store must neither lose
        // the report nor send it twice).
        Ok(Err(e)) => {
            tracing::error!(month, error = %e, "cannot build the monthly report; trying again shortly");
            return;
        }
        Err(e) => tracing::error!(month, error = %e, "the monthly report task failed"),
    }
    *done = Some(month);
}

/// The report of `month` as one notification per receiver not yet sent it.
fn mails(
    config: &Config,
    store: &Location,
    schedule: &MonthlyReport,
    month: &str,
    now: i64,
) -> Result<Vec<Notification>, super::ReportError> {
    let reader = Reader::new(store);
    // Whether it was sent is read, never guessed: a store that cannot say is an error (a
    // guess of "not sent" would mail the report again).
    let mut waiting = Vec::new();
    for r in &schedule.receivers {
        if !reader.outbox_has(&key(month, r))? {
            waiting.push(r);
        }
    }
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    let tz = &config.instance.timezone;
    let report = super::build(config, &reader, &super::month(month, tz)?, schedule.language, now)?;
    let subject = match schedule.language {
        Language::Vi => format!("[Vigil] Báo cáo thời gian hoạt động tháng {month} – {}", config.instance.name),
        Language::En => format!("[Vigil] Uptime report {month} – {}", config.instance.name),
    };
    let mail = ReportMail {
        month: month.to_string(),
        subject,
        html: super::render(&report, super::Format::Html, tz),
        csv: super::render(&report, super::Format::Csv, tz),
    };
    Ok(waiting
        .into_iter()
        .map(|r| {
            let mut n = crate::alert::message::test_notification(r, now);
            n.key = key(month, r);
            n.event = EventKind::Report;
            n.report = Some(Box::new(mail.clone()));
            // In a cluster every node makes it; the one whose outbox row is written sends it.
            n.node = config.cluster.as_ref().map(|c| c.node.clone());
            n
        })
        .collect())
}

/// Writes the outbox rows, and releases each notification to delivery once committed.
fn queue(list: Vec<Notification>, writer: Option<&StoreWriter>, notifications: &mpsc::UnboundedSender<Notification>) {
    let Some(writer) = writer else {
        // No store (it could not be opened): deliver from memory, as the pipeline does.
        list.into_iter().for_each(|n| {
            let _ = notifications.send(n);
        });
        return;
    };
    let mut records: Vec<Record> = list.iter().map(|n| Record::Outbox(Box::new(n.clone()))).collect();
    records.extend(list.into_iter().map(|n| Record::Release(Box::new(n), notifications.clone())));
    writer.send(Record::Batch(records));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_cannot_say_what_was_sent_sends_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vigil.yaml");
        let text = "reports: { monthly: { day: 1, at: \"08:00\", receivers: [managers] } }\n\
                    receivers:\n  - { id: managers, channels: [ { webhook: { url: \"http://127.0.0.1:9/\" } } ] }\n\
                    systems:\n  - { id: web, checks: [ { id: a, tcp: { address: \"127.0.0.1:9\" } } ] }\n";
        let config = crate::config::load_from_text(&path, text, &crate::config::env::process_env).expect("config");
        let schedule = config.monthly_report.clone().expect("schedule");
        // A store whose history reads fine but whose outbox cannot be read.
        let db = dir.path().join("vigil.db");
        drop(crate::store::open(&db).expect("store"));
        rusqlite::Connection::open(&db).and_then(|c| c.execute_batch("DROP TABLE outbox")).expect("drop the outbox");
        let built = mails(&config, &Location::File(db), &schedule, "2026-10", 1_793_500_000_000);
        let queued = built.as_ref().map(Vec::len);
        assert!(queued.is_err(), "an unreadable store is an error, not \"nothing sent yet\": {queued:?}");
    }

    #[test]
    fn due_from_the_scheduled_day_and_time_of_the_next_month() {
        let tz = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").expect("tz");
        let schedule = MonthlyReport { day: 1, hour: 8, minute: 0, receivers: vec![], language: Language::Vi };
        let at = |s: &str| s.parse::<jiff::Timestamp>().expect("ts").as_millisecond();
        assert_eq!(due_month(at("2026-11-01T00:59:00Z"), &schedule, &tz), None, "07:59 local");
        assert_eq!(due_month(at("2026-11-01T01:00:00Z"), &schedule, &tz).as_deref(), Some("2026-10"), "08:00 local");
        assert_eq!(due_month(at("2026-11-20T10:00:00Z"), &schedule, &tz).as_deref(), Some("2026-10"));
        assert_eq!(due_month(at("2027-01-01T02:00:00Z"), &schedule, &tz).as_deref(), Some("2026-12"));
    }
}
