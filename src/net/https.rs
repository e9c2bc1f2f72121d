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
use std::time::Duration;

/// A TLS handshake that takes longer than this is dropped (slowloris on the handshake).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many console connections at once; the console is for one administrator.
const MAX_CONNECTIONS: usize = 128;

/// Accepts connections until the task is dropped.
pub async fn run(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    backend: PathBuf,
    ex: Arc<smol::Executor<'static>>,
) {
    let acceptor = futures_rustls::TlsAcceptor::from(tls);
    let slots = Arc::new(smol::lock::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = slots.acquire_arc().await;
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::warn!("console: accept failed: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, backend) = (acceptor.clone(), backend.clone());
        ex.spawn(async move {
            let _permit = permit;
            if let Err(e) = serve(acceptor, tcp, &backend).await {
                log::debug!("console: connection from {peer}: {e}");
            }
        })
        .detach();
    }
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
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ))
        })
        .await?;
    let plain = UnixStream::connect(backend).await?;
    let (mut tls_r, mut tls_w) = smol::io::split(tls);
    let (mut plain_r, mut plain_w) = (plain.clone(), plain);
    let upstream = async {
        let _ = smol::io::copy(&mut tls_r, &mut plain_w).await;
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
            tls_w.write_all(&buf[..n]).await?;
            tls_w.flush().await?;
        }
        tls_w.close().await
    };
    // The connection ends when tiny-http closes its side.
    downstream.or(upstream).await
}
