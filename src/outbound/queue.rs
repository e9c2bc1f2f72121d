//! The durable notification queue in sled. A notification is its record (`n` + id: JSON with
//! its state) and its message (`m` + id: the RFC 5322 bytes), written in one batch and synced
//! before the API answers `202`. Messages waiting for an attempt are indexed by due time
//! (`q` + due ms + id) so the worker finds the due ones without reading the sent ones.

use crate::durable::Durable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
    /// when the next one after them is due. An entry whose record is gone, unreadable or no
    /// longer waiting would be taken round after round: it is removed instead.
    pub fn due(&self, now_ms: i64, limit: usize) -> (Vec<(u64, Record)>, Option<i64>) {
        let mut out = Vec::new();
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
            if self.inflight.contains(id) {
                continue;
            }
            match self.get(id) {
                Ok(Some(rec)) if rec.status.waiting() => out.push((id, rec)),
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
    pub fn update_all(&self, updates: &[(u64, &Record, &Record)]) -> Result<(), String> {
        let mut batch = sled::Batch::default();
        for &(id, old, new) in updates {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn record(id: u64, due_ms: i64) -> Record {
        Record {
            id: format!("{id:X}"),
            status: Status::Queued,
            to: "user@example.org".into(),
            user_id: 7,
            thread: Thread {
                kind: "issue".into(),
                id: 42,
            },
            reason: "mention".into(),
            subject: "s".into(),
            message_id: "m@example.test".into(),
            reply_to: "reply+i-42-x-7@reply.example.test".into(),
            size: 1,
            attempts: 0,
            last_error: None,
            created_at: "2026-11-28T00:00:00Z".into(),
            created_ms: 0,
            due_ms,
            sent_at: None,
            relay: None,
            smtp_reply: None,
        }
    }

    fn due_ids(q: &Queue, now_ms: i64, limit: usize) -> (Vec<u64>, Option<i64>) {
        let (due, next) = q.due(now_ms, limit);
        (due.into_iter().map(|(id, _)| id).collect(), next)
    }

    #[test]
    fn enqueue_due_update_and_list() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let q = Queue::open(&db, Durable::open(&db, None).unwrap()).unwrap();
        let (a, b) = (q.new_id(), q.new_id());
        q.enqueue(a, &record(a, 100), b"A").unwrap();
        q.enqueue(b, &record(b, 50), b"B").unwrap();
        assert!(q.woken.try_recv().is_ok());
        assert_eq!(due_ids(&q, 60, 10), (vec![b], Some(100)));
        assert_eq!(due_ids(&q, 1000, 10), (vec![b, a], None));
        assert_eq!(due_ids(&q, 1000, 1), (vec![b], Some(100)));
        // Deferred: moves in the index.
        let old = q.get(a).unwrap().unwrap();
        let mut new = old.clone();
        new.status = Status::Deferred;
        new.due_ms = 5000;
        q.update_all(&[(a, &old, &new)]).unwrap();
        assert_eq!(due_ids(&q, 1000, 10), (vec![b], Some(5000)));
        // Sent: leaves the index and its message goes.
        let old = q.get(b).unwrap().unwrap();
        let mut sent = old.clone();
        sent.status = Status::Sent;
        q.update_all(&[(b, &old, &sent)]).unwrap();
        assert_eq!(q.message(b).unwrap(), None);
        assert_eq!(q.message(a).unwrap().unwrap(), b"A");
        assert_eq!(due_ids(&q, 10_000, 10), (vec![a], None));
        assert_eq!(q.list(Some(Status::Sent), 10).unwrap().len(), 1);
        assert_eq!(
            q.list(None, 10).unwrap()[0].id,
            format!("{b:X}"),
            "newest first"
        );
        assert_eq!(parse_id(&format!("{b:X}")), Some(b));
        assert_eq!(parse_id("zz"), None);
        let counts = q.counts();
        assert!(counts.contains(&(Status::Sent, 1)) && counts.contains(&(Status::Deferred, 1)));
        // After the retention period the sent one goes; the deferred one waits on, with its
        // message.
        assert_eq!(q.expire(crate::clock::now_ms(), 30).unwrap(), 0);
        let later = crate::clock::now_ms() + 31 * 86_400_000;
        assert_eq!(q.expire(later, 30).unwrap(), 1);
        assert_eq!(q.get(b).unwrap(), None);
        assert_eq!(q.get(a).unwrap().unwrap().status, Status::Deferred);
        assert_eq!(q.message(a).unwrap().unwrap(), b"A");
        assert_eq!(due_ids(&q, 10_000, 10), (vec![a], None));
    }

    /// A notification whose writes are in sled but whose commit has not returned (its `202` not
    /// sent) is not handed to the delivery worker, nor dropped from the index as stale.
    #[test]
    fn a_notification_is_not_due_while_its_commit_goes_on() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let q = Queue::open(&db, Durable::open(&db, None).unwrap()).unwrap();
        let id = q.new_id();
        let held = q.durable.answers.lock().unwrap();
        let enqueuing = {
            let q = q.clone();
            std::thread::spawn(move || q.enqueue(id, &record(id, 100), b"A"))
        };
        crate::durable::wait_until("the record applied", || q.get(id).unwrap().is_some());
        assert_eq!(due_ids(&q, 1000, 10).0, Vec::<u64>::new());
        drop(held);
        enqueuing.join().unwrap().unwrap();
        assert_eq!(due_ids(&q, 1000, 10).0, vec![id]);
    }
}
