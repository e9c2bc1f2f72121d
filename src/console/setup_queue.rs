//! The console's Queue pages over HTTP: the list, one notification, the drop's confirmation,
//! and the forms that retry one, retry all waiting and drop one. An action answers with a
//! redirect (so a reload does not do it twice) to a page whose notice says what was done; an
//! action not done answers with the page and a notice that says why and what to do.

use super::pages::queue::{self as page, Notice};
use super::pages::{self, Ctx};
use super::setup::{html, local_path, redirect};
use super::{Request, Response};
use crate::app::App;
use crate::outbound::{actions, queue};

fn who(req: &Request) -> String {
    match req.peer {
        Some(p) => format!("console from {}", p.ip()),
        None => "console".to_string(),
    }
}

fn not_found(ctx: &Ctx) -> Response {
    html(404, pages::error(ctx, ctx.t("error.notfound")))
}

/// `GET /setup/queue…`; `None` when `path` is not the Queue's.
pub fn get(app: &App, req: &Request, ctx: &Ctx, path: &str) -> Option<Response> {
    if path == "/setup/queue" {
        let status = req.query_param("status").unwrap_or("");
        let told = match (req.query_param("done"), req.query_param("id")) {
            (Some("flushed"), _) => req
                .query_param("n")
                .and_then(|n| n.parse().ok())
                .map(Notice::Flushed),
            (Some("retried"), Some(id)) if queue::parse_id(id).is_some() => {
                Some(Notice::Retried(id))
            }
            (Some("dropped"), Some(id)) if queue::parse_id(id).is_some() => {
                Some(Notice::Dropped(id))
            }
            _ => None,
        };
        return Some(list(app, ctx, status, told, 200));
    }
    let rest = path.strip_prefix("/setup/queue/")?;
    let (id, confirm) = match rest.strip_suffix("/drop") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let Some(rec) = record(app, id) else {
        return Some(not_found(ctx));
    };
    if confirm {
        if !rec.status.waiting() {
            let why = queue::Refused::Finished(rec.status);
            return Some(html(409, page::one(ctx, &rec, Some(Notice::Refused(&why)))));
        }
        return Some(html(200, page::confirm_drop(ctx, &rec)));
    }
    let told = match req.query_param("done") {
        Some("retried") => Some(Notice::Retried(&rec.id)),
        Some("dropped") => Some(Notice::Dropped(&rec.id)),
        _ => None,
    };
    Some(html(200, page::one(ctx, &rec, told)))
}

/// A form post under `/setup/queue`; `None` when `path` is not one of the Queue's.
pub fn post(
    app: &App,
    req: &Request,
    ctx: &Ctx,
    form: &[(String, String)],
    path: &str,
) -> Option<Response> {
    if path == "/setup/queue/retry-all" {
        return Some(match actions::retry_all(app, &who(req)) {
            Ok(moved) => redirect(&format!("/setup/queue?done=flushed&n={}", moved.len())),
            Err(why) => list(app, ctx, "", Some(Notice::Refused(&why)), 500),
        });
    }
    let rest = path.strip_prefix("/setup/queue/")?;
    let (id, act) = rest.rsplit_once('/')?;
    let done = match act {
        "retry" => actions::retry(app, id, &who(req)),
        "drop" => actions::drop(app, id, &who(req)),
        _ => return None,
    };
    let word = if act == "retry" { "retried" } else { "dropped" };
    Some(match done {
        Ok(rec) => {
            let back = super::session::last(form, "back").unwrap_or("");
            let back = local_path(back);
            if back.starts_with("/setup/queue?") || back == "/setup/queue" {
                let sep = if back.contains('?') { '&' } else { '?' };
                redirect(&format!("{back}{sep}done={word}&id={}", rec.id))
            } else {
                redirect(&format!("/setup/queue/{}?done={word}", rec.id))
            }
        }
        Err(why) => {
            let status = match why {
                queue::Refused::NotFound => 404,
                queue::Refused::Finished(_) | queue::Refused::Sending => 409,
                queue::Refused::Store(_) => 500,
            };
            match record(app, id) {
                Some(rec) => html(status, page::one(ctx, &rec, Some(Notice::Refused(&why)))),
                None => list(app, ctx, "", Some(Notice::Refused(&why)), status),
            }
        }
    })
}

fn record(app: &App, id: &str) -> Option<queue::Record> {
    app.queue.get(queue::parse_id(id)?).ok().flatten()
}

fn list(app: &App, ctx: &Ctx, status: &str, told: Option<Notice>, code: u16) -> Response {
    let wanted = queue::Status::from_name(status);
    match app.queue.list(wanted, 200) {
        Ok(list) => html(code, page::list(ctx, status, &list, told)),
        Err(e) => Response::error(500, &e),
    }
}
