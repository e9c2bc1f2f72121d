//! What the reply tests share: the webhook receiver, herald wired to smtp-sink and the receiver,
//! notifications and the replies to them, the SMTP clients, records and metroplex.log.

pub use crate::harness::*;
pub use crate::outbound::common::{Api, Mail, PEER_SECONDS, Sink, notification};
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const WEBHOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/webhook.py");
/// `replies.webhook_secret`, given in the config file.
pub const SECRET: &str = "whsec-3f9a2c7e51b04d8e-herald-test";
/// Who replies.
pub const SENDER: &str = "bob@example.org";
/// The keys of the webhook's JSON body (SPEC §4), exactly.
pub const BODY_KEYS: [&str; 7] = [
    "body",
    "from",
    "message_id",
    "received_at",
    "subject",
    "thread",
    "user_id",
];

/// Polls `f` every 50 ms until it gives `Some`, at most `within`.
#[track_caller]
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver

/// One request the receiver got, as it logged it.
#[derive(Debug, Clone)]
pub struct Hook {
    pub path: String,
    /// Header fields as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub raw: String,
    /// The body as JSON.
    pub body: Json,
    /// The receiver's own check of `X-Herald-Signature`.
    pub signature_ok: bool,
    /// What the receiver did: `204`, `500`, `drop`, `hold 8`, ...
    pub answer: String,
}

impl Hook {
    /// The header field, which must be there exactly once.
    #[track_caller]
    pub fn one(&self, name: &str) -> &str {
        let all: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(all.len(), 1, "{name} in {:#?}", self.headers);
        all[0]
    }

    pub fn delivery(&self) -> &str {
        self.one("X-Herald-Delivery")
    }

    /// Asserts the request is a signed JSON POST to `/hook`: the receiver verified the signature,
    /// and so does this test, with ring, over the raw body.
    #[track_caller]
    pub fn assert_signed(&self) {
        assert_eq!(self.path, "/hook", "{self:#?}");
        assert!(
            self.signature_ok,
            "the receiver refused the signature: {self:#?}"
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
        let tag = ring::hmac::sign(&key, self.raw.as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(self.one("X-Herald-Signature"), format!("sha256={hex}"));
        assert!(
            self.one("Content-Type").starts_with("application/json"),
            "{self:#?}"
        );
        assert!(!self.delivery().is_empty(), "{self:#?}");
        let mut keys: Vec<&str> = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("not a JSON object: {}", self.raw))
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(keys, BODY_KEYS, "{}", self.raw);
    }
}

/// tests/peers/webhook.py on a loopback port; its requests are in `log`, its mode in
/// `mode_file`.
pub struct Webhook {
    /// Killed on drop.
    pub _peer: Peer,
    pub port: u16,
    pub log: PathBuf,
    pub mode_file: PathBuf,
}

impl Webhook {
    /// Starts the receiver on `port` (0: any) answering `modes` in turn (the last one stays), and
    /// waits for its ready file.
    pub fn start(dir: &TempDir, tag: &str, port: u16, modes: &[&str]) -> Webhook {
        Webhook::start_with(dir, tag, port, modes, None)
    }

    /// [`Webhook::start`], over HTTPS with `tls` (certificate chain and key files) when given.
    pub fn start_with(
        dir: &TempDir,
        tag: &str,
        port: u16,
        modes: &[&str],
        tls: Option<(&Path, &Path)>,
    ) -> Webhook {
        let ready = dir.join(&format!("{tag}.port"));
        let log = dir.join(&format!("{tag}.jsonl"));
        let mode_file = dir.join(&format!("{tag}.mode"));
        set_modes(&mode_file, modes);
        let mut cmd = Command::new("python3");
        cmd.arg(WEBHOOK)
            .args(["--port", &port.to_string(), "--secret", SECRET])
            .args(["--max-seconds", PEER_SECONDS])
            .arg("--log")
            .arg(&log)
            .arg("--ready-file")
            .arg(&ready)
            .arg("--mode-file")
            .arg(&mode_file);
        if let Some((cert, key)) = tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let mut peer = Peer::spawn(
            &format!("webhook {tag}"),
            cmd,
            dir.join(&format!("{tag}.log")),
        );
        let got = wait_for(&format!("webhook {tag} to listen"), WAIT, || {
            if let Some(st) = peer.exited() {
                panic!("webhook {tag} exited ({st}):\n{}", peer.output());
            }
            std::fs::read_to_string(&ready)
                .ok()
                .and_then(|t| t.trim().parse::<u16>().ok())
        });
        assert!(port == 0 || got == port, "asked for {port}, got {got}");
        Webhook {
            _peer: peer,
            port: got,
            log,
            mode_file,
        }
    }

