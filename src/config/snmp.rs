//! The `snmp:` section: how to ask (v2c community, or v3 user with authentication and
//! privacy), what to read (`get` and `walk`, named OIDs) and the `interfaces:` mode.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::Secret;
use super::fields::Errors;
use super::kinds::check_host;
use super::secrets::{self, Strength};
use super::source::SourceFile;

/// OIDs a check may name in `get` and `walk` together.
const MAX_OIDS: usize = 64;

/// `snmp:` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RawSnmp {
    /// The agent, `host` or `host:port` (default port 161).
    pub address: Option<String>,
    pub version: Option<RawVersion>,
    pub community: Option<String>,
    pub community_file: Option<String>,
    pub username: Option<String>,
    pub auth_protocol: Option<String>,
    pub auth_password: Option<String>,
    pub auth_password_file: Option<String>,
    pub priv_protocol: Option<String>,
    pub priv_password: Option<String>,
    pub priv_password_file: Option<String>,
    pub get: BTreeMap<String, String>,
    pub walk: BTreeMap<String, String>,
    pub interfaces: Option<RawInterfaces>,
}

/// `version: 2c` or `version: 3`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawVersion {
    Number(u32),
    Word(String),
}

/// `interfaces: true`, or which ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawInterfaces {
    On(bool),
    Chosen(RawInterfaceChoice),
}

/// `interfaces: { names: [...], admin_down: true }`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawInterfaceChoice {
    /// Regular expressions on `ifName` (or `ifDescr`); all but loopbacks when empty.
    pub names: Vec<String>,
    /// Also judge interfaces an administrator shut down (skipped by default).
    pub admin_down: bool,
}

/// How the check authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum SnmpAuth {
    /// SNMPv2c with a community string.
    V2c { community: Secret },
    /// SNMPv3 (USM): authNoPriv, or authPriv when `privacy` is set.
    V3 { username: String, auth: (SnmpAuthProtocol, Secret), privacy: Option<(SnmpPrivProtocol, Secret)> },
}

/// SNMPv3 authentication protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpAuthProtocol {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

/// SNMPv3 privacy protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpPrivProtocol {
    Des,
    Aes128,
    Aes256,
}

/// Which interfaces the `interfaces:` mode judges.
#[derive(Debug, Clone)]
pub struct InterfaceChoice {
    /// Patterns on the interface's name; empty: every interface but loopbacks.
    pub names: Vec<regex::Regex>,
    /// Judge interfaces that are administratively down too.
    pub admin_down: bool,
}

impl PartialEq for InterfaceChoice {
    fn eq(&self, other: &Self) -> bool {
        let patterns = |c: &InterfaceChoice| c.names.iter().map(|r| r.as_str().to_string()).collect::<Vec<_>>();
        self.admin_down == other.admin_down && patterns(self) == patterns(other)
    }
}

/// A validated `snmp:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct SnmpSpec {
    pub auth: SnmpAuth,
    /// Named scalar OIDs read with GET (dotted numbers).
    pub get: Vec<(String, String)>,
    /// Named subtrees read with a walk.
    pub walk: Vec<(String, String)>,
    /// The interfaces mode, when on.
    pub interfaces: Option<InterfaceChoice>,
}

