//! The console's pages over HTTPS with curl: sessions and their cookie, CSRF (the form token,
//! `Sec-Fetch-Site` before `Origin`), unknown `Host`s, hostile values (in every field and in a
//! server's SMTP replies) rendered inert, sign-in throttling, the password never in any page,
//! the manage API's runs, and a run rolled back when its new address cannot be bound.

use crate::harness::*;
use serde_json::Value as Json;
use std::path::PathBuf;
use std::process::Command;

/// curl against one herald's console with a cookie jar.
struct Console<'a> {
    h: &'a Herald,
    cacert: PathBuf,
    jar: PathBuf,
}

/// (status, headers, body)
type Answer = (u16, String, String);

impl<'a> Console<'a> {
    fn new(h: &'a Herald, dir: &TempDir) -> Console<'a> {
        Console {
            h,
            cacert: fetch_cert(h, dir),
            jar: dir.join("cookies.txt"),
        }
    }

    fn curl(&self, args: &[&str], path: &str) -> Answer {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            "40",
            "--resolve",
            &self.h.resolve_arg(),
            "--cacert",
        ])
        .arg(&self.cacert)
        .arg("-b")
        .arg(&self.jar)
        .arg("-c")
        .arg(&self.jar)
        .args(["-D", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(self.h.url(path));
        let out = run_with_deadline(cmd);
        assert!(out.status.success(), "curl: {}", stderr(&out));
        let text = stdout(&out);
        let (rest, code) = text.rsplit_once('\n').unwrap();
        let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
        (
            code.trim().parse().unwrap(),
            head.to_string(),
            body.to_string(),
        )
    }

    fn get(&self, path: &str) -> Answer {
        self.curl(&[], path)
    }

    /// A form post, as a browser of this console's own page sends it.
    fn post(&self, path: &str, fields: &[(&str, &str)], headers: &[&str]) -> Answer {
        let mut args: Vec<String> = vec!["-X".into(), "POST".into()];
        for h in headers {
            args.push("-H".into());
            args.push(h.to_string());
        }
        for (k, v) in fields {
            args.push("--data-urlencode".into());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.curl(&args, path)
    }

    /// Signs in; the session's form token.
    fn sign_in(&self) -> String {
        let (code, _, body) = self.get("/setup/login");
        assert_eq!(code, 200);
        let token = between(&body, "name=\"_login\" value=\"", "\"");
        let (code, head, body) = self.post(
            "/setup/login",
            &[
                ("_login", &token),
                ("password", &self.h.initial_password()),
                ("next", "/setup/settings"),
            ],
            &["Sec-Fetch-Site: same-origin", "Origin: null"],
        );
        assert_eq!(code, 303, "{head}{body}");
        assert!(head.contains("Location: /setup/settings"), "{head}");
        let (code, _, body) = self.get("/setup/settings");
        assert_eq!(code, 200, "{body}");
        between(&body, "name=\"_csrf\" value=\"", "\"")
    }
}

fn between(s: &str, a: &str, b: &str) -> String {
    let start = s.find(a).unwrap_or_else(|| panic!("{a:?} not in:\n{s}")) + a.len();
    s[start..start + s[start..].find(b).unwrap()].to_string()
}

fn start(dir: &TempDir, extra: &str) -> Herald {
    let cfg = dir.write("herald.toml", &inbound_config(extra));
    Herald::start(Some(&cfg), &dir.join("data"))
}

#[test]
fn sessions_cookies_and_sign_out() {
    let dir = TempDir::new("pages-session");
    let h = start(&dir, "");
    let c = Console::new(&h, &dir);
    // Not signed in: the settings send you to the sign-in, which sets its form's cookie.
    let (code, head, _) = c.get("/setup/settings");
    assert_eq!(code, 303);
    assert!(
        head.contains("Location: /setup/login?next=/setup/settings"),
        "{head}"
    );
    let (_, head, _) = c.get("/setup/login");
    assert!(
        head.contains("set-cookie: __Host-herald-login=")
            || head.contains("Set-Cookie: __Host-herald-login="),
        "{head}"
    );
    let csrf = c.sign_in();
    let jar = std::fs::read_to_string(&c.jar).unwrap();
    let session = jar
        .lines()
        .find(|l| l.contains("__Host-herald-session"))
        .and_then(|l| l.split('\t').next_back())
        .unwrap()
        .to_string();
    assert_eq!(session.len(), 64, "a 256-bit random id");
    // The cookie's attributes.
    let (code, _, body) = c.get("/setup/login");
    assert_eq!(code, 200, "{body}");
    // Sign out ends the session on the server: the old cookie no longer works.
    let (code, head, _) = c.post(
        "/setup/logout",
        &[("_csrf", &csrf)],
        &["Sec-Fetch-Site: same-origin"],
    );
    assert_eq!(code, 303, "{head}");
    assert!(
        head.contains(
            "__Host-herald-session=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        ),
        "{head}"
    );
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--resolve",
        &h.resolve_arg(),
        "--cacert",
    ])
    .arg(&c.cacert)
    .args(["-H", &format!("Cookie: __Host-herald-session={session}")])
    .arg(h.url("/setup/settings"));
    assert_eq!(
        stdout(&run_with_deadline(cmd)),
        "200",
        "the expired-session page, not the settings"
    );
    let (code, _, body) = c.get("/setup/settings");
    assert!(
        code == 303 || body.contains("Your session ended"),
        "{code} {body}"
    );
    h.stop();
}

#[test]
fn a_new_console_password_ends_every_session_at_once() {
    let dir = TempDir::new("pages-password");
    let h = start(&dir, "");
    let c = Console::new(&h, &dir);
    c.sign_in();
    let o = h.cli(&[
        "config",
        "set",
        "console.password",
        "a-new-console-password",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (code, _, body) = c.get("/setup/settings");
    assert_eq!(code, 200);
    assert!(body.contains("Your session ended"), "{body}");
    // The new one works, without a configuration run; the old one does not.
    let (code, _) = curl(
        &h,
        &c.cacert,
        &["-u", "api_key:a-new-console-password"],
        "/manage/v1/version",
    );
    assert_eq!(code, 200);
    let (code, _) = curl(
        &h,
        &c.cacert,
        &["-u", &format!("api_key:{}", h.initial_password())],
        "/manage/v1/version",
    );
    assert_eq!(code, 401);
    h.stop();
}

#[test]
fn forms_need_their_token_and_a_same_origin_post() {
    let dir = TempDir::new("pages-csrf");
    let h = start(&dir, "");
    let c = Console::new(&h, &dir);
    let csrf = c.sign_in();
    let save = |token: &str, headers: &[&str]| {
        c.post(
            "/setup/settings",
            &[("_csrf", token), ("action", "save"), ("smtp.port", "2525")],
            headers,
        )
        .0
    };
    assert_eq!(save("", &["Sec-Fetch-Site: same-origin"]), 403, "no token");
    assert_eq!(
        save("0".repeat(64).as_str(), &["Sec-Fetch-Site: same-origin"]),
        403,
        "a wrong token"
    );
    assert_eq!(
        save(&csrf, &["Sec-Fetch-Site: cross-site"]),
        403,
        "another site"
    );
    assert_eq!(
        save(&csrf, &["Sec-Fetch-Site: same-site"]),
        403,
        "a sibling site"
    );
    assert_eq!(
        save(&csrf, &["Origin: https://evil.example"]),
        403,
        "another origin"
    );
    assert_eq!(
        save(&csrf, &["Origin: null"]),
        403,
        "an opaque origin without Sec-Fetch-Site"
    );
    assert_eq!(
        h.cli(&["config", "get", "smtp.port"]).stdout,
        b"587\n",
        "nothing was saved"
    );
    // Chromium's own same-origin post under no-referrer: Origin null, Sec-Fetch-Site judged first.
    let (code, head, _) = c.post(
        "/setup/settings",
        &[("_csrf", &csrf), ("action", "save"), ("smtp.port", "2525")],
        &["Sec-Fetch-Site: same-origin", "Origin: null"],
    );
    assert_eq!(code, 303, "{head}");
    assert!(head.contains("Location: /setup/runs/"), "{head}");
    assert!(
        h.log()
            .contains("refused a form post to /setup/settings from 127.0.0.1")
    );
    // An unknown Host is refused, signed in or not (DNS rebinding).
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Host: evil.example",
    ])
    .arg(format!("https://127.0.0.1:{}/setup/login", h.console_port));
    assert_eq!(stdout(&run_with_deadline(cmd)), "421");
    h.stop();
}

/// A fake SMTP server whose every reply carries markup, for the test email's page.
fn hostile_smtp() -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let _ = w.write_all(b"220 <script>alert('banner')</script> ESMTP\r\n");
        let mut line = String::new();
        while r.read_line(&mut line).is_ok_and(|n| n > 0) {
            let answer: &[u8] = if line.starts_with("EHLO") {
                b"250 <img src=x onerror=alert(1)>\r\n"
            } else if line.starts_with("QUIT") {
                b"221 bye\r\n"
            } else {
                b"554 5.7.1 <a href=\"javascript:alert(2)\">refused</a>\r\n"
            };
            let _ = w.write_all(answer);
            line.clear();
        }
    });
    (port, t)
}

