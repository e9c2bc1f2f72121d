//! The durable reply queue in sled. An accepted message is stored as its raw bytes (`d` + queue
//! id) and one record per recipient (`r` + queue id + index), in one atomic batch; the `250`
//! goes out only after the flush that makes the batch durable has returned.
//!
//! Group commit: sessions hand their batches to one committer thread, which applies every batch
//! that is waiting and then flushes once for all of them, so concurrent sessions share fsyncs
//! instead of queueing behind each other's.

use crate::clock;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

const TREE: &str = "inbound";
const DATA: u8 = b'd';
const REPLY: u8 = b'r';
/// Batches a commit takes at most, so one flush never waits on an unbounded queue.
const GROUP_MAX: usize = 512;

/// A queue id: sortable by time of acceptance, shown as uppercase hex like Postfix's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueId(pub u64);

impl std::fmt::Display for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}", self.0)
    }
}

/// One recipient of one accepted message, as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRecord {
    /// `<queue id>-<n>`, n counting recipients from 1.
    pub id: String,
    /// `pending`, `processed`, `discarded`, `failed:<reason>`.
    pub status: String,
    pub from: String,
    pub to: String,
    pub message_id: Option<String>,
    pub received_at: String,
    pub tls: bool,
    pub client: String,
    pub helo: String,
    pub size: usize,
}

/// A message to store.
pub struct Incoming<'a> {
    pub mail_from: &'a str,
    pub rcpts: &'a [(String, bool)],
    pub data: &'a [u8],
    pub tls: bool,
    pub client: &'a str,
    pub helo: &'a str,
    pub message_id: Option<String>,
}

type Done = smol::channel::Sender<Result<(), String>>;

struct Job {
    batch: sled::Batch,
    keys: Vec<Vec<u8>>,
    done: Done,
}

pub struct Spool {
    tree: sled::Tree,
    jobs: smol::channel::Sender<Job>,
    next_id: AtomicU64,
    /// Tests make the next commits fail (a batch that cannot be applied), to show what a
    /// client then gets.
    pub fail_commits: Arc<AtomicBool>,
    /// Tests make the next flush-and-sync fail (the disk failing).
    pub fail_syncs: Arc<AtomicBool>,
    committer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Says why, once, when the disk failed and the spool stopped taking mail: the service then
    /// exits non-zero so that it is restarted and sled recovers from what is on disk.
    pub fatal: smol::channel::Receiver<String>,
}

impl Drop for Spool {
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

impl Spool {
    /// Opens the queue and starts the committer thread (it ends when the spool is dropped).
    /// `db_dir` is sled's folder, whose files the committer syncs itself (see [`DiskSync`]);
    /// `None` for a temporary database in tests.
    pub fn open(db: &sled::Db, db_dir: Option<&Path>) -> Result<Arc<Spool>, String> {
        let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
        let (tx, rx) = smol::channel::unbounded::<Job>();
        let fail = Arc::new(AtomicBool::new(false));
        let disk = db_dir.map(DiskSync::open).transpose()?;
        let fail_syncs = Arc::new(AtomicBool::new(false));
        let (t, d) = (tree.clone(), db.clone());
        let faults = Faults {
            commit: fail.clone(),
            sync: fail_syncs.clone(),
        };
        let (fatal_tx, fatal_rx) = smol::channel::bounded(1);
        let handle = std::thread::Builder::new()
            .name("spool-commit".into())
            .spawn(move || committer(t, d, rx, faults, disk, fatal_tx))
            .map_err(|e| e.to_string())?;
        // Ids grow with time and never repeat: start past the newest stored one.
        let newest_of = |prefix: u8| {
            tree.scan_prefix([prefix])
                .keys()
                .next_back()
                .and_then(Result::ok)
                .and_then(|k| {
                    k.get(1..9)
                        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
                })
                .unwrap_or(0)
        };
        let newest = newest_of(DATA).max(newest_of(REPLY));
        let now = clock::unix_millis(SystemTime::now()) as u64 * 1000;
        Ok(Arc::new(Spool {
            tree,
            jobs: tx,
            next_id: AtomicU64::new(now.max(newest + 1)),
            fail_commits: fail,
            fail_syncs,
            committer: std::sync::Mutex::new(Some(handle)),
            fatal: fatal_rx,
        }))
    }

