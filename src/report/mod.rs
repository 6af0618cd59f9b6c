//! Uptime reports for managers: per system and check, the SLA objective, the achieved
//! uptime with the four quantities behind it, incidents, MTTA, MTTR, the longest outage,
//! a daily chart and the incident list — as HTML (one self-contained file for A4), CSV,
//! JSON or Markdown, in Vietnamese or English. The arithmetic is in [`accounting`].

pub mod accounting;
pub mod ledger;
pub mod monthly;
pub mod prometheus;
mod render;

use serde::Serialize;

use crate::config::{Config, Language};
use crate::model::incident::Severity;
use crate::store::{Reader, query};
pub use accounting::{Accounting, History, account};
pub use ledger::Ledger;
pub use render::{Format, render};

/// The span a report covers, in the instance time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span {
    pub from_ms: i64,
    pub to_ms: i64,
    /// `2026-10`, or `2026-10-01 – 2026-10-15`.
    pub label: String,
}

/// Errors of building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("\"{0}\" is not a month (expected e.g. 2026-10)")]
    Month(String),
    #[error("\"{0}\" is not a date (expected e.g. 2026-10-01, without a time of day)")]
    Date(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn midnight(date: jiff::civil::Date, tz: &jiff::tz::TimeZone) -> Option<i64> {
    date.to_zoned(tz.clone()).ok().map(|z| z.timestamp().as_millisecond())
}

/// The calendar month `2026-10` (midnight to midnight in the instance time zone).
pub fn month(spec: &str, tz: &jiff::tz::TimeZone) -> Result<Span, ReportError> {
    let bad = || ReportError::Month(spec.to_string());
    let first = jiff::civil::Date::strptime("%Y-%m-%d", format!("{spec}-01")).map_err(|_| bad())?;
    let next = first.checked_add(jiff::Span::new().months(1)).map_err(|_| bad())?;
    Ok(Span {
        from_ms: midnight(first, tz).ok_or_else(bad)?,
        to_ms: midnight(next, tz).ok_or_else(bad)?,
        label: spec.to_string(),
    })
}

/// From the start of `from` to the end of `to` (dates, inclusive).
pub fn dates(from: &str, to: &str, tz: &jiff::tz::TimeZone) -> Result<Span, ReportError> {
    // Exactly a date: a time of day would be silently ignored.
    let parse = |s: &str| jiff::civil::Date::strptime("%Y-%m-%d", s).map_err(|_| ReportError::Date(s.to_string()));
    let (a, b) = (parse(from)?, parse(to)?);
    let end = b.checked_add(jiff::Span::new().days(1)).map_err(|_| ReportError::Date(to.to_string()))?;
    let bad = || ReportError::Date(from.to_string());
    Ok(Span {
        from_ms: midnight(a, tz).ok_or_else(bad)?,
        to_ms: midnight(end, tz).ok_or_else(bad)?,
        label: format!("{from} – {to}"),
    })
}

/// One incident as the report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentRow {
    pub id: i64,
    pub target: String,
    /// `system/check`.
    pub check: String,
    /// Whether the check is critical, i.e. whether the incident counts for its system.
    pub critical_check: bool,
    pub severity: Severity,
    pub started_ms: i64,
    pub resolved_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    /// Downtime inside the report's span, net of maintenance and no data (0 if excluded).
    pub downtime_ms: i64,
    pub cause: String,
    pub acknowledged_by: Option<String>,
    pub excluded: Option<query::Exclusion>,
    /// The vantage point it was seen from; None for the instance's own view. A vantage's
    /// incidents count for that vantage's figures only, never for the check's or system's.
    pub vantage: Option<String>,
}

/// The figures of one check or system.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub id: String,
    pub name: String,
    pub objective: Option<f64>,
    pub accounting: Accounting,
    pub uptime: Option<f64>,
    pub met: Option<bool>,
    /// Incidents listed (every severity, excluded ones too).
    pub incidents: usize,
    /// Mean time to acknowledge, over acknowledged outages.
    pub mtta_ms: Option<i64>,
    /// Mean time to repair: the mean downtime of resolved outages, inside the span.
    pub mttr_ms: Option<i64>,
    /// The longest downtime of an outage inside the span.
    pub longest_outage_ms: Option<i64>,
    /// For a check run from vantage points: its figures as seen from each of them
    /// (id `system/check@vantage`); their no data includes the time a vantage was lost.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vantages: Vec<Figures>,
}