#[test]
fn hostile_values_and_smtp_replies_render_inert_and_the_password_never_shows() {
    let dir = TempDir::new("pages-xss");
    let h = start(&dir, "");
    let c = Console::new(&h, &dir);
    let csrf = c.sign_in();
    let evil = "\"><script>alert(1)</script><img src=x onerror=alert(2)>";
    let mut fields: Vec<(&str, &str)> = vec![("_csrf", &csrf), ("action", "save")];
    for key in [
        "smtp.address",
        "smtp.port",
        "smtp.domain",
        "smtp.authentication",
        "smtp.username",
        "smtp.noreply_address",
        "smtp.support_type",
        "smtp.support_address",
        "smtp.tls",
        "smtp.ca_file",
        "inbound.listen",
        "replies.webhook_url",
        "replies.ca_file",
    ] {
        fields.push((key, evil));
    }
    let (code, _, body) = c.post("/setup/settings", &fields, &["Sec-Fetch-Site: same-origin"]);
    assert_eq!(code, 422, "every one of them is refused");
    assert!(
        !body.contains("<script>alert") && !body.contains("<img src=x"),
        "{body}"
    );
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(body.contains("id=\"error-summary\""));
    // An SMTP server's replies, echoed in the test's outcome and conversation.
    let (port, server) = hostile_smtp();
    let (code, _, body) = c.post(
        "/setup/settings",
        &[
            ("_csrf", &csrf),
            ("action", "test"),
            ("test_to", "admin@example.org"),
            ("smtp.address", "127.0.0.1"),
            ("smtp.port", &port.to_string()),
            ("smtp.tls", "off"),
        ],
        &["Sec-Fetch-Site: same-origin"],
    );
    server.join().unwrap();
    assert_eq!(code, 422, "{body}");
    assert!(
        !body.contains("<script>alert('banner')")
            && !body.contains("<img src=x")
            && !body.contains("<a href=\"javascript"),
        "{body}"
    );
    assert!(
        body.contains("&lt;script&gt;alert('banner')&lt;/script&gt;")
            || body.contains("&lt;script&gt;alert(&#39;banner&#39;)"),
        "{body}"
    );
    // A saved password is in no page.
    let pw = "Very-Secret-Smtp-Passw0rd";
    let (code, _, _) = c.post(
        "/setup/settings",
        &[
            ("_csrf", &csrf),
            ("action", "save"),
            ("smtp.authentication", "plain"),
            ("smtp.username", "u"),
            ("smtp.password", pw),
            ("smtp.tls", "off"),
            ("smtp.address", "127.0.0.1"),
            ("smtp.port", "1"),
        ],
        &["Sec-Fetch-Site: same-origin"],
    );
    assert_eq!(code, 303);
    for path in [
        "/setup/settings",
        "/setup/runs",
        "/setup/runs/1",
        "/setup/runs/2",
        "/setup/nope",
    ] {
        let (_, head, body) = c.get(path);
        assert!(!body.contains(pw) && !head.contains(pw), "{path}");
    }
    h.stop();
}

