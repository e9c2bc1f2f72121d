//! The test email: TLS, authentication, certificates, the CLI.

use super::common::*;
use crate::harness::*;
use serde_json::{Value as Json, json};
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------------
// The test email: TLS and authentication

#[test]
fn test_email_over_starttls_with_plain_login_and_cram_md5_never_shows_the_password() {
    let dir = TempDir::new("out-auth");
    let pki = Pki::new(&dir);
    let sh = Smarthost::tls_with_auth(&dir, "auth", &pki, "starttls", "PLAIN,LOGIN,CRAM-MD5");
    let h = start_herald(
        &dir,
        &format!(
            "address = \"localhost\"\nport = {}\ntls = \"starttls-required\"\nca_file = \"{}\"\n",
            sh.port,
            arg(&pki.ca_file)
        ),
    );

    for (i, (mech, auth_lines)) in [
        ("plain", vec![sent("AUTH PLAIN [redacted]")]),
        (
            "login",
            vec![sent("AUTH LOGIN"), sent("[redacted]"), sent("[redacted]")],
        ),
        ("cram-md5", vec![sent("AUTH CRAM-MD5"), sent("[redacted]")]),
    ]
    .into_iter()
    .enumerate()
    {
        let r = test_email(
            &h,
            json!({ "smtp": { "authentication": mech, "username": USER, "password": PASSWORD } }),
        );
        let t = assert_sent(&r);
        let text = t.join("\n");
        assert_eq!(t[0], format!("Connection opened: localhost:{}", sh.port));
        let starttls = position(&t, &sent("STARTTLS")).expect(&text);
        let tls = position(&t, "TLS connection started").expect(&text);
        let auth = position(&t, &auth_lines[0]).expect(&text);
        assert!(
            starttls < tls && tls < auth,
            "{mech}: STARTTLS before AUTH:\n{text}"
        );
        // EHLO again over TLS: what the server said in plaintext no longer counts.
        let ehlo: Vec<usize> = t
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == sent("EHLO herald.test"))
            .map(|(i, _)| i)
            .collect();
        assert!(
            ehlo.len() == 2 && ehlo[0] < starttls && tls < ehlo[1] && ehlo[1] < auth,
            "{mech}:\n{text}"
        );
        // Every credential line is redacted, in order, right after AUTH.
        let sent_after_auth: Vec<&String> =
            t[auth..].iter().filter(|l| l.starts_with("<- ")).collect();
        assert_eq!(
            sent_after_auth[..auth_lines.len()],
            auth_lines.iter().collect::<Vec<_>>()[..],
            "{mech}:\n{text}"
        );
        assert!(
            t.iter().any(|l| l.starts_with("-> \"235 ")),
            "{mech}: 235:\n{text}"
        );
        assert!(
            t.contains(&sent(&format!("MAIL FROM:<{NOREPLY}>"))),
            "{text}"
        );
        assert!(t.contains(&sent(&format!("RCPT TO:<{TO}>"))), "{text}");
        assert_no_password(&format!("{mech} transcript"), &text);

        let got = sh.received();
        assert_eq!(got.len(), i + 1, "{mech}: one message per test");
        let (mail, meta) = &got[i];
        assert_eq!(meta["auth_user"], USER, "{mech}: {meta}");
        assert_eq!(meta["tls"], true, "{mech}: {meta}");
        assert_eq!(meta["mail_from"], NOREPLY);
        assert_eq!(meta["rcpt_tos"], json!([TO]));
        assert_eq!(mail.one("Subject"), "Test email from herald.test");
        assert_eq!(mail.one("To"), TO);
        assert!(mail.text().contains(BODY_LINE), "{mech}: {}", mail.body);
    }

    // The overlay was for the test only: nothing was saved.
    let settings = h.control_get("/manage/v1/config/settings");
    assert_eq!(settings["smtp"]["authentication"], "none", "{settings:#}");
    assert_eq!(settings["smtp"]["username"], "", "{settings:#}");

    let unicorn = h.unicorn_log();
    assert_eq!(unicorn.matches(BODY_LINE).count(), 3, "{unicorn}");
    assert_eq!(
        unicorn
            .matches(&format!("test email to {TO}: sent"))
            .count(),
        3,
        "{unicorn}"
    );
    assert_eq!(
        unicorn.matches("TLS connection started").count(),
        3,
        "{unicorn}"
    );
    assert!(
        unicorn.contains(&sent("AUTH PLAIN [redacted]"))
            && unicorn.contains(&sent("AUTH CRAM-MD5"))
            && unicorn.contains(&sent("[redacted]")),
        "{unicorn}"
    );
    assert!(
        unicorn.contains(&format!("Connection opened: localhost:{}", sh.port)),
        "{unicorn}"
    );
    assert_no_password("unicorn.log", &unicorn);
    assert_no_password("herald's log", &h.log());
    assert_no_password("mail.log", &h.mail_log());
    h.stop();
}

