//! Reply addresses: `reply+<k>-<thread id>-<mac>-<user id>@reply.<hostname>`.
//!
//! `mac` is HMAC-SHA256 over `<k>-<thread id>-<user id>`, keyed with a secret made at first boot
//! and kept in sled apart from the settings, truncated to 128 bits and written as 32 lowercase hex
//! digits. With ids of up to 10 digits the local part is at most 62 octets (RFC 5321 allows 64).
//! Addresses are matched case-insensitively and the MAC is compared in constant time. The
//! outbound side mints with [`mint`]; the inbound side verifies with [`verify`].

use crate::crypto;
use ring::hmac;

/// The largest id that keeps the local part within 64 octets: 10 digits.
pub const MAX_ID: u64 = 9_999_999_999;
const MAC_HEX: usize = 32;
const TREE: &str = "keys";
const KEY_NAME: &[u8] = b"reply_mac";

/// What a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Issue,
    PullRequest,
    Commit,
    Discussion,
}

impl Kind {
    pub fn letter(self) -> char {
        match self {
            Kind::Issue => 'i',
            Kind::PullRequest => 'p',
            Kind::Commit => 'c',
            Kind::Discussion => 'd',
        }
    }

    pub fn from_letter(c: char) -> Option<Kind> {
        Some(match c {
            'i' => Kind::Issue,
            'p' => Kind::PullRequest,
            'c' => Kind::Commit,
            'd' => Kind::Discussion,
            _ => return None,
        })
    }

