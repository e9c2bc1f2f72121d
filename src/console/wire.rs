//! HTTP/1.1 as the console's HTTPS front speaks it: a request head with every part bounded
//! ([`LINE_MAX`], [`HEAD_MAX`], [`FIELDS_MAX`]: `431`), a body framed by `Content-Length` or
//! chunked and bounded per endpoint ([`body_limit`]: `413`), the whole request handed to the
//! router as a [`super::Request`] with the client's address, and the router's
//! [`super::Response`] written back. A request reaches the router only once it is whole and
//! within its bounds (through tiny-http, one 196 MB header line had taken herald to 200 MB). No
//! I/O here: the front in `net::https` feeds bytes and writes what it is given.

use std::net::SocketAddr;

/// The request line and each header line (RFC 9112 §3 recommends supporting 8000 octets).
pub const LINE_MAX: usize = 8 * 1024;
/// The whole head.
pub const HEAD_MAX: usize = 64 * 1024;
/// Header fields in one request.
pub const FIELDS_MAX: usize = 100;
/// The largest body any endpoint takes (a notification with its HTML).
pub const BODY_MAX: usize = 1024 * 1024;
/// A chunk-size line (hex digits and extensions).
const CHUNK_LINE_MAX: usize = 256;

/// The most body `method path` may have: small JSON and forms by default, more for the
/// endpoints that carry messages.
pub fn body_limit(method: &str, path: &str) -> usize {
    match (method, path) {
        ("GET" | "HEAD" | "DELETE" | "OPTIONS", _) => 0,
        ("POST", "/api/v1/notifications") => BODY_MAX,
        ("POST", "/setup/reply-lab") => BODY_MAX,
        _ => 64 * 1024,
    }
}

/// A request the front refuses itself, with the status and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// The whole answer: a JSON body naming the problem, and the connection closed.
    pub fn response(&self) -> Vec<u8> {
        let body = serde_json::to_vec(&serde_json::json!({ "message": self.message }))
            .expect("serializes");
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n",
            self.status,
            reason(self.status),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        303 => "See Other",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        500 => "Internal Server Error",
        507 => "Insufficient Storage",
        400 => "Bad Request",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes.
    Length(usize),
    Chunked,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The request target as sent (origin form: path and query).
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// Field names and values, in order, values trimmed.
    pub fields: Vec<(String, String)>,
    pub framing: Framing,
    /// The client sent `Expect: 100-continue` and waits for a `100` before its body.
    pub expects_continue: bool,
}

impl Head {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Whether the client keeps the connection for another request after this one.
    pub fn keep_alive(&self) -> bool {
        let close = self
            .field("Connection")
            .is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
        // HTTP/1.0's keep-alive would need the answer to say so too: one request there.
        self.version == "HTTP/1.1" && !close
    }

    /// The whole request, as the router sees it.
    pub fn request(
        self,
        body: Vec<u8>,
        peer: Option<SocketAddr>,
        origin: super::Origin,
    ) -> super::Request {
        let (path, query) = match self.target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (self.target.clone(), String::new()),
        };
        super::Request {
            method: self.method,
            path,
            query,
            headers: self.fields,
            body,
            origin,
            peer,
        }
    }
}

