//! The per-target families written piece by piece: a scrape at 50,000 targets (85 MB of
//! text) leaves in chunks, each encoded when the client has taken the last, so a scrape
//! holds one chunk at a time, never the whole text.
//!
//! Each target's record is locked only while its samples of one family are written: the
//! families of a target may come from two runs if a probe finishes mid-scrape, as with any
//! Prometheus client library (each collector is read at its own moment).

use std::ops::Bound;
use std::sync::Arc;

use super::{FAMILIES, Slot, TargetTable};
use crate::metrics::{interface_series, text};

/// Targets taken from the table under one lock.
const BATCH: usize = 256;

/// Where a scrape of the table has got to: a family, and the last target written in it.
#[derive(Debug, Default)]
pub struct TableCursor {
    family: usize,
    after: Option<u64>,
    started: bool,
}

/// The number of families, the echo histogram (the last) included.
fn family_count() -> usize {
    FAMILIES.len() + interface_series::FAMILIES.len() + 1
}

impl TargetTable {
    /// Appends samples from where `cursor` stands until `out` holds at least `budget` bytes
    /// or every family is written; false once nothing is left.
    pub fn encode_some(&self, cursor: &mut TableCursor, out: &mut String, budget: usize) -> bool {
        while cursor.family < family_count() {
            let batch = self.slots_after(cursor.after);
            if batch.is_empty() {
                *cursor = TableCursor { family: cursor.family + 1, after: None, started: false };
                continue;
            }
            for (id, slot) in batch {
                cursor.after = Some(id);
                self.encode_slot(cursor.family, &slot, out, &mut cursor.started);
                if out.len() >= budget {
                    return true;
                }
            }
        }
        false
    }

    /// Appends every family with at least one series.
    #[cfg(test)]
    pub fn encode(&self, out: &mut String) {
        let mut cursor = TableCursor::default();
        while self.encode_some(&mut cursor, out, usize::MAX) {}
    }

    /// Up to [`BATCH`] targets after `after`, in exposition order.
    fn slots_after(&self, after: Option<u64>) -> Vec<(u64, Arc<Slot>)> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.slots().range((from, Bound::Unbounded)).take(BATCH).map(|(id, s)| (*id, s.clone())).collect()
    }

    /// Appends one target's samples of family number `family` (its header first if this is
    /// the family's first sample).
    fn encode_slot(&self, family: usize, slot: &Slot, out: &mut String, started: &mut bool) {
        let readings = slot.readings();
        let Some(family) = FAMILIES.iter().chain(&interface_series::FAMILIES).nth(family) else {
            let Some(histogram) = &readings.echo_rtts else { return };
            let name = crate::metrics::ICMP_ECHO_RTT;
            if !std::mem::replace(started, true) {
                text::header(out, name, "Round trip of every echo answered since start.", "histogram");
            }
            histogram.encode(out, name, &format!("{}{}", slot.labels, self.location));
            return;
        };
        (family.samples)(&readings, &mut |extra, v| {
            if !std::mem::replace(started, true) {
                text::header(out, family.name, family.help, family.kind);
            }
            out.push_str(family.name);
            out.push('{');
            out.push_str(&slot.labels);
            for (name, value) in extra {
                text::label(out, false, name, value);
            }
            out.push_str(&self.location);
            out.push_str("} ");
            text::value(out, v);
            out.push('\n');
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetKey;
    use crate::model::Health;
    use crate::probe::ProbeOutcome;

    fn outcome() -> ProbeOutcome {
        ProbeOutcome {
            health: Health::Up,
            reason: None,
            message: String::new(),
            failed_conditions: Vec::new(),
            observations: Default::default(),
            duration: std::time::Duration::from_millis(5),
        }
    }

    /// Chunked, the text is the same as at once, and no chunk is much larger than asked.
    #[test]
    fn chunks_join_to_the_whole_exposition() {
        let table = TargetTable::new(None);
        let mut kept = Vec::new();
        for i in 0..1_000 {
            let key = TargetKey { system: "s".into(), check: "c".into(), target: format!("t{i}") };
            let t = table.add(&key, "http", &[]);
            t.record(&outcome(), 1_790_000_000.0);
            kept.push(t);
        }
        let mut whole = String::new();
        table.encode(&mut whole);
        let (mut joined, mut cursor, mut chunks) = (String::new(), TableCursor::default(), 0);
        loop {
            let mut chunk = String::new();
            let more = table.encode_some(&mut cursor, &mut chunk, 4096);
            assert!(chunk.len() < 4096 + 1024, "a chunk of {} bytes", chunk.len());
            joined.push_str(&chunk);
            chunks += 1;
            if !more {
                break;
            }
        }
        assert_eq!(joined, whole);
        assert!(chunks >= whole.len() / (4096 + 1024), "{chunks} chunks for {} bytes", whole.len());
        assert_eq!(whole.matches("# TYPE vigil_check_up gauge").count(), 1);
        assert_eq!(whole.lines().filter(|l| l.starts_with("vigil_check_up{")).count(), 1_000);
    }
}
