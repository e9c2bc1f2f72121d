//! The header block a client writes above a quoted or forwarded message instead of (or below)
//! an attribution: Outlook's "From: … / Sent: … / To: … / Subject: …" in each language,
//! Thunderbird's and Apple Mail's forwarded headers, K-9's "header" quote style.
//!
//! Sources for the labels: Outlook desktop (real mailing-list mail in each language; mailgun/
//! talon `quotations.py`; discourse/email_reply_trimmer `email_header_matcher.rb`), Outlook for
//! Mac and Outlook 365, Apple Mail and Yahoo (crisp-oss/email-forward-parser `lib/parser.js` and
//! its `*_body.txt` fixtures), Thunderbird (thunderbird/thunderbird-l10n
//! `<locale>/mail/chrome/messenger/mime.properties`, keys 1000–1013), K-9 Mail
//! (thunderbird/thunderbird-android `values-<locale>/strings.xml`,
//! `message_compose_quote_header_*`).

/// How many lines a header block is looked for in.
const BLOCK_LINES: usize = 10;
/// The longest label considered, in characters.
const LABEL_MAX: usize = 24;

/// What a label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    From,
    /// Sent or Date.
    Date,
    Other,
}

/// "From" in each language.
const FROM: &[&str] = &[
    "from",
    "sender",
    "von",
    "de",
    "expéditeur",
    "remitente",
    "da",
    "mittente",
    "van",
    "fra",
    "från",
    "lähettäjä",
    "od",
    "nadawca",
    "feladó",
    "от",
    "отправитель",
    "від",
    "від кого",
    "kimden",
    "gönderen",
    "từ",
    "差出人",
    "送信者",
    "发件人",
    "寄件者",
    "寄件人",
    "從",
    "보낸 사람",
    "보낸사람",
];

/// "Sent" and "Date" in each language.
const DATE: &[&str] = &[
    "sent",
    "date",
    "received",
    "gesendet",
    "datum",
    "envoyé",
    "date d'envoi",
    // French webmails (Orange, SFR): "Message du : 12/12/2016 13:20" (crisp-oss/
    // email-reply-parser `test/fixtures/email_9.txt`)
    "message du",
    "enviado",
    "enviado el",
    "enviada em",
    "enviado em",
    "fecha",
    "inviato",
    "inviato il",
    "data",
    "verzonden",
    "sendt",
    "dato",
    "skickat",
    "lähetetty",
    "päivämäärä",
    "päiväys",
    "wysłano",
    "wysłane",
    "odesláno",
    "dátum",
    "elküldve",
    "отправлено",
    "дата",
    "надіслано",
    "відправлено",
    "tarih",
    "gönderilen",
    "ngày",
    "送信日時",
    "送信日",
    "日付",
    "发送时间",
    "日期",
    "寄件日期",
    "보낸 날짜",
    "날짜",
];

/// The other labels: To, Cc, Subject, Reply-To in each language.
const OTHER: &[&str] = &[
    "to",
    "cc",
    "bcc",
    "subject",
    "reply to",
    "reply-to",
    "title",
    "an",
    "kopie",
    "kopie (cc)",
    "betreff",
    "antwort an",
    "à",
    "pour",
    "objet",
    "sujet",
    "copie à",
    "répondre à",
    "para",
    "asunto",
    "responder a",
    "a",
    "oggetto",
    "rispondi a",
    "assunto",
    "responder a",
    "aan",
    "onderwerp",
    "antwoord aan",
    "til",
    "emne",
    "kopi",
    "kopi til (cc)",
    "svar til",
    "till",
    "kopia",
    "ämne",
    "svara till",
    "vastaanottaja",
    "kopio",
    "aihe",
    "vastaus",
    "do",
    "dw",
    "temat",
    "adresat",
    "odpowiedź-do",
    "komu",
    "předmět",
    "odpověď na",
    "címzett",
    "másolat",
    "másolatot kap",
    "tárgy",
    "válaszcím",
    "кому",
    "копия",
    "тема",
    "ответ-кому",
    "копія",
    "кому відповісти",
    "kime",
    "bilgi",
    "konu",
    "yanıt adresi",
    "tới",
    "đến",
    "tiêu đề",
    "chủ đề",
    "宛先",
    "件名",
    "收件人",
    "抄送",
    "主题",
    "收件者",
    "副本",
    "主旨",
    "至",
    "到",
    "받는 사람",
    "받는사람",
    "참조",
    "제목",
];

