//! The reply queue's tests: storing, listing, due records, outcomes, duplicates, and commits
//! that fail or go on while the queue is read.

use super::*;

/// `dir` holds sled's folder (`dir/db`) and the journal.
fn open(db: &sled::Db, dir: Option<&std::path::Path>) -> Arc<Spool> {
    let sled_dir = dir.map(|d| d.join("db"));
    let on_disk =
        dir.zip(sled_dir.as_deref())
            .map(|(journal_dir, sled_dir)| crate::durable::OnDisk {
                sled_dir,
                journal_dir,
            });
    Spool::open(db, Durable::open(db, on_disk).unwrap()).unwrap()
}

fn incoming<'a>(rcpts: &'a [(String, bool)], data: &[u8]) -> Incoming<'a> {
    Incoming {
        mail_from: "a@b.example",
        rcpts,
        data: data.to_vec(),
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
    assert_eq!(recs.len(), 1, "a no-reply recipient leaves no record");
    assert_eq!(recs[0].id, format!("{id1}-1"));
    let (id2, _) = smol::block_on(spool.store(incoming(&rcpts[..1], b"two"))).unwrap();
    assert!(id2 > id1);
    assert_eq!(spool.data(id1).unwrap().unwrap(), b"one");
    let all = spool.replies(None, 10).unwrap();
    let ids: Vec<_> = all.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        ids,
        vec![format!("{id2}-1"), format!("{id1}-1")],
        "newest first"
    );
    let statuses: Vec<_> = all.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, vec!["pending", "pending"]);
    assert_eq!(spool.replies(None, 1).unwrap().len(), 1);
    assert_eq!(spool.replies(Some("processed"), 10).unwrap().len(), 0);
    // A reopened spool never reuses an id.
    drop(spool);
    let again = open(&db, None);
    assert!(again.durable.new_id() > id2.0);
}

#[test]
fn a_message_is_not_due_while_its_commit_goes_on() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let spool = open(&db, None);
    let later = crate::clock::now_ms() + 1000;
    // The committer stops after applying the message and before answering: its records are in
    // sled, its commit has not returned.
    let held = spool.durable.answers.lock().unwrap();
    let storing = {
        let spool = spool.clone();
        std::thread::spawn(move || {
            let rcpts = vec![("r1@reply.x".to_string(), false)];
            smol::block_on(spool.store(incoming(&rcpts, b"x"))).map(|(id, _)| id)
        })
    };
    crate::durable::wait_until("the record applied", || {
        !spool.replies(None, 10).unwrap().is_empty()
    });
    assert!(
        spool.due(later, 10).0.is_empty(),
        "applied but not yet answered: not due"
    );
    drop(held);
    let id = storing.join().unwrap().unwrap();
    let due = spool.due(later, 10).0;
    assert_eq!(due.len(), 1, "kept, not dropped as stale");
    assert_eq!(due[0].0, id);
}

/// Regression: every no-reply recipient kept a record forever (500 messages of 100 recipients
/// added 40 MB to sled in 2.3 s). Now such mail is only counted.
#[test]
fn mail_to_no_reply_addresses_leaves_no_record_and_no_body() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let spool = open(&db, None);
    let rcpts: Vec<_> = (0..100)
        .map(|i| (format!("r{i}@noreply.x"), true))
        .collect();
    for _ in 0..50 {
        let (id, recs) = smol::block_on(spool.store(incoming(&rcpts, b"junk"))).unwrap();
        assert!(recs.is_empty());
        assert_eq!(spool.data(id).unwrap(), None);
    }
    assert_eq!(spool.tree.len(), 0, "nothing at all is stored");
    assert_eq!(spool.discarded.load(Ordering::Relaxed), 5000);
    let mixed = vec![
        ("a@noreply.x".to_string(), true),
        ("r@reply.x".to_string(), false),
    ];
    let (id2, recs) = smol::block_on(spool.store(incoming(&mixed, b"reply"))).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].status, "pending");
    assert_eq!(recs[0].id, format!("{id2}-2"), "numbered by recipient");
    assert_eq!(spool.data(id2).unwrap().unwrap(), b"reply");
    // Ids still never repeat after a restart, bodies or not.
    drop(spool);
    assert!(open(&db, None).durable.new_id() > id2.0);
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

