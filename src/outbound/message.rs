//! The RFC 5322 messages herald sends: notifications (threaded on a synthetic thread root through
//! `In-Reply-To`/`References`, a `List-ID` per thread, the support footer) and the settings
//! page's test email. Pure: time, Message-ID and MIME boundary seed come in as arguments, so the
//! same input gives the same bytes. Output is 7-bit ASCII with CRLF line ends: headers folded at
//! 78 columns, non-ASCII header text as RFC 2047 "B" encoded words, bodies quoted-printable UTF-8.

use std::fmt::Write as _;

use crate::clock::civil_from_days;
use crate::crypto::base64_encode;

/// RFC 5322 §2.1.1: header lines SHOULD stay within 78 characters.
const HEADER_LINE: usize = 78;
/// RFC 2045 §6.7 (5): encoded body lines at most 76 characters.
const QP_LINE: usize = 76;
/// UTF-8 bytes per encoded word: 42 bytes are 56 base64 characters, a 68-character word (RFC 2047
/// allows 75), so `Subject: ` and a word still fit in 78 columns.
const WORD_BYTES: usize = 42;
const PLAIN_PART: &str =
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n";
const HTML_PART: &str =
    "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n";

/// Where a reader goes for help; shown in every notification's footer.
pub enum SupportLink {
    Email(String),
    Url(String),
    None,
}

/// One notification to one recipient (the recipient is in the envelope only).
pub struct Notification<'a> {
    /// The appliance's FQDN.
    pub hostname: &'a str,
    /// `smtp.noreply_address`: both `From` and `To`.
    pub noreply: &'a str,
    /// The minted reply address.
    pub reply_to: &'a str,
    /// Why the recipient gets this (`mention`, `assign`, …): `Cc: <reason>@noreply.<hostname>`.
    pub reason: &'a str,
    /// `issue`, `pull_request`, `commit` or `discussion`.
    pub thread_kind: &'a str,
    /// The thread's decimal id.
    pub thread_id: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub support: &'a SupportLink,
    /// Without angle brackets, e.g. `abc123@example.test`.
    pub message_id: &'a str,
    /// Seconds since the epoch.
    pub date_unix: i64,
    /// Random hex from the caller; the MIME boundary is `herald-<seed>`.
    pub boundary_seed: &'a str,
}

/// The synthetic thread root (`<kind>/<id>@<hostname>`, no brackets) that every mail of a thread
/// names in `In-Reply-To` and `References`, so clients thread them although no mail has it.
pub fn thread_root_id(hostname: &str, kind: &str, id: &str) -> String {
    format!("{kind}/{id}@{hostname}")
}

/// The whole message, headers and body, CRLF line ends, ready for DATA (before dot-stuffing).
pub fn notification(n: &Notification) -> Vec<u8> {
    let host = clean(n.hostname);
    let root = clean(&thread_root_id(n.hostname, n.thread_kind, n.thread_id));
    let mut m = String::new();
    header(&mut m, "Date", &rfc5322_date(n.date_unix));
    header(&mut m, "From", &clean(n.noreply));
    header(&mut m, "To", &clean(n.noreply));
    header(&mut m, "Cc", &format!("{}@noreply.{host}", clean(n.reason)));
    header(&mut m, "Reply-To", &clean(n.reply_to));
    header(&mut m, "Subject", &encode_header_text(n.subject));
    header(&mut m, "Message-ID", &msg_id(n.message_id));
    header(&mut m, "In-Reply-To", &format!("<{root}>"));
    header(&mut m, "References", &format!("<{root}>"));
    let list = format!("{}-{}.{host}", clean(n.thread_kind), clean(n.thread_id));
    header(&mut m, "List-ID", &format!("<{list}>"));
    header(&mut m, "Auto-Submitted", "auto-generated");
    header(&mut m, "X-Auto-Response-Suppress", "All");
    header(&mut m, "MIME-Version", "1.0");
    let text = quoted_printable(&text_body(n.text, n.support));
    match n.html {
        None => {
            m.push_str(PLAIN_PART);
            m.push_str("\r\n");
            m.push_str(&text);
        }
        Some(html) => {
            let seed: String = n
                .boundary_seed
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(63)
                .collect();
            let b = format!("herald-{seed}");
            header(
                &mut m,
                "Content-Type",
                &format!("multipart/alternative; boundary=\"{b}\""),
            );
            let mut html = quoted_printable(&html_body(html, n.support));
            if !html.ends_with("\r\n") {
                html.push_str("\r\n");
            }
            let _ = write!(
                m,
                "\r\n--{b}\r\n{PLAIN_PART}\r\n{text}--{b}\r\n{HTML_PART}\r\n{html}--{b}--\r\n"
            );
        }
    }
    m.into_bytes()
}

