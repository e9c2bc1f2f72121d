//! The durable reply queue in sled. An accepted message is stored as its raw bytes (`d` + queue
//! id: in a segment file beside sled, sled holding where, see [`crate::segments`]) and one
//! record per reply recipient (`r` + queue id + index; no-reply recipients are only counted),
//! in one commit; the `250` goes out only after the sync that makes it durable has returned.
//! Finished records go after `retention.days` ([`Spool::expire`]).
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
    /// Times herald stopped abnormally while reading this message (see `replies::reading`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub crashes: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
    /// The body, handed over: it goes into the commit as it is, not copied.
    pub data: Vec<u8>,
    pub tls: bool,
    pub client: &'a str,
    pub helo: &'a str,
    pub message_id: Option<String>,
}

pub struct Spool {
    tree: sled::Tree,
    /// Where the writes are made durable (tests inject disk failures there).
    pub durable: Arc<Durable>,
    /// Messages being stored: not due until their commit has returned.
    inflight: crate::durable::InFlight,
    /// Recipients accepted and dropped (no-reply addresses) since the start.
    pub discarded: AtomicU64,
    /// Wakes reply processing when a message is stored.
    wake: smol::channel::Sender<()>,
    pub woken: smol::channel::Receiver<()>,
}

impl Spool {
    /// Opens the queue in `db`, committing through `durable`.
    pub fn open(db: &sled::Db, durable: Arc<Durable>) -> Result<Arc<Spool>, String> {
        let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
        durable.ids_after(&tree, &[DATA, REPLY]);
        if let Some(segments) = &durable.segments {
            // Which segments hold bodies still needed: the rest go.
            let pointers = tree
                .scan_prefix([DATA])
                .values()
                .filter_map(|v| crate::segments::Pointer::decode(&v.ok()?));
            segments
                .adopt(pointers)
                .map_err(|e| format!("segments: {e}"))?;
        }
        let (wake, woken) = smol::channel::bounded(1);
        Ok(Arc::new(Spool {
            tree,
            inflight: Default::default(),
            durable,
            discarded: AtomicU64::new(0),
            wake,
            woken,
        }))
    }

    /// Stores a message durably; returns its queue id once the flush has returned.
    pub async fn store(&self, m: Incoming<'_>) -> Result<(QueueId, Vec<ReplyRecord>), String> {
        let id = QueueId(self.durable.new_id());
        let now = SystemTime::now();
        let received_at = clock::rfc3339(now);
        let now_ms = clock::unix_millis(now);
        let mut writes = Vec::with_capacity(m.rcpts.len() + 1);
        // Mail to no-reply addresses is accepted and dropped: no record, no body (nothing will
        // read them, and keeping them would let anyone fill the disk); a count and mail.log's
        // line say it came.
        let discarded = m.rcpts.iter().filter(|(_, discard)| *discard).count();
        self.discarded
            .fetch_add(discarded as u64, Ordering::Relaxed);
        if discarded == m.rcpts.len() {
            return Ok((id, Vec::new()));
        }
        let mut records = Vec::with_capacity(m.rcpts.len() - discarded);
        for (n, (to, discard)) in m.rcpts.iter().enumerate() {
            let n = u16::try_from(n + 1).map_err(|_| "too many recipients".to_string())?;
            if *discard {
                continue;
            }
            let rec = ReplyRecord {
                id: format!("{id}-{n}"),
                status: "pending".into(),
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
                crashes: 0,
            };
            let rec_bytes = serde_json::to_vec(&rec).expect("serializes");
            writes.push((key(REPLY, id, Some(n)), rec_bytes));
            writes.push((pending_key(now_ms, id, n), Vec::new()));
            // The first record of a reply is named in the same durable commit, so which copy of
            // a duplicate is posted is settled before any is, crash or not.
            let seen = seen_key(&duplicate_digest(&rec));
            if self.tree.get(&seen).ok().flatten().is_none() {
                writes.push((seen, rec.id.clone().into_bytes()));
            }
            records.push(rec);
        }
        writes.push(crate::durable::body(key(DATA, id, None), m.data));
        let committing = self.inflight.enter(id.0);
        self.durable.commit(&self.tree, writes).await?;
        drop(committing);
        let _ = self.wake.try_send(());
        Ok((id, records))
    }

