//! Every rule of SPEC §1, with good and bad values, through the one validator.

use super::*;

fn dev() -> Settings {
    let mut s = Settings::defaults(Profile::Dev);
    s.replies.webhook_secret = "0123456789abcdef0123".into();
    s.api.token = "0123456789abcdef0123".into();
    s
}

fn set(key: &str, v: &str) -> Result<Settings, Errors> {
    let mut s = dev();
    s.update(&[(key.into(), Value::Str(v.into()))]).map(|_| s)
}

fn set_all(pairs: &[(&str, &str)]) -> Result<Settings, Errors> {
    let mut s = dev();
    let changes: Vec<(String, Value)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
        .collect();
    s.update(&changes).map(|_| s)
}

/// The error for `key`, which must exist and name the rule.
fn err(r: Result<Settings, Errors>, key: &str) -> String {
    let e = r.expect_err("must be refused");
    e.0.get(key)
        .unwrap_or_else(|| panic!("no error for {key}: {e:?}"))
        .clone()
}

fn good(key: &str, values: &[&str]) {
    for v in values {
        set(key, v).unwrap_or_else(|e| panic!("{key}={v:?} refused: {e}"));
    }
}

fn bad(key: &str, values: &[&str], rule_words: &str) {
    for v in values {
        let msg = err(set(key, v), key);
        assert!(
            msg.contains(rule_words),
            "{key}={v:?}: message {msg:?} does not state the rule ({rule_words:?})"
        );
    }
}

#[test]
fn every_key_round_trips_through_get_and_set() {
    let s = dev();
    for def in KEYS {
        let v = s
            .get(def.key)
            .unwrap_or_else(|| panic!("no getter for {}", def.key));
        if def.key == "console.password" || (def.secret && v == Value::Str(String::new())) {
            continue; // hashed on set / an empty secret is not a valid input
        }
        let mut t = s.clone();
        t.set(def.key, v.clone())
            .unwrap_or_else(|e| panic!("{} does not take its own value: {e}", def.key));
        assert_eq!(t.get(def.key), Some(v), "{}", def.key);
    }
    assert_eq!(s.get("no.such"), None);
}

#[test]
fn defaults_match_the_spec_table() {
    let b = Settings::defaults(Profile::Board);
    assert_eq!(b.inbound.listen, "0.0.0.0:25");
    assert_eq!(b.console.listen, "0.0.0.0:8443");
    assert_eq!(b.hostname, "", "hostname is required in the board config");
    let d = Settings::defaults(Profile::Dev);
    assert_eq!(d.hostname, "localhost");
    assert_eq!(d.inbound.listen, "127.0.0.1:2525");
    assert_eq!(d.console.listen, "127.0.0.1:8443");
    for s in [&b, &d] {
        assert!(!s.smtp.enabled);
        assert_eq!(s.smtp.port, 587);
        assert_eq!(s.smtp.authentication, Auth::None);
        assert_eq!(s.smtp.tls, TlsMode::StarttlsAuto);
        assert!(s.smtp.tls_verify);
        assert!(s.smtp.discard_to_noreply);
        assert_eq!(s.smtp.support_type, SupportType::Url);
        assert!(!s.inbound.tls_enforced);
        assert_eq!(s.inbound.max_message_size, 26_214_400);
        assert_eq!(s.inbound.max_connections, 256);
    }
    assert_eq!(d.noreply_address(), "noreply@localhost");
    assert_eq!(d.reply_domain(), "reply.localhost");
    for def in KEYS {
        let shown = def.dev_default.unwrap_or(def.default);
        if let (Some(v), false) = (d.get(def.key), def.secret || shown.starts_with('(')) {
            let v = v.to_string();
            assert!(
                v == shown || (def.key == "smtp.noreply_address" && v == "noreply@localhost"),
                "{}: table says {shown:?}, model says {v:?}",
                def.key
            );
        }
    }
}

#[test]
fn unknown_key_is_refused_with_its_name() {
    let e = err(set("smtp.adress", "x"), "smtp.adress");
    assert_eq!(e, "unknown setting");
}

