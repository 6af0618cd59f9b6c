//! Validation: raw structs → typed [`Config`], collecting every error with its position.
//! Pure apart from reading the files it is asked to read (includes, `*_file` secrets).
//!
//! size: validation walks one file's keys in order and collects every error with its position; splitting it would scatter that walk.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::collections::hash_map::Entry;

use super::env::Lookup;
use super::fields::{Errors, duration_field, slug_field, threshold};
use super::raw::{RawCheck, RawFragment, RawName, RawRoot, RawSystem, RawTarget};
use super::secrets::{self, Strength};
use super::source::SourceFile;
use super::*;
use super::{alerting, kinds, maintenance, modules};
use crate::condition::Condition;

const DEFAULT_LISTEN: &str = "127.0.0.1:9898";
const DEFAULT_TIMEZONE: &str = "Asia/Ho_Chi_Minh";
const DEFAULT_STORE: &str = "data/vigil.db";
/// Probes in flight at once by default: at 50,000 targets (10 % hanging until a 5 s
/// timeout, ICMP runs of half a second) about 1,200 are in flight; 1,024 queued them all.
const DEFAULT_MAX_CONCURRENT: usize = 4096;

pub(super) fn load(path: &Path, env: Lookup<'_>) -> Result<Config, ConfigErrors> {
    let root = SourceFile::read(path, env).map_err(ConfigErrors)?;
    load_source(root, env)
}

pub(super) fn load_text(path: &Path, text: &str, env: Lookup<'_>) -> Result<Config, ConfigErrors> {
    let root = SourceFile::from_text(path, text, env).map_err(ConfigErrors)?;
    load_source(root, env)
}

