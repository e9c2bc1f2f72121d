//! What makes sled itself durable, off the commit path: the checkpoint thread, which syncs the
//! segments, flushes sled about once a second or every [`CHECKPOINT_BYTES`] journaled and then
//! syncs what sled's flush leaves unsynced ([`DiskSync`]), deletes segments nothing needs any
//! more, and shares its progress with the committer (which journal entry a checkpoint has
//! covered, so a journal file may be reused).

use super::Store;
use crate::journal;
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often the checkpoint thread flushes sled when there is something new in the journal.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// ...and sooner, each time this much more has been journaled, so a journal file is covered
/// before the other one fills. Not more often: each sled flush costs CPU and, oddly, memory
/// (measured, 20,000 messages of 2 KB over 100 sessions: every 4 MiB, 3,922/s and 52 MiB
/// resident; every 16 MiB, 5,969/s and 35 MiB).
pub(super) const CHECKPOINT_BYTES: u64 = journal::FILE_SIZE / 2;
/// What sled's `flush` leaves undone. sled 0.34 makes its log stable with
/// `sync_file_range`, which writes the data but neither the file's metadata (its growing size) nor
/// the drive's cache, and it writes values too large for its log (over about 128 KiB) as blob
/// files that it never syncs. So after each flush the committer `fdatasync`s the log file and
/// `fsync`s every blob file (and the blob folder) it has not synced before: only then is a write
/// on disk.
pub struct DiskSync {
    log: File,
    blobs: PathBuf,
    synced: HashSet<std::ffi::OsString>,
}

impl DiskSync {
    pub(super) fn open(dir: &Path) -> Result<DiskSync, String> {
        let log = File::open(dir.join("db")).map_err(|e| format!("sled log: {e}"))?;
        Ok(DiskSync {
            log,
            blobs: dir.join("blobs"),
            synced: HashSet::new(),
        })
    }

    /// Blobs first (the log refers to them), then the log. The blob folder is listed every time:
    /// its mtime cannot tell, as directory timestamps may be coarser than a commit.
    fn sync(&mut self) -> std::io::Result<()> {
        let mut new_blob = false;
        if let Ok(entries) = std::fs::read_dir(&self.blobs) {
            let mut seen = HashSet::new();
            for e in entries.flatten() {
                let name = e.file_name();
                if !self.synced.contains(&name) && sync_file(&e.path())? {
                    new_blob = true;
                }
                seen.insert(name);
            }
            // Forget blobs sled has since removed.
            self.synced = seen;
        }
        if new_blob {
            File::open(&self.blobs)?.sync_all()?;
        }
        self.log.sync_data()
    }
}

/// `fsync`s one file; `Ok(false)` when it is gone already (sled removes blob files it has
/// collected, possibly between our listing of the folder and this call).
fn sync_file(path: &Path) -> std::io::Result<bool> {
    match File::open(path) {
        Ok(f) => f.sync_all().map(|()| true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// sled's flush, then what it leaves undone.
pub(super) fn flush_and_sync(db: &sled::Db, disk: Option<&mut DiskSync>) -> Result<(), String> {
    db.flush().map_err(|e| e.to_string())?;
    match disk {
        Some(d) => d.sync().map_err(|e| format!("fsync: {e}")),
        None => Ok(()),
    }
}

/// Journal entries written and covered by a checkpoint, between the committer and the
/// checkpoint thread.
#[derive(Default)]
pub(super) struct Checkpoints {
    state: Mutex<Progress>,
    changed: Condvar,
}

#[derive(Default)]
struct Progress {
    /// The newest entry in the journal (its jobs are applied to sled before it is written).
    journaled: u64,
    /// The newest entry a checkpoint covered.
    covered: u64,
    /// The committer wants a checkpoint now (another 16 MiB journaled, or it waits to reuse
    /// one).
    urgent: bool,
    /// The committer has stopped: one last checkpoint, then the thread ends.
    stop: bool,
    /// A checkpoint failed: nothing can be trusted to be durable any more.
    failed: Option<String>,
    /// Tests hold checkpoints back (as a slow disk would).
    held: bool,
}

impl Checkpoints {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// At the start: entries up to `seq` are applied and covered already.
    pub(super) fn start_at(&self, seq: u64) {
        let mut p = self.lock();
        p.journaled = seq;
        p.covered = seq;
    }

    pub(super) fn journaled(&self, seq: u64, urgent: bool) {
        let mut p = self.lock();
        p.journaled = seq;
        if urgent && !p.urgent {
            p.urgent = true;
            self.changed.notify_all();
        }
    }

    /// Waits until a checkpoint has covered entry `seq`.
    pub(super) fn wait_for(&self, seq: u64) -> Result<(), String> {
        let mut p = self.lock();
        while p.covered < seq {
            if let Some(why) = &p.failed {
                return Err(why.clone());
            }
            p.urgent = true;
            self.changed.notify_all();
            p = self.changed.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    /// Tests: holds checkpoints back, or lets them go on.
    #[cfg(test)]
    pub(super) fn hold(&self, on: bool) {
        self.lock().held = on;
        self.changed.notify_all();
    }

    pub(super) fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
    }
}

/// Flushes sled when the journal has something new, once a second or when asked to, and records
/// which entry the flush covered. Ends after the committer has stopped and all is covered.
pub(super) fn checkpointer(store: &Store) {
    let cp = &store.checkpoints;
    let mut last = Instant::now();
    loop {
        let target = {
            let mut p = cp.lock();
            loop {
                let behind = p.journaled > p.covered || store.has_doomed();
                if p.stop && !behind {
                    return;
                }
                let due = p.urgent || p.stop || last.elapsed() >= CHECKPOINT_EVERY;
                if behind && due && !p.held {
                    break;
                }
                let wait = CHECKPOINT_EVERY.saturating_sub(last.elapsed());
                p = cp
                    .changed
                    .wait_timeout(p, wait.max(Duration::from_millis(10)))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            p.urgent = false;
            p.journaled
        };
        last = Instant::now();
        // Everything up to `target` is in sled (its number too): the flush makes it durable.
        let done = store.checkpoint(target);
        log::trace!("checkpoint: entry {target} in {:?}", last.elapsed());
        let mut p = cp.lock();
        match done {
            Ok(()) => p.covered = target,
            Err(e) => {
                log::error!(
                    "checkpoint: flushing the store failed: {e}; refusing writes from now on"
                );
                let why = format!("the store stopped after a disk error ({e}); restart herald");
                let _ = store.fatal.try_send(why.clone());
                p.failed = Some(why);
                cp.changed.notify_all();
                return;
            }
        }
        cp.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: sled removes blob files while the committer lists them (seen under
    /// `make bench` with 100 sessions of 20 KB messages: every commit in the group got 451).
    #[test]
    fn a_blob_gone_before_its_fsync_is_not_an_error() {
        let dir = std::env::temp_dir().join(format!("herald-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("gone");
        assert!(!sync_file(&missing).unwrap());
        let here = dir.join("here");
        std::fs::write(&here, b"x").unwrap();
        assert!(sync_file(&here).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
