//! `herald run`: boot, bring up the listeners ([`live`]), carry out configuration runs as they
//! are asked for, watch the workers, and on SIGTERM or SIGINT drain, flush and exit 0.
//!
//! One smol executor (owned here) runs the listeners (the console's HTTPS front, the control
//! socket, port 25), the delivery worker, reply processing and the disk watch; blocking work goes
//! to [`crate::pool`]. Threads at idle: this one, smol's reactor (`async-io`), the commit and
//! checkpoint threads (`durable`), and sled's own eight (seven `sled-io`, the `log flusher`).

pub mod live;

use crate::app::{App, paths};
use crate::boot::{self, BootError};
use crate::watch;
use smol::future::FutureExt;
use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How long control-socket requests in progress get to finish after SIGTERM.
const WORKER_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);
/// How long SMTP sessions get to finish a message in flight after SIGTERM.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the service until a signal. Returns the process exit code.
pub fn run(config: Option<&Path>, data_dir: &Path) -> i32 {
    let booted = match boot::boot(config, data_dir) {
        Ok(b) => b,
        Err(e) => {
            // One line on stderr (the journal under systemd), not logged twice.
            eprintln!("herald: {e}");
            return match e {
                BootError::Config(_) => 78, // EX_CONFIG: systemd does not restart on it
                _ => 1,
            };
        }
    };
    match serve_until_signal(&booted.app, booted.run_requests) {
        Ok(()) => {
            if let Err(e) = booted.app.db.flush() {
                log::error!("flushing the database on exit: {e}");
                return 1;
            }
            log::info!("stopped");
            0
        }
        Err(e) => {
            eprintln!("herald: {e}");
            let _ = booted.app.db.flush();
            1
        }
    }
}

/// Binds an owner-only Unix socket, replacing a stale one (we hold the lock).
fn unix_listener(app: &App, name: &str) -> Result<smol::net::unix::UnixListener, String> {
    let path = app.path(name);
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    smol::net::unix::UnixListener::try_from(listener)
        .map_err(|e| format!("cannot serve {}: {e}", path.display()))
}

