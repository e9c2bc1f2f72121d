//! The pages rendered without a socket: every field of the form labelled in both languages,
//! errors tied to their fields, hostile values escaped, the password never in the HTML.

use super::*;
use crate::settings::{Profile, Settings, Value};
use crate::supervisor::runs::{Run, Status, Step, StepStatus};

fn settings() -> Settings {
    let mut s = Settings::defaults(Profile::Board);
    s.update(&[
        ("hostname".into(), Value::Str("ghe.example.com".into())),
        ("smtp.enabled".into(), Value::Bool(true)),
        ("smtp.address".into(), Value::Str("smtp.example.com".into())),
        ("smtp.authentication".into(), Value::Str("login".into())),
        ("smtp.username".into(), Value::Str("notify".into())),
        ("smtp.password".into(), Value::Str("Sup3r-Secret-Pw".into())),
    ])
    .unwrap();
    s
}

fn ctx(lang: Lang) -> Ctx<'static> {
    Ctx {
        lang,
        csrf: Some("tok-123"),
        path: "/setup/settings",
    }
}

fn base(s: &Settings) -> settings::View<'_> {
    settings::View {
        values: s,
        applied: s,
        saved: s,
        errors: &[],
        typed: &[],
        password_saved: true,
        password_typed: false,
        test: None,
        test_to: "",
        running: None,
        busy: false,
    }
}

fn render(lang: Lang) -> String {
    let s = settings();
    settings::render(&ctx(lang), &base(&s)).into_string()
}

#[test]
fn every_field_has_a_label_in_both_languages_in_the_guides_order() {
    for lang in [Lang::En, Lang::Ja] {
        let html = render(lang);
        let mut at = 0;
        for key in crate::console::setup::FORM_KEYS {
            let label = lang.t(&format!("field.{key}"));
            assert!(!label.starts_with("field."), "{key} has no label");
            let pos = html[at..]
                .find(label)
                .unwrap_or_else(|| panic!("{lang:?}: {label} missing or out of order"));
            at += pos;
            assert!(
                html.contains(&format!("name=\"{key}\"")),
                "{key} not on the form"
            );
        }
        for key in ["test.title", "test.to", "test.send", "save"] {
            assert!(html.contains(lang.t(key)), "{lang:?}: {key}");
        }
        assert!(html.contains(&format!("<html lang=\"{}\">", lang.code())));
    }
    let ja = render(Lang::Ja);
    for guide in [
        "メールを有効にする",
        "サーバー アドレス",
        "TLS 認証の強制 (推奨)",
        "設定の保存",
    ] {
        assert!(ja.contains(guide), "{guide}");
    }
}

