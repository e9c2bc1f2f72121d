//! A memory budget shared by every session's DATA: a session reserves memory before it stores the
//! bytes of a message, a chunk at a time as they arrive, and gives it all back when the message
//! is stored or refused. A DATA that finds the budget spent gets `452 4.3.1`; a message that runs
//! out of budget on the way is refused with `452 4.3.1` at its end. Either way the sender tries
//! again later, and many large messages at once cannot exhaust memory. No I/O: an atomic counter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct DataBudget {
    limit: u64,
    used: AtomicU64,
}

/// Bytes reserved by one session; returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<DataBudget>,
    bytes: u64,
}

impl DataBudget {
    pub fn new(limit: u64) -> Arc<DataBudget> {
        Arc::new(DataBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// Reserves `bytes`, or `None` when that would pass the limit.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        self.take(bytes).then(|| Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// Adds `bytes` to what is used, unless that would pass the limit.
    fn take(&self, bytes: u64) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let Some(next) = used.checked_add(bytes).filter(|n| *n <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

impl Reservation {
    /// Grows this reservation to `to` bytes (in one step); false when the budget cannot.
    pub fn grow_to(&mut self, to: u64) -> bool {
        if to <= self.bytes {
            return true;
        }
        let ok = self.budget.take(to - self.bytes);
        if ok {
            self.bytes = to;
        }
        ok
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_and_give_back() {
        let b = DataBudget::new(100);
        let a = b.reserve(60).unwrap();
        assert!(b.reserve(50).is_none());
        let c = b.reserve(40).unwrap();
        assert_eq!(b.used(), 100);
        drop(a);
        assert_eq!(b.used(), 40);
        assert!(b.reserve(60).is_some());
        drop(c);
        assert_eq!(b.used(), 0);
        assert!(b.reserve(u64::MAX).is_none());
        let mut r = b.reserve(10).unwrap();
        assert!(r.grow_to(90));
        assert!(!r.grow_to(101));
        assert_eq!(b.used(), 90);
        drop(r);
        assert_eq!(b.used(), 0);
        // Regression (found by the fuzzer's leak check): growing leaked a reference.
        assert_eq!(Arc::strong_count(&b), 1);
    }
}