/// The settings page's test email: `Subject: Test email from <hostname>` and a one-line body.
pub fn test_email(
    hostname: &str,
    from: &str,
    to: &str,
    message_id: &str,
    date_unix: i64,
) -> Vec<u8> {
    let host = clean(hostname);
    let mut m = String::new();
    header(&mut m, "Date", &rfc5322_date(date_unix));
    header(&mut m, "From", &clean(from));
    header(&mut m, "To", &clean(to));
    header(
        &mut m,
        "Subject",
        &encode_header_text(&format!("Test email from {host}")),
    );
    header(&mut m, "Message-ID", &msg_id(message_id));
    header(&mut m, "Auto-Submitted", "auto-generated");
    header(&mut m, "MIME-Version", "1.0");
    // The line is ASCII and far shorter than 998 octets: sent as it is (7bit), so the raw
    // message shows the seed's sentence whole, not broken by a quoted-printable soft break.
    m.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
    );
    m.push_str(&format!(
        "This is a test email generated from https://{host}/setup/settings\r\n"
    ));
    m.into_bytes()
}

/// Header text as is when it is printable ASCII that folds cleanly (single spaces, no word over 76
/// characters, no `=?`); otherwise the whole text as RFC 2047 `B` encoded words (UTF-8), each at
/// most 68 characters, split only between characters, separated by spaces, so control characters
/// (CR, LF, …) never reach the header raw.
pub fn encode_header_text(s: &str) -> String {
    let plain = s.bytes().all(|b| (b' '..=b'~').contains(&b))
        && !s.contains("=?")
        && !s.contains("  ")
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && s.split(' ').all(|w| w.len() <= QP_LINE);
    if plain {
        return s.to_string();
    }
    let word = |t: &str| format!("=?utf-8?B?{}?=", base64_encode(t.as_bytes()));
    let mut words = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if i + c.len_utf8() - start > WORD_BYTES {
            words.push(word(&s[start..i]));
            start = i;
        }
    }
    words.push(word(&s[start..]));
    words.join(" ")
}

/// Quoted-printable (RFC 2045 §6.7). CRLF or LF in the input end a line (CRLF out); a lone CR is
/// `=0D`. Space and tab are encoded at a line's end, `=` and non-ASCII bytes as `=XX` (upper
/// case), lines soft-broken at 76 characters. `From ` at the start of a line becomes `=46rom `
/// so an mbox on the way cannot mangle it.
pub fn quoted_printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for seg in s.split_inclusive('\n') {
        let (line, eol) = match seg.strip_suffix('\n') {
            Some(l) => (l.strip_suffix('\r').unwrap_or(l).as_bytes(), true),
            None => (seg.as_bytes(), false),
        };
        let mut col = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let mut literal =
                matches!(b, b'!'..=b'<' | b'>'..=b'~') || (!last && matches!(b, b' ' | b'\t'));
            let (width, room) = (
                if literal { 1 } else { 3 },
                if last { QP_LINE } else { QP_LINE - 1 },
            );
            if col + width > room {
                out.push_str("=\r\n");
                col = 0;
            }
            literal &= !(col == 0 && line[i..].starts_with(b"From "));
            if literal {
                out.push(char::from(b));
                col += 1;
            } else {
                let _ = write!(out, "={b:02X}");
                col += 3;
            }
        }
        if eol {
            out.push_str("\r\n");
        }
    }
    out
}

