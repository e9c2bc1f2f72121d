//! A full data disk, on a small tmpfs the test mounts itself: new mail and notifications are
//! refused for the moment (452 4.3.1, 507), nothing accepted is lost, herald starts on a disk
//! with no byte free and serves the console, and it takes mail again as soon as there is room.

use crate::harness::*;
use crate::inbound::common::swaks;
use crate::outbound::common::{Api, notification};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs of `mib` MiB mounted on a fresh folder; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` when this machine does not let the test mount (not root): said on stderr.
    fn mount(dir: &TempDir, mib: u32) -> Option<Tmpfs> {
        let at = dir.join("small-disk");
        std::fs::create_dir_all(&at).unwrap();
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(&at)
            .output()
            .unwrap();
        if !o.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here ({}); run as root to test a full disk",
                stderr(&o).trim()
            );
            return None;
        }
        Some(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` with `name` until at most `leave` bytes are free.
fn fill(dir: &Path, name: &str, leave: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join(name)).unwrap();
    let chunk = vec![0u8; 1 << 20];
    loop {
        let free = free_bytes(dir);
        if free <= leave {
            break;
        }
        let n = ((free - leave) as usize).min(chunk.len());
        if f.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
}

fn free_bytes(dir: &Path) -> u64 {
    let o = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    stdout(&o)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

/// swaks's output, and whether it ended in a 250 for the message.
fn send(port: u16, to: &str) -> (bool, String) {
    let o = swaks(port, &["--to", to, "--body", "a reply"]);
    let out = stdout(&o);
    (out.contains("250 2.0.0 Ok: queued as"), out)
}

#[test]
fn a_full_disk_refuses_mail_for_the_moment_and_herald_still_starts_and_recovers() {
    let dir = TempDir::new("full-disk");
    let Some(fs) = Tmpfs::mount(&dir, 200) else {
        return;
    };
    let data = fs.0.join("data");
    let cfg = dir.write("herald.toml", &inbound_config(""));
    let mut h = Herald::start(Some(&cfg), &data);
    let port = h.smtp_port();
    let to = h.reply_address("issue", 5, 6);
    let (ok, out) = send(port, &to);
    assert!(ok, "{out}");
    assert_eq!(h.replies().len(), 1);

    // Nearly full: the next message is refused with a temporary error at DATA, a notification
    // with 507; what was accepted stays.
    fill(&fs.0, "fill-1", 8 << 20);
    h.wait_for_log("is nearly full");
    let (ok, out) = send(port, &to);
    assert!(!ok, "accepted on a full disk:\n{out}");
    assert!(
        out.contains("452 4.3.1 Insufficient system storage"),
        "{out}"
    );
    let api = Api::new(&h);
    let (code, body) = api.post(&notification("bob@example.org", "issue", 5, 6));
    assert_eq!(code, 507, "{body:#}");
    assert!(
        body["message"].as_str().unwrap().contains("nearly full"),
        "{body:#}"
    );
    assert_eq!(h.replies().len(), 1, "the accepted reply is kept");
    assert!(h.mail_log().contains("NOQUEUE: reject: DATA from"));
    h.stop();

    // Not a byte free: herald still starts (it gives back its reserve), serves the console and
    // the control socket, and says why mail waits.
    fill(&fs.0, "fill-2", 0);
    assert!(free_bytes(&fs.0) < 1 << 20);
    let mut h = Herald::start(Some(&cfg), &data);
    h.wait_for_log("gave back herald's 16 MiB reserve to start");
    let version = h.control_get("/manage/v1/version");
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    let cert_dir = TempDir::new("full-disk-cert");
    let (code, _) = curl(&h, &fetch_cert(&h, &cert_dir), &[], "/manage/v1/version");
    assert_eq!(code, 401, "the console answers (and asks for credentials)");
    let port = h.smtp_port();
    let (ok, out) = send(port, &to);
    assert!(!ok && out.contains("452 4.3.1"), "{out}");

    // Space comes back: mail is taken again within seconds, and nothing was lost.
    std::fs::remove_file(fs.0.join("fill-1")).unwrap();
    std::fs::remove_file(fs.0.join("fill-2")).unwrap();
    h.wait_for_log("has room again");
    let deadline = Instant::now() + WAIT;
    loop {
        let (ok, out) = send(port, &to);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "still refused:\n{out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let replies = h.replies();
    assert_eq!(replies.len(), 2, "{replies:#?}");
    assert!(replies.iter().all(|r| r["status"] == "pending"));
    h.stop();
}
