//! What the outbound tests share: certificates, the peers (the aiosmtpd smarthost, smtp-sink),
//! messages as they stored them, and herald with outbound settings.

use crate::harness::*;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where the test email goes.
pub const TO: &str = "admin@example.org";
pub const USER: &str = "mailer";
pub const PASSWORD: &str = "Tr0ub4dor&3-horse-battery";
/// The test email's body (SPEC §5; the seed's "Test email delivery").
pub const BODY_LINE: &str =
    "This is a test email generated from https://herald.test/setup/settings";
pub const NOREPLY: &str = "noreply@herald.test";
pub const SMARTHOST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/smarthost.py");
/// No peer outlives this, even if the test binary is killed.
pub const PEER_SECONDS: &str = "120";

// ---------------------------------------------------------------------------------------------
// Certificates

/// A test CA (its certificate in `ca_file`) that issues leaf certificates.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    pub ca_file: PathBuf,
}

impl Pki {
    pub fn new(dir: &TempDir) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "herald test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let ca_file = dir.write("ca.pem", &ca.pem());
        Pki {
            dir: dir.path().to_path_buf(),
            ca,
            ca_file,
        }
    }

    /// A server certificate for `names` from this CA; `expired` makes it valid only in 2020.
    /// Returns (certificate PEM path, key PEM path).
    pub fn leaf(&self, tag: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].clone());
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(if expired { 2021 } else { 2060 }, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &*self.ca).unwrap();
        let cert_path = self.dir.join(format!("{tag}.crt"));
        let key_path = self.dir.join(format!("{tag}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// A path as a command-line argument.
pub fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Messages as the peers stored them

/// A received message: unfolded header fields in order, and the body.
pub struct Mail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    pub fn parse(raw: &[u8]) -> Mail {
        let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("a continuation after a field");
                last.1.push(' ');
                last.1.push_str(line.trim());
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        Mail {
            headers,
            body: body.to_string(),
        }
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The field, which must be there exactly once.
    #[track_caller]
    pub fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "{name} in {:#?}", self.headers);
        all[0]
    }

    /// The body with quoted-printable undone (harmless on a 7-bit body without `=`).
    pub fn text(&self) -> String {
        qp_decode(&self.body)
    }
}

/// Quoted-printable (RFC 2045 §6.7) decoded; line ends are `\n` already.
pub fn qp_decode(s: &str) -> String {
    let s = s.replace("=\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The password in every form that would give it away on the wire or in a log.
pub fn password_forms(user: &str, password: &str) -> Vec<String> {
    vec![
        password.to_string(),
        base64(password.as_bytes()),
        base64(format!("\0{user}\0{password}").as_bytes()),
    ]
}

#[track_caller]
pub fn assert_no_password(what: &str, text: &str) {
    for form in password_forms(USER, PASSWORD) {
        assert!(!text.contains(&form), "{what} shows {form:?}:\n{text}");
    }
}

/// Polls `f` every 50 ms until it gives `Some`, at most `WAIT`.
#[track_caller]
pub fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Peers

/// tests/peers/smarthost.py on a free loopback port, storing what it accepts in its maildir.
pub struct Smarthost {
    pub peer: Peer,
    pub port: u16,
    pub maildir: PathBuf,
}

impl Smarthost {
    /// A smarthost with TLS (`starttls` or `implicit`) on a certificate for `localhost` from
    /// `pki`, offering the `auth` mechanisms for USER / PASSWORD, and refusing MAIL without AUTH.
    pub fn tls_with_auth(dir: &TempDir, name: &str, pki: &Pki, tls: &str, auth: &str) -> Smarthost {
        let (cert, key) = pki.leaf("localhost", &["localhost"], false);
        Smarthost::start(
            dir,
            name,
            &[
                "--tls",
                tls,
                "--cert",
                arg(&cert),
                "--key",
                arg(&key),
                "--auth",
                auth,
                "--user",
                USER,
                "--password",
                PASSWORD,
                "--require-auth",
            ],
        )
    }

    /// Starts it with `args` (`--tls`, `--auth`, ...) and waits for its ready file.
    pub fn start(dir: &TempDir, tag: &str, args: &[&str]) -> Smarthost {
        let maildir = dir.join(&format!("{tag}-mail"));
        let ready = dir.join(&format!("{tag}.port"));
        let mut cmd = Command::new("python3");
        cmd.arg(SMARTHOST)
            .args(["--listen", "127.0.0.1:0", "--max-seconds", PEER_SECONDS])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--maildir")
            .arg(&maildir)
            .args(args);
        let mut peer = Peer::spawn(
            &format!("smarthost {tag}"),
            cmd,
            dir.join(&format!("{tag}.log")),
        );
        let port = wait_until(&format!("smarthost {tag} to listen"), || {
            if let Some(st) = peer.exited() {
                panic!("smarthost {tag} exited ({st}):\n{}", peer.output());
            }
            std::fs::read_to_string(&ready)
                .ok()
                .and_then(|t| t.trim().parse().ok())
        });
        Smarthost {
            peer,
            port,
            maildir,
        }
    }

    /// Every message accepted so far, in order, with its `N.json` (envelope, auth_user, tls).
    pub fn received(&self) -> Vec<(Mail, Json)> {
        let mut n: Vec<u64> = std::fs::read_dir(&self.maildir)
            .map(|d| {
                d.filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    name.strip_suffix(".json")?.parse().ok()
                })
                .collect()
            })
            .unwrap_or_default();
        n.sort();
        n.iter()
            .map(|n| {
                let eml = std::fs::read(self.maildir.join(format!("{n}.eml"))).unwrap();
                let meta = std::fs::read(self.maildir.join(format!("{n}.json"))).unwrap();
                (Mail::parse(&eml), serde_json::from_slice(&meta).unwrap())
            })
            .collect()
    }
}

