//! The client machine driven by scripted servers, byte by byte.

use super::client::*;
use std::time::{Duration, Instant};

fn cfg(tls: TlsMode, auth: Option<(Mechanism, &str, &str)>) -> ClientConfig {
    ClientConfig {
        helo_name: "appliance.example.test".into(),
        tls,
        auth: auth.map(|(mechanism, u, p)| Credentials {
            mechanism,
            username: u.into(),
            password: p.into(),
        }),
        timeouts: Timeouts::RFC5321,
        transcript: true,
    }
}

fn out(c: &mut Client) -> String {
    String::from_utf8(c.take_output()).unwrap()
}

fn events(c: &mut Client) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

const EHLO_PIPELINING: &str =
    "250-mx.example.com\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 PIPELINING\r\n";

/// Greeting and EHLO up to Ready, with the given EHLO reply.
fn ready(config: ClientConfig, ehlo: &str) -> (Client, Instant) {
    let now = Instant::now();
    let mut c = Client::new(config, false, now).unwrap();
    assert_eq!(out(&mut c), "");
    c.receive(b"220 mx.example.com ESMTP\r\n", now);
    assert_eq!(out(&mut c), "EHLO appliance.example.test\r\n");
    c.receive(ehlo.as_bytes(), now);
    assert_eq!(events(&mut c), [Event::Ready]);
    (c, now)
}

#[test]
fn pipelined_message_is_sent_in_one_write_and_delivered() {
    let (mut c, now) = ready(cfg(TlsMode::Off, None), EHLO_PIPELINING);
    c.submit(
        "noreply@example.test",
        "user@example.org",
        b"Subject: hi\r\n\r\n.dot\r\nbody\r\n",
        now,
    )
    .unwrap();
    assert_eq!(
        out(&mut c),
        "MAIL FROM:<noreply@example.test> SIZE=27\r\nRCPT TO:<user@example.org>\r\nDATA\r\n"
    );
    c.receive(
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
        now,
    );
    assert_eq!(out(&mut c), "Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n");
    c.receive(b"250 2.0.0 Ok: queued as 12345\r\n", now);
    let ev = events(&mut c);
    assert!(
        matches!(&ev[0], Event::Delivered(r) if r.code == 250 && r.enhanced() == Some("2.0.0"))
    );
    assert_eq!(ev[1], Event::Ready);
    // The next message is preceded by RSET, in the same write.
    c.submit("", "other@example.org", b"x", now).unwrap();
    assert_eq!(
        out(&mut c),
        "RSET\r\nMAIL FROM:<> SIZE=1\r\nRCPT TO:<other@example.org>\r\nDATA\r\n"
    );
    c.quit(now);
    assert_eq!(out(&mut c), "QUIT\r\n");
}

/// The server's side of a session, each part fed split at every offset, gives the same
/// conversation. (A server speaks only after the client did, so the parts are the greeting with
/// the EHLO reply, and the replies to the transaction.)
#[test]
fn a_session_split_at_every_offset_behaves_the_same() {
    let setup = format!("220 mx ESMTP\r\n{EHLO_PIPELINING}");
    let rest = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n250 2.0.0 queued\r\n";
    let run = |setup: &[&[u8]], rest: &[&[u8]]| -> (String, Vec<Event>) {
        let now = Instant::now();
        let mut c = Client::new(cfg(TlsMode::Off, None), false, now).unwrap();
        let (mut wire, mut evs) = (String::new(), Vec::new());
        for chunk in setup {
            c.receive(chunk, now);
            wire.push_str(&out(&mut c));
        }
        evs.extend(events(&mut c));
        c.submit("a@example.test", "b@example.org", b"hello\r\n", now)
            .unwrap();
        wire.push_str(&out(&mut c));
        for chunk in rest {
            c.receive(chunk, now);
            wire.push_str(&out(&mut c));
            for e in events(&mut c) {
                if matches!(e, Event::Delivered(_)) {
                    c.quit(now);
                    wire.push_str(&out(&mut c));
                }
                evs.push(e);
            }
        }
        c.receive(b"221 2.0.0 Bye\r\n", now);
        evs.extend(events(&mut c));
        (wire, evs)
    };
    let whole = run(&[setup.as_bytes()], &[rest.as_bytes()]);
    assert!(whole.0.ends_with("hello\r\n.\r\nQUIT\r\n"), "{}", whole.0);
    assert!(
        matches!(whole.1.last(), Some(Event::Closed(None))),
        "{:?}",
        whole.1
    );
    let (a, b) = (setup.as_bytes(), rest.as_bytes());
    for cut in 0..a.len() {
        assert_eq!(
            run(&[&a[..cut], &a[cut..]], &[b]),
            whole,
            "setup cut at {cut}"
        );
    }
    for cut in 0..b.len() {
        assert_eq!(run(&[a], &[&b[..cut], &b[cut..]]), whole, "cut at {cut}");
    }
}

