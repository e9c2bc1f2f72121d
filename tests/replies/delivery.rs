//! Replies that reach the webhook, replies that never do (auto-replies, bounces, empty ones, a
//! thread the application says is gone), and a message the sender delivered twice.

use super::common::*;
use serde_json::{Value as Json, json};
use std::time::Duration;

/// How long a reply may take from `250` to a final record when the webhook answers at once.
const PROCESS: Duration = Duration::from_secs(20);

#[test]
fn replies_from_swaks_and_smtplib_reach_the_webhook_once_signed_with_only_the_new_text() {
    let dir = TempDir::new("replies-e2e");
    let s = Setup::start(&dir, Some(&["204"]));
    let issue = s.notify("issue", 42, 7);
    let pull = s.notify("pull_request", 9, 8);
    assert!(
        issue.reply_to.starts_with("reply+i-42-")
            && issue.reply_to.ends_with("-7@reply.herald.test")
    );

    // 1. swaks: top-posted text, a signature, the quoted notification.
    let text1 = "Thanks, I will look into it today.\nThe flaky part is the retry in ci/run.sh — caf\u{e9} first.";
    let mail1 = issue.reply(
        "<swaks-reply-1@client.example>",
        &[],
        &format!("{text1}\n\n-- \nBob Example\nhttps://example.org/bob"),
    );
    let qid1 = swaks(&dir, s.smtp, SENDER, &issue.reply_to, &mail1);
    let rec1 = wait_final(&s.h, &format!("{qid1}-1"), PROCESS);
    // 2. smtplib: a second reply, to the other notification, with "Reply all": the Cc of the
    // notification (a no-reply address) gets it too, and is discarded: only mail.log says so.
    let text2 = "LGTM, merging once CI is green.";
    let cc = "mention@noreply.herald.test";
    let mail2 = pull.reply(
        "<smtplib-reply-2@client.example>",
        &[&format!("Cc: {cc}")],
        text2,
    );
    let qid2 = smtplib(
        s.smtp,
        &[Envelope {
            from: SENDER,
            to: vec![&pull.reply_to, cc],
            data: mail2,
        }],
    )
    .remove(0);
    let rec2 = wait_final(&s.h, &format!("{qid2}-1"), PROCESS);
    assert!(
        !s.h.replies().iter().any(|r| r["to"] == cc),
        "no record for a no-reply recipient: {:#?}",
        s.h.replies()
    );
    assert!(
        s.h.mail_log().contains(&format!(
            "{qid2}: to=<{cc}>, relay=spool, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (discarded: no-reply address)"
        )),
        "{}",
        s.h.mail_log()
    );

    let hooks = s.hook().wait_requests(2, PROCESS);
    // Nothing more comes: each reply is posted once.
    std::thread::sleep(Duration::from_millis(1500));
    let hooks_after = s.hook().requests();
    assert_eq!(hooks_after.len(), 2, "{hooks_after:#?}");

    for (hook, rec, n, text, mid) in [
        (
            &hooks[0],
            &rec1,
            &issue,
            text1,
            "<swaks-reply-1@client.example>",
        ),
        (
            &hooks[1],
            &rec2,
            &pull,
            text2,
            "<smtplib-reply-2@client.example>",
        ),
    ] {
        assert_eq!(rec["status"], "processed", "{rec:#}");
        assert_eq!(rec["message_id"], mid, "{rec:#}");
        assert_eq!(rec["from"], SENDER);
        assert_eq!(rec["to"], n.reply_to.as_str());
        hook.assert_signed();
        assert_eq!(hook.answer, "204");
        assert_eq!(hook.delivery(), rec["id"].as_str().unwrap(), "{hook:#?}");
        let b = &hook.body;
        assert_eq!(
            b["thread"],
            json!({"kind": n.kind, "id": n.thread}),
            "{b:#}"
        );
        assert_eq!(b["user_id"], n.user, "{b:#}");
        assert_eq!(b["from"], SENDER, "{b:#}");
        assert_eq!(b["subject"], n.reply_subject(), "{b:#}");
        assert_eq!(b["body"], text, "only the new text: {b:#}");
        assert_eq!(b["message_id"], mid, "{b:#}");
        assert_eq!(b["received_at"], rec["received_at"], "{b:#}");
        let at = b["received_at"].as_str().unwrap();
        assert!(
            at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
            "{at}"
        );
    }

    // metroplex.log, in the seed's shape, by this process.
    let lines = metroplex_lines(&s.h);
    for (rec, mid) in [
        (&rec1, "<swaks-reply-1@client.example>"),
        (&rec2, "<smtplib-reply-2@client.example>"),
    ] {
        let id = rec["id"].as_str().unwrap();
        let p = find_line(&lines, "INFO", &format!("metroplex: processing {mid}"));
        let m = find_line(&lines, "DEBUG", &format!("Matched {id}"));
        let v = find_line(&lines, "DEBUG", &format!("Moving {id} => success"));
        assert!(p < m && m < v, "{lines:#?}");
    }
    assert!(lines.iter().all(|l| l.pid == s.h.pid()), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.level == "WARN"), "{lines:#?}");
    s.h.stop();
}

