//! Who may call what on the console listener: HTTP Basic `api_key:<console password>` for the
//! manage API, the bearer `api.token` for the application API. The control socket needs neither.
//!
//! The console password is kept only as a slow hash (PBKDF2, 600,000 rounds: about an eighth
//! of a second of one core), so checking it is what an attacker would use to slow everyone
//! down, and guessing it is what they would try. So:
//! - a password that passed is remembered (an HMAC under a per-process key, never the
//!   password) until the hash changes: a client that polls pays once;
//! - one slow check runs at a time, and a request that finds one running is answered `429` at
//!   once: no worker ever waits behind a check, so the bearer API and requests already
//!   authenticated are never slowed by guessing;
//! - at most [`CHECKS_PER_SECOND`] slow checks run per second in all (a token bucket), against
//!   many addresses guessing together;
//! - after [`FREE_FAILURES`] failures an address waits ([`backoff`]: 1 s, doubling to 5
//!   minutes) before it may try again; each failure is logged with its address;
//! - every failure (no such user, wrong password, a garbled header) runs the same check and
//!   gets the same `401`, so neither the answer nor its timing tells them apart.

use super::{Origin, Request, Response};
use crate::app::App;
use crate::crypto;
use ring::hmac;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The user name GHES's Manage API expects in Basic auth.
pub const BASIC_USER: &str = "api_key";
/// Slow checks per second, all addresses together (and the bucket's burst).
pub const CHECKS_PER_SECOND: f64 = 4.0;
const CHECKS_BURST: f64 = 8.0;
/// Failures an address may have before it waits: typos are free.
pub const FREE_FAILURES: u32 = 3;
/// The longest an address waits between tries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Addresses remembered at once; the oldest are forgotten past it (an attacker with many
/// addresses meets the global ceiling instead).
const ADDRESSES_MAX: usize = 10_000;

/// How long an address waits after `failures` failures.
pub fn backoff(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(16);
    Duration::from_secs(1u64 << doublings).min(BACKOFF_MAX)
}

/// Why a password was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// Wrong (user or password: not said which).
    Wrong,
    /// Not checked: try again after this long.
    Throttled(Duration),
}

struct Failures {
    count: u32,
    last: Instant,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct AuthCache {
    key: hmac::Key,
    /// (password hash it was checked against, HMAC of the password that passed).
    ok: Mutex<Option<(String, hmac::Tag)>>,
    /// Held while a slow check runs; never waited on.
    verifying: Mutex<()>,
    bucket: Mutex<Bucket>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            key: hmac::Key::new(hmac::HMAC_SHA256, &crypto::random_bytes(32)),
            ok: Mutex::new(None),
            verifying: Mutex::new(()),
            bucket: Mutex::new(Bucket {
                tokens: CHECKS_BURST,
                at: Instant::now(),
            }),
            failures: Mutex::new(HashMap::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AuthCache {
    /// Checks `password` from `client` against the stored hash. `user_ok` is false when the
    /// user name was wrong: the check still runs, so the failure looks like any other.
    pub fn check(
        &self,
        client: IpAddr,
        user_ok: bool,
        password: &str,
        stored_hash: &str,
    ) -> Result<(), Denied> {
        let tag = hmac::sign(&self.key, password.as_bytes());
        if user_ok && !stored_hash.is_empty() {
            let ok = lock(&self.ok);
            if let Some((hash, good)) = ok.as_ref()
                && hash == stored_hash
                && crypto::constant_time_eq(good.as_ref(), tag.as_ref())
            {
                return Ok(());
            }
        }
        // This address's turn yet?
        if let Some(f) = lock(&self.failures).get(&client) {
            let wait = (f.last + backoff(f.count)).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                return Err(Denied::Throttled(wait));
            }
        }
        // Everyone's budget of slow checks, and one at a time.
        {
            let mut b = lock(&self.bucket);
            let now = Instant::now();
            b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * CHECKS_PER_SECOND)
                .min(CHECKS_BURST);
            b.at = now;
            if b.tokens < 1.0 {
                let wait = (1.0 - b.tokens) / CHECKS_PER_SECOND;
                return Err(Denied::Throttled(Duration::from_secs_f64(wait.max(0.1))));
            }
            b.tokens -= 1.0;
        }
        let Ok(_one) = self.verifying.try_lock() else {
            return Err(Denied::Throttled(Duration::from_secs(1)));
        };
        let passed = crypto::verify_password(password, stored_hash) && user_ok;
        if passed {
            *lock(&self.ok) = Some((stored_hash.to_string(), tag));
            lock(&self.failures).remove(&client);
            Ok(())
        } else {
            let mut all = lock(&self.failures);
            if all.len() >= ADDRESSES_MAX && !all.contains_key(&client) {
                let oldest = all.iter().min_by_key(|(_, f)| f.last).map(|(ip, _)| *ip);
                if let Some(ip) = oldest {
                    all.remove(&ip);
                }
            }
            let f = all.entry(client).or_insert(Failures {
                count: 0,
                last: Instant::now(),
            });
            f.count += 1;
            f.last = Instant::now();
            Err(Denied::Wrong)
        }
    }

    /// Failures recorded for `client` (tests, diagnostics).
    pub fn failures(&self, client: IpAddr) -> u32 {
        lock(&self.failures).get(&client).map_or(0, |f| f.count)
    }

    /// Forgets the remembered password (it changed).
    pub fn forget(&self) {
        *lock(&self.ok) = None;
    }
}

fn unauthorized(realm: &str, scheme: &str, message: &str) -> Response {
    Response::error(401, message).with_header(
        "WWW-Authenticate",
        &format!("{scheme} realm=\"{realm}\", charset=\"UTF-8\""),
    )
}

/// The `429` of a throttled password check.
pub fn throttled(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    Response::error(
        429,
        &format!("too many failed or concurrent password checks: try again in {secs} s"),
    )
    .with_header("Retry-After", &secs.to_string())
}

/// The address a request came from, for throttling and logs.
fn client_of(req: &Request) -> IpAddr {
    req.peer
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |p| p.ip())
}

