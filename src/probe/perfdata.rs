//! Nagios plugin output: the first line is the message, performance data follows `|` as
//! `'label'=value[UOM];warn;crit;min;max` items separated by spaces (labels may be quoted,
//! `''` is a quote inside a quoted label, `U` is an unknown value).

use serde::Serialize;

/// One performance data item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Perfdata {
    pub label: String,
    /// None for `U` (the plugin could not measure it).
    pub value: Option<f64>,
    /// Unit of measure as written (`s`, `ms`, `us`, `%`, `B`, `KB`, `MB`, `TB`, `c`, or empty).
    pub uom: String,
    pub warn: Option<String>,
    pub crit: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Plugin output split into its message, the rest of the text, and perfdata.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PluginOutput {
    pub message: String,
    pub long_text: String,
    pub perfdata: Vec<Perfdata>,
}

/// Parses a plugin's standard output.
pub fn parse_output(output: &str) -> PluginOutput {
    let mut lines = output.lines();
    let first = lines.next().unwrap_or_default();
    let (message, mut perf_text) = match first.split_once('|') {
        Some((m, p)) => (m.trim().to_string(), p.trim().to_string()),
        None => (first.trim().to_string(), String::new()),
    };
    let mut long = Vec::new();
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf_text.push(' ');
            perf_text.push_str(line.trim());
        } else if let Some((text, perf)) = line.split_once('|') {
            long.push(text.trim_end().to_string());
            perf_text.push(' ');
            perf_text.push_str(perf.trim());
            in_perf = true;
        } else {
            long.push(line.to_string());
        }
    }
    PluginOutput { message, long_text: long.join("\n"), perfdata: parse_perfdata(&perf_text) }
}

/// Parses the perfdata part; malformed items are skipped.
pub fn parse_perfdata(text: &str) -> Vec<Perfdata> {
    let mut items = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (label, after) = match split_label(rest) {
            Some(x) => x,
            None => break,
        };
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (spec, tail) = after.split_at(end);
        if let Some(item) = parse_item(label, spec) {
            items.push(item);
        }
        rest = tail.trim_start();
    }
    items
}

/// Splits `label=` off the front; returns the label and what follows the `=`.
fn split_label(text: &str) -> Option<(String, &str)> {
    if let Some(quoted) = text.strip_prefix('\'') {
        let mut label = String::new();
        let mut chars = quoted.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if matches!(chars.peek(), Some((_, '\''))) {
                    label.push('\'');
                    chars.next();
                    continue;
                }
                let after = &quoted[i + 1..];
                return after.strip_prefix('=').map(|v| (label, v));
            }
            label.push(c);
        }
        None
    } else {
        let eq = text.find('=')?;
        let label = &text[..eq];
        if label.is_empty() || label.contains(char::is_whitespace) {
            // Skip a malformed word and carry on with the next.
            let skip = text.find(char::is_whitespace).unwrap_or(text.len());
            return split_label(text[skip..].trim_start()).or(None);
        }
        Some((label.to_string(), &text[eq + 1..]))
    }
}

fn parse_item(label: String, spec: &str) -> Option<Perfdata> {
    let mut fields = spec.split(';');
    let first = fields.next()?;
    let number_end =
        first.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))).unwrap_or(first.len());
    let (value, uom) = if first == "U" {
        (None, String::new())
    } else {
        let (n, u) = first.split_at(number_end);
        (Some(n.parse::<f64>().ok()?), u.to_string())
    };
    let text = |f: Option<&str>| f.filter(|s| !s.is_empty()).map(str::to_string);
    let warn = text(fields.next());
    let crit = text(fields.next());
    let min = fields.next().and_then(|s| s.parse().ok());
    let max = fields.next().and_then(|s| s.parse().ok());
    Some(Perfdata { label, value, uom, warn, crit, min, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfdata_table() {
        /// name, perfdata text, expected (label, value, unit)
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, Option<f64>, &'a str)]);
        let cases: &[Case] = &[
            (
                "time and size",
                "time=0.002s;;;0.000 size=1234B;;;0",
                &[("time", Some(0.002), "s"), ("size", Some(1234.0), "B")],
            ),
            ("quoted label with space", "'disk used'=80%;90;95;0;100", &[("disk used", Some(80.0), "%")]),
            ("escaped quote", "'it''s'=1c", &[("it's", Some(1.0), "c")]),
            ("unknown value", "rta=U;;;;", &[("rta", None, "")]),
            ("no unit", "users=3;5;10", &[("users", Some(3.0), "")]),
            ("negative and ms", "offset=-12.5ms;100;200", &[("offset", Some(-12.5), "ms")]),
            ("garbage skipped", "garbage rta=1ms nope=", &[("rta", Some(1.0), "ms")]),
            ("empty", "", &[]),
        ];
        for (name, text, expected) in cases {
            let got: Vec<(String, Option<f64>, String)> =
                parse_perfdata(text).into_iter().map(|p| (p.label, p.value, p.uom)).collect();
            let want: Vec<(String, Option<f64>, String)> =
                expected.iter().map(|(l, v, u)| (l.to_string(), *v, u.to_string())).collect();
            assert_eq!(got, want, "case {name}");
        }
    }

    #[test]
    fn thresholds_and_ranges() {
        let p = &parse_perfdata("rta=0.05ms;100.000;500.000;0;")[0];
        assert_eq!(
            (p.warn.as_deref(), p.crit.as_deref(), p.min, p.max),
            (Some("100.000"), Some("500.000"), Some(0.0), None)
        );
    }

    #[test]
    fn output_with_long_text_and_perfdata_on_later_lines() {
        let out = parse_output(
            "DISK OK - free space | /=2643MB;5948;5958;0;5968\n/ 15272 MB (77%);\n/boot 68 MB (69%); | /boot=68MB;88;93;0;98\n/home=69357MB;253404;253409;0;253414\n",
        );
        assert_eq!(out.message, "DISK OK - free space");
        let labels: Vec<&str> = out.perfdata.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["/", "/boot", "/home"]);
        assert!(out.long_text.contains("15272 MB"));
    }
}
