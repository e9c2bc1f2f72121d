//! The SMTP client session as a state machine: replies in, commands out, time passed in.
//!
//! One `Client` is one connection to the smarthost: greeting, EHLO (HELO when EHLO is refused),
//! STARTTLS as `smtp.tls` says, a fresh EHLO after TLS with anything sent before the handshake
//! thrown away, AUTH PLAIN / LOGIN / CRAM-MD5, then any number of messages (RSET between them,
//! MAIL/RCPT/DATA pipelined when the server offers PIPELINING), then QUIT. The adapter in
//! `src/outbound/` moves the bytes, does the TLS handshake when asked and calls `on_timeout`
//! when `deadline` passes. Every outcome is classified transient or permanent.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::replies::{ReplyParser, ServerReply};
use crate::crypto;

/// How the session uses TLS (`smtp.tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS when the server offers it, plaintext when it does not.
    StartTlsAuto,
    /// STARTTLS or nothing: a server that does not offer it is an error (the mail waits).
    StartTlsRequired,
    /// TLS from the first byte (port 465): the adapter handshakes before the greeting.
    Implicit,
    /// Never TLS.
    Off,
}

/// SASL mechanisms (`smtp.authentication`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    CramMd5,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
        }
    }
}

#[derive(Clone)]
pub struct Credentials {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials({} {} [redacted])",
            self.mechanism.name(),
            self.username
        )
    }
}

/// How long to wait for each reply (RFC 5321 §4.5.3.2 gives the minimums a client should use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub greeting: Duration,
    /// EHLO, STARTTLS, AUTH, RSET, QUIT (the RFC names none; MAIL's is used).
    pub command: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    /// From the final dot to the reply.
    pub data_term: Duration,
}

impl Timeouts {
    /// RFC 5321 §4.5.3.2: initial 220 5 min, MAIL 5 min, RCPT 5 min, DATA 2 min, final dot 10 min.
    pub const RFC5321: Timeouts = Timeouts {
        greeting: Duration::from_secs(5 * 60),
        command: Duration::from_secs(5 * 60),
        mail: Duration::from_secs(5 * 60),
        rcpt: Duration::from_secs(5 * 60),
        data_init: Duration::from_secs(2 * 60),
        data_term: Duration::from_secs(10 * 60),
    };

    /// Every wait at most `d`: an administrator waiting on a test email is not a queue.
    pub fn capped(self, d: Duration) -> Timeouts {
        Timeouts {
            greeting: self.greeting.min(d),
            command: self.command.min(d),
            mail: self.mail.min(d),
            rcpt: self.rcpt.min(d),
            data_init: self.data_init.min(d),
            data_term: self.data_term.min(d),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The name sent in EHLO/HELO.
    pub helo_name: String,
    pub tls: TlsMode,
    pub auth: Option<Credentials>,
    pub timeouts: Timeouts,
    /// Keep the conversation (credentials redacted) for the test email's transcript.
    pub transcript: bool,
}

/// Where in the session something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    Rset,
    Mail,
    Rcpt,
    Data,
    /// After the final dot.
    Message,
    Quit,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Rset => "RSET",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "end of data",
            Stage::Quit => "QUIT",
        }
    }
}

/// What kind of failure, for the administrator and for the retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The server refused: a 4xx or 5xx reply to the greeting or a transaction command.
    Rejected,
    /// TLS could not be used as configured.
    Tls,
    /// The server refused the credentials (or the AUTH exchange itself).
    Auth,
    /// The settings do not fit this server (a mechanism it does not offer, a password that would
    /// go in clear, a value that would break a command line).
    Config,
    Timeout,
    /// The connection failed or broke, or the server does not speak SMTP.
    Network,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    /// 5xx and settings that cannot work: do not retry as they are. Everything else is transient.
    pub permanent: bool,
    pub stage: Stage,
    pub reply: Option<ServerReply>,
    /// What went wrong, in plain words, without secrets.
    pub detail: String,
    /// The RFC 3463 status when no server reply says it (a refusal made here).
    pub status: Option<&'static str>,
}

