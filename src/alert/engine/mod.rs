//! The incident engine: opens and resolves incidents on state transitions, decides who is
//! told (routes), and when to remind and escalate. Pure: it returns [`Effect`]s for the
//! caller to store and send, and takes the time as an argument.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::route;
use crate::config::alerting::Route;
use crate::model::incident::{Ack, Decision, EventKind, GroupItem, Incident, Notification, Severity, Told};

/// What the caller must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Store the incident (new or changed).
    Save(Incident),
    /// Write the notification to the outbox (with the incident, in one transaction).
    Notify(Notification),
}

/// Everything about a new incident except what the engine assigns.
#[derive(Debug, Clone)]
pub struct Opening {
    pub target: String,
    pub system: String,
    pub system_name: String,
    pub check: String,
    pub check_name: String,
    pub target_name: String,
    pub kind: String,
    pub severity: Severity,
    pub started_ms: i64,
    pub cause: String,
    pub reason: Option<String>,
    pub failed_conditions: Vec<String>,
    pub affected: Vec<String>,
    pub runbook: Option<String>,
    /// The target is one of Vigil's uplink checks.
    pub monitor_blind: bool,
    /// The vantage point it is seen failing from (an agent's view), and the cause class.
    pub vantage: Option<String>,
    pub cause_class: Option<String>,
}

/// Routing context: the routes and the `location` label.
#[derive(Debug, Clone, Copy)]
pub struct Routing<'a> {
    pub routes: &'a [Route],
    pub location: &'a str,
}

/// The open incidents, by target id, and the groups still collecting.
#[derive(Debug, Default)]
pub struct Engine {
    open: BTreeMap<String, Incident>,
    ids: handover::Ids,
    /// Group key → (due time, targets), for grouped routes.
    groups: BTreeMap<String, (i64, Vec<String>)>,
    /// Root cause target → (due time, dependents already announced that it now explains):
    /// one "update" per batch instead of one per dependent.
    reattributed: BTreeMap<String, (i64, Vec<String>)>,
}

/// A root cause that fails within this time after a dependent of it was announced takes
/// that dependent's incident under its own ("also affected"), once.
pub const REATTRIBUTE_WITHIN_MS: i64 = 120_000;
/// How long re-attributed dependents are collected before the one update goes out.
pub(super) const REATTRIBUTE_WAIT_MS: i64 = 10_000;

/// The idempotency key of a notification.
fn key(incident: &Incident, receiver: &str, event: EventKind, n: u32) -> String {
    let suffix = if n > 0 { format!("-{n}") } else { String::new() };
    format!("incident-{}-{}-{receiver}{suffix}", incident.id, event.as_str())
}

fn notification(incident: &Incident, receiver: &str, event: EventKind, n: u32, now: i64) -> Notification {
    let first = incident.told.iter().find(|t| t.receiver == receiver).map(|t| t.first_key.clone());
    let key = key(incident, receiver, event, n);
    Notification {
        reply_to: first.filter(|f| !f.is_empty() && *f != key),
        group: Vec::new(),
        report: None,
        node: None,
        key,
        receiver: receiver.to_string(),
        event,
        incident: incident.clone(),
        created_ms: now,
    }
}

impl Engine {
    /// An engine resuming `open` incidents; new ids start after `last_id`.
    pub fn new(open: Vec<Incident>, last_id: i64) -> Engine {
        let open: BTreeMap<String, Incident> = open.into_iter().map(|i| (i.target.clone(), i)).collect();
        // Groups that were collecting when Vigil stopped are announced at the next tick.
        let mut groups: BTreeMap<String, (i64, Vec<String>)> = BTreeMap::new();
        for i in open.values() {
            for t in i.told.iter().filter(|t| !t.announced) {
                if let Some(g) = &t.group {
                    groups.entry(g.clone()).or_insert((0, Vec::new())).1.push(i.target.clone());
                }
            }
        }
        Engine { open, ids: handover::Ids::after(last_id), groups, reattributed: BTreeMap::new() }
    }