fn load_source(mut root: SourceFile, env: Lookup<'_>) -> Result<Config, ConfigErrors> {
    let mut errors = Errors(std::mem::take(&mut root.substitution_errors));
    let (raw, decode_errors) = root.decode::<RawRoot>();
    errors.0.extend(decode_errors);
    let base = root.path.parent().map(Path::to_path_buf).unwrap_or_default();

    let mut fragments: Vec<(SourceFile, RawFragment)> = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for (i, pattern) in raw.include.iter().enumerate() {
        for path in expand_include(&root, &base, pattern, i, &mut errors) {
            // A file matched by two patterns is read once, at its first match.
            if seen.insert(path.clone()) {
                fragments.extend(read_fragment(&path, env, &mut errors));
            }
        }
    }
    // An agent runs the checks its centre assigned it, from the last copy it saved.
    if let Some(agent) = &raw.agent {
        let path = base.join(agent.assignment_file.as_deref().unwrap_or(super::vantage::ASSIGNMENT_FILE));
        if path.is_file() && seen.insert(path.clone()) {
            fragments.extend(read_fragment(&path, env, &mut errors));
        }
    }

    let instance = instance(&root, &raw, &mut errors);
    let server = server(&root, &raw, &base, &mut errors);
    let storage = storage(&root, &raw, &base, &mut errors);
    let scheduler = SchedulerConfig {
        max_concurrent_probes: match raw.scheduler.max_concurrent_probes {
            Some(0) => {
                errors.at(&root, "scheduler.max_concurrent_probes", "must be at least 1");
                DEFAULT_MAX_CONCURRENT
            }
            Some(n) => n,
            None => DEFAULT_MAX_CONCURRENT,
        },
    };
    let defaults = defaults(&root, &raw, &mut errors);
    let modules = modules::modules(&root, &raw.modules, &mut errors);
    // A module that carries credentials, on a /probe that goes anywhere, would hand them to
    // whoever names a target.
    if server.probe_endpoint.enabled && server.probe_endpoint.allow.is_empty() {
        for m in &modules {
            let ProbeSpec::Http(http) = &m.check.probe else { continue };
            for (name, _) in http.headers.iter().filter(|(name, _)| is_credential_header(name)) {
                errors.at(
                    &root,
                    &format!("modules.{}.http.headers.{name}", m.name),
                    "a module that sends credentials needs server.probe_endpoint.allow (else /probe sends them wherever a caller asks)",
                );
            }
        }
    }

    let mut units: Vec<(&SourceFile, &[RawSystem])> = vec![(&root, &raw.systems)];
    units.extend(fragments.iter().map(|(f, s)| (f, s.systems.as_slice())));

    let mut systems = Vec::new();
    let mut system_ids: HashMap<String, (&SourceFile, String)> = HashMap::new();
    let mut pending_deps = Vec::new();
    let mut heartbeat_tokens = HeartbeatTokens::default();
    for (file, raw_systems) in &units {
        for (i, raw_system) in raw_systems.iter().enumerate() {
            let path = format!("systems[{i}]");
            if let Some(system) = system(file, &path, raw_system, &defaults, &mut errors, &mut pending_deps) {
                // Where a system was defined is looked up only for a duplicate: positions are
                // indexed on demand.
                if let Some((first_file, first_path)) = system_ids.insert(system.id.clone(), (file, path.clone())) {
                    let first = first_file.place(&format!("{first_path}.id"));
                    errors.at(
                        file,
                        &format!("{path}.id"),
                        format!("duplicate system id \"{}\" (first defined at {first})", system.id),
                    );
                } else {
                    heartbeat_tokens.check(file, &path, raw_system, &system, &mut errors);
                    systems.push(system);
                }
            }
        }
    }
    resolve_dependencies(&mut systems, pending_deps, &units, &mut errors);
    let mut instance = instance;
    instance.uplink = resolve_uplink(&root, &raw.instance.uplink, &systems, &mut errors);

    let alerting = alerting::alerting(&root, &raw.alerting, &mut errors);
    let mut receivers: Vec<alerting::Receiver> = Vec::new();
    let mut routes = Vec::new();
    let mut route_sites = Vec::new();
    let mut windows = Vec::new();
    let sources = std::iter::once((&root, &raw.receivers, &raw.routes, &raw.maintenance))
        .chain(fragments.iter().map(|(f, frag)| (f, &frag.receivers, &frag.routes, &frag.maintenance)));
    for (file, raw_receivers, raw_routes, raw_windows) in sources {
        for (i, w) in raw_windows.iter().enumerate() {
            windows.extend(maintenance::window(file, &format!("maintenance[{i}]"), w, &instance.timezone, &mut errors));
        }
        for (i, r) in raw_receivers.iter().enumerate() {
            let path = format!("receivers[{i}]");
            if let Some(receiver) = alerting::receiver(file, &path, r, &mut errors) {
                if receivers.iter().any(|x| x.id == receiver.id) {
                    errors.at(file, &format!("{path}.id"), format!("duplicate receiver id \"{}\"", receiver.id));
                } else {
                    receivers.push(receiver);
                }
            }
        }
        for (i, r) in raw_routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            if let Some(route) = alerting::route(file, &path, r, &mut errors) {
                route_sites.push((file, path));
                routes.push(route);
            }
        }
    }
    for (route, (file, path)) in routes.iter().zip(&route_sites) {
        let escalated = route.escalate.iter().flat_map(|e| e.to.iter().map(|r| (r, "escalate.to")));
        for (name, field) in route.receivers.iter().map(|r| (r, "receivers")).chain(escalated) {
            if !receivers.iter().any(|x| &x.id == name) {
                errors.at(file, &format!("{path}.{field}"), format!("no receiver \"{name}\""));
            }
        }
    }

    let monthly_report = raw.reports.monthly.as_ref().and_then(|m| {
        let day = m.day.unwrap_or(1);
        if !(1..=28).contains(&day) {
            errors.at(&root, "reports.monthly.day", format!("day {day} must be between 1 and 28 (every month has it)"));
            return None;
        }
        let at = m.at.clone().unwrap_or_else(|| "08:00".into());
        let Some((hour, minute)) = at
            .split_once(':')
            .and_then(|(h, mi)| Some((h.parse::<u8>().ok()?, mi.parse::<u8>().ok()?)))
            .filter(|(h, mi)| *h < 24 && *mi < 60)
        else {
            errors.at(&root, "reports.monthly.at", format!("\"{at}\" is not a time of day (expected e.g. 08:00)"));
            return None;
        };
        if m.receivers.is_empty() {
            errors.at(&root, "reports.monthly.receivers", "name at least one receiver");
        }
        for (i, r) in m.receivers.iter().enumerate() {
            if !receivers.iter().any(|x| &x.id == r) {
                errors.at(&root, &format!("reports.monthly.receivers[{i}]"), format!("no receiver \"{r}\""));
            }
        }
        let language = match m.language.as_deref() {
            Some("en") => Language::En,
            Some("vi") => Language::Vi,
            _ => instance.language,
        };
        Some(MonthlyReport { day, hour, minute, receivers: m.receivers.clone(), language })
    });

    let agent = super::vantage::agent(&root, raw.agent.as_ref(), &base, &mut errors);
    let cluster = super::cluster::cluster(&root, raw.cluster.as_ref(), &base, &mut errors);
    let vantages = super::vantage::vantages(&root, &raw.vantages, &systems, &base, &mut errors);
    super::vantage::assign(&mut systems, &units, &vantages, &mut errors);
    let mut files: Vec<PathBuf> = vec![root.path.clone()];
    files.extend(fragments.iter().map(|(f, _)| f.path.clone()));
    if errors.0.is_empty() {
        Ok(Config {
            instance,
            server,
            storage,
            scheduler,
            systems,
            modules,
            alerting,
            receivers,
            routes,
            maintenance: windows,
            monthly_report,
            files,
            agent,
            vantages,
            helpers: Default::default(),
            elsewhere: Default::default(),
            cluster,
        })
    } else {
        let order: HashMap<&Path, usize> = files.iter().enumerate().map(|(i, f)| (f.as_path(), i)).collect();
        let mut list = errors.0;
        list.sort_by_key(|e| (order.get(e.file.as_path()).copied().unwrap_or(usize::MAX), e.line, e.col));
        Err(ConfigErrors(list))
    }
}

