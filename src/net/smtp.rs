//! The port-25 listener: accepts connections (capped by a semaphore), runs one
//! [`crate::smtp::server::Server`] per connection, does the reads, writes, timeouts and the TLS handshake
//! the machine asks for, admits DATA ([`Admission`]), stores messages through the spool, and
//! writes mail.log.

use crate::inbound::spool::{Incoming, Spool};
use crate::maillog::MailLog;
use crate::smtp::proto::Reply;
use crate::smtp::server::{Config, Counts, Event, Policy, Server};
use futures_rustls::TlsAcceptor;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A read buffer per session.
const READ_BUFFER: usize = 16 * 1024;
/// A client that does not take our reply within this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// A TLS handshake that takes longer is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a session needs, shared by all sessions.
pub struct Inbound {
    pub config: Config,
    pub policy: Arc<dyn Policy>,
    pub tls: Option<TlsAcceptor>,
    pub spool: Arc<Spool>,
    pub maillog: Arc<MailLog>,
    pub slots: Arc<smol::lock::Semaphore>,
    /// Messages between their `354` and their final reply.
    pub admission: Admission,
    /// Sessions alive now (for draining).
    pub active: Arc<AtomicUsize>,
    /// Sessions per client address, so one host cannot take every slot.
    pub per_client: super::PerClients,
    /// The data directory's free space: below its low water DATA is refused for the moment.
    pub disk: Arc<crate::disk::Disk>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Messages that may be between their `354` and their final reply at once. A DATA beyond them
/// waits (at most [`ADMISSION_WAIT`]) for its `354`, so that under load the client waits before
/// it sends its message rather than after its final dot: RFC 1047 asks receivers to keep the
/// gap between the dot and the `250` short, as a connection lost in it duplicates the message.
/// Without the bound, a burst of final dots from every session lands in one commit group and
/// each waits for all of them. Measured on 2 cores, 100 smtp-source sessions, the probe's p99
/// dot-to-250 over 300 messages (BENCHMARKS.md has the method): 2 KB, 10.9 ms unbounded against
/// 4.7 ms with 12 (16, 24: 5.7, 6.7 ms), for 18% fewer messages a second; 20 KB, 18.9 against
/// 10.9 ms, for 32% fewer. At 20 sessions no loss was measurable. Three `make bench` runs with
/// 12 gave 3.9, 4.8 and 5.5 ms at 100 sessions of 2 KB (15.3 ms before).
pub const MESSAGES_IN_FLIGHT: usize = 12;
/// How long a DATA waits for admission before it goes ahead anyway: clients that take their
/// time over their messages can slow the others down, never stop them.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(1);

/// The bound on messages between `354` and final reply ([`MESSAGES_IN_FLIGHT`]).
#[derive(Clone)]
pub struct Admission {
    slots: Arc<smol::lock::Semaphore>,
    wait: Duration,
}

/// A message's place among those in flight, held until its final reply is decided (before it is
/// written: a client slow to read it holds no place).
pub type Admitted = Option<smol::lock::SemaphoreGuardArc>;

impl Admission {
    pub fn new(in_flight: usize, wait: Duration) -> Admission {
        Admission {
            slots: Arc::new(smol::lock::Semaphore::new(in_flight)),
            wait,
        }
    }

