//! The record whose message is being read, kept in a small file (`<data>/replies.reading`) so
//! that a crash while reading it (an abort, a stack overflow, the kernel's OOM killer: what a
//! caught panic is not) is pinned on that record at the next boot. The processor counts such
//! crashes on the record and quarantines it as `failed:internal` after [`CRASHES_MAX`], so one
//! message can never keep the service in a crash loop.
//!
//! Reading is single-threaded (the parse is synchronous on the replies thread), so one slot is
//! enough. The slot is written with `pwrite` and not synced: a process crash leaves it in the
//! kernel's page cache, which is all this needs (a power cut is not a loop).

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Crashes while reading one record before it is set aside.
pub const CRASHES_MAX: u32 = 3;
/// The slot: a record id (`<queue id>-<n>`, far shorter), padded with NULs.
const SLOT: usize = 64;

pub struct Reading(std::fs::File);

impl Reading {
    /// Opens the slot; returns with it the record id an abnormal exit left in it, if any.
    pub fn open(path: &Path) -> std::io::Result<(Reading, Option<String>)> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let mut buf = [0u8; SLOT];
        let n = f.read_at(&mut buf, 0).unwrap_or(0);
        let left = std::str::from_utf8(&buf[..n])
            .ok()
            .map(|s| s.trim_end_matches('\0').to_string())
            .filter(|s| !s.is_empty());
        let slot = Reading(f);
        slot.write(b"")?;
        Ok((slot, left))
    }

    /// Reading `id` starts now.
    pub fn start(&self, id: &str) {
        if let Err(e) = self.write(id.as_bytes()) {
            log::debug!("replies.reading: {e}");
        }
    }

    /// Reading ended without a crash.
    pub fn done(&self) {
        let _ = self.write(b"");
    }

    fn write(&self, id: &[u8]) -> std::io::Result<()> {
        let mut buf = [0u8; SLOT];
        let n = id.len().min(SLOT);
        buf[..n].copy_from_slice(&id[..n]);
        self.0.write_all_at(&buf, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_left_in_the_slot_is_found_once_at_the_next_open() {
        let dir = std::env::temp_dir().join(format!("herald-reading-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("replies.reading");
        let (slot, left) = Reading::open(&path).unwrap();
        assert_eq!(left, None);
        slot.start("1A2B3C-1");
        slot.done();
        slot.start("1A2B3D-2");
        // The process dies here.
        drop(slot);
        let (slot, left) = Reading::open(&path).unwrap();
        assert_eq!(left.as_deref(), Some("1A2B3D-2"));
        drop(slot);
        let (_, left) = Reading::open(&path).unwrap();
        assert_eq!(left, None, "found once: opening clears the slot");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
