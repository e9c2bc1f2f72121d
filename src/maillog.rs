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

/// A refusal mail.log records (`NOQUEUE: reject: …`): when (the syslog stamp) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub when: String,
    pub what: String,
}

/// How much of the end of mail.log is read for its refusals.
pub const REFUSALS_READ: u64 = 256 * 1024;

/// The refusals in `text` (mail.log lines), newest first, at most `limit`.
pub fn refusals(text: &str, limit: usize) -> Vec<Refusal> {
    text.lines()
        .rev()
        .filter_map(|l| {
            let (_, what) = l.split_once(": NOQUEUE: reject: ")?;
            Some(Refusal {
                when: l.get(..15)?.to_string(),
                what: what.to_string(),
            })
        })
        .take(limit)
        .collect()
}

/// The refusals at the end of the mail.log at `path` (its last [`REFUSALS_READ`] bytes).
pub fn recent_refusals(path: &Path, limit: usize) -> Vec<Refusal> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(REFUSALS_READ);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.take(REFUSALS_READ).read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    // A read that starts mid-file starts mid-line: that first piece is not a line.
    let text = if start > 0 {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        &text
    };
    refusals(text, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read_newest_first() {
        let log = "Dec  3 10:00:01 mx herald/smtpd[7]: connect from x[192.0.2.1]\n\
                   Dec  3 10:00:02 mx herald/smtpd[7]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 550 5.7.1 <a@b.c>: Relay access denied; from=<s@x> to=<a@b.c> proto=ESMTP helo=<x>\n\
                   Dec  3 10:00:03 mx herald/smtpd[7]: NOQUEUE: reject: DATA from x[192.0.2.1]: 452 4.3.1 Insufficient system storage\n";
        let r = refusals(log, 10);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].when, "Dec  3 10:00:03");
        assert!(r[0].what.starts_with("DATA from x[192.0.2.1]: 452"));
        assert!(r[1].what.contains("Relay access denied"));
        assert_eq!(refusals(log, 1).len(), 1);
    }

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