#[test]
fn sign_in_failures_are_throttled_and_logged_with_the_address() {
    let dir = TempDir::new("pages-throttle");
    let h = start(&dir, "");
    let c = Console::new(&h, &dir);
    let try_once = |password: &str| {
        let (_, _, body) = c.get("/setup/login");
        let token = between(&body, "name=\"_login\" value=\"", "\"");
        c.post(
            "/setup/login",
            &[("_login", &token), ("password", password)],
            &["Sec-Fetch-Site: same-origin"],
        )
    };
    let mut codes = Vec::new();
    for i in 0..5 {
        let (code, _, body) = try_once(&format!("guess-{i}"));
        codes.push(code);
        if code == 401 {
            assert!(body.contains("That password is not right."));
        }
    }
    assert_eq!(&codes[..3], [401, 401, 401], "{codes:?}");
    assert_eq!(codes[3], 429, "{codes:?}");
    let (_, head, body) = try_once(&h.initial_password());
    assert!(head.contains("Retry-After: "), "{head}");
    assert!(
        body.contains("Too many sign-in attempts"),
        "even the right password waits its turn"
    );
    assert!(
        h.log()
            .contains("console: a wrong password from 127.0.0.1 (3 failures)"),
        "{}",
        h.log()
    );
    // A login form from another page: refused, with a fresh form.
    let (code, _, body) = c.post(
        "/setup/login",
        &[("_login", "forged"), ("password", "x")],
        &[],
    );
    assert_eq!(code, 403);
    assert!(body.contains("The sign-in form had expired"));
    h.stop();
}

