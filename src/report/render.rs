//! Report renderers: HTML (self-contained, prints on A4), CSV, JSON and Markdown.
//!
//! size: `markdown` writes the report's table and incident list in one pass, as the reader reads them.

use std::time::Duration;

use minijinja::{Environment, context};
use serde_json::{Value, json};

use super::{Figures, Report};
use crate::model::format_duration;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Html,
    Csv,
    Json,
    Md,
}

fn pct(v: Option<f64>, vi: bool) -> String {
    match v {
        Some(v) => {
            let s = format!("{:.3}%", v * 100.0);
            if vi { s.replace('.', ",") } else { s }
        }
        None => "–".into(),
    }
}

fn dur(ms: Option<i64>) -> String {
    ms.map_or("–".into(), |m| format_duration(Duration::from_millis(m.max(0) as u64)))
}

fn local(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(tz.clone()).strftime("%d/%m/%Y %H:%M").to_string())
        .unwrap_or_default()
}

/// Renders a report; `tz` is the instance time zone.
pub fn render(report: &Report, format: Format, tz: &jiff::tz::TimeZone) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default(),
        Format::Csv => csv(report),
        Format::Md => markdown(report, tz),
        Format::Html => html(report, tz),
    }
}

fn csv(report: &Report) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "level",
        "id",
        "name",
        "objective",
        "uptime",
        "met",
        "up_ms",
        "down_ms",
        "maintenance_ms",
        "no_data_ms",
        "excluded_ms",
        "incidents",
        "mtta_ms",
        "mttr_ms",
        "longest_outage_ms",
    ]);
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    let ms = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    let mut row = |level: &str, f: &Figures| {
        let a = &f.accounting;
        let _ = w.write_record([
            level.to_string(),
            f.id.clone(),
            f.name.clone(),
            opt(f.objective),
            opt(f.uptime),
            f.met.map(|m| m.to_string()).unwrap_or_default(),
            a.up_ms.to_string(),
            a.down_ms.to_string(),
            a.maintenance_ms.to_string(),
            a.no_data_ms.to_string(),
            a.excluded_ms.to_string(),
            f.incidents.to_string(),
            ms(f.mtta_ms),
            ms(f.mttr_ms),
            ms(f.longest_outage_ms),
        ]);
    };
    for s in &report.systems {
        row("system", &s.figures);
        for c in &s.checks {
            row("check", c);
            for v in &c.vantages {
                row("vantage", v);
            }
        }
    }
    // A byte-order mark, so spreadsheet programs read the Vietnamese names as UTF-8.
    format!("\u{feff}{}", String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default())
}

/// Text from outside (a target's answer in a cause, a name, a reason) as Markdown shows it
/// literally: no HTML, no emphasis, no links or images, on one line.
fn md_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '|' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