#[test]
fn auto_replies_bounces_and_empty_replies_are_never_posted() {
    let dir = TempDir::new("replies-drops");
    let s = Setup::start(&dir, Some(&["204"]));
    let n = s.notify("issue", 5, 6);
    let ooo = "I am out of the office until Monday.";
    // A delivery status notification, as a sending server writes it: multipart/report, from a
    // real (non-null) envelope sender, so only the report type says it is a bounce.
    let bounce = format!(
        "From: Mail Delivery System <postmaster@example.org>\r\nTo: <{to}>\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"dsn-b\"\r\n\r\n--dsn-b\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host example.org.\r\nYour message could not be delivered.\r\n\r\n--dsn-b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.org\r\n\r\nFinal-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--dsn-b--\r\n",
        to = n.reply_to
    );
    let cases: Vec<(&str, &str, String, &str)> = vec![
        (
            "auto-replied",
            SENDER,
            n.reply(
                "<ooo-1@client.example>",
                &["Auto-Submitted: auto-replied"],
                ooo,
            ),
            "failed:auto_reply",
        ),
        (
            "auto-generated",
            SENDER,
            n.reply(
                "<ooo-2@client.example>",
                &["Auto-Submitted: auto-generated"],
                ooo,
            ),
            "failed:auto_reply",
        ),
        (
            "precedence bulk",
            SENDER,
            n.reply("<bulk-1@client.example>", &["Precedence: bulk"], ooo),
            "failed:auto_reply",
        ),
        (
            "precedence junk",
            SENDER,
            n.reply("<junk-1@client.example>", &["Precedence: junk"], ooo),
            "failed:auto_reply",
        ),
        (
            "precedence list",
            SENDER,
            n.reply("<list-1@client.example>", &["Precedence: list"], ooo),
            "failed:auto_reply",
        ),
        (
            "null sender",
            "",
            n.reply(
                "<null-1@client.example>",
                &[],
                "A real-looking reply, but from <>.",
            ),
            "failed:auto_reply",
        ),
        (
            "bounce",
            "postmaster@example.org",
            bounce,
            "failed:auto_reply",
        ),
        (
            "only the quote",
            SENDER,
            n.reply("<empty-1@client.example>", &[], ""),
            "failed:empty",
        ),
        (
            "blank lines over the quote",
            SENDER,
            n.reply("<empty-2@client.example>", &[], "\n \n"),
            "failed:empty",
        ),
        // The control: `Auto-Submitted: no` is a person writing; it is posted.
        (
            "auto-submitted no",
            SENDER,
            n.reply(
                "<human-1@client.example>",
                &["Auto-Submitted: no"],
                "A person wrote this.",
            ),
            "processed",
        ),
    ];
    let envelopes: Vec<Envelope> = cases
        .iter()
        .map(|(_, from, data, _)| Envelope {
            from,
            to: vec![&n.reply_to],
            data: data.clone(),
        })
        .collect();
    let qids = smtplib(s.smtp, &envelopes);
    assert_eq!(qids.len(), cases.len());

    let lines_of = |id: &str| {
        let lines = metroplex_lines(&s.h);
        lines
            .into_iter()
            .filter(|l| l.text.contains(id))
            .collect::<Vec<_>>()
    };
    for ((what, from, _, want), qid) in cases.iter().zip(&qids) {
        let id = format!("{qid}-1");
        let rec = wait_final(&s.h, &id, PROCESS);
        assert_eq!(rec["status"], *want, "{what}: {rec:#}");
        assert_eq!(rec["from"], *from, "{what}: {rec:#}");
        let moved = if *want == "processed" {
            format!("Moving {id} => success")
        } else {
            format!("Moving {id} => failed")
        };
        assert!(
            lines_of(&id)
                .iter()
                .any(|l| l.level == "DEBUG" && l.text.starts_with(&moved)),
            "{what}: no {moved:?} in\n{}",
            metroplex(&s.h)
        );
    }
    // Only the control reached the webhook.
    std::thread::sleep(Duration::from_millis(1000));
    let hooks = s.hook().requests();
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    hooks[0].assert_signed();
    assert_eq!(hooks[0].body["body"], "A person wrote this.");
    assert_eq!(hooks[0].body["message_id"], "<human-1@client.example>");
    // A dropped reply is never "Matched" (that is the line of a reply that goes to the webhook).
    for ((what, _, _, want), qid) in cases.iter().zip(&qids) {
        let matched = lines_of(&format!("{qid}-1"))
            .iter()
            .any(|l| l.text.starts_with("Matched "));
        assert_eq!(
            matched,
            *want == "processed",
            "{what}:\n{}",
            metroplex(&s.h)
        );
    }
    s.h.stop();
}

