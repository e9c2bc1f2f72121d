//! Message bodies beside sled: append-only, checksummed segment files (key-value separation,
//! as WiscKey argued for log-structured stores, and as every MTA keeps its queue files). sled
//! holds a small [`Pointer`] where a body would be; the bytes are here, written once.
//!
//! A body reaches its segment when its commit is applied ([`crate::durable`]), after the
//! journal entry holding it was synced: the segment write itself is not synced then (the
//! journal has the bytes), but at the next checkpoint, before sled's flush can make a pointer to
//! it durable. The journal is replayed from the last checkpoint that synced the segments, so a
//! pointer sled kept always finds its bytes, or its bytes are appended again.
//!
//! An entry: magic, key length (u16), body length (u32), CRC-32 of key and body (u32), key,
//! body. A segment grows to about [`SEGMENT_MAX`]; then the next one is started. Each start of
//! the service starts a new segment and cuts the newest old one at its last whole entry (a
//! torn tail from a crash; not when whole entries follow a damaged one: that is the disk, and
//! reads are checked). A segment whose bodies are all released (their messages finished)
//! is deleted after the next checkpoint, once sled's removal of their pointers is durable; the
//! current one too once it holds [`ROLL_WHEN_EMPTY`] and nothing live (a new one is started).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A segment takes entries until it holds this much (one larger body makes it larger).
pub const SEGMENT_MAX: u64 = 16 * 1024 * 1024;
/// A current segment this large with nothing live in it is replaced at once (so its space comes
/// back); a smaller one is written on (a file a reply would be churn when replies are few).
pub const ROLL_WHEN_EMPTY: u64 = 1024 * 1024;
const MAGIC: [u8; 4] = *b"HSG1";
/// magic, key length (u16), body length (u32), CRC-32 (u32).
const HEADER: usize = 4 + 2 + 4 + 4;
/// What a pointer value in sled starts with (a raw message, as herald stored bodies before
/// segments, never starts with a NUL).
const POINTER_MAGIC: [u8; 4] = *b"\0HSP";
const POINTER_LEN: usize = 4 + 4 + 8 + 4 + 4;
const SUFFIX: &str = ".seg";

/// Where a body is: its segment, the offset of its entry, its length and its CRC-32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pointer {
    pub segment: u32,
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
}

impl Pointer {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(POINTER_LEN);
        v.extend_from_slice(&POINTER_MAGIC);
        v.extend_from_slice(&self.segment.to_be_bytes());
        v.extend_from_slice(&self.offset.to_be_bytes());
        v.extend_from_slice(&self.len.to_be_bytes());
        v.extend_from_slice(&self.crc.to_be_bytes());
        v
    }

    /// The pointer a sled value holds; `None` for anything else (a body stored whole in sled).
    pub fn decode(v: &[u8]) -> Option<Pointer> {
        if v.len() != POINTER_LEN || v[..4] != POINTER_MAGIC {
            return None;
        }
        Some(Pointer {
            segment: u32::from_be_bytes(v[4..8].try_into().ok()?),
            offset: u64::from_be_bytes(v[8..16].try_into().ok()?),
            len: u32::from_be_bytes(v[16..20].try_into().ok()?),
            crc: u32::from_be_bytes(v[20..24].try_into().ok()?),
        })
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The bytes are there but are not the body the pointer names (a checksum, length or key
    /// that does not match, or a segment cut short): never to be delivered.
    Corrupt(String),
    /// Reading failed (the disk): may work later.
    Io(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Corrupt(why) => write!(f, "the stored message is corrupt: {why}"),
            ReadError::Io(why) => write!(f, "the stored message cannot be read: {why}"),
        }
    }
}

fn crc(key: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(body);
    h.finalize()
}

fn name(segment: u32) -> String {
    format!("{segment:08}{SUFFIX}")
}

pub struct Segments {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Held for a whole [`Segments::sync`]: a second sync must not return while the first is
    /// still syncing files it took (the checkpoint would record them as synced).
    syncing: Mutex<()>,
}