#[test]
fn test_email_with_a_wrong_password_says_authentication_failed_with_the_535() {
    let dir = TempDir::new("out-badpw");
    let pki = Pki::new(&dir);
    let sh = Smarthost::tls_with_auth(&dir, "badpw", &pki, "starttls", "PLAIN,LOGIN");
    let h = start_herald(
        &dir,
        &format!(
            "address = \"localhost\"\nport = {}\nca_file = \"{}\"\nauthentication = \"login\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            sh.port,
            arg(&pki.ca_file)
        ),
    );
    let wrong = "not-the-Password-42";
    for mech in ["plain", "login"] {
        let r = test_email(
            &h,
            json!({ "smtp": { "authentication": mech, "password": wrong } }),
        );
        let e = assert_failed(
            &r,
            &["Authentication failed", "username or password", "535"],
        );
        let t = transcript(&r);
        let text = t.join("\n");
        assert!(
            t.iter().any(|l| l.starts_with("-> \"535 ")),
            "{mech}: {e}\n{text}"
        );
        assert!(
            !t.iter().any(|l| l.starts_with("<- \"MAIL FROM")),
            "{mech}: no mail after a refused login:\n{text}"
        );
        // Regression: the transcript ended on QUIT, which read like a hang. Now the server's
        // answer to it, and the connection closing.
        let quit = position(&t, &sent("QUIT")).unwrap_or_else(|| panic!("{mech}:\n{text}"));
        assert!(t[quit + 1].starts_with("-> \"221 "), "{mech}:\n{text}");
        assert_eq!(t.last().unwrap(), "Connection closed", "{mech}:\n{text}");
        for form in password_forms(USER, wrong) {
            assert!(!text.contains(&form), "{mech}: {form}:\n{text}");
        }
    }
    assert!(sh.received().is_empty());
    let unicorn = h.unicorn_log();
    assert_eq!(
        unicorn
            .matches(&format!(
                "test email to {TO}: failed: Authentication failed"
            ))
            .count(),
        2,
        "{unicorn}"
    );
    assert!(!unicorn.contains(wrong), "{unicorn}");
    h.stop();
}

