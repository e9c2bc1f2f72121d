//! Inbound SMTP (SPEC §4, §5): real clients (swaks, Python's smtplib, `openssl s_client`,
//! Postfix's smtp-source) deliver to reply addresses; pflogsumm reads mail.log; raw sockets try
//! the hostile cases (smuggling, bare LF, overlong lines, STARTTLS injection, routing tricks,
//! limits); SIGKILL loses no acknowledged message; SIGTERM says 421 and exits 0.

use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SENDER: &str = "sender@example.org";
/// A reply-address local part's MAC is 32 lowercase hex digits.
const MAC_LEN: usize = 32;

/// Starts herald with inbound SMTP on; `inbound` is extra `[inbound]` lines. Returns the running
/// service and its SMTP port.
fn start(dir: &TempDir, inbound: &str) -> (Herald, u16) {
    let cfg = dir.write("herald.toml", &inbound_config(inbound));
    let mut h = Herald::start(Some(&cfg), &dir.join("data"));
    let port = h.smtp_port();
    (h, port)
}

/// One SMTP reply: its code and its lines (code and separator included).
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// The last line, e.g. `250 2.0.0 Ok: queued as 1A2B`.
    fn last(&self) -> &str {
        self.lines.last().map_or("", String::as_str)
    }

    /// Asserts the last line starts with `prefix` (`"550 5.7.1"`).
    #[track_caller]
    fn expect(&self, prefix: &str) -> &Reply {
        assert!(self.last().starts_with(prefix), "wanted {prefix}: {self:?}");
        self
    }

    /// The queue id in `250 2.0.0 Ok: queued as QID`.
    #[track_caller]
    fn queue_id(&self) -> String {
        self.expect("250 2.0.0 Ok: queued as ");
        self.last().rsplit(' ').next().unwrap().trim().to_string()
    }
}

/// A raw SMTP client over a plain socket, with timeouts so nothing hangs.
struct Smtp {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Smtp {
    fn connect(port: u16) -> Smtp {
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
    fn session(port: u16) -> Smtp {
        let mut c = Smtp::connect(port);
        c.reply().expect("220 herald.test ESMTP");
        c.cmd("EHLO client.example").expect("250 ");
        c
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads one whole reply (up to the line with a space after the code); `None` at EOF.
    fn try_reply(&mut self) -> Option<Reply> {
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
    fn reply(&mut self) -> Reply {
        self.try_reply().expect("a reply, not EOF")
    }

    /// Sends `line` + CRLF and reads the reply.
    #[track_caller]
    fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// True when the server has closed the connection (and said nothing more).
    fn closed(&mut self) -> bool {
        self.try_reply().is_none()
    }

    /// MAIL, RCPT, DATA, `body` (already dot-stuffed, ending in CRLF), the dot. Returns the final
    /// reply.
    #[track_caller]
    fn deliver(&mut self, from: &str, to: &str, body: &[u8]) -> Reply {
        self.cmd(&format!("MAIL FROM:<{from}>")).expect("250 2.1.0");
        self.cmd(&format!("RCPT TO:<{to}>")).expect("250 2.1.5");
        self.cmd("DATA").expect("354 ");
        self.send(body);
        self.send(b".\r\n");
        self.reply()
    }

    #[track_caller]
    fn quit(mut self) {
        self.cmd("QUIT").expect("221 2.0.0");
        assert!(self.closed(), "closed after QUIT");
    }
}

/// A small message with a Message-ID, as sent on the wire.
fn message(id: &str) -> Vec<u8> {
    format!(
        "From: <{SENDER}>\r\nSubject: test {id}\r\nMessage-ID: <{id}@client.example>\r\n\r\nHello {id}\r\n"
    )
    .into_bytes()
}

/// The records of one queue id (`QID-1`, `QID-2`, ...).
fn records_of<'a>(replies: &'a [serde_json::Value], qid: &str) -> Vec<&'a serde_json::Value> {
    let prefix = format!("{qid}-");
    replies
        .iter()
        .filter(|r| r["id"].as_str().unwrap().starts_with(&prefix))
        .collect()
}

/// The one record of a one-recipient message.
#[track_caller]
fn record<'a>(replies: &'a [serde_json::Value], qid: &str) -> &'a serde_json::Value {
    let recs = records_of(replies, qid);
    assert_eq!(recs.len(), 1, "records of {qid}: {replies:#?}");
    recs[0]
}

/// The mail.log lines of one queue id.
fn log_lines_of<'a>(log: &'a str, qid: &str) -> Vec<&'a str> {
    let needle = format!(": {qid}: ");
    log.lines().filter(|l| l.contains(&needle)).collect()
}

