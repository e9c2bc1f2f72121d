//! Starting and stopping the real binary, temp directories, running peers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_herald");
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// How long anything in a test may take before the test fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(30);

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "herald-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config file for tests: free ports, a test host name, plus `extra` TOML.
pub fn test_config(extra: &str) -> String {
    // The diagnostics' DNS checks ask a closed loopback port unless a test gives them a server
    // of its own: tests never query DNS beyond this machine.
    let dns = if extra.contains("[diagnostics]") {
        ""
    } else {
        "\n[diagnostics]\nnameservers = \"127.0.0.1:9\"\n"
    };
    format!(
        "hostname = \"herald.test\"\n\n[console]\nlisten = \"127.0.0.1:0\"\n\n[inbound]\nlisten = \"127.0.0.1:0\"\n\n{extra}{dns}"
    )
}

/// A config file with inbound SMTP on (`smtp.enabled`, which needs `smtp.address`), listening on
/// a free loopback port. `inbound` is extra `key = value` lines for the `[inbound]` table
/// (`tls_enforced = true`, `max_connections = 2`, ...).
pub fn inbound_config(inbound: &str) -> String {
    // test_config's `extra` starts inside its `[inbound]` table.
    test_config(&format!(
        "{inbound}\n\n[smtp]\nenabled = true\naddress = \"127.0.0.1\"\n"
    ))
}

/// A peer program: from `PATH`, else from `/usr/sbin` (smtp-source and pflogsumm live there and
/// a non-root `PATH` may lack it).
pub fn tool(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    for dir in ["/usr/sbin", "/usr/bin", "/sbin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed: run scripts/test-deps.sh");
}

/// stderr of a running herald, collected line by line.
#[derive(Default)]
struct Log {
    text: Mutex<String>,
    grew: Condvar,
}

/// A running `herald run`.
pub struct Herald {
    child: Option<Child>,
    log: Arc<Log>,
    pub data: PathBuf,
    pub console_port: u16,
}

impl Herald {
    /// Starts herald and waits until it is ready; panics with its output if it is not.
    pub fn start(config: Option<&Path>, data: &Path) -> Herald {
        Herald::start_with(Path::new(BIN), &[], config, data)
    }

    /// [`Herald::start`] with another build of herald (`bin`) and extra environment.
    pub fn start_with(
        bin: &Path,
        env: &[(&str, &str)],
        config: Option<&Path>,
        data: &Path,
    ) -> Herald {
        let mut h = Herald::spawn(bin, env, config, data);
        h.wait_ready();
        h
    }