    /// Stores a message durably; returns its queue id once the flush has returned.
    pub async fn store(&self, m: Incoming<'_>) -> Result<(QueueId, Vec<ReplyRecord>), String> {
        let id = QueueId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let received_at = clock::rfc3339(SystemTime::now());
        let mut batch = sled::Batch::default();
        let mut keys = Vec::with_capacity(m.rcpts.len() + 1);
        // Mail only to no-reply addresses is accepted and dropped: its records say so, and its
        // body is not kept (nothing will read it, and keeping it would let anyone fill the disk).
        let keep_body = m.rcpts.iter().any(|(_, discard)| !discard);
        if keep_body {
            let data_key = key(DATA, id, None);
            batch.insert(data_key.clone(), m.data);
            keys.push(data_key);
        }
        let mut records = Vec::with_capacity(m.rcpts.len());
        for (n, (to, discard)) in m.rcpts.iter().enumerate() {
            let n = u16::try_from(n + 1).map_err(|_| "too many recipients".to_string())?;
            let rec = ReplyRecord {
                id: format!("{id}-{n}"),
                status: if *discard { "discarded" } else { "pending" }.into(),
                from: m.mail_from.to_string(),
                to: to.clone(),
                message_id: m.message_id.clone(),
                received_at: received_at.clone(),
                tls: m.tls,
                client: m.client.to_string(),
                helo: m.helo.to_string(),
                size: m.data.len(),
            };
            let k = key(REPLY, id, Some(n));
            batch.insert(k.clone(), serde_json::to_vec(&rec).expect("serializes"));
            keys.push(k);
            records.push(rec);
        }
        let (done, wait) = smol::channel::bounded(1);
        self.jobs
            .send(Job { batch, keys, done })
            .await
            .map_err(|_| "the spool is closed".to_string())?;
        wait.recv()
            .await
            .map_err(|_| "the spool committer stopped".to_string())??;
        Ok((id, records))
    }