    /// What the next requests get, in turn; the last stays.
    pub fn set_modes(&self, modes: &[&str]) {
        set_modes(&self.mode_file, modes);
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Hook> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Only whole lines: the receiver may be writing the next one.
        let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        whole
            .lines()
            .map(|line| {
                let j: Json = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                let raw = j["body"].as_str().unwrap().to_string();
                Hook {
                    path: j["path"].as_str().unwrap().to_string(),
                    headers: j["header_list"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| {
                            (
                                p[0].as_str().unwrap().to_string(),
                                p[1].as_str().unwrap().to_string(),
                            )
                        })
                        .collect(),
                    body: serde_json::from_str(&raw).unwrap_or(Json::Null),
                    raw,
                    signature_ok: j["signature_ok"] == true,
                    answer: j["answer"].as_str().unwrap().to_string(),
                }
            })
            .collect()
    }

    /// Waits until at least `n` requests came; returns them all.
    #[track_caller]
    pub fn wait_requests(&self, n: usize, within: Duration) -> Vec<Hook> {
        wait_for(&format!("{n} webhook requests"), within, || {
            let got = self.requests();
            (got.len() >= n).then_some(got)
        })
    }
}

fn set_modes(path: &Path, modes: &[&str]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{}\n", modes.join("\n"))).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `http://127.0.0.1:<port>/hook`.
pub fn hook_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/hook")
}

// ---------------------------------------------------------------------------------------------
// herald

/// The config file: outbound to smtp-sink on `sink_port` (plaintext), inbound on a free loopback
/// port, replies posted to the receiver on `hook_port` (none: `replies.webhook_url` unset).
pub fn herald_config(sink_port: u16, hook_port: Option<u16>) -> String {
    test_config(&format!(
        "\n[smtp]\nenabled = true\naddress = \"127.0.0.1\"\nport = {sink_port}\ntls = \"off\"\n\n[replies]\nwebhook_url = \"{}\"\nwebhook_secret = \"{SECRET}\"\n",
        hook_port.map(hook_url).unwrap_or_default()
    ))
}

/// herald on [`herald_config`]; returns the config file too, for a restart.
pub fn start_herald(dir: &TempDir, sink_port: u16, hook_port: Option<u16>) -> (Herald, PathBuf) {
    let cfg = dir.write("herald.toml", &herald_config(sink_port, hook_port));
    let h = Herald::start(Some(&cfg), &dir.join("data"));
    (h, cfg)
}

/// The build of herald and the environment a [`Setup`] runs.
#[derive(Clone, Copy)]
pub struct Build<'a> {
    pub bin: &'a Path,
    pub env: &'a [(&'a str, &'a str)],
}

impl Default for Build<'_> {
    fn default() -> Self {
        Build {
            bin: Path::new(BIN),
            env: &[],
        }
    }
}

/// Everything one test runs: smtp-sink, the receiver (maybe not yet), herald, its inbound port.
pub struct Setup {
    pub sink: Sink,
    pub hook: Option<Webhook>,
    pub hook_port: u16,
    pub h: Herald,
    pub smtp: u16,
    pub cfg: PathBuf,
}

impl Setup {
    /// smtp-sink, the receiver answering `modes` (none: not started, its port reserved), herald.
    pub fn start(dir: &TempDir, modes: Option<&[&str]>) -> Setup {
        Setup::start_with(dir, modes, Build::default())
    }

    /// [`Setup::start`] with another build of herald or extra environment.
    pub fn start_with(dir: &TempDir, modes: Option<&[&str]>, build: Build) -> Setup {
        let sink_port = free_port();
        let sink = Sink::start(dir, "sink", sink_port, &[]);
        let (hook, hook_port) = match modes {
            Some(m) => {
                let w = Webhook::start(dir, "hook", 0, m);
                let port = w.port;
                (Some(w), port)
            }
            None => (None, free_port()),
        };
        let cfg = dir.write("herald.toml", &herald_config(sink_port, Some(hook_port)));
        let mut h = Herald::start_with(build.bin, build.env, Some(&cfg), &dir.join("data"));
        let smtp = h.smtp_port();
        Setup {
            sink,
            hook,
            hook_port,
            h,
            smtp,
            cfg,
        }
    }

    pub fn hook(&self) -> &Webhook {
        self.hook.as_ref().expect("the webhook receiver runs")
    }

    /// Sends a notification through the API and returns it as smtp-sink captured it.
    pub fn notify(&self, kind: &str, thread: u64, user: u64) -> Notified {
        notify_with(&self.h, &self.sink, kind, thread, user)
    }
}

