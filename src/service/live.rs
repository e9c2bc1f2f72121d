//! The services a configuration run changes while herald runs, and how each is changed so that
//! it can be taken back:
//!
//! - the port-25 listener runs in *generations*: a generation is the settings its sessions were
//!   accepted under. A run prepares the next one (binding its address first if it moved, so an
//!   address that cannot be bound fails the run before anything changed), starts it, and stops
//!   the previous one accepting: sessions in progress finish on the settings they began with.
//!   When the address stays, the same socket is handed over, so no connection is ever refused
//!   (the kernel queues what arrives in between). The previous generation is kept until the run
//!   ends, to be put back if a later step fails.
//! - the console's TLS identity is swapped in place ([`crate::net::https::Identity`]); a new
//!   `console.listen` gets a listener of its own, and the old one stays open a while after the
//!   run so the page that started it sees it end.
//!
//! Mail accepted is never at stake here: it is on disk before its `250`, and the queues belong to
//! the store, not to a generation.

use crate::app::App;
use crate::net;
use crate::settings::Settings;
use smol::net::TcpListener;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Memory all SMTP sessions' DATA may hold at once (at least two messages of the size limit);
/// past it DATA is answered 452 4.3.1 until messages are stored.
const DATA_BUDGET: u64 = 128 << 20;
/// How long the console's old listener stays open after `console.listen` moved.
const OLD_CONSOLE_GRACE: Duration = Duration::from_secs(30);

/// One generation of the port-25 listener.
pub struct Inbound {
    pub listener: Arc<TcpListener>,
    pub addr: SocketAddr,
    /// The `inbound.listen` it was bound for.
    pub listen: String,
    pub ctx: Arc<net::smtp::Inbound>,
    /// Its accept loop, while it accepts.
    task: Option<smol::Task<()>>,
}

/// The console's HTTPS front.
pub struct Console {
    pub addr: SocketAddr,
    pub listen: String,
    pub identity: net::https::Identity,
    task: Option<smol::Task<()>>,
}

/// How to put the console back as it was before a run.
enum ConsoleUndo {
    /// The listener stayed; its identity was this.
    Identity(Arc<rustls::ServerConfig>),
    /// The listener moved; this was the old one.
    Listener(Console),
}

/// What sessions of every generation share: how many are alive, per client address, and the
/// service's stop signal.
struct Shared {
    active: Arc<AtomicUsize>,
    per_client: net::PerClients,
    stop: smol::channel::Receiver<()>,
}

pub struct Live {
    app: Arc<App>,
    ex: Arc<smol::Executor<'static>>,
    shared: Shared,
    pub inbound: Option<Inbound>,
    pub console: Console,
    /// What a run replaced, until it ends (kept to be put back).
    previous_inbound: Option<Option<Inbound>>,
    previous_console: Option<ConsoleUndo>,
}

/// The TLS identity of the console (HTTP/1.1 over ALPN).
pub fn console_tls(app: &App, s: &Settings) -> Result<Arc<rustls::ServerConfig>, String> {
    net::tls::server_config(&app.db, s, &[b"http/1.1"])
        .map_err(|e| format!("the appliance certificate: {e}"))
}

impl Live {
    /// Brings up the console and, with email on, the port-25 listener, for `s`.
    pub async fn start(
        app: Arc<App>,
        ex: Arc<smol::Executor<'static>>,
        s: &Settings,
        stop: smol::channel::Receiver<()>,
    ) -> Result<Live, String> {
        let listener = net::bind("console.listen", &s.console.listen).await?;
        let identity: net::https::Identity = Arc::new(std::sync::Mutex::new(console_tls(&app, s)?));
        let console = Console::spawn(&app, &ex, listener, &s.console.listen, identity)?;
        let mut live = Live {
            app,
            ex,
            shared: Shared {
                active: Arc::new(AtomicUsize::new(0)),
                per_client: net::PerClient::map(),
                stop,
            },
            inbound: None,
            console,
            previous_inbound: None,
            previous_console: None,
        };
        if s.smtp.enabled {
            let listener = net::bind("inbound.listen", &s.inbound.listen).await?;
            let mut generation = live.generation(Arc::new(listener), s)?;
            generation.accept(&live.ex, &live.shared, &live.app);
            live.inbound = Some(generation);
        }
        Ok(live)
    }

