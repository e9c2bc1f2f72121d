//! The durable reply queue in sled. An accepted message is stored as its raw bytes (`d` + queue
//! id) and one record per recipient (`r` + queue id + index), in one atomic batch; the `250`
//! goes out only after the flush that makes the batch durable has returned.
//!
//! The writes go through [`Durable`]'s group commit, so concurrent sessions share fsyncs.

use crate::clock;
use crate::durable::Durable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

const TREE: &str = "inbound";
const DATA: u8 = b'd';
const REPLY: u8 = b'r';

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

pub struct Spool {
    tree: sled::Tree,
    next_id: AtomicU64,
    /// Where the writes are made durable (tests inject disk failures there).
    pub durable: Arc<Durable>,
}

impl Spool {
    /// Opens the queue in `db`, committing through `durable`.
    pub fn open(db: &sled::Db, durable: Arc<Durable>) -> Result<Arc<Spool>, String> {
        let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
        let next_id = crate::durable::first_free_id(&tree, &[DATA, REPLY]);
        Ok(Arc::new(Spool {
            tree,
            next_id: AtomicU64::new(next_id),
            durable,
        }))
    }

    /// Stores a message durably; returns its queue id once the flush has returned.
    pub async fn store(&self, m: Incoming<'_>) -> Result<(QueueId, Vec<ReplyRecord>), String> {
        let id = QueueId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let received_at = clock::rfc3339(SystemTime::now());
        let mut writes = Vec::with_capacity(m.rcpts.len() + 1);
        // Mail only to no-reply addresses is accepted and dropped: its records say so, and its
        // body is not kept (nothing will read it, and keeping it would let anyone fill the disk).
        let keep_body = m.rcpts.iter().any(|(_, discard)| !discard);
        if keep_body {
            writes.push((key(DATA, id, None), m.data.to_vec()));
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
            let rec_bytes = serde_json::to_vec(&rec).expect("serializes");
            writes.push((key(REPLY, id, Some(n)), rec_bytes));
            records.push(rec);
        }
        self.durable.commit(&self.tree, writes).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn open(db: &sled::Db, dir: Option<&std::path::Path>) -> Arc<Spool> {
        Spool::open(db, Durable::open(db, dir).unwrap()).unwrap()
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
        let db = sled::Config::new().path(&dir).open().unwrap();
        let spool = open(&db, Some(&dir));
        let rcpts = vec![("r1@reply.x".to_string(), false)];
        let big = vec![b'x'; 300 * 1024];
        let (id, _) = smol::block_on(spool.store(incoming(&rcpts, &big))).unwrap();
        let blobs = std::fs::read_dir(dir.join("blobs")).unwrap().count();
        assert!(blobs > 0, "a 300 KiB value is a sled blob");
        let (small, _) = smol::block_on(spool.store(incoming(&rcpts, b"small"))).unwrap();
        drop(spool);
        drop(db);
        let db = sled::Config::new().path(&dir).open().unwrap();
        let spool = open(&db, Some(&dir));
        assert_eq!(spool.data(id).unwrap().unwrap().len(), big.len());
        assert_eq!(spool.data(small).unwrap().unwrap(), b"small");
        drop(spool);
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn many_concurrent_large_messages_all_commit() {
        let dir = std::env::temp_dir().join(format!("herald-spool-gc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = sled::Config::new().path(&dir).open().unwrap();
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
