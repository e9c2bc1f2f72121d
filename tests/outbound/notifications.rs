//! Notifications through the API and the delivery worker: the message, connection reuse,
//! faults, crashes.

use super::common::*;
use crate::harness::*;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Notifications through the delivery worker

/// A notification text with lines a careless client would end DATA with.
const DOTTED: &str = "Before the dot\n.\n..two dots\nAfter the dot";

/// `[smtp]` lines for delivery to smtp-sink on `port`: plaintext, no AUTH.
pub fn sink_settings(port: u16) -> String {
    format!("enabled = true\naddress = \"127.0.0.1\"\nport = {port}\ntls = \"off\"\n")
}

#[test]
fn a_notification_reaches_the_smarthost_threaded_with_the_recipient_only_in_the_envelope() {
    let dir = TempDir::new("out-notify");
    let port = free_port();
    let sink = Sink::start(&dir, "sink", port, &[]);
    let h = start_herald(&dir, &sink_settings(port));
    let api = Api::new(&h);

    let mut first = notification("bob@example.org", "issue", 42, 7);
    first["html"] = json!("<p><b>@octocat</b> mentioned you.</p>");
    // A lone dot must not end DATA early (it is dot-stuffed on the wire).
    first["text"] = json!(DOTTED);
    let a = api.notify(&first);
    let b = api.notify(&notification("carol@example.org", "issue", 42, 8));
    let c = api.notify(&notification("bob@example.org", "pull_request", 9, 7));
    for (ans, prefix) in [(&a, "reply+i-42-"), (&b, "reply+i-42-"), (&c, "reply+p-9-")] {
        let reply_to = ans["reply_to"].as_str().unwrap();
        assert!(
            reply_to.starts_with(prefix) && reply_to.ends_with("@reply.herald.test"),
            "{ans}"
        );
        let mid = ans["message_id"].as_str().unwrap();
        assert!(
            mid.starts_with('<') && mid.ends_with("@herald.test>"),
            "{ans}"
        );
    }
    let ids = [&a, &b, &c].map(|ans| ans["id"].as_str().unwrap().to_string());
    for id in &ids {
        let st = api.wait_status(id, &["sent", "failed"]);
        assert_eq!(st["status"], "sent", "{st:#}");
        assert_eq!(st["attempts"], 1, "{st:#}");
        assert!(st["last_error"].is_null(), "{st:#}");
        assert!(st["sent_at"].is_string(), "{st:#}");
    }

    let mails = sink.wait_captured(3);
    assert_eq!(mails.len(), 3);
    let by_id: BTreeMap<String, &Mail> = mails
        .iter()
        .map(|m| (m.one("Message-ID").to_string(), m))
        .collect();
    for (ans, to, root, list) in [
        (
            &a,
            "bob@example.org",
            "<issue/42@herald.test>",
            "<issue-42.herald.test>",
        ),
        (
            &b,
            "carol@example.org",
            "<issue/42@herald.test>",
            "<issue-42.herald.test>",
        ),
        (
            &c,
            "bob@example.org",
            "<pull_request/9@herald.test>",
            "<pull_request-9.herald.test>",
        ),
    ] {
        let m = by_id
            .get(ans["message_id"].as_str().unwrap())
            .unwrap_or_else(|| panic!("{ans} not captured: {:?}", by_id.keys()));
        // The envelope.
        assert!(
            m.one("X-Mail-Args").starts_with(&format!("<{NOREPLY}>")),
            "{:?}",
            m.headers
        );
        assert_eq!(m.one("X-Rcpt-Args"), format!("<{to}>"));
        // The header: the recipient appears nowhere in it.
        assert_eq!(m.one("From"), NOREPLY);
        assert_eq!(m.one("To"), NOREPLY);
        assert_eq!(m.one("Reply-To"), ans["reply_to"].as_str().unwrap());
        assert_eq!(m.one("Cc"), "mention@noreply.herald.test");
        assert_eq!(m.one("In-Reply-To"), root);
        assert_eq!(m.one("References"), root);
        assert_eq!(m.one("List-ID"), list);
        assert!(m.one("Subject").starts_with("Re: [octo/app] Flaky test"));
        for (name, value) in &m.headers {
            if !name.starts_with("X-Rcpt") {
                assert!(!value.contains(to), "{name}: {value}");
            }
        }
        assert!(m.one("Date").ends_with("+0000"), "{:?}", m.headers);
        assert_eq!(m.one("Auto-Submitted"), "auto-generated");
        let want = if m.one("Reply-To") == a["reply_to"] && to == "bob@example.org" {
            DOTTED
        } else {
            "Please have a look."
        };
        assert!(m.text().contains(want), "{want:?} in {}", m.body);
        assert!(
            m.text().contains("Reply to this email directly"),
            "the footer: {}",
            m.body
        );
    }
    let html = by_id[a["message_id"].as_str().unwrap()];
    assert!(
        html.one("Content-Type")
            .starts_with("multipart/alternative;"),
        "{:?}",
        html.headers
    );
    assert!(html.text().contains("<b>@octocat</b> mentioned you."));

    let log = h.mail_log();
    for (id, to) in ids
        .iter()
        .zip(["bob@example.org", "carol@example.org", "bob@example.org"])
    {
        let lines = delivery_lines(&log, id);
        assert_eq!(lines.len(), 1, "{id}:\n{log}");
        assert!(
            lines[0].contains(&format!(
                "herald/smtp[{}]: {id}: to=<{to}>, relay=127.0.0.1[127.0.0.1]:{port}, delay=",
                h.pid()
            )) && lines[0].contains(", dsn=2.0.0, status=sent (250 "),
            "{}",
            lines[0]
        );
        assert!(log.contains(&format!("{id}: removed")), "{log}");
        assert!(log.contains(&format!("{id}: message-id=<")), "{log}");
    }
    let listed = h.control_get("/manage/v1/queue?status=sent");
    assert_eq!(
        listed["notifications"].as_array().unwrap().len(),
        3,
        "{listed:#}"
    );
    assert_eq!(api.counts(), counts(0, 0, 3, 0));
    h.stop();
}

