//! Lines that end the sender's text by themselves: the separators clients put above a quoted or
//! forwarded message, and the lines clients add below what the sender wrote ("Sent from my
//! iPhone"). Each table says where its strings come from; every string is matched lowercased,
//! with the decoration around it (`-`, `_`, `*`, `.`, `=`, spaces) taken off first.

/// The words of a separator line, between its decoration: `-----Original Message-----`,
/// Thunderbird's `-------- Original Message --------`, `*----- Original Message -----*`.
///
/// Sources: Outlook desktop's `-----Original Message-----` in each language (real mailing-list
/// mail; mailgun/talon `quotations.py` RE_ORIGINAL_MESSAGE; discourse/email_reply_trimmer
/// `delimiter_matcher.rb`); Thunderbird's `mailnews.reply_header_originalmessage` and
/// `mailnews.forward_header_originalmessage` (thunderbird/thunderbird-l10n
/// `<locale>/mail/chrome/messenger/messengercompose/composeMsgs.properties`); K-9 Mail's
/// `message_compose_quote_header_separator` (thunderbird/thunderbird-android
/// `values-<locale>/strings.xml`); Yahoo's and Gmail's forwarded-message lines
/// (crisp-oss/email-forward-parser `lib/parser.js`).
const SEPARATORS: &[&str] = &[
    // en
    "original message",
    "original message follows",
    "reply message",
    "forwarded message",
    "forwarded message follows",
    // de
    "ursprüngliche nachricht",
    "original-nachricht",
    "originalnachricht",
    "weitergeleitete nachricht",
    "antwort nachricht",
    // fr
    "message d'origine",
    "message d’origine",
    "message original",
    "message transféré",
    "message transmis",
    // es
    "mensaje original",
    "mensaje reenviado",
    // it
    "messaggio originale",
    "messaggio inoltrato",
    // pt
    "mensagem original",
    "mensagem reencaminhada",
    "mensagem encaminhada",
    // nl
    "oorspronkelijk bericht",
    "origineel bericht",
    "doorgestuurd bericht",
    // da
    "oprindelig meddelelse",
    "oprindelig besked",
    "original meddelelse",
    "videresendt meddelelse",
    // sv
    "ursprungligt meddelande",
    "originalmeddelande",
    "vidarebefordrat meddelande",
    // nb
    "opprinnelig melding",
    "original melding",
    "videresendt melding",
    // fi (Thunderbird adds the English abbreviation)
    "alkuperäinen viesti",
    "alkuperäinen viesti / orig.msg",
    "välitetty viesti / fwd.msg",
    "välitetty viesti",
    "edelleenlähetetty viesti",
    // pl
    "wiadomość oryginalna",
    "oryginalna wiadomość",
    "treść oryginalnej wiadomości",
    "treść przekazanej wiadomości",
    "przekazana wiadomość",
    // cs
    "původní zpráva",
    "přeposlaná zpráva",
    // hu
    "eredeti üzenet",
    "továbbított üzenet",
    // ru
    "исходное сообщение",
    "перенаправленное сообщение",
    "пересылаемое сообщение",
    "пересланное сообщение",
    // uk
    "початкове повідомлення",
    "переслане повідомлення",
    "перенаправлене повідомлення",
    // tr
    "özgün i̇leti",
    "özgün ileti",
    "orijinal ileti",
    "i̇letilen i̇leti",
    "iletilen ileti",
    "i̇letilmiş mesaj",
    "iletilmiş mesaj",
    // vi
    "thư gốc",
    "tin nhắn đã được chuyển tiếp",
    // ja
    "元のメッセージ",
    "元メール",
    "転送されたメッセージ",
    // zh
    "原始邮件",
    "原始郵件",
    "原始消息",
    "原始信息",
    "转发的消息",
    "转发的邮件",
    "轉寄郵件",
    "轉寄的郵件",
    // ko
    "원본 메시지",
    "전달된 메시지",
];

/// Lines that introduce a forwarded message, whole (after lowercasing and the colon's spaces).
/// Sources: Apple Mail's "Begin forwarded message:" in each language (crisp-oss/
/// email-forward-parser `lib/parser.js`, its `apple_mail_*` fixtures).
const FORWARD_LINES: &[&str] = &[
    "begin forwarded message:",
    "anfang der weitergeleiteten nachricht:",
    "début du message réexpédié:",
    "début du message transféré:",
    "inicio del mensaje reenviado:",
    "inizio messaggio inoltrato:",
    "início da mensagem reencaminhada:",
    "início da mensagem encaminhada:",
    "begin doorgestuurd bericht:",
    "start på videresendt besked:",
    "vidarebefordrat mejl:",
    "videresendt melding:",
    "välitetty viesti alkaa:",
    "początek przekazywanej wiadomości:",
    "začátek přeposílané zprávy:",
    "továbbított levél kezdete:",
    "начало переадресованного сообщения:",
    "початок листа, що пересилається:",
    "i̇leti başlangıcı:",
    "ileti başlangıcı:",
    "転送されたメッセージ:",
];

