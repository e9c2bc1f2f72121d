//! Reply extraction: from the raw bytes of a received reply to what the webhook gets — the
//! subject, the sender, the Message-ID and the reply text, or the reason the message is an
//! auto-reply or a bounce. Pure: no I/O, no clock.
//!
//! The message is parsed with mail-parser (transfer encodings and charsets decoded, RFC 2047
//! headers too). The body is the text/plain part, else the text/html part turned into text
//! ([`html_to_text`]); `format=flowed` is unwrapped, and a part whose declared charset does not
//! fit its bytes but which is valid UTF-8 is read as UTF-8. Then [`reply_text`] keeps what the
//! sender wrote above the quoted notification and the signature. The caller fails a message with
//! an `auto_reply` reason as `failed:auto_reply` and one with empty text as `failed:empty`.

use crate::bounded::{FIELD_MAX, bounded};
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{Encoding, MessageParser, MessagePart, MimeHeaders, PartType};

pub use super::html::html_to_text;
pub use super::text::reply_text;

/// What reply processing needs from a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub subject: String,
    /// The From address; the envelope sender when the message has none.
    pub from: String,
    /// The Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// The reply text: empty when the sender wrote nothing new.
    pub text: String,
    /// Why the message is an auto-reply or a bounce, if it is one.
    pub auto_reply: Option<String>,
    /// The decoded body the reply text was taken from (only from [`parse_keeping_body`]).
    pub body: Option<String>,
    /// The addresses of the To and Cc headers (only from [`parse_keeping_body`]).
    pub addressed: Vec<String>,
}

impl Parsed {
    /// The outcome class of a message that is not delivered: `auto_reply`, then `empty`.
    pub fn failure(&self) -> Option<&'static str> {
        if self.auto_reply.is_some() {
            Some("auto_reply")
        } else if self.text.trim().is_empty() {
            Some("empty")
        } else {
            None
        }
    }
}

/// How much of a message is read. A reply's header and its text parts come first; what lies
/// past this (attachments, a forwarded file) is not decoded, so every accepted message, up to
/// `inbound.max_message_size`, is read in bounded memory.
pub const PARSE_MAX: usize = 4 << 20;
/// The longest reply text posted (a comment that long is already unreadable).
pub const TEXT_MAX: usize = 1 << 20;

/// Parses a received message. `mail_from` is the envelope sender (`""` for the null sender).
pub fn parse(raw: &[u8], mail_from: &str) -> Result<Parsed, String> {
    parse_inner(raw, mail_from, false)
}

/// [`parse`], also keeping the decoded body and the header recipients (the reply lab shows
/// what the rules cut, and whom the message was written to).
pub fn parse_keeping_body(raw: &[u8], mail_from: &str) -> Result<Parsed, String> {
    parse_inner(raw, mail_from, true)
}

fn parse_inner(raw: &[u8], mail_from: &str, keep: bool) -> Result<Parsed, String> {
    let raw = &raw[..raw.len().min(PARSE_MAX)];
    // Some stored messages open with blank lines; a parser would take the first for the end of
    // an empty header.
    let start = raw
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(raw.len());
    let raw = &raw[start..];
    if raw.is_empty() {
        return Err("the message is empty".into());
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| "the message cannot be parsed".to_string())?;

    let auto_reply = auto_reply_reason(message.headers_raw(), mail_from);
    let field = |s: &str| bounded(s, FIELD_MAX);
    let subject = field(message.subject().unwrap_or("").trim());
    let from = field(
        message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or(mail_from),
    );
    let message_id = message
        .message_id()
        .map(|id| field(id.trim_matches(['<', '>'])));

    let raw_message = message.raw_message();
    let part = |id: &u32| message.parts.get(*id as usize);
    let plain: Vec<String> = message
        .text_body
        .iter()
        .filter_map(part)
        .filter_map(|p| match &p.body {
            PartType::Text(t) => Some(plain_text(p, t, raw_message)),
            _ => None,
        })
        .collect();
    let mut body = if plain.iter().any(|t| !t.trim().is_empty()) {
        plain.join("\n")
    } else {
        message
            .html_body
            .iter()
            .filter_map(part)
            .filter_map(|p| match &p.body {
                PartType::Html(h) => Some(html_to_text(&fix_charset(p, h, raw_message))),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    if body.trim().is_empty()
        && let Some(root) = message.parts.first()
        && let PartType::Text(t) = &root.body
    {
        // A multipart type without parts: the parser keeps the body as the root's text.
        body = plain_text(root, t, raw_message);
    }

    let addressed = if keep {
        [message.to(), message.cc()]
            .into_iter()
            .flatten()
            .flat_map(|a| a.iter())
            .filter_map(|a| a.address())
            .map(field)
            .take(100)
            .collect()
    } else {
        Vec::new()
    };
    Ok(Parsed {
        subject,
        from,
        message_id,
        text: bounded(&reply_text(&body), TEXT_MAX),
        auto_reply,
        body: keep.then(|| bounded(&body, TEXT_MAX)),
        addressed,
    })
}

/// A text/plain part's text: charset checked, `format=flowed` unwrapped.
fn plain_text(part: &MessagePart, text: &str, raw_message: &[u8]) -> String {
    let text = fix_charset(part, text, raw_message);
    let param = |name: &str| {
        part.content_type()
            .and_then(|c| c.attribute(name))
            .map(str::to_ascii_lowercase)
    };
    if param("format").as_deref() == Some("flowed") {
        unflow(&text, param("delsp").as_deref() == Some("yes"))
    } else {
        text
    }
}

/// A part whose declared charset did not fit (the decoder gave U+FFFD) but whose bytes are valid
/// UTF-8 is read as UTF-8: clients label UTF-8 text as Big5 or ISO-8859-1 now and then. 8-bit
/// text with no charset at all that is not UTF-8 is read as Windows-1252 (ISO-8859-1's superset).
fn fix_charset(part: &MessagePart, decoded: &str, raw_message: &[u8]) -> String {
    if !decoded.contains('\u{fffd}') {
        return decoded.to_string();
    }
    let (start, end) = (part.offset_body as usize, part.offset_end as usize);
    let Some(body) = raw_message.get(start..end.max(start)) else {
        return decoded.to_string();
    };
    let bytes = match part.encoding {
        Encoding::Base64 => mail_parser::decoders::base64::base64_decode(body),
        Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(body)
        }
        Encoding::None => Some(body.to_vec()),
    };
    let Some(bytes) = bytes else {
        return decoded.to_string();
    };
    let labelled = part
        .content_type()
        .is_some_and(|ct| ct.attribute("charset").is_some());
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) if !labelled => charset_decoder(b"windows-1252")
            .map_or_else(|| decoded.to_string(), |decode| decode(e.as_bytes())),
        Err(_) => decoded.to_string(),
    }
}

