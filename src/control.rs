//! The CLI's side of the control socket: one HTTP/1.1 request over `<data>/control.sock`, read to
//! the end (the request asks the server to close), status and body out.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app::paths;

#[derive(Debug)]
pub enum ControlError {
    /// Nothing answers on the socket: the service is not running (or not on this data dir).
    NotRunning(PathBuf, std::io::Error),
    /// The socket is there but this user may not use it.
    Denied(PathBuf),
    /// The conversation broke or the answer is not HTTP.
    Io(String),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::NotRunning(p, e) => write!(
                f,
                "herald is not running on this data directory: cannot reach {} ({e}); start it with `herald run`, or pass --data DIR",
                p.display()
            ),
            ControlError::Denied(p) => write!(
                f,
                "permission denied on {}: run this as the user herald runs as (or root)",
                p.display()
            ),
            ControlError::Io(m) => write!(f, "control socket: {m}"),
        }
    }
}

/// A response from the service.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Result<serde_json::Value, ControlError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ControlError::Io(format!("answer is not JSON: {e}")))
    }
}

/// How long the CLI waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Connects to `<data_dir>/control.sock`, saying why not when it cannot.
fn connect(data_dir: &Path) -> Result<UnixStream, ControlError> {
    let sock = data_dir.join(paths::CONTROL_SOCK);
    UnixStream::connect(&sock).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => ControlError::Denied(sock.clone()),
        _ => ControlError::NotRunning(sock.clone(), e),
    })
}

/// Sends one request to the service behind `<data_dir>/control.sock`.
pub fn request(
    data_dir: &Path,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Reply, ControlError> {
    let mut stream = connect(data_dir)?;
    let io = |e: std::io::Error| ControlError::Io(e.to_string());
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    let body = body.unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).map_err(io)?;
    stream.write_all(body).map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    parse_response(&raw)
}

/// How long a download may take to start: the service writes the whole bundle (the checks of
/// its report included) before the first byte.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The headers of a downloaded answer (names lowercased) and how many body bytes arrived.
pub type Downloaded = (Vec<(String, String)>, u64);

/// Sends a `GET` for a download and streams a `200`'s body into `out` as it arrives. Any other
/// answer is read whole and returned as `Err` in a [`Reply`] (its body is the error).
pub fn download(
    data_dir: &Path,
    path: &str,
    out: &mut dyn Write,
) -> Result<Result<Downloaded, Reply>, ControlError> {
    let mut stream = connect(data_dir)?;
    let io = |e: std::io::Error| ControlError::Io(e.to_string());
    stream
        .set_read_timeout(Some(DOWNLOAD_TIMEOUT))
        .map_err(io)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).map_err(io)?;
    // The head, a byte at a time up to its blank line (bounded).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 << 10 || stream.read(&mut byte).map_err(io)? == 0 {
            return Err(ControlError::Io(
                "the answer is not an HTTP response".into(),
            ));
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200 ") {
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).map_err(io)?;
        head.extend_from_slice(&rest);
        return parse_response(&head).map(Err);
    }
    let text = String::from_utf8_lossy(&head);
    let headers = text
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let copied = std::io::copy(&mut stream, out).map_err(io)?;
    Ok(Ok((headers, copied)))
}

fn parse_response(raw: &[u8]) -> Result<Reply, ControlError> {
    let bad = || ControlError::Io("the answer is not an HTTP response".into());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad())?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(bad)?;
    let mut body = raw[split + 4..].to_vec();
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if chunked {
        body = dechunk(&body).ok_or_else(bad)?;
    }
    Ok(Reply { status, body })
}

/// Undoes `Transfer-Encoding: chunked` (RFC 9112 §7.1), ignoring extensions and trailers.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!(r.body, b"{}");
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"Wikipedia");
        assert!(parse_response(b"garbage").is_err());
    }
}