/// Queue ids of accepted messages in mail.log, with how many `status=sent` lines each has.
fn sent_per_queue_id(log: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        if let Some((_, rest)) = line.split_once("]: ")
            && let Some((qid, what)) = rest.split_once(": ")
            && qid != "NOQUEUE"
            && what.contains("status=sent")
        {
            *out.entry(qid.to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// Runs swaks against the inbound port with `args` added.
fn swaks(port: u16, args: &[&str]) -> std::process::Output {
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
fn forged(addr: &str) -> String {
    let (local, domain) = addr.split_once('@').unwrap();
    // reply+i-42-<mac>-7: the MAC is the third `-` field.
    let parts: Vec<&str> = local.split('-').collect();
    assert_eq!(parts[2].len(), MAC_LEN, "{addr}");
    let mut mac: Vec<u8> = parts[2].bytes().collect();
    mac[0] = if mac[0] == b'0' { b'1' } else { b'0' };
    let mac = String::from_utf8(mac).unwrap();
    format!("{}-{}-{mac}-{}@{domain}", parts[0], parts[1], parts[3])
}

// ---------------------------------------------------------------------------------------------
// swaks

#[test]
fn swaks_delivers_to_a_reply_address_plain_with_starttls_and_pipelined() {
    let dir = TempDir::new("in-swaks");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 42, 7);

    let mut queued = Vec::new();
    for (mode, extra) in [
        ("plain", None),
        ("tls", Some("--tls")),
        ("pipeline", Some("--pipeline")),
    ] {
        let mid = format!("Message-Id: <swaks-{mode}@client.example>");
        let mut args = vec!["--to", to.as_str(), "--header", mid.as_str()];
        args.extend(extra);
        let o = swaks(port, &args);
        let out = stdout(&o);
        assert!(o.status.success(), "swaks {mode}: {}\n{out}", stderr(&o));
        let line = out
            .lines()
            .find(|l| l.contains("250 2.0.0 Ok: queued as "))
            .unwrap_or_else(|| panic!("swaks {mode}: no queue id:\n{out}"));
        let qid = line.rsplit(' ').next().unwrap().to_string();
        if mode == "tls" {
            assert!(out.contains("220 2.0.0 Ready to start TLS"), "{out}");
            assert!(out.contains("=== TLS started"), "{out}");
        }
        queued.push((mode, qid));
    }

    let replies = h.replies();
    assert_eq!(replies.len(), 3, "{replies:#?}");
    for (mode, qid) in &queued {
        let r = record(&replies, qid);
        assert_eq!(r["id"], format!("{qid}-1"));
        assert_eq!(r["status"], "pending", "{r}");
        assert_eq!(r["from"], SENDER);
        assert_eq!(r["to"], to.as_str());
        assert_eq!(r["tls"], *mode == "tls", "{mode}: {r}");
        assert_eq!(r["message_id"], format!("<swaks-{mode}@client.example>"));
    }
    let log = h.mail_log();
    for (_, qid) in &queued {
        let lines = log_lines_of(&log, qid);
        assert_eq!(lines.len(), 5, "{qid}:\n{log}");
        assert!(
            lines[0].contains(&format!(
                "herald/smtpd[{}]: {qid}: client=unknown[127.0.0.1]",
                h.pid()
            )),
            "{log}"
        );
        assert!(
            lines[1].contains("herald/cleanup[") && lines[1].contains("message-id=<swaks-"),
            "{log}"
        );
        assert!(
            lines[2].contains(&format!("from=<{SENDER}>, size="))
                && lines[2].ends_with("nrcpt=1 (queue active)"),
            "{log}"
        );
        assert!(lines[3].contains(&format!("herald/spool[{}]: {qid}: to=<{to}>, relay=spool, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (queued for reply processing)", h.pid())), "{log}");
        assert!(lines[4].ends_with(&format!("{qid}: removed")), "{log}");
    }
    assert_eq!(
        log.matches("connect from unknown[127.0.0.1]").count(),
        6,
        "3 connects, 3 disconnects:\n{log}"
    );
    assert!(log.contains("disconnect from unknown[127.0.0.1] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7"), "{log}");
    h.stop();
}

#[test]
fn swaks_noreply_is_accepted_and_everything_else_refused() {
    let dir = TempDir::new("in-swaks-policy");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("pull_request", 9, 3);

    // The no-reply addresses: accepted (and discarded later).
    let o = swaks(
        port,
        &["--to", "reason@noreply.herald.test,noreply@herald.test"],
    );
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("250 2.0.0 Ok: queued as "),
        "{}",
        stdout(&o)
    );
    // Reply addresses match case-insensitively.
    let o = swaks(port, &["--to", &to.to_uppercase()]);
    assert!(o.status.success(), "upper case: {}", stdout(&o));

    // Never a relay; a forged token is an unknown user, so the sender's server bounces.
    let (local, _) = to.split_once('@').unwrap();
    let refused = [
        ("victim@example.com".to_string(), "550 5.7.1"),
        (format!("{local}@herald.test"), "550 5.7.1"),
        (format!("{local}@example.com"), "550 5.7.1"),
        ("postmaster@reply.herald.test".to_string(), "550 5.1.1"),
        (forged(&to), "550 5.1.1"),
        (to.replace("-3@", "-4@"), "550 5.1.1"),
        (to.replace("reply+p-9-", "reply+p-8-"), "550 5.1.1"),
        (to.replace("reply+p-", "reply+i-"), "550 5.1.1"),
    ];
    for (rcpt, want) in &refused {
        let o = swaks(port, &["--to", rcpt]);
        let out = stdout(&o);
        assert_eq!(
            o.status.code(),
            Some(24),
            "swaks exits 24 on a refused RCPT: {rcpt}\n{out}"
        );
        assert!(
            out.contains(&format!("<** {want} <")),
            "{rcpt}: wanted {want}:\n{out}"
        );
    }

    let replies = h.replies();
    assert_eq!(
        replies.len(),
        3,
        "two no-reply recipients and one reply: {replies:#?}"
    );
    let tos: BTreeSet<String> = replies
        .iter()
        .map(|r| r["to"].as_str().unwrap().to_string())
        .collect();
    assert!(
        tos.contains("reason@noreply.herald.test") && tos.contains("noreply@herald.test"),
        "{tos:?}"
    );

    let log = h.mail_log();
    assert_eq!(
        log.matches("status=sent (discarded: no-reply address)")
            .count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("status=sent (queued for reply processing)")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains(&format!(
        "herald/smtpd[{}]: NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 550 5.7.1 <victim@example.com>: Relay access denied; from=<{SENDER}> to=<victim@example.com> proto=ESMTP helo=<client.example>",
        h.pid()
    )), "{log}");
    assert_eq!(
        log.matches("NOQUEUE: reject: RCPT from").count(),
        refused.len(),
        "{log}"
    );
    assert_eq!(log.matches(": 550 5.1.1 <").count(), 5, "{log}");
    h.stop();
}

#[test]
fn swaks_with_tls_enforced_needs_starttls_before_mail() {
    let dir = TempDir::new("in-swaks-enforced");
    let (h, port) = start(&dir, "tls_enforced = true");
    let to = h.reply_address("discussion", 5, 6);

    let o = swaks(port, &["--to", &to]);
    let out = stdout(&o);
    assert!(!o.status.success(), "plain MAIL must fail:\n{out}");
    assert!(
        out.contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{out}"
    );

    let o = swaks(port, &["--to", &to, "--tls"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let qid = out
        .lines()
        .find_map(|l| l.split("250 2.0.0 Ok: queued as ").nth(1))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_string();
    let replies = h.replies();
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert_eq!(record(&replies, &qid)["tls"], true);

    // RCPT, DATA and RSET are refused too before TLS; STARTTLS is still offered.
    let mut c = Smtp::session(port);
    c.cmd(&format!("RCPT TO:<{to}>")).expect("530 5.7.0");
    c.cmd("DATA").expect("530 5.7.0");
    c.cmd("RSET").expect("530 5.7.0");
    c.cmd("NOOP").expect("250 2.0.0");
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.lines.iter().any(|l| l == "250-STARTTLS"), "{ehlo:?}");
    c.quit();
    h.stop();
}

// ---------------------------------------------------------------------------------------------
// Python's smtplib

const SMTPLIB: &str = r#"
import smtplib, ssl, sys, json
port, rcpt = int(sys.argv[1]), sys.argv[2]
out = {}
def msg(tag):
    return ("From: <sender@example.org>\r\nTo: <%s>\r\nSubject: smtplib %s\r\n"
            "Message-ID: <smtplib-%s@client.example>\r\n\r\nHello from smtplib\r\n") % (rcpt, tag, tag)
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=20) as s:
    out["plain_refused"] = s.sendmail("sender@example.org", [rcpt], msg("plain"))
    out["plain_starttls_offered"] = s.has_extn("starttls")
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the appliance's certificate is self-signed
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=20) as s:
    s.ehlo()
    code, _ = s.starttls(context=ctx)
    out["starttls"] = code
    s.ehlo()
    out["tls_starttls_offered"] = s.has_extn("starttls")
    out["tls_size"] = s.esmtp_features.get("size")
    # One good and one refused recipient: delivered to the good one only.
    refused = s.sendmail("sender@example.org", [rcpt, "victim@example.com"], msg("tls"))
    out["tls_refused"] = {k: [v[0], v[1].decode()] for k, v in refused.items()}
    # Low level, to see the queue id.
    s.mail("sender@example.org")
    s.rcpt(rcpt)
    code, resp = s.data(msg("data"))
    out["data"] = [code, resp.decode()]
    try:
        s.sendmail("sender@example.org", ["victim@example.com"], msg("none"))
        out["all_refused"] = "accepted"
    except smtplib.SMTPRecipientsRefused as e:
        out["all_refused"] = {k: v[0] for k, v in e.recipients.items()}
print(json.dumps(out))
"#;

#[test]
fn python_smtplib_sends_plain_and_after_starttls() {
    let dir = TempDir::new("in-smtplib");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("commit", 77, 1);
    let mut cmd = Command::new("python3");
    cmd.args(["-c", SMTPLIB, &port.to_string(), &to]);
    let o = run_with_deadline(cmd);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(out["plain_refused"], serde_json::json!({}), "{out}");
    assert_eq!(out["plain_starttls_offered"], true);
    assert_eq!(out["starttls"], 220);
    assert_eq!(
        out["tls_starttls_offered"], false,
        "no STARTTLS once TLS is on"
    );
    assert_eq!(out["tls_size"], "26214400");
    assert_eq!(out["tls_refused"]["victim@example.com"][0], 550, "{out}");
    assert!(
        out["tls_refused"]["victim@example.com"][1]
            .as_str()
            .unwrap()
            .starts_with("5.7.1"),
        "{out}"
    );
    assert_eq!(out["all_refused"]["victim@example.com"], 550, "{out}");
    assert_eq!(out["data"][0], 250, "{out}");
    let qid = out["data"][1]
        .as_str()
        .unwrap()
        .strip_prefix("2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();

    let replies = h.replies();
    assert_eq!(replies.len(), 3, "{replies:#?}");
    let by_mid: BTreeMap<String, &serde_json::Value> = replies
        .iter()
        .map(|r| (r["message_id"].as_str().unwrap().to_string(), r))
        .collect();
    for (tag, tls) in [("plain", false), ("tls", true), ("data", true)] {
        let r = by_mid
            .get(&format!("<smtplib-{tag}@client.example>"))
            .unwrap_or_else(|| panic!("{tag} missing: {replies:#?}"));
        assert_eq!(r["tls"], tls, "{tag}: {r}");
        assert_eq!(r["to"], to.as_str());
        assert_eq!(r["from"], SENDER);
        assert_eq!(r["status"], "pending");
    }
    assert_eq!(
        record(&replies, &qid)["message_id"],
        "<smtplib-data@client.example>"
    );
    h.stop();
}

// ---------------------------------------------------------------------------------------------
// openssl s_client

#[test]
fn openssl_s_client_delivers_over_starttls_and_the_certificate_names_the_reply_domain() {
    let dir = TempDir::new("in-openssl");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 1, 2);
    let script = format!(
        "EHLO client.example\nMAIL FROM:<{SENDER}>\nRCPT TO:<{to}>\nDATA\nMessage-ID: <s_client@client.example>\nSubject: over TLS\n\nHello over TLS\n.\nQUIT\n"
    );
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-starttls", "smtp", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-servername",
            "herald.test",
            "-crlf",
            "-ign_eof",
            "-nocommands",
            "-showcerts",
        ]);
    let o = run_with_input(cmd, script.as_bytes());
    let out = stdout(&o);
    assert!(out.contains("250 2.1.0 Ok"), "{out}\n{}", stderr(&o));
    assert!(out.contains("250 2.1.5 Ok"), "{out}");
    assert!(out.contains("354 End data with <CR><LF>.<CR><LF>"), "{out}");
    assert!(out.contains("221 2.0.0 Bye"), "{out}");
    // After TLS the EHLO reply no longer offers STARTTLS.
    assert!(
        !out.contains("250-STARTTLS") && !out.contains("250 STARTTLS"),
        "{out}"
    );
    let qid = out
        .lines()
        .find_map(|l| l.strip_prefix("250 2.0.0 Ok: queued as "))
        .unwrap_or_else(|| panic!("no queue id:\n{out}"))
        .trim()
        .to_string();
    let replies = h.replies();
    let r = record(&replies, &qid);
    assert_eq!(r["tls"], true, "{r}");
    assert_eq!(r["message_id"], "<s_client@client.example>");

    // The certificate offered on port 25 names the reply domain.
    let begin = out
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = out.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    let pem = dir.write("smtp.pem", &format!("{}\n", &out[begin..end]));
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&pem);
    let o = run_with_deadline(cmd);
    let san = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(san.contains("DNS:reply.herald.test"), "{san}");
    assert!(san.contains("DNS:herald.test"), "{san}");
    h.stop();
}