/// The router's answer on the wire: status line, its headers, the length, and `Connection:
/// close` when the connection ends after it. A `HEAD` gets the head alone; a download's body is
/// the adapter's to stream after these bytes.
pub fn response(resp: &super::Response, keep_alive: bool, head_only: bool) -> Vec<u8> {
    let no_body = head_only || matches!(resp.status, 204 | 304);
    let mut out = Vec::with_capacity(resp.body.len() + 256);
    out.extend_from_slice(
        format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status)).as_bytes(),
    );
    for (k, v) in &resp.headers {
        // A header the router made never carries a line break (it would split the answer).
        if k.bytes().chain(v.bytes()).any(|b| b == b'\r' || b == b'\n') {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !matches!(resp.status, 204 | 304) {
        let len = resp
            .download
            .as_ref()
            .map_or(resp.body.len() as u64, |d| d.len);
        out.extend_from_slice(format!("Content-Length: {len}\r\n").as_bytes());
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !no_body {
        out.extend_from_slice(&resp.body);
    }
    out
}

/// What [`parse_head`] made of the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole head yet, and nothing wrong so far.
    Incomplete,
    /// A head of `len` bytes (the body starts after them).
    Head(Head, usize),
    Refused(Refusal),
}

/// Parses the head at the start of `buf`. Bounds are checked on what has arrived, so a head
/// that can only end up too large is refused before the rest is read.
pub fn parse_head(buf: &[u8]) -> Parsed {
    // Blank lines before a request are ignored (RFC 9112 §2.2).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let buf = &buf[start..];
    let mut lines = Vec::new();
    let mut at = 0;
    loop {
        let Some(nl) = buf[at..].iter().position(|&b| b == b'\n') else {
            let partial = buf.len() - at;
            if partial > LINE_MAX {
                return Parsed::Refused(if lines.is_empty() {
                    Refusal::new(
                        414,
                        format!("the request line is longer than {LINE_MAX} bytes"),
                    )
                } else {
                    Refusal::new(
                        431,
                        format!("a header line is longer than {LINE_MAX} bytes"),
                    )
                });
            }
            if buf.len() > HEAD_MAX {
                return Parsed::Refused(Refusal::new(
                    431,
                    format!("the request's header is larger than {HEAD_MAX} bytes"),
                ));
            }
            return Parsed::Incomplete;
        };
        let line = &buf[at..at + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > LINE_MAX {
            return Parsed::Refused(if lines.is_empty() {
                Refusal::new(
                    414,
                    format!("the request line is longer than {LINE_MAX} bytes"),
                )
            } else {
                Refusal::new(
                    431,
                    format!("a header line is longer than {LINE_MAX} bytes"),
                )
            });
        }
        at += nl + 1;
        if at > HEAD_MAX {
            return Parsed::Refused(Refusal::new(
                431,
                format!("the request's header is larger than {HEAD_MAX} bytes"),
            ));
        }
        if line.is_empty() {
            break;
        }
        if lines.len() > FIELDS_MAX {
            return Parsed::Refused(Refusal::new(
                431,
                format!("the request has more than {FIELDS_MAX} header fields"),
            ));
        }
        lines.push(line);
    }
    match head_of(&lines) {
        Ok(head) => Parsed::Head(head, start + at),
        Err(r) => Parsed::Refused(r),
    }
}

fn head_of(lines: &[&[u8]]) -> Result<Head, Refusal> {
    let bad = |m: &str| Refusal::new(400, m.to_string());
    let Some((first, rest)) = lines.split_first() else {
        return Err(bad("an empty request"));
    };
    let first = std::str::from_utf8(first).map_err(|_| bad("the request line is not text"))?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the request line is not METHOD TARGET HTTP/1.1"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("the method is not a token of capital letters"));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("the request target must be a path starting with /"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Refusal::new(
            505,
            "only HTTP/1.1 and HTTP/1.0 are spoken here",
        ));
    }
    let mut fields = Vec::with_capacity(rest.len());
    for line in rest {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            // Obsolete line folding (RFC 9112 §5.2): refused, as a server may.
            return Err(bad("a header field is folded over lines"));
        }
        let line = std::str::from_utf8(line).map_err(|_| bad("a header field is not text"))?;
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("a header line has no colon"));
        };
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b <= b' ' || b == 0x7f || b"()<>@,;\\\"/[]?={}".contains(&b))
        {
            return Err(bad("a header field's name is not a token"));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n') {
            return Err(bad("a header field's value holds a control character"));
        }
        fields.push((name.to_string(), value.to_string()));
    }
    let all = |n: &str| {
        fields
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let lengths = all("Content-Length");
    let encodings = all("Transfer-Encoding");
    let framing = match (lengths.as_slice(), encodings.as_slice()) {
        ([], []) => Framing::Length(0),
        ([_, ..], [_, ..]) => {
            // Request smuggling's classic (RFC 9112 §6.3): refused, not guessed at.
            return Err(bad("Content-Length and Transfer-Encoding together"));
        }
        ([], te) => {
            let codings: Vec<String> = te
                .iter()
                .flat_map(|v| v.split(','))
                .map(|c| c.trim().to_ascii_lowercase())
                .collect();
            if codings != ["chunked"] {
                return Err(Refusal::new(
                    501,
                    "only the chunked transfer coding is understood",
                ));
            }
            Framing::Chunked
        }
        (ls, []) => {
            let n = ls[0];
            if !ls.iter().all(|l| *l == n) || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad("Content-Length is not one whole number"));
            }
            Framing::Length(n.parse().map_err(|_| bad("Content-Length is too large"))?)
        }
    };
    let expects_continue = match all("Expect").as_slice() {
        [] => false,
        [e] if e.eq_ignore_ascii_case("100-continue") => true,
        _ => return Err(Refusal::new(417, "only Expect: 100-continue is understood")),
    };
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        fields,
        framing,
        expects_continue,
    })
}