impl Failure {
    pub fn new(kind: Kind, permanent: bool, stage: Stage, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            permanent,
            stage,
            reply: None,
            detail: detail.into(),
            status: None,
        }
    }

    /// The same failure with the RFC 3463 status it stands for.
    pub fn with_status(mut self, status: &'static str) -> Failure {
        self.status = Some(status);
        self
    }

    fn rejected(kind: Kind, stage: Stage, reply: ServerReply, what: &str) -> Failure {
        Failure {
            kind,
            permanent: !reply.is_transient(),
            stage,
            detail: format!("{what}: {}", reply.one_line()),
            reply: Some(reply),
            status: None,
        }
    }

    /// The Postfix-style DSN code: the reply's enhanced code, else one from the class.
    pub fn dsn(&self) -> String {
        if let Some(e) = self
            .reply
            .as_ref()
            .and_then(|r| r.enhanced())
            .or(self.status)
        {
            return e.to_string();
        }
        if self.permanent { "5.0.0" } else { "4.0.0" }.to_string()
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// One line of the conversation as the transcript shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// A command we sent, CRLF included, credentials replaced by `[redacted]`.
    Sent(String),
    /// A reply line from the server, CRLF included.
    Received(String),
    TlsStarted,
}

/// What the adapter must do or know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Ready for a message: after the greeting, EHLO, TLS and AUTH, and again after each message.
    Ready,
    /// Do the TLS handshake now (writing what `take_output` has first), then call `tls_started`.
    StartTls,
    /// The message was accepted: the server's reply to the final dot.
    Delivered(ServerReply),
    /// The message was not accepted; the session goes on (`Ready` follows).
    NotDelivered(Failure),
    /// The session is over; with the failure that ended it (a message in flight failed with it).
    /// Write what `take_output` has (a polite QUIT, when there is one), then close.
    Closed(Option<Failure>),
}

#[derive(Debug, Default, Clone)]
struct Capabilities {
    pipelining: bool,
    starttls: bool,
    eightbitmime: bool,
    size: Option<u64>,
    auth: Vec<String>,
}

impl Capabilities {
    fn from_ehlo(reply: &ServerReply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let upper = line.to_ascii_uppercase();
            let mut words = upper.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword {
                "PIPELINING" => caps.pipelining = true,
                "STARTTLS" => caps.starttls = true,
                "8BITMIME" => caps.eightbitmime = true,
                "SIZE" => caps.size = words.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0),
                "AUTH" => caps.auth.extend(words.map(str::to_string)),
                k if k.starts_with("AUTH=") => {
                    caps.auth.push(k["AUTH=".len()..].to_string());
                    caps.auth.extend(words.map(str::to_string));
                }
                _ => {}
            }
        }
        caps
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthStep {
    /// AUTH PLAIN with its initial response sent; waiting for 235.
    Final,
    LoginUser,
    LoginPassword,
    CramChallenge,
    /// We answered an unexpected prompt with `*`: the next reply must end the exchange.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Rset,
    Mail,
    Rcpt,
    Data,
    Body,
}

#[derive(Debug)]
struct Transaction {
    /// Commands not written yet (without PIPELINING they go one at a time).
    queued: VecDeque<(Expect, String)>,
    /// Replies still owed by the server, in order.
    owed: VecDeque<Expect>,
    /// The dot-stuffed body with its final dot, written after 354.
    body: Vec<u8>,
    failure: Option<Failure>,
}

#[derive(Debug)]
enum State {
    Greeting,
    Ehlo { helo: bool },
    StartTls,
    Handshake,
    Auth(AuthStep),
    Ready,
    Busy(Box<Transaction>),
    Quit,
    Closed,
}

pub struct Client {
    cfg: ClientConfig,
    state: State,
    parser: ReplyParser,
    caps: Capabilities,
    tls: bool,
    out: Vec<u8>,
    events: VecDeque<Event>,
    transcript: Vec<Said>,
    /// When the reply we wait for is due.
    due: Option<Instant>,
    /// Messages started on this connection (RSET goes before every one after the first).
    messages: usize,
}

