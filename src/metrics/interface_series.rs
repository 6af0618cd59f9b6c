//! The per-interface families of SNMP checks in the interfaces mode: one series per
//! judged interface (labels `ifName`, `ifAlias`) of statuses and rates.

use super::targets::{Family, Readings};
use crate::probe::snmp::Interface;

/// Emits `value(interface)` for every interface that has one, with its labels and `extra`.
fn per_interface(
    r: &Readings,
    extra: &[(&str, &str)],
    value: impl Fn(&Interface) -> Option<f64>,
    emit: &mut super::targets::Emit<'_>,
) {
    for i in &r.interfaces {
        if let Some(v) = value(i) {
            let mut labels = vec![("ifName", i.name.as_str()), ("ifAlias", i.alias.as_str())];
            labels.extend_from_slice(extra);
            emit(&labels, v);
        }
    }
}

fn flag(b: bool) -> Option<f64> {
    Some(if b { 1.0 } else { 0.0 })
}

/// The families, in exposition order (after the per-target ones).
pub(super) const FAMILIES: [Family; 6] = [
    Family {
        name: "vigil_snmp_interface_oper_up",
        help: "1 if the interface's ifOperStatus was up in the last run.",
        kind: "gauge",
        samples: |r, emit| per_interface(r, &[], |i| flag(i.oper_status == "up"), emit),
    },
    Family {
        name: "vigil_snmp_interface_admin_up",
        help: "1 if the interface's ifAdminStatus was up in the last run.",
        kind: "gauge",
        samples: |r, emit| per_interface(r, &[], |i| flag(i.admin_status == "up"), emit),
    },
    Family {
        name: "vigil_snmp_interface_bits_per_second",
        help: "Traffic between the last two runs, from the octet counters (64-bit when the agent has them).",
        kind: "gauge",
        samples: |r, emit| {
            per_interface(r, &[("direction", "in")], |i| i.rates.as_ref()?.in_bps, emit);
            per_interface(r, &[("direction", "out")], |i| i.rates.as_ref()?.out_bps, emit);
        },
    },
    Family {
        name: "vigil_snmp_interface_errors_per_second",
        help: "Errors per second between the last two runs.",
        kind: "gauge",
        samples: |r, emit| {
            per_interface(r, &[("direction", "in")], |i| i.rates.as_ref()?.in_errors, emit);
            per_interface(r, &[("direction", "out")], |i| i.rates.as_ref()?.out_errors, emit);
        },
    },
    Family {
        name: "vigil_snmp_interface_discards_per_second",
        help: "Discarded packets per second between the last two runs.",
        kind: "gauge",
        samples: |r, emit| {
            per_interface(r, &[("direction", "in")], |i| i.rates.as_ref()?.in_discards, emit);
            per_interface(r, &[("direction", "out")], |i| i.rates.as_ref()?.out_discards, emit);
        },
    },
    Family {
        name: "vigil_snmp_interface_utilisation_ratio",
        help: "The busier direction's share of the interface speed (0-1).",
        kind: "gauge",
        samples: |r, emit| per_interface(r, &[], |i| Some(i.utilisation()? / 100.0), emit),
    },
];

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::targets::TargetTable;
    use crate::config::TargetKey;
    use crate::model::Health;
    use crate::probe::snmp::{Interface, Rates};
    use crate::probe::{Observations, ProbeOutcome};

    fn interface(name: &str, judged: bool, rates: Option<Rates>) -> Interface {
        Interface {
            index: 1,
            name: name.into(),
            alias: format!("to \"{name}\""),
            oper_status: if name == "ge-0/0/2" { "down" } else { "up" },
            admin_status: "up",
            speed_bps: Some(1e9),
            rates,
            judged,
        }
    }

    #[test]
    fn each_judged_interface_has_its_series_and_no_rate_is_made_up() {
        let table = TargetTable::new(None);
        let key = TargetKey { system: "network".into(), check: "switches".into(), target: "sin-ho".into() };
        let series = table.add(&key, "snmp", &[]);
        let rates = Rates { in_bps: Some(2.5e8), out_bps: Some(1e8), in_errors: Some(0.0), ..Rates::default() };
        let interfaces = vec![
            interface("ge-0/0/1", true, Some(rates)),
            interface("ge-0/0/2", true, None),
            interface("lo", false, Some(Rates::default())),
        ];
        let outcome = ProbeOutcome {
            health: Health::Down,
            reason: None,
            message: String::new(),
            failed_conditions: Vec::new(),
            observations: Observations { interfaces, ..Observations::default() },
            duration: Duration::from_millis(40),
        };
        series.record(&outcome, 1_790_000_000.0);
        let mut out = String::new();
        table.encode(&mut out);
        let labels = |name: &str| {
            format!(
                "check=\"switches\",kind=\"snmp\",system=\"network\",target=\"sin-ho\",ifName=\"{name}\",ifAlias=\"to \\\"{name}\\\"\""
            )
        };
        for line in [
            format!("vigil_snmp_interface_oper_up{{{}}} 1", labels("ge-0/0/1")),
            format!("vigil_snmp_interface_oper_up{{{}}} 0", labels("ge-0/0/2")),
            format!("vigil_snmp_interface_bits_per_second{{{},direction=\"in\"}} 250000000", labels("ge-0/0/1")),
            format!("vigil_snmp_interface_bits_per_second{{{},direction=\"out\"}} 100000000", labels("ge-0/0/1")),
            format!("vigil_snmp_interface_utilisation_ratio{{{}}} 0.25", labels("ge-0/0/1")),
        ] {
            assert!(out.contains(&format!("{line}\n")), "missing {line} in:\n{out}");
        }
        assert!(!out.contains("ifName=\"lo\""), "an interface not judged has no series");
        assert!(!out.contains(&format!("vigil_snmp_interface_bits_per_second{{{}", labels("ge-0/0/2"))), "no rate yet");
        assert!(!out.contains("errors_per_second{check=\"switches\",kind=\"snmp\",system=\"network\",target=\"sin-ho\",ifName=\"ge-0/0/1\",ifAlias=\"to \\\"ge-0/0/1\\\"\",direction=\"out\"}"), "an unread counter has no rate");
    }
}
