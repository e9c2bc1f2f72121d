//! `<data>/logs/mail.log`: Postfix-style lines (`Nov 28 09:38:03 host herald/smtpd[pid]: ...`),
//! one queue id per accepted message, so Postfix log tools (pflogsumm with
//! `--syslog-name=herald`) read it. The lines of one event are written with one append.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The syslog name in every line: `herald/smtpd`, `herald/cleanup`, ...
pub const SYSLOG_NAME: &str = "herald";

/// When `mail.log` passes this size it is renamed `mail.log.1` (replacing the previous one)
/// and a new one is started, so the log cannot fill the disk.
pub const ROTATE_AT: u64 = 64 << 20;

pub struct MailLog {
    file: Mutex<(File, u64)>,
    path: PathBuf,
    host: String,
    pid: u32,
}

impl MailLog {
    /// Opens (appending, creating with mode 0640) `path`, making its folder.
    pub fn open(path: &Path, hostname: &str) -> std::io::Result<MailLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = open(path)?;
        let size = file.metadata()?.len();
        Ok(MailLog {
            file: Mutex::new((file, size)),
            path: path.to_path_buf(),
            // syslog writes the short host name.
            host: hostname.split('.').next().unwrap_or(hostname).to_string(),
            pid: std::process::id(),
        })
    }

    /// Writes lines as `(program, text)`, all with the same time stamp, in one append.
    pub fn write(&self, lines: &[(&str, String)]) {
        let stamp = crate::clock::syslog(SystemTime::now());
        let mut buf = String::with_capacity(
            lines
                .iter()
                .map(|(p, t)| stamp.len() + self.host.len() + p.len() + t.len() + 32)
                .sum(),
        );
        for (program, text) in lines {
            use std::fmt::Write as _;
            let _ = write!(
                buf,
                "{stamp} {} {SYSLOG_NAME}/{program}[{}]: ",
                self.host, self.pid
            );
            // A control character (a CR or LF from a peer above all) would forge a line.
            buf.extend(text.chars().map(|c| if c.is_control() { '?' } else { c }));
            buf.push('\n');
        }
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = f.0.write_all(buf.as_bytes()) {
            log::warn!("mail.log: {e}");
        }
        f.1 += buf.len() as u64;
        if f.1 >= ROTATE_AT {
            let old = self.path.with_extension("log.1");
            match std::fs::rename(&self.path, &old).and_then(|()| open(&self.path)) {
                Ok(new) => *f = (new, 0),
                Err(e) => log::warn!("mail.log: cannot rotate: {e}"),
            }
        }
    }

    /// Rotates now, whatever the size (tests).
    #[cfg(test)]
    fn force_rotate(&self) {
        let mut f = self.file.lock().unwrap();
        f.1 = ROTATE_AT;
        drop(f);
        self.write(&[("test", "rotate".into())]);
    }

    pub fn line(&self, program: &str, text: String) {
        self.write(&[(program, text)]);
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_postfix_shaped_and_the_file_rotates() {
        let dir = std::env::temp_dir().join(format!("herald-maillog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("logs/mail.log");
        let log = MailLog::open(&path, "mx.example.test").unwrap();
        log.line(
            "smtpd",
            "connect from unknown[127.0.0.1]\r\nfake line".into(),
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text.lines().next().unwrap();
        assert!(line.contains(" mx herald/smtpd["), "{line}");
        assert!(
            line.ends_with("]: connect from unknown[127.0.0.1]??fake line"),
            "{line}"
        );
        assert_eq!(text.lines().count(), 1, "no line injection");
        log.force_rotate();
        log.line("smtpd", "after".into());
        assert!(
            std::fs::read_to_string(dir.join("logs/mail.log.1"))
                .unwrap()
                .contains("rotate")
        );
        let now = std::fs::read_to_string(&path).unwrap();
        assert!(
            now.contains("after") && !now.contains("connect from"),
            "{now}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
