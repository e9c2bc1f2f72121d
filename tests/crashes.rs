//! Failures injected into a release-profile build (`--profile release-faults --features
//! failpoints`: the shipped panic strategy and optimisation, plus the hooks of
//! `src/failpoint.rs`): one message that panics the reader or crashes the process, a worker
//! that dies once or keeps dying, a panicking SMTP session and HTTP handler, and the commit
//! thread dying. No message, client or dead thread may stop mail while the listener says 250.

use crate::harness::*;
use crate::replies::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The release-faults build: `HERALD_FAULTS_BIN` (set by `make test`, which builds it first),
/// else built here once.
fn faults_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("HERALD_FAULTS_BIN") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let o = Command::new(cargo)
            .current_dir(ROOT)
            .args(["build", "--locked", "--profile", "release-faults"])
            .args(["--features", "failpoints", "--bin", "herald"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "building release-faults: {}",
            stderr(&o)
        );
        Path::new(ROOT).join("target/release-faults/herald")
    })
}

fn build<'a>(env: &'a [(&'a str, &'a str)]) -> Build<'a> {
    Build {
        bin: faults_bin(),
        env,
    }
}

/// A reply to `n` whose text carries a failpoint marker for `site`.
fn poisoned(n: &Notified, tag: &str, marker: &str) -> String {
    n.reply(
        &format!("<{tag}@client.example>"),
        &[],
        &format!("herald-failpoint: {marker}\n\nPoisoned on purpose."),
    )
}

#[test]
fn a_message_that_panics_the_reader_fails_alone_and_replies_keep_flowing() {
    let dir = TempDir::new("crash-panic");
    let mut s = Setup::start_with(&dir, Some(&["204"]), build(&[]));
    let n = s.notify("issue", 1, 2);
    let bad = swaks(
        &dir,
        s.smtp,
        SENDER,
        &n.reply_to,
        &poisoned(&n, "p1", "parse=panic"),
    );
    let good = swaks(
        &dir,
        s.smtp,
        SENDER,
        &n.reply_to,
        &n.reply("<g1@client.example>", &[], "Still here."),
    );
    let rec = wait_final(&s.h, &format!("{bad}-1"), WAIT);
    assert_eq!(rec["status"], "failed:internal", "{rec:#}");
    let why = rec["last_error"].as_str().unwrap();
    assert!(
        why.contains("internal error") && why.contains("failpoint parse"),
        "{why}"
    );
    let rec = wait_final(&s.h, &format!("{good}-1"), WAIT);
    assert_eq!(rec["status"], "processed", "{rec:#}");
    assert_eq!(
        s.hook().requests().len(),
        1,
        "only the good reply is posted"
    );
    s.h.wait_for_log("replies: reading");
    s.h.stop();
}

/// What `panic = "abort"` did to herald before: a message that kills the process, at every
/// boot. Now the record being read is pinned on disk; after three crashes on it, it is set
/// aside at the next boot and everything else flows.
#[test]
fn a_message_that_crashes_the_process_is_set_aside_after_three_boots() {
    let dir = TempDir::new("crash-abort");
    let mut s = Setup::start_with(&dir, Some(&["204"]), build(&[]));
    let n = s.notify("issue", 3, 4);
    let good = swaks(
        &dir,
        s.smtp,
        SENDER,
        &n.reply_to,
        &n.reply("<g2@client.example>", &[], "Before the crash."),
    );
    wait_final(&s.h, &format!("{good}-1"), WAIT);
    // The process dies as soon as the message is on disk and being read, maybe before swaks
    // has its 250 or mail.log its lines: the record being read is pinned in replies.reading.
    let file = dir.write("bad.eml", &poisoned(&n, "p2", "parse=abort"));
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &format!("127.0.0.1:{}", s.smtp)])
        .args(["--from", SENDER, "--to", &n.reply_to, "--timeout", "20"])
        .arg("--data")
        .arg(format!("@{}", file.display()));
    run_with_deadline(cmd);
    let st = s.h.wait_death();
    assert!(!st.success(), "{st}");
    let slot = std::fs::read(dir.join("data/replies.reading")).unwrap();
    let bad = String::from_utf8(slot)
        .unwrap()
        .trim_end_matches('\0')
        .to_string();
    assert!(bad.ends_with("-1") && bad.len() > 3, "{bad:?}");
    let data = dir.join("data");
    // Each boot (the unit's Restart= in production) reads it again and dies again...
    for crash in 1..3 {
        let mut h = Herald::spawn(faults_bin(), &[], Some(&s.cfg), &data);
        assert!(!h.wait_death().success());
        assert!(
            h.log().contains(&format!(
                "{bad} was being read when herald stopped abnormally ({crash} of 3"
            )),
            "{}",
            h.log()
        );
    }
    // ... until the third crash on it sets it aside, and the next reply goes through.
    let mut h = Herald::start_with(faults_bin(), &[], Some(&s.cfg), &data);
    h.wait_for_log(&format!(
        "{bad} was being read when herald stopped abnormally, 3 times: set aside as failed:internal"
    ));
    let rec = record(&h, &bad);
    assert_eq!(rec["status"], "failed:internal", "{rec:#}");
    let smtp = h.smtp_port();
    let after = swaks(
        &dir,
        smtp,
        SENDER,
        &n.reply_to,
        &n.reply("<g3@client.example>", &[], "After the crashes."),
    );
    assert_eq!(
        wait_final(&h, &format!("{after}-1"), WAIT)["status"],
        "processed"
    );
    assert!(metroplex(&h).contains(&format!("Moving {bad} => failed (internal")));
    s.h = h;
    s.h.stop();
}