/// Reads and decodes an included file (`systems`, `receivers`, `routes`, `maintenance`).
fn read_fragment(path: &Path, env: Lookup<'_>, errors: &mut Errors) -> Option<(SourceFile, RawFragment)> {
    match SourceFile::read(path, env) {
        Ok(mut file) => {
            errors.0.append(&mut file.substitution_errors);
            let (fragment, errs) = file.decode::<RawFragment>();
            errors.0.extend(errs);
            Some((file, fragment))
        }
        Err(e) => {
            errors.0.extend(e);
            None
        }
    }
}

fn expand_include(root: &SourceFile, base: &Path, pattern: &str, i: usize, errors: &mut Errors) -> Vec<PathBuf> {
    let key = format!("include[{i}]");
    let full = base.join(pattern);
    let Some(full_str) = full.to_str() else {
        errors.at(root, &key, format!("include \"{pattern}\" is not valid UTF-8"));
        return Vec::new();
    };
    match glob::glob(full_str) {
        Ok(paths) => {
            let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
            found.sort();
            if found.is_empty() {
                errors.at(root, &key, format!("no file matches \"{pattern}\""));
            }
            found
        }
        Err(e) => {
            errors.at(root, &key, format!("invalid glob \"{pattern}\": {e}"));
            Vec::new()
        }
    }
}

fn instance(file: &SourceFile, raw: &RawRoot, errors: &mut Errors) -> Instance {
    let tz_name = raw.instance.timezone.clone().unwrap_or_else(|| DEFAULT_TIMEZONE.to_string());
    let timezone = jiff::tz::TimeZone::get(&tz_name).unwrap_or_else(|_| {
        errors.at(
            file,
            "instance.timezone",
            format!("unknown time zone \"{tz_name}\" (expected e.g. Asia/Ho_Chi_Minh)"),
        );
        jiff::tz::TimeZone::UTC
    });
    let language = match raw.instance.language.as_deref() {
        None | Some("vi") => Language::Vi,
        Some("en") => Language::En,
        Some(other) => {
            errors.at(file, "instance.language", format!("unknown language \"{other}\" (expected vi or en)"));
            Language::Vi
        }
    };
    Instance {
        name: raw.instance.name.clone().unwrap_or_else(|| "vigil".to_string()),
        location: raw.instance.location.clone(),
        timezone,
        timezone_name: tz_name,
        language,
        uplink: Vec::new(),
    }
}

