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
    Some(Agent { vantage: vantage?, centre: centre?, token: token?, ca_file })
}

/// Validates `vantages:`.
pub(super) fn vantages(file: &SourceFile, raw: &[RawVantage], base: &Path, errors: &mut Errors) -> Vec<Vantage> {
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
        match token {
            Some(token) => out.push(Vantage { name, token, grace, max_clock_offset }),
            None if v.token.is_none() && v.token_file.is_none() => {
                errors.at(file, &path, "a vantage needs `token_file:` (or `token:`)");
            }
            None => {}
        }
    }
    out
}
