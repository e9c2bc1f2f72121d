//! The HTTP surfaces (SPEC §3) as one router over plain request and response values, so every
//! endpoint is tested without a socket: the manage API (`manage`, `apply`, `email`), the
//! application API (`api`), and the console's pages (`setup`, over `pages`, with `session`).
//! `net::https` reads each request whole (`wire`), on the console's listener after TLS and on the
//! control socket as it is, and `serve::answer` has the router answer it.
//!
//! Who may call what: on the control socket everything, without credentials (file permissions
//! are its authentication); on the console listener `/manage/v1/*` needs HTTP Basic
//! `api_key:<console password>` and `/api/v1/*` the bearer `api.token`.

mod api;
mod apply;
pub mod auth;
mod email;
mod manage;
mod openapi;
pub mod pages;
pub mod serve;
pub mod session;
mod setup;
mod setup_queue;
mod setup_settings;
pub mod wire;

use crate::app::App;
pub use manage::settings_view;
use std::sync::Arc;

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `<data>/control.sock`: no authentication.
    Control,
    /// The HTTPS console listener.
    Console,
}

/// A request, as the router sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub origin: Origin,
    /// The client's address, on the console listener; `None` on the control socket.
    pub peer: Option<std::net::SocketAddr>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a query parameter (no percent-decoding: herald's parameters are plain).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// A response, as the router makes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A body too large to hold in memory (the support bundle): streamed from a file instead of
    /// `body`.
    pub download: Option<Download>,
}

/// A body in an unlinked temporary file: nothing is left on disk once the answer is sent, or
/// if herald stops while sending it.
#[derive(Debug, Clone)]
pub struct Download {
    file: Arc<std::fs::File>,
    pub len: u64,
}

impl PartialEq for Download {
    fn eq(&self, other: &Download) -> bool {
        Arc::ptr_eq(&self.file, &other.file)
    }
}

impl Download {
    /// `file`, its contents written and its name already removed, read from its start.
    pub fn new(mut file: std::fs::File) -> std::io::Result<Download> {
        use std::io::Seek;
        let len = file.metadata()?.len();
        file.seek(std::io::SeekFrom::Start(0))?;
        Ok(Download {
            file: Arc::new(file),
            len,
        })
    }

    /// Reads the body (once: the clones share one file offset).
    pub fn reader(&self) -> DownloadReader {
        DownloadReader(self.file.clone())
    }
}

/// See [`Download::reader`].
pub struct DownloadReader(Arc<std::fs::File>);

impl std::io::Read for DownloadReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(value).expect("JSON serializes");
        body.push(b'\n');
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
            download: None,
        }
    }

    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            download: None,
        }
    }

    /// An error body that says what was wrong: `{"message": ...}`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "message": message }))
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Whether answering `req` costs next to nothing (the stylesheet, the script): then the HTTPS
/// front answers it on its own thread. Everything else goes to the blocking pool, pages too:
/// rendered on the executor's one thread they queued behind each other (p90 103 ms at 50
/// connections, against 8 ms on the pool; measured, see BENCHMARKS.md).
pub fn is_quick(req: &Request) -> bool {
    matches!(req.method.as_str(), "GET" | "HEAD") && req.path.starts_with("/static/")
}

/// Checks the credentials a path needs, from the headers alone, so an unauthenticated request
/// is answered before its body is read.
pub fn authorize(app: &App, req: &Request) -> Result<(), Response> {
    if req.path.starts_with("/manage/") {
        auth::manage(app, req)
    } else if req.path.starts_with("/api/") {
        auth::api(app, req)
    } else {
        Ok(())
    }
}

/// Routes one request.
pub fn handle(app: &App, req: &Request) -> Response {
    if let Err(denied) = authorize(app, req) {
        return denied;
    }
    let path = req.path.as_str();
    if path.starts_with("/manage/") {
        return manage::route(app, req);
    }
    if path.starts_with("/api/") {
        return api::route(app, req);
    }
    if path == "/metrics" {
        if let Err(denied) = auth::manage(app, req) {
            return denied;
        }
        return match req.method.as_str() {
            "GET" => Response {
                status: 200,
                headers: vec![(
                    "Content-Type".into(),
                    "text/plain; version=0.0.4; charset=utf-8".into(),
                )],
                body: crate::metrics::render(&app.metrics, &crate::metrics::snapshot(app))
                    .into_bytes(),
                download: None,
            },
            _ => method_not_allowed(req, "GET"),
        };
    }
    // The plain-text diagnostics for scripts and tickets: on the control socket, or with the
    // manage API's credentials; in a browser session it is a page of the console.
    if path == "/setup/diagnostics"
        && (req.origin == Origin::Control || req.header("Authorization").is_some())
    {
        if let Err(denied) = auth::manage(app, req) {
            return denied;
        }
        return match req.method.as_str() {
            "GET" => diagnostics_text(app),
            _ => method_not_allowed(req, "GET"),
        };
    }
    setup::route(app, req)
}

/// The diagnostics report as `text/plain`.
pub fn diagnostics_text(app: &App) -> Response {
    Response {
        status: 200,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: crate::diagnostics::gather(app).to_text().into_bytes(),
        download: None,
    }
}

/// The body of a `405`, naming what is allowed.
fn method_not_allowed(req: &Request, allowed: &str) -> Response {
    Response::error(
        405,
        &format!(
            "{} is not allowed on {}; use {allowed}",
            req.method, req.path
        ),
    )
    .with_header("Allow", allowed)
}

#[cfg(test)]
mod tests;
