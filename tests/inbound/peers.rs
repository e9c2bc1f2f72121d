//! Real SMTP clients herald did not write deliver to reply addresses: swaks (plain, STARTTLS,
//! pipelined; the recipient policy; `tls_enforced`), Python's smtplib, `openssl s_client` (and
//! the certificate it is shown), Postfix's smtp-source (many sessions, every message stored and
//! logged exactly once); and pflogsumm reads the mail.log they leave.

use super::common::*;
use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

// ---------------------------------------------------------------------------------------------
// swaks

#[test]
fn swaks_delivers_to_a_reply_address_plain_with_starttls_and_pipelined() {
    let dir = TempDir::new("in-swaks");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 42, 7);

    let mut queued = Vec::new();
    for (mode, extra) in [
        ("plain", None),
        ("tls", Some("--tls")),
        ("pipeline", Some("--pipeline")),
    ] {
        let mid = format!("Message-Id: <swaks-{mode}@client.example>");
        let mut args = vec!["--to", to.as_str(), "--header", mid.as_str()];
        args.extend(extra);
        let o = swaks(port, &args);
        let out = stdout(&o);
        assert!(o.status.success(), "swaks {mode}: {}\n{out}", stderr(&o));
        let line = out
            .lines()
            .find(|l| l.contains("250 2.0.0 Ok: queued as "))
            .unwrap_or_else(|| panic!("swaks {mode}: no queue id:\n{out}"));
        let qid = line.rsplit(' ').next().unwrap().to_string();
        if mode == "tls" {
            assert!(out.contains("220 2.0.0 Ready to start TLS"), "{out}");
            assert!(out.contains("=== TLS started"), "{out}");
        }
        queued.push((mode, qid));
    }

    let replies = h.replies();
    assert_eq!(replies.len(), 3, "{replies:#?}");
    for (mode, qid) in &queued {
        let r = record(&replies, qid);
        assert_eq!(r["id"], format!("{qid}-1"));
        assert_eq!(r["status"], "pending", "{r}");
        assert_eq!(r["from"], SENDER);
        assert_eq!(r["to"], to.as_str());
        assert_eq!(r["tls"], *mode == "tls", "{mode}: {r}");
        assert_eq!(r["message_id"], format!("<swaks-{mode}@client.example>"));
    }
    let log = h.mail_log();
    for (_, qid) in &queued {
        let lines = log_lines_of(&log, qid);
        assert_eq!(lines.len(), 5, "{qid}:\n{log}");
        assert!(
            lines[0].contains(&format!(
                "herald/smtpd[{}]: {qid}: client=unknown[127.0.0.1]",
                h.pid()
            )),
            "{log}"
        );
        assert!(
            lines[1].contains("herald/cleanup[") && lines[1].contains("message-id=<swaks-"),
            "{log}"
        );
        assert!(
            lines[2].contains(&format!("from=<{SENDER}>, size="))
                && lines[2].ends_with("nrcpt=1 (queue active)"),
            "{log}"
        );
        assert!(lines[3].contains(&format!("herald/spool[{}]: {qid}: to=<{to}>, relay=spool, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (queued for reply processing)", h.pid())), "{log}");
        assert!(lines[4].ends_with(&format!("{qid}: removed")), "{log}");
    }
    assert_eq!(
        log.matches("connect from unknown[127.0.0.1]").count(),
        6,
        "3 connects, 3 disconnects:\n{log}"
    );
    assert!(log.contains("disconnect from unknown[127.0.0.1] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7"), "{log}");
    h.stop();
}