/// Waits (at most [`WAIT`]) for run `id` to end; its report.
fn wait_run(h: &Herald, id: u64) -> Json {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, run) = api(h, "GET", &format!("/manage/v1/config/apply?run_id={id}"));
        if run["running"] == false {
            return run;
        }
        assert!(std::time::Instant::now() < deadline, "run {id} did not end");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn api(h: &Herald, method: &str, path: &str) -> (u16, Json) {
    let (code, body) = h.control_request(method, path, &[], None);
    (code, serde_json::from_str(&body).unwrap_or(Json::Null))
}

#[test]
fn runs_through_the_api_and_the_cli_and_a_run_that_cannot_bind_is_rolled_back() {
    let dir = TempDir::new("pages-runs");
    let mut h = start(&dir, "");
    let smtp = h.smtp_port();
    assert_eq!(api(&h, "GET", "/manage/v1/config/apply").0, 404);
    // A run of a change, followed to the end by the CLI.
    let o = h.cli(&["config", "set", "inbound.tls_enforced", "true"]);
    assert!(o.status.success());
    let o = h.cli(&["config", "apply", "--wait"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("inbound_check  success") && out.contains("success in "),
        "{out}"
    );
    let (code, run) = api(&h, "GET", "/manage/v1/config/apply");
    assert_eq!(code, 200);
    assert_eq!(
        (run["running"].clone(), run["successful"].clone()),
        (Json::Bool(false), Json::Bool(true))
    );
    assert_eq!(run["nodes"][0]["successful"], true);
    assert_eq!(run["status"], "success");
    assert_eq!(run["changed"], serde_json::json!(["inbound.tls_enforced"]));
    let (code, events) = api(
        &h,
        "GET",
        &format!("/manage/v1/config/apply/events?run_id={}", run["run_id"]),
    );
    assert_eq!(code, 200);
    let list = events["nodes"][0]["events"].as_array().unwrap();
    assert!(list.len() >= 4);
    for e in list {
        for k in [
            "timestamp",
            "severity_text",
            "body",
            "event_name",
            "config_run_id",
        ] {
            assert!(e.get(k).is_some(), "{k} in {e}");
        }
    }
    // The new listener is in force: no STARTTLS, no MAIL.
    let mut cmd = Command::new("swaks");
    cmd.args([
        "--server",
        &format!("127.0.0.1:{smtp}"),
        "--to",
        "x@noreply.herald.test",
        "--quit-after",
        "MAIL",
    ]);
    assert!(stdout(&run_with_deadline(cmd)).contains("530 5.7.0"));

    // A new address that cannot be bound (the console's own port): the run fails at its step,
    // what changed is put back, and the old listener goes on answering.
    let taken = format!("127.0.0.1:{}", h.console_port);
    assert!(
        h.cli(&[
            "config",
            "set",
            "inbound.listen",
            &taken,
            "inbound.tls_enforced",
            "false"
        ])
        .status
        .success()
    );
    let o = h.cli(&["config", "apply", "--wait"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("failed: inbound: cannot listen on inbound.listen"),
        "{}",
        stderr(&o)
    );
    let (_, run) = api(&h, "GET", "/manage/v1/config/apply");
    assert_eq!(run["status"], "failed");
    assert_eq!(run["successful"], false);
    let inbound = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "inbound")
        .unwrap();
    assert_eq!(inbound["status"], "failed");
    let status_of = |run: &Json, name: &str| -> String {
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["status"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(status_of(&run, "apply"), "not_run", "{run:#}");
    let mut cmd = Command::new("swaks");
    cmd.args([
        "--server",
        &format!("127.0.0.1:{smtp}"),
        "--to",
        "x@noreply.herald.test",
        "--quit-after",
        "MAIL",
    ]);
    let out = stdout(&run_with_deadline(cmd));
    assert!(
        out.contains("530 5.7.0"),
        "the old settings still answer:\n{out}"
    );
    let keys = h.control_get("/manage/v1/config/keys");
    let listen = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "inbound.listen")
        .unwrap()
        .clone();
    assert_eq!(
        listen["pending"], true,
        "still saved, not in force: {listen}"
    );
    // One run at a time: while one waits on an SMTP server that never greets, a second
    // request gets 409 naming it; the first then fails at that step and changes nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    assert!(
        h.cli(&[
            "config",
            "set",
            "inbound.listen",
            "127.0.0.1:0",
            "smtp.port",
            &port
        ])
        .status
        .success()
    );
    let (first, a) = api(&h, "POST", "/manage/v1/config/apply");
    assert_eq!(first, 202, "{a}");
    let (second, b) = api(&h, "POST", "/manage/v1/config/apply");
    assert_eq!(second, 409, "{b}");
    assert_eq!(b["run_id"], a["run_id"]);
    assert!(
        b["message"].as_str().unwrap().contains("is going on"),
        "{b}"
    );
    let o = h.cli(&["config", "apply", "--wait"]);
    assert_eq!(o.status.code(), Some(1), "busy: {}", stderr(&o));
    let id = a["run_id"].as_u64().unwrap();
    let run = wait_run(&h, id);
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        run["error"].as_str().unwrap().starts_with("smarthost: "),
        "{run:#}"
    );
    // The new port-25 listener had been put in force; the failed run put the old one back, and
    // says so. The console's identity did not change, so nothing of it was rolled back.
    assert_eq!(status_of(&run, "inbound"), "rolled_back", "{run:#}");
    assert_eq!(status_of(&run, "console"), "success", "{run:#}");
    assert_eq!(status_of(&run, "webhook"), "not_run", "{run:#}");
    drop(silent);
    h.stop();
}