/// The label of a header field line — "From: …", "*Sent:* …", "De\u{a0}: …", "件名：…",
/// "Betreff: \t…" — and what it names.
pub fn field(line: &str) -> Option<Field> {
    let t = line.trim().trim_start_matches(['*', '>', ' ']);
    let colon = match (t.find(':'), t.find('：')) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let label = &t[..colon];
    // Lowercasing never makes fewer characters: a label too long now stays too long.
    if label.len() > LABEL_MAX * 4 {
        return None;
    }
    let label = label
        .trim_matches(|c: char| c == '*' || c.is_whitespace())
        .to_lowercase();
    if label.is_empty() || label.chars().count() > LABEL_MAX {
        return None;
    }
    if FROM.contains(&label.as_str()) {
        Some(Field::From)
    } else if DATE.contains(&label.as_str()) {
        Some(Field::Date)
    } else if OTHER.contains(&label.as_str()) {
        Some(Field::Other)
    } else {
        None
    }
}

/// Whether a header block of a quoted message starts at line `i`: a From line, with two more
/// field lines among the next few, or right below it a Sent/Date line (the short blocks of
/// Gmail and Outlook 2019); or one line holding From, Sent/Date and Subject (a block that lost
/// its line breaks).
pub fn starts_block(lines: &[&str], i: usize) -> bool {
    let Some(first) = field(lines[i]) else {
        return false;
    };
    if first == Field::From {
        let lower = lines[i].to_lowercase();
        let inline = [
            " sent:",
            " date:",
            " to:",
            " subject:",
            " gesendet:",
            " betreff:",
        ]
        .iter()
        .filter(|f| lower.contains(*f))
        .count();
        if inline >= 2 {
            return true;
        }
        if lines
            .get(i + 1)
            .is_some_and(|next| field(next) == Some(Field::Date))
        {
            return true;
        }
    }
    let mut fields = 0;
    let mut from = false;
    let mut date = false;
    let block = &lines[i..lines.len().min(i + BLOCK_LINES)];
    for (n, line) in block.iter().enumerate() {
        let blank = |l: &str| l.trim().trim_start_matches(['>', ' ']).is_empty();
        if blank(line) {
            // Outlook on some phones puts a blank line between the fields: a blank line goes on
            // only where a field follows it.
            match block.get(n + 1) {
                Some(next) if !blank(next) && field(next).is_some() => continue,
                _ => break,
            }
        }
        match field(line) {
            Some(Field::From) => from = true,
            Some(Field::Date) => date = true,
            Some(Field::Other) => {}
            None => continue,
        }
        fields += 1;
    }
    // A block may also open with its date ("Date: …" then "To: …": mailgun/talon
    // `test_from_block_starts_with_date`).
    (from && (fields >= 3 || (date && fields >= 2 && first != Field::Other)))
        || (first == Field::Date && fields >= 2 && field_after(block) == Some(Field::Other))
}

/// The kind of the second field of a block.
fn field_after(block: &[&str]) -> Option<Field> {
    block.iter().skip(1).find_map(|l| field(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_in_their_forms() {
        assert_eq!(field("From: Jane <j@x>"), Some(Field::From));
        assert_eq!(field("*From:* Jane"), Some(Field::From));
        assert_eq!(field("De\u{a0}: Jean"), Some(Field::From));
        assert_eq!(field("Envoyé : lundi"), Some(Field::Date));
        assert_eq!(field("Betreff: \tTest"), Some(Field::Other));
        assert_eq!(field("件名：テスト"), Some(Field::Other));
        assert_eq!(field("보낸 사람: 홍길동"), Some(Field::From));
        assert_eq!(field("Note: this"), None);
        assert_eq!(field("no colon here"), None);
    }

    #[test]
    fn blocks_and_sentences() {
        let block = [
            "From: Herald",
            "Sent: Tuesday",
            "To: Jane",
            "Subject: Re: x",
        ];
        assert!(starts_block(&block, 0));
        let short = [
            "From: Herald <noreply@herald.example>",
            "Date: Tue, 12 Mar 2024",
        ];
        assert!(starts_block(&short, 0));
        let one = ["From: Herald Sent: Tuesday To: Jane Subject: x"];
        assert!(starts_block(&one, 0));
        let sentence = ["From: the logs I see a timeout.", "It happens at start."];
        assert!(!starts_block(&sentence, 0));
        let to_only = ["To: everyone", "Subject: lunch"];
        assert!(!starts_block(&to_only, 0));
    }
}
