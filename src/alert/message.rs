//! Notification messages: minijinja templates (built in, in Vietnamese and English, and
//! overridable from `alerting.templates`), local times in the instance's time zone, and
//! signed one-click acknowledge links.

use std::path::{Path, PathBuf};
use std::time::Duration;

use minijinja::{Environment, context};
use ring::hmac;

use crate::config::{Config, Language, Secret};
use crate::model::format_duration;
use crate::model::incident::{EventKind, Notification};

const SUBJECT: &str = include_str!("templates/subject.j2");
const TEXT: &str = include_str!("templates/text.j2");
const HTML: &str = include_str!("templates/body.html");

/// A message ready for any channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What messages need besides the notification.
#[derive(Debug, Clone)]
pub struct MessageContext {
    pub language: Language,
    pub timezone: jiff::tz::TimeZone,
    pub instance: String,
    pub public_url: Option<String>,
    /// The first signs acknowledgement links; all verify them.
    pub ack_keys: Vec<Secret>,
    pub ack_ttl: Duration,
    pub templates: Option<PathBuf>,
    pub flapping: crate::config::alerting::Flapping,
}

impl MessageContext {
    /// The context of a configuration.
    pub fn from_config(config: &Config) -> MessageContext {
        MessageContext {
            language: config.instance.language,
            timezone: config.instance.timezone.clone(),
            instance: config.instance.name.clone(),
            public_url: config.server.public_url.clone(),
            ack_keys: config.alerting.ack_keys.clone(),
            ack_ttl: config.alerting.ack_link_ttl,
            templates: config.alerting.templates.clone(),
            flapping: config.alerting.flapping,
        }
    }
}

/// Members of a grouped message, and dependents, listed by name at most; the rest are
/// counted ("and 75 more"): a mass outage must still fit a chat message and a pager.
pub const MAX_LISTED: usize = 25;

/// `27/11/2026 15:04:05 (+07:00)` in the instance's time zone.
pub fn local(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(tz.clone()).strftime("%d/%m/%Y %H:%M:%S (%:z)").to_string())
        .unwrap_or_default()
}

/// What an acknowledgement link's signature covers: the format version, the instance (so
/// that a link of one instance of an HA pair sharing the key cannot acknowledge the other's
/// incident of the same number), the target, the incident and the expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckClaim<'a> {
    pub instance: &'a str,
    pub target: &'a str,
    pub incident: i64,
    /// Unix seconds.
    pub expires: i64,
}

impl AckClaim<'_> {
    fn signed_text(&self) -> String {
        format!("v1|{}|{}|{}|{}", self.instance, self.target, self.incident, self.expires)
    }

    /// The hex HMAC-SHA256 of the claim under `key`.
    pub fn signature(&self, key: &Secret) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key.expose().as_bytes());
        let tag = hmac::sign(&key, self.signed_text().as_bytes());
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `sig` was made by one of `keys` for this claim, and it has not expired.
    pub fn verify(&self, keys: &[Secret], sig: &str, now_ms: i64) -> bool {
        let Some(bytes) = (0..sig.len())
            .step_by(2)
            .map(|i| sig.get(i..i + 2).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit())))
            .map(|h| h.and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        let text = self.signed_text();
        self.expires >= now_ms / 1000
            && keys.iter().any(|key| {
                let key = hmac::Key::new(hmac::HMAC_SHA256, key.expose().as_bytes());
                hmac::verify(&key, text.as_bytes(), &bytes).is_ok()
            })
    }
}

/// A signed link acknowledging `incident` of `target`, valid until `now + ack_ttl`.
pub fn ack_link(ctx: &MessageContext, target: &str, incident: i64, now_ms: i64) -> Option<String> {
    let key = ctx.ack_keys.first()?;
    let base = ctx.public_url.as_deref()?.trim_end_matches('/');
    let expires = now_ms / 1000 + ctx.ack_ttl.as_secs() as i64;
    let claim = AckClaim { instance: &ctx.instance, target, incident, expires };
    let target: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    Some(format!("{base}/ack?incident={incident}&target={target}&expires={expires}&sig={}", claim.signature(key)))
}

