//! The SMTP server as a state machine with no I/O: bytes and the current time in; reply bytes
//! and [`Event`]s out. The adapter (`net::smtp`) writes [`Server::take_output`], acts on each
//! event (STARTTLS, store a message, close), and tells the machine how that went.
//!
//! Reading: the adapter reads only while [`Server::wants_input`] is true. Bytes left over in a
//! read when the machine stops to wait (for the `354`, for the store, for TLS) are kept and
//! processed when it resumes — except after STARTTLS, where they are thrown away (CVE-2011-0411).
//!
//! DATA is answered `354` only once the adapter admits it ([`Event::Admit`]): the adapter bounds
//! how many messages are between their `354` and their final reply at once, so that under load a
//! client waits before sending its message rather than after its final dot (RFC 1047: the gap
//! between the dot and the `250` is when a broken connection duplicates a message).

use super::budget::{DataBudget, Reservation};
use super::proto::{Reply, parse_command};
use super::receiver::{DataReceiver, Line, LineReceiver, drain_line};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// DATA takes memory from the shared budget in steps of this many octets.
pub const BUDGET_CHUNK: u64 = 64 * 1024;

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
    /// The memory every session's DATA shares.
    pub budget: Arc<DataBudget>,
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
    /// DATA was accepted: call [`Server::admitted`] when the message may come (its `354`).
    Admit,
    /// Store the message durably, then call [`Server::stored`].
    Deliver(Envelope),
    /// A recipient was refused (log it).
    Rejected(Rejection),
    /// Write the pending output and close the connection.
    Close,
}