fn server(file: &SourceFile, raw: &RawRoot, base: &Path, errors: &mut Errors) -> Server {
    let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        errors.at(
            file,
            "server.listen",
            format!("\"{listen_text}\" is not an address:port (expected e.g. 127.0.0.1:9898)"),
        );
        DEFAULT_LISTEN.parse().expect("default listen address is valid")
    });
    if let Some(url) = &raw.server.public_url
        && url::Url::parse(url).is_err()
    {
        errors.at(file, "server.public_url", format!("invalid URL \"{url}\""));
    }
    let admin_token = secrets::read(
        file,
        "server.admin_token",
        raw.server.admin_token.as_ref(),
        raw.server.admin_token_file.as_ref(),
        Strength::AdminToken,
        base,
        errors,
    );
    let probe_endpoint = modules::probe_endpoint(file, &raw.server.probe_endpoint, base, errors);
    let pages_auth = pages_auth(file, raw.server.pages_auth.as_ref(), base, errors);
    let tls = raw.server.tls.as_ref().and_then(|t| server_tls(file, t, base, errors));
    Server { listen, public_url: raw.server.public_url.clone(), admin_token, probe_endpoint, pages_auth, tls }
}

/// Reads `server.tls`: a certificate chain and its private key (PEM).
fn server_tls(
    file: &SourceFile,
    raw: &super::raw::RawServerTls,
    base: &Path,
    errors: &mut Errors,
) -> Option<std::sync::Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert_file), Some(key_file)) = (&raw.cert_file, &raw.key_file) else {
        errors.at(file, "server.tls", "set both cert_file and key_file");
        return None;
    };
    let certs: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_file_iter(base.join(cert_file)).and_then(|it| it.collect());
    let certs = match certs {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            errors.at(file, "server.tls.cert_file", format!("no certificate in \"{cert_file}\""));
            return None;
        }
        Err(e) => {
            errors.at(file, "server.tls.cert_file", format!("cannot read \"{cert_file}\": {e}"));
            return None;
        }
    };
    let key = match PrivateKeyDer::from_pem_file(base.join(key_file)) {
        Ok(k) => k,
        Err(e) => {
            errors.at(file, "server.tls.key_file", format!("cannot read a private key from \"{key_file}\": {e}"));
            return None;
        }
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let built = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key).map_err(|e| e.to_string()));
    match built {
        Ok(mut config) => {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(std::sync::Arc::new(config))
        }
        Err(e) => {
            errors.at(file, "server.tls", format!("the certificate and key do not fit together: {e}"));
            None
        }
    }
}

/// `server.pages_auth`: basic (user and password) or bearer (token), not both.
fn pages_auth(
    file: &SourceFile,
    raw: Option<&super::raw::RawPagesAuth>,
    base: &Path,
    errors: &mut Errors,
) -> Option<PagesAuth> {
    let raw = raw?;
    match (&raw.basic, &raw.bearer) {
        (Some(_), Some(_)) => {
            errors.at(file, "server.pages_auth", "set basic or bearer, not both");
            None
        }
        (Some(b), None) => {
            let Some(user) = b.user.clone().filter(|u| !u.is_empty() && !u.contains(':')) else {
                errors.at(file, "server.pages_auth.basic.user", "a user name (without ':') is required");
                return None;
            };
            let password = secrets::read(
                file,
                "server.pages_auth.basic.password",
                b.password.as_ref(),
                b.password_file.as_ref(),
                Strength::AdminToken,
                base,
                errors,
            );
            let Some(password) = password else {
                errors.at(file, "server.pages_auth.basic", "a password (or password_file) is required");
                return None;
            };
            Some(PagesAuth::Basic { user, password })
        }
        (None, Some(b)) => {
            let token = secrets::read(
                file,
                "server.pages_auth.bearer.token",
                b.token.as_ref(),
                b.token_file.as_ref(),
                Strength::AdminToken,
                base,
                errors,
            );
            let Some(token) = token else {
                errors.at(file, "server.pages_auth.bearer", "a token (or token_file) is required");
                return None;
            };
            Some(PagesAuth::Bearer(token))
        }
        (None, None) => {
            errors.at(file, "server.pages_auth", "set basic or bearer");
            None
        }
    }
}

