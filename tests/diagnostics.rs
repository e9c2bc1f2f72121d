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
        "== Mail flow\n",
        "  OK    inbound listener",
        "showed the configured certificate",
        "  FAIL  SMTP server",
        "send a test email from Email settings",
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

    // The audit page names who saved what: here the CLI, over the control socket.
    let jar = dir.join("jar");
    session_id(&h, &cacert, &jar);
    let (code, page) = curl(&h, &cacert, &["-b", jar.to_str().unwrap()], "/setup/audit");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("control socket (CLI)"), "{page}");
    assert!(
        page.contains("saved settings version 2: smtp.domain"),
        "{page}"
    );

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

/// Signs in over HTTPS with curl; the session cookie's value.
fn session_id(h: &Herald, cacert: &std::path::Path, jar: &std::path::Path) -> String {
    let jar = jar.to_str().unwrap();
    let (code, page) = curl(h, cacert, &["-c", jar, "-b", jar], "/setup/login");
    assert_eq!(code, 200);
    let token = page
        .split("name=\"_login\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let (code, _) = curl(
        h,
        cacert,
        &[
            "-c",
            jar,
            "-b",
            jar,
            "-H",
            "Sec-Fetch-Site: same-origin",
            "--data-urlencode",
            &format!("_login={token}"),
            "--data-urlencode",
            &format!("password={}", h.initial_password()),
            "--data-urlencode",
            "next=/setup/settings",
        ],
        "/setup/login",
    );
    assert_eq!(code, 303);
    std::fs::read_to_string(jar)
        .unwrap()
        .lines()
        .find(|l| l.contains("__Host-herald-session"))
        .and_then(|l| l.split('\t').next_back())
        .expect("a session cookie")
        .to_string()
}

