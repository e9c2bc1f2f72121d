//! The attribution a client writes above a quoted message: "On Tue, 12 Mar 2024 at 10:15, Jane
//! <jane@example.com> wrote:" and its kin in every language herald's readers write in, also
//! wrapped over two or three lines, without the colon, framed in dashes, or on the same line as
//! the sender's own text.
//!
//! Sources: Thunderbird's `mailnews.reply_header_authorwrotesingle`, `…_ondateauthorwrote` and
//! `…_authorwroteondate` (thunderbird/thunderbird-l10n
//! `<locale>/mail/chrome/messenger/messengercompose/composeMsgs.properties`); K-9 Mail's
//! `message_compose_reply_header_fmt[_with_date]` (thunderbird/thunderbird-android
//! `values-<locale>/strings.xml`); Gmail's and Apple Mail's lines as they stand in real mail
//! (mailing-list archives; the fixtures of crisp-oss/email-reply-parser, mailgun/talon and
//! discourse/email_reply_trimmer); Outlook 2019's "On … wrote" forms (crisp-oss/
//! email-forward-parser `lib/parser.js`, `separator_with_information`); Zoho's
//! `---- On … wrote ----` and Yahoo's `--- On … wrote:` (crisp-oss/email-reply-parser
//! `email_zoho.txt`, mailgun/talon tests).

/// Longest attribution (joined over its lines) considered, in characters.
pub const MAX_CHARS: usize = 300;
/// How many lines an attribution may be wrapped over.
pub const MAX_LINES: usize = 3;

/// The verbs an attribution says "wrote" with, lowercased; matched as whole words.
const VERBS: &[&str] = &[
    // en (Thunderbird, K-9, Gmail, Apple Mail; "sent"/"writes"/"said" in mailgun/talon tests)
    "wrote",
    "writes",
    "sent",
    "said",
    // de
    "schrieb",
    // fr
    "a écrit",
    // es
    "escribió",
    "escribio",
    // it
    "ha scritto",
    // pt
    "escreveu",
    // nl
    "schreef",
    "het volgende",
    // da, nb, sv (Outlook 2019: "skrev følgende", "skrev … följande")
    "skrev",
    "følgende",
    "följande",
    // fi
    "kirjoitti",
    // pl (Thunderbird "pisze", K-9 and Outlook "napisał(a)")
    "pisze",
    "napisał",
    "napisała",
    "napisał(a)",
    "napisal",
    // cs
    "napsal",
    "napsala",
    "napsal(a)",
    // hu (Thunderbird "írta", Gmail and Outlook "ezt írta")
    "írta",
    // ru
    "пишет",
    "написал",
    "написала",
    "написал(а)",
    // uk
    "пише",
    "написав",
    "написала",
    // tr (Thunderbird "yazdı", Gmail and Outlook "şunu yazdı")
    "yazdı",
    // vi
    "đã viết",
    // ja
    "書きました",
    "のメール",
    // zh
    "写道",
    "寫道",
    "写于",
    // ko (Gmail "님이 작성", Thunderbird "이(가) 쓴 글", K-9 "작성함")
    "작성",
    "작성함",
    "쓴 글",
];

/// Verbs of scripts without spaces between words: matched anywhere.
const CJK_VERBS: &[&str] = &[
    "写道",
    "寫道",
    "写于",
    "書きました",
    "のメール",
    "작성",
    "쓴 글",
];

/// Words an attribution may start with when a client wrapped it over lines or glued it to the
/// sender's text (lowercased, with their space).
pub const OPENERS: &[&str] = &[
    "on ",
    "am ",
    "le ",
    "el ",
    "op ",
    "il ",
    "em ",
    "den ",
    "w dniu ",
    "dnia ",
    "dne ",
    "в ",
    "at ",
    "às ",
    "vào lúc ",
    "vào ",
    "在 ",
    "在",
];

