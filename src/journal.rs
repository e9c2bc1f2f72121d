//! The write-ahead journal that makes a commit durable with one `fdatasync`: two files of fixed
//! size, filled with zeros when they are made and afterwards only overwritten in place, so a sync
//! writes data and never the file's size or block map (measured here: 0.15 ms p50 / 0.22 ms p99 to
//! overwrite 4 KiB and `fdatasync`, against 0.26 / 1.30 ms when appending, and two device round
//! trips for sled's own flush). [`crate::durable`] applies a group to sled, writes it here as one
//! entry and answers; a checkpoint (sled flushed and synced) later frees the file for reuse.
//!
//! An entry: magic, sequence number, payload length, CRC-32 of those and the payload, then the
//! payload (the group's jobs: tree, writes). Reading a file stops at the first entry that is torn
//! (bad magic or CRC) or whose sequence number does not follow the previous one: what a file holds
//! past its newest entries is left from an earlier pass and is older than all of them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Size of each of the two files.
pub const FILE_SIZE: u64 = 32 * 1024 * 1024;
/// The largest entry [`Journal::write`] takes: what a file holds past its header room.
pub const ENTRY_MAX: usize = (FILE_SIZE as usize) / 2;
const MAGIC: [u8; 4] = *b"HJ01";
/// magic, seq (u64), payload length (u32), CRC-32 (u32).
const HEADER: usize = 4 + 8 + 4 + 4;
const NAMES: [&str; 2] = ["journal.0", "journal.1"];

/// One caller's writes, as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub tree: Vec<u8>,
    pub writes: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A group of jobs committed together.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub jobs: Vec<Job>,
}

pub struct Journal {
    files: [File; 2],
    active: usize,
    offset: u64,
    /// The newest sequence number written to each file since it was last taken into use.
    newest: [u64; 2],
    next_seq: u64,
}

impl Journal {
    /// Opens (or makes) the two files in `dir` and reads what they hold. Returns the entries
    /// newer than `floor` (the newest sequence number a checkpoint has made redundant), oldest
    /// first; new entries are numbered past both.
    pub fn open(dir: &Path, floor: u64) -> Result<(Journal, Vec<Entry>), String> {
        let mut entries = Vec::new();
        let mut files = Vec::with_capacity(2);
        for name in NAMES {
            let path = dir.join(name);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            entries.extend(read_file(&file).map_err(|e| format!("{}: {e}", path.display()))?);
            prepare(&file).map_err(|e| format!("{}: {e}", path.display()))?;
            files.push(file);
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let newest = entries.iter().map(|e| e.seq).max().unwrap_or(0);
        entries.retain(|e| e.seq > floor);
        entries.sort_by_key(|e| e.seq);
        let [a, b]: [File; 2] = files.try_into().expect("two files");
        Ok((
            Journal {
                files: [a, b],
                active: 0,
                offset: 0,
                newest: [0, 0],
                next_seq: newest.max(floor) + 1,
            },
            entries,
        ))
    }

    /// Encodes `jobs` as the next entry.
    pub fn entry<'a>(
        &self,
        jobs: impl Iterator<Item = (&'a [u8], &'a [(Vec<u8>, Vec<u8>)])>,
    ) -> Vec<u8> {
        encode(self.next_seq, jobs)
    }

    /// When `entry` does not fit in the active file: the newest sequence number in the other
    /// file, which a checkpoint must have covered before [`Journal::switch`] may reuse it.
    pub fn needs_switch(&self, entry: &[u8]) -> Option<u64> {
        (self.offset + entry.len() as u64 > FILE_SIZE).then_some(self.newest[1 - self.active])
    }

    /// Writing goes on at the start of the other file.
    pub fn switch(&mut self) {
        self.active = 1 - self.active;
        self.offset = 0;
        self.newest[self.active] = 0;
    }

    /// Bytes written to the active file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Writes `entry` (from [`Journal::entry`], fitting the active file) and syncs it; returns
    /// its sequence number.
    pub fn write(&mut self, entry: &[u8]) -> io::Result<u64> {
        assert!(
            entry.len() <= ENTRY_MAX && self.offset + entry.len() as u64 <= FILE_SIZE,
            "a journal entry must fit"
        );
        let file = &self.files[self.active];
        file.write_all_at(entry, self.offset)?;
        file.sync_data()?;
        let seq = self.next_seq;
        self.offset += entry.len() as u64;
        self.newest[self.active] = seq;
        self.next_seq += 1;
        Ok(seq)
    }
}

