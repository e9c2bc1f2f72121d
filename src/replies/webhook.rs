//! Webhook delivery: the signature (`X-Herald-Signature: sha256=<hex HMAC-SHA256 of the body>`),
//! the HTTP/1.1 request, the status line of the answer and whether the connection can carry
//! another request (pure), and a small smol adapter that POSTs over plain TCP or rustls and reads
//! the status. Connections are kept open between requests (HTTP/1.1 keep-alive, a [`Pool`] of
//! them, one per processing lane) when the answer allows it: working off a backlog, a new TCP
//! connection per request was a third of the processor's CPU. A request on a kept connection that
//! the server closed before answering anything (its idle timeout racing the request) is sent once
//! more on a new connection, with the same delivery id.

use crate::crypto;
use ring::hmac;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The whole exchange (connect, send, answer) may take this long.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of the answer read at most: the status line and headers are all we need (an answer
/// with a longer body is not read to its end, and its connection is closed).
const ANSWER_MAX: usize = 16 * 1024;
/// Once the status is in, the rest of the answer must follow within this long for the
/// connection to be kept; the status counts either way.
const REST_WAIT: Duration = Duration::from_secs(1);
/// A kept connection idle for longer is closed, not used: servers close idle connections after
/// a few seconds (gunicorn 2 s, Node.js and Apache 5 s), and a request should not race that.
pub const IDLE_MAX: Duration = Duration::from_secs(2);
/// A kept connection idle for longer is checked (a peek) before it is used; one idle for less
/// was answering a moment ago, and the retry covers a close racing the request.
const CHECK_AFTER: Duration = Duration::from_millis(100);

/// `sha256=<hex>` of `body` keyed with the webhook secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", crypto::hex(hmac::sign(&key, body).as_ref()))
}

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

pub fn parse_url(url: &str) -> Result<Url, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("replies.webhook_url must start with http:// or https://".into());
    };
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') || authority.is_empty() {
        return Err("replies.webhook_url needs a host and no credentials".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("replies.webhook_url: unclosed [ in the host")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| "replies.webhook_url: bad port")?,
            None if after.is_empty() => default_port(tls),
            None => return Err("replies.webhook_url: bad host".into()),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| "replies.webhook_url: bad port")?,
            ),
            None => (authority.to_string(), default_port(tls)),
        }
    };
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("replies.webhook_url: spaces or control characters in the path".into());
    }
    Ok(Url {
        tls,
        host,
        port,
        target,
    })
}

fn default_port(tls: bool) -> u16 {
    if tls { 443 } else { 80 }
}

/// The request bytes: POST with a JSON body and the given extra headers.
pub fn request(url: &Url, body: &[u8], headers: &[(&str, &str)]) -> Vec<u8> {
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: herald/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        url.target,
        url.port,
        crate::VERSION,
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The final status code of an HTTP/1.x answer, once its status line is complete. Interim 1xx
/// answers (`100 Continue`, `103 Early Hints`) before it are skipped (RFC 9110 §15.2).
pub fn status(answer: &[u8]) -> Option<u16> {
    let mut rest = answer;
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&rest[..end]).ok()?;
        let mut parts = line.split(' ');
        let version = parts.next()?;
        if !version.starts_with("HTTP/1.") {
            return None;
        }
        let code: u16 = parts
            .next()?
            .parse()
            .ok()
            .filter(|c| (100..600).contains(c))?;
        if code >= 200 {
            return Some(code);
        }
        // An interim answer ends with an empty line; the final one follows.
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        rest = &rest[head_end + 4..];
    }
}

/// Whether, after `answer` (everything read from the connection so far), the connection can
/// carry another request: `Some(true)` when it holds exactly one whole final answer (after any
/// interim 1xx ones) that is HTTP/1.1, has no `Connection: close` and a known length
/// (`Content-Length`, or none for 204 and 304); `Some(false)` when the connection must be closed;
/// `None` while the answer is not complete yet.
pub fn reusable(answer: &[u8]) -> Option<bool> {
    let mut rest = answer;
    loop {
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let Ok(head) = std::str::from_utf8(&rest[..head_end - 4]) else {
            return Some(false);
        };
        let mut lines = head.split("\r\n");
        let mut status = lines.next().unwrap_or("").split(' ');
        let version = status.next().unwrap_or("");
        let Some(code) = status.next().and_then(|c| c.parse::<u16>().ok()) else {
            return Some(false);
        };
        // Found by fuzzing: an interim answer with a garbled status line was skipped as if
        // it were one, so the connection counted as reusable where `status` saw no answer.
        if !version.starts_with("HTTP/1.") || !(100..600).contains(&code) {
            return Some(false);
        }
        if (100..200).contains(&code) {
            rest = &rest[head_end..];
            continue;
        }
        if version != "HTTP/1.1" {
            return Some(false);
        }
        let mut length: Option<usize> = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Some(false);
            };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("connection")
                && value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                return Some(false);
            }
            if name.eq_ignore_ascii_case("transfer-encoding") {
                return Some(false);
            }
            if name.eq_ignore_ascii_case("content-length") {
                match value.parse::<usize>() {
                    Ok(n) if length.is_none_or(|l| l == n) => length = Some(n),
                    _ => return Some(false),
                }
            }
        }
        let body = match (code, length) {
            (204 | 304, _) => 0,
            (_, Some(n)) if n <= ANSWER_MAX => n,
            _ => return Some(false),
        };
        let whole = head_end + body;
        return match rest.len().cmp(&whole) {
            std::cmp::Ordering::Less => None,
            std::cmp::Ordering::Equal => Some(true),
            // Bytes the server sent beyond its answer: nothing can be trusted after them.
            std::cmp::Ordering::Greater => Some(false),
        };
    }
}

