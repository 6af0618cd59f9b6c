//! `vigil_icmp_echo_rtt_seconds`: every echo's round trip since start, per target, as a
//! Prometheus histogram — the latency distribution (SmokePing's "smoke") that Grafana
//! draws as a heatmap and `histogram_quantile` reads.

use std::time::Duration;

use super::text;

/// Upper bounds of the buckets, in seconds (the last, `+Inf`, is implied).
pub const BUCKETS: [f64; 13] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

/// One target's echo round trips so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EchoHistogram {
    /// Echoes per bucket (not cumulative), the last one for above every bound.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl EchoHistogram {
    /// Counts the round trips of one run.
    pub fn observe(&mut self, rtts: &[Duration]) {
        for rtt in rtts {
            let seconds = rtt.as_secs_f64();
            let bucket = BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS.len());
            self.counts[bucket] += 1;
            self.sum += seconds;
        }
    }

    /// Appends this target's `_bucket`, `_sum` and `_count` samples; `labels` are the
    /// target's rendered label pairs (without braces).
    pub fn encode(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count;
            let le = BUCKETS.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            out.push_str(name);
            out.push_str("_bucket{");
            out.push_str(labels);
            text::label(out, false, "le", &le);
            out.push_str("} ");
            text::value(out, cumulative as f64);
            out.push('\n');
        }
        for (suffix, v) in [("_sum", self.sum), ("_count", cumulative as f64)] {
            out.push_str(name);
            out.push_str(suffix);
            out.push('{');
            out.push_str(labels);
            out.push_str("} ");
            text::value(out, v);
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_every_echo() {
        let mut h = EchoHistogram::default();
        h.observe(&[
            Duration::from_micros(300),
            Duration::from_millis(3),
            Duration::from_millis(3),
            Duration::from_secs(9),
        ]);
        let mut out = String::new();
        h.encode(&mut out, "x", "target=\"a\"");
        assert!(out.contains("x_bucket{target=\"a\",le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{target=\"a\",le=\"0.002\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{target=\"a\",le=\"0.005\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{target=\"a\",le=\"5\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{target=\"a\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count{target=\"a\"} 4\n"), "{out}");
        assert!(out.contains("x_sum{target=\"a\"} 9.0063"), "{out}");
    }
}
