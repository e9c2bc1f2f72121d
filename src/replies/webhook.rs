//! Webhook delivery: the signature (`X-Herald-Signature: sha256=<hex HMAC-SHA256 of the body>`),
//! the HTTP/1.1 request and the status line of the answer (pure), and a small smol adapter that
//! POSTs over plain TCP or rustls and reads the status. One request per connection: a webhook is
//! a handful of requests a second, not a stream.

use crate::crypto;
use ring::hmac;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// The whole exchange (connect, send, answer) may take this long.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of the answer read at most: the status line and headers are all we need.
const ANSWER_MAX: usize = 16 * 1024;

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
        "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: herald/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
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

/// POSTs `body` to `url`; the answer's status code, or what went wrong.
pub async fn post(
    url: &Url,
    body: &[u8],
    headers: &[(&str, &str)],
    tls: &Arc<rustls::ClientConfig>,
) -> Result<u16, String> {
    let exchange = async {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", url.host, url.port))?;
        let _ = tcp.set_nodelay(true);
        let bytes = request(url, body, headers);
        if url.tls {
            let name = crate::outbound::tls::server_name(&url.host)?;
            let connector = futures_rustls::TlsConnector::from(tls.clone());
            let mut s = connector
                .connect(name, tcp)
                .await
                .map_err(|e| crate::outbound::tls::explain(&e, &url.host))?;
            exchange(&mut s, &bytes).await
        } else {
            let mut s = tcp;
            exchange(&mut s, &bytes).await
        }
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

async fn exchange<S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin>(
    s: &mut S,
    bytes: &[u8],
) -> Result<u16, String> {
    s.write_all(bytes)
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    s.flush()
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        if let Some(code) = status(&answer) {
            return Ok(code);
        }
        if answer.len() >= ANSWER_MAX {
            return Err("the answer is not HTTP".into());
        }
        let n = s
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            return Err(if answer.is_empty() {
                "the server closed the connection without answering".into()
            } else {
                "the answer is not HTTP".into()
            });
        }
        answer.extend_from_slice(&buf[..n]);
    }
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
    }
}
