//! A webhook that is down, fails or drops the connection, then recovers; a crash of herald while
//! the webhook holds its answer.

use super::common::*;
use std::time::{Duration, Instant};

/// The processor's first retry comes 30 s after a failed attempt; this is that plus room.
const RETRY: Duration = Duration::from_secs(50);

/// Waits for the metroplex.log WARN line of a failed attempt at record `id`; returns its text.
#[track_caller]
fn wait_warn(h: &Herald, id: &str) -> String {
    let prefix = format!("{id}: webhook: ");
    wait_for(&format!("a failed attempt at {id}"), WAIT, || {
        metroplex_lines(h)
            .into_iter()
            .find(|l| l.level == "WARN" && l.text.starts_with(&prefix))
            .map(|l| l.text)
    })
}

#[test]
fn a_webhook_down_failing_or_dropping_gets_each_reply_once_it_recovers_with_the_same_delivery_id() {
    let dir = TempDir::new("replies-down");
    let started = Instant::now();
    // The receiver's port is in the settings but nobody listens there yet.
    let mut s = Setup::start(&dir, None);
    let n = s.notify("issue", 101, 9);
    let send = |s: &Setup, tag: &str| -> String {
        let mail = retry_reply(&n, tag);
        let qid = swaks(&dir, s.smtp, SENDER, &n.reply_to, &mail);
        format!("{qid}-1")
    };

    // A: the webhook is down (connection refused).
    let a = send(&s, "down");
    let warn = wait_warn(&s.h, &a);
    assert!(
        warn.contains("cannot connect") && warn.ends_with("retrying in 30 s"),
        "{warn}"
    );
    assert_eq!(record(&s.h, &a)["status"], "pending");

    // B: it is up and answers 500.
    s.hook = Some(Webhook::start(&dir, "hook", s.hook_port, &["500"]));
    let b = send(&s, "500");
    let warn = wait_warn(&s.h, &b);
    assert!(warn.contains("the webhook answered 500"), "{warn}");
    assert_eq!(record(&s.h, &b)["status"], "pending");

    // C: it reads the request and closes the connection without answering.
    s.hook().set_modes(&["drop"]);
    let c = send(&s, "drop");
    let warn = wait_warn(&s.h, &c);
    assert!(warn.contains("closed the connection"), "{warn}");
    assert_eq!(record(&s.h, &c)["status"], "pending");
    let failed = s.hook().requests();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    for (hook, id, answer) in [(&failed[0], &b, "500"), (&failed[1], &c, "drop")] {
        hook.assert_signed();
        assert_eq!(hook.answer, answer);
        assert_eq!(hook.delivery(), id.as_str());
    }

    // It recovers: each reply is delivered once, with the delivery id its failed attempt had.
    s.hook().set_modes(&["204"]);
    for id in [&a, &b, &c] {
        let rec = wait_final(&s.h, id, RETRY);
        assert_eq!(rec["status"], "processed", "{rec:#}");
    }
    std::thread::sleep(Duration::from_millis(1000));
    let all = s.hook().requests();
    assert_eq!(all.len(), 5, "{all:#?}");
    let ok: Vec<&Hook> = all[2..].iter().collect();
    for h in &ok {
        h.assert_signed();
        assert_eq!(h.answer, "204");
    }
    let mut got: Vec<&str> = ok.iter().map(|h| h.delivery()).collect();
    got.sort();
    let mut want = vec![a.as_str(), b.as_str(), c.as_str()];
    want.sort();
    assert_eq!(got, want, "each once");
    for failed in &failed {
        let retry = ok
            .iter()
            .find(|h| h.delivery() == failed.delivery())
            .unwrap();
        assert_eq!(retry.raw, failed.raw, "the same body, byte for byte");
        assert_eq!(
            retry.one("X-Herald-Signature"),
            failed.one("X-Herald-Signature")
        );
    }
    let log = metroplex(&s.h);
    for id in [&a, &b, &c] {
        assert_eq!(
            log.matches(&format!("Moving {id} => success")).count(),
            1,
            "{log}"
        );
    }
    eprintln!("webhook down, failing, recovering: {:?}", started.elapsed());
    s.h.stop();
}

/// A reply to `n` whose Message-ID and text name `tag`.
fn retry_reply(n: &Notified, tag: &str) -> String {
    n.reply(
        &format!("<retry-{tag}@client.example>"),
        &[],
        &format!("Sent while the webhook was {tag}."),
    )
}

