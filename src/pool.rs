//! Threads for blocking work, off the one executor: a handler that waits on a commit or a
//! password check, a file read for a download, a name lookup, parsing a reply, a retention
//! sweep. At most [`MAX`] threads, each started when work waits and no thread is idle, each gone
//! after [`IDLE_EXIT`] without work, so an idle herald holds none.
//!
//! Not smol's `unblock`: its pool (blocking 1.7) stops a thread only once it has more than its
//! limit of 500, so every thread a burst started stayed for the life of the process.

use std::collections::VecDeque;
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::Duration;

/// Threads at most: room for both listeners' handlers (8 at once each), the work a handler
/// hands on in turn (a name lookup for a test email), reply parsing and the sweeps.
pub const MAX: usize = 32;
/// A thread with no work for this long ends.
pub const IDLE_EXIT: Duration = Duration::from_secs(2);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    started: u64,
}

struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

static POOL: LazyLock<Pool> = LazyLock::new(|| Pool {
    state: Mutex::default(),
    work: Condvar::new(),
});

fn lock() -> std::sync::MutexGuard<'static, State> {
    POOL.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on a pool thread; its result (or its panic) comes back to the caller.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = smol::channel::bounded(1);
    submit(Box::new(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.try_send(out);
    }));
    match rx.recv().await {
        Ok(Ok(t)) => t,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("a pool job was dropped without running"),
    }
}

fn submit(job: Job) {
    let mut s = lock();
    s.queue.push_back(job);
    // Idle threads count down only once they wake: while more work waits than threads idle,
    // another thread starts (else a burst would queue behind the one thread notified).
    if s.queue.len() <= s.idle {
        POOL.work.notify_one();
        return;
    }
    if s.threads >= MAX {
        POOL.work.notify_one();
        return;
    }
    s.threads += 1;
    s.started += 1;
    let name = format!("pool-{}", s.started);
    drop(s);
    if let Err(e) = std::thread::Builder::new().name(name).spawn(worker) {
        let mut s = lock();
        s.threads -= 1;
        log::error!("cannot start a pool thread: {e}");
        if s.threads == 0 {
            // No thread to take it: run it here rather than never.
            let job = s.queue.pop_back();
            drop(s);
            if let Some(job) = job {
                job();
            }
        }
    }
}

fn worker() {
    let mut s = lock();
    loop {
        if let Some(job) = s.queue.pop_front() {
            drop(s);
            job();
            s = lock();
            continue;
        }
        s.idle += 1;
        let (g, waited) = POOL
            .work
            .wait_timeout(s, IDLE_EXIT)
            .unwrap_or_else(|e| e.into_inner());
        s = g;
        s.idle -= 1;
        if waited.timed_out() && s.queue.is_empty() {
            s.threads -= 1;
            return;
        }
    }
}

/// Threads the pool holds now (running or idle).
pub fn threads() -> usize {
    lock().threads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_off_the_caller_panics_come_back_and_idle_threads_end() {
        let here = std::thread::current().id();
        let there = smol::block_on(run(|| std::thread::current().id()));
        assert_ne!(here, there);
        // Many at once: all done, never more than MAX threads.
        let all = smol::block_on(async {
            let tasks: Vec<_> = (0..40u64)
                .map(|i| {
                    smol::spawn(run(move || {
                        std::thread::sleep(Duration::from_millis(5));
                        i * 2
                    }))
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await);
            }
            out
        });
        assert_eq!(all, (0..40u64).map(|i| i * 2).collect::<Vec<_>>());
        assert!(threads() <= MAX);
        let caught = std::panic::catch_unwind(|| smol::block_on(run(|| panic!("boom"))));
        assert!(caught.is_err());
        let deadline = std::time::Instant::now() + IDLE_EXIT * 3;
        while threads() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} threads left",
                threads()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