/// After QUIT on a TLS session: a clean TLS close (close_notify), not a bare TCP close.
const TLS_QUIT: &str = r#"
import socket, ssl, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if line[3:4] != b"-":
            return line
reply()
s.sendall(b"EHLO client.example\r\n"); reply()
s.sendall(b"STARTTLS\r\n"); reply()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, server_hostname="herald.test", suppress_ragged_eofs=False)
t.sendall(b"QUIT\r\n")
print(t.recv(1000).decode().strip())
try:
    rest = t.recv(1000)
    print("clean close" if rest == b"" else "more: %r" % rest)
except ssl.SSLError as e:
    print("no close_notify: %s" % e)
"#;

#[test]
fn a_tls_session_ends_with_close_notify() {
    let dir = TempDir::new("in-close-notify");
    let (h, port) = start(&dir, "");
    let mut cmd = Command::new("python3");
    cmd.args(["-c", TLS_QUIT, &port.to_string()]);
    let o = run_with_deadline(cmd);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("221 2.0.0 Bye"), "{out}");
    assert!(out.contains("clean close"), "{out}");
    h.stop();
}

// ---------------------------------------------------------------------------------------------
// DATA admission

/// Clients that hold every place between 354 and final reply (they send DATA and then nothing)
/// make a new DATA wait for its 354, never refuse it: swaks gets through after the bounded wait,
/// and the stalled clients' messages are stored when they finish; a message's place is let go
/// for a transaction pipelined behind its dot.
#[test]
fn stalled_clients_holding_every_data_place_slow_a_message_down_but_never_stop_it() {
    let dir = TempDir::new("in-admission");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 42, 7);
    let mut stalled: Vec<Smtp> = (0..herald::net::smtp::MESSAGES_IN_FLIGHT)
        .map(|_| {
            let mut c = Smtp::session(port);
            c.cmd("MAIL FROM:<stalled@example.org>").expect("250 2.1.0");
            c.cmd(&format!("RCPT TO:<{to}>")).expect("250 2.1.5");
            c.cmd("DATA").expect("354 ");
            c
        })
        .collect();

    let started = Instant::now();
    let o = swaks(
        port,
        &[
            "--to",
            &to,
            "--header",
            "Message-Id: <admitted-late@client.example>",
        ],
    );
    let out = stdout(&o);
    assert!(o.status.success(), "swaks: {}\n{out}", stderr(&o));
    assert!(out.contains("354 End data with"), "{out}");
    assert!(out.contains("250 2.0.0 Ok: queued as "), "{out}");
    assert!(
        started.elapsed() >= herald::net::smtp::ADMISSION_WAIT,
        "swaks's DATA waited for a place ({:?})",
        started.elapsed()
    );

    // Every place is still held. The first stalled client finishes and pipelines a second
    // transaction behind its dot: the place of the first message is let go for the second, which
    // gets its 354 without waiting for one.
    let first = &mut stalled[0];
    let started = Instant::now();
    first.send(
        format!(
            "Subject: stalled 0\r\n\r\nlate\r\n.\r\nMAIL FROM:<again@example.org>\r\nRCPT TO:<{to}>\r\nDATA\r\n"
        )
        .as_bytes(),
    );
    first.reply().queue_id();
    first.reply().expect("250 2.1.0");
    first.reply().expect("250 2.1.5");
    first.reply().expect("354 ");
    assert!(
        started.elapsed() < herald::net::smtp::ADMISSION_WAIT,
        "the second DATA did not wait for a place ({:?})",
        started.elapsed()
    );
    first.send(b"Subject: again\r\n\r\nsecond\r\n.\r\n");
    first.reply().queue_id();
    for (i, c) in stalled.iter_mut().enumerate().skip(1) {
        c.send(format!("Subject: stalled {i}\r\n\r\nlate\r\n.\r\n").as_bytes());
        c.reply().queue_id();
    }
    for c in &mut stalled {
        c.cmd("QUIT").expect("221");
    }
    let replies = h.replies();
    assert_eq!(
        replies.len(),
        herald::net::smtp::MESSAGES_IN_FLIGHT + 2,
        "every message stored once: {replies:#?}"
    );
    h.stop();
}

