//! `alerting:`, `receivers:` and `routes:` (usually in `alerts/routing.yaml`): who is told
//! about incidents, through which channels, and when.
//!
//! size: `channel` validates each channel type (email, webhook, Alertmanager) in one match, field by field.

use std::path::Path;
use std::time::Duration;

use super::fields::{Errors, duration_field, is_slug};
use super::raw::{RawAlerting, RawChannel, RawReceiver, RawRoute};
use super::secrets::{self, Strength};
use super::source::SourceFile;
use super::*;

/// The labels routes can match.
pub const ROUTE_LABELS: [&str; 5] = ["system", "check", "target", "severity", "location"];

/// `alerting:` settings.
#[derive(Debug, Clone)]
pub struct Alerting {
    /// Keys of the signed acknowledgement links: the first signs, every one verifies (the
    /// previous key stays listed while its links are still out). Empty: no links.
    pub ack_keys: Vec<Secret>,
    /// How long an acknowledge link stays valid.
    pub ack_link_ttl: Duration,
    /// How long a notification is retried before it is given up (with an ERROR log).
    pub max_age: Duration,
    /// How long the store may fail to write before every receiver is told, straight,
    /// through a path that needs no store.
    pub store_alert_after: Duration,
    /// A folder of templates overriding the built-in ones.
    pub templates: Option<PathBuf>,
    /// At least `changes` state changes within `window` make a target flapping.
    pub flapping: Flapping,
    /// Vigil's own heartbeat to a dead-man's switch.
    pub deadman: Option<Deadman>,
}

/// Flapping detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flapping {
    pub changes: u32,
    pub window: Duration,
}

/// The dead-man's switch Vigil calls while it runs.
#[derive(Debug, Clone)]
pub struct Deadman {
    pub url: String,
    pub interval: Duration,
}

impl Default for Alerting {
    fn default() -> Self {
        Alerting {
            ack_keys: Vec::new(),
            ack_link_ttl: Duration::from_secs(86_400),
            max_age: Duration::from_secs(86_400),
            store_alert_after: Duration::from_secs(60),
            templates: None,
            flapping: Flapping { changes: 6, window: Duration::from_secs(1800) },
            deadman: None,
        }
    }
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP (loopback relays only).
    None,
    /// STARTTLS on the submission port (default, port 587).
    StartTls,
    /// Implicit TLS (port 465).
    Tls,
}

/// An email channel.
#[derive(Debug, Clone)]
pub struct EmailChannel {
    pub to: Vec<String>,
    pub from: String,
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Extra CA certificates (the PEM of `smtp.ca_file`, read and checked at load) trusted
    /// for this server besides the system's roots: a mail server with a certificate from the
    /// organisation's own CA.
    pub ca_pem: Option<Vec<u8>>,
}

/// The body format of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// Vigil's own JSON (documented in the README).
    Generic,
    /// Slack-compatible `{"text": …}` (Mattermost and Rocket.Chat accept it too).
    Slack,
    /// Telegram Bot API `sendMessage`.
    Telegram,
}

/// A webhook channel.
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    pub url: String,
    pub format: WebhookFormat,
    /// When set, each request carries `X-Vigil-Signature: sha256=<HMAC of the body>`.
    pub secret: Option<Secret>,
    /// Telegram chat id.
    pub chat_id: Option<String>,
}

/// An Alertmanager channel (`POST /api/v2/alerts`).
#[derive(Debug, Clone)]
pub struct AlertmanagerChannel {
    pub url: String,
}

/// One way of reaching a receiver.
#[derive(Debug, Clone)]
pub enum Channel {
    Email(EmailChannel),
    Webhook(WebhookChannel),
    Alertmanager(AlertmanagerChannel),
}

impl Channel {
    /// The channel's kind, as in the `channel` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Email(_) => "email",
            Channel::Webhook(w) => match w.format {
                WebhookFormat::Generic => "webhook",
                WebhookFormat::Slack => "slack",
                WebhookFormat::Telegram => "telegram",
            },
            Channel::Alertmanager(_) => "alertmanager",
        }
    }
}

/// A receiver: channels in fallback order.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub id: String,
    pub channels: Vec<Channel>,
    /// A channel failing this long hands over to the next one.
    pub fallback_after: Duration,
}

