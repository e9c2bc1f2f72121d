//! Durability and shutdown: every message acknowledged with 250 survives SIGKILL, and the
//! reopened queue never reuses a queue id; SIGTERM tells an idle session 421, lets a message in
//! DATA finish first, and exits 0.

use super::common::*;
use crate::harness::*;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Threads that send continuously; prints `OK <queue id>` for every 250, flushed at once.
const LOAD: &str = r#"
import smtplib, sys, threading, time
port, rcpt, nthreads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
lock = threading.Lock()
deadline = time.time() + 40
def worker(n):
    # One connection each, sending until anything fails (herald killed): then stop, and never
    # reconnect (the port may belong to another test's herald by then).
    try:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=10)
        s.ehlo()
        i = 0
        while time.time() < deadline:
            i += 1
            if s.mail("sender@example.org")[0] != 250 or s.rcpt(rcpt)[0] != 250:
                return
            code, resp = s.data("Message-ID: <kill-%d-%d@client.example>\r\n\r\nbody %d %d\r\n" % (n, i, n, i))
            if code != 250:
                return
            qid = resp.decode().rsplit(" ", 1)[1]
            with lock:
                sys.stdout.write("OK %s\n" % qid)
                sys.stdout.flush()
    except (smtplib.SMTPException, OSError):
        pass
threads = [threading.Thread(target=worker, args=(n,)) for n in range(nthreads)]
for t in threads: t.start()
for t in threads: t.join()
"#;

#[test]
fn every_message_acknowledged_with_250_survives_sigkill() {
    const THREADS: usize = 4;
    const BEFORE_KILL: usize = 300;
    let dir = TempDir::new("in-sigkill");
    let cfg = dir.write("herald.toml", &inbound_config(""));
    let data = dir.join("data");
    let mut h = Herald::start(Some(&cfg), &data);
    let port = h.smtp_port();
    let to = h.reply_address("issue", 21, 22);

    let mut client = Command::new("python3")
        .args(["-c", LOAD, &port.to_string(), &to, &THREADS.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = client.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acked = Vec::new();
    let started = Instant::now();
    // Kill while messages are in flight: after enough acknowledgements (or a second).
    while acked.len() < BEFORE_KILL && started.elapsed() < Duration::from_secs(1) {
        match rx.recv_timeout(WAIT) {
            Ok(line) => acked.push(line),
            Err(e) => panic!("the client stopped ({e}) after {} messages", acked.len()),
        }
    }
    h.send_signal("KILL");
    let st = h.wait_exit("KILL");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    // The client ends on its own once every thread finds the port closed.
    let deadline = Instant::now() + WAIT;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => acked.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) => {
                let _ = client.kill();
                panic!("the client did not stop after herald died");
            }
        }
    }
    let _ = client.wait();
    let acked: Vec<String> = acked
        .iter()
        .map(|l| {
            l.strip_prefix("OK ")
                .unwrap_or_else(|| panic!("{l:?}"))
                .to_string()
        })
        .collect();
    assert!(
        acked.len() >= 10,
        "too few messages before the kill: {}",
        acked.len()
    );
    let unique: BTreeSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "queue ids repeat");

    let mut h = Herald::start(Some(&cfg), &data);
    let port = h.smtp_port();
    let replies = h.replies();
    let stored: BTreeSet<String> = replies
        .iter()
        .map(|r| {
            r["id"]
                .as_str()
                .unwrap()
                .strip_suffix("-1")
                .unwrap()
                .to_string()
        })
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|q| !stored.contains(*q)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    eprintln!(
        "SIGKILL: {} acknowledged, {} stored",
        acked.len(),
        stored.len()
    );
    // Stored but unacknowledged: at most the one message in flight per client thread.
    assert!(
        stored.len() <= acked.len() + THREADS,
        "{} stored, {} acknowledged",
        stored.len(),
        acked.len()
    );
    // The reopened queue goes on, never reusing an id.
    let mut c = Smtp::session(port);
    let qid = c.deliver(SENDER, &to, &message("after-kill")).queue_id();
    c.quit();
    assert!(!stored.contains(&qid), "{qid} reused");
    let newest = stored
        .iter()
        .map(|q| u64::from_str_radix(q, 16).unwrap())
        .max()
        .unwrap();
    assert!(u64::from_str_radix(&qid, 16).unwrap() > newest, "ids grow");
    h.stop();
}

#[test]
fn sigterm_tells_an_idle_session_421_and_exits_zero() {
    let dir = TempDir::new("in-sigterm");
    let (h, port) = start(&dir, "");
    let mut c = Smtp::session(port);
    let st = h.signal("TERM");
    assert_eq!(st.code(), Some(0), "exit after SIGTERM");
    c.reply().expect("421 4.3.2");
    assert!(c.closed());
}

#[test]
fn sigterm_lets_a_message_in_data_finish_then_says_421() {
    let dir = TempDir::new("in-sigterm-data");
    let cfg = dir.write("herald.toml", &inbound_config(""));
    let data = dir.join("data");
    let mut h = Herald::start(Some(&cfg), &data);
    let port = h.smtp_port();
    let to = h.reply_address("issue", 31, 32);
    let mut c = Smtp::session(port);
    c.cmd(&format!("MAIL FROM:<{SENDER}>")).expect("250");
    c.cmd(&format!("RCPT TO:<{to}>")).expect("250");
    c.cmd("DATA").expect("354");
    c.send(b"Message-ID: <in-flight@client.example>\r\n\r\nhalf");
    h.send_signal("TERM");
    h.wait_for_log("draining");
    std::thread::sleep(Duration::from_millis(100));
    c.send(b" and the rest\r\n.\r\n");
    let qid = c.reply().queue_id();
    c.reply().expect("421 4.3.2");
    assert!(c.closed());
    let st = h.wait_exit("TERM");
    assert_eq!(st.code(), Some(0));

    let h = Herald::start(Some(&cfg), &data);
    let replies = h.replies();
    assert_eq!(
        record(&replies, &qid)["message_id"],
        "<in-flight@client.example>"
    );
    h.stop();
}
