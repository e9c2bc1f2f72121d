//! Reply processing end to end (SPEC §4 "Reply processing", §3 `GET /manage/v1/replies`, §5
//! metroplex.log), with real pieces only:
//!
//! - herald sends a notification through the application API to Postfix's smtp-sink, which
//!   captures it; the test takes its `Reply-To` and writes a reply that quotes it, the way a mail
//!   client does ("On … wrote:" and `> ` lines, a signature);
//! - swaks and Python's smtplib deliver the reply to herald's inbound port;
//! - herald posts it to `tests/peers/webhook.py` (Python's http.server), which checks
//!   `X-Herald-Signature`, logs every request as a JSON line and answers what its mode file says
//!   (204, 500, 404, 410, drop the connection, hold the answer, an interim 1xx first),
//!   switchable while a test runs.
//!
//! Every peer is a [`Peer`](crate::harness::Peer) (killed on drop, with its own time limit),
//! every port is on loopback. The processor retries a failed POST only after 30 s (its first
//! backoff step), so the one test that needs a retry
//! (`faults::a_webhook_down_failing_or_dropping_*`) takes about 35 s: it fails three replies in
//! three ways at once and recovers once, so that wait is paid once. The SIGTERM test waits out
//! the service's 10 s drain. Everything else takes a few seconds.

pub(crate) mod common;
mod delivery;
mod faults;
mod tls;
