//! Signals, the single-instance lock, the control socket's permissions.

use crate::harness::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn sigterm_and_sigint_drain_and_exit_zero() {
    for sig in ["TERM", "INT"] {
        let dir = TempDir::new("signal");
        let cfg = dir.write("herald.toml", &test_config(""));
        let data = dir.join("data");
        let h = Herald::start(Some(&cfg), &data);
        let sock = data.join("control.sock");
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "control.sock mode");
        let dmode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700, "data directory mode");
        let st = h.signal(sig);
        assert_eq!(st.code(), Some(0), "exit after SIG{sig}");
        assert!(!sock.exists(), "control.sock removed on exit");
    }
}

#[test]
fn a_second_start_on_the_same_data_dir_is_refused() {
    let dir = TempDir::new("twice");
    let cfg = dir.write("herald.toml", &test_config(""));
    let data = dir.join("data");
    let h = Herald::start(Some(&cfg), &data);
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--data")
        .arg(&data);
    let o = run_with_deadline(cmd);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("already running"), "{err}");
    assert!(err.contains(&h.pid().to_string()), "names the pid: {err}");
    // The first one is unharmed.
    let o = h.cli(&["config", "get", "hostname"]);
    assert!(o.status.success(), "{}", stderr(&o));
    h.stop();
}

#[test]
fn saved_settings_survive_a_restart() {
    let dir = TempDir::new("flush");
    let data = dir.join("data");
    let cfg = dir.write("herald.toml", &test_config(""));
    let h = Herald::start(Some(&cfg), &data);
    for (k, v) in [
        ("smtp.address", "smtp.example.com"),
        ("smtp.enabled", "true"),
        ("smtp.domain", "example.org"),
    ] {
        let o = h.cli(&["config", "set", k, v]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    h.stop();
    let h = Herald::start(Some(&cfg), &data);
    let o = h.cli(&["config", "get"]);
    let out = stdout(&o);
    for line in [
        "smtp.address=smtp.example.com",
        "smtp.enabled=true",
        "smtp.domain=example.org",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing:\n{out}");
    }
    h.stop();
}

#[test]
fn an_existing_data_dir_is_made_owner_only() {
    let dir = TempDir::new("perm");
    let cfg = dir.write("herald.toml", &test_config(""));
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let h = Herald::start(Some(&cfg), &data);
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    h.stop();
}

/// A console request whose body never finishes does not keep SIGTERM from ending the process.
#[test]
fn sigterm_with_a_stalled_https_request_still_exits_zero() {
    let dir = TempDir::new("stalled");
    let cfg = dir.write("herald.toml", &test_config(""));
    let h = Herald::start(Some(&cfg), &dir.join("data"));
    let auth = format!("api_key:{}", h.initial_password());
    let script = format!(
        r#"
import base64, socket, ssl, sys, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
conns = []
for _ in range(6):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port})), server_hostname="herald.test")
    s.sendall(b"PUT /manage/v1/config/settings HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + base64.b64encode(b"{auth}") + b"\r\nContent-Length: 100000\r\n\r\n{{")
    conns.append(s)
print("held", flush=True)
time.sleep(30)
"#,
        port = h.console_port
    );
    let mut client = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(client.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let st = h.signal("TERM");
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(st.code(), Some(0));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