/// Whether `lower` holds `word` as a whole word (or, for CJK verbs, anywhere).
fn has_word(lower: &str, word: &str) -> bool {
    if CJK_VERBS.contains(&word) {
        return lower.contains(word);
    }
    lower.match_indices(word).any(|(i, _)| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + word.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric()) && after.is_none_or(|c| !c.is_alphanumeric())
    })
}

/// English verbs are the attribution's last word ("… wrote:"); elsewhere they are the sender's
/// own ("I sent the logs at 10:15:").
const LAST_WORD_VERBS: &[&str] = &["wrote", "writes", "sent", "said"];

fn has_verb(lower: &str) -> bool {
    let body = lower.trim_end_matches([':', '：']).trim_end();
    VERBS.iter().any(|v| {
        if LAST_WORD_VERBS.contains(v) {
            (body.ends_with(v) && has_word(body, v))
                // Thunderbird's "#1 wrote on #2 #3:".
                || has_word(body, &format!("{v} on"))
        } else {
            has_word(lower, v)
        }
    })
}

/// A time (`10:15`, `9.31`) or a four-digit year in `t`.
fn has_date(t: &str) -> bool {
    let b = t.as_bytes();
    let time = b.windows(4).any(|w| {
        w[0].is_ascii_digit()
            && matches!(w[1], b':' | b'.')
            && w[2].is_ascii_digit()
            && w[3].is_ascii_digit()
    });
    let year = b.windows(4).any(|w| w.iter().all(u8::is_ascii_digit));
    time || year || t.contains('年')
}

/// An address: `<a@b>`, `(a@b)`, `a@b`, or left HTML-escaped.
fn has_address(t: &str) -> bool {
    t.contains('@')
}

/// The decoration of a dash-framed attribution taken off: Zoho's `---- On … wrote ----`,
/// Yahoo's `--- On … wrote:`.
fn unframe(t: &str) -> (&str, bool) {
    let inner = t.trim_start_matches(['-', ' ']);
    let framed_start = inner.len() + 2 <= t.len();
    let inner2 = inner.trim_end_matches(['-', ' ']);
    let framed_end = inner2.len() + 2 <= inner.len();
    (inner2, framed_start && framed_end)
}

/// "On <date>, <someone> wrote:" and the like, in one string (lines joined by a space).
pub fn is_attribution(t: &str) -> bool {
    let t = t.trim();
    if t.is_empty() || t.chars().count() > MAX_CHARS {
        return false;
    }
    let (inner, framed) = unframe(t);
    let lower = inner.to_lowercase();
    // Zoho's and Android's dash frames: the verb ends it, no colon.
    if framed {
        let words = lower.trim_end_matches([':', '：']).trim_end();
        return VERBS.iter().any(|v| words.ends_with(v));
    }
    let colon = lower.ends_with([':', '：']);
    let dated = has_date(&lower);
    let addressed = has_address(&lower);
    if colon {
        if has_verb(&lower) {
            return dated || addressed;
        }
        // No verb: Gmail in Japanese, Russian and Ukrainian ("2024年3月12日(火) 10:15 Herald
        // <noreply@herald.example>:"), Thunderbird in Ukrainian ("12.03.2024 10:15, Herald:").
        if dated && addressed {
            return true;
        }
        return dated && starts_with_date(&lower) && lower.split_whitespace().count() <= 10;
    }
    // No colon: "On … wrote" cut short by the client, old Gmail's "2013/10/2 Name <a@b>" and
    // "2016-03-03 17:21 GMT+01:00 Some One", Thunderbird Korean's "… 이(가) 쓴 글".
    let ends_with_verb = VERBS.iter().any(|v| lower.ends_with(v));
    if ends_with_verb && (dated || addressed) && starts_like_attribution(&lower) {
        return true;
    }
    if lower.ends_with("쓴 글") {
        return true;
    }
    starts_with_date(&lower)
        && dated
        && (lower.ends_with('>') && addressed || lower.contains(" gmt"))
}