#[test]
fn notifications_go_through_starttls_and_auth_with_the_applied_settings() {
    const N: usize = 8;
    let dir = TempDir::new("out-notify-tls");
    let pki = Pki::new(&dir);
    let sh = Smarthost::tls_with_auth(&dir, "tls", &pki, "starttls", "LOGIN");
    let h = start_herald(
        &dir,
        &format!(
            "enabled = true\naddress = \"localhost\"\nport = {}\ntls = \"starttls-required\"\nca_file = \"{}\"\nauthentication = \"login\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            sh.port,
            arg(&pki.ca_file)
        ),
    );
    let api = Api::new(&h);
    let mut want = BTreeMap::new();
    for i in 0..N {
        let to = format!("tls{i}@example.org");
        let ans = api.notify(&notification(&to, "discussion", 77, 1 + i as u64));
        want.insert(ans["id"].as_str().unwrap().to_string(), to);
    }
    for id in want.keys() {
        let st = api.wait_status(id, &["sent", "failed"]);
        assert_eq!(st["status"], "sent", "{st:#}");
    }
    let got = sh.received();
    assert_eq!(got.len(), N);
    let mut rcpts = BTreeSet::new();
    let mut connections = BTreeSet::new();
    for (mail, meta) in &got {
        assert_eq!(meta["tls"], true, "{meta}");
        assert_eq!(meta["auth_user"], USER, "{meta}");
        assert_eq!(meta["mail_from"], NOREPLY, "{meta}");
        assert_eq!(mail.one("List-ID"), "<discussion-77.herald.test>");
        rcpts.insert(meta["rcpt_tos"][0].as_str().unwrap().to_string());
        connections.insert(meta["peer"].to_string());
    }
    assert_eq!(rcpts, want.values().cloned().collect::<BTreeSet<_>>());
    eprintln!("{N} notifications over {} connection(s)", connections.len());
    assert_no_password("mail.log", &h.mail_log());
    assert_no_password("herald's log", &h.log());
    assert_no_password(
        "the queue listing",
        &h.control_get("/manage/v1/queue").to_string(),
    );
    h.stop();
}

#[test]
fn fifty_notifications_are_each_sent_exactly_once() {
    const N: usize = 50;
    let dir = TempDir::new("out-fifty");
    let port = free_port();
    let sink = Sink::start(&dir, "sink", port, &[]);
    let h = start_herald(&dir, &sink_settings(port));
    let api = Api::new(&h);

    let started = Instant::now();
    let mut want: BTreeMap<String, (String, String)> = BTreeMap::new(); // message id → (id, to)
    for i in 0..N {
        let to = format!("user{i}@example.org");
        let ans = api.notify(&notification(
            &to,
            "issue",
            1000 + i as u64 % 5,
            1 + i as u64,
        ));
        want.insert(
            ans["message_id"].as_str().unwrap().to_string(),
            (ans["id"].as_str().unwrap().to_string(), to),
        );
    }
    assert_eq!(want.len(), N, "unique Message-IDs");
    wait_until("every notification sent", || {
        let c = api.counts();
        assert_eq!(c["failed"], 0, "{c:?}\n{}", h.mail_log());
        (c["sent"] == N as u64).then_some(())
    });
    eprintln!(
        "{N} notifications queued and sent in {:?}",
        started.elapsed()
    );

    let mails = sink.wait_captured(N);
    // Nothing more arrives later.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.captured().len(), N, "exactly {N} messages captured");
    let mut seen = BTreeSet::new();
    for m in &mails {
        let mid = m.one("Message-ID").to_string();
        let (_, to) = want
            .get(&mid)
            .unwrap_or_else(|| panic!("unknown message {mid}"));
        assert_eq!(m.one("X-Rcpt-Args"), format!("<{to}>"));
        assert!(seen.insert(mid.clone()), "{mid} captured twice");
    }
    assert_eq!(seen.len(), N);
    for (id, _) in want.values() {
        let st = api.get(id);
        assert_eq!(st["status"], "sent", "{st:#}");
        assert_eq!(st["attempts"], 1, "{st:#}");
    }
    let log = h.mail_log();
    assert_eq!(log.matches("status=sent").count(), N, "{log}");
    for (id, to) in want.values() {
        let lines = delivery_lines(&log, id);
        assert_eq!(lines.len(), 1, "{id}:\n{log}");
        assert!(
            lines[0].contains(&format!("to=<{to}>")) && lines[0].contains("status=sent"),
            "{}",
            lines[0]
        );
    }
    assert_eq!(api.counts(), counts(0, 0, N as u64, 0));
    h.stop();
}

