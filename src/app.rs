//! The running service's shared state: the data directory, sled, the settings store. Handlers
//! get an `&App` and ask the store for what they need.

use crate::durable::Durable;
use crate::inbound::spool::Spool;
use crate::replies::token::ReplyKey;
use crate::settings::SettingsStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Files and folders inside the data directory.
pub mod paths {
    pub const DB: &str = "db";
    pub const LOCK: &str = "herald.lock";
    pub const CONTROL_SOCK: &str = "control.sock";
    pub const INITIAL_PASSWORD: &str = "initial-console-password";
    pub const LOGS: &str = "logs";
    pub const MAIL_LOG: &str = "logs/mail.log";
    /// Console events and every test email's SMTP conversation (SPEC §5).
    pub const UNICORN_LOG: &str = "logs/enterprise-manage-logs/unicorn.log";
    /// Each reply's processing, in the seed's format (SPEC §5).
    pub const METROPLEX_LOG: &str = "logs/mail-replies/metroplex.log";
    /// The reply record being read (`replies::reading`).
    pub const REPLIES_READING: &str = "replies.reading";
    /// Files being written for an answer (the support bundle), unlinked as soon as opened.
    pub const TMP: &str = "tmp";
}

pub struct App {
    pub data_dir: PathBuf,
    /// The data directory's free space: below its low water new mail and notifications wait.
    pub disk: Arc<crate::disk::Disk>,
    pub db: sled::Db,
    pub settings: SettingsStore,
    /// Group commit to disk, shared by the queues.
    pub durable: Arc<Durable>,
    /// The durable notification queue (outbound mail).
    pub queue: Arc<crate::outbound::queue::Queue>,
    /// Postfix-style mail.log, shared by inbound and outbound.
    pub maillog: Arc<crate::maillog::MailLog>,
    /// Console events and test emails' conversations.
    pub unicorn: crate::logfile::LogFile,
    /// The durable reply queue (inbound mail).
    pub spool: Arc<Spool>,
    /// The reply-address MAC key.
    pub reply_key: ReplyKey,
    pub started: Instant,
    /// Configuration runs: their records, and where a requested run is handed to the service.
    pub runs: crate::supervisor::runs::Runs,
    pub run_requests: smol::channel::Sender<u64>,
    pub auth: crate::console::auth::AuthCache,
    /// The console's signed-in sessions.
    pub sessions: crate::console::session::Sessions,
    /// The address the port-25 listener in force is bound to (`None` while email is off).
    pub inbound_addr: std::sync::Mutex<Option<std::net::SocketAddr>>,
    /// What the workers count, for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl App {
    pub fn path(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }
}
