//! `herald run`: boot, bring up the listeners ([`live`]), carry out configuration runs as they
//! are asked for, watch the workers, and on SIGTERM or SIGINT drain, flush and exit 0.
//!
//! One smol executor (owned here) runs the async listeners; the tiny-http servers of the control
//! socket and the console run on their own small worker pools.

pub mod live;

use crate::app::{App, paths};
use crate::boot::{self, BootError};
use crate::console::{Origin, serve};
use crate::watch;
use smol::future::FutureExt;
use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Worker threads of the control socket's tiny-http server. A notification's `202` waits for
/// its commit, so the workers are what lets concurrent requests share one (measured: with 2,
/// nearly every notification paid its own fdatasync).
const HTTP_WORKERS: usize = 8;
/// How long HTTP requests in progress get to finish after SIGTERM.
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

/// Binds an owner-only Unix socket for tiny-http, replacing a stale one (we hold the lock).
fn unix_server(app: &App, name: &str) -> Result<Arc<tiny_http::Server>, String> {
    let path = app.path(name);
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    tiny_http::Server::from_listener(listener, None)
        .map(Arc::new)
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
    let shutdown = Arc::new(AtomicBool::new(false));
    let signals =
        async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
            .map_err(|e| format!("cannot catch signals: {e}"))?;

    let control = unix_server(app, paths::CONTROL_SOCK)?;
    // Every worker thread and task reports its end here (see `watch`).
    let (deaths_tx, deaths) = smol::channel::unbounded::<watch::Death>();
    let cannot_start = |e: std::io::Error| format!("cannot start a worker thread: {e}");
    let workers = serve::spawn(
        "control",
        control.clone(),
        app.clone(),
        Origin::Control,
        HTTP_WORKERS,
        shutdown.clone(),
        &deaths_tx,
    )
    .map_err(cannot_start)?;
    let workers = RefCell::new(workers);

    let ex = Arc::new(smol::Executor::new());
    let result = smol::block_on(ex.run(async {
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
                let disk = disk.clone();
                smol::unblock(move || disk.check()).await;
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
        // Reply processing has a thread of its own, so it runs on the other core and never
        // takes the SMTP sessions' executor (measured: on the main executor it halved the
        // inbound rate under load).
        let start_processor = || -> Result<std::thread::JoinHandle<()>, String> {
            let processor = Arc::new(crate::replies::processor::Processor::new(app.clone())?);
            let stopped = worker_stopped.clone();
            watch::spawn("replies", &deaths_tx, move || {
                smol::block_on(processor.run(stopped))
            })
            .map_err(|e| format!("cannot start reply processing: {e}"))
        };
        let processor_thread = RefCell::new(start_processor()?);
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
                    "replies" => start_processor().map(|t| *processor_thread.borrow_mut() = t),
                    "outbound" => {
                        *worker_task.borrow_mut() = start_worker();
                        Ok(())
                    }
                    http => {
                        serve::spawn_one(
                            http,
                            control.clone(),
                            app.clone(),
                            Origin::Control,
                            shutdown.clone(),
                            &deaths_tx,
                        )
                        .map(|t| workers.borrow_mut().push(t))
                        .map_err(cannot_start)
                    }
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
        let processor_thread = processor_thread.into_inner();
        while !processor_thread.is_finished() && std::time::Instant::now() < drain_end {
            smol::Timer::after(std::time::Duration::from_millis(20)).await;
        }
        if processor_thread.is_finished() {
            let _ = processor_thread.join();
        } else {
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
        if let Some(why) = fatal_error {
            return Err(why);
        }
        Ok::<(), String>(())
    }));

    // Dropping the executor drops every console and SMTP connection still open, so tiny-http's
    // workers see their peers go; then the workers get a bounded time to finish.
    drop(ex);
    shutdown.store(true, Ordering::Release);
    let deadline = std::time::Instant::now() + WORKER_DRAIN;
    for w in workers.into_inner() {
        while !w.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if w.is_finished() {
            let _ = w.join();
        } else {
            log::warn!(
                "an HTTP request on the control socket is still open after {WORKER_DRAIN:?}: leaving it"
            );
        }
    }
    drop(control);
    let _ = std::fs::remove_file(app.path(paths::CONTROL_SOCK));
    result
}
