//! smol adapters between sockets and the rest: TLS identity (`tls`), the HTTPS front of the
//! console (`https`) and the port-25 listener (`smtp`). Thin by design: protocol decisions live elsewhere.

pub mod https;
pub mod smtp;
pub mod tls;
