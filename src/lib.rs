//! herald — the appliance's mail service.
//!
//! # Layout
//!
//! Data flows one way: bytes → protocol machine → policy → durable store → worker → the outside.
//!
//! - [`cli`]: the command line; `run` boots, everything else talks to [`control`].
//! - [`boot`]: checks the config file, takes the data directory, imports settings, makes the
//!   first-boot secrets.
//! - [`service`]: the running process: the live services (`service::live`), signals, drain, exit.
//! - [`supervisor`]: configuration runs: validate, swap, check, apply or put back.
//! - [`settings`]: the typed settings model, its one validator, the boot file, sled persistence.
//! - [`console`]: the HTTP router (manage API, application API, the console's pages).
//! - [`pool`]: threads for blocking work, which end when idle.
//! - [`segments`]: message bodies beside sled, in checksummed append-only files.
//! - [`smtp`]: SMTP without I/O: limits, replies, commands, the server and client state machines.
//! - [`net`]: smol adapters: TLS identity, the HTTPS front of the console, the port-25 listener.
//! - [`outbound`]: the messages herald sends, the smarthost session adapter, the test email.
//! - [`inbound`]: the recipient policy and the durable reply queue (sled, group commit).
//! - [`replies`]: reply addresses (mint and verify).
//! - [`maillog`]: Postfix-style `mail.log`; [`logfile`]: the one writer (and rotation) of every log.
//! - [`control`]: the CLI's client for `<data>/control.sock`.
//! - [`durable`]: group commit of sled writes, synced to disk before the caller hears `Ok`.
//! - [`pemfile`]: reading the PEM files settings name (regular files, bounded).
//! - [`disk`]: the data directory's free space, its low water and the boot reserve.
//! - [`crypto`]: random secrets, password hashing, digests, hex and base64.
//! - [`bounded`]: the sizes of what herald copies from peers into records and logs.
//! - [`clock`]: RFC 3339 and syslog time stamps.
//! - [`audit`]: who saved which settings, and when.
//! - [`app`]: the shared state handed to handlers.
//! - [`logging`]: `env_logger` set-up.
//! - [`retention`]: finished records removed after `retention.days`.
//! - [`wake`]: how the background workers wait between rounds.
//! - [`watch`]: watched threads (a dead worker is seen at once) and panics caught per unit of work.
//! - [`bundle`]: the support bundle, a tar.gz written as a stream.
//! - [`dns`]: a stub resolver for the diagnostics' DNS checks (simple-dns over smol UDP/TCP).
//! - [`diagnostics`]: the report of checks for when mail does not flow (console, CLI, bundle).
//! - [`metrics`]: counters and histograms in the Prometheus text format (`/metrics`).
//! - [`x509`]: what a certificate says (subject, issuer, names, expiry), read from its DER.
//! - [`failpoint`]: failures tests inject into a `--features failpoints` build.
//! - `fuzzing`: the fuzz targets' bodies (`fuzz/`), replayed over every kept input by a test.

#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
pub mod boot;
pub mod bounded;
pub mod bundle;
pub mod cli;
pub mod clock;
pub mod console;
pub mod control;
pub mod crypto;
pub mod diagnostics;
pub mod disk;
pub mod dns;
pub mod durable;
pub mod failpoint;
#[doc(hidden)]
pub mod fuzzing;
pub mod inbound;
pub mod journal;
pub mod logfile;
pub mod logging;
pub mod maillog;
pub mod metrics;
pub mod net;
pub mod outbound;
pub mod pemfile;
pub mod pool;
pub mod replies;
pub mod retention;
pub mod segments;
pub mod service;
pub mod settings;
pub mod smtp;
pub mod supervisor;
pub mod wake;
pub mod watch;
pub mod x509;

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