/// SIGTERM while a DATA waits for a place: that client is told 421 4.3.2 at once (it has not
/// been told 354); the clients already in DATA finish their messages, then get 421 too.
#[test]
fn sigterm_while_data_waits_for_a_place_says_421_and_the_admitted_finish() {
    let dir = TempDir::new("in-admission-term");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 42, 7);
    let open = |c: &mut Smtp| {
        c.cmd("MAIL FROM:<stalled@example.org>").expect("250 2.1.0");
        c.cmd(&format!("RCPT TO:<{to}>")).expect("250 2.1.5");
    };
    let mut admitted: Vec<Smtp> = (0..herald::net::smtp::MESSAGES_IN_FLIGHT)
        .map(|_| {
            let mut c = Smtp::session(port);
            open(&mut c);
            c.cmd("DATA").expect("354 ");
            c
        })
        .collect();
    let mut waiting = Smtp::session(port);
    open(&mut waiting);
    waiting.send(b"DATA\r\n");
    h.send_signal("TERM");
    waiting.reply().expect("421 4.3.2");
    assert!(waiting.try_reply().is_none(), "closed after the 421");
    for c in &mut admitted {
        c.send(b"Subject: finishing\r\n\r\nlate\r\n.\r\n");
        c.reply().queue_id();
        c.reply().expect("421 4.3.2");
    }
    assert!(h.wait_exit("TERM").success());
}

// ---------------------------------------------------------------------------------------------
// smtp-source

#[test]
fn smtp_source_many_sessions_store_and_log_every_message_exactly_once() {
    let dir = TempDir::new("in-smtp-source");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 1000, 2000);
    let server = format!("127.0.0.1:{port}");
    // 500 messages over 20 parallel sessions, one connection each; then 100 over 5 connections
    // that stay open (-d), so one session carries many transactions.
    for args in [
        &["-s", "20", "-m", "500", "-l", "2000"][..],
        &["-s", "5", "-m", "100", "-l", "100", "-d"],
    ] {
        let mut cmd = Command::new(tool("smtp-source"));
        cmd.args(args)
            .args(["-M", "client.example", "-f", SENDER, "-t", &to])
            .arg(&server);
        let o = run_with_deadline(cmd);
        assert!(
            o.status.success(),
            "smtp-source {args:?}: {}\n{}",
            stdout(&o),
            stderr(&o)
        );
    }

    let replies = h.replies();
    assert_eq!(replies.len(), 600, "one record per message");
    let ids: BTreeSet<&str> = replies.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 600, "distinct records");
    assert!(
        replies
            .iter()
            .all(|r| r["to"] == to.as_str() && r["from"] == SENDER && r["status"] == "pending")
    );
    let record_qids: BTreeSet<String> = ids
        .iter()
        .map(|id| {
            id.strip_suffix("-1")
                .unwrap_or_else(|| panic!("one recipient: {id}"))
                .to_string()
        })
        .collect();

    let log = h.mail_log();
    let sent = sent_per_queue_id(&log);
    assert_eq!(sent.len(), 600, "distinct queue ids in mail.log");
    assert!(
        sent.values().all(|&n| n == 1),
        "exactly one status=sent per message"
    );
    let log_qids: BTreeSet<String> = sent.keys().cloned().collect();
    assert_eq!(log_qids, record_qids, "mail.log and the spool agree");
    for qid in &log_qids {
        let lines = log_lines_of(&log, qid);
        assert_eq!(lines.len(), 5, "{qid}: {lines:#?}");
        assert_eq!(lines.iter().filter(|l| l.ends_with(": removed")).count(), 1);
    }
    assert_eq!(
        log.matches(" connect from unknown[127.0.0.1]").count(),
        505,
        "connections"
    );
    assert_eq!(
        log.matches(" disconnect from unknown[127.0.0.1]").count(),
        505,
        "disconnects"
    );
    assert!(!log.contains("lost connection"), "{log}");
    h.stop();
}