fn markdown(report: &Report, tz: &jiff::tz::TimeZone) -> String {
    let vi = report.language == "vi";
    let mut out = String::new();
    let title = if vi { "Báo cáo thời gian hoạt động" } else { "Uptime report" };
    out.push_str(&format!("# {title} – {} – {}\n\n", md_text(&report.instance), md_text(&report.span.label)));
    let head = if vi {
        "| Hệ thống / kiểm tra | Cam kết | Đạt được | Đạt? | Hoạt động | Gián đoạn | Bảo trì | Không có dữ liệu | Loại trừ | Sự cố | MTTA | MTTR | Dài nhất |"
    } else {
        "| System / check | Objective | Achieved | Met | Up | Down | Maintenance | No data | Excluded | Incidents | MTTA | MTTR | Longest |"
    };
    out.push_str(head);
    out.push_str("\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let line = |f: &Figures, system: bool| {
        let a = &f.accounting;
        let met = match f.met {
            Some(true) => {
                if vi {
                    "đạt"
                } else {
                    "met"
                }
            }
            Some(false) => {
                if vi {
                    "KHÔNG ĐẠT"
                } else {
                    "MISSED"
                }
            }
            None => "–",
        };
        format!(
            "| {} | {} | {} | {met} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            if system { format!("**{}**", md_text(&f.name)) } else { format!("↳ {}", md_text(&f.name)) },
            pct(f.objective, vi),
            pct(f.uptime, vi),
            dur(Some(a.up_ms)),
            dur(Some(a.down_ms)),
            dur(Some(a.maintenance_ms)),
            dur(Some(a.no_data_ms)),
            dur(Some(a.excluded_ms)),
            f.incidents,
            dur(f.mtta_ms),
            dur(f.mttr_ms),
            dur(f.longest_outage_ms)
        )
    };
    for s in &report.systems {
        out.push_str(&line(&s.figures, true));
        for c in &s.checks {
            out.push_str(&line(c, false));
            for v in &c.vantages {
                let from = if vi { "từ điểm đo" } else { "from" };
                let named = Figures { name: format!("{from} {}", v.name), ..v.clone() };
                out.push_str(&line(&named, false).replacen("↳", "  ↳↳", 1));
            }
        }
    }
    let revisions = backfill_notes(report, tz);
    if !revisions.is_empty() {
        out.push_str(if vi { "\n## Dữ liệu gửi bù\n\n" } else { "\n## Back-filled data\n\n" });
        for note in revisions {
            out.push_str(&format!("- {}\n", md_text(&note)));
        }
    }
    out.push_str(if vi { "\n## Sự cố\n\n" } else { "\n## Incidents\n\n" });
    for s in &report.systems {
        for i in &s.incident_list {
            let excluded = i
                .excluded
                .as_ref()
                .map(|e| {
                    let what = if vi { "loại trừ" } else { "excluded" };
                    format!(" — {what} ({}: {})", md_text(&e.by), md_text(&e.reason))
                })
                .unwrap_or_default();
            let not_counted = match (i.critical_check, vi) {
                (true, _) => "",
                (false, true) => " (kiểm tra không quan trọng)",
                (false, false) => " (non-critical check)",
            };
            out.push_str(&format!(
                "- #{} {}{not_counted} {} → {} ({}; {} {}): {}{excluded}\n",
                i.id,
                md_text(&i.target),
                local(i.started_ms, tz),
                i.resolved_ms.map(|r| local(r, tz)).unwrap_or_else(|| "…".into()),
                dur(i.duration_ms),
                if vi { "gián đoạn trong kỳ" } else { "downtime in period" },
                dur(Some(i.downtime_ms)),
                md_text(&i.cause)
            ));
        }
    }
    out
}

/// One sentence per back-filled stretch of the span: whose measurements, of when, counted
/// when — time a report made before then showed as no data.
fn backfill_notes(report: &Report, tz: &jiff::tz::TimeZone) -> Vec<String> {
    let vi = report.language == "vi";
    report
        .backfills
        .iter()
        .map(|b| {
            let (from, to) = (b.from_ms.max(report.span.from_ms), b.to_ms.min(report.span.to_ms));
            let closed = b.counted_ms >= report.span.to_ms;
            match (vi, closed) {
                (true, c) => format!(
                    "Số liệu đo từ điểm đo {} từ {} đến {} được gửi bù về trung tâm lúc {}{}: báo cáo lập trước thời điểm đó ghi khoảng thời gian này là \"không có dữ liệu\", nay đã được tính theo số liệu đo thực tế.",
                    b.vantage, local(from, tz), local(to, tz), local(b.counted_ms, tz),
                    if c { " (sau khi kỳ báo cáo đã kết thúc)" } else { "" }
                ),
                (false, c) => format!(
                    "Measurements from vantage point {} from {} to {} were back-filled to the centre at {}{}: a report made before then showed this time as no data; it now counts as measured.",
                    b.vantage, local(from, tz), local(to, tz), local(b.counted_ms, tz),
                    if c { " (after the period closed)" } else { "" }
                ),
            }
        })
        .collect()
}

