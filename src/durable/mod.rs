//! Group commit of sled writes: a caller hands over its writes and hears `Ok` only after they are
//! on disk. One committer thread takes every job that is waiting, writes them as one entry of the
//! [`crate::journal`] and syncs that, then applies them to sled (one batch per tree) and, last,
//! the entry's number under [`APPLIED_KEY`], and answers them all, so concurrent writers share
//! one `fdatasync` instead of queueing behind each other's. The reply queue (a `250`) and the
//! notification queue (a `202`) both commit through here.
//!
//! sled itself is made durable by the checkpoint thread ([`checkpoint`]): about once a second,
//! and whenever the journal has taken another 16 MiB, it flushes sled and syncs what sled's flush
//! leaves unsynced; the journal file holding only entries that flush covered may then be reused.
//! sled recovers a prefix of its log, so after a crash every entry up to the recovered
//! [`APPLIED_KEY`] is wholly in sled and nothing of a later one was changed since (readers skip a
//! job until its commit has returned: [`InFlight`]); [`replay`] inserts the later ones again.
//!
//! Why not sled's flush per commit: it waits on `sync_file_range` and then the growing log needs
//! an `fdatasync`, two device round trips for one (p99 250 latency 11.6 ms at 100 sessions before
//! the journal, see BENCHMARKS.md). A group holding a job too large for the journal is made
//! durable that way still, with sled batches so that it can be taken back whole ([`batches`]).
//! See [`CHECKPOINT_BYTES`] for the checkpoints' pace.
//!
//! A message body is a write whose key starts with [`BODY`] ([`body`]): the journal holds it
//! like any write, but when it is applied its bytes go to the current [`Segments`] file and sled
//! gets a [`crate::segments::Pointer`] under the key without that byte. A checkpoint syncs the
//! segments before it flushes sled and records under [`SYNCED_KEY`] the entry they cover; the
//! journal is replayed from the older of that and [`APPLIED_KEY`], so a pointer sled recovered
//! always finds its bytes. Without a folder on disk (tests) the body goes into sled whole.
//!
//! Measured: a second committer thread (one group applied while the previous one syncs) gave no
//! better throughput or p99 on 2 cores (sled serialises its flushes, and the thread takes CPU
//! from the sessions).

mod checkpoint;
mod write;

use crate::journal::{self, Journal};
use crate::segments::Segments;
use checkpoint::{Checkpoints, DiskSync, checkpointer, flush_and_sync};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use write::{applied_write, commit_batched, commit_journaled, job_bytes};

/// Jobs one commit takes at most, so one flush never waits on an unbounded queue.
const GROUP_MAX: usize = 512;
/// Bytes of writes after which a group takes no more jobs (a journal entry stays well inside
/// [`journal::ENTRY_MAX`]).
const GROUP_BYTES: usize = 4 * 1024 * 1024;
/// A job larger than this is made durable by flushing sled rather than through the journal.
const JOURNAL_JOB_MAX: usize = 1024 * 1024;
/// The newest journal entry whose writes are all in sled (sled's default tree).
const APPLIED_KEY: &[u8] = b"herald.journal.applied";
/// The newest journal entry whose bodies a checkpoint synced in the segments (sled's default
/// tree).
const SYNCED_KEY: &[u8] = b"herald.segments.synced";
/// The first byte of a write's key that makes it a body (see the module doc). No tree's keys
/// start with it.
pub const BODY: u8 = 0xFF;
/// The folder of the segments, in the journal's folder.
pub const SEGMENTS_DIR: &str = "segments";

/// The write that stores `data` as the body under `key` (see the module doc).
pub fn body(key: Vec<u8>, data: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(BODY);
    k.extend_from_slice(&key);
    (k, data)
}

