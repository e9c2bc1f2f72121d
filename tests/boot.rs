//! Headless boot: first boot, unchanged and changed config files, bad files, dev defaults.

use crate::harness::*;
use std::os::unix::fs::PermissionsExt;

fn get(h: &Herald, key: &str) -> String {
    let o = h.cli(&["config", "get", key]);
    assert!(o.status.success(), "config get {key}: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

#[test]
fn first_boot_imports_the_file_and_makes_secrets_once() {
    let dir = TempDir::new("first-boot");
    let cfg = dir.write("herald.toml", &test_config("[smtp]\nport = 2525\n"));
    let data = dir.join("data");
    let h = Herald::start(Some(&cfg), &data);
    assert_eq!(get(&h, "hostname"), "herald.test");
    assert_eq!(get(&h, "smtp.port"), "2525");

    let pw_file = data.join("initial-console-password");
    let mode = std::fs::metadata(&pw_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "initial-console-password mode");
    let password = h.initial_password();
    assert_eq!(password.len(), 23, "{password}");
    let token = get_secret(&h, "api.token");
    let secret = get_secret(&h, "replies.webhook_secret");
    assert_eq!(token.len(), 64);
    assert_eq!(secret.len(), 64);
    assert_ne!(token, secret);
    assert!(
        !h.log().contains(&password) && !h.log().contains(&token),
        "secrets in the log"
    );
    let cert = dir.join("first.pem");
    std::fs::copy(fetch_cert(&h, &dir), &cert).unwrap();
    h.stop();

    // Second boot, same file: nothing is made again.
    let h = Herald::start(Some(&cfg), &data);
    assert_eq!(h.initial_password(), password);
    assert_eq!(get_secret(&h, "api.token"), token);
    assert_eq!(get_secret(&h, "replies.webhook_secret"), secret);
    let again = fetch_cert(&h, &dir);
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        std::fs::read(again).unwrap(),
        "same certificate"
    );
    let (code, _) = curl(
        &h,
        &cert,
        &["-u", &format!("api_key:{password}")],
        "/manage/v1/config/settings",
    );
    assert_eq!(code, 200, "the first-boot password still logs in");
    h.stop();
}

fn get_secret(h: &Herald, key: &str) -> String {
    let o = h.cli(&["config", "get", key, "--reveal"]);
    assert!(o.status.success(), "reveal {key}: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

#[test]
fn unchanged_file_keeps_console_saved_settings_and_changed_file_is_reimported() {
    let dir = TempDir::new("reimport");
    let cfg = dir.write("herald.toml", &test_config("[smtp]\nport = 2525\n"));
    let data = dir.join("data");
    let h = Herald::start(Some(&cfg), &data);
    let o = h.cli(&["config", "set", "smtp.port", "2626"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let token = get_secret(&h, "api.token");
    h.stop();

    // Same file: the console-saved value stands (and pending settings are applied at boot).
    let mut h = Herald::start(Some(&cfg), &data);
    h.wait_for_log("unchanged since its last import");
    assert_eq!(get(&h, "smtp.port"), "2626");
    let keys = h.cli(&["config", "get"]);
    assert!(
        !stdout(&keys).contains("pending"),
        "applied at boot: {}",
        stdout(&keys)
    );
    h.stop();

    // Edited file: imported again, generated secrets kept.
    dir.write(
        "herald.toml",
        &test_config("[smtp]\nport = 465\ntls = \"implicit\"\n"),
    );
    let mut h = Herald::start(Some(&cfg), &data);
    h.wait_for_log("config file changed: re-importing");
    assert_eq!(get(&h, "smtp.port"), "465");
    assert_eq!(get(&h, "smtp.tls"), "implicit");
    assert_eq!(
        get_secret(&h, "api.token"),
        token,
        "generated secrets survive a re-import"
    );
    h.stop();
}

#[test]
fn provisioned_secrets_are_taken_and_nothing_is_generated() {
    let dir = TempDir::new("provisioned");
    let cfg = dir.write(
        "herald.toml",
        &test_config(
            "[api]\ntoken = \"provisioned-token-0123456789\"\n[replies]\nwebhook_secret = \"provisioned-secret-0123456789\"\n[console]\npassword = \"provisioned-password\"\n",
        ),
    );
    // test_config already has a [console] table: merge by writing the password as a dotted key.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[console]\npassword = \"provisioned-password\"\n", "");
    let text = text.replace(
        "[console]\n",
        "[console]\npassword = \"provisioned-password\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let data = dir.join("data");
    let h = Herald::start(Some(&cfg), &data);
    assert!(!data.join("initial-console-password").exists());
    assert_eq!(get_secret(&h, "api.token"), "provisioned-token-0123456789");
    let cert = fetch_cert(&h, &dir);
    let (code, _) = curl(
        &h,
        &cert,
        &["-u", "api_key:provisioned-password"],
        "/manage/v1/config/settings",
    );
    assert_eq!(code, 200);
    assert!(!h.log().contains("provisioned-password"));
    h.stop();
}

#[test]
fn a_bad_config_file_stops_the_boot_and_touches_nothing() {
    let dir = TempDir::new("bad-config");
    let cfg = dir.write(
        "herald.toml",
        &test_config("[smtp]\nenabled = true\naddress = \"smtp.example.com\"\nport = 70000\n"),
    );
    let data = dir.join("data");
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--data")
        .arg(&data);
    let o = run_with_deadline(cmd);
    assert_eq!(o.status.code(), Some(78), "EX_CONFIG");
    let err = stderr(&o);
    assert!(err.contains("line 12: smtp.port: "), "{err}");
    assert!(err.contains("1 to 65535"), "{err}");
    assert!(err.contains("herald.toml"), "names the file: {err}");
    assert!(!data.exists(), "the data directory was created");

    // With an existing data directory: nothing in it changes.
    let good = dir.write("good.toml", &test_config(""));
    let h = Herald::start(Some(&good), &data);
    h.stop();
    let before = snapshot(&data);
    dir.write(
        "herald.toml",
        &test_config("[smtp]\nsupport_address = \"support.example.com\"\nbogus = 1\n"),
    );
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--data")
        .arg(&data);
    let o = run_with_deadline(cmd);
    assert_eq!(o.status.code(), Some(78));
    let err = stderr(&o);
    assert!(
        err.contains("smtp.support_address") && err.contains("http://"),
        "{err}"
    );
    assert!(err.contains("smtp.bogus: unknown setting"), "{err}");
    assert_eq!(snapshot(&data), before, "data directory touched");

    // Not TOML at all.
    dir.write("herald.toml", "hostname = \n");
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--data")
        .arg(&data);
    let o = run_with_deadline(cmd);
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("line 1"), "{}", stderr(&o));
}

#[test]
fn no_config_runs_on_dev_defaults_and_says_where() {
    let dir = TempDir::new("dev");
    let data = dir.join("data");
    let mut h = Herald::start(None, &data);
    assert_eq!(h.console_port, 8443, "dev default console.listen");
    let inbound = h.wait_for_log("inbound SMTP");
    assert!(inbound.contains("127.0.0.1:2525"), "{inbound}");
    assert_eq!(get(&h, "hostname"), "localhost");
    assert_eq!(get(&h, "console.listen"), "127.0.0.1:8443");
    h.stop();
}