/// An open connection to the webhook.
enum Stream {
    Plain(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

/// A connection kept for the next request.
struct Conn {
    stream: Stream,
    /// What it is connected to: TLS or not, host, port.
    to: (bool, String, u16),
    idle_since: Instant,
}

impl Conn {
    fn goes_to(&self, url: &Url) -> bool {
        self.to.0 == url.tls && self.to.1 == url.host && self.to.2 == url.port
    }

    fn tcp(&self) -> &TcpStream {
        match &self.stream {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Still open with nothing unread: the server has not closed it (nor sent anything
    /// unasked, such as a TLS alert).
    async fn idle_and_open(&self) -> bool {
        let mut byte = [0u8; 1];
        smol::future::poll_once(self.tcp().peek(&mut byte))
            .await
            .is_none()
    }
}

/// Connections kept open between requests (at most one per request in flight).
#[derive(Default)]
pub struct Pool(Mutex<Vec<Conn>>);

impl Pool {
    /// A kept connection to `url` that can be used; the stale ones are closed.
    async fn take(&self, url: &Url) -> Option<Conn> {
        loop {
            let conn = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            let idle = conn.idle_since.elapsed();
            if conn.goes_to(url)
                && idle <= IDLE_MAX
                && (idle < CHECK_AFTER || conn.idle_and_open().await)
            {
                return Some(conn);
            }
        }
    }

    fn put(&self, mut conn: Conn) {
        conn.idle_since = Instant::now();
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
    }

    /// Closes the connections idle for longer than [`IDLE_MAX`].
    pub fn close_idle(&self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| c.idle_since.elapsed() <= IDLE_MAX);
    }
}

/// How an exchange failed.
enum Failure {
    /// Nothing of an answer came: the request may not have reached the server.
    Unanswered(String),
    Other(String),
}

impl Failure {
    fn text(self) -> String {
        match self {
            Failure::Unanswered(e) | Failure::Other(e) => e,
        }
    }
}

/// POSTs `body` to `url`, on a connection kept in `pool` if there is one; the answer's status
/// code, or what went wrong.
pub async fn post(
    url: &Url,
    body: &[u8],
    headers: &[(&str, &str)],
    tls: &Arc<rustls::ClientConfig>,
    pool: &Pool,
) -> Result<u16, String> {
    let bytes = request(url, body, headers);
    let exchange = async {
        if let Some(mut conn) = pool.take(url).await {
            match conn.exchange(&bytes).await {
                Ok((code, keep)) => {
                    if keep {
                        pool.put(conn);
                    }
                    return Ok(code);
                }
                // The server closed the kept connection without answering: it went idle-closed
                // as the request went out. Once more on a new one; had the server taken the
                // request after all, the delivery id is the same and the application
                // de-duplicates it.
                Err(Failure::Unanswered(_)) => {}
                Err(Failure::Other(e)) => return Err(e),
            }
        }
        let mut conn = connect(url, tls).await?;
        let (code, keep) = conn.exchange(&bytes).await.map_err(Failure::text)?;
        if keep {
            pool.put(conn);
        }
        Ok(code)
    };
    exchange
        .or(async {
            smol::Timer::after(TIMEOUT).await;
            Err(format!(
                "no answer from {}:{} within {} s",
                url.host,
                url.port,
                TIMEOUT.as_secs()
            ))
        })
        .await
}

async fn connect(url: &Url, tls: &Arc<rustls::ClientConfig>) -> Result<Conn, String> {
    let tcp = crate::net::connect(&url.host, url.port)
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", url.host, url.port))?;
    let _ = tcp.set_nodelay(true);
    let stream = if url.tls {
        let name = crate::outbound::tls::server_name(&url.host)?;
        let connector = futures_rustls::TlsConnector::from(tls.clone());
        let s = connector
            .connect(name, tcp)
            .await
            .map_err(|e| crate::outbound::tls::explain(&e, &url.host))?;
        Stream::Tls(Box::new(s))
    } else {
        Stream::Plain(tcp)
    };
    Ok(Conn {
        stream,
        to: (url.tls, url.host.clone(), url.port),
        idle_since: Instant::now(),
    })
}

impl Conn {
    /// Sends the request and reads the answer's status; whether the connection can be kept.
    async fn exchange(&mut self, bytes: &[u8]) -> Result<(u16, bool), Failure> {
        match &mut self.stream {
            Stream::Plain(s) => exchange(s, bytes).await,
            Stream::Tls(s) => exchange(s.as_mut(), bytes).await,
        }
    }
}

async fn exchange<S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin>(
    s: &mut S,
    bytes: &[u8],
) -> Result<(u16, bool), Failure> {
    s.write_all(bytes)
        .await
        .map_err(|e| Failure::Unanswered(format!("sending the request: {e}")))?;
    s.flush()
        .await
        .map_err(|e| Failure::Unanswered(format!("sending the request: {e}")))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 2048];
    let code = loop {
        if let Some(code) = status(&answer) {
            break code;
        }
        if answer.len() >= ANSWER_MAX {
            return Err(Failure::Other("the answer is not HTTP".into()));
        }
        let n = match s.read(&mut buf).await {
            Ok(n) => n,
            Err(e) if answer.is_empty() => {
                return Err(Failure::Unanswered(format!("reading the answer: {e}")));
            }
            Err(e) => return Err(Failure::Other(format!("reading the answer: {e}"))),
        };
        if n == 0 {
            return Err(if answer.is_empty() {
                Failure::Unanswered("the server closed the connection without answering".into())
            } else {
                Failure::Other("the answer is not HTTP".into())
            });
        }
        answer.extend_from_slice(&buf[..n]);
    };
    // The status is the outcome; the rest of the answer only decides whether the connection is
    // kept, and is waited for briefly.
    let keep = match reusable(&answer) {
        Some(keep) => keep,
        None => {
            let rest = async {
                loop {
                    if answer.len() >= ANSWER_MAX {
                        return false;
                    }
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    }
                    if let Some(keep) = reusable(&answer) {
                        return keep;
                    }
                }
            };
            rest.or(async {
                smol::Timer::after(REST_WAIT).await;
                false
            })
            .await
        }
    };
    Ok((code, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("https://app.example.com/hooks/herald?x=1").unwrap(),
            Url {
                tls: true,
                host: "app.example.com".into(),
                port: 443,
                target: "/hooks/herald?x=1".into()
            }
        );
        assert_eq!(
            parse_url("http://127.0.0.1:8080").unwrap(),
            Url {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080,
                target: "/".into()
            }
        );
        assert_eq!(parse_url("http://[::1]:81/x").unwrap().host, "::1");
        for bad in [
            "ftp://x",
            "http://user:pw@x/",
            "http://x:99999/",
            "http:///x",
            "http://x/a b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_and_status() {
        let url = parse_url("http://127.0.0.1:9/hook").unwrap();
        let r = String::from_utf8(request(&url, b"{}", &[("X-Herald-Delivery", "ABC-1")])).unwrap();
        assert!(
            r.starts_with("POST /hook HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"),
            "{r}"
        );
        assert!(r.contains("Content-Length: 2\r\n") && r.contains("X-Herald-Delivery: ABC-1\r\n"));
        assert!(r.ends_with("\r\n\r\n{}"));
        assert_eq!(status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status(b"HTTP/1.0 410 Gone\r\nX: y\r\n"), Some(410));
        assert_eq!(status(b"HTTP/1.1 200 OK"), None, "line not complete yet");
        assert_eq!(status(b"SSH-2.0-OpenSSH\r\n"), None);
        // Interim answers are skipped, also when the final one has not come yet.
        assert_eq!(
            status(
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 204 No Content\r\n"
            ),
            Some(204)
        );
        assert_eq!(status(b"HTTP/1.1 100 Continue\r\n\r\n"), None);
        assert_eq!(status(b"HTTP/1.1 100 Continue\r\n"), None);
        assert!(!r.to_ascii_lowercase().contains("connection:"), "{r}");
    }

    #[test]
    fn whether_a_connection_can_carry_another_request() {
        let r = |a: &str| reusable(a.as_bytes());
        assert_eq!(r("HTTP/1.1 204 No Content\r\n\r\n"), Some(true));
        assert_eq!(
            r("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
            Some(true)
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Some(true)
        );
        assert_eq!(r("HTTP/1.1 200 OK\r\ncontent-length:2\r\n\r\no"), None);
        assert_eq!(r("HTTP/1.1 204 No Content\r\n"), None, "head not complete");
        // Interim answers first; the final one decides.
        assert_eq!(
            r("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
            Some(true)
        );
        assert_eq!(r("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"), None);
        for closed in [
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nconnection: keep-alive, Close\r\n\r\n",
            "HTTP/1.0 204 No Content\r\n\r\n",
            "HTTP/1.1 200 OK\r\n\r\nbody until the end",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            // Regression (fuzzing): a garbled interim status line was skipped as an interim.
            "HTT\0?1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 099 Odd\r\n\r\n",
        ] {
            assert_eq!(r(closed), Some(false), "{closed}");
        }
    }

    /// A test server on loopback: for each connection it accepts, `script` says what to do with
    /// each request read on it (answer with these bytes, or `None`: close without answering).
    /// Returns the port and, when joined, the requests each connection read.
    fn server(
        script: Vec<Vec<Option<&'static str>>>,
    ) -> (u16, std::thread::JoinHandle<Vec<Vec<String>>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answers in script {
                let (mut c, _) = listener.accept().unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut got = Vec::new();
                let mut buf = Vec::new();
                for answer in answers {
                    // One request: its head, then Content-Length bytes.
                    let mut byte = [0u8; 1];
                    while !buf.ends_with(b"\r\n\r\n") {
                        assert_eq!(c.read(&mut byte).unwrap(), 1, "the client went away");
                        buf.push(byte[0]);
                    }
                    let head = String::from_utf8(std::mem::take(&mut buf)).unwrap();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    let mut body = vec![0u8; len];
                    c.read_exact(&mut body).unwrap();
                    got.push(String::from_utf8(body).unwrap());
                    match answer {
                        Some(a) => c.write_all(a.as_bytes()).unwrap(),
                        None => break,
                    }
                }
                seen.push(got);
            }
            // No further connection comes.
            listener.set_nonblocking(true).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            assert!(listener.accept().is_err(), "an unexpected connection");
            seen
        });
        (port, handle)
    }

    fn client_tls() -> Arc<rustls::ClientConfig> {
        crate::outbound::tls::roots_config(true, "", "replies.ca_file").unwrap()
    }

    const KEEP: Option<&str> = Some("HTTP/1.1 204 No Content\r\n\r\n");
    const KEEP_BODY: Option<&str> = Some("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    const CLOSE: Option<&str> = Some("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");

    fn post_all(port: u16, bodies: &[&str]) -> Vec<Result<u16, String>> {
        let url = parse_url(&format!("http://127.0.0.1:{port}/hook")).unwrap();
        let (tls, pool) = (client_tls(), Pool::default());
        bodies
            .iter()
            .map(|b| smol::block_on(post(&url, b.as_bytes(), &[], &tls, &pool)))
            .collect()
    }

    #[test]
    fn requests_share_a_connection_while_the_server_keeps_it() {
        let (port, server) = server(vec![vec![KEEP, KEEP_BODY, CLOSE], vec![KEEP]]);
        let got = post_all(port, &["1", "2", "3", "4"]);
        assert_eq!(got, vec![Ok(204), Ok(200), Ok(204), Ok(204)]);
        assert_eq!(server.join().unwrap(), vec![vec!["1", "2", "3"], vec!["4"]]);
    }

    #[test]
    fn a_kept_connection_the_server_closed_is_not_used() {
        // The server answers, then closes the connection (as at its idle timeout).
        let (port, server) = server(vec![vec![KEEP], vec![KEEP]]);
        let url = parse_url(&format!("http://127.0.0.1:{port}/hook")).unwrap();
        let (tls, pool) = (client_tls(), Pool::default());
        assert_eq!(smol::block_on(post(&url, b"1", &[], &tls, &pool)), Ok(204));
        std::thread::sleep(CHECK_AFTER * 2);
        assert_eq!(smol::block_on(post(&url, b"2", &[], &tls, &pool)), Ok(204));
        assert_eq!(server.join().unwrap(), vec![vec!["1"], vec!["2"]]);
    }

    #[test]
    fn a_request_the_server_closes_a_kept_connection_on_goes_once_more_on_a_new_one() {
        // The server reads the second request and closes without answering: the close raced the
        // request. It goes again on a new connection (a server that did take it sees the same
        // delivery id twice).
        let (port, server) = server(vec![vec![KEEP, None], vec![KEEP]]);
        let got = post_all(port, &["1", "2"]);
        assert_eq!(got, [Ok(204), Ok(204)]);
        assert_eq!(server.join().unwrap(), vec![vec!["1", "2"], vec!["2"]]);
    }

    #[test]
    fn a_new_connection_closed_without_an_answer_is_not_retried() {
        let (port, server) = server(vec![vec![None]]);
        let got = post_all(port, &["1"]);
        assert!(
            got[0]
                .as_ref()
                .is_err_and(|e| e.contains("closed the connection")),
            "{got:?}"
        );
        assert_eq!(server.join().unwrap(), vec![vec!["1"]]);
    }
}
