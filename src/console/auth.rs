//! Who may call what on the console listener: HTTP Basic `api_key:<console password>` for the
//! manage API, the bearer `api.token` for the application API. The control socket needs neither.
//!
//! The console password is kept only as a slow hash, so checking it costs a large fraction of a
//! second; a successful check is remembered (as an HMAC under a per-process key, never the
//! password) until the hash changes, so a client that polls does not pay it every time.

use super::{Origin, Request, Response};
use crate::app::App;
use crate::crypto;
use ring::hmac;
use std::sync::Mutex;

/// The user name GHES's Manage API expects in Basic auth.
pub const BASIC_USER: &str = "api_key";

pub struct AuthCache {
    key: hmac::Key,
    /// One slow check at a time: guessing passwords in parallel cannot take every CPU.
    verifying: Mutex<()>,
    /// (password hash it was checked against, HMAC of the password that passed).
    ok: Mutex<Option<(String, hmac::Tag)>>,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            key: hmac::Key::new(hmac::HMAC_SHA256, &crypto::random_bytes(32)),
            verifying: Mutex::new(()),
            ok: Mutex::new(None),
        }
    }
}

impl AuthCache {
    /// Checks a password against the stored hash, using the remembered result when it can.
    pub fn check(&self, password: &str, stored_hash: &str) -> bool {
        if stored_hash.is_empty() {
            return false;
        }
        let tag = hmac::sign(&self.key, password.as_bytes());
        {
            let ok = self.ok.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((hash, good)) = ok.as_ref()
                && hash == stored_hash
                && crypto::constant_time_eq(good.as_ref(), tag.as_ref())
            {
                return true;
            }
        }
        let _one_at_a_time = self.verifying.lock().unwrap_or_else(|e| e.into_inner());
        if crypto::verify_password(password, stored_hash) {
            *self.ok.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((stored_hash.to_string(), tag));
            true
        } else {
            false
        }
    }
}

fn unauthorized(realm: &str, scheme: &str, message: &str) -> Response {
    Response::error(401, message).with_header(
        "WWW-Authenticate",
        &format!("{scheme} realm=\"{realm}\", charset=\"UTF-8\""),
    )
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
    let Some(creds) = req
        .header("Authorization")
        .and_then(|h| strip_scheme(h, "Basic"))
        .and_then(crypto::base64_decode)
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return Err(deny());
    };
    let Some((user, password)) = creds.split_once(':') else {
        return Err(deny());
    };
    let hash = match app.settings.applied() {
        Ok(Some(s)) => s.settings.console.password_hash,
        _ => return Err(Response::error(503, "settings are not readable")),
    };
    if user == BASIC_USER && app.auth.check(password, &hash) {
        Ok(())
    } else {
        log::warn!(
            "console: refused manage API credentials for {} {}",
            req.method,
            req.path
        );
        Err(deny())
    }
}

/// The application API: `Authorization: Bearer <api.token>`.
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
        log::warn!("api: refused bearer token for {} {}", req.method, req.path);
        Err(deny())
    }
}

/// `Basic xyz` → `xyz`, the scheme matched case-insensitively (RFC 9110 §11.1).
fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = header.trim().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}
