//! What goes wrong on the way to the smarthost: 4xx and 5xx replies, hang-ups, a server that is
//! down, a crash of herald; nothing queued is ever lost.

use super::common::*;
use crate::harness::*;

use super::notifications::sink_settings;

/// Queues one notification to `to` and waits for its first outcome: asserts its status, one
/// attempt, and each of `needles` in its last error. Returns its id.
fn first_outcome(api: &Api, to: &str, thread: u64, status: &str, needles: &[&str]) -> String {
    let id = api.notify(&notification(to, "issue", thread, 1))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let st = api.wait_status(&id, &["failed", "sent", "deferred"]);
    assert_eq!(st["status"], status, "{st:#}");
    assert_eq!(st["attempts"], 1, "{st:#}");
    let e = st["last_error"].as_str().unwrap_or_default();
    for n in needles {
        assert!(e.contains(n), "{n:?} not in {st:#}");
    }
    id
}

#[test]
fn smtp_sink_faults_fail_a_5xx_defer_a_4xx_or_a_hang_up_and_lose_nothing() {
    let dir = TempDir::new("out-faults");
    let port = free_port();
    let h = start_herald(&dir, &sink_settings(port));
    let api = Api::new(&h);
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{port}");

    // 5xx at RCPT: failed at once, the server's reply kept, "bounced" in mail.log.
    let mut sink = Sink::start(
        &dir,
        "hard",
        port,
        &[
            "-f",
            "RCPT",
            "-B",
            "550 5.1.1 <nobody@example.org>: Recipient address rejected",
        ],
    );
    let hard = first_outcome(
        &api,
        "nobody@example.org",
        1,
        "failed",
        &["550 5.1.1", "Recipient address rejected"],
    );
    sink.peer.kill();

    // 4xx at RCPT: deferred after one attempt, the reply kept.
    let mut sink = Sink::start(
        &dir,
        "soft",
        port,
        &[
            "-r",
            "RCPT",
            "-b",
            "451 4.3.0 <later@example.org>: Try again later",
        ],
    );
    let soft = first_outcome(&api, "later@example.org", 2, "deferred", &["451 4.3.0"]);
    // smtp-sink opens a dump file at MAIL; with the connection kept for the next message, the
    // refused transaction's file stays empty.
    assert!(sink.captured().iter().all(|m| m.text().is_empty()));
    sink.peer.kill();

    // The server hangs up at DATA: deferred.
    let mut sink = Sink::start(&dir, "hangup", port, &["-q", "DATA"]);
    let hangup = first_outcome(
        &api,
        "hangup@example.org",
        3,
        "deferred",
        &["connection was lost during DATA"],
    );
    sink.peer.kill();

    // 421 instead of a greeting: deferred.
    let mut sink = Sink::start(&dir, "busy", port, &["-Q", "CONNECT"]);
    let busy = first_outcome(&api, "busy@example.org", 5, "deferred", &["421"]);
    sink.peer.kill();

    // 5xx after the data: failed at once.
    let mut sink = Sink::start(
        &dir,
        "spam",
        port,
        &["-f", ".", "-B", "554 5.7.1 Message rejected as spam"],
    );
    let spam = first_outcome(&api, "spam@example.org", 6, "failed", &["554 5.7.1"]);
    sink.peer.kill();

    // The server is down: deferred.
    let down = api.notify(&notification("down@example.org", "issue", 4, 1))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let st = api.wait_status(&down, &["failed", "sent", "deferred"]);
    assert_eq!(st["status"], "deferred", "{st:#}");
    assert_eq!(st["attempts"], 1);
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("refused the connection"),
        "{st:#}"
    );

    // It comes back: new mail goes; the deferred ones wait for their retry, not lost.
    let sink = Sink::start(&dir, "back", port, &[]);
    let ok = api.notify(&notification("ok@example.org", "issue", 7, 1));
    let st = api.wait_status(ok["id"].as_str().unwrap(), &["failed", "sent", "deferred"]);
    assert_eq!(st["status"], "sent", "{st:#}");
    let got = sink.wait_captured(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].one("Message-ID"), ok["message_id"].as_str().unwrap());
    for id in [&soft, &hangup, &busy, &down] {
        let st = api.get(id);
        assert_eq!(st["status"], "deferred", "{st:#}");
        assert_eq!(st["attempts"], 1, "{st:#}");
    }
    assert_eq!(api.get(&hard)["status"], "failed");
    assert_eq!(api.get(&spam)["status"], "failed");
    assert_eq!(api.counts(), counts(0, 4, 1, 2));

    let log = h.mail_log();
    let line = |id: &str| {
        let l = delivery_lines(&log, id);
        assert_eq!(l.len(), 1, "{id}:\n{log}");
        l[0].clone()
    };
    let l = line(&hard);
    assert!(
        l.contains(&relay) && l.contains("dsn=5.1.1, status=bounced (") && l.contains("550 5.1.1"),
        "{l}"
    );
    assert!(log.contains(&format!("{hard}: removed")), "{log}");
    let l = line(&soft);
    assert!(
        l.contains(&relay) && l.contains("dsn=4.3.0, status=deferred (") && l.contains("451 4.3.0"),
        "{l}"
    );
    let l = line(&hangup);
    assert!(l.contains(&relay) && l.contains("status=deferred ("), "{l}");
    let l = line(&busy);
    assert!(
        l.contains("dsn=4.0.0, status=deferred (") && l.contains("421 "),
        "{l}"
    );
    let l = line(&spam);
    assert!(
        l.contains(&relay) && l.contains("dsn=5.7.1, status=bounced (") && l.contains("554 5.7.1"),
        "{l}"
    );
    assert!(log.contains(&format!("{spam}: removed")), "{log}");
    let l = line(&down);
    assert!(
        l.contains("relay=none") && l.contains("status=deferred ("),
        "{l}"
    );
    for id in [&soft, &hangup, &busy, &down] {
        assert!(!log.contains(&format!("{id}: removed")), "{id}:\n{log}");
    }
    h.stop();
}