    /// The API's names: `issue`, `pull_request`, `commit`, `discussion`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Issue => "issue",
            Kind::PullRequest => "pull_request",
            Kind::Commit => "commit",
            Kind::Discussion => "discussion",
        }
    }

    pub fn from_name(s: &str) -> Option<Kind> {
        [
            Kind::Issue,
            Kind::PullRequest,
            Kind::Commit,
            Kind::Discussion,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// A verified reply address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub thread: u64,
    pub user: u64,
}

/// The MAC key.
#[derive(Clone)]
pub struct ReplyKey(hmac::Key);

impl ReplyKey {
    pub fn from_bytes(bytes: &[u8]) -> ReplyKey {
        ReplyKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// The kept key, made (once) if there is none.
    pub fn load_or_create(db: &sled::Db) -> Result<ReplyKey, String> {
        let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
        if let Some(k) = tree.get(KEY_NAME).map_err(|e| e.to_string())? {
            return Ok(ReplyKey::from_bytes(&k));
        }
        let bytes = crypto::random_bytes(32);
        tree.insert(KEY_NAME, bytes.as_slice())
            .map_err(|e| e.to_string())?;
        tree.flush().map_err(|e| e.to_string())?;
        log::info!("made the reply-address key");
        Ok(ReplyKey::from_bytes(&bytes))
    }

    fn mac(&self, kind: Kind, thread: u64, user: u64) -> String {
        let msg = format!("{}-{thread}-{user}", kind.letter());
        let tag = hmac::sign(&self.0, msg.as_bytes());
        crypto::hex(&tag.as_ref()[..MAC_HEX / 2])
    }
}

/// Why an address cannot be minted.
#[derive(Debug, PartialEq, Eq)]
pub struct MintError(pub String);

/// The local part for a thread and user.
pub fn mint_local(key: &ReplyKey, kind: Kind, thread: u64, user: u64) -> Result<String, MintError> {
    for (what, id) in [("thread id", thread), ("user id", user)] {
        if id == 0 || id > MAX_ID {
            return Err(MintError(format!(
                "{what} must be a whole number from 1 to {MAX_ID}"
            )));
        }
    }
    Ok(format!(
        "reply+{}-{thread}-{}-{user}",
        kind.letter(),
        key.mac(kind, thread, user)
    ))
}

/// The whole address at `reply_domain` (`reply.<hostname>`).
pub fn mint(
    key: &ReplyKey,
    kind: Kind,
    thread: u64,
    user: u64,
    reply_domain: &str,
) -> Result<String, MintError> {
    Ok(format!(
        "{}@{reply_domain}",
        mint_local(key, kind, thread, user)?
    ))
}

/// Checks a local part (any case). `None` for anything that is not a reply address we made.
pub fn verify(key: &ReplyKey, local: &str) -> Option<Token> {
    if local.len() > 64 {
        return None;
    }
    let local = local.to_ascii_lowercase();
    let rest = local.strip_prefix("reply+")?;
    let mut parts = rest.split('-');
    let (k, thread, mac, user) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || k.len() != 1 || mac.len() != MAC_HEX {
        return None;
    }
    let digits = |s: &str| {
        !s.is_empty()
            && s.len() <= 10
            && s.bytes().all(|b| b.is_ascii_digit())
            && !s.starts_with('0')
    };
    if !digits(thread) || !digits(user) {
        return None;
    }
    let kind = Kind::from_letter(k.chars().next()?)?;
    let (thread, user) = (thread.parse().ok()?, user.parse().ok()?);
    let expected = key.mac(kind, thread, user);
    crypto::constant_time_eq(expected.as_bytes(), mac.as_bytes()).then_some(Token {
        kind,
        thread,
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ReplyKey {
        ReplyKey::from_bytes(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn mint_and_verify_round_trip() {
        for kind in [
            Kind::Issue,
            Kind::PullRequest,
            Kind::Commit,
            Kind::Discussion,
        ] {
            let local = mint_local(&key(), kind, 42, 7).unwrap();
            assert!(local.starts_with(&format!("reply+{}-42-", kind.letter())));
            assert_eq!(
                verify(&key(), &local),
                Some(Token {
                    kind,
                    thread: 42,
                    user: 7
                })
            );
            assert_eq!(
                verify(&key(), &local.to_ascii_uppercase()),
                Some(Token {
                    kind,
                    thread: 42,
                    user: 7
                }),
                "case-insensitive"
            );
        }
    }

    #[test]
    fn ten_digit_ids_fit_in_64_octets() {
        let local = mint_local(&key(), Kind::PullRequest, MAX_ID, MAX_ID).unwrap();
        assert!(local.len() <= 64, "{} octets", local.len());
        assert!(mint_local(&key(), Kind::Issue, MAX_ID + 1, 1).is_err());
        assert!(mint_local(&key(), Kind::Issue, 1, 0).is_err());
        let full = mint(&key(), Kind::Issue, 1, 5, "reply.ghe.example.com").unwrap();
        assert!(full.ends_with("-5@reply.ghe.example.com"));
    }

    #[test]
    fn forgeries_do_not_verify() {
        let good = mint_local(&key(), Kind::Issue, 42, 7).unwrap();
        let other = ReplyKey::from_bytes(b"another key, another appliance!!");
        assert_eq!(verify(&other, &good), None, "other key");
        let swapped_user = good.replace("-7", "-8");
        assert_eq!(verify(&key(), &swapped_user), None, "user changed");
        let swapped_thread = good.replace("-42-", "-43-");
        assert_eq!(verify(&key(), &swapped_thread), None, "thread changed");
        let kind = good.replacen("+i-", "+p-", 1);
        assert_eq!(verify(&key(), &kind), None, "kind changed");
        let mut flipped = good.clone().into_bytes();
        let i = flipped.len() - 4;
        flipped[i] = if flipped[i] == b'0' { b'1' } else { b'0' };
        assert_eq!(verify(&key(), std::str::from_utf8(&flipped).unwrap()), None);
        for junk in [
            "reply",
            "reply+",
            "reply+i-1-x-1",
            "reply+x-1-00000000000000000000000000000000-1",
            "reply+i-01-00-1",
            "noreply",
            "",
        ] {
            assert_eq!(verify(&key(), junk), None, "{junk}");
        }
        assert_eq!(verify(&key(), &format!("{good}-1")), None, "extra part");
    }

    #[test]
    fn kind_names() {
        for k in [
            Kind::Issue,
            Kind::PullRequest,
            Kind::Commit,
            Kind::Discussion,
        ] {
            assert_eq!(Kind::from_name(k.name()), Some(k));
            assert_eq!(Kind::from_letter(k.letter()), Some(k));
        }
        assert_eq!(Kind::from_name("wiki"), None);
    }
}
