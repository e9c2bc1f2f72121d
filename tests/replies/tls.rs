//! A webhook served over HTTPS by the application's own CA: trusted only through
//! `replies.ca_file`, never by luck.

use super::common::*;
use crate::outbound::common::{Pki, arg};
use std::time::Duration;

/// The config of [`herald_config`] with the webhook at `url` and `replies.ca_file` set.
fn config(sink_port: u16, url: &str, ca_file: &str) -> String {
    test_config(&format!(
        "\n[smtp]\nenabled = true\naddress = \"127.0.0.1\"\nport = {sink_port}\ntls = \"off\"\n\n[replies]\nwebhook_url = \"{url}\"\nwebhook_secret = \"{SECRET}\"\nca_file = \"{ca_file}\"\n"
    ))
}

#[test]
fn a_webhook_with_an_internal_ca_is_trusted_only_through_replies_ca_file() {
    let dir = TempDir::new("replies-ca");
    let pki = Pki::new(&dir);
    let (cert, key) = pki.leaf("hook", &["127.0.0.1"], false);
    let hook = Webhook::start_with(&dir, "hook", 0, &["204"], Some((&cert, &key)));
    let url = format!("https://127.0.0.1:{}/hook", hook.port);
    let sink_port = free_port();
    let sink = Sink::start(&dir, "sink", sink_port, &[]);
    let cfg = dir.write("herald.toml", &config(sink_port, &url, ""));
    let mut h = Herald::start(Some(&cfg), &dir.join("data"));
    let smtp = h.smtp_port();
    let n = notify_with(&h, &sink, "issue", 12, 3);
    let mail = n.reply("<ca-1@client.example>", &[], "Signed by our own CA.");
    let id = format!("{}-1", swaks(&dir, smtp, SENDER, &n.reply_to, &mail));

    // The system's roots do not know the CA: the reply waits, and metroplex.log says why.
    let warn = wait_for("the failed attempt", WAIT, || {
        metroplex_lines(&h)
            .into_iter()
            .find(|l| l.level == "WARN" && l.text.starts_with(&format!("{id}: webhook: ")))
            .map(|l| l.text)
    });
    assert!(warn.contains("certificate"), "{warn}");
    assert_eq!(record(&h, &id)["status"], "pending");
    assert!(hook.requests().is_empty(), "nothing reached the webhook");
    h.stop();

    // With the CA in replies.ca_file (the changed file is imported at the next boot), the
    // reply goes, signed, once.
    std::fs::write(&cfg, config(sink_port, &url, arg(&pki.ca_file))).unwrap();
    let h = Herald::start(Some(&cfg), &dir.join("data"));
    let rec = wait_final(&h, &id, Duration::from_secs(60));
    assert_eq!(rec["status"], "processed", "{rec:#}");
    let got = hook.wait_requests(1, WAIT);
    assert_eq!(got.len(), 1, "{got:#?}");
    got[0].assert_signed();
    assert_eq!(got[0].body["body"], "Signed by our own CA.");

    // A CA file that is not a PEM file is refused by the validator, with the key named.
    let o = h.cli(&[
        "config",
        "set",
        "replies.ca_file",
        arg(&cert.with_extension("key")),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("replies.ca_file") && e.contains("no PEM certificate"),
        "{e}"
    );
    h.stop();
}
