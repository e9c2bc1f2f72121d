//! DATA admission: only so many messages may be between 354 and their final reply at once. A
//! DATA past that waits for a place (bounded), is never refused for it, and is told 421 if
//! herald is stopped while it waits; the clients already admitted finish their messages.

use super::common::*;
use crate::harness::*;
use std::time::Instant;

/// Clients that hold every place between 354 and final reply (they send DATA and then nothing)
/// make a new DATA wait for its 354, never refuse it: swaks gets through after the bounded wait,
/// and the stalled clients' messages are stored when they finish; a message's place is let go
/// for a transaction pipelined behind its dot.
#[test]
fn stalled_clients_holding_every_data_place_slow_a_message_down_but_never_stop_it() {
    let dir = TempDir::new("in-admission");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 42, 7);
    let mut stalled: Vec<Smtp> = (0..herald::net::smtp::MESSAGES_IN_FLIGHT)
        .map(|_| {
            let mut c = Smtp::session(port);
            c.cmd("MAIL FROM:<stalled@example.org>").expect("250 2.1.0");
            c.cmd(&format!("RCPT TO:<{to}>")).expect("250 2.1.5");
            c.cmd("DATA").expect("354 ");
            c
        })
        .collect();

    let started = Instant::now();
    let o = swaks(
        port,
        &[
            "--to",
            &to,
            "--header",
            "Message-Id: <admitted-late@client.example>",
        ],
    );
    let out = stdout(&o);
    assert!(o.status.success(), "swaks: {}\n{out}", stderr(&o));
    assert!(out.contains("354 End data with"), "{out}");
    assert!(out.contains("250 2.0.0 Ok: queued as "), "{out}");
    assert!(
        started.elapsed() >= herald::net::smtp::ADMISSION_WAIT,
        "swaks's DATA waited for a place ({:?})",
        started.elapsed()
    );

    // Every place is still held. The first stalled client finishes and pipelines a second
    // transaction behind its dot: the place of the first message is let go for the second, which
    // gets its 354 without waiting for one.
    let first = &mut stalled[0];
    let started = Instant::now();
    first.send(
        format!(
            "Subject: stalled 0\r\n\r\nlate\r\n.\r\nMAIL FROM:<again@example.org>\r\nRCPT TO:<{to}>\r\nDATA\r\n"
        )
        .as_bytes(),
    );
    first.reply().queue_id();
    first.reply().expect("250 2.1.0");
    first.reply().expect("250 2.1.5");
    first.reply().expect("354 ");
    assert!(
        started.elapsed() < herald::net::smtp::ADMISSION_WAIT,
        "the second DATA did not wait for a place ({:?})",
        started.elapsed()
    );
    first.send(b"Subject: again\r\n\r\nsecond\r\n.\r\n");
    first.reply().queue_id();
    for (i, c) in stalled.iter_mut().enumerate().skip(1) {
        c.send(format!("Subject: stalled {i}\r\n\r\nlate\r\n.\r\n").as_bytes());
        c.reply().queue_id();
    }
    for c in &mut stalled {
        c.cmd("QUIT").expect("221");
    }
    let replies = h.replies();
    assert_eq!(
        replies.len(),
        herald::net::smtp::MESSAGES_IN_FLIGHT + 2,
        "every message stored once: {replies:#?}"
    );
    h.stop();
}

/// SIGTERM while a DATA waits for a place: that client is told 421 4.3.2 at once (it has not
/// been told 354); the clients already in DATA finish their messages, then get 421 too.
#[test]
fn sigterm_while_data_waits_for_a_place_says_421_and_the_admitted_finish() {
    let dir = TempDir::new("in-admission-term");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 42, 7);
    let open = |c: &mut Smtp| {
        c.cmd("MAIL FROM:<stalled@example.org>").expect("250 2.1.0");
        c.cmd(&format!("RCPT TO:<{to}>")).expect("250 2.1.5");
    };
    let mut admitted: Vec<Smtp> = (0..herald::net::smtp::MESSAGES_IN_FLIGHT)
        .map(|_| {
            let mut c = Smtp::session(port);
            open(&mut c);
            c.cmd("DATA").expect("354 ");
            c
        })
        .collect();
    let mut waiting = Smtp::session(port);
    open(&mut waiting);
    waiting.send(b"DATA\r\n");
    h.send_signal("TERM");
    waiting.reply().expect("421 4.3.2");
    assert!(waiting.try_reply().is_none(), "closed after the 421");
    for c in &mut admitted {
        c.send(b"Subject: finishing\r\n\r\nlate\r\n.\r\n");
        c.reply().queue_id();
        c.reply().expect("421 4.3.2");
    }
    assert!(h.wait_exit("TERM").success());
}
