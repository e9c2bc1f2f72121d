//! smol adapters between sockets and the rest: TLS identity (`tls`), the HTTPS front of the
//! console (`https`) and the port-25 listener (`smtp`), and what they share (binding, accepting,
//! connections per client). Thin by design: protocol decisions live elsewhere.

pub mod https;
pub mod smtp;
pub mod tls;

use smol::net::{TcpListener, TcpStream};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connects to `host:port`, a name or an address. A name is looked up on a [`crate::pool`]
/// thread (smol's own lookup runs on its blocking pool, whose threads never end), then each
/// address is tried in turn; the error is the last one's.
pub async fn connect(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return TcpStream::connect(SocketAddr::new(ip, port)).await;
    }
    let name = host.to_string();
    let addrs: Vec<SocketAddr> = crate::pool::run(move || {
        use std::net::ToSocketAddrs as _;
        (name.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect)
    })
    .await?;
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{host} has no address"),
    );
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

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

/// Connections held per client address.
pub type PerClients = Arc<Mutex<HashMap<IpAddr, u32>>>;

/// One connection counted against its client address while it lives, so one host cannot take
/// every slot of a listener.
pub struct PerClient {
    map: PerClients,
    ip: IpAddr,
}

impl PerClient {
    pub fn map() -> PerClients {
        Arc::default()
    }

    /// `None` when the address already holds `max`. Loopback is exempt: it is the appliance
    /// itself, and its tools and benchmarks.
    pub fn enter(map: &PerClients, ip: IpAddr, max: u32) -> Option<PerClient> {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max && !ip.is_loopback() {
            return None;
        }
        *n += 1;
        Some(PerClient {
            map: map.clone(),
            ip,
        })
    }
}

impl Drop for PerClient {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_address_cannot_take_every_slot() {
        let map = PerClient::map();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let held: Vec<_> = (0..20)
            .map(|_| PerClient::enter(&map, ip, 20).unwrap())
            .collect();
        assert!(PerClient::enter(&map, ip, 20).is_none());
        assert!(PerClient::enter(&map, "192.0.2.8".parse().unwrap(), 20).is_some());
        drop(held);
        assert!(PerClient::enter(&map, ip, 20).is_some());
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let many: Vec<_> = (0..60).map(|_| PerClient::enter(&map, lo, 20)).collect();
        assert!(many.iter().all(Option::is_some), "loopback is exempt");
        assert!(
            map.lock()
                .unwrap()
                .get(&"192.0.2.8".parse().unwrap())
                .is_none(),
            "let go"
        );
    }
}