// ---------------------------------------------------------------------------------------------
// pflogsumm

/// The numbers of pflogsumm's "Grand Totals" section: `received` → 3, ...
fn pflogsumm_totals(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let section = text
        .split("Grand Totals")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    for line in section.lines().take_while(|l| !l.starts_with("Per-")) {
        let mut words = line.split_whitespace();
        if let (Some(n), Some(what)) = (words.next(), words.next())
            && let Ok(n) = n.parse::<u64>()
        {
            let rest: Vec<&str> = words.collect();
            let key = if what == "bytes" {
                format!("bytes {}", rest.first().unwrap_or(&""))
            } else {
                what.to_string()
            };
            out.entry(key).or_insert(n);
        }
    }
    out
}

#[test]
fn pflogsumm_reads_mail_log_received_delivered_rejected() {
    let dir = TempDir::new("in-pflogsumm");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 3, 4);
    let (accepted, rejected) = (4, 3);
    let mut bytes = 0;
    let mut c = Smtp::session(port);
    for i in 0..accepted {
        let m = message(&format!("pflog-{i}"));
        bytes += m.len();
        c.deliver(SENDER, &to, &m).queue_id();
    }
    for rcpt in ["victim@example.com", "other@example.net", &forged(&to)] {
        c.cmd(&format!("MAIL FROM:<{SENDER}>")).expect("250");
        c.cmd(&format!("RCPT TO:<{rcpt}>")).expect("550 5.");
        c.cmd("RSET").expect("250");
    }
    c.quit();

    let log_path = dir.join("data/logs/mail.log");
    let mut cmd = Command::new(tool("pflogsumm"));
    cmd.args(["--syslog-name=herald", "--smtpd-stats"])
        .arg(&log_path);
    let o = run_with_deadline(cmd);
    let text = stdout(&o);
    assert!(o.status.success(), "{}\n{text}", stderr(&o));
    let totals = pflogsumm_totals(&text);
    assert_eq!(
        totals.get("received"),
        Some(&accepted),
        "{totals:?}\n{text}"
    );
    assert_eq!(
        totals.get("delivered"),
        Some(&accepted),
        "{totals:?}\n{text}"
    );
    assert_eq!(
        totals.get("rejected"),
        Some(&rejected),
        "{totals:?}\n{text}"
    );
    assert_eq!(
        totals.get("bytes received"),
        Some(&(bytes as u64)),
        "{totals:?}\n{text}"
    );
    assert_eq!(totals.get("deferred"), Some(&0), "{totals:?}");
    assert_eq!(totals.get("bounced"), Some(&0), "{totals:?}");
    assert!(
        text.contains("reply.herald.test"),
        "delivered to the reply domain:\n{text}"
    );
    assert!(
        text.contains("Relay access denied"),
        "reject detail:\n{text}"
    );
    h.stop();
}

// ---------------------------------------------------------------------------------------------
// Raw sockets: hostile clients

/// What a correct server stores for DATA `wire` (ending in CRLF, before the final `.CRLF`):
/// a leading dot of each CRLF-delimited line is removed (RFC 5321 §4.5.2); nothing else ends a
/// line.
fn unstuffed(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at_line_start = true;
    let mut i = 0;
    while i < wire.len() {
        if at_line_start && wire[i] == b'.' {
            i += 1;
            at_line_start = false;
            continue;
        }
        at_line_start = wire[i] == b'\n' && i > 0 && wire[i - 1] == b'\r';
        out.push(wire[i]);
        i += 1;
    }
    out
}

#[test]
fn smtp_smuggling_stays_inside_one_message() {
    let dir = TempDir::new("in-smuggling");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 8, 9);
    let variants: [&[u8]; 7] = [
        b"\n.\n",
        b"\r\n.\n",
        b"\n.\r\n",
        b"\r.\r",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\r\n\x00.\r\n",
    ];
    let mut sizes = BTreeMap::new();
    for (i, sep) in variants.iter().enumerate() {
        let mut body = format!(
            "From: <{SENDER}>\r\nMessage-ID: <smuggle-{i}@client.example>\r\nSubject: smuggling {i}\r\n\r\nouter {i}"
        )
        .into_bytes();
        body.extend_from_slice(sep);
        body.extend_from_slice(
            format!(
                "MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<{to}>\r\nDATA\r\nFrom: <smuggled@evil.example>\r\nSubject: smuggled\r\n\r\nSMUGGLED-{i}\r\n"
            )
            .as_bytes(),
        );
        let mut c = Smtp::session(port);
        c.cmd("MAIL FROM:<outer@example.org>").expect("250 2.1.0");
        c.cmd(&format!("RCPT TO:<{to}>")).expect("250 2.1.5");
        c.cmd("DATA").expect("354");
        // Everything in one write, as a pipelining relay would pass it on.
        let mut wire = body.clone();
        wire.extend_from_slice(b".\r\nQUIT\r\n");
        c.send(&wire);
        let qid = c.reply().queue_id();
        // The next reply is QUIT's: no replies to smuggled MAIL/RCPT/DATA.
        c.reply().expect("221 2.0.0");
        assert!(c.closed());
        sizes.insert(qid, (i, unstuffed(&body).len()));
    }

    let replies = h.replies();
    assert_eq!(
        replies.len(),
        variants.len(),
        "one message per session: {replies:#?}"
    );
    let log = h.mail_log();
    assert!(
        !log.contains("smuggled@evil.example"),
        "a smuggled envelope:\n{log}"
    );
    for (qid, (i, size)) in &sizes {
        let r = record(&replies, qid);
        assert_eq!(r["from"], "outer@example.org", "{r}");
        assert_eq!(r["message_id"], format!("<smuggle-{i}@client.example>"));
        // The stored message is the whole body, smuggled text included.
        let qmgr = log_lines_of(&log, qid)
            .into_iter()
            .find(|l| l.contains("herald/qmgr") && l.contains("size="))
            .unwrap_or_else(|| panic!("{qid}:\n{log}"));
        assert!(
            qmgr.contains(&format!("from=<outer@example.org>, size={size}, nrcpt=1")),
            "variant {i} {:?}: {qmgr}",
            String::from_utf8_lossy(variants[*i])
        );
    }
    h.stop();
}

