//! Integration tests: one binary (it links once), driving the real `herald` binary against real
//! peers (curl, openssl, systemd-analyze). Every test makes its own data directory and ports.

mod harness;

mod board;
mod boot;
mod browser;
mod cli;
mod console;
mod crashes;
mod diagnostics;
mod disk;
mod front;
mod inbound;
mod lifecycle;
mod outbound;
mod pages;
mod replies;
