//! The SMTP server as a state machine with no I/O: bytes and the current time in; reply bytes
//! and [`Event`]s out. The adapter (`net::smtp`) writes [`Server::take_output`], acts on each
//! event (STARTTLS, store a message, close), and tells the machine how that went.
//!
//! Reading: the adapter reads only while [`Server::wants_input`] is true. Bytes left over in a
//! read when the machine stops to wait (for the store, for TLS) are kept and processed when it
//! resumes — except after STARTTLS, where they are thrown away (CVE-2011-0411).

use super::proto::{
    Command, RECIPIENTS_MAX, Reply, parse_command, parse_mailbox, parse_reverse_path,
};
use super::receiver::{DataReceiver, Line, LineReceiver, drain_line};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the server decides about a recipient. Pure: no I/O.
pub trait Policy: Send + Sync {
    /// `Ok(discard)` accepts (`discard`: accepted only to be dropped); `Err` is the reply.
    fn recipient(&self, local: &str, domain: &str) -> Result<bool, Reply>;
}

/// Timeouts, RFC 5321 §4.5.3.2 for the server side, plus a whole-transaction deadline.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Waiting for the next command (§4.5.3.2.7: at least 5 minutes).
    pub command: Duration,
    /// Between reads inside DATA (the client's data block timeout is 3 minutes, §4.5.3.2.5).
    pub data: Duration,
    /// From MAIL to the end of DATA, however the bytes trickle in.
    pub transaction: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            command: Duration::from_secs(300),
            data: Duration::from_secs(180),
            transaction: Duration::from_secs(600),
        }
    }
}

/// What the machine is configured with for one session.
#[derive(Debug, Clone)]
pub struct Config {
    pub hostname: String,
    pub max_message_size: u64,
    /// A certificate is loaded: STARTTLS is offered (until TLS is active).
    pub tls_available: bool,
    /// MAIL, RCPT, DATA and RSET need STARTTLS first.
    pub tls_enforced: bool,
    pub timeouts: Timeouts,
    /// Errors (4xx/5xx replies to the client's mistakes) before `421` and close.
    pub max_errors: u32,
}

/// A message accepted up to the final dot, for the adapter to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub helo: String,
    pub mail_from: String,
    /// (address, discard)
    pub rcpts: Vec<(String, bool)>,
    pub data: Vec<u8>,
    pub tls: bool,
}

/// A recipient refused at RCPT, for the log (`NOQUEUE: reject: RCPT ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reply: Reply,
    pub from: String,
    pub to: String,
    pub helo: String,
}

/// What the adapter must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write the pending output, then run the TLS handshake and call [`Server::tls_started`].
    StartTls,
    /// Store the message durably, then call [`Server::stored`].
    Deliver(Envelope),
    /// A recipient was refused (log it).
    Rejected(Rejection),
    /// Write the pending output and close the connection.
    Close,
}

#[derive(Debug)]
enum Mode {
    /// Before [`Server::greet`]: a client that talks now has not waited for the greeting.
    PreGreeting,
    Command,
    /// Draining the rest of an overlong command line.
    DrainLine,
    Data(DataReceiver),
    /// Waiting for the adapter's answer to `Deliver`.
    Storing,
    /// Waiting for the TLS handshake.
    Tls,
    Closed,
}

/// Per-command counters for the `disconnect` log line, as Postfix prints them.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub ehlo: u32,
    pub helo: u32,
    pub starttls: u32,
    pub mail: u32,
    pub rcpt: u32,
    pub data: u32,
    pub rset: u32,
    pub quit: u32,
    pub other: u32,
}

pub struct Server {
    config: Config,
    policy: Arc<dyn Policy>,
    mode: Mode,
    line: LineReceiver,
    out: Vec<u8>,
    events: std::collections::VecDeque<Event>,
    /// Input kept while waiting.
    pending: Vec<u8>,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    mail_from: Option<String>,
    rcpts: Vec<(String, bool)>,
    errors: u32,
    last_activity: Instant,
    transaction_start: Option<Instant>,
    shutting_down: bool,
    pub counts: Counts,
}

impl Server {
    pub fn new(config: Config, policy: Arc<dyn Policy>, now: Instant) -> Server {
        Server {
            config,
            policy,
            mode: Mode::PreGreeting,
            line: LineReceiver::default(),
            out: Vec::new(),
            events: Default::default(),
            pending: Vec::new(),
            helo: None,
            esmtp: false,
            tls: false,
            mail_from: None,
            rcpts: Vec::new(),
            errors: 0,
            last_activity: now,
            transaction_start: None,
            shutting_down: false,
            counts: Counts::default(),
        }
    }