/// Refuses a value that would end or split a command line.
fn line_safe(what: &str, value: &str) -> Result<(), Failure> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(Failure::new(
            Kind::Config,
            true,
            Stage::Connect,
            format!("{what} contains a line break or NUL, which would inject SMTP commands"),
        ));
    }
    Ok(())
}

impl Client {
    /// A session on a fresh connection; `tls` when the adapter already did an implicit-TLS
    /// handshake. Values that could break a command line are refused here, before any byte.
    pub fn new(cfg: ClientConfig, tls: bool, now: Instant) -> Result<Client, Failure> {
        line_safe("the EHLO name (smtp.domain or hostname)", &cfg.helo_name)?;
        if cfg.helo_name.is_empty() || cfg.helo_name.contains(' ') {
            return Err(Failure::new(
                Kind::Config,
                true,
                Stage::Connect,
                "the EHLO name is empty or has a space",
            ));
        }
        if let Some(c) = &cfg.auth {
            line_safe("smtp.username", &c.username)?;
            line_safe("smtp.password", &c.password)?;
        }
        let due = Some(now + cfg.timeouts.greeting);
        Ok(Client {
            cfg,
            state: State::Greeting,
            parser: ReplyParser::default(),
            caps: Capabilities::default(),
            tls,
            out: Vec::new(),
            events: VecDeque::new(),
            transcript: Vec::new(),
            due,
            messages: 0,
        })
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn take_transcript(&mut self) -> Vec<Said> {
        std::mem::take(&mut self.transcript)
    }

    /// When `on_timeout` must be called if no reply came; `None` while idle or closed.
    pub fn deadline(&self) -> Option<Instant> {
        self.due
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// True while the TLS handshake the machine asked for is under way.
    pub fn wants_handshake(&self) -> bool {
        matches!(self.state, State::Handshake)
    }

    pub fn tls_active(&self) -> bool {
        self.tls
    }

    /// The largest message the server said it takes (SIZE), if it said.
    pub fn size_limit(&self) -> Option<u64> {
        self.caps.size
    }

    /// Bytes from the server.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        let mut rest = bytes;
        while !rest.is_empty() && !matches!(self.state, State::Closed | State::Handshake) {
            // Feed up to the end of the next line only, so that a STARTTLS 220 stops the loop
            // before any byte that follows it (those were sent before TLS and are thrown away).
            let cut = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let (chunk, tail) = rest.split_at(cut);
            rest = tail;
            let keep = self.cfg.transcript;
            let transcript = &mut self.transcript;
            let parsed = self.parser.feed(chunk, |line| {
                if keep {
                    transcript.push(Said::Received(format!("{line}\r\n")));
                }
            });
            match parsed {
                Ok(replies) => {
                    for r in replies {
                        self.on_reply(r, now);
                    }
                }
                Err(e) => {
                    let stage = self.stage();
                    self.fail(
                        Failure::new(Kind::Network, false, stage, e.to_string()),
                        false,
                    );
                }
            }
        }
    }

    /// The adapter finished the handshake asked for by `Event::StartTls`.
    pub fn tls_started(&mut self, now: Instant) {
        if let State::Handshake = self.state {
            self.tls = true;
            self.caps = Capabilities::default();
            self.parser.clear();
            if self.cfg.transcript {
                self.transcript.push(Said::TlsStarted);
            }
            self.ehlo(false, now);
        }
    }

    /// The connection ended (EOF or an error): `detail` says how.
    pub fn on_disconnect(&mut self, detail: &str) {
        match self.state {
            State::Closed => {}
            State::Quit => self.close(None),
            _ => {
                let stage = self.stage();
                let what = if matches!(self.state, State::Ready) {
                    "the server closed the idle connection".to_string()
                } else {
                    format!("the connection was lost during {}: {detail}", stage.name())
                };
                self.fail(Failure::new(Kind::Network, false, stage, what), false);
            }
        }
    }

    pub fn on_timeout(&mut self, now: Instant) {
        if self.due.is_some_and(|d| now >= d) {
            let stage = self.stage();
            let f = Failure::new(
                Kind::Timeout,
                false,
                stage,
                format!("the server did not answer {} in time", stage.name()),
            );
            self.fail(f, false);
        }
    }

    /// Sends one message. `data` is the message as RFC 5322 text; it is dot-stuffed here.
    /// Refused (and nothing written) unless the session is ready and the addresses are clean.
    pub fn submit(
        &mut self,
        from: &str,
        to: &str,
        data: &[u8],
        now: Instant,
    ) -> Result<(), Failure> {
        if !self.is_ready() {
            return Err(Failure::new(
                Kind::Network,
                false,
                Stage::Mail,
                "the session is not ready for a message",
            ));
        }
        for (what, addr) in [("the sender address", from), ("the recipient address", to)] {
            line_safe(what, addr)?;
            if addr.bytes().any(|b| b == b' ' || b == b'<' || b == b'>') {
                return Err(Failure::new(
                    Kind::Config,
                    true,
                    Stage::Mail,
                    format!("{what} {addr:?} is not a mailbox"),
                ));
            }
        }
        if to.is_empty() {
            return Err(Failure::new(
                Kind::Config,
                true,
                Stage::Rcpt,
                "no recipient",
            ));
        }
        if let Some(limit) = self.caps.size
            && data.len() as u64 > limit
        {
            return Err(Failure::new(
                Kind::Rejected,
                true,
                Stage::Mail,
                format!(
                    "the message is {} bytes and the server takes at most {limit} (SIZE)",
                    data.len()
                ),
            )
            .with_status("5.3.4"));
        }
        let mut mail = format!("MAIL FROM:<{from}>");
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", data.len()));
        }
        if self.caps.eightbitmime && data.iter().any(|b| *b >= 0x80) {
            mail.push_str(" BODY=8BITMIME");
        }
        let mut queued = VecDeque::new();
        if self.messages > 0 {
            queued.push_back((Expect::Rset, "RSET".to_string()));
        }
        queued.push_back((Expect::Mail, mail));
        queued.push_back((Expect::Rcpt, format!("RCPT TO:<{to}>")));
        queued.push_back((Expect::Data, "DATA".to_string()));
        self.messages += 1;
        self.state = State::Busy(Box::new(Transaction {
            queued,
            owed: VecDeque::new(),
            body: dot_stuff(data),
            failure: None,
        }));
        self.pump(now);
        Ok(())
    }

