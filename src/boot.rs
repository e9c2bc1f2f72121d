//! Boot: check the config file before touching anything, take the data directory (owner-only,
//! one service at a time), open sled, import the file when it is new or changed, make the
//! first-boot secrets once, and apply pending settings.

use crate::app::{App, paths};
use crate::crypto;
use crate::settings::{ImportError, Profile, Settings, SettingsStore, parse_file};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// sled's page cache. Its default (1 GiB) would let the cache grow with every message kept;
/// herald reads little back, so a small cache keeps the footprint flat.
const SLED_CACHE: u64 = 1 << 20;

/// sled's log segment. sled writes anything larger than about a quarter of a segment (a
/// consolidated tree page full of messages, or one large message) as a separate blob file; the
/// default 512 KiB made that happen all the time with queued messages. 8 MiB keeps pages in the
/// log and leaves blobs to messages over about 2 MiB.
const SLED_SEGMENT: usize = 2 << 20;

/// Free space a boot needs: sled's recovery writes up to a segment, the lock file a page.
const BOOT_ROOM: u64 = 2 * SLED_SEGMENT as u64 + (1 << 20);

/// Why the service did not start; each carries the whole message for the administrator.
#[derive(Debug)]
pub enum BootError {
    /// The config file is unreadable or breaks a rule (exit 78, EX_CONFIG).
    Config(String),
    /// Another herald holds the data directory.
    AlreadyRunning(String),
    /// Anything else: the disk, sled, a socket.
    Other(String),
}

impl std::fmt::Display for BootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootError::Config(m) | BootError::AlreadyRunning(m) | BootError::Other(m) => {
                f.write_str(m)
            }
        }
    }
}

/// A booted service: the shared state and the lock that keeps others out while it lives.
pub struct Booted {
    pub app: Arc<App>,
    pub profile: Profile,
    /// Where the service takes the runs asked for (`App::run_requests` sends them).
    pub run_requests: smol::channel::Receiver<u64>,
    _lock: File,
}

/// A config file, read and checked, not yet imported.
struct ConfigFile {
    path: PathBuf,
    text: String,
}

fn read_config(path: &Path) -> Result<ConfigFile, BootError> {
    let text = fs::read_to_string(path).map_err(|e| {
        BootError::Config(format!("cannot read config file {}: {e}", path.display()))
    })?;
    // Check it against the board defaults now, so a bad file never touches the data directory.
    parse_file(&text, &Settings::defaults(Profile::Board)).map_err(|e| config_error(path, &e))?;
    Ok(ConfigFile {
        path: path.to_path_buf(),
        text,
    })
}

fn config_error(path: &Path, e: &ImportError) -> BootError {
    let body = e.to_string().replace('\n', "\n  ");
    BootError::Config(format!("bad config file {}:\n  {body}", path.display()))
}

/// Boots from an optional config file into a data directory.
pub fn boot(config: Option<&Path>, data_dir: &Path) -> Result<Booted, BootError> {
    let file = config.map(read_config).transpose()?;
    let profile = if file.is_some() {
        Profile::Board
    } else {
        Profile::Dev
    };

    let other = |what: &str, e: &dyn std::fmt::Display| BootError::Other(format!("{what}: {e}"));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| {
            other(
                &format!("cannot create data directory {}", data_dir.display()),
                &e,
            )
        })?;
    // Owner-only even when the directory was made by someone else: sled's files hold secrets.
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
        other(
            &format!("cannot make {} owner-only", data_dir.display()),
            &e,
        )
    })?;
    // On a full disk even the lock's pid cannot be written, nor can sled recover (it zeroes
    // the rest of its last segment): give back the reserve kept for this moment, and say so.
    if crate::disk::Disk::free_bytes(data_dir).is_ok_and(|f| f < BOOT_ROOM)
        && crate::disk::release_reserve(data_dir)
    {
        log::error!(
            "the disk of {} is full: gave back herald's {} MiB reserve to start; free space, new mail is refused until then",
            data_dir.display(),
            crate::disk::RESERVE >> 20
        );
    }
    let lock = take_lock(data_dir)?;
    let data_dir = data_dir
        .canonicalize()
        .map_err(|e| other("data directory", &e))?;
    let db = sled::Config::new()
        .path(data_dir.join(paths::DB))
        .cache_capacity(SLED_CACHE)
        .segment_size(SLED_SEGMENT)
        .open()
        .map_err(|e| {
            let hint = if crate::disk::is_full(&e) {
                " (the disk is full: free some space and start herald again)"
            } else {
                ""
            };
            other("cannot open the database", &format!("{e}{hint}"))
        })?;
    let store = SettingsStore::open(&db).map_err(|e| other("settings", &e))?;

    import(&store, file.as_ref(), profile, &data_dir)?;
    let applied = store
        .apply_pending()
        .map_err(|e| other("settings", &e))?
        .expect("settings exist after import");
    log::info!("settings version {} in force", applied.version);
    crate::logfile::configure(&applied.settings);
    let reply_key = crate::replies::token::ReplyKey::load_or_create(&db)
        .map_err(|e| other("reply-address key", &e))?;
    let sled_dir = data_dir.join(paths::DB);
    let on_disk = crate::durable::OnDisk {
        sled_dir: &sled_dir,
        journal_dir: &data_dir,
    };
    let durable =
        crate::durable::Durable::open(&db, Some(on_disk)).map_err(|e| other("store", &e))?;
    let spool = crate::inbound::spool::Spool::open(&db, durable.clone())
        .map_err(|e| other("reply queue", &e))?;
    let queue = crate::outbound::queue::Queue::open(&db, durable.clone())
        .map_err(|e| other("notification queue", &e))?;
    // The logs' own folder, narrowed too if an older herald made it wider (each log narrows
    // the folder it is in).
    let logs = data_dir.join(paths::LOGS);
    if let Err(e) = fs::DirBuilder::new()
        .mode(crate::logfile::DIR_MODE)
        .create(&logs)
        .or_else(|e| if logs.is_dir() { Ok(()) } else { Err(e) })
        .and_then(|()| {
            fs::set_permissions(&logs, fs::Permissions::from_mode(crate::logfile::DIR_MODE))
        })
    {
        log::warn!("cannot make {} owner-and-group only: {e}", logs.display());
    }
    let maillog = crate::maillog::MailLog::open(
        &data_dir.join(paths::MAIL_LOG),
        &applied.settings.hostname,
        crate::logfile::Rotating::Configured,
    );
    let unicorn = crate::logfile::LogFile::open(
        &data_dir.join(paths::UNICORN_LOG),
        crate::logfile::Rotating::Configured,
    );

    let disk = Arc::new(crate::disk::Disk::new(&data_dir));
    let runs = crate::supervisor::runs::Runs::open(&db).map_err(|e| other("runs", &e))?;
    let (run_requests, requested) = smol::channel::bounded(4);
    Ok(Booted {
        run_requests: requested,
        app: Arc::new(App {
            runs,
            run_requests,
            disk,
            data_dir,
            db,
            settings: store,
            durable,
            queue,
            maillog: Arc::new(maillog),
            unicorn,
            spool,
            reply_key,
            started: Instant::now(),
            auth: Default::default(),
            sessions: Default::default(),
            metrics: Default::default(),
            inbound_addr: Default::default(),
        }),
        profile,
        _lock: lock,
    })
}