fn template(dir: Option<&Path>, name: &str, builtin: &'static str) -> String {
    dir.and_then(|d| std::fs::read_to_string(d.join(name)).ok()).unwrap_or_else(|| builtin.to_string())
}

/// Renders a notification.
pub fn render(n: &Notification, ctx: &MessageContext, now_ms: i64) -> Rendered {
    if let Some(r) = &n.report {
        let text = match ctx.language {
            Language::Vi => format!(
                "Báo cáo thời gian hoạt động tháng {} của {} đính kèm (bản HTML trong thư, số liệu CSV đính kèm).",
                r.month, ctx.instance
            ),
            Language::En => format!(
                "The uptime report of {} for {} (HTML in this mail, figures attached as CSV).",
                ctx.instance, r.month
            ),
        };
        return Rendered { subject: r.subject.clone(), html: r.html.clone(), text };
    }
    let i = &n.incident;
    let tz = &ctx.timezone;
    let lang = match ctx.language {
        Language::Vi => "vi",
        Language::En => "en",
    };
    let duration = i.resolved_ms.map(|r| format_duration(Duration::from_millis((r - i.started_ms).max(0) as u64)));
    let status_url = ctx.public_url.as_ref().map(|u| format!("{}/", u.trim_end_matches('/')));
    let values = context! {
        lang, event => n.event.as_str(), receiver => n.receiver, instance => ctx.instance,
        id => i.id, system => i.system, system_name => i.system_name, check => i.check,
        check_name => i.check_name, target_name => i.target_name, kind => i.kind,
        severity => i.severity.as_str(), cause => i.cause, reason => i.reason,
        failed_conditions => i.failed_conditions, runbook => i.runbook,
        affected => i.affected.iter().take(MAX_LISTED).collect::<Vec<_>>(), affected_total => i.affected.len(),
        started => local(i.started_ms, tz), detected => local(i.detected_ms, tz),
        resolved => i.resolved_ms.map(|r| local(r, tz)), duration,
        ack => i.ack, ack_at => i.ack.as_ref().map(|a| local(a.at_ms, tz)),
        ack_url => ack_link(ctx, &i.target, i.id, now_ms), status_url, blind => i.monitor_blind,
        closed_as => i.closed_as, vantage => i.vantage, cause_class => i.cause_class,
        group => n.group.iter().take(MAX_LISTED).collect::<Vec<_>>(), group_total => n.group.len(),
        flapping_changes => ctx.flapping.changes, flapping_window => format_duration(ctx.flapping.window),
    };
    let dir = ctx.templates.as_deref();
    let mut env = Environment::new();
    let sources = [
        ("subject.j2", template(dir, "subject.j2", SUBJECT)),
        ("text.j2", template(dir, "text.j2", TEXT)),
        ("body.html", template(dir, "body.html", HTML)),
    ];
    for (name, source) in sources {
        if let Err(e) = env.add_template_owned(name, source) {
            tracing::error!(template = name, error = %e, "invalid notification template; using the built-in one");
        }
    }
    let render = |name: &str, values: minijinja::Value| {
        env.get_template(name).and_then(|t| t.render(values)).unwrap_or_else(|e| {
            tracing::error!(template = name, error = %e, "cannot render notification template");
            format!("Vigil: {} {} ({})", n.event.as_str(), i.target, i.cause)
        })
    };
    let subject = render("subject.j2", values.clone()).trim().to_string();
    let text = render("text.j2", values.clone());
    let html = render("body.html", context! { subject => subject.clone(), text => text.clone(), ..values });
    Rendered { subject, text, html }
}