#[test]
fn test_email_to_a_server_without_starttls_follows_smtp_tls() {
    let dir = TempDir::new("out-notls");
    let sh = Smarthost::start(
        &dir,
        "notls",
        &[
            "--tls",
            "none",
            "--auth",
            "PLAIN",
            "--user",
            USER,
            "--password",
            PASSWORD,
            "--no-auth-require-tls",
        ],
    );
    let h = start_herald(
        &dir,
        &format!("address = \"127.0.0.1\"\nport = {}\n", sh.port),
    );

    // starttls-required: no STARTTLS offered, so nothing is sent.
    let r = test_email(&h, json!({ "smtp": { "tls": "starttls-required" } }));
    assert_failed(&r, &["STARTTLS", "starttls-required"]);
    let t = transcript(&r);
    assert!(
        t.iter().any(|l| l.starts_with("<- \"EHLO ")),
        "{}",
        t.join("\n")
    );
    assert!(
        !t.iter()
            .any(|l| l.starts_with("<- \"MAIL") || l.starts_with("<- \"STARTTLS")),
        "{}",
        t.join("\n")
    );

    // starttls-auto with AUTH PLAIN: the password would go in clear, so it is not sent.
    let plain = json!({ "authentication": "plain", "username": USER, "password": PASSWORD });
    let mut auto = plain.clone();
    auto["tls"] = json!("starttls-auto");
    let r = test_email(&h, json!({ "smtp": auto }));
    assert_failed(
        &r,
        &["Outbound email configuration error", "password in clear"],
    );
    let t = transcript(&r);
    assert!(
        !t.iter().any(|l| l.starts_with("<- \"AUTH")),
        "{}",
        t.join("\n")
    );
    assert!(sh.received().is_empty());

    // starttls-auto and no AUTH: plaintext is fine.
    let r = test_email(&h, json!({ "smtp": { "tls": "starttls-auto" } }));
    let t = assert_sent(&r);
    assert!(!t.iter().any(|l| l == "TLS connection started"));

    // tls = off says "plaintext on purpose": AUTH PLAIN goes, redacted in the transcript.
    let mut off = plain;
    off["tls"] = json!("off");
    let r = test_email(&h, json!({ "smtp": off }));
    let t = assert_sent(&r);
    assert!(
        t.contains(&sent("AUTH PLAIN [redacted]")),
        "{}",
        t.join("\n")
    );
    assert_no_password("transcript", &t.join("\n"));
    let got = sh.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1["auth_user"], Json::Null);
    assert_eq!(got[1].1["auth_user"], USER);
    assert_eq!(got[1].1["tls"], false);
    assert!(got[1].0.text().contains(BODY_LINE));
    assert_no_password("unicorn.log", &h.unicorn_log());
    h.stop();
}

#[test]
fn test_email_names_each_certificate_problem_and_tls_verify_off_accepts_a_wrong_name() {
    let dir = TempDir::new("out-certs");
    let pki = Pki::new(&dir);
    let start = |tag: &str, names: &[&str], expired: bool| {
        let (cert, key) = pki.leaf(tag, names, expired);
        Smarthost::start(
            &dir,
            tag,
            &[
                "--tls",
                "starttls",
                "--cert",
                arg(&cert),
                "--key",
                arg(&key),
            ],
        )
    };
    let expired = start("expired", &["localhost"], true);
    let wrong_name = start("wrong-name", &["mail.example.org"], false);
    let good = start("good", &["localhost"], false);
    let h = start_herald(
        &dir,
        &format!(
            "address = \"localhost\"\nport = {}\ntls = \"starttls-required\"\nca_file = \"{}\"\n",
            good.port,
            arg(&pki.ca_file)
        ),
    );

    // The right CA and name: delivered (so the failures below are about the certificates).
    assert_sent(&test_email(&h, json!({})));
    assert_eq!(good.received().len(), 1);

    let mut errors = BTreeSet::new();
    for (what, port, extra, words) in [
        ("expired", expired.port, json!({}), &["has expired"][..]),
        (
            "wrong name",
            wrong_name.port,
            json!({}),
            &["not valid for the name localhost"][..],
        ),
        (
            "unknown CA",
            good.port,
            json!({ "ca_file": "" }),
            &["does not trust", "smtp.ca_file"][..],
        ),
    ] {
        // The port as GHES's API sends it: a string.
        let mut smtp = json!({ "port": port.to_string() });
        smtp.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = test_email(&h, json!({ "smtp": smtp }));
        let mut words = words.to_vec();
        words.extend(["TLS failure", "certificate of localhost"]);
        let e = assert_failed(&r, &words);
        let t = transcript(&r);
        let text = t.join("\n");
        assert!(t.contains(&sent("STARTTLS")), "{what}:\n{text}");
        assert!(
            !t.iter()
                .any(|l| l == "TLS connection started" || l.starts_with("<- \"MAIL")),
            "{what}:\n{text}"
        );
        // Regression: nothing came after "220 Ready to start TLS". Now: why, and what the
        // certificate was; the transcript ends with the connection closing, not in a hang.
        let failed = position(
            &t,
            &format!("TLS handshake failed: {}", e.split(": ").nth(1).unwrap()),
        );
        let failed = failed.or_else(|| {
            t.iter()
                .position(|l| l.starts_with("TLS handshake failed: "))
        });
        let failed = failed.unwrap_or_else(|| panic!("{what}: no failure line:\n{text}"));
        assert!(
            t[failed + 1].starts_with("Certificate shown: CN="),
            "{what}:\n{text}"
        );
        assert_eq!(t.last().unwrap(), "Connection closed", "{what}:\n{text}");
        errors.insert(e);
    }
    // The safe fix comes first, and turning verification off is said with what it costs.
    let unknown = errors
        .iter()
        .find(|e| e.contains("does not trust"))
        .unwrap();
    let ca = unknown.find("CA file").unwrap();
    let off = unknown.find("turning off Verify certificate").unwrap();
    assert!(ca < off, "{unknown}");
    assert!(
        unknown.contains("can read the password and the mail"),
        "{unknown}"
    );
    assert_eq!(errors.len(), 3, "three different messages: {errors:#?}");
    // starttls-auto does not fall back to plaintext when the certificate is refused.
    let r = test_email(
        &h,
        json!({ "smtp": { "tls": "starttls-auto", "port": expired.port } }),
    );
    assert_failed(&r, &["TLS failure", "has expired"]);
    assert!(expired.received().is_empty() && wrong_name.received().is_empty());
    assert_eq!(good.received().len(), 1);

    // tls_verify = false: the wrong name is accepted (the session is still encrypted).
    let r = test_email(
        &h,
        json!({ "smtp": { "port": wrong_name.port, "tls_verify": false } }),
    );
    let t = assert_sent(&r);
    assert!(t.iter().any(|l| l == "TLS connection started"));
    let got = wrong_name.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["tls"], true);
    h.stop();
}

