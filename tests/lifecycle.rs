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
