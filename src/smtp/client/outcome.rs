//! What a client session reports: where it was, what kind of failure ended a message or the
//! session (transient or permanent, for the retry policy), the transcript lines and the events
//! the adapter acts on.

use crate::smtp::replies::ServerReply;

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

    pub(super) fn rejected(kind: Kind, stage: Stage, reply: ServerReply, what: &str) -> Failure {
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