#[test]
fn without_pipelining_commands_go_one_at_a_time() {
    let (mut c, now) = ready(cfg(TlsMode::Off, None), "250 mx.example.com\r\n");
    c.submit("a@example.test", "b@example.org", b"x\r\n", now)
        .unwrap();
    assert_eq!(out(&mut c), "MAIL FROM:<a@example.test>\r\n");
    c.receive(b"250 OK\r\n", now);
    assert_eq!(out(&mut c), "RCPT TO:<b@example.org>\r\n");
    c.receive(b"250 OK\r\n", now);
    assert_eq!(out(&mut c), "DATA\r\n");
    c.receive(b"354 go\r\n", now);
    assert_eq!(out(&mut c), "x\r\n.\r\n");
}

#[test]
fn a_refused_recipient_is_permanent_and_the_session_goes_on() {
    let (mut c, now) = ready(cfg(TlsMode::Off, None), "250 mx.example.com\r\n");
    c.submit("a@example.test", "nobody@example.org", b"x\r\n", now)
        .unwrap();
    out(&mut c);
    c.receive(b"250 OK\r\n", now);
    out(&mut c);
    c.receive(b"550 5.1.1 No such user\r\n", now);
    assert_eq!(
        out(&mut c),
        "",
        "nothing more is sent after a refusal without PIPELINING"
    );
    let ev = events(&mut c);
    let Event::NotDelivered(f) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert!(f.permanent && f.kind == Kind::Rejected && f.stage == Stage::Rcpt);
    assert_eq!(f.dsn(), "5.1.1");
    assert!(f.detail.contains("550 5.1.1 No such user"), "{}", f.detail);
    assert_eq!(ev[1], Event::Ready);
    c.submit("a@example.test", "b@example.org", b"x\r\n", now)
        .unwrap();
    assert_eq!(out(&mut c), "RSET\r\n");
}

#[test]
fn pipelined_refusals_wait_for_every_reply_and_end_an_accepted_data_empty() {
    let (mut c, now) = ready(cfg(TlsMode::Off, None), EHLO_PIPELINING);
    c.submit("a@example.test", "b@example.org", b"x\r\n", now)
        .unwrap();
    out(&mut c);
    c.receive(b"250 OK\r\n452 4.2.2 Mailbox full\r\n", now);
    assert!(events(&mut c).is_empty());
    // A server that takes the pipelined DATA anyway gets an empty message, and the failure stands.
    c.receive(b"354 go\r\n", now);
    assert_eq!(out(&mut c), ".\r\n");
    c.receive(b"554 5.5.1 No valid recipients\r\n", now);
    let ev = events(&mut c);
    let Event::NotDelivered(f) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert!(!f.permanent, "452 is transient");
    assert_eq!(f.stage, Stage::Rcpt);
}

