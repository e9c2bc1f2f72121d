//! The smol adapter for one connection to the smarthost: connect, move bytes between the socket
//! and the sans-IO [`Client`], do the TLS handshakes it asks for, enforce its deadlines, and keep
//! the transcript in unicorn.log's form. Protocol decisions are the machine's.

use crate::settings::{Auth, Settings, TlsMode as SettingsTls};
use crate::smtp::client::{
    Client, ClientConfig, Credentials, Event, Failure, Kind, Mechanism, Said, Stage, Timeouts,
    TlsMode,
};
use crate::smtp::replies::ServerReply;
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connecting (DNS and TCP) may take this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Writing one block of data may take this long (RFC 5321 §4.5.3.2.5: 3 minutes).
const WRITE_TIMEOUT: Duration = Duration::from_secs(3 * 60);
const READ_BUFFER: usize = 8 * 1024;

/// Where and how to connect, taken from the settings.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub client: ClientConfig,
    pub tls: Arc<rustls::ClientConfig>,
    /// With a transcript: the certificate the server shows, to say in it what it was.
    pub seen: Option<Arc<super::tls::Seen>>,
}

impl Target {
    /// The target the settings describe; an error names the setting that cannot work.
    pub fn from_settings(
        s: &Settings,
        timeouts: Timeouts,
        transcript: bool,
    ) -> Result<Target, Failure> {
        let config_error =
            |detail: String| Failure::new(Kind::Config, true, Stage::Connect, detail);
        if s.smtp.address.is_empty() {
            return Err(config_error(
                "smtp.address is empty: enter the SMTP server's address".into(),
            ));
        }
        let (tls, seen) = if transcript {
            let (tls, seen) = super::tls::client_config_seen(&s.smtp).map_err(config_error)?;
            (tls, Some(seen))
        } else {
            (
                super::tls::client_config(&s.smtp).map_err(config_error)?,
                None,
            )
        };
        let mechanism = match s.smtp.authentication {
            Auth::None => None,
            Auth::Plain => Some(Mechanism::Plain),
            Auth::Login => Some(Mechanism::Login),
            Auth::CramMd5 => Some(Mechanism::CramMd5),
        };
        Ok(Target {
            host: s.smtp.address.clone(),
            port: s.smtp.port,
            client: ClientConfig {
                helo_name: s.ehlo_domain().to_string(),
                tls: match s.smtp.tls {
                    SettingsTls::StarttlsAuto => TlsMode::StartTlsAuto,
                    SettingsTls::StarttlsRequired => TlsMode::StartTlsRequired,
                    SettingsTls::Implicit => TlsMode::Implicit,
                    SettingsTls::Off => TlsMode::Off,
                },
                auth: mechanism.map(|mechanism| Credentials {
                    mechanism,
                    username: s.smtp.username.clone(),
                    password: s.smtp.password.clone(),
                }),
                timeouts,
                transcript,
            },
            tls,
            seen,
        })
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

/// One open connection with a session on it.
pub struct Session {
    conn: Conn,
    client: Client,
    host: String,
    /// `host[ip]:port`, as Postfix names a relay in mail.log.
    pub relay: String,
    tls: Arc<rustls::ClientConfig>,
    seen: Option<Arc<super::tls::Seen>>,
    buf: Vec<u8>,
    /// The conversation so far in unicorn.log's form, when the target asked for it.
    pub transcript: Vec<String>,
}

/// A transcript line as unicorn.log shows strings: in double quotes, `\r` `\n` `"` `\\` escaped.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One line of the transcript for one thing said.
pub fn transcript_line(said: &Said) -> String {
    match said {
        Said::Sent(s) => format!("<- {}", quoted(s)),
        Said::Received(s) => format!("-> {}", quoted(s)),
        Said::TlsStarted => "TLS connection started".to_string(),
    }
}

/// Why a session could not be opened, with the transcript up to the failure and the relay
/// (`host[ip]:port`) when the connection was made.
#[derive(Debug)]
pub struct OpenError {
    pub failure: Failure,
    pub transcript: Vec<String>,
    pub relay: Option<String>,
}

impl Session {
    /// Connects and runs the session up to "ready for a message".
    pub async fn open(target: &Target) -> Result<Session, OpenError> {
        let mut transcript = Vec::new();
        if target.client.transcript {
            transcript.push(format!(
                "Connection opened: {}:{}",
                target.host, target.port
            ));
        }
        let connect = async {
            crate::net::connect(&target.host, target.port)
                .await
                .map_err(|e| describe_connect_error(&target.host, target.port, &e))
        };
        let timed_out = async {
            smol::Timer::after(CONNECT_TIMEOUT).await;
            Err(Failure::new(
                Kind::Timeout,
                false,
                Stage::Connect,
                format!(
                    "connecting to {}:{} took longer than {} s",
                    target.host,
                    target.port,
                    CONNECT_TIMEOUT.as_secs()
                ),
            ))
        };
        let tcp = match connect.or(timed_out).await {
            Ok(t) => t,
            Err(failure) => {
                return Err(OpenError {
                    failure,
                    transcript,
                    relay: None,
                });
            }
        };
        let _ = tcp.set_nodelay(true);
        let relay = match tcp.peer_addr() {
            Ok(a) => format!("{}[{}]:{}", target.host, a.ip(), a.port()),
            Err(_) => format!("{}:{}", target.host, target.port),
        };
        let implicit = target.client.tls == TlsMode::Implicit;
        let mut session = Session {
            conn: Conn::Plain(tcp),
            client: match Client::new(target.client.clone(), implicit, Instant::now()) {
                Ok(c) => c,
                Err(failure) => {
                    return Err(OpenError {
                        failure,
                        transcript,
                        relay: Some(relay),
                    });
                }
            },
            host: target.host.clone(),
            relay,
            tls: target.tls.clone(),
            seen: target.seen.clone(),
            buf: vec![0u8; READ_BUFFER],
            transcript,
        };
        if implicit {
            // Implicit TLS: the transcript says the connection is encrypted from the start.
            match session.handshake().await {
                Ok(()) => {
                    session.note("TLS connection started".into());
                    session.note_certificate("Certificate");
                }
                Err(f) => {
                    session.note_tls_failure(&f);
                    return Err(session.open_error(f));
                }
            }
        }
        match session.run(true).await {
            Event::Ready => Ok(session),
            Event::Closed(f) => {
                session.flush_quietly().await;
                let f = f.unwrap_or_else(|| {
                    Failure::new(
                        Kind::Network,
                        false,
                        Stage::Greeting,
                        "the server closed the connection",
                    )
                });
                Err(session.open_error(f))
            }
            other => {
                let f = Failure::new(
                    Kind::Network,
                    false,
                    Stage::Greeting,
                    format!("unexpected session event {other:?}"),
                );
                Err(session.open_error(f))
            }
        }
    }

    fn open_error(mut self, failure: Failure) -> OpenError {
        self.collect_transcript();
        OpenError {
            failure,
            transcript: self.transcript,
            relay: Some(self.relay),
        }
    }

    /// Sends one message. `Ok` is the server's reply to the final dot. After an `Err` the
    /// session may still be usable: check [`Session::is_ready`].
    pub async fn send(
        &mut self,
        from: &str,
        to: &str,
        data: &[u8],
    ) -> Result<ServerReply, Failure> {
        self.client.submit(from, to, data, Instant::now())?;
        match self.run(false).await {
            Event::Delivered(r) => Ok(r),
            Event::NotDelivered(f) => Err(f),
            Event::Closed(f) => {
                self.flush_quietly().await;
                Err(f.unwrap_or_else(|| {
                    Failure::new(
                        Kind::Network,
                        false,
                        Stage::Message,
                        "the server closed the connection",
                    )
                }))
            }
            other => Err(Failure::new(
                Kind::Network,
                false,
                Stage::Message,
                format!("unexpected session event {other:?}"),
            )),
        }
    }

    /// Whether the session runs over TLS (implicit or after STARTTLS).
    pub fn tls_active(&self) -> bool {
        self.client.tls_active()
    }

    pub fn is_ready(&self) -> bool {
        self.client.is_ready()
    }

    /// QUIT and close (at most a few seconds: nothing depends on the answer). Returns the rest
    /// of the transcript.
    pub async fn quit(mut self) -> Vec<String> {
        self.client.quit(Instant::now());
        let _ = self
            .run(false)
            .or(async {
                smol::Timer::after(Duration::from_secs(5)).await;
                Event::Closed(None)
            })
            .await;
        self.collect_transcript();
        if let Conn::Tls(t) = &mut self.conn {
            let _ = t
                .close()
                .or(async {
                    smol::Timer::after(Duration::from_secs(2)).await;
                    Ok(())
                })
                .await;
        }
        self.note("Connection closed".into());
        self.transcript
    }

    /// The transcript, taking what the machine recorded since the last call.
    pub fn take_transcript(&mut self) -> Vec<String> {
        self.collect_transcript();
        std::mem::take(&mut self.transcript)
    }

    fn collect_transcript(&mut self) {
        let said = self.client.take_transcript();
        self.transcript.extend(said.iter().map(transcript_line));
    }

    /// A line of herald's own in the transcript (not said on the wire).
    fn note(&mut self, line: String) {
        if self.seen.is_some() {
            self.transcript.push(line);
        }
    }

    /// What the certificate the server showed says, as `what: …`.
    fn note_certificate(&mut self, what: &str) {
        let Some(der) = self.seen.as_ref().and_then(|s| s.take()) else {
            return;
        };
        let now = crate::clock::unix_millis(std::time::SystemTime::now()) / 1000;
        let text = match crate::x509::summary(&der) {
            Some(s) => s.describe(now),
            None => "a certificate herald cannot read".into(),
        };
        self.note(format!("{what}: {text}"));
    }

    /// A failed handshake in the transcript: why, and the certificate that was refused.
    fn note_tls_failure(&mut self, f: &Failure) {
        self.note(format!("TLS handshake failed: {}", f.detail));
        self.note_certificate("Certificate shown");
    }

    /// Writes what the machine has to say (a polite QUIT after a failure), ignoring errors.
    /// With a transcript, the server's answer to that QUIT is read too (the machine has closed:
    /// read here, at most 2 s), so the transcript ends with it, or with the connection closing,
    /// and not with a QUIT that reads like a hang.
    async fn flush_quietly(&mut self) {
        let out = self.client.take_output();
        if !out.is_empty() {
            let _ = self
                .write(&out)
                .or(async {
                    smol::Timer::after(Duration::from_secs(2)).await;
                    Ok(())
                })
                .await;
        }
        self.collect_transcript();
        if self.seen.is_none() {
            return;
        }
        let said_quit = self
            .transcript
            .last()
            .is_some_and(|l| *l == transcript_line(&Said::Sent("QUIT\r\n".into())));
        if said_quit {
            let mut answer = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                let got = async { Some(self.read().await) }
                    .or(async {
                        smol::Timer::at(deadline).await;
                        None
                    })
                    .await;
                match got {
                    Some(Ok(n)) if n > 0 => answer.extend_from_slice(&self.buf[..n]),
                    _ => break,
                }
                let last_line_done = answer.ends_with(b"\n")
                    && answer
                        .split(|&b| b == b'\n')
                        .rev()
                        .nth(1)
                        .is_some_and(|l| l.get(3) != Some(&b'-'));
                if last_line_done || answer.len() > 4096 {
                    break;
                }
            }
            for line in String::from_utf8_lossy(&answer).lines() {
                let line = format!("{}\r\n", line.trim_end_matches('\r'));
                self.transcript.push(transcript_line(&Said::Received(line)));
            }
        }
        self.note("Connection closed".into());
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.conn {
            Conn::Plain(s) => s.write_all(bytes).await,
            Conn::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn read(&mut self) -> std::io::Result<usize> {
        match &mut self.conn {
            Conn::Plain(s) => s.read(&mut self.buf).await,
            Conn::Tls(s) => s.read(&mut self.buf).await,
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn handshake(&mut self) -> Result<(), Failure> {
        let name = super::tls::server_name(&self.host)
            .map_err(|d| Failure::new(Kind::Config, true, Stage::StartTls, d))?;
        let Conn::Plain(tcp) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err(Failure::new(
                Kind::Tls,
                false,
                Stage::StartTls,
                "TLS is already active",
            ));
        };
        let connector = TlsConnector::from(self.tls.clone());
        let host = self.host.clone();
        let tls = async {
            connector.connect(name, tcp).await.map_err(|e| {
                Failure::new(
                    Kind::Tls,
                    false,
                    Stage::StartTls,
                    super::tls::explain(&e, &host),
                )
            })
        }
        .or(async {
            smol::Timer::after(CONNECT_TIMEOUT).await;
            Err(Failure::new(
                Kind::Timeout,
                false,
                Stage::StartTls,
                "the TLS handshake took too long",
            ))
        })
        .await?;
        self.conn = Conn::Tls(Box::new(tls));
        Ok(())
    }

    /// Moves bytes until the machine has something to say other than "do TLS now".
    async fn run(&mut self, want_ready: bool) -> Event {
        loop {
            let out = self.client.take_output();
            if !out.is_empty() {
                let written = self.write(&out).or(async {
                    smol::Timer::after(WRITE_TIMEOUT).await;
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "writing timed out",
                    ))
                });
                if let Err(e) = written.await {
                    self.client.on_disconnect(&e.to_string());
                }
            }
            if let Some(event) = self.client.poll_event() {
                self.collect_transcript();
                match event {
                    Event::StartTls => {
                        match self.handshake().await {
                            Ok(()) => {
                                self.client.tls_started(Instant::now());
                                self.collect_transcript();
                                // Right after "TLS connection started", before the new EHLO.
                                let at = self
                                    .transcript
                                    .iter()
                                    .rposition(|l| l == "TLS connection started")
                                    .map_or(self.transcript.len(), |i| i + 1);
                                let rest = self.transcript.split_off(at);
                                self.note_certificate("Certificate");
                                self.transcript.extend(rest);
                            }
                            Err(f) => {
                                self.collect_transcript();
                                self.note_tls_failure(&f);
                                return Event::Closed(Some(f));
                            }
                        }
                        continue;
                    }
                    // "Ready again" after a message is news only to `open`.
                    Event::Ready if !want_ready => continue,
                    other => return other,
                }
            }
            if self.client.is_closed() {
                return Event::Closed(None);
            }
            let deadline = self
                .client
                .deadline()
                .unwrap_or_else(|| Instant::now() + Timeouts::RFC5321.command);
            let read = async { Some(self.read().await) };
            let got = read
                .or(async {
                    smol::Timer::at(deadline).await;
                    None
                })
                .await;
            match got {
                None => self.client.on_timeout(Instant::now()),
                Some(Ok(0)) => self
                    .client
                    .on_disconnect("the server closed the connection"),
                Some(Ok(n)) => self.client.receive(&self.buf[..n], Instant::now()),
                Some(Err(e)) => self.client.on_disconnect(&e.to_string()),
            }
        }
    }
}

fn describe_connect_error(host: &str, port: u16, e: &std::io::Error) -> Failure {
    let detail = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!(
                "{host}:{port} refused the connection (is the port right, and is the server running?)"
            )
        }
        std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidInput => {
            format!("could not resolve {host}: {e}")
        }
        _ if e.to_string().contains("failed to lookup")
            || e.to_string().contains("Name or service not known") =>
        {
            format!("could not resolve {host}: {e}")
        }
        _ => format!("could not connect to {host}:{port}: {e}"),
    };
    Failure::new(Kind::Network, false, Stage::Connect, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_lines_look_like_the_seed() {
        assert_eq!(
            transcript_line(&Said::Received("220 smtp.example.com ESMTP\r\n".into())),
            r#"-> "220 smtp.example.com ESMTP\r\n""#
        );
        assert_eq!(
            transcript_line(&Said::Sent("EHLO example.com\r\n".into())),
            r#"<- "EHLO example.com\r\n""#
        );
        assert_eq!(transcript_line(&Said::TlsStarted), "TLS connection started");
        assert_eq!(quoted("a\"b\\c\x01"), r#""a\"b\\c\x01""#);
    }
}