fn storage(file: &SourceFile, raw: &RawRoot, base: &std::path::Path, errors: &mut Errors) -> Storage {
    let postgres = raw.storage.postgres.as_ref().and_then(|pg| {
        if pg.dsn.is_none() && pg.dsn_file.is_none() {
            errors.at(file, "storage.postgres", "set `dsn_file:` (or `dsn:`), the PostgreSQL connection string");
        }
        if raw.agent.is_some() {
            errors.at(
                file,
                "storage.postgres",
                "an agent keeps its store (its forwarding queue) in its own SQLite file",
            );
        }
        let strength = super::secrets::Strength::Credential;
        super::secrets::read(
            file,
            "storage.postgres.dsn",
            pg.dsn.as_ref(),
            pg.dsn_file.as_ref(),
            strength,
            base,
            errors,
        )
    });
    let grace = raw.storage.postgres.as_ref().and_then(|pg| pg.grace.as_ref());
    Storage {
        postgres,
        postgres_grace: duration_field(file, "storage.postgres.grace", grace, Duration::from_secs(30), errors),
        path: PathBuf::from(raw.storage.path.as_deref().unwrap_or(DEFAULT_STORE)),
        raw_retention: duration_field(
            file,
            "storage.raw_retention",
            raw.storage.raw_retention.as_ref(),
            Duration::from_secs(14 * 86_400),
            errors,
        ),
    }
}

/// Per-check defaults after validation.
struct Defaults {
    interval: Duration,
    timeout: Duration,
    failure_threshold: u32,
    success_threshold: u32,
}

fn defaults(file: &SourceFile, raw: &RawRoot, errors: &mut Errors) -> Defaults {
    let d = &raw.defaults;
    Defaults {
        interval: duration_field(file, "defaults.interval", d.interval.as_ref(), Duration::from_secs(30), errors),
        timeout: duration_field(file, "defaults.timeout", d.timeout.as_ref(), Duration::from_secs(10), errors),
        failure_threshold: threshold(file, "defaults.failure_threshold", d.failure_threshold, 3, errors),
        success_threshold: threshold(file, "defaults.success_threshold", d.success_threshold, 2, errors),
    }
}

/// The heartbeat tokens seen so far and where (file, key path): two heartbeats with one
/// token would both be fed by one job, and the other job's pushes would be lost ("missed"
/// forever).
#[derive(Default)]
struct HeartbeatTokens<'a>(HashMap<String, (&'a SourceFile, String)>);

impl<'a> HeartbeatTokens<'a> {
    fn check(&mut self, file: &'a SourceFile, path: &str, raw: &RawSystem, system: &System, errors: &mut Errors) {
        for (k, raw_check) in raw.checks.iter().enumerate().filter(|(_, c)| c.heartbeat.is_some()) {
            let built = system.checks.iter().find(|c| raw_check.id.as_deref() == Some(c.id.as_str()));
            let Some(ProbeSpec::Heartbeat(hb)) = built.map(|c| &c.probe) else {
                continue;
            };
            let key_path = format!("{path}.checks[{k}].heartbeat.token");
            match self.0.entry(hb.token.expose().to_string()) {
                Entry::Occupied(first) => {
                    let (first_file, first_path) = first.get();
                    let message = format!(
                        "the same token as the heartbeat at {}: give each its own",
                        first_file.place(first_path)
                    );
                    errors.at(file, &key_path, message)
                }
                Entry::Vacant(slot) => {
                    slot.insert((file, key_path));
                }
            }
        }
    }
}

/// A `depends_on` (or `renamed_from`) entry waiting for every check id to be known.
struct PendingDep {
    file_path: PathBuf,
    key_path: String,
    system: String,
    check: String,
    reference: String,
    /// A `renamed_from`: it must name no check that still exists.
    rename: bool,
    /// A `depends_on_any` entry (a redundant parent).
    any: bool,
}

