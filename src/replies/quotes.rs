//! The text rules of reply extraction: given the decoded plain-text body of a reply, keep what
//! the sender wrote and drop the quoted notification and the signature.
//!
//! Each line is classified first (blank, `>` quote, "On … wrote:" attribution, Outlook header
//! block, hard delimiter, `-- ` signature, "Sent from my …" line, text), then:
//!
//! 1. everything from the first Outlook header block ("From: … Sent: … To: … Subject:"),
//!    `-----Original Message-----` / forwarded-message marker, long `____` rule or `-- `
//!    signature on is cut;
//! 2. an attribution followed by a quote that has new text after it (an inline reply) loses only
//!    its own line: the quote stays, so an inline answer is never taken for blank; an attribution
//!    followed by nothing but quotes, or by unquoted text (a quoted message without `>` marks),
//!    cuts the rest;
//! 3. "Sent from my …" lines standing alone are dropped;
//! 4. quotes and blank lines after the last new text are dropped, and a closing `-Name` line.
//!
//! Attributions are recognised in English, German, French, Spanish, Dutch, Italian, Portuguese,
//! Scandinavian, Polish, Russian, Japanese, Chinese and Korean forms, also when a client wrapped
//! them over two or three lines. Every rule is linear in the size of the body.

/// What one line of the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Blank,
    Quote,
    /// The first line of an attribution spanning `n` lines.
    Attribution(usize),
    /// A continuation line of an attribution.
    AttributionMore,
    /// The first line of an Outlook-style header block of the quoted message.
    Headers,
    /// `-----Original Message-----`, a forwarded-message marker, a long `____` rule.
    Delimiter,
    /// `-- ` (or `--`) alone: a signature follows.
    Signature,
    /// "Sent from my iPhone" and its kin.
    Mobile,
    Text,
}

/// Longest attribution (joined over its lines) considered, in characters.
const ATTRIBUTION_MAX: usize = 300;
/// How many lines an attribution may be wrapped over.
const ATTRIBUTION_LINES: usize = 3;
/// How many consecutive lines an Outlook header block is looked for in.
const HEADER_BLOCK_LINES: usize = 8;