/// The manage API: Basic `api_key:<console password>` on the console listener.
pub fn manage(app: &App, req: &Request) -> Result<(), Response> {
    if req.origin == Origin::Control {
        return Ok(());
    }
    let deny = || {
        unauthorized(
            "herald manage",
            "Basic",
            "authentication required: HTTP Basic with user api_key and the console password",
        )
    };
    let Some(header) = req.header("Authorization") else {
        return Err(deny());
    };
    // A header that cannot be read is checked like a wrong password: same answer, same time.
    let creds = strip_scheme(header, "Basic")
        .and_then(crypto::base64_decode)
        .and_then(|b| String::from_utf8(b).ok());
    let (user, password) = creds
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .unwrap_or(("", ""));
    let hash = match app.settings.applied() {
        Ok(Some(s)) => s.settings.console.password_hash,
        _ => return Err(Response::error(503, "settings are not readable")),
    };
    let client = client_of(req);
    match app.auth.check(client, user == BASIC_USER, password, &hash) {
        Ok(()) => Ok(()),
        Err(Denied::Wrong) => {
            log::warn!(
                "console: refused manage API credentials from {client} for {} {} ({} failures)",
                req.method,
                req.path,
                app.auth.failures(client)
            );
            Err(deny())
        }
        Err(Denied::Throttled(wait)) => {
            log::warn!(
                "console: throttled a password check from {client} for {} {} ({} failures)",
                req.method,
                req.path,
                app.auth.failures(client)
            );
            Err(throttled(wait))
        }
    }
}

/// The application API: `Authorization: Bearer <api.token>`. A constant-time compare, never
/// behind a password check.
pub fn api(app: &App, req: &Request) -> Result<(), Response> {
    if req.origin == Origin::Control {
        return Ok(());
    }
    let deny = || {
        unauthorized(
            "herald api",
            "Bearer",
            "authentication required: Bearer api.token",
        )
    };
    let Some(given) = req
        .header("Authorization")
        .and_then(|h| strip_scheme(h, "Bearer"))
    else {
        return Err(deny());
    };
    let token = match app.settings.applied() {
        Ok(Some(s)) => s.settings.api.token,
        _ => return Err(Response::error(503, "settings are not readable")),
    };
    if !token.is_empty() && crypto::constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        log::warn!(
            "api: refused a bearer token from {} for {} {}",
            client_of(req),
            req.method,
            req.path
        );
        Err(deny())
    }
}

/// `Basic xyz` → `xyz`, the scheme matched case-insensitively (RFC 9110 §11.1).
fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = header.trim().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn backoff_starts_after_the_free_failures_and_doubles_to_five_minutes() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(backoff(FREE_FAILURES), Duration::from_secs(1));
        assert_eq!(backoff(FREE_FAILURES + 3), Duration::from_secs(8));
        assert_eq!(backoff(100), BACKOFF_MAX);
    }

    /// A cheap hash (one round), so the test is about the rules, not PBKDF2's time.
    fn quick_hash(password: &str) -> String {
        crypto::hash_with(password, b"0123456789abcdef", 1)
    }

    #[test]
    fn an_address_that_keeps_failing_waits_and_others_do_not() {
        let a = AuthCache::default();
        let hash = quick_hash("right password");
        let bad = ip("192.0.2.1");
        for _ in 0..FREE_FAILURES {
            assert_eq!(a.check(bad, true, "guess", &hash), Err(Denied::Wrong));
        }
        assert!(matches!(
            a.check(bad, true, "guess", &hash),
            Err(Denied::Throttled(_))
        ));
        // Even the right password waits its turn there...
        assert!(matches!(
            a.check(bad, true, "right password", &hash),
            Err(Denied::Throttled(_))
        ));
        // ... while another address is not held back.
        assert_eq!(
            a.check(ip("192.0.2.2"), true, "right password", &hash),
            Ok(())
        );
        // A wrong user with the right password fails like a wrong password.
        assert_eq!(
            a.check(ip("192.0.2.3"), false, "right password", &hash),
            Err(Denied::Wrong)
        );
        assert_eq!(a.failures(ip("192.0.2.3")), 1);
    }

    #[test]
    fn a_remembered_password_passes_without_a_check_and_the_ceiling_holds_the_rest() {
        let a = AuthCache::default();
        let hash = quick_hash("pw");
        assert_eq!(a.check(ip("198.51.100.1"), true, "pw", &hash), Ok(()));
        // Many addresses guessing at once use up the bucket...
        let mut throttled = 0;
        for i in 0..40 {
            let who = ip(&format!("203.0.113.{i}"));
            if matches!(a.check(who, true, "nope", &hash), Err(Denied::Throttled(_))) {
                throttled += 1;
            }
        }
        assert!(throttled >= 30, "only {throttled} of 40 throttled");
        // ... but the known password still passes at once.
        assert_eq!(a.check(ip("198.51.100.9"), true, "pw", &hash), Ok(()));
        a.forget();
        assert!(
            a.check(ip("198.51.100.9"), true, "pw", &hash).is_err(),
            "checked again"
        );
    }
}
