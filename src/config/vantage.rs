//! `agent:` (this Vigil measures from a vantage point and forwards to a centre) and
//! `vantages:` (this Vigil is a centre: the agents it accepts results from).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Secret;
use super::fields::{Errors, duration_field, is_slug};
use super::raw::{RawAgent, RawVantage};
use super::secrets::{self, Strength};
use super::source::SourceFile;

/// `agent:` — where this Vigil stands and where it forwards what it measures.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The vantage point's name, e.g. `xa-sin-ho`.
    pub vantage: String,
    /// The centre's base URL (`https://…`; `http://` only to a loopback address).
    pub centre: String,
    /// The credential the centre knows this vantage by.
    pub token: Secret,
    /// A CA file the centre's certificate must chain to (else the system roots).
    pub ca_file: Option<PathBuf>,
    /// Where the centre's assignment is kept ([`ASSIGNMENT_FILE`] beside the configuration).
    pub assignment_file: PathBuf,
    /// How often the assignment is asked for again (default 60 s).
    pub refresh: Duration,
    /// The agent's own receivers are used only once the centre has been unreachable this
    /// long (default 5 min): before, the centre alerts for this vantage point.
    pub alert_after: Duration,
}

/// One entry of `vantages:` — an agent the centre accepts results from.
#[derive(Debug, Clone)]
pub struct Vantage {
    pub name: String,
    pub token: Secret,
    /// Silence after which the vantage point is "lost" (one alert; its time is no data).
    pub grace: Duration,
    /// A clock further off than this has its timestamps corrected (and marked).
    pub max_clock_offset: Duration,
    /// The centre's check of this vantage point's link (e.g. the commune gateway), as a
    /// target id: while it fails, what the vantage sees failing is classed `link`.
    pub link: Option<String>,
    /// Groups it belongs to: a check's `vantages: all-communes` names every member.
    pub groups: Vec<String>,
}

/// Default `max_clock_offset` of a vantage point.
pub const DEFAULT_MAX_CLOCK_OFFSET: Duration = Duration::from_secs(30);

/// Default `grace` of a vantage point.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(300);

/// Whether `url`'s host is a loopback address or `localhost` (the only places a credential
/// may travel in clear).
fn loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// Validates `agent:`.
pub(super) fn agent(file: &SourceFile, raw: Option<&RawAgent>, base: &Path, errors: &mut Errors) -> Option<Agent> {
    let raw = raw?;
    let vantage = match &raw.vantage {
        Some(v) if is_slug(v) => Some(v.clone()),
        Some(v) => {
            errors.at(
                file,
                "agent.vantage",
                format!("\"{v}\" is not a valid name (lowercase letters, digits, '-' and '_')"),
            );
            None
        }
        None => {
            errors.at(file, "agent", "an agent needs `vantage:` (its name, e.g. xa-sin-ho)");
            None
        }
    };
    let centre = match raw.centre.as_deref().map(url::Url::parse) {
        Some(Ok(u)) if u.scheme() == "https" || (u.scheme() == "http" && loopback(&u)) => {
            Some(u.as_str().trim_end_matches('/').to_string())
        }
        Some(Ok(_)) => {
            errors.at(
                file,
                "agent.centre",
                "the centre must be an https:// URL (http:// only to a loopback address: the token must not travel in clear)",
            );
            None
        }
        Some(Err(e)) => {
            errors.at(file, "agent.centre", format!("not a URL: {e}"));
            None
        }
        None => {
            errors.at(file, "agent", "an agent needs `centre:` (the centre's URL)");
            None
        }
    };
    let token = secrets::read(
        file,
        "agent.token",
        raw.token.as_ref(),
        raw.token_file.as_ref(),
        Strength::AdminToken,
        base,
        errors,
    );
    if token.is_none() && raw.token.is_none() && raw.token_file.is_none() {
        errors.at(file, "agent", "an agent needs `token_file:` (or `token:`), the credential the centre knows it by");
    }
    let ca_file = raw.ca_file.as_ref().map(|f| base.join(f));
    if let Some(ca) = &ca_file
        && !ca.is_file()
    {
        errors.at(file, "agent.ca_file", format!("cannot read \"{}\"", ca.display()));
    }
    let assignment_file = base.join(raw.assignment_file.as_deref().unwrap_or(ASSIGNMENT_FILE));
    let refresh = duration_field(file, "agent.refresh", raw.refresh.as_ref(), Duration::from_secs(60), errors);
    let alert_after =
        duration_field(file, "agent.alert_after", raw.alert_after.as_ref(), Duration::from_secs(300), errors);
    Some(Agent { vantage: vantage?, centre: centre?, token: token?, ca_file, assignment_file, refresh, alert_after })
}

