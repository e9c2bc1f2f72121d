//! The control socket's tiny-http adapter: a few worker threads turn tiny-http requests into
//! [`super::Request`]s, call the router, and write the [`super::Response`] back. Shutdown is a
//! flag the workers see within one poll interval; a request in hand is finished first. Also
//! [`answer`], what both listeners do with a whole request (the console's HTTPS front reads
//! requests itself and calls it directly). A panic in a handler is a 500 for that request; the
//! threads are watched ([`crate::watch`]).

use super::{Origin, Request, Response, authorize, handle};
use crate::app::App;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The largest request body the JSON APIs take (settings and notifications are far smaller).
pub const MAX_BODY: usize = 1024 * 1024;
const POLL: Duration = Duration::from_millis(100);

/// Serves `server` on `workers` threads until `shutdown` is set. Each thread is watched
/// (`name-<i>` in `deaths`), so a dead one is seen and started again with [`spawn_one`].
pub fn spawn(
    name: &str,
    server: Arc<tiny_http::Server>,
    app: Arc<App>,
    origin: Origin,
    workers: usize,
    shutdown: Arc<AtomicBool>,
    deaths: &crate::watch::Deaths,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..workers)
        .map(|i| {
            spawn_one(
                &format!("{name}-{i}"),
                server.clone(),
                app.clone(),
                origin,
                shutdown.clone(),
                deaths,
            )
        })
        .collect()
}

/// One worker thread called `name`.
pub fn spawn_one(
    name: &str,
    server: Arc<tiny_http::Server>,
    app: Arc<App>,
    origin: Origin,
    shutdown: Arc<AtomicBool>,
    deaths: &crate::watch::Deaths,
) -> std::io::Result<JoinHandle<()>> {
    crate::watch::spawn(name, deaths, move || {
        while !shutdown.load(Ordering::Acquire) {
            match server.recv_timeout(POLL) {
                Ok(Some(rq)) => serve_one(&app, origin, rq),
                Ok(None) => {}
                Err(e) => {
                    log::error!("http: {e}");
                    break;
                }
            }
        }
    })
}

fn serve_one(app: &App, origin: Origin, mut rq: tiny_http::Request) {
    let url = rq.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut req = Request {
        method: rq.method().as_str().to_ascii_uppercase(),
        path: path.to_string(),
        query: query.to_string(),
        headers: rq
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_string(),
                    h.value.as_str().to_string(),
                )
            })
            .collect(),
        body: Vec::new(),
        origin,
        peer: None,
    };
    // Credentials are checked before the body is read.
    let resp = match authorize(app, &req).and_then(|()| read_body(&mut rq)) {
        Ok(body) => {
            req.body = body;
            answer(app, &req)
        }
        Err(resp) => resp,
    };
    let headers: Vec<tiny_http::Header> = resp
        .headers
        .iter()
        .filter_map(|(k, v)| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).ok())
        .collect();
    let sent = match &resp.download {
        Some(d) => rq.respond(
            tiny_http::Response::new(
                tiny_http::StatusCode(resp.status),
                headers,
                d.reader(),
                usize::try_from(d.len).ok(),
                None,
            )
            // With its length, not chunked: the CLI streams it to a file as it comes.
            .with_chunked_threshold(usize::MAX),
        ),
        None => {
            let mut out = tiny_http::Response::from_data(resp.body).with_status_code(resp.status);
            for h in headers {
                out.add_header(h);
            }
            rq.respond(out)
        }
    };
    if let Err(e) = sent {
        log::debug!("http: client went away: {e}");
    }
}

/// The answer to a whole request, from either listener: the router, a panic in it as a 500
/// (the worker goes on), logged, and never cached.
pub fn answer(app: &App, req: &Request) -> Response {
    let mut resp = crate::watch::caught(|| {
        crate::failpoint::message("http", req.header("X-Failpoint").unwrap_or("").as_bytes());
        handle(app, req)
    })
    .unwrap_or_else(|panic| {
        log::error!("http: {} {} failed: {panic}", req.method, req.path);
        Response::error(
            500,
            "herald failed to answer this request (an internal error, logged); nothing was changed by it",
        )
    });
    if resp.status >= 500 {
        log::warn!("http: {} {} -> {}", req.method, req.path, resp.status);
    } else {
        log::debug!("http: {} {} -> {}", req.method, req.path, resp.status);
    }
    if !resp
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("Cache-Control"))
    {
        resp.headers
            .push(("Cache-Control".into(), "no-store".into()));
    }
    resp
}

fn read_body(rq: &mut tiny_http::Request) -> Result<Vec<u8>, Response> {
    if rq.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(Response::error(
            413,
            &format!("request body over {MAX_BODY} bytes"),
        ));
    }
    let mut body = Vec::new();
    rq.as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Response::error(400, &format!("cannot read request body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(Response::error(
            413,
            &format!("request body over {MAX_BODY} bytes"),
        ));
    }
    Ok(body)
}
