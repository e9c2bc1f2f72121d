//! The durable reply queue in sled. An accepted message is stored as its raw bytes (`d` + queue
//! id) and one record per recipient (`r` + queue id + index), in one atomic batch; the `250`
//! goes out only after the flush that makes the batch durable has returned.
//!
//! The writes go through [`Durable`]'s group commit, so concurrent sessions share fsyncs.
//!
//! Reply processing finds its work through an index of pending records by due time (`p` + due
//! ms + queue id + index), and records each outcome on the record; once every record of a
//! message is final its body is removed. Duplicates (the same Message-ID to the same reply
//! address, delivered twice by a sending MTA) are found through `s` + digest keys.

use crate::clock;
use crate::durable::Durable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

const TREE: &str = "inbound";
const DATA: u8 = b'd';
const REPLY: u8 = b'r';
const PENDING: u8 = b'p';
const SEEN: u8 = b's';

/// A queue id: sortable by time of acceptance, shown as uppercase hex like Postfix's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// Webhook attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// When the next processing attempt is due (unix ms), while pending.
    #[serde(default)]
    pub due_ms: i64,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The `X-Herald-Delivery` id: this record's id, or the first record's of a duplicate.
    #[serde(default)]
    pub delivery_id: Option<String>,
}

impl ReplyRecord {
    pub fn is_pending(&self) -> bool {
        self.status == "pending"
    }
}

/// A record's new state, and the state it had (as `due` handed it out).
#[derive(Debug, Clone)]
pub struct Update {
    pub id: QueueId,
    pub n: u16,
    pub old: ReplyRecord,
    pub new: ReplyRecord,
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

pub struct Spool {
    tree: sled::Tree,
    next_id: AtomicU64,
    /// Where the writes are made durable (tests inject disk failures there).
    pub durable: Arc<Durable>,
    /// Messages being stored: not due until their commit has returned.
    inflight: crate::durable::InFlight,
    /// Wakes reply processing when a message is stored.
    wake: smol::channel::Sender<()>,
    pub woken: smol::channel::Receiver<()>,
}

impl Spool {
    /// Opens the queue in `db`, committing through `durable`.
    pub fn open(db: &sled::Db, durable: Arc<Durable>) -> Result<Arc<Spool>, String> {
        let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
        let next_id = crate::durable::first_free_id(&tree, &[DATA, REPLY]);
        let (wake, woken) = smol::channel::bounded(1);
        Ok(Arc::new(Spool {
            tree,
            next_id: AtomicU64::new(next_id),
            inflight: Default::default(),
            durable,
            wake,
            woken,
        }))
    }

    /// Stores a message durably; returns its queue id once the flush has returned.
    pub async fn store(&self, m: Incoming<'_>) -> Result<(QueueId, Vec<ReplyRecord>), String> {
        let id = QueueId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let now = SystemTime::now();
        let received_at = clock::rfc3339(now);
        let now_ms = clock::unix_millis(now);
        let mut writes = Vec::with_capacity(m.rcpts.len() + 1);
        // Mail only to no-reply addresses is accepted and dropped: its records say so, and its
        // body is not kept (nothing will read it, and keeping it would let anyone fill the disk).
        let keep_body = m.rcpts.iter().any(|(_, discard)| !discard);
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
                attempts: 0,
                due_ms: now_ms,
                last_error: None,
                delivery_id: None,
            };
            let rec_bytes = serde_json::to_vec(&rec).expect("serializes");
            writes.push((key(REPLY, id, Some(n)), rec_bytes));
            if rec.is_pending() {
                writes.push((pending_key(now_ms, id, n), Vec::new()));
                // The first record of a reply is named in the same durable commit, so which
                // copy of a duplicate is posted is settled before any is, crash or not.
                let seen = seen_key(&duplicate_digest(&rec));
                if self.tree.get(&seen).ok().flatten().is_none() {
                    writes.push((seen, rec.id.clone().into_bytes()));
                }
            }
            records.push(rec);
        }
        if keep_body {
            writes.push((key(DATA, id, None), m.data.to_vec()));
        }
        let committing = self.inflight.enter(id.0);
        self.durable.commit(&self.tree, writes).await?;
        drop(committing);
        let _ = self.wake.try_send(());
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

