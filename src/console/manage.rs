//! The manage API's settings endpoints (SPEC §3) and the GHES-compatible `smtp` object.
//!
//! `GET /manage/v1/config/settings` shows the latest saved document, secrets masked, grouped by
//! section; the `smtp` object carries GHES's key names (`port` as a string, `user_name`,
//! `enable_starttls_auto`, `discard-to-noreply-address`, `support_address_type`) with herald's own
//! keys beside them. `PUT` takes the same shape, or dotted keys, and saves a pending document.

use super::{Request, Response, method_not_allowed};
use crate::app::App;
use crate::settings::store::SaveError;
use crate::settings::{Errors, KEYS, MASK, Settings, Value, key_def};
use serde_json::{Map, Value as Json, json};

pub fn route(app: &App, req: &Request) -> Response {
    match req.path.as_str() {
        "/manage/v1/config/settings" => match req.method.as_str() {
            "GET" => get_settings(app),
            "PUT" => put_settings(app, req),
            _ => method_not_allowed(req, "GET, PUT"),
        },
        "/manage/v1/config/keys" => match req.method.as_str() {
            "GET" => get_keys(app),
            _ => method_not_allowed(req, "GET"),
        },
        "/manage/v1/config/secret" => match req.method.as_str() {
            "GET" => get_secret(app, req),
            _ => method_not_allowed(req, "GET"),
        },
        "/manage/v1/config/apply" => match req.method.as_str() {
            "POST" => super::apply::start(app, req),
            "GET" => super::apply::status(app, req),
            _ => method_not_allowed(req, "GET, POST"),
        },
        "/manage/v1/config/apply/events" => match req.method.as_str() {
            "GET" => super::apply::events(app, req),
            _ => method_not_allowed(req, "GET"),
        },
        "/manage/v1/email/test" => match req.method.as_str() {
            "POST" => super::email::test(app, req),
            _ => method_not_allowed(req, "POST"),
        },
        "/manage/v1/queue" => match req.method.as_str() {
            "GET" => super::api::list(app, req),
            _ => method_not_allowed(req, "GET"),
        },
        "/manage/v1/replies" => match req.method.as_str() {
            "GET" => get_replies(app, req),
            _ => method_not_allowed(req, "GET"),
        },
        "/manage/v1/reply-address" => match req.method.as_str() {
            "GET" => get_reply_address(app, req),
            _ => method_not_allowed(req, "GET"),
        },
        "/manage/v1/support-bundle" => match req.method.as_str() {
            "GET" => support_bundle(app),
            _ => method_not_allowed(req, "GET"),
        },
        "/manage/v1/openapi.json" => match req.method.as_str() {
            "GET" => Response::json(200, &super::openapi::document()),
            _ => method_not_allowed(req, "GET"),
        },
        "/manage/v1/version" => match req.method.as_str() {
            "GET" => Response::json(
                200,
                &json!({
                    "version": crate::VERSION,
                    "uptime_seconds": app.started.elapsed().as_secs(),
                }),
            ),
            _ => method_not_allowed(req, "GET"),
        },
        p if p.starts_with("/manage/v1/queue/") => {
            super::api::act(app, req, &p["/manage/v1/queue/".len()..])
        }
        _ => Response::error(
            404,
            &format!("no such endpoint: {} {}", req.method, req.path),
        ),
    }
}

/// The support bundle, written to an unlinked file in `<data>/tmp` and streamed from there.
pub(super) fn support_bundle(app: &App) -> Response {
    // Written on the data disk: never where it would take the space mail needs.
    let need = crate::bundle::logs_bytes(app) + crate::disk::LOW_WATER;
    let free = crate::disk::Disk::free_bytes(&app.data_dir).unwrap_or(u64::MAX);
    if app.disk.is_low() || free < need {
        return Response::error(
            507,
            &format!(
                "the support bundle needs up to {} MiB on the data disk and {} MiB are free: free some space (or lower logs.keep) and try again",
                need / (1 << 20),
                free / (1 << 20)
            ),
        );
    }
    match write_bundle(app) {
        Ok(download) => {
            let host = app
                .settings
                .applied()
                .ok()
                .flatten()
                .map(|s| s.settings.hostname)
                .unwrap_or_default();
            let day = crate::clock::rfc3339(std::time::SystemTime::now());
            let name = format!(
                "herald-support-bundle-{}-{}.tar.gz",
                host.replace(
                    |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-',
                    "_"
                ),
                day.get(..10).unwrap_or("")
            );
            log::info!("support bundle: {} bytes", download.len);
            Response {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "application/gzip".into()),
                    (
                        "Content-Disposition".into(),
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                body: Vec::new(),
                download: Some(download),
            }
        }
        Err(e) if crate::disk::is_full(&e) => Response::error(
            507,
            &format!(
                "the data disk is full, so the support bundle cannot be written: {e}; free some space and try again"
            ),
        ),
        Err(e) => Response::error(
            500,
            &format!("the support bundle could not be written: {e}"),
        ),
    }
}