/// RFC 3676: joins the lines a `format=flowed` sender broke softly (a line ending in a space),
/// within the same quote depth; a space-stuffed line loses its stuffing space.
pub fn unflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open: Option<usize> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let depth = line.chars().take_while(|&c| c == '>').count();
        let content = &line[depth..];
        let content = content.strip_prefix(' ').unwrap_or(content);
        match open {
            Some(d) if d == depth => {}
            Some(_) => {
                out.push('\n');
                if depth > 0 {
                    out.push_str(&">".repeat(depth));
                    out.push(' ');
                }
            }
            None => {
                if depth > 0 {
                    out.push_str(&">".repeat(depth));
                    out.push(' ');
                }
            }
        }
        let soft = content.ends_with(' ') && content != "-- ";
        if soft {
            out.push_str(if delsp {
                &content[..content.len() - 1]
            } else {
                content
            });
            open = Some(depth);
        } else {
            out.push_str(content);
            out.push('\n');
            open = None;
        }
    }
    if open.is_some() {
        out.push('\n');
    }
    out.pop();
    out
}

/// Why a message is an auto-reply or a bounce, from its header fields (name, raw value) and the
/// envelope sender: the null sender, `Auto-Submitted` other than `no`, `X-Autoreply`,
/// `X-Autorespond`, `Precedence: bulk|junk|list`, or a `multipart/report` (delivery status or
/// disposition report). `X-Auto-Response-Suppress` alone is not one.
pub fn auto_reply_reason<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    mail_from: &str,
) -> Option<String> {
    let mail_from = mail_from.trim();
    if mail_from.is_empty() || mail_from == "<>" {
        return Some("null sender (MAIL FROM:<>)".into());
    }
    for (name, value) in headers {
        // Kept as the record's last_error: bounded (a 3 MB header value was stored whole).
        let value = bounded(&value.replace(['\r', '\n'], " "), FIELD_MAX);
        let value = value.trim();
        let name = bounded(name, FIELD_MAX);
        let token = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let name = name.trim();
        let field = |n: &str| name.eq_ignore_ascii_case(n);
        if field("Auto-Submitted") && token != "no" {
            return Some(format!("Auto-Submitted: {value}"));
        }
        if field("X-Autoreply") || field("X-Autorespond") {
            return Some(format!("{name}: {value}"));
        }
        if field("Precedence") && matches!(token.as_str(), "bulk" | "junk" | "list") {
            return Some(format!("Precedence: {token}"));
        }
        if field("Content-Type") && token == "multipart/report" {
            let lower = value.to_ascii_lowercase();
            let kind = lower
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("report-type="))
                .map(|v| v.trim_matches('"').to_string())
                .next()
                .unwrap_or_else(|| "unspecified".into());
            return Some(format!("a report (multipart/report; report-type={kind})"));
        }
    }
    None
}