#[test]
fn the_password_is_never_rendered_and_the_form_carries_its_token() {
    let html = render(Lang::En);
    assert!(!html.contains("Sup3r-Secret-Pw"));
    assert!(
        html.contains(r#"name="smtp.password" type="password" value="""#),
        "{html}"
    );
    assert!(html.contains(r#"<input type="hidden" name="_csrf" value="tok-123">"#));
    assert!(html.contains("A password is saved. Leave this empty to keep it"));
}

#[test]
fn an_error_stands_beside_its_field_tied_to_it_with_the_typed_value_kept() {
    let errors = vec![(
        "smtp.port".to_string(),
        "smtp.port must be a whole number from 1 to 65535: \"70000\" is out of range".to_string(),
    )];
    let typed = vec![("smtp.port".to_string(), "70000".to_string())];
    let s = settings();
    let mut v = base(&s);
    v.errors = &errors;
    v.typed = &typed;
    let html = settings::render(&ctx(Lang::En), &v).into_string();
    assert!(
        html.contains(r#"id="smtp-port" name="smtp.port" type="text" value="70000""#),
        "{html}"
    );
    assert!(
        html.contains(r#"aria-describedby="smtp-port-help smtp-port-error" aria-invalid="true""#),
        "{html}"
    );
    assert!(html.contains(r#"<p class="error" id="smtp-port-error">"#));
    assert!(html.contains(r#"role="alert" id="error-summary""#));
    assert!(html.contains("<a href=\"#smtp-port\">Port</a>"));
}

#[test]
fn hostile_values_and_server_replies_render_inert() {
    let evil = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";
    let transcript = vec![format!("-> \"535 {evil}\\r\\n\"")];
    let typed = vec![("smtp.address".to_string(), evil.to_string())];
    let s = settings();
    let mut v = base(&s);
    v.typed = &typed;
    v.test = Some(settings::Test {
        ok: false,
        error: Some(evil),
        kind: Some("auth"),
        detail: Some(evil),
        fix: Some(evil),
        reply: Some(evil),
        transcript: &transcript,
    });
    v.test_to = evil;
    let html = settings::render(&ctx(Lang::En), &v).into_string();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn saved_settings_not_in_force_are_listed_with_what_they_change() {
    let applied = settings();
    let mut saved = applied.clone();
    saved
        .update(&[
            ("smtp.port".into(), Value::Str("2525".into())),
            ("smtp.password".into(), Value::Str("another".into())),
        ])
        .unwrap();
    let view = settings::View {
        values: &saved,
        applied: &applied,
        saved: &saved,
        errors: &[],
        typed: &[],
        password_saved: true,
        password_typed: false,
        test: None,
        test_to: "",
        running: None,
        busy: false,
    };
    let html = settings::render(&ctx(Lang::En), &view).into_string();
    assert!(html.contains("Saved, not yet in force"));
    assert!(
        html.contains(
            "<th scope=\"row\">Port</th><td data-label=\"In force\">587</td><td data-label=\"Saved\">2525</td>"
        ),
        "{html}"
    );
    assert!(html.contains(
        "<th scope=\"row\">Password</th><td data-label=\"In force\">(set)</td><td data-label=\"Saved\">(set)</td>"
    ));
    assert!(!html.contains("another"));
}

fn run(status: Status) -> Run {
    Run {
        id: 7,
        status,
        started_at: "2026-12-03T10:00:00.000Z".into(),
        finished_at: None,
        took_ms: Some(12),
        trigger: "console".into(),
        client: Some("192.0.2.1".into()),
        from_version: 3,
        to_version: 4,
        changed: vec!["inbound.tls_enforced".into()],
        steps: vec![Step {
            name: "inbound".into(),
            status: if status == Status::Failed {
                StepStatus::Failed
            } else {
                StepStatus::Success
            },
            message: "<b>bound</b>".into(),
            started_at: "2026-12-03T10:00:00.000Z".into(),
            finished_at: None,
            took_ms: Some(3),
        }],
        events: vec![],
        error: (status == Status::Failed).then(|| "inbound: cannot listen".to_string()),
    }
}

#[test]
fn a_run_reloads_while_it_runs_and_says_how_it_ended() {
    let running = runs::run(&ctx(Lang::En), &run(Status::Running)).into_string();
    assert!(running.contains(r#"<meta http-equiv="refresh" content="1">"#));
    let done = runs::run(&ctx(Lang::Ja), &run(Status::Failed)).into_string();
    assert!(!done.contains("http-equiv=\"refresh\""));
    assert!(done.contains("失敗: 有効な設定は変更されていません。"));
    assert!(done.contains("inbound: cannot listen"));
    assert!(done.contains("受信リスナー"));
    assert!(
        done.contains("TLS 認証の強制 (推奨)"),
        "the changed key by its label"
    );
    assert!(done.contains("&lt;b&gt;bound&lt;/b&gt;"));
    let list = runs::list(&ctx(Lang::En), &[run(Status::Success)]).into_string();
    assert!(list.contains("<a href=\"/setup/runs/7\">#7</a>"));
}

#[test]
fn the_sign_in_page_says_the_same_for_every_wrong_password() {
    let c = Ctx {
        lang: Lang::En,
        csrf: None,
        path: "/setup/login",
    };
    let html = login::render(
        &c,
        &login::Login {
            token: "t",
            problem: Some("login.wrong"),
            next: "/setup/runs",
        },
    )
    .into_string();
    assert!(html.contains("That password is not right."));
    assert!(html.contains(r#"aria-describedby="password-help password-error""#));
    assert!(!html.contains("Sign out"), "no session, no sign-out");
    assert!(html.contains(r#"href="/setup/lang?to=ja&amp;back=/setup/login""#));
}

#[test]
fn in_japanese_a_failed_test_and_a_refused_field_say_what_to_do_in_japanese() {
    let transcript = vec!["<- \"535 5.7.8 bad credentials\\r\\n\"".to_string()];
    let errors = vec![
        (
            "smtp.noreply_address".to_string(),
            "must be an email address".to_string(),
        ),
        (
            "smtp.port".to_string(),
            "\"x\" is not a number; must be 1 to 65535".to_string(),
        ),
    ];
    let s = settings();
    let mut v = base(&s);
    v.errors = &errors;
    v.test = Some(settings::Test {
        ok: false,
        error: Some("Authentication failed: 535 5.7.8 bad credentials"),
        kind: Some("auth"),
        detail: Some("535 5.7.8 bad credentials"),
        fix: Some("Check Username and Password."),
        reply: Some("535 5.7.8 bad credentials"),
        transcript: &transcript,
    });
    let html = settings::render(&ctx(Lang::Ja), &v).into_string();
    assert!(
        html.contains("認証に失敗しました: <span lang=\"en\">535 5.7.8 bad credentials</span>"),
        "{html}"
    );
    assert!(
        html.contains("ユーザー名とパスワードを確認してください。"),
        "{html}"
    );
    assert!(!html.contains("Check Username and Password."), "{html}");
    assert!(
        html.contains("1 から 65535 までの整数を入力してください"),
        "{html}"
    );
    assert!(
        html.contains("(&quot;x&quot; is not a number; must be 1 to 65535)"),
        "the exact detail stays: {html}"
    );
    // The summary follows the form: Port comes before No-reply email address.
    let summary = &html[html.find("error-summary").unwrap()..];
    assert!(summary.find("#smtp-port").unwrap() < summary.find("#smtp-noreply-address").unwrap());
}