fn write_bundle(app: &App) -> std::io::Result<super::Download> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = app.path(crate::app::paths::TMP);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let path = dir.join(format!(
        "bundle-{}.tar.gz",
        crate::crypto::hex(&crate::crypto::random_bytes(8))
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    // Unlinked at once: the open file is all there is, gone when the answer is sent.
    std::fs::remove_file(&path)?;
    let file = crate::bundle::write(app, std::io::BufWriter::new(file))?
        .into_inner()
        .map_err(|e| e.into_error())?;
    super::Download::new(file)
}

fn store_failure(e: impl std::fmt::Display) -> Response {
    log::error!("{e}");
    Response::error(500, &format!("{e}"))
}

fn get_settings(app: &App) -> Response {
    match app.settings.latest() {
        Ok(Some(doc)) => Response::json(200, &settings_view(&doc.settings)),
        Ok(None) => Response::error(503, "no settings yet"),
        Err(e) => store_failure(e),
    }
}

/// Every key in dotted form, in the console's order, with its latest saved value (masked) and,
/// where a pending value differs from the applied one, the applied value beside it. This is what
/// `herald config get` prints.
fn get_keys(app: &App) -> Response {
    let (applied, pending) = match (app.settings.applied(), app.settings.pending()) {
        (Ok(a), Ok(p)) => (a, p),
        (Err(e), _) | (_, Err(e)) => return store_failure(e),
    };
    let Some(applied) = applied else {
        return Response::error(503, "no settings yet");
    };
    let latest = pending.as_ref().unwrap_or(&applied);
    let keys: Vec<Json> = KEYS
        .iter()
        .map(|def| {
            let value = latest.settings.get_masked(def.key).map(|v| v.to_json());
            let mut entry = json!({ "key": def.key, "value": value, "secret": def.secret });
            if latest.settings.get(def.key) != applied.settings.get(def.key) {
                entry["pending"] = Json::Bool(true);
                entry["applied"] = applied
                    .settings
                    .get_masked(def.key)
                    .map_or(Json::Null, |v| v.to_json());
            }
            entry
        })
        .collect();
    Response::json(
        200,
        &json!({
            "applied_version": applied.version,
            "pending_version": pending.as_ref().map(|p| p.version),
            "keys": keys,
        }),
    )
}

/// One secret in the clear, for `herald config get KEY --reveal`: only on the control socket,
/// whose file permissions already mean "root or the service user", never on the network.
fn get_secret(app: &App, req: &Request) -> Response {
    if req.origin != super::Origin::Control {
        return Response::error(
            403,
            "secrets are shown only on the control socket: run `herald config get KEY --reveal` on the appliance",
        );
    }
    let key = req.query_param("key").unwrap_or_default();
    let Some(def) = key_def(key) else {
        return Response::error(400, &format!("unknown setting `{key}`"));
    };
    if !def.secret {
        return Response::error(
            400,
            &format!("{key} is not a secret; use GET /manage/v1/config/settings"),
        );
    }
    if key == "console.password" {
        return Response::error(
            400,
            "console.password is stored only as a salted hash and cannot be shown; set a new one with `herald config set console.password ...`",
        );
    }
    if key == "smtp.password" {
        return Response::error(
            400,
            "smtp.password is write-only and is never shown; set a new one with `herald config set smtp.password ...`",
        );
    }
    match app.settings.latest() {
        Ok(Some(doc)) => {
            log::info!("control socket: revealed {key}");
            let value = doc.settings.get(key).map_or(Json::Null, |v| v.to_json());
            Response::json(200, &json!({ "key": key, "value": value }))
        }
        Ok(None) => Response::error(503, "no settings yet"),
        Err(e) => store_failure(e),
    }
}

/// The inbound log (SPEC §3): newest first, `?status=` and `?limit=` (default 100, at most 1000).
fn get_replies(app: &App, req: &Request) -> Response {
    let limit = match req.query_param("limit") {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Response::error(400, "limit must be a whole number from 1 to 1000"),
        },
    };
    let status = req.query_param("status").filter(|s| !s.is_empty());
    if let Some(s) = status {
        let known = ["pending", "processed", "discarded"].contains(&s) || s.starts_with("failed:");
        if !known {
            return Response::error(
                400,
                "status must be pending, processed, discarded or failed:<reason>",
            );
        }
    }
    match app.spool.replies(status, limit) {
        Ok(list) => {
            let replies: Vec<Json> = list
                .into_iter()
                .map(|r| {
                    json!({
                        "id": r.id, "status": r.status, "from": r.from, "to": r.to,
                        "message_id": r.message_id, "received_at": r.received_at, "tls": r.tls,
                        "attempts": r.attempts, "last_error": r.last_error,
                        "delivery_id": r.delivery_id,
                    })
                })
                .collect();
            let counts: Map<String, Json> = app
                .spool
                .counts()
                .unwrap_or_default()
                .into_iter()
                .map(|(s, n)| (s, json!(n)))
                .collect();
            let (files, bytes) = app.spool.body_usage().unwrap_or((0, 0));
            Response::json(
                200,
                &json!({
                    "replies": replies,
                    "counts": counts,
                    "store": { "segment_files": files, "segment_bytes": bytes },
                }),
            )
        }
        Err(e) => store_failure(e),
    }
}

