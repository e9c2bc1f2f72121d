//! The test email (seed: "Test email delivery"): one message sent now with the given settings,
//! the outcome in plain words, and the whole conversation appended to unicorn.log in the seed's
//! form with credentials redacted.

use super::session::{Session, Target};
use crate::logfile::LogFile;
use crate::settings::Settings;
use crate::smtp::client::{Failure, Kind, Timeouts};
use serde::Serialize;
use smol::future::FutureExt;
use std::time::{Duration, SystemTime};

/// An administrator is waiting: no single wait of the test is longer than this,
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// and the whole test no longer than this (the CLI waits 120 s for an answer).
pub const TEST_DEADLINE: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub ok: bool,
    /// The headline and the detail, in English: `"Authentication failed: 535 …"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure's kind (`rejected`, `config`, `tls`, `auth`, `timeout`, `network`), for a
    /// page to word the headline and the fix in its own language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// The error without its headline: what exactly went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What to do about the error, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The server's final reply to the message (or the one that refused it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    pub transcript: Vec<String>,
}

/// What to do about a failed test, by its kind: the settings to look at, in the form's words.
pub fn fix(kind: Kind) -> &'static str {
    match kind {
        Kind::Auth => {
            "Check Username and Password. If they are right, check Authentication: the methods the server offers are in its EHLO reply in the conversation below."
        }
        Kind::Tls => {
            "Fix the certificate problem named above on the SMTP server, or tell herald whom to trust with CA file; Verify certificate off is the last resort."
        }
        Kind::Config => "Change the setting the error names, then send the test again.",
        Kind::Timeout => {
            "Check Port and TLS mode (a server on port 465 speaks TLS at once: choose Implicit TLS), and that no firewall drops the connection."
        }
        Kind::Network => {
            "Check Server address and Port, and that this appliance can reach the server (DNS, firewall)."
        }
        Kind::Rejected => {
            "The server refused the email itself: its reply says why (often the No-reply email address, or the recipient, is not allowed to send or receive through it)."
        }
    }
}

/// The first line of each test in unicorn.log, and the body of the test email.
pub fn body_line(hostname: &str) -> String {
    format!("This is a test email generated from https://{hostname}/setup/settings")
}

/// Every kind of failure, for a catalogue to word each.
pub const KINDS: [Kind; 6] = [
    Kind::Rejected,
    Kind::Config,
    Kind::Tls,
    Kind::Auth,
    Kind::Timeout,
    Kind::Network,
];

/// The name of a failure's kind, as `TestResult::kind` gives it.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Rejected => "rejected",
        Kind::Config => "config",
        Kind::Tls => "tls",
        Kind::Auth => "auth",
        Kind::Timeout => "timeout",
        Kind::Network => "network",
    }
}

/// The headline of each kind of failure: what the administrator reads first.
pub fn headline(kind: Kind) -> &'static str {
    match kind {
        Kind::Rejected => "The SMTP server refused the email (immediate delivery error)",
        Kind::Config => "Outbound email configuration error",
        Kind::Tls => "TLS failure",
        Kind::Auth => "Authentication failed",
        Kind::Timeout => "Timed out",
        Kind::Network => "Could not talk to the SMTP server",
    }
}

/// Sends the test email to `to` with `settings` and appends the conversation to `unicorn_log`.
pub async fn send(settings: &Settings, to: &str, unicorn_log: &LogFile) -> TestResult {
    let result = attempt(settings, to)
        .or(async {
            smol::Timer::after(TEST_DEADLINE).await;
            let detail = format!(
                "the test took longer than {} s in all",
                TEST_DEADLINE.as_secs()
            );
            TestResult {
                ok: false,
                error: Some(format!("Timed out: {detail}")),
                kind: Some(kind_name(Kind::Timeout)),
                detail: Some(detail),
                fix: Some("Check Server address, Port and TLS mode, and the firewall.".into()),
                reply: None,
                transcript: Vec::new(),
            }
        })
        .await;
    let mut block = vec![body_line(&settings.hostname)];
    block.extend(result.transcript.iter().cloned());
    block.push(format!(
        "[{}] test email to {to}: {}",
        crate::clock::rfc3339(SystemTime::now()),
        match &result.error {
            None => "sent".to_string(),
            Some(e) => format!("failed: {e}"),
        }
    ));
    let mut text = block.join("\n");
    text.push('\n');
    unicorn_log.append(text.as_bytes());
    result
}

async fn attempt(settings: &Settings, to: &str) -> TestResult {
    let fail = |f: Failure, transcript: Vec<String>| TestResult {
        ok: false,
        error: Some(format!("{}: {}", headline(f.kind), f.detail)),
        kind: Some(kind_name(f.kind)),
        detail: Some(f.detail.clone()),
        fix: Some(fix(f.kind).to_string()),
        reply: f.reply.as_ref().map(|r| r.one_line()),
        transcript,
    };
    if !crate::settings::is_email(to) {
        let f = Failure::new(
            Kind::Config,
            true,
            crate::smtp::client::Stage::Rcpt,
            format!("{to:?} is not an email address"),
        );
        return fail(f, Vec::new());
    }
    let target = match Target::from_settings(settings, Timeouts::RFC5321.capped(TEST_TIMEOUT), true)
    {
        Ok(t) => t,
        Err(f) => return fail(f, Vec::new()),
    };
    let mut session = match Session::open(&target).await {
        Ok(s) => s,
        Err(e) => return fail(e.failure, e.transcript),
    };
    let from = settings.noreply_address();
    let now = SystemTime::now();
    let id = format!(
        "test-{}@{}",
        crate::crypto::hex(&crate::crypto::random_bytes(8)),
        settings.hostname
    );
    let unix = crate::clock::unix_millis(now) / 1000;
    let data = super::message::test_email(&settings.hostname, &from, to, &id, unix);
    let sent = session.send(&from, to, &data).await;
    let mut transcript = session.take_transcript();
    let result = match sent {
        Ok(r) => TestResult {
            ok: true,
            error: None,
            kind: None,
            detail: None,
            fix: None,
            reply: Some(r.one_line()),
            transcript: Vec::new(),
        },
        Err(f) => fail(f, Vec::new()),
    };
    if session.is_ready() {
        transcript.extend(session.quit().await);
    }
    TestResult {
        transcript,
        ..result
    }
}
