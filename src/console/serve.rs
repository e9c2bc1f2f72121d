//! What both listeners (the console's HTTPS front and the control socket, both in
//! [`crate::net::https`]) do with a whole request: [`answer`].

use super::{Request, Response, handle};
use crate::app::App;

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