/// A numeric date first: `2016-10-24`, `2013/10/2`, `12.03.2024`.
fn starts_with_date(lower: &str) -> bool {
    let digits = lower.bytes().take_while(u8::is_ascii_digit).count();
    (1..=4).contains(&digits) && matches!(lower.as_bytes().get(digits), Some(b'-' | b'/' | b'.'))
}

/// Whether the period a line ends with is a date's: after a number ("12."), an abbreviated day
/// or month ("márc.", "Di."), or in a line that holds a date already.
fn date_period(line: &str) -> bool {
    let word = line
        .trim_end_matches('.')
        .rsplit([' ', ',', '('])
        .next()
        .unwrap_or("");
    has_date(&line.to_lowercase())
        || (!word.is_empty() && !word.contains('@') && word.chars().count() <= 5)
}

/// A line that opens an attribution as clients write it, capitalised ("On …", "Am …", "Le …"):
/// wrapped into the line below, such a word is lowercase.
pub fn opens(line: &str) -> bool {
    let t = line.trim_start();
    t.chars().next().is_some_and(char::is_uppercase)
        && OPENERS
            .iter()
            .any(|o| o.is_ascii() && t.to_lowercase().starts_with(o))
}

fn starts_like_attribution(lower: &str) -> bool {
    OPENERS.iter().any(|o| lower.starts_with(o)) || starts_with_date(lower)
}

/// "Jane wrote:", "Herald Notifications schrieb:": an attribution with no date and no address
/// (Thunderbird's `authorwrotesingle`, old Apple Mail), taken for one only right above a quote.
pub fn is_bare_attribution(t: &str) -> bool {
    let t = t.trim();
    let Some(body) = t.strip_suffix([':', '：']) else {
        return false;
    };
    let lower = body.trim_end().to_lowercase();
    let words = lower.split_whitespace().count();
    if words == 0 || words > 7 || lower.contains(['.', '?', '!', ';']) {
        return false;
    }
    // Norwegian Thunderbird puts the verb first: "skrev Jane:".
    VERBS
        .iter()
        .any(|v| lower.ends_with(v) || lower.starts_with(&format!("{v} ")))
}

/// Whether a line may be the first of an attribution that goes on over the next line.
pub fn may_continue(first: &str) -> bool {
    let first = first.trim();
    // A line that ends with a colon (an attribution of its own, or the sender's "On Monday:"),
    // or ends a sentence, is not the first half of a wrapped attribution. A period after a
    // date's day or month ("… schrieb am Di., 12.", "(időpont: 2024. márc.", "12 мар. 2024 г.")
    // does not end one where the line already names an address.
    if first.ends_with([':', '：', '!', '?', '。', '！', '？']) {
        return false;
    }
    if first.ends_with('.')
        && !first.ends_with("г.")
        && !(first.contains('@') && date_period(first))
    {
        return false;
    }
    if first.chars().count() > MAX_CHARS {
        return false;
    }
    let lower = first.to_lowercase();
    starts_like_attribution(&lower)
        || lower.contains('@')
        || lower.ends_with('<')
        || lower.ends_with('(')
        || has_date(&lower)
}