#[test]
fn a_reply_worker_that_dies_is_started_again() {
    let dir = TempDir::new("crash-worker");
    let mut s = Setup::start_with(
        &dir,
        Some(&["204"]),
        build(&[("HERALD_FAILPOINTS", "replies.round=panic-once")]),
    );
    s.h.wait_for_log("the replies thread panicked: failpoint replies.round");
    s.h.wait_for_log("started replies again");
    let n = s.notify("issue", 5, 6);
    let id = swaks(
        &dir,
        s.smtp,
        SENDER,
        &n.reply_to,
        &n.reply("<g4@client.example>", &[], "After a restart."),
    );
    assert_eq!(
        wait_final(&s.h, &format!("{id}-1"), WAIT)["status"],
        "processed"
    );
    s.h.stop();
}

#[test]
fn a_worker_that_keeps_dying_stops_the_service_with_a_clear_error() {
    let dir = TempDir::new("crash-loop");
    let cfg = dir.write(
        "herald.toml",
        &herald_config(free_port(), Some(free_port())),
    );
    let env = [("HERALD_FAILPOINTS", "replies.round=panic")];
    let mut h = Herald::spawn(faults_bin(), &env, Some(&cfg), &dir.join("data"));
    let st = h.wait_death();
    assert_eq!(st.code(), Some(1), "{}", h.log());
    assert!(
        h.log()
            .contains("the replies thread panicked: failpoint replies.round, and it died 5 times"),
        "{}",
        h.log()
    );
}

#[test]
fn a_panicking_smtp_session_or_request_fails_alone() {
    let dir = TempDir::new("crash-session");
    let mut s = Setup::start_with(&dir, Some(&["204"]), build(&[]));
    let n = s.notify("issue", 7, 8);
    // The session that panics loses its connection before any 250: its sender retries.
    let file = dir.write("bad.eml", &poisoned(&n, "p3", "smtp=panic"));
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &format!("127.0.0.1:{}", s.smtp)])
        .args(["--from", SENDER, "--to", &n.reply_to, "--timeout", "20"])
        .arg("--data")
        .arg(format!("@{}", file.display()));
    let o = run_with_deadline(cmd);
    assert!(!o.status.success());
    assert!(!stdout(&o).contains("queued as"), "{}", stdout(&o));
    s.h.wait_for_log("smtp: the session from 127.0.0.1:");
    // The listener and the next session are fine.
    let id = swaks(
        &dir,
        s.smtp,
        SENDER,
        &n.reply_to,
        &n.reply("<g5@client.example>", &[], "Next session."),
    );
    assert_eq!(
        wait_final(&s.h, &format!("{id}-1"), WAIT)["status"],
        "processed"
    );
    // A panicking HTTP handler is a 500 for that request; the same worker serves the next.
    let hdr = "X-Failpoint: herald-failpoint: http=panic".to_string();
    let (code, body) =
        s.h.control_request("GET", "/manage/v1/version", &[hdr], None);
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("internal error"), "{body}");
    let (code, _) = s.h.control_request("GET", "/manage/v1/version", &[], None);
    assert_eq!(code, 200);
    s.h.stop();
}

/// The commit thread dying would leave every later message unanswered: the service stops at
/// once, non-zero, saying why, and the message in flight gets no 250.
#[test]
fn a_dead_commit_thread_stops_the_service_and_acknowledges_nothing() {
    let dir = TempDir::new("crash-commit");
    let cfg = dir.write("herald.toml", &inbound_config(""));
    let env = [("HERALD_FAILPOINTS", "commit=panic")];
    let mut h = Herald::start_with(faults_bin(), &env, Some(&cfg), &dir.join("data"));
    let port = h.smtp_port();
    let to = h.reply_address("issue", 9, 9);
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &format!("127.0.0.1:{port}")]).args([
        "--from",
        SENDER,
        "--to",
        &to,
        "--timeout",
        "20",
    ]);
    let o = run_with_deadline(cmd);
    assert!(
        !stdout(&o).contains("250 2.0.0 Ok: queued as"),
        "{}",
        stdout(&o)
    );
    let st = h.wait_death();
    assert_eq!(st.code(), Some(1));
    assert!(
        h.log()
            .contains("stopping: the commit thread panicked: failpoint commit"),
        "{}",
        h.log()
    );
}
