//! Routing: which receivers hear about an incident, by its labels.

use crate::config::alerting::Route;
use crate::model::incident::Incident;

/// The routing labels of an incident.
pub fn label(incident: &Incident, location: &str, name: &str) -> String {
    match name {
        "system" => incident.system.clone(),
        "check" => incident.check.clone(),
        "target" => incident.target_name.clone(),
        "severity" => incident.severity.as_str().to_string(),
        "location" => location.to_string(),
        "vantage" => incident.vantage.clone().unwrap_or_default(),
        "cause" => incident.cause_class.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// The routes an incident takes, in order: every matching route up to the first one that
/// does not `continue`.
pub fn matching<'a>(routes: &'a [Route], incident: &Incident, location: &str) -> Vec<&'a Route> {
    let mut out = Vec::new();
    for route in routes {
        if route.matches(|name| label(incident, location, name)) {
            out.push(route);
            if !route.continue_matching {
                break;
            }
        }
    }
    out
}