#[test]
fn a_webhook_answering_404_or_410_fails_the_reply_as_thread_gone() {
    let dir = TempDir::new("replies-gone");
    let s = Setup::start(&dir, Some(&["404", "410", "204"]));
    let n = s.notify("discussion", 31, 4);
    let mut ids = Vec::new();
    for (i, code) in ["404", "410"].iter().enumerate() {
        let mail = n.reply(
            &format!("<gone-{i}@client.example>"),
            &[],
            &format!("A reply the application will answer {code}."),
        );
        let qid = swaks(&dir, s.smtp, SENDER, &n.reply_to, &mail);
        let id = format!("{qid}-1");
        let rec = wait_final(&s.h, &id, PROCESS);
        assert_eq!(rec["status"], "failed:thread_gone", "{code}: {rec:#}");
        ids.push(id);
    }
    // Each was posted once and not retried; the next reply is posted normally.
    let mail = n.reply("<gone-ok@client.example>", &[], "This one is fine.");
    let qid = swaks(&dir, s.smtp, SENDER, &n.reply_to, &mail);
    let ok = wait_final(&s.h, &format!("{qid}-1"), PROCESS);
    assert_eq!(ok["status"], "processed", "{ok:#}");
    std::thread::sleep(Duration::from_millis(1000));
    let hooks = s.hook().requests();
    let answers: Vec<&str> = hooks.iter().map(|h| h.answer.as_str()).collect();
    assert_eq!(answers, ["404", "410", "204"], "{hooks:#?}");
    for (hook, id) in hooks.iter().zip(&ids) {
        hook.assert_signed();
        assert_eq!(hook.delivery(), id);
    }
    let log = metroplex(&s.h);
    for id in &ids {
        assert!(
            log.contains(&format!("Moving {id} => failed")),
            "{id}:\n{log}"
        );
        assert!(!log.contains(&format!("{id}: webhook:")), "no retry: {log}");
    }
    s.h.stop();
}

