//! What a client session is told: how to use TLS, which SASL mechanism with which credentials,
//! how long to wait for each reply, and the name to say in EHLO.

use std::time::Duration;

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