/// Validates a vantage's `groups`: names that cannot be taken for a vantage point.
fn check_groups(file: &SourceFile, path: &str, groups: &[String], raw: &[RawVantage], errors: &mut Errors) {
    for (k, g) in groups.iter().enumerate() {
        if !is_slug(g) {
            errors.at(file, &format!("{path}.groups[{k}]"), format!("\"{g}\" is not a valid group name"));
        } else if g == "all" {
            errors.at(file, &format!("{path}.groups[{k}]"), "\"all\" already means every vantage point");
        } else if raw.iter().any(|o| o.name.as_ref() == Some(g)) {
            errors.at(file, &format!("{path}.groups[{k}]"), format!("group \"{g}\" has the name of a vantage point"));
        }
    }
}

/// Validates `vantages:` (`link` must name a check target of `systems`).
pub(super) fn vantages(
    file: &SourceFile,
    raw: &[RawVantage],
    systems: &[super::System],
    base: &Path,
    errors: &mut Errors,
) -> Vec<Vantage> {
    let mut out: Vec<Vantage> = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        let path = format!("vantages[{i}]");
        let name = match &v.name {
            Some(n) if !is_slug(n) => {
                errors.at(file, &format!("{path}.name"), format!("\"{n}\" is not a valid name"));
                continue;
            }
            Some(n) if out.iter().any(|o| &o.name == n) => {
                errors.at(file, &format!("{path}.name"), format!("duplicate vantage \"{n}\""));
                continue;
            }
            Some(n) => n.clone(),
            None => {
                errors.at(file, &path, "a vantage needs `name:`");
                continue;
            }
        };
        let token_path = format!("{path}.token");
        let token = secrets::read(
            file,
            &token_path,
            v.token.as_ref(),
            v.token_file.as_ref(),
            Strength::AdminToken,
            base,
            errors,
        );
        let grace = duration_field(file, &format!("{path}.grace"), v.grace.as_ref(), DEFAULT_GRACE, errors);
        let max_clock_offset = duration_field(
            file,
            &format!("{path}.max_clock_offset"),
            v.max_clock_offset.as_ref(),
            DEFAULT_MAX_CLOCK_OFFSET,
            errors,
        );
        let link = v.link.as_ref().and_then(|l| {
            let ids: Vec<String> = systems
                .iter()
                .flat_map(|s| s.checks.iter().map(move |c| (s, c)))
                .flat_map(|(s, c)| c.targets.iter().map(move |t| (format!("{}/{}", s.id, c.id), t.id().to_string())))
                .filter(|(check, target)| check == l || target == l)
                .map(|(_, target)| target)
                .collect();
            match &ids[..] {
                [one] => Some(one.clone()),
                [] => {
                    errors.at(file, &format!("{path}.link"), format!("link \"{l}\" names no known check"));
                    None
                }
                _ => {
                    errors.at(file, &format!("{path}.link"), format!("link \"{l}\" names several targets: name one"));
                    None
                }
            }
        });
        check_groups(file, &path, &v.groups, raw, errors);
        let groups = v.groups.clone();
        match token {
            Some(token) => out.push(Vantage { name, token, grace, max_clock_offset, link, groups }),
            None if v.token.is_none() && v.token_file.is_none() => {
                errors.at(file, &path, "a vantage needs `token_file:` (or `token:`)");
            }
            None => {}
        }
    }
    out
}

/// How many observers — the centre and the vantage points that run a check — must see a
/// target down for its combined state to be down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    Any,
    All,
    AtLeast(u32),
}

impl Quorum {
    /// The number of down observers needed among `observers`.
    pub fn needed(self, observers: usize) -> usize {
        match self {
            Quorum::Any => 1,
            Quorum::All => observers.max(1),
            Quorum::AtLeast(n) => n as usize,
        }
    }
}

/// The file an agent keeps its centre's assignment in (beside its configuration), loaded
/// like an include when it exists.
pub const ASSIGNMENT_FILE: &str = "assignment.yaml";

/// Reads a check's `quorum:` (any, all or a number from 1).
fn quorum(file: &SourceFile, path: &str, raw: Option<&super::raw::RawQuorum>, errors: &mut Errors) -> Option<Quorum> {
    match raw? {
        super::raw::RawQuorum::Word(w) if w == "any" => Some(Quorum::Any),
        super::raw::RawQuorum::Word(w) if w == "all" => Some(Quorum::All),
        super::raw::RawQuorum::Count(n) if *n >= 1 => Some(Quorum::AtLeast(*n)),
        _ => {
            errors.at(file, path, "expected any, all or a number from 1");
            None
        }
    }
}