#[test]
fn a_command_ending_in_a_bare_lf_is_refused() {
    let dir = TempDir::new("in-bare-lf");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 1, 1);
    let mut c = Smtp::connect(port);
    c.reply().expect("220");
    c.send(b"EHLO client.example\n");
    c.reply().expect("500 5.5.2");
    c.cmd("EHLO client.example").expect("250");
    c.send(format!("MAIL FROM:<{SENDER}>\n").as_bytes());
    c.reply().expect("500 5.5.2");
    // That MAIL did not count.
    c.cmd(&format!("RCPT TO:<{to}>")).expect("503 5.5.1");
    // A bare LF inside a pipelined group only spoils its own line.
    c.send(format!("MAIL FROM:<{SENDER}>\r\nRCPT TO:<{to}>\nNOOP\r\n").as_bytes());
    c.reply().expect("250 2.1.0");
    c.reply().expect("500 5.5.2");
    c.reply().expect("250 2.0.0");
    c.quit();
    assert!(h.replies().is_empty());
    h.stop();
}

#[test]
fn an_overlong_command_line_is_refused_once_and_the_session_goes_on() {
    let dir = TempDir::new("in-overlong");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 1, 1);
    let mut c = Smtp::session(port);
    let mut line = b"NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'A', 100 * 1024));
    line.extend_from_slice(b"\r\n");
    // An overlong MAIL too: it must not be half-taken.
    line.extend_from_slice(
        format!("MAIL FROM:<{}@example.org>\r\n", "a".repeat(100 * 1024)).as_bytes(),
    );
    line.extend_from_slice(b"NOOP\r\n");
    c.send(&line);
    c.reply().expect("500 5.5.2 Syntax error: line too long");
    c.reply().expect("500 5.5.2 Syntax error: line too long");
    c.reply().expect("250 2.0.0");
    c.cmd(&format!("RCPT TO:<{to}>")).expect("503 5.5.1");
    let qid = c.deliver(SENDER, &to, &message("after-long")).queue_id();
    c.quit();
    record(&h.replies(), &qid);
    h.stop();
}

const STARTTLS_INJECTION: &str = r#"
import socket, ssl, sys
port, rcpt = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
def read_reply(sock):
    data = b""
    while True:
        chunk = sock.recv(1)
        if not chunk:
            raise SystemExit("EOF after %r" % data)
        data += chunk
        if data.endswith(b"\r\n"):
            last = data.split(b"\r\n")[-2]
            if len(last) < 4 or last[3:4] == b" ":
                return data.decode()
def expect(got, prefix):
    if not got.splitlines()[-1].startswith(prefix):
        raise SystemExit("wanted %s, got %r" % (prefix, got))
expect(read_reply(s), "220 ")
s.sendall(b"EHLO client.example\r\n"); expect(read_reply(s), "250 ")
# STARTTLS with a command pipelined behind it in the same segment.
s.sendall(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
got = read_reply(s)
if got != "220 2.0.0 Ready to start TLS\r\n":
    raise SystemExit("STARTTLS reply %r" % got)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, server_hostname="herald.test")
# The injected MAIL was not taken: RCPT has no transaction, MAIL needs a new EHLO.
t.sendall(("RCPT TO:<%s>\r\n" % rcpt).encode()); expect(read_reply(t), "503 5.5.1")
t.sendall(b"MAIL FROM:<sender@example.org>\r\n"); expect(read_reply(t), "503 5.5.1")
t.sendall(b"EHLO client.example\r\n")
ehlo = read_reply(t)
expect(ehlo, "250 ")
if "STARTTLS" in ehlo:
    raise SystemExit("STARTTLS offered again: %r" % ehlo)
t.sendall(b"STARTTLS\r\n"); expect(read_reply(t), "503 5.5.1")
t.sendall(b"MAIL FROM:<sender@example.org>\r\n"); expect(read_reply(t), "250 2.1.0")
t.sendall(("RCPT TO:<%s>\r\n" % rcpt).encode()); expect(read_reply(t), "250 2.1.5")
t.sendall(b"DATA\r\n"); expect(read_reply(t), "354")
t.sendall(b"Message-ID: <after-starttls@client.example>\r\n\r\nHi\r\n.\r\n")
got = read_reply(t); expect(got, "250 2.0.0 Ok: queued as ")
t.sendall(b"QUIT\r\n"); expect(read_reply(t), "221")
print(got.strip().split()[-1])
"#;

#[test]
fn plaintext_pipelined_behind_starttls_is_thrown_away() {
    let dir = TempDir::new("in-starttls-injection");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 2, 2);
    let mut cmd = Command::new("python3");
    cmd.args(["-c", STARTTLS_INJECTION, &port.to_string(), &to]);
    let o = run_with_deadline(cmd);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let qid = stdout(&o).trim().to_string();
    let replies = h.replies();
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let r = record(&replies, &qid);
    assert_eq!(r["tls"], true);
    assert_eq!(r["from"], SENDER);
    assert!(
        !h.mail_log().contains("injected@evil.example"),
        "{}",
        h.mail_log()
    );
    h.stop();
}

#[test]
fn commands_before_the_greeting_if_noticed_close_the_session() {
    let dir = TempDir::new("in-early-talker");
    let (h, port) = start(&dir, "");
    // Whether the server sees the bytes before its greeting depends on timing; both outcomes are
    // correct, but a 554 must end the session and a 220 must be followed by a working session.
    let mut noticed = 0;
    for _ in 0..10 {
        let mut c = Smtp::connect(port);
        c.send(b"EHLO early.example\r\n");
        let first = c.reply();
        if first.code == 554 {
            first.expect("554 5.5.1");
            assert!(c.closed(), "554 must close the session");
            noticed += 1;
        } else {
            first.expect("220 herald.test ESMTP");
            let ehlo = c.reply();
            assert_eq!(ehlo.lines[0], "250-herald.test Hello early.example");
            c.quit();
        }
    }
    let log = h.mail_log();
    assert_eq!(log.matches(" connect from ").count(), 10, "{log}");
    assert_eq!(log.matches(" disconnect from ").count(), 10, "{log}");
    eprintln!("early talkers noticed: {noticed}/10");
    // The service is unharmed.
    Smtp::session(port).quit();
    h.stop();
}