#[test]
fn cr_lf_nul_refused_in_every_text_value() {
    for def in KEYS.iter().filter(|d| d.kind == Kind::Text) {
        for evil in ["a\rb", "a\nb", "a\0b", "mail.example.com\r\nRCPT TO:<x@y>"] {
            let msg = err(set(def.key, evil), def.key);
            assert!(msg.contains("CR, LF or NUL"), "{}: {msg}", def.key);
        }
    }
}

#[test]
fn hostname_rule() {
    good(
        "hostname",
        &[
            "ghe.example.com",
            "localhost",
            "a-b.c9.example",
            "EXAMPLE.com.",
        ],
    );
    assert_eq!(
        set("hostname", "Mail.Example.COM.").unwrap().hostname,
        "mail.example.com"
    );
    bad(
        "hostname",
        &[
            "",
            "-a.example.com",
            "a..b",
            "a_b.example.com",
            "10.0.0.68",
            "::1",
            "x.123",
            &"a".repeat(64),
        ],
        "fully qualified host name",
    );
}

#[test]
fn smtp_enabled_and_address() {
    good("smtp.enabled", &["false"]);
    good("smtp.discard_to_noreply", &["true", "false"]);
    bad("smtp.discard_to_noreply", &["maybe"], "true or false");
    bad("smtp.enabled", &["yes", "1", "TRUE", ""], "true or false");
    good(
        "smtp.address",
        &["smtp.example.com", "192.0.2.1", "2001:db8::1", ""],
    );
    bad(
        "smtp.address",
        &["smtp example.com", "smtp.example.com:25", "a_b"],
        "host name or IP address",
    );
    let msg = err(set("smtp.enabled", "true"), "smtp.address");
    assert!(msg.contains("required when smtp.enabled"), "{msg}");
    set_all(&[
        ("smtp.enabled", "true"),
        ("smtp.address", "smtp.example.com"),
    ])
    .unwrap();
}

#[test]
fn smtp_port() {
    good("smtp.port", &["1", "25", "587", "65535", " 465 "]);
    bad(
        "smtp.port",
        &["0", "65536", "-1", "abc", "", "5.5"],
        "1 to 65535",
    );
    let mut s = dev();
    s.update(&[("smtp.port".into(), Value::Int(2525))]).unwrap();
    assert_eq!(s.smtp.port, 2525);
    assert!(
        s.update(&[("smtp.port".into(), Value::Bool(true))])
            .is_err()
    );
}

#[test]
fn smtp_domain() {
    good("smtp.domain", &["", "example.com"]);
    bad("smtp.domain", &["exa mple.com", "ex_ample"], "host name");
    assert_eq!(dev().ehlo_domain(), "localhost");
    assert_eq!(
        set("smtp.domain", "example.com").unwrap().ehlo_domain(),
        "example.com"
    );
}

#[test]
fn authentication_needs_username_and_password() {
    good("smtp.authentication", &["none"]);
    bad(
        "smtp.authentication",
        &["PLAIN", "xoauth2", ""],
        "none, plain, login, cram-md5",
    );
    for auth in ["plain", "login", "cram-md5", "cram_md5"] {
        let e = set("smtp.authentication", auth).expect_err("needs credentials");
        assert!(e.0["smtp.username"].contains("required"), "{e}");
        assert!(e.0["smtp.password"].contains("required"), "{e}");
        let e = set_all(&[("smtp.authentication", auth), ("smtp.username", "u")]).unwrap_err();
        assert!(e.0.contains_key("smtp.password") && !e.0.contains_key("smtp.username"));
        set_all(&[
            ("smtp.authentication", auth),
            ("smtp.username", "u"),
            ("smtp.password", "p"),
        ])
        .unwrap();
    }
    assert_eq!(
        set_all(&[
            ("smtp.authentication", "cram_md5"),
            ("smtp.username", "u"),
            ("smtp.password", "p")
        ])
        .unwrap()
        .smtp
        .authentication,
        Auth::CramMd5
    );
}

#[test]
fn tls_choices() {
    good(
        "smtp.tls",
        &["starttls-auto", "starttls-required", "implicit", "off"],
    );
    bad("smtp.tls", &["on", "ssl", "STARTTLS"], "starttls-auto");
    good("smtp.tls_verify", &["true", "false"]);
    bad("smtp.tls_verify", &["no"], "true or false");
}