#[test]
fn transient_and_permanent_greetings() {
    for (greeting, permanent) in [
        ("421 4.3.2 busy\r\n", false),
        ("554 5.7.1 go away\r\n", true),
    ] {
        let now = Instant::now();
        let mut c = Client::new(cfg(TlsMode::Off, None), false, now).unwrap();
        c.receive(greeting.as_bytes(), now);
        assert_eq!(out(&mut c), "QUIT\r\n");
        let ev = events(&mut c);
        let Event::Closed(Some(f)) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!((f.permanent, f.stage), (permanent, Stage::Greeting));
    }
}

#[test]
fn ehlo_refused_falls_back_to_helo() {
    let now = Instant::now();
    let mut c = Client::new(cfg(TlsMode::StartTlsAuto, None), false, now).unwrap();
    c.receive(b"220 old.example ready\r\n502 5.5.2 what\r\n", now);
    assert_eq!(
        out(&mut c),
        "EHLO appliance.example.test\r\nHELO appliance.example.test\r\n"
    );
    c.receive(b"250 old.example\r\n", now);
    assert_eq!(events(&mut c), [Event::Ready]);
    c.submit("a@example.test", "b@example.org", b"x", now)
        .unwrap();
    assert_eq!(
        out(&mut c),
        "MAIL FROM:<a@example.test>\r\n",
        "no SIZE after HELO"
    );
}

