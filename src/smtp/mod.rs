//! SMTP protocol logic with no I/O: `proto` (limits, replies, commands, addresses), `receiver`
//! (per-mode byte receivers), `server` (the session state machine). Nothing in this folder reads
//! a socket, a clock or a file: bytes and `Instant`s come in as arguments.

pub mod budget;
mod commands;
pub mod proto;
pub mod receiver;
pub mod server;

#[cfg(test)]
mod server_tests;
