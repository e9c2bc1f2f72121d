//! The console's two languages. English labels are GitHub Enterprise Server's; Japanese labels
//! are the admin guide's own words ("通知のためのメール設定"), written exactly as the guide writes them
//! (メールを有効にする, サーバー アドレス, …, with its spaces), so an administrator following the
//! guide step by step finds each label it names. The language comes from a switch on every page
//! (a cookie), else from `Accept-Language`. A test checks both catalogues have the same keys.

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "ja" => Some(Lang::Ja),
            _ => None,
        }
    }

    /// The other language, for the switch.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Ja,
            Lang::Ja => Lang::En,
        }
    }

    /// The language's own name, as the switch shows it.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ja => "日本語",
        }
    }

    /// The first of `en` or `ja` in an `Accept-Language` header, by quality (RFC 9110 §12.5.4);
    /// English when neither is there.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for (i, part) in header.split(',').enumerate() {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = match tag.split('-').next().unwrap_or("") {
                "ja" => Lang::Ja,
                "en" => Lang::En,
                _ => continue,
            };
            // Earlier wins among equals: a tiny nudge by position.
            let score = q - i as f32 * 1e-4;
            if q > 0.0 && best.is_none_or(|(b, _)| score > b) {
                best = Some((score, lang));
            }
        }
        best.map_or(Lang::En, |(_, l)| l)
    }

    /// What setting `key` must be, in this language, when the validator's own (English)
    /// message is not enough: Japanese only.
    pub fn rule(self, key: &str) -> Option<&'static str> {
        match self {
            Lang::En => None,
            Lang::Ja => JA_RULES.iter().find(|(k, _)| *k == key).map(|(_, v)| *v),
        }
    }

    /// The text of `key`; the key itself if a catalogue lacks it (a test keeps that from
    /// happening).
    pub fn t(self, key: &str) -> &'static str {
        use std::collections::HashMap;
        use std::sync::OnceLock;
        type Table = HashMap<&'static str, &'static str>;
        // A page looks up a couple of hundred keys: a map, made once, not a scan each time.
        static MAPS: OnceLock<(Table, Table)> = OnceLock::new();
        let (en, ja) = MAPS.get_or_init(|| {
            (
                english().into_iter().collect(),
                JA.iter().copied().collect(),
            )
        });
        let table = match self {
            Lang::En => en,
            Lang::Ja => ja,
        };
        table.get(key).copied().unwrap_or_else(|| {
            // Leaked on purpose: a missing key is a bug the test catches; the page still
            // renders, showing the key.
            Box::leak(key.to_string().into_boxed_str())
        })
    }
}

/// The English catalogue: `EN`, and the test email's headline and fix for each kind of
/// failure, worded once in `outbound::testmail` (the API and unicorn.log use them too).
fn english() -> Vec<(&'static str, &'static str)> {
    use crate::outbound::testmail;
    let mut all = EN.to_vec();
    for kind in testmail::KINDS {
        let name = testmail::kind_name(kind);
        let key = |prefix: &str| -> &'static str {
            Box::leak(format!("{prefix}.{name}").into_boxed_str())
        };
        all.push((key("test.kind"), testmail::headline(kind)));
        all.push((key("test.fix"), testmail::fix(kind)));
    }
    all
}

mod en;
mod ja;
pub use en::EN;
pub use ja::{JA, JA_RULES};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn both_catalogues_have_the_same_keys_once_each() {
        fn keys(t: &'static [(&'static str, &'static str)]) -> BTreeSet<&'static str> {
            let set: BTreeSet<&str> = t.iter().map(|(k, _)| *k).collect();
            assert_eq!(set.len(), t.len(), "a key given twice");
            set
        }
        let en = english();
        assert_eq!(keys(en.leak()), keys(JA));
        assert!(EN.iter().chain(JA).all(|(_, v)| !v.is_empty()));
    }

    #[test]
    fn every_field_of_the_form_has_its_rule_in_japanese() {
        for key in crate::console::setup::FORM_KEYS.iter().chain(&["test_to"]) {
            assert!(Lang::Ja.rule(key).is_some(), "no Japanese rule for {key}");
        }
        let keys: BTreeSet<&str> = JA_RULES.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys.len(), JA_RULES.len(), "a rule given twice");
        assert!(
            keys.iter()
                .all(|k| *k == "test_to" || crate::console::setup::FORM_KEYS.contains(k))
        );
    }

    /// The guide's words, exactly (the admin guide page "通知のためのメール設定").
    #[test]
    fn japanese_labels_are_the_guides_own() {
        for (key, guide) in [
            ("field.smtp.enabled", "メールを有効にする"),
            ("field.smtp.address", "サーバー アドレス"),
            ("field.smtp.port", "ポート"),
            ("field.smtp.domain", "ドメイン"),
            ("field.smtp.authentication", "認証"),
            ("field.smtp.noreply_address", "No-reply メール アドレス"),
            (
                "field.smtp.discard_to_noreply",
                "no-reply メール アドレスへのメールの破棄",
            ),
            ("field.smtp.support_type", "サポート"),
            ("support.email", "メール"),
            ("support.url", "URL"),
            ("test.title", "メール設定のテスト"),
            ("test.to", "テスト メールの送信先"),
            ("test.send", "テスト メールの送信"),
            ("save", "設定の保存"),
            ("field.inbound.tls_enforced", "TLS 認証の強制 (推奨)"),
            ("nav.settings", "設定"),
            ("nav.email", "メール アドレス"),
            ("email.section", "メール"),
        ] {
            assert_eq!(Lang::Ja.t(key), guide, "{key}");
        }
    }

    #[test]
    fn accept_language_picks_by_quality_and_order() {
        assert_eq!(Lang::from_accept_language("ja,en;q=0.8"), Lang::Ja);
        assert_eq!(
            Lang::from_accept_language("en-US,en;q=0.9,ja;q=0.8"),
            Lang::En
        );
        assert_eq!(Lang::from_accept_language("fr-FR, ja-JP;q=0.5"), Lang::Ja);
        assert_eq!(Lang::from_accept_language("de"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::from_accept_language("ja;q=0, en"), Lang::En);
    }
}