#[test]
fn the_same_message_delivered_twice_is_posted_once() {
    let dir = TempDir::new("replies-dup");
    let s = Setup::start(&dir, Some(&["204"]));
    let n = s.notify("issue", 77, 3);
    let other = s.notify("commit", 88, 3);

    // Delivered, processed; then the sender's server delivers the very same message again.
    let mail = n.reply(
        "<dup-1@client.example>",
        &[],
        "Posted once, however often it comes.",
    );
    let first = swaks(&dir, s.smtp, SENDER, &n.reply_to, &mail);
    let first_rec = wait_final(&s.h, &format!("{first}-1"), PROCESS);
    assert_eq!(first_rec["status"], "processed", "{first_rec:#}");
    let again = smtplib(
        s.smtp,
        &[Envelope {
            from: SENDER,
            to: vec![&n.reply_to],
            data: mail.clone(),
        }],
    )
    .remove(0);
    let again_rec = wait_final(&s.h, &format!("{again}-1"), PROCESS);
    assert_eq!(again_rec["status"], "discarded", "{again_rec:#}");
    assert_eq!(again_rec["message_id"], "<dup-1@client.example>");
    // Once more, with the reply address upper-cased by some relay on the way: the same address.
    let upper = n.reply_to.to_uppercase();
    let third = swaks(&dir, s.smtp, SENDER, &upper, &mail);
    let third_rec = wait_final(&s.h, &format!("{third}-1"), PROCESS);
    assert_eq!(third_rec["status"], "discarded", "{third_rec:#}");

    // Twice back to back in one session, before either is processed: still one post.
    let burst = n.reply("<dup-2@client.example>", &[], "Sent twice in a row.");
    let twice: Vec<Envelope> = (0..2)
        .map(|_| Envelope {
            from: SENDER,
            to: vec![&n.reply_to],
            data: burst.clone(),
        })
        .collect();
    let burst_qids = smtplib(s.smtp, &twice);
    let burst_recs: Vec<_> = burst_qids
        .iter()
        .map(|q| wait_final(&s.h, &format!("{q}-1"), PROCESS))
        .collect();
    let mut statuses: Vec<&str> = burst_recs
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["discarded", "processed"], "{burst_recs:#?}");
    let burst_first = burst_recs
        .iter()
        .find(|r| r["status"] == "processed")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The same Message-ID to two reply addresses in one message is two replies, not a duplicate.
    let both = n
        .reply(
            "<dup-3@client.example>",
            &[],
            "One message answering two threads.",
        )
        .replacen(
            &format!("To: <{}>", n.reply_to),
            &format!("To: <{}>, <{}>", n.reply_to, other.reply_to),
            1,
        );
    let both_qid = smtplib(
        s.smtp,
        &[Envelope {
            from: SENDER,
            to: vec![&n.reply_to, &other.reply_to],
            data: both,
        }],
    )
    .remove(0);
    let both_recs: Vec<_> = ["1", "2"]
        .iter()
        .map(|k| wait_final(&s.h, &format!("{both_qid}-{k}"), PROCESS))
        .collect();
    for r in &both_recs {
        assert_eq!(r["status"], "processed", "{r:#}");
    }

    std::thread::sleep(Duration::from_millis(1000));
    let hooks = s.hook().requests();
    assert_eq!(hooks.len(), 4, "dup-1, dup-2, dup-3 twice: {hooks:#?}");
    for h in &hooks {
        h.assert_signed();
    }
    let by_mid = |mid: &str| -> Vec<&Hook> {
        hooks
            .iter()
            .filter(|h| h.body["message_id"] == mid)
            .collect()
    };
    let d1 = by_mid("<dup-1@client.example>");
    assert_eq!(d1.len(), 1, "{hooks:#?}");
    assert_eq!(d1[0].delivery(), format!("{first}-1"));
    let d2 = by_mid("<dup-2@client.example>");
    assert_eq!(d2.len(), 1, "{hooks:#?}");
    assert_eq!(d2[0].delivery(), burst_first);
    let d3 = by_mid("<dup-3@client.example>");
    // Each recipient's record is posted with its own thread and delivery id.
    let mut posted: Vec<(String, Json)> = d3
        .iter()
        .map(|h| (h.delivery().to_string(), h.body["thread"].clone()))
        .collect();
    posted.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        posted,
        [
            (format!("{both_qid}-1"), json!({"kind": "issue", "id": 77})),
            (format!("{both_qid}-2"), json!({"kind": "commit", "id": 88})),
        ],
        "{d3:#?}"
    );

    let log = metroplex(&s.h);
    assert!(
        log.contains(&format!("{again}-1 is a duplicate of {first}-1")),
        "{log}"
    );
    s.h.stop();
}

