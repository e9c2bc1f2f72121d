//! The files the appliance image bakes in: the unit passes `systemd-analyze verify`, the firewall
//! rules and the boot config check out (scripts/check-board.sh), and the board config boots.

use crate::harness::*;

#[test]
fn board_files_check_out() {
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(format!("{ROOT}/scripts/check-board.sh")).arg(BIN);
    let o = run_with_deadline(cmd);
    assert!(
        o.status.success(),
        "check-board:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(stdout(&o).contains("board: ok"));
}

#[test]
fn the_board_config_boots() {
    let dir = TempDir::new("board");
    let text = std::fs::read_to_string(format!("{ROOT}/board/herald.toml")).unwrap();
    // The board's ports (25, 8443) are the appliance's; tests use free ones.
    let text = text
        .replace("\"0.0.0.0:25\"", "\"127.0.0.1:0\"")
        .replace("\"0.0.0.0:8443\"", "\"127.0.0.1:0\"");
    assert_eq!(
        text.matches("127.0.0.1:0").count(),
        2,
        "board listen addresses changed"
    );
    let cfg = dir.write("herald.toml", &text);
    let h = Herald::start(Some(&cfg), &dir.join("data"));
    let o = h.cli(&["config", "get", "hostname"]);
    assert_eq!(stdout(&o).trim(), "herald.example.com");
    h.stop();
}