    /// Waits for a place, at most `wait`; `None` when it went ahead without one.
    pub async fn admit(&self) -> Admitted {
        // The usual case, a place free: no timer is armed for it.
        if let Some(place) = self.slots.try_acquire_arc() {
            return Some(place);
        }
        let place = async { Some(self.slots.acquire_arc().await) };
        let late = async {
            smol::Timer::after(self.wait).await;
            None
        };
        place.or(late).await
    }
}

/// Concurrent sessions one client address may hold (Postfix's
/// `smtpd_client_connection_count_limit` is 50; a mail server replying to notifications needs
/// a few). Loopback is exempt: it is the appliance itself, and its tools and benchmarks.
pub const PER_CLIENT_MAX: u32 = 20;

/// Accepts until the task is dropped. `stop` closes when the service is shutting down.
pub async fn serve(
    listener: Arc<TcpListener>,
    ctx: Arc<Inbound>,
    ex: Arc<smol::Executor<'static>>,
    stop: smol::channel::Receiver<()>,
) {
    loop {
        let (tcp, peer) = super::accept(&listener, "smtp").await;
        let _ = tcp.set_nodelay(true);
        let (ctx2, stop) = (ctx.clone(), stop.clone());
        ctx.active.fetch_add(1, Ordering::AcqRel);
        crate::metrics::Metrics::inc(&ctx.metrics.smtpd_connects);
        ex.spawn(async move {
            let active = ctx2.active.clone();
            // A panic in one session ends that connection (its message, if any, was not
            // acknowledged), never the listener or the other sessions.
            let run = std::panic::AssertUnwindSafe(session(tcp, peer, ctx2, stop));
            if let Err(p) = run.catch_unwind().await {
                log::error!(
                    "smtp: the session from {peer} failed: {}",
                    crate::watch::panic_message(&*p)
                );
            }
            active.fetch_sub(1, Ordering::AcqRel);
        })
        .detach();
    }
}

/// A plain or TLS connection (`Gone` only while the plain stream is in the TLS handshake).
enum Conn {
    Plain(TcpStream),
    Tls(Box<futures_rustls::server::TlsStream<TcpStream>>),
    Gone,
}

impl Conn {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(buf).await,
            Conn::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

async fn timeout<T>(d: Duration) -> std::io::Result<T> {
    smol::Timer::after(d).await;
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "timed out",
    ))
}

/// Postfix names a client without reverse DNS `unknown[ip]`.
fn client_name(peer: &SocketAddr) -> String {
    format!("unknown[{}]", peer.ip())
}

async fn session(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Inbound>,
    stop: smol::channel::Receiver<()>,
) {
    let client = client_name(&peer);
    let log = &ctx.maillog;
    log.line("smtpd", format!("connect from {client}"));
    let now = Instant::now();
    let mut server = Server::new(ctx.config.clone(), ctx.policy.clone(), now);
    let per_client = super::PerClient::enter(&ctx.per_client, peer.ip(), PER_CLIENT_MAX);
    let permit = match (ctx.slots.try_acquire_arc(), &per_client) {
        (Some(_), None) => {
            server.refuse(Reply::new(
                421,
                "4.7.0",
                format!(
                    "{} Error: too many connections from your address",
                    ctx.config.hostname
                ),
            ));
            log.line(
                "smtpd",
                format!("warning: too many connections from {client}: refused"),
            );
            None
        }
        (Some(p), Some(_)) => Some(p),
        (None, _) => {
            server.refuse(Reply::new(
                421,
                "4.7.0",
                format!("{} Error: too many connections", ctx.config.hostname),
            ));
            log.line(
                "smtpd",
                format!("warning: too many connections: refused {client}"),
            );
            None
        }
    };
    let mut buf = vec![0u8; READ_BUFFER];
    let mut conn = Conn::Plain(tcp);
    if permit.is_some() {
        // A client whose bytes are already here did not wait for the greeting.
        if let Conn::Plain(tcp) = &mut conn
            && let Some(Ok(n @ 1..)) = smol::future::poll_once(tcp.read(&mut buf)).await
        {
            server.receive(&buf[..n], Instant::now());
        }
        server.greet(Instant::now());
    }
    let outcome = drive(&mut server, &mut conn, &mut buf, &ctx, &client, &stop).await;
    if outcome.is_ok()
        && let Conn::Tls(tls) = &mut conn
    {
        // End TLS properly (close_notify), so the client does not see a truncated stream.
        let _ = tls.close().or(timeout(Duration::from_secs(5))).await;
    }
    if let Err(e) = outcome {
        log.line(
            "smtpd",
            format!(
                "lost connection after {} from {client}: {e}",
                last_command(&server.counts)
            ),
        );
    }
    log.line(
        "smtpd",
        format!("disconnect from {client}{}", counts_text(&server.counts)),
    );
}