/// A label matcher of a route (glob patterns: `proc*`).
#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub pattern: glob::Pattern,
}

/// Escalation of an unacknowledged incident.
#[derive(Debug, Clone)]
pub struct Escalation {
    pub after: Duration,
    pub to: Vec<String>,
}

/// A route: incidents whose labels match go to the receivers.
#[derive(Debug, Clone)]
pub struct Route {
    pub matchers: Vec<Matcher>,
    pub receivers: Vec<String>,
    /// Keep matching the next routes after this one.
    pub continue_matching: bool,
    /// Incidents whose labels agree on these (and share a receiver) are announced together.
    pub group_by: Vec<String>,
    /// How long a group collects incidents before its one announcement.
    pub group_wait: Duration,
    /// Remind while unacknowledged.
    pub repeat_every: Option<Duration>,
    pub escalate: Option<Escalation>,
    pub send_resolved: bool,
}

impl Route {
    /// Whether every matcher holds for the labels.
    pub fn matches(&self, label: impl Fn(&str) -> String) -> bool {
        self.matchers.iter().all(|m| m.pattern.matches(&label(&m.label)))
    }
}

/// `ack_key` (or its file), or `ack_keys: [current, previous…]` for a rotation.
fn ack_keys(file: &SourceFile, raw: &RawAlerting, base: &Path, errors: &mut Errors) -> Vec<Secret> {
    let single = secrets::read(
        file,
        "alerting.ack_key",
        raw.ack_key.as_ref(),
        raw.ack_key_file.as_ref(),
        Strength::SigningKey,
        base,
        errors,
    );
    let listed: Vec<Secret> = raw
        .ack_keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| {
            secrets::read(file, &format!("alerting.ack_keys[{i}]"), Some(k), None, Strength::SigningKey, base, errors)
        })
        .collect();
    match single {
        Some(_) if !raw.ack_keys.is_empty() => {
            errors.at(file, "alerting.ack_keys", "set ack_key or ack_keys, not both");
            Vec::new()
        }
        Some(key) => vec![key],
        None => listed,
    }
}

pub(super) fn alerting(file: &SourceFile, raw: &RawAlerting, errors: &mut Errors) -> Alerting {
    let base = file.path.parent().unwrap_or(Path::new(""));
    let defaults = Alerting::default();
    Alerting {
        ack_keys: ack_keys(file, raw, base, errors),
        ack_link_ttl: duration_field(
            file,
            "alerting.ack_link_ttl",
            raw.ack_link_ttl.as_ref(),
            defaults.ack_link_ttl,
            errors,
        ),
        max_age: duration_field(file, "alerting.max_age", raw.max_age.as_ref(), defaults.max_age, errors),
        store_alert_after: duration_field(
            file,
            "alerting.store_alert_after",
            raw.store_alert_after.as_ref(),
            defaults.store_alert_after,
            errors,
        ),
        templates: raw.templates.as_ref().map(|t| base.join(t)),
        flapping: Flapping {
            changes: match raw.flapping.changes {
                Some(n) if n < 2 => {
                    errors.at(file, "alerting.flapping.changes", "must be at least 2");
                    defaults.flapping.changes
                }
                Some(n) => n,
                None => defaults.flapping.changes,
            },
            window: duration_field(
                file,
                "alerting.flapping.window",
                raw.flapping.window.as_ref(),
                defaults.flapping.window,
                errors,
            ),
        },
        deadman: raw.deadman.as_ref().and_then(|d| {
            let url = http_url(file, "alerting.deadman.url", d.url.as_ref(), errors)?;
            let interval =
                duration_field(file, "alerting.deadman.interval", d.interval.as_ref(), Duration::from_secs(60), errors);
            Some(Deadman { url, interval })
        }),
    }
}

