//! The durable notification queue in sled. A notification is its record (`n` + id: JSON with
//! its state) and its message (`m` + id: the RFC 5322 bytes), written in one batch and synced
//! before the API answers `202`. Messages waiting for an attempt are indexed by due time
//! (`q` + due ms + id) so the worker finds the due ones without reading the sent ones.
//!
//! After its enqueue a record changes in two ways only: the delivery worker saves an attempt's
//! outcome, and an operator retries or drops it. The two never cross: the ids the worker takes
//! for a round are marked as taken until their outcomes are saved, an operator's action on a
//! taken id is refused (an attempt is under way), and an outcome is saved only over the state
//! its attempt started from.

use crate::durable::Durable;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const TREE: &str = "outbound";
const RECORD: u8 = b'n';
const MESSAGE: u8 = b'm';
const DUE: u8 = b'q';

/// `queued` (never tried), `deferred` (tried, will try again), `sent`, `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Deferred,
    Sent,
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Deferred => "deferred",
            Status::Sent => "sent",
            Status::Failed => "failed",
        }
    }

    pub fn from_name(s: &str) -> Option<Status> {
        [
            Status::Queued,
            Status::Deferred,
            Status::Sent,
            Status::Failed,
        ]
        .into_iter()
        .find(|st| st.name() == s)
    }

    /// Queued or deferred: an attempt is still to come.
    pub fn waiting(self) -> bool {
        matches!(self, Status::Queued | Status::Deferred)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    pub kind: String,
    pub id: u64,
}

/// One notification as stored and reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Uppercase hex, like a Postfix queue id (it is the id in mail.log too).
    pub id: String,
    pub status: Status,
    pub to: String,
    pub user_id: u64,
    pub thread: Thread,
    pub reason: String,
    pub subject: String,
    pub message_id: String,
    pub reply_to: String,
    pub size: usize,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: String,
    pub created_ms: i64,
    /// When the next attempt is due (unix ms); meaningful while queued or deferred.
    pub due_ms: i64,
    pub sent_at: Option<String>,
    /// `host[ip]:port` of the last attempt.
    pub relay: Option<String>,
    /// The server's reply to the last attempt, when it got that far (what went wrong is
    /// `last_error`).
    pub smtp_reply: Option<String>,
}

pub struct Queue {
    tree: sled::Tree,
    durable: Arc<Durable>,
    /// Notifications being queued: not due until their commit has returned.
    inflight: crate::durable::InFlight,
    /// Wakes the delivery worker when something new is queued.
    wake: smol::channel::Sender<()>,
    pub woken: smol::channel::Receiver<()>,
    /// Ids the delivery worker took for its round and has not saved an outcome for. The lock
    /// also orders the worker's saves against the operator's actions.
    taken: Mutex<Held>,
    /// An operator asked for an attempt now: delivery paused by settings that failed tries
    /// once more.
    retry_asked: AtomicBool,
}

/// Ids no one else may change now.
#[derive(Default)]
struct Held {
    /// Taken by the delivery worker's round, until their outcomes are saved.
    round: HashSet<u64>,
    /// Being changed by an operator's action, until its commit returns.
    changing: HashSet<u64>,
}

impl Held {
    fn contains(&self, id: &u64) -> bool {
        self.round.contains(id) || self.changing.contains(id)
    }
}

/// Why an operator's retry or drop was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NotFound,
    /// Sent or failed already: nothing is left to retry or drop.
    Finished(Status),
    /// The delivery worker is trying it right now.
    Sending,
    Store(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotFound => write!(f, "there is no such notification"),
            Refused::Finished(s) => write!(
                f,
                "it is {} already: only a queued or deferred notification can be retried or dropped",
                s.name()
            ),
            Refused::Sending => write!(
                f,
                "an attempt to deliver it is under way right now: look again in a few seconds"
            ),
            Refused::Store(e) => write!(f, "the queue could not be written: {e}"),
        }
    }
}

