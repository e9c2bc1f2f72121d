//! The command line against a running service and a stopped one.

use crate::harness::*;

#[test]
fn commands_say_clearly_when_the_service_is_not_running() {
    let dir = TempDir::new("not-running");
    for args in [
        &["config", "get"][..],
        &["config", "get", "smtp.port"],
        &["config", "set", "smtp.port", "25"],
        &["version"],
    ] {
        let o = cli(dir.path(), args);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains("herald is not running"), "{args:?}: {err}");
        assert!(err.contains("control.sock"), "{args:?}: {err}");
    }
}

#[test]
fn usage_errors() {
    let dir = TempDir::new("usage");
    for (args, words) in [
        (&["frobnicate"][..], "unknown command `frobnicate`"),
        (&["config", "set", "smtp.port"], "wrong arguments"),
        (&["config", "get", "--bogus"], "unknown option `--bogus`"),
        (&["version", "--reveal"], "--reveal goes with"),
    ] {
        let o = cli(dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(words), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("usage:"), "{args:?}");
    }
    let o = cli(dir.path(), &["help"]);
    assert!(o.status.success() && stdout(&o).contains("herald config set KEY VALUE"));
}

#[test]
fn config_get_set_and_version_through_the_control_socket() {
    let dir = TempDir::new("cli");
    let cfg = dir.write("herald.toml", &test_config(""));
    let h = Herald::start(Some(&cfg), &dir.join("data"));

    let o = h.cli(&["config", "set", "smtp.port", "70000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("smtp.port: ") && stderr(&o).contains("1 to 65535"),
        "{}",
        stderr(&o)
    );

    let o = h.cli(&["config", "set", "smtp.bogus", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("smtp.bogus: unknown setting"),
        "{}",
        stderr(&o)
    );

    let o = h.cli(&["config", "get", "smtp.bogus"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown setting `smtp.bogus`"));

    let o = h.cli(&["config", "set", "smtp.authentication", "login"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("smtp.username: required"),
        "{}",
        stderr(&o)
    );

    let o = h.cli(&["config", "set", "smtp.password", "hunter2-smtp"]);
    assert!(o.status.success());
    assert!(!stdout(&o).contains("hunter2"), "{}", stdout(&o));
    let o = h.cli(&["config", "set", "smtp.port", "2525"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("pending"));

    let o = h.cli(&["config", "get"]);
    let out = stdout(&o);
    assert!(
        out.contains("smtp.port=2525  # pending; applied: 587"),
        "{out}"
    );
    assert!(
        out.contains("smtp.password=********  # pending; applied: "),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "{out}");
    assert!(out.contains("api.token=********"));

    let o = h.cli(&["config", "get", "smtp.port"]);
    assert_eq!(stdout(&o), "2525\n");
    assert!(stderr(&o).contains("pending"));

    let o = h.cli(&["config", "get", "console.password", "--reveal"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot be shown"), "{}", stderr(&o));
    let o = h.cli(&["config", "get", "smtp.password", "--reveal"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty(), "smtp.password is write-only");
    assert!(stderr(&o).contains("write-only"), "{}", stderr(&o));

    // Several keys in one save (a certificate and its key only make sense together); a value
    // that starts with dashes after `--`.
    let o = h.cli(&[
        "config",
        "set",
        "smtp.domain",
        "example.org",
        "smtp.username",
        "mailer",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--data")
        .arg(&h.data)
        .args(["config", "set", "--", "smtp.password", "--dashes--"]);
    let o = run_with_deadline(cmd);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = h.cli(&[
        "config",
        "set",
        "smtp.domain",
        "a.example",
        "smtp.domain",
        "b.example",
    ]);
    assert!(stderr(&o).contains("given twice"), "{}", stderr(&o));
    assert!(!h.log().contains("hunter2"), "secret in the log");

    let o = h.cli(&["version"]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains(&format!("herald {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("service "));
    h.stop();
}

/// `config set KEY -` reads the value from standard input, so a password never stands in the
/// process list or the shell's history.
#[test]
fn a_value_given_as_dash_is_read_from_standard_input() {
    let dir = TempDir::new("cli-stdin");
    let cfg = dir.write(
        "herald.toml",
        &test_config(
            "[smtp]\nauthentication = \"plain\"\nusername = \"u\"\npassword = \"old-one\"\n",
        ),
    );
    let h = Herald::start(Some(&cfg), &dir.join("data"));
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["config", "set", "smtp.password", "-", "--data"])
        .arg(&h.data);
    let o = run_with_input(cmd, b"s3cret from stdin\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "smtp.password=********  # saved as pending; `herald config apply` puts it in force"
    );
    assert!(!stdout(&o).contains("s3cret") && !stderr(&o).contains("s3cret"));
    // The saved value is the one from stdin: a test email against a server that checks it is
    // in the outbound tests; here, that it changed and is still masked.
    let keys = h.control_get("/manage/v1/config/keys");
    let pw = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "smtp.password")
        .unwrap();
    assert_eq!(pw["value"], "********");
    assert_eq!(pw["pending"], true, "{pw:#}");
    // Nothing on stdin: refused, nothing saved; two keys from stdin: refused.
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["config", "set", "smtp.username", "-", "--data"])
        .arg(&h.data);
    let o = run_with_input(cmd, b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no value for smtp.username on standard input"),
        "{}",
        stderr(&o)
    );
    let o = h.cli(&["config", "set", "smtp.username", "-", "smtp.password", "-"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("only one value can be read from standard input"));
    h.stop();
}