pub(super) fn receiver(file: &SourceFile, path: &str, raw: &RawReceiver, errors: &mut Errors) -> Option<Receiver> {
    let base = file.path.parent().unwrap_or(Path::new(""));
    let id = match &raw.id {
        Some(id) if is_slug(id) => id.clone(),
        Some(id) => {
            errors.at(
                file,
                &format!("{path}.id"),
                format!("\"{id}\" is not a valid receiver id (lowercase letters, digits, '-' and '_')"),
            );
            return None;
        }
        None => {
            errors.at(file, &format!("{path}.id"), "receiver id is required");
            return None;
        }
    };
    if raw.channels.is_empty() {
        errors.at(file, &format!("{path}.channels"), "a receiver needs at least one channel");
    }
    let channels: Vec<Channel> = raw
        .channels
        .iter()
        .enumerate()
        .filter_map(|(i, c)| channel(file, &format!("{path}.channels[{i}]"), c, base, errors))
        .collect();
    let fallback_after = duration_field(
        file,
        &format!("{path}.fallback_after"),
        raw.fallback_after.as_ref(),
        Duration::from_secs(300),
        errors,
    );
    (channels.len() == raw.channels.len() && !channels.is_empty()).then_some(Receiver { id, channels, fallback_after })
}

fn channel(file: &SourceFile, path: &str, raw: &RawChannel, base: &Path, errors: &mut Errors) -> Option<Channel> {
    let set = [raw.email.is_some(), raw.webhook.is_some(), raw.alertmanager.is_some()];
    if set.iter().filter(|s| **s).count() != 1 {
        errors.at(file, path, "a channel has exactly one of email, webhook, alertmanager");
        return None;
    }
    if let Some(e) = &raw.email {
        let p = format!("{path}.email");
        let valid_address = |a: &str| a.parse::<lettre::message::Mailbox>().is_ok();
        if e.to.is_empty() {
            errors.at(file, &format!("{p}.to"), "email needs at least one recipient");
            return None;
        }
        for (i, to) in e.to.iter().enumerate() {
            if !valid_address(to) {
                errors.at(file, &format!("{p}.to[{i}]"), format!("\"{to}\" is not an email address"));
                return None;
            }
        }
        let from = e.from.clone().unwrap_or_else(|| "vigil@localhost".into());
        if !valid_address(&from) {
            errors.at(file, &format!("{p}.from"), format!("\"{from}\" is not an email address"));
            return None;
        }
        let Some(host) = e.smtp.host.clone() else {
            errors.at(file, &format!("{p}.smtp.host"), "the SMTP server's host is required");
            return None;
        };
        let security = match e.smtp.security.as_deref() {
            None | Some("starttls") => SmtpSecurity::StartTls,
            Some("tls") => SmtpSecurity::Tls,
            Some("none") => SmtpSecurity::None,
            Some(other) => {
                errors.at(
                    file,
                    &format!("{p}.smtp.security"),
                    format!("unknown security \"{other}\" (expected starttls, tls or none)"),
                );
                return None;
            }
        };
        let port = e.smtp.port.unwrap_or(match security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::None => 25,
        });
        let password = secrets::read(
            file,
            &format!("{p}.smtp.password"),
            e.smtp.password.as_ref(),
            e.smtp.password_file.as_ref(),
            Strength::Credential,
            base,
            errors,
        );
        let has_credentials = e.smtp.username.is_some() || password.is_some();
        if security == SmtpSecurity::None && has_credentials && !is_loopback_host(&host) {
            errors.at(
                file,
                &format!("{p}.smtp.security"),
                format!(
                    "security none would send the SMTP login to \"{host}\" in clear: use starttls or tls \
                     (a login without TLS is accepted only for a relay on loopback)"
                ),
            );
            return None;
        }
        let ca_pem = match &e.smtp.ca_file {
            Some(ca) => Some(smtp_ca_pem(file, &format!("{p}.smtp.ca_file"), ca, security, base, errors)?),
            None => None,
        };
        return Some(Channel::Email(EmailChannel {
            to: e.to.clone(),
            from,
            host,
            port,
            security,
            username: e.smtp.username.clone(),
            password,
            ca_pem,
        }));
    }
    if let Some(w) = &raw.webhook {
        let p = format!("{path}.webhook");
        let url = http_url(file, &format!("{p}.url"), w.url.as_ref(), errors)?;
        let format = match w.format.as_deref() {
            None | Some("generic") => WebhookFormat::Generic,
            Some("slack") => WebhookFormat::Slack,
            Some("telegram") => WebhookFormat::Telegram,
            Some(other) => {
                errors.at(
                    file,
                    &format!("{p}.format"),
                    format!("unknown format \"{other}\" (expected generic, slack or telegram)"),
                );
                return None;
            }
        };
        if format == WebhookFormat::Telegram && w.chat_id.is_none() {
            errors.at(file, &format!("{p}.chat_id"), "telegram webhooks need chat_id");
            return None;
        }
        let secret = secrets::read(
            file,
            &format!("{p}.secret"),
            w.secret.as_ref(),
            w.secret_file.as_ref(),
            Strength::Credential,
            base,
            errors,
        );
        return Some(Channel::Webhook(WebhookChannel { url, format, secret, chat_id: w.chat_id.clone() }));
    }
    let am = raw.alertmanager.as_ref()?;
    let url = http_url(file, &format!("{path}.alertmanager.url"), am.url.as_ref(), errors)?;
    Some(Channel::Alertmanager(AlertmanagerChannel { url: url.trim_end_matches('/').to_string() }))
}

