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

    /// The text of `key`; the key itself if a catalogue lacks it (a test keeps that from
    /// happening).
    pub fn t(self, key: &str) -> &'static str {
        use std::collections::HashMap;
        use std::sync::OnceLock;
        type Table = HashMap<&'static str, &'static str>;
        // A page looks up a couple of hundred keys: a map, made once, not a scan each time.
        static MAPS: OnceLock<(Table, Table)> = OnceLock::new();
        let (en, ja) =
            MAPS.get_or_init(|| (EN.iter().copied().collect(), JA.iter().copied().collect()));
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

pub const EN: &[(&str, &str)] = &[
    ("product", "herald"),
    ("console", "Management Console"),
    ("skip", "Skip to the content"),
    ("nav.settings", "Settings"),
    ("nav.email", "Email"),
    ("nav.runs", "Configuration runs"),
    ("nav.label", "Management Console sections"),
    ("lang.switch", "Language"),
    ("signout", "Sign out"),
    // login
    ("login.title", "Sign in to the Management Console"),
    ("login.password", "Password"),
    (
        "login.help",
        "The Management Console password. The first one is in the file initial-console-password in herald's data directory.",
    ),
    ("login.submit", "Sign in"),
    (
        "login.wrong",
        "That password is not right. Check it and try again.",
    ),
    (
        "login.throttled",
        "Too many sign-in attempts from here. Wait a moment, then try again.",
    ),
    (
        "login.expired",
        "Your session ended (signed out, timed out, or the password changed). Sign in again.",
    ),
    (
        "login.stale",
        "The sign-in form had expired. It has been renewed: sign in again.",
    ),
    // settings
    ("settings.title", "Email settings"),
    (
        "settings.intro",
        "Notification email goes out through your SMTP server; replies to it come back to this appliance on port 25.",
    ),
    ("email.section", "Email"),
    ("test.title", "Test email settings"),
    (
        "test.intro",
        "Sends one email with the values on this form, saved or not, and shows the whole SMTP conversation.",
    ),
    ("test.to", "Send test email to"),
    ("test.send", "Send test email"),
    ("test.ok", "The test email was accepted by the SMTP server."),
    ("test.failed", "The test email could not be sent."),
    ("test.reply", "The server's final reply"),
    ("test.fix", "What to do"),
    ("test.transcript", "SMTP conversation"),
    (
        "test.notsent",
        "Nothing was saved; the test used the values on the form.",
    ),
    ("field.smtp.enabled", "Enable email"),
    (
        "help.smtp.enabled",
        "This enables both outbound and inbound email. For inbound email to work, DNS must also point reply.<hostname> at this appliance.",
    ),
    ("field.smtp.address", "Server address"),
    ("help.smtp.address", "The address of your SMTP server."),
    ("field.smtp.port", "Port"),
    (
        "help.smtp.port",
        "The port your SMTP server uses to send email (587 for submission, 465 for implicit TLS, 25).",
    ),
    ("field.smtp.domain", "Domain"),
    (
        "help.smtp.domain",
        "The domain name sent in HELO, if any (empty: this appliance's host name).",
    ),
    ("field.smtp.authentication", "Authentication"),
    (
        "help.smtp.authentication",
        "How herald signs in to your SMTP server.",
    ),
    ("auth.none", "None"),
    ("auth.plain", "Plain"),
    ("auth.login", "Login"),
    ("auth.cram-md5", "CRAM-MD5"),
    ("field.smtp.username", "Username"),
    ("field.smtp.password", "Password"),
    (
        "help.smtp.password.set",
        "A password is saved. Leave this empty to keep it; type a new one to change it. It is never shown.",
    ),
    (
        "help.smtp.password.unset",
        "No password is saved. It is never shown once saved.",
    ),
    (
        "help.smtp.password.retype",
        "The password you typed for the test is kept for this sign-in and saved with the form unless you type another one. It is never shown.",
    ),
    ("field.smtp.noreply_address", "No-reply email address"),
    (
        "help.smtp.noreply_address",
        "The address in the From and To fields of all notification emails.",
    ),
    (
        "field.smtp.discard_to_noreply",
        "Discard email addressed to the no-reply email address",
    ),
    ("field.smtp.support_type", "Support"),
    (
        "help.smtp.support_type",
        "The link that gives your users more help.",
    ),
    ("support.email", "Email"),
    ("support.url", "URL"),
    ("help.support.email", "An internal email address."),
    (
        "help.support.url",
        "A link to an internal support site; it must start with http:// or https://.",
    ),
    ("field.smtp.support_address", "Support address"),
    (
        "field.inbound.tls_enforced",
        "Enforce TLS auth (recommended)",
    ),
    (
        "help.inbound.tls_enforced",
        "Every server that sends replies must start TLS (STARTTLS) first. A sending server that cannot do TLS is refused (RFC 3207 §4), and its replies are not received.",
    ),
    ("advanced.title", "Advanced"),
    (
        "advanced.intro",
        "herald's own settings: how it talks TLS to your SMTP server, where it listens for replies, and where replies go.",
    ),
    ("field.smtp.tls", "TLS mode"),
    (
        "help.smtp.tls",
        "STARTTLS when offered, STARTTLS always, TLS from the first byte (port 465), or never.",
    ),
    ("tls.starttls-auto", "STARTTLS when offered"),
    ("tls.starttls-required", "STARTTLS, required"),
    ("tls.implicit", "Implicit TLS (port 465)"),
    ("tls.off", "Off"),
    ("field.smtp.tls_verify", "Verify certificate"),
    (
        "help.smtp.tls_verify",
        "Check the SMTP server's certificate and name. Turned off, anyone between this appliance and the server could read the password and the mail.",
    ),
    ("field.smtp.ca_file", "CA file"),
    (
        "help.smtp.ca_file",
        "The absolute path of a PEM file with the certificate of your own certificate authority, trusted besides the system's.",
    ),
    ("field.inbound.listen", "Inbound listen address"),
    (
        "help.inbound.listen",
        "Where herald listens for replies: address and port (the appliance: 0.0.0.0:25).",
    ),
    ("field.replies.webhook_url", "Webhook URL"),
    (
        "help.replies.webhook_url",
        "Where each processed reply is posted, signed, for the application.",
    ),
    ("field.replies.ca_file", "Webhook CA file"),
    (
        "help.replies.ca_file",
        "The absolute path of a PEM file with the CA of the webhook's server, if it is your own.",
    ),
    ("save", "Save settings"),
    (
        "save.note",
        "Saving starts a configuration run: the settings are checked and put in force in about a second, while mail keeps flowing. If a check fails, the settings in force stay as they are.",
    ),
    ("changes.title", "Your changes"),
    ("changes.none", "No changes yet."),
    (
        "errors.title",
        "Some settings need fixing before they can be saved:",
    ),
    ("pending.title", "Saved, not yet in force"),
    (
        "pending.intro",
        "These settings were saved but no configuration run has put them in force.",
    ),
    ("pending.apply", "Apply these settings"),
    ("col.setting", "Setting"),
    ("col.inforce", "In force"),
    ("col.saved", "Saved"),
    ("running.notice", "A configuration run is going on."),
    ("running.see", "See it"),
    (
        "busy",
        "A configuration run is going on; wait for it to end, then save again.",
    ),
    ("secret.set", "(set)"),
    ("secret.unset", "(not set)"),
    ("yes", "yes"),
    ("no", "no"),
    ("empty", "(empty)"),
    // runs
    ("run.title", "Configuration run"),
    ("runs.title", "Configuration runs"),
    ("runs.none", "No configuration run yet."),
    (
        "run.running",
        "Running: this page reloads until the run ends.",
    ),
    ("run.success", "Success: the new settings are in force."),
    ("run.failed", "Failed: the settings in force are unchanged."),
    (
        "run.fix",
        "Fix what the failed step names on the Email settings page, then save again.",
    ),
    ("run.back", "Back to Email settings"),
    ("run.started", "Started"),
    ("run.took", "Took"),
    ("run.by", "Asked for by"),
    ("run.changed", "Changed"),
    (
        "run.nothing",
        "nothing: the settings in force were checked again",
    ),
    ("run.steps", "Steps"),
    ("col.step", "Step"),
    ("col.status", "Status"),
    ("col.what", "What happened"),
    ("col.time", "Time"),
    ("col.run", "Run"),
    ("col.started", "Started"),
    ("col.changes", "Changes"),
    ("step.validate", "Validate"),
    ("step.inbound", "Inbound listener"),
    ("step.inbound_check", "Inbound check"),
    ("step.console", "Management Console"),
    ("step.smarthost", "SMTP server"),
    ("step.webhook", "Webhook"),
    ("step.apply", "Apply"),
    ("status.running", "running"),
    ("status.success", "success"),
    ("status.failed", "failed"),
    ("status.skipped", "skipped"),
    ("status.warning", "warning"),
    ("status.rolled_back", "rolled back"),
    ("trigger.console", "the console"),
    ("trigger.api", "the manage API"),
    ("trigger.cli", "the command line"),
    ("trigger.boot", "a boot"),
    // errors
    ("error.title", "Something went wrong"),
    (
        "error.forbidden",
        "This request came from another site, or its form had expired. Reload the page and try again.",
    ),
    (
        "error.host",
        "This console answers only to its own host name or an IP address.",
    ),
    ("error.notfound", "There is no such page."),
];