/// Fills the file with zeros to [`FILE_SIZE`] where it is shorter, and syncs it.
fn prepare(file: &File) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len >= FILE_SIZE {
        return Ok(());
    }
    let zeros = vec![0u8; 1024 * 1024];
    let mut at = len;
    while at < FILE_SIZE {
        let n = zeros.len().min((FILE_SIZE - at) as usize);
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()
}

fn encode<'a>(
    seq: u64,
    jobs: impl Iterator<Item = (&'a [u8], &'a [(Vec<u8>, Vec<u8>)])>,
) -> Vec<u8> {
    let mut out = vec![0u8; HEADER];
    let mut count = 0u32;
    out.extend_from_slice(&0u32.to_be_bytes());
    for (tree, writes) in jobs {
        count += 1;
        put(&mut out, tree);
        out.extend_from_slice(&(writes.len() as u32).to_be_bytes());
        for (k, v) in writes {
            put(&mut out, k);
            put(&mut out, v);
        }
    }
    out[HEADER..HEADER + 4].copy_from_slice(&count.to_be_bytes());
    let len = (out.len() - HEADER) as u32;
    out[..4].copy_from_slice(&MAGIC);
    out[4..12].copy_from_slice(&seq.to_be_bytes());
    out[12..16].copy_from_slice(&len.to_be_bytes());
    let crc = crc(&out[4..16], &out[HEADER..]);
    out[16..20].copy_from_slice(&crc.to_be_bytes());
    out
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn crc(head: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(head);
    h.update(payload);
    h.finalize()
}

/// The file's valid entries from its start, in order.
fn read_file(file: &File) -> io::Result<Vec<Entry>> {
    let len = file.metadata()?.len();
    let mut out: Vec<Entry> = Vec::new();
    let mut at = 0u64;
    let mut header = [0u8; HEADER];
    while at + HEADER as u64 <= len {
        file.read_exact_at(&mut header, at)?;
        if header[..4] != MAGIC {
            break;
        }
        let seq = u64::from_be_bytes(header[4..12].try_into().expect("8 bytes"));
        let size = u32::from_be_bytes(header[12..16].try_into().expect("4 bytes")) as u64;
        let want = u32::from_be_bytes(header[16..20].try_into().expect("4 bytes"));
        if out.last().is_some_and(|prev| seq != prev.seq + 1)
            || size > ENTRY_MAX as u64
            || at + HEADER as u64 + size > len
        {
            break;
        }
        let mut payload = vec![0u8; size as usize];
        file.read_exact_at(&mut payload, at + HEADER as u64)?;
        if crc(&header[4..16], &payload) != want {
            break;
        }
        let Some(jobs) = decode(&payload) else {
            break;
        };
        out.push(Entry { seq, jobs });
        at += HEADER as u64 + size;
    }
    Ok(out)
}

fn decode(payload: &[u8]) -> Option<Vec<Job>> {
    let mut r = Reader(payload);
    let count = r.u32()?;
    let mut jobs = Vec::new();
    for _ in 0..count {
        let tree = r.bytes()?.to_vec();
        let n = r.u32()?;
        let mut writes = Vec::new();
        for _ in 0..n {
            writes.push((r.bytes()?.to_vec(), r.bytes()?.to_vec()));
        }
        jobs.push(Job { tree, writes });
    }
    r.0.is_empty().then_some(jobs)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (n, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*n))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return None;
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("herald-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn job(tree: &str, k: &[u8], v: &[u8]) -> Job {
        Job {
            tree: tree.as_bytes().to_vec(),
            writes: vec![(k.to_vec(), v.to_vec())],
        }
    }

    fn write(j: &mut Journal, jobs: &[Job]) -> u64 {
        let e = j.entry(
            jobs.iter()
                .map(|j| (j.tree.as_slice(), j.writes.as_slice())),
        );
        assert!(j.needs_switch(&e).is_none());
        j.write(&e).unwrap()
    }

    #[test]
    fn entries_come_back_in_order_and_numbering_goes_on() {
        let d = dir("order");
        let (mut j, old) = Journal::open(&d, 0).unwrap();
        assert!(old.is_empty());
        assert_eq!(
            std::fs::metadata(d.join(NAMES[0])).unwrap().len(),
            FILE_SIZE
        );
        let a = vec![job("r", b"k1", b"v1"), job("q", b"k2", &[0; 3000])];
        assert_eq!(write(&mut j, &a), 1);
        assert_eq!(write(&mut j, &[job("r", b"k3", b"")]), 2);
        drop(j);
        let (j, back) = Journal::open(&d, 0).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], Entry { seq: 1, jobs: a });
        assert_eq!(back[1].jobs, vec![job("r", b"k3", b"")]);
        assert_eq!(j.next_seq, 3);
        // A checkpoint past both: nothing to replay, and numbering stays past the floor.
        let (j, back) = Journal::open(&d, 9).unwrap();
        assert!(back.is_empty());
        assert_eq!(j.next_seq, 10);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_torn_entry_ends_the_file_and_stale_entries_are_not_read() {
        let d = dir("torn");
        let (mut j, _) = Journal::open(&d, 0).unwrap();
        for i in 0..5u8 {
            write(&mut j, &[job("r", &[i], &[i; 100])]);
        }
        drop(j);
        // Reopened with a floor of 5: writing starts again at the file's start, over entries
        // 1 and 2 (each the same size), and entries 3..5 left behind must not be taken as new.
        let (mut j, back) = Journal::open(&d, 5).unwrap();
        assert!(back.is_empty());
        assert_eq!(write(&mut j, &[job("r", b"x", &[7; 100])]), 6);
        assert_eq!(write(&mut j, &[job("r", b"y", &[7; 100])]), 7);
        drop(j);
        let (_, back) = Journal::open(&d, 5).unwrap();
        assert_eq!(back.iter().map(|e| e.seq).collect::<Vec<_>>(), [6, 7]);
        // Tear entry 7: flip a byte of its payload.
        let f = OpenOptions::new()
            .write(true)
            .open(d.join(NAMES[0]))
            .unwrap();
        let e6 = encode(
            6,
            std::iter::once((&b"r"[..], &[(b"x".to_vec(), vec![7; 100])][..])),
        );
        f.write_all_at(&[0xff], e6.len() as u64 + HEADER as u64 + 3)
            .unwrap();
        drop(f);
        let (_, back) = Journal::open(&d, 5).unwrap();
        assert_eq!(back.iter().map(|e| e.seq).collect::<Vec<_>>(), [6]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_full_file_switches_to_the_other_once_it_is_free() {
        let d = dir("switch");
        let (mut j, _) = Journal::open(&d, 0).unwrap();
        let big = [job("r", b"k", &vec![1; 4 * 1024 * 1024])];
        let mut seqs = Vec::new();
        loop {
            let e = j.entry(big.iter().map(|j| (j.tree.as_slice(), j.writes.as_slice())));
            if let Some(newest_other) = j.needs_switch(&e) {
                assert_eq!(newest_other, 0, "the other file was never used");
                j.switch();
                seqs.push(j.write(&e).unwrap());
                break;
            }
            seqs.push(j.write(&e).unwrap());
        }
        assert!(seqs.len() > 2);
        let last = *seqs.last().unwrap();
        // The next switch needs a checkpoint covering what the first file holds.
        let e = j.entry(big.iter().map(|j| (j.tree.as_slice(), j.writes.as_slice())));
        while j.needs_switch(&e).is_none() {
            j.write(&e).unwrap();
        }
        assert_eq!(j.needs_switch(&e), Some(last - 1));
        drop(j);
        let (_, back) = Journal::open(&d, 0).unwrap();
        assert_eq!(back.first().unwrap().seq, 1);
        assert!(back.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn garbage_payloads_are_refused() {
        assert!(decode(&[0, 0, 0, 1, 0, 0, 0, 9]).is_none());
        assert!(decode(&[0, 0, 0, 0, 1]).is_none());
        assert_eq!(decode(&[0, 0, 0, 0]), Some(vec![]));
    }
}