/// One service per data directory: an exclusive lock on `herald.lock`, held while running.
fn take_lock(data_dir: &Path) -> Result<File, BootError> {
    let path = data_dir.join(paths::LOCK);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| BootError::Other(format!("cannot open {}: {e}", path.display())))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let pid = fs::read_to_string(&path).unwrap_or_default();
            return Err(BootError::AlreadyRunning(format!(
                "herald is already running on data directory {} (pid {}); stop it first",
                data_dir.display(),
                pid.trim()
            )));
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(BootError::Other(format!(
                "cannot lock {}: {e}",
                path.display()
            )));
        }
    }
    f.set_len(0)
        .and_then(|_| writeln!(f, "{}", std::process::id()))
        .map_err(|e| BootError::Other(format!("cannot write {}: {e}", path.display())))?;
    Ok(f)
}

/// First boot: defaults (or the file) plus generated secrets. Later boots: the file again only
/// if its content changed; otherwise what was saved stands.
fn import(
    store: &SettingsStore,
    file: Option<&ConfigFile>,
    profile: Profile,
    data_dir: &Path,
) -> Result<(), BootError> {
    let other = |e: &dyn std::fmt::Display| BootError::Other(format!("settings: {e}"));
    let existing = store.latest().map_err(|e| other(&e))?;
    let digest = file.map(|f| crypto::sha256_hex(f.text.as_bytes()));
    let first_boot = existing.is_none();
    let base = existing
        .map(|s| s.settings)
        .unwrap_or_else(|| Settings::defaults(profile));

    let mut next = match (file, &digest) {
        (Some(f), Some(d))
            if store.import_digest().map_err(|e| other(&e))?.as_deref() != Some(d) =>
        {
            let (_, settings) =
                parse_file(&f.text, &base).map_err(|e| config_error(&f.path, &e))?;
            log::info!(
                "{} config file {}",
                if first_boot {
                    "importing"
                } else {
                    "config file changed: re-importing"
                },
                f.path.display()
            );
            Some(settings)
        }
        (Some(f), _) => {
            log::info!(
                "config file {} unchanged since its last import: saved settings stand",
                f.path.display()
            );
            None
        }
        (None, _) if first_boot => Some(base.clone()),
        (None, _) => None,
    };

    if let Some(s) = next.as_mut() {
        fill_generated(s, data_dir)?;
        store.save_pending(s.clone()).map_err(|e| other(&e))?;
        if let Some(d) = &digest {
            store.set_import_digest(d).map_err(|e| other(&e))?;
        }
    }
    Ok(())
}

/// Makes, once, what the first boot makes: the webhook secret, the API token and the console
/// password (hashed; the clear one written once to `initial-console-password`, mode 0600).
fn fill_generated(s: &mut Settings, data_dir: &Path) -> Result<(), BootError> {
    if s.replies.webhook_secret.is_empty() {
        s.replies.webhook_secret = crypto::random_token();
    }
    if s.api.token.is_empty() {
        s.api.token = crypto::random_token();
    }
    if s.console.password_hash.is_empty() {
        let password = crypto::random_password();
        let path = data_dir.join(paths::INITIAL_PASSWORD);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| BootError::Other(format!("cannot write {}: {e}", path.display())))?;
        // The mode of an existing file is not changed by open(): make sure.
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .and_then(|_| writeln!(f, "{password}"))
            .and_then(|_| f.sync_all())
            .map_err(|e| BootError::Other(format!("cannot write {}: {e}", path.display())))?;
        s.console.password_hash = crypto::hash_password(&password);
        log::info!(
            "made the console password; it is in {} (user api_key for the manage API)",
            path.display()
        );
    }
    Ok(())
}
