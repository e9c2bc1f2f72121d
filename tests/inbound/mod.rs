//! Inbound SMTP (SPEC §4, §5): real clients (swaks, Python's smtplib, `openssl s_client`,
//! Postfix's smtp-source) deliver to reply addresses; pflogsumm reads mail.log; raw sockets try
//! the hostile cases (smuggling, bare LF, overlong lines, STARTTLS injection, routing tricks,
//! limits); SIGKILL loses no acknowledged message; SIGTERM says 421 and exits 0.
//!
//! - `peers`: the real clients and pflogsumm;
//! - `admission`: DATA waiting for a place among the messages in flight;
//! - `hostile`: raw sockets, the hostile cases and the limits;
//! - `durability`: SIGKILL and SIGTERM.

mod admission;
pub(crate) mod common;
mod durability;
mod hostile;
mod peers;
