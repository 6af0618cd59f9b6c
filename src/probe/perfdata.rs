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

/// At most this much perfdata text is read (a plugin forwarding a hostile host's text must
/// not make the monitor parse or keep megabytes).
pub const MAX_PERFDATA_BYTES: usize = 8 * 1024;
/// At most this many items are kept from one run.
pub const MAX_PERFDATA_ITEMS: usize = 256;

/// Parses the perfdata part; malformed items are skipped. Linear in the text, without
/// recursion, and bounded by [`MAX_PERFDATA_BYTES`] and [`MAX_PERFDATA_ITEMS`].
pub fn parse_perfdata(text: &str) -> Vec<Perfdata> {
    let mut items = Vec::new();
    let mut rest = truncate(text, MAX_PERFDATA_BYTES).trim_start();
    while !rest.is_empty() && items.len() < MAX_PERFDATA_ITEMS {
        let Some((label, after)) = split_label(rest) else {
            break;
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

/// The longest prefix of `text` of at most `max` bytes that ends between two items (at
/// white space), so that no item is read cut in half.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    match text[end..].starts_with(char::is_whitespace) {
        true => head,
        false => head.rfind(char::is_whitespace).map_or("", |ws| &head[..ws]),
    }
}

/// Splits `label=` off the front, skipping malformed words before it; returns the label
/// and what follows the `=`. An unquoted label is one word, so only that word is searched.
fn split_label(mut text: &str) -> Option<(String, &str)> {
    loop {
        if let Some(quoted) = text.strip_prefix('\'') {
            return split_quoted_label(quoted);
        }
        let word_end = text.find(char::is_whitespace).unwrap_or(text.len());
        match text[..word_end].find('=') {
            Some(eq) if eq > 0 => return Some((text[..eq].to_string(), &text[eq + 1..])),
            _ => text = text[word_end..].trim_start(),
        }
        if text.is_empty() {
            return None;
        }
    }
}

/// A quoted label (`''` is a quote inside it), after its opening quote.
fn split_quoted_label(quoted: &str) -> Option<(String, &str)> {
    let mut label = String::new();
    let mut chars = quoted.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                label.push('\'');
                chars.next();
                continue;
            }
            return quoted[i + 1..].strip_prefix('=').map(|v| (label, v));
        }
        label.push(c);
    }
    None
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
        (Some(n.parse::<f64>().ok().filter(|v| v.is_finite())?), u.to_string())
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

    /// Issue #14, item 1: `OK |` and 20,000 short words then `=1` (under the 64 KiB output
    /// cap) overflowed the stack (one recursion per word) and aborted the daemon.
    #[test]
    fn a_perfdata_bomb_neither_recurses_nor_crashes() {
        let bomb = format!("OK |{}=1", " a".repeat(20_000));
        let out = parse_output(&bomb);
        assert_eq!(out.message, "OK");
        assert!(out.perfdata.is_empty(), "the final item lies beyond the 8 KiB read");
        // Also on a thread with a small stack: nothing here may grow with the input.
        let small = std::thread::Builder::new().stack_size(64 * 1024);
        let words = format!("{}x=1", "a ".repeat(4_000));
        let parsed = small.spawn(move || parse_perfdata(&words)).expect("thread").join().expect("no overflow");
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].label, "x");
    }

    #[test]
    fn perfdata_is_bounded() {
        let many: String = (0..1_000).map(|i| format!("l{i}=1 ")).collect();
        assert_eq!(parse_perfdata(&many).len(), MAX_PERFDATA_ITEMS);
        let long = format!("big={}1", "9".repeat(20_000));
        assert!(parse_perfdata(&long).is_empty(), "an item cut at 8 KiB is malformed, not misread");
        let multibyte = format!("ư={}", "ư".repeat(10_000));
        assert!(parse_perfdata(&multibyte).is_empty(), "cut on a character boundary, no panic");
        let overflow = format!("big=1{}", "0".repeat(400));
        assert!(parse_perfdata(&overflow).is_empty(), "a value beyond f64 is malformed, not infinite");
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
