//! Group commit of sled writes: a caller hands over its writes and hears `Ok` only after they are
//! on disk. One committer thread takes every job that is waiting, applies them as one batch per
//! tree, flushes sled once and syncs what sled's flush leaves unsynced, then answers them all, so
//! concurrent writers share one fsync instead of queueing behind each other's. The reply queue
//! (a `250`) and the notification queue (a `202`) both commit through here. Measured: a second
//! committer thread (one group applied while the previous one syncs) gave no better throughput
//! or p99 on 2 cores (sled serialises its flushes, and the thread takes CPU from the sessions).

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Jobs one commit takes at most, so one flush never waits on an unbounded queue.
const GROUP_MAX: usize = 512;

type Done = smol::channel::Sender<Result<(), String>>;

/// One caller's writes to one tree.
struct Job {
    tree: sled::Tree,
    writes: Vec<(Vec<u8>, Vec<u8>)>,
    done: Done,
}

pub struct Durable {
    jobs: smol::channel::Sender<Job>,
    /// Tests make the next commits fail (a batch that cannot be applied).
    pub fail_commits: Arc<AtomicBool>,
    /// Tests make the next flush-and-sync fail (the disk failing).
    pub fail_syncs: Arc<AtomicBool>,
    committer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Says why, once, when the disk failed and commits stopped: the service then exits non-zero
    /// so that it is restarted and sled recovers from what is on disk.
    pub fatal: smol::channel::Receiver<String>,
}

