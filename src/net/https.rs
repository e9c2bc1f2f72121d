//! The HTTPS front of the console: accepts TCP on `console.listen`, terminates TLS with rustls
//! (the appliance certificate), and pipes the plaintext to the console's tiny-http server on an
//! owner-only Unix socket in the data directory. tiny-http's own TLS feature would pull a second,
//! older rustls; this keeps one.

use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpListener;
use smol::net::unix::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A TLS handshake that takes longer than this is dropped (slowloris on the handshake).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no bytes either way for this long is closed: a client cannot hold a
/// tiny-http worker by starting a request and never finishing it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// At most this many console connections at once; past it a new one is closed at once.
const MAX_CONNECTIONS: usize = 128;

/// Accepts connections until the task is dropped (dropping the executor drops every
/// connection, which closes its side of the Unix socket, so tiny-http's workers see EOF).
pub async fn run(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    backend: PathBuf,
    ex: Arc<smol::Executor<'static>>,
) {
    let acceptor = futures_rustls::TlsAcceptor::from(tls);
    let slots = Arc::new(smol::lock::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = super::accept(&listener, "console").await;
        let Some(permit) = slots.try_acquire_arc() else {
            log::warn!("console: {MAX_CONNECTIONS} connections open: closed a new one from {peer}");
            drop(tcp);
            continue;
        };
        let (acceptor, backend) = (acceptor.clone(), backend.clone());
        ex.spawn(async move {
            let _permit = permit;
            let run = std::panic::AssertUnwindSafe(serve(acceptor, tcp, &backend));
            match run.catch_unwind().await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::debug!("console: connection from {peer}: {e}"),
                Err(p) => log::error!(
                    "console: the connection from {peer} failed: {}",
                    crate::watch::panic_message(&*p)
                ),
            }
        })
        .detach();
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_string())
}

async fn serve(
    acceptor: futures_rustls::TlsAcceptor,
    tcp: smol::net::TcpStream,
    backend: &std::path::Path,
) -> std::io::Result<()> {
    let tls = acceptor
        .accept(tcp)
        .or(async {
            smol::Timer::after(HANDSHAKE_TIMEOUT).await;
            Err(timed_out("TLS handshake timed out"))
        })
        .await?;
    let plain = UnixStream::connect(backend).await?;
    let (mut tls_r, mut tls_w) = smol::io::split(tls);
    let (mut plain_r, mut plain_w) = (plain.clone(), plain);
    // Milliseconds since `start` of the last byte either way.
    let start = Instant::now();
    let activity = AtomicU64::new(0);
    let touch = || activity.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    let upstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match tls_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    touch();
                    if plain_w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        // The client is done sending (or gone): tell tiny-http, which finishes and closes.
        let _ = plain_w.shutdown(std::net::Shutdown::Write);
        smol::future::pending::<std::io::Result<()>>().await
    };
    let downstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = plain_r.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            touch();
            tls_w.write_all(&buf[..n]).await?;
            tls_w.flush().await?;
        }
        tls_w.close().await
    };
    let idle = async {
        loop {
            let due =
                start + Duration::from_millis(activity.load(Ordering::Relaxed)) + IDLE_TIMEOUT;
            if Instant::now() >= due {
                return Err(timed_out("idle"));
            }
            smol::Timer::at(due).await;
        }
    };
    // The connection ends when tiny-http closes its side, or when nothing moves for too long.
    downstream.or(upstream).or(idle).await
}
