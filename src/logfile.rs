//! The one writer of herald's log files (`mail.log`, `metroplex.log`, `unicorn.log`): appends
//! whole records with one `write`, rotates by size (`x.log` → `x.log.1` → … → `x.log.<keep>`,
//! the oldest dropped) so a busy appliance cannot fill its disk with logs, and keeps the files
//! owner-and-group only (files 0640, folders 0750: they hold addresses and SMTP conversations).
//! A write that fails (a full disk) is counted and reported once, never fatal: logs must not
//! stop mail.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Size at which a log is rotated, unless told otherwise.
pub const ROTATE_AT: u64 = 64 << 20;
/// Rotated files kept, unless told otherwise.
pub const KEEP: u32 = 1;
/// Mode of every log file.
pub const FILE_MODE: u32 = 0o640;
/// Mode of every folder made for logs.
pub const DIR_MODE: u32 = 0o750;

/// When a log rotates and how many rotated files stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub at: u64,
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            at: ROTATE_AT,
            keep: KEEP,
        }
    }
}

/// The rotation the settings ask for (`logs.rotate_mb`, `logs.keep`), which every log opened
/// with [`Rotation::Configured`] follows from its next write.
static CONFIGURED_AT: AtomicU64 = AtomicU64::new(ROTATE_AT);
static CONFIGURED_KEEP: AtomicU32 = AtomicU32::new(KEEP);

/// Puts the settings' rotation in force for every log that follows them.
pub fn configure(settings: &crate::settings::Settings) {
    CONFIGURED_AT.store(u64::from(settings.logs.rotate_mb) << 20, Ordering::Relaxed);
    CONFIGURED_KEEP.store(settings.logs.keep, Ordering::Relaxed);
}

/// How a log's rotation is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotating {
    /// As the settings say, at each write.
    Configured,
    /// Fixed (tests).
    Fixed(Rotation),
}

impl Rotating {
    fn now(self) -> Rotation {
        match self {
            Rotating::Configured => Rotation {
                at: CONFIGURED_AT.load(Ordering::Relaxed),
                keep: CONFIGURED_KEEP.load(Ordering::Relaxed),
            },
            Rotating::Fixed(r) => r,
        }
    }
}

struct Open {
    /// `None` while the file cannot be opened (its folder gone, the disk full): retried at the
    /// next write.
    file: Option<File>,
    size: u64,
    /// The last write failed: said once in the process log, not at every line.
    failing: bool,
}

pub struct LogFile {
    path: PathBuf,
    rotation: Rotating,
    open: Mutex<Open>,
}