#[test]
fn swaks_noreply_is_accepted_and_everything_else_refused() {
    let dir = TempDir::new("in-swaks-policy");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("pull_request", 9, 3);

    // The no-reply addresses: accepted (and discarded later).
    let o = swaks(
        port,
        &["--to", "reason@noreply.herald.test,noreply@herald.test"],
    );
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("250 2.0.0 Ok: queued as "),
        "{}",
        stdout(&o)
    );
    // Reply addresses match case-insensitively.
    let o = swaks(port, &["--to", &to.to_uppercase()]);
    assert!(o.status.success(), "upper case: {}", stdout(&o));

    // Never a relay; a forged token is an unknown user, so the sender's server bounces.
    let (local, _) = to.split_once('@').unwrap();
    let refused = [
        ("victim@example.com".to_string(), "550 5.7.1"),
        (format!("{local}@herald.test"), "550 5.7.1"),
        (format!("{local}@example.com"), "550 5.7.1"),
        ("postmaster@reply.herald.test".to_string(), "550 5.1.1"),
        (forged(&to), "550 5.1.1"),
        (to.replace("-3@", "-4@"), "550 5.1.1"),
        (to.replace("reply+p-9-", "reply+p-8-"), "550 5.1.1"),
        (to.replace("reply+p-", "reply+i-"), "550 5.1.1"),
    ];
    for (rcpt, want) in &refused {
        let o = swaks(port, &["--to", rcpt]);
        let out = stdout(&o);
        assert_eq!(
            o.status.code(),
            Some(24),
            "swaks exits 24 on a refused RCPT: {rcpt}\n{out}"
        );
        assert!(
            out.contains(&format!("<** {want} <")),
            "{rcpt}: wanted {want}:\n{out}"
        );
    }

    // Only the reply is kept: no-reply recipients are counted in mail.log, not stored.
    let replies = h.replies();
    assert_eq!(replies.len(), 1, "one reply: {replies:#?}");
    assert!(replies[0]["to"].as_str().unwrap().eq_ignore_ascii_case(&to));

    let log = h.mail_log();
    assert_eq!(
        log.matches("status=sent (discarded: no-reply address)")
            .count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("status=sent (queued for reply processing)")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains(&format!(
        "herald/smtpd[{}]: NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 550 5.7.1 <victim@example.com>: Relay access denied; from=<{SENDER}> to=<victim@example.com> proto=ESMTP helo=<client.example>",
        h.pid()
    )), "{log}");
    assert_eq!(
        log.matches("NOQUEUE: reject: RCPT from").count(),
        refused.len(),
        "{log}"
    );
    assert_eq!(log.matches(": 550 5.1.1 <").count(), 5, "{log}");
    h.stop();
}

#[test]
fn swaks_with_tls_enforced_needs_starttls_before_mail() {
    let dir = TempDir::new("in-swaks-enforced");
    let (h, port) = start(&dir, "tls_enforced = true");
    let to = h.reply_address("discussion", 5, 6);

    let o = swaks(port, &["--to", &to]);
    let out = stdout(&o);
    assert!(!o.status.success(), "plain MAIL must fail:\n{out}");
    assert!(
        out.contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{out}"
    );

    let o = swaks(port, &["--to", &to, "--tls"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let qid = out
        .lines()
        .find_map(|l| l.split("250 2.0.0 Ok: queued as ").nth(1))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_string();
    let replies = h.replies();
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert_eq!(record(&replies, &qid)["tls"], true);

    // RCPT, DATA and RSET are refused too before TLS; STARTTLS is still offered.
    let mut c = Smtp::session(port);
    c.cmd(&format!("RCPT TO:<{to}>")).expect("530 5.7.0");
    c.cmd("DATA").expect("530 5.7.0");
    c.cmd("RSET").expect("530 5.7.0");
    c.cmd("NOOP").expect("250 2.0.0");
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.lines.iter().any(|l| l == "250-STARTTLS"), "{ehlo:?}");
    c.quit();
    h.stop();
}

// ---------------------------------------------------------------------------------------------
// Python's smtplib

const SMTPLIB: &str = r#"
import smtplib, ssl, sys, json
port, rcpt = int(sys.argv[1]), sys.argv[2]
out = {}
def msg(tag):
    return ("From: <sender@example.org>\r\nTo: <%s>\r\nSubject: smtplib %s\r\n"
            "Message-ID: <smtplib-%s@client.example>\r\n\r\nHello from smtplib\r\n") % (rcpt, tag, tag)
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=20) as s:
    out["plain_refused"] = s.sendmail("sender@example.org", [rcpt], msg("plain"))
    out["plain_starttls_offered"] = s.has_extn("starttls")
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the appliance's certificate is self-signed
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=20) as s:
    s.ehlo()
    code, _ = s.starttls(context=ctx)
    out["starttls"] = code
    s.ehlo()
    out["tls_starttls_offered"] = s.has_extn("starttls")
    out["tls_size"] = s.esmtp_features.get("size")
    # One good and one refused recipient: delivered to the good one only.
    refused = s.sendmail("sender@example.org", [rcpt, "victim@example.com"], msg("tls"))
    out["tls_refused"] = {k: [v[0], v[1].decode()] for k, v in refused.items()}
    # Low level, to see the queue id.
    s.mail("sender@example.org")
    s.rcpt(rcpt)
    code, resp = s.data(msg("data"))
    out["data"] = [code, resp.decode()]
    try:
        s.sendmail("sender@example.org", ["victim@example.com"], msg("none"))
        out["all_refused"] = "accepted"
    except smtplib.SMTPRecipientsRefused as e:
        out["all_refused"] = {k: v[0] for k, v in e.recipients.items()}