/// Every file under `dir`, with its path relative to it.
fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_support_bundle_holds_the_logs_and_the_report_and_no_secret_in_any_form() {
    use crate::outbound::common::*;
    let dir = TempDir::new("bundle");
    let pki = Pki::new(&dir);
    let (cert, key) = pki.leaf("inbound", &["herald.test", "reply.herald.test"], false);
    let sh = Smarthost::tls_with_auth(&dir, "auth", &pki, "starttls", "PLAIN");
    let cfg = dir.write(
        "herald.toml",
        &test_config(&format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"\n\n[smtp]\nenabled = true\naddress = \"localhost\"\nport = {}\ntls = \"starttls-required\"\nca_file = \"{}\"\nauthentication = \"plain\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            arg(&cert),
            arg(&key),
            sh.port,
            arg(&pki.ca_file)
        )),
    );
    let mut h = Herald::start(Some(&cfg), &dir.join("data"));
    // Something in every log: a test email's conversation (unicorn.log, AUTH PLAIN with the
    // password), a received reply (mail.log, metroplex.log), a session.
    let r = test_email(&h, serde_json::json!({}));
    assert_eq!(r["ok"], true, "{r:#}");
    let port = h.smtp_port();
    let to = h.reply_address("issue", 42, 7);
    let mut swaks = std::process::Command::new("swaks");
    swaks.args([
        "--server",
        &format!("127.0.0.1:{port}"),
        "--to",
        &to,
        "--body",
        "Fixed, thanks.",
    ]);
    let sent = run_with_deadline(swaks);
    assert!(stdout(&sent).contains("250 2.0.0"), "{}", stdout(&sent));
    let cacert = fetch_cert(&h, &dir);
    let session = session_id(&h, &cacert, &dir.join("jar"));

    // Over the control socket with the CLI, and over HTTPS with the manage credentials.
    let from_cli = dir.join("cli.tar.gz");
    let o = h.cli(&["bundle", "-o", from_cli.to_str().unwrap()]);
    assert!(o.status.success(), "bundle: {}", stderr(&o));
    assert!(stdout(&o).contains("cli.tar.gz ("), "{}", stdout(&o));
    let from_https = dir.join("https.tar.gz");
    let password = h.initial_password();
    let (code, _) = curl(
        &h,
        &cacert,
        &[
            "-u",
            &format!("api_key:{password}"),
            "-o",
            from_https.to_str().unwrap(),
        ],
        "/manage/v1/support-bundle",
    );
    assert_eq!(code, 200);
    let (code, _) = curl(&h, &cacert, &[], "/manage/v1/support-bundle");
    assert_eq!(code, 401, "the bundle needs the manage credentials");
    // The diagnostics page's download, with the session.
    let from_page = dir.join("page.tar.gz");
    let jar = dir.join("jar");
    let (code, _) = curl(
        &h,
        &cacert,
        &[
            "-b",
            jar.to_str().unwrap(),
            "-o",
            from_page.to_str().unwrap(),
        ],
        "/setup/support-bundle",
    );
    assert_eq!(code, 200);
    assert!(
        std::fs::read(&from_page)
            .unwrap()
            .starts_with(&[0x1f, 0x8b]),
        "gzip"
    );

    let key_pem = std::fs::read_to_string(&key).unwrap();
    let key_lines: Vec<&str> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect();
    let mut secrets: Vec<(String, String)> = password_forms(USER, PASSWORD)
        .into_iter()
        .map(|f| ("smtp.password".to_string(), f))
        .collect();
    for (what, s) in [
        ("console password", password.clone()),
        (
            "basic credentials",
            base64(format!("api_key:{password}").as_bytes()),
        ),
        ("api.token", h.secret("api.token")),
        ("replies.webhook_secret", h.secret("replies.webhook_secret")),
        ("session id", session.clone()),
    ] {
        if s.len() >= 8 {
            secrets.push((what.to_string(), s));
        }
    }
    for l in &key_lines {
        secrets.push(("private key".to_string(), l.to_string()));
    }
    for (n, tarball) in [from_cli, from_https, from_page].iter().enumerate() {
        let out = dir.join(&format!("unpacked-{n}"));
        std::fs::create_dir_all(&out).unwrap();
        let mut tar = std::process::Command::new("tar");
        tar.arg("-xzf").arg(tarball).arg("-C").arg(&out);
        let t = run_with_deadline(tar);
        assert!(t.status.success(), "tar: {}", stderr(&t));
        let got = files(&out);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "diagnostics.txt",
            "enterprise-manage-logs/unicorn.log",
            "mail-replies/metroplex.log",
            "mail.log",
            "settings.json",
        ] {
            assert!(names.contains(&want), "{want} not in the bundle: {names:?}");
        }
        let text = |name: &str| {
            String::from_utf8_lossy(&got.iter().find(|(n, _)| n == name).unwrap().1).into_owned()
        };
        assert!(text("enterprise-manage-logs/unicorn.log").contains("AUTH PLAIN [redacted]"));
        assert!(
            text("mail.log").contains(&format!("to=<{to}>")),
            "the received reply is in mail.log"
        );
        let report = text("diagnostics.txt");
        assert!(report.starts_with("herald diagnostics, "));
        // The smarthost check names the certificate it was shown, and its expiry.
        assert!(
            report.contains("  OK    SMTP server")
                && report.contains("; its certificate: CN=localhost"),
            "{report}"
        );
        assert!(report.contains("expires in "), "{report}");
        let settings: serde_json::Value = serde_json::from_str(&text("settings.json")).unwrap();
        assert_eq!(
            settings["applied"]["settings"]["smtp"]["password"], "********",
            "{settings:#}"
        );
        for (file, bytes) in &got {
            let content = String::from_utf8_lossy(bytes);
            for (what, s) in &secrets {
                assert!(
                    !content.contains(s.as_str()),
                    "{what} in {file} of the bundle"
                );
            }
        }
    }
    h.stop();
}