    /// Pending records due at `now_ms`, oldest due first, at most `limit`; and when the next one
    /// after them is due.
    pub fn due(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> (Vec<(QueueId, u16, ReplyRecord)>, Option<i64>) {
        let mut out = Vec::new();
        for k in self.tree.scan_prefix([PENDING]).keys() {
            let Ok(k) = k else { break };
            if k.len() != 19 {
                continue;
            }
            let due = u64::from_be_bytes(k[1..9].try_into().expect("8 bytes")) as i64;
            if due > now_ms || out.len() >= limit {
                return (out, Some(due));
            }
            let id = QueueId(u64::from_be_bytes(k[9..17].try_into().expect("8 bytes")));
            let n = u16::from_be_bytes(k[17..19].try_into().expect("2 bytes"));
            if self.inflight.contains(id.0) {
                continue;
            }
            // An entry whose record is gone, unreadable or not pending would be taken round
            // after round: it goes instead.
            match self.record(id, n) {
                Ok(Some(rec)) if rec.is_pending() => out.push((id, n, rec)),
                _ => {
                    log::warn!("replies: dropping a stale pending entry for {id}-{n}");
                    let _ = self.tree.remove(&k);
                }
            }
        }
        (out, None)
    }

    /// One record.
    pub fn record(&self, id: QueueId, n: u16) -> Result<Option<ReplyRecord>, String> {
        match self
            .tree
            .get(key(REPLY, id, Some(n)))
            .map_err(|e| e.to_string())?
        {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| format!("unreadable reply record: {e}")),
        }
    }

    /// Saves a record's new state and moves it in (or out of) the pending index: [`Spool::update_all`]
    /// of one.
    pub fn update(
        &self,
        id: QueueId,
        n: u16,
        old: &ReplyRecord,
        new: &ReplyRecord,
    ) -> Result<(), String> {
        self.update_all(&[Update {
            id,
            n,
            old: old.clone(),
            new: new.clone(),
        }])
    }

    /// Saves records' new states and moves them in (or out of) the pending index, all in one sled
    /// batch (each batch seals sled's log buffer, a write and a `sync_file_range` on its IO
    /// threads, so reply processing saves its outcomes in groups). When no record of a message is
    /// pending any more, counting the new states, its body goes. Not synced by itself (sled
    /// flushes within half a second): after a crash a record may be pending again and its reply
    /// is posted once more with the same delivery id, which the application de-duplicates.
    pub fn update_all(&self, updates: &[Update]) -> Result<(), String> {
        let mut batch = sled::Batch::default();
        // The pending state of each record this group changes (the last change of a record wins).
        let mut after = std::collections::HashMap::with_capacity(updates.len());
        for u in updates {
            if u.old.is_pending() {
                batch.remove(pending_key(u.old.due_ms, u.id, u.n));
            }
            if u.new.is_pending() {
                batch.insert(pending_key(u.new.due_ms, u.id, u.n), Vec::new());
            }
            batch.insert(
                key(REPLY, u.id, Some(u.n)),
                serde_json::to_vec(&u.new).expect("serializes"),
            );
            after.insert((u.id, u.n), u.new.is_pending());
        }
        let mut finished: Vec<QueueId> = updates
            .iter()
            .filter(|u| !u.new.is_pending())
            .map(|u| u.id)
            .collect();
        finished.sort_unstable();
        finished.dedup();
        for id in finished {
            let any_pending =
                self.tree
                    .scan_prefix(key(REPLY, id, None))
                    .filter_map(Result::ok)
                    .any(|(k, v)| {
                        let n = k
                            .get(9..11)
                            .map(|b| u16::from_be_bytes([b[0], b[1]]))
                            .and_then(|n| after.get(&(id, n)));
                        match n {
                            Some(&pending) => pending,
                            None => serde_json::from_slice::<ReplyRecord>(&v)
                                .is_ok_and(|r| r.is_pending()),
                        }
                    });
            if !any_pending {
                batch.remove(key(DATA, id, None));
            }
        }
        self.tree.apply_batch(batch).map_err(|e| e.to_string())
    }