print(json.dumps(out))
"#;

#[test]
fn python_smtplib_sends_plain_and_after_starttls() {
    let dir = TempDir::new("in-smtplib");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("commit", 77, 1);
    let mut cmd = Command::new("python3");
    cmd.args(["-c", SMTPLIB, &port.to_string(), &to]);
    let o = run_with_deadline(cmd);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(out["plain_refused"], serde_json::json!({}), "{out}");
    assert_eq!(out["plain_starttls_offered"], true);
    assert_eq!(out["starttls"], 220);
    assert_eq!(
        out["tls_starttls_offered"], false,
        "no STARTTLS once TLS is on"
    );
    assert_eq!(out["tls_size"], "26214400");
    assert_eq!(out["tls_refused"]["victim@example.com"][0], 550, "{out}");
    assert!(
        out["tls_refused"]["victim@example.com"][1]
            .as_str()
            .unwrap()
            .starts_with("5.7.1"),
        "{out}"
    );
    assert_eq!(out["all_refused"]["victim@example.com"], 550, "{out}");
    assert_eq!(out["data"][0], 250, "{out}");
    let qid = out["data"][1]
        .as_str()
        .unwrap()
        .strip_prefix("2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();

    let replies = h.replies();
    assert_eq!(replies.len(), 3, "{replies:#?}");
    let by_mid: BTreeMap<String, &serde_json::Value> = replies
        .iter()
        .map(|r| (r["message_id"].as_str().unwrap().to_string(), r))
        .collect();
    for (tag, tls) in [("plain", false), ("tls", true), ("data", true)] {
        let r = by_mid
            .get(&format!("<smtplib-{tag}@client.example>"))
            .unwrap_or_else(|| panic!("{tag} missing: {replies:#?}"));
        assert_eq!(r["tls"], tls, "{tag}: {r}");
        assert_eq!(r["to"], to.as_str());
        assert_eq!(r["from"], SENDER);
        assert_eq!(r["status"], "pending");
    }
    assert_eq!(
        record(&replies, &qid)["message_id"],
        "<smtplib-data@client.example>"
    );
    h.stop();
}

// ---------------------------------------------------------------------------------------------
// openssl s_client

#[test]
fn openssl_s_client_delivers_over_starttls_and_the_certificate_names_the_reply_domain() {
    let dir = TempDir::new("in-openssl");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 1, 2);
    let script = format!(
        "EHLO client.example\nMAIL FROM:<{SENDER}>\nRCPT TO:<{to}>\nDATA\nMessage-ID: <s_client@client.example>\nSubject: over TLS\n\nHello over TLS\n.\nQUIT\n"
    );
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-starttls", "smtp", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-servername",
            "herald.test",
            "-crlf",
            "-ign_eof",
            "-nocommands",
            "-showcerts",
        ]);
    let o = run_with_input(cmd, script.as_bytes());
    let out = stdout(&o);
    assert!(out.contains("250 2.1.0 Ok"), "{out}\n{}", stderr(&o));
    assert!(out.contains("250 2.1.5 Ok"), "{out}");
    assert!(out.contains("354 End data with <CR><LF>.<CR><LF>"), "{out}");
    assert!(out.contains("221 2.0.0 Bye"), "{out}");
    // After TLS the EHLO reply no longer offers STARTTLS.
    assert!(
        !out.contains("250-STARTTLS") && !out.contains("250 STARTTLS"),
        "{out}"
    );
    let qid = out
        .lines()
        .find_map(|l| l.strip_prefix("250 2.0.0 Ok: queued as "))
        .unwrap_or_else(|| panic!("no queue id:\n{out}"))
        .trim()
        .to_string();
    let replies = h.replies();
    let r = record(&replies, &qid);
    assert_eq!(r["tls"], true, "{r}");
    assert_eq!(r["message_id"], "<s_client@client.example>");

    // The certificate offered on port 25 names the reply domain.
    let begin = out
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = out.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    let pem = dir.write("smtp.pem", &format!("{}\n", &out[begin..end]));
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&pem);
    let o = run_with_deadline(cmd);
    let san = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(san.contains("DNS:reply.herald.test"), "{san}");
    assert!(san.contains("DNS:herald.test"), "{san}");
    h.stop();
}

