//! Console sessions: after a sign-in with the console password, a fresh random id in the cookie
//! `__Host-herald-session` (`Secure; HttpOnly; SameSite=Strict; Path=/`), kept server-side only
//! as its SHA-256, with the form token its pages carry. A session ends at sign-out, after
//! [`IDLE`] without a request, after [`MAX_AGE`] in all, and as soon as the console password
//! changes (each remembers the hash it signed in against). Also the form encoding and cookies.

use crate::crypto;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "__Host-herald-session";
/// The sign-in form's own token (a double-submit cookie: there is no session yet).
pub const LOGIN_COOKIE: &str = "__Host-herald-login";
/// The language the switch chose.
pub const LANG_COOKIE: &str = "__Host-herald-lang";
/// A session with no request for this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// And any session after this long.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions at once; the oldest goes past it.
const SESSIONS_MAX: usize = 64;

struct Session {
    csrf: String,
    created: Instant,
    last: Instant,
    /// The console password's hash when it signed in.
    password_hash: String,
    /// An SMTP password typed for a test email: pages never show a password back, so it is
    /// kept here (in memory, for this session only) to be saved if the form is saved next
    /// with the field left empty.
    typed_smtp_password: Option<String>,
}

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

/// A live session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub csrf: String,
}

fn lock(
    m: &Mutex<HashMap<String, Session>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sessions {
    /// A new session for a sign-in against `password_hash`: its cookie value and form token.
    pub fn create(&self, password_hash: &str) -> (String, String) {
        let id = crypto::hex(&crypto::random_bytes(32));
        let csrf = crypto::hex(&crypto::random_bytes(32));
        let now = Instant::now();
        let mut all = lock(&self.0);
        all.retain(|_, s| alive(s, now));
        if all.len() >= SESSIONS_MAX
            && let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
        {
            all.remove(&oldest);
        }
        all.insert(
            crypto::sha256_hex(id.as_bytes()),
            Session {
                csrf: csrf.clone(),
                created: now,
                last: now,
                password_hash: password_hash.to_string(),
                typed_smtp_password: None,
            },
        );
        (id, csrf)
    }

    /// Keeps (or forgets, with `None`) the SMTP password typed for a test email.
    pub fn keep_typed_password(&self, id: &str, password: Option<&str>) {
        let key = crypto::sha256_hex(id.as_bytes());
        if let Some(s) = lock(&self.0).get_mut(&key) {
            s.typed_smtp_password = password.map(str::to_string);
        }
    }

    /// The SMTP password kept from a test email, if any.
    pub fn typed_password(&self, id: &str) -> Option<String> {
        let key = crypto::sha256_hex(id.as_bytes());
        lock(&self.0).get(&key)?.typed_smtp_password.clone()
    }

    /// The session of cookie value `id`, if it lives and the password is the one it signed in
    /// with; using it keeps it alive.
    pub fn get(&self, id: &str, password_hash: &str) -> Option<Live> {
        let key = crypto::sha256_hex(id.as_bytes());
        let now = Instant::now();
        let mut all = lock(&self.0);
        let s = all.get_mut(&key)?;
        if !alive(s, now) || s.password_hash != password_hash {
            all.remove(&key);
            return None;
        }
        s.last = now;
        Some(Live {
            csrf: s.csrf.clone(),
        })
    }

    pub fn end(&self, id: &str) {
        lock(&self.0).remove(&crypto::sha256_hex(id.as_bytes()));
    }

    pub fn count(&self) -> usize {
        lock(&self.0).len()
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last) < IDLE && now.duration_since(s.created) < MAX_AGE
}

/// The `Set-Cookie` value for the session (or, with an empty value, its removal).
pub fn cookie(name: &str, value: &str, max_age: Option<Duration>) -> String {
    let age = match max_age {
        Some(d) => format!("; Max-Age={}", d.as_secs()),
        None if value.is_empty() => "; Max-Age=0".to_string(),
        None => String::new(),
    };
    format!("{name}={value}; Secure; HttpOnly; SameSite=Strict; Path=/{age}")
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Constant-time equality of two form tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    !a.is_empty() && crypto::constant_time_eq(a.as_bytes(), b.as_bytes())
}

/// `application/x-www-form-urlencoded`: the pairs in order (`+` is a space, `%XX` a byte; what
/// is not UTF-8 after decoding is replaced).
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &[u8]| {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => {
                    let hex = std::str::from_utf8(&s[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = match p.iter().position(|&b| b == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &b""[..]),
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// The last value of `name` in a form (a checkbox's "true" after its hidden "false").
pub fn last<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_it_ends_or_the_password_changes() {
        let s = Sessions::default();
        let (id, csrf) = s.create("hash-1");
        assert_eq!(s.get(&id, "hash-1"), Some(Live { csrf: csrf.clone() }));
        assert_eq!(s.get("forged", "hash-1"), None);
        assert_eq!(s.get(&id, "hash-2"), None, "the password changed");
        assert_eq!(s.get(&id, "hash-1"), None, "and it is gone for good");
        let (id2, _) = s.create("hash-1");
        assert_ne!(id2, id, "a fresh id at every sign-in");
        s.end(&id2);
        assert_eq!(s.get(&id2, "hash-1"), None);
    }

    #[test]
    fn cookies_are_host_only_secure_and_strict() {
        assert_eq!(
            cookie(COOKIE, "abc", None),
            "__Host-herald-session=abc; Secure; HttpOnly; SameSite=Strict; Path=/"
        );
        assert!(cookie(COOKIE, "", None).ends_with("; Max-Age=0"));
        let header = Some("a=1; __Host-herald-session=xyz ; b=2");
        assert_eq!(cookie_value(header, COOKIE), Some("xyz"));
        assert_eq!(cookie_value(header, "c"), None);
    }

    #[test]
    fn forms_decode_like_browsers_send_them() {
        let f = form(b"smtp.address=mail.example.com&smtp.enabled=false&smtp.enabled=true&x=a%20b+c%2B%e3%83%a1&bad=%zz&end=%4");
        assert_eq!(last(&f, "smtp.address"), Some("mail.example.com"));
        assert_eq!(last(&f, "smtp.enabled"), Some("true"));
        assert_eq!(last(&f, "x"), Some("a b c+メ"));
        assert_eq!(last(&f, "bad"), Some("%zz"));
        assert_eq!(last(&f, "end"), Some("%4"));
        assert!(same_token("a1", "a1") && !same_token("a1", "a2") && !same_token("", ""));
    }
}
