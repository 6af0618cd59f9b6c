//! The `interfaces:` mode: ifTable and ifXTable (IF-MIB) walked column by column into
//! one row per interface — names, statuses, speed and counters (the 64-bit `ifHC…`
//! octet counters when the agent has them, else the 32-bit ones).

use std::collections::HashMap;

use async_snmp::{Oid, Value};
use serde::Serialize;

use super::rates::{Counter, Counters, Rates};
use crate::config::snmp::InterfaceChoice;

/// The columns read, by name: ifTable (`1.3.6.1.2.1.2.2.1.N`) and ifXTable
/// (`1.3.6.1.2.1.31.1.1.1.N`).
pub(super) const COLUMNS: [(&str, &str); 16] = [
    ("descr", "1.3.6.1.2.1.2.2.1.2"),
    ("type", "1.3.6.1.2.1.2.2.1.3"),
    ("speed", "1.3.6.1.2.1.2.2.1.5"),
    ("admin", "1.3.6.1.2.1.2.2.1.7"),
    ("oper", "1.3.6.1.2.1.2.2.1.8"),
    ("in_octets", "1.3.6.1.2.1.2.2.1.10"),
    ("in_discards", "1.3.6.1.2.1.2.2.1.13"),
    ("in_errors", "1.3.6.1.2.1.2.2.1.14"),
    ("out_octets", "1.3.6.1.2.1.2.2.1.16"),
    ("out_discards", "1.3.6.1.2.1.2.2.1.19"),
    ("out_errors", "1.3.6.1.2.1.2.2.1.20"),
    ("name", "1.3.6.1.2.1.31.1.1.1.1"),
    ("hc_in_octets", "1.3.6.1.2.1.31.1.1.1.6"),
    ("hc_out_octets", "1.3.6.1.2.1.31.1.1.1.10"),
    ("high_speed", "1.3.6.1.2.1.31.1.1.1.15"),
    ("alias", "1.3.6.1.2.1.31.1.1.1.18"),
];

/// ifType of a loopback (`softwareLoopback`), left out unless named.
const SOFTWARE_LOOPBACK: i64 = 24;

/// One interface as the check reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Interface {
    pub index: u32,
    /// `ifName`, or `ifDescr` when the agent has no ifXTable.
    pub name: String,
    pub alias: String,
    pub oper_status: &'static str,
    pub admin_status: &'static str,
    /// Bits per second (`ifHighSpeed` × 10⁶, else `ifSpeed`); `None` when unknown (0).
    pub speed_bps: Option<f64>,
    /// Rates since the last run; `None` when there is no honest figure.
    pub rates: Option<Rates>,
    /// Whether the check's conditions judge it (chosen by `interfaces:`).
    pub judged: bool,
}

impl Interface {
    /// The busier direction's share of the speed, in percent.
    pub fn utilisation(&self) -> Option<f64> {
        let rates = self.rates.as_ref()?;
        let busiest = rates.in_bps?.max(rates.out_bps?);
        self.speed_bps.filter(|s| *s > 0.0).map(|s| busiest * 100.0 / s)
    }
}

/// `ifAdminStatus` / `ifOperStatus` in words (RFC 2863).
pub fn status_word(code: i64) -> &'static str {
    match code {
        1 => "up",
        2 => "down",
        3 => "testing",
        5 => "dormant",
        6 => "notPresent",
        7 => "lowerLayerDown",
        _ => "unknown",
    }
}

/// The walked columns: column name → interface index → value.
pub(super) type Columns = HashMap<&'static str, HashMap<u32, Value>>;

/// Files one walked binding under its column and interface index (the OID's last arc).
pub(super) fn file(columns: &mut Columns, column: &'static str, base: &Oid, oid: &Oid, value: Value) {
    if let Some(suffix) = oid.strip_prefix(base)
        && let [index] = suffix.arcs()
    {
        columns.entry(column).or_default().insert(*index, value);
    }
}

fn number(columns: &Columns, column: &str, index: u32) -> Option<u64> {
    columns.get(column)?.get(&index)?.as_u64()
}

fn integer(columns: &Columns, column: &str, index: u32) -> Option<i64> {
    let v = columns.get(column)?.get(&index)?;
    v.as_i32().map(i64::from).or_else(|| v.as_u64().map(|n| n as i64))
}

fn text(columns: &Columns, column: &str, index: u32) -> Option<String> {
    let bytes = columns.get(column)?.get(&index)?.as_bytes()?;
    let shown: String = String::from_utf8_lossy(bytes).chars().filter(|c| !c.is_control()).take(128).collect();
    (!shown.is_empty()).then_some(shown)
}

/// The counters of every interface in `columns`.
pub(super) fn counters(columns: &Columns) -> HashMap<u32, Counters> {
    indexes(columns)
        .map(|i| {
            let c32 = |col: &str| number(columns, col, i).map(|value| Counter { value, bits: 32 });
            let c64 = |col: &str| number(columns, col, i).map(|value| Counter { value, bits: 64 });
            let counters = Counters {
                in_octets: c64("hc_in_octets").or_else(|| c32("in_octets")),
                out_octets: c64("hc_out_octets").or_else(|| c32("out_octets")),
                in_errors: c32("in_errors"),
                out_errors: c32("out_errors"),
                in_discards: c32("in_discards"),
                out_discards: c32("out_discards"),
            };
            (i, counters)
        })
        .collect()
}

/// Every interface index the table has (from ifDescr, ifOperStatus or ifName).
fn indexes(columns: &Columns) -> impl Iterator<Item = u32> + '_ {
    let mut all: Vec<u32> =
        ["descr", "oper", "name"].iter().filter_map(|c| columns.get(c)).flat_map(|m| m.keys().copied()).collect();
    all.sort_unstable();
    all.dedup();
    all.into_iter()
}

/// The interfaces of `columns`, with their rates (by index) and whether each is judged.
pub(super) fn interfaces(columns: &Columns, rates: &HashMap<u32, Rates>, choice: &InterfaceChoice) -> Vec<Interface> {
    indexes(columns)
        .map(|index| {
            let name = text(columns, "name", index)
                .or_else(|| text(columns, "descr", index))
                .unwrap_or_else(|| format!("if{index}"));
            let speed = number(columns, "high_speed", index)
                .filter(|s| *s > 0)
                .map(|mbps| mbps as f64 * 1e6)
                .or_else(|| number(columns, "speed", index).filter(|s| *s > 0).map(|bps| bps as f64));
            let admin_status = status_word(integer(columns, "admin", index).unwrap_or(4));
            let loopback = integer(columns, "type", index) == Some(SOFTWARE_LOOPBACK);
            let named =
                if choice.names.is_empty() { !loopback } else { choice.names.iter().any(|re| re.is_match(&name)) };
            Interface {
                index,
                alias: text(columns, "alias", index).unwrap_or_default(),
                oper_status: status_word(integer(columns, "oper", index).unwrap_or(4)),
                admin_status,
                speed_bps: speed,
                rates: rates.get(&index).cloned(),
                judged: named && (choice.admin_down || admin_status == "up"),
                name,
            }
        })
        .collect()
}