#[derive(Debug)]
pub(super) enum Mode {
    /// Before [`Server::greet`]: a client that talks now has not waited for the greeting.
    PreGreeting,
    Command,
    /// Draining the rest of an overlong command line.
    DrainLine,
    /// DATA accepted (its size limit), waiting for [`Server::admitted`] to answer it.
    Admitting(u64),
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
    pub(super) config: Config,
    pub(super) policy: Arc<dyn Policy>,
    pub(super) mode: Mode,
    pub(super) line: LineReceiver,
    pub(super) out: Vec<u8>,
    pub(super) events: std::collections::VecDeque<Event>,
    /// Input kept while waiting.
    pub(super) pending: Vec<u8>,
    pub(super) helo: Option<String>,
    pub(super) esmtp: bool,
    pub(super) tls: bool,
    pub(super) mail_from: Option<String>,
    /// The SIZE= of the current MAIL, if any.
    pub(super) declared_size: Option<u64>,
    /// What this session's DATA holds of the shared budget, from DATA until stored or refused.
    pub(super) reservation: Option<Reservation>,
    /// The budget ran out during this DATA: its end is answered 452 4.3.1.
    pub(super) starved: bool,
    pub(super) rcpts: Vec<(String, bool)>,
    pub(super) errors: u32,
    pub(super) last_activity: Instant,
    pub(super) transaction_start: Option<Instant>,
    pub(super) shutting_down: bool,
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
            declared_size: None,
            reservation: None,
            starved: false,
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
                    // Before this read is stored, the body's buffer must hold it, and every byte
                    // of the buffer (not only of the body) is reserved from the budget: it
                    // grows by doubling, at least a chunk, and falls back to just enough.
                    let want = (rx.stored() + input.len()).min(rx.limit());
                    if want > rx.capacity()
                        && !self.starved
                        && let Some(res) = self.reservation.as_mut()
                    {
                        let roomy = want
                            .max(rx.capacity() * 2)
                            .max(BUDGET_CHUNK as usize)
                            .min(rx.limit());
                        if res.grow_to(roomy as u64) {
                            rx.grow_capacity(roomy);
                        } else if res.grow_to(want as u64) {
                            rx.grow_capacity(want);
                        } else {
                            self.starved = true;
                            rx.stop_storing();
                        }
                    }
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
                Mode::Storing | Mode::Admitting(_) => {
                    // Pipelined behind the final dot (or sent before the 354); the adapter stops
                    // reading meanwhile, so this is at most one read's worth.
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
            Mode::Admitting(_) | Mode::Storing | Mode::Tls | Mode::Closed => return None,
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

    /// The adapter cannot take a message now (the disk is nearly full): DATA is answered with
    /// `reply`, a 4xx the client retries on, and the session goes on.
    pub fn not_admitted(&mut self, reply: Reply, now: Instant) {
        let Mode::Admitting(_) = self.mode else {
            return;
        };
        self.mode = Mode::Command;
        self.last_activity = now;
        self.reply(reply);
        let pending = std::mem::take(&mut self.pending);
        self.process(&pending, now);
    }

    /// The adapter admits the message DATA asked to send ([`Event::Admit`]): `354`, and any bytes
    /// that came early are taken as the message's; or `452 4.3.1` when the memory all sessions'
    /// DATA shares is spent (the transaction stays, for the client to try DATA again).
    pub fn admitted(&mut self, now: Instant) {
        let Mode::Admitting(limit) = self.mode else {
            return;
        };
        self.mode = Mode::Command;
        self.last_activity = now;
        match self.config.budget.reserve(limit.min(BUDGET_CHUNK)) {
            Some(reservation) => {
                self.reservation = Some(reservation);
                self.starved = false;
                self.reply(Reply::plain(
                    354,
                    vec!["End data with <CR><LF>.<CR><LF>".into()],
                ));
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let mut rx = DataReceiver::new(limit);
                rx.grow_capacity(BUDGET_CHUNK as usize);
                self.mode = Mode::Data(rx);
            }
            // Not the client's mistake: it retries later.
            None => self.reply(Reply::new(
                452,
                "4.3.1",
                "Insufficient system resources, try again later",
            )),
        }
        let pending = std::mem::take(&mut self.pending);
        self.process(&pending, now);
    }

    /// True from DATA (waiting for admission included) until the message's final reply is
    /// decided: what the adapter's admission counts. A pipelined next DATA may make it true again
    /// within the same call, so the adapter also lets a place go at each [`Event::Admit`].
    pub fn holds_message(&self) -> bool {
        matches!(
            self.mode,
            Mode::Admitting(_) | Mode::Data(_) | Mode::Storing
        )
    }

    /// The adapter stored (or failed to store) the message handed over with `Deliver`.
    pub fn stored(&mut self, result: Result<String, String>, now: Instant) {
        if !matches!(self.mode, Mode::Storing) {
            return;
        }
        self.mode = Mode::Command;
        self.last_activity = now;
        self.reservation = None;
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
        if self.close_if_shutting_down() {
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
            _ => self.close_with(self.shutting_down_reply()),
        }
    }

    pub(super) fn reply(&mut self, r: Reply) {
        r.encode(&mut self.out);
    }

    pub(super) fn close_with(&mut self, r: Reply) {
        if matches!(self.mode, Mode::Closed) {
            return;
        }
        self.reply(r);
        self.mode = Mode::Closed;
        self.events.push_back(Event::Close);
    }

    /// A reply to a client mistake; too many of them end the session.
    pub(super) fn error(&mut self, r: Reply) {
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

    /// `530 5.7.0` when TLS is enforced and not active yet.
    pub(super) fn tls_required(&self) -> Option<Reply> {
        (self.config.tls_enforced && !self.tls)
            .then(|| Reply::new(530, "5.7.0", "Must issue a STARTTLS command first"))
    }

    /// After a message in flight while the service stops: `421 4.3.2` and close. True if so.
    fn close_if_shutting_down(&mut self) -> bool {
        if self.shutting_down {
            self.close_with(self.shutting_down_reply());
        }
        self.shutting_down
    }

    /// The `421 4.3.2` a session gets when the service stops.
    fn shutting_down_reply(&self) -> Reply {
        let text = format!(
            "{} Service shutting down, try again later",
            self.config.hostname
        );
        Reply::new(421, "4.3.2", text)
    }

    pub(super) fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.declared_size = None;
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

    fn end_of_data(&mut self, rx: DataReceiver) {
        let from = self.mail_from.take().unwrap_or_default();
        let rcpts = std::mem::take(&mut self.rcpts);
        self.transaction_start = None;
        if std::mem::take(&mut self.starved) {
            self.reservation = None;
            self.declared_size = None;
            self.reply(Reply::new(
                452,
                "4.3.1",
                "Insufficient system storage, try again later",
            ));
            self.close_if_shutting_down();
            return;
        }
        if rx.overflowed() {
            self.reservation = None;
            let text = match self.declared_size.take() {
                Some(_) => "Message size exceeds its declared SIZE or the fixed limit",
                None => "Message size exceeds fixed limit",
            };
            self.reply(Reply::new(552, "5.3.4", text));
            self.close_if_shutting_down();
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