pub(super) fn snmp_spec(
    file: &SourceFile,
    path: &str,
    raw: &RawSnmp,
    base: &Path,
    errors: &mut Errors,
) -> Option<(super::ProbeSpec, Option<String>)> {
    let mut ok = true;
    if let Some(address) = &raw.address {
        ok &= check_host(file, &format!("{path}.address"), address, true, errors);
    }
    let auth = auth(file, path, raw, base, errors);
    ok &= auth.is_some();
    let get = oids(file, &format!("{path}.get"), &raw.get, errors);
    let walk = oids(file, &format!("{path}.walk"), &raw.walk, errors);
    ok &= get.is_some() && walk.is_some();
    let interfaces = interfaces(file, &format!("{path}.interfaces"), raw.interfaces.as_ref(), errors);
    ok &= interfaces.is_some();
    let interfaces_off = matches!(raw.interfaces, None | Some(RawInterfaces::On(false)));
    if raw.get.is_empty() && raw.walk.is_empty() && interfaces_off {
        errors.at(file, path, "snmp needs get, walk or interfaces: something to read");
        ok = false;
    }
    if raw.get.len() + raw.walk.len() > MAX_OIDS {
        errors.at(file, path, format!("get and walk name {} OIDs; at most {MAX_OIDS}", raw.get.len() + raw.walk.len()));
        ok = false;
    }
    let (get, walk, interfaces) = (get.unwrap_or_default(), walk.unwrap_or_default(), interfaces.flatten());
    let spec = SnmpSpec { auth: auth?, get, walk, interfaces };
    ok.then_some((super::ProbeSpec::Snmp(spec), raw.address.clone()))
}

fn version(file: &SourceFile, path: &str, raw: &RawSnmp, errors: &mut Errors) -> Option<u8> {
    match &raw.version {
        None => Some(2),
        Some(RawVersion::Number(3)) => Some(3),
        Some(RawVersion::Word(w)) if w == "3" || w.eq_ignore_ascii_case("v3") => Some(3),
        Some(RawVersion::Word(w)) if w.eq_ignore_ascii_case("2c") || w.eq_ignore_ascii_case("v2c") => Some(2),
        Some(other) => {
            let shown = match other {
                RawVersion::Number(n) => n.to_string(),
                RawVersion::Word(w) => w.clone(),
            };
            errors.at(file, &format!("{path}.version"), format!("version \"{shown}\" is not known (2c or 3)"));
            None
        }
    }
}

fn auth(file: &SourceFile, path: &str, raw: &RawSnmp, base: &Path, errors: &mut Errors) -> Option<SnmpAuth> {
    let at = |field: &str| format!("{path}.{field}");
    let v3_fields = raw.username.is_some() || raw.auth_password.is_some() || raw.auth_password_file.is_some();
    match version(file, path, raw, errors)? {
        2 => {
            if v3_fields || raw.priv_password.is_some() || raw.priv_password_file.is_some() {
                errors.at(file, &at("username"), "username and passwords are for version: 3");
                return None;
            }
            if raw.community.is_none() && raw.community_file.is_none() {
                errors.at(file, &at("community"), "version 2c needs community or community_file");
                return None;
            }
            let community = secrets::read(
                file,
                &at("community"),
                raw.community.as_ref(),
                raw.community_file.as_ref(),
                Strength::Credential,
                base,
                errors,
            )?;
            Some(SnmpAuth::V2c { community })
        }
        _ => {
            if raw.community.is_some() || raw.community_file.is_some() {
                errors.at(file, &at("community"), "a community is for version 2c; version 3 logs in with username");
                return None;
            }
            let Some(username) = raw.username.clone().filter(|u| !u.is_empty()) else {
                errors.at(file, &at("username"), "version 3 needs a username");
                return None;
            };
            let auth_protocol = auth_protocol(file, &at("auth_protocol"), raw.auth_protocol.as_deref(), errors)?;
            if raw.auth_password.is_none() && raw.auth_password_file.is_none() {
                errors.at(file, &at("auth_password"), "version 3 needs auth_password or auth_password_file");
                return None;
            }
            let (password, password_file) = (raw.auth_password.as_ref(), raw.auth_password_file.as_ref());
            let auth_key = secrets::read(
                file,
                &at("auth_password"),
                password,
                password_file,
                Strength::UsmPassword,
                base,
                errors,
            )?;
            let privacy = match (&raw.priv_password, &raw.priv_password_file) {
                (None, None) if raw.priv_protocol.is_some() => {
                    errors.at(file, &at("priv_protocol"), "priv_protocol needs priv_password or priv_password_file");
                    return None;
                }
                (None, None) => None,
                (value, value_file) => {
                    let protocol = priv_protocol(file, &at("priv_protocol"), raw.priv_protocol.as_deref(), errors)?;
                    let key = secrets::read(
                        file,
                        &at("priv_password"),
                        value.as_ref(),
                        value_file.as_ref(),
                        Strength::UsmPassword,
                        base,
                        errors,
                    )?;
                    Some((protocol, key))
                }
            };
            Some(SnmpAuth::V3 { username, auth: (auth_protocol, auth_key), privacy })
        }
    }
}