/// The decoration a separator's words sit between.
fn is_decoration(c: char) -> bool {
    matches!(c, '-' | '_' | '*' | '.' | '=' | '~' | '—' | '–') || c.is_whitespace()
}

/// A line of only underscores, two or more: Outlook 365 puts 32 above the quoted message's
/// header block, Mailman 47 above a list's footer. Only what follows tells it from a rule the
/// sender drew (see `lines::classify`).
pub fn is_underscore_rule(t: &str) -> bool {
    let t = t.trim();
    t.len() >= 2 && t.bytes().all(|b| b == b'_')
}

/// Whether the line below an underscore rule makes it a separator: a mailing list's footer
/// ("riak-users mailing list", Mailman's and Google Groups' lines).
pub fn is_list_footer(t: &str) -> bool {
    let lower = t.trim().to_lowercase();
    lower.ends_with(" mailing list")
        || lower.contains("you received this message because you are subscribed")
        || lower.starts_with("to unsubscribe")
}

/// `-----Original Message-----` and its translations and decorated forms, forwarded-message
/// markers, and a rule of ten or more underscores (Outlook 365's line of 32, a list footer's).
pub fn is_separator(t: &str) -> bool {
    let t = t.trim();
    if is_underscore_rule(t) {
        return false;
    }
    let decorated = t.starts_with(['-', '*', '.', '_', '=']);
    if !decorated && !t.ends_with([':', '：']) {
        return false;
    }
    if t.len() > 120 {
        return false;
    }
    let lower = t.to_lowercase();
    if decorated {
        // At least two decoration characters before the words (a `- item` bullet has one).
        let lead = lower
            .chars()
            .take_while(|&c| is_decoration(c))
            .filter(|c| !c.is_whitespace())
            .count();
        let inner = lower.trim_matches(is_decoration);
        if lead >= 2 && SEPARATORS.contains(&inner) {
            return true;
        }
    }
    let compact = lower.replace([' ', '\u{a0}'], "");
    FORWARD_LINES.iter().any(|f| f.replace(' ', "") == compact)
}

/// What clients add below the sender's text, as a line's beginning (lowercased): iOS Mail's
/// "Sent from my iPhone" in each language (real mail in mailing-list archives; discourse/
/// email_reply_trimmer `signature_matcher.rb`; mailgun/talon RE_PHONE_SIGNATURE), Outlook
/// mobile's "Get Outlook for iOS" (real mail; crisp-oss/email-reply-parser fixtures
/// `email_ios_outlook_fr.txt`, `email_android_outlook_fr.txt`). These say "from my …" or name
/// Outlook: nothing else starts a sentence so.
const CLIENT_PREFIXES: &[&str] = &[
    "sent from my ",
    "get outlook for ",
    "von meinem ",
    "envoyé de mon ",
    "envoyé depuis mon ",
    "télécharger outlook pour ",
    "enviado desde mi ",
    "enviado de mi ",
    "enviado do meu ",
    "enviado de meu ",
    "obtener outlook para ",
    "obter o outlook para ",
    "inviato dal mio ",
    "scarica outlook per ",
    "verzonden vanaf mijn ",
    "verstuurd vanaf mijn ",
    "skickat från min ",
    "sendt fra min ",
    "hent outlook til ",
    "được gửi từ ",
    "发自我的",
    "从我的",
    "從我的",
];