#[test]
fn test_email_over_implicit_tls() {
    let dir = TempDir::new("out-implicit");
    let pki = Pki::new(&dir);
    let sh = Smarthost::tls_with_auth(&dir, "implicit", &pki, "implicit", "PLAIN");
    let plain = Smarthost::start(&dir, "plain", &["--tls", "none"]);
    let h = start_herald(
        &dir,
        &format!(
            "address = \"localhost\"\nport = {}\ntls = \"implicit\"\nca_file = \"{}\"\nauthentication = \"plain\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            sh.port,
            arg(&pki.ca_file)
        ),
    );
    let r = test_email(&h, json!({}));
    let t = assert_sent(&r);
    let text = t.join("\n");
    assert_eq!(t[0], format!("Connection opened: localhost:{}", sh.port));
    // Regression: nothing said the connection was encrypted with implicit TLS.
    assert_eq!(t[1], "TLS connection started", "{text}");
    assert!(
        t[2].starts_with(
            "Certificate: CN=localhost for localhost, issued by CN=herald test CA, expires in "
        ),
        "{text}"
    );
    assert!(
        t[3].starts_with("-> \"220 "),
        "the greeting comes over TLS:\n{text}"
    );
    assert!(!t.contains(&sent("STARTTLS")), "{text}");
    assert_eq!(t.last().unwrap(), "Connection closed", "{text}");
    assert!(t.contains(&sent("AUTH PLAIN [redacted]")), "{text}");
    assert_no_password("transcript", &text);
    let got = sh.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["tls"], true);
    assert_eq!(got[0].1["auth_user"], USER);
    assert!(got[0].0.text().contains(BODY_LINE));

    // implicit TLS against a server that speaks plaintext first: a TLS failure, no password.
    let r = test_email(
        &h,
        json!({ "smtp": { "port": plain.port, "authentication": "none" } }),
    );
    assert_failed(&r, &["TLS failure"]);
    assert!(plain.received().is_empty());
    assert_no_password("unicorn.log", &h.unicorn_log());
    h.stop();
}