    /// The open incident of a target.
    pub fn open_incident(&self, target: &str) -> Option<&Incident> {
        self.open.get(target)
    }

    /// Every open incident.
    pub fn open_incidents(&self) -> impl ExactSizeIterator<Item = &Incident> {
        self.open.values()
    }

    /// Opens an incident and tells the receivers of its routes — unless `quiet` (the target
    /// is flapping): then nobody is told, and nobody hears of its resolution either.
    pub fn open(&mut self, o: Opening, routing: Routing, now: i64, quiet: bool) -> Vec<Effect> {
        let mut effects = self.resolve(&o.target, now);
        let mut incident = Incident {
            id: self.ids.take(now),
            target: o.target,
            system: o.system,
            system_name: o.system_name,
            check: o.check,
            check_name: o.check_name,
            target_name: o.target_name,
            kind: o.kind,
            severity: o.severity,
            started_ms: o.started_ms,
            detected_ms: now,
            resolved_ms: None,
            cause: o.cause,
            reason: o.reason,
            failed_conditions: o.failed_conditions,
            affected: o.affected,
            ack: None,
            told: Vec::new(),
            runbook: o.runbook,
            reminders: 0,
            escalated: false,
            last_notified_ms: now,
            monitor_blind: o.monitor_blind,
            closed_as: None,
            why: Vec::new(),
            vantage: o.vantage,
            cause_class: o.cause_class,
        };
        let notes = if quiet {
            incident.decided(now, Decision::QuietFlapping, Vec::new());
            Vec::new()
        } else {
            self.tell(&mut incident, routing, now)
        };
        effects.push(Effect::Save(incident.clone()));
        effects.extend(notes);
        self.open.insert(incident.target.clone(), incident);
        effects
    }

    /// Opens an incident nobody is told about, recording `decision` as the reason.
    pub fn open_unannounced(&mut self, o: Opening, now: i64, decision: Decision, who: Vec<String>) -> Vec<Effect> {
        let target = o.target.clone();
        let location = String::new();
        let mut effects = self.open(o, Routing { routes: &[], location: &location }, now, true);
        if let Some(i) = self.open.get_mut(&target) {
            i.why.clear();
            i.decided(now, decision, who);
            for e in effects.iter_mut() {
                if let Effect::Save(saved) = e
                    && saved.target == target
                    && saved.is_open()
                {
                    *saved = i.clone();
                }
            }
        }
        effects
    }

    /// Tells the receivers of the incident's routes (grouped ones once their group is
    /// announced); returns the notifications due now.
    fn tell(&mut self, incident: &mut Incident, routing: Routing, now: i64) -> Vec<Effect> {
        let mut seen = HashSet::new();
        let routes = route::matching(routing.routes, incident, routing.location);
        for r in routes {
            for receiver in &r.receivers {
                if !seen.insert(receiver.clone()) {
                    continue;
                }
                let group = (!r.group_by.is_empty()).then(|| {
                    let values: Vec<String> =
                        r.group_by.iter().map(|l| route::label(incident, routing.location, l)).collect();
                    format!("{receiver}|{}", values.join("|"))
                });
                let group_wait_ms = r.group_wait.as_millis() as i64;
                if let Some(g) = &group {
                    let entry = self.groups.entry(g.clone()).or_insert((now + group_wait_ms, Vec::new()));
                    entry.1.push(incident.target.clone());
                }
                incident.told.push(Told {
                    receiver: receiver.clone(),
                    send_resolved: r.send_resolved,
                    first_key: if group.is_some() {
                        String::new()
                    } else {
                        key(incident, receiver, EventKind::Firing, 0)
                    },
                    announced: group.is_none(),
                    group,
                    group_wait_ms,
                });
            }
        }
        let (now_told, waiting): (Vec<&Told>, Vec<&Told>) = incident.told.iter().partition(|t| t.announced);
        let names = |told: &[&Told]| told.iter().map(|t| t.receiver.clone()).collect::<Vec<_>>();
        let (now_told, waiting) = (names(&now_told), names(&waiting));
        if now_told.is_empty() && waiting.is_empty() {
            incident.decided(now, Decision::NoRoute, Vec::new());
        }
        if !now_told.is_empty() {
            incident.decided(now, Decision::Announced, now_told);
        }
        if !waiting.is_empty() {
            incident.decided(now, Decision::Grouped, waiting);
        }
        incident
            .told
            .iter()
            .filter(|t| t.announced)
            .map(|t| Effect::Notify(notification(incident, &t.receiver, EventKind::Firing, 0, now)))
            .collect()
    }