    /// The delivery id of the first record of `digest` (see [`duplicate_digest`]); `None` after
    /// recording `delivery_id` as the first, for records stored before `store` named it.
    pub fn first_delivery(
        &self,
        digest: &str,
        delivery_id: &str,
    ) -> Result<Option<String>, String> {
        let k = seen_key(digest);
        match self
            .tree
            .compare_and_swap(&k, None as Option<&[u8]>, Some(delivery_id.as_bytes()))
            .map_err(|e| e.to_string())?
        {
            Ok(()) => Ok(None),
            Err(e) => Ok(e.current.map(|v| String::from_utf8_lossy(&v).into_owned())),
        }
    }

    /// The raw message of a queue id.
    pub fn data(&self, id: QueueId) -> Result<Option<Vec<u8>>, String> {
        self.tree
            .get(key(DATA, id, None))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| e.to_string())
    }
}

/// What makes two records one reply: the same Message-ID (or, without one, the record itself)
/// to the same reply address.
pub fn duplicate_digest(rec: &ReplyRecord) -> String {
    crate::crypto::sha256_hex(
        format!(
            "{}\0{}",
            rec.message_id.as_deref().unwrap_or(&rec.id),
            rec.to.to_ascii_lowercase()
        )
        .as_bytes(),
    )
}

fn seen_key(digest: &str) -> Vec<u8> {
    let mut k = vec![SEEN];
    k.extend_from_slice(digest.as_bytes());
    k
}

