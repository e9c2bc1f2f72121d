//! The admin guide's walk through the Management Console, in headless Chromium over WebDriver
//! (Debian's `chromium` and `chromium-driver`), in English and in Japanese: sign in, fill the
//! Email settings for a local SMTP server (the aiosmtpd smarthost, STARTTLS and LOGIN), send a
//! test email and see it accepted, break the password and see the 535 with the conversation,
//! save, watch the configuration run end, and see the new setting in force (Enforce TLS auth:
//! swaks is refused before STARTTLS). Every page is checked with axe-core (0 violations) and
//! photographed at desktop and phone width into `target/screenshots/`.

mod webdriver;

use crate::harness::*;
use crate::outbound::common::{Api, PASSWORD, Pki, Smarthost, USER, arg};
use std::process::Command;
use std::time::Duration;
use webdriver::Browser;

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);

/// Words of one language the walk looks for.
struct Words {
    lang: &'static str,
    save_error: &'static str,
    changed_auth: &'static str,
    run_failed: &'static str,
    test_ok: &'static str,
    test_failed: &'static str,
    run_success: &'static str,
    labels: &'static [&'static str],
}

const EN: Words = Words {
    lang: "en",
    changed_auth: "Authentication: None \u{2192} Login",
    save_error: "Some settings need fixing before they can be saved:",
    run_failed: "Failed: the settings in force are unchanged.",
    test_ok: "The test email was accepted by the SMTP server.",
    test_failed: "The test email could not be sent.",
    run_success: "Success: the new settings are in force.",
    labels: &[
        "Enable email",
        "Server address",
        "Port",
        "Domain",
        "Authentication",
        "No-reply email address",
        "Discard email addressed to the no-reply email address",
        "Support",
        "Test email settings",
        "Send test email to",
        "Save settings",
        "Enforce TLS auth (recommended)",
    ],
};

const JA: Words = Words {
    lang: "ja",
    changed_auth: "認証: なし \u{2192} Login",
    save_error: "保存する前に次の設定を修正する必要があります:",
    run_failed: "失敗: 有効な設定は変更されていません。",
    test_ok: "テスト メールは SMTP サーバーに受け付けられました。",
    test_failed: "テスト メールを送信できませんでした。",
    run_success: "成功: 新しい設定が有効になりました。",
    labels: &[
        "メールを有効にする",
        "サーバー アドレス",
        "ポート",
        "ドメイン",
        "認証",
        "No-reply メール アドレス",
        "no-reply メール アドレスへのメールの破棄",
        "サポート",
        "メール設定のテスト",
        "テスト メールの送信先",
        "設定の保存",
        "TLS 認証の強制 (推奨)",
    ],
};

/// Checks the page with axe-core and photographs it at desktop width, and, when the page can
/// be reached by its address (not the answer to a form), at phone width too.
fn look(b: &Browser, phone: Option<(&Browser, &str)>, name: &str) {
    let violations = b.axe();
    assert!(
        violations.is_empty(),
        "{name}: axe-core found:\n{}",
        violations.join("\n")
    );
    b.screenshot(name);
    let Some((phone, url)) = phone else { return };
    phone.go(url);
    let violations = phone.axe();
    assert!(
        violations.is_empty(),
        "{name} (phone): axe-core found:\n{}",
        violations.join("\n")
    );
    phone.screenshot(&format!("{name}-phone"));
}