#[test]
fn the_password_typed_for_a_test_is_the_one_saved_next() {
    let dir = TempDir::new("pages-typed-password");
    let h = start(&dir, "");
    let c = Console::new(&h, &dir);
    let csrf = c.sign_in();
    let (port, server) = hostile_smtp();
    let pw = "Typed-For-The-Test-0";
    let (code, _, body) = c.post(
        "/setup/settings",
        &[
            ("_csrf", &csrf),
            ("action", "test"),
            ("test_to", "admin@example.org"),
            ("smtp.address", "127.0.0.1"),
            ("smtp.port", &port.to_string()),
            ("smtp.tls", "off"),
            ("smtp.authentication", "plain"),
            ("smtp.username", "u"),
            ("smtp.password", pw),
        ],
        &["Sec-Fetch-Site: same-origin"],
    );
    server.join().unwrap();
    assert_eq!(code, 422, "the hostile server refuses");
    assert!(!body.contains(pw), "never shown back");
    assert!(body.contains("kept for this sign-in"), "{body}");
    // Saved with the field left empty, as the browser sends it after the test page.
    let (code, _, _) = c.post(
        "/setup/settings",
        &[
            ("_csrf", &csrf),
            ("action", "save"),
            ("smtp.address", "127.0.0.1"),
            ("smtp.port", &port.to_string()),
            ("smtp.tls", "off"),
            ("smtp.authentication", "plain"),
            ("smtp.username", "u"),
            ("smtp.password", ""),
        ],
        &["Sec-Fetch-Site: same-origin"],
    );
    assert_eq!(code, 303);
    let (_, _, body) = c.get("/setup/settings");
    assert!(body.contains("A password is saved."), "{body}");
    assert!(!body.contains(pw));
    h.stop();
}
