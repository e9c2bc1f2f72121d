//! Outbound mail (SPEC §2 `herald test-email`, §3 `POST /manage/v1/email/test` and the
//! application API, §4 the outbound notification, §5 unicorn.log and mail.log) against SMTP
//! servers herald did not write:
//!
//! - `tests/peers/smarthost.py` (aiosmtpd): plain, STARTTLS or implicit TLS, AUTH PLAIN / LOGIN
//!   / CRAM-MD5; it keeps every message it accepts as `N.eml` + `N.json` (envelope, AUTH user,
//!   TLS). The test email's TLS and authentication cases run against it.
//! - Postfix's `smtp-sink`: captures each message with its envelope (`-d`), or fails on purpose
//!   at a given command (`-f` 5xx, `-r` 4xx, `-q` hang up). The delivery worker's cases run
//!   against it.
//!
//! Certificates are made here with rcgen: a test CA, and leaf certificates from it that are valid
//! for `localhost`, expired, or for another name. Every peer is a [`Peer`] (killed on drop, with
//! a time limit of its own), every port is on loopback.
//!
//! The worker retries a deferred notification only after a minute, so the queue tests look at
//! first attempts, and at 5xx replies, which fail at once. To see connections shared, a test
//! makes several notifications due together: a slow smtp-sink (`-w`) or a smarthost held with
//! SIGSTOP keeps the worker's first round busy while the rest come in.

pub(crate) mod common;
mod faults;
mod notifications;
mod testmail;
