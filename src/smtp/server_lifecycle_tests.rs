//! The server machine over a session's life, outside any one command: what comes before the
//! greeting, a refused connection, a failed store, DATA waiting for admission, timeouts,
//! shutdown, and the DATA memory budget shared by all sessions. The scripted `Session`, the
//! test policy and the config come from `server_tests`.

use super::proto::Reply;
use super::server::*;
use super::server_tests::{Session, TestPolicy, config};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn commands_before_the_greeting_are_refused() {
    let now = Instant::now();
    let mut s = Server::new(config(), Arc::new(TestPolicy), now);
    s.receive(b"EHLO eager.example\r\n", now);
    assert!(
        s.take_output().is_empty(),
        "nothing answered before the greeting"
    );
    s.greet(now);
    assert_eq!(
        s.take_output(),
        b"554 5.5.1 Protocol error: commands sent before the greeting\r\n"
    );
    assert_eq!(s.poll_event(), Some(Event::Close));
}

#[test]
fn store_failure_is_451_and_the_session_goes_on() {
    let mut s = Session::new(config());
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.cmd("DATA", "354");
    s.s.receive(b"x\r\n.\r\nNOOP\r\n", s.now);
    assert_eq!(s.out(), "");
    assert!(matches!(s.s.poll_event(), Some(Event::Deliver(_))));
    assert!(
        !s.s.wants_input(),
        "no reading while the message is being stored"
    );
    s.s.stored(Err("disk full".into()), s.now);
    assert_eq!(
        s.out(),
        "451 4.3.0 Error: queue file write error, try again later\r\n250 2.0.0 Ok\r\n"
    );
}

/// DATA is answered only once the adapter admits the message; a client that sends its message
/// before the 354 loses nothing, and nothing is read meanwhile.
#[test]
fn the_354_waits_for_admission() {
    let cfg = config();
    let budget = cfg.budget.clone();
    let mut s = Session::new(cfg);
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.s.receive(b"DATA\r\nSubject: early\r\n\r\n..x\r\n.\r\nNOOP\r\n", s.now);
    assert_eq!(s.out(), "", "no 354 before admission");
    assert_eq!(s.s.poll_event(), Some(Event::Admit));
    assert!(!s.s.wants_input(), "no reading while waiting for admission");
    assert!(s.s.holds_message());
    assert_eq!(s.s.deadline(), None, "the adapter bounds the wait");
    assert_eq!(budget.used(), 0, "no DATA memory held while waiting");
    s.s.admitted(s.now);
    assert_eq!(s.out(), "354 End data with <CR><LF>.<CR><LF>\r\n");
    assert!(budget.used() > 0);
    let Some(Event::Deliver(env)) = s.s.poll_event() else {
        panic!("the early message is delivered once admitted")
    };
    assert_eq!(env.data, b"Subject: early\r\n\r\n.x\r\n");
    assert!(s.s.holds_message(), "until its final reply");
    s.s.stored(Ok("Q1".into()), s.now);
    assert_eq!(s.out(), "250 2.0.0 Ok: queued as Q1\r\n250 2.0.0 Ok\r\n");
    assert!(!s.s.holds_message());
    // A second admission, or one after the session moved on, changes nothing.
    s.s.admitted(s.now);
    assert_eq!(s.out(), "");
    assert!(s.s.wants_input());
}

/// The service stopping while a DATA waits for admission: the client was not told 354 yet, so it
/// is told 421 4.3.2 at once; a late admission is ignored.
#[test]
fn shutdown_while_waiting_for_admission() {
    let mut s = Session::new(config());
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.s.receive(b"DATA\r\n", s.now);
    assert_eq!(s.s.poll_event(), Some(Event::Admit));
    s.s.shutdown();
    assert_eq!(
        s.out(),
        "421 4.3.2 mx.example.test Service shutting down, try again later\r\n"
    );
    s.s.admitted(s.now);
    assert_eq!(s.out(), "");
    assert!(s.s.is_closed());
    assert!(!s.s.holds_message());
}

#[test]
fn timeouts() {
    let mut cfg = config();
    cfg.timeouts = Timeouts {
        command: Duration::from_secs(10),
        data: Duration::from_secs(5),
        transaction: Duration::from_secs(8),
    };
    let mut s = Session::new(cfg);
    let t0 = s.now;
    assert_eq!(s.s.deadline(), Some(t0 + Duration::from_secs(10)));
    s.s.on_timeout(t0 + Duration::from_secs(9));
    assert!(!s.s.is_closed());
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.cmd("DATA", "354");
    // A client trickling a byte every 4 s stays under the data timeout but not the deadline.
    for i in 1..=3 {
        s.now = t0 + Duration::from_secs(4 * i);
        s.s.receive(b"x", s.now);
    }
    assert_eq!(s.s.deadline(), Some(t0 + Duration::from_secs(8)));
    s.s.on_timeout(t0 + Duration::from_secs(8));
    assert!(s.s.is_closed());
    assert_eq!(
        s.out(),
        "421 4.4.2 mx.example.test Error: timeout exceeded\r\n"
    );
}