/// Where a database on disk keeps its files.
#[derive(Clone, Copy)]
pub struct OnDisk<'a> {
    /// sled's folder, whose files are synced at checkpoints (see [`DiskSync`]).
    pub sled_dir: &'a Path,
    /// The folder of the journal's two files.
    pub journal_dir: &'a Path,
}

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
    /// Tests hold this to stop commits between applying a group and answering it (the moment
    /// readers can see writes whose commit has not returned).
    #[cfg(test)]
    pub answers: Arc<Mutex<()>>,
    committer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Shared with the committer and the checkpoint thread (tests hold checkpoints back).
    #[cfg_attr(not(test), allow(dead_code))]
    checkpoints: Arc<Checkpoints>,
    /// Says why, once, when the disk failed and commits stopped: the service then exits non-zero
    /// so that it is restarted and sled recovers from what is on disk.
    pub fatal: smol::channel::Receiver<String>,
    /// The next queue id, shared by the queues that commit here, so an id in mail.log names
    /// one message, inbound or outbound (see [`Durable::new_id`]).
    next_id: std::sync::atomic::AtomicU64,
    /// Where bodies are kept (none for a temporary database: bodies go into sled).
    pub segments: Option<Arc<Segments>>,
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
    /// Starts the committer thread (it ends when this is dropped). `disk` says where the
    /// database's files are: what the journal holds past the last checkpoint is applied to sled
    /// first. `None` for a temporary database in tests, made durable by flushing sled alone.
    pub fn open(db: &sled::Db, disk: Option<OnDisk<'_>>) -> Result<Arc<Durable>, String> {
        let (tx, rx) = smol::channel::unbounded::<Job>();
        let fail_commits = Arc::new(AtomicBool::new(false));
        let fail_syncs = Arc::new(AtomicBool::new(false));
        let (sync, journal, segments) = match disk {
            Some(d) => {
                let mut sync = DiskSync::open(d.sled_dir)?;
                let segments = Arc::new(Segments::open(&d.journal_dir.join(SEGMENTS_DIR))?);
                let applied = applied_of(db)?;
                let floor = match counter(db, SYNCED_KEY)? {
                    Some(synced) => synced.min(applied),
                    // A store from before segments: no pointer can be ahead of its bytes.
                    None => applied,
                };
                let (journal, entries) = Journal::open(d.journal_dir, floor)?;
                if !entries.is_empty() {
                    let jobs = replay(db, entries, &segments, applied)?;
                    log::info!("journal: {jobs} commits the store had not kept were applied again");
                }
                segments
                    .sync()
                    .map_err(|e| format!("syncing the segments: {e}"))?;
                db.insert(SYNCED_KEY, &applied_of(db)?.to_be_bytes())
                    .map_err(|e| e.to_string())?;
                flush_and_sync(db, Some(&mut sync))?;
                (Some(sync), Some(journal), Some(segments))
            }
            None => (None, None, None),
        };
        let (fatal_tx, fatal_rx) = smol::channel::bounded(1);
        #[cfg(test)]
        let answers = Arc::new(Mutex::new(()));
        let faults = Faults {
            commit: fail_commits.clone(),
            sync: fail_syncs.clone(),
            #[cfg(test)]
            answers: answers.clone(),
        };
        let checkpoints = Arc::new(Checkpoints::default());
        // A checkpoint records the entry it covers: never one older than what is applied.
        checkpoints.start_at(applied_of(db)?);
        let store = Store {
            db: db.clone(),
            segments: segments.clone(),
            sync: Arc::new(Mutex::new(sync)),
            checkpoints: checkpoints.clone(),
            fatal: fatal_tx,
        };
        let fatal = store.fatal.clone();
        let handle = std::thread::Builder::new()
            .name("commit".into())
            .spawn(move || {
                // A panic here would leave every later commit unanswered: the service stops.
                if let Err(p) = crate::watch::caught(|| committer(store, rx, faults, journal)) {
                    let _ = fatal.try_send(format!("the commit thread panicked: {p}"));
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(Durable {
            jobs: tx,
            fail_commits,
            fail_syncs,
            #[cfg(test)]
            answers,
            committer: std::sync::Mutex::new(Some(handle)),
            checkpoints,
            fatal: fatal_rx,
            next_id: std::sync::atomic::AtomicU64::new(0),
            segments,
        }))
    }

    /// A queue opened on `tree`, whose keys are a prefix byte then a big-endian `u64` id:
    /// ids handed out from now on are past every id under `prefixes` there.
    pub fn ids_after(&self, tree: &sled::Tree, prefixes: &[u8]) {
        self.next_id
            .fetch_max(first_free_id(tree, prefixes), Ordering::Relaxed);
    }

    /// A fresh queue id: never handed out before, by any queue, across restarts too (ids grow
    /// with time, see [`first_free_id`]).
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Writes `writes` into `tree`, in order; `Ok` once they are on disk. On `Err` nothing of
    /// them is kept. Readers may see some of the writes before this returns: a caller keeps
    /// readers that act on them away until then ([`InFlight`]), so nothing is changed on the
    /// strength of a commit that has not happened, and so replay after a crash (which writes a
    /// job whole again unless its entry is known applied) never undoes a later change.
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

/// Tests: waits (at most 10 s, then fails naming `what`) until `done` holds, e.g. until a write
/// held back by [`Durable::answers`] has been applied.
#[cfg(test)]
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(std::time::Duration::from_millis(1));
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

/// Failures tests inject.
struct Faults {
    commit: Arc<AtomicBool>,
    sync: Arc<AtomicBool>,
    /// Tests: held, it stops the committer after a group is applied and before it is answered.
    #[cfg(test)]
    answers: Arc<Mutex<()>>,
}

/// Applies the jobs of `entries` again, in order, and records the newest as applied; returns
/// how many jobs. An entry past `applied` (the [`APPLIED_KEY`] sled recovered) is applied whole.
/// One at or below it is in sled already, and what changed since (an outcome, a removal) must
/// stand: only its bodies are looked at, and a body whose pointer no longer finds its bytes (the
/// segment's tail was lost with the power) is appended again.
fn replay(
    db: &sled::Db,
    entries: Vec<journal::Entry>,
    segments: &Segments,
    applied: u64,
) -> Result<usize, String> {
    let mut jobs = 0;
    for entry in entries {
        for job in entry.jobs {
            let tree = db.open_tree(&job.tree).map_err(|e| e.to_string())?;
            for (k, v) in job.writes {
                if entry.seq <= applied {
                    let Some((&BODY, key)) = k.split_first() else {
                        continue;
                    };
                    let now = tree.get(key).map_err(|e| e.to_string())?;
                    let lost = now
                        .as_deref()
                        .and_then(crate::segments::Pointer::decode)
                        .is_some_and(|p| segments.read(&p, key).is_err());
                    if !lost {
                        // Still readable, kept whole in sled, or gone since (its message
                        // finished): nothing to do.
                        continue;
                    }
                    log::warn!("journal: a body the segments lost is written again");
                }
                let (k, v) = applied_write(Some(segments), k, v)?;
                tree.insert(k, v).map_err(|e| e.to_string())?;
            }
            jobs += 1;
        }
        if entry.seq > applied {
            db.insert(APPLIED_KEY, &entry.seq.to_be_bytes())
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(jobs)
}

/// The newest journal entry known to be wholly in sled (0: none yet).
fn applied_of(db: &sled::Db) -> Result<u64, String> {
    Ok(counter(db, APPLIED_KEY)?.unwrap_or(0))
}

/// An entry number kept under `key` in sled's default tree.
fn counter(db: &sled::Db, key: &[u8]) -> Result<Option<u64>, String> {
    Ok(db
        .get(key)
        .map_err(|e| e.to_string())?
        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes)))
}

/// Ids whose commit has not returned yet: the queue's readers skip them, so no worker acts on a
/// message before it is durable (nor on one whose commit then fails).
#[derive(Default)]
pub struct InFlight(Mutex<HashSet<u64>>);

impl InFlight {
    /// Marks `id` as being committed until the guard is dropped.
    pub fn enter(&self, id: u64) -> InFlightGuard<'_> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        InFlightGuard(self, id)
    }

    /// Whether `id`'s commit is still going on. Ask after reading what it wrote.
    pub fn contains(&self, id: u64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
    }
}

pub struct InFlightGuard<'a>(&'a InFlight, u64);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        (self.0)
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

