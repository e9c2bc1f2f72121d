//! Group commit on real folders: replay after sled lost its state, bodies in segments coming
//! back, a full journal waiting for its checkpoint, failed commits and syncs.

use super::*;

#[test]
fn what_the_store_lost_comes_back_from_the_journal() {
    let dir = std::env::temp_dir().join(format!("herald-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (one, two) = (dir.join("one"), dir.join("two"));
    let on_disk = |sled_dir| OnDisk {
        sled_dir,
        journal_dir: &dir,
    };
    let db = sled::Config::new().path(&one).open().unwrap();
    let durable = Durable::open(&db, Some(on_disk(&one))).unwrap();
    let t = db.open_tree("t").unwrap();
    for i in 0..10u8 {
        let writes = vec![(vec![b'r', i], vec![i]), (vec![b'b', i], vec![i; 100])];
        durable.commit_blocking(&t, writes).unwrap();
    }
    assert_eq!(applied_of(&db).unwrap(), 10);
    drop(durable);
    // Known applied: opening again inserts nothing, so a later change (here a removal)
    // stands.
    t.remove([b'r', 5]).unwrap();
    drop((t, db));
    let db = sled::Config::new().path(&one).open().unwrap();
    let durable = Durable::open(&db, Some(on_disk(&one))).unwrap();
    assert!(db.open_tree("t").unwrap().get([b'r', 5]).unwrap().is_none());
    drop((durable, db));
    // A store that kept none of it, as after a crash before sled's flush (partly kept:
    // job 3's record): the journal gives all of it back.
    let db = sled::Config::new().path(&two).open().unwrap();
    let t = db.open_tree("t").unwrap();
    t.insert([b'r', 3], &[3]).unwrap();
    let durable = Durable::open(&db, Some(on_disk(&two))).unwrap();
    for i in 0..10u8 {
        assert_eq!(t.get([b'r', i]).unwrap().unwrap().as_ref(), &[i]);
        assert_eq!(t.get([b'b', i]).unwrap().unwrap().len(), 100);
    }
    assert_eq!(applied_of(&db).unwrap(), 10);
    drop((durable, t, db));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A body goes to a segment and sled holds where. When sled lost what the last checkpoint
/// did not cover (here: all of it), the journal appends the bodies again and the pointers
/// sled gets back find them, checksums verified.
#[test]
fn bodies_lost_with_sleds_unflushed_state_come_back_from_the_journal() {
    let dir = std::env::temp_dir().join(format!("herald-bodies-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (one, two) = (dir.join("one"), dir.join("two"));
    let on_disk = |sled_dir| OnDisk {
        sled_dir,
        journal_dir: &dir,
    };
    let body_of = |i: u8| vec![b'a' + i; 500 + i as usize];
    let db = sled::Config::new().path(&one).open().unwrap();
    let durable = Durable::open(&db, Some(on_disk(&one))).unwrap();
    durable.checkpoints.hold(true);
    let t = db.open_tree("t").unwrap();
    for i in 0..5u8 {
        let writes = vec![(vec![b'r', i], vec![i]), body(vec![b'd', i], body_of(i))];
        durable.commit_blocking(&t, writes).unwrap();
    }
    let segments = durable.segments.clone().unwrap();
    for i in 0..5u8 {
        let v = t.get([b'd', i]).unwrap().unwrap();
        let p = crate::segments::Pointer::decode(&v).expect("a pointer in sled");
        assert_eq!(segments.read(&p, &[b'd', i]).unwrap(), body_of(i));
    }
    // The process ends with no checkpoint (held): sled's state is lost, as after a power
    // cut; the segments' unsynced tail may be lost too (here it is cut off).
    let seg_dir = dir.join(SEGMENTS_DIR);
    std::mem::forget(durable);
    drop((t, db, segments));
    for e in std::fs::read_dir(&seg_dir).unwrap().flatten() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(e.path())
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len / 2).unwrap();
    }
    let db = sled::Config::new().path(&two).open().unwrap();
    let durable = Durable::open(&db, Some(on_disk(&two))).unwrap();
    let t = db.open_tree("t").unwrap();
    let segments = durable.segments.clone().unwrap();
    for i in 0..5u8 {
        assert_eq!(t.get([b'r', i]).unwrap().unwrap().as_ref(), &[i]);
        let v = t.get([b'd', i]).unwrap().unwrap();
        let p = crate::segments::Pointer::decode(&v).unwrap();
        assert_eq!(
            segments.read(&p, &[b'd', i]).unwrap(),
            body_of(i),
            "body {i}"
        );
    }
    drop((durable, t, db, segments));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A journal file is written over only once a checkpoint has made sled hold what it held:
/// with checkpoints held back, commits stop when both files are full, and go on once a
/// checkpoint runs.
#[test]
fn a_full_journal_waits_for_the_checkpoint_that_frees_a_file() {
    let dir = std::env::temp_dir().join(format!("herald-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sled_dir = dir.join("db");
    let db = sled::Config::new().path(&sled_dir).open().unwrap();
    let on_disk = OnDisk {
        sled_dir: &sled_dir,
        journal_dir: &dir,
    };
    let durable = Durable::open(&db, Some(on_disk)).unwrap();
    durable.checkpoints.hold(true);
    let t = db.open_tree("t").unwrap();
    // Each job close to the journal's limit per job: about 36 fit in a file.
    const JOBS: u64 = 90;
    let value = vec![7u8; JOURNAL_JOB_MAX - 16];
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (durable, t, done) = (durable.clone(), t.clone(), done.clone());
        std::thread::spawn(move || {
            for i in 0..JOBS {
                let writes = vec![(i.to_be_bytes().to_vec(), value.clone())];
                durable.commit_blocking(&t, writes).unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Wait until the writer stops getting further.
    let mut seen = u64::MAX;
    while done.load(Ordering::Relaxed) != seen {
        seen = done.load(Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let per_file = journal::FILE_SIZE / JOURNAL_JOB_MAX as u64;
    assert!(
        (per_file..JOBS).contains(&seen),
        "with checkpoints held, commits stop once both files are full ({seen} of {JOBS})"
    );
    durable.checkpoints.hold(false);
    writer.join().unwrap();
    assert_eq!(t.len() as u64, JOBS);
    assert_eq!(applied_of(&db).unwrap(), JOBS);
    drop((durable, t, db));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writes_to_several_trees_commit_together() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let durable = Durable::open(&db, None).unwrap();
    let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
    let ex = smol::Executor::new();
    let tasks: Vec<_> = (0u8..20)
        .map(|i| {
            let (durable, tree) = (
                durable.clone(),
                if i % 2 == 0 { a.clone() } else { b.clone() },
            );
            ex.spawn(async move { durable.commit(&tree, vec![(vec![i], vec![i; 3])]).await })
        })
        .collect();
    smol::block_on(ex.run(async {
        for t in tasks {
            t.await.unwrap();
        }
    }));
    assert_eq!(a.len() + b.len(), 20);
    assert_eq!(b.get([1]).unwrap().unwrap().as_ref(), &[1, 1, 1]);
    durable.fail_commits.store(true, Ordering::Relaxed);
    assert!(
        durable
            .commit_blocking(&a, vec![(vec![99], vec![1])])
            .is_err()
    );
    assert!(a.get([99]).unwrap().is_none());
}

/// Entries sled had applied but whose bodies the segments may have lost (between the segments'
/// synced mark and the applied one): replay writes only the lost bodies again, and every later
/// change (an outcome, a body removed when its message finished) stands.
#[test]
fn replay_below_the_applied_mark_restores_lost_bodies_and_undoes_nothing() {
    let dir = std::env::temp_dir().join(format!("herald-window-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sled_dir = dir.join("db");
    let on_disk = || OnDisk {
        sled_dir: &sled_dir,
        journal_dir: &dir,
    };
    let body_of = |i: u8| vec![b'k' + i; 300 + i as usize];
    {
        let db = sled::Config::new().path(&sled_dir).open().unwrap();
        let durable = Durable::open(&db, Some(on_disk())).unwrap();
        let t = db.open_tree("t").unwrap();
        for i in 0..5u8 {
            let writes = vec![(vec![b'r', i], vec![i]), body(vec![b'd', i], body_of(i))];
            durable.commit_blocking(&t, writes).unwrap();
        }
        drop(durable);
        // Later changes, outside the journal: an outcome, and a finished message's body gone.
        t.insert([b'r', 2], b"changed".as_slice()).unwrap();
        t.remove([b'd', 3]).unwrap();
        // As if the last checkpoint had synced the segments before any of it, and the power
        // then took the segments' tails.
        db.insert(SYNCED_KEY, &0u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    for e in std::fs::read_dir(dir.join(SEGMENTS_DIR)).unwrap().flatten() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(e.path())
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len / 3).unwrap();
    }
    let db = sled::Config::new().path(&sled_dir).open().unwrap();
    let durable = Durable::open(&db, Some(on_disk())).unwrap();
    let t = db.open_tree("t").unwrap();
    let segments = durable.segments.clone().unwrap();
    assert_eq!(t.get([b'r', 2]).unwrap().unwrap().as_ref(), b"changed");
    assert!(
        t.get([b'd', 3]).unwrap().is_none(),
        "a removed body stays removed"
    );
    for i in [0u8, 1, 2, 4] {
        let p = crate::segments::Pointer::decode(&t.get([b'd', i]).unwrap().unwrap()).unwrap();
        assert_eq!(
            segments.read(&p, &[b'd', i]).unwrap(),
            body_of(i),
            "body {i}"
        );
        let want: Vec<u8> = if i == 2 { b"changed".to_vec() } else { vec![i] };
        assert_eq!(t.get([b'r', i]).unwrap().unwrap().to_vec(), want);
    }
    drop((durable, t, db, segments));
    std::fs::remove_dir_all(&dir).unwrap();
}