/// A valid reply address, to test the inbound path by hand (`herald reply-address`).
fn get_reply_address(app: &App, req: &Request) -> Response {
    use crate::replies::token;
    let kind = req.query_param("kind").unwrap_or_default();
    let Some(kind) = token::Kind::from_name(kind) else {
        return Response::error(
            400,
            "kind must be one of issue, pull_request, commit, discussion",
        );
    };
    let id = |name: &str| req.query_param(name).and_then(|v| v.parse::<u64>().ok());
    let (Some(thread), Some(user)) = (id("thread"), id("user")) else {
        return Response::error(
            400,
            &format!(
                "thread and user must be whole numbers from 1 to {}",
                token::MAX_ID
            ),
        );
    };
    let domain = match app.settings.applied() {
        Ok(Some(s)) => s.settings.reply_domain(),
        Ok(None) => return Response::error(503, "no settings yet"),
        Err(e) => return store_failure(e),
    };
    match token::mint(&app.reply_key, kind, thread, user, &domain) {
        Ok(address) => Response::json(200, &json!({ "address": address })),
        Err(e) => Response::error(400, &e.0),
    }
}

/// Keys that the `smtp` object shows under GHES's name instead of herald's.
const GHES_NAMES: &[(&str, &str)] = &[
    ("discard-to-noreply-address", "smtp.discard_to_noreply"),
    ("support_address_type", "smtp.support_type"),
];

/// GHES's names inside the `smtp` object, and the herald key each stands for (accepted on PUT
/// beside herald's own names).
const GHES_ALIASES: &[(&str, &str)] = &[
    ("user_name", "smtp.username"),
    ("discard-to-noreply-address", "smtp.discard_to_noreply"),
    ("support_address_type", "smtp.support_type"),
];

/// The settings as the API shows them: grouped by section, secrets masked, GHES's names in `smtp`.
pub fn settings_view(s: &Settings) -> Json {
    let mut root = Map::new();
    for (key, value) in s.masked_pairs() {
        let v = value.to_json();
        match key.split_once('.') {
            None => {
                root.insert(key.into(), v);
            }
            Some((section, name)) => {
                let obj = root
                    .entry(section)
                    .or_insert_with(|| Json::Object(Map::new()))
                    .as_object_mut()
                    .expect("sections are objects");
                let name = GHES_NAMES
                    .iter()
                    .find(|(_, k)| *k == key)
                    .map_or(name, |(ghes, _)| ghes);
                obj.insert(name.into(), v);
            }
        }
    }
    let smtp = root["smtp"].as_object_mut().expect("smtp section");
    smtp.insert("port".into(), Json::String(s.smtp.port.to_string()));
    smtp.insert("user_name".into(), Json::String(s.smtp.username.clone()));
    smtp.insert(
        "enable_starttls_auto".into(),
        Json::Bool(matches!(
            s.smtp.tls,
            crate::settings::TlsMode::StarttlsAuto | crate::settings::TlsMode::StarttlsRequired
        )),
    );
    Json::Object(root)
}

/// Turns a PUT body into changes against `current`. Accepts the sectioned shape of
/// [`settings_view`] (GHES names or herald's), dotted keys at the top level, numbers as strings
/// where a number is expected, and the mask for "leave this secret as it is". When two names for
/// one key disagree (a GHES client that changed one of a pair), the one that changes something wins.
/// Changes read from a body: (key, value) in [`KEYS`] order.
pub type Changes = Vec<(String, Value)>;

