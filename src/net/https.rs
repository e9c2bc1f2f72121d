//! The HTTPS front of the console: accepts TCP on `console.listen` (at most
//! [`MAX_CONNECTIONS`], [`PER_CLIENT_MAX`] from one address), terminates TLS with rustls (the
//! appliance certificate), reads each request whole with the bounds and deadlines of
//! [`crate::console::wire`] (a client that trickles bytes cannot hold the console), has the
//! router answer it on the blocking pool (at most [`HANDLERS`] at once: a handler may wait on a
//! password check, a commit or a test email), and writes the answer, keeping the client's
//! connection for its next request. One rustls in the tree; no second HTTP server in the way
//! (through tiny-http on a Unix socket each request cost several thread hops: 6,500 requests a
//! second against 16,000 now, see BENCHMARKS.md).
//!
//! The control socket (`control.sock`, owner-only) is served the same way without TLS
//! ([`run_control`]): same bounds, same handlers, on the same executor, so it costs no thread of
//! its own.

use crate::app::App;
use crate::console::wire::{self, Chunked, Framing, Head, Parsed, Refusal};
use crate::smtp::budget::DataBudget;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpListener;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TLS handshake that takes longer than this is dropped (slowloris on the handshake).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request started for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// A request head must be whole this long after its first byte, however the bytes trickle
/// (`408` after it).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A body has this long, plus a second for every [`BODY_RATE`] bytes it declares.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_RATE: usize = 64 * 1024;
/// The answer must be taken by the client within this long.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many console connections at once; past it a new one is closed at once.
const MAX_CONNECTIONS: usize = 128;
/// Connections one client address may hold (loopback exempt: the appliance's own tools and
/// benchmarks). A browser opens six.
pub const PER_CLIENT_MAX: u32 = 16;
/// Request bodies all connections may hold at once; past it a request gets `503`.
const BODIES_IN_FLIGHT: u64 = 16 << 20;
/// Handlers running at once; requests beyond wait their turn (the console's load is a browser or
/// two and the application's API).
pub const HANDLERS: usize = 8;

/// The console's TLS identity, swapped by a configuration run while connections are served
/// (each connection takes the one in force when it arrives).
pub type Identity = Arc<std::sync::Mutex<Arc<rustls::ServerConfig>>>;

/// Accepts connections until the task is dropped (dropping the executor drops every
/// connection).
pub async fn run(
    listener: Arc<TcpListener>,
    tls: Identity,
    app: Arc<App>,
    ex: Arc<smol::Executor<'static>>,
) {
    let slots = Arc::new(smol::lock::Semaphore::new(MAX_CONNECTIONS));
    let per_client = super::PerClient::map();
    let bodies = DataBudget::new(BODIES_IN_FLIGHT);
    let handlers = Arc::new(smol::lock::Semaphore::new(HANDLERS));
    loop {
        let (tcp, peer) = super::accept(&listener, "console").await;
        // Answers go out in a few writes (head, then body): without this, Nagle's algorithm
        // held each answer's tail for the client's delayed ACK, 40 ms a request.
        let _ = tcp.set_nodelay(true);
        let Some(permit) = slots.try_acquire_arc() else {
            log::warn!("console: {MAX_CONNECTIONS} connections open: closed a new one from {peer}");
            drop(tcp);
            continue;
        };
        let Some(counted) = super::PerClient::enter(&per_client, peer.ip(), PER_CLIENT_MAX) else {
            log::warn!(
                "console: {} already holds {PER_CLIENT_MAX} connections: closed a new one",
                peer.ip()
            );
            drop(tcp);
            continue;
        };
        let acceptor = futures_rustls::TlsAcceptor::from(
            tls.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        );
        let (app, bodies, handlers) = (app.clone(), bodies.clone(), handlers.clone());
        ex.spawn(async move {
            let _held = (permit, counted);
            let what = format!("console: the connection from {peer}");
            contained(&what, serve(acceptor, tcp, peer, app, &bodies, &handlers)).await;
        })
        .detach();
    }
}

/// Serves one connection; how it ended is logged (an I/O error as debug: clients go away), and a
/// panic in it ends that connection only.
async fn contained(what: &str, conn: impl std::future::Future<Output = std::io::Result<()>>) {
    match std::panic::AssertUnwindSafe(conn).catch_unwind().await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::debug!("{what}: {e}"),
        Err(p) => log::error!("{what} failed: {}", crate::watch::panic_message(&*p)),
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_string())
}

/// Reads more into `buf` before `deadline`; `Ok(0)` at the client's end of stream.
async fn read_more<R: AsyncReadExt + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = async { r.read(&mut chunk).await }
        .or(async {
            smol::Timer::at(deadline).await;
            Err(timed_out("deadline"))
        })
        .await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// How reading one request ended.
enum Read {
    Request(Head, Vec<u8>),
    /// The client closed, or stayed idle, between requests: nothing to answer.
    Gone,
    /// Answer this and close.
    Refused(Refusal),
}

