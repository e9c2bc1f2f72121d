//! What each SMTP command does to a session: the verbs of the server machine (`server.rs` keeps
//! the modes, the input and output, the deadlines). No I/O here either.

use super::proto::{Command, RECIPIENTS_MAX, Reply, parse_mailbox, parse_reverse_path};
use super::server::{Event, Mode, Rejection, Server};
use std::time::Instant;

/// Slack over a declared SIZE (RFC 1870 §6.1) before the message counts as larger than declared.
const DECLARED_SLACK: u64 = 64 * 1024;

impl Server {
    pub(super) fn command(&mut self, cmd: Command, now: Instant) {
        let host = self.config.hostname.clone();
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
                if let Some(r) = self.tls_required() {
                    return self.error(r);
                }
                if self.helo.is_none() {
                    return self.error(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
                }
                if self.mail_from.is_some() {
                    return self.error(Reply::new(503, "5.5.1", "Error: nested MAIL command"));
                }
                let declared = match self.check_mail_params(&params) {
                    Ok(d) => d,
                    Err(r) => return self.error(r),
                };
                match parse_reverse_path(&from) {
                    Ok(addr) => {
                        self.mail_from = Some(addr);
                        self.declared_size = declared;
                        self.transaction_start = Some(now);
                        self.reply(Reply::new(250, "2.1.0", "Ok"));
                    }
                    Err(r) => self.error(r),
                }
            }
            Command::Rcpt { to, params } => {
                self.counts.rcpt += 1;
                if let Some(r) = self.tls_required() {
                    return self.error(r);
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
                if let Some(r) = self.tls_required() {
                    return self.error(r);
                }
                if self.mail_from.is_none() {
                    return self.error(Reply::new(503, "5.5.1", "Error: need MAIL command"));
                }
                if self.rcpts.is_empty() {
                    return self.error(Reply::new(554, "5.5.1", "Error: no valid recipients"));
                }
                // A declared size bounds what this message may hold (with slack for line-end and
                // dot-stuffing differences); without one, the fixed limit does.
                let max = self.config.max_message_size;
                let limit = match self.declared_size {
                    Some(n) => max.min(n.saturating_add(n / 10).saturating_add(DECLARED_SLACK)),
                    None => max,
                };
                // The reply (354, or 452 when DATA's memory budget is spent) waits for the
                // adapter's admission: see `Server::admitted`.
                self.mode = Mode::Admitting(limit);
                self.events.push_back(Event::Admit);
            }
            Command::Rset => {
                self.counts.rset += 1;
                if let Some(r) = self.tls_required() {
                    return self.error(r);
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
                // RFC 3207 §4: with TLS required, only NOOP, EHLO, STARTTLS and QUIT before it.
                if let Some(r) = self.tls_required() {
                    return self.error(r);
                }
                self.reply(Reply::new(
                    252,
                    "2.0.0",
                    "Cannot VRFY user, but will accept message and attempt delivery",
                ));
            }
            Command::Help => {
                self.counts.other += 1;
                if let Some(r) = self.tls_required() {
                    return self.error(r);
                }
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

    /// MAIL parameters, which only EHLO sessions may use: SIZE (RFC 1870) and BODY (RFC 6152).
    /// Returns the declared size.
    fn check_mail_params(&self, params: &[String]) -> Result<Option<u64>, Reply> {
        if !params.is_empty() && !self.esmtp {
            return Err(Reply::new(
                555,
                "5.5.4",
                "MAIL parameters need EHLO, not HELO",
            ));
        }
        let mut declared = None;
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
                    declared = Some(n);
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
        Ok(declared)
    }
}
