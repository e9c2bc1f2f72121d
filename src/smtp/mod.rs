//! SMTP protocol logic with no I/O: `proto` (limits, replies, commands, addresses), `receiver`
//! (per-mode byte receivers), `server` (the session state machine), `client` and `replies` (the
//! smarthost session machine and its reply parser). Nothing in this folder reads
//! a socket, a clock or a file: bytes and `Instant`s come in as arguments.

pub mod budget;
pub mod client;
mod commands;
pub mod proto;
pub mod receiver;
pub mod replies;
pub mod server;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod server_lifecycle_tests;
#[cfg(test)]
mod server_tests;
