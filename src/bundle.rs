//! The support bundle (SPEC §5): a `.tar.gz` of the three logs at their relative paths
//! (`enterprise-manage-logs/unicorn.log`, `mail.log`, `mail-replies/metroplex.log`, each with its
//! rotated files), `diagnostics.txt` and `settings.json` (applied and pending, secrets masked).
//! Written as a stream: each log is copied through the gzip encoder in small pieces, so memory
//! stays bounded however large the logs are.
//!
//! Nothing secret goes in: the logs never hold one (credentials are `[redacted]` in unicorn.log
//! when written), the report is made from masked settings, and `settings.json` is the masked view
//! the manage API shows.

use crate::app::{App, paths};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The logs, by their path in the data directory and in the bundle.
const LOGS: &[(&str, &str)] = &[
    (paths::UNICORN_LOG, "enterprise-manage-logs/unicorn.log"),
    (paths::MAIL_LOG, "mail.log"),
    (paths::METROPLEX_LOG, "mail-replies/metroplex.log"),
];

/// A log and its rotated files (`x.log`, `x.log.1`, `x.log.2` …), those that exist, newest
/// first.
fn with_rotated(log: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if log.is_file() {
        out.push(log.to_path_buf());
    }
    out.extend(
        crate::logfile::rotated_files(log)
            .into_iter()
            .map(|(_, p)| p),
    );
    out
}

/// What the logs the bundle holds take on disk: the most the bundle can take (gzip only makes
/// it smaller), and what must be free before it is written.
pub fn logs_bytes(app: &App) -> u64 {
    LOGS.iter()
        .flat_map(|(in_data, _)| with_rotated(&app.path(in_data)))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn header(size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o640);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The settings as the bundle holds them: applied and pending, masked.
fn settings_json(app: &App) -> serde_json::Value {
    let view = |s: Option<crate::settings::Stored>| {
        s.map(|d| {
            serde_json::json!({
                "version": d.version,
                "settings": crate::console::settings_view(&d.settings),
            })
        })
    };
    serde_json::json!({
        "applied": view(app.settings.applied().ok().flatten()),
        "pending": view(app.settings.pending().ok().flatten()),
    })
}

/// Writes the bundle to `out`; returns `out` when the gzip stream is finished.
pub fn write<W: Write>(app: &App, out: W) -> io::Result<W> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mtime = now_secs();
    for (in_data, in_bundle) in LOGS {
        for (n, path) in with_rotated(&app.path(in_data)).into_iter().enumerate() {
            let name = match n {
                0 => in_bundle.to_string(),
                _ => format!(
                    "{in_bundle}{}",
                    path.to_string_lossy()
                        .rsplit_once(".log")
                        .map_or(String::new(), |(_, rest)| rest.to_string())
                ),
            };
            let Ok(file) = std::fs::File::open(&path) else {
                continue; // rotated away between the listing and now
            };
            // A log grows while it is read: the entry holds what it had when opened.
            let len = file.metadata()?.len();
            let file_mtime = file
                .metadata()?
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(mtime, |d| d.as_secs());
            let mut h = header(len, file_mtime);
            tar.append_data(&mut h, &name, Padded::new(file.take(len), len))?;
        }
    }
    let report = crate::diagnostics::gather(app).to_text();
    let mut h = header(report.len() as u64, mtime);
    tar.append_data(&mut h, "diagnostics.txt", report.as_bytes())?;
    let mut settings = serde_json::to_vec_pretty(&settings_json(app)).expect("serializes");
    settings.push(b'\n');
    let mut h = header(settings.len() as u64, mtime);
    tar.append_data(&mut h, "settings.json", settings.as_slice())?;
    tar.into_inner()?.finish()
}

/// A reader that gives exactly `len` bytes: a file that shrank (truncated under us) is padded
/// with newlines, so the tar entry is always as long as its header says.
struct Padded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Padded<R> {
    fn new(inner: R, len: u64) -> Padded<R> {
        Padded { inner, left: len }
    }
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(b'\n');
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shrunk_file_is_padded_to_its_length() {
        let mut r = Padded::new(&b"abc"[..], 5);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\n\n");
        let mut r = Padded::new(&b"abcdef"[..], 4);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn rotated_files_are_found_newest_first() {
        let dir = std::env::temp_dir().join(format!("herald-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in [
            "mail.log",
            "mail.log.2",
            "mail.log.1",
            "mail.log.old",
            "other.log.1",
        ] {
            std::fs::write(dir.join(f), f).unwrap();
        }
        let found: Vec<String> = with_rotated(&dir.join("mail.log"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(found, ["mail.log", "mail.log.1", "mail.log.2"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
