//! The timing of the background workers (delivery and reply processing): the wait between
//! rounds, until new work is signalled, the next due time comes, or the service says stop; the
//! exponential backoff of their retries; and the pace at which a round saves its outcomes, in
//! groups ([`Outcomes`]).

use smol::future::FutureExt;
use std::sync::Mutex;
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

/// A round's outcomes are saved together (one sled batch a group) once this many wait...
pub const SAVE_GROUP: usize = 64;
/// ...and every this long while the round goes on ([`save_every`]), and at its end: an outcome
/// waits in memory only a moment, far less than sled's own unsynced half second. Saved one by
/// one, each sled batch cost two log writes and two `sync_file_range` waits on sled's IO
/// threads (a quarter of herald's CPU while sending).
pub const SAVE_EVERY: Duration = Duration::from_millis(50);

/// Outcomes of a round not saved yet.
pub struct Outcomes<T>(Mutex<Vec<T>>);

impl<T> Default for Outcomes<T> {
    fn default() -> Self {
        Outcomes(Mutex::new(Vec::new()))
    }
}

impl<T> Outcomes<T> {
    /// Adds one; the group to save when it makes [`SAVE_GROUP`].
    pub fn push(&self, outcome: T) -> Option<Vec<T>> {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.push(outcome);
        (list.len() >= SAVE_GROUP).then(|| std::mem::take(&mut *list))
    }

    /// Every outcome waiting.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Calls `save` every [`SAVE_EVERY`]; a round runs it as a task and cancels it at its end.
pub async fn save_every(save: impl Fn()) {
    loop {
        smol::Timer::after(SAVE_EVERY).await;
        save();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_come_out_in_groups_and_whatever_waits_at_the_end() {
        let o = Outcomes::default();
        for i in 0..SAVE_GROUP - 1 {
            assert_eq!(o.push(i), None);
        }
        let group = o.push(SAVE_GROUP - 1).expect("a full group");
        assert_eq!(group, (0..SAVE_GROUP).collect::<Vec<_>>());
        assert!(o.take().is_empty());
        assert_eq!(o.push(7), None);
        assert_eq!(o.take(), vec![7]);
        assert!(o.take().is_empty());
    }
}