fn system(
    file: &SourceFile,
    path: &str,
    raw: &RawSystem,
    defaults: &Defaults,
    errors: &mut Errors,
    deps: &mut Vec<PendingDep>,
) -> Option<System> {
    let id = slug_field(file, &format!("{path}.id"), raw.id.as_ref(), "system id", errors);
    let (name_vi, name_en) = match &raw.name {
        None => (None, None),
        Some(RawName::Plain(name)) => (Some(name.clone()), Some(name.clone())),
        Some(RawName::Localized(names)) => {
            for lang in names.keys().filter(|k| !matches!(k.as_str(), "vi" | "en")) {
                errors.at(
                    file,
                    &format!("{path}.name.{lang}"),
                    format!("unknown language \"{lang}\" (expected vi or en)"),
                );
            }
            let vi = names.get("vi").or_else(|| names.get("en")).cloned();
            let en = names.get("en").or_else(|| names.get("vi")).cloned();
            (vi, en)
        }
    };
    let sla = raw.sla.as_ref().and_then(|s| match parse_percent(s) {
        Ok(v) => Some(v),
        Err(msg) => {
            errors.at(file, &format!("{path}.sla"), msg);
            None
        }
    });
    let mut checks = Vec::new();
    let mut check_ids = HashSet::new();
    for (i, raw_check) in raw.checks.iter().enumerate() {
        let check_path = format!("{path}.checks[{i}]");
        let Some(check) = check(file, &check_path, id.as_deref().unwrap_or("?"), raw_check, defaults, errors) else {
            continue;
        };
        if !check_ids.insert(check.id.clone()) {
            errors.at(
                file,
                &format!("{check_path}.id"),
                format!("duplicate check id \"{}\" in system \"{}\"", check.id, id.as_deref().unwrap_or("?")),
            );
            continue;
        }
        for (k, reference) in raw_check.depends_on.iter().enumerate() {
            deps.push(PendingDep {
                file_path: file.path.clone(),
                key_path: format!("{check_path}.depends_on[{k}]"),
                system: id.clone().unwrap_or_default(),
                check: check.id.clone(),
                reference: reference.clone(),
                rename: false,
                any: false,
            });
        }
        if raw_check.depends_on_any.len() == 1 {
            let message = "depends_on_any names redundant parents: give two or more (one is depends_on)";
            errors.at(file, &format!("{check_path}.depends_on_any"), message);
        }
        for (k, reference) in raw_check.depends_on_any.iter().enumerate() {
            deps.push(PendingDep {
                file_path: file.path.clone(),
                key_path: format!("{check_path}.depends_on_any[{k}]"),
                system: id.clone().unwrap_or_default(),
                check: check.id.clone(),
                reference: reference.clone(),
                rename: false,
                any: true,
            });
        }
        if let Some(former) = &raw_check.renamed_from {
            deps.push(PendingDep {
                file_path: file.path.clone(),
                key_path: format!("{check_path}.renamed_from"),
                system: id.clone().unwrap_or_default(),
                check: check.id.clone(),
                reference: former.clone(),
                rename: true,
                any: false,
            });
        }
        checks.push(Arc::new(check));
    }
    if raw.checks.is_empty() {
        errors.at(file, &format!("{path}.checks"), "a system needs at least one check");
    }
    let id = id?;
    Some(System {
        name_vi: name_vi.unwrap_or_else(|| id.clone()),
        name_en: name_en.unwrap_or_else(|| id.clone()),
        id,
        description: raw.description.clone(),
        sla,
        checks,
    })
}

