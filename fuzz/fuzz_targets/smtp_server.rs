//! Drives the SMTP server machine with arbitrary client bytes, split into reads at arbitrary
//! points, with the adapter's answers (stored / store failed / TLS up) and the DATA memory budget
//! (ample, or too small for any message: DATA is then answered 452 at admission) chosen by the
//! input too.
//!
//! Checks, beyond "no panic": every reply line is well-formed (`ddd-` or `ddd `, ends in CRLF,
//! at most 512 octets); the machine never asks for input while it waits on the adapter; a
//! stored message never exceeds the size limit; and splitting the bytes differently never
//! changes the replies or the stored messages.

#![no_main]

use herald::smtp::proto::{REPLY_LINE_MAX, Reply};
use herald::smtp::server::{Config, Event, Policy, Server, Timeouts};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct AcceptSome;

impl Policy for AcceptSome {
    fn recipient(&self, local: &str, domain: &str) -> Result<bool, Reply> {
        match domain {
            "reply.example.test" if local.starts_with('r') => Ok(false),
            "noreply.example.test" => Ok(true),
            _ => Err(Reply::new(550, "5.7.1", "Relay access denied")),
        }
    }
}

const LIMIT: u64 = 4096;

fn config(budget: u64) -> Config {
    Config {
        hostname: "mx.example.test".into(),
        max_message_size: LIMIT,
        tls_available: true,
        tls_enforced: false,
        timeouts: Timeouts::default(),
        max_errors: 20,
        budget: herald::smtp::budget::DataBudget::new(budget),
    }
}

/// Runs a session over `chunks`; `fail_every` makes every n-th store fail.
fn run(chunks: &[&[u8]], fail_every: u8, budget: u64) -> (Vec<u8>, Vec<Vec<u8>>) {
    let t0 = Instant::now();
    let mut s = Server::new(config(budget), Arc::new(AcceptSome), t0);
    s.greet(t0);
    let mut out = s.take_output();
    let mut stored = Vec::new();
    let mut n = 0u32;
    for (i, c) in chunks.iter().enumerate() {
        if s.is_closed() {
            break;
        }
        let now = t0 + Duration::from_millis(i as u64);
        if s.wants_input() {
            s.receive(c, now);
        }
        loop {
            out.extend(s.take_output());
            let Some(e) = s.poll_event() else { break };
            match e {
                Event::Deliver(env) => {
                    assert!(!s.wants_input(), "reading while storing");
                    assert!(env.data.len() as u64 <= LIMIT, "stored past the limit");
                    n += 1;
                    if fail_every != 0 && n % u32::from(fail_every) == 0 {
                        s.stored(Err("injected".into()), now);
                    } else {
                        stored.push(env.data);
                        s.stored(Ok(format!("Q{n}")), now);
                    }
                }
                Event::Admit => {
                    assert!(!s.wants_input(), "reading before the 354");
                    s.admitted(now);
                }
                Event::StartTls => {
                    assert!(!s.wants_input(), "reading plaintext after STARTTLS");
                    s.tls_started(now);
                }
                Event::Rejected(_) | Event::Close => {}
            }
        }
    }
    (out, stored)
}

fn check_lines(out: &[u8]) {
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "reply line without CRLF: {line:?}");
        assert!(line.len() <= REPLY_LINE_MAX, "reply line too long");
        assert!(line.len() >= 6, "short reply line {line:?}");
        assert!(
            line[..3].iter().all(u8::is_ascii_digit),
            "no code: {line:?}"
        );
        assert!(
            line[3] == b' ' || line[3] == b'-',
            "bad separator: {line:?}"
        );
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let (ctl, data) = input.split_at(2);
    let split = usize::from(ctl[0]) * data.len() / 256;
    let fail_every = ctl[1] % 4;
    let budget = if ctl[1] & 0x10 != 0 { 100 } else { 1 << 20 };
    let whole = run(&[data], fail_every, budget);
    check_lines(&whole.0);
    let halves = run(&[&data[..split], &data[split..]], fail_every, budget);
    // STARTTLS discards the rest of a read, so splits legitimately differ after it.
    let has_starttls = data.windows(8).any(|w| w.eq_ignore_ascii_case(b"STARTTLS"));
    if !has_starttls {
        assert_eq!(whole, halves, "split at {split} changed the session");
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(
            whole,
            run(&bytes, fail_every, budget),
            "byte by byte changed the session"
        );
    }
});
