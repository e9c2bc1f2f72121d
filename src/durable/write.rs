//! How a group reaches the disk: through the journal (one entry, one `fdatasync`, then plain
//! inserts into sled) or, for a job too large for it, as sled batches and a flush; and what one
//! write puts in sled (itself, or for a body a pointer to the segment that took it).

use super::checkpoint::CHECKPOINT_BYTES;
use super::{APPLIED_KEY, BODY, Failed, Faults, Job, Store};
use crate::journal::Journal;
use crate::segments::Segments;
use std::sync::atomic::Ordering;

/// What a write puts in sled: itself, or for a body the pointer to where `segments` put it
/// (the body itself when there are no segments, or when the segment could not take it).
pub(super) fn applied_write(
    segments: Option<&Segments>,
    k: Vec<u8>,
    v: Vec<u8>,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    match k.split_first() {
        Some((&BODY, key)) => match segments {
            Some(s) => match s.append(key, &v) {
                Ok(p) => Ok((key.to_vec(), p.encode())),
                // The journal holds the body durably already; a segment that cannot take it
                // (a disk filled past the low-water mark by something else) is no reason to
                // stop: sled keeps it whole, as herald did before segments.
                Err(e) => {
                    log::warn!("segments: cannot append a body ({e}); sled keeps it whole");
                    Ok((key.to_vec(), v))
                }
            },
            None => Ok((key.to_vec(), v)),
        },
        _ => Ok((k, v)),
    }
}

/// The journal's way: the entry is written and synced first (so nothing reaches sled that is not
/// durable, and a failed write has nothing to take back), then every write is inserted in order,
/// then the entry's number under [`APPLIED_KEY`]; only then may the checkpoint cover it.
pub(super) fn commit_journaled(
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
    let segments = store.segments.as_deref();
    let inserted = group
        .into_iter()
        .try_for_each(|job| {
            job.writes.into_iter().try_for_each(|(k, v)| {
                let (k, v) = applied_write(segments, k, v)?;
                job.tree.insert(k, v).map(drop).map_err(|e| e.to_string())
            })
        })
        .and_then(|()| {
            store
                .db
                .insert(APPLIED_KEY, &seq.to_be_bytes())
                .map(drop)
                .map_err(|e| e.to_string())
        });
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
pub(super) fn commit_batched(
    group: Vec<Job>,
    store: &Store,
    faults: &Faults,
) -> Result<(), Failed> {
    let per_tree = match batches(group, store.segments.as_deref()) {
        Ok(b) => b,
        Err(why) => return Err(Failed { why, disk: true }),
    };
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
#[allow(clippy::type_complexity)]
fn batches(
    group: Vec<Job>,
    segments: Option<&Segments>,
) -> Result<Vec<(sled::Tree, sled::Batch, Vec<Vec<u8>>)>, String> {
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
            let (k, v) = applied_write(segments, k, v)?;
            keys.push(k.clone());
            batch.insert(k, v);
        }
    }
    Ok(per_tree)
}

/// Bytes a job writes.
pub(super) fn job_bytes(job: &Job) -> usize {
    job.writes.iter().map(|(k, v)| k.len() + v.len()).sum()
}
