//! The manage API of configuration runs (SPEC §3), in GHES's shapes with herald's fields beside
//! them: `POST /manage/v1/config/apply` starts one (`202 {"run_id"}`, or `409` naming the run
//! going on), `GET /manage/v1/config/apply[?run_id=N]` reports one (the latest without an id),
//! `GET /manage/v1/config/apply/events?run_id=N` lists its events.

use super::{Request, Response};
use crate::app::App;
use crate::supervisor::runs::Run;
use crate::supervisor::{self, Refused};
use serde_json::{Value as Json, json};

/// Who asked, from the request: the CLI (control socket) or the API over the network.
fn trigger(req: &Request) -> (&'static str, Option<String>) {
    match req.origin {
        super::Origin::Control => ("cli", None),
        super::Origin::Console => ("api", req.peer.map(|p| p.ip().to_string())),
    }
}

pub fn start(app: &App, req: &Request) -> Response {
    let (how, client) = trigger(req);
    match supervisor::request(app, how, client) {
        Ok(run) => Response::json(202, &json!({ "run_id": run.id })).with_header(
            "Location",
            &format!("/manage/v1/config/apply?run_id={}", run.id),
        ),
        Err(Refused::Busy(id)) => Response::json(
            409,
            &json!({
                "message": format!("configuration run {id} is going on; wait for it to end (GET /manage/v1/config/apply?run_id={id})"),
                "run_id": id,
            }),
        ),
        Err(Refused::Failed(e)) => Response::error(503, &e),
    }
}

/// The run `?run_id=N` names, or the latest; a response when there is none or the id is bad.
fn which(app: &App, req: &Request) -> Result<Run, Response> {
    let found = match req.query_param("run_id") {
        None | Some("") => app.runs.latest(),
        Some(id) => match id.parse::<u64>() {
            Ok(n) => app.runs.get(n),
            Err(_) => return Err(Response::error(400, "run_id must be a run's number")),
        },
    };
    match found {
        Ok(Some(run)) => Ok(run),
        Ok(None) => Err(Response::error(
            404,
            match req.query_param("run_id") {
                Some(_) => "no such configuration run",
                None => "no configuration run yet: POST /manage/v1/config/apply starts one",
            },
        )),
        Err(e) => Err(Response::error(500, &e)),
    }
}

/// A run in GHES's shape (`running`, `successful`, `nodes`) with herald's fields beside.
pub fn view(run: &Run, hostname: &str) -> Json {
    let running = run.is_running();
    let successful = run.status == crate::supervisor::runs::Status::Success;
    json!({
        "running": running,
        "successful": successful,
        "nodes": [{ "run_id": run.id, "hostname": hostname, "running": running, "successful": successful }],
        "run_id": run.id,
        "status": run.status.name(),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "took_ms": run.took_ms,
        "trigger": run.trigger,
        "from_version": run.from_version,
        "to_version": run.to_version,
        "changed": run.changed,
        "error": run.error,
        "steps": run.steps.iter().map(|s| json!({
            "name": s.name, "status": s.status.name(), "message": s.message,
            "started_at": s.started_at, "finished_at": s.finished_at, "took_ms": s.took_ms,
        })).collect::<Vec<_>>(),
    })
}

fn hostname(app: &App) -> String {
    app.settings
        .applied()
        .ok()
        .flatten()
        .map(|s| s.settings.hostname)
        .unwrap_or_default()
}

pub fn status(app: &App, req: &Request) -> Response {
    match which(app, req) {
        Ok(run) => Response::json(200, &view(&run, &hostname(app))),
        Err(r) => r,
    }
}

pub fn events(app: &App, req: &Request) -> Response {
    let run = match which(app, req) {
        Ok(run) => run,
        Err(r) => return r,
    };
    let host = hostname(app);
    let events: Vec<Json> = run
        .events
        .iter()
        .map(|e| {
            json!({
                "timestamp": e.timestamp,
                "severity_text": e.severity_text,
                "body": e.body,
                "event_name": e.event_name,
                "config_run_id": run.id.to_string(),
                "hostname": host,
            })
        })
        .collect();
    Response::json(
        200,
        &json!({ "nodes": [{ "node": host, "events": events }] }),
    )
}