fn walk(w: &Words) {
    let dir = TempDir::new(&format!("browser-{}", w.lang));
    let pki = Pki::new(&dir);
    let mut sh = Smarthost::tls_with_auth(&dir, "sh", &pki, "starttls", "LOGIN,PLAIN");
    let cfg = dir.write("herald.toml", &inbound_config(""));
    let mut h = Herald::start(Some(&cfg), &dir.join("data"));
    let smtp = h.smtp_port();
    let base = format!("https://127.0.0.1:{}", h.console_port);
    let b = Browser::start(&format!("{}-desktop", w.lang), DESKTOP.0, DESKTOP.1, w.lang);
    let phone = Browser::start(&format!("{}-phone", w.lang), PHONE.0, PHONE.1, w.lang);

    // The console's address takes the administrator to the sign-in.
    b.go(&format!("{base}/"));
    assert!(
        b.url().ends_with("/setup/login?next=/setup/settings"),
        "{}",
        b.url()
    );
    let login_url = b.url();
    look(&b, Some((&phone, &login_url)), &format!("login-{}", w.lang));
    // A wrong password first: the same words for any wrong password, and the form again.
    b.fill("#password", "not-the-password");
    b.submit("form button[type=submit]");
    assert!(b.exists("#password-error"), "{}", b.page_text());
    b.screenshot(&format!("login-wrong-{}", w.lang));
    b.fill("#password", &h.initial_password());
    b.submit("form button[type=submit]");
    assert!(b.url().ends_with("/setup/settings"), "{}", b.url());
    // The phone signs in too, for its photographs.
    phone.go(&login_url);
    phone.fill("#password", &h.initial_password());
    phone.submit("form button[type=submit]");

    // All of the text, the closed test section's too.
    let text = b
        .script("return document.body.textContent;")
        .as_str()
        .unwrap()
        .to_string();
    for label in w.labels {
        assert!(text.contains(label), "{label:?} not on the page:\n{text}");
    }
    look(
        &b,
        Some((&phone, &format!("{base}/setup/settings"))),
        &format!("settings-{}", w.lang),
    );

    // The guide's fields, for the local SMTP server.
    b.fill("#smtp-address", "localhost");
    b.fill("#smtp-port", &sh.port.to_string());
    b.click(&b.find("#smtp-authentication option[value=login]"));
    b.fill("#smtp-username", USER);
    b.fill("#smtp-password", PASSWORD);
    b.click(&b.find("#smtp-tls option[value=starttls-required]"));
    b.fill("#smtp-ca-file", arg(&pki.ca_file));
    // The script lists the changes before anything is saved.
    let changes = b.text("#changes");
    assert!(changes.contains("localhost"), "{changes}");
    assert!(
        changes.contains(w.changed_auth),
        "in the form's words: {changes}"
    );
    // Test email settings: accepted.
    if !b.exists("details.test[open]") {
        b.click(&b.find("details.test summary"));
    }
    b.fill("#test-to", "admin@example.org");
    b.submit("button[value=test]");
    let text = b.wait_text("the test's outcome", WAIT, |t| {
        t.contains(w.test_ok) || t.contains(w.test_failed)
    });
    assert!(text.contains(w.test_ok), "{text}");
    assert!(text.contains("250"), "{text}");
    look(&b, None, &format!("test-ok-{}", w.lang));
    assert_eq!(sh.received().len(), 1, "the smarthost got the test email");
    // The values stayed on the form (nothing was saved): break the password and test again.
    assert_eq!(
        b.script("return document.getElementById('smtp-address').value;"),
        "localhost"
    );
    b.fill("#smtp-password", "wrong-password-1");
    b.submit("button[value=test]");
    let text = b.wait_text("the failure", WAIT, |t| t.contains(w.test_failed));
    assert!(text.contains("535"), "{text}");
    assert!(
        text.contains("AUTH LOGIN"),
        "the conversation is shown:\n{text}"
    );
    assert!(
        text.contains("[redacted]") && !text.contains("wrong-password-1"),
        "{text}"
    );
    look(&b, None, &format!("test-auth-error-{}", w.lang));

    // A port that cannot be: the save is refused, the summary on top names the field and
    // takes the focus, and the field says what it must be.
    b.fill("#smtp-port", "70000");
    b.submit(".save-bar button[value=save]");
    let text = b.page_text();
    assert!(text.contains(w.save_error), "{text}");
    assert!(b.exists("#smtp-port-error"), "{text}");
    assert_eq!(
        b.script("return document.activeElement.id;"),
        "error-summary"
    );
    look(&b, None, &format!("save-error-{}", w.lang));
    b.fill("#smtp-port", &sh.port.to_string());

    // Save with the right password and Enforce TLS auth; the run's page follows the run.
    b.fill("#smtp-password", PASSWORD);
    let tls = b.find("#inbound-tls-enforced");
    if b.script("return document.getElementById('inbound-tls-enforced').checked;") != true {
        b.click(&tls);
    }
    b.submit(".save-bar button[value=save]");
    assert!(b.url().contains("/setup/runs/"), "{}", b.url());
    let text = b.wait_text("the run to end", WAIT, |t| {
        t.contains(w.run_success) || t.contains("Failed") || t.contains("失敗")
    });
    assert!(text.contains(w.run_success), "{text}");
    let run_url = b.url();
    look(&b, Some((&phone, &run_url)), &format!("run-{}", w.lang));
    look(
        &b,
        Some((&phone, &format!("{base}/setup/runs"))),
        &format!("runs-{}", w.lang),
    );

    // Diagnostics, from the sidebar: the test email just sent and the run are in it.
    b.go(&format!("{base}/setup/diagnostics"));
    let text = b.page_text();
    assert!(text.contains("Inbound certificate"), "{text}");
    assert!(text.contains("Last test email"), "{text}");
    look(
        &b,
        Some((&phone, &format!("{base}/setup/diagnostics"))),
        &format!("diagnostics-{}", w.lang),
    );

    // The reply lab, from the sidebar: a Gmail reply pasted for a reply address of issue 42
    // shows the text the application would get. Nothing is stored.
    b.go(&format!("{base}/setup/reply-lab"));
    look(
        &b,
        Some((&phone, &format!("{base}/setup/reply-lab"))),
        &format!("lab-{}", w.lang),
    );
    let eml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/replies/gmail_en.eml"
    ))
    .unwrap();
    b.script(&format!(
        "document.getElementById('lab-raw').value = {};",
        serde_json::to_string(&eml).unwrap()
    ));
    b.fill("#lab-to", &h.reply_address("issue", 42, 7));
    b.submit("form.card button[type=submit]");
    let text = b.page_text();
    assert!(text.contains("Thanks, merged!"), "{text}");
    assert!(text.contains("issue #42"), "{text}");
    assert!(text.contains("\"user_id\": 7"), "{text}");
    look(&b, None, &format!("lab-result-{}", w.lang));
    assert!(h.replies().is_empty(), "the lab stores nothing");

    // Replies and Queue: a reply that arrives over STARTTLS, and a notification queued by the
    // application, each on its page.
    let to = h.reply_address("issue", 42, 7);
    let mut cmd = Command::new("swaks");
    cmd.args([
        "--server",
        &format!("127.0.0.1:{smtp}"),
        "--to",
        &to,
        "--tls",
    ])
    .args(["--body", "Looks right to me.", "--timeout", "20"]);
    assert!(stdout(&run_with_deadline(cmd)).contains("250 2.0.0"));
    b.go(&format!("{base}/setup/replies"));
    look(
        &b,
        Some((&phone, &format!("{base}/setup/replies"))),
        &format!("replies-{}", w.lang),
    );
    b.click(&b.find("table a"));
    let text = b.page_text();
    assert!(text.contains("Looks right to me."), "{text}");
    look(&b, None, &format!("reply-{}", w.lang));
    let first = Api::new(&h).notify(&serde_json::json!({
        "to": "user@example.org", "user_id": 7, "subject": "Re: [acme/app] Crash on start (#42)",
        "text": "Alice commented.", "thread": {"kind": "issue", "id": 42}, "reason": "mention"
    }));
    b.go(&format!("{base}/setup/audit"));
    let text = b.page_text();
    assert!(text.contains("saved settings version"), "{text}");
    assert!(text.contains("configuration run #1"), "{text}");
    look(
        &b,
        Some((&phone, &format!("{base}/setup/audit"))),
        &format!("audit-{}", w.lang),
    );
    let api = Api::new(&h);
    api.wait_status(first["id"].as_str().unwrap(), &["sent"]);
    b.go(&format!("{base}/setup/queue"));
    let text = b.page_text();
    assert!(text.contains("user@example.org"), "{text}");
    look(
        &b,
        Some((&phone, &format!("{base}/setup/queue"))),
        &format!("queue-{}", w.lang),
    );
    // The SMTP server goes away: the next notification is deferred. The administrator retries
    // it from the list, then drops it behind its confirmation.
    sh.peer.kill();
    let later = api.notify(&serde_json::json!({
        "to": "later@example.org", "user_id": 8, "subject": "Re: [acme/app] Crash on start (#42)",
        "text": "Carol commented.", "thread": {"kind": "issue", "id": 42}, "reason": "mention"
    }));
    let id = later["id"].as_str().unwrap().to_string();
    assert_eq!(api.wait_status(&id, &["deferred"])["attempts"], 1);
    b.go(&format!("{base}/setup/queue?status=deferred"));
    assert!(b.page_text().contains("later@example.org"));
    b.submit(&format!("form[action='/setup/queue/{id}/retry'] button"));
    assert!(b.url().contains("done=retried"), "{}", b.url());
    assert!(b.exists(".notice.good"), "{}", b.page_text());
    look(&b, None, &format!("queue-retried-{}", w.lang));
    crate::outbound::common::wait_until("the retry's attempt", || {
        (api.get(&id)["attempts"] == 2).then_some(())
    });
    b.go(&format!("{base}/setup/queue/{id}"));
    look(
        &b,
        Some((&phone, &format!("{base}/setup/queue/{id}"))),
        &format!("notification-{}", w.lang),
    );
    b.click(&b.find(&format!("a[href='/setup/queue/{id}/drop']")));
    assert!(b.url().ends_with("/drop"), "{}", b.url());
    look(
        &b,
        Some((&phone, &b.url())),
        &format!("queue-drop-{}", w.lang),
    );
    b.submit("form button.danger");
    assert!(b.url().ends_with("?done=dropped"), "{}", b.url());
    assert!(b.exists(".notice.good"), "{}", b.page_text());
    assert!(!b.exists(&format!("form[action='/setup/queue/{id}/retry']")));
    look(&b, None, &format!("queue-dropped-{}", w.lang));
    let state = api.get(&id);
    assert_eq!(state["status"], "failed");
    assert!(
        state["last_error"]
            .as_str()
            .unwrap()
            .starts_with("dropped by an operator: console from 127.0.0.1"),
        "{state}"
    );
    b.go(&format!("{base}/setup/audit"));
    assert!(
        b.page_text()
            .contains(&format!("dropped notification {id}"))
    );

    // In force: a session that does not STARTTLS is refused at MAIL.
    let mut cmd = Command::new("swaks");
    cmd.args([
        "--server",
        &format!("127.0.0.1:{smtp}"),
        "--to",
        "x@noreply.herald.test",
    ])
    .args(["--quit-after", "MAIL", "--timeout", "20"]);
    let out = stdout(&run_with_deadline(cmd));
    assert!(out.contains("530 5.7.0"), "{out}");
    // And the settings page shows what is in force, with no pending changes left.
    b.go(&format!("{base}/setup/settings"));
    assert_eq!(
        b.script("return document.getElementById('inbound-tls-enforced').checked;"),
        true
    );
    assert!(!b.exists(".pending"));
    // A setting saved elsewhere (the CLI) on an address another program holds: the page lists
    // it as saved but not in force, and applying it from there fails and puts everything back.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_at = taken.local_addr().unwrap().to_string();
    let o = h.cli(&["config", "set", "inbound.listen", &taken_at]);
    assert!(o.status.success(), "{}", stderr(&o));
    b.go(&format!("{base}/setup/settings"));
    assert!(b.exists(".pending"), "{}", b.page_text());
    look(
        &b,
        Some((&phone, &format!("{base}/setup/settings"))),
        &format!("pending-{}", w.lang),
    );
    b.submit(".pending button[value=apply]");
    let text = b.wait_text("the run to fail", WAIT, |t| {
        t.contains(w.run_success) || t.contains(w.run_failed)
    });
    assert!(text.contains(w.run_failed), "{text}");
    assert!(
        text.contains(&taken_at),
        "the reason names the address:\n{text}"
    );
    let failed_url = b.url();
    look(
        &b,
        Some((&phone, &failed_url)),
        &format!("run-failed-{}", w.lang),
    );
    drop(taken);
    // Sign out ends the session: the settings are behind the sign-in again.
    b.submit("form.signout button");
    b.go(&format!("{base}/setup/settings"));
    assert!(b.url().contains("/setup/login"), "{}", b.url());
    drop((b, phone));
    std::thread::sleep(Duration::from_millis(100));
    h.stop();
}

#[test]
fn the_admin_guides_walk_in_english() {
    walk(&EN);
}

#[test]
fn the_admin_guides_walk_in_japanese() {
    walk(&JA);
}
