//! smol adapters between sockets and the rest: TLS identity (`tls`) and the HTTPS front of the
//! console (`https`). Thin by design: protocol decisions live elsewhere.

pub mod https;
pub mod tls;
