//! Server replies as a client reads them: a bounded parser that takes bytes split anywhere and
//! yields whole (possibly multi-line) replies, each parsed once. No I/O here.

use super::proto::REPLY_LINE_MAX;

/// Lines one multi-line reply may have. An EHLO reply has one line per extension; real servers
/// send a dozen or two. Past this the server is misbehaving and the session ends.
pub const REPLY_LINES_MAX: usize = 128;
/// Lines longer than RFC 5321's 512 octets are seen from real servers (long 550 texts); they
/// are taken up to this length and refused past it, so memory stays bounded.
pub const REPLY_LINE_TOLERATED: usize = 4 * REPLY_LINE_MAX;

/// One whole reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    /// The text of each line, after the code and the separator.
    pub lines: Vec<String>,
}

impl ServerReply {
    /// 2xx and 3xx.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The enhanced status code (RFC 3463) at the start of the first line, when there is one.
    pub fn enhanced(&self) -> Option<&str> {
        let first = self.lines.first()?.split(' ').next()?;
        let mut parts = first.split('.');
        let class = parts.next()?;
        let ok = matches!(class, "2" | "4" | "5")
            && first.starts_with(char::from(b'0' + (self.code / 100) as u8))
            && parts.clone().count() == 2
            && parts
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then_some(first)
    }

    /// `code text text ...` on one line, for logs and error messages.
    pub fn one_line(&self) -> String {
        let text = self.lines.join(" ");
        if text.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {}", self.code, text)
        }
    }
}

/// Why the reply stream cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line that is not `ddd`, `ddd text` or `ddd-text`, or a code that changes mid-reply.
    Malformed(String),
    /// A line or a reply past the bounds above.
    TooLong,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Malformed(line) => {
                write!(f, "the server sent a malformed reply line: {line:?}")
            }
            ReplyError::TooLong => write!(
                f,
                "the server sent a reply longer than {REPLY_LINES_MAX} lines of {REPLY_LINE_TOLERATED} octets"
            ),
        }
    }
}

/// Collects bytes into lines and lines into replies.
#[derive(Default)]
pub struct ReplyParser {
    line: Vec<u8>,
    pending: Option<ServerReply>,
    broken: bool,
}

impl ReplyParser {
    /// Feeds bytes; calls `on_line` with every complete line (without CRLF, invalid UTF-8
    /// replaced: what a transcript shows) and returns every complete reply, in order. Bytes after
    /// the last complete line are kept for the next call.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut on_line: impl FnMut(&str),
    ) -> Result<Vec<ServerReply>, ReplyError> {
        let mut out = Vec::new();
        if self.broken {
            return Err(ReplyError::TooLong);
        }
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() >= REPLY_LINE_TOLERATED {
                    self.broken = true;
                    return Err(ReplyError::TooLong);
                }
                self.line.push(b);
                continue;
            }
            // A line ends at LF; a CR before it is dropped (a bare LF is tolerated from servers).
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let raw = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            on_line(&raw);
            if let Some(reply) = self.take_line(&raw)? {
                out.push(reply);
            }
        }
        Ok(out)
    }

    /// True when nothing is buffered: no partial line and no unfinished multi-line reply.
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && self.pending.is_none()
    }

    /// Drops everything buffered (after STARTTLS: what came before the handshake is not trusted).
    pub fn clear(&mut self) {
        self.line.clear();
        self.pending = None;
    }

    fn take_line(&mut self, raw: &str) -> Result<Option<ServerReply>, ReplyError> {
        let bytes = raw.as_bytes();
        let malformed = || ReplyError::Malformed(raw.chars().take(80).collect());
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return Err(malformed());
        }
        let code: u16 = raw[..3].parse().map_err(|_| malformed())?;
        if !(200..600).contains(&code) {
            return Err(malformed());
        }
        let (last, text) = match bytes.get(3) {
            None => (true, ""),
            Some(b' ') => (true, &raw[4..]),
            Some(b'-') => (false, &raw[4..]),
            Some(_) => return Err(malformed()),
        };
        let reply = self.pending.get_or_insert_with(|| ServerReply {
            code,
            lines: Vec::new(),
        });
        if reply.code != code {
            return Err(malformed());
        }
        if reply.lines.len() >= REPLY_LINES_MAX {
            self.broken = true;
            return Err(ReplyError::TooLong);
        }
        reply.lines.push(text.to_string());
        Ok(if last { self.pending.take() } else { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> (Vec<ServerReply>, Vec<String>) {
        let mut p = ReplyParser::default();
        let (mut replies, mut lines) = (Vec::new(), Vec::new());
        for c in chunks {
            replies.extend(p.feed(c, |l| lines.push(l.to_string())).unwrap());
        }
        (replies, lines)
    }

    #[test]
    fn a_multi_line_reply_split_at_every_offset_parses_once() {
        let wire = b"250-mx.example.com at your service\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250 PIPELINING\r\n220 next\r\n";
        let (whole, _) = parse_all(&[wire]);
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].code, 250);
        assert_eq!(
            whole[0].lines,
            [
                "mx.example.com at your service",
                "SIZE 35882577",
                "8BITMIME",
                "PIPELINING"
            ]
        );
        assert_eq!(whole[1].one_line(), "220 next");
        for cut in 0..wire.len() {
            let (split, lines) = parse_all(&[&wire[..cut], &wire[cut..]]);
            assert_eq!(split, whole, "cut at {cut}");
            assert_eq!(lines.len(), 5);
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(parse_all(&bytes).0, whole);
    }

    #[test]
    fn bare_code_and_enhanced_codes() {
        let (r, _) = parse_all(&[
            b"250\r\n535 5.7.8 Authentication credentials invalid\r\n550 No such user\r\n",
        ]);
        assert_eq!(r[0].lines, [""]);
        assert_eq!(r[0].one_line(), "250");
        assert_eq!(r[1].enhanced(), Some("5.7.8"));
        assert!(!r[1].is_transient() && !r[1].is_positive());
        assert_eq!(r[2].enhanced(), None);
        // The class of the enhanced code must match the reply's.
        let (r, _) = parse_all(&[b"450 5.1.1 odd\r\n"]);
        assert_eq!(r[0].enhanced(), None);
    }

    #[test]
    fn malformed_lines_and_code_changes_are_errors() {
        for bad in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"250x\r\n",
            b"199 low\r\n",
            b"250-a\r\n251 b\r\n",
        ] {
            let mut p = ReplyParser::default();
            assert!(
                matches!(p.feed(bad, |_| ()), Err(ReplyError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn memory_is_bounded() {
        let mut p = ReplyParser::default();
        let long = vec![b'a'; REPLY_LINE_TOLERATED + 1];
        assert_eq!(p.feed(&long, |_| ()), Err(ReplyError::TooLong));
        assert_eq!(p.feed(b"250 ok\r\n", |_| ()), Err(ReplyError::TooLong));
        let mut p = ReplyParser::default();
        let mut many = Vec::new();
        for _ in 0..=REPLY_LINES_MAX {
            many.extend_from_slice(b"250-x\r\n");
        }
        assert_eq!(p.feed(&many, |_| ()), Err(ReplyError::TooLong));
    }

    #[test]
    fn clear_forgets_a_partial_reply() {
        let mut p = ReplyParser::default();
        assert!(p.feed(b"250-one\r\n250 tw", |_| ()).unwrap().is_empty());
        assert!(!p.is_idle());
        p.clear();
        assert!(p.is_idle());
        let r = p.feed(b"220 fresh\r\n", |_| ()).unwrap();
        assert_eq!(r[0].lines, ["fresh"]);
    }
}