    /// Ends the session politely.
    pub fn quit(&mut self, now: Instant) {
        if matches!(self.state, State::Closed | State::Quit) {
            return;
        }
        self.send("QUIT");
        self.state = State::Quit;
        self.due = Some(now + self.cfg.timeouts.command);
    }

    fn stage(&self) -> Stage {
        match &self.state {
            State::Greeting => Stage::Greeting,
            State::Ehlo { .. } => Stage::Ehlo,
            State::StartTls | State::Handshake => Stage::StartTls,
            State::Auth(_) => Stage::Auth,
            State::Ready | State::Closed => Stage::Connect,
            State::Quit => Stage::Quit,
            State::Busy(tx) => match tx.owed.front().or(tx.queued.front().map(|(e, _)| e)) {
                Some(Expect::Rset) => Stage::Rset,
                Some(Expect::Mail) => Stage::Mail,
                Some(Expect::Rcpt) => Stage::Rcpt,
                Some(Expect::Data) => Stage::Data,
                Some(Expect::Body) | None => Stage::Message,
            },
        }
    }

    fn send(&mut self, line: &str) {
        self.send_redacted(line, line);
    }

    fn send_redacted(&mut self, line: &str, shown: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        if self.cfg.transcript {
            self.transcript.push(Said::Sent(format!("{shown}\r\n")));
        }
    }