fn key(kind: u8, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(kind);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn due_key(due_ms: i64, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(DUE);
    k.extend_from_slice(&(due_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub fn parse_id(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

impl Queue {
    pub fn open(db: &sled::Db, durable: Arc<Durable>) -> Result<Arc<Queue>, String> {
        let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
        durable.ids_after(&tree, &[RECORD]);
        let (wake, woken) = smol::channel::bounded(1);
        Ok(Arc::new(Queue {
            tree,
            durable,
            inflight: Default::default(),
            wake,
            woken,
            taken: Mutex::default(),
            retry_asked: AtomicBool::new(false),
        }))
    }

    /// A fresh id (never reused, growing with time).
    pub fn new_id(&self) -> u64 {
        self.durable.new_id()
    }

    /// Stores a new notification and its message durably; returns once they are on disk.
    pub fn enqueue(&self, id: u64, rec: &Record, message: &[u8]) -> Result<(), String> {
        let writes = vec![
            (
                key(RECORD, id),
                serde_json::to_vec(rec).expect("serializes"),
            ),
            (key(MESSAGE, id), message.to_vec()),
            (due_key(rec.due_ms, id), Vec::new()),
        ];
        let committing = self.inflight.enter(id);
        self.durable.commit_blocking(&self.tree, writes)?;
        drop(committing);
        let _ = self.wake.try_send(());
        Ok(())
    }

    /// Wakes the worker that reads this queue (settings changed under it).
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    pub fn get(&self, id: u64) -> Result<Option<Record>, String> {
        match self.tree.get(key(RECORD, id)).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| format!("unreadable notification record: {e}")),
        }
    }

    pub fn message(&self, id: u64) -> Result<Option<Vec<u8>>, String> {
        self.tree
            .get(key(MESSAGE, id))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| e.to_string())
    }

    /// Records, newest first, optionally of one status, at most `limit`.
    pub fn list(&self, status: Option<Status>, limit: usize) -> Result<Vec<Record>, String> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([RECORD]).values().rev() {
            let v = item.map_err(|e| e.to_string())?;
            let rec: Record = serde_json::from_slice(&v)
                .map_err(|e| format!("unreadable notification record: {e}"))?;
            if status.is_none_or(|s| rec.status == s) {
                out.push(rec);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Notifications due at `now_ms` with their records, oldest due first, at most `limit`; and
    /// when the next one after them is due. An entry whose record is gone, unreadable, no
    /// longer waiting or due at another time (an operator's retry moved it) would be taken
    /// round after round: it is removed instead.
    ///
    /// The ids returned are taken (see [`Queue::update_all`] and [`Queue::release_all`]).
    pub fn due(&self, now_ms: i64, limit: usize) -> (Vec<(u64, Record)>, Option<i64>) {
        let mut out = Vec::new();
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        for k in self.tree.scan_prefix([DUE]).keys() {
            let Ok(k) = k else { break };
            if k.len() != 17 {
                continue;
            }
            let due = u64::from_be_bytes(k[1..9].try_into().expect("8 bytes")) as i64;
            if due > now_ms || out.len() >= limit {
                return (out, Some(due));
            }
            let id = u64::from_be_bytes(k[9..17].try_into().expect("8 bytes"));
            if self.inflight.contains(id) || taken.contains(&id) {
                continue;
            }
            match self.get(id) {
                Ok(Some(rec)) if rec.status.waiting() && rec.due_ms.max(0) == due => {
                    taken.round.insert(id);
                    out.push((id, rec));
                }
                _ => {
                    log::warn!("outbound: dropping a stale due entry for {id:X}");
                    let _ = self.tree.remove(&k);
                }
            }
        }
        (out, None)
    }

    /// Counts by status.
    pub fn counts(&self) -> Vec<(Status, usize)> {
        self.summary().into_iter().map(|(s, n, _)| (s, n)).collect()
    }

    /// By status: how many, and when the oldest was queued (unix ms; `None` when there is none).
    pub fn summary(&self) -> Vec<(Status, usize, Option<i64>)> {
        let mut counts = [0usize; 4];
        let mut oldest = [None::<i64>; 4];
        for v in self.tree.scan_prefix([RECORD]).values().flatten() {
            if let Ok(rec) = serde_json::from_slice::<Record>(&v) {
                let i = rec.status as usize;
                counts[i] += 1;
                oldest[i] = Some(oldest[i].map_or(rec.created_ms, |o: i64| o.min(rec.created_ms)));
            }
        }
        [
            Status::Queued,
            Status::Deferred,
            Status::Sent,
            Status::Failed,
        ]
        .into_iter()
        .map(|s| (s, counts[s as usize], oldest[s as usize]))
        .collect()
    }

    /// Removes notifications that were sent or failed and were queued more than `days` ago.
    /// Returns how many went.
    pub fn expire(&self, now_ms: i64, days: u32) -> Result<usize, String> {
        let cutoff = crate::retention::cutoff_id(now_ms, days);
        crate::retention::expire(&self.tree, RECORD, cutoff, |k, v| {
            let rec: Record = serde_json::from_slice(v).ok()?;
            // The message goes when a notification finishes; a leftover one goes too.
            let id = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
            (!rec.status.waiting()).then(|| vec![key(MESSAGE, id)])
        })
    }

    /// Saves the outcomes of attempts (of different ids) in one sled batch: each one's record,
    /// its place in the due index, and (once it is sent or failed) the message is dropped. Not
    /// synced by itself: after a crash the older state may come back, and then the message is
    /// sent once more, never lost. One batch for many: see [`crate::wake::SAVE_EVERY`].
    ///
    /// An outcome is saved only over the record its attempt started from (`old`); one whose
    /// record changed meanwhile is left out and logged. The ids are no longer taken after.
    pub fn update_all(&self, updates: &[(u64, &Record, &Record)]) -> Result<(), String> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = sled::Batch::default();
        for &(id, old, new) in updates {
            taken.round.remove(&id);
            if self.get(id)?.as_ref() != Some(old) {
                log::warn!(
                    "outbound: {} changed while it was being tried; its outcome ({}) is not saved",
                    new.id,
                    new.status.name()
                );
                continue;
            }
            if old.status.waiting() {
                batch.remove(due_key(old.due_ms, id));
            }
            if new.status.waiting() {
                batch.insert(due_key(new.due_ms, id), Vec::new());
            } else {
                batch.remove(key(MESSAGE, id));
            }
            batch.insert(
                key(RECORD, id),
                serde_json::to_vec(new).expect("serializes"),
            );
        }
        self.tree.apply_batch(batch).map_err(|e| e.to_string())
    }

    /// Ends a round: ids it took and gave no outcome (delivery paused part way, or a worker that
    /// died mid-round) are free again. Ids an operator is changing stay held.
    pub fn release_all(&self) {
        self.taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .round
            .clear();
    }

    /// Whether an operator asked for an attempt now since the last call.
    pub fn take_retry_asked(&self) -> bool {
        self.retry_asked.swap(false, Ordering::AcqRel)
    }

    /// Changes waiting notifications that no attempt holds: `change` gives each one's new
    /// record from its old one. The new records (and their places in the due index) are
    /// committed like an enqueue, synced before this returns; the old index entries and, for a
    /// record no longer waiting, the message go after (one left behind by a crash is harmless:
    /// [`Queue::due`] and [`Queue::expire`] clear what they find stale).
    fn change(
        &self,
        ids: &[u64],
        change: impl Fn(&Record) -> Record,
    ) -> Result<Vec<Result<Record, Refused>>, String> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(ids.len());
        let mut writes = Vec::new();
        let mut removes = sled::Batch::default();
        for &id in ids {
            if taken.contains(&id) || self.inflight.contains(id) {
                out.push(Err(Refused::Sending));
                continue;
            }
            let Some(old) = self.get(id)? else {
                out.push(Err(Refused::NotFound));
                continue;
            };
            if !old.status.waiting() {
                out.push(Err(Refused::Finished(old.status)));
                continue;
            }
            let new = change(&old);
            writes.push((
                key(RECORD, id),
                serde_json::to_vec(&new).expect("serializes"),
            ));
            if new.status.waiting() {
                writes.push((due_key(new.due_ms, id), Vec::new()));
            } else {
                removes.remove(key(MESSAGE, id));
            }
            if !new.status.waiting() || new.due_ms != old.due_ms {
                removes.remove(due_key(old.due_ms, id));
            }
            out.push(Ok(new));
        }
        if writes.is_empty() {
            return Ok(out);
        }
        // Taken while they change, so the worker leaves them alone; the lock itself is not held
        // over the commit (the executor's thread waits on it in `due` and `update_all`).
        let changing: Vec<u64> = ids
            .iter()
            .zip(&out)
            .filter(|(_, r)| r.is_ok())
            .map(|(id, _)| *id)
            .collect();
        taken.changing.extend(&changing);
        drop(taken);
        let done = self
            .durable
            .commit_blocking(&self.tree, writes)
            .and_then(|()| self.tree.apply_batch(removes).map_err(|e| e.to_string()));
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        for id in &changing {
            taken.changing.remove(id);
        }
        done.map(|()| out)
    }

    fn change_one(&self, id: u64, change: impl Fn(&Record) -> Record) -> Result<Record, Refused> {
        self.change(&[id], change)
            .map_err(Refused::Store)?
            .pop()
            .expect("one result for one id")
    }

    /// Makes a queued or deferred notification due now and wakes the worker.
    pub fn retry(&self, id: u64, now_ms: i64) -> Result<Record, Refused> {
        let new = self.change_one(id, |old| Record {
            due_ms: now_ms,
            ..old.clone()
        })?;
        self.retry_asked.store(true, Ordering::Release);
        self.wake();
        Ok(new)
    }

    /// Makes every queued or deferred notification that no attempt holds due now (Postfix's
    /// `postqueue -f`), in one commit. Returns the ones it moved.
    pub fn retry_all(&self, now_ms: i64) -> Result<Vec<Record>, String> {
        let mut ids = Vec::new();
        for k in self.tree.scan_prefix([DUE]).keys() {
            let k = k.map_err(|e| e.to_string())?;
            if k.len() == 17
                && u64::from_be_bytes(k[1..9].try_into().expect("8 bytes")) as i64 > now_ms
            {
                ids.push(u64::from_be_bytes(k[9..17].try_into().expect("8 bytes")));
            }
        }
        let moved: Vec<Record> = self
            .change(&ids, |old| Record {
                due_ms: now_ms,
                ..old.clone()
            })?
            .into_iter()
            .flatten()
            .collect();
        self.retry_asked.store(true, Ordering::Release);
        self.wake();
        Ok(moved)
    }

    /// Gives up a queued or deferred notification: it is failed, with `why` as its last error,
    /// and its message goes.
    pub fn drop_one(&self, id: u64, why: &str) -> Result<Record, Refused> {
        self.change_one(id, |old| Record {
            status: Status::Failed,
            last_error: Some(crate::bounded::bounded(why, crate::bounded::FIELD_MAX)),
            ..old.clone()
        })
    }
}

#[cfg(test)]
mod tests;