#[test]
fn routing_tricks_in_rcpt_are_never_accepted() {
    let dir = TempDir::new("in-routing");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 11, 12);
    let (local, domain) = to.split_once('@').unwrap();
    let tricks = [
        format!("@relay.example:{to}"),
        format!("@{domain}:victim@example.com"),
        format!("victim%example.com@{domain}"),
        format!("{local}%example.com@{domain}"),
        format!("example.com!victim@{domain}"),
        format!("example.com!{local}@{domain}"),
        format!("\"{local}\"@{domain}"),
        format!("\"victim@example.com\"@{domain}"),
        format!("victim@example.com@{domain}"),
        format!("{to}@example.com"),
        format!("{local}@{domain}.example.com"),
        format!("victim@example.com%{domain}"),
        "victim@[127.0.0.1]".to_string(),
        format!("{local}@[127.0.0.1]"),
        local.to_string(),
        "postmaster".to_string(),
    ];
    for t in &tricks {
        let mut c = Smtp::session(port);
        c.cmd(&format!("MAIL FROM:<{SENDER}>")).expect("250 2.1.0");
        let r = c.cmd(&format!("RCPT TO:<{t}>"));
        assert!(r.code == 501 || r.code == 550, "<{t}> got {r:?}");
        c.cmd("DATA").expect("554 5.5.1");
        c.quit();
    }
    assert!(h.replies().is_empty());
    assert!(!h.mail_log().contains("status=sent"));
    h.stop();
}

#[test]
fn the_101st_recipient_gets_452_and_the_first_100_are_kept() {
    let dir = TempDir::new("in-rcpt-limit");
    let (h, port) = start(&dir, "");
    let mut c = Smtp::session(port);
    c.cmd(&format!("MAIL FROM:<{SENDER}>")).expect("250 2.1.0");
    // Pipelined, as a real MTA sends them.
    let rcpts: Vec<String> = (1..=101)
        .map(|i| format!("r{i}@noreply.herald.test"))
        .collect();
    let mut group = String::new();
    for r in &rcpts {
        group.push_str(&format!("RCPT TO:<{r}>\r\n"));
    }
    c.send(group.as_bytes());
    for i in 1..=100 {
        let r = c.reply();
        assert!(r.last().starts_with("250 2.1.5"), "recipient {i}: {r:?}");
    }
    c.reply().expect("452 4.5.3");
    // Not counted as an error: a client may try again, and the transaction still works.
    c.cmd(&format!("RCPT TO:<{}>", rcpts[100]))
        .expect("452 4.5.3");
    c.cmd("DATA").expect("354");
    c.send(&message("hundred"));
    c.send(b".\r\n");
    let qid = c.reply().queue_id();
    c.quit();
    let replies = h.replies();
    let recs = records_of(&replies, &qid);
    assert_eq!(recs.len(), 100);
    let tos: BTreeSet<&str> = recs.iter().map(|r| r["to"].as_str().unwrap()).collect();
    assert_eq!(tos.len(), 100);
    assert!(!tos.contains("r101@noreply.herald.test"));
    let log = h.mail_log();
    assert!(
        log.contains(&format!("{qid}: from=<{SENDER}>, size="))
            && log.contains("nrcpt=100 (queue active)"),
        "{log}"
    );
    h.stop();
}

#[test]
fn oversize_messages_are_refused_by_size_and_by_body() {
    let dir = TempDir::new("in-oversize");
    let (h, port) = start(&dir, "max_message_size = 2048");
    let to = h.reply_address("issue", 5, 5);
    let mut c = Smtp::connect(port);
    c.reply().expect("220");
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.lines.iter().any(|l| l == "250-SIZE 2048"), "{ehlo:?}");

    c.cmd(&format!("MAIL FROM:<{SENDER}> SIZE=4096"))
        .expect("552 5.3.4");
    c.cmd(&format!("MAIL FROM:<{SENDER}> SIZE=2049"))
        .expect("552 5.3.4");
    c.cmd(&format!(
        "MAIL FROM:<{SENDER}> SIZE=99999999999999999999999"
    ))
    .expect("5");
    c.cmd(&format!("MAIL FROM:<{SENDER}> SIZE=2048"))
        .expect("250 2.1.0");
    c.cmd("RSET").expect("250");

    // By body: exactly the limit is fine, one octet more is not.
    let body_of = |n: usize| {
        let head = b"Subject: size\r\n\r\n".to_vec();
        let mut b = head.clone();
        let fill = n - head.len() - 2;
        b.extend(std::iter::repeat_n(b'x', fill));
        b.extend_from_slice(b"\r\n");
        assert_eq!(b.len(), n);
        b
    };
    c.deliver(SENDER, &to, &body_of(3000)).expect("552 5.3.4");
    c.deliver(SENDER, &to, &body_of(2049)).expect("552 5.3.4");
    let qid = c.deliver(SENDER, &to, &body_of(2048)).queue_id();
    c.quit();
    let replies = h.replies();
    assert_eq!(replies.len(), 1, "{replies:#?}");
    record(&replies, &qid);
    assert!(
        h.mail_log()
            .contains(&format!("{qid}: from=<{SENDER}>, size=2048, nrcpt=1")),
        "{}",
        h.mail_log()
    );
    h.stop();
}

#[test]
fn ten_errors_end_the_session_with_421() {
    let dir = TempDir::new("in-errors");
    let (h, port) = start(&dir, "");
    let mut c = Smtp::session(port);
    c.send("FOO\r\n".repeat(10).as_bytes());
    for i in 1..=10 {
        let r = c.reply();
        assert!(r.last().starts_with("500 5.5.2"), "error {i}: {r:?}");
    }
    c.reply().expect("421 4.7.0");
    assert!(c.closed());

    // Refused recipients count too.
    let mut c = Smtp::session(port);
    c.cmd(&format!("MAIL FROM:<{SENDER}>")).expect("250");
    for i in 1..=9 {
        c.cmd(&format!("RCPT TO:<victim{i}@example.com>"))
            .expect("550 5.7.1");
    }
    c.send(b"RCPT TO:<victim10@example.com>\r\n");
    c.reply().expect("550 5.7.1");
    c.reply().expect("421 4.7.0");
    assert!(c.closed());
    let log = h.mail_log();
    assert!(log.contains("unknown=10 commands=11"), "{log}");
    h.stop();
}

