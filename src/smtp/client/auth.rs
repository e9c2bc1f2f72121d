//! AUTH PLAIN, LOGIN and CRAM-MD5 (RFC 4954, RFC 2195) for the client session: never PLAIN or
//! LOGIN without TLS unless `smtp.tls` is off, credentials redacted in the transcript.

use super::{Client, Failure, Kind, Mechanism, Stage, State, TlsMode};
use crate::crypto;
use crate::smtp::replies::ServerReply;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthStep {
    /// AUTH PLAIN with its initial response sent; waiting for 235.
    Final,
    LoginUser,
    LoginPassword,
    CramChallenge,
    /// We answered an unexpected prompt with `*`: the next reply must end the exchange.
    Cancelled,
}

impl Client {
    /// After EHLO (and TLS): authenticates when the settings say so, else the session is ready.
    pub(super) fn start_auth(&mut self, now: Instant) {
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

    pub(super) fn on_auth_reply(&mut self, step: AuthStep, r: ServerReply, now: Instant) {
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
}
