//! Retention: finished records (replies processed, discarded or failed; notifications sent or
//! failed) and what hangs off them (de-duplication keys, leftover bodies) are removed
//! `retention.days` after they arrived, so the store stays bounded whatever comes in. Both
//! queues key their records by an id that grows with time (microseconds at acceptance, see
//! [`crate::durable::first_free_id`]), so the oldest are first in key order and a sweep reads
//! only what it removes, plus the first record it keeps.

use std::time::{Duration, Instant};

/// How often a worker sweeps.
pub const EVERY: Duration = Duration::from_secs(60 * 60);
/// Records removed at most per sweep batch (one sled batch), so a sweep never holds its thread
/// long; a worker runs batches until a sweep is done.
pub const BATCH: usize = 2048;

/// The id (microseconds since the epoch) below which records are older than `days` at `now_ms`.
pub fn cutoff_id(now_ms: i64, days: u32) -> u64 {
    let age_ms = i64::from(days) * 24 * 60 * 60 * 1000;
    ((now_ms - age_ms).max(0) as u64) * 1000
}

/// Removes, in one batch, records under `prefix` (a prefix byte then a big-endian `u64` id)
/// older than `cutoff` for which `finished` gives the other keys to remove with them (`None`:
/// the record is not finished and stays). At most [`BATCH`]; returns how many were removed and
/// whether older records may remain.
pub fn sweep(
    tree: &sled::Tree,
    prefix: u8,
    cutoff: u64,
    mut finished: impl FnMut(&[u8], &[u8]) -> Option<Vec<Vec<u8>>>,
) -> Result<(usize, bool), String> {
    let mut batch = sled::Batch::default();
    let mut removed = 0;
    for item in tree.scan_prefix([prefix]) {
        let (k, v) = item.map_err(|e| e.to_string())?;
        let Some(id) = k
            .get(1..9)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
        else {
            continue;
        };
        if id >= cutoff {
            break;
        }
        if removed == BATCH {
            tree.apply_batch(batch).map_err(|e| e.to_string())?;
            return Ok((removed, true));
        }
        if let Some(also) = finished(&k, &v) {
            batch.remove(k);
            for a in also {
                batch.remove(a);
            }
            removed += 1;
        }
    }
    tree.apply_batch(batch).map_err(|e| e.to_string())?;
    Ok((removed, false))
}

/// [`sweep`] batch after batch until no record older than `cutoff` is finished; how many went.
pub fn expire(
    tree: &sled::Tree,
    prefix: u8,
    cutoff: u64,
    mut finished: impl FnMut(&[u8], &[u8]) -> Option<Vec<Vec<u8>>>,
) -> Result<usize, String> {
    let mut total = 0;
    loop {
        let (n, more) = sweep(tree, prefix, cutoff, &mut finished)?;
        total += n;
        if !more {
            return Ok(total);
        }
    }
}

/// When a worker last swept.
pub struct Schedule(Option<Instant>);

impl Default for Schedule {
    /// The first sweep is due at once (at boot).
    fn default() -> Self {
        Schedule(None)
    }
}

impl Schedule {
    /// Whether a sweep is due now; if so, the next is [`EVERY`] from now.
    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        if self.0.is_some_and(|last| now < last + EVERY) {
            return false;
        }
        self.0 = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u64) -> Vec<u8> {
        let mut k = vec![b'r'];
        k.extend_from_slice(&id.to_be_bytes());
        k
    }

    #[test]
    fn only_finished_records_older_than_the_cutoff_go_with_their_keys() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let t = db.open_tree("t").unwrap();
        for (id, v) in [(1, "done"), (2, "pending"), (3, "done"), (10, "done")] {
            t.insert(key(id), v).unwrap();
            t.insert(format!("s{id}"), "x").unwrap();
        }
        let finished =
            |k: &[u8], v: &[u8]| (v == b"done").then(|| vec![format!("s{}", k[8]).into_bytes()]);
        assert_eq!(sweep(&t, b'r', 5, finished).unwrap(), (2, false));
        assert!(t.get(key(1)).unwrap().is_none() && t.get("s1").unwrap().is_none());
        assert!(t.get(key(2)).unwrap().is_some(), "a pending record stays");
        assert!(t.get("s2").unwrap().is_some());
        assert!(t.get(key(3)).unwrap().is_none());
        assert!(t.get(key(10)).unwrap().is_some(), "newer than the cutoff");
        assert!(t.get("s10").unwrap().is_some());
    }

    #[test]
    fn a_large_backlog_goes_in_bounded_batches() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let t = db.open_tree("t").unwrap();
        for id in 0..(BATCH as u64 + 5) {
            t.insert(key(id), "done").unwrap();
        }
        let all = |_: &[u8], _: &[u8]| Some(Vec::new());
        assert_eq!(sweep(&t, b'r', u64::MAX, all).unwrap(), (BATCH, true));
        assert_eq!(sweep(&t, b'r', u64::MAX, all).unwrap(), (5, false));
        assert_eq!(t.len(), 0);
        for id in 0..(BATCH as u64 * 2 + 1) {
            t.insert(key(id), "done").unwrap();
        }
        assert_eq!(expire(&t, b'r', u64::MAX, all).unwrap(), BATCH * 2 + 1);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn the_cutoff_is_days_before_now_in_microseconds() {
        let day_ms = 86_400_000;
        assert_eq!(cutoff_id(31 * day_ms, 30), day_ms as u64 * 1000);
        assert_eq!(cutoff_id(day_ms, 30), 0, "never before the epoch");
        let mut s = Schedule::default();
        assert!(s.due());
        assert!(!s.due());
    }
}