/// The session loop: write what the machine says, act on its events, read when it wants input.
async fn drive(
    server: &mut Server,
    conn: &mut Conn,
    buf: &mut [u8],
    ctx: &Inbound,
    client: &str,
    stop: &smol::channel::Receiver<()>,
) -> std::io::Result<()> {
    // Set once the service said stop: the session then finishes on its own terms.
    let mut stopping = false;
    let mut admitted: Admitted = None;
    loop {
        if admitted.is_some() && !server.holds_message() {
            admitted = None;
        }
        let out = server.take_output();
        if !out.is_empty() {
            conn.write_all(&out).or(timeout(WRITE_TIMEOUT)).await?;
        }
        if let Some(event) = server.poll_event() {
            match event {
                Event::Close => return Ok(()),
                Event::Rejected(r) => {
                    ctx.metrics.rejected(r.reply.code);
                    ctx.maillog.line(
                        "smtpd",
                        format!(
                            "NOQUEUE: reject: RCPT from {client}: {}; from=<{}> to=<{}> proto=ESMTP helo=<{}>",
                            r.reply.summary(),
                            r.from,
                            r.to,
                            r.helo
                        ),
                    )
                }
                Event::Admit if ctx.disk.is_low() => {
                    admitted = None;
                    ctx.metrics.rejected(452);
                    server.not_admitted(
                        Reply::new(452, "4.3.1", "Insufficient system storage, try again later"),
                        Instant::now(),
                    );
                    ctx.maillog.line(
                        "smtpd",
                        format!("NOQUEUE: reject: DATA from {client}: 452 4.3.1 Insufficient system storage (the data directory's disk is nearly full)"),
                    );
                }
                Event::Admit => {
                    // A new DATA means the previous message's final reply is decided, even when
                    // the machine went on to this one in the same call (pipelined after the dot):
                    // its place goes before this one waits for another.
                    admitted = None;
                    let place = async { Some(ctx.admission.admit().await) };
                    let stopped = async {
                        if stopping {
                            std::future::pending::<()>().await;
                        }
                        let _ = stop.recv().await;
                        None
                    };
                    match place.or(stopped).await {
                        Some(place) => {
                            if place.is_none() {
                                log::debug!(
                                    "smtp: DATA from {client} went ahead unadmitted after {ADMISSION_WAIT:?}"
                                );
                            }
                            admitted = place;
                            server.admitted(Instant::now());
                        }
                        // The service stops while this DATA waits: 421 4.3.2, not a 354.
                        None => {
                            stopping = true;
                            server.shutdown();
                        }
                    }
                }
                Event::StartTls => {
                    let Some(acceptor) = &ctx.tls else {
                        return Err(std::io::Error::other("STARTTLS without a certificate"));
                    };
                    let Conn::Plain(tcp) = std::mem::replace(conn, Conn::Gone) else {
                        return Err(std::io::Error::other("TLS already active"));
                    };
                    let tls = acceptor
                        .accept(tcp)
                        .or(timeout(HANDSHAKE_TIMEOUT))
                        .await
                        .map_err(|e| {
                            ctx.maillog
                                .line("smtpd", format!("SSL_accept error from {client}: {e}"));
                            e
                        })?;
                    *conn = Conn::Tls(Box::new(tls));
                    crate::metrics::Metrics::inc(&ctx.metrics.smtpd_tls);
                    server.tls_started(Instant::now());
                }
                Event::Deliver(mut env) => {
                    crate::failpoint::message("smtp", &env.data);
                    let message_id = crate::inbound::message_id(&env.data);
                    let size = env.data.len();
                    let stored = ctx
                        .spool
                        .store(Incoming {
                            mail_from: &env.mail_from,
                            rcpts: &env.rcpts,
                            // Moved, not copied: the body's memory is what its budget counted.
                            data: std::mem::take(&mut env.data),
                            tls: env.tls,
                            client,
                            helo: &env.helo,
                            message_id: message_id.clone(),
                        })
                        .await;
                    match stored {
                        Ok((id, _)) => {
                            crate::metrics::Metrics::inc(&ctx.metrics.smtpd_processed);
                            log_accepted(
                                &ctx.maillog,
                                client,
                                &id.to_string(),
                                &env,
                                size,
                                message_id.as_deref(),
                            );
                            server.stored(Ok(id.to_string()), Instant::now());
                        }
                        Err(e) => {
                            log::error!("smtp: cannot store a message from {client}: {e}");
                            ctx.maillog.line(
                                "smtpd",
                                format!(
                                    "warning: queue file write error for message from {client}: {e}"
                                ),
                            );
                            server.stored(Err(e), Instant::now());
                        }
                    }
                }
            }
            continue;
        }
        if server.is_closed() {
            return Ok(());
        }
        if !server.wants_input() {
            return Err(std::io::Error::other("session stalled"));
        }
        let deadline = server
            .deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(300));
        let read = async { Some(conn.read(buf).await) };
        let timer = async {
            smol::Timer::at(deadline).await;
            None
        };
        let got = if stopping {
            read.or(timer).await
        } else {
            let stopped = async {
                let _ = stop.recv().await;
                Some(Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "stop",
                )))
            };
            read.or(timer).or(stopped).await
        };
        match got {
            None => server.on_timeout(Instant::now()),
            Some(Ok(0)) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "client closed",
                ));
            }
            Some(Ok(n)) => server.receive(&buf[..n], Instant::now()),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted && !stopping => {
                stopping = true;
                server.shutdown();
            }
            Some(Err(e)) => return Err(e),
        }
    }
}

