//! The reply lab: what herald would do with a message an administrator pastes — which recipient
//! it answers and whether that address verifies (as `RCPT` would judge it), whether it is an
//! auto-reply or a bounce, the reply text and what the rules cut, and the webhook's body — with
//! nothing stored, sent or logged. Pure: the same policy, parser and payload the service uses.

use super::extract::{Parsed, parse_keeping_body};
use super::token::{self, ReplyKey, Token};
use crate::inbound::policy::InboundPolicy;
use crate::settings::Settings;
use crate::smtp::server::Policy;

/// What `RCPT TO` would make of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A reply address that verifies: its thread and user.
    Reply {
        kind: &'static str,
        thread: u64,
        user: u64,
    },
    /// Accepted and dropped (a no-reply address).
    Discarded,
    /// Refused, with the reply the sender's server would get.
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub verdict: Verdict,
}

/// What would happen to the message as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Posted to the webhook: its body.
    Posted(String),
    /// Kept as failed, with the class (`auto_reply`, `empty`) and why.
    Failed(&'static str, String),
    /// Accepted and dropped: no reply address among the recipients, only no-reply ones.
    Discarded,
    /// Refused at RCPT: no recipient herald accepts.
    Refused,
    /// The message cannot be read.
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    pub recipients: Vec<Recipient>,
    /// Whether the recipients came from the envelope given, or from the To and Cc headers.
    pub from_headers: bool,
    pub parsed: Option<Parsed>,
    pub fate: Fate,
}

fn judge(policy: &InboundPolicy, key: &ReplyKey, address: &str) -> Verdict {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Verdict::Refused(format!("<{address}> is not an email address"));
    };
    match policy.recipient(local, domain) {
        Ok(true) => Verdict::Discarded,
        Ok(false) => match token::verify(key, local) {
            Some(Token { kind, thread, user }) => Verdict::Reply {
                kind: kind.name(),
                thread,
                user,
            },
            None => Verdict::Refused("not a valid reply address".into()),
        },
        Err(reply) => Verdict::Refused(reply.summary()),
    }
}

/// The envelope sender assumed when none is given: not the null sender (which would make every
/// pasted message a bounce), and never a real address.
pub const UNKNOWN_SENDER: &str = "sender@unknown.invalid";