fn auth_protocol(file: &SourceFile, path: &str, text: Option<&str>, errors: &mut Errors) -> Option<SnmpAuthProtocol> {
    match text.map(str::to_ascii_lowercase).as_deref() {
        None | Some("sha") | Some("sha1") => Some(SnmpAuthProtocol::Sha1),
        Some("sha256") => Some(SnmpAuthProtocol::Sha256),
        Some("sha512") => Some(SnmpAuthProtocol::Sha512),
        Some("md5") => Some(SnmpAuthProtocol::Md5),
        Some(other) => {
            errors.at(file, path, format!("auth_protocol \"{other}\" is not known (sha, sha256, sha512, md5)"));
            None
        }
    }
}

fn priv_protocol(file: &SourceFile, path: &str, text: Option<&str>, errors: &mut Errors) -> Option<SnmpPrivProtocol> {
    match text.map(str::to_ascii_lowercase).as_deref() {
        None | Some("aes") | Some("aes128") => Some(SnmpPrivProtocol::Aes128),
        Some("aes256") => Some(SnmpPrivProtocol::Aes256),
        Some("des") => Some(SnmpPrivProtocol::Des),
        Some(other) => {
            errors.at(file, path, format!("priv_protocol \"{other}\" is not known (aes, aes256, des)"));
            None
        }
    }
}

/// Named OIDs, each in dotted numbers (`1.3.6.1.2.1.1.3.0`).
fn oids(
    file: &SourceFile,
    path: &str,
    raw: &BTreeMap<String, String>,
    errors: &mut Errors,
) -> Option<Vec<(String, String)>> {
    let mut ok = true;
    for (name, oid) in raw {
        let at = format!("{path}.{name}");
        if !super::fields::is_slug(name) {
            errors.at(
                file,
                &at,
                format!("\"{name}\" is not a name for a value (lowercase letters, digits, '-' and '_')"),
            );
            ok = false;
        }
        let numeric = oid.trim().trim_start_matches('.');
        let valid = numeric.split('.').count() >= 2 && numeric.split('.').all(|p| p.parse::<u32>().is_ok());
        if !valid || async_snmp::Oid::parse(numeric).is_err() {
            errors.at(file, &at, format!("\"{oid}\" is not an OID in dotted numbers (e.g. 1.3.6.1.2.1.1.3.0)"));
            ok = false;
        }
    }
    let list = raw.iter().map(|(n, o)| (n.clone(), o.trim().trim_start_matches('.').to_string())).collect();
    ok.then_some(list)
}

/// `Some(None)`: off; `Some(Some(choice))`: on; `None`: invalid.
fn interfaces(
    file: &SourceFile,
    path: &str,
    raw: Option<&RawInterfaces>,
    errors: &mut Errors,
) -> Option<Option<InterfaceChoice>> {
    let choice = match raw {
        None | Some(RawInterfaces::On(false)) => return Some(None),
        Some(RawInterfaces::On(true)) => RawInterfaceChoice::default(),
        Some(RawInterfaces::Chosen(c)) => c.clone(),
    };
    let mut names = Vec::new();
    for (i, pattern) in choice.names.iter().enumerate() {
        match regex::Regex::new(&format!("^(?:{pattern})$")) {
            Ok(re) => names.push(re),
            Err(e) => {
                let why = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                errors.at(file, &format!("{path}.names[{i}]"), format!("invalid regex \"{pattern}\": {why}"));
                return None;
            }
        }
    }
    Some(Some(InterfaceChoice { names, admin_down: choice.admin_down }))
}
