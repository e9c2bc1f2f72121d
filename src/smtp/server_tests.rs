//! The server machine byte by byte: every command, sequence error, limit and hostile input, with
//! a session-script helper (shared with `server_lifecycle_tests`), and whole sessions fed split at
//! every byte offset.

use super::proto::Reply;
use super::server::*;
use std::sync::Arc;
use std::time::Instant;

/// Accepts `ok@reply.example.test` and anything at `noreply.example.test` (discarded).
pub(super) struct TestPolicy;

impl Policy for TestPolicy {
    fn recipient(&self, local: &str, domain: &str) -> Result<bool, Reply> {
        match (local, domain) {
            (_, "noreply.example.test") => Ok(true),
            (l, "reply.example.test") if l.starts_with("ok") => Ok(false),
            (_, "reply.example.test") => Err(Reply::new(
                550,
                "5.1.1",
                format!("<{local}@{domain}>: Recipient address rejected"),
            )),
            _ => Err(Reply::new(
                550,
                "5.7.1",
                format!("<{local}@{domain}>: Relay access denied"),
            )),
        }
    }
}

pub(super) fn config() -> Config {
    Config {
        hostname: "mx.example.test".into(),
        max_message_size: 1000,
        tls_available: true,
        tls_enforced: false,
        timeouts: Timeouts::default(),
        max_errors: 10,
        budget: super::budget::DataBudget::new(1 << 20),
    }
}

/// A scripted session: each step sends a line and checks the reply codes that come back.
pub(super) struct Session {
    pub(super) s: Server,
    pub(super) now: Instant,
    pub(super) stored: Vec<Envelope>,
    events: Vec<Event>,
}

impl Session {
    pub(super) fn new(cfg: Config) -> Session {
        let now = Instant::now();
        let mut s = Server::new(cfg, Arc::new(TestPolicy), now);
        s.greet(now);
        let mut me = Session {
            s,
            now,
            stored: vec![],
            events: vec![],
        };
        let greeting = me.out();
        assert_eq!(greeting, "220 mx.example.test ESMTP herald\r\n");
        me
    }

    pub(super) fn out(&mut self) -> String {
        String::from_utf8(self.s.take_output()).unwrap()
    }

    /// Feeds raw bytes, storing any message (queue id "Q1"...), and returns all output.
    pub(super) fn raw(&mut self, bytes: &[u8]) -> String {
        self.s.receive(bytes, self.now);
        self.pump()
    }

    fn pump(&mut self) -> String {
        let mut out = self.out();
        while let Some(e) = self.s.poll_event() {
            match e {
                Event::Admit => {
                    assert!(!self.s.wants_input(), "reading before the 354");
                    self.s.admitted(self.now);
                    out.push_str(&self.out());
                }
                Event::Deliver(env) => {
                    self.stored.push(env);
                    let id = format!("Q{}", self.stored.len());
                    self.s.stored(Ok(id), self.now);
                    out.push_str(&self.out());
                }
                other => self.events.push(other),
            }
        }
        out
    }

    /// Sends one command line and checks the codes of the replies (one per line of output that
    /// ends a reply).
    pub(super) fn cmd(&mut self, line: &str, code: &str) -> String {
        let out = self.raw(format!("{line}\r\n").as_bytes());
        let last = out.lines().last().unwrap_or("");
        assert!(
            last.starts_with(code),
            "{line:?}: expected {code}, got {out:?}"
        );
        out
    }

    pub(super) fn ehlo(&mut self) {
        self.cmd("EHLO client.example", "250 ");
    }
}