fn log_accepted(
    log: &MailLog,
    client: &str,
    id: &str,
    env: &crate::smtp::server::Envelope,
    size: usize,
    message_id: Option<&str>,
) {
    let mut lines = vec![
        ("smtpd", format!("{id}: client={client}")),
        (
            "cleanup",
            format!("{id}: message-id={}", message_id.unwrap_or("<>")),
        ),
        (
            "qmgr",
            format!(
                "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
                env.mail_from,
                size,
                env.rcpts.len()
            ),
        ),
    ];
    for (to, discard) in &env.rcpts {
        let what = if *discard {
            "discarded: no-reply address"
        } else {
            "queued for reply processing"
        };
        lines.push((
            "spool",
            format!("{id}: to=<{to}>, relay=spool, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent ({what})"),
        ));
    }
    lines.push(("qmgr", format!("{id}: removed")));
    log.write(&lines);
}

fn last_command(c: &Counts) -> &'static str {
    if c.starttls > 0 && c.mail == 0 {
        "STARTTLS"
    } else if c.data > 0 {
        "DATA"
    } else if c.rcpt > 0 {
        "RCPT"
    } else if c.mail > 0 {
        "MAIL"
    } else if c.ehlo + c.helo > 0 {
        "EHLO"
    } else {
        "CONNECT"
    }
}

/// ` ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5`, as Postfix ends a disconnect line.
fn counts_text(c: &Counts) -> String {
    let mut s = String::new();
    let mut total = 0;
    for (name, n) in [
        ("ehlo", c.ehlo),
        ("helo", c.helo),
        ("starttls", c.starttls),
        ("mail", c.mail),
        ("rcpt", c.rcpt),
        ("data", c.data),
        ("rset", c.rset),
        ("quit", c.quit),
        ("unknown", c.other),
    ] {
        if n > 0 {
            s.push_str(&format!(" {name}={n}"));
            total += n;
        }
    }
    s.push_str(&format!(" commands={total}"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the bound a DATA waits for a place and gets the first one freed; one that waits too
    /// long goes ahead without.
    #[test]
    fn admission_bounds_messages_in_flight_and_never_stops_one() {
        smol::block_on(async {
            let short = Admission::new(1, Duration::from_millis(20));
            let first = short.admit().await;
            assert!(first.is_some());
            assert!(short.admit().await.is_none(), "went ahead after the wait");
            drop(first);
            assert!(short.admit().await.is_some());

            // A waiter is given the place its holder frees (the wait is long: the test would
            // take a minute and then fail if it were not).
            let long = Admission::new(1, Duration::from_secs(60));
            let held = long.admit().await;
            let waiter = {
                let long = long.clone();
                smol::spawn(async move { long.admit().await })
            };
            smol::Timer::after(Duration::from_millis(10)).await;
            drop(held);
            assert!(waiter.await.is_some());
        });
    }
}