/// After QUIT on a TLS session: a clean TLS close (close_notify), not a bare TCP close.
const TLS_QUIT: &str = r#"
import socket, ssl, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if line[3:4] != b"-":
            return line
reply()
s.sendall(b"EHLO client.example\r\n"); reply()
s.sendall(b"STARTTLS\r\n"); reply()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, server_hostname="herald.test", suppress_ragged_eofs=False)
t.sendall(b"QUIT\r\n")
print(t.recv(1000).decode().strip())
try:
    rest = t.recv(1000)
    print("clean close" if rest == b"" else "more: %r" % rest)
except ssl.SSLError as e:
    print("no close_notify: %s" % e)
"#;

#[test]
fn a_tls_session_ends_with_close_notify() {
    let dir = TempDir::new("in-close-notify");
    let (h, port) = start(&dir, "");
    let mut cmd = Command::new("python3");
    cmd.args(["-c", TLS_QUIT, &port.to_string()]);
    let o = run_with_deadline(cmd);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("221 2.0.0 Bye"), "{out}");
    assert!(out.contains("clean close"), "{out}");
    h.stop();
}

// ---------------------------------------------------------------------------------------------
// smtp-source

/// Queue ids of accepted messages in mail.log, with how many `status=sent` lines each has.
fn sent_per_queue_id(log: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        if let Some((_, rest)) = line.split_once("]: ")
            && let Some((qid, what)) = rest.split_once(": ")
            && qid != "NOQUEUE"
            && what.contains("status=sent")
        {
            *out.entry(qid.to_string()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn smtp_source_many_sessions_store_and_log_every_message_exactly_once() {
    let dir = TempDir::new("in-smtp-source");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 1000, 2000);
    let server = format!("127.0.0.1:{port}");
    // 500 messages over 20 parallel sessions, one connection each; then 100 over 5 connections
    // that stay open (-d), so one session carries many transactions.
    for args in [
        &["-s", "20", "-m", "500", "-l", "2000"][..],
        &["-s", "5", "-m", "100", "-l", "100", "-d"],
    ] {
        let mut cmd = Command::new(tool("smtp-source"));
        cmd.args(args)
            .args(["-M", "client.example", "-f", SENDER, "-t", &to])
            .arg(&server);
        let o = run_with_deadline(cmd);
        assert!(
            o.status.success(),
            "smtp-source {args:?}: {}\n{}",
            stdout(&o),
            stderr(&o)
        );
    }

    let replies = h.replies();
    assert_eq!(replies.len(), 600, "one record per message");
    let ids: BTreeSet<&str> = replies.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 600, "distinct records");
    assert!(
        replies
            .iter()
            .all(|r| r["to"] == to.as_str() && r["from"] == SENDER && r["status"] == "pending")
    );
    let record_qids: BTreeSet<String> = ids
        .iter()
        .map(|id| {
            id.strip_suffix("-1")
                .unwrap_or_else(|| panic!("one recipient: {id}"))
                .to_string()
        })
        .collect();

    let log = h.mail_log();
    let sent = sent_per_queue_id(&log);
    assert_eq!(sent.len(), 600, "distinct queue ids in mail.log");
    assert!(
        sent.values().all(|&n| n == 1),
        "exactly one status=sent per message"
    );
    let log_qids: BTreeSet<String> = sent.keys().cloned().collect();
    assert_eq!(log_qids, record_qids, "mail.log and the spool agree");
    for qid in &log_qids {
        let lines = log_lines_of(&log, qid);
        assert_eq!(lines.len(), 5, "{qid}: {lines:#?}");
        assert_eq!(lines.iter().filter(|l| l.ends_with(": removed")).count(), 1);
    }
    assert_eq!(
        log.matches(" connect from unknown[127.0.0.1]").count(),
        505,
        "connections"
    );
    assert_eq!(
        log.matches(" disconnect from unknown[127.0.0.1]").count(),
        505,
        "disconnects"
    );
    assert!(!log.contains("lost connection"), "{log}");
    h.stop();
}

// ---------------------------------------------------------------------------------------------
// pflogsumm

/// The numbers of pflogsumm's "Grand Totals" section: `received` → 3, ...
fn pflogsumm_totals(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let section = text
        .split("Grand Totals")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    for line in section.lines().take_while(|l| !l.starts_with("Per-")) {
        let mut words = line.split_whitespace();
        if let (Some(n), Some(what)) = (words.next(), words.next())
            && let Ok(n) = n.parse::<u64>()
        {
            let rest: Vec<&str> = words.collect();
            let key = if what == "bytes" {
                format!("bytes {}", rest.first().unwrap_or(&""))
            } else {
                what.to_string()
            };
            out.entry(key).or_insert(n);
        }
    }
    out
}

#[test]
fn pflogsumm_reads_mail_log_received_delivered_rejected() {
    let dir = TempDir::new("in-pflogsumm");
    let (h, port) = start(&dir, "");
    let to = h.reply_address("issue", 3, 4);
    let (accepted, rejected) = (4, 3);
    let mut bytes = 0;
    let mut c = Smtp::session(port);
    for i in 0..accepted {
        let m = message(&format!("pflog-{i}"));
        bytes += m.len();
        c.deliver(SENDER, &to, &m).queue_id();
    }
    for rcpt in ["victim@example.com", "other@example.net", &forged(&to)] {
        c.cmd(&format!("MAIL FROM:<{SENDER}>")).expect("250");
        c.cmd(&format!("RCPT TO:<{rcpt}>")).expect("550 5.");
        c.cmd("RSET").expect("250");
    }
    c.quit();

    let log_path = dir.join("data/logs/mail.log");
    let mut cmd = Command::new(tool("pflogsumm"));
    cmd.args(["--syslog-name=herald", "--smtpd-stats"])
        .arg(&log_path);
    let o = run_with_deadline(cmd);
    let text = stdout(&o);
    assert!(o.status.success(), "{}\n{text}", stderr(&o));
    let totals = pflogsumm_totals(&text);
    assert_eq!(
        totals.get("received"),
        Some(&accepted),
        "{totals:?}\n{text}"
    );
    assert_eq!(
        totals.get("delivered"),
        Some(&accepted),
        "{totals:?}\n{text}"
    );
    assert_eq!(
        totals.get("rejected"),
        Some(&rejected),
        "{totals:?}\n{text}"
    );
    assert_eq!(
        totals.get("bytes received"),
        Some(&(bytes as u64)),
        "{totals:?}\n{text}"
    );
    assert_eq!(totals.get("deferred"), Some(&0), "{totals:?}");
    assert_eq!(totals.get("bounced"), Some(&0), "{totals:?}");
    assert!(
        text.contains("reply.herald.test"),
        "delivered to the reply domain:\n{text}"
    );
    assert!(
        text.contains("Relay access denied"),
        "reject detail:\n{text}"
    );
    h.stop();
}

#[test]
fn mail_log_rotates_at_its_configured_size_and_pflogsumm_reads_the_rotated_files() {
    let dir = TempDir::new("in-rotate");
    let (h, port) = start(&dir, "\n[logs]\nrotate_mb = 1\nkeep = 2\n");
    let to = h.reply_address("issue", 5, 6);
    let sent = 1800u64;
    let mut cmd = Command::new(tool("smtp-source"));
    cmd.args(["-s", "20", "-m", &sent.to_string(), "-l", "100"])
        .args(["-M", "client.example", "-f", SENDER, "-t", &to])
        .arg(format!("127.0.0.1:{port}"));
    let o = run_with_deadline(cmd);
    assert!(o.status.success(), "smtp-source: {}", stderr(&o));

    let logs = dir.join("data/logs");
    let size = |name: &str| std::fs::metadata(logs.join(name)).map(|m| m.len()).ok();
    let first = size("mail.log.1").expect("mail.log rotated into mail.log.1");
    assert!((1 << 20..(1 << 20) + 64 * 1024).contains(&first), "{first}");
    assert!(size("mail.log").unwrap() < 1 << 20);
    assert_eq!(
        size("mail.log.3"),
        None,
        "no more than logs.keep rotated files"
    );

    // Postfix's own report reads the rotated file and the current one as one log.
    let mut files: Vec<std::path::PathBuf> = ["mail.log.2", "mail.log.1", "mail.log"]
        .iter()
        .map(|f| logs.join(f))
        .filter(|p| p.exists())
        .collect();
    let mut cmd = Command::new(tool("pflogsumm"));
    cmd.args(["--syslog-name=herald"]).args(files.drain(..));
    let o = run_with_deadline(cmd);
    let text = stdout(&o);
    assert!(o.status.success(), "{}\n{text}", stderr(&o));
    assert_eq!(
        pflogsumm_totals(&text).get("received"),
        Some(&sent),
        "{text}"
    );
    h.stop();
}