/// `/metrics` through `tests/peers/metrics_check.py` (prometheus_client's parser and herald's
/// rules); the samples, as (name, labels, value).
fn checked_metrics(text: &str) -> Vec<(String, serde_json::Value, f64)> {
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/metrics_check.py"
    ));
    let out = run_with_input(cmd, text.as_bytes());
    assert!(
        out.status.success(),
        "metrics_check: {}\n{text}",
        stderr(&out)
    );
    stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["name"].as_str().unwrap().to_string(),
                v["labels"].clone(),
                v["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn sample(
    samples: &[(String, serde_json::Value, f64)],
    name: &str,
    labels: serde_json::Value,
) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == labels)
        .unwrap_or_else(|| panic!("no {name} {labels} in {samples:?}"))
        .2
}

#[test]
fn metrics_are_valid_prometheus_text_and_count_what_happened() {
    let dir = TempDir::new("metrics");
    let cfg = dir.write("herald.toml", &inbound_config(""));
    let mut h = Herald::start(Some(&cfg), &dir.join("data"));
    let port = h.smtp_port();
    let to = h.reply_address("issue", 42, 7);
    let swaks = |args: &[&str]| {
        let mut cmd = std::process::Command::new("swaks");
        cmd.args(["--server", &format!("127.0.0.1:{port}")])
            .args(args);
        stdout(&run_with_deadline(cmd))
    };
    // One accepted over STARTTLS, one refused at RCPT, one to a no-reply address.
    assert!(swaks(&["--to", &to, "--tls", "--body", "Fixed."]).contains("250 2.0.0"));
    assert!(
        swaks(&["--to", "someone@elsewhere.example", "--quit-after", "RCPT"]).contains("550 5.7.1")
    );
    assert!(swaks(&["--to", "x@noreply.herald.test", "--body", "hi"]).contains("250 2.0.0"));

    let (code, text) = h.control_request("GET", "/metrics", &[], None);
    assert_eq!(code, 200, "{text}");
    let s = checked_metrics(&text);
    let none = serde_json::json!({});
    assert_eq!(sample(&s, "herald_smtpd_connects_total", none.clone()), 3.0);
    assert_eq!(
        sample(&s, "herald_smtpd_tls_connections_total", none.clone()),
        1.0
    );
    assert_eq!(
        sample(&s, "herald_smtpd_messages_processed_total", none.clone()),
        2.0
    );
    assert_eq!(
        sample(
            &s,
            "herald_smtpd_messages_rejected_total",
            serde_json::json!({"code": "550"})
        ),
        1.0
    );
    assert_eq!(
        sample(&s, "herald_smtpd_messages_discarded_total", none.clone()),
        1.0
    );
    assert_eq!(
        sample(
            &s,
            "herald_queue_messages",
            serde_json::json!({"status": "queued"})
        ),
        0.0
    );
    assert!(sample(&s, "herald_uptime_seconds", none.clone()) >= 0.0);
    assert!(sample(&s, "herald_data_disk_free_bytes", none) > 0.0);
    assert!(
        text.contains("herald_replies{status=\"pending\",reason=\"\"} 1"),
        "{text}"
    );

    // Over HTTPS with the manage credentials; without them, 401.
    let cacert = fetch_cert(&h, &dir);
    let basic = format!("api_key:{}", h.initial_password());
    let (code, text) = curl(&h, &cacert, &["-u", &basic], "/metrics");
    assert_eq!(code, 200, "{text}");
    checked_metrics(&text);
    let (code, _) = curl(&h, &cacert, &[], "/metrics");
    assert_eq!(code, 401);

    // The Replies page shows the refused RCPT too, from mail.log.
    let jar = dir.join("jar");
    session_id(&h, &cacert, &jar);
    let (code, page) = curl(
        &h,
        &cacert,
        &["-b", jar.to_str().unwrap()],
        "/setup/replies",
    );
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Refused at RCPT"), "{page}");
    assert!(page.contains("someone@elsewhere.example"), "{page}");
    assert!(page.contains("550 5.7.1"), "{page}");
    h.stop();
}

