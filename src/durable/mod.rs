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
//! Measured: a second committer thread (one group applied while the previous one syncs) gave no
//! better throughput or p99 on 2 cores (sled serialises its flushes, and the thread takes CPU
//! from the sessions).

mod checkpoint;

use crate::journal::{self, Journal};
use checkpoint::{CHECKPOINT_BYTES, Checkpoints, DiskSync, checkpointer, flush_and_sync};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Jobs one commit takes at most, so one flush never waits on an unbounded queue.
const GROUP_MAX: usize = 512;
/// Bytes of writes after which a group takes no more jobs (a journal entry stays well inside
/// [`journal::ENTRY_MAX`]).
const GROUP_BYTES: usize = 4 * 1024 * 1024;
/// A job larger than this is made durable by flushing sled rather than through the journal.
const JOURNAL_JOB_MAX: usize = 1024 * 1024;
/// The newest journal entry whose writes are all in sled (sled's default tree).
const APPLIED_KEY: &[u8] = b"herald.journal.applied";

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
        let (sync, journal) = match disk {
            Some(d) => {
                let mut sync = DiskSync::open(d.sled_dir)?;
                let floor = applied_of(db)?;
                let (journal, entries) = Journal::open(d.journal_dir, floor)?;
                if !entries.is_empty() {
                    let jobs = replay(db, entries)?;
                    flush_and_sync(db, Some(&mut sync))?;
                    log::info!("journal: {jobs} commits the store had not kept were applied again");
                }
                (Some(sync), Some(journal))
            }
            None => (None, None),
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
        let store = Store {
            db: db.clone(),
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

/// Inserts the jobs of `entries` (those past [`APPLIED_KEY`]) again, in order, and records the
/// newest as applied; returns how many jobs.
fn replay(db: &sled::Db, entries: Vec<journal::Entry>) -> Result<usize, String> {
    let mut jobs = 0;
    for entry in entries {
        for job in entry.jobs {
            let tree = db.open_tree(&job.tree).map_err(|e| e.to_string())?;
            for (k, v) in job.writes {
                tree.insert(k, v).map_err(|e| e.to_string())?;
            }
            jobs += 1;
        }
        db.insert(APPLIED_KEY, &entry.seq.to_be_bytes())
            .map_err(|e| e.to_string())?;
    }
    Ok(jobs)
}

/// The newest journal entry known to be wholly in sled (0: none yet).
fn applied_of(db: &sled::Db) -> Result<u64, String> {
    Ok(db
        .get(APPLIED_KEY)
        .map_err(|e| e.to_string())?
        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0))
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
    sync: Arc<Mutex<Option<DiskSync>>>,
    checkpoints: Arc<Checkpoints>,
    fatal: smol::channel::Sender<String>,
}

impl Store {
    fn flush_and_sync(&self) -> Result<(), String> {
        let mut sync = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        flush_and_sync(&self.db, sync.as_mut())
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

/// The journal's way: the entry is written and synced first (so nothing reaches sled that is not
/// durable, and a failed write has nothing to take back), then every write is inserted in order,
/// then the entry's number under [`APPLIED_KEY`]; only then may the checkpoint cover it.
fn commit_journaled(
    jl: &mut Journal,
    group: Vec<Job>,
    store: &Store,
    faults: &Faults,
) -> Result<(), Failed> {
    let names: Vec<sled::IVec> = group.iter().map(|j| j.tree.name()).collect();
    let entry = jl.entry(
        names
            .iter()
            .zip(&group)
            .map(|(name, j)| (name.as_ref(), j.writes.as_slice())),
    );
    let disk = |why: String| Failed { why, disk: true };
    if faults.sync.load(Ordering::Relaxed) {
        return Err(disk("injected sync failure".into()));
    }
    if let Some(newest_there) = jl.needs_switch(&entry) {
        store.checkpoints.wait_for(newest_there).map_err(disk)?;
        jl.switch();
    }
    let before = jl.offset();
    let seq = jl
        .write(&entry)
        .map_err(|e| disk(format!("journal: {e}")))?;
    // Plain inserts, not sled batches: a batch makes sled seal its log buffer twice, and each
    // sealed buffer is written and `sync_file_range`d by one of sled's IO threads. The journal
    // already makes the group atomic (see [`replay`]), so the batches bought nothing but that
    // cost: 242 against 194 µs of CPU a 2 KB message over 20 SMTP sessions.
    let inserted = group
        .into_iter()
        .try_for_each(|job| {
            job.writes
                .into_iter()
                .try_for_each(|(k, v)| job.tree.insert(k, v).map(drop))
        })
        .and_then(|()| store.db.insert(APPLIED_KEY, &seq.to_be_bytes()).map(drop));
    if let Err(e) = inserted {
        // The group is on disk (the journal) and comes back at the restart this forces; its
        // callers hear `Ok`, which is true.
        let why = format!("the store stopped: a journaled write could not be applied ({e})");
        log::error!("commit: {why}; restart herald");
        let _ = store.fatal.try_send(why);
    }
    let urgent = jl.offset() / CHECKPOINT_BYTES != before / CHECKPOINT_BYTES;
    store.checkpoints.journaled(seq, urgent);
    Ok(())
}

/// The way without the journal (a temporary database, or a job too large for it): one sled batch
/// per tree, then sled's flush and what it leaves unsynced. When a batch cannot be applied or
/// the flush fails, what the group wrote is removed again (best effort), so nothing half-written
/// is kept for a caller that hears `Err`.
fn commit_batched(group: Vec<Job>, store: &Store, faults: &Faults) -> Result<(), Failed> {
    let per_tree = batches(group);
    let mut applied = Ok(());
    let mut written: Vec<(sled::Tree, Vec<Vec<u8>>)> = Vec::new();
    for (tree, batch, keys) in per_tree {
        applied = tree.apply_batch(batch).map_err(|e| e.to_string());
        // Removing keys of a batch that failed halfway is harmless: they are this group's.
        written.push((tree, keys));
        if applied.is_err() {
            break;
        }
    }
    let flushed = if faults.sync.load(Ordering::Relaxed) {
        Err("injected sync failure".to_string())
    } else if applied.is_ok() {
        store.flush_and_sync()
    } else {
        Ok(())
    };
    if applied.is_ok() && flushed.is_ok() {
        return Ok(());
    }
    // Take back what this group wrote, as durably as the disk still allows, so a write answered
    // with an error does not come back after a restart.
    for (tree, keys) in &written {
        for k in keys {
            let _ = tree.remove(k);
        }
    }
    let undone = store.flush_and_sync();
    match (applied, flushed) {
        (_, Err(e)) => Err(Failed {
            why: format!(
                "flush or sync failed: {e}{}",
                if undone.is_err() {
                    " (the failed group could not be taken back)"
                } else {
                    ""
                }
            ),
            disk: true,
        }),
        (Err(e), _) => Err(Failed {
            why: format!("applying a batch failed: {e}"),
            disk: false,
        }),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// A group's writes as one sled batch per tree, in the order trees first appear, with the keys
/// each writes (to take them back if the flush fails). Only [`commit_batched`] uses batches:
/// with the journal they cost sled two sealed log buffers each and bought nothing. An earlier
/// measurement that plain inserts made sled keep far more in memory (115 against 61 MiB after
/// 60,000 messages of 2 KB) did not hold once checkpoints came every 16 MiB: 66 against 62 MiB,
/// and 98 against 105 MiB after 10,000 of 20 KB.
fn batches(group: Vec<Job>) -> Vec<(sled::Tree, sled::Batch, Vec<Vec<u8>>)> {
    let mut per_tree: Vec<(sled::Tree, sled::Batch, Vec<Vec<u8>>)> = Vec::new();
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
    }
    per_tree
}

/// Bytes a job writes.
fn job_bytes(job: &Job) -> usize {
    job.writes.iter().map(|(k, v)| k.len() + v.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_store_lost_comes_back_from_the_journal() {
        let dir = std::env::temp_dir().join(format!("herald-replay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (one, two) = (dir.join("one"), dir.join("two"));
        let on_disk = |sled_dir| OnDisk {
            sled_dir,
            journal_dir: &dir,
        };
        let db = sled::Config::new().path(&one).open().unwrap();
        let durable = Durable::open(&db, Some(on_disk(&one))).unwrap();
        let t = db.open_tree("t").unwrap();
        for i in 0..10u8 {
            let writes = vec![(vec![b'r', i], vec![i]), (vec![b'b', i], vec![i; 100])];
            durable.commit_blocking(&t, writes).unwrap();
        }
        assert_eq!(applied_of(&db).unwrap(), 10);
        drop(durable);
        // Known applied: opening again inserts nothing, so a later change (here a removal)
        // stands.
        t.remove([b'r', 5]).unwrap();
        drop((t, db));
        let db = sled::Config::new().path(&one).open().unwrap();
        let durable = Durable::open(&db, Some(on_disk(&one))).unwrap();
        assert!(db.open_tree("t").unwrap().get([b'r', 5]).unwrap().is_none());
        drop((durable, db));
        // A store that kept none of it, as after a crash before sled's flush (partly kept:
        // job 3's record): the journal gives all of it back.
        let db = sled::Config::new().path(&two).open().unwrap();
        let t = db.open_tree("t").unwrap();
        t.insert([b'r', 3], &[3]).unwrap();
        let durable = Durable::open(&db, Some(on_disk(&two))).unwrap();
        for i in 0..10u8 {
            assert_eq!(t.get([b'r', i]).unwrap().unwrap().as_ref(), &[i]);
            assert_eq!(t.get([b'b', i]).unwrap().unwrap().len(), 100);
        }
        assert_eq!(applied_of(&db).unwrap(), 10);
        drop((durable, t, db));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A journal file is written over only once a checkpoint has made sled hold what it held:
    /// with checkpoints held back, commits stop when both files are full, and go on once a
    /// checkpoint runs.
    #[test]
    fn a_full_journal_waits_for_the_checkpoint_that_frees_a_file() {
        let dir = std::env::temp_dir().join(format!("herald-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sled_dir = dir.join("db");
        let db = sled::Config::new().path(&sled_dir).open().unwrap();
        let on_disk = OnDisk {
            sled_dir: &sled_dir,
            journal_dir: &dir,
        };
        let durable = Durable::open(&db, Some(on_disk)).unwrap();
        durable.checkpoints.hold(true);
        let t = db.open_tree("t").unwrap();
        // Each job close to the journal's limit per job: about 36 fit in a file.
        const JOBS: u64 = 90;
        let value = vec![7u8; JOURNAL_JOB_MAX - 16];
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = {
            let (durable, t, done) = (durable.clone(), t.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..JOBS {
                    let writes = vec![(i.to_be_bytes().to_vec(), value.clone())];
                    durable.commit_blocking(&t, writes).unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        // Wait until the writer stops getting further.
        let mut seen = u64::MAX;
        while done.load(Ordering::Relaxed) != seen {
            seen = done.load(Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let per_file = journal::FILE_SIZE / JOURNAL_JOB_MAX as u64;
        assert!(
            (per_file..JOBS).contains(&seen),
            "with checkpoints held, commits stop once both files are full ({seen} of {JOBS})"
        );
        durable.checkpoints.hold(false);
        writer.join().unwrap();
        assert_eq!(t.len() as u64, JOBS);
        assert_eq!(applied_of(&db).unwrap(), JOBS);
        drop((durable, t, db));
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