struct Inner {
    current: u32,
    file: File,
    offset: u64,
    /// Bodies not yet released, by segment.
    live: HashMap<u32, u64>,
    /// Segments with nothing live, to delete after the next checkpoint.
    doomed: Vec<u32>,
    /// Segments filled since the last sync, and whether a new file's name is unsynced.
    unsynced: Vec<File>,
    new_file: bool,
}

fn create(dir: &Path, segment: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(name(segment)))
}

impl Segments {
    /// Opens the folder (made owner-only if new), cuts the newest segment's torn tail, and
    /// starts a new segment. Until [`Segments::adopt`], every old segment counts as live.
    pub fn open(dir: &Path) -> Result<Segments, String> {
        let shown = |e: io::Error| format!("{}: {e}", dir.display());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(shown)?;
        let old = list(dir).map_err(shown)?;
        if let Some(&newest) = old.last() {
            let path = dir.join(name(newest));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(shown)?;
            let good = last_good_end(&file).map_err(shown)?;
            let size = file.metadata().map_err(shown)?.len();
            if good < size && whole_entry_after(&file, good + 1).map_err(shown)? {
                // Not a torn tail: a damaged entry with whole ones after it (the disk). Reads
                // are checked, so the damaged one is told as corrupt and the rest are kept.
                log::error!(
                    "segments: {} has a damaged entry at {good} followed by whole ones; kept as it is",
                    path.display()
                );
            } else if good < size {
                log::warn!(
                    "segments: {} ends in a torn entry (a crash while it was written); cut at {good} bytes",
                    path.display()
                );
                file.set_len(good).map_err(shown)?;
                file.sync_all().map_err(shown)?;
            }
        }
        let current = old.last().map_or(1, |n| n + 1);
        let file = create(dir, current).map_err(shown)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(shown)?;
        Ok(Segments {
            dir: dir.to_path_buf(),
            syncing: Mutex::new(()),
            inner: Mutex::new(Inner {
                current,
                file,
                offset: 0,
                live: old.iter().map(|&n| (n, u64::MAX)).collect(),
                doomed: Vec::new(),
                unsynced: Vec::new(),
                new_file: false,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `body` under `key` (the sled key that will point here). Not synced: see the
    /// module doc.
    pub fn append(&self, key: &[u8], body: &[u8]) -> io::Result<Pointer> {
        let len = u32::try_from(body.len()).map_err(|_| io::Error::other("a body over 4 GiB"))?;
        let key_len = u16::try_from(key.len()).map_err(|_| io::Error::other("a long key"))?;
        let sum = crc(key, body);
        let mut entry = Vec::with_capacity(HEADER + key.len() + body.len());
        entry.extend_from_slice(&MAGIC);
        entry.extend_from_slice(&key_len.to_be_bytes());
        entry.extend_from_slice(&len.to_be_bytes());
        entry.extend_from_slice(&sum.to_be_bytes());
        entry.extend_from_slice(key);
        entry.extend_from_slice(body);
        let mut g = self.lock();
        if g.offset > 0 && g.offset + entry.len() as u64 > SEGMENT_MAX {
            self.roll(&mut g)?;
        }
        let offset = g.offset;
        g.file.write_all_at(&entry, offset)?;
        g.offset += entry.len() as u64;
        let current = g.current;
        *g.live.entry(current).or_insert(0) += 1;
        Ok(Pointer {
            segment: current,
            offset,
            len,
            crc: sum,
        })
    }

    /// Starts the next segment; the one it replaces goes once nothing in it is live.
    fn roll(&self, g: &mut Inner) -> io::Result<()> {
        let next = g.current + 1;
        let file = create(&self.dir, next)?;
        let full = std::mem::replace(&mut g.file, file);
        g.unsynced.push(full);
        g.new_file = true;
        let done = g.current;
        if g.live.get(&done).copied().unwrap_or(0) == 0 {
            g.live.remove(&done);
            g.doomed.push(done);
        }
        g.current = next;
        g.offset = 0;
        Ok(())
    }

    /// Makes every appended byte durable: the segments filled since the last sync, the current
    /// one, and the folder when a segment was started.
    pub fn sync(&self) -> io::Result<()> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|e| e.into_inner());
        let (full, current, new_file) = {
            let mut g = self.lock();
            (
                std::mem::take(&mut g.unsynced),
                g.file.try_clone()?,
                std::mem::replace(&mut g.new_file, false),
            )
        };
        let synced = (|| {
            for f in &full {
                f.sync_data()?;
            }
            current.sync_data()?;
            if new_file {
                File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        })();
        if synced.is_err() {
            // Not synced: the next sync tries them again (the error is fatal for commits
            // anyway, but nothing may be recorded as synced that was not).
            let mut g = self.lock();
            g.unsynced.extend(full);
            g.new_file |= new_file;
        }
        synced
    }

    /// The body `p` points at, stored under `key`, checked against its checksum.
    pub fn read(&self, p: &Pointer, key: &[u8]) -> Result<Vec<u8>, ReadError> {
        let path = self.dir.join(name(p.segment));
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ReadError::Corrupt(format!(
                    "its segment {} is gone",
                    name(p.segment)
                )));
            }
            Err(e) => return Err(ReadError::Io(e.to_string())),
        };
        let mut buf = vec![0u8; HEADER + key.len() + p.len as usize];
        match file.read_exact_at(&mut buf, p.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ReadError::Corrupt(format!(
                    "segment {} ends before its entry at {}",
                    name(p.segment),
                    p.offset
                )));
            }
            Err(e) => return Err(ReadError::Io(e.to_string())),
        }
        let key_len = u16::from_be_bytes([buf[4], buf[5]]) as usize;
        let len = u32::from_be_bytes(buf[6..10].try_into().expect("4 bytes"));
        let sum = u32::from_be_bytes(buf[10..14].try_into().expect("4 bytes"));
        let at = format!("in segment {} at {}", name(p.segment), p.offset);
        if buf[..4] != MAGIC || key_len != key.len() || len != p.len {
            return Err(ReadError::Corrupt(format!("no entry of this message {at}")));
        }
        if &buf[HEADER..HEADER + key_len] != key {
            return Err(ReadError::Corrupt(format!("another message's entry {at}")));
        }
        let body = buf.split_off(HEADER + key_len);
        if sum != p.crc || crc(key, &body) != sum {
            return Err(ReadError::Corrupt(format!(
                "its checksum does not match {at}"
            )));
        }
        Ok(body)
    }

    /// Counts the pointers sled holds (all of them, once, after the journal was replayed and
    /// before any new commit); old segments none points into are deleted.
    pub fn adopt(&self, pointers: impl Iterator<Item = Pointer>) -> io::Result<()> {
        let mut g = self.lock();
        let current = g.current;
        let mut live: HashMap<u32, u64> = HashMap::new();
        for p in pointers {
            *live.entry(p.segment).or_insert(0) += 1;
        }
        live.entry(current).or_insert(0);
        let unused: Vec<u32> = g
            .live
            .keys()
            .copied()
            .filter(|s| *s != current && !live.contains_key(s))
            .collect();
        g.live = live;
        drop(g);
        for s in &unused {
            // A leftover that cannot go now is no reason not to start.
            if let Err(e) = remove(&self.dir, *s) {
                log::warn!(
                    "segments: cannot remove {}, no longer needed: {e}",
                    name(*s)
                );
            }
        }
        if !unused.is_empty() {
            log::info!("segments: {} no longer needed were removed", unused.len());
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// A body is no longer needed (its message finished, and sled's pointer is removed).
    pub fn release(&self, p: &Pointer) {
        let mut g = self.lock();
        let current = g.current;
        let Some(n) = g.live.get_mut(&p.segment) else {
            return;
        };
        if *n == u64::MAX {
            // Not counted yet (before `adopt`): kept.
            return;
        }
        *n = n.saturating_sub(1);
        if *n == 0 && p.segment != current {
            g.live.remove(&p.segment);
            g.doomed.push(p.segment);
        } else if *n == 0 && g.offset >= ROLL_WHEN_EMPTY {
            // The current segment holds nothing live: a new one takes the next body, so this
            // one can go now rather than linger (up to SEGMENT_MAX) until it fills.
            if let Err(e) = self.roll(&mut g) {
                log::warn!("segments: cannot start a new segment: {e}");
            }
        }
    }

    /// Whether segments wait to be deleted (a checkpoint should come).
    pub fn has_doomed(&self) -> bool {
        !self.lock().doomed.is_empty()
    }

    /// The segments to delete once the checkpoint that starts now has succeeded.
    pub fn take_doomed(&self) -> Vec<u32> {
        std::mem::take(&mut self.lock().doomed)
    }

    /// Deletes segments [`Segments::take_doomed`] gave, after the checkpoint.
    pub fn delete(&self, segments: &[u32]) -> io::Result<()> {
        for s in segments {
            remove(&self.dir, *s)?;
        }
        if !segments.is_empty() {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// How many segment files there are and the bytes they hold.
    pub fn usage(&self) -> (usize, u64) {
        let Ok(names) = list(&self.dir) else {
            return (0, 0);
        };
        let bytes = names
            .iter()
            .filter_map(|n| std::fs::metadata(self.dir.join(name(*n))).ok())
            .map(|m| m.len())
            .sum();
        (names.len(), bytes)
    }
}

fn remove(dir: &Path, segment: u32) -> io::Result<()> {
    match std::fs::remove_file(dir.join(name(segment))) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The segment numbers in `dir`, oldest first.
fn list(dir: &Path) -> io::Result<Vec<u32>> {
    let mut out: Vec<u32> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name();
            n.to_str()?.strip_suffix(SUFFIX)?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Whether a whole entry (magic, lengths that fit, checksum) starts anywhere from `from` on.
fn whole_entry_after(file: &File, from: u64) -> io::Result<bool> {
    let size = file.metadata()?.len();
    if from >= size {
        return Ok(false);
    }
    let mut rest = vec![0u8; (size - from) as usize];
    file.read_exact_at(&mut rest, from)?;
    let mut at = 0;
    while let Some(i) = memchr::memmem::find(&rest[at..], &MAGIC) {
        let start = at + i;
        if let Some(h) = rest.get(start..start + HEADER) {
            let key_len = u16::from_be_bytes([h[4], h[5]]) as usize;
            let len = u32::from_be_bytes(h[6..10].try_into().expect("4 bytes")) as usize;
            let sum = u32::from_be_bytes(h[10..14].try_into().expect("4 bytes"));
            if let Some(kb) = rest.get(start + HEADER..start + HEADER + key_len + len) {
                let (key, body) = kb.split_at(key_len);
                if crc(key, body) == sum {
                    return Ok(true);
                }
            }
        }
        at = start + 1;
    }
    Ok(false)
}

/// Where the last whole entry of a segment ends: reading stops at the first entry that is cut
/// short or fails its checksum.
fn last_good_end(file: &File) -> io::Result<u64> {
    let size = file.metadata()?.len();
    let mut at = 0u64;
    let mut header = [0u8; HEADER];
    while at + HEADER as u64 <= size {
        file.read_exact_at(&mut header, at)?;
        if header[..4] != MAGIC {
            break;
        }
        let key_len = u16::from_be_bytes([header[4], header[5]]) as u64;
        let len = u32::from_be_bytes(header[6..10].try_into().expect("4 bytes")) as u64;
        let sum = u32::from_be_bytes(header[10..14].try_into().expect("4 bytes"));
        let end = at + HEADER as u64 + key_len + len;
        if end > size {
            break;
        }
        let mut rest = vec![0u8; (key_len + len) as usize];
        file.read_exact_at(&mut rest, at + HEADER as u64)?;
        let (key, body) = rest.split_at(key_len as usize);
        if crc(key, body) != sum {
            break;
        }
        at = end;
    }
    Ok(at)
}

#[cfg(test)]
mod tests;