/// dnsmasq on a loopback port with the records of `conf` (dnsmasq.conf lines) and nothing else:
/// no upstream, no /etc/hosts.
struct Dnsmasq {
    _peer: Peer,
    addr: std::net::SocketAddr,
}

impl Dnsmasq {
    fn start(dir: &TempDir, tag: &str, conf: &str) -> Dnsmasq {
        let port = free_udp_port();
        let file = dir.write(
            &format!("{tag}.conf"),
            &format!(
                "port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\nlog-queries\n{conf}\n"
            ),
        );
        // Its own time limit, should the test binary be killed.
        let mut cmd = std::process::Command::new("timeout");
        cmd.arg("120")
            .arg(tool("dnsmasq"))
            .arg("--keep-in-foreground")
            .arg("--log-facility=-")
            .arg("--user=root")
            .arg(format!(
                "--pid-file={}",
                dir.join(&format!("{tag}.pid")).display()
            ))
            .arg(format!("--conf-file={}", file.display()));
        let peer = Peer::spawn(
            &format!("dnsmasq-{tag}"),
            cmd,
            dir.join(&format!("{tag}.log")),
        );
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Up once it answers anything.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while smol::block_on(herald::dns::resolve(
            &[addr],
            "ready.invalid",
            herald::dns::Kind::A,
        ))
        .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "dnsmasq did not start:\n{}",
                peer.output()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Dnsmasq { _peer: peer, addr }
    }
}

