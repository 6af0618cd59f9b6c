//! `vigil run --shard i/n`: several independent instances (no shared store) cover one
//! configuration, each target owned by exactly one, chosen by rendezvous hashing of its id
//! (highest random weight): the assignment is stable, needs no coordination, and going from
//! n to n + 1 shards moves only the targets the new shard wins — about 1/(n + 1) of them.
//!
//! A target depends on targets of other shards (its `depends_on`, the uplink): those are
//! kept as helpers, probed and judged here only so that root cause is decided as without
//! shards; their own incidents are announced, and their series exported, by their owner.

use std::collections::{BTreeMap, BTreeSet};

use super::Config;

/// One shard of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `i/n` with 0 ≤ i < n.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("\"{s}\" is not a shard: expected i/n with 0 <= i < n, e.g. 0/3");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard among `count` that owns `target_id`: the one whose weight for it is highest
/// (xxh3 of the id, seeded by the shard number — stable across versions and machines).
pub fn owner(target_id: &str, count: usize) -> usize {
    (0..count).max_by_key(|s| xxhash_rust::xxh3::xxh3_64_with_seed(target_id.as_bytes(), *s as u64)).unwrap_or(0)
}

/// The member among `members` that owns `target_id` by rendezvous hashing (the weight of a
/// member is xxh3 of the id seeded by xxh3 of its name); None without members.
pub fn owner_among<'a>(target_id: &str, members: &'a [String]) -> Option<&'a String> {
    members.iter().max_by_key(|m| weight(target_id, m))
}

/// A member's rendezvous weight for a target (ties broken by name).
fn weight<'a>(target_id: &str, member: &'a String) -> (u64, &'a String) {
    let seed = xxhash_rust::xxh3::xxh3_64(member.as_bytes());
    (xxhash_rust::xxh3::xxh3_64_with_seed(target_id.as_bytes(), seed), member)
}

/// The members that run `target_id` when `replicas` of them probe each target: the owner
/// first, then its standbys, in rendezvous order (the owner is [`owner_among`]'s).
pub fn runners_among<'a>(target_id: &str, members: &'a [String], replicas: usize) -> Vec<&'a String> {
    let mut ranked: Vec<&String> = members.iter().collect();
    ranked.sort_by_key(|m| std::cmp::Reverse(weight(target_id, m)));
    ranked.truncate(replicas.max(1));
    ranked
}

impl Shard {
    /// Whether this shard owns `target_id`.
    pub fn owns(&self, target_id: &str) -> bool {
        owner(target_id, self.count) == self.index
    }

    /// `config` with only this shard's targets (see [`keep_owned`]).
    pub fn apply(&self, config: Config) -> Config {
        keep_owned(config, &|id| {
            let o = owner(id, self.count);
            (o != self.index).then(|| format!("shard {o}"))
        })
    }
}

/// `config` with only the targets `other_owner` gives no other owner for, plus the helpers
/// they depend on (directly or through other helpers), recorded in [`Config::helpers`] with
/// their owner (the others in [`Config::elsewhere`]); checks left without targets are
/// dropped (their systems stay, for pages and reports).
pub fn keep_owned(config: Config, other_owner: &dyn Fn(&str) -> Option<String>) -> Config {
    keep_owned_with_standby(config, other_owner, &|_| false)
}

/// [`keep_owned`], also keeping as helpers the targets `standby` names (this node probes
/// them as a standby of their owner: `cluster.replicas`).
pub fn keep_owned_with_standby(
    mut config: Config,
    other_owner: &dyn Fn(&str) -> Option<String>,
    standby: &dyn Fn(&str) -> bool,
) -> Config {
    let parents: BTreeMap<String, Vec<String>> = config
        .targets()
        .map(|(_, c, t)| (t.id().to_string(), [&c.depends_on[..], &c.depends_on_any[..]].concat()))
        .collect();
    let mut keep: BTreeSet<String> = parents.keys().filter(|id| other_owner(id).is_none()).cloned().collect();
    let mut helpers: BTreeSet<String> =
        parents.keys().filter(|id| !keep.contains(*id) && standby(id)).cloned().collect();
    let mut todo: Vec<String> = keep.iter().chain(&helpers).flat_map(|id| parents[id].clone()).collect();
    if !keep.is_empty() {
        todo.extend(config.instance.uplink.iter().cloned());
    }
    while let Some(parent) = todo.pop() {
        if parents.contains_key(&parent) && !keep.contains(&parent) && helpers.insert(parent.clone()) {
            todo.extend(parents[&parent].clone());
        }
    }
    keep.extend(helpers.iter().cloned());
    config.elsewhere = parents
        .keys()
        .filter(|id| !keep.contains(*id))
        .map(|id| (id.clone(), other_owner(id).unwrap_or_default()))
        .collect();
    for system in &mut config.systems {
        for check in &mut system.checks {
            if check.targets.iter().any(|t| !keep.contains(t.id())) {
                std::sync::Arc::make_mut(check).targets.retain(|t| keep.contains(t.id()));
            }
        }
        system.checks.retain(|c| !c.targets.is_empty());
    }
    config.helpers = helpers.into_iter().map(|id| (id.clone(), other_owner(&id).unwrap_or_default())).collect();
    config
}

