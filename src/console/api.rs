//! The application API (bearer `api.token`): `POST /api/v1/notifications` checks the body field
//! by field, builds the message, stores it durably and answers `202`;
//! `GET /api/v1/notifications/{id}` reports its state. Also `GET /manage/v1/queue`.

use super::{Request, Response, method_not_allowed};
use crate::app::App;
use crate::outbound::message::{self, Notification, SupportLink};
use crate::outbound::queue::{self, Record, Status, Thread};
use crate::replies::token;
use crate::settings::{Settings, SupportType};
use serde_json::{Map, Value as Json, json};
use std::time::SystemTime;

/// Largest text or HTML body accepted (the message must stay well under common SIZE limits).
pub const BODY_MAX: usize = 4 * 1024 * 1024;
/// Longest subject, in characters.
pub const SUBJECT_MAX: usize = 998;
/// Longest reason: it is the local part of the Cc address (RFC 5321 §4.5.3.1.1).
pub const REASON_MAX: usize = 64;

const FIELDS: &[&str] = &[
    "to", "user_id", "subject", "text", "html", "thread", "reason",
];

pub fn route(app: &App, req: &Request) -> Response {
    let path = req.path.as_str();
    if path == "/api/v1/notifications" {
        return match req.method.as_str() {
            "POST" => create(app, req),
            _ => method_not_allowed(req, "POST"),
        };
    }
    if let Some(id) = path.strip_prefix("/api/v1/notifications/") {
        return match req.method.as_str() {
            "GET" => show(app, id),
            _ => method_not_allowed(req, "GET"),
        };
    }
    Response::error(404, &format!("no such endpoint: {} {path}", req.method))
}

/// A whole number given as a JSON number or a string of digits.
fn id_field(v: &Json) -> Option<u64> {
    match v {
        Json::Number(n) => n.as_u64(),
        Json::String(s)
            if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// The checked fields of a notification request.
struct Input {
    to: String,
    user_id: u64,
    subject: String,
    text: String,
    html: Option<String>,
    kind: token::Kind,
    thread_id: u64,
    reason: String,
}

fn parse(body: &[u8]) -> Result<Input, Map<String, Json>> {
    let mut errors = Map::new();
    let mut err = |k: &str, m: String| {
        errors.insert(k.to_string(), Json::String(m));
    };
    let obj = match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(o)) => o,
        Ok(_) => {
            err("body", "must be a JSON object".into());
            return Err(errors);
        }
        Err(e) => {
            err("body", format!("not valid JSON: {e}"));
            return Err(errors);
        }
    };
    for k in obj.keys() {
        if !FIELDS.contains(&k.as_str()) {
            err(k, format!("unknown field (known: {})", FIELDS.join(", ")));
        }
    }
    let text_field = |k: &str,
                      required: bool,
                      max: usize,
                      errs: &mut dyn FnMut(&str, String)|
     -> Option<String> {
        match obj.get(k) {
            None | Some(Json::Null) if !required => None,
            None | Some(Json::Null) => {
                errs(k, "required".into());
                None
            }
            Some(Json::String(s)) if s.len() > max => {
                errs(k, format!("too long: at most {max} bytes"));
                None
            }
            Some(Json::String(s)) => Some(s.clone()),
            Some(_) => {
                errs(k, "must be a string".into());
                None
            }
        }
    };
    let to = text_field("to", true, 254, &mut err);
    if let Some(to) = &to
        && !crate::settings::is_email(to)
    {
        err("to", format!("{to:?} is not an email address"));
    }
    let subject = text_field("subject", true, SUBJECT_MAX * 4, &mut err);
    if let Some(s) = &subject {
        if s.trim().is_empty() {
            err("subject", "must not be empty".into());
        } else if has_control(s) {
            err(
                "subject",
                "must be one line: no CR, LF or other control characters".into(),
            );
        } else if s.chars().count() > SUBJECT_MAX {
            err(
                "subject",
                format!("too long: at most {SUBJECT_MAX} characters"),
            );
        }
    }
    let text = text_field("text", true, BODY_MAX, &mut err);
    if text.as_deref().is_some_and(|t| t.trim().is_empty()) {
        err("text", "must not be empty".into());
    }
    let html = text_field("html", false, BODY_MAX, &mut err);
    let reason = text_field("reason", true, REASON_MAX, &mut err);
    if let Some(r) = &reason
        && (r.is_empty()
            || !r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        err(
            "reason",
            "must be letters, digits, _ or - (it is the local part of the Cc address)".into(),
        );
    }
    let user_id = match obj.get("user_id") {
        None => {
            err("user_id", "required".into());
            None
        }
        Some(v) => match id_field(v).filter(|n| (1..=token::MAX_ID).contains(n)) {
            Some(n) => Some(n),
            None => {
                err(
                    "user_id",
                    format!("must be a whole number from 1 to {}", token::MAX_ID),
                );
                None
            }
        },
    };
    let mut thread = None;
    match obj.get("thread") {
        None => err(
            "thread",
            "required: {\"kind\": \"issue\"|\"pull_request\"|\"commit\"|\"discussion\", \"id\": N}"
                .into(),
        ),
        Some(Json::Object(t)) => {
            let kind = match t
                .get("kind")
                .and_then(Json::as_str)
                .and_then(token::Kind::from_name)
            {
                Some(k) => Some(k),
                None => {
                    err(
                        "thread.kind",
                        "must be one of issue, pull_request, commit, discussion".into(),
                    );
                    None
                }
            };
            let id = match t
                .get("id")
                .and_then(id_field)
                .filter(|n| (1..=token::MAX_ID).contains(n))
            {
                Some(n) => Some(n),
                None => {
                    err(
                        "thread.id",
                        format!("must be a whole number from 1 to {}", token::MAX_ID),
                    );
                    None
                }
            };
            for k in t.keys() {
                if k != "kind" && k != "id" {
                    err(
                        &format!("thread.{k}"),
                        "unknown field (known: kind, id)".into(),
                    );
                }
            }
            if let (Some(k), Some(i)) = (kind, id) {
                thread = Some((k, i));
            }
        }
        Some(_) => err("thread", "must be an object with kind and id".into()),
    }
    match (to, user_id, subject, text, reason, thread) {
        (
            Some(to),
            Some(user_id),
            Some(subject),
            Some(text),
            Some(reason),
            Some((kind, thread_id)),
        ) if errors.is_empty() => Ok(Input {
            to,
            user_id,
            subject,
            text,
            html,
            kind,
            thread_id,
            reason,
        }),
        _ => Err(errors),
    }
}