impl Drop for Durable {
    /// Lets the committer finish what it has and stop, so sled is closed when this returns.
    fn drop(&mut self) {
        self.jobs.close();
        let handle = self
            .committer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Durable {
    /// Starts the committer thread (it ends when this is dropped). `db_dir` is sled's folder,
    /// whose files the committer syncs itself (see [`DiskSync`]); `None` for a temporary
    /// database in tests.
    pub fn open(db: &sled::Db, db_dir: Option<&Path>) -> Result<Arc<Durable>, String> {
        let (tx, rx) = smol::channel::unbounded::<Job>();
        let fail_commits = Arc::new(AtomicBool::new(false));
        let fail_syncs = Arc::new(AtomicBool::new(false));
        let disk = db_dir.map(DiskSync::open).transpose()?;
        let (fatal_tx, fatal_rx) = smol::channel::bounded(1);
        let faults = Faults {
            commit: fail_commits.clone(),
            sync: fail_syncs.clone(),
        };
        let db = db.clone();
        let handle = std::thread::Builder::new()
            .name("commit".into())
            .spawn(move || committer(db, rx, faults, disk, fatal_tx))
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(Durable {
            jobs: tx,
            fail_commits,
            fail_syncs,
            committer: std::sync::Mutex::new(Some(handle)),
            fatal: fatal_rx,
        }))
    }

    /// Writes `writes` into `tree` atomically; `Ok` once they are on disk. On `Err` nothing of
    /// them is kept.
    pub async fn commit(
        &self,
        tree: &sled::Tree,
        writes: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), String> {
        let (done, wait) = smol::channel::bounded(1);
        self.jobs
            .send(Job {
                tree: tree.clone(),
                writes,
                done,
            })
            .await
            .map_err(|_| "the store is closed".to_string())?;
        wait.recv()
            .await
            .map_err(|_| "the store's committer stopped".to_string())?
    }

    /// [`Durable::commit`] from a thread that is not async (an HTTP worker).
    pub fn commit_blocking(
        &self,
        tree: &sled::Tree,
        writes: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), String> {
        smol::block_on(self.commit(tree, writes))
    }
}

/// The first id to hand out in `tree`, whose keys are a prefix byte then a big-endian `u64` id:
/// past the newest id under any of `prefixes`, and not below the time in microseconds, so ids
/// grow with time and never repeat, across restarts too.
pub fn first_free_id(tree: &sled::Tree, prefixes: &[u8]) -> u64 {
    let newest = prefixes
        .iter()
        .filter_map(|&p| {
            let k = tree.scan_prefix([p]).keys().next_back()?.ok()?;
            Some(u64::from_be_bytes(k.get(1..9)?.try_into().ok()?))
        })
        .max()
        .unwrap_or(0);
    let now = crate::clock::now_ms() as u64 * 1000;
    now.max(newest + 1)
}

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
    fn open(dir: &Path) -> Result<DiskSync, String> {
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

/// Failures tests inject.
struct Faults {
    commit: Arc<AtomicBool>,
    sync: Arc<AtomicBool>,
}

/// sled's flush, then what it leaves undone.
fn flush_and_sync(db: &sled::Db, disk: Option<&mut DiskSync>) -> Result<(), String> {
    db.flush().map_err(|e| e.to_string())?;
    match disk {
        Some(d) => d.sync().map_err(|e| format!("fsync: {e}")),
        None => Ok(()),
    }
}

/// Applies every waiting job (one sled batch per tree: sled then writes one batch manifest and
/// takes its batch lock once, which is most of what a commit costs apart from the sync), flushes
/// once, answers all. When a batch cannot be applied or the flush fails, every job of the group
/// gets the error and what the group wrote is removed again (best effort), so nothing
/// half-written is kept for a caller that heard `Err`.
fn committer(
    db: sled::Db,
    jobs: smol::channel::Receiver<Job>,
    faults: Faults,
    mut disk: Option<DiskSync>,
    fatal: smol::channel::Sender<String>,
) {
    // After a failed flush or sync nothing written later can be trusted to be durable (the
    // kernel may have dropped the pages that failed): refuse everything until a restart.
    let mut stopped: Option<String> = None;
    while let Ok(first) = jobs.recv_blocking() {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        if let Some(why) = &stopped {
            for job in group {
                let _ = job.done.try_send(Err(why.clone()));
            }
            continue;
        }
        let t0 = std::time::Instant::now();
        let n = group.len();
        // (tree, batch, keys written) per tree, in the order trees first appear.
        let mut per_tree: Vec<(sled::Tree, sled::Batch, Vec<Vec<u8>>)> = Vec::new();
        let mut dones = Vec::with_capacity(n);
        for job in group {
            let i = match per_tree
                .iter()
                .position(|(t, _, _)| t.name() == job.tree.name())
            {
                Some(i) => i,
                None => {
                    per_tree.push((job.tree, sled::Batch::default(), Vec::new()));
                    per_tree.len() - 1
                }
            };
            let (_, batch, keys) = &mut per_tree[i];
            for (k, v) in job.writes {
                keys.push(k.clone());
                batch.insert(k, v);
            }
            dones.push(job.done);
        }
        let mut applied = Ok(());
        let mut written: Vec<(sled::Tree, Vec<Vec<u8>>)> = Vec::new();
        for (tree, batch, keys) in per_tree {
            if applied.is_err() {
                break;
            }
            applied = if faults.commit.load(Ordering::Relaxed) {
                Err("injected commit failure".to_string())
            } else {
                tree.apply_batch(batch).map_err(|e| e.to_string())
            };
            // Removing keys of a batch that failed halfway is harmless: they are this group's.
            written.push((tree, keys));
        }
        let t1 = std::time::Instant::now();
        let flushed = if faults.sync.load(Ordering::Relaxed) {
            Err("injected sync failure".to_string())
        } else if applied.is_ok() {
            flush_and_sync(&db, disk.as_mut())
        } else {
            Ok(())
        };
        log::trace!(
            "commit: {n} jobs: apply {:?}, flush and sync {:?}",
            t1 - t0,
            t1.elapsed()
        );
        let result = applied.clone().and(flushed.clone());
        if let Err(e) = &result {
            // Take back what this group wrote, as durably as the disk still allows, so a write
            // answered with an error does not come back after a restart.
            for (tree, keys) in &written {
                for k in keys {
                    let _ = tree.remove(k);
                }
            }
            let undone = flush_and_sync(&db, disk.as_mut());
            if let Err(e) = &flushed {
                let why = format!("the store stopped after a disk error ({e}); restart herald");
                log::error!(
                    "commit: flush or sync failed: {e}; refusing writes from now on{}",
                    if undone.is_err() {
                        " (the failed group could not be taken back)"
                    } else {
                        ""
                    }
                );
                let _ = fatal.try_send(why.clone());
                stopped = Some(why);
            } else {
                log::error!("commit: applying a batch failed: {e}");
            }
        }
        for done in dones {
            let _ = done.try_send(result.clone());
        }
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

    #[test]
    fn writes_to_several_trees_commit_together() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let durable = Durable::open(&db, None).unwrap();
        let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
        let ex = smol::Executor::new();
        let tasks: Vec<_> = (0u8..20)
            .map(|i| {
                let (durable, tree) = (
                    durable.clone(),
                    if i % 2 == 0 { a.clone() } else { b.clone() },
                );
                ex.spawn(async move { durable.commit(&tree, vec![(vec![i], vec![i; 3])]).await })
            })
            .collect();
        smol::block_on(ex.run(async {
            for t in tasks {
                t.await.unwrap();
            }
        }));
        assert_eq!(a.len() + b.len(), 20);
        assert_eq!(b.get([1]).unwrap().unwrap().as_ref(), &[1, 1, 1]);
        durable.fail_commits.store(true, Ordering::Relaxed);
        assert!(
            durable
                .commit_blocking(&a, vec![(vec![99], vec![1])])
                .is_err()
        );
        assert!(a.get([99]).unwrap().is_none());
    }
}