pub const JA: &[(&str, &str)] = &[
    ("product", "herald"),
    ("console", "Management Console"),
    ("skip", "本文へ移動"),
    ("nav.settings", "設定"),
    ("nav.email", "メール アドレス"),
    ("nav.runs", "設定の実行"),
    ("nav.label", "Management Console のセクション"),
    ("lang.switch", "言語"),
    ("signout", "サインアウト"),
    ("login.title", "Management Console にサインイン"),
    ("login.password", "パスワード"),
    (
        "login.help",
        "Management Console のパスワード。最初のパスワードは herald のデータ ディレクトリのファイル initial-console-password にあります。",
    ),
    ("login.submit", "サインイン"),
    (
        "login.wrong",
        "パスワードが正しくありません。確認してもう一度お試しください。",
    ),
    (
        "login.throttled",
        "ここからのサインインの試行が多すぎます。しばらく待ってからもう一度お試しください。",
    ),
    (
        "login.expired",
        "セッションが終了しました (サインアウト、タイムアウト、またはパスワードの変更)。もう一度サインインしてください。",
    ),
    (
        "login.stale",
        "サインイン フォームの有効期限が切れていたため、更新しました。もう一度サインインしてください。",
    ),
    ("settings.title", "メール設定"),
    (
        "settings.intro",
        "通知メールは SMTP サーバー経由で送信され、その返信はポート 25 でこのアプライアンスに届きます。",
    ),
    ("email.section", "メール"),
    ("test.title", "メール設定のテスト"),
    (
        "test.intro",
        "このフォームの値 (保存前でも) でメールを 1 通送信し、SMTP 会話全体を表示します。",
    ),
    ("test.to", "テスト メールの送信先"),
    ("test.send", "テスト メールの送信"),
    (
        "test.ok",
        "テスト メールは SMTP サーバーに受け付けられました。",
    ),
    ("test.failed", "テスト メールを送信できませんでした。"),
    ("test.reply", "サーバーの最終応答"),
    ("test.fix", "対処方法"),
    ("test.transcript", "SMTP 会話"),
    (
        "test.notsent",
        "何も保存されていません。テストにはフォームの値が使われました。",
    ),
    ("field.smtp.enabled", "メールを有効にする"),
    (
        "help.smtp.enabled",
        "これにより、送信メールと受信メールの両方が有効になります。受信メールを機能させるには、reply.<hostname> をこのアプライアンスに向ける DNS の設定も必要です。",
    ),
    ("field.smtp.address", "サーバー アドレス"),
    ("help.smtp.address", "SMTP サーバーのアドレス。"),
    ("field.smtp.port", "ポート"),
    (
        "help.smtp.port",
        "SMTP サーバーがメールの送信に使用するポート (submission は 587、暗黙的 TLS は 465、または 25)。",
    ),
    ("field.smtp.domain", "ドメイン"),
    (
        "help.smtp.domain",
        "HELO で送信されるドメイン名 (存在する場合。空の場合はこのアプライアンスのホスト名)。",
    ),
    ("field.smtp.authentication", "認証"),
    (
        "help.smtp.authentication",
        "herald が SMTP サーバーにサインインする方法。",
    ),
    ("auth.none", "なし"),
    ("auth.plain", "Plain"),
    ("auth.login", "Login"),
    ("auth.cram-md5", "CRAM-MD5"),
    ("field.smtp.username", "ユーザー名"),
    ("field.smtp.password", "パスワード"),
    (
        "help.smtp.password.set",
        "パスワードは保存されています。そのままにする場合は空のままにし、変更する場合は新しいパスワードを入力してください。パスワードが表示されることはありません。",
    ),
    (
        "help.smtp.password.unset",
        "パスワードは保存されていません。保存後に表示されることはありません。",
    ),
    (
        "help.smtp.password.retype",
        "テストで入力したパスワードはこのサインインの間保持され、別のパスワードを入力しない限り、設定の保存時にそのまま保存されます。パスワードが表示されることはありません。",
    ),
    ("field.smtp.noreply_address", "No-reply メール アドレス"),
    (
        "help.smtp.noreply_address",
        "すべての通知メールの [送信元] フィールドと [宛先] フィールドに使用するメール アドレス。",
    ),
    (
        "field.smtp.discard_to_noreply",
        "no-reply メール アドレスへのメールの破棄",
    ),
    ("field.smtp.support_type", "サポート"),
    (
        "help.smtp.support_type",
        "ユーザーに追加のサポートを提供するリンクの種類。",
    ),
    ("support.email", "メール"),
    ("support.url", "URL"),
    ("help.support.email", "内部メール アドレス。"),
    (
        "help.support.url",
        "内部サポート サイトへのリンク。 http:// または https:// のいずれかを含める必要があります。",
    ),
    ("field.smtp.support_address", "サポートのアドレス"),
    ("field.inbound.tls_enforced", "TLS 認証の強制 (推奨)"),
    (
        "help.inbound.tls_enforced",
        "返信を送るすべてのサーバーが、最初に TLS (STARTTLS) を開始する必要があります。TLS を使えない送信サーバーは拒否され (RFC 3207 §4)、その返信は受信されません。",
    ),
    ("advanced.title", "詳細設定"),
    (
        "advanced.intro",
        "herald 独自の設定: SMTP サーバーとの TLS の使い方、返信を待ち受ける場所、返信の送り先。",
    ),
    ("field.smtp.tls", "TLS モード"),
    (
        "help.smtp.tls",
        "提供されていれば STARTTLS、常に STARTTLS、最初のバイトから TLS (ポート 465)、または使用しない。",
    ),
    ("tls.starttls-auto", "提供されていれば STARTTLS"),
    ("tls.starttls-required", "STARTTLS (必須)"),
    ("tls.implicit", "暗黙的 TLS (ポート 465)"),
    ("tls.off", "オフ"),
    ("field.smtp.tls_verify", "証明書の検証"),
    (
        "help.smtp.tls_verify",
        "SMTP サーバーの証明書と名前を確認します。オフにすると、このアプライアンスとサーバーの間にいる誰もがパスワードとメールを読める可能性があります。",
    ),
    ("field.smtp.ca_file", "CA ファイル"),
    (
        "help.smtp.ca_file",
        "独自の証明機関の証明書を含む PEM ファイルの絶対パス。システムの証明書に加えて信頼されます。",
    ),
    ("field.inbound.listen", "受信の待ち受けアドレス"),
    (
        "help.inbound.listen",
        "herald が返信を待ち受ける場所: アドレスとポート (アプライアンス: 0.0.0.0:25)。",
    ),
    ("field.replies.webhook_url", "Webhook URL"),
    (
        "help.replies.webhook_url",
        "処理された各返信が署名付きで送信される、アプリケーションの URL。",
    ),
    ("field.replies.ca_file", "Webhook の CA ファイル"),
    (
        "help.replies.ca_file",
        "Webhook のサーバーが独自の CA を使う場合、その CA を含む PEM ファイルの絶対パス。",
    ),
    ("save", "設定の保存"),
    (
        "save.note",
        "保存すると設定の実行が始まります。設定は確認され、約 1 秒で有効になります。その間もメールは流れ続けます。確認に失敗した場合、有効な設定はそのまま残ります。",
    ),
    ("changes.title", "変更内容"),
    ("changes.none", "まだ変更はありません。"),
    (
        "errors.title",
        "保存する前に次の設定を修正する必要があります:",
    ),
    ("pending.title", "保存済み、未適用"),
    (
        "pending.intro",
        "次の設定は保存されていますが、まだ設定の実行で有効になっていません。",
    ),
    ("pending.apply", "これらの設定を適用する"),
    ("col.setting", "設定"),
    ("col.inforce", "有効な値"),
    ("col.saved", "保存された値"),
    ("running.notice", "設定の実行が進行中です。"),
    ("running.see", "表示する"),
    (
        "busy",
        "設定の実行が進行中です。完了するのを待ってから、もう一度保存してください。",
    ),
    ("secret.set", "(設定済み)"),
    ("secret.unset", "(未設定)"),
    ("yes", "はい"),
    ("no", "いいえ"),
    ("empty", "(空)"),
    ("run.title", "設定の実行"),
    ("runs.title", "設定の実行"),
    ("runs.none", "設定の実行はまだありません。"),
    (
        "run.running",
        "実行中: 実行が完了するまでこのページは再読み込みされます。",
    ),
    ("run.success", "成功: 新しい設定が有効になりました。"),
    ("run.failed", "失敗: 有効な設定は変更されていません。"),
    (
        "run.fix",
        "失敗したステップが示す設定をメール設定のページで修正し、もう一度保存してください。",
    ),
    ("run.back", "メール設定に戻る"),
    ("run.started", "開始"),
    ("run.took", "所要時間"),
    ("run.by", "要求元"),
    ("run.changed", "変更"),
    ("run.nothing", "なし: 有効な設定を再確認しました"),
    ("run.steps", "ステップ"),
    ("col.step", "ステップ"),
    ("col.status", "状態"),
    ("col.what", "内容"),
    ("col.time", "時間"),
    ("col.run", "実行"),
    ("col.started", "開始"),
    ("col.changes", "変更"),
    ("step.validate", "検証"),
    ("step.inbound", "受信リスナー"),
    ("step.inbound_check", "受信の確認"),
    ("step.console", "Management Console"),
    ("step.smarthost", "SMTP サーバー"),
    ("step.webhook", "Webhook"),
    ("step.apply", "適用"),
    ("status.running", "実行中"),
    ("status.success", "成功"),
    ("status.failed", "失敗"),
    ("status.skipped", "スキップ"),
    ("status.warning", "警告"),
    ("status.rolled_back", "元に戻しました"),
    ("trigger.console", "Management Console"),
    ("trigger.api", "Manage API"),
    ("trigger.cli", "コマンド ライン"),
    ("trigger.boot", "起動"),
    ("error.title", "問題が発生しました"),
    (
        "error.forbidden",
        "この要求は別のサイトから送られたか、フォームの有効期限が切れています。ページを再読み込みしてもう一度お試しください。",
    ),
    (
        "error.host",
        "この管理コンソールは、自身のホスト名または IP アドレスでのみ応答します。",
    ),
    ("error.notfound", "そのようなページはありません。"),
];

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
        assert_eq!(keys(EN), keys(JA));
        assert!(EN.iter().chain(JA).all(|(_, v)| !v.is_empty()));
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
