//! What the inbound tests share: herald with inbound SMTP on, a raw SMTP client over a plain
//! socket, reply records and mail.log lines by queue id, swaks, and reply addresses.

use crate::harness::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

pub const SENDER: &str = "sender@example.org";
/// A reply-address local part's MAC is 32 lowercase hex digits.
const MAC_LEN: usize = 32;

/// Starts herald with inbound SMTP on; `inbound` is extra `[inbound]` lines. Returns the running
/// service and its SMTP port.
pub fn start(dir: &TempDir, inbound: &str) -> (Herald, u16) {
    let cfg = dir.write("herald.toml", &inbound_config(inbound));
    let mut h = Herald::start(Some(&cfg), &dir.join("data"));
    let port = h.smtp_port();
    (h, port)
}

/// One SMTP reply: its code and its lines (code and separator included).
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The last line, e.g. `250 2.0.0 Ok: queued as 1A2B`.
    pub fn last(&self) -> &str {
        self.lines.last().map_or("", String::as_str)
    }

    /// Asserts the last line starts with `prefix` (`"550 5.7.1"`).
    #[track_caller]
    pub fn expect(&self, prefix: &str) -> &Reply {
        assert!(self.last().starts_with(prefix), "wanted {prefix}: {self:?}");
        self
    }

    /// The queue id in `250 2.0.0 Ok: queued as QID`.
    #[track_caller]
    pub fn queue_id(&self) -> String {
        self.expect("250 2.0.0 Ok: queued as ");
        self.last().rsplit(' ').next().unwrap().trim().to_string()
    }
}

/// A raw SMTP client over a plain socket, with timeouts so nothing hangs.
pub struct Smtp {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Smtp {
    pub fn connect(port: u16) -> Smtp {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Smtp {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connected, greeted and EHLO'd.
    pub fn session(port: u16) -> Smtp {
        let mut c = Smtp::connect(port);
        c.reply().expect("220 herald.test ESMTP");
        c.cmd("EHLO client.example").expect("250 ");
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads one whole reply (up to the line with a space after the code); `None` at EOF.
    pub fn try_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            while let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                let code: u16 = line
                    .get(..3)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(|| panic!("not a reply line: {line:?}"));
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    return Some(Reply { code, lines });
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(
                        lines.is_empty() && self.buf.is_empty(),
                        "EOF inside a reply: {lines:?} {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no reply ({e}); so far {lines:?}"),
            }
        }
    }

    #[track_caller]
    pub fn reply(&mut self) -> Reply {
        self.try_reply().expect("a reply, not EOF")
    }

    /// Sends `line` + CRLF and reads the reply.
    #[track_caller]
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// True when the server has closed the connection (and said nothing more).
    pub fn closed(&mut self) -> bool {
        self.try_reply().is_none()
    }

    /// MAIL, RCPT, DATA, `body` (already dot-stuffed, ending in CRLF), the dot. Returns the final
    /// reply.
    #[track_caller]
    pub fn deliver(&mut self, from: &str, to: &str, body: &[u8]) -> Reply {
        self.cmd(&format!("MAIL FROM:<{from}>")).expect("250 2.1.0");
        self.cmd(&format!("RCPT TO:<{to}>")).expect("250 2.1.5");
        self.cmd("DATA").expect("354 ");
        self.send(body);
        self.send(b".\r\n");
        self.reply()
    }

    #[track_caller]
    pub fn quit(mut self) {
        self.cmd("QUIT").expect("221 2.0.0");
        assert!(self.closed(), "closed after QUIT");
    }
}

/// A small message with a Message-ID, as sent on the wire.
pub fn message(id: &str) -> Vec<u8> {
    format!(
        "From: <{SENDER}>\r\nSubject: test {id}\r\nMessage-ID: <{id}@client.example>\r\n\r\nHello {id}\r\n"
    )
    .into_bytes()
}

/// The records of one queue id (`QID-1`, `QID-2`, ...).
pub fn records_of<'a>(replies: &'a [serde_json::Value], qid: &str) -> Vec<&'a serde_json::Value> {
    let prefix = format!("{qid}-");
    replies
        .iter()
        .filter(|r| r["id"].as_str().unwrap().starts_with(&prefix))
        .collect()
}

/// The one record of a one-recipient message.
#[track_caller]
pub fn record<'a>(replies: &'a [serde_json::Value], qid: &str) -> &'a serde_json::Value {
    let recs = records_of(replies, qid);
    assert_eq!(recs.len(), 1, "records of {qid}: {replies:#?}");
    recs[0]
}

/// The mail.log lines of one queue id.
pub fn log_lines_of<'a>(log: &'a str, qid: &str) -> Vec<&'a str> {
    let needle = format!(": {qid}: ");
    log.lines().filter(|l| l.contains(&needle)).collect()
}

/// Runs swaks against the inbound port with `args` added.
pub fn swaks(port: u16, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &format!("127.0.0.1:{port}")])
        .args([
            "--from",
            SENDER,
            "--helo",
            "client.example",
            "--timeout",
            "20",
        ])
        .args(args);
    run_with_deadline(cmd)
}

/// The reply address with one hex digit of its MAC changed.
pub fn forged(addr: &str) -> String {
    let (local, domain) = addr.split_once('@').unwrap();
    // reply+i-42-<mac>-7: the MAC is the third `-` field.
    let parts: Vec<&str> = local.split('-').collect();
    assert_eq!(parts[2].len(), MAC_LEN, "{addr}");
    let mut mac: Vec<u8> = parts[2].bytes().collect();
    mac[0] = if mac[0] == b'0' { b'1' } else { b'0' };
    let mac = String::from_utf8(mac).unwrap();
    format!("{}-{}-{mac}-{}@{domain}", parts[0], parts[1], parts[3])
}