/// What the committer and the checkpoint thread share.
struct Store {
    db: sled::Db,
    segments: Option<Arc<Segments>>,
    sync: Arc<Mutex<Option<DiskSync>>>,
    checkpoints: Arc<Checkpoints>,
    fatal: smol::channel::Sender<String>,
}

impl Store {
    /// The segments first (sled may hold pointers to what they were just given), then sled.
    fn flush_and_sync(&self) -> Result<(), String> {
        if let Some(s) = &self.segments {
            s.sync().map_err(|e| format!("fsync of a segment: {e}"))?;
        }
        let mut sync = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        flush_and_sync(&self.db, sync.as_mut())
    }

    /// A checkpoint covering journal entry `target` (every entry up to it is applied): the
    /// segments synced and that recorded, sled flushed and synced, then the segments whose
    /// bodies were all released before it began are deleted (their pointers' removal is
    /// durable now).
    fn checkpoint(&self, target: u64) -> Result<(), String> {
        let doomed = self
            .segments
            .as_ref()
            .map(|s| s.take_doomed())
            .unwrap_or_default();
        if let Some(s) = &self.segments {
            s.sync().map_err(|e| format!("fsync of a segment: {e}"))?;
            self.db
                .insert(SYNCED_KEY, &target.to_be_bytes())
                .map_err(|e| e.to_string())?;
        }
        {
            let mut sync = self.sync.lock().unwrap_or_else(|e| e.into_inner());
            flush_and_sync(&self.db, sync.as_mut())?;
        }
        if let Some(s) = &self.segments
            && let Err(e) = s.delete(&doomed)
        {
            log::warn!("segments: could not delete a finished segment: {e}");
        }
        Ok(())
    }