    /// Ends the session. `quit`: say QUIT first (the server is fine, we are giving up).
    fn fail(&mut self, f: Failure, quit: bool) {
        if quit {
            self.send("QUIT");
        }
        self.close(Some(f));
    }

    fn close(&mut self, f: Option<Failure>) {
        self.state = State::Closed;
        self.due = None;
        self.events.push_back(Event::Closed(f));
    }

    fn ready(&mut self) {
        self.state = State::Ready;
        self.due = None;
        self.events.push_back(Event::Ready);
    }

    fn ehlo(&mut self, helo: bool, now: Instant) {
        let name = self.cfg.helo_name.clone();
        self.send(&format!("{} {name}", if helo { "HELO" } else { "EHLO" }));
        self.state = State::Ehlo { helo };
        self.due = Some(now + self.cfg.timeouts.command);
    }

    fn on_reply(&mut self, r: ServerReply, now: Instant) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Greeting => {
                if r.code == 220 {
                    self.ehlo(false, now);
                } else {
                    self.fail(
                        Failure::rejected(
                            Kind::Rejected,
                            Stage::Greeting,
                            r,
                            "the server refused the connection",
                        ),
                        true,
                    );
                }
            }
            State::Ehlo { helo } => {
                if r.code == 250 {
                    self.caps = if helo {
                        Capabilities::default()
                    } else {
                        Capabilities::from_ehlo(&r)
                    };
                    self.after_ehlo(now);
                } else if !helo && matches!(r.code, 500..=504 | 550) {
                    self.ehlo(true, now);
                } else {
                    let what = if helo {
                        "the server refused HELO"
                    } else {
                        "the server refused EHLO"
                    };
                    self.fail(
                        Failure::rejected(Kind::Rejected, Stage::Ehlo, r, what),
                        true,
                    );
                }
            }
            State::StartTls => {
                if r.code == 220 {
                    // Whatever else is buffered was sent before TLS: never read it.
                    self.parser.clear();
                    self.state = State::Handshake;
                    self.due = Some(now + self.cfg.timeouts.command);
                    self.events.push_back(Event::StartTls);
                } else {
                    self.fail(
                        Failure::rejected(
                            Kind::Tls,
                            Stage::StartTls,
                            r,
                            "the server refused STARTTLS",
                        ),
                        true,
                    );
                }
            }
            State::Auth(step) => self.on_auth_reply(step, r, now),
            State::Busy(tx) => self.on_transaction_reply(*tx, r, now),
            State::Quit => self.close(None),
            s @ (State::Ready | State::Handshake | State::Closed) => {
                // A reply nobody asked for.
                self.state = s;
                let f = Failure::new(
                    Kind::Network,
                    false,
                    self.stage(),
                    format!("the server sent a reply nobody asked for: {}", r.one_line()),
                );
                self.fail(f, false);
            }
        }
    }

    fn after_ehlo(&mut self, now: Instant) {
        if !self.tls {
            let wants = matches!(
                self.cfg.tls,
                TlsMode::StartTlsAuto | TlsMode::StartTlsRequired
            );
            if wants && self.caps.starttls {
                self.send("STARTTLS");
                self.state = State::StartTls;
                self.due = Some(now + self.cfg.timeouts.command);
                return;
            }
            if self.cfg.tls == TlsMode::StartTlsRequired {
                self.fail(
                    Failure::new(
                        Kind::Tls,
                        false,
                        Stage::StartTls,
                        "the server does not offer STARTTLS, and the settings require it (smtp.tls is starttls-required)",
                    ),
                    true,
                );
                return;
            }
        }
        let Some(creds) = self.cfg.auth.clone() else {
            self.ready();
            return;
        };
        let clear_password = matches!(creds.mechanism, Mechanism::Plain | Mechanism::Login);
        if !self.tls && clear_password && self.cfg.tls != TlsMode::Off {
            let f = Failure::new(
                Kind::Config,
                false,
                Stage::Auth,
                format!(
                    "not sending the password in clear: the server did not offer STARTTLS, and AUTH {} would reveal it (use TLS, choose cram-md5, or set smtp.tls to off to allow it)",
                    creds.mechanism.name()
                ),
            );
            self.fail(f, true);
            return;
        }
        if !self.caps.auth.iter().any(|m| m == creds.mechanism.name()) {
            let offered = if self.caps.auth.is_empty() {
                "it offers no AUTH at all".to_string()
            } else {
                format!("it offers {}", self.caps.auth.join(" "))
            };
            let f = Failure::new(
                Kind::Config,
                false,
                Stage::Auth,
                format!(
                    "the server does not offer AUTH {} ({offered})",
                    creds.mechanism.name()
                ),
            );
            self.fail(f, true);
            return;
        }
        self.due = Some(now + self.cfg.timeouts.command);
        match creds.mechanism {
            Mechanism::Plain => {
                let mut raw = vec![0u8];
                raw.extend_from_slice(creds.username.as_bytes());
                raw.push(0);
                raw.extend_from_slice(creds.password.as_bytes());
                let line = format!("AUTH PLAIN {}", crypto::base64_encode(&raw));
                self.send_redacted(&line, "AUTH PLAIN [redacted]");
                self.state = State::Auth(AuthStep::Final);
            }
            Mechanism::Login => {
                self.send("AUTH LOGIN");
                self.state = State::Auth(AuthStep::LoginUser);
            }
            Mechanism::CramMd5 => {
                self.send("AUTH CRAM-MD5");
                self.state = State::Auth(AuthStep::CramChallenge);
            }
        }
    }

    fn on_auth_reply(&mut self, step: AuthStep, r: ServerReply, now: Instant) {
        let creds = self.cfg.auth.clone().expect("AUTH only with credentials");
        self.due = Some(now + self.cfg.timeouts.command);
        match (step, r.code) {
            (AuthStep::Final, 235) => self.ready(),
            (AuthStep::LoginUser, 334) => {
                self.send_redacted(
                    &crypto::base64_encode(creds.username.as_bytes()),
                    "[redacted]",
                );
                self.state = State::Auth(AuthStep::LoginPassword);
            }
            (AuthStep::LoginPassword, 334) => {
                self.send_redacted(
                    &crypto::base64_encode(creds.password.as_bytes()),
                    "[redacted]",
                );
                self.state = State::Auth(AuthStep::Final);
            }
            (AuthStep::CramChallenge, 334) => {
                let Some(challenge) =
                    crypto::base64_decode(r.lines.first().map_or("", |l| l.trim()))
                else {
                    self.send("*");
                    let f = Failure::new(
                        Kind::Auth,
                        false,
                        Stage::Auth,
                        "the server's CRAM-MD5 challenge is not base64",
                    );
                    self.fail(f, true);
                    return;
                };
                let digest = crypto::hex(&crypto::hmac_md5(creds.password.as_bytes(), &challenge));
                let answer = format!("{} {digest}", creds.username);
                self.send_redacted(&crypto::base64_encode(answer.as_bytes()), "[redacted]");
                self.state = State::Auth(AuthStep::Final);
            }
            (AuthStep::Cancelled, 334) => {
                let f = Failure::new(
                    Kind::Auth,
                    false,
                    Stage::Auth,
                    "the server went on with AUTH after it was cancelled",
                );
                self.fail(f, true);
            }
            (_, 334) => {
                // A prompt where none belongs: cancel the exchange (RFC 4954 §4).
                self.send("*");
                self.state = State::Auth(AuthStep::Cancelled);
            }
            (_, code) => {
                let what = if code == 535 {
                    "the server rejected the username or password"
                } else {
                    "the server refused to authenticate"
                };
                self.fail(Failure::rejected(Kind::Auth, Stage::Auth, r, what), true);
            }
        }
    }

    /// Writes what may be written now: everything with PIPELINING, else the next command once
    /// every reply is in.
    fn pump(&mut self, now: Instant) {
        let State::Busy(tx) = &mut self.state else {
            return;
        };
        let mut lines = Vec::new();
        while tx.failure.is_none() || self.caps.pipelining {
            if !self.caps.pipelining && !tx.owed.is_empty() {
                break;
            }
            let Some((expect, line)) = tx.queued.pop_front() else {
                break;
            };
            tx.owed.push_back(expect);
            lines.push(line);
        }
        let first = tx.owed.front().copied();
        for line in lines {
            self.send(&line);
        }
        let t = &self.cfg.timeouts;
        self.due = first.map(|e| {
            now + match e {
                Expect::Rset => t.command,
                Expect::Mail => t.mail,
                Expect::Rcpt => t.rcpt,
                Expect::Data => t.data_init,
                Expect::Body => t.data_term,
            }
        });
    }

    fn on_transaction_reply(&mut self, mut tx: Transaction, r: ServerReply, now: Instant) {
        let Some(expect) = tx.owed.pop_front() else {
            self.state = State::Busy(Box::new(tx));
            return;
        };
        let ok = r.code / 100 == 2;
        match expect {
            Expect::Rset if !ok => {
                self.fail(
                    Failure::rejected(Kind::Rejected, Stage::Rset, r, "the server refused RSET"),
                    true,
                );
                return;
            }
            Expect::Rset => {}
            Expect::Mail | Expect::Rcpt if !ok => {
                if tx.failure.is_none() {
                    let (stage, what) = if expect == Expect::Mail {
                        (Stage::Mail, "the server refused the sender")
                    } else {
                        (Stage::Rcpt, "the server refused the recipient")
                    };
                    tx.failure = Some(Failure::rejected(Kind::Rejected, stage, r, what));
                }
            }
            Expect::Mail | Expect::Rcpt => {}
            Expect::Data if r.code == 354 => {
                if tx.failure.is_some() {
                    // A pipelined DATA the server took although the transaction failed: end it
                    // empty (RFC 2920 §3.1); its reply is ignored, the failure stands.
                    self.out.extend_from_slice(b".\r\n");
                    if self.cfg.transcript {
                        self.transcript.push(Said::Sent(".\r\n".into()));
                    }
                } else {
                    let body = std::mem::take(&mut tx.body);
                    self.out.extend_from_slice(&body);
                }
                tx.owed.push_back(Expect::Body);
            }
            Expect::Data => {
                if tx.failure.is_none() {
                    tx.failure = Some(Failure::rejected(
                        Kind::Rejected,
                        Stage::Data,
                        r,
                        "the server refused DATA",
                    ));
                }
            }
            Expect::Body => {
                let done = match tx.failure.take() {
                    Some(f) => Event::NotDelivered(f),
                    None if ok => Event::Delivered(r),
                    None => Event::NotDelivered(Failure::rejected(
                        Kind::Rejected,
                        Stage::Message,
                        r,
                        "the server refused the message",
                    )),
                };
                self.events.push_back(done);
                self.ready();
                return;
            }
        }
        if tx.owed.is_empty() && (tx.failure.is_some() || tx.queued.is_empty()) {
            // Without PIPELINING nothing more is sent after a refusal; with it, every reply to
            // what was sent is in. Either way the transaction is over and failed.
            let f = tx.failure.take().unwrap_or_else(|| {
                Failure::new(
                    Kind::Network,
                    false,
                    Stage::Data,
                    "the transaction ended without DATA",
                )
            });
            self.events.push_back(Event::NotDelivered(f));
            self.ready();
            return;
        }
        self.state = State::Busy(Box::new(tx));
        self.pump(now);
    }
}

/// The DATA payload: lines ended by CRLF (a bare CR or LF is taken as a line end too, so
/// nothing can smuggle a second message past a server), a leading dot doubled, and the final
/// `.` line.
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 5);
    let mut at_line_start = true;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        match b {
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                at_line_start = true;
            }
            _ => {
                if at_line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}
