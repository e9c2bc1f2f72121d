//! `herald run`: boot, bring up the listeners, wait for SIGTERM or SIGINT, drain, flush, exit 0.
//!
//! One smol executor (owned here) runs the async listeners; the tiny-http servers of the control
//! socket and the console run on their own small worker pools.

use crate::app::{App, paths};
use crate::boot::{self, BootError};
use crate::console::{Origin, serve};
use crate::net;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Worker threads per tiny-http server.
const HTTP_WORKERS: usize = 2;

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
    match serve_until_signal(&booted.app) {
        Ok(()) => {
            if let Err(e) = booted.app.db.flush() {
                log::error!("flushing the database on exit: {e}");
                return 1;
            }
            log::info!("stopped");
            0
        }
        Err(e) => {
            log::error!("{e}");
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

fn serve_until_signal(app: &Arc<App>) -> Result<(), String> {
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
    let console = unix_server(app, paths::CONSOLE_SOCK)?;
    let mut workers = serve::spawn(
        "control",
        control.clone(),
        app.clone(),
        Origin::Control,
        HTTP_WORKERS,
        shutdown.clone(),
    );
    workers.extend(serve::spawn(
        "console",
        console.clone(),
        app.clone(),
        Origin::Console,
        HTTP_WORKERS,
        shutdown.clone(),
    ));

    let tls = net::tls::server_config(&app.db, &settings, &[b"http/1.1"])
        .map_err(|e| format!("appliance certificate: {e}"))?;
    let ex = Arc::new(smol::Executor::new());
    let result = smol::block_on(ex.run(async {
        let listener = smol::net::TcpListener::bind(settings.console.listen.as_str())
            .await
            .map_err(|e| format!("cannot listen on console.listen {}: {e}", settings.console.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let front = ex.spawn(net::https::run(listener, tls, app.path(paths::CONSOLE_SOCK), ex.clone()));
        log::info!("console listening on https://{addr}/ (manage API: user api_key, console password)");
        log::info!("control socket at {}", app.path(paths::CONTROL_SOCK).display());
        log::info!(
            "inbound SMTP configured for {} (smtp.enabled={}); the SMTP server is not part of this build yet",
            settings.inbound.listen, settings.smtp.enabled
        );
        log::info!("herald {} ready (data directory {})", crate::VERSION, app.data_dir().display());

        use smol::stream::StreamExt;
        let mut signals = signals;
        let sig = signals.next().await;
        log::info!("received {:?}: draining", sig.and_then(|s| s.ok()));
        front.cancel().await;
        Ok::<(), String>(())
    }));

    shutdown.store(true, Ordering::Release);
    for w in workers {
        let _ = w.join();
    }
    drop(control);
    drop(console);
    result
}