    /// Wakes the worker that reads this queue (settings changed under it).
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    /// How many reply records there are of each status (`pending`, `processed`, `discarded`,
    /// `failed:<reason>`), in that order, failures by reason.
    pub fn counts(&self) -> Result<Vec<(String, usize)>, String> {
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for item in self.tree.scan_prefix([REPLY]).values() {
            let v = item.map_err(|e| e.to_string())?;
            let rec: ReplyRecord =
                serde_json::from_slice(&v).map_err(|e| format!("unreadable reply record: {e}"))?;
            *counts.entry(rec.status).or_default() += 1;
        }
        let order = |s: &str| match s {
            "pending" => 0,
            "processed" => 1,
            "discarded" => 2,
            _ => 3,
        };
        let mut out: Vec<(String, usize)> = counts.into_iter().collect();
        out.sort_by(|a, b| order(&a.0).cmp(&order(&b.0)).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
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
            // An entry whose record is gone, unreadable, not pending or due at another time
            // would be taken round after round: it goes instead.
            match self.record(id, n) {
                // (An entry at another time than its record's is left over: the record is
                // due by its own entry.)
                Ok(Some(rec)) if rec.is_pending() && rec.due_ms.max(0) == due => {
                    out.push((id, n, rec))
                }
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
        let mut released = Vec::new();
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
                let k = key(DATA, id, None);
                if let Ok(Some(v)) = self.tree.get(&k)
                    && let Some(p) = crate::segments::Pointer::decode(&v)
                {
                    released.push(p);
                }
                batch.remove(k);
            }
        }
        self.tree.apply_batch(batch).map_err(|e| e.to_string())?;
        if let Some(segments) = &self.durable.segments {
            for p in &released {
                segments.release(p);
            }
        }
        Ok(())
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

    /// Removes records that finished (processed, discarded, failed) and arrived more than
    /// `days` ago, with the de-duplication key each first record holds. Returns how many went.
    pub fn expire(&self, now_ms: i64, days: u32) -> Result<usize, String> {
        let cutoff = crate::retention::cutoff_id(now_ms, days);
        crate::retention::expire(&self.tree, REPLY, cutoff, |_, v| {
            let rec: ReplyRecord = serde_json::from_slice(v).ok()?;
            if rec.is_pending() {
                return None;
            }
            let seen = seen_key(&duplicate_digest(&rec));
            let names_this = self
                .tree
                .get(&seen)
                .ok()
                .flatten()
                .is_some_and(|first| first == rec.id.as_bytes());
            Some(if names_this { vec![seen] } else { Vec::new() })
        })
    }

    /// The raw message of a queue id, checked against its checksum when it is in a segment
    /// (a body stored whole in sled, by a herald from before segments, is as it was).
    pub fn data(&self, id: QueueId) -> Result<Option<Vec<u8>>, crate::segments::ReadError> {
        use crate::segments::{Pointer, ReadError};
        let k = key(DATA, id, None);
        let Some(v) = self
            .tree
            .get(&k)
            .map_err(|e| ReadError::Io(e.to_string()))?
        else {
            return Ok(None);
        };
        match (Pointer::decode(&v), &self.durable.segments) {
            (Some(p), Some(segments)) => segments.read(&p, &k).map(Some),
            (Some(_), None) => Err(ReadError::Corrupt(
                "a pointer to a segment in a store without segments".into(),
            )),
            (None, _) => Ok(Some(v.to_vec())),
        }
    }

    /// How many segment files hold bodies, and their bytes (`None` without segments).
    pub fn body_usage(&self) -> Option<(usize, u64)> {
        self.durable.segments.as_ref().map(|s| s.usage())
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
mod tests;
