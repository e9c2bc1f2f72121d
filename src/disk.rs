//! The data directory's disk. herald must never acknowledge what it cannot store, and must not
//! be stopped by a full disk: below [`LOW_WATER`] free it refuses new mail and notifications for
//! the moment (`452 4.3.1`, `507`), and takes them again once [`RESUME`] is free; a
//! [`RESERVE`] file made while there is room is given back at boot when the disk is full, so
//! that sled can open (its recovery writes the tail of its last segment) and the console can
//! say what is wrong. Free space is read with `statvfs` once a second by the service, and at
//! once after a write failed for lack of space.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Below this much free space new mail and notifications are refused: room for a checkpoint's
/// sled flush (16 MiB of journal), the logs and the reply queue's own updates.
pub const LOW_WATER: u64 = 64 << 20;
/// Acceptance resumes at this much free space (a margin, so it does not flap).
pub const RESUME: u64 = LOW_WATER + (16 << 20);
/// The file kept to be given back on a full disk at boot: sled's recovery zeroes the rest of its
/// last segment (2 MiB), the journal is preallocated, the logs need little.
pub const RESERVE: u64 = 16 << 20;
/// Its name in the data directory.
pub const RESERVE_FILE: &str = "reserve";

pub struct Disk {
    dir: PathBuf,
    low: AtomicBool,
    free: AtomicU64,
}

impl Disk {
    /// Watches the filesystem of `dir`, measuring it once now.
    pub fn new(dir: &Path) -> Disk {
        let d = Disk {
            dir: dir.to_path_buf(),
            low: AtomicBool::new(false),
            free: AtomicU64::new(u64::MAX),
        };
        d.check();
        d
    }

    /// Bytes free for herald on the data directory's filesystem (as an unprivileged user sees
    /// them, `f_bavail`).
    pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
        let st = rustix::fs::statvfs(dir)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Measures again; says so in the log when the state changes, and makes the reserve again
    /// once there is room. Returns whether space is low.
    pub fn check(&self) -> bool {
        let free = match Disk::free_bytes(&self.dir) {
            Ok(f) => f,
            Err(e) => {
                log::warn!("cannot read the free space of {}: {e}", self.dir.display());
                return self.is_low();
            }
        };
        self.free.store(free, Ordering::Relaxed);
        let was = self.low.load(Ordering::Relaxed);
        let low = if was { free < RESUME } else { free < LOW_WATER };
        if low != was {
            self.low.store(low, Ordering::Relaxed);
            if low {
                log::error!(
                    "the disk of {} is nearly full ({} MiB free, {} MiB needed): new mail is refused with 452 and notifications with 507 until space is freed",
                    self.dir.display(),
                    free >> 20,
                    RESUME >> 20
                );
            } else {
                log::info!(
                    "the disk of {} has room again ({} MiB free): accepting mail and notifications",
                    self.dir.display(),
                    free >> 20
                );
            }
        }
        if !low && free >= RESUME + RESERVE {
            make_reserve(&self.dir);
        }
        low
    }

    /// A write failed for lack of space: measure now rather than at the next tick.
    pub fn write_failed(&self, e: &std::io::Error) {
        if e.kind() == std::io::ErrorKind::StorageFull {
            self.check();
        }
    }

    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// Free bytes at the last measurement.
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// Whether the reserve file is there (it is missing after a boot on a full disk until
    /// there is room to make it again).
    pub fn has_reserve(&self) -> bool {
        std::fs::metadata(self.dir.join(RESERVE_FILE)).is_ok_and(|m| m.len() >= RESERVE)
    }
}

/// Makes the reserve file if it is missing or short: zeros written out, so that the blocks are
/// really taken (a sparse file would give nothing back).
pub fn make_reserve(dir: &Path) {
    let path = dir.join(RESERVE_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= RESERVE) {
        return;
    }
    let made = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| {
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..(RESERVE >> 20) {
                f.write_all(&zeros)?;
            }
            f.sync_all()
        });
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        log::debug!("cannot make {}: {e}", path.display());
    }
}

/// Gives the reserve back (at boot, when the disk is full). Returns whether there was one.
pub fn release_reserve(dir: &Path) -> bool {
    let path = dir.join(RESERVE_FILE);
    let had = std::fs::metadata(&path).is_ok();
    if had && let Err(e) = std::fs::remove_file(&path) {
        log::warn!("cannot remove {}: {e}", path.display());
        return false;
    }
    had
}

/// Whether `e` (as any layer words it) says the disk is full.
pub fn is_full(e: &dyn std::fmt::Display) -> bool {
    let text = e.to_string();
    text.contains("No space left on device") || text.contains("os error 28")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_made_once_and_given_back() {
        let dir = std::env::temp_dir().join(format!("herald-disk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let disk = Disk::new(&dir);
        assert!(Disk::free_bytes(&dir).unwrap() > 0);
        if disk.free() >= RESUME + RESERVE {
            assert!(disk.has_reserve(), "made when there is room");
            assert!(!disk.is_low());
        }
        make_reserve(&dir);
        assert!(release_reserve(&dir));
        assert!(!disk.has_reserve());
        assert!(!release_reserve(&dir), "only once");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn full_disk_errors_are_told_apart() {
        let e = std::io::Error::from_raw_os_error(28);
        assert!(is_full(&e));
        assert!(is_full(&"IO error: No space left on device (os error 28)"));
        assert!(!is_full(&std::io::Error::from_raw_os_error(5)));
    }
}