fn support_link(s: &Settings) -> SupportLink {
    match (s.smtp.support_type, s.smtp.support_address.as_str()) {
        (_, "") => SupportLink::None,
        (SupportType::Email, a) => SupportLink::Email(a.to_string()),
        (SupportType::Url, a) => SupportLink::Url(a.to_string()),
    }
}

fn create(app: &App, req: &Request) -> Response {
    let input = match parse(&req.body) {
        Ok(i) => i,
        Err(errors) => return Response::json(400, &json!({ "errors": errors })),
    };
    // Not the application's mistake, and not for long: 507 Insufficient Storage (RFC 4918
    // §11.5) with a Retry-After, so it queues the notification again shortly.
    if app.disk.is_low() {
        return Response::error(
            507,
            &format!(
                "the appliance's data disk is nearly full ({} MiB free): nothing was queued; try again once an administrator has freed space",
                app.disk.free() >> 20
            ),
        )
        .with_header("Retry-After", "60");
    }
    let settings = match app.settings.applied() {
        Ok(Some(doc)) => doc.settings,
        Ok(None) => return Response::error(503, "no settings yet"),
        Err(e) => return Response::error(500, &format!("cannot read the settings: {e}")),
    };
    if !settings.smtp.enabled {
        return Response::error(
            503,
            "email is turned off (smtp.enabled is false): nothing was queued; turn it on in the console first",
        );
    }
    let reply_to = match token::mint(
        &app.reply_key,
        input.kind,
        input.thread_id,
        input.user_id,
        &settings.reply_domain(),
    ) {
        Ok(a) => a,
        Err(e) => return Response::json(400, &json!({ "errors": { "thread": e.0 } })),
    };
    let id = app.queue.new_id();
    let qid = format!("{id:X}");
    let message_id = format!(
        "{}.{qid}@{}",
        crate::crypto::hex(&crate::crypto::random_bytes(6)),
        settings.hostname
    );
    let now = SystemTime::now();
    let now_ms = crate::clock::unix_millis(now);
    let noreply = settings.noreply_address();
    let support = support_link(&settings);
    let thread_id = input.thread_id.to_string();
    let seed = crate::crypto::hex(&crate::crypto::random_bytes(12));
    let data = message::notification(&Notification {
        hostname: &settings.hostname,
        noreply: &noreply,
        reply_to: &reply_to,
        reason: &input.reason,
        thread_kind: input.kind.name(),
        thread_id: &thread_id,
        subject: &input.subject,
        text: &input.text,
        html: input.html.as_deref(),
        support: &support,
        message_id: &message_id,
        date_unix: now_ms / 1000,
        boundary_seed: &seed,
    });
    let rec = Record {
        id: qid.clone(),
        status: Status::Queued,
        to: input.to,
        user_id: input.user_id,
        thread: Thread {
            kind: input.kind.name().to_string(),
            id: input.thread_id,
        },
        reason: input.reason,
        subject: input.subject,
        message_id: message_id.clone(),
        reply_to: reply_to.clone(),
        size: data.len(),
        attempts: 0,
        last_error: None,
        created_at: crate::clock::rfc3339(now),
        created_ms: now_ms,
        due_ms: now_ms,
        sent_at: None,
        relay: None,
        smtp_reply: None,
    };
    if let Err(e) = app.queue.enqueue(id, &rec, &data) {
        log::error!("notification {qid}: cannot queue it: {e}");
        return Response::error(
            503,
            &format!("the notification could not be stored: {e}; nothing was queued, try again"),
        );
    }
    app.maillog.write(&[
        ("cleanup", format!("{qid}: message-id=<{message_id}>")),
        (
            "qmgr",
            format!(
                "{qid}: from=<{noreply}>, size={}, nrcpt=1 (queue active)",
                data.len()
            ),
        ),
    ]);
    Response::json(
        202,
        &json!({ "id": qid, "reply_to": reply_to, "message_id": format!("<{message_id}>") }),
    )
}

