//! `<data>/logs/mail.log`: Postfix-style lines (`Nov 28 09:38:03 host herald/smtpd[pid]: ...`),
//! one queue id per accepted message, so Postfix log tools (pflogsumm with
//! `--syslog-name=herald`) read it. The lines of one event are written with one append; the
//! file rotates like every log ([`crate::logfile`]).

use crate::logfile::{LogFile, Rotating};
use std::path::Path;
use std::time::SystemTime;

/// The syslog name in every line: `herald/smtpd`, `herald/cleanup`, ...
pub const SYSLOG_NAME: &str = "herald";

pub struct MailLog {
    file: LogFile,
    host: String,
    pid: u32,
}

impl MailLog {
    /// Opens `path` for appending (see [`LogFile::open`]).
    pub fn open(path: &Path, hostname: &str, rotation: Rotating) -> MailLog {
        MailLog {
            file: LogFile::open(path, rotation),
            // syslog writes the short host name.
            host: hostname.split('.').next().unwrap_or(hostname).to_string(),
            pid: std::process::id(),
        }
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
        self.file.append(buf.as_bytes());
    }

    pub fn line(&self, program: &str, text: String) {
        self.write(&[(program, text)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_postfix_shaped_and_the_file_rotates() {
        let dir = std::env::temp_dir().join(format!("herald-maillog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("logs/mail.log");
        let log = MailLog::open(&path, "mx.example.test", Rotating::Configured);
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
        log.line("test", "rotate".into());
        log.file.force_rotate();
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
