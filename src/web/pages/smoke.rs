//! The smoke graph of an ICMP check (SmokePing's): the range cut into windows, and for
//! each every echo's round trip pooled — min to max and 10–90 % as shades, the median as
//! a tick coloured by the window's loss. Server-rendered SVG of a few paths (no script),
//! a few KB even for 180 windows.

use serde_json::{Value, json};

use crate::probe::icmp::parse_echoes;
use crate::store::query::StoredResult;

/// Width and height of the drawing (the viewBox).
const WIDTH: f64 = 720.0;
const PLOT_TOP: f64 = 12.0;
const PLOT_BOTTOM: f64 = 150.0;

/// One window's pooled echoes.
#[derive(Debug, Default, Clone, PartialEq)]
struct Window {
    sent: u32,
    /// Round trips (ms), sorted once the window is full.
    rtts: Vec<f64>,
}

impl Window {
    fn quantile(&self, q: f64) -> f64 {
        let i = ((self.rtts.len() - 1) as f64 * q).round() as usize;
        self.rtts[i]
    }

    fn loss(&self) -> f64 {
        1.0 - self.rtts.len() as f64 / f64::from(self.sent.max(1))
    }
}

/// The windows a range is cut into: 10 minutes over 24 h, an hour over 7 d, 4 h over 30 d.
pub(super) fn windows_for(range_ms: i64) -> usize {
    match range_ms {
        r if r <= 86_400_000 => 144,
        r if r <= 7 * 86_400_000 => 168,
        _ => 180,
    }
}

/// The graph's paths and labels for the template, or null when no result holds echoes.
pub(super) fn smoke_graph(results: &[StoredResult], from: i64, to: i64, count: usize) -> Value {
    let span = (to - from).max(1);
    let mut windows = vec![Window::default(); count];
    for r in results {
        let Some((sent, rtts)) = r.echoes.as_deref().and_then(parse_echoes) else { continue };
        let i = (((r.at_ms - from).max(0) as i128 * count as i128 / i128::from(span)) as usize).min(count - 1);
        windows[i].sent += u32::from(sent);
        windows[i].rtts.extend(rtts);
    }
    if windows.iter().all(|w| w.sent == 0) {
        return Value::Null;
    }
    for w in &mut windows {
        w.rtts.sort_by(f64::total_cmp);
    }
    let top =
        nice_ceiling(windows.iter().filter(|w| !w.rtts.is_empty()).map(|w| w.quantile(0.9)).fold(0.0, f64::max) * 1.25);
    let y = |ms: f64| (PLOT_BOTTOM - ms.min(top) / top * (PLOT_BOTTOM - PLOT_TOP)).round();
    let step = WIDTH / count as f64;
    let mut shades = [String::new(), String::new()];
    let mut medians = [String::new(), String::new(), String::new(), String::new()];
    let mut lost = String::new();
    for (i, w) in windows.iter().enumerate() {
        let x = (i as f64 * step + step / 2.0).round();
        if w.sent == 0 {
            continue;
        }
        let class = loss_class(w.loss());
        if w.rtts.is_empty() {
            lost.push_str(&format!("M{x} {PLOT_TOP}V{PLOT_BOTTOM}"));
            continue;
        }
        for (shade, (lo, hi)) in shades.iter_mut().zip([(0.0, 1.0), (0.1, 0.9)]) {
            let (y_hi, y_lo) = (y(w.quantile(hi)), y(w.quantile(lo)));
            shade.push_str(&format!("M{x} {y_hi}V{}", y_lo.max(y_hi + 1.0)));
        }
        let half = (step / 2.0).max(1.0).round();
        medians[class].push_str(&format!("M{} {}h{}", x - half, y(w.quantile(0.5)), 2.0 * half));
    }
    let width = step.ceil().max(1.0);
    json!({
        "width": width,
        "range": shades[0], "inner": shades[1], "lost": lost,
        "median": medians.iter().zip(LOSS_COLOURS).map(|(d, c)| json!({ "d": d, "colour": c })).filter(|m| m["d"] != "").collect::<Vec<_>>(),
        "top": format_ms(top), "half": format_ms(top / 2.0), "y_half": y(top / 2.0),
    })
}

