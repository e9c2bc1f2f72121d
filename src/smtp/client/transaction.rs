//! One message over the client session: MAIL, RCPT and DATA (pipelined when the server offers
//! PIPELINING, RSET before every message after the first), the server's SIZE respected, the
//! replies matched to what was sent, and exact dot-stuffing.

use super::{Client, Event, Failure, Kind, Said, Stage, State, line_safe};
use crate::smtp::replies::ServerReply;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    Rset,
    Mail,
    Rcpt,
    Data,
    Body,
}

#[derive(Debug)]
pub(super) struct Transaction {
    /// Commands not written yet (without PIPELINING they go one at a time).
    pub(super) queued: VecDeque<(Expect, String)>,
    /// Replies still owed by the server, in order.
    pub(super) owed: VecDeque<Expect>,
    /// The dot-stuffed body with its final dot, written after 354.
    pub(super) body: Vec<u8>,
    pub(super) failure: Option<Failure>,
}

impl Client {
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

    /// Writes what may be written now: everything with PIPELINING, else the next command once
    /// every reply is in.
    pub(super) fn pump(&mut self, now: Instant) {
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

    pub(super) fn on_transaction_reply(
        &mut self,
        mut tx: Transaction,
        r: ServerReply,
        now: Instant,
    ) {
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