/// A system's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct SystemReport {
    #[serde(flatten)]
    pub figures: Figures,
    /// Uptime per day of the span (None: no data that day).
    pub daily: Vec<Option<f64>>,
    pub checks: Vec<Figures>,
    /// Every incident of the system's checks; those of non-critical checks are marked and
    /// not counted in the system's figures.
    pub incident_list: Vec<IncidentRow>,
}

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Version of the JSON layout.
    pub schema: u32,
    pub instance: String,
    pub timezone: String,
    pub language: &'static str,
    pub span: Span,
    pub generated_ms: i64,
    pub systems: Vec<SystemReport>,
    /// Vantage points' measurements of the span that reached the centre late: time a report
    /// made before `counted_ms` showed as no data and this one counts as measured. A report
    /// of a closed period changes only this way.
    pub backfills: Vec<crate::store::forward::Backfill>,
}

fn mean(values: impl Iterator<Item = i64>) -> Option<i64> {
    let v: Vec<i64> = values.collect();
    (!v.is_empty()).then(|| v.iter().sum::<i64>() / v.len() as i64)
}

/// The figures over `rows` (the incidents of the check or system). MTTA, MTTR and the
/// longest outage count outages only: critical incidents that are not excluded.
fn figures(
    id: String,
    name: String,
    objective: Option<f64>,
    accounting: Accounting,
    rows: &[&IncidentRow],
    known: &[ledger::KnownIncident],
) -> Figures {
    let uptime = accounting.uptime();
    let outages: Vec<(&IncidentRow, &ledger::KnownIncident)> = rows
        .iter()
        .filter_map(|r| known.iter().find(|k| k.incident.id == r.id).map(|k| (*r, k)))
        .filter(|(_, k)| k.is_outage())
        .collect();
    Figures {
        id,
        name,
        objective,
        uptime,
        met: objective.zip(uptime).map(|(o, u)| u >= o),
        incidents: rows.len(),
        mtta_ms: mean(
            outages.iter().filter_map(|(_, k)| k.incident.ack.as_ref().map(|a| a.at_ms - k.incident.detected_ms)),
        ),
        mttr_ms: mean(outages.iter().filter(|(r, _)| r.resolved_ms.is_some()).map(|(r, _)| r.downtime_ms)),
        longest_outage_ms: outages.iter().map(|(r, _)| r.downtime_ms).max(),
        accounting,
        vantages: Vec::new(),
    }
}

/// The month containing `now` (instance time zone), as `YYYY-MM`.
pub fn current_month(now_ms: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(now_ms)
        .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m").to_string())
        .unwrap_or_default()
}

/// Builds the report of `span` from the store, as known at `now`.
pub fn build(config: &Config, store: &Reader, span: &Span, lang: Language, now: i64) -> Result<Report, ReportError> {
    // A history that cannot be read is an error, never an empty one: a locked or corrupt
    // store must not yield a plausible report.
    let ledger = Ledger::load(config, store, span.from_ms, span.to_ms, now)?;
    let mut report = build_from_ledger(config, &ledger, span, lang);
    report.backfills = store.backfills(span.from_ms, span.to_ms)?;
    Ok(report)
}

/// Builds the report from given histories; incidents and exclusions come from the store
/// when there is one.
pub fn build_from(
    config: &Config,
    store: Option<&Reader>,
    histories: &std::collections::HashMap<String, History>,
    span: &Span,
    lang: Language,
    now: i64,
) -> Result<Report, ReportError> {
    let ledger = Ledger::with_histories(store, histories.clone(), span.from_ms, span.to_ms, now)?;
    Ok(build_from_ledger(config, &ledger, span, lang))
}

/// The local midnights from the span's start to its end (the end included).
fn day_bounds(span: &Span, tz: &jiff::tz::TimeZone) -> Vec<i64> {
    let mut b = vec![span.from_ms];
    while let Some(&last) = b.last() {
        let next = jiff::Timestamp::from_millisecond(last)
            .ok()
            .and_then(|t| t.to_zoned(tz.clone()).checked_add(jiff::Span::new().days(1)).ok())
            .map_or(span.to_ms, |z| z.timestamp().as_millisecond());
        if next >= span.to_ms {
            b.push(span.to_ms);
            break;
        }
        b.push(next);
    }
    b
}

