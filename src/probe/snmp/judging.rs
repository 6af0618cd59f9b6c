//! Judging interfaces: a condition on an `[IF_…]` placeholder holds for each judged
//! interface on its own (`eth1: [IF_OPER_STATUS] (down) == up`); the others are judged
//! once, as for any check. An interface with no rate yet (the first run, the agent just
//! restarted) skips the conditions on rates until the next run. For a figure of the whole device (a metric, the status API),
//! the interfaces add up: the first one not up, the busiest rate.

use crate::condition::{self, Condition, Facts, Failure, Placeholder, Value};
use crate::probe::Observations;

use super::Interface;

/// Whether the placeholder is a rate (needs two readings).
fn is_rate(p: Placeholder) -> bool {
    p.is_interface() && !matches!(p, Placeholder::IfOperStatus | Placeholder::IfAdminStatus)
}

/// One interface's value of an `[IF_…]` placeholder.
fn one(i: &Interface, p: Placeholder) -> Option<Value> {
    let rate = |pick: fn(&super::Rates) -> Option<f64>| i.rates.as_ref().and_then(pick).map(Value::Number);
    match p {
        Placeholder::IfOperStatus => Some(Value::Text(i.oper_status.to_string())),
        Placeholder::IfAdminStatus => Some(Value::Text(i.admin_status.to_string())),
        Placeholder::IfInBps => rate(|r| r.in_bps),
        Placeholder::IfOutBps => rate(|r| r.out_bps),
        Placeholder::IfInErrorsRate => rate(|r| r.in_errors),
        Placeholder::IfOutErrorsRate => rate(|r| r.out_errors),
        Placeholder::IfInDiscardsRate => rate(|r| r.in_discards),
        Placeholder::IfOutDiscardsRate => rate(|r| r.out_discards),
        Placeholder::IfUtilisation => i.utilisation().map(Value::Number),
        _ => None,
    }
}

/// The device's value of an `[IF_…]` placeholder over its judged interfaces: a status is
/// the first one that is not `up` (else `up`), a number the largest.
pub(crate) fn interface_value(interfaces: &[Interface], p: Placeholder) -> Option<Value> {
    let values: Vec<Value> = interfaces.iter().filter(|i| i.judged).filter_map(|i| one(i, p)).collect();
    match p {
        Placeholder::IfOperStatus | Placeholder::IfAdminStatus => {
            values.iter().find(|v| **v != Value::Text("up".into())).or(values.first()).cloned()
        }
        _ => values
            .into_iter()
            .filter_map(|v| if let Value::Number(n) = v { Some(n) } else { None })
            .reduce(f64::max)
            .map(Value::Number),
    }
}

/// One interface's facts: its own for `[IF_…]`, the run's for the rest.
struct InterfaceFacts<'a> {
    interface: &'a Interface,
    run: &'a Observations,
}

impl Facts for InterfaceFacts<'_> {
    fn value(&self, p: Placeholder) -> Option<Value> {
        if p.is_interface() { one(self.interface, p) } else { self.run.value(p) }
    }

    fn body(&self) -> Option<&[u8]> {
        self.run.body()
    }
}

/// The failed conditions of a run: with interfaces, each judged interface answers the
/// `[IF_…]` conditions for itself, and its failures are named after it.
pub(crate) fn failures(conditions: &[Condition], run: &Observations) -> Vec<Failure> {
    let judged: Vec<&Interface> = run.interfaces.iter().filter(|i| i.judged).collect();
    if judged.is_empty() {
        return condition::failures(conditions, run);
    }
    let (per_interface, whole): (Vec<Condition>, Vec<Condition>) =
        conditions.iter().cloned().partition(|c| c.placeholders().any(Placeholder::is_interface));
    let mut failed = condition::failures(&whole, run);
    let (on_rates, on_state): (Vec<Condition>, Vec<Condition>) =
        per_interface.into_iter().partition(|c| c.placeholders().any(is_rate));
    for interface in judged {
        let facts = InterfaceFacts { interface, run };
        let mut conditions = on_state.clone();
        if interface.rates.is_some() {
            conditions.extend(on_rates.iter().cloned());
        }
        failed.extend(
            condition::failures(&conditions, &facts)
                .into_iter()
                .map(|f| Failure { placeholder: f.placeholder, display: format!("{}: {}", interface.name, f.display) }),
        );
    }
    failed
}