/// `Fri, 04 Dec 2026 11:38:40 +0000` (RFC 5322 §3.3), always UTC.
pub fn rfc5322_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[usize::from(mo) - 1],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A caller-supplied header value made inert: control characters become spaces, other non-ASCII
/// `?`, outer white space trimmed. The caller validates; this only keeps a slip from injecting.
fn clean(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| match c {
            ' '..='~' => c,
            c if c.is_control() => ' ',
            _ => '?',
        })
        .collect();
    s.trim().to_string()
}

fn msg_id(id: &str) -> String {
    format!("<{}>", clean(id).trim_matches(['<', '>']))
}

/// Appends `name: value` CRLF, folded (RFC 5322 §2.2.3) before a space that follows a non-space,
/// the last one within 78 columns, so no line is only white space. `value` is ASCII.
fn header(out: &mut String, name: &str, value: &str) {
    let line = format!("{name}: {value}");
    let mut rest = line.as_str();
    while rest.len() > HEADER_LINE {
        let b = rest.as_bytes();
        let ok = |p: &usize| b[*p] == b' ' && b[*p - 1] != b' ';
        let Some(p) = (1..=HEADER_LINE)
            .rev()
            .find(ok)
            .or_else(|| (HEADER_LINE + 1..b.len()).find(ok))
        else {
            break;
        };
        out.push_str(&rest[..p]);
        out.push_str("\r\n");
        rest = &rest[p..];
    }
    out.push_str(rest);
    out.push_str("\r\n");
}

fn support_target(s: &SupportLink) -> Option<(&str, &str)> {
    match s {
        SupportLink::Email(a) if !a.is_empty() => Some(("mailto:", a)),
        SupportLink::Url(u) if !u.is_empty() => Some(("", u)),
        _ => None,
    }
}

/// The text, then a blank line, the `-- ` signature separator and the footer.
fn text_body(text: &str, support: &SupportLink) -> String {
    let text = text.trim_end_matches(['\r', '\n']);
    match support_target(support) {
        Some((_, link)) => {
            format!("{text}\n\n-- \nReply to this email directly or contact support: {link}\n")
        }
        None => format!("{text}\n\n-- \nReply to this email directly.\n"),
    }
}