/// Beginnings and endings that are a client's line only with a device or program named in it:
/// "Sent with Airmail", "Inviato da iPhone", "Lähetetty iPhonesta", "Wysłane z iPhone'a",
/// "Az iPhone-omról küldve", "iPhone'umdan gönderildi", "iPhoneから送信", "iPhone에서 보냄"
/// (same sources as above; K-9's and Samsung's lines from thunderbird/thunderbird-android
/// `values-<locale>/strings.xml` and real mail).
const WEAK_PREFIXES: &[&str] = &[
    "sent from ",
    "sent with ",
    "sent via ",
    "sent using ",
    "gesendet von ",
    "gesendet mit ",
    "envoyé de ",
    "envoyé depuis ",
    "envoyé avec ",
    "enviado desde ",
    "enviado con ",
    "enviado com ",
    "inviato da ",
    "inviato con ",
    "verzonden vanaf ",
    "verzonden met ",
    "verzonden vanuit ",
    "verstuurd vanuit ",
    "skickat från ",
    "sendt fra ",
    "lähetetty ",
    "wysłane z ",
    "wysłano z ",
    "odesláno z ",
    "отправлено с ",
    "отправлено из ",
    "надіслано з ",
];
const WEAK_SUFFIXES: &[&str] = &[
    " küldve",
    " gönderildi",
    " downloaden",
    " beziehen",
    "から送信",
    "에서 보냄",
    " 傳送",
    " 发送",
];
/// A device or program a client line names.
const CLIENT_WORDS: &[&str] = &[
    // "iphon" also in its declined forms ("z iPhonu", "iPhone'a").
    "iphon",
    "ipad",
    "ipod",
    "android",
    "galaxy",
    "samsung",
    "outlook",
    "blackberry",
    "huawei",
    "xiaomi",
    "pixel",
    "mobil",
    "smartphone",
    "tablet",
    "airmail",
    "spark",
    "yahoo",
    "gmail",
    "proton",
    "k-9",
    "thunderbird",
    "windows",
    "aol",
    "携帯",
    // Mail apps that sign their users' mail (their own taglines, as third-party parsers list
    // them: crisp-oss/email-reply-parser `lib/regex.ts`, discourse/email_reply_trimmer)
    "typeapp",
    "bluemail",
    "blue mail",
    "aquamail",
    "aqua mail",
    "edison",
    "spike",
    "newton",
    "polymail",
    "superhuman",
    "mailbird",
    "fairemail",
    "ipados",
];

/// A line a mail client adds below the sender's text: "Sent from my iPhone", "Von meinem iPhone
/// gesendet", "iPhoneから送信", "Get Outlook for iOS<https://aka.ms/o0ukef>". Short, and no
/// sentence of the sender's: at most a few words after the prefix, no `,;?!:` inside.
pub fn is_client_line(t: &str) -> bool {
    let t = t.trim();
    let chars = t.chars().count();
    if chars == 0 || chars > 140 {
        return false;
    }
    let lower = t.to_lowercase();
    // Outlook mobile's links identify it in any language, even one the mail's charset lost.
    if lower.contains("aka.ms/o0ukef") || lower.contains("aka.ms/ghei36") {
        return chars <= 120;
    }
    // The links Outlook and Proton Mail put in it, and the trailing period Samsung's line has.
    let unlinked = without_links(&lower);
    let core = unlinked.trim_end_matches(['.', '。']).trim_end();
    let words = core.split_whitespace().count();
    let plain = !core.contains([',', ';', '?', '!', ':']);
    let names_client = CLIENT_WORDS.iter().any(|w| core.contains(w));
    if let Some(p) = CLIENT_PREFIXES.iter().find(|p| core.starts_with(*p)) {
        return core[p.len()..].split_whitespace().count() <= 6 && plain;
    }
    if let Some(p) = WEAK_PREFIXES.iter().find(|p| core.starts_with(*p)) {
        return core[p.len()..].split_whitespace().count() <= 6 && plain && names_client;
    }
    // German K-9 and GMX: "Diese Nachricht wurde von meinem Android-Gerät mit K-9 Mail gesendet."
    if core.starts_with("diese nachricht wurde von ") && core.ends_with(" gesendet") {
        return words <= 14;
    }
    WEAK_SUFFIXES.iter().any(|s| core.ends_with(s))
        && words <= 5
        && chars <= 40
        && plain
        && names_client
}