/// On disk, bodies are in segment files and sled holds where: a large one too (over the
/// journal's job limit, made durable by syncing the segment and flushing sled). They come back
/// after a restart, a damaged one is told as corrupt, and once every message of an old segment
/// is finished the segment goes.
#[test]
fn on_disk_bodies_live_in_segments_and_go_when_finished() {
    let dir = std::env::temp_dir().join(format!("herald-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = sled::Config::new().path(dir.join("db")).open().unwrap();
    let spool = open(&db, Some(&dir));
    let rcpts = vec![("r1@reply.x".to_string(), false)];
    let big = vec![b'x'; 2 * 1024 * 1024];
    let (id, _) = smol::block_on(spool.store(incoming(&rcpts, &big))).unwrap();
    let blobs = std::fs::read_dir(dir.join("db/blobs")).map_or(0, |d| d.count());
    assert_eq!(blobs, 0, "no body is a sled blob");
    let (small, _) = smol::block_on(spool.store(incoming(&rcpts, b"small"))).unwrap();
    let pointer = spool.tree.get(key(DATA, small, None)).unwrap().unwrap();
    assert!(
        crate::segments::Pointer::decode(&pointer).is_some(),
        "sled holds a pointer"
    );
    let (files, bytes) = spool.body_usage().unwrap();
    assert_eq!(files, 1);
    assert!(bytes > big.len() as u64, "{bytes}");
    drop(spool);
    drop(db);
    let db = sled::Config::new().path(dir.join("db")).open().unwrap();
    let spool = open(&db, Some(&dir));
    assert_eq!(spool.data(id).unwrap().unwrap().len(), big.len());
    assert_eq!(spool.data(small).unwrap().unwrap(), b"small");
    // A byte of the small body flipped on disk: corrupt, not garbage.
    let seg = std::fs::read_dir(dir.join(crate::durable::SEGMENTS_DIR))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let mut raw = std::fs::read(&seg).unwrap();
    let at = raw.len() - 2;
    raw[at] ^= 1;
    std::fs::write(&seg, &raw).unwrap();
    assert!(matches!(
        spool.data(small),
        Err(crate::segments::ReadError::Corrupt(_))
    ));
    // Both finished: their bodies go, and at the next start their segment too.
    let finished: Vec<Update> = [id, small]
        .into_iter()
        .map(|q| {
            let old = spool.record(q, 1).unwrap().unwrap();
            let mut new = old.clone();
            new.status = "processed".into();
            Update {
                id: q,
                n: 1,
                old,
                new,
            }
        })
        .collect();
    spool.update_all(&finished).unwrap();
    assert_eq!(spool.data(id).unwrap(), None);
    drop(spool);
    drop(db);
    let db = sled::Config::new().path(dir.join("db")).open().unwrap();
    let spool = open(&db, Some(&dir));
    assert!(!seg.exists(), "a segment with nothing live goes");
    assert_eq!(
        spool.body_usage().unwrap(),
        (1, 0),
        "only the new, empty one"
    );
    drop(spool);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pending_records_are_due_until_final_and_then_the_body_goes() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let spool = open(&db, None);
    let rcpts = vec![
        ("r1@reply.x".to_string(), false),
        ("n@noreply.x".to_string(), true),
        ("r2@reply.x".to_string(), false),
    ];
    let (id, _) = smol::block_on(spool.store(incoming(&rcpts, b"body"))).unwrap();
    assert!(spool.woken.try_recv().is_ok(), "processing is woken");
    let far = i64::MAX / 2;
    let due_ids = |now, limit| -> Vec<(QueueId, u16)> {
        spool
            .due(now, limit)
            .0
            .into_iter()
            .map(|(id, n, _)| (id, n))
            .collect()
    };
    let (_, next) = spool.due(far, 10);
    let due = due_ids(far, 10);
    assert_eq!(
        due,
        vec![(id, 1), (id, 3)],
        "no-reply recipients have no record"
    );
    assert_eq!(next, None);
    // The first is retried later: it moves in the index.
    let old = spool.record(id, 1).unwrap().unwrap();
    let mut later = old.clone();
    later.attempts = 1;
    later.due_ms = old.due_ms + 60_000;
    spool
        .update_all(&[Update {
            id,
            n: 1,
            old: old.clone(),
            new: later.clone(),
        }])
        .unwrap();
    assert_eq!(due_ids(old.due_ms, 10), vec![(id, 3)]);
    // Both final: the body goes once the last one is.
    let mut done = later.clone();
    done.status = "processed".into();
    spool
        .update_all(&[Update {
            id,
            n: 1,
            old: later.clone(),
            new: done.clone(),
        }])
        .unwrap();
    assert!(
        spool.data(id).unwrap().is_some(),
        "record 3 still needs the body"
    );
    let old3 = spool.record(id, 3).unwrap().unwrap();
    let mut failed = old3.clone();
    failed.status = "failed:empty".into();
    spool
        .update_all(&[Update {
            id,
            n: 3,
            old: old3.clone(),
            new: failed.clone(),
        }])
        .unwrap();
    assert_eq!(spool.data(id).unwrap(), None);
    assert_eq!(due_ids(far, 10), vec![]);
    assert_eq!(spool.replies(Some("processed"), 10).unwrap().len(), 1);
    assert_eq!(spool.replies(Some("discarded"), 10).unwrap().len(), 0);
}

/// Outcomes saved as one group: the body goes when the group makes the last record final,
/// also when two records of the message are in the same group.
#[test]
fn a_group_of_outcomes_is_one_batch_and_the_body_goes_with_the_last() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let spool = open(&db, None);
    let two = vec![
        ("r1@reply.x".to_string(), false),
        ("r2@reply.x".to_string(), false),
    ];
    let (a, _) = smol::block_on(spool.store(incoming(&two, b"a"))).unwrap();
    let (b, _) = smol::block_on(spool.store(incoming(&two, b"b"))).unwrap();
    let update = |id, n, status: &str| {
        let old = spool.record(id, n).unwrap().unwrap();
        let mut new = old.clone();
        new.status = status.into();
        if status == "pending" {
            new.attempts = 1;
            new.due_ms = old.due_ms + 60_000;
        }
        Update { id, n, old, new }
    };
    // a: both final in one group; b: one final, one retried later.
    let group = vec![
        update(a, 1, "processed"),
        update(b, 1, "processed"),
        update(a, 2, "failed:empty"),
        update(b, 2, "pending"),
    ];
    spool.update_all(&group).unwrap();
    assert_eq!(spool.data(a).unwrap(), None);
    assert!(spool.data(b).unwrap().is_some(), "b-2 still needs it");
    let due: Vec<_> = spool
        .due(i64::MAX / 2, 10)
        .0
        .into_iter()
        .map(|(id, n, r)| (id, n, r.attempts))
        .collect();
    assert_eq!(due, vec![(b, 2, 1)]);
    assert_eq!(spool.record(a, 2).unwrap().unwrap().status, "failed:empty");
    spool.update_all(&[update(b, 2, "processed")]).unwrap();
    assert_eq!(spool.data(b).unwrap(), None);
}

/// Which copy of a duplicate is the reply is settled when it is stored (durably), not when it
/// is processed, so a crash between a webhook POST and its record cannot make both count.
#[test]
fn the_first_copy_of_a_duplicate_is_named_at_store_time() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let spool = open(&db, None);
    let rcpts = vec![("R1@reply.x".to_string(), false)];
    let (a, recs_a) = smol::block_on(spool.store(incoming(&rcpts, b"one"))).unwrap();
    let lower = vec![("r1@reply.x".to_string(), false)];
    let (_, recs_b) = smol::block_on(spool.store(incoming(&lower, b"one again"))).unwrap();
    let first = format!("{a}-1");
    for rec in [&recs_a[0], &recs_b[0]] {
        let digest = duplicate_digest(rec);
        assert_eq!(
            spool.first_delivery(&digest, &rec.id).unwrap(),
            Some(first.clone())
        );
    }
    // Without a Message-ID every record is its own reply.
    let mut m = incoming(&rcpts, b"x");
    m.message_id = None;
    let (c, recs_c) = smol::block_on(spool.store(m)).unwrap();
    let digest = duplicate_digest(&recs_c[0]);
    assert_eq!(
        spool.first_delivery(&digest, &recs_c[0].id).unwrap(),
        Some(format!("{c}-1"))
    );
}