/// A UDP port free on loopback now (TCP on the same number is what dnsmasq also binds).
fn free_udp_port() -> u16 {
    loop {
        let p = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// A report section's checks as (name, "STATE found", fix).
fn rows_of(s: &herald::diagnostics::Section) -> Vec<(String, String, String)> {
    s.rows
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                format!("{} {}", c.state.label(), c.found),
                c.fix.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn dns_text(servers: &[std::net::SocketAddr], hostname: &str) -> Vec<(String, String, String)> {
    rows_of(&smol::block_on(herald::diagnostics::dns_section(
        servers, hostname,
    )))
}

fn row<'a>(rows: &'a [(String, String, String)], name: &str) -> &'a (String, String, String) {
    rows.iter()
        .find(|r| r.0 == name)
        .unwrap_or_else(|| panic!("no {name} in {rows:?}"))
}

#[test]
fn dns_checks_against_a_real_dns_server_right_wrong_wildcard_missing_and_truncated() {
    let dir = TempDir::new("dns");
    // Hosts files give several A records to one name (the "big" one truncates over UDP).
    let big: String = (1..=40)
        .map(|n| format!("10.0.0.{n} reply.big.test\n"))
        .collect();
    let hosts = dir.write("hosts", &format!("127.0.0.1 big.test\n{big}"));
    let dns = Dnsmasq::start(
        &dir,
        "dns",
        &format!(
            "addn-hosts={}\n\
             host-record=herald.test,127.0.0.1\n\
             host-record=reply.herald.test,127.0.0.1\n\
             mx-host=reply.herald.test,herald.test,10\n\
             mx-host=noreply.herald.test,herald.test,10\n\
             host-record=wrong.test,127.0.0.1\n\
             host-record=reply.wrong.test,192.0.2.99\n\
             mx-host=reply.wrong.test,mail.elsewhere.test,10\n\
             address=/wild.test/127.0.0.2\n\
             mx-host=reply.wild.test,wild.test,10\n\
             mx-host=noreply.wild.test,wild.test,10\n\
             mx-host=reply.big.test,big.test,10\n\
             mx-host=noreply.big.test,big.test,10",
            hosts.display()
        ),
    );
    let servers = [dns.addr];

    // Right: every check passes.
    let right = dns_text(&servers, "herald.test");
    for name in [
        "A of herald.test",
        "A of reply.herald.test",
        "MX of reply.herald.test",
        "MX of noreply.herald.test",
    ] {
        assert!(row(&right, name).1.starts_with("OK "), "{name}: {right:?}");
    }
    assert_eq!(
        row(&right, "MX of reply.herald.test").1,
        "OK MX 10 herald.test."
    );

    // Wrong: reply.<hostname> points elsewhere, its MX names another host, noreply has none.
    let wrong = dns_text(&servers, "wrong.test");
    let r = row(&wrong, "A of reply.wrong.test");
    assert!(r.1.starts_with("WARN 192.0.2.99"), "{r:?}");
    let r = row(&wrong, "MX of reply.wrong.test");
    assert_eq!(r.1, "FAIL MX 10 mail.elsewhere.test.");
    assert_eq!(
        r.2,
        "change it to the record: reply.wrong.test. 3600 IN MX 10 wrong.test."
    );
    let r = row(&wrong, "MX of noreply.wrong.test");
    assert!(r.1.starts_with("FAIL no MX record"), "{r:?}");
    assert_eq!(
        r.2,
        "create the record: noreply.wrong.test. 3600 IN MX 10 wrong.test."
    );

    // Wildcard: *.wild.test answers for reply.wild.test, as the guide allows.
    let wild = dns_text(&servers, "wild.test");
    let r = row(&wild, "A of reply.wild.test");
    assert_eq!(r.1, "OK 127.0.0.2 (from the wildcard *.wild.test)");

    // Missing: nothing at all for the name.
    let missing = dns_text(&servers, "missing.test");
    let r = row(&missing, "A of missing.test");
    assert!(r.1.starts_with("FAIL no A or AAAA record"), "{r:?}");
    assert!(r.2.contains("missing.test. 3600 IN A"), "{r:?}");
    assert!(
        row(&missing, "A of reply.missing.test")
            .2
            .contains("*.missing.test. 3600 IN A")
    );

    // Truncated: 40 A records do not fit a UDP answer; the check asks again over TCP.
    let big = dns_text(&servers, "big.test");
    let r = row(&big, "A of reply.big.test");
    assert!(
        r.1.contains("10.0.0.40") && r.1.contains("over TCP"),
        "{r:?}"
    );

    // No server answers: "could not check", not a failure of the records.
    let silent = dns_text(&["127.0.0.1:9".parse().unwrap()], "herald.test");
    let r = row(&silent, "MX of reply.herald.test");
    assert!(
        r.1.starts_with("WARN could not check: no DNS server answered"),
        "{r:?}"
    );
    assert!(r.2.contains("diagnostics.nameservers"), "{r:?}");

    // Through the product: herald asks the configured server, and says so in its report.
    let cfg = dir.write(
        "herald.toml",
        &inbound_config(&format!(
            "\n[diagnostics]\nnameservers = \"{}\"\n",
            dns.addr
        )),
    );
    let h = Herald::start(Some(&cfg), &dir.join("data"));
    let text = report(&h);
    assert!(text.contains("== DNS\n"), "{text}");
    assert!(text.contains(&dns.addr.to_string()), "{text}");
    assert!(text.contains("  OK    MX of reply.herald.test"), "{text}");
    h.stop();
}

#[test]
fn the_port_check_tells_herald_from_another_mta_a_closed_port_a_silent_firewall_and_another_certificate()
 {
    use crate::outbound::common::{PEER_SECONDS, Pki, running_as_root};
    let dir = TempDir::new("port-check");
    let pki = Pki::new(&dir);
    let (cert, key) = pki.leaf("inbound", &["herald.test", "reply.herald.test"], false);
    let cfg = dir.write(
        "herald.toml",
        &inbound_config(&format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            key.display()
        )),
    );
    let mut h = Herald::start(Some(&cfg), &dir.join("data"));
    let port = h.smtp_port();
    // Another MTA (Postfix's smtp-sink) on another loopback address, same port number.
    let mut sink = std::process::Command::new("timeout");
    sink.arg(PEER_SECONDS).arg(tool("smtp-sink"));
    if running_as_root() {
        sink.args(["-u", "nobody"]);
    }
    sink.arg(format!("127.0.0.2:{port}")).arg("8");
    let _sink = Peer::spawn("smtp-sink", sink, dir.join("sink.log"));
    let dns = Dnsmasq::start(
        &dir,
        "dns",
        "host-record=reply.herald.test,127.0.0.1\n\
         host-record=reply.foreign.test,127.0.0.2\n\
         host-record=reply.closed.test,127.0.0.3\n\
         host-record=reply.silent.test,127.0.0.4",
    );
    // A silent firewall: a listener whose accept queue is full, so the kernel drops further
    // SYNs without an answer, as a firewall that drops does.
    let mut silent = std::process::Command::new("timeout");
    silent.arg(PEER_SECONDS).args([
        "python3",
        "-c",
        "import socket, sys, time\n\
         s = socket.socket(); s.bind(('127.0.0.4', int(sys.argv[1]))); s.listen(0)\n\
         held = []\n\
         for _ in range(2):\n    c = socket.socket(); c.setblocking(False)\n    c.connect_ex(('127.0.0.4', int(sys.argv[1]))); held.append(c)\n\
         time.sleep(0.5); print('ready', flush=True); time.sleep(600)",
        &port.to_string(),
    ]);
    let silent = Peer::spawn("silent listener", silent, dir.join("silent.log"));
    let servers = [dns.addr];
    let leaf = rustls::pki_types::CertificateDer::from(
        rustls::pki_types::pem::PemObject::from_pem_file(&cert)
            .map(|c: rustls::pki_types::CertificateDer| c.to_vec())
            .unwrap(),
    );
    let rows = |host: &str, leaf: &rustls::pki_types::CertificateDer| {
        rows_of(&smol::block_on(herald::diagnostics::port_section(
            &servers, host, port, leaf,
        )))
    };
    let name = format!("port {port} at 127.0.0.1");
    let ok = rows("herald.test", &leaf);
    let r = row(&ok, &name);
    assert!(
        r.1.starts_with("OK ") && r.1.contains("showed the configured certificate"),
        "{r:?}"
    );

    // The foreign MTA: its banner is not herald's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.2", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "smtp-sink did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let foreign = rows("foreign.test", &leaf);
    let r = row(&foreign, &format!("port {port} at 127.0.0.2"));
    assert!(
        r.1.starts_with("FAIL ") && r.1.contains("not herald's banner"),
        "{r:?}"
    );
    assert!(r.2.contains("another mail server answers there"), "{r:?}");

    // Nothing listens: refused.
    let closed = rows("closed.test", &leaf);
    let r = row(&closed, &format!("port {port} at 127.0.0.3"));
    assert!(r.1.starts_with("FAIL connection refused"), "{r:?}");
    assert!(r.2.contains("inbound.listen"), "{r:?}");

    // Dropped without an answer: told apart from refused, and what to open says so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !silent.output().contains("ready") {
        assert!(std::time::Instant::now() < deadline, "{}", silent.output());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let dropped = rows("silent.test", &leaf);
    let r = row(&dropped, &format!("port {port} at 127.0.0.4"));
    assert!(
        r.1.starts_with("FAIL no answer from 127.0.0.4") && r.1.contains("within 10 s"),
        "{r:?}"
    );
    assert!(r.2.contains("a firewall drops the connection"), "{r:?}");

    // This herald, but the certificate expected is another's: another herald or a proxy.
    let other = std::fs::read(&pki.ca_file).unwrap();
    let other = rustls::pki_types::CertificateDer::from(
        rustls::pki_types::pem::PemObject::from_pem_slice(&other)
            .map(|c: rustls::pki_types::CertificateDer| c.to_vec())
            .unwrap(),
    );
    let r = rows("herald.test", &other);
    let r = row(&r, &name);
    assert!(
        r.1.starts_with("FAIL ") && r.1.contains("another certificate"),
        "{r:?}"
    );
    h.stop();
}