pub(super) fn view(r: &Record) -> Json {
    json!({
        "id": r.id,
        "status": r.status.name(),
        "to": r.to,
        "thread": { "kind": r.thread.kind, "id": r.thread.id },
        "user_id": r.user_id,
        "reason": r.reason,
        "subject": r.subject,
        "message_id": format!("<{}>", r.message_id),
        "reply_to": r.reply_to,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "created_at": r.created_at,
        "sent_at": r.sent_at,
        "relay": r.relay,
        "smtp_reply": r.smtp_reply,
    })
}

fn show(app: &App, id: &str) -> Response {
    let Some(n) = queue::parse_id(id) else {
        return Response::error(
            404,
            &format!("no notification {id:?} (ids are the hex ids POST answered)"),
        );
    };
    match app.queue.get(n) {
        Ok(Some(r)) => Response::json(200, &view(&r)),
        Ok(None) => Response::error(404, &format!("no notification {id}")),
        Err(e) => Response::error(500, &e),
    }
}

/// `GET /manage/v1/queue?status=&limit=`: outbound notifications, newest first.
pub fn list(app: &App, req: &Request) -> Response {
    let status = match req.query_param("status") {
        None | Some("") => None,
        Some(s) => match Status::from_name(s) {
            Some(st) => Some(st),
            None => {
                return Response::error(
                    400,
                    "status must be one of queued, deferred, sent, failed",
                );
            }
        },
    };
    let limit = match req.query_param("limit") {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Response::error(400, "limit must be a whole number from 1 to 1000"),
        },
    };
    match app.queue.list(status, limit) {
        Ok(list) => {
            let counts: Map<String, Json> = app
                .queue
                .counts()
                .into_iter()
                .map(|(s, n)| (s.name().to_string(), json!(n)))
                .collect();
            Response::json(
                200,
                &json!({ "notifications": list.iter().map(view).collect::<Vec<_>>(), "counts": counts }),
            )
        }
        Err(e) => Response::error(500, &e),
    }
}

/// `POST /manage/v1/queue/retry-all`, `POST /manage/v1/queue/{id}/retry` and
/// `POST /manage/v1/queue/{id}/drop`: the console's queue actions for scripts.
pub fn act(app: &App, req: &Request, rest: &str) -> Response {
    let who = match (req.origin, req.peer) {
        (super::Origin::Control, _) => "control socket (CLI)".to_string(),
        (_, Some(peer)) => format!("manage API from {}", peer.ip()),
        (_, None) => "manage API".to_string(),
    };
    if rest == "retry-all" {
        if req.method != "POST" {
            return super::method_not_allowed(req, "POST");
        }
        return match crate::outbound::actions::retry_all(app, &who) {
            Ok(moved) => Response::json(
                200,
                &json!({ "retried": moved.iter().map(|r| r.id.as_str()).collect::<Vec<_>>() }),
            ),
            Err(e) => Response::error(500, &e.to_string()),
        };
    }
    let Some((id, act)) = rest.rsplit_once('/') else {
        return Response::error(
            404,
            &format!(
                "no such endpoint: {} {} (a notification's actions are …/{{id}}/retry and …/{{id}}/drop)",
                req.method, req.path
            ),
        );
    };
    let done = match act {
        "retry" | "drop" if req.method != "POST" => return super::method_not_allowed(req, "POST"),
        "retry" => crate::outbound::actions::retry(app, id, &who),
        "drop" => crate::outbound::actions::drop(app, id, &who),
        _ => {
            return Response::error(
                404,
                &format!(
                    "no such endpoint: {} {} (a notification's actions are retry and drop)",
                    req.method, req.path
                ),
            );
        }
    };
    match done {
        Ok(rec) => Response::json(200, &view(&rec)),
        Err(why) => {
            let status = match why {
                queue::Refused::NotFound => 404,
                queue::Refused::Finished(_) | queue::Refused::Sending => 409,
                queue::Refused::Store(_) => 500,
            };
            Response::error(status, &format!("notification {id} was not changed: {why}"))
        }
    }
}