impl LogFile {
    /// Opens `path` for appending (made 0640, and its folders 0750, if missing; an existing
    /// file wider than 0640 is narrowed). A file that cannot be opened now is tried again at
    /// each write, so herald starts even when the log's disk is full.
    pub fn open(path: &Path, rotation: Rotating) -> LogFile {
        let file = match open(path) {
            Ok(f) => Some(f),
            Err(e) => {
                log::warn!("cannot open {}: {e}", path.display());
                None
            }
        };
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        LogFile {
            path: path.to_path_buf(),
            rotation,
            open: Mutex::new(Open {
                failing: file.is_none(),
                file,
                size,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes` (whole lines) with one write, then rotates if the file has grown past
    /// its size.
    pub fn append(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if o.file.is_none() {
            o.file = open(&self.path).ok();
            o.size = o
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map_or(0, |m| m.len());
        }
        let result = match o.file.as_mut() {
            Some(f) => f.write_all(bytes),
            None => Err(std::io::ErrorKind::NotFound.into()),
        };
        match result {
            Ok(()) => {
                if o.failing {
                    log::info!("{}: writing again", self.path.display());
                    o.failing = false;
                }
                o.size += bytes.len() as u64;
            }
            Err(e) => {
                if !o.failing {
                    log::warn!(
                        "{}: cannot write ({e}); lines are lost until it can",
                        self.path.display()
                    );
                    o.failing = true;
                }
                return;
            }
        }
        if o.size >= self.rotation.now().at {
            match self.rotate() {
                Ok(f) => {
                    o.file = Some(f);
                    o.size = 0;
                }
                Err(e) => log::warn!("{}: cannot rotate: {e}", self.path.display()),
            }
        }
    }

    /// `x.log.<keep-1>` → `x.log.<keep>`, …, `x.log` → `x.log.1`, and a new `x.log`.
    fn rotate(&self) -> std::io::Result<File> {
        let keep = self.rotation.now().keep;
        // Files past the count kept (the count was lowered) go first, gaps or not.
        for (n, p) in rotated_files(&self.path) {
            if n > keep {
                std::fs::remove_file(p)?;
            }
        }
        if keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..keep).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, rotated(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        open(&self.path)
    }

    /// Rotates now, whatever the size (tests).
    #[cfg(test)]
    pub fn force_rotate(&self) {
        let mut o = self.open.lock().unwrap();
        o.file = Some(self.rotate().unwrap());
        o.size = 0;
    }
}

/// The rotated files of `path` that exist (`x.log.1`, `x.log.2` …), by number.
pub fn rotated_files(path: &Path) -> Vec<(u32, PathBuf)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let n = file
                .strip_prefix(name)?
                .strip_prefix('.')?
                .parse::<u32>()
                .ok()?;
            (n > 0).then(|| (n, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// The `n`-th rotated file of `path`: `mail.log.1`, …
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Makes the folders of `path` (0750; its own folder narrowed to that if it was made wider
/// before) and opens it for appending (0640).
fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & !DIR_MODE != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & DIR_MODE))?;
        }
    }
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)?;
    let meta = f.metadata()?;
    if meta.permissions().mode() & 0o777 & !FILE_MODE != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("herald-logfile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn rotates_by_size_keeping_the_newest_files() {
        let d = dir("rotate");
        let path = d.join("logs/x.log");
        let log = LogFile::open(&path, Rotating::Fixed(Rotation { at: 10, keep: 2 }));
        for line in ["one 12345\n", "two 12345\n", "three 123\n", "four 1234\n"] {
            log.append(line.as_bytes());
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(path.clone()), "");
        assert_eq!(read(rotated(&path, 1)), "four 1234\n");
        assert_eq!(read(rotated(&path, 2)), "three 123\n");
        assert!(!rotated(&path, 3).exists(), "only two are kept");
        log.append(b"five\n");
        assert_eq!(read(path), "five\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_lowered_count_removes_the_files_past_it_at_the_next_rotation() {
        let d = dir("keep-lowered");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("x.log");
        // A gap (x.log.4 missing) does not stop the files past it from going.
        for n in [1, 2, 3, 5, 6] {
            std::fs::write(rotated(&path, n), format!("old {n}\n")).unwrap();
        }
        let log = LogFile::open(&path, Rotating::Fixed(Rotation { at: 5, keep: 2 }));
        log.append(b"new 1\n");
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(rotated(&path, 1)), "new 1\n");
        assert_eq!(read(rotated(&path, 2)), "old 1\n");
        for n in 3..=7 {
            assert!(!rotated(&path, n).exists(), "x.log.{n} is past logs.keep");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn files_are_0640_and_folders_0750_even_when_made_wider_before() {
        let d = dir("modes");
        let path = d.join("a/b/x.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let folder = path.parent().unwrap();
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        let log = LogFile::open(&path, Rotating::Fixed(Rotation::default()));
        log.append(b"new\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o640);
        assert_eq!(mode(path.parent().unwrap()), 0o750);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\nnew\n");
        let fresh = d.join("c/y.log");
        LogFile::open(&fresh, Rotating::Fixed(Rotation::default())).append(b"x\n");
        assert_eq!(mode(&fresh), 0o640);
        assert_eq!(mode(fresh.parent().unwrap()), 0o750);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A log whose file cannot be opened (here: its folder is a file) loses its lines but does
    /// not fail, and writes again once it can.
    #[test]
    fn a_log_that_cannot_be_written_is_not_fatal_and_recovers() {
        let d = dir("recover");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("logs"), "in the way").unwrap();
        let path = d.join("logs/x.log");
        let log = LogFile::open(&path, Rotating::Fixed(Rotation::default()));
        log.append(b"lost\n");
        std::fs::remove_file(d.join("logs")).unwrap();
        log.append(b"kept\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept\n");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