    /// Starts herald without waiting for it to be ready (it may be meant to die).
    pub fn spawn(bin: &Path, env: &[(&str, &str)], config: Option<&Path>, data: &Path) -> Herald {
        let mut cmd = Command::new(bin);
        cmd.arg("run").arg("--data").arg(data);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herald");
        let log = Arc::new(Log::default());
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut t = sink.text.lock().unwrap();
                t.push_str(&line);
                t.push('\n');
                sink.grew.notify_all();
            }
        });
        Herald {
            child: Some(child),
            log,
            data: data.to_path_buf(),
            console_port: 0,
        }
    }

    /// Waits until a spawned herald is ready, and learns its console port.
    pub fn wait_ready(&mut self) {
        let h = self;
        let line = h.wait_for_log("console listening on https://");
        let port = line
            .split("https://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        h.console_port = port;
        h.wait_for_log("ready");
    }

    /// Waits (at most [`WAIT`]) for the process to exit by itself; its status.
    pub fn wait_death(&mut self) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "herald did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a log line containing `needle`; returns that line.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut text = self.log.text.lock().unwrap();
        loop {
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                drop(text);
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "herald exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("herald did not log {needle:?} in time:\n{text}");
            }
            text = self
                .log
                .grew
                .wait_timeout(text, left.min(Duration::from_millis(100)))
                .unwrap()
                .0;
        }
    }

    pub fn log(&self) -> String {
        self.log.text.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Runs a CLI command against this instance's data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.data, args)
    }

    /// Sends a signal and waits for the exit.
    pub fn signal(self, sig: &str) -> ExitStatus {
        self.send_signal(sig);
        self.wait_exit(sig)
    }

    /// Sends a signal without waiting (`KILL`, `TERM`, ...).
    pub fn send_signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the exit that SIG`sig` (already sent) causes.
    pub fn wait_exit(mut self, sig: &str) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("herald did not exit after SIG{sig}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and the exit must be clean.
    pub fn stop(self) {
        let log = self.log.clone();
        let st = self.signal("TERM");
        assert_eq!(
            st.code(),
            Some(0),
            "exit after SIGTERM:\n{}",
            log.text.lock().unwrap()
        );
    }

    /// The inbound SMTP port, from the `inbound SMTP listening on 127.0.0.1:PORT for ...` line.
    pub fn smtp_port(&mut self) -> u16 {
        let line = self.wait_for_log("inbound SMTP listening on ");
        line.split("listening on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    /// A valid reply address from `herald reply-address KIND THREAD USER`.
    pub fn reply_address(&self, kind: &str, thread: u64, user: u64) -> String {
        let o = self.cli(&[
            "reply-address",
            kind,
            &thread.to_string(),
            &user.to_string(),
        ]);
        assert!(o.status.success(), "reply-address: {}", stderr(&o));
        let addr = stdout(&o).trim().to_string();
        assert!(addr.ends_with("@reply.herald.test"), "{addr}");
        addr
    }

    /// `GET path` on the control socket; the body as JSON.
    pub fn control_get(&self, path: &str) -> serde_json::Value {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--fail-with-body",
            "--max-time",
            "20",
            "--unix-socket",
        ])
        .arg(self.data.join("control.sock"))
        .arg(format!("http://herald{path}"));
        let out = run_with_deadline(cmd);
        assert!(
            out.status.success(),
            "GET {path}: {} {}",
            stderr(&out),
            stdout(&out)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("GET {path}: {e}: {}", stdout(&out)))
    }

    /// The inbound log (`GET /manage/v1/replies?limit=1000`): one record per recipient, newest
    /// first.
    pub fn replies(&self) -> Vec<serde_json::Value> {
        let j = self.control_get("/manage/v1/replies?limit=1000");
        j["replies"].as_array().expect("a replies array").clone()
    }

    /// `<data>/logs/mail.log` (empty if not written yet).
    pub fn mail_log(&self) -> String {
        std::fs::read_to_string(self.data.join("logs/mail.log")).unwrap_or_default()
    }

    /// `https://herald.test:<port>` for curl with `--resolve`.
    pub fn url(&self, path: &str) -> String {
        format!("https://herald.test:{}{path}", self.console_port)
    }

    pub fn resolve_arg(&self) -> String {
        format!("herald.test:{}:127.0.0.1", self.console_port)
    }

    pub fn initial_password(&self) -> String {
        std::fs::read_to_string(self.data.join("initial-console-password"))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `herald ARGS --data DATA` to completion (with a deadline).
pub fn cli(data: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--data").arg(data);
    run_with_deadline(cmd)
}

/// Runs a command with no stdin and a deadline; panics if it hangs.
pub fn run_with_deadline(cmd: Command) -> Output {
    run(cmd, None)
}

/// Runs a command with `input` on its stdin and a deadline; panics if it hangs.
pub fn run_with_input(cmd: Command, input: &[u8]) -> Output {
    run(cmd, Some(input))
}

fn run(mut cmd: Command, input: Option<&[u8]>) -> Output {
    use std::io::Write;
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = child.id();
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_vec();
        // A writer thread, so a child that does not read cannot block us.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT * 2) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("{cmd:?} did not finish in time");
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `curl` against the console with the appliance certificate pinned and the name checked.
/// Returns (HTTP status, body).
pub fn curl(h: &Herald, cacert: &Path, args: &[&str], path: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "--resolve",
        &h.resolve_arg(),
        "--cacert",
    ])
    .arg(cacert)
    .args(["-w", "\n%{http_code}"])
    .args(args)
    .arg(h.url(path));
    let out = run_with_deadline(cmd);
    assert!(out.status.success(), "curl failed: {}", stderr(&out));
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

/// The certificate the console presents, fetched with `openssl s_client`, as PEM in `dir`.
pub fn fetch_cert(h: &Herald, dir: &TempDir) -> PathBuf {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", h.console_port))
        .args(["-servername", "herald.test", "-showcerts"]);
    let out = run_with_deadline(cmd);
    let text = stdout(&out);
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    dir.write("console.pem", &format!("{}\n", &text[start..end]))
}

/// Every file below `dir` with its size and modification time, to show nothing was touched.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.len(), m.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A free loopback TCP port (bound once and let go, so a peer that needs a fixed port can take
/// it; a port nobody listens on, for "the server is down").
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A peer process (a test SMTP server, ...) started in a process group of its own, its output
/// in a log file; the whole group is killed when the `Peer` is dropped, so it ends even when the
/// test panics. Give every peer its own time limit too (`--max-seconds`, `timeout`), for the
/// case where the test binary itself is killed.
pub struct Peer {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Peer {
    /// Spawns `cmd` with no stdin and stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Peer {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name} ({cmd:?}): {e}"));
        Peer {
            child: Some(child),
            log,
        }
    }

    /// The exit status if it has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What it wrote so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it: SIGTERM first (so a `timeout` wrapper passes it on and reaps its child), then
    /// SIGKILL to the whole process group after a moment; reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Herald {
    /// `METHOD path` on the control socket with extra `headers` (`"Name: value"`) and an
    /// optional JSON body. Returns (HTTP status, body).
    pub fn control_request(
        &self,
        method: &str,
        path: &str,
        headers: &[String],
        body: Option<&str>,
    ) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "40", "-X", method, "--unix-socket"])
            .arg(self.data.join("control.sock"))
            .args(["-w", "\n%{http_code}"]);
        for h in headers {
            cmd.arg("-H").arg(h);
        }
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        cmd.arg(format!("http://herald{path}"));
        let out = run_with_deadline(cmd);
        assert!(out.status.success(), "{method} {path}: {}", stderr(&out));
        let text = stdout(&out);
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_string())
    }

    /// `POST path` with a JSON body on the control socket; the answer, which must be a 2xx, as
    /// JSON.
    pub fn control_post(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let (code, text) = self.control_request("POST", path, &[], Some(&body.to_string()));
        assert!((200..300).contains(&code), "POST {path}: {code} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text}"))
    }

    /// A secret in the clear (`config get KEY --reveal`).
    pub fn secret(&self, key: &str) -> String {
        let o = self.cli(&["config", "get", key, "--reveal"]);
        assert!(o.status.success(), "reveal {key}: {}", stderr(&o));
        stdout(&o).trim().to_string()
    }

    /// `<data>/logs/enterprise-manage-logs/unicorn.log` (empty if not written yet).
    pub fn unicorn_log(&self) -> String {
        std::fs::read_to_string(self.data.join("logs/enterprise-manage-logs/unicorn.log"))
            .unwrap_or_default()
    }
}