fn check(
    file: &SourceFile,
    path: &str,
    system: &str,
    raw: &RawCheck,
    defaults: &Defaults,
    errors: &mut Errors,
) -> Option<Check> {
    let id = slug_field(file, &format!("{path}.id"), raw.id.as_ref(), "check id", errors);
    let interval = duration_field(file, &format!("{path}.interval"), raw.interval.as_ref(), defaults.interval, errors);
    let timeout = duration_field(file, &format!("{path}.timeout"), raw.timeout.as_ref(), defaults.timeout, errors);
    if interval < Duration::from_secs(1) {
        let shown = raw.interval.clone().unwrap_or_else(|| "defaults.interval".into());
        errors.at(file, &format!("{path}.interval"), format!("interval \"{shown}\" must be at least \"1s\""));
    }
    if timeout.is_zero() {
        errors.at(file, &format!("{path}.timeout"), "timeout must be more than 0s");
    } else if timeout > interval {
        errors.at(
            file,
            &format!("{path}.timeout"),
            format!(
                "timeout ({}) must not exceed the interval ({})",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        );
    }
    let failure_threshold = threshold(
        file,
        &format!("{path}.failure_threshold"),
        raw.failure_threshold,
        defaults.failure_threshold,
        errors,
    );
    let success_threshold = threshold(
        file,
        &format!("{path}.success_threshold"),
        raw.success_threshold,
        defaults.success_threshold,
        errors,
    );

    let sections = kinds::sections(raw);
    let probe_and_address = match sections.as_slice() {
        [_] => kinds::probe_spec(file, path, raw, errors),
        [] => {
            errors.at(file, path, format!("a check needs one probe section ({})", kinds::section_names().join(", ")));
            None
        }
        many => {
            errors.at(
                file,
                &format!("{path}.{}", many[1]),
                format!("a check has exactly one probe section, found {}", many.join(" and ")),
            );
            None
        }
    };
    let kind = probe_and_address.as_ref().map(|(p, _)| p.kind());
    let conditions = kinds::parse_conditions(file, &format!("{path}.conditions"), &raw.conditions, kind, errors);
    let warning_conditions =
        kinds::parse_conditions(file, &format!("{path}.warning_conditions"), &raw.warning_conditions, kind, errors);
    let each_address = super::addresses::each_address(file, path, raw, kind, errors);
    let (probe, address) = probe_and_address?;
    let id = id?;
    let targets = targets(file, path, system, &id, &probe, address, raw.targets.as_deref(), errors);
    // Exactly as long as it is: a pushed-to vector keeps room for four (768 B a check).
    let conditions = match (conditions.is_empty(), kinds::default_condition(probe.kind())) {
        (true, Some(default)) => vec![Condition::parse(default).expect("default condition parses")],
        _ => conditions,
    };
    Some(Check {
        name: raw.name.clone().unwrap_or_else(|| id.clone()),
        id,
        probe,
        targets,
        interval,
        timeout,
        failure_threshold,
        success_threshold,
        conditions,
        warning_conditions,
        depends_on: Vec::new(),
        depends_on_any: Vec::new(),
        renamed_from: None,
        vantages: Vec::new(),
        quorum: None,
        assigned_source: None,
        critical: raw.critical.unwrap_or(true),
        runbook: raw.runbook.clone(),
        nodes: super::cluster::node_labels(file, &format!("{path}.nodes"), &raw.nodes, errors),
        each_address,
    })
}

#[allow(clippy::too_many_arguments)]
fn targets(
    file: &SourceFile,
    path: &str,
    system: &str,
    check: &str,
    probe: &ProbeSpec,
    address: Option<String>,
    raw: Option<&[RawTarget]>,
    errors: &mut Errors,
) -> Vec<Target> {
    let kind = probe.kind();
    let key = |target: &str| TargetKey { system: system.into(), check: check.into(), target: target.into() };
    let Some(field) = kinds::address_field(kind) else {
        if raw.is_some() {
            errors.at(file, &format!("{path}.targets"), format!("{kind} checks do not take targets:"));
        }
        return address.map(|address| vec![Target::new(key(check), address)]).unwrap_or_default();
    };
    let Some(raw) = raw else {
        return match address {
            Some(address) => vec![Target::new(key(check), address)],
            None => {
                errors.at(
                    file,
                    &format!("{path}.{kind}"),
                    format!("{kind} needs \"{field}\" (or the check needs targets:)"),
                );
                Vec::new()
            }
        };
    };
    if address.is_some() {
        errors.at(
            file,
            &format!("{path}.{kind}.{field}"),
            format!("with targets:, each target gives its own \"{field}\"; remove it here"),
        );
    }
    if raw.is_empty() {
        errors.at(file, &format!("{path}.targets"), "targets: must list at least one target");
    }
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let tpath = format!("{path}.targets[{i}]");
        let name = slug_field(file, &format!("{tpath}.name"), t.name.as_ref(), "target name", errors);
        let given = [("url", &t.url), ("address", &t.address), ("host", &t.host)];
        for (other, value) in given {
            if other != field && value.is_some() {
                errors.at(
                    file,
                    &format!("{tpath}.{other}"),
                    format!("\"{other}\" does not apply to {kind} checks; use \"{field}\""),
                );
            }
        }
        let value = given.iter().find(|(f, _)| *f == field).and_then(|&(_, v)| v.clone());
        let Some(value) = value else {
            if given.iter().all(|(_, v)| v.is_none()) {
                errors.at(file, &tpath, format!("target needs \"{field}\""));
            }
            continue;
        };
        let valid = kinds::check_target_address(file, &format!("{tpath}.{field}"), kind, &value, errors);
        let Some(name) = name else { continue };
        if !names.insert(name.clone()) {
            errors.at(file, &format!("{tpath}.name"), format!("duplicate target name \"{name}\""));
            continue;
        }
        if valid {
            out.push(Target::new(key(&name), value));
        }
    }
    out
}

