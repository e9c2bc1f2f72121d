//! The diagnostics report from the outside: `herald diagnostics` over the control socket, the
//! plain text with the manage API's credentials over HTTPS, the console page behind its
//! sign-in, what changed between two reports, and no secret in any of them.

use crate::harness::*;

fn report(h: &Herald) -> String {
    let o = h.cli(&["diagnostics"]);
    assert!(o.status.success(), "diagnostics: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn diagnostics_report_the_service_and_what_changed_and_keep_secrets_out() {
    let dir = TempDir::new("diagnostics");
    let cfg = dir.write("herald.toml", &inbound_config(""));
    let h = Herald::start(Some(&cfg), &dir.join("data"));
    let first = report(&h);
    for needle in [
        "herald diagnostics, ",
        "== Service\n",
        "version",
        "== Settings (applied, secrets masked)\n",
        "smtp.password",
        "== Inbound certificate\n",
        "  OK    certificate",
        "self-signed",
        "== Last configuration run\n",
        "== Last test email\n",
        "none sent since this data directory was made",
        "== Queues\n",
        "notifications",
        "(this is the first report)",
    ] {
        assert!(first.contains(needle), "{needle:?} missing from:\n{first}");
    }
    let second = report(&h);
    assert!(
        second.contains("== Changed since the last report\n  nothing\n"),
        "{second}"
    );
    // A pending value is shown as one, and as a change.
    let o = h.cli(&["config", "set", "smtp.domain", "mail.example.test"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let third = report(&h);
    assert!(third.contains("  WARN  pending"), "{third}");
    assert!(third.contains("smtp.domain = mail.example.test"), "{third}");
    assert!(third.contains("apply the pending settings"), "{third}");
    assert!(
        third
            .contains("Settings (applied, secrets masked) / pending: was (not in the last report)"),
        "{third}"
    );

    // The same text over HTTPS with the manage API's credentials; the page needs a session.
    let cacert = fetch_cert(&h, &dir);
    let password = h.initial_password();
    let basic = format!("api_key:{password}");
    let (code, text) = curl(&h, &cacert, &["-u", &basic], "/setup/diagnostics");
    assert_eq!(code, 200, "{text}");
    assert!(text.starts_with("herald diagnostics, "), "{text}");
    let (code, _) = curl(&h, &cacert, &["-u", "api_key:wrong"], "/setup/diagnostics");
    assert_eq!(code, 401);
    let (code, _) = curl(&h, &cacert, &[], "/setup/diagnostics");
    assert_eq!(code, 303, "a browser without a session goes to the sign-in");

    let secrets = [
        password.clone(),
        h.secret("api.token"),
        h.secret("replies.webhook_secret"),
    ];
    for text in [&first, &second, &third, &text] {
        for s in secrets.iter().filter(|s| s.len() >= 8) {
            assert!(
                !text.contains(s.as_str()),
                "a secret in the report:\n{text}"
            );
        }
    }
    h.stop();
}