/// The daily chart as SVG bar heights (numbers only): one bar a day, 90–100% scale.
fn chart(daily: &[Option<f64>]) -> Value {
    let n = daily.len().max(1);
    let w = 600.0 / n as f64;
    let floor = daily.iter().flatten().fold(0.9f64, |m, v| m.min(*v)).min(0.9);
    let bars: Vec<Value> = daily
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Some(v) => {
                let h = ((v - floor) / (1.0 - floor) * 100.0).max(2.0);
                json!({ "x": format!("{:.1}", i as f64 * w + 1.0), "w": format!("{:.1}", (w - 2.0).max(1.0)), "y": format!("{:.1}", 110.0 - h), "h": format!("{h:.1}"), "bad": *v < 0.999, "day": i + 1, "value": format!("{:.3}%", v * 100.0) })
            }
            None => json!({ "x": format!("{:.1}", i as f64 * w + 1.0), "w": format!("{:.1}", (w - 2.0).max(1.0)), "y": "108", "h": "2", "bad": false, "none": true, "day": i + 1, "value": "–" }),
        })
        .collect();
    json!({ "bars": bars, "floor": format!("{:.0}%", floor * 100.0) })
}

fn html(report: &Report, tz: &jiff::tz::TimeZone) -> String {
    let vi = report.language == "vi";
    let fig = |f: &Figures| {
        let a = &f.accounting;
        json!({ "id": f.id, "name": f.name, "objective": pct(f.objective, vi), "uptime": pct(f.uptime, vi), "met": f.met,
                "up": dur(Some(a.up_ms)), "down": dur(Some(a.down_ms)), "maintenance": dur(Some(a.maintenance_ms)),
                "no_data": dur(Some(a.no_data_ms)), "excluded": dur(Some(a.excluded_ms)), "incidents": f.incidents,
                "mtta": dur(f.mtta_ms), "mttr": dur(f.mttr_ms), "longest": dur(f.longest_outage_ms) })
    };
    let systems: Vec<Value> = report
        .systems
        .iter()
        .map(|s| {
            let incidents: Vec<Value> = s
                .incident_list
                .iter()
                .map(|i| json!({ "id": i.id, "target": i.target, "start": local(i.started_ms, tz),
                    "end": i.resolved_ms.map(|r| local(r, tz)), "duration": dur(i.duration_ms), "downtime": dur(Some(i.downtime_ms)), "critical_check": i.critical_check, "cause": i.cause,
                    "acked_by": i.acknowledged_by, "excluded": i.excluded }))
                .collect();
            let checks: Vec<Value> = s
                .checks
                .iter()
                .map(|c| {
                    let mut v = fig(c);
                    v["vantages"] = c.vantages.iter().map(fig).collect();
                    v
                })
                .collect();
            json!({ "figures": fig(&s.figures), "checks": checks, "chart": chart(&s.daily), "incidents": incidents })
        })
        .collect();
    let mut env = Environment::new();
    if let Err(e) = env.add_template("report.html", include_str!("report.html")) {
        return format!("invalid report template: {e}");
    }
    let ctx = context! {
        vi, instance => report.instance, span => report.span.label, timezone => report.timezone,
        generated => local(report.generated_ms, tz), systems, backfills => backfill_notes(report, tz),
    };
    env.get_template("report.html")
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| format!("cannot render the report: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #13, item 10: target-controlled text is shown literally in Markdown reports.
    #[test]
    fn markdown_shows_hostile_text_literally() {
        let cause = "[BODY] (<img src=x onerror=alert(1)>) **bold** [link](http://evil.example) | cell\nline";
        let shown = md_text(cause);
        assert_eq!(
            shown,
            r"\[BODY\] \(&lt;img src=x onerror=alert\(1\)&gt;\) \*\*bold\*\* \[link\]\(http://evil.example\) \| cell line"
        );
    }
}
