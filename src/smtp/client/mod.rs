//! The SMTP client session as a state machine: replies in, commands out, time passed in.
//!
//! One `Client` is one connection to the smarthost: greeting, EHLO (HELO when EHLO is refused),
//! STARTTLS as `smtp.tls` says, a fresh EHLO after TLS with anything sent before the handshake
//! thrown away, AUTH PLAIN / LOGIN / CRAM-MD5, then any number of messages (RSET between them,
//! MAIL/RCPT/DATA pipelined when the server offers PIPELINING), then QUIT. The adapter in
//! `src/outbound/` moves the bytes, does the TLS handshake when asked and calls `on_timeout`
//! when `deadline` passes. Every outcome is classified transient or permanent.
//!
//! Here: the session's states, the greeting, EHLO and STARTTLS, bytes in and out. `config` is
//! what the session is told, `outcome` what it reports, `auth` the SASL exchanges and
//! `transaction` one message (MAIL/RCPT/DATA and dot-stuffing).

use std::collections::VecDeque;
use std::time::Instant;

mod auth;
mod config;
mod outcome;
mod transaction;

pub use config::{ClientConfig, Credentials, Mechanism, Timeouts, TlsMode};
pub use outcome::{Event, Failure, Kind, Said, Stage};
pub use transaction::dot_stuff;

use super::replies::{ReplyParser, ServerReply};
use auth::AuthStep;
use transaction::{Expect, Transaction};

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
        self.start_auth(now);
    }
}