    /// Announces an incident nobody was told about (opened while its target was flapping),
    /// once the flapping is over and the target is still failing: flapping never hides an
    /// outage. Nothing if there is no such incident.
    pub fn announce_quiet(&mut self, target: &str, routing: Routing, now: i64) -> Vec<Effect> {
        self.announce_held(target, Decision::QuietFlapping, Decision::AnnouncedAfterFlapping, routing, now)
    }

    /// Announces the target's open incident if nobody was told about it because of `held`
    /// (flapping, or an agent's centre speaking for it); `decision` says why
    /// now. Nothing otherwise.
    pub fn announce_held(
        &mut self,
        target: &str,
        held: Decision,
        decision: Decision,
        routing: Routing,
        now: i64,
    ) -> Vec<Effect> {
        let Some(mut incident) = self.open.remove(target) else { return Vec::new() };
        if !incident.told.is_empty() || !incident.why.iter().any(|w| w.decision == held) {
            self.open.insert(target.to_string(), incident);
            return Vec::new();
        }
        incident.decided(now, decision, Vec::new());
        let notes = self.tell(&mut incident, routing, now);
        incident.last_notified_ms = now;
        let mut effects = vec![Effect::Save(incident.clone())];
        effects.extend(notes);
        self.open.insert(target.to_string(), incident);
        effects
    }

    /// Closes the open incident of a target whose check was removed from the
    /// configuration: resolved as `removed`, and the receivers told hear of it.
    pub fn close_removed(&mut self, target: &str, now: i64) -> Vec<Effect> {
        if let Some(incident) = self.open.get_mut(target) {
            incident.closed_as = Some("removed".into());
            incident.decided(now, Decision::Removed, Vec::new());
        }
        self.resolve(target, now)
    }

    /// Closes the target's open incident because `owner` (another shard or cluster node)
    /// watches the target now: those told hear it was handed over, not that it is back up.
    pub fn close_moved(&mut self, target: &str, owner: &str, now: i64) -> Vec<Effect> {
        if let Some(incident) = self.open.get_mut(target) {
            incident.closed_as = Some("moved".into());
            incident.decided(now, Decision::Moved, vec![owner.to_string()]);
        }
        self.resolve(target, now)
    }

    /// Moves a target's open incident to its new id `to` (the check was renamed with
    /// `renamed_from`): same incident, same receivers; `rename` gives it the new names.
    pub fn rename(&mut self, from: &str, to: &str, rename: impl FnOnce(&mut Incident)) -> Vec<Effect> {
        let Some(mut incident) = self.open.remove(from) else { return Vec::new() };
        incident.target = to.to_string();
        rename(&mut incident);
        for (_, targets) in self.groups.values_mut() {
            targets.iter_mut().filter(|t| *t == from).for_each(|t| *t = to.to_string());
        }
        self.open.insert(to.to_string(), incident.clone());
        vec![Effect::Save(incident)]
    }