    /// Reply records, newest first, optionally of one status, at most `limit`.
    pub fn replies(&self, status: Option<&str>, limit: usize) -> Result<Vec<ReplyRecord>, String> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([REPLY]).values().rev() {
            let v = item.map_err(|e| e.to_string())?;
            let rec: ReplyRecord =
                serde_json::from_slice(&v).map_err(|e| format!("unreadable reply record: {e}"))?;
            if status.is_none_or(|s| rec.status == s) {
                out.push(rec);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The raw message of a queue id.
    pub fn data(&self, id: QueueId) -> Result<Option<Vec<u8>>, String> {
        self.tree
            .get(key(DATA, id, None))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| e.to_string())
    }
}

fn key(kind: u8, id: QueueId, n: Option<u16>) -> Vec<u8> {
    let mut k = Vec::with_capacity(11);
    k.push(kind);
    k.extend_from_slice(&id.0.to_be_bytes());
    if let Some(n) = n {
        k.extend_from_slice(&n.to_be_bytes());
    }
    k
}

/// What sled's `flush` leaves undone. sled 0.34 makes its log stable with
/// `sync_file_range`, which writes the data but neither the file's metadata (its growing size) nor
/// the drive's cache, and it writes values too large for its log (over about 128 KiB) as blob
/// files that it never syncs. So after each flush the committer `fdatasync`s the log file and
/// `fsync`s every blob file (and the blob folder) it has not synced before: only then is a message
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

/// Applies every waiting batch, flushes once, answers all. A batch whose commit failed is removed
/// again (best effort), so nothing half-written is kept for a message that got `451`.
fn committer(
    tree: sled::Tree,
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
        let mut applied = Vec::with_capacity(group.len());
        for job in group {
            let r = if faults.commit.load(Ordering::Relaxed) {
                Err("injected commit failure".to_string())
            } else {
                tree.apply_batch(job.batch).map_err(|e| e.to_string())
            };
            applied.push((job.keys, job.done, r));
        }
        let t1 = std::time::Instant::now();
        let flushed = if faults.sync.load(Ordering::Relaxed) {
            Err("injected sync failure".to_string())
        } else if applied.iter().any(|(_, _, r)| r.is_ok()) {
            db.flush()
                .map(|_| ())
                .map_err(|e| e.to_string())
                .and_then(|()| match disk.as_mut() {
                    Some(d) => d.sync().map_err(|e| format!("fsync: {e}")),
                    None => Ok(()),
                })
        } else {
            Ok(())
        };
        log::trace!(
            "spool: committed {n} messages: apply {:?}, flush and sync {:?}",
            t1 - t0,
            t1.elapsed()
        );
        if let Err(e) = &flushed {
            // Take back what this group wrote, as durably as the disk still allows, so a message
            // answered 451 does not come back after a restart (the sender will retry it).
            for (keys, _, _) in &applied {
                for k in keys {
                    let _ = tree.remove(k);
                }
            }
            let undone = db
                .flush()
                .map(|_| ())
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    disk.as_mut()
                        .map_or(Ok(()), |d| d.sync().map_err(|e| e.to_string()))
                });
            let why = format!("the reply queue stopped after a disk error ({e}); restart herald");
            log::error!(
                "spool: flush or sync failed: {e}; refusing mail from now on{}",
                if undone.is_err() {
                    " (the failed group could not be taken back)"
                } else {
                    ""
                }
            );
            let _ = fatal.try_send(why.clone());
            stopped = Some(why);
        }
        for (keys, done, r) in applied {
            let r = r.and(flushed.clone());
            if let (Err(e), Ok(())) = (&r, &flushed) {
                // This batch alone failed to apply; the others are durable.
                log::error!("spool: commit failed: {e}");
                for k in keys {
                    let _ = tree.remove(k);
                }
            }
            let _ = done.try_send(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming<'a>(rcpts: &'a [(String, bool)], data: &'a [u8]) -> Incoming<'a> {
        Incoming {
            mail_from: "a@b.example",
            rcpts,
            data,
            tls: true,
            client: "unknown[127.0.0.1]",
            helo: "c.example",
            message_id: Some("<m@x>".into()),
        }
    }

    #[test]
    fn stores_lists_and_keeps_order() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = Spool::open(&db, None).unwrap();
        let rcpts = vec![
            ("r1@reply.x".to_string(), false),
            ("n@noreply.x".to_string(), true),
        ];
        let (id1, recs) = smol::block_on(spool.store(incoming(&rcpts, b"one"))).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].id, format!("{id1}-1"));
        let (id2, _) = smol::block_on(spool.store(incoming(&rcpts[..1], b"two"))).unwrap();
        assert!(id2 > id1);
        assert_eq!(spool.data(id1).unwrap().unwrap(), b"one");
        let all = spool.replies(None, 10).unwrap();
        let ids: Vec<_> = all.iter().map(|r| r.id.clone()).collect();
        assert_eq!(
            ids,
            vec![format!("{id2}-1"), format!("{id1}-2"), format!("{id1}-1")],
            "newest first"
        );
        let statuses: Vec<_> = all.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(statuses, vec!["pending", "discarded", "pending"]);
        assert_eq!(spool.replies(None, 1).unwrap().len(), 1);
        assert_eq!(spool.replies(Some("processed"), 10).unwrap().len(), 0);
        // A reopened spool never reuses an id.
        drop(spool);
        let again = Spool::open(&db, None).unwrap();
        assert!(again.next_id.load(Ordering::Relaxed) > id2.0);
    }

    /// Mail only to no-reply addresses keeps its records (status discarded), not its body.
    #[test]
    fn discard_only_mail_keeps_no_body() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = Spool::open(&db, None).unwrap();
        let rcpts = vec![
            ("a@noreply.x".to_string(), true),
            ("b@noreply.x".to_string(), true),
        ];
        let (id, recs) = smol::block_on(spool.store(incoming(&rcpts, b"junk"))).unwrap();
        assert!(recs.iter().all(|r| r.status == "discarded"));
        assert_eq!(spool.data(id).unwrap(), None);
        let mixed = vec![
            ("r@reply.x".to_string(), false),
            ("a@noreply.x".to_string(), true),
        ];
        let (id2, recs) = smol::block_on(spool.store(incoming(&mixed, b"reply"))).unwrap();
        assert_eq!(
            (recs[0].status.as_str(), recs[1].status.as_str()),
            ("pending", "discarded")
        );
        assert_eq!(spool.data(id2).unwrap().unwrap(), b"reply");
        // Ids still never repeat after a restart, bodies or not.
        drop(spool);
        assert!(
            Spool::open(&db, None)
                .unwrap()
                .next_id
                .load(Ordering::Relaxed)
                > id2.0
        );
    }

    #[test]
    fn a_failed_commit_keeps_nothing() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = Spool::open(&db, None).unwrap();
        spool.fail_commits.store(true, Ordering::Relaxed);
        let rcpts = vec![("r1@reply.x".to_string(), false)];
        assert!(smol::block_on(spool.store(incoming(&rcpts, b"x"))).is_err());
        assert!(spool.replies(None, 10).unwrap().is_empty());
        assert_eq!(spool.tree.len(), 0);
    }

    /// Regression: after a failed sync the committer took back the failed group only in memory
    /// and went on acknowledging later messages.
    #[test]
    fn a_failed_sync_takes_the_group_back_and_stops_the_spool() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = Spool::open(&db, None).unwrap();
        let rcpts = vec![("r1@reply.x".to_string(), false)];
        smol::block_on(spool.store(incoming(&rcpts, b"first"))).unwrap();
        spool.fail_syncs.store(true, Ordering::Relaxed);
        assert!(smol::block_on(spool.store(incoming(&rcpts, b"second"))).is_err());
        let why = spool.fatal.try_recv().expect("the service is told to stop");
        assert!(why.contains("restart"), "{why}");
        spool.fail_syncs.store(false, Ordering::Relaxed);
        let third = smol::block_on(spool.store(incoming(&rcpts, b"third"))).unwrap_err();
        assert!(third.contains("disk error"), "{third}");
        assert_eq!(
            spool.replies(None, 10).unwrap().len(),
            1,
            "only the first is kept"
        );
    }

    #[test]
    fn concurrent_stores_share_commits() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = Spool::open(&db, None).unwrap();
        let rcpts = vec![("r1@reply.x".to_string(), false)];
        let ex = smol::Executor::new();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (spool, rcpts) = (spool.clone(), rcpts.clone());
                ex.spawn(async move {
                    spool
                        .store(incoming(&rcpts, b"body"))
                        .await
                        .map(|(id, _)| id)
                })
            })
            .collect();
        let ids: Vec<QueueId> = smol::block_on(ex.run(async {
            let mut v = Vec::new();
            for t in tasks {
                v.push(t.await.unwrap());
            }
            v
        }));
        let mut uniq = ids.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 200);
        assert_eq!(spool.replies(None, 1000).unwrap().len(), 200);
    }

    #[test]
    fn on_disk_commits_sync_the_log_and_new_blobs() {
        let dir = std::env::temp_dir().join(format!("herald-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = sled::Config::new().path(&dir).open().unwrap();
        let spool = Spool::open(&db, Some(&dir)).unwrap();
        let rcpts = vec![("r1@reply.x".to_string(), false)];
        let big = vec![b'x'; 300 * 1024];
        let (id, _) = smol::block_on(spool.store(incoming(&rcpts, &big))).unwrap();
        let blobs = std::fs::read_dir(dir.join("blobs")).unwrap().count();
        assert!(blobs > 0, "a 300 KiB value is a sled blob");
        let (small, _) = smol::block_on(spool.store(incoming(&rcpts, b"small"))).unwrap();
        drop(spool);
        drop(db);
        let db = sled::Config::new().path(&dir).open().unwrap();
        let spool = Spool::open(&db, Some(&dir)).unwrap();
        assert_eq!(spool.data(id).unwrap().unwrap().len(), big.len());
        assert_eq!(spool.data(small).unwrap().unwrap(), b"small");
        drop(spool);
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Regression: sled removes blob files while the committer lists them (seen under
    /// `make bench` with 100 sessions of 20 KB messages: every commit in the group got 451).
    #[test]
    fn a_blob_gone_before_its_fsync_is_not_an_error() {
        let missing = std::env::temp_dir().join("herald-no-such-blob-file");
        assert!(!sync_file(&missing).unwrap());
        let here = std::env::temp_dir().join(format!("herald-blob-{}", std::process::id()));
        std::fs::write(&here, b"x").unwrap();
        assert!(sync_file(&here).unwrap());
        std::fs::remove_file(&here).unwrap();
    }

    #[test]
    fn many_concurrent_large_messages_all_commit() {
        let dir = std::env::temp_dir().join(format!("herald-spool-gc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = sled::Config::new().path(&dir).open().unwrap();
        let spool = Spool::open(&db, Some(&dir)).unwrap();
        let rcpts = vec![("r1@reply.x".to_string(), false)];
        let body = vec![b'y'; 20 * 1024];
        let ex = smol::Executor::new();
        let tasks: Vec<_> = (0..400)
            .map(|_| {
                let (spool, rcpts, body) = (spool.clone(), rcpts.clone(), body.clone());
                ex.spawn(async move { spool.store(incoming(&rcpts, &body)).await.map(|_| ()) })
            })
            .collect();
        smol::block_on(ex.run(async {
            for t in tasks {
                t.await.unwrap();
            }
        }));
        assert_eq!(spool.replies(None, 1000).unwrap().len(), 400);
        drop(spool);
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