#[test]
fn cli_test_email_prints_the_transcript_and_exits_by_the_outcome() {
    let dir = TempDir::new("out-cli");
    let mut sh = Smarthost::start(&dir, "cli", &["--tls", "none"]);
    let h = start_herald(
        &dir,
        &format!("address = \"127.0.0.1\"\nport = {}\n", sh.port),
    );

    let o = h.cli(&["test-email", TO]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(
        out.contains(&format!("Connection opened: 127.0.0.1:{}", sh.port)),
        "{out}"
    );
    assert!(out.contains("-> \"220 "), "{out}");
    assert!(
        out.contains(&sent(&format!("MAIL FROM:<{NOREPLY}>"))),
        "{out}"
    );
    assert!(out.contains(&sent(&format!("RCPT TO:<{TO}>"))), "{out}");
    assert!(out.contains(&format!("test email to {TO}: sent")), "{out}");
    assert_eq!(sh.received().len(), 1);

    // Not an address, or one that tries to smuggle a command: refused before any connection.
    for bad in [
        "not-an-address",
        "victim@example.org>\r\nRCPT TO:<other@example.org",
    ] {
        let o = h.cli(&["test-email", bad]);
        assert_eq!(o.status.code(), Some(1), "{bad:?}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("is not an email address"),
            "{bad:?}: {}",
            stderr(&o)
        );
        assert!(!stdout(&o).contains("Connection opened"), "{}", stdout(&o));
    }

    // The server is gone: exit 1, the error on stderr, what happened on stdout.
    sh.peer.kill();
    let o = h.cli(&["test-email", TO]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("test email to {TO} failed"))
            && err.contains("refused the connection"),
        "{err}"
    );
    assert!(stdout(&o).contains("Connection opened"), "{}", stdout(&o));
    assert_eq!(sh.received().len(), 1);
    h.stop();
}

/// Regression: a test email with a settings overlay could point smtp.address and smtp.port at
/// another server with smtp.tls off and keep the saved password: a fake server received it in
/// AUTH PLAIN. The saved password now goes only where it was saved for.
#[test]
fn the_saved_password_never_follows_an_overlay_to_another_server() {
    let dir = TempDir::new("out-exfiltrate");
    let pki = Pki::new(&dir);
    let sh = Smarthost::tls_with_auth(&dir, "auth", &pki, "starttls", "PLAIN,LOGIN");
    let h = start_herald(
        &dir,
        &format!(
            "address = \"localhost\"\nport = {}\ntls = \"starttls-required\"\nca_file = \"{}\"\nauthentication = \"plain\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            sh.port,
            arg(&pki.ca_file)
        ),
    );
    // The attacker's server: it would take any connection.
    let evil = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    evil.set_nonblocking(true).unwrap();
    let evil_port = evil.local_addr().unwrap().port();
    for overlay in [
        json!({"smtp": {"address": "127.0.0.1", "port": evil_port.to_string(), "tls": "off"}}),
        json!({"smtp": {"port": evil_port.to_string()}}),
        json!({"smtp": {"tls_verify": false}}),
        json!({"smtp": {"authentication": "login"}}),
        json!({"smtp": {"address": "127.0.0.1", "password": "********"}}),
    ] {
        let (code, body) = h.control_request(
            "POST",
            "/manage/v1/email/test",
            &[],
            Some(&json!({"to": TO, "settings": overlay}).to_string()),
        );
        assert_eq!(code, 400, "{overlay}: {body}");
        let j: Json = serde_json::from_str(&body).unwrap();
        let e = j["errors"]["smtp.password"].as_str().unwrap();
        assert!(
            e.starts_with("type the password to test with these settings"),
            "{e}"
        );
        assert!(!body.contains(PASSWORD));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        evil.accept().is_err(),
        "nothing connected to the other server"
    );
    // The saved settings themselves, or an overlay that leaves the path alone, still test.
    assert_sent(&test_email(&h, json!({})));
    assert_sent(&test_email(
        &h,
        json!({"smtp": {"domain": "other.example"}}),
    ));
    // With the password typed, the test goes wherever it is pointed.
    evil.set_nonblocking(false).unwrap();
    let connected = std::thread::spawn(move || evil.accept().map(|_| ()));
    let (code, body) = h.control_request(
        "POST",
        "/manage/v1/email/test",
        &[],
        Some(
            &json!({"to": TO, "settings": {"smtp": {"address": "127.0.0.1", "port": evil_port.to_string(), "tls": "off", "password": "typed-again"}}})
                .to_string(),
        ),
    );
    assert_eq!(code, 200, "{body}");
    connected
        .join()
        .unwrap()
        .expect("the test connects when the password is typed");
    h.stop();
}
