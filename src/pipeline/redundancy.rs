//! Redundant parents (`depends_on_any`, issue #21, item 9) — a commune office reached over
//! two links, say: the office is unreachable only when every one of its redundant parents
//! fails (then its failure is theirs, like any dependency's), and a parent failing while a
//! peer of it still works costs redundancy, not service — its incident is a warning,
//! "redundancy lost", naming the peers still up (Icinga's redundancy groups). The last
//! parent of a group to fail opens a critical incident: the root cause, the one page that
//! lists the unreachable offices.

use std::collections::{BTreeSet, HashMap};

use super::Pipeline;
use super::targets::Entry;

/// Who depends on whom, by parent: found in a lookup, not by walking every target on each
/// transition (at 50,000 targets, 6,000 incidents opening at start walked 3·10⁸ entries).
#[derive(Debug, Default)]
pub(super) struct Dependents {
    /// Parent id → the targets listing it in `depends_on` or `depends_on_any`.
    children: HashMap<String, Vec<String>>,
    /// Parent id → the distinct `depends_on_any` groups it belongs to.
    groups: HashMap<String, Vec<Vec<String>>>,
}

impl Dependents {
    /// The index of `entries`.
    pub(super) fn of(entries: &HashMap<String, Box<Entry>>) -> Dependents {
        let mut index = Dependents::default();
        for (id, e) in entries {
            for parent in e.depends_on.iter().chain(&e.depends_on_any) {
                index.children.entry(parent.clone()).or_default().push(id.clone());
            }
            for member in &e.depends_on_any {
                let groups = index.groups.entry(member.clone()).or_default();
                if !groups.contains(&e.depends_on_any) {
                    groups.push(e.depends_on_any.clone());
                }
            }
        }
        index
    }

    /// The targets that depend on `parent`.
    pub(super) fn children(&self, parent: &str) -> &[String] {
        self.children.get(parent).map_or(&[], Vec::as_slice)
    }
}

/// On the incident of a redundant parent whose peers still work (`left`): what is lost,
/// and what is left.
pub(super) fn mark_lost(opening: &mut crate::alert::engine::Opening, left: Option<&[String]>) {
    if let Some(left) = left {
        opening.cause = format!("redundancy lost (still up: {}): {}", left.join(", "), opening.cause);
        opening.reason = Some("redundancy_lost".into());
    }
}

impl Pipeline {
    /// The parents whose failure explains `target`'s: the failing ones of its `depends_on`,
    /// and its whole `depends_on_any` group when every member of it fails.
    pub(super) fn failing_parents(&self, target: &str) -> Vec<String> {
        let Some(entry) = self.entries.get(target) else { return Vec::new() };
        let mut failing = self.dependency_failing(&entry.depends_on);
        let group = &entry.depends_on_any;
        if !group.is_empty() && group.iter().all(|p| self.failing(p)) {
            failing.extend(group.iter().cloned());
        }
        failing
    }

    /// When `target` is a redundant parent and, in every group it belongs to, a peer of it
    /// still works: those peers (its failure costs redundancy only). None when it is in no
    /// group, or when some group has no other working member left.
    pub(super) fn redundancy_left(&self, target: &str) -> Option<Vec<String>> {
        let groups = self.dependents.groups.get(target)?;
        let mut left = BTreeSet::new();
        for group in groups {
            let working: Vec<&String> = group.iter().filter(|p| *p != target && !self.failing(p)).collect();
            if working.is_empty() {
                return None;
            }
            left.extend(working.into_iter().cloned());
        }
        Some(left.into_iter().collect())
    }
}
