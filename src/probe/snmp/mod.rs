//! SNMP probe (v2c, or v3 with authentication and privacy): named scalars (`get`) and
//! subtrees (`walk`) as the JSON `[BODY]`, and the `interfaces:` mode — every interface's
//! statuses and rates, each judged on its own by the check's `[IF_…]` conditions.
//!
//! Rates need two readings of the counters: a run compares its own with the run before's
//! (kept per target). The first run, and the first after the agent restarted (its uptime
//! went back), have no rate yet: conditions on rates wait for the next run rather than
//! judge a made-up figure. A hostile agent cannot flood the probe: the `walk:` sections of
//! a run read [`MAX_ROWS`] values and [`MAX_WALK_BYTES`] of them at most in all, an
//! interface column [`MAX_INTERFACES`] rows, and text read from it is cut and cleaned.

mod interfaces;
mod judging;
mod rates;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_snmp::{Auth, AuthProtocol, Client, ErrorKind, Oid, PrivProtocol, Retry, UsmConfig, Value};
use bytes::Bytes;

pub use interfaces::Interface;
pub(crate) use judging::{failures, interface_value};
pub use rates::{Counter, Rates};

use super::reaching::{addresses, finished};
use super::{FailureReason, Observations, ProbeError, Reach};
use crate::config::snmp::{SnmpAuth, SnmpAuthProtocol, SnmpPrivProtocol, SnmpSpec};

/// Values one walk may return at most.
pub const MAX_ROWS: usize = 10_000;
/// Bytes of values the `walk:` sections of one run may read in all (the `[BODY]`'s size).
pub const MAX_WALK_BYTES: usize = 1 << 20;
/// Rows one interface column may have (a chassis has a few thousand interfaces at most).
pub const MAX_INTERFACES: usize = 4096;
/// `sysUpTime.0`: a value lower than the last run's means the agent restarted.
const SYS_UPTIME: &str = "1.3.6.1.2.1.1.3.0";
/// A reading older than this is not used for a rate (the target was paused, or the check
/// reconfigured).
const MAX_SAMPLE_AGE: Duration = Duration::from_secs(3600);

/// The counters each target's last run read, for the next run's rates.
#[derive(Debug, Default)]
pub struct SnmpState {
    samples: Mutex<Samples>,
}

/// The kept readings, and when the stale ones (targets removed or paused) were last dropped.
#[derive(Debug, Default)]
struct Samples {
    by_target: HashMap<String, rates::Sample>,
    pruned: Option<Instant>,
}

impl SnmpState {
    fn take(&self, target: &str) -> Option<rates::Sample> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).by_target.remove(target)
    }

    /// Keeps `sample` for `target`'s next run; once per [`MAX_SAMPLE_AGE`], drops what is too
    /// old to give a rate (not a walk over every target on each run).
    fn keep(&self, target: &str, sample: rates::Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.pruned.is_none_or(|at| at.elapsed() >= MAX_SAMPLE_AGE) {
            samples.by_target.retain(|_, s| s.at.elapsed() < MAX_SAMPLE_AGE);
            samples.pruned = Some(Instant::now());
        }
        samples.by_target.insert(target.to_string(), sample);
    }
}

/// What walks may still read: values, and bytes of them, out of `limit` values.
struct Budget {
    limit: usize,
    values: usize,
    bytes: usize,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget { limit, values: limit, bytes: MAX_WALK_BYTES }
    }
}

pub(super) async fn observe(
    spec: &SnmpSpec,
    address: &str,
    target: &str,
    state: &SnmpState,
    reach: Reach<'_>,
) -> Result<Observations, ProbeError> {
    let started = Instant::now();
    let mut obs = Observations::default();
    let result = ask(spec, address, target, state, reach, &mut obs).await;
    finished(started, obs, result)
}

