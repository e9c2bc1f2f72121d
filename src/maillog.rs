//! `<data>/logs/mail.log`: Postfix-style lines (`Nov 28 09:38:03 host herald/smtpd[pid]: ...`),
//! one queue id per accepted message, so Postfix log tools (pflogsumm with
//! `--syslog-name=herald`) read it. The lines of one event are written with one append.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

/// The syslog name in every line: `herald/smtpd`, `herald/cleanup`, ...
pub const SYSLOG_NAME: &str = "herald";

pub struct MailLog {
    file: Mutex<File>,
    host: String,
    pid: u32,
}

impl MailLog {
    /// Opens (appending, creating with mode 0640) `path`, making its folder.
    pub fn open(path: &Path, hostname: &str) -> std::io::Result<MailLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)?;
        Ok(MailLog {
            file: Mutex::new(file),
            // syslog writes the short host name.
            host: hostname.split('.').next().unwrap_or(hostname).to_string(),
            pid: std::process::id(),
        })
    }

    /// Writes lines as `(program, text)`, all with the same time stamp, in one append.
    pub fn write(&self, lines: &[(&str, String)]) {
        let stamp = crate::clock::syslog(SystemTime::now());
        let mut buf = String::new();
        for (program, text) in lines {
            let text: String = text
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            buf.push_str(&format!(
                "{stamp} {} {SYSLOG_NAME}/{program}[{}]: {text}\n",
                self.host, self.pid
            ));
        }
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = f.write_all(buf.as_bytes()) {
            log::warn!("mail.log: {e}");
        }
    }

    pub fn line(&self, program: &str, text: String) {
        self.write(&[(program, text)]);
    }
}
