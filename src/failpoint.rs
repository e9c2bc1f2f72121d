//! Failures injected by tests into a build made for it (`--features failpoints`, used with the
//! `release-faults` profile: the release profile's panic strategy and optimisation, so a test
//! sees what the shipped binary would do). Without the feature every hook is an empty inline
//! function and no name or marker is in the binary.
//!
//! Two ways to aim one:
//! - `HERALD_FAILPOINTS="name=action;name=action"` in the service's environment, where action is
//!   `panic`, `panic-once` (the first time only, in this process) or `abort`;
//! - a marker in the data itself: [`message`] looks for `herald-failpoint: <site>=<action>` in a
//!   message's first KiB, so one poisoned message among good ones can be sent with swaks.

/// Fails here if `HERALD_FAILPOINTS` names `name`.
#[inline(always)]
pub fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    imp::hit(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// Fails here if the message carries a failpoint marker for `site`.
#[inline(always)]
pub fn message(site: &str, data: &[u8]) {
    #[cfg(feature = "failpoints")]
    imp::message(site, data);
    #[cfg(not(feature = "failpoints"))]
    let _ = (site, data);
}

#[cfg(feature = "failpoints")]
mod imp {
    use std::sync::Mutex;

    /// Names that already failed once (`panic-once`).
    static ONCE: Mutex<Vec<String>> = Mutex::new(Vec::new());

    fn act(name: &str, action: &str) {
        match action.trim() {
            "panic" => panic!("failpoint {name}"),
            "panic-once" => {
                let mut once = ONCE.lock().unwrap_or_else(|e| e.into_inner());
                if !once.iter().any(|n| n == name) {
                    once.push(name.to_string());
                    drop(once);
                    panic!("failpoint {name} (once)");
                }
            }
            "abort" => {
                eprintln!("failpoint {name}: abort");
                std::process::abort();
            }
            _ => {}
        }
    }

    pub fn hit(name: &str) {
        let Ok(spec) = std::env::var("HERALD_FAILPOINTS") else {
            return;
        };
        for part in spec.split(';') {
            if let Some((n, action)) = part.split_once('=')
                && n.trim() == name
            {
                act(name, action);
            }
        }
    }

    pub fn message(site: &str, data: &[u8]) {
        let head = String::from_utf8_lossy(&data[..data.len().min(1024)]);
        let marker = format!("herald-failpoint: {site}=");
        if let Some(rest) = head.split(marker.as_str()).nth(1) {
            let action: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
            act(site, &action);
        }
    }
}