/// Sends a notification to [`SENDER`] through `h`'s API; returns it as `sink` captured it.
pub fn notify_with(h: &Herald, sink: &Sink, kind: &str, thread: u64, user: u64) -> Notified {
    let api = Api::new(h);
    let before = sink.captured().len();
    let ans = api.notify(&notification(SENDER, kind, thread, user));
    let mid = ans["message_id"].as_str().unwrap().to_string();
    let mail = sink
        .wait_captured(before + 1)
        .into_iter()
        .find(|m| m.one("Message-ID") == mid)
        .unwrap_or_else(|| panic!("{mid} not captured"));
    let reply_to = mail.one("Reply-To").to_string();
    assert_eq!(reply_to, ans["reply_to"].as_str().unwrap());
    Notified {
        kind: kind.to_string(),
        thread,
        user,
        reply_to,
        mail,
    }
}

/// A notification as captured.
pub struct Notified {
    pub kind: String,
    pub thread: u64,
    pub user: u64,
    pub reply_to: String,
    pub mail: Mail,
}

impl Notified {
    /// The subject a reply carries (clients add one `Re: `).
    pub fn reply_subject(&self) -> String {
        let s = self.mail.one("Subject");
        if s.starts_with("Re: ") {
            s.to_string()
        } else {
            format!("Re: {s}")
        }
    }

    /// A reply as a mail client writes it, CRLF line ends: `text` on top (nothing if empty), then
    /// "On <date>, <from> wrote:" and the notification quoted line by line. `headers` are extra
    /// header lines (`Auto-Submitted: auto-replied`).
    pub fn reply(&self, message_id: &str, headers: &[&str], text: &str) -> String {
        let mut m = format!(
            "From: Bob Example <{SENDER}>\r\nTo: <{}>\r\nSubject: {}\r\nDate: Tue, 03 Mar 2026 10:00:00 +0100\r\nMessage-ID: {message_id}\r\nIn-Reply-To: {}\r\nReferences: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
            self.reply_to,
            self.reply_subject(),
            self.mail.one("Message-ID"),
            self.mail.one("Message-ID"),
        );
        for h in headers {
            m.push_str(h);
            m.push_str("\r\n");
        }
        m.push_str("\r\n");
        if !text.is_empty() {
            m.push_str(&text.replace('\n', "\r\n"));
            m.push_str("\r\n\r\n");
        }
        m.push_str(&format!(
            "On {}, {} wrote:\r\n",
            self.mail.one("Date"),
            self.mail.one("From")
        ));
        for line in self.mail.text().trim_end().lines() {
            if line.is_empty() {
                m.push_str(">\r\n");
            } else {
                m.push_str(&format!("> {line}\r\n"));
            }
        }
        m
    }
}

// ---------------------------------------------------------------------------------------------
// SMTP clients

/// swaks delivers `data` from `from` to `to` (comma-separated); returns the queue id.
#[track_caller]
pub fn swaks(dir: &TempDir, port: u16, from: &str, to: &str, data: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = dir.write(&format!("swaks-{n}.eml"), data);
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &format!("127.0.0.1:{port}")])
        .args(["--from", from, "--to", to, "--helo", "client.example"])
        .args(["--timeout", "20"])
        .arg("--data")
        .arg(format!("@{}", file.display()));
    let o = run_with_deadline(cmd);
    let out = stdout(&o);
    assert!(o.status.success(), "swaks: {}\n{out}", stderr(&o));
    out.lines()
        .find_map(|l| l.split("250 2.0.0 Ok: queued as ").nth(1))
        .unwrap_or_else(|| panic!("swaks: no queue id:\n{out}"))
        .trim()
        .to_string()
}

const SMTPLIB: &str = r#"
import json, smtplib, sys
job = json.load(sys.stdin)
out = []
with smtplib.SMTP("127.0.0.1", job["port"], local_hostname="client.example", timeout=20) as s:
    s.ehlo()
    for m in job["messages"]:
        code, resp = s.mail(m["from"])  # "" is the null sender: MAIL FROM:<>
        assert code == 250, (code, resp)
        for r in m["to"]:
            code, resp = s.rcpt(r)
            assert code == 250, (r, code, resp)
        code, resp = s.data(m["data"].encode("utf-8"))
        assert code == 250, (code, resp)
        out.append(resp.decode().rsplit(" ", 1)[1])
print(json.dumps(out))
"#;

/// One message for [`smtplib`]: envelope sender (`""` for `<>`), recipients, the message.
pub struct Envelope<'a> {
    pub from: &'a str,
    pub to: Vec<&'a str>,
    pub data: String,
}

