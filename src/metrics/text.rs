//! The Prometheus text exposition format (0.0.4), written straight into a `String`: used
//! where the `prometheus` crate's `gather()` would first copy every series into protobuf
//! structs (the per-target families at 10,000 targets, and each `/probe` answer).

use std::fmt::Write;

/// Appends `# HELP` and `# TYPE` lines for a family.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape(out, help, b"\\\n");
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// Appends `name="value"` with the value escaped, preceded by a comma unless `first`.
pub fn label(out: &mut String, first: bool, name: &str, value: &str) {
    if !first {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    escape(out, value, b"\\\"\n");
    out.push('"');
}

/// Appends `text` with each of `special` (ASCII: backslash, newline, maybe the double
/// quote) escaped; the runs between them are copied whole (most texts have none).
fn escape(out: &mut String, text: &str, special: &[u8]) {
    let mut rest = text;
    while let Some(at) = rest.bytes().position(|b| special.contains(&b)) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Appends a sample value: shortest round-trip decimal, `+Inf`, `-Inf` or `NaN`.
pub fn value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Appends one sample line: `name{labels} value`; `labels` is already rendered
/// (comma-separated pairs, possibly empty).
pub fn sample(out: &mut String, name: &str, labels: &str, v: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
    out.push(' ');
    value(out, v);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_labels_and_help() {
        let mut out = String::new();
        header(&mut out, "m", "a \\ b\nc", "gauge");
        let mut labels = String::new();
        label(&mut labels, true, "a", "x\"y\\z\nw");
        label(&mut labels, false, "b", "ệ");
        sample(&mut out, "m", &labels, 1.5);
        sample(&mut out, "m", "", f64::INFINITY);
        assert_eq!(out, "# HELP m a \\\\ b\\nc\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\nw\",b=\"ệ\"} 1.5\nm +Inf\n");
        // Specials first, last, side by side, next to multi-byte characters.
        let mut edges = String::new();
        label(&mut edges, true, "e", "\"\\\\\nệ\"ệ\n");
        assert_eq!(edges, "e=\"\\\"\\\\\\\\\\nệ\\\"ệ\\n\"");
        let mut plain = String::new();
        header(&mut plain, "m", "\"quotes\" stay in help", "counter");
        assert_eq!(plain, "# HELP m \"quotes\" stay in help\n# TYPE m counter\n");
    }

    #[test]
    fn values() {
        let mut out = String::new();
        for v in [0.0, -2.0, 1_790_000_000.25, 1e-7, f64::NAN, f64::NEG_INFINITY] {
            value(&mut out, v);
            out.push(' ');
        }
        assert_eq!(out, "0 -2 1790000000.25 0.0000001 NaN -Inf ");
    }
}