/// A check's figures, with a row per vantage point that runs it: a vantage's incidents
/// count for its row only.
fn check_figures(
    s: &crate::config::System,
    c: &crate::config::Check,
    sys_rows: &[&IncidentRow],
    ledger: &Ledger,
    span: &Span,
) -> Figures {
    let ids: Vec<String> = c.targets.iter().map(|t| t.id().to_string()).collect();
    let prefix = format!("{}/{}", s.id, c.id);
    let check_rows: Vec<&IncidentRow> = sys_rows.iter().copied().filter(|r| r.check == prefix).collect();
    let own: Vec<&IncidentRow> = check_rows.iter().copied().filter(|r| r.vantage.is_none()).collect();
    let acc = ledger.account(&ids, span.from_ms, span.to_ms);
    let mut f = figures(prefix.clone(), c.name.clone(), s.sla, acc, &own, ledger.incidents());
    // Only a ledger read from the store knows the vantages' views (Prometheus has no
    // back-filled data): without them, no rows rather than rows of no data.
    f.vantages = c
        .vantages
        .iter()
        .filter(|v| ids.first().is_some_and(|id| ledger.history(&format!("{id}@{v}")).is_some()))
        .map(|v| {
            let view: Vec<String> = ids.iter().map(|id| format!("{id}@{v}")).collect();
            let rows: Vec<&IncidentRow> =
                check_rows.iter().copied().filter(|r| r.vantage.as_deref() == Some(v)).collect();
            let acc = ledger.account(&view, span.from_ms, span.to_ms);
            figures(format!("{prefix}@{v}"), v.clone(), s.sla, acc, &rows, ledger.incidents())
        })
        .collect();
    f
}

/// Builds the report from a ledger.
pub fn build_from_ledger(config: &Config, ledger: &Ledger, span: &Span, lang: Language) -> Report {
    let critical_checks: Vec<(String, String)> = config
        .systems
        .iter()
        .flat_map(|s| s.checks.iter().filter(|c| c.critical).map(move |c| (s.id.clone(), c.id.clone())))
        .collect();
    let rows: Vec<IncidentRow> = ledger
        .incidents()
        .iter()
        .map(|k| {
            let i = &k.incident;
            IncidentRow {
                id: i.id,
                target: i.target.clone(),
                check: format!("{}/{}", i.system, i.check),
                critical_check: critical_checks.iter().any(|(s, c)| *s == i.system && *c == i.check),
                severity: i.severity,
                started_ms: i.started_ms,
                resolved_ms: i.resolved_ms,
                duration_ms: i.resolved_ms.map(|r| r - i.started_ms),
                downtime_ms: ledger.downtime(k, span.from_ms, span.to_ms),
                cause: i.cause.clone(),
                acknowledged_by: i.ack.as_ref().map(|a| a.by.clone()),
                excluded: k.exclusion.clone(),
                vantage: i.vantage.clone(),
            }
        })
        .collect();
    let days = day_bounds(span, &config.instance.timezone);
    let systems = config
        .systems
        .iter()
        .map(|s| {
            let name = if lang == Language::Vi { s.name_vi.clone() } else { s.name_en.clone() };
            let critical: Vec<String> = s
                .checks
                .iter()
                .filter(|c| c.critical)
                .flat_map(|c| c.targets.iter().map(|t| t.id().to_string()))
                .collect();
            let sys_rows: Vec<&IncidentRow> =
                rows.iter().filter(|r| r.check.split('/').next() == Some(s.id.as_str())).collect();
            let checks = s.checks.iter().map(|c| check_figures(s, c, &sys_rows, ledger, span)).collect();
            let daily = days.windows(2).map(|w| ledger.account(&critical, w[0], w[1]).uptime()).collect();
            let acc = ledger.account(&critical, span.from_ms, span.to_ms);
            let counted: Vec<&IncidentRow> =
                sys_rows.iter().copied().filter(|r| r.critical_check && r.vantage.is_none()).collect();
            SystemReport {
                figures: figures(s.id.clone(), name, s.sla, acc, &counted, ledger.incidents()),
                daily,
                checks,
                incident_list: sys_rows.into_iter().cloned().collect(),
            }
        })
        .collect();
    Report {
        schema: 2,
        instance: config.instance.name.clone(),
        timezone: config.instance.timezone_name.clone(),
        language: if lang == Language::Vi { "vi" } else { "en" },
        span: span.clone(),
        generated_ms: ledger.at(),
        systems,
        backfills: Vec::new(),
    }
}