/// Where, in a line of the sender's text, an attribution glued to it starts ("ok On Wed, Apr 4,
/// 2012 at 1:00 PM, Herald <noreply@herald.example> wrote:", "reply--- On …"): the byte offset,
/// if any.
pub fn glued_at(line: &str) -> Option<usize> {
    let t = line.trim_end();
    if !t.ends_with([':', '：']) || t.chars().count() > MAX_CHARS + 80 {
        return None;
    }
    if starts_like_attribution(&t.to_lowercase()) {
        return None;
    }
    let mut prev: Option<char> = None;
    for (i, c) in t.char_indices() {
        let boundary = i > 0 && prev.is_some_and(|p| p.is_whitespace() || p == '-');
        prev = Some(c);
        if !boundary {
            continue;
        }
        let rest = &t[i..];
        let head: String = rest.chars().take(12).collect::<String>().to_lowercase();
        if (OPENERS.iter().any(|o| head.starts_with(o)) || head.starts_with("---"))
            && is_attribution(rest)
        {
            // The dashes of Yahoo's "--- On" go with the attribution.
            let start = t[..i].trim_end().trim_end_matches('-').len();
            // A name or a date before the opener belongs to the attribution itself ("Jane
            // <j@x> wrote on …", "Em qua., 27 de out. de 2021 às 09:31, …").
            let before = &t[..start];
            if before.trim().is_empty()
                || before.contains(['@', '<'])
                || before.bytes().any(|b| b.is_ascii_digit())
            {
                return None;
            }
            return Some(start);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributions_in_their_languages() {
        for yes in [
            "On Tue, Sep 9, 2014 at 8:03 AM, gordon_ryan <info@discourse.org> wrote:",
            "Am 12.03.2024 um 10:15 schrieb Max Mustermann <max@example.de>:",
            "Le mar. 12 mars 2024 à 10:15, Jean Dupont <jean@example.fr> a écrit :",
            "El mar, 12 mar 2024 a las 10:15, Juan Pérez (<juan@example.es>) escribió:",
            "2024年3月12日(火) 10:15 山田太郎 <taro@example.jp>:",
            "张三 <zhangsan@example.cn> 于2024年3月12日周二 10:15写道：",
            "Op 18 juli 2013 10:23 schreef Sander Datema het volgende:",
            "W dniu 12.03.2024 o 10:15, Jan Kowalski pisze:",
            "Dne 12. 3. 2024 v 10:15 Jan Novák napsal(a):",
            "2024. márc. 12., K, 10:15 időpontban Herald <noreply@herald.example> ezt írta:",
            "вт, 12 мар. 2024 г. в 10:15, Herald <noreply@herald.example>:",
            "12.03.2024 10:15, Herald:",
            "12 Mar 2024 Sal, 10:15 tarihinde Herald <noreply@herald.example> şunu yazdı:",
            "Vào lúc 10:15 12/03/2024, Herald đã viết:",
            "2024년 3월 12일 (화) 오전 10:15, Herald <noreply@herald.example>님이 작성:",
            "---- On Tue, 22 Dec 2015 14:17:36 +0530 Herald <noreply@herald.example> wrote ----",
            "---- Herald Notifications wrote ----",
            "2016-03-03 17:21 GMT+01:00 Some One",
            "2013/10/2 camilohollanda <info@discourse.org>",
            "On Tue, Mar 12, 2024 at 10:15 AM Herald <noreply@herald.example> wrote",
        ] {
            assert!(is_attribution(yes), "{yes}");
        }
        for no in [
            "One outstanding question I had:",
            "On your remote host you can run:",
            "He wrote:",
            "I sent the presentation at 10:15:",
            "The timeout is 10:15 ms",
            "The logs from 2024 show",
        ] {
            assert!(!is_attribution(no), "{no}");
        }
    }

    #[test]
    fn bare_attributions() {
        assert!(is_bare_attribution("Herald Notifications wrote:"));
        assert!(is_bare_attribution("skrev Herald:"));
        assert!(!is_bare_attribution(
            "This is what the manual says. It wrote:"
        ));
        assert!(!is_bare_attribution("wrote"));
    }

    #[test]
    fn glued_to_the_text() {
        let line = "ok On Wed, Apr 4, 2012 at 1:00 PM, Herald <noreply@herald.example> wrote:";
        assert_eq!(glued_at(line), Some(2));
        let yahoo = "reply--- On Wed, Apr 4, 2012 at 3:59 PM, me@domain.com wrote:";
        assert_eq!(glued_at(yahoo), Some(5));
        assert_eq!(
            glued_at("On Wed, Apr 4, 2012 at 1:00 PM, Herald <h@x> wrote:"),
            None
        );
        assert_eq!(glued_at("I will be on holiday on Monday:"), None);
    }
}