/// Examines `raw` as if it arrived for `envelope_to` (the To and Cc headers when empty) from
/// `mail_from` (`""`: not known, [`UNKNOWN_SENDER`]; `"<>"`: the null sender).
pub fn examine(
    settings: &Settings,
    key: &ReplyKey,
    raw: &[u8],
    envelope_to: &str,
    mail_from: &str,
) -> Lab {
    let mail_from = if mail_from.is_empty() {
        UNKNOWN_SENDER
    } else {
        mail_from
    };
    let policy = InboundPolicy::new(settings, key.clone());
    let parsed = parse_keeping_body(raw, mail_from);
    let given: Vec<String> = envelope_to
        .split([',', ' ', '\n'])
        .map(|a| a.trim().trim_matches(['<', '>']).to_string())
        .filter(|a| !a.is_empty())
        .collect();
    let from_headers = given.is_empty();
    let addresses = if from_headers {
        parsed
            .as_ref()
            .map(|p| p.addressed.clone())
            .unwrap_or_default()
    } else {
        given
    };
    let recipients: Vec<Recipient> = addresses
        .into_iter()
        .map(|address| Recipient {
            verdict: judge(&policy, key, &address),
            address,
        })
        .collect();
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            return Lab {
                recipients,
                from_headers,
                parsed: None,
                fate: Fate::Unreadable(e),
            };
        }
    };
    let reply = recipients.iter().find_map(|r| match r.verdict {
        Verdict::Reply { kind, thread, user } => Some((kind, thread, user)),
        _ => None,
    });
    let fate = match reply {
        None if recipients.iter().any(|r| r.verdict == Verdict::Discarded) => Fate::Discarded,
        None => Fate::Refused,
        Some(_) if parsed.auto_reply.is_some() => {
            Fate::Failed("auto_reply", parsed.auto_reply.clone().unwrap_or_default())
        }
        Some(_) if parsed.text.trim().is_empty() => Fate::Failed(
            "empty",
            "nothing of the message is the sender's own writing".into(),
        ),
        Some((kind, thread, user)) => {
            let tok = Token {
                kind: token::Kind::from_name(kind).expect("a kind herald named"),
                thread,
                user,
            };
            let body = super::processor::webhook_body(
                &parsed,
                mail_from,
                parsed.message_id.as_deref(),
                &crate::clock::rfc3339(std::time::SystemTime::now()),
                &tok,
            );
            let pretty = serde_json::from_slice::<serde_json::Value>(&body)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            Fate::Posted(pretty)
        }
    };
    Lab {
        recipients,
        from_headers,
        parsed: Some(parsed),
        fate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Profile;

    fn settings() -> Settings {
        let mut s = Settings::defaults(Profile::Dev);
        s.hostname = "herald.test".into();
        s
    }

    #[test]
    fn a_reply_to_a_valid_address_would_be_posted_with_its_text() {
        let key = ReplyKey::from_bytes(b"lab key");
        let to = token::mint(&key, token::Kind::Issue, 42, 7, "reply.herald.test").unwrap();
        let raw = format!(
            "From: Jane <jane@example.com>\r\nTo: {to}\r\nSubject: Re: Crash\r\nMessage-ID: <m1@example.com>\r\n\r\nFixed, thanks.\r\n\r\nOn Tue, Mar 12, 2024 at 10:15 AM Herald <noreply@herald.test> wrote:\r\n> Alice commented\r\n"
        );
        let lab = examine(&settings(), &key, raw.as_bytes(), "", "jane@example.com");
        assert!(lab.from_headers);
        assert_eq!(
            lab.recipients[0].verdict,
            Verdict::Reply {
                kind: "issue",
                thread: 42,
                user: 7
            }
        );
        let Fate::Posted(body) = &lab.fate else {
            panic!("{:?}", lab.fate)
        };
        assert!(body.contains("\"body\": \"Fixed, thanks.\""), "{body}");
        assert!(
            body.contains("\"message_id\": \"m1@example.com\""),
            "{body}"
        );
        let parsed = lab.parsed.unwrap();
        assert!(parsed.body.unwrap().contains("> Alice commented"));
    }

    #[test]
    fn forged_noreply_and_foreign_addresses_are_told_apart() {
        let key = ReplyKey::from_bytes(b"lab key");
        let raw = b"From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n";
        let s = settings();
        let lab = examine(
            &s,
            &key,
            raw,
            "reply+i-42-00000000000000000000000000000000-7@reply.herald.test, x@noreply.herald.test, a@elsewhere.example",
            "a@example.com",
        );
        assert!(!lab.from_headers);
        assert!(matches!(lab.recipients[0].verdict, Verdict::Refused(_)));
        assert_eq!(lab.recipients[1].verdict, Verdict::Discarded);
        let Verdict::Refused(why) = &lab.recipients[2].verdict else {
            panic!()
        };
        assert!(why.starts_with("550"), "{why}");
        assert_eq!(lab.fate, Fate::Discarded);
        let only_foreign = examine(&s, &key, raw, "a@elsewhere.example", "a@example.com");
        assert_eq!(only_foreign.fate, Fate::Refused);
    }

    #[test]
    fn auto_replies_and_empty_replies_fail_as_the_service_would() {
        let key = ReplyKey::from_bytes(b"lab key");
        let to = token::mint(&key, token::Kind::Issue, 1, 2, "reply.herald.test").unwrap();
        let auto = format!(
            "From: a@example.com\r\nTo: {to}\r\nAuto-Submitted: auto-replied\r\n\r\nI am away.\r\n"
        );
        let lab = examine(&settings(), &key, auto.as_bytes(), "", "a@example.com");
        assert!(
            matches!(lab.fate, Fate::Failed("auto_reply", _)),
            "{:?}",
            lab.fate
        );
        let empty = format!("From: a@example.com\r\nTo: {to}\r\n\r\n> only a quote\r\n");
        let lab = examine(&settings(), &key, empty.as_bytes(), "", "a@example.com");
        assert!(
            matches!(lab.fate, Fate::Failed("empty", _)),
            "{:?}",
            lab.fate
        );
        let lab = examine(&settings(), &key, b"", "", "a@example.com");
        assert!(matches!(lab.fate, Fate::Unreadable(_)));
    }
}
