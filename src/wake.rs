//! The timing of the background workers (delivery and reply processing): the wait between
//! rounds, until new work is signalled, the next due time comes, or the service says stop; and
//! the exponential backoff of their retries.

use smol::future::FutureExt;
use std::time::Duration;

/// Waits for `woken`, at most `wait`; `false` when `stop` closed (the worker should end).
pub async fn next_round(
    woken: &smol::channel::Receiver<()>,
    wait: Duration,
    stop: &smol::channel::Receiver<()>,
) -> bool {
    async {
        let _ = woken.recv().await;
        true
    }
    .or(async {
        smol::Timer::after(wait).await;
        true
    })
    .or(async {
        let _ = stop.recv().await;
        false
    })
    .await
}

/// How long a worker waits at most between rounds when nothing wakes it (it also looks at the
/// settings then).
pub const IDLE_CHECK: Duration = Duration::from_secs(5);

/// The wait before attempt `attempts + 1`: `first`, doubling with each attempt, at most `max`.
pub fn backoff(attempts: u32, first: Duration, max: Duration) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(16);
    (first * factor).min(max)
}