/// The check as an agent receives it: as written, without what only the centre judges
/// (`vantages`, `quorum`, `depends_on`, `renamed_from`), with the centre's effective
/// interval, timeout and thresholds (the agent's defaults are not the centre's).
fn assigned_source(mut source: yaml_serde::Value, check: &super::Check) -> yaml_serde::Value {
    if let Some(map) = source.as_mapping_mut() {
        for key in ["vantages", "depends_on", "depends_on_any", "renamed_from", "quorum"] {
            map.remove(key);
        }
        let effective: [(&str, yaml_serde::Value); 4] = [
            ("interval", humantime::format_duration(check.interval).to_string().into()),
            ("timeout", humantime::format_duration(check.timeout).to_string().into()),
            ("failure_threshold", check.failure_threshold.into()),
            ("success_threshold", check.success_threshold.into()),
        ];
        for (key, value) in effective {
            map.entry(key.into()).or_insert(value);
        }
    }
    source
}

/// Resolves each check's `vantages:` (names of configured vantage points, or `all`) and
/// keeps, for the checks that have some, the check as written — what the agents get.
pub(super) fn assign(
    systems: &mut [super::System],
    units: &[(&SourceFile, &[super::raw::RawSystem])],
    vantages: &[Vantage],
    errors: &mut Errors,
) {
    use super::raw::RawVantageList;
    for (file, raw_systems) in units {
        let mut doc: Option<yaml_serde::Value> = None;
        for (i, raw_system) in raw_systems.iter().enumerate() {
            for (j, raw_check) in raw_system.checks.iter().enumerate() {
                let quorum =
                    quorum(file, &format!("systems[{i}].checks[{j}].quorum"), raw_check.quorum.as_ref(), errors);
                let Some(list) = &raw_check.vantages else {
                    if raw_check.quorum.is_some() {
                        errors.at(file, &format!("systems[{i}].checks[{j}].quorum"), "a quorum needs `vantages:`");
                    }
                    continue;
                };
                let path = format!("systems[{i}].checks[{j}].vantages");
                let listed: Vec<String> = match list {
                    RawVantageList::All(all) if all == "all" => vantages.iter().map(|v| v.name.clone()).collect(),
                    RawVantageList::All(other) => vec![other.clone()],
                    RawVantageList::Names(names) => names.clone(),
                };
                // A group's name stands for its members, in the order of `vantages:`.
                let mut names: Vec<String> = Vec::new();
                for name in listed {
                    let members: Vec<String> =
                        vantages.iter().filter(|v| v.groups.contains(&name)).map(|v| v.name.clone()).collect();
                    for n in if members.is_empty() { vec![name] } else { members } {
                        if !names.contains(&n) {
                            names.push(n);
                        }
                    }
                }
                let unknown: Vec<&String> = names.iter().filter(|n| !vantages.iter().any(|v| &v.name == *n)).collect();
                if !unknown.is_empty() {
                    let known = if vantages.is_empty() {
                        "none is configured".to_string()
                    } else {
                        vantages.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
                    };
                    errors.at(
                        file,
                        &path,
                        format!("no vantage point or group {unknown:?} in `vantages:` (configured: {known})"),
                    );
                    continue;
                }
                let doc = doc.get_or_insert_with(|| yaml_serde::from_str(&file.text).unwrap_or_default());
                let source = doc["systems"][i]["checks"][j].clone();
                let (Some(system_id), Some(check_id)) = (&raw_system.id, &raw_check.id) else { continue };
                if let Some(check) = systems
                    .iter_mut()
                    .find(|s| &s.id == system_id)
                    .and_then(|s| s.checks.iter_mut().find(|c| &c.id == check_id))
                {
                    let check = std::sync::Arc::make_mut(check);
                    check.vantages = names;
                    check.quorum = quorum;
                    check.assigned_source = Some(assigned_source(source, check));
                }
            }
        }
    }
}

/// The assignment of `vantage`: the checks of `systems` it runs, as a configuration
/// fragment (`systems:` only), or None when it has none.
pub fn assignment(systems: &[super::System], vantage: &str) -> Option<String> {
    let mut out = Vec::new();
    for s in systems {
        let checks: Vec<yaml_serde::Value> = s
            .checks
            .iter()
            .filter(|c| c.vantages.iter().any(|v| v == vantage))
            .filter_map(|c| c.assigned_source.clone())
            .collect();
        if checks.is_empty() {
            continue;
        }
        let mut system = yaml_serde::Mapping::new();
        system.insert("id".into(), s.id.clone().into());
        let mut name = yaml_serde::Mapping::new();
        name.insert("vi".into(), s.name_vi.clone().into());
        name.insert("en".into(), s.name_en.clone().into());
        system.insert("name".into(), yaml_serde::Value::Mapping(name));
        system.insert("checks".into(), yaml_serde::Value::Sequence(checks));
        out.push(yaml_serde::Value::Mapping(system));
    }
    if out.is_empty() {
        return None;
    }
    let mut doc = yaml_serde::Mapping::new();
    doc.insert("systems".into(), yaml_serde::Value::Sequence(out));
    yaml_serde::to_string(&doc).ok()
}