/// Python's smtplib delivers `messages` in one session; returns their queue ids.
#[track_caller]
pub fn smtplib(port: u16, messages: &[Envelope]) -> Vec<String> {
    let job = json!({
        "port": port,
        "messages": messages
            .iter()
            .map(|m| json!({"from": m.from, "to": m.to, "data": m.data}))
            .collect::<Vec<_>>(),
    });
    let mut cmd = Command::new("python3");
    cmd.args(["-c", SMTPLIB]);
    let o = run_with_input(cmd, job.to_string().as_bytes());
    assert!(
        o.status.success(),
        "smtplib: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
    serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

// ---------------------------------------------------------------------------------------------
// Records and metroplex.log

/// The record `id` (`<qid>-<n>`).
#[track_caller]
pub fn record(h: &Herald, id: &str) -> Json {
    h.replies()
        .into_iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no record {id}: {:#?}", h.replies()))
}

/// Waits until record `id` (`<qid>-<n>`) is no longer `pending`; returns it.
#[track_caller]
pub fn wait_final(h: &Herald, id: &str, within: Duration) -> Json {
    let mut last = Json::Null;
    let deadline = Instant::now() + within;
    loop {
        if let Some(r) = h.replies().into_iter().find(|r| r["id"] == id) {
            if r["status"] != "pending" {
                return r;
            }
            last = r;
        }
        assert!(
            Instant::now() < deadline,
            "{id} still not final after {within:?}: {last:#}\nmetroplex.log:\n{}",
            metroplex(h)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `<data>/logs/mail-replies/metroplex.log` (empty if not written yet).
pub fn metroplex(h: &Herald) -> String {
    std::fs::read_to_string(h.data.join("logs/mail-replies/metroplex.log")).unwrap_or_default()
}

/// One metroplex.log line: `[<ISO time> <LEVEL> (<pid>) #] <text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub stamp: String,
    pub level: String,
    pub pid: u32,
    pub text: String,
}

/// Parses a line in the seed's shape (`[2014-10-30T00:47:23.306 INFO (5284) #] ...`); panics on
/// any other.
#[track_caller]
pub fn parse_line(line: &str) -> Line {
    let bad = || -> ! { panic!("not in the seed's shape: {line:?}") };
    let rest = line.strip_prefix('[').unwrap_or_else(|| bad());
    let (head, text) = rest.split_once(" #] ").unwrap_or_else(|| bad());
    let mut parts = head.split(' ');
    let (Some(stamp), Some(level), Some(pid), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bad()
    };
    // 2014-10-30T00:47:23.306
    let shape = stamp.len() == 23
        && stamp.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == '.',
            _ => c.is_ascii_digit(),
        });
    if !shape || !["INFO", "DEBUG", "WARN", "ERROR"].contains(&level) {
        bad();
    }
    let pid = pid
        .strip_prefix('(')
        .and_then(|p| p.strip_suffix(')'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| bad());
    Line {
        stamp: stamp.to_string(),
        level: level.to_string(),
        pid,
        text: text.to_string(),
    }
}

/// Every line of metroplex.log, each checked for the seed's shape.
pub fn metroplex_lines(h: &Herald) -> Vec<Line> {
    metroplex(h).lines().map(parse_line).collect()
}

/// The position of the first line with `level` whose text is `text` exactly, or panics.
#[track_caller]
pub fn find_line(lines: &[Line], level: &str, text: &str) -> usize {
    lines
        .iter()
        .position(|l| l.level == level && l.text == text)
        .unwrap_or_else(|| panic!("no {level} {text:?} in metroplex.log:\n{lines:#?}"))
}

const BUILD: &str = r#"
import json, sys
from email.message import EmailMessage
from email.policy import SMTP
job = json.load(sys.stdin)
msg = EmailMessage()
for name, value in job["headers"]:
    msg[name] = value
if job.get("text") is not None:
    msg.set_content(job["text"], cte=job["cte"])
    if job.get("html") is not None:
        msg.add_alternative(job["html"], subtype="html", cte=job["cte"])
else:
    msg.set_content(job["html"], subtype="html", cte=job["cte"])
sys.stdout.write(msg.as_bytes(policy=SMTP).decode("ascii"))
"#;

/// A message written by Python's `email` package (RFC 2047 header words, UTF-8 parts in the
/// transfer encoding `cte`): `headers` in order, a text/plain part and/or a text/html part (both:
/// multipart/alternative).
#[track_caller]
pub fn python_message(
    headers: &[(&str, &str)],
    text: Option<&str>,
    html: Option<&str>,
    cte: &str,
) -> String {
    let job = json!({"headers": headers, "text": text, "html": html, "cte": cte});
    let mut cmd = Command::new("python3");
    cmd.args(["-c", BUILD]);
    let o = run_with_input(cmd, job.to_string().as_bytes());
    assert!(o.status.success(), "email package: {}", stderr(&o));
    let m = stdout(&o);
    assert!(m.is_ascii() && m.contains("\r\n\r\n"), "{m}");
    m
}