#[test]
fn connections_past_max_connections_get_421() {
    let dir = TempDir::new("in-max-conn");
    let (h, port) = start(&dir, "max_connections = 2");
    let a = Smtp::session(port);
    let b = Smtp::session(port);
    let mut c = Smtp::connect(port);
    c.reply().expect("421 4.7.0");
    assert!(c.closed(), "the third connection is closed");
    a.quit();
    // The freed slot serves the next client (the slot frees just after the close is seen).
    let deadline = Instant::now() + WAIT;
    loop {
        let mut d = Smtp::connect(port);
        let r = d.reply();
        if r.code == 220 {
            d.cmd("EHLO client.example").expect("250");
            d.quit();
            break;
        }
        r.expect("421 4.7.0");
        assert!(Instant::now() < deadline, "the slot was never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.quit();
    assert!(
        h.mail_log()
            .contains("warning: too many connections: refused unknown[127.0.0.1]")
    );
    h.stop();
}

// ---------------------------------------------------------------------------------------------
// Durability and shutdown

/// Threads that send continuously; prints `OK <queue id>` for every 250, flushed at once.
const LOAD: &str = r#"
import smtplib, sys, threading, time
port, rcpt, nthreads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
lock = threading.Lock()
deadline = time.time() + 40
def worker(n):
    # One connection each, sending until anything fails (herald killed): then stop, and never
    # reconnect (the port may belong to another test's herald by then).
    try:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=10)
        s.ehlo()
        i = 0
        while time.time() < deadline:
            i += 1
            if s.mail("sender@example.org")[0] != 250 or s.rcpt(rcpt)[0] != 250:
                return
            code, resp = s.data("Message-ID: <kill-%d-%d@client.example>\r\n\r\nbody %d %d\r\n" % (n, i, n, i))
            if code != 250:
                return
            qid = resp.decode().rsplit(" ", 1)[1]
            with lock:
                sys.stdout.write("OK %s\n" % qid)
                sys.stdout.flush()
    except (smtplib.SMTPException, OSError):
        pass
threads = [threading.Thread(target=worker, args=(n,)) for n in range(nthreads)]
for t in threads: t.start()
for t in threads: t.join()
"#;

#[test]
fn every_message_acknowledged_with_250_survives_sigkill() {
    const THREADS: usize = 4;
    const BEFORE_KILL: usize = 300;
    let dir = TempDir::new("in-sigkill");
    let cfg = dir.write("herald.toml", &inbound_config(""));
    let data = dir.join("data");
    let mut h = Herald::start(Some(&cfg), &data);
    let port = h.smtp_port();
    let to = h.reply_address("issue", 21, 22);

    let mut client = Command::new("python3")
        .args(["-c", LOAD, &port.to_string(), &to, &THREADS.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = client.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acked = Vec::new();
    let started = Instant::now();
    // Kill while messages are in flight: after enough acknowledgements (or a second).
    while acked.len() < BEFORE_KILL && started.elapsed() < Duration::from_secs(1) {
        match rx.recv_timeout(WAIT) {
            Ok(line) => acked.push(line),
            Err(e) => panic!("the client stopped ({e}) after {} messages", acked.len()),
        }
    }
    h.send_signal("KILL");
    let st = h.wait_exit("KILL");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    // The client ends on its own once every thread finds the port closed.
    let deadline = Instant::now() + WAIT;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => acked.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) => {
                let _ = client.kill();
                panic!("the client did not stop after herald died");
            }
        }
    }
    let _ = client.wait();
    let acked: Vec<String> = acked
        .iter()
        .map(|l| {
            l.strip_prefix("OK ")
                .unwrap_or_else(|| panic!("{l:?}"))
                .to_string()
        })
        .collect();
    assert!(
        acked.len() >= 10,
        "too few messages before the kill: {}",
        acked.len()
    );
    let unique: BTreeSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "queue ids repeat");

    let mut h = Herald::start(Some(&cfg), &data);
    let port = h.smtp_port();
    let replies = h.replies();
    let stored: BTreeSet<String> = replies
        .iter()
        .map(|r| {
            r["id"]
                .as_str()
                .unwrap()
                .strip_suffix("-1")
                .unwrap()
                .to_string()
        })
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|q| !stored.contains(*q)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    eprintln!(
        "SIGKILL: {} acknowledged, {} stored",
        acked.len(),
        stored.len()
    );
    // Stored but unacknowledged: at most the one message in flight per client thread.
    assert!(
        stored.len() <= acked.len() + THREADS,
        "{} stored, {} acknowledged",
        stored.len(),
        acked.len()
    );
    // The reopened queue goes on, never reusing an id.
    let mut c = Smtp::session(port);
    let qid = c.deliver(SENDER, &to, &message("after-kill")).queue_id();
    c.quit();
    assert!(!stored.contains(&qid), "{qid} reused");
    let newest = stored
        .iter()
        .map(|q| u64::from_str_radix(q, 16).unwrap())
        .max()
        .unwrap();
    assert!(u64::from_str_radix(&qid, 16).unwrap() > newest, "ids grow");
    h.stop();
}

#[test]
fn sigterm_tells_an_idle_session_421_and_exits_zero() {
    let dir = TempDir::new("in-sigterm");
    let (h, port) = start(&dir, "");
    let mut c = Smtp::session(port);
    let st = h.signal("TERM");
    assert_eq!(st.code(), Some(0), "exit after SIGTERM");
    c.reply().expect("421 4.3.2");
    assert!(c.closed());
}

#[test]
fn sigterm_lets_a_message_in_data_finish_then_says_421() {
    let dir = TempDir::new("in-sigterm-data");
    let cfg = dir.write("herald.toml", &inbound_config(""));
    let data = dir.join("data");
    let mut h = Herald::start(Some(&cfg), &data);
    let port = h.smtp_port();
    let to = h.reply_address("issue", 31, 32);
    let mut c = Smtp::session(port);
    c.cmd(&format!("MAIL FROM:<{SENDER}>")).expect("250");
    c.cmd(&format!("RCPT TO:<{to}>")).expect("250");
    c.cmd("DATA").expect("354");
    c.send(b"Message-ID: <in-flight@client.example>\r\n\r\nhalf");
    h.send_signal("TERM");
    h.wait_for_log("draining");
    std::thread::sleep(Duration::from_millis(100));
    c.send(b" and the rest\r\n.\r\n");
    let qid = c.reply().queue_id();
    c.reply().expect("421 4.3.2");
    assert!(c.closed());
    let st = h.wait_exit("TERM");
    assert_eq!(st.code(), Some(0));

    let h = Herald::start(Some(&cfg), &data);
    let replies = h.replies();
    assert_eq!(
        record(&replies, &qid)["message_id"],
        "<in-flight@client.example>"
    );
    h.stop();
}
