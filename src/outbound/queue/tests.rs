//! The queue's record, index, retry, drop and taken-id rules, on a temporary sled.

use super::*;

fn record(id: u64, due_ms: i64) -> Record {
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

/// What is due, as a look only: the ids are not kept taken.
fn due_ids(q: &Queue, now_ms: i64, limit: usize) -> (Vec<u64>, Option<i64>) {
    let (due, next) = q.due(now_ms, limit);
    q.release_all();
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

fn queue() -> Arc<Queue> {
    let db = sled::Config::new().temporary(true).open().unwrap();
    Queue::open(&db, Durable::open(&db, None).unwrap()).unwrap()
}

#[test]
fn a_retry_makes_it_due_now_and_a_drop_fails_it_and_removes_its_message() {
    let q = queue();
    let (a, b) = (q.new_id(), q.new_id());
    q.enqueue(a, &record(a, 5_000), b"A").unwrap();
    q.enqueue(b, &record(b, 9_000), b"B").unwrap();
    assert_eq!(due_ids(&q, 1_000, 10).0, Vec::<u64>::new());
    let rec = q.retry(a, 1_000).unwrap();
    assert_eq!((rec.due_ms, rec.status), (1_000, Status::Queued));
    assert!(q.take_retry_asked() && !q.take_retry_asked());
    // Due now, at its new time only: the old index entry went.
    assert_eq!(due_ids(&q, 1_000, 10), (vec![a], Some(9_000)));
    assert_eq!(q.tree.scan_prefix([DUE]).count(), 2, "one index entry each");
    let dropped = q.drop_one(b, "dropped by an operator (test)").unwrap();
    assert_eq!(dropped.status, Status::Failed);
    assert_eq!(
        q.get(b).unwrap().unwrap().last_error.as_deref(),
        Some("dropped by an operator (test)")
    );
    assert_eq!(q.message(b).unwrap(), None);
    assert_eq!(due_ids(&q, 100_000, 10).0, vec![a]);
    // Finished ones and unknown ones are refused, and say why.
    assert_eq!(
        q.retry(b, 1).unwrap_err(),
        Refused::Finished(Status::Failed)
    );
    assert_eq!(
        q.drop_one(b, "x").unwrap_err(),
        Refused::Finished(Status::Failed)
    );
    assert_eq!(q.retry(12345, 1).unwrap_err(), Refused::NotFound);
    assert!(
        Refused::Finished(Status::Sent)
            .to_string()
            .contains("sent already")
    );
}

/// An id the worker took for an attempt is not changed under it; once its outcome is saved
/// (or the round ends without one) it can be.
#[test]
fn an_action_never_crosses_an_attempt() {
    let q = queue();
    let id = q.new_id();
    q.enqueue(id, &record(id, 100), b"A").unwrap();
    let (taken, _) = q.due(1_000, 10);
    assert_eq!(taken.len(), 1);
    assert_eq!(q.drop_one(id, "x").unwrap_err(), Refused::Sending);
    assert_eq!(q.retry(id, 1).unwrap_err(), Refused::Sending);
    assert_eq!(q.retry_all(1).unwrap(), Vec::new());
    // Not taken twice.
    assert_eq!(q.due(1_000, 10).0, Vec::new());
    let old = &taken[0].1;
    let mut deferred = old.clone();
    deferred.status = Status::Deferred;
    deferred.attempts = 1;
    deferred.due_ms = 60_000;
    q.update_all(&[(id, old, &deferred)]).unwrap();
    assert_eq!(q.get(id).unwrap().unwrap(), deferred);
    // Free again: an operator drops it.
    q.drop_one(id, "dropped").unwrap();
    // An outcome that started from a state that is no longer there is not saved over it.
    let mut sent = deferred.clone();
    sent.status = Status::Sent;
    q.update_all(&[(id, &deferred, &sent)]).unwrap();
    assert_eq!(q.get(id).unwrap().unwrap().status, Status::Failed);
    // A round that ends part way frees what it took.
    let other = q.new_id();
    q.enqueue(other, &record(other, 100), b"B").unwrap();
    assert_eq!(q.due(1_000, 10).0.len(), 1);
    assert_eq!(q.retry(other, 1).unwrap_err(), Refused::Sending);
    q.release_all();
    assert_eq!(q.retry(other, 500).unwrap().due_ms, 500);
}

#[test]
fn retry_all_makes_every_waiting_one_due_in_one_commit() {
    let q = queue();
    let ids: Vec<u64> = (0..5).map(|_| q.new_id()).collect();
    for (i, &id) in ids.iter().enumerate() {
        q.enqueue(id, &record(id, 10_000 + i as i64), b"M").unwrap();
    }
    // One already due stays as it is; one sent is left alone.
    q.retry(ids[0], 50).unwrap();
    let old = q.get(ids[4]).unwrap().unwrap();
    let mut sent = old.clone();
    sent.status = Status::Sent;
    q.update_all(&[(ids[4], &old, &sent)]).unwrap();
    let moved: Vec<String> = q
        .retry_all(100)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        moved,
        ids[1..4]
            .iter()
            .map(|i| format!("{i:X}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(due_ids(&q, 100, 10).0, ids[..4].to_vec());
    assert_eq!(q.tree.scan_prefix([DUE]).count(), 4);
}

/// An index entry left at an old time (a crash between a retry's commit and its clean-up)
/// is not taken, and goes.
#[test]
fn a_stale_index_entry_at_another_time_is_removed() {
    let q = queue();
    let id = q.new_id();
    q.enqueue(id, &record(id, 100), b"A").unwrap();
    q.tree.insert(due_key(50, id), Vec::<u8>::new()).unwrap();
    assert_eq!(due_ids(&q, 75, 10), (Vec::<u64>::new(), Some(100)));
    assert_eq!(q.tree.scan_prefix([DUE]).count(), 1);
}