/// Checks a head's body against the limit of its endpoint, before any of the body is read.
pub fn check_length(head: &Head) -> Result<(), Refusal> {
    let limit = body_limit(&head.method, head.path());
    match head.framing {
        Framing::Length(n) if n > limit => Err(too_large(head, limit)),
        _ => Ok(()),
    }
}

fn too_large(head: &Head, limit: usize) -> Refusal {
    if limit == 0 {
        Refusal::new(
            413,
            format!("{} {} takes no request body", head.method, head.path()),
        )
    } else {
        Refusal::new(
            413,
            format!(
                "the request body is larger than {limit} bytes, the most {} {} takes",
                head.method,
                head.path()
            ),
        )
    }
}

/// A chunked body being decoded (RFC 9112 §7.1), bounded by the endpoint's limit.
#[derive(Debug)]
pub struct Chunked {
    limit: usize,
    state: ChunkState,
    /// The decoded body so far.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    Size,
    /// This many bytes of chunk data left.
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, until an empty one.
    Trailer,
    Done,
}

impl Chunked {
    pub fn new(head: &Head) -> Chunked {
        Chunked {
            limit: body_limit(&head.method, head.path()),
            state: ChunkState::Size,
            body: Vec::new(),
        }
    }

    /// Decodes what it can of `buf`: how many bytes it used (the caller drops them and feeds
    /// the rest again with more behind it; a partial line is left unused) and whether the body
    /// is complete (what is left then belongs to the next request).
    pub fn feed(&mut self, buf: &[u8], head: &Head) -> Result<(usize, bool), Refusal> {
        let mut at = 0;
        loop {
            match self.state {
                ChunkState::Done => return Ok((at, true)),
                ChunkState::Data(left) => {
                    let take = left.min(buf.len() - at);
                    if self.body.len() + take > self.limit {
                        return Err(too_large(head, self.limit));
                    }
                    self.body.extend_from_slice(&buf[at..at + take]);
                    at += take;
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                    if at == buf.len() && self.state != ChunkState::DataEnd {
                        return Ok((at, false));
                    }
                }
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailer => {
                    let long = || Refusal::new(400, "a chunk line is too long");
                    let Some(nl) = buf[at..].iter().position(|&b| b == b'\n') else {
                        // The line so far may still end in the CR its line end strips.
                        if buf.len() - at > CHUNK_LINE_MAX + 1 {
                            return Err(long());
                        }
                        return Ok((at, false));
                    };
                    let line = &buf[at..at + nl];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.len() > CHUNK_LINE_MAX {
                        return Err(long());
                    }
                    at += nl + 1;
                    match self.state {
                        ChunkState::DataEnd if line.is_empty() => self.state = ChunkState::Size,
                        ChunkState::DataEnd => {
                            return Err(Refusal::new(400, "a chunk is longer than its size"));
                        }
                        ChunkState::Trailer if line.is_empty() => self.state = ChunkState::Done,
                        ChunkState::Trailer => {}
                        _ => {
                            let digits = line
                                .split(|&b| b == b';')
                                .next()
                                .unwrap_or(b"")
                                .trim_ascii();
                            let size = std::str::from_utf8(digits)
                                .ok()
                                .filter(|d| !d.is_empty() && d.len() <= 8)
                                .and_then(|d| usize::from_str_radix(d, 16).ok());
                            match size {
                                None => return Err(Refusal::new(400, "a chunk size is not hex")),
                                Some(0) => self.state = ChunkState::Trailer,
                                Some(n) if self.body.len() + n > self.limit => {
                                    return Err(too_large(head, self.limit));
                                }
                                Some(n) => self.state = ChunkState::Data(n),
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