async fn ask(
    spec: &SnmpSpec,
    address: &str,
    target: &str,
    state: &SnmpState,
    reach: Reach<'_>,
    obs: &mut Observations,
) -> Result<(), ProbeError> {
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')) => {
            (h, p.parse::<u16>().unwrap_or(161))
        }
        _ => (address, 161),
    };
    let addrs = addresses(host.trim_start_matches('[').trim_end_matches(']'), port, reach, obs).await?;
    let peer = *addrs.first().ok_or_else(|| ProbeError::new(FailureReason::Dns, "no address"))?;
    obs.ip = Some(peer.ip());
    let left = reach.deadline.saturating_duration_since(tokio::time::Instant::now());
    // A request and its one retry both fit the check's timeout: a silent agent is then
    // reported by the library's timeout, with what it may mean for v3.
    let attempt = (left.saturating_sub(Duration::from_millis(100)) / 2).max(Duration::from_millis(100));
    let v3 = matches!(spec.auth, SnmpAuth::V3 { .. });
    let client = Client::builder(peer, auth(&spec.auth)?)
        .request_timeout(attempt)
        .retry(Retry::fixed(1, Duration::ZERO).expect("one retry is valid"))
        .connect()
        .await
        .map_err(|e| failure(&e, v3, "agent"))?;
    let mut body = serde_json::Map::new();
    if !spec.get.is_empty() {
        let oids: Vec<Oid> = spec.get.iter().map(|(_, o)| oid(o)).collect();
        let answer = client.get_many(&oids).await.map_err(|e| failure(&e, v3, "get"))?;
        obs.connected = Some(true);
        for ((name, _), vb) in spec.get.iter().zip(&answer.varbinds) {
            body.insert(name.clone(), json(&vb.value));
        }
    }
    let mut budget = Budget::new(MAX_ROWS); // for every walk of the run together
    for (name, base) in &spec.walk {
        let base = oid(base);
        let rows = walk(&client, &base, v3, &mut budget).await?;
        obs.connected = Some(true);
        let values = rows.iter().map(|(o, v)| (suffix(&base, o), json(v))).collect();
        body.insert(name.clone(), serde_json::Value::Object(values));
    }
    obs.body = Some(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()));
    if let Some(choice) = &spec.interfaces {
        let (columns, rates) = read_with_rates(&client, target, state, v3).await?;
        obs.connected = Some(true);
        obs.interfaces = interfaces::interfaces(&columns, &rates, choice);
    }
    Ok(())
}

/// The interface table and every interface's rates since the last run (none on a first
/// run, after the agent restarted, or after a pause longer than [`MAX_SAMPLE_AGE`]).
async fn read_with_rates(
    client: &Client,
    target: &str,
    state: &SnmpState,
    v3: bool,
) -> Result<(interfaces::Columns, HashMap<u32, Rates>), ProbeError> {
    let (columns, sample) = read_table(client, v3).await?;
    let rates = match state.take(target).filter(|p| p.at.elapsed() < MAX_SAMPLE_AGE) {
        Some(before) => {
            sample.interfaces.keys().filter_map(|i| Some((*i, rates::rates(&before, &sample, *i)?))).collect()
        }
        None => HashMap::new(),
    };
    state.keep(target, sample);
    Ok((columns, rates))
}

/// The interface columns (walked at once) and the counters' sample.
async fn read_table(client: &Client, v3: bool) -> Result<(interfaces::Columns, rates::Sample), ProbeError> {
    let uptime = client.get(&oid(SYS_UPTIME)).await.map_err(|e| failure(&e, v3, "sysUpTime"))?;
    let uptime = uptime.varbinds.first().and_then(|vb| vb.value.as_u64());
    let walks = interfaces::COLUMNS.iter().map(|(name, base)| async move {
        let base = oid(base);
        let mut budget = Budget::new(MAX_INTERFACES);
        walk(client, &base, v3, &mut budget).await.map(|rows| (*name, base, rows))
    });
    let mut columns = interfaces::Columns::new();
    for walked in futures_util::future::join_all(walks).await {
        let (name, base, rows) = walked?;
        for (o, v) in rows {
            interfaces::file(&mut columns, name, &base, &o, v);
        }
    }
    let sample = rates::Sample { at: Instant::now(), uptime, interfaces: interfaces::counters(&columns) };
    Ok((columns, sample))
}

/// Every value under `base`, within what `budget` has left (and taken from it).
async fn walk(client: &Client, base: &Oid, v3: bool, budget: &mut Budget) -> Result<Vec<(Oid, Value)>, ProbeError> {
    let mut stream = client.walk(base.clone()).map_err(|e| failure(&e, v3, "walk"))?;
    let mut rows = Vec::new();
    while let Some(item) = stream.next().await {
        let vb = item.map_err(|e| failure(&e, v3, "walk"))?;
        let size = vb.value.as_bytes().map_or(8, <[u8]>::len) + vb.oid.len() * 4;
        let stopped = if budget.values == 0 {
            Some(format!("more than {} values", budget.limit))
        } else if size > budget.bytes {
            Some(format!("more than {} KiB of values", MAX_WALK_BYTES >> 10))
        } else {
            None
        };
        if let Some(why) = stopped {
            return Err(ProbeError::new(FailureReason::Snmp, format!("snmp walk of {base}: {why}, stopped")));
        }
        (budget.values, budget.bytes) = (budget.values - 1, budget.bytes - size);
        rows.push((vb.oid, vb.value));
    }
    Ok(rows)
}