fn serve_until_signal(
    app: &Arc<App>,
    run_requests: smol::channel::Receiver<u64>,
) -> Result<(), String> {
    let settings = app
        .settings
        .applied()
        .map_err(|e| e.to_string())?
        .ok_or("no settings")?
        .settings;
    let signals =
        async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
            .map_err(|e| format!("cannot catch signals: {e}"))?;

    // Every worker thread and task reports its end here (see `watch`).
    let (deaths_tx, deaths) = smol::channel::unbounded::<watch::Death>();
    let ex = Arc::new(smol::Executor::new());
    let control_busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let control_closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let result = smol::block_on(ex.run(async {
        let control = unix_listener(app, paths::CONTROL_SOCK)?;
        let control = ex.spawn(crate::net::https::run_control(
            control,
            app.clone(),
            ex.clone(),
            control_busy.clone(),
            control_closing.clone(),
        ));
        // Closed to stop: every SMTP session, of every listener generation, drains.
        let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
        let live = live::Live::start(app.clone(), ex.clone(), &settings, stop_rx).await?;
        log::info!(
            "console listening on https://{}/ (manage API: user api_key, console password)",
            live.console.addr
        );
        log::info!(
            "control socket at {}",
            app.path(paths::CONTROL_SOCK).display()
        );
        match &live.inbound {
            Some(g) => log::info!(
                "inbound SMTP listening on {} for {}",
                g.addr,
                settings.reply_domain()
            ),
            None => log::info!(
                "inbound SMTP off (smtp.enabled is false); when enabled it listens on {}",
                settings.inbound.listen
            ),
        }
        // Held by a run while it goes on; the shutdown takes it back once nothing else can.
        let live = smol::lock::Mutex::new(live);
        // Free space, once a second (statvfs: a few microseconds).
        let disk = app.disk.clone();
        let disk_watch = ex.spawn(async move {
            loop {
                smol::Timer::after(std::time::Duration::from_secs(1)).await;
                // Inline, not on the blocking pool: a pool thread woken each second would
                // never go idle.
                disk.check();
            }
        });
        let (worker_stop, worker_stopped) = smol::channel::bounded::<()>(1);
        let start_worker = || {
            let worker = Arc::new(crate::outbound::worker::Worker::new(app.clone()));
            ex.spawn(watch::task(
                "outbound",
                &deaths_tx,
                worker.run(worker_stopped.clone()),
            ))
        };
        let worker_task = RefCell::new(start_worker());
        // Reply processing is a task like the delivery worker's; what it does that takes CPU
        // (reading a message) or may block (a retention sweep) goes to the pool, so it never
        // holds the executor the SMTP sessions share (measured, when it parsed on the executor:
        // half the inbound rate under load).
        let processor = Arc::new(crate::replies::processor::Processor::new(app.clone())?);
        let start_processor = || {
            ex.spawn(watch::task(
                "replies",
                &deaths_tx,
                processor.clone().run(worker_stopped.clone()),
            ))
        };
        let processor_task = RefCell::new(start_processor());
        log::info!(
            "herald {} ready (data directory {})",
            crate::VERSION,
            app.data_dir.display()
        );

        use smol::stream::StreamExt;
        let mut signals = signals;
        let fatal = app.durable.fatal.clone();
        // Why the service stops: a signal (exit 0), the store's disk failure or a worker that
        // keeps dying (exit 1). Meanwhile configuration runs are carried out, one at a time. A
        // worker that dies is started again, at most `watch::RESTARTS_MAX` times in
        // `watch::RESTARTS_WINDOW`.
        let fatal_error = async {
            let signal = signals.next().await.and_then(|s| s.ok());
            log::info!("received {signal:?}: draining");
            None
        }
        .or(async {
            let why = (fatal.recv().await)
                .unwrap_or_else(|_| "the reply queue's commit thread stopped".to_string());
            log::error!("stopping: {why}");
            Some(why)
        })
        .or(async {
            // A run cut short by a stop is marked failed at the next start (nothing of it was
            // applied: the applied settings are written last).
            while let Ok(id) = run_requests.recv().await {
                let mut live = live.lock().await;
                crate::supervisor::execute(app, &mut live, id).await;
            }
            std::future::pending().await
        })
        .or(async {
            let mut restarts: std::collections::HashMap<String, watch::Restarts> =
                Default::default();
            loop {
                let Ok(death) = deaths.recv().await else {
                    return std::future::pending().await;
                };
                log::error!("{death}");
                if !restarts.entry(death.name.clone()).or_default().allow() {
                    let why = format!(
                        "{death}, and it died {} times in {} minutes: stopping (restart herald; the process log above says why)",
                        watch::RESTARTS_MAX,
                        watch::RESTARTS_WINDOW.as_secs() / 60
                    );
                    log::error!("stopping: {why}");
                    return Some(why);
                }
                let restarted = match death.name.as_str() {
                    "replies" => {
                        *processor_task.borrow_mut() = start_processor();
                        Ok(())
                    }
                    "outbound" => {
                        *worker_task.borrow_mut() = start_worker();
                        Ok(())
                    }
                    other => Err(format!("{other} cannot be started again")),
                };
                match restarted {
                    Ok(()) => log::warn!("started {} again", death.name),
                    Err(e) => {
                        log::error!("stopping: {e}");
                        return Some(e);
                    }
                }
            }
        })
        .await;
        let mut live = live.into_inner();
        live.stop_accepting().await;
        disk_watch.cancel().await;
        // The worker finishes the message it is sending (its outcome is recorded) or is
        // dropped after the drain time: a message cut off mid-send stays queued and goes again.
        drop(worker_stop);
        let drain_end = std::time::Instant::now() + DRAIN;
        let _ = worker_task
            .into_inner()
            .or(async {
                smol::Timer::at(drain_end).await;
            })
            .await;
        let processor_task = processor_task.into_inner();
        let finished = async {
            processor_task.await;
            true
        }
        .or(async {
                smol::Timer::at(drain_end).await;
                false
            })
            .await;
        if !finished {
            log::warn!(
                "reply processing still busy after {DRAIN:?}: leaving it (its replies stay pending)"
            );
        }
        drop(stop_tx); // every session: 421 4.3.2 between commands, or finish the message
        let deadline = std::time::Instant::now() + DRAIN;
        while live.active_sessions() > 0 && std::time::Instant::now() < deadline {
            smol::Timer::after(std::time::Duration::from_millis(20)).await;
        }
        let left = live.active_sessions();
        if left > 0 {
            log::warn!("{left} SMTP sessions still open after {DRAIN:?}: closing them");
        }
        // Requests on the control socket in hand get a bounded time to finish (a notification
        // whose commit is under way gets its `202`); one read from now on is answered 503 (its
        // client retries against the next start); then the socket goes.
        control_closing.store(true, Ordering::Release);
        let deadline = std::time::Instant::now() + WORKER_DRAIN;
        while control_busy.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
            smol::Timer::after(std::time::Duration::from_millis(10)).await;
        }
        if control_busy.load(Ordering::Acquire) > 0 {
            log::warn!(
                "a request on the control socket is still open after {WORKER_DRAIN:?}: leaving it"
            );
        }
        control.cancel().await;
        if let Some(why) = fatal_error {
            return Err(why);
        }
        Ok::<(), String>(())
    }));

    // Dropping the executor drops every console, control and SMTP connection still open.
    drop(ex);
    let _ = std::fs::remove_file(app.path(paths::CONTROL_SOCK));
    result
}