    /// A generation for `s` on `listener`, not accepting yet.
    fn generation(&self, listener: Arc<TcpListener>, s: &Settings) -> Result<Inbound, String> {
        use crate::smtp::server::{Config, Timeouts};
        let tls = net::tls::server_config(&self.app.db, s, &[])
            .map_err(|e| format!("the inbound certificate: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let app = &self.app;
        let ctx = Arc::new(net::smtp::Inbound {
            config: Config {
                hostname: s.hostname.clone(),
                max_message_size: s.inbound.max_message_size,
                tls_available: true,
                tls_enforced: s.inbound.tls_enforced,
                timeouts: Timeouts::default(),
                max_errors: 10,
                budget: crate::smtp::budget::DataBudget::new(
                    DATA_BUDGET.max(2 * s.inbound.max_message_size),
                ),
            },
            policy: Arc::new(crate::inbound::policy::InboundPolicy::new(
                s,
                app.reply_key.clone(),
            )),
            tls: Some(futures_rustls::TlsAcceptor::from(tls)),
            spool: app.spool.clone(),
            maillog: app.maillog.clone(),
            metrics: app.metrics.clone(),
            slots: Arc::new(smol::lock::Semaphore::new(
                s.inbound.max_connections as usize,
            )),
            admission: net::smtp::Admission::new(
                net::smtp::MESSAGES_IN_FLIGHT,
                net::smtp::ADMISSION_WAIT,
            ),
            active: self.shared.active.clone(),
            per_client: self.shared.per_client.clone(),
            disk: app.disk.clone(),
        });
        Ok(Inbound {
            listener,
            addr,
            listen: s.inbound.listen.clone(),
            ctx,
            task: None,
        })
    }

    /// Puts the port-25 listener of `next` in force: a new generation (on the same socket when
    /// the address stays), or none when email is off. The replaced one is kept until
    /// [`Live::finish`] or [`Live::undo`]. Fails, changing nothing, when the new address cannot
    /// be bound or its certificate cannot be read.
    pub async fn swap_inbound(&mut self, next: &Settings) -> Result<(), String> {
        let new = if next.smtp.enabled {
            let listener = match &self.inbound {
                Some(cur) if cur.listen == next.inbound.listen => cur.listener.clone(),
                _ => Arc::new(net::bind("inbound.listen", &next.inbound.listen).await?),
            };
            Some(self.generation(listener, next)?)
        } else {
            None
        };
        let mut old = std::mem::replace(&mut self.inbound, new);
        // The new one accepts before the old one stops: on a shared socket the two overlap for
        // a moment instead of leaving a gap.
        if let Some(g) = self.inbound.as_mut() {
            g.accept(&self.ex, &self.shared, &self.app);
        }
        if let Some(g) = old.as_mut() {
            g.stop_accepting().await;
        }
        self.previous_inbound = Some(old);
        Ok(())
    }

    /// Puts the console's identity and listener of `next` in force, keeping what it replaced
    /// until the run ends.
    pub async fn swap_console(&mut self, next: &Settings) -> Result<(), String> {
        let tls = console_tls(&self.app, next)?;
        if next.console.listen == self.console.listen {
            let old = std::mem::replace(
                &mut *self
                    .console
                    .identity
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
                tls,
            );
            self.previous_console = Some(ConsoleUndo::Identity(old));
            return Ok(());
        }
        let listener = net::bind("console.listen", &next.console.listen).await?;
        let identity: net::https::Identity = Arc::new(std::sync::Mutex::new(tls));
        let new = Console::spawn(
            &self.app,
            &self.ex,
            listener,
            &next.console.listen,
            identity,
        )?;
        let old = std::mem::replace(&mut self.console, new);
        self.previous_console = Some(ConsoleUndo::Listener(old));
        Ok(())
    }

    /// The run succeeded: what was replaced goes (a console listener that moved, after a
    /// grace period, so the page that asked for the run sees it end).
    pub async fn finish(&mut self) {
        if let Some(Some(mut old)) = self.previous_inbound.take() {
            old.stop_accepting().await;
        }
        if let Some(ConsoleUndo::Listener(mut old)) = self.previous_console.take() {
            log::info!(
                "console: now on https://{}/; the old address {} closes in {} s",
                self.console.addr,
                old.addr,
                OLD_CONSOLE_GRACE.as_secs()
            );
            self.ex
                .spawn(async move {
                    smol::Timer::after(OLD_CONSOLE_GRACE).await;
                    old.stop().await;
                })
                .detach();
        }
    }

    /// A step failed: what the run changed is put back as it was. Names the steps whose
    /// change was undone (`inbound`, `console`).
    pub async fn undo(&mut self) -> Vec<&'static str> {
        let mut undone = Vec::new();
        if let Some(old) = self.previous_inbound.take() {
            undone.push("inbound");
            let mut new = std::mem::replace(&mut self.inbound, old);
            if let Some(g) = self.inbound.as_mut() {
                g.accept(&self.ex, &self.shared, &self.app);
            }
            if let Some(g) = new.as_mut() {
                g.stop_accepting().await;
            }
        }
        match self.previous_console.take() {
            Some(ConsoleUndo::Identity(old)) => {
                undone.push("console");
                *self
                    .console
                    .identity
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = old;
            }
            Some(ConsoleUndo::Listener(old)) => {
                undone.push("console");
                let mut new = std::mem::replace(&mut self.console, old);
                new.stop().await;
            }
            None => {}
        }
        undone
    }

    /// Sessions alive now, in every generation.
    pub fn active_sessions(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// Stops accepting everywhere (shutdown): the console and every generation.
    pub async fn stop_accepting(&mut self) {
        if let Some(g) = self.inbound.as_mut() {
            g.stop_accepting().await;
        }
        if let Some(Some(mut g)) = self.previous_inbound.take() {
            g.stop_accepting().await;
        }
        self.console.stop().await;
        if let Some(ConsoleUndo::Listener(mut old)) = self.previous_console.take() {
            old.stop().await;
        }
    }
}

impl Inbound {
    fn accept(&mut self, ex: &Arc<smol::Executor<'static>>, shared: &Shared, app: &App) {
        *app.inbound_addr.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.addr);
        if self.task.is_none() {
            self.task = Some(ex.spawn(net::smtp::serve(
                self.listener.clone(),
                self.ctx.clone(),
                ex.clone(),
                shared.stop.clone(),
            )));
        }
    }

    async fn stop_accepting(&mut self) {
        if let Some(t) = self.task.take() {
            t.cancel().await;
        }
    }
}

impl Console {
    fn spawn(
        app: &Arc<App>,
        ex: &Arc<smol::Executor<'static>>,
        listener: TcpListener,
        listen: &str,
        identity: net::https::Identity,
    ) -> Result<Console, String> {
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let task = ex.spawn(net::https::run(
            Arc::new(listener),
            identity.clone(),
            app.clone(),
            ex.clone(),
        ));
        Ok(Console {
            addr,
            listen: listen.to_string(),
            identity,
            task: Some(task),
        })
    }

    async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.cancel().await;
        }
    }
}