fn http_url(file: &SourceFile, path: &str, url: Option<&String>, errors: &mut Errors) -> Option<String> {
    let Some(url) = url else {
        errors.at(file, path, "url is required");
        return None;
    };
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(url.clone()),
        _ => {
            // Not quoted: a webhook URL is often itself a secret (a chat bot's token).
            errors.at(file, path, format!("{} is not an http(s) URL", redact_url(url)));
            None
        }
    }
}

pub(super) fn route(file: &SourceFile, path: &str, raw: &RawRoute, errors: &mut Errors) -> Option<Route> {
    let mut ok = true;
    let mut matchers = Vec::new();
    for (label, pattern) in &raw.matchers {
        if !ROUTE_LABELS.contains(&label.as_str()) {
            errors.at(
                file,
                &format!("{path}.match.{label}"),
                format!("unknown label \"{label}\" (expected one of {})", ROUTE_LABELS.join(", ")),
            );
            ok = false;
            continue;
        }
        match glob::Pattern::new(pattern) {
            Ok(p) => matchers.push(Matcher { label: label.clone(), pattern: p }),
            Err(e) => {
                errors.at(file, &format!("{path}.match.{label}"), format!("invalid pattern \"{pattern}\": {e}"));
                ok = false;
            }
        }
    }
    for (i, label) in raw.group_by.iter().enumerate() {
        if !ROUTE_LABELS.contains(&label.as_str()) {
            errors.at(file, &format!("{path}.group_by[{i}]"), format!("unknown label \"{label}\""));
            ok = false;
        }
    }
    if raw.receivers.is_empty() {
        errors.at(file, &format!("{path}.receivers"), "a route needs at least one receiver");
        ok = false;
    }
    let repeat_every = raw
        .repeat_every
        .as_ref()
        .map(|r| duration_field(file, &format!("{path}.repeat_every"), Some(r), Duration::from_secs(3600), errors));
    let escalate = raw.escalate.as_ref().map(|e| Escalation {
        after: duration_field(
            file,
            &format!("{path}.escalate.after"),
            e.after.as_ref(),
            Duration::from_secs(3600),
            errors,
        ),
        to: e.to.clone(),
    });
    ok.then_some(Route {
        matchers,
        receivers: raw.receivers.clone(),
        continue_matching: raw.continue_matching,
        group_by: raw.group_by.clone(),
        group_wait: duration_field(
            file,
            &format!("{path}.group_wait"),
            raw.group_wait.as_ref(),
            Duration::from_secs(10),
            errors,
        ),
        repeat_every,
        escalate,
        send_resolved: raw.send_resolved.unwrap_or(true),
    })
}

/// Reads `smtp.ca_file`: a PEM file with at least one certificate, for a server reached
/// over TLS.
/// `localhost` or a loopback address: the only place a login may travel without TLS.
fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn smtp_ca_pem(
    file: &SourceFile,
    path: &str,
    ca: &str,
    security: SmtpSecurity,
    base: &Path,
    errors: &mut Errors,
) -> Option<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    if security == SmtpSecurity::None {
        errors.at(file, path, "ca_file needs security starttls or tls");
        return None;
    }
    let pem = match std::fs::read(base.join(ca)) {
        Ok(pem) => pem,
        Err(e) => {
            errors.at(file, path, format!("cannot read CA file \"{ca}\": {e}"));
            return None;
        }
    };
    match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => Some(pem),
        Ok(_) => {
            errors.at(file, path, format!("\"{ca}\" holds no PEM certificate"));
            None
        }
        Err(e) => {
            errors.at(file, path, format!("\"{ca}\" is not valid PEM: {e}"));
            None
        }
    }
}