/// Median colours by loss: none, up to 5 %, up to 20 %, more.
const LOSS_COLOURS: [&str; 4] = ["#1a7f37", "#0969da", "#bf8700", "#cf222e"];

fn loss_class(loss: f64) -> usize {
    match loss {
        l if l <= 0.0 => 0,
        l if l <= 0.05 => 1,
        l if l <= 0.2 => 2,
        _ => 3,
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ ms at or above `ms` (at least 0.1 ms).
fn nice_ceiling(ms: f64) -> f64 {
    let ms = ms.max(0.1);
    let magnitude = 10f64.powf(ms.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|v| *v >= ms * 0.999_999).unwrap_or(10.0 * magnitude)
}

fn format_ms(ms: f64) -> String {
    if ms < 1.0 { format!("{ms:.1} ms") } else { format!("{ms:.0} ms") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(at_ms: i64, echoes: &str) -> StoredResult {
        StoredResult {
            at_ms,
            health: "up".into(),
            reason: None,
            duration_ms: 1.0,
            message: String::new(),
            echoes: Some(echoes.into()),
        }
    }

    /// The template's SVG, drawn from the graph's values as check.html does.
    fn svg(g: &Value) -> String {
        let medians: String = g["median"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "<path stroke=\"{}\" stroke-width=\"2\" d=\"{}\"/>",
                    m["colour"].as_str().unwrap(),
                    m["d"].as_str().unwrap()
                )
            })
            .collect();
        format!(
            "<svg class=\"smoke\" viewBox=\"0 0 720 160\"><path stroke=\"#ddd\" stroke-width=\"{w}\" d=\"{}\"/><path stroke=\"#999\" stroke-width=\"{w}\" d=\"{}\"/><path stroke=\"#cf222e\" stroke-width=\"{w}\" opacity=\".3\" d=\"{}\"/>{medians}</svg>",
            g["range"].as_str().unwrap(),
            g["inner"].as_str().unwrap(),
            g["lost"].as_str().unwrap(),
            w = g["width"]
        )
    }

    #[test]
    fn a_full_week_of_minutely_runs_draws_under_twenty_kilobytes() {
        let week = 7 * 86_400_000;
        // One run a minute, five echoes, some lost, round trips spread over 1–300 ms.
        let results: Vec<StoredResult> = (0..week / 60_000)
            .map(|m| {
                let rtts: Vec<String> =
                    (0..(5 - (m % 3) * 2)).map(|e| format!("{:.2}", 1.0 + ((m * 7 + e * 13) % 300) as f64)).collect();
                result(m * 60_000, &format!("5:{}", rtts.join(",")))
            })
            .collect();
        for range in [86_400_000, week] {
            let g = smoke_graph(&results, week - range, week, windows_for(range));
            let drawn = svg(&g);
            assert!(drawn.len() < 20_000, "{} bytes for range {range}", drawn.len());
            eprintln!("range {range}: {} bytes", drawn.len());
            assert!(g["median"].as_array().unwrap().iter().any(|m| m["colour"] == "#cf222e"), "40 % loss is red");
        }
    }

    #[test]
    fn quantiles_loss_and_scale_are_right() {
        // Window 0: ten echoes 1..=10 ms, none lost; window 1: all lost; 2: nothing sent.
        let results = vec![result(0, "5:1,2,3,4,5"), result(10, "5:6,7,8,9,10"), result(1_000, "3:")];
        let g = smoke_graph(&results, 0, 3_000, 3);
        assert_eq!(g["top"], "20 ms", "p90 9 ms × 1.25 → 20 ms");
        assert_eq!(g["median"].as_array().unwrap().len(), 1);
        assert_eq!(g["median"][0]["colour"], "#1a7f37");
        // The median (6 ms of 1..=10, nearest rank) sits at 150 - 6/20 × 138.
        assert_eq!(g["median"][0]["d"], "M0 109h240", "{g}");
        // Min 1 ms and max 10 ms; 10–90 % is 2 and 9 ms (nearest rank).
        assert_eq!(g["range"], "M120 81V143");
        assert_eq!(g["inner"], "M120 88V136");
        assert_eq!(g["lost"], "M360 12V150");
        assert_eq!(smoke_graph(&[], 0, 3_000, 3), Value::Null);
    }
}