/// Resolves `instance.uplink` references (`system/check` or target ids) to target ids.
fn resolve_uplink(file: &SourceFile, refs: &[String], systems: &[System], errors: &mut Errors) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let matched: Vec<String> = systems
            .iter()
            .flat_map(|s| s.checks.iter().map(move |c| (s, c)))
            .flat_map(|(s, c)| c.targets.iter().map(move |t| (format!("{}/{}", s.id, c.id), t.id().to_string())))
            .filter(|(check, target)| check == r || target == r)
            .map(|(_, target)| target)
            .collect();
        if matched.is_empty() {
            errors.at(file, &format!("instance.uplink[{i}]"), format!("uplink \"{r}\" names no known check"));
        }
        out.extend(matched);
    }
    out
}

fn resolve_dependencies(
    systems: &mut [System],
    pending: Vec<PendingDep>,
    units: &[(&SourceFile, &[RawSystem])],
    errors: &mut Errors,
) {
    let mut known: HashSet<String> = HashSet::new();
    for s in systems.iter() {
        for c in &s.checks {
            known.insert(format!("{}/{}", s.id, c.id));
            for t in &c.targets {
                known.insert(t.id().to_string());
            }
        }
    }
    for dep in pending {
        let file = units.iter().find(|(f, _)| f.path == dep.file_path).map(|(f, _)| *f);
        let Some(file) = file else { continue };
        let full = if dep.reference.contains('/') {
            dep.reference.clone()
        } else {
            format!("{}/{}", dep.system, dep.reference)
        };
        let own = format!("{}/{}", dep.system, dep.check);
        if dep.rename {
            let well_formed = full.split('/').count() == 2 && full.split('/').all(super::fields::is_slug);
            if !well_formed {
                errors.at(
                    file,
                    &dep.key_path,
                    format!("renamed_from \"{}\" is not a check id (expected check or system/check)", dep.reference),
                );
            } else if known.contains(&full) {
                errors.at(
                    file,
                    &dep.key_path,
                    format!("renamed_from \"{}\" names a check that still exists", dep.reference),
                );
            } else if let Some(check) = systems
                .iter_mut()
                .find(|s| s.id == dep.system)
                .and_then(|s| s.checks.iter_mut().find(|c| c.id == dep.check))
            {
                Arc::make_mut(check).renamed_from = Some(full);
            }
            continue;
        }
        if full == own || full.starts_with(&format!("{own}/")) {
            errors.at(file, &dep.key_path, format!("check \"{own}\" cannot depend on itself"));
        } else if !known.contains(&full) {
            errors.at(
                file,
                &dep.key_path,
                format!(
                    "{} \"{}\" names no known check (expected system/check or system/check/target)",
                    if dep.any { "depends_on_any" } else { "depends_on" },
                    dep.reference
                ),
            );
        } else if let Some(check) = systems
            .iter_mut()
            .find(|s| s.id == dep.system)
            .and_then(|s| s.checks.iter_mut().find(|c| c.id == dep.check))
        {
            let check = Arc::make_mut(check);
            if dep.any { check.depends_on_any.push(full) } else { check.depends_on.push(full) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_percentages() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("21d"), Ok(Duration::from_secs(21 * 86_400)));
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!((parse_percent("99.9%").unwrap() - 0.999).abs() < 1e-12);
        assert!(parse_percent("99.9").is_err());
        assert!(parse_percent("120%").is_err());
    }

    /// What a configured check costs in memory matters at 50,000 of them (bench/idle-slope):
    /// its default condition is held without spare room, and a copy of the configuration
    /// (the pipeline's, each reload's) shares its checks instead of copying them.
    #[test]
    fn checks_are_held_tightly_and_shared() {
        let text = "systems:\n  - id: s\n    checks:\n      - { id: db, tcp: { address: \"127.0.0.1:5432\" } }\n";
        let no_env = |_: &str| None;
        let config = load_text(Path::new("t.yaml"), text, &no_env).expect("valid");
        let check = &config.systems[0].checks[0];
        assert_eq!((check.conditions.len(), check.conditions.capacity()), (1, 1), "the default condition alone");
        let copy = config.clone();
        assert!(Arc::ptr_eq(check, &copy.systems[0].checks[0]), "a copy shares the check");
    }
}