fn pending_key(due_ms: i64, id: QueueId, n: u16) -> Vec<u8> {
    let mut k = Vec::with_capacity(19);
    k.push(PENDING);
    k.extend_from_slice(&(due_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&id.0.to_be_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `dir` holds sled's folder (`dir/db`) and the journal.
    fn open(db: &sled::Db, dir: Option<&std::path::Path>) -> Arc<Spool> {
        let sled_dir = dir.map(|d| d.join("db"));
        let on_disk =
            dir.zip(sled_dir.as_deref())
                .map(|(journal_dir, sled_dir)| crate::durable::OnDisk {
                    sled_dir,
                    journal_dir,
                });
        Spool::open(db, Durable::open(db, on_disk).unwrap()).unwrap()
    }

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
        let spool = open(&db, None);
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
        let again = open(&db, None);
        assert!(again.next_id.load(Ordering::Relaxed) > id2.0);
    }

    /// Mail only to no-reply addresses keeps its records (status discarded), not its body.
    #[test]
    fn a_message_is_not_due_while_its_commit_goes_on() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = open(&db, None);
        let rcpts = vec![("r1@reply.x".to_string(), false)];
        let (id, _) = smol::block_on(spool.store(incoming(&rcpts, b"x"))).unwrap();
        let later = crate::clock::now_ms() + 1000;
        let committing = spool.inflight.enter(id.0);
        assert!(spool.due(later, 10).0.is_empty());
        drop(committing);
        assert_eq!(
            spool.due(later, 10).0.len(),
            1,
            "kept, not dropped as stale"
        );
    }

    #[test]
    fn discard_only_mail_keeps_no_body() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = open(&db, None);
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
        assert!(open(&db, None).next_id.load(Ordering::Relaxed) > id2.0);
    }

    #[test]
    fn a_failed_commit_keeps_nothing() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = open(&db, None);
        spool.durable.fail_commits.store(true, Ordering::Relaxed);
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
        let spool = open(&db, None);
        let rcpts = vec![("r1@reply.x".to_string(), false)];
        smol::block_on(spool.store(incoming(&rcpts, b"first"))).unwrap();
        spool.durable.fail_syncs.store(true, Ordering::Relaxed);
        assert!(smol::block_on(spool.store(incoming(&rcpts, b"second"))).is_err());
        let why = spool
            .durable
            .fatal
            .try_recv()
            .expect("the service is told to stop");
        assert!(why.contains("restart"), "{why}");
        spool.durable.fail_syncs.store(false, Ordering::Relaxed);
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
        let spool = open(&db, None);
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
        let db = sled::Config::new().path(dir.join("db")).open().unwrap();
        let spool = open(&db, Some(&dir));
        let rcpts = vec![("r1@reply.x".to_string(), false)];
        // Over the journal's job limit: made durable by flushing sled, as a blob.
        let big = vec![b'x'; 2 * 1024 * 1024];
        let (id, _) = smol::block_on(spool.store(incoming(&rcpts, &big))).unwrap();
        let blobs = std::fs::read_dir(dir.join("db/blobs")).unwrap().count();
        assert!(blobs > 0, "a 2 MiB value is a sled blob");
        let (small, _) = smol::block_on(spool.store(incoming(&rcpts, b"small"))).unwrap();
        drop(spool);
        drop(db);
        let db = sled::Config::new().path(dir.join("db")).open().unwrap();
        let spool = open(&db, Some(&dir));
        assert_eq!(spool.data(id).unwrap().unwrap().len(), big.len());
        assert_eq!(spool.data(small).unwrap().unwrap(), b"small");
        drop(spool);
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pending_records_are_due_until_final_and_then_the_body_goes() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = open(&db, None);
        let rcpts = vec![
            ("r1@reply.x".to_string(), false),
            ("n@noreply.x".to_string(), true),
            ("r2@reply.x".to_string(), false),
        ];
        let (id, _) = smol::block_on(spool.store(incoming(&rcpts, b"body"))).unwrap();
        assert!(spool.woken.try_recv().is_ok(), "processing is woken");
        let far = i64::MAX / 2;
        let due_ids = |now, limit| -> Vec<(QueueId, u16)> {
            spool
                .due(now, limit)
                .0
                .into_iter()
                .map(|(id, n, _)| (id, n))
                .collect()
        };
        let (_, next) = spool.due(far, 10);
        let due = due_ids(far, 10);
        assert_eq!(due, vec![(id, 1), (id, 3)], "discarded records are not due");
        assert_eq!(next, None);
        // The first is retried later: it moves in the index.
        let old = spool.record(id, 1).unwrap().unwrap();
        let mut later = old.clone();
        later.attempts = 1;
        later.due_ms = old.due_ms + 60_000;
        spool.update(id, 1, &old, &later).unwrap();
        assert_eq!(due_ids(old.due_ms, 10), vec![(id, 3)]);
        // Both final: the body goes once the last one is.
        let mut done = later.clone();
        done.status = "processed".into();
        spool.update(id, 1, &later, &done).unwrap();
        assert!(
            spool.data(id).unwrap().is_some(),
            "record 3 still needs the body"
        );
        let old3 = spool.record(id, 3).unwrap().unwrap();
        let mut failed = old3.clone();
        failed.status = "failed:empty".into();
        spool.update(id, 3, &old3, &failed).unwrap();
        assert_eq!(spool.data(id).unwrap(), None);
        assert_eq!(due_ids(far, 10), vec![]);
        assert_eq!(spool.replies(Some("processed"), 10).unwrap().len(), 1);
        assert_eq!(spool.replies(Some("discarded"), 10).unwrap().len(), 1);
    }

    /// Outcomes saved as one group: the body goes when the group makes the last record final,
    /// also when two records of the message are in the same group.
    #[test]
    fn a_group_of_outcomes_is_one_batch_and_the_body_goes_with_the_last() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = open(&db, None);
        let two = vec![
            ("r1@reply.x".to_string(), false),
            ("r2@reply.x".to_string(), false),
        ];
        let (a, _) = smol::block_on(spool.store(incoming(&two, b"a"))).unwrap();
        let (b, _) = smol::block_on(spool.store(incoming(&two, b"b"))).unwrap();
        let update = |id, n, status: &str| {
            let old = spool.record(id, n).unwrap().unwrap();
            let mut new = old.clone();
            new.status = status.into();
            if status == "pending" {
                new.attempts = 1;
                new.due_ms = old.due_ms + 60_000;
            }
            Update { id, n, old, new }
        };
        // a: both final in one group; b: one final, one retried later.
        let group = vec![
            update(a, 1, "processed"),
            update(b, 1, "processed"),
            update(a, 2, "failed:empty"),
            update(b, 2, "pending"),
        ];
        spool.update_all(&group).unwrap();
        assert_eq!(spool.data(a).unwrap(), None);
        assert!(spool.data(b).unwrap().is_some(), "b-2 still needs it");
        let due: Vec<_> = spool
            .due(i64::MAX / 2, 10)
            .0
            .into_iter()
            .map(|(id, n, r)| (id, n, r.attempts))
            .collect();
        assert_eq!(due, vec![(b, 2, 1)]);
        assert_eq!(spool.record(a, 2).unwrap().unwrap().status, "failed:empty");
        spool.update_all(&[update(b, 2, "processed")]).unwrap();
        assert_eq!(spool.data(b).unwrap(), None);
    }

    /// Which copy of a duplicate is the reply is settled when it is stored (durably), not when it
    /// is processed, so a crash between a webhook POST and its record cannot make both count.
    #[test]
    fn the_first_copy_of_a_duplicate_is_named_at_store_time() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = open(&db, None);
        let rcpts = vec![("R1@reply.x".to_string(), false)];
        let (a, recs_a) = smol::block_on(spool.store(incoming(&rcpts, b"one"))).unwrap();
        let lower = vec![("r1@reply.x".to_string(), false)];
        let (_, recs_b) = smol::block_on(spool.store(incoming(&lower, b"one again"))).unwrap();
        let first = format!("{a}-1");
        for rec in [&recs_a[0], &recs_b[0]] {
            let digest = duplicate_digest(rec);
            assert_eq!(
                spool.first_delivery(&digest, &rec.id).unwrap(),
                Some(first.clone())
            );
        }
        // Without a Message-ID every record is its own reply.
        let mut m = incoming(&rcpts, b"x");
        m.message_id = None;
        let (c, recs_c) = smol::block_on(spool.store(m)).unwrap();
        let digest = duplicate_digest(&recs_c[0]);
        assert_eq!(
            spool.first_delivery(&digest, &recs_c[0].id).unwrap(),
            Some(format!("{c}-1"))
        );
    }

    #[test]
    fn the_first_delivery_of_a_digest_wins() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let spool = open(&db, None);
        assert_eq!(spool.first_delivery("d1", "A-1").unwrap(), None);
        assert_eq!(
            spool.first_delivery("d1", "B-1").unwrap(),
            Some("A-1".to_string())
        );
        assert_eq!(
            spool.first_delivery("d1", "A-1").unwrap(),
            Some("A-1".to_string())
        );
        assert_eq!(spool.first_delivery("d2", "B-1").unwrap(), None);
    }

    #[test]
    fn many_concurrent_large_messages_all_commit() {
        let dir = std::env::temp_dir().join(format!("herald-spool-gc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = sled::Config::new().path(dir.join("db")).open().unwrap();
        let spool = open(&db, Some(&dir));
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
