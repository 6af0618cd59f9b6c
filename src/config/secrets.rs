//! Reading secrets (tokens, keys, passwords) from the configuration: a value (usually a
//! `${NAME}` from the environment) or a `*_file`, never both; never empty, never a
//! placeholder left from an example, never shorter than what its job needs. Messages name
//! the key and the rule, never the value.

use std::path::Path;

use super::Secret;
use super::fields::Errors;
use super::source::SourceFile;

/// What a secret must be at least, in bytes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Strength {
    /// Signs acknowledgement links: `alerting.ack_key`.
    SigningKey,
    /// The administrator's bearer token: `server.admin_token`.
    AdminToken,
    /// A heartbeat's URL token.
    HeartbeatToken,
    /// A credential for someone else's service (SMTP password, webhook secret): whatever
    /// that service accepts, but not empty and not a placeholder.
    Credential,
    /// An SNMPv3 authentication or privacy password (RFC 3414 asks for 8 characters).
    UsmPassword,
}

impl Strength {
    fn min_len(self) -> usize {
        match self {
            Strength::SigningKey => 32,
            Strength::AdminToken => 24,
            Strength::HeartbeatToken => 16,
            Strength::Credential => 1,
            Strength::UsmPassword => 8,
        }
    }
}

/// Words that mark a value copied from an example instead of a real secret.
const PLACEHOLDERS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "replace-with",
    "replace_with",
    "replace-me",
    "replaceme",
    "placeholder",
    "your-secret",
    "your-token",
    "xxxxxx",
];

/// Reads the secret at `path` from its value or its `_file` (relative to `base`).
pub(super) fn read(
    file: &SourceFile,
    path: &str,
    value: Option<&String>,
    value_file: Option<&String>,
    strength: Strength,
    base: &Path,
    errors: &mut Errors,
) -> Option<Secret> {
    let (secret, at) = match (value, value_file) {
        (Some(_), Some(_)) => {
            errors.at(file, &format!("{path}_file"), "set the value or its _file, not both");
            return None;
        }
        (Some(v), None) => (v.trim().to_string(), path.to_string()),
        (None, Some(f)) => {
            let at = format!("{path}_file");
            match std::fs::read_to_string(base.join(f)) {
                Ok(t) => (t.trim().to_string(), at),
                Err(e) => {
                    errors.at(file, &at, format!("cannot read \"{f}\": {e}"));
                    return None;
                }
            }
        }
        (None, None) => return None,
    };
    match problem(&secret, strength) {
        Some(why) => {
            errors.at(file, &at, why);
            None
        }
        None => Some(Secret::new(secret)),
    }
}

/// What is wrong with a secret, if anything (without quoting it).
pub(super) fn problem(secret: &str, strength: Strength) -> Option<String> {
    if secret.is_empty() {
        return Some("is empty: set a secret, or leave the key out".to_string());
    }
    let lower = secret.to_ascii_lowercase();
    if let Some(word) = PLACEHOLDERS.iter().find(|w| lower.contains(**w)) {
        return Some(format!("contains \"{word}\": a placeholder from an example, not a secret"));
    }
    let min = strength.min_len();
    if secret.len() < min {
        return Some(format!(
            "is {} bytes long: it must be at least {min} (e.g. `openssl rand -hex 32`)",
            secret.len()
        ));
    }
    None
}

/// A URL as logs, stored errors and messages may show it: `scheme://host[:port]/…` — the
/// path, query and userinfo of a webhook or dead-man URL are often its secret (a chat bot's
/// token). Text that is no URL shows as `<url>`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.host_str().is_some() => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/…", u.scheme(), u.host_str().unwrap_or_default())
        }
        _ => "<url>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let cases: &[(&str, &str, Strength, Option<&str>)] = &[
            ("empty", "", Strength::Credential, Some("is empty")),
            ("placeholder", "change-me-to-a-long-random-secret-value", Strength::SigningKey, Some("\"change-me\"")),
            ("placeholder any case", "REPLACE-WITH-a-long-random-token", Strength::HeartbeatToken, Some("placeholder")),
            ("short key", "0123456789abcdef", Strength::SigningKey, Some("is 16 bytes long: it must be at least 32")),
            ("short admin token", "0123456789abcdef01234", Strength::AdminToken, Some("at least 24")),
            ("long enough key", "0123456789abcdef0123456789abcdef", Strength::SigningKey, None),
            ("any password", "p", Strength::Credential, None),
        ];
        for (name, secret, strength, expected) in cases {
            let got = problem(secret, *strength);
            match expected {
                None => assert_eq!(got, None, "case {name}"),
                Some(part) => assert!(got.as_deref().is_some_and(|g| g.contains(part)), "case {name}: {got:?}"),
            }
            if let Some(message) = got
                && !secret.is_empty()
            {
                assert!(!message.contains(secret), "case {name}: the message quotes the secret");
            }
        }
    }
}