#[test]
fn notifications_due_together_share_connections() {
    const LATER: usize = 12;
    let dir = TempDir::new("out-reuse");
    let port = free_port();
    // Each DATA waits a second, so the worker is busy while more notifications come in.
    let sink = Sink::start(&dir, "slow", port, &["-c", "-w", "1"]);
    // Sink::start's readiness probe was a session: wait until it is counted.
    let (probe, _) = wait_until("the probe's session", || {
        let (s, m) = sink.counters();
        (s >= 1).then_some((s, m))
    });
    let h = start_herald(&dir, &sink_settings(port));
    let api = Api::new(&h);
    let first = api.notify(&notification("first@example.org", "issue", 1, 1));
    let mut ids = vec![first["id"].as_str().unwrap().to_string()];
    for i in 0..LATER {
        let ans = api.notify(&notification(
            &format!("later{i}@example.org"),
            "issue",
            2,
            1 + i as u64,
        ));
        ids.push(ans["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let st = api.wait_status(id, &["sent", "failed"]);
        assert_eq!(st["status"], "sent", "{st:#}");
        assert_eq!(st["attempts"], 1, "{st:#}");
    }
    sink.wait_captured(ids.len());
    let (sessions, messages) = wait_until("smtp-sink's counters", || {
        let (s, m) = sink.counters();
        (m == ids.len() as u64).then_some((s, m))
    });
    // The first on its own connection, the rest (due together by the time it is done) over at
    // most one per lane (4); a slow machine may need one more round.
    let sessions = sessions - probe;
    eprintln!("{messages} messages over {sessions} sessions");
    assert!(
        sessions <= 1 + 4 + 4,
        "{messages} messages over {sessions} sessions:\n{}",
        h.mail_log()
    );
    h.stop();
}

#[test]
fn a_refused_recipient_fails_alone_and_the_connection_goes_on_with_the_next() {
    const N: usize = 12;
    let dir = TempDir::new("out-mixed");
    let bad = |i: usize| i % 4 == 1;
    let to = |i: usize| {
        if bad(i) {
            format!("gone{i}@example.org")
        } else {
            format!("user{i}@example.org")
        }
    };
    let reject: Vec<String> = (0..N)
        .filter(|&i| bad(i))
        .flat_map(|i| ["--reject-rcpt".to_string(), to(i)])
        .collect();
    let mut args = vec!["--tls", "none"];
    args.extend(reject.iter().map(String::as_str));
    let sh = Smarthost::start(&dir, "mixed", &args);
    let h = start_herald(&dir, &sink_settings(sh.port));
    let api = Api::new(&h);

    // The smarthost stopped: the worker's first round waits for its greeting while the rest
    // come in, so they are due together in the next round and share connections.
    let pid = sh.peer.pid().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    let ids: Vec<String> = (0..N)
        .map(|i| {
            api.notify(&notification(&to(i), "issue", 3, 1 + i as u64))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    signal("-CONT");

    let log = wait_until("every outcome", || {
        ids.iter()
            .all(|id| {
                let st = api.get(id);
                st["status"] == "sent" || st["status"] == "failed"
            })
            .then(|| h.mail_log())
    });
    for (i, id) in ids.iter().enumerate() {
        let st = api.get(id);
        assert_eq!(st["attempts"], 1, "{st:#}");
        let lines = delivery_lines(&log, id);
        assert_eq!(lines.len(), 1, "{id}:\n{log}");
        if bad(i) {
            assert_eq!(st["status"], "failed", "{st:#}");
            let e = st["last_error"].as_str().unwrap();
            assert!(e.contains("550 5.1.1 No such user"), "{e}");
            assert!(
                lines[0].contains("dsn=5.1.1, status=bounced ("),
                "{}",
                lines[0]
            );
        } else {
            assert_eq!(st["status"], "sent", "{st:#}");
            assert!(lines[0].contains("status=sent (250 "), "{}", lines[0]);
        }
    }
    let got = sh.received();
    let rcpts: Vec<String> = got
        .iter()
        .map(|(_, meta)| meta["rcpt_tos"][0].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (0..N).filter(|&i| !bad(i)).map(to).collect();
    assert_eq!(
        rcpts.iter().collect::<BTreeSet<_>>(),
        want.iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(rcpts.len(), want.len(), "each exactly once: {rcpts:?}");
    let connections: BTreeSet<String> = got.iter().map(|(_, m)| m["peer"].to_string()).collect();
    eprintln!(
        "{} messages over {} connections",
        got.len(),
        connections.len()
    );
    assert!(
        connections.len() <= 2 * 4 && connections.len() < got.len(),
        "{} messages over {} connections",
        got.len(),
        connections.len()
    );
    h.stop();
}

#[test]
fn bad_notification_requests_get_400_naming_each_field_and_no_bearer_gets_401() {
    let dir = TempDir::new("out-api");
    // Nobody listens on the smarthost port: accepted notifications just wait.
    let h = start_herald(&dir, &sink_settings(free_port()));
    let api = Api::new(&h);
    let good = notification("bob@example.org", "issue", 42, 7);
    let with = |k: &str, v: Json| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let mut missing_to = good.clone();
    missing_to.as_object_mut().unwrap().remove("to");
    let mut bad_kind = good.clone();
    bad_kind["thread"]["kind"] = json!("gist");
    let cases = [
        ("missing to", missing_to, "to"),
        ("bad address", with("to", json!("not-an-address")), "to"),
        (
            "header injection in to",
            with("to", json!("bob@example.org\r\nBcc: eve@example.org")),
            "to",
        ),
        (
            "CRLF in the subject",
            with("subject", json!("Hello\r\nBcc: eve@example.org")),
            "subject",
        ),
        ("unknown field", with("cc", json!("eve@example.org")), "cc"),
        ("thread kind", bad_kind, "thread.kind"),
        ("user_id 0", with("user_id", json!(0)), "user_id"),
    ];
    for (what, body, field) in &cases {
        let (code, j) = api.post(body);
        assert_eq!(code, 400, "{what}: {j:#}");
        let errors = j["errors"].as_object().unwrap_or_else(|| panic!("{j:#}"));
        assert_eq!(errors.keys().collect::<Vec<_>>(), [field], "{what}: {j:#}");
        assert!(
            errors[*field].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {j:#}"
        );
    }
    // Everything wrong at once: every field named in one answer.
    let mut all = with("to", json!("nobody"));
    all["subject"] = json!("a\nb");
    all["cc"] = json!("x");
    all["thread"]["kind"] = json!("wiki");
    all["user_id"] = json!(0);
    let (code, j) = api.post(&all);
    assert_eq!(code, 400, "{j:#}");
    let named: BTreeSet<&str> = j["errors"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        named,
        BTreeSet::from(["to", "subject", "cc", "thread.kind", "user_id"]),
        "{j:#}"
    );
    let (code, j) = api.post(&json!("not an object"));
    assert_eq!(code, 400, "{j:#}");
    assert!(j["errors"]["body"].is_string(), "{j:#}");
    assert_eq!(api.counts(), counts(0, 0, 0, 0), "nothing was queued");
    for id in ["FFFFFFFF", "not-an-id"] {
        let path = format!("/api/v1/notifications/{id}");
        let (code, text) = h.control_request("GET", &path, std::slice::from_ref(&api.auth), None);
        assert_eq!(code, 404, "{path}: {text}");
    }

    // On the network the bearer token is required.
    let cert = fetch_cert(&h, &dir);
    let body = good.to_string();
    let post = [
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
    ];
    let (code, text) = curl(&h, &cert, &post, "/api/v1/notifications");
    assert_eq!(code, 401, "{text}");
    let wrong = "Authorization: Bearer not-the-token";
    let (code, text) = curl(
        &h,
        &cert,
        &[&post[..], &["-H", wrong]].concat(),
        "/api/v1/notifications",
    );
    assert_eq!(code, 401, "{text}");
    assert_eq!(api.counts(), counts(0, 0, 0, 0), "nothing was queued");
    let (code, text) = curl(
        &h,
        &cert,
        &[&post[..], &["-H", &api.auth]].concat(),
        "/api/v1/notifications",
    );
    assert_eq!(code, 202, "{text}");
    let ans: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(
        api.get(ans["id"].as_str().unwrap())["to"],
        "bob@example.org"
    );
    h.stop();
}