/// Postfix's smtp-sink on a given loopback port, capturing every message (`-d`) with its
/// envelope as `X-Mail-Args` / `X-Rcpt-Args` fields; `faults` are its options (`-f RCPT`, ...).
pub struct Sink {
    pub peer: Peer,
    pub dump: PathBuf,
}

pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Sink {
    pub fn start(dir: &TempDir, tag: &str, port: u16, faults: &[&str]) -> Sink {
        let dump = dir.join(&format!("{tag}-dump"));
        std::fs::create_dir_all(&dump).unwrap();
        // As root smtp-sink must drop to another user (-u), who must be able to write here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dump, std::fs::Permissions::from_mode(0o777)).unwrap();
        // The port may still be held for a moment by a sink just killed: try again.
        for _ in 0..50 {
            let mut cmd = Command::new("timeout");
            cmd.arg(PEER_SECONDS).arg(tool("smtp-sink"));
            if running_as_root() {
                cmd.args(["-u", "nobody"]);
            }
            cmd.arg("-d")
                .arg(format!("{}/msg.", dump.display()))
                .args(faults)
                .arg(format!("127.0.0.1:{port}"))
                .arg("64");
            let mut peer = Peer::spawn(
                &format!("smtp-sink {tag}"),
                cmd,
                dir.join(&format!("{tag}.log")),
            );
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sink { peer, dump };
                }
                if peer.exited().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                peer.exited().is_some(),
                "smtp-sink {tag} does not listen:\n{}",
                peer.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("smtp-sink {tag} could not listen on port {port}");
    }

    /// Sessions and messages so far, from the counters `-c` prints (`sess=N quit=N mesg=N`).
    pub fn counters(&self) -> (u64, u64) {
        let out = self.peer.output();
        let last = out
            .split(['\r', '\n'])
            .rfind(|l| l.starts_with("sess="))
            .unwrap_or("sess=0 quit=0 mesg=0");
        let field = |name: &str| {
            last.split(' ')
                .find_map(|f| f.strip_prefix(name))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {last:?}"))
        };
        (field("sess="), field("mesg="))
    }

    /// The captured messages (each a whole file: it ends with the footer of herald's message).
    pub fn captured(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dump)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| Mail::parse(&std::fs::read(p).unwrap()))
            .collect()
    }

    /// Waits until `n` complete messages are captured; returns them.
    pub fn wait_captured(&self, n: usize) -> Vec<Mail> {
        wait_until(&format!("{n} messages in {}", self.dump.display()), || {
            let got = self.captured();
            (got.len() >= n && got.iter().all(|m| m.text().contains("Reply to this email")))
                .then_some(got)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// herald

/// A config file with outbound settings: `smtp` is `key = value` lines of the `[smtp]` table.
pub fn smtp_config(smtp: &str) -> String {
    // test_config's `extra` starts inside its `[inbound]` table.
    test_config(&format!("\n[smtp]\n{smtp}\n"))
}

pub fn start_herald(dir: &TempDir, smtp: &str) -> Herald {
    let cfg = dir.write("herald.toml", &smtp_config(smtp));
    Herald::start(Some(&cfg), &dir.join("data"))
}

/// `POST /manage/v1/email/test` to `TO` with `settings` overlaid (`{"smtp": {...}}`).
pub fn test_email(h: &Herald, settings: Json) -> Json {
    let r = h.control_post(
        "/manage/v1/email/test",
        &json!({ "to": TO, "settings": settings }),
    );
    assert!(r["ok"].is_boolean() && r["transcript"].is_array(), "{r:#}");
    r
}

pub fn transcript(r: &Json) -> Vec<String> {
    r["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// Asserts the test email went through; returns its transcript.
#[track_caller]
pub fn assert_sent(r: &Json) -> Vec<String> {
    assert_eq!(r["ok"], true, "{r:#}");
    assert!(r.get("error").is_none_or(Json::is_null), "{r:#}");
    transcript(r)
}

/// Asserts the test email failed with an error containing each of `words`; returns the error.
#[track_caller]
pub fn assert_failed(r: &Json, words: &[&str]) -> String {
    assert_eq!(r["ok"], false, "{r:#}");
    let e = r["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {r:#}"));
    for w in words {
        assert!(e.contains(w), "{w:?} not in {e:?}\n{r:#}");
    }
    e.to_string()
}

/// A line the client sent, as the transcript shows it: `<- "AUTH LOGIN\r\n"`.
pub fn sent(cmd: &str) -> String {
    format!("<- \"{cmd}\\r\\n\"")
}

pub fn position(t: &[String], line: &str) -> Option<usize> {
    t.iter().position(|l| l == line)
}

/// The application API (bearer `api.token`) over the control socket.
pub struct Api<'a> {
    pub h: &'a Herald,
    pub auth: String,
}

impl<'a> Api<'a> {
    pub fn new(h: &'a Herald) -> Api<'a> {
        Api {
            h,
            auth: format!("Authorization: Bearer {}", h.secret("api.token")),
        }
    }

    pub fn post(&self, body: &Json) -> (u16, Json) {
        let (code, text) = self.h.control_request(
            "POST",
            "/api/v1/notifications",
            std::slice::from_ref(&self.auth),
            Some(&body.to_string()),
        );
        let j = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {code} {text}"));
        (code, j)
    }

    /// Queues a notification; returns the `202` answer.
    #[track_caller]
    pub fn notify(&self, body: &Json) -> Json {
        let (code, j) = self.post(body);
        assert_eq!(code, 202, "{j:#}");
        j
    }

    pub fn get(&self, id: &str) -> Json {
        let path = format!("/api/v1/notifications/{id}");
        let (code, text) =
            self.h
                .control_request("GET", &path, std::slice::from_ref(&self.auth), None);
        assert_eq!(code, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Waits until the notification's status is one of `want`; returns its state.
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &[&str]) -> Json {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = self.get(id);
            if want.iter().any(|w| last["status"] == *w) {
                return last;
            }
            if Instant::now() > deadline {
                panic!(
                    "notification {id} is not {want:?}: {last:#}\n{}",
                    self.h.mail_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /manage/v1/queue`'s counts by status.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let q = self.h.control_get("/manage/v1/queue?limit=1000");
        q["counts"]
            .as_object()
            .unwrap_or_else(|| panic!("no counts: {q:#}"))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect()
    }
}

pub fn counts(queued: u64, deferred: u64, sent: u64, failed: u64) -> BTreeMap<String, u64> {
    [
        ("queued", queued),
        ("deferred", deferred),
        ("sent", sent),
        ("failed", failed),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A valid notification request.
pub fn notification(to: &str, kind: &str, thread: u64, user: u64) -> Json {
    json!({
        "to": to,
        "user_id": user,
        "subject": format!("Re: [octo/app] Flaky test on main ({kind} #{thread})"),
        "text": format!("@octocat mentioned you on {kind} {thread}.\n\nPlease have a look."),
        "thread": { "kind": kind, "id": thread },
        "reason": "mention",
    })
}

/// The `herald/smtp` delivery lines of one notification in mail.log.
pub fn delivery_lines(log: &str, id: &str) -> Vec<String> {
    let needle = format!(": {id}: to=<");
    log.lines()
        .filter(|l| l.contains("herald/smtp[") && l.contains(&needle))
        .map(str::to_string)
        .collect()
}