/// A line with its links taken out: `<https://…>` and a Markdown link's `(https://…)` go, the
/// brackets of its text too ("Sent from [Proton Mail](https://proton.me/mail/home) for Android").
fn without_links(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find(['<', '(', '[', ']']) {
        out.push_str(&rest[..i]);
        let open = rest.as_bytes()[i];
        rest = &rest[i + 1..];
        let close = match open {
            b'<' => '>',
            b'(' => ')',
            _ => continue,
        };
        let is_link =
            rest.starts_with("http") || rest.starts_with("www.") || rest.starts_with("mailto:");
        match rest.find(close) {
            Some(j) if is_link => rest = &rest[j + 1..],
            _ => out.push(open as char),
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How a sign-off starts, lowercased: the closing words people type above their name, in the
/// languages of the attribution tables (their common forms; discourse/email_reply_trimmer and
/// mailgun/talon keep them as the sender's text, and so does herald).
const CLOSINGS: &[&str] = &[
    "regards",
    "best",
    "kind regards",
    "best regards",
    "thanks",
    "thank you",
    "cheers",
    "sincerely",
    "br",
    "greetings",
    "grüße",
    "gruß",
    "viele grüße",
    "mfg",
    "lg",
    "cordialement",
    "bien à vous",
    "merci",
    "saludos",
    "un saludo",
    "gracias",
    "saluti",
    "cordiali saluti",
    "grazie",
    "atenciosamente",
    "abraços",
    "obrigado",
    "obrigada",
    "groeten",
    "met vriendelijke groet",
    "mvh",
    "med venlig hilsen",
    "hilsen",
    "hälsningar",
    "vänliga",
    "terveisin",
    "ystävällisin terveisin",
    "kiitos",
    "pozdrawiam",
    "dziękuję",
    "s pozdravem",
    "díky",
    "üdvözlettel",
    "köszönöm",
    "с уважением",
    "спасибо",
    "з повагою",
    "дякую",
    "saygılarımla",
    "teşekkürler",
    "trân trọng",
    "cảm ơn",
    "よろしく",
    "宜しく",
    "谢谢",
    "謝謝",
    "감사합니다",
];

/// Whether `lines` (what follows a quote, to the end) are only a sign-off: one to three short
/// lines, the first a closing ("Regards, Roman", "Thanks,\nJane").
pub fn is_signoff(lines: &[&str]) -> bool {
    let text: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    let Some(first) = text.first() else {
        return false;
    };
    let lower = first.to_lowercase();
    let closing = CLOSINGS.iter().any(|c| {
        lower.starts_with(c)
            && lower[c.len()..]
                .chars()
                .next()
                .is_none_or(|n| !n.is_alphanumeric())
    });
    closing && text.len() <= 3 && text.iter().map(|l| l.chars().count()).sum::<usize>() <= 80
}

/// Herald's own notification footer (`src/outbound/message.rs`): below the `-- ` of every
/// notification it sends, so a quoted notification that lost its `>` marks still ends there.
pub fn is_herald_footer(t: &str) -> bool {
    t.trim_start_matches(['>', ' '])
        .starts_with("Reply to this email directly or contact support:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_in_their_decorations() {
        for yes in [
            "-----Original Message-----",
            "----- Original Message -----",
            "*-------- Original Message --------*",
            "-------- Ursprüngliche Nachricht --------",
            "-----Message d'origine-----",
            "--- Treść oryginalnej wiadomości ---",
            "------- 原始郵件 -------",
            "--------    원본 메시지    --------",
            "........ Mensagem Original ........",
            "-------- Özgün İleti --------",
            "---------- Forwarded message ---------",
            "Begin forwarded message:",
            "Début du message réexpédié :",
            "-------- Alkuperäinen viesti / Orig.Msg. --------",
        ] {
            assert!(is_separator(yes), "{yes}");
        }
        for no in [
            "- original message",
            "The original message was lost:",
            "-----",
            "----- see below -----",
        ] {
            assert!(!is_separator(no), "{no}");
        }
    }

    #[test]
    fn client_lines_in_many_languages() {
        for yes in [
            "Sent from my iPhone",
            "Sent from my Samsung Galaxy smartphone.",
            "Von meinem iPhone gesendet",
            "Envoyé de mon iPhone",
            "Wysłane z iPhone'a",
            "Az iPhone-omról küldve",
            "iPhone'umdan gönderildi",
            "Được gửi từ iPhone của tôi",
            "iPhoneから送信",
            "发自我的 iPhone",
            "從我的 iPhone 傳送",
            "iPhone에서 보냄",
            "Get Outlook for iOS<https://aka.ms/o0ukef>",
            "Outlook voor Android downloaden<https://aka.ms/ghei36>",
            "Télécharger Outlook pour Android<https://aka.ms/ghei36>",
            "Lähetetty iPhonesta",
            "Diese Nachricht wurde von meinem Android-Gerät mit K-9 Mail gesendet.",
            "Sent from [Proton Mail](https://proton.me/mail/home) for Android.",
        ] {
            assert!(is_client_line(yes), "{yes}");
        }
        for no in [
            "Sent from my desk, is much easier then my mobile phone.",
            "Sent from the office: the logs are attached",
            "Sent from home today",
            "Lähetetty paketti saapui",
            "Inviato da Marco ieri",
        ] {
            assert!(!is_client_line(no), "{no}");
        }
    }
}
