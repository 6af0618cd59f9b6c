//! Administrator sessions of the status pages: random ids kept on the server, each with its
//! own form token, expiring after [`LIFETIME`], revoked on logout and as soon as the admin
//! token changes. Failed logins are counted per client address and throttled.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::Secret;

/// How long a session lives.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed logins from one address before it must wait.
const FREE_FAILURES: u32 = 5;
/// The longest wait imposed (it doubles with each further failure).
const LONGEST_WAIT: Duration = Duration::from_secs(15 * 60);
/// Sessions kept at most (the oldest goes first).
const MAX_SESSIONS: usize = 1000;
/// Addresses whose failures are remembered at most.
const MAX_TRACKED: usize = 10_000;

struct Session {
    expires_ms: i64,
    /// Which admin token the session was opened with (an HMAC of it, never the token).
    token_tag: String,
    csrf: String,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last_ms: i64,
}

/// The live sessions and the failed logins.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).expect("the system's random source is available");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn token_tag(token: &Secret) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.expose().as_bytes());
    hmac::sign(&key, b"vigil-session-token").as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Opens a session for the holder of `token`; returns its id (the cookie) and its form
    /// token.
    pub fn open(&self, token: &Secret, now_ms: i64) -> (String, String) {
        let (id, csrf) = (random_hex(32), random_hex(32));
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, s| s.expires_ms > now_ms);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, s)| s.expires_ms).map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        let session = Session { expires_ms: now_ms + LIFETIME.as_millis() as i64, token_tag: token_tag(token), csrf };
        let csrf = session.csrf.clone();
        live.insert(id.clone(), session);
        (id, csrf)
    }

    /// The form token of a live session opened with the current `token`; an expired one, or
    /// one opened with a token since changed, is dropped.
    pub fn check(&self, id: &str, token: &Secret, now_ms: i64) -> Option<String> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let valid = live.get(id).map(|s| {
            s.expires_ms > now_ms
                && bool::from(subtle::ConstantTimeEq::ct_eq(s.token_tag.as_bytes(), token_tag(token).as_bytes()))
        })?;
        if valid {
            live.get(id).map(|s| s.csrf.clone())
        } else {
            live.remove(id);
            None
        }
    }

    /// Ends a session (logout).
    pub fn close(&self, id: &str) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// How long `ip` must still wait before its next login attempt, if at all.
    pub fn wait_before_login(&self, ip: IpAddr, now_ms: i64) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let f = failures.get(&ip)?;
        let extra = f.count.checked_sub(FREE_FAILURES)?;
        let wait = Duration::from_secs(1u64 << extra.min(10)).min(LONGEST_WAIT);
        let until = f.last_ms + wait.as_millis() as i64;
        (until > now_ms).then(|| Duration::from_millis((until - now_ms) as u64))
    }

    /// Counts a failed login from `ip`.
    pub fn login_failed(&self, ip: IpAddr, now_ms: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_TRACKED {
            let horizon = now_ms - LONGEST_WAIT.as_millis() as i64;
            failures.retain(|_, f| f.last_ms > horizon);
        }
        let f = failures.entry(ip).or_insert(Failures { count: 0, last_ms: now_ms });
        f.count += 1;
        f.last_ms = now_ms;
    }

    /// Forgets the failures of `ip` after a successful login.
    pub fn login_succeeded(&self, ip: IpAddr) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_die_with_their_token() {
        let sessions = Sessions::default();
        let token = Secret::new("admin-token-0123456789abcdef");
        let (id, csrf) = sessions.open(&token, 0);
        assert_eq!(id.len(), 64);
        assert_eq!(sessions.check(&id, &token, 1000).as_deref(), Some(csrf.as_str()));
        let (other, _) = sessions.open(&token, 0);
        assert_ne!(id, other, "random, not derived from the token");
        assert_eq!(sessions.check(&id, &token, LIFETIME.as_millis() as i64 + 1), None, "expired");
        assert_eq!(sessions.check(&id, &token, 1000), None, "an expired session is gone");
        let changed = Secret::new("another-token-0123456789abcdef");
        assert_eq!(sessions.check(&other, &changed, 1000), None, "the token changed");
        let (third, _) = sessions.open(&token, 0);
        sessions.close(&third);
        assert_eq!(sessions.check(&third, &token, 1000), None, "logged out");
    }

    #[test]
    fn failed_logins_are_throttled_per_address() {
        let sessions = Sessions::default();
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().expect("ip"), "127.0.0.2".parse().expect("ip"));
        for i in 0..FREE_FAILURES {
            assert_eq!(sessions.wait_before_login(a, i64::from(i)), None);
            sessions.login_failed(a, i64::from(i));
        }
        sessions.login_failed(a, 10);
        assert_eq!(sessions.wait_before_login(a, 10), Some(Duration::from_secs(2)));
        assert_eq!(sessions.wait_before_login(b, 10), None, "another address is not held up");
        assert_eq!(sessions.wait_before_login(a, 2010), None, "the wait passes");
        sessions.login_succeeded(a);
        assert_eq!(sessions.wait_before_login(a, 2010), None);
    }
}