/// A certificate and its key as PEM files in a fresh temp folder.
fn pem_files(tag: &str) -> (std::path::PathBuf, String, String) {
    let dir = std::env::temp_dir().join(format!("herald-settings-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["mx.example.test".to_string()]).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, signing_key.serialize_pem()).unwrap();
    (dir, c.to_str().unwrap().into(), k.to_str().unwrap().into())
}

#[test]
fn pem_paths_must_hold_what_they_name() {
    let (dir, cert, key) = pem_files("pem");
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let junk = junk.to_str().unwrap();
    good("smtp.ca_file", &["", &cert]);
    bad("smtp.ca_file", &["relative.pem"], "absolute path");
    bad("smtp.ca_file", &["/no/such/file.pem"], "readable");
    // Regression: /dev/zero was read until memory ran out (a path may be set from the console).
    bad(
        "smtp.ca_file",
        &[dir.to_str().unwrap(), "/dev/zero"],
        "is not a regular file",
    );
    bad("smtp.ca_file", &[junk, &key], "no PEM certificate");
    set_all(&[("inbound.cert_file", &cert), ("inbound.key_file", &key)]).unwrap();
    let msg = err(
        set_all(&[("inbound.cert_file", &cert), ("inbound.key_file", &cert)]),
        "inbound.key_file",
    );
    assert!(msg.contains("no PEM private key"), "{msg}");
    let msg = err(set("inbound.cert_file", &cert), "inbound.key_file");
    assert!(msg.contains("set together"), "{msg}");
    let msg = err(set("inbound.key_file", &key), "inbound.cert_file");
    assert!(msg.contains("set together"), "{msg}");
    bad("inbound.cert_file", &["cert.pem"], "absolute path");
    bad("inbound.key_file", &["/no/such/key.pem"], "readable");
    // A key that belongs to another certificate.
    let (dir2, _, other_key) = pem_files("pem-other");
    let msg = err(
        set_all(&[
            ("inbound.cert_file", &cert),
            ("inbound.key_file", &other_key),
        ]),
        "inbound.key_file",
    );
    assert!(msg.contains("does not fit"), "{msg}");
    assert!(
        !msg.contains("PRIVATE KEY"),
        "no key material in errors: {msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn noreply_address() {
    good(
        "smtp.noreply_address",
        &["noreply@example.com", "no.reply+x@mail.example.com", ""],
    );
    bad(
        "smtp.noreply_address",
        &[
            "noreply",
            "@example.com",
            "a@b@example.com",
            "\"q\"@example.com",
            "a..b@example.com",
            "a@10.0.0.1",
        ],
        "email address",
    );
    assert_eq!(
        set("smtp.noreply_address", "").unwrap().noreply_address(),
        "noreply@localhost"
    );
}

#[test]
fn support_address_follows_support_type() {
    good("smtp.support_type", &["email", "url"]);
    bad("smtp.support_type", &["phone"], "email, url");
    // url is the default type
    good(
        "smtp.support_address",
        &["", "https://support.example.com/", "http://10.0.0.1/help"],
    );
    for v in [
        "support.example.com",
        "ftp://x.example.com",
        "https://",
        "mailto:a@b.c",
    ] {
        let msg = err(set("smtp.support_address", v), "smtp.support_address");
        assert!(msg.contains("http:// or https://"), "{v}: {msg}");
    }
    set_all(&[
        ("smtp.support_type", "email"),
        ("smtp.support_address", "help@example.com"),
    ])
    .unwrap();
    let msg = err(
        set_all(&[
            ("smtp.support_type", "email"),
            ("smtp.support_address", "https://x.example.com"),
        ]),
        "smtp.support_address",
    );
    assert!(msg.contains("email address"), "{msg}");
}

#[test]
fn inbound_keys() {
    good("inbound.listen", &["0.0.0.0:25", "[::]:25", "127.0.0.1:0"]);
    bad(
        "inbound.listen",
        &["0.0.0.0", "localhost:25", ":25", "1.2.3.4:70000"],
        "socket address",
    );
    good("inbound.tls_enforced", &["true", "false"]);
    good(
        "inbound.max_message_size",
        &["1024", "26214400", "268435456"],
    );
    bad(
        "inbound.max_message_size",
        &["1023", "268435457", "ten"],
        "1024 to 268435456",
    );
    good("inbound.max_connections", &["1", "256", "65535"]);
    bad("inbound.max_connections", &["0", "65536"], "1 to 65535");
}

#[test]
fn replies_api_console() {
    good(
        "replies.webhook_url",
        &[
            "",
            "http://127.0.0.1:9000/hook",
            "https://app.example.com/x?y=1",
        ],
    );
    bad(
        "replies.webhook_url",
        &["127.0.0.1:9000", "ftp://x.example.com", "https://a b"],
        "http:// or https://",
    );
    good("replies.webhook_secret", &["0123456789abcdef"]);
    bad(
        "replies.webhook_secret",
        &["short"],
        "at least 16 characters",
    );
    good("api.token", &["0123456789abcdef"]);
    bad(
        "api.token",
        &["", "123456789012345"],
        "at least 16 characters",
    );
    good("console.listen", &["127.0.0.1:8443", "[::1]:0"]);
    bad("console.listen", &["8443"], "socket address");
    let s = set("console.password", "hunter2hunter2").unwrap();
    assert!(s.console.password_hash.starts_with("pbkdf2-sha256$"));
    assert!(crate::crypto::verify_password(
        "hunter2hunter2",
        &s.console.password_hash
    ));
    bad("console.password", &["short"], "at least 8 characters");
}

#[test]
fn secrets_are_masked() {
    let s = set_all(&[
        ("smtp.authentication", "plain"),
        ("smtp.username", "u"),
        ("smtp.password", "s3cret-smtp"),
    ])
    .unwrap();
    let shown = format!("{:?}", s.masked_pairs());
    for secret in ["s3cret-smtp", "0123456789abcdef0123"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert_eq!(s.get_masked("smtp.password"), Some(Value::Str(MASK.into())));
    assert_eq!(
        dev().get_masked("smtp.password"),
        Some(Value::Str(String::new()))
    );
    assert_eq!(s.get_masked("smtp.username"), Some(Value::Str("u".into())));
}

#[test]
fn a_failed_update_changes_nothing() {
    let mut s = dev();
    let before = s.clone();
    let e = s
        .update(&[
            ("smtp.port".into(), Value::Str("2525".into())),
            ("smtp.tls".into(), Value::Str("bogus".into())),
        ])
        .unwrap_err();
    assert!(e.0.contains_key("smtp.tls"));
    assert_eq!(s, before);
}

mod boot_file {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ImportError> {
        parse_file(text, &Settings::defaults(Profile::Board)).map(|(_, s)| s)
    }

    fn invalid(text: &str) -> Vec<(Option<usize>, String, String)> {
        match parse(text) {
            Err(ImportError::Invalid(v)) => v,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_good_file_on_board_defaults() {
        let s = parse(
            "hostname = \"ghe.example.com\"\n[smtp]\nenabled = true\naddress = \"smtp.example.com\"\nport = 25\n[inbound]\ntls_enforced = true\n",
        )
        .unwrap();
        assert_eq!(s.hostname, "ghe.example.com");
        assert!(s.smtp.enabled && s.inbound.tls_enforced);
        assert_eq!(s.smtp.port, 25);
        assert_eq!(s.inbound.listen, "0.0.0.0:25", "board default");
    }

    #[test]
    fn dotted_keys_and_quoted_keys_work_too() {
        let s = parse("hostname = \"h.example.com\"\nsmtp.port = 2525\n\"smtp\".\"domain\" = \"example.com\"\n").unwrap();
        assert_eq!((s.smtp.port, s.smtp.domain.as_str()), (2525, "example.com"));
    }

    #[test]
    fn errors_name_line_key_and_rule() {
        let v = invalid("hostname = \"h.example.com\"\n\n[smtp]\n# comment\nport = 70000\n");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, Some(5));
        assert_eq!(v[0].1, "smtp.port");
        assert!(v[0].2.contains("1 to 65535"), "{:?}", v[0]);
        let shown = ImportError::Invalid(v).to_string();
        assert!(shown.starts_with("line 5: smtp.port: "), "{shown}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_names() {
        let v =
            invalid("hostname = \"h.example.com\"\n[smtp]\nadress = \"x\"\n[nosuch]\nkey = 1\n");
        let names: Vec<_> = v.iter().map(|(l, k, _)| (*l, k.as_str())).collect();
        assert_eq!(
            names,
            vec![(Some(3), "smtp.adress"), (Some(5), "nosuch.key")]
        );
    }

    #[test]
    fn missing_hostname_and_cross_rules() {
        let v = invalid("[smtp]\nauthentication = \"login\"\nusername = \"u\"\n");
        let keys: Vec<_> = v.iter().map(|(_, k, _)| k.as_str()).collect();
        assert!(
            keys.contains(&"hostname") && keys.contains(&"smtp.password"),
            "{v:?}"
        );
        let v = invalid(
            "hostname = \"h.example.com\"\n[smtp]\nsupport_address = \"support.example.com\"\n",
        );
        assert_eq!(v[0].0, Some(3));
        assert!(v[0].2.contains("http:// or https://"));
    }

    #[test]
    fn wrong_types_and_syntax() {
        let v =
            invalid("hostname = \"h.example.com\"\nsmtp.enabled = \"maybe\"\nsmtp.port = [1]\n");
        assert_eq!(v.len(), 2, "{v:?}");
        match parse("hostname = \n") {
            Err(ImportError::Syntax(m)) => assert!(m.contains("line 1"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A syntax error on a line with a secret says where, never what.
        match parse("hostname = \"a.example\"\n[smtp]\npassword = \"SuperSecret123\n") {
            Err(ImportError::Syntax(m)) => {
                assert!(m.contains("line 3"), "{m}");
                assert!(!m.contains("SuperSecret"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secrets_in_the_file_are_taken_and_the_password_hashed() {
        let s = parse(
            "hostname = \"h.example.com\"\n[api]\ntoken = \"tok-0123456789abcdef\"\n[console]\npassword = \"provisioned-pw\"\n",
        )
        .unwrap();
        assert_eq!(s.api.token, "tok-0123456789abcdef");
        assert!(crate::crypto::verify_password(
            "provisioned-pw",
            &s.console.password_hash
        ));
        let text = format!(
            "{:?}",
            invalid("hostname = \"h.example.com\"\nconsole.password = \"x\"\n")
        );
        assert!(
            !text.contains("\"x\""),
            "the refused value is not echoed for secrets: {text}"
        );
    }
}

/// The README's config reference is the one made from KEYS (`make docs` rewrites it).
#[test]
fn readme_config_reference() {
    const START: &str = "<!-- config-reference:start -->\n";
    const END: &str = "<!-- config-reference:end -->";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md lacks the config-reference markers");
    };
    let current = &readme[a + START.len()..b];
    let generated = reference_markdown();
    if std::env::var_os("HERALD_WRITE_README").is_some() {
        let updated = format!("{}{generated}{}", &readme[..a + START.len()], &readme[b..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert_eq!(
        current, generated,
        "README config reference is stale: run `make docs`"
    );
}

/// The appliance's own boot file is valid as shipped.
#[test]
fn board_config_parses() {
    let text = include_str!("../../board/herald.toml");
    let (_, s) = parse_file(text, &Settings::defaults(Profile::Board)).unwrap();
    assert_eq!(s.inbound.listen, "0.0.0.0:25");
    assert_eq!(s.console.listen, "0.0.0.0:8443");
}

#[test]
fn one_bad_value_does_not_hide_the_rules_between_keys() {
    let r = set_all(&[
        ("smtp.port", "not-a-port"),
        ("smtp.authentication", "plain"),
        ("smtp.username", ""),
    ]);
    let e = r.expect_err("must be refused");
    assert!(e.0.contains_key("smtp.port"), "{e:?}");
    assert!(
        e.0.get("smtp.username")
            .is_some_and(|m| m.contains("required because smtp.authentication is plain")),
        "{e:?}"
    );
}