#[test]
fn a_whole_transaction() {
    let mut s = Session::new(config());
    let ehlo = s.cmd("EHLO client.example", "250 ");
    assert_eq!(
        ehlo,
        "250-mx.example.test Hello client.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250 HELP\r\n"
    );
    assert_eq!(
        s.cmd(
            "MAIL FROM:<user@client.example> SIZE=100 BODY=8BITMIME",
            "250"
        ),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(
        s.cmd("RCPT TO:<ok1@Reply.Example.Test>", "250"),
        "250 2.1.5 Ok\r\n"
    );
    s.cmd("RCPT TO:<anything@noreply.example.test>", "250 2.1.5");
    assert_eq!(
        s.cmd("DATA", "354"),
        "354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    let out = s.raw(b"Subject: hi\r\n\r\n..dot\r\n.\r\n");
    assert_eq!(out, "250 2.0.0 Ok: queued as Q1\r\n");
    let env = &s.stored[0];
    assert_eq!(env.mail_from, "user@client.example");
    assert_eq!(
        env.rcpts,
        vec![
            ("ok1@reply.example.test".to_string(), false),
            ("anything@noreply.example.test".to_string(), true)
        ]
    );
    assert_eq!(env.data, b"Subject: hi\r\n\r\n.dot\r\n");
    assert_eq!(env.helo, "client.example");
    assert!(!env.tls);
    assert_eq!(s.cmd("QUIT", "221"), "221 2.0.0 Bye\r\n");
    assert!(s.s.is_closed());
    assert_eq!(s.events, vec![Event::Close]);
}

#[test]
fn every_reply_after_the_greeting_has_an_enhanced_code_except_ehlo_helo_and_354() {
    let mut s = Session::new(config());
    let all = [
        s.cmd("NOOP", "250"),
        s.cmd("HELP", "214"),
        s.cmd("VRFY x", "252"),
        s.cmd("MAIL FROM:<a@b.example>", "503"),
        s.cmd("FOO", "500"),
        s.cmd("AUTH PLAIN", "502"),
        s.cmd("RSET", "250"),
    ];
    for r in all {
        let third = r.split(' ').nth(1).unwrap();
        assert!(
            third.split('.').count() == 3 && third.chars().next().unwrap().is_ascii_digit(),
            "{r}"
        );
    }
    assert_eq!(
        s.cmd("HELO client.example", "250"),
        "250 mx.example.test\r\n"
    );
}

#[test]
fn sequence_errors() {
    let mut s = Session::new(config());
    s.cmd("MAIL FROM:<a@b.example>", "503 5.5.1");
    s.cmd("RCPT TO:<ok@reply.example.test>", "503 5.5.1");
    s.cmd("DATA", "503 5.5.1");
    s.ehlo();
    s.cmd("RCPT TO:<ok@reply.example.test>", "503 5.5.1");
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("MAIL FROM:<a@b.example>", "503 5.5.1");
    s.cmd("DATA", "554 5.5.1");
    s.cmd("RSET", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "503");
    s.cmd("MAIL FROM:<>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.cmd("EHLO again.example", "250 ");
    s.cmd("DATA", "503");
}

#[test]
fn syntax_and_parameters() {
    let mut cfg = config();
    cfg.max_errors = 50;
    let mut s = Session::new(cfg);
    s.ehlo();
    s.cmd("MAIL FROM:a@b.example", "501");
    s.cmd("MAIL FROM:<a@b.example> SIZE=abc", "501");
    s.cmd("MAIL FROM:<a@b.example> SIZE=1001", "552 5.3.4");
    s.cmd(
        "MAIL FROM:<a@b.example> SIZE=99999999999999999999999",
        "552 5.3.4",
    );
    s.cmd("MAIL FROM:<a@b.example> BODY=BINARYMIME", "501");
    s.cmd("MAIL FROM:<a@b.example> XFOO=1", "555");
    s.cmd("MAIL FROM:<a@b.example> SIZE=1000", "250");
    s.cmd("RCPT TO:<ok@reply.example.test> NOTIFY=NEVER", "555");
    s.cmd("RCPT TO:ok@reply.example.test", "501");
    s.cmd("DATA now", "501");
    s.cmd("EHLO", "501");
}

#[test]
fn recipient_policy_and_relay_attempts() {
    let mut s = Session::new(config());
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<nope@reply.example.test>", "550 5.1.1");
    s.cmd("RCPT TO:<victim@elsewhere.example>", "550 5.7.1");
    for evil in [
        "<@reply.example.test:victim@elsewhere.example>",
        "<victim%elsewhere.example@reply.example.test>",
        "<elsewhere.example!victim@reply.example.test>",
        "<\"ok@elsewhere\"@reply.example.test>",
        "<ok@elsewhere.example@reply.example.test>",
    ] {
        let out = s.cmd(&format!("RCPT TO:{evil}"), "5");
        assert!(
            out.starts_with("501 5.1.3") || out.starts_with("550"),
            "{evil}: {out}"
        );
    }
    let rejected: Vec<_> = s
        .events
        .iter()
        .filter(|e| matches!(e, Event::Rejected(_)))
        .collect();
    assert_eq!(rejected.len(), 2);
    if let Event::Rejected(r) = rejected[0] {
        assert_eq!(
            (r.from.as_str(), r.to.as_str()),
            ("a@b.example", "nope@reply.example.test")
        );
    }
}

#[test]
fn too_many_recipients_is_452_4_5_3_past_100() {
    let mut s = Session::new(config());
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    for i in 0..100 {
        s.cmd(&format!("RCPT TO:<ok{i}@reply.example.test>"), "250");
    }
    s.cmd("RCPT TO:<ok100@reply.example.test>", "452 4.5.3");
    s.cmd("DATA", "354");
    s.raw(b"x\r\n.\r\n");
    assert_eq!(s.stored[0].rcpts.len(), 100);
}

#[test]
fn oversize_body_is_552_and_nothing_is_stored() {
    let mut s = Session::new(config());
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.cmd("DATA", "354");
    let mut body = vec![b'x'; 2000];
    body.extend_from_slice(b"\r\n.\r\n");
    assert_eq!(
        s.raw(&body),
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
    assert!(s.stored.is_empty());
    // The session goes on.
    s.cmd("MAIL FROM:<a@b.example>", "250");
}

#[test]
fn smuggling_never_starts_a_second_transaction() {
    let mut s = Session::new(config());
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.cmd("DATA", "354");
    let smuggle = b"Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@x.example>\nRCPT TO:<ok2@reply.example.test>\nDATA\nsmuggled\n.\r\nmore\r.\rRSET\r\n.\r\n";
    let out = s.raw(smuggle);
    assert_eq!(out, "250 2.0.0 Ok: queued as Q1\r\n");
    assert_eq!(s.stored.len(), 1);
    assert!(
        s.stored[0].data.windows(8).any(|w| w == b"smuggled"),
        "the rest is data of the one message"
    );
}

#[test]
fn bare_lf_and_long_lines_in_commands() {
    let mut s = Session::new(config());
    assert_eq!(
        s.raw(b"EHLO x\n"),
        "500 5.5.2 Syntax error: command lines must end in CRLF, not a bare LF\r\n"
    );
    let mut long = b"EHLO ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 100_000));
    long.extend_from_slice(b"\r\nNOOP\r\n");
    assert_eq!(
        s.raw(&long),
        "500 5.5.2 Syntax error: line too long\r\n250 2.0.0 Ok\r\n"
    );
}

#[test]
fn too_many_errors_closes_with_421() {
    let mut cfg = config();
    cfg.max_errors = 3;
    let mut s = Session::new(cfg);
    s.cmd("FOO", "500");
    s.cmd("BAR", "500");
    let out = s.raw(b"BAZ\r\nNOOP\r\n");
    assert_eq!(
        out,
        "500 5.5.2 Error: command not recognized\r\n421 4.7.0 mx.example.test Error: too many errors\r\n"
    );
    assert!(s.s.is_closed());
}

#[test]
fn starttls_discards_pipelined_plaintext_and_starts_over() {
    let mut s = Session::new(config());
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    let out = s.raw(b"STARTTLS\r\nRCPT TO:<ok@reply.example.test>\r\nDATA\r\n");
    assert_eq!(out, "220 2.0.0 Ready to start TLS\r\n");
    assert_eq!(s.events, vec![Event::StartTls]);
    assert!(!s.s.wants_input());
    s.s.tls_started(s.now);
    assert!(s.stored.is_empty(), "nothing stored before TLS");
    // Nothing from before TLS survives: no EHLO, no MAIL.
    s.cmd("MAIL FROM:<a@b.example>", "503");
    let ehlo = s.cmd("EHLO client.example", "250 ");
    assert!(!ehlo.contains("STARTTLS"), "not offered twice: {ehlo}");
    s.cmd("RCPT TO:<ok@reply.example.test>", "503");
    s.cmd("STARTTLS", "503");
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.cmd("DATA", "354");
    s.raw(b"x\r\n.\r\n");
    assert!(s.stored[0].tls);
}

#[test]
fn starttls_needs_ehlo_and_a_certificate() {
    let mut s = Session::new(config());
    s.cmd("STARTTLS", "503");
    s.cmd("HELO x", "250");
    s.cmd("STARTTLS", "503");
    let mut cfg = config();
    cfg.tls_available = false;
    let mut s = Session::new(cfg);
    let ehlo = s.cmd("EHLO x", "250 ");
    assert!(!ehlo.contains("STARTTLS"));
    s.cmd("STARTTLS", "502");
}

#[test]
fn enforced_tls() {
    let mut cfg = config();
    cfg.tls_enforced = true;
    let mut s = Session::new(cfg);
    s.ehlo();
    for c in [
        "MAIL FROM:<a@b.example>",
        "RCPT TO:<ok@reply.example.test>",
        "DATA",
        "RSET",
    ] {
        assert_eq!(
            s.cmd(c, "530"),
            "530 5.7.0 Must issue a STARTTLS command first\r\n"
        );
    }
    s.cmd("NOOP", "250");
    s.cmd("STARTTLS", "220");
    s.s.tls_started(s.now);
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
}

/// Whole pipelined sessions give the same replies and the same stored messages however the
/// bytes are split into reads.
#[test]
fn fixtures_split_at_every_byte_offset() {
    let fixtures: [&[u8]; 4] = [
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<ok@reply.example.test>\r\nDATA\r\nSubject: x\r\n\r\n.hidden\r\n..\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<ok2@reply.example.test>\r\nRCPT TO:<no@reply.example.test>\r\nDATA\r\n.\r\nQUIT\r\n",
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<ok@reply.example.test>\r\nDATA\r\nx\n.\nRSET\r\n.\r\n\r\nQUIT\r\n",
        b"HELO c\r\nNOOP\nFOO\r\nMAIL FROM:<a@b.example> SIZE=5000\r\nRSET\r\nQUIT\r\n",
        b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<ok@reply.example.test>\r\nDATA\r\n\x00\r\r\n.\r\r\n..\r\n.\r\nQUIT\r\n",
    ];
    for fx in fixtures {
        let run = |chunks: Vec<&[u8]>| {
            let mut s = Session::new(config());
            let mut out = String::new();
            for c in chunks {
                out.push_str(&s.raw(c));
            }
            (
                out,
                s.stored
                    .iter()
                    .map(|e| (e.rcpts.clone(), e.data.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        let whole = run(vec![fx]);
        assert!(whole.0.ends_with("221 2.0.0 Bye\r\n"), "{}", whole.0);
        for i in 0..=fx.len() {
            assert_eq!(run(vec![&fx[..i], &fx[i..]]), whole, "split at {i}");
        }
        assert_eq!(run(fx.chunks(1).collect()), whole, "byte by byte");
    }
}

#[test]
fn a_declared_size_bounds_the_message() {
    let mut cfg = config();
    cfg.max_message_size = 200_000;
    let mut s = Session::new(cfg);
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example> SIZE=10", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.cmd("DATA", "354");
    let mut body = vec![b'x'; 100_000];
    body.extend_from_slice(b"\r\n.\r\n");
    assert!(s.raw(&body).starts_with("552 5.3.4"));
    assert!(s.stored.is_empty());
}

#[test]
fn mail_parameters_need_ehlo() {
    let mut s = Session::new(config());
    s.cmd("HELO c.example", "250");
    s.cmd("MAIL FROM:<a@b.example> SIZE=10", "555 5.5.4");
    s.cmd("MAIL FROM:<a@b.example>", "250");
}