#[test]
fn the_first_delivery_of_a_digest_wins() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let spool = open(&db, None);
    assert_eq!(spool.first_delivery("d1", "A-1").unwrap(), None);
    assert_eq!(
        spool.first_delivery("d1", "B-1").unwrap(),
        Some("A-1".to_string())
    );
    assert_eq!(
        spool.first_delivery("d1", "A-1").unwrap(),
        Some("A-1".to_string())
    );
    assert_eq!(spool.first_delivery("d2", "B-1").unwrap(), None);
}

#[test]
fn many_concurrent_large_messages_all_commit() {
    let dir = std::env::temp_dir().join(format!("herald-spool-gc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = sled::Config::new().path(dir.join("db")).open().unwrap();
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

/// Finished records and their de-duplication keys go after the retention period; pending ones
/// and newer ones stay.
#[test]
fn finished_records_and_their_keys_go_after_the_retention_period() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let spool = open(&db, None);
    let one = vec![("r@reply.x".to_string(), false)];
    let mut ids = Vec::new();
    for body in [&b"a"[..], b"b", b"c"] {
        ids.push(smol::block_on(spool.store(incoming(&one, body))).unwrap().0);
    }
    // The first two finish.
    for (id, status) in [(ids[0], "processed"), (ids[1], "failed:empty")] {
        let old = spool.record(id, 1).unwrap().unwrap();
        let mut new = old.clone();
        new.status = status.into();
        spool.update_all(&[Update { id, n: 1, old, new }]).unwrap();
    }
    // The same Message-ID to the same address: all three share one digest, which names the
    // first record (store named it).
    let digest = duplicate_digest(&spool.record(ids[0], 1).unwrap().unwrap());
    let first = spool.first_delivery(&digest, "other").unwrap();
    assert_eq!(first, Some(format!("{}-1", ids[0])));
    let keys_before = spool.tree.len();
    // Not old enough yet: nothing goes.
    assert_eq!(spool.expire(crate::clock::now_ms(), 30).unwrap(), 0);
    assert_eq!(spool.tree.len(), keys_before);
    // 31 days later: the two finished records go, the pending one stays, and the digest's key
    // goes with the record it names.
    let later = crate::clock::now_ms() + 31 * 86_400_000;
    assert_eq!(spool.expire(later, 30).unwrap(), 2);
    assert!(spool.record(ids[0], 1).unwrap().is_none());
    assert!(spool.record(ids[1], 1).unwrap().is_none());
    assert!(spool.record(ids[2], 1).unwrap().unwrap().is_pending());
    assert!(spool.data(ids[2]).unwrap().is_some());
    assert!(spool.tree.get(seen_key(&digest)).unwrap().is_none());
    assert_eq!(spool.replies(None, 10).unwrap().len(), 1);
}

/// Regression: the reply queue and the notification queue each took ids from the clock, and a
/// reply and a notification accepted in the same microsecond shared a queue id in mail.log.
#[test]
fn the_two_queues_never_hand_out_the_same_id() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let spool = open(&db, None);
    let queue = crate::outbound::queue::Queue::open(&db, spool.durable.clone()).unwrap();
    let one = vec![("r@reply.x".to_string(), false)];
    let mut ids = std::collections::HashSet::new();
    for _ in 0..200 {
        assert!(ids.insert(queue.new_id()));
        let (id, _) = smol::block_on(spool.store(incoming(&one, b"x"))).unwrap();
        assert!(ids.insert(id.0), "{id} given twice");
    }
}
