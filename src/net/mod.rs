//! smol adapters between sockets and the rest: TLS identity (`tls`), the HTTPS front of the
//! console (`https`) and the port-25 listener (`smtp`). Thin by design: protocol decisions live elsewhere.

pub mod https;
pub mod smtp;
pub mod tls;

use smol::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::time::Duration;

/// Binds a listen address from the settings; the error names the key.
pub async fn bind(key: &str, addr: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {key} {addr}: {e}"))
}

/// The next connection. A failed accept (out of descriptors, say) is logged and retried after a
/// pause instead of spinning.
pub async fn accept(listener: &TcpListener, what: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(c) => return c,
            Err(e) => {
                log::warn!("{what}: accept failed: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}