#[test]
fn notifications_waiting_for_a_dead_smarthost_survive_sigkill() {
    let dir = TempDir::new("out-crash");
    let cfg = dir.write("herald.toml", &smtp_config(&sink_settings(free_port())));
    let data = dir.join("data");
    let h = Herald::start(Some(&cfg), &data);
    let api = Api::new(&h);

    // Some tried and deferred, one at a time.
    let mut ids: Vec<(String, String)> = Vec::new();
    for i in 0..5 {
        let to = format!("early{i}@example.org");
        let id = api.notify(&notification(&to, "issue", 7, 1 + i))["id"]
            .as_str()
            .unwrap()
            .to_string();
        let st = api.wait_status(&id, &["deferred", "failed", "sent"]);
        assert_eq!(st["status"], "deferred", "{st:#}");
        ids.push((id, to));
    }
    // Some just accepted when the kill comes.
    for i in 0..3 {
        let to = format!("late{i}@example.org");
        let id = api.notify(&notification(&to, "commit", 8, 1 + i))["id"]
            .as_str()
            .unwrap()
            .to_string();
        ids.push((id, to));
    }
    drop(api);
    h.send_signal("KILL");
    let st = h.wait_exit("KILL");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));

    let h = Herald::start(Some(&cfg), &data);
    let api = Api::new(&h);
    for (id, to) in &ids {
        let st = api.get(id);
        assert_eq!(st["to"], to.as_str(), "{st:#}");
        assert!(
            st["status"] == "deferred" || st["status"] == "queued",
            "{id}: {st:#}"
        );
    }
    // The restarted worker tries what was never tried; every one waits for its retry.
    for (id, _) in &ids {
        let st = api.wait_status(id, &["deferred", "failed", "sent"]);
        assert_eq!(st["status"], "deferred", "{st:#}");
        assert_eq!(st["attempts"], 1, "{st:#}");
    }
    assert_eq!(api.counts(), counts(0, ids.len() as u64, 0, 0));
    // Ids are never reused.
    let newest = ids
        .iter()
        .map(|(id, _)| u64::from_str_radix(id, 16).unwrap())
        .max()
        .unwrap();
    let next = api.notify(&notification("after@example.org", "issue", 9, 1));
    assert!(u64::from_str_radix(next["id"].as_str().unwrap(), 16).unwrap() > newest);
    h.stop();
}

#[test]
fn a_greeting_refusal_names_the_relay_in_mail_log() {
    let dir = TempDir::new("out-relay");
    let port = free_port();
    let _sink = Sink::start(&dir, "busy", port, &["-Q", "CONNECT"]);
    let h = start_herald(&dir, &sink_settings(port));
    let api = Api::new(&h);
    let id = api.notify(&notification("busy@example.org", "issue", 1, 1))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let st = api.wait_status(&id, &["failed", "sent", "deferred"]);
    assert_eq!(st["status"], "deferred", "{st:#}");
    // Postfix: "relay=HOST[IP]:PORT ... status=deferred (host HOST[IP] refused to talk to me: 421
    // ...)": the connection was made, so the relay is known.
    let log = h.mail_log();
    let lines = delivery_lines(&log, &id);
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains(&format!("relay=127.0.0.1[127.0.0.1]:{port}")),
        "{}",
        lines[0]
    );
    assert_eq!(
        st["relay"],
        format!("127.0.0.1[127.0.0.1]:{port}"),
        "{st:#}"
    );
    h.stop();
}