#[test]
fn a_crash_while_the_webhook_holds_its_answer_posts_again_with_the_same_delivery_id() {
    let dir = TempDir::new("replies-crash");
    // The first request is held (logged, then no answer for 20 s); later ones get 204.
    let Setup {
        sink,
        hook,
        h,
        cfg,
        smtp,
        ..
    } = Setup::start(&dir, Some(&["hold 20", "204"]));
    let hook = hook.unwrap();
    let n = notify_with(&h, &sink, "pull_request", 55, 2);
    let mail = n.reply(
        "<crash-1@client.example>",
        &[],
        "Written just before the crash.",
    );
    let id = format!("{}-1", swaks(&dir, smtp, SENDER, &n.reply_to, &mail));
    let held = hook.wait_requests(1, WAIT).remove(0);
    held.assert_signed();
    assert_eq!(held.answer, "hold 20");
    assert_eq!(held.delivery(), id);
    let old_pid = h.pid();

    // SIGKILL while herald waits for the answer, then start it again on the same data.
    h.send_signal("KILL");
    h.wait_exit("KILL");
    let restarted = Instant::now();
    let h = Herald::start(Some(&cfg), &dir.join("data"));
    let again = hook.wait_requests(2, WAIT).remove(1);
    again.assert_signed();
    assert_eq!(again.answer, "204");
    assert_eq!(again.delivery(), held.delivery(), "the same delivery id");
    assert_eq!(again.raw, held.raw, "the same body");
    let rec = wait_final(&h, &id, WAIT);
    assert_eq!(rec["status"], "processed", "{rec:#}");
    eprintln!("posted again {:?} after the restart", restarted.elapsed());
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(hook.requests().len(), 2);

    let lines = metroplex_lines(&h);
    let processing = "metroplex: processing <crash-1@client.example>";
    let pids: Vec<u32> = lines
        .iter()
        .filter(|l| l.text == processing)
        .map(|l| l.pid)
        .collect();
    assert_eq!(pids, [old_pid, h.pid()], "{lines:#?}");
    let moved: Vec<&Line> = lines
        .iter()
        .filter(|l| l.text.starts_with(&format!("Moving {id} => ")))
        .collect();
    assert_eq!(moved.len(), 1, "{lines:#?}");
    assert_eq!(moved[0].text, format!("Moving {id} => success"));
    assert_eq!(moved[0].pid, h.pid());
    h.stop();
}

#[test]
fn sigterm_while_the_webhook_holds_its_answer_exits_zero_and_the_reply_goes_again_after_restart() {
    let dir = TempDir::new("replies-term");
    let Setup {
        sink,
        hook,
        h,
        cfg,
        smtp,
        ..
    } = Setup::start(&dir, Some(&["hold 40", "204"]));
    let hook = hook.unwrap();
    let n = notify_with(&h, &sink, "commit", 66, 5);
    let mail = n.reply(
        "<term-1@client.example>",
        &[],
        "Written just before a restart.",
    );
    let id = format!("{}-1", swaks(&dir, smtp, SENDER, &n.reply_to, &mail));
    let held = hook.wait_requests(1, WAIT).remove(0);
    assert_eq!(held.delivery(), id);

    // The drain waits a bounded time for the webhook, then herald exits 0 with the reply still
    // pending.
    let term = Instant::now();
    let st = h.signal("TERM");
    let took = term.elapsed();
    assert_eq!(st.code(), Some(0), "exit after SIGTERM");
    assert!(took < Duration::from_secs(25), "SIGTERM took {took:?}");
    eprintln!("SIGTERM with the webhook holding its answer: exit after {took:?}");

    let h = Herald::start(Some(&cfg), &dir.join("data"));
    let again = hook.wait_requests(2, WAIT).remove(1);
    again.assert_signed();
    assert_eq!(again.delivery(), held.delivery(), "the same delivery id");
    assert_eq!(again.raw, held.raw);
    let rec = wait_final(&h, &id, WAIT);
    assert_eq!(rec["status"], "processed", "{rec:#}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hook.requests().len(), 2);
    h.stop();
}

#[test]
fn replies_that_came_before_the_webhook_was_configured_are_posted_once_it_is() {
    let dir = TempDir::new("replies-unset");
    let hook = Webhook::start(&dir, "hook", 0, &["204"]);
    let sink_port = free_port();
    let sink = Sink::start(&dir, "sink", sink_port, &[]);
    let (mut h, cfg) = start_herald(&dir, sink_port, None);
    let smtp = h.smtp_port();
    let n = notify_with(&h, &sink, "issue", 3, 4);
    let mail = n.reply(
        "<early-1@client.example>",
        &[],
        "Before the webhook existed.",
    );
    let id = format!("{}-1", swaks(&dir, smtp, SENDER, &n.reply_to, &mail));
    // It waits, and herald says why.
    h.wait_for_log("replies are waiting: replies.webhook_url");
    assert_eq!(record(&h, &id)["status"], "pending");
    h.stop();

    // The administrator sets the URL in the config file; herald imports the changed file.
    std::fs::write(&cfg, herald_config(sink_port, Some(hook.port))).unwrap();
    let h = Herald::start(Some(&cfg), &dir.join("data"));
    let rec = wait_final(&h, &id, WAIT);
    assert_eq!(rec["status"], "processed", "{rec:#}");
    let hooks = hook.wait_requests(1, WAIT);
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    hooks[0].assert_signed();
    assert_eq!(hooks[0].delivery(), id);
    assert_eq!(hooks[0].body["body"], "Before the webhook existed.");
    h.stop();
}

/// What the brief of these tests asks to see, and what an administrator needs to see why a reply
/// waits: the record's attempts and last error, as the notification API shows them for outbound
/// mail. `GET /manage/v1/replies` lists only SPEC §3's fields, so they are in metroplex.log alone.
#[test]
fn the_replies_listing_shows_a_waiting_replys_attempts_and_last_error() {
    let dir = TempDir::new("replies-listing");
    let s = Setup::start(&dir, None);
    let n = s.notify("issue", 4, 5);
    let mail = retry_reply(&n, "listed");
    let id = format!("{}-1", swaks(&dir, s.smtp, SENDER, &n.reply_to, &mail));
    wait_warn(&s.h, &id);
    let rec = record(&s.h, &id);
    assert_eq!(rec["status"], "pending");
    assert!(rec["attempts"].as_u64().is_some_and(|a| a >= 1), "{rec:#}");
    assert!(
        rec["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect")),
        "{rec:#}"
    );
    s.h.stop();
}