    /// Sends the greeting. Input that came before it is refused and the session closed.
    pub fn greet(&mut self, now: Instant) {
        if !matches!(self.mode, Mode::PreGreeting) {
            return;
        }
        self.last_activity = now;
        if self.pending.is_empty() {
            self.reply(Reply::plain(
                220,
                vec![format!("{} ESMTP herald", self.config.hostname)],
            ));
            self.mode = Mode::Command;
        } else {
            self.pending.clear();
            self.close_with(Reply::new(
                554,
                "5.5.1",
                "Protocol error: commands sent before the greeting",
            ));
        }
    }

    /// Refuses the session outright (too many connections): the greeting is a 421.
    pub fn refuse(&mut self, reply: Reply) {
        self.close_with(reply);
    }

    /// Bytes written by the client.
    pub fn receive(&mut self, input: &[u8], now: Instant) {
        if matches!(self.mode, Mode::Closed) {
            return;
        }
        self.last_activity = now;
        if !self.pending.is_empty() && !matches!(self.mode, Mode::PreGreeting) {
            // Still waiting to resume: keep order.
            self.pending.extend_from_slice(input);
            return;
        }
        self.process(input, now);
    }

    fn process(&mut self, mut input: &[u8], now: Instant) {
        while !input.is_empty() {
            let used = match &mut self.mode {
                Mode::Command => {
                    let (n, line) = self.line.feed(input);
                    if let Some(line) = line {
                        self.on_line(line, now);
                    }
                    n
                }
                Mode::DrainLine => {
                    let (n, done) = drain_line(input);
                    if done {
                        self.mode = Mode::Command;
                        self.error(Reply::new(500, "5.5.2", "Syntax error: line too long"));
                    }
                    n
                }
                Mode::Data(rx) => {
                    let (n, done) = rx.feed(input);
                    if done {
                        let Mode::Data(rx) = std::mem::replace(&mut self.mode, Mode::Command)
                        else {
                            unreachable!()
                        };
                        self.end_of_data(rx);
                    }
                    n
                }
                Mode::Tls => {
                    // Plaintext pipelined behind STARTTLS is never trusted (CVE-2011-0411).
                    input.len()
                }
                Mode::PreGreeting => {
                    // Remember only that the client spoke first.
                    if self.pending.is_empty() {
                        self.pending.push(input[0]);
                    }
                    input.len()
                }
                Mode::Storing => {
                    // Pipelined behind the final dot; the adapter stops reading meanwhile, so
                    // this is at most one read's worth.
                    self.pending.extend_from_slice(input);
                    input.len()
                }
                Mode::Closed => input.len(),
            };
            input = &input[used..];
        }
    }