/// Reads the next request from `r` (bytes already read are in `buf`; what follows the
/// request stays there).
async fn read_request<R: AsyncReadExt + Unpin, W: AsyncWriteExt + Unpin>(
    r: &mut R,
    w: &mut W,
    buf: &mut Vec<u8>,
    peer: &str,
    bodies: &Arc<DataBudget>,
) -> std::io::Result<(Read, Option<crate::smtp::budget::Reservation>)> {
    // The head: an idle wait for its first byte, then HEAD_TIMEOUT for all of it.
    let idle_end = Instant::now() + IDLE_TIMEOUT;
    let mut head_end: Option<Instant> = (!buf.is_empty()).then(|| Instant::now() + HEAD_TIMEOUT);
    let (head, len) = loop {
        match wire::parse_head(buf) {
            Parsed::Head(h, len) => break (h, len),
            Parsed::Refused(r) => return Ok((Read::Refused(r), None)),
            Parsed::Incomplete => {}
        }
        let deadline = head_end.unwrap_or(idle_end);
        match read_more(r, buf, deadline).await {
            Ok(0) => return Ok((Read::Gone, None)),
            Ok(_) => {
                head_end.get_or_insert_with(|| Instant::now() + HEAD_TIMEOUT);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Ok(match head_end {
                    None => (Read::Gone, None),
                    Some(_) => {
                        log::info!(
                            "console: {peer} did not send a whole request head in {HEAD_TIMEOUT:?}"
                        );
                        (
                            Read::Refused(Refusal {
                                status: 408,
                                message: format!(
                                    "the request head did not arrive within {} seconds",
                                    HEAD_TIMEOUT.as_secs()
                                ),
                            }),
                            None,
                        )
                    }
                });
            }
            Err(e) => return Err(e),
        }
    };
    buf.drain(..len);
    if let Err(r) = wire::check_length(&head) {
        return Ok((Read::Refused(r), None));
    }
    let declared = match head.framing {
        Framing::Length(n) => n,
        Framing::Chunked => wire::body_limit(&head.method, head.path()),
    };
    let Some(reservation) = bodies.reserve(declared as u64) else {
        return Ok((
            Read::Refused(Refusal {
                status: 503,
                message: "the console is busy receiving other requests; try again in a moment"
                    .into(),
            }),
            None,
        ));
    };
    if head.expects_continue {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        w.flush().await?;
    }
    let body_end =
        Instant::now() + BODY_TIMEOUT + Duration::from_secs((declared / BODY_RATE) as u64);
    let slow = || {
        Read::Refused(Refusal {
            status: 408,
            message: format!(
                "the request body did not arrive in time ({} seconds for {declared} bytes)",
                (body_end - Instant::now()).as_secs()
            ),
        })
    };
    let body = match head.framing {
        Framing::Length(n) => {
            while buf.len() < n {
                match read_more(r, buf, body_end).await {
                    Ok(0) => return Ok((Read::Gone, None)),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        return Ok((slow(), None));
                    }
                    Err(e) => return Err(e),
                }
            }
            buf.drain(..n).collect()
        }
        Framing::Chunked => {
            let mut chunked = Chunked::new(&head);
            loop {
                match chunked.feed(buf, &head) {
                    Ok((used, done)) => {
                        buf.drain(..used);
                        if done {
                            break chunked.body;
                        }
                    }
                    Err(r) => return Ok((Read::Refused(r), None)),
                }
                match read_more(r, buf, body_end).await {
                    Ok(0) => return Ok((Read::Gone, None)),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        return Ok((slow(), None));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    };
    Ok((Read::Request(head, body), Some(reservation)))
}

async fn serve(
    acceptor: futures_rustls::TlsAcceptor,
    tcp: smol::net::TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    bodies: &Arc<DataBudget>,
    handlers: &Arc<smol::lock::Semaphore>,
) -> std::io::Result<()> {
    let tls = acceptor
        .accept(tcp)
        .or(async {
            smol::Timer::after(HANDSHAKE_TIMEOUT).await;
            Err(timed_out("TLS handshake timed out"))
        })
        .await?;
    let from = Client {
        origin: crate::console::Origin::Console,
        peer: Some(peer),
        label: peer.to_string(),
        busy: None,
        closing: None,
    };
    serve_stream(tls, &from, app, bodies, handlers).await
}

/// Who is at the other end of a connection.
struct Client {
    origin: crate::console::Origin,
    peer: Option<SocketAddr>,
    /// As the log names it.
    label: String,
    /// Counts the requests in hand (the control socket's, for the shutdown to wait on).
    busy: Option<Arc<std::sync::atomic::AtomicUsize>>,
    /// Set at shutdown: a request read after it is answered 503 instead of handled.
    closing: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// Requests on one connection, one after another, until the client closes or a request says
/// so.
async fn serve_stream<S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin>(
    stream: S,
    from: &Client,
    app: Arc<App>,
    bodies: &Arc<DataBudget>,
    handlers: &Arc<smol::lock::Semaphore>,
) -> std::io::Result<()> {
    let peer = from.label.as_str();
    let (mut r, mut w) = smol::io::split(stream);
    let mut buf = Vec::new();
    loop {
        let (read, reservation) = read_request(&mut r, &mut w, &mut buf, peer, bodies).await?;
        let (head, body) = match read {
            Read::Request(h, b) => (h, b),
            Read::Gone => break,
            Read::Refused(refusal) => {
                log::info!(
                    "console: refused a request from {peer}: {} {}",
                    refusal.status,
                    refusal.message
                );
                w.write_all(&refusal.response())
                    .or(async {
                        smol::Timer::after(ANSWER_TIMEOUT).await;
                        Err(timed_out("answer"))
                    })
                    .await?;
                break;
            }
        };
        let in_hand = from.busy.as_ref().map(Busy::enter);
        if from
            .closing
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Acquire))
        {
            let stopping = crate::console::Response::error(
                503,
                "herald is stopping; nothing was done: try again once it is back",
            );
            w.write_all(&wire::response(&stopping, false, false))
                .or(async {
                    smol::Timer::after(ANSWER_TIMEOUT).await;
                    Err(timed_out("answer"))
                })
                .await?;
            break;
        }
        let keep = head.keep_alive();
        let head_only = head.method == "HEAD";
        let request = head.request(body, from.peer, from.origin);
        let resp = if crate::console::is_quick(&request) {
            // A page or a file: rendered from memory in microseconds, on this thread.
            crate::console::serve::answer(&app, &request)
        } else {
            let _turn = handlers.acquire().await;
            let app = app.clone();
            crate::pool::run(move || crate::console::serve::answer(&app, &request)).await
        };
        drop(reservation);
        w.write_all(&wire::response(&resp, keep, head_only))
            .or(async {
                smol::Timer::after(ANSWER_TIMEOUT).await;
                Err(timed_out("the answer was not taken in time"))
            })
            .await?;
        if let Some(d) = resp.download.as_ref().filter(|_| !head_only) {
            // A large body (the support bundle) from its file, a piece at a time: a slow client
            // may take as long as it needs, as long as each piece is taken in time.
            let mut body = Some(d.reader());
            loop {
                let mut reader = body.take().expect("the reader comes back");
                let (reader, piece, n) = crate::pool::run(move || {
                    use std::io::Read as _;
                    let mut piece = vec![0u8; 64 * 1024];
                    let n = reader.read(&mut piece);
                    (reader, piece, n)
                })
                .await;
                body = Some(reader);
                let n = n?;
                if n == 0 {
                    break;
                }
                w.write_all(&piece[..n])
                    .or(async {
                        smol::Timer::after(ANSWER_TIMEOUT).await;
                        Err(timed_out("the download was not taken in time"))
                    })
                    .await?;
            }
        }
        w.flush().await?;
        drop(in_hand);
        if !keep {
            break;
        }
    }
    w.flush().await?;
    w.close().await
}

/// Serves the control socket until the task is dropped: the same requests as the console's
/// front, from the appliance's own tools (the CLI, the application). `busy` counts the requests
/// in hand, so the shutdown can let them finish; once `closing` is set, a request read after it
/// is answered 503 and not handled.
pub async fn run_control(
    listener: smol::net::unix::UnixListener,
    app: Arc<App>,
    ex: Arc<smol::Executor<'static>>,
    busy: Arc<std::sync::atomic::AtomicUsize>,
    closing: Arc<std::sync::atomic::AtomicBool>,
) {
    let slots = Arc::new(smol::lock::Semaphore::new(MAX_CONNECTIONS));
    let bodies = DataBudget::new(BODIES_IN_FLIGHT);
    let handlers = Arc::new(smol::lock::Semaphore::new(HANDLERS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!("control socket: accept failed: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(permit) = slots.try_acquire_arc() else {
            log::warn!("control socket: {MAX_CONNECTIONS} connections open: closed a new one");
            continue;
        };
        let (app, bodies, handlers, busy, closing) = (
            app.clone(),
            bodies.clone(),
            handlers.clone(),
            busy.clone(),
            closing.clone(),
        );
        ex.spawn(async move {
            let _held = permit;
            let from = Client {
                origin: crate::console::Origin::Control,
                peer: None,
                label: "the control socket".into(),
                busy: Some(busy),
                closing: Some(closing),
            };
            let serving = serve_stream(stream, &from, app, &bodies, &handlers);
            contained("control socket: a connection", serving).await;
        })
        .detach();
    }
}

/// One request in hand, counted until its answer is written.
struct Busy(Arc<std::sync::atomic::AtomicUsize>);

impl Busy {
    fn enter(n: &Arc<std::sync::atomic::AtomicUsize>) -> Busy {
        n.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Busy(n.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}