    /// Segments wait to be deleted: a checkpoint should come even with nothing journaled.
    fn has_doomed(&self) -> bool {
        self.segments.as_ref().is_some_and(|s| s.has_doomed())
    }
}

/// How a group's commit went wrong.
struct Failed {
    why: String,
    /// The disk failed: nothing written later can be trusted to be durable.
    disk: bool,
}

/// Takes every waiting job and commits them as one group: through the journal when there is one
/// and no job is too large for it ([`commit_journaled`]), else as sled batches and a flush
/// ([`commit_batched`]); answers all.
fn committer(
    store: Store,
    jobs: smol::channel::Receiver<Job>,
    faults: Faults,
    mut journal: Option<Journal>,
) {
    let store = Arc::new(store);
    let checkpoints = journal.is_some().then(|| {
        let store = store.clone();
        std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                // Without checkpoints the journal fills and commits stop: the service stops.
                if let Err(p) = crate::watch::caught(|| checkpointer(&store)) {
                    let _ = store
                        .fatal
                        .try_send(format!("the checkpoint thread panicked: {p}"));
                }
            })
            .expect("a thread for checkpoints")
    });
    // After a failed flush or sync nothing written later can be trusted to be durable (the
    // kernel may have dropped the pages that failed): refuse everything until a restart.
    let mut stopped: Option<String> = None;
    while let Ok(first) = jobs.recv_blocking() {
        let mut bytes = job_bytes(&first);
        let mut group = vec![first];
        while group.len() < GROUP_MAX && bytes < GROUP_BYTES {
            match jobs.try_recv() {
                Ok(j) => {
                    bytes += job_bytes(&j);
                    group.push(j);
                }
                Err(_) => break,
            }
        }
        if let Some(why) = &stopped {
            for job in group {
                let _ = job.done.try_send(Err(why.clone()));
            }
            continue;
        }
        crate::failpoint::hit("commit");
        let t0 = Instant::now();
        let n = group.len();
        let dones: Vec<Done> = group.iter().map(|j| j.done.clone()).collect();
        let result = if faults.commit.load(Ordering::Relaxed) {
            Err(Failed {
                why: "injected commit failure".into(),
                disk: false,
            })
        } else {
            match &mut journal {
                Some(jl) if group.iter().all(|j| job_bytes(j) <= JOURNAL_JOB_MAX) => {
                    commit_journaled(jl, group, &store, &faults)
                }
                _ => commit_batched(group, &store, &faults),
            }
        };
        log::trace!("commit: {n} jobs in {:?}", t0.elapsed());
        let result = result.map_err(|f| {
            if f.disk {
                log::error!("commit: {}; refusing writes from now on", f.why);
                let why = format!(
                    "the store stopped after a disk error ({}); restart herald",
                    f.why
                );
                let _ = store.fatal.try_send(why.clone());
                stopped = Some(why);
            } else {
                log::error!("commit: {}", f.why);
            }
            f.why
        });
        #[cfg(test)]
        drop(faults.answers.lock().unwrap_or_else(|e| e.into_inner()));
        for done in dones {
            let _ = done.try_send(result.clone());
        }
    }
    store.checkpoints.stop();
    if let Some(h) = checkpoints {
        let _ = h.join();
    }
}

#[cfg(test)]
mod tests;
