//! Segments on a temporary folder: bodies back as written, every kind of damage told as
//! corrupt, a torn tail cut at every offset of the last entry, and segments deleted only when
//! nothing in them is live.

use super::*;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("herald-seg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn a_body_comes_back_as_written_and_damage_is_corrupt_never_garbage() {
    let d = dir("read");
    let s = Segments::open(&d).unwrap();
    let p = s.append(b"d-1", b"Subject: hi\r\n\r\nhello\r\n").unwrap();
    let q = s.append(b"d-2", b"second").unwrap();
    assert_eq!(Pointer::decode(&p.encode()), Some(p));
    assert_eq!(Pointer::decode(b"Subject: a raw body"), None);
    assert_eq!(s.read(&p, b"d-1").unwrap(), b"Subject: hi\r\n\r\nhello\r\n");
    assert_eq!(s.read(&q, b"d-2").unwrap(), b"second");
    // Another message's pointer, a pointer whose checksum is not the entry's, a byte flipped
    // on disk, a segment gone: each is corrupt.
    assert!(matches!(s.read(&q, b"d-1"), Err(ReadError::Corrupt(_))));
    let wrong = Pointer {
        crc: q.crc ^ 1,
        ..q
    };
    assert!(matches!(s.read(&wrong, b"d-2"), Err(ReadError::Corrupt(_))));
    let path = d.join(name(p.segment));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[p.offset as usize + HEADER + 3 + 2] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let e = s.read(&p, b"d-1").unwrap_err();
    assert!(
        matches!(&e, ReadError::Corrupt(w) if w.contains("checksum")),
        "{e}"
    );
    let gone = Pointer { segment: 99, ..q };
    assert!(matches!(s.read(&gone, b"d-2"), Err(ReadError::Corrupt(_))));
    let past = Pointer {
        offset: q.offset + 1000,
        ..q
    };
    assert!(matches!(s.read(&past, b"d-2"), Err(ReadError::Corrupt(_))));
    std::fs::remove_dir_all(&d).unwrap();
}

/// A crash while the last entry was written leaves any prefix of it: opening again cuts the
/// segment where that entry began, keeps every entry before it, and writes on in a new segment.
#[test]
fn a_torn_tail_is_cut_at_the_last_whole_entry_at_every_offset() {
    let d = dir("torn");
    let (first, second, last) = {
        let s = Segments::open(&d).unwrap();
        (
            s.append(b"d-1", &[1u8; 300]).unwrap(),
            s.append(b"d-2", &[2u8; 200]).unwrap(),
            s.append(b"d-3", &[3u8; 100]).unwrap(),
        )
    };
    let path = d.join(name(last.segment));
    let whole = std::fs::read(&path).unwrap();
    let end = whole.len() as u64;
    assert_eq!(end, last.offset + (HEADER + 3 + 100) as u64);
    for cut in last.offset..=end {
        let copy = dir("torn-copy");
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::write(copy.join(name(last.segment)), &whole[..cut as usize]).unwrap();
        let s = Segments::open(&copy).unwrap();
        let kept = std::fs::metadata(copy.join(name(last.segment)))
            .unwrap()
            .len();
        if cut == end {
            assert_eq!(kept, end, "a whole last entry stays");
            assert_eq!(s.read(&last, b"d-3").unwrap(), vec![3u8; 100]);
        } else {
            assert_eq!(kept, last.offset, "cut at {cut}");
            assert!(matches!(s.read(&last, b"d-3"), Err(ReadError::Corrupt(_))));
        }
        assert_eq!(s.read(&first, b"d-1").unwrap(), vec![1u8; 300]);
        assert_eq!(s.read(&second, b"d-2").unwrap(), vec![2u8; 200]);
        // New bodies go to a new segment.
        let next = s.append(b"d-4", b"new").unwrap();
        assert_eq!((next.segment, next.offset), (last.segment + 1, 0));
        std::fs::remove_dir_all(&copy).unwrap();
    }
    // A bad checksum in the middle of the last entry is cut the same way.
    let mut bad = whole.clone();
    bad[last.offset as usize + HEADER + 3 + 50] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let s = Segments::open(&d).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), last.offset);
    assert_eq!(s.read(&second, b"d-2").unwrap(), vec![2u8; 200]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_segment_goes_once_nothing_in_it_is_live_and_only_after_the_checkpoint() {
    let d = dir("gc");
    let s = Segments::open(&d).unwrap();
    let big = vec![9u8; (SEGMENT_MAX / 2) as usize];
    let a = s.append(b"d-a", &big).unwrap();
    let b = s.append(b"d-b", &big).unwrap();
    assert_eq!(a.segment, 1);
    assert_eq!(b.segment, 2, "a full segment makes way for the next");
    let c = s.append(b"d-c", b"small").unwrap();
    assert_eq!(c.segment, 2);
    s.sync().unwrap();
    assert_eq!(s.usage().0, 2);
    s.release(&a);
    assert!(s.has_doomed());
    // Still there until the checkpoint that makes the release durable has run.
    assert_eq!(s.usage().0, 2);
    let doomed = s.take_doomed();
    assert_eq!(doomed, vec![1]);
    s.delete(&doomed).unwrap();
    assert_eq!(s.usage().0, 1);
    // The current segment emptied: the next body goes to a new one, and it goes too.
    s.release(&b);
    assert!(!s.has_doomed(), "c is live in it still");
    s.release(&c);
    assert_eq!(s.take_doomed(), vec![2]);
    let next = s.append(b"d-n", b"next").unwrap();
    assert_eq!((next.segment, next.offset), (3, 0));
    s.delete(&[2]).unwrap();
    // A small current segment emptied is written on: no file for every few replies.
    s.release(&next);
    let again = s.append(b"d-m", b"m").unwrap();
    assert_eq!(again.segment, 3);
    s.release(&again);
    assert!(!s.has_doomed());
    drop(s);
    // At the next start only what sled points at is kept.
    let s = Segments::open(&d).unwrap();
    assert_eq!(s.usage().0, 2, "3 and the new current 4");
    s.adopt(std::iter::empty()).unwrap();
    assert_eq!(s.usage().0, 1);
    let e = s.append(b"d-e", b"x").unwrap();
    drop(s);
    let s = Segments::open(&d).unwrap();
    s.adopt([e].into_iter()).unwrap();
    assert_eq!(s.read(&e, b"d-e").unwrap(), b"x");
    assert_eq!(s.usage().0, 2);
    std::fs::remove_dir_all(&d).unwrap();
}

/// A damaged entry with whole ones after it is the disk, not a torn tail: nothing is cut, the
/// damaged one reads as corrupt and the rest as written.
#[test]
fn a_damaged_entry_before_whole_ones_is_not_cut() {
    let d = dir("middle");
    let (a, b, c) = {
        let s = Segments::open(&d).unwrap();
        (
            s.append(b"d-a", &[1u8; 100]).unwrap(),
            s.append(b"d-b", &[2u8; 100]).unwrap(),
            s.append(b"d-c", &[3u8; 100]).unwrap(),
        )
    };
    let path = d.join(name(a.segment));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[a.offset as usize + HEADER + 3 + 10] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let s = Segments::open(&d).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes.len() as u64);
    assert!(matches!(s.read(&a, b"d-a"), Err(ReadError::Corrupt(_))));
    assert_eq!(s.read(&b, b"d-b").unwrap(), vec![2u8; 100]);
    assert_eq!(s.read(&c, b"d-c").unwrap(), vec![3u8; 100]);
    std::fs::remove_dir_all(&d).unwrap();
}