    /// True when the adapter should read more bytes.
    pub fn wants_input(&self) -> bool {
        matches!(
            self.mode,
            Mode::Command | Mode::DrainLine | Mode::Data(_) | Mode::PreGreeting
        )
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// Reply bytes to write now.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When the adapter must call [`Server::on_timeout`] if nothing arrives before.
    pub fn deadline(&self) -> Option<Instant> {
        let t = &self.config.timeouts;
        let idle = match self.mode {
            Mode::Data(_) => t.data,
            Mode::Command | Mode::DrainLine | Mode::PreGreeting => t.command,
            // Waiting on our own side: the adapter bounds those.
            Mode::Storing | Mode::Tls | Mode::Closed => return None,
        };
        let mut d = self.last_activity + idle;
        if let Some(start) = self.transaction_start {
            d = d.min(start + t.transaction);
        }
        Some(d)
    }

    /// Time passed with nothing from the client.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.deadline().is_some_and(|d| now >= d) {
            self.close_with(Reply::new(
                421,
                "4.4.2",
                format!("{} Error: timeout exceeded", self.config.hostname),
            ));
        }
    }

    /// The TLS handshake after STARTTLS succeeded: start over, as RFC 3207 §4.2 requires.
    pub fn tls_started(&mut self, now: Instant) {
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.reset_transaction();
        self.line.clear();
        self.pending.clear();
        self.last_activity = now;
        self.mode = Mode::Command;
    }

    /// The adapter stored (or failed to store) the message handed over with `Deliver`.
    pub fn stored(&mut self, result: Result<String, String>, now: Instant) {
        if !matches!(self.mode, Mode::Storing) {
            return;
        }
        self.mode = Mode::Command;
        self.last_activity = now;
        match result {
            Ok(queue_id) => self.reply(Reply::new(
                250,
                "2.0.0",
                format!("Ok: queued as {queue_id}"),
            )),
            Err(_) => self.reply(Reply::new(
                451,
                "4.3.0",
                "Error: queue file write error, try again later",
            )),
        }
        if self.shutting_down {
            self.close_with(Reply::new(
                421,
                "4.3.2",
                format!(
                    "{} Service shutting down, try again later",
                    self.config.hostname
                ),
            ));
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        self.process(&pending, now);
    }

    /// The service is stopping: a session between commands is told `421 4.3.2` now; one in DATA
    /// or storing finishes that message first.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        match self.mode {
            Mode::Data(_) | Mode::Storing => {}
            Mode::Closed => {}
            _ => self.close_with(Reply::new(
                421,
                "4.3.2",
                format!(
                    "{} Service shutting down, try again later",
                    self.config.hostname
                ),
            )),
        }
    }

    fn reply(&mut self, r: Reply) {
        r.encode(&mut self.out);
    }

    fn close_with(&mut self, r: Reply) {
        if matches!(self.mode, Mode::Closed) {
            return;
        }
        self.reply(r);
        self.mode = Mode::Closed;
        self.events.push_back(Event::Close);
    }

    /// A reply to a client mistake; too many of them end the session.
    fn error(&mut self, r: Reply) {
        self.reply(r);
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.close_with(Reply::new(
                421,
                "4.7.0",
                format!("{} Error: too many errors", self.config.hostname),
            ));
        }
    }

    fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.rcpts.clear();
        self.transaction_start = None;
    }

    fn on_line(&mut self, line: Line, now: Instant) {
        let line = match line {
            Line::Complete(l) => l,
            Line::BareLf => {
                return self.error(Reply::new(
                    500,
                    "5.5.2",
                    "Syntax error: command lines must end in CRLF, not a bare LF",
                ));
            }
            Line::TooLong => {
                self.mode = Mode::DrainLine;
                return;
            }
        };
        let cmd = match parse_command(&line) {
            Ok(c) => c,
            Err(e) => {
                self.counts.other += 1;
                return self.error(e.0);
            }
        };
        self.command(cmd, now);
    }

    fn command(&mut self, cmd: Command, now: Instant) {
        let host = self.config.hostname.clone();
        let needs_tls = self.config.tls_enforced && !self.tls;
        match cmd {
            Command::Ehlo(domain) => {
                self.counts.ehlo += 1;
                self.reset_transaction();
                self.helo = Some(domain.clone());
                self.esmtp = true;
                let mut lines = vec![format!("{host} Hello {domain}"), "PIPELINING".into()];
                lines.push(format!("SIZE {}", self.config.max_message_size));
                lines.push("8BITMIME".into());
                lines.push("ENHANCEDSTATUSCODES".into());
                if self.config.tls_available && !self.tls {
                    lines.push("STARTTLS".into());
                }
                lines.push("HELP".into());
                self.reply(Reply::plain(250, lines));
            }
            Command::Helo(domain) => {
                self.counts.helo += 1;
                self.reset_transaction();
                self.helo = Some(domain);
                self.esmtp = false;
                self.reply(Reply::plain(250, vec![host]));
            }
            Command::StartTls => {
                self.counts.starttls += 1;
                if self.tls {
                    return self.error(Reply::new(503, "5.5.1", "Error: TLS already active"));
                }
                if !self.config.tls_available {
                    return self.error(Reply::new(502, "5.5.1", "Error: command not implemented"));
                }
                if self.helo.is_none() || !self.esmtp {
                    return self.error(Reply::new(503, "5.5.1", "Error: send EHLO first"));
                }
                self.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
                self.mode = Mode::Tls;
                self.pending.clear();
                self.events.push_back(Event::StartTls);
            }
            Command::Mail { from, params } => {
                self.counts.mail += 1;
                if needs_tls {
                    return self.error(Reply::new(
                        530,
                        "5.7.0",
                        "Must issue a STARTTLS command first",
                    ));
                }
                if self.helo.is_none() {
                    return self.error(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
                }
                if self.mail_from.is_some() {
                    return self.error(Reply::new(503, "5.5.1", "Error: nested MAIL command"));
                }
                if let Err(r) = self.check_mail_params(&params) {
                    return self.error(r);
                }
                match parse_reverse_path(&from) {
                    Ok(addr) => {
                        self.mail_from = Some(addr);
                        self.transaction_start = Some(now);
                        self.reply(Reply::new(250, "2.1.0", "Ok"));
                    }
                    Err(r) => self.error(r),
                }
            }
            Command::Rcpt { to, params } => {
                self.counts.rcpt += 1;
                if needs_tls {
                    return self.error(Reply::new(
                        530,
                        "5.7.0",
                        "Must issue a STARTTLS command first",
                    ));
                }
                let Some(from) = self.mail_from.clone() else {
                    return self.error(Reply::new(503, "5.5.1", "Error: need MAIL command"));
                };
                if !params.is_empty() {
                    return self.error(Reply::new(555, "5.5.4", "Unsupported RCPT parameter"));
                }
                if self.rcpts.len() >= RECIPIENTS_MAX {
                    // Not an error of the client's: it sends the rest in another transaction.
                    return self.reply(Reply::new(452, "4.5.3", "Error: too many recipients"));
                }
                let (local, domain) = match parse_mailbox(&to) {
                    Ok(x) => x,
                    Err(r) => return self.error(r),
                };
                match self.policy.recipient(&local, &domain) {
                    Ok(discard) => {
                        self.rcpts.push((format!("{local}@{domain}"), discard));
                        self.reply(Reply::new(250, "2.1.5", "Ok"));
                    }
                    Err(r) => {
                        self.events.push_back(Event::Rejected(Rejection {
                            reply: r.clone(),
                            from,
                            to: format!("{local}@{domain}"),
                            helo: self.helo.clone().unwrap_or_default(),
                        }));
                        self.error(r);
                    }
                }
            }
            Command::Data => {
                self.counts.data += 1;
                if needs_tls {
                    return self.error(Reply::new(
                        530,
                        "5.7.0",
                        "Must issue a STARTTLS command first",
                    ));
                }
                if self.mail_from.is_none() {
                    return self.error(Reply::new(503, "5.5.1", "Error: need MAIL command"));
                }
                if self.rcpts.is_empty() {
                    return self.error(Reply::new(554, "5.5.1", "Error: no valid recipients"));
                }
                self.reply(Reply::plain(
                    354,
                    vec!["End data with <CR><LF>.<CR><LF>".into()],
                ));
                let limit = usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX);
                self.mode = Mode::Data(DataReceiver::new(limit));
            }
            Command::Rset => {
                self.counts.rset += 1;
                if needs_tls {
                    return self.error(Reply::new(
                        530,
                        "5.7.0",
                        "Must issue a STARTTLS command first",
                    ));
                }
                self.reset_transaction();
                self.reply(Reply::new(250, "2.0.0", "Ok"));
            }
            Command::Noop => {
                self.counts.other += 1;
                self.reply(Reply::new(250, "2.0.0", "Ok"));
            }
            Command::Vrfy => {
                self.counts.other += 1;
                self.reply(Reply::new(
                    252,
                    "2.0.0",
                    "Cannot VRFY user, but will accept message and attempt delivery",
                ));
            }
            Command::Help => {
                self.counts.other += 1;
                self.reply(Reply::new(
                    214,
                    "2.0.0",
                    "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS",
                ));
            }
            Command::Quit => {
                self.counts.quit += 1;
                self.close_with(Reply::new(221, "2.0.0", "Bye"));
            }
            Command::NotImplemented(_) => {
                self.counts.other += 1;
                self.error(Reply::new(502, "5.5.1", "Error: command not implemented"));
            }
            Command::Unknown(_) => {
                self.counts.other += 1;
                self.error(Reply::new(500, "5.5.2", "Error: command not recognized"));
            }
        }
    }

    /// MAIL parameters: SIZE (RFC 1870) and BODY (RFC 6152); anything else is refused.
    fn check_mail_params(&self, params: &[String]) -> Result<(), Reply> {
        for p in params {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.to_ascii_uppercase().as_str() {
                "SIZE" => {
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Reply::new(501, "5.5.4", "Bad SIZE parameter"));
                    }
                    // Digits too many for 64 bits are simply too big (RFC 1870 §6.1).
                    let n: u64 = v.parse().unwrap_or(u64::MAX);
                    if n > self.config.max_message_size {
                        return Err(Reply::new(552, "5.3.4", "Message size exceeds fixed limit"));
                    }
                }
                "BODY" if v.eq_ignore_ascii_case("8BITMIME") || v.eq_ignore_ascii_case("7BIT") => {}
                "BODY" => return Err(Reply::new(501, "5.5.4", "Bad BODY parameter")),
                _ => {
                    return Err(Reply::new(
                        555,
                        "5.5.4",
                        format!("Unsupported MAIL parameter {k}"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn end_of_data(&mut self, rx: DataReceiver) {
        let from = self.mail_from.take().unwrap_or_default();
        let rcpts = std::mem::take(&mut self.rcpts);
        self.transaction_start = None;
        if rx.overflowed() {
            self.reply(Reply::new(552, "5.3.4", "Message size exceeds fixed limit"));
            if self.shutting_down {
                self.close_with(Reply::new(
                    421,
                    "4.3.2",
                    format!(
                        "{} Service shutting down, try again later",
                        self.config.hostname
                    ),
                ));
            }
            return;
        }
        self.mode = Mode::Storing;
        self.events.push_back(Event::Deliver(Envelope {
            helo: self.helo.clone().unwrap_or_default(),
            mail_from: from,
            rcpts,
            data: rx.into_body(),
            tls: self.tls,
        }));
    }
}