    /// Resolves the target's open incident, if any; resolution goes to everyone told who
    /// wants it — also receivers reached by escalation.
    pub fn resolve(&mut self, target: &str, now: i64) -> Vec<Effect> {
        let Some(mut incident) = self.open.remove(target) else { return Vec::new() };
        incident.resolved_ms = Some(now);
        let mut effects = vec![Effect::Save(incident.clone())];
        // Receivers still waiting for their group's announcement never hear of it.
        for t in incident.told.iter().filter(|t| !t.announced) {
            if let Some((_, targets)) = t.group.as_ref().and_then(|g| self.groups.get_mut(g)) {
                targets.retain(|x| x != target);
            }
        }
        effects.extend(
            incident
                .told
                .iter()
                .filter(|t| t.send_resolved && t.announced)
                .map(|t| Effect::Notify(notification(&incident, &t.receiver, EventKind::Resolved, 0, now))),
        );
        effects
    }

    /// Announces the groups whose wait is over: one message per group and receiver.
    fn flush_groups(&mut self, now: i64) -> Vec<Effect> {
        let due: Vec<String> = self.groups.iter().filter(|(_, (at, _))| *at <= now).map(|(k, _)| k.clone()).collect();
        let mut effects = Vec::new();
        for g in due {
            let Some((_, targets)) = self.groups.remove(&g) else { continue };
            let members: Vec<Incident> = targets.iter().filter_map(|t| self.open.get(t).cloned()).collect();
            let Some(first) = members.first() else { continue };
            let Some(receiver) = first.told.iter().find(|t| t.group.as_deref() == Some(&g)).map(|t| t.receiver.clone())
            else {
                continue;
            };
            let key = format!("group-{}-firing-{receiver}", first.id);
            let mut note = notification(first, &receiver, EventKind::Firing, 0, now);
            note.key = key.clone();
            note.reply_to = None;
            note.group = members.iter().map(GroupItem::of).collect();
            for m in &members {
                if let Some(i) = self.open.get_mut(&m.target) {
                    for t in i.told.iter_mut().filter(|t| t.group.as_deref() == Some(&g)) {
                        t.announced = true;
                        t.first_key = key.clone();
                    }
                    i.decided(now, Decision::GroupAnnounced, vec![receiver.clone()]);
                    // Reminders count from the announcement, not from the opening.
                    i.last_notified_ms = now;
                    effects.push(Effect::Save(i.clone()));
                }
            }
            effects.push(Effect::Notify(note));
        }
        effects
    }

    /// One "flapping" notification to the receivers the target's incidents go to.
    pub fn flapping(&mut self, o: Opening, routing: Routing, now: i64) -> Vec<Effect> {
        let mut snapshot = match self.open.get(&o.target) {
            Some(i) => i.clone(),
            None => {
                let mut probe = Engine::default();
                let effects = probe.open(o.clone(), Routing { routes: &[], location: routing.location }, now, true);
                match effects.into_iter().find_map(|e| if let Effect::Save(i) = e { Some(i) } else { None }) {
                    Some(i) => i,
                    None => return Vec::new(),
                }
            }
        };
        snapshot.resolved_ms = None;
        let mut seen = HashSet::new();
        let mut effects = Vec::new();
        for r in route::matching(routing.routes, &snapshot, routing.location) {
            for receiver in r.receivers.iter().filter(|r| seen.insert((*r).clone())) {
                effects.push(Effect::Notify(Notification {
                    key: format!("flapping-{}-{now}-{receiver}", o.target.replace('/', "_")),
                    receiver: receiver.clone(),
                    event: EventKind::Flapping,
                    incident: snapshot.clone(),
                    created_ms: now,
                    reply_to: None,
                    group: Vec::new(),
                    report: None,
                    node: None,
                }));
            }
        }
        effects
    }

    /// Records a decision on the target's open incident (if any).
    pub fn decide(&mut self, target: &str, now: i64, decision: Decision, who: Vec<String>) -> Vec<Effect> {
        let Some(incident) = self.open.get_mut(target) else { return Vec::new() };
        incident.decided(now, decision, who);
        vec![Effect::Save(incident.clone())]
    }