/// The html with an `<hr>` footer before `</body>` (or at the end).
fn html_body(html: &str, support: &SupportLink) -> String {
    let footer = match support_target(support) {
        Some((scheme, link)) => {
            let link = escape(link);
            format!(
                "Reply to this email directly or contact support: <a href=\"{scheme}{link}\">{link}</a>"
            )
        }
        None => "Reply to this email directly.".to_string(),
    };
    let footer = format!("<hr>\n<p>{footer}</p>\n");
    match html.to_ascii_lowercase().rfind("</body") {
        Some(i) => format!("{}{footer}{}", &html[..i], &html[i..]),
        None => format!("{}\n{footer}", html.trim_end_matches(['\r', '\n'])),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::base64_decode;

    fn sample<'a>(support: &'a SupportLink, s: &'a str, html: Option<&'a str>) -> Notification<'a> {
        Notification {
            hostname: "example.test",
            noreply: "noreply@example.test",
            reply_to: "reply+i-42-abc-7@reply.example.test",
            reason: "mention",
            thread_kind: "issue",
            thread_id: "42",
            subject: s,
            text: "Hi = there",
            html,
            support,
            message_id: "m1@example.test",
            date_unix: 0,
            boundary_seed: "0a1b",
        }
    }

    fn s(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    /// Every line CRLF-terminated, 7-bit, headers ≤ 78, body ≤ 76 (test inputs keep them short).
    fn check_lines(msg: &str) {
        assert!(msg.is_ascii() && msg.ends_with("\r\n"), "{msg}");
        let mut in_header = true;
        for line in msg.split_inclusive('\n') {
            let line = line.strip_suffix("\r\n").expect("CRLF");
            assert!(
                !line.contains('\r') && !line.bytes().any(|b| b < 0x20 && b != b'\t'),
                "{line:?}"
            );
            assert!(
                line.len() <= if in_header { HEADER_LINE } else { QP_LINE },
                "{line:?}"
            );
            in_header &= !line.is_empty();
        }
    }

    fn unfold(msg: &str, name: &str) -> Vec<String> {
        let head = msg.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ");
        let prefix = format!("{name}: ");
        head.split("\r\n")
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(str::to_string)
            .collect()
    }

    fn decode_words(v: &str) -> String {
        let mut bytes = Vec::new();
        for w in v.split(' ') {
            assert!(w.len() <= 75, "{w}");
            let b64 = w
                .strip_prefix("=?utf-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .expect(w);
            bytes.extend(base64_decode(b64).unwrap());
        }
        String::from_utf8(bytes).unwrap()
    }

    fn qp_decode(s: &str) -> String {
        let s = s.replace("=\r\n", "");
        let (mut out, b) = (Vec::new(), s.as_bytes());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// Part `i` (1-based) of a multipart notification, decoded.
    fn part(msg: &str, i: usize) -> String {
        let p = msg.split("--herald-0a1b").nth(i).unwrap();
        qp_decode(p.split_once("\r\n\r\n").unwrap().1)
    }

    #[test]
    fn text_only_exact_bytes() {
        let support = SupportLink::Email("help@example.test".into());
        let got = s(notification(&sample(&support, "Mentioned in #42", None)));
        let want = "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n\
            From: noreply@example.test\r\n\
            To: noreply@example.test\r\n\
            Cc: mention@noreply.example.test\r\n\
            Reply-To: reply+i-42-abc-7@reply.example.test\r\n\
            Subject: Mentioned in #42\r\n\
            Message-ID: <m1@example.test>\r\n\
            In-Reply-To: <issue/42@example.test>\r\n\
            References: <issue/42@example.test>\r\n\
            List-ID: <issue-42.example.test>\r\n\
            Auto-Submitted: auto-generated\r\n\
            X-Auto-Response-Suppress: All\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\
            \r\n\
            Hi =3D there\r\n\
            \r\n\
            --=20\r\n\
            Reply to this email directly or contact support: help@example.test\r\n";
        assert_eq!(got, want);
        check_lines(&got);
    }

    #[test]
    fn multipart_structure_and_html_footer() {
        let support = SupportLink::Url("https://x.test/?a=1&b=\"2\"".into());
        let html = "<html><body><p>Hi</p></body></html>";
        let got = s(notification(&sample(&support, "s", Some(html))));
        check_lines(&got);
        let (head, body) = got.split_once("\r\n\r\n").unwrap();
        assert!(head.ends_with(
            "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"herald-0a1b\""
        ));
        assert!(!head.contains("Content-Transfer-Encoding"));
        let parts: Vec<&str> = body.split("--herald-0a1b").collect();
        assert_eq!(parts.len(), 4, "{body}");
        assert_eq!((parts[0], parts[3]), ("", "--\r\n"));
        assert!(parts[1].starts_with(&format!("\r\n{PLAIN_PART}\r\n")));
        assert!(parts[2].starts_with(&format!("\r\n{HTML_PART}\r\n")));
        assert_eq!(
            part(&got, 1),
            "Hi = there\r\n\r\n-- \r\nReply to this email directly or contact support: https://x.test/?a=1&b=\"2\"\r\n"
        );
        let html = part(&got, 2);
        let link = "https://x.test/?a=1&amp;b=&quot;2&quot;";
        let footer = format!(
            "<hr>\r\n<p>Reply to this email directly or contact support: <a href=\"{link}\">{link}</a></p>\r\n"
        );
        assert_eq!(
            html,
            format!("<html><body><p>Hi</p>{footer}</body></html>\r\n")
        );
        let none = s(notification(&sample(
            &SupportLink::None,
            "s",
            Some("<b>x</b>"),
        )));
        assert!(none.contains(
            "<b>x</b>\r\n<hr>\r\n<p>Reply to this email directly.</p>\r\n--herald-0a1b--\r\n"
        ));
        let support = SupportLink::Email("a&b@x.test".into());
        let mail = s(notification(&sample(&support, "s", Some("x"))));
        assert!(part(&mail, 2).contains("<a href=\"mailto:a&amp;b@x.test\">a&amp;b@x.test</a>"));
    }

    #[test]
    fn japanese_subject_round_trips() {
        let long_jp = "テスト通知 – issue #42 ".repeat(8);
        for subject in ["テスト通知 – issue #42", long_jp.as_str(), "é"] {
            let got = s(notification(&sample(&SupportLink::None, subject, None)));
            check_lines(&got);
            let v = unfold(&got, "Subject");
            assert_eq!(v.len(), 1);
            assert_eq!(decode_words(&v[0]), subject);
        }
        // Long ASCII folds at spaces and unfolds to the original.
        let long = "word ".repeat(40) + "end";
        let got = s(notification(&sample(&SupportLink::None, &long, None)));
        check_lines(&got);
        assert_eq!(unfold(&got, "Subject"), [long]);
        // Look-alike encoded words, overlong words and odd spacing are encoded, not folded.
        for text in ["=?utf-8?B?eA==?=", &"x".repeat(80), "a  b ", " a"] {
            assert_eq!(decode_words(&encode_header_text(text)), text);
        }
    }

    #[test]
    fn quoted_printable_vectors() {
        let check = |input: &str, want: &str| assert_eq!(quoted_printable(input), want);
        check("a b \r\nc\t\n", "a b=20\r\nc=09\r\n");
        check("1=2", "1=3D2");
        check("é–", "=C3=A9=E2=80=93");
        check("a\rb\r", "a=0Db=0D");
        check("From me\nx From y", "=46rom me\r\nx From y");
        check(".\r\n", ".\r\n");
        let x = |n| "x".repeat(n);
        check(&x(76), &x(76));
        check(&x(77), &format!("{}=\r\nxx", x(75)));
        check(&format!("{}=", x(74)), &format!("{}=\r\n=3D", x(74)));
        let text = format!("{}\r\n{} \r\n", "é".repeat(60), "ab= ".repeat(30));
        let qp = quoted_printable(&text);
        assert!(qp.split("\r\n").all(|l| l.len() <= QP_LINE && l.is_ascii()));
        assert_eq!(qp_decode(&qp), text);
    }

    #[test]
    fn header_injection_is_neutralised() {
        let mut n = sample(&SupportLink::None, "Hello\r\nBcc: x@evil", None);
        n.reason = "mention\r\nBcc: y@evil";
        n.reply_to = "r@x.test\nBcc: z@evil";
        n.message_id = "m\r\n\r\nbody";
        let got = s(notification(&n));
        check_lines(&got);
        let bcc = |l: &str| l.to_ascii_lowercase().starts_with("bcc");
        assert!(!got.split("\r\n").any(bcc), "{got}");
        assert_eq!(
            decode_words(&unfold(&got, "Subject")[0]),
            "Hello\r\nBcc: x@evil"
        );
        // One blank line ends the header, the other is the footer's.
        assert_eq!(got.matches("\r\n\r\n").count(), 2);
    }

    #[test]
    fn test_email_bytes() {
        let got = s(test_email(
            "h.test",
            "n@h.test",
            "a@b.test",
            "t@h.test",
            1_796_384_320,
        ));
        let want = "Date: Fri, 04 Dec 2026 11:38:40 +0000\r\nFrom: n@h.test\r\nTo: a@b.test\r\n\
             Subject: Test email from h.test\r\nMessage-ID: <t@h.test>\r\n\
             Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
             This is a test email generated from https://h.test/setup/settings\r\n";
        assert_eq!(got, want);
        // A long host name: the sentence stays whole on one line (7bit allows 998 octets).
        let host = "a-rather-long-appliance-name.example.test";
        let long = s(test_email(host, "n@x", "a@b", "i@x", 0));
        let body = long.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(
            body,
            format!("This is a test email generated from https://{host}/setup/settings\r\n")
        );
    }

    #[test]
    fn dates() {
        for (unix, want) in [
            (0, "Thu, 01 Jan 1970 00:00:00 +0000"),
            (1_796_384_320, "Fri, 04 Dec 2026 11:38:40 +0000"),
            (1_795_865_920, "Sat, 28 Nov 2026 11:38:40 +0000"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
            (-1, "Wed, 31 Dec 1969 23:59:59 +0000"),
        ] {
            assert_eq!(rfc5322_date(unix), want);
        }
    }
}