/// A notification announcing nothing, to try a receiver's channels.
pub fn test_notification(receiver: &str, now_ms: i64) -> Notification {
    use crate::model::incident::{Incident, Severity};
    Notification {
        key: format!("test-{receiver}-{now_ms}"),
        receiver: receiver.to_string(),
        event: EventKind::Test,
        incident: Incident {
            id: 0,
            target: "vigil/notify-test".into(),
            system: "vigil".into(),
            system_name: "Vigil".into(),
            check: "notify-test".into(),
            check_name: "notify-test".into(),
            target_name: "notify-test".into(),
            kind: "test".into(),
            severity: Severity::Warning,
            started_ms: now_ms,
            detected_ms: now_ms,
            resolved_ms: None,
            cause: "test".into(),
            reason: None,
            failed_conditions: Vec::new(),
            affected: Vec::new(),
            ack: None,
            told: Vec::new(),
            runbook: None,
            reminders: 0,
            escalated: false,
            last_notified_ms: now_ms,
            monitor_blind: false,
            closed_as: None,
            why: Vec::new(),
            vantage: None,
            cause_class: None,
        },
        created_ms: now_ms,
        reply_to: None,
        group: Vec::new(),
        report: None,
        node: None,
    }
}

/// The notice that the store has failed to write since `since_ms` (`resolved`: it writes
/// again), for `receiver`. It goes straight to delivery: the store cannot hold it.
pub fn store_failing_notification(
    receiver: &str,
    since_ms: i64,
    error: &str,
    resolved_ms: Option<i64>,
    now_ms: i64,
) -> Notification {
    use crate::model::incident::Severity;
    let mut n = test_notification(receiver, now_ms);
    let event = if resolved_ms.is_some() { EventKind::Resolved } else { EventKind::Firing };
    n.key = format!("vigil-store-failing-{since_ms}-{}-{receiver}", event.as_str());
    n.event = event;
    let i = &mut n.incident;
    i.target = "vigil/store".into();
    i.check = "store".into();
    i.check_name = "store".into();
    i.target_name = "store".into();
    i.kind = "store".into();
    i.severity = Severity::Critical;
    i.started_ms = since_ms;
    i.detected_ms = since_ms;
    i.resolved_ms = resolved_ms;
    i.cause = format!("the store cannot be written since then: {error} (notifications wait until it can)");
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::incident::{GroupItem, Incident, Severity};

    fn ctx(language: Language) -> MessageContext {
        MessageContext {
            language,
            timezone: jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").expect("tz"),
            instance: "lai-chau".into(),
            public_url: Some("https://monitor.example".into()),
            ack_keys: vec![Secret::new("k3y")],
            ack_ttl: Duration::from_secs(3600),
            templates: None,
            flapping: crate::config::alerting::Flapping { changes: 6, window: Duration::from_secs(1800) },
        }
    }

    fn incident() -> Incident {
        let mut i = test_notification("team", 0).incident;
        i.id = 7;
        i.system_name = "Hệ thống giải quyết thủ tục hành chính".into();
        i.check = "portal".into();
        i.check_name = "Cổng dịch vụ công".into();
        i.target_name = "portal".into();
        i.kind = "http".into();
        i.severity = Severity::Critical;
        i.started_ms = 1_764_230_400_000; // 2025-11-27 08:00 UTC = 15:00 in Hanoi
        i.detected_ms = i.started_ms + 90_000;
        i.cause = "[STATUS] (503) == 200".into();
        i.failed_conditions = vec![i.cause.clone()];
        i.affected = vec!["procedures/api".into()];
        i
    }

    #[test]
    fn vietnamese_firing_and_resolved() {
        let mut n = test_notification("team", 0);
        n.event = EventKind::Firing;
        n.incident = incident();
        let r = render(&n, &ctx(Language::Vi), n.incident.detected_ms);
        assert_eq!(
            r.subject,
            "[Vigil] SỰ CỐ: Hệ thống giải quyết thủ tục hành chính – Cổng dịch vụ công ngừng hoạt động"
        );
        assert!(r.text.contains("Bắt đầu:       27/11/2025 15:00:00 (+07:00)"), "{}", r.text);
        assert!(r.text.contains("Nguyên nhân:   [STATUS] (503) == 200"), "{}", r.text);
        assert!(r.text.contains("Ảnh hưởng kèm theo (1): procedures/api"), "{}", r.text);
        assert!(
            r.text.contains("https://monitor.example/ack?incident=7&target=vigil%2Fnotify-test&expires="),
            "{}",
            r.text
        );
        assert!(r.html.contains("Xác nhận đã tiếp nhận"));
        n.event = EventKind::Resolved;
        n.incident.resolved_ms = Some(n.incident.started_ms + 3 * 3600 * 1000);
        let r = render(&n, &ctx(Language::Vi), 0);
        assert!(
            r.subject.starts_with("[Vigil] ĐÃ KHẮC PHỤC:") && r.subject.ends_with("hoạt động trở lại"),
            "{}",
            r.subject
        );
        assert!(r.text.contains("(gián đoạn 3h 0m)"), "{}", r.text);
    }

    /// Issue #14, item 7: a grouped message of a mass outage lists 25 members and counts
    /// the rest; so does "also affected".
    #[test]
    fn long_groups_are_listed_in_part_and_counted() {
        let mut n = test_notification("team", 0);
        n.event = EventKind::Firing;
        n.incident = incident();
        n.incident.affected = (1..=40).map(|i| format!("network/gw/{i}")).collect();
        n.group = (1..=100)
            .map(|i| GroupItem {
                incident_id: i,
                target: format!("network/gateways/commune-{i:03}"),
                target_name: format!("commune-{i:03}"),
                check_name: "gateways".into(),
                cause: "100% loss".into(),
            })
            .collect();
        let r = render(&n, &ctx(Language::En), 0);
        assert!(r.subject.ends_with("and 99 more"), "{}", r.subject);
        assert!(r.text.contains("Failing together (100):"), "{}", r.text);
        assert_eq!(r.text.matches("network/gateways/commune-").count(), MAX_LISTED, "{}", r.text);
        assert!(r.text.contains("… and 75 more"), "{}", r.text);
        assert!(r.text.contains("Also affected (40):") && r.text.contains("… and 15 more"), "{}", r.text);
        let vi = render(&n, &ctx(Language::Vi), 0);
        assert!(vi.text.contains("… và 75 mục khác") && vi.subject.ends_with("và 99 mục khác"), "{}", vi.text);
    }

    #[test]
    fn english_and_html_escaping() {
        let mut n = test_notification("team", 0);
        n.event = EventKind::Firing;
        n.incident = incident();
        n.incident.cause = "<script>alert(1)</script>".into();
        let r = render(&n, &ctx(Language::En), 0);
        assert!(r.subject.starts_with("[Vigil] DOWN:") && r.subject.ends_with("is down"), "{}", r.subject);
        assert!(r.html.contains("&lt;script&gt;") && !r.html.contains("<script>"), "{}", r.html);
    }

    /// Issue #13, item 9: a link is bound to its instance and target, and a previous key
    /// keeps verifying while it is listed.
    #[test]
    fn ack_links_verify_and_expire() {
        let c = ctx(Language::Vi);
        let link = ack_link(&c, "web/portal", 7, 1_000_000).expect("link");
        let query: std::collections::HashMap<String, String> =
            url::Url::parse(&link).expect("url").query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        assert_eq!(query["target"], "web/portal");
        let expires: i64 = query["expires"].parse().expect("expires");
        let sig = &query["sig"];
        let claim = AckClaim { instance: &c.instance, target: "web/portal", incident: 7, expires };
        let keys = &c.ack_keys;
        assert!(claim.verify(keys, sig, 1_000_000));
        assert!(!AckClaim { incident: 8, ..claim.clone() }.verify(keys, sig, 1_000_000), "other incident");
        assert!(!AckClaim { target: "web/other", ..claim.clone() }.verify(keys, sig, 1_000_000), "other target");
        assert!(!AckClaim { instance: "peer", ..claim.clone() }.verify(keys, sig, 1_000_000), "other instance");
        assert!(!claim.verify(keys, sig, (expires + 1) * 1000), "expired");
        assert!(!claim.verify(keys, "zz", 1_000_000), "garbage signature");
        assert!(!claim.verify(keys, "+a+b", 1_000_000), "signs are not hex");
        let rotated = [Secret::new("n3w-k3y"), Secret::new("k3y")];
        assert!(claim.verify(&rotated, sig, 1_000_000), "the previous key, still listed");
        assert!(!claim.verify(&rotated[..1], sig, 1_000_000), "the previous key, removed");
    }
}