#[test]
fn shutdown_between_commands_and_inside_data() {
    let mut s = Session::new(config());
    s.ehlo();
    s.s.shutdown();
    assert_eq!(
        s.out(),
        "421 4.3.2 mx.example.test Service shutting down, try again later\r\n"
    );
    assert!(s.s.is_closed());

    let mut s = Session::new(config());
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.cmd("DATA", "354");
    s.s.shutdown();
    assert_eq!(s.out(), "", "a message in flight is finished first");
    let out = s.raw(b"x\r\n.\r\n");
    assert_eq!(
        out,
        "250 2.0.0 Ok: queued as Q1\r\n421 4.3.2 mx.example.test Service shutting down, try again later\r\n"
    );
}

#[test]
fn refuse_when_full() {
    let now = Instant::now();
    let mut s = Server::new(config(), Arc::new(TestPolicy), now);
    s.refuse(Reply::new(
        421,
        "4.7.0",
        "mx.example.test Error: too many connections",
    ));
    assert_eq!(
        s.take_output(),
        b"421 4.7.0 mx.example.test Error: too many connections\r\n"
    );
    assert_eq!(s.poll_event(), Some(Event::Close));
}

/// Regression: every session held its whole DATA in memory with no shared bound.
#[test]
fn data_memory_is_budgeted_across_sessions() {
    let mut cfg = config();
    cfg.budget = super::budget::DataBudget::new(1500);
    let budget = cfg.budget.clone();
    let mut a = Session::new(cfg.clone());
    let mut b = Session::new(cfg);
    for s in [&mut a, &mut b] {
        s.ehlo();
        s.cmd("MAIL FROM:<a@b.example>", "250");
        s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    }
    a.cmd("DATA", "354");
    assert_eq!(budget.used(), 1000, "no SIZE: the fixed limit is reserved");
    assert_eq!(
        b.cmd("DATA", "452"),
        "452 4.3.1 Insufficient system resources, try again later\r\n"
    );
    a.raw(b"x\r\n.\r\n");
    assert_eq!(budget.used(), 0, "given back once stored");
    b.cmd("DATA", "354");
    b.raw(b"y\r\n.\r\n");
    assert_eq!(b.stored.len(), 1);
    drop(b);
    // A session that goes away mid-DATA gives its share back too.
    let cfg = config();
    let budget = cfg.budget.clone();
    let mut c = Session::new(cfg);
    c.ehlo();
    c.cmd("MAIL FROM:<a@b.example>", "250");
    c.cmd("RCPT TO:<ok@reply.example.test>", "250");
    c.cmd("DATA", "354");
    assert!(budget.used() > 0);
    drop(c);
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_message_that_outgrows_the_budget_gets_452_and_gives_it_back() {
    let mut cfg = config();
    cfg.max_message_size = 1_000_000;
    cfg.budget = super::budget::DataBudget::new(100_000);
    let budget = cfg.budget.clone();
    let mut s = Session::new(cfg);
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.cmd("DATA", "354");
    let mut body = vec![b'x'; 150_000];
    body.extend_from_slice(b"\r\n.\r\n");
    let out = s.raw(&body);
    assert_eq!(
        out,
        "452 4.3.1 Insufficient system storage, try again later\r\n"
    );
    assert!(s.stored.is_empty());
    assert_eq!(budget.used(), 0);
    // The next message fits and goes through.
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.cmd("DATA", "354");
    s.raw(b"small\r\n.\r\n");
    assert_eq!(s.stored.len(), 1);
}

/// Regression: the budget counted the body's bytes, but its buffer grew by doubling on its own,
/// so real memory reached about twice what was reserved. Every byte of the buffer is counted now.
#[test]
fn the_budget_counts_the_bodys_whole_buffer() {
    let mut cfg = config();
    cfg.max_message_size = 4_000_000;
    cfg.budget = super::budget::DataBudget::new(64 << 20);
    let budget = cfg.budget.clone();
    let mut s = Session::new(cfg);
    s.ehlo();
    s.cmd("MAIL FROM:<a@b.example>", "250");
    s.cmd("RCPT TO:<ok@reply.example.test>", "250");
    s.cmd("DATA", "354");
    let line = [b'x'; 998];
    let mut sent = 0;
    while sent < 3_000_000 {
        let mut read = line.to_vec();
        read.extend_from_slice(b"\r\n");
        sent += read.len();
        s.s.receive(&read, s.now);
        assert!(s.s.poll_event().is_none());
    }
    s.s.receive(b".\r\n", s.now);
    let Some(Event::Deliver(env)) = s.s.poll_event() else {
        panic!("no message")
    };
    assert_eq!(env.data.len(), sent);
    assert!(
        budget.used() as usize >= env.data.capacity(),
        "{} reserved for a buffer of {}",
        budget.used(),
        env.data.capacity()
    );
    s.s.stored(Ok("Q".into()), s.now);
    assert_eq!(budget.used(), 0);
}