    /// Lists `dependent` as also affected by the open incidents of `roots`.
    pub fn add_affected(&mut self, roots: &[String], dependent: &str) -> Vec<Effect> {
        let mut effects = Vec::new();
        for root in roots {
            if let Some(incident) = self.open.get_mut(root)
                && !incident.affected.iter().any(|a| a == dependent)
            {
                incident.affected.push(dependent.to_string());
                effects.push(Effect::Save(incident.clone()));
            }
        }
        effects
    }

    /// Acknowledges an open incident (stops reminders and escalation); None if it is not open.
    pub fn ack(&mut self, id: i64, by: &str, comment: &str, now: i64) -> Option<Vec<Effect>> {
        let incident = self.open.values_mut().find(|i| i.id == id)?;
        if incident.ack.is_none() {
            incident.ack = Some(Ack { by: by.to_string(), comment: comment.to_string(), at_ms: now });
        }
        Some(vec![Effect::Save(incident.clone())])
    }

    /// Reminders and escalations that are due; incidents of `paused` targets (in
    /// maintenance) wait.
    pub fn tick(&mut self, routing: Routing, now: i64, paused: &dyn Fn(&str) -> bool) -> Vec<Effect> {
        let mut effects = self.flush_groups(now);
        effects.extend(self.flush_reattributed(now));
        let under_root = self.under_open_roots();
        for incident in self.open.values_mut().filter(|i| i.ack.is_none() && !paused(&i.target)) {
            // Only what somebody was told about is followed up: not a quiet incident (opened
            // while flapping), not one whose group is still collecting.
            let announced: HashSet<String> =
                incident.told.iter().filter(|t| t.announced).map(|t| t.receiver.clone()).collect();
            if announced.is_empty() || under_root.contains(&incident.target) {
                continue;
            }
            let routes = route::matching(routing.routes, incident, routing.location);
            let mut changed = false;
            let since = Duration::from_millis((now - incident.detected_ms).max(0) as u64);
            for r in &routes {
                if let Some(esc) = &r.escalate
                    && !incident.escalated
                    && since >= esc.after
                {
                    incident.escalated = true;
                    changed = true;
                    incident.decided(now, Decision::Escalated, esc.to.clone());
                    for receiver in &esc.to {
                        if !incident.told.iter().any(|t| &t.receiver == receiver) {
                            let first_key = key(incident, receiver, EventKind::Escalation, 0);
                            incident.told.push(Told {
                                receiver: receiver.clone(),
                                send_resolved: r.send_resolved,
                                first_key,
                                group: None,
                                group_wait_ms: 0,
                                announced: true,
                            });
                        }
                        effects.push(Effect::Notify(notification(incident, receiver, EventKind::Escalation, 0, now)));
                    }
                }
            }
            let every = routes.iter().filter_map(|r| r.repeat_every).min();
            if let Some(every) = every
                && now - incident.last_notified_ms >= every.as_millis() as i64
            {
                incident.reminders += 1;
                incident.last_notified_ms = now;
                changed = true;
                let receivers: Vec<String> = routes
                    .iter()
                    .filter(|r| r.repeat_every.is_some())
                    .flat_map(|r| r.receivers.clone())
                    .filter(|r| announced.contains(r))
                    .collect::<Vec<_>>();
                let mut seen = HashSet::new();
                for receiver in receivers.into_iter().filter(|r| seen.insert(r.clone())) {
                    effects.push(Effect::Notify(notification(
                        incident,
                        &receiver,
                        EventKind::Reminder,
                        incident.reminders,
                        now,
                    )));
                }
            }
            if changed {
                effects.push(Effect::Save(incident.clone()));
            }
        }
        effects
    }
}

mod handover;
mod reattribute;
#[cfg(test)]
mod tests;
