//! The wait of a background worker between rounds: until new work is signalled, the next due
//! time comes, or the service says stop.

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