/// On error, the changes that could be read come back with the errors.
pub fn parse_put(body: &[u8], current: &Settings) -> Result<Changes, (Changes, Errors)> {
    let json: Json = serde_json::from_slice(body).map_err(|e| {
        (
            Vec::new(),
            Errors::one("body", format!("not valid JSON: {e}")),
        )
    })?;
    let Json::Object(root) = json else {
        return Err((
            Vec::new(),
            Errors::one("body", "must be a JSON object of settings"),
        ));
    };
    let mut errors = Errors::default();
    // (herald key, value), possibly several per key when aliases are used
    let mut candidates: Vec<(String, Json)> = Vec::new();
    for (k, v) in &root {
        match v {
            Json::Object(section) if !k.contains('.') => {
                for (name, v) in section {
                    if k == "smtp" && name == "enable_starttls_auto" {
                        continue; // derived from smtp.tls; mapped below
                    }
                    let dotted = format!("{k}.{name}");
                    match resolve(k, name) {
                        Some(key) => candidates.push((key, v.clone())),
                        None => errors.add(&dotted, "unknown setting"),
                    }
                }
            }
            _ if key_def(k).is_some() => candidates.push((k.clone(), v.clone())),
            _ => errors.add(k, "unknown setting"),
        }
    }
    let mut changes: Vec<(String, Value)> = Vec::new();
    for def in KEYS {
        let mine: Vec<&Json> = candidates
            .iter()
            .filter(|(k, _)| k == def.key)
            .map(|(_, v)| v)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let mut chosen: Option<Value> = None;
        for v in mine {
            let value = match Value::from_json(v) {
                Ok(value) => value,
                Err(msg) => {
                    errors.add(def.key, msg);
                    break;
                }
            };
            if def.secret && value == Value::Str(MASK.into()) {
                continue; // the mask means "unchanged"
            }
            let changes_something = current.get(def.key).as_ref() != Some(&value);
            if chosen.is_none() || changes_something {
                chosen = Some(value);
            }
        }
        // A value equal to the current one is no change (a GET sent back as it was, or the
        // derived default of smtp.noreply_address, must not pin anything).
        if let Some(value) = chosen.filter(|v| current.get(def.key).as_ref() != Some(v)) {
            changes.push((def.key.to_string(), value));
        }
    }
    // enable_starttls_auto maps onto smtp.tls unless smtp.tls itself is being changed.
    let starttls_auto = root.get("smtp").and_then(|s| s.get("enable_starttls_auto"));
    if let Some(Json::Bool(on)) = starttls_auto {
        use crate::settings::TlsMode::*;
        let tls_changing = changes
            .iter()
            .any(|(k, v)| k == "smtp.tls" && current.get("smtp.tls").as_ref() != Some(v));
        let now = current.smtp.tls;
        let next = match (on, now) {
            (true, Off) => Some("starttls-auto"),
            (false, StarttlsAuto | StarttlsRequired) => Some("off"),
            _ => None,
        };
        if let (false, Some(next)) = (tls_changing, next) {
            changes.retain(|(k, _)| k != "smtp.tls");
            changes.push(("smtp.tls".into(), Value::Str(next.into())));
        }
    } else if starttls_auto.is_some() {
        errors.add("smtp.enable_starttls_auto", "must be true or false");
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err((changes, errors))
    }
}

/// The herald key for `section.name`, following GHES aliases. `None` for an unknown name.
fn resolve(section: &str, name: &str) -> Option<String> {
    if section == "smtp"
        && let Some((_, key)) = GHES_ALIASES.iter().find(|(alias, _)| *alias == name)
    {
        return Some((*key).to_string());
    }
    let dotted = format!("{section}.{name}");
    key_def(&dotted).map(|_| dotted)
}

fn put_settings(app: &App, req: &Request) -> Response {
    let current = match app.settings.latest() {
        Ok(Some(doc)) => doc.settings,
        Ok(None) => return Response::error(503, "no settings yet"),
        Err(e) => return store_failure(e),
    };
    let changes = match parse_put(&req.body, &current) {
        Ok(c) => c,
        Err((changes, mut e)) => {
            // Report the values' problems too, not only the names', in one answer.
            if let Err(more) = current.clone().update(&changes) {
                e.merge(more);
            }
            return Response::json(400, &e.to_json());
        }
    };
    if changes.is_empty() {
        return Response::empty(204);
    }
    match app.settings.update(&changes) {
        Ok(doc) => {
            let keys: Vec<&str> = changes.iter().map(|(k, _)| k.as_str()).collect();
            let who = match (req.origin, req.peer) {
                (super::Origin::Control, _) => "control socket (CLI)".to_string(),
                (_, Some(peer)) => format!("manage API from {}", peer.ip()),
                (_, None) => "manage API".to_string(),
            };
            let changed = current.changed_keys(&doc.settings);
            crate::audit::record(&app.db, &who, &crate::audit::saved(doc.version, &changed));
            log::info!(
                "settings saved as pending version {} ({})",
                doc.version,
                if keys.is_empty() {
                    "no keys".to_string()
                } else {
                    keys.join(", ")
                }
            );
            Response::empty(204).with_header("X-Herald-Settings-Version", &doc.version.to_string())
        }
        Err(SaveError::Invalid(e)) => Response::json(400, &e.to_json()),
        Err(SaveError::Store(e)) => store_failure(e),
    }
}