/// The library's authentication for the check's.
fn auth(auth: &SnmpAuth) -> Result<Auth, ProbeError> {
    match auth {
        SnmpAuth::V2c { community } => Ok(Auth::v2c(community.expose())),
        SnmpAuth::V3 { username, auth: (protocol, password), privacy } => {
            let protocol = match protocol {
                SnmpAuthProtocol::Md5 => AuthProtocol::Md5,
                SnmpAuthProtocol::Sha1 => AuthProtocol::Sha1,
                SnmpAuthProtocol::Sha256 => AuthProtocol::Sha256,
                SnmpAuthProtocol::Sha512 => AuthProtocol::Sha512,
            };
            let user = UsmConfig::new(bytes::Bytes::copy_from_slice(username.as_bytes()));
            let config = match privacy {
                None => user.auth(protocol, password.expose()),
                Some((privacy, key)) => {
                    let privacy = match privacy {
                        SnmpPrivProtocol::Des => PrivProtocol::Des,
                        SnmpPrivProtocol::Aes128 => PrivProtocol::Aes128,
                        // net-snmp's AES-256 (Blumenthal key extension)
                        SnmpPrivProtocol::Aes256 => PrivProtocol::Aes256Blumenthal,
                    };
                    user.auth_priv(protocol, password.expose(), privacy, key.expose())
                }
            };
            // The library's error names the protocol, never the password.
            config.map(Auth::from).map_err(|e| ProbeError::new(FailureReason::Snmp, format!("snmp v3 keys: {e}")))
        }
    }
}

/// A configured OID (validated when the configuration was loaded).
fn oid(text: &str) -> Oid {
    Oid::parse(text).unwrap_or_else(|_| Oid::empty())
}

/// The arcs of `oid` under `base`, dotted (`2` for ifDescr.2).
fn suffix(base: &Oid, oid: &Oid) -> String {
    let arcs = oid.strip_prefix(base).map(|s| s.arcs().to_vec()).unwrap_or_else(|| oid.arcs().to_vec());
    arcs.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

/// A value as JSON: numbers as numbers, text as text (hex when it is not), exceptions
/// (`noSuchObject`, …) as null.
fn json(value: &Value) -> serde_json::Value {
    if let Some(n) = value.as_i32() {
        return n.into();
    }
    if let Some(n) = value.as_u64() {
        return n.into();
    }
    if let Some(bytes) = value.as_bytes() {
        let cut = &bytes[..bytes.len().min(1024)];
        return match std::str::from_utf8(cut) {
            Ok(text) if !text.chars().any(char::is_control) => text.into(),
            _ => cut.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":").into(),
        };
    }
    if let Some(oid) = value.as_oid() {
        return oid.to_string().into();
    }
    if let Some(ip) = value.as_ip() {
        return ip.to_string().into();
    }
    serde_json::Value::Null
}

/// A library error as a probe failure: a timeout as such, anything else as `snmp`. An
/// agent refusing a v3 user or password answers with an unauthenticated report, which is
/// not trusted (anyone could forge one): for v3 a timeout says so.
fn failure(e: &async_snmp::Error, v3: bool, what: &str) -> ProbeError {
    match e.kind() {
        ErrorKind::Timeout | ErrorKind::ConstructionTimeout if v3 => ProbeError::new(
            FailureReason::Timeout,
            format!(
                "snmp {what}: no authenticated answer — the agent is silent, or refused the v3 username or passwords"
            ),
        ),
        ErrorKind::Timeout | ErrorKind::ConstructionTimeout => ProbeError::new(
            FailureReason::Timeout,
            format!("snmp {what}: no answer (agent silent, or wrong community)"),
        ),
        ErrorKind::Network => ProbeError::new(FailureReason::Network, format!("snmp {what}: {e}")),
        _ => ProbeError::new(FailureReason::Snmp, format!("snmp {what}: {e}")),
    }
}
