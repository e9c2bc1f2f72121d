//! The recipient policy of SPEC §4: verified reply addresses are accepted; anything at
//! `noreply.<hostname>`, and `smtp.noreply_address` when `smtp.discard_to_noreply`, is accepted
//! and discarded; everything else is refused, so herald is never a relay and never sends
//! backscatter (the sending server bounces).

use crate::replies::token::{self, ReplyKey};
use crate::settings::Settings;
use crate::smtp::proto::Reply;
use crate::smtp::server::Policy;

pub struct InboundPolicy {
    reply_domain: String,
    noreply_domain: String,
    noreply_address: String,
    discard_to_noreply: bool,
    key: ReplyKey,
}

impl InboundPolicy {
    pub fn new(settings: &Settings, key: ReplyKey) -> InboundPolicy {
        InboundPolicy {
            reply_domain: settings.reply_domain().to_ascii_lowercase(),
            noreply_domain: format!("noreply.{}", settings.hostname).to_ascii_lowercase(),
            noreply_address: settings.noreply_address().to_ascii_lowercase(),
            discard_to_noreply: settings.smtp.discard_to_noreply,
            key,
        }
    }
}

impl Policy for InboundPolicy {
    fn recipient(&self, local: &str, domain: &str) -> Result<bool, Reply> {
        let domain = domain.to_ascii_lowercase();
        let addr = format!("{local}@{domain}");
        if domain == self.reply_domain {
            return match token::verify(&self.key, local) {
                Some(_) => Ok(false),
                None => Err(Reply::new(
                    550,
                    "5.1.1",
                    format!("<{addr}>: Recipient address rejected: not a valid reply address"),
                )),
            };
        }
        if domain == self.noreply_domain {
            return Ok(true);
        }
        if addr.eq_ignore_ascii_case(&self.noreply_address) {
            return if self.discard_to_noreply {
                Ok(true)
            } else {
                Err(Reply::new(
                    550,
                    "5.1.1",
                    format!(
                        "<{addr}>: Recipient address rejected: this address does not receive mail"
                    ),
                ))
            };
        }
        Err(Reply::new(
            550,
            "5.7.1",
            format!("<{addr}>: Relay access denied"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Profile, Value};

    fn policy(discard: bool) -> (InboundPolicy, ReplyKey) {
        let mut s = Settings::defaults(Profile::Board);
        s.update(&[
            ("hostname".into(), Value::Str("ghe.example.com".into())),
            ("smtp.discard_to_noreply".into(), Value::Bool(discard)),
        ])
        .unwrap();
        let key = ReplyKey::from_bytes(b"k");
        (InboundPolicy::new(&s, key.clone()), key)
    }

    #[test]
    fn reply_addresses_verify_case_insensitively() {
        let (p, key) = policy(true);
        let local = token::mint_local(&key, token::Kind::Issue, 1, 5).unwrap();
        assert_eq!(p.recipient(&local, "reply.ghe.example.com"), Ok(false));
        assert_eq!(
            p.recipient(&local.to_uppercase(), "REPLY.GHE.Example.com"),
            Ok(false)
        );
        let e = p
            .recipient(
                "reply+i-1-00000000000000000000000000000000-5",
                "reply.ghe.example.com",
            )
            .unwrap_err();
        assert_eq!((e.code, e.enhanced), (550, Some("5.1.1")));
        let e = p.recipient(&local, "ghe.example.com").unwrap_err();
        assert_eq!(
            (e.code, e.enhanced),
            (550, Some("5.7.1")),
            "a reply token at another domain is not ours"
        );
    }

    #[test]
    fn noreply_is_accepted_and_discarded() {
        let (p, _) = policy(true);
        assert_eq!(p.recipient("reason", "noreply.ghe.example.com"), Ok(true));
        assert_eq!(p.recipient("anything", "NOREPLY.ghe.example.com"), Ok(true));
        assert_eq!(p.recipient("noreply", "ghe.example.com"), Ok(true));
        assert_eq!(p.recipient("NoReply", "GHE.example.com"), Ok(true));
        let (p, _) = policy(false);
        assert_eq!(
            p.recipient("noreply", "ghe.example.com").unwrap_err().code,
            550
        );
        assert_eq!(p.recipient("reason", "noreply.ghe.example.com"), Ok(true));
    }

    #[test]
    fn everything_else_is_refused() {
        let (p, _) = policy(true);
        for (l, d) in [
            ("postmaster", "ghe.example.com"),
            ("victim", "gmail.com"),
            ("x", "example.com"),
        ] {
            let e = p.recipient(l, d).unwrap_err();
            assert_eq!((e.code, e.enhanced), (550, Some("5.7.1")), "{l}@{d}");
        }
    }
}