/// The reply text of a plain-text body: what is above the quoted notification and the signature,
/// with inline quotes that sit above new text kept. Empty when the sender wrote nothing.
pub fn reply_text(body: &str) -> String {
    let body = if body.contains('\r') {
        std::borrow::Cow::Owned(body.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(body)
    };
    let lines: Vec<&str> = body.split('\n').collect();
    let kinds = classify(&lines);
    let mut keep = vec![true; lines.len()];

    // 1. Hard boundaries.
    let mut end = kinds
        .iter()
        .position(|k| matches!(k, Kind::Headers | Kind::Delimiter | Kind::Signature))
        .unwrap_or(lines.len());
    if end < lines.len() {
        // The rule or blank lines an Outlook block or marker sits under go with it.
        while end > 0 && (kinds[end - 1] == Kind::Blank || is_rule(lines[end - 1])) {
            end -= 1;
        }
    }

    // 2. Attributions.
    let mut i = 0;
    while i < end {
        let Kind::Attribution(n) = kinds[i] else {
            i += 1;
            continue;
        };
        let after = i + n;
        match (after..end).find(|&j| kinds[j] != Kind::Blank) {
            Some(j) if kinds[j] == Kind::Quote => {
                let mut m = j;
                while m < end && matches!(kinds[m], Kind::Quote | Kind::Blank | Kind::Mobile) {
                    m += 1;
                }
                if m < end {
                    // Something follows the quote: an inline reply. Only the attribution goes
                    // (with the blank lines between it and the quote).
                    keep[i..j].iter_mut().for_each(|k| *k = false);
                    i = m;
                } else {
                    end = i;
                }
            }
            // Nothing after it, or the quoted message without `>` marks.
            _ => end = i,
        }
    }

    // 3. "Sent from my …" lines that stand alone.
    for i in 0..end {
        if kinds[i] == Kind::Mobile {
            let above = i == 0 || kinds[i - 1] == Kind::Blank;
            let below = i + 1 >= end || kinds[i + 1] == Kind::Blank;
            if above && below {
                keep[i] = false;
            }
        }
    }

    // 4. Trailing quotes and blanks, and a closing `-Name` sign-off.
    loop {
        while end > 0 && (!keep[end - 1] || matches!(kinds[end - 1], Kind::Blank | Kind::Quote)) {
            end -= 1;
        }
        let start = (0..end)
            .rev()
            .find(|&j| kinds[j] == Kind::Blank)
            .map_or(0, |j| j + 1);
        if start < end && start > 0 && end - start == 1 && is_dash_signoff(lines[start]) {
            end = start;
            continue;
        }
        break;
    }

    let mut out = String::with_capacity(body.len());
    for (line, _) in lines[..end].iter().zip(&keep).filter(|(_, k)| **k) {
        if out.is_empty() && line.trim().is_empty() {
            continue;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out
}

fn classify(lines: &[&str]) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = lines.iter().map(|l| line_kind(l)).collect();
    let mut i = 0;
    while i < lines.len() {
        if kinds[i] == Kind::Text {
            if let Some(n) = attribution_lines(lines, &kinds, i) {
                kinds[i] = Kind::Attribution(n);
                for k in &mut kinds[i + 1..i + n] {
                    *k = Kind::AttributionMore;
                }
                i += n;
                continue;
            }
            if is_header_block(lines, i) {
                kinds[i] = Kind::Headers;
            }
        }
        i += 1;
    }
    kinds
}

/// The kind a line has on its own (attributions and header blocks need their neighbours).
fn line_kind(line: &str) -> Kind {
    let t = line.trim();
    if t.is_empty() {
        Kind::Blank
    } else if t.starts_with('>') {
        Kind::Quote
    } else if t == "--" {
        Kind::Signature
    } else if is_delimiter(t) {
        Kind::Delimiter
    } else if is_mobile_signature(t) {
        Kind::Mobile
    } else {
        Kind::Text
    }
}

/// `-----Original Message-----` and its translations, forwarded-message markers, and a rule of
/// ten or more underscores (Outlook's separator, a mailing-list footer's).
fn is_delimiter(t: &str) -> bool {
    if t.len() >= 10 && t.chars().all(|c| c == '_') {
        return true;
    }
    // Every marker starts with `--` or ends with `:` (lowercasing keeps both).
    if !t.starts_with("--") && !t.ends_with(':') {
        return false;
    }
    let lower = t.to_lowercase();
    if t.starts_with("--") {
        let inner = lower.trim_matches(|c: char| c == '-' || c.is_whitespace());
        const MARKERS: &[&str] = &[
            "original message",
            "ursprüngliche nachricht",
            "originalnachricht",
            "message d'origine",
            "message d’origine",
            "mensaje original",
            "messaggio originale",
            "mensagem original",
            "oorspronkelijk bericht",
            "originalmeddelande",
            "opprinnelig melding",
            "alkuperäinen viesti",
            "исходное сообщение",
            "原始邮件",
            "原始郵件",
            "元のメッセージ",
            "forwarded message",
            "weitergeleitete nachricht",
            "message transféré",
            "mensaje reenviado",
            "转发的邮件",
            "轉寄的郵件",
        ];
        return MARKERS.contains(&inner);
    }
    const FORWARD_LINES: &[&str] = &[
        "begin forwarded message:",
        "anfang der weitergeleiteten nachricht:",
        "début du message réexpédié :",
        "début du message réexpédié:",
        "inicio del mensaje reenviado:",
        "転送されたメッセージ:",
    ];
    FORWARD_LINES.contains(&lower.as_str())
}

/// A line of only rule characters (`-`, `_`, `=`, `*`), five or more.
fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 5 && t.chars().all(|c| matches!(c, '-' | '_' | '=' | '*'))
}

/// "Sent from my iPhone", "Von meinem iPhone gesendet", "iPhoneから送信", …: a short line
/// with no sentence punctuation inside.
fn is_mobile_signature(t: &str) -> bool {
    let t = t.trim_end_matches('.');
    const PREFIXES: &[&str] = &[
        "sent from ",
        "sent with ",
        "sent via ",
        "sent using ",
        "get outlook for ",
        "von meinem ",
        "gesendet von ",
        "envoyé de mon ",
        "envoyé depuis ",
        "enviado desde ",
        "enviado de mi ",
        "enviado do meu ",
        "inviato da ",
        "verzonden vanaf ",
        "verstuurd vanaf ",
        "skickat från ",
        "sendt fra ",
        "wysłane z ",
        "отправлено с ",
    ];
    let chars = t.chars().count();
    if chars > 80 {
        return false;
    }
    // A line whose first letter, lowercased, starts no prefix can only be one of the short CJK
    // forms: the first character of `lower` is that of `t`'s first, lowercased.
    let first = t.chars().next().and_then(|c| c.to_lowercase().next());
    if chars > 30 && !PREFIXES.iter().any(|p| p.chars().next() == first) {
        return false;
    }
    let lower = t.to_lowercase();
    if let Some(p) = PREFIXES.iter().find(|p| lower.starts_with(*p)) {
        let rest = &lower[p.len()..];
        let words = rest.split_whitespace().count();
        return (1..=6).contains(&words) && !rest.contains([',', ';', '?', '!']);
    }
    chars <= 30
        && (lower.ends_with("から送信")
            || lower.starts_with("发自我的")
            || (lower.starts_with("從我的") && lower.ends_with("傳送"))
            || lower.ends_with("에서 보냄"))
}

/// The last paragraph being just `-Name` (a dash, then a word: not a `- ` bullet).
fn is_dash_signoff(line: &str) -> bool {
    let t = line.trim();
    let mut chars = t.chars();
    chars.next() == Some('-')
        && chars.next().is_some_and(char::is_alphabetic)
        && t.split_whitespace().count() <= 3
}

/// Words an attribution line ends its verb with, lowercased.
const ATTRIBUTION_VERBS: &[&str] = &[
    "wrote",
    "writes",
    "schrieb",
    "a écrit",
    "escribió",
    "escribio",
    "ha scritto",
    "escreveu",
    "skrev",
    "schreef",
    "napisał",
    "написал",
    "kirjoitti",
    "yazdı",
    "写道",
    "寫道",
    "のメール",
    "書きました",
    "작성",
];

/// Words an attribution may start with when a client wrapped it over lines.
const ATTRIBUTION_OPENERS: &[&str] = &[
    "on ", "am ", "le ", "el ", "op ", "il ", "em ", "den ", "w dniu ", "dne ", "в ", "at ",
];

/// If an attribution starts at line `i`, how many lines it spans.
fn attribution_lines(lines: &[&str], kinds: &[Kind], i: usize) -> Option<usize> {
    let first = lines[i].trim();
    if first.len() > ATTRIBUTION_MAX * 4 {
        return None;
    }
    let mut joined = String::new();
    let mut chars = 0;
    for n in 1..=ATTRIBUTION_LINES.min(lines.len() - i) {
        let line = lines[i + n - 1].trim();
        if n == 2 && (kinds[i + 1] != Kind::Text || !may_be_wrapped_attribution(first)) {
            return None;
        }
        if n > 2 && kinds[i + n - 1] != Kind::Text {
            return None;
        }
        if !joined.is_empty() {
            joined.push(' ');
            chars += 1;
        }
        joined.push_str(line);
        chars += line.chars().count();
        if chars > ATTRIBUTION_MAX {
            return None;
        }
        if is_attribution(&joined) {
            return Some(n);
        }
    }
    None
}

/// Whether a line may be the first of an attribution that goes on over the next line.
fn may_be_wrapped_attribution(first: &str) -> bool {
    if first.ends_with(['.', '!', '?', '。', '！', '？']) {
        return false;
    }
    let lower = first.to_lowercase();
    ATTRIBUTION_OPENERS.iter().any(|o| lower.starts_with(o))
        || first.contains('@')
        || first.contains('<')
        || first.contains('年')
}

/// "On <date>, <someone> wrote:" and the like, in one string.
fn is_attribution(t: &str) -> bool {
    let t = t.trim();
    if !t.ends_with([':', '：']) {
        return false;
    }
    let lower = t.to_lowercase();
    let dated = lower.contains('@') || lower.chars().any(|c| c.is_ascii_digit());
    if !dated {
        return false;
    }
    if ATTRIBUTION_VERBS.iter().any(|v| lower.contains(v)) {
        return true;
    }
    // Gmail in Japanese: "2024年3月12日(火) 10:15 山田太郎 <taro@example.jp>:".
    lower.contains('年') && lower.contains('月') && lower.contains('@')
}

/// A field line of a quoted message's header block: "From: …", "*Sent:* …", "件名: …".
/// Returns whether the label is a From label.
fn header_field(line: &str) -> Option<bool> {
    let t = line.trim().trim_start_matches('*');
    let colon = match (t.find(':'), t.find('：')) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let label = t[..colon].trim().trim_matches('*').trim();
    // Lowercasing never makes fewer characters: a label too long now stays too long.
    if label.len() > 20 && label.chars().count() > 20 {
        return None;
    }
    let label = label.to_lowercase();
    if label.is_empty() || label.chars().count() > 20 {
        return None;
    }
    const FROM: &[&str] = &[
        "from",
        "von",
        "de",
        "van",
        "da",
        "från",
        "fra",
        "od",
        "от",
        "expéditeur",
        "remitente",
        "发件人",
        "寄件者",
        "差出人",
        "보낸 사람",
    ];
    const OTHER: &[&str] = &[
        "sent",
        "date",
        "to",
        "subject",
        "cc",
        "bcc",
        "reply to",
        "reply-to",
        "gesendet",
        "datum",
        "an",
        "betreff",
        "envoyé",
        "à",
        "objet",
        "enviado",
        "fecha",
        "para",
        "asunto",
        "verzonden",
        "aan",
        "onderwerp",
        "inviato",
        "data",
        "a",
        "oggetto",
        "skickat",
        "till",
        "ämne",
        "sendt",
        "til",
        "emne",
        "wysłano",
        "do",
        "temat",
        "отправлено",
        "кому",
        "тема",
        "发送时间",
        "日期",
        "收件人",
        "主题",
        "抄送",
        "寄件日期",
        "收件者",
        "主旨",
        "副本",
        "送信日時",
        "宛先",
        "件名",
        "日付",
        "보낸 날짜",
        "받는 사람",
        "제목",
    ];
    if FROM.contains(&label.as_str()) {
        Some(true)
    } else if OTHER.contains(&label.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// Whether an Outlook-style header block of a quoted message starts at line `i`: three or more
/// field lines in a row, one of them a From, or one line holding From, Sent/Date and Subject.
fn is_header_block(lines: &[&str], i: usize) -> bool {
    let Some(first_is_from) = header_field(lines[i]) else {
        return false;
    };
    if first_is_from {
        let lower = lines[i].to_lowercase();
        let inline = [" sent:", " date:", " to:", " subject:"]
            .iter()
            .filter(|f| lower.contains(*f))
            .count();
        if inline >= 2 {
            return true;
        }
    }
    let mut fields = 0;
    let mut from = false;
    for line in lines[i..].iter().take(HEADER_BLOCK_LINES) {
        if line.trim().is_empty() {
            break;
        }
        if let Some(is_from) = header_field(line) {
            fields += 1;
            from |= is_from;
        }
    }
    fields >= 3 && from
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributions() {
        for yes in [
            "On Tue, Sep 9, 2014 at 8:03 AM, gordon_ryan <info@discourse.org> wrote:",
            "Am 12.03.2024 um 10:15 schrieb Max Mustermann <max@example.de>:",
            "Le mar. 12 mars 2024 à 10:15, Jean Dupont <jean@example.fr> a écrit :",
            "El mar, 12 mar 2024 a las 10:15, Juan Pérez (<juan@example.es>) escribió:",
            "2024年3月12日(火) 10:15 山田太郎 <taro@example.jp>:",
            "张三 <zhangsan@example.cn> 于2024年3月12日周二 10:15写道：",
            "Op 18 juli 2013 10:23 schreef Sander Datema het volgende:",
        ] {
            assert!(is_attribution(yes), "{yes}");
        }
        for no in [
            "One outstanding question I had:",
            "On your remote host you can run:",
            "He wrote:",
        ] {
            assert!(!is_attribution(no), "{no}");
        }
    }

    #[test]
    fn mobile_signatures() {
        assert!(is_mobile_signature("Sent from my iPhone"));
        assert!(is_mobile_signature("Von meinem iPhone gesendet"));
        assert!(is_mobile_signature("iPhoneから送信"));
        assert!(!is_mobile_signature(
            "Sent from my desk, is much easier then my mobile phone."
        ));
    }

    #[test]
    fn wrapped_attribution_is_not_glued_to_the_sentence_above() {
        let body = "I will try.\nget back to a computer\nOn Dec 8, 2013 2:10 PM, \"J\" <n@github.com> wrote:\n\n> q\n";
        assert_eq!(reply_text(body), "I will try.\nget back to a computer");
    }

    #[test]
    fn only_a_quote_is_empty() {
        assert_eq!(
            reply_text("On Mon, Jan 1, 2024 at 9:00 AM, A <a@b.c> wrote:\n> hello\n>\n"),
            ""
        );
        assert_eq!(reply_text("\n\n> hello\n"), "");
        assert_eq!(reply_text(""), "");
    }

    #[test]
    fn long_lines_are_cheap() {
        let body = format!(
            "hi\n{}\n{}:\n",
            ">".repeat(1_000_000),
            "a".repeat(1_000_000)
        );
        let t = std::time::Instant::now();
        let _ = reply_text(&body);
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}
