//! Reply extraction against herald's own reply shapes in `tests/fixtures/replies` (one `.eml`
//! and one `.expected` each: the reply text, or `failed:empty` / `failed:auto_reply`), and the
//! pieces on their own. The corpora others wrote are in `extract_shared_tests`.

use super::extract::{auto_reply_reason, html_to_text, parse, reply_text, unflow};
use std::path::{Path, PathBuf};

// --- herald's own reply shapes ------------------------------------------------------------------

#[test]
fn own_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replies");
    let mut emls: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/replies")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    emls.sort();
    assert!(
        emls.len() >= 40,
        "at least 40 reply shapes, found {}",
        emls.len()
    );
    let mut failures = Vec::new();
    for eml in &emls {
        let want = std::fs::read_to_string(eml.with_extension("expected"))
            .expect("an .expected beside each .eml");
        let want = want.strip_suffix('\n').unwrap_or(&want);
        let raw = std::fs::read(eml).unwrap();
        let got = match parse(&raw, "jane@example.com") {
            Ok(p) => match p.failure() {
                Some(class) => format!("failed:{class}"),
                None => p.text,
            },
            Err(e) => format!("unparseable: {e}"),
        };
        if got != want {
            failures.push(format!(
                "{}: got {got:?}, want {want:?}",
                eml.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    eprintln!(
        "own corpus: {}/{} passed",
        emls.len() - failures.len(),
        emls.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// --- the pieces ---------------------------------------------------------------------------------

#[test]
fn auto_reply_rules() {
    let reason = |h: &[(&str, &str)], from: &str| auto_reply_reason(h.iter().copied(), from);
    assert_eq!(reason(&[], ""), Some("null sender (MAIL FROM:<>)".into()));
    assert_eq!(reason(&[], "<>"), Some("null sender (MAIL FROM:<>)".into()));
    assert_eq!(reason(&[("Auto-Submitted", " no")], "a@b.c"), None);
    assert_eq!(
        reason(
            &[("auto-submitted", " Auto-Replied; owner-email=x")],
            "a@b.c"
        )
        .as_deref(),
        Some("Auto-Submitted: Auto-Replied; owner-email=x")
    );
    assert!(reason(&[("X-Autoreply", " yes")], "a@b.c").is_some());
    assert!(reason(&[("X-Autorespond", " x")], "a@b.c").is_some());
    for p in ["bulk", "junk", "list", " List"] {
        assert_eq!(
            reason(&[("Precedence", p)], "a@b.c").as_deref(),
            Some(format!("Precedence: {}", p.trim().to_lowercase()).as_str())
        );
    }
    assert_eq!(reason(&[("Precedence", " first-class")], "a@b.c"), None);
    assert_eq!(
        reason(&[("X-Auto-Response-Suppress", " All")], "a@b.c"),
        None
    );
    assert_eq!(
        reason(
            &[(
                "Content-Type",
                " multipart/report;\r\n report-type=\"disposition-notification\"; boundary=x"
            )],
            "a@b.c"
        )
        .as_deref(),
        Some("a report (multipart/report; report-type=disposition-notification)")
    );
    assert_eq!(
        reason(&[("Content-Type", " multipart/mixed")], "a@b.c"),
        None
    );
}

#[test]
fn parse_rejects_nothing_it_can_read() {
    assert!(parse(b"", "a@b.c").is_err());
    assert!(parse(b"\r\n\r\n", "a@b.c").is_err());
    let p = parse(
        b"Subject: =?UTF-8?B?SMOpbGxv?=\r\nFrom: A <a@b.c>\r\nMessage-ID: <1@b.c>\r\n\r\nHi\r\n",
        "",
    )
    .unwrap();
    assert_eq!(
        (
            p.subject.as_str(),
            p.from.as_str(),
            p.message_id.as_deref(),
            p.text.as_str()
        ),
        ("Héllo", "a@b.c", Some("1@b.c"), "Hi")
    );
    assert_eq!(p.failure(), Some("auto_reply"));
    let p = parse(b"Subject: x\r\n\r\nHi\r\n", "env@b.c").unwrap();
    assert_eq!((p.from.as_str(), p.failure()), ("env@b.c", None));
}

#[test]
fn flowed_text_is_unwrapped() {
    assert_eq!(
        unflow("a \nb\n> c \n> d\n\n-- \nsig", false),
        "a b\n> c d\n\n-- \nsig"
    );
    assert_eq!(unflow("ab \ncd", true), "abcd");
}

#[test]
fn html_and_text_rules_agree_on_quotes() {
    let html = "<div>Answer</div><blockquote type=\"cite\"><div>On Mon, Mar 11, 2024, at 9:00, A &lt;a@b.c&gt; wrote:</div>q</blockquote>";
    assert_eq!(reply_text(&html_to_text(html)), "Answer");
    let inline = "<blockquote type=\"cite\">q1</blockquote><div>a1</div><blockquote type=\"cite\">q2</blockquote>";
    assert_eq!(reply_text(&html_to_text(inline)), "> q1\n\na1");
}

#[test]
fn odd_input_never_panics() {
    const PIECES: &[&str] = &[
        "<",
        ">",
        "<!--",
        "-->",
        "<div class=\"gmail_quote\">",
        "<blockquote>",
        "</blockquote>",
        "<pre>",
        "</pre>",
        "<br>",
        "<a href=\"http://x\">",
        "</a>",
        "<script>",
        "&#x",
        "&#99999999;",
        "&nbsp;",
        "&",
        ";",
        "é",
        "年",
        "写道：",
        " ",
        "\t",
        "\r\n",
        "\n",
        "\n> ",
        ">>",
        "-- \n",
        "--",
        "_____________",
        "On 1 Jan 2024, A <a@b.c> wrote:",
        "\nwrote:",
        "From: a\nSent: b\nTo: c\nSubject: d\n",
        "-----Original Message-----",
        "Sent from my iPhone",
        "=?UTF-8?B?w6k=?=",
        "Subject: x\r\n",
        "Content-Type: multipart/alternative; boundary=b\r\n",
        "Content-Type: text/html; charset=big5\r\n",
        "Content-Transfer-Encoding: base64\r\n",
        "Content-Transfer-Encoding: quoted-printable\r\n",
        "--b\r\n",
        "--b--\r\n",
        "=E2=80",
        "=\r\n",
        "format=flowed",
        "5pys",
        "-Name",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let n = (next() % 40) as usize;
        let s: String = (0..n)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        let _ = reply_text(&s);
        let _ = html_to_text(&s);
        let _ = unflow(&s, next() % 2 == 0);
        let _ = parse(s.as_bytes(), "a@b.c");
    }
}

#[test]
fn unlabelled_8bit_text_is_read_as_latin1() {
    let p = parse(
        b"From: a@b.c\r\nSubject: x\r\n\r\nGr\xfc\xdfe, \xe0 bient\xf4t\r\n",
        "a@b.c",
    )
    .unwrap();
    assert_eq!(p.text, "Grüße, à bientôt");
}

// --- bounds ----------------------------------------------------------------------------------

/// Regression: an auto-reply's whole header value became the record's `last_error` (3 MB
/// stored from one message).
#[test]
fn an_auto_replys_huge_header_is_kept_bounded() {
    let huge = "x".repeat(3_000_000);
    let raw = format!(
        "From: a@b.example\r\nAuto-Submitted: auto-replied; {huge}\r\nX-Autoreply: {huge}\r\nSubject: {huge}\r\n\r\nAway.\r\n"
    );
    let p = parse(raw.as_bytes(), "a@b.example").unwrap();
    let why = p.auto_reply.unwrap();
    assert!(
        why.starts_with("Auto-Submitted: auto-replied;"),
        "{}",
        &why[..40]
    );
    assert!(why.len() <= crate::bounded::FIELD_MAX + 32, "{}", why.len());
    assert!(p.subject.len() <= crate::bounded::FIELD_MAX);
}

/// Regression: SIZE advertised 25 MiB, but anything over 10 MiB became `failed:too_large`
/// after its 250. Every accepted message is read now: its text parts come first, and what lies
/// past the first 4 MiB (attachments) is not decoded.
#[test]
fn a_reply_with_a_large_attachment_is_read_in_bounded_memory() {
    let attachment = "QUJD".repeat(20 << 20 >> 2); // 20 MiB of base64
    let raw = format!(
        "From: Bob <bob@example.org>\r\nSubject: Re: logs\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe logs are attached.\r\n\r\n\
         On Mon, Jan 5, 2026 at 10:00 AM herald <noreply@example.com> wrote:\r\n> Please send logs\r\n\
         --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"logs.bin\"\r\n\r\n{attachment}\r\n--b--\r\n"
    );
    assert!(raw.len() > 20 << 20);
    let p = parse(raw.as_bytes(), "bob@example.org").unwrap();
    assert_eq!(p.text, "The logs are attached.");
    assert_eq!(p.failure(), None);
}