/// `config` as cluster node `node` runs it among the live nodes (name, labels): the targets
/// it owns, plus — with `replicas` above 1 — those it stands by for. A check with `nodes:`
/// runs only on nodes with one of those labels; on every live node when none has one
/// (duplicates over silence).
pub fn node_part(config: Config, live: &[(String, Vec<String>)], node: &str, replicas: usize) -> Config {
    let all: Vec<String> = live.iter().map(|(name, _)| name.clone()).collect();
    let able = |wanted: &[String]| -> Vec<String> {
        let able: Vec<String> = live
            .iter()
            .filter(|(_, labels)| labels.iter().any(|l| wanted.contains(l)))
            .map(|(n, _)| n.clone())
            .collect();
        if able.is_empty() { all.clone() } else { able }
    };
    let wanted: std::collections::HashMap<String, Vec<String>> = config
        .targets()
        .filter(|(_, c, _)| !c.nodes.is_empty())
        .map(|(_, c, t)| (t.id().to_string(), able(&c.nodes)))
        .collect();
    let candidates = |id: &str| wanted.get(id).unwrap_or(&all);
    keep_owned_with_standby(
        config,
        &|id| owner_among(id, candidates(id)).filter(|o| *o != node).map(|o| format!("node {o}")),
        &|id| runners_among(id, candidates(id), replicas).iter().skip(1).any(|r| *r == node),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_a_check_on_their_nodes_and_replicas_add_a_standby() {
        let text = "systems:\n  - id: web\n    checks:\n      - id: local\n        nodes: [dc-a]\n        tcp: {}\n        targets:\n"
            .to_string()
            + &(0..20).map(|i| format!("          - {{ name: l{i}, address: \"127.0.0.1:{}\" }}\n", 1000 + i)).collect::<String>()
            + "      - id: any\n        tcp: {}\n        targets:\n"
            + &(0..20).map(|i| format!("          - {{ name: a{i}, address: \"127.0.0.1:{}\" }}\n", 2000 + i)).collect::<String>();
        let config = crate::config::load_from_text(std::path::Path::new("t.yaml"), &text, &|_| None).expect("config");
        let live = vec![("n1".to_string(), vec!["dc-a".to_string()]), ("n2".to_string(), vec!["dc-b".to_string()])];
        let ids = |c: &Config, check: &str| -> Vec<String> {
            c.targets().filter(|(_, ch, _)| ch.id == check).map(|(_, _, t)| t.id().to_string()).collect()
        };
        let (n1, n2) = (node_part(config.clone(), &live, "n1", 1), node_part(config.clone(), &live, "n2", 1));
        assert_eq!(ids(&n1, "local").len(), 20, "every dc-a target runs on the dc-a node");
        assert!(ids(&n2, "local").is_empty(), "none on the dc-b node");
        assert_eq!(ids(&n1, "any").len() + ids(&n2, "any").len(), 20, "the others are shared, once each");
        assert!(!ids(&n1, "any").is_empty() && !ids(&n2, "any").is_empty());
        // No node has the label: every live node may run the check (never nobody).
        let unlabelled = vec![("n1".to_string(), vec![]), ("n2".to_string(), vec![])];
        let (u1, u2) =
            (node_part(config.clone(), &unlabelled, "n1", 1), node_part(config.clone(), &unlabelled, "n2", 1));
        assert_eq!(ids(&u1, "local").len() + ids(&u2, "local").len(), 20);
        // replicas: 2 — each node runs every shared target: its own, and the other's as standby.
        let pair = node_part(config, &live, "n2", 2);
        assert_eq!(ids(&pair, "any").len(), 20);
        assert_eq!(pair.helpers.len(), ids(&n1, "any").len(), "the standby targets are helpers, owned by n1");
    }

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "0/0", "1", "a/3", "-1/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_id_has_one_owner_and_a_new_shard_takes_about_its_share() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("network/gateways/commune-{i}")).collect();
        let mut per_shard = [0usize; 3];
        for id in &ids {
            per_shard[owner(id, 3)] += 1;
        }
        // Balanced within 5 % of a third.
        assert!(per_shard.iter().all(|n| (*n as f64 - 20_000.0 / 3.0).abs() < 20_000.0 / 3.0 * 0.05), "{per_shard:?}");
        let moved = ids.iter().filter(|id| owner(id, 3) != owner(id, 4)).count();
        // Exactly the targets shard 3 wins move, about a quarter; none moves between old shards.
        assert!(ids.iter().all(|id| owner(id, 3) == owner(id, 4) || owner(id, 4) == 3));
        assert!((moved as f64 / 20_000.0 - 0.25).abs() < 0.02, "{moved} moved");
    }
}