#[test]
fn starttls_discards_what_the_server_sent_early_and_says_ehlo_again() {
    let now = Instant::now();
    let mut c = Client::new(cfg(TlsMode::StartTlsAuto, None), false, now).unwrap();
    c.receive(
        b"220 mx\r\n250-mx\r\n250-STARTTLS\r\n250 PIPELINING\r\n",
        now,
    );
    assert_eq!(out(&mut c), "EHLO appliance.example.test\r\nSTARTTLS\r\n");
    // An attacker in the path appends a reply to the 220; it must never be read.
    c.receive(b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n", now);
    assert_eq!(events(&mut c), [Event::StartTls]);
    assert!(c.wants_handshake());
    c.tls_started(now);
    assert_eq!(out(&mut c), "EHLO appliance.example.test\r\n");
    c.receive(b"250-mx\r\n250 AUTH PLAIN\r\n", now);
    assert_eq!(events(&mut c), [Event::Ready]);
    assert!(c.tls_active());
    let t: Vec<String> = c
        .take_transcript()
        .iter()
        .map(crate::outbound::session::transcript_line)
        .collect();
    assert!(t.contains(&"TLS connection started".to_string()), "{t:?}");
    assert!(!t.iter().any(|l| l.contains("injected")), "{t:?}");
}

#[test]
fn starttls_required_without_starttls_defers_with_a_clear_error() {
    let now = Instant::now();
    let mut c = Client::new(cfg(TlsMode::StartTlsRequired, None), false, now).unwrap();
    c.receive(b"220 mx\r\n250 mx\r\n", now);
    assert_eq!(out(&mut c), "EHLO appliance.example.test\r\nQUIT\r\n");
    let Some(Event::Closed(Some(f))) = c.poll_event() else {
        panic!()
    };
    assert_eq!((f.kind, f.permanent), (Kind::Tls, false));
    assert!(f.detail.contains("starttls-required"), "{}", f.detail);
}

fn tls_ready(config: ClientConfig, ehlo_after_tls: &str) -> (Client, Instant) {
    let now = Instant::now();
    let mut c = Client::new(config, true, now).unwrap();
    c.receive(b"220 mx\r\n", now);
    out(&mut c);
    c.receive(ehlo_after_tls.as_bytes(), now);
    (c, now)
}

#[test]
fn auth_plain_matches_rfc4954_and_is_redacted() {
    let (mut c, now) = tls_ready(
        cfg(
            TlsMode::Implicit,
            Some((Mechanism::Plain, "tim", "tanstaaftanstaaf")),
        ),
        "250-mx\r\n250 AUTH LOGIN PLAIN CRAM-MD5\r\n",
    );
    assert_eq!(out(&mut c), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
    c.receive(b"235 2.7.0 Authentication successful\r\n", now);
    assert_eq!(events(&mut c), [Event::Ready]);
    let t = c.take_transcript();
    assert!(t.contains(&Said::Sent("AUTH PLAIN [redacted]\r\n".into())));
    assert!(!format!("{t:?}").contains("AHRpbQ"));
}

#[test]
fn auth_login_sends_base64_username_and_password_redacted() {
    let (mut c, now) = tls_ready(
        cfg(
            TlsMode::Implicit,
            Some((Mechanism::Login, "thisismy@address.com", "itreallywas")),
        ),
        "250-mx\r\n250 AUTH=LOGIN\r\n",
    );
    assert_eq!(out(&mut c), "AUTH LOGIN\r\n");
    c.receive(b"334 VXNlcm5hbWU6\r\n", now);
    // The seed's transcript shows these two lines.
    assert_eq!(out(&mut c), "dGhpc2lzbXlAYWRkcmVzcy5jb20=\r\n");
    c.receive(b"334 UGFzc3dvcmQ6\r\n", now);
    assert_eq!(out(&mut c), "aXRyZWFsbHl3YXM=\r\n");
    c.receive(b"535-5.7.1 Username and Password not accepted. Learn more at\r\n535 5.7.1 http://support.example.com/smtp/auth\r\n", now);
    assert_eq!(out(&mut c), "QUIT\r\n");
    let Some(Event::Closed(Some(f))) = c.poll_event() else {
        panic!()
    };
    assert_eq!((f.kind, f.permanent), (Kind::Auth, true));
    assert!(f.detail.contains("Username and Password not accepted"));
    let shown = format!("{:?}", c.take_transcript());
    assert!(
        !shown.contains("dGhpc2lz") && !shown.contains("aXRyZWFs"),
        "{shown}"
    );
    assert_eq!(shown.matches("[redacted]").count(), 2);
}

#[test]
fn auth_cram_md5_matches_rfc2195() {
    let (mut c, now) = tls_ready(
        cfg(
            TlsMode::Implicit,
            Some((Mechanism::CramMd5, "tim", "tanstaaftanstaaf")),
        ),
        "250-mx\r\n250 AUTH CRAM-MD5\r\n",
    );
    assert_eq!(out(&mut c), "AUTH CRAM-MD5\r\n");
    c.receive(
        b"334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n",
        now,
    );
    assert_eq!(
        out(&mut c),
        "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"
    );
    c.receive(b"235 2.7.0 ok\r\n", now);
    assert_eq!(events(&mut c), [Event::Ready]);
}

#[test]
fn a_password_never_goes_in_clear_unless_tls_is_off() {
    let plain = "250-mx\r\n250 AUTH PLAIN LOGIN\r\n";
    let now = Instant::now();
    let mut c = Client::new(
        cfg(
            TlsMode::StartTlsAuto,
            Some((Mechanism::Plain, "u", "secret")),
        ),
        false,
        now,
    )
    .unwrap();
    c.receive(format!("220 mx\r\n{plain}").as_bytes(), now);
    assert_eq!(out(&mut c), "EHLO appliance.example.test\r\nQUIT\r\n");
    let Some(Event::Closed(Some(f))) = c.poll_event() else {
        panic!()
    };
    assert_eq!(f.kind, Kind::Config);
    assert!(f.detail.contains("in clear"), "{}", f.detail);
    // The administrator chose off explicitly.
    let mut c = Client::new(
        cfg(TlsMode::Off, Some((Mechanism::Login, "u", "secret"))),
        false,
        now,
    )
    .unwrap();
    c.receive(format!("220 mx\r\n{plain}").as_bytes(), now);
    assert_eq!(out(&mut c), "EHLO appliance.example.test\r\nAUTH LOGIN\r\n");
    // CRAM-MD5 does not reveal the password: allowed without TLS.
    let mut c = Client::new(
        cfg(
            TlsMode::StartTlsAuto,
            Some((Mechanism::CramMd5, "u", "secret")),
        ),
        false,
        now,
    )
    .unwrap();
    c.receive(b"220 mx\r\n250-mx\r\n250 AUTH CRAM-MD5\r\n", now);
    assert_eq!(
        out(&mut c),
        "EHLO appliance.example.test\r\nAUTH CRAM-MD5\r\n"
    );
}

#[test]
fn a_mechanism_the_server_does_not_offer_is_a_configuration_error() {
    let (mut c, _) = tls_ready(
        cfg(TlsMode::Implicit, Some((Mechanism::CramMd5, "u", "p"))),
        "250-mx\r\n250 AUTH LOGIN PLAIN XOAUTH2\r\n",
    );
    let Some(Event::Closed(Some(f))) = c.poll_event() else {
        panic!()
    };
    assert_eq!(f.kind, Kind::Config);
    assert!(
        f.detail
            .contains("does not offer AUTH CRAM-MD5 (it offers LOGIN PLAIN XOAUTH2)"),
        "{}",
        f.detail
    );
}

#[test]
fn line_breaks_in_any_configured_value_never_reach_the_wire() {
    let now = Instant::now();
    let mut bad = cfg(TlsMode::Off, None);
    bad.helo_name = "a.example\r\nMAIL FROM:<x>".into();
    assert_eq!(
        Client::new(bad, false, now).err().map(|f| f.kind),
        Some(Kind::Config)
    );
    for (u, p) in [("u\r\nRSET", "p"), ("u", "p\nQUIT"), ("u\0", "p")] {
        let r = Client::new(
            cfg(TlsMode::Off, Some((Mechanism::Login, u, p))),
            false,
            now,
        );
        let f = r.err().expect("refused");
        assert!(
            !f.detail.contains('\n') && !f.detail.contains("QUIT"),
            "{}",
            f.detail
        );
    }
    let (mut c, now) = ready(cfg(TlsMode::Off, None), "250 mx\r\n");
    for (from, to) in [
        ("a@x\r\nRCPT TO:<evil@x>", "b@y"),
        ("a@x", "b@y>\r\nDATA"),
        ("a@x", "b@y\n"),
        ("a@x", ""),
    ] {
        assert!(c.submit(from, to, b"x", now).is_err(), "{from:?} {to:?}");
        assert_eq!(out(&mut c), "");
        assert!(c.is_ready());
    }
}

#[test]
fn an_oversized_message_is_refused_before_mail() {
    let (mut c, now) = ready(cfg(TlsMode::Off, None), EHLO_PIPELINING);
    let f = c
        .submit("a@example.test", "b@example.org", &[b'x'; 1001], now)
        .unwrap_err();
    assert!(
        f.permanent && f.detail.contains("at most 1000"),
        "{}",
        f.detail
    );
    assert_eq!(out(&mut c), "");
}

#[test]
fn every_wait_has_a_deadline_and_a_timeout_is_transient() {
    let now = Instant::now();
    let mut c = Client::new(cfg(TlsMode::Off, None), false, now).unwrap();
    assert_eq!(c.deadline(), Some(now + Duration::from_secs(300)));
    c.on_timeout(now + Duration::from_secs(299));
    assert!(c.poll_event().is_none());
    c.on_timeout(now + Duration::from_secs(300));
    let Some(Event::Closed(Some(f))) = c.poll_event() else {
        panic!()
    };
    assert_eq!(
        (f.kind, f.permanent, f.stage),
        (Kind::Timeout, false, Stage::Greeting)
    );
    // DATA waits 2 minutes, the final dot 10.
    let (mut c, now) = ready(cfg(TlsMode::Off, None), EHLO_PIPELINING);
    c.submit("a@example.test", "b@example.org", b"x", now)
        .unwrap();
    assert_eq!(c.deadline(), Some(now + Duration::from_secs(300)));
    c.receive(b"250 ok\r\n250 ok\r\n", now);
    assert_eq!(c.deadline(), Some(now + Duration::from_secs(120)));
    c.receive(b"354 go\r\n", now);
    assert_eq!(c.deadline(), Some(now + Duration::from_secs(600)));
    assert_eq!(
        Timeouts::RFC5321.capped(Duration::from_secs(30)).data_term,
        Duration::from_secs(30)
    );
}

#[test]
fn a_dropped_connection_is_transient_and_names_where() {
    let (mut c, now) = ready(cfg(TlsMode::Off, None), EHLO_PIPELINING);
    c.on_disconnect("reset");
    let Some(Event::Closed(Some(f))) = c.poll_event() else {
        panic!()
    };
    assert!(f.detail.contains("idle"), "{}", f.detail);
    let (mut c, _) = ready(cfg(TlsMode::Off, None), EHLO_PIPELINING);
    c.submit("a@example.test", "b@example.org", b"x", now)
        .unwrap();
    c.on_disconnect("reset by peer");
    let Some(Event::Closed(Some(f))) = c.poll_event() else {
        panic!()
    };
    assert_eq!(
        (f.kind, f.permanent, f.stage),
        (Kind::Network, false, Stage::Mail)
    );
}

#[test]
fn garbage_from_the_server_ends_the_session() {
    let now = Instant::now();
    let mut c = Client::new(cfg(TlsMode::Off, None), false, now).unwrap();
    c.receive(b"HTTP/1.1 400 Bad Request\r\n", now);
    let Some(Event::Closed(Some(f))) = c.poll_event() else {
        panic!()
    };
    assert_eq!(f.kind, Kind::Network);
    assert!(c.is_closed());
}

#[test]
fn dot_stuffing_is_exact() {
    for (input, wire) in [
        (&b""[..], &b".\r\n"[..]),
        (b"a", b"a\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"a\r\n.b\r\n..c\r\n", b"a\r\n..b\r\n...c\r\n.\r\n"),
        (b"a.\r\nb . c\r\n", b"a.\r\nb . c\r\n.\r\n"),
        // Bare LF and bare CR are line ends: nothing can end DATA early or smuggle a message.
        (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r.\rMAIL FROM:<x>", b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"),
        (b"\r\n.\r\n", b"\r\n..\r\n.\r\n"),
    ] {
        assert_eq!(
            dot_stuff(input),
            wire,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn endless_auth_prompts_end_the_session() {
    let (mut c, now) = tls_ready(
        cfg(TlsMode::Implicit, Some((Mechanism::Plain, "u", "p"))),
        "250-mx\r\n250 AUTH PLAIN\r\n",
    );
    assert!(out(&mut c).starts_with("AUTH PLAIN "));
    c.receive(b"334 more?\r\n", now);
    assert_eq!(out(&mut c), "*\r\n");
    c.receive(b"334 and more?\r\n", now);
    assert_eq!(out(&mut c), "QUIT\r\n");
    let Some(Event::Closed(Some(f))) = c.poll_event() else {
        panic!()
    };
    assert_eq!((f.kind, f.permanent), (Kind::Auth, false));
}

#[test]
fn a_temporary_auth_failure_is_transient() {
    let (mut c, now) = tls_ready(
        cfg(TlsMode::Implicit, Some((Mechanism::Plain, "u", "p"))),
        "250-mx\r\n250 AUTH PLAIN\r\n",
    );
    out(&mut c);
    c.receive(b"454 4.7.0 Temporary authentication failure\r\n", now);
    let Some(Event::Closed(Some(f))) = c.poll_event() else {
        panic!()
    };
    assert_eq!((f.kind, f.permanent), (Kind::Auth, false));
}
