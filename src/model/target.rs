//! A check target's identity: what carries state, series and incidents.

use std::fmt;

/// The identity of one check target: what carries state, series and incidents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    pub system: String,
    pub check: String,
    /// The target's name; equal to `check` when the check is not expanded.
    pub target: String,
}

impl TargetKey {
    /// `system/check`, or `system/check/target` for an expanded check.
    pub fn id(&self) -> String {
        if self.target == self.check {
            format!("{}/{}", self.system, self.check)
        } else {
            format!("{}/{}/{}", self.system, self.check, self.target)
        }
    }
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}