/// Replies as Gmail writes them in Japanese, built by Python's email package (base64 UTF-8
/// parts, RFC 2047 words in From and Subject): multipart/alternative, and HTML only with the
/// quote in a `gmail_quote` blockquote. Only the new text is posted, decoded.
#[test]
fn replies_written_by_pythons_email_package_in_japanese_are_posted_decoded() {
    let dir = TempDir::new("replies-mime");
    let s = Setup::start(&dir, Some(&["204"]));
    let n = s.notify("issue", 12, 34);
    let new = "了解しました。\n明日の朝に確認します。";
    let attribution = format!("2026年3月3日(火) 10:00 <{}>:", n.mail.one("From"));
    let quoted: String = n
        .mail
        .text()
        .trim_end()
        .lines()
        .map(|l| format!("> {l}\n"))
        .collect();
    let quoted_html: String = n
        .mail
        .text()
        .trim_end()
        .lines()
        .map(|l| format!("{}<br>", l.replace('<', "&lt;").replace('>', "&gt;")))
        .collect();
    let html = format!(
        "<div dir=\"ltr\">{}</div><br><div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">{}<br></div><blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex\">{quoted_html}</blockquote></div>\n",
        new.replace('\n', "<br>"),
        attribution.replace('<', "&lt;").replace('>', "&gt;"),
    );
    let subject = format!("{} — 確認します", n.reply_subject());
    let mids = [
        "<gmail-alt@mail.example.jp>",
        "<gmail-html@mail.example.jp>",
    ];
    let messages: Vec<String> = mids
        .iter()
        .map(|mid| {
            let headers = [
                ("From", "山田 太郎 <bob@example.org>"),
                ("To", n.reply_to.as_str()),
                ("Subject", subject.as_str()),
                ("Date", "Tue, 03 Mar 2026 10:00:00 +0900"),
                ("Message-ID", mid),
                ("In-Reply-To", n.mail.one("Message-ID")),
            ];
            if mid.contains("alt") {
                let text = format!("{new}\n\n{attribution}\n\n{quoted}");
                python_message(&headers, Some(&text), Some(&html), "base64")
            } else {
                python_message(&headers, None, Some(&html), "quoted-printable")
            }
        })
        .collect();
    assert!(
        messages[0].contains("multipart/alternative") && messages[0].contains("base64"),
        "{}",
        messages[0]
    );
    assert!(messages[0].contains("From: =?utf-8?b?"), "{}", messages[0]);
    let envelopes: Vec<Envelope> = messages
        .iter()
        .map(|m| Envelope {
            from: SENDER,
            to: vec![&n.reply_to],
            data: m.clone(),
        })
        .collect();
    let qids = smtplib(s.smtp, &envelopes);
    for q in &qids {
        let rec = wait_final(&s.h, &format!("{q}-1"), PROCESS);
        assert_eq!(rec["status"], "processed", "{rec:#}");
    }
    let hooks = s.hook().wait_requests(2, PROCESS);
    for (mid, q) in mids.iter().zip(&qids) {
        let hook = hooks
            .iter()
            .find(|h| h.body["message_id"] == *mid)
            .unwrap_or_else(|| panic!("{mid} not posted: {hooks:#?}"));
        hook.assert_signed();
        assert_eq!(hook.delivery(), format!("{q}-1"));
        let b = &hook.body;
        assert_eq!(b["body"], new, "{mid}: {b:#}");
        assert_eq!(b["subject"], subject, "{mid}: {b:#}");
        assert_eq!(b["from"], SENDER, "{mid}: {b:#}");
        assert_eq!(b["thread"], json!({"kind": "issue", "id": 12}));
        assert_eq!(b["user_id"], 34);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.hook().requests().len(), 2);
    s.h.stop();
}

/// RFC 9110 §15.2: "A client MUST be able to parse one or more 1xx responses received prior to a
/// final response, even if the client does not expect one." A webhook behind a server that sends
/// `103 Early Hints` (Puma, Node's `writeEarlyHints`) or an unasked `100 Continue` answers 204
/// after it; the reply was delivered and must be `processed` after that one POST.
#[test]
fn a_webhook_sending_an_interim_1xx_answer_first_gets_the_reply_once() {
    let dir = TempDir::new("replies-1xx");
    let s = Setup::start(&dir, Some(&["info 103", "info 100", "204"]));
    let n = s.notify("issue", 8, 9);
    for code in ["103", "100"] {
        let mail = n.reply(
            &format!("<interim-{code}@client.example>"),
            &[],
            &format!("Answered {code} first, then 204."),
        );
        let id = format!("{}-1", swaks(&dir, s.smtp, SENDER, &n.reply_to, &mail));
        // Final, or a failed attempt (then it would only be tried again after 30 s).
        let warn = format!("{id}: webhook: ");
        let rec = wait_for(&format!("{id} processed or retried"), PROCESS, || {
            let rec = record(&s.h, &id);
            if rec["status"] != "pending" {
                return Some(rec);
            }
            metroplex(&s.h)
                .lines()
                .find(|l| l.contains(&warn))
                .map(|l| panic!("{code}: the POST that got {code}, then 204, is retried: {l}"))
        });
        assert_eq!(rec["status"], "processed", "{code}: {rec:#}");
    }
    let hooks = s.hook().requests();
    assert_eq!(hooks.len(), 2, "{hooks:#?}");
    s.h.stop();
}
