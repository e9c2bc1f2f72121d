//! Watched threads: every long-lived thread herald starts reports its end (a return or a panic,
//! with the panic's message) to one channel, so the service sees a dead worker at once and
//! restarts it or stops with a clear error, never running on with a dead part while its
//! listeners answer. [`caught`] turns a panic into an error for work that must not take its
//! thread down (one message, one request).

use std::panic::{AssertUnwindSafe, catch_unwind};

/// A thread that ended.
#[derive(Debug, Clone)]
pub struct Death {
    pub name: String,
    /// `None` when it returned; the panic's message when it panicked.
    pub panic: Option<String>,
}

impl std::fmt::Display for Death {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.panic {
            None => write!(f, "the {} thread ended", self.name),
            Some(p) => write!(f, "the {} thread panicked: {p}", self.name),
        }
    }
}

pub type Deaths = smol::channel::Sender<Death>;

/// Starts a thread called `name` running `f`; when it ends, for any reason, a [`Death`] goes to
/// `deaths`.
pub fn spawn(
    name: &str,
    deaths: &Deaths,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (name, deaths) = (name.to_string(), deaths.clone());
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let panic = caught(f).err();
            let _ = deaths.try_send(Death { name, panic });
        })
}

/// A task called `name` running `fut`: a panic in it is caught (it would otherwise unwind
/// through the executor and stop everything) and, like a return, reported to `deaths`.
pub fn task<F: std::future::Future<Output = ()> + Send + 'static>(
    name: &str,
    deaths: &Deaths,
    fut: F,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    use smol::future::FutureExt;
    let (name, deaths) = (name.to_string(), deaths.clone());
    async move {
        let panic = AssertUnwindSafe(fut)
            .catch_unwind()
            .await
            .err()
            .map(|p| panic_message(&*p));
        let _ = deaths.try_send(Death { name, panic });
    }
}

/// Runs `f`, giving a panic in it back as its message.
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&*p))
}

/// The text a panic carries (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// How often a worker may be restarted before the service gives up and stops.
pub const RESTARTS_MAX: usize = 5;
/// ... within this long.
pub const RESTARTS_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// A worker's recent restarts.
#[derive(Default)]
pub struct Restarts(Vec<std::time::Instant>);

impl Restarts {
    /// Counts a restart now; `false` when there were already [`RESTARTS_MAX`] in the window.
    pub fn allow(&mut self) -> bool {
        let now = std::time::Instant::now();
        self.0.retain(|t| now.duration_since(*t) < RESTARTS_WINDOW);
        if self.0.len() >= RESTARTS_MAX {
            return false;
        }
        self.0.push(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_panics_or_returns_is_reported_with_why() {
        let (tx, rx) = smol::channel::unbounded();
        spawn("quiet", &tx, || {}).unwrap().join().unwrap();
        spawn("loud", &tx, || panic!("boom {}", 7))
            .unwrap()
            .join()
            .unwrap();
        let quiet = rx.try_recv().unwrap();
        assert_eq!((quiet.name.as_str(), quiet.panic), ("quiet", None));
        let loud = rx.try_recv().unwrap();
        assert_eq!(loud.panic.as_deref(), Some("boom 7"));
        assert_eq!(loud.to_string(), "the loud thread panicked: boom 7");
        assert_eq!(caught(|| 3), Ok(3));
        assert_eq!(caught(|| -> u8 { panic!("x") }), Err("x".into()));
    }

    #[test]
    fn restarts_are_bounded_in_their_window() {
        let mut r = Restarts::default();
        for _ in 0..RESTARTS_MAX {
            assert!(r.allow());
        }
        assert!(!r.allow());
    }
}
