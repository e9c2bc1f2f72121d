//! The settings model: one typed document, the table of keys that describes it, and masking.
//!
//! Every way in (boot file, manage API, CLI) turns its input into [`Value`]s and goes through
//! [`Settings::set`] and then [`Settings::validate`] (in `validate.rs`); nothing else writes a
//! field. [`KEYS`] is the single list of keys: the README's config reference is generated from it
//! and a unit test checks that every entry round-trips through `get`/`set`.

mod file;
pub mod store;
mod validate;

pub use file::{ImportError, parse_file};
pub use store::{SettingsStore, Stored};
pub use validate::{Errors, Value, is_email, is_host_name};

use serde::{Deserialize, Serialize};

/// What a masked secret looks like in every output.
pub const MASK: &str = "********";

/// `smtp.authentication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    None,
    Plain,
    Login,
    CramMd5,
}

/// `smtp.tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    StarttlsAuto,
    StarttlsRequired,
    Implicit,
    Off,
}

/// `smtp.support_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SupportType {
    Email,
    Url,
}

/// The outbound (and "Enable email") part of the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Smtp {
    pub enabled: bool,
    pub address: String,
    pub port: u16,
    pub domain: String,
    pub authentication: Auth,
    pub username: String,
    pub password: String,
    pub tls: TlsMode,
    pub tls_verify: bool,
    pub ca_file: String,
    /// Empty means `noreply@<hostname>`; see [`Settings::noreply_address`].
    pub noreply_address: String,
    pub discard_to_noreply: bool,
    pub support_type: SupportType,
    pub support_address: String,
}

/// The port-25 server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    pub listen: String,
    pub tls_enforced: bool,
    pub cert_file: String,
    pub key_file: String,
    pub max_message_size: u64,
    pub max_connections: u32,
}

/// Where processed replies go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replies {
    pub webhook_url: String,
    pub webhook_secret: String,
    /// Extra PEM roots for the webhook's server (an internal CA).
    #[serde(default)]
    pub ca_file: String,
}

/// How long finished records are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { days: 30 }
    }
}

/// How the logs rotate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// A log is rotated once it passes this many MiB.
    pub rotate_mb: u32,
    /// Rotated files kept of each log.
    pub keep: u32,
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            rotate_mb: 64,
            keep: 3,
        }
    }
}

/// What the diagnostics ask.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// The DNS servers the checks ask (`ip` or `ip:port`, comma-separated); empty: those of
    /// `/etc/resolv.conf`.
    pub nameservers: String,
}

/// The application API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Api {
    pub token: String,
}

/// The web console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Console {
    pub listen: String,
    /// A salted slow hash (see `crate::crypto::hash_password`), never the password itself.
    pub password_hash: String,
}

/// The whole settings document, as stored in sled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub hostname: String,
    pub smtp: Smtp,
    pub inbound: Inbound,
    pub replies: Replies,
    /// Documents stored before the key existed read as the default.
    #[serde(default)]
    pub retention: Retention,
    /// Documents stored before the key existed read as the default.
    #[serde(default)]
    pub diagnostics: Diagnostics,
    /// Documents stored before the key existed read as the default.
    #[serde(default)]
    pub logs: Logs,
    pub api: Api,
    pub console: Console,
}

/// Which set of built-in defaults applies: the appliance's (a boot file is given) or the
/// developer's (`herald run` with no `--config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Board,
    Dev,
}

/// The type of a key, which decides how text input is parsed and which rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int { min: u64, max: u64 },
    Choice(&'static [&'static str]),
    Text,
}

/// One row of the settings table (SPEC §1).
#[derive(Debug)]
pub struct KeyDef {
    pub key: &'static str,
    pub kind: Kind,
    /// The default as shown in the reference; board and dev differ for a few keys.
    pub default: &'static str,
    pub dev_default: Option<&'static str>,
    /// Write-only: never shown, logged or bundled.
    pub secret: bool,
    /// The rule, in the words an error message and the README use.
    pub rule: &'static str,
}

const fn key(key: &'static str, kind: Kind, default: &'static str, rule: &'static str) -> KeyDef {
    KeyDef {
        key,
        kind,
        default,
        dev_default: None,
        secret: false,
        rule,
    }
}

const fn secret(key: &'static str, default: &'static str, rule: &'static str) -> KeyDef {
    KeyDef {
        key,
        kind: Kind::Text,
        default,
        dev_default: None,
        secret: true,
        rule,
    }
}

const fn dev(mut def: KeyDef, dev_default: &'static str) -> KeyDef {
    def.dev_default = Some(dev_default);
    def
}

/// Rules shared by several keys, worded once.
pub const RULE_SOCKET: &str =
    "a socket address such as 0.0.0.0:25 or [::]:8443 (port 0 picks a free port)";
const RULE_PATH: &str = "empty, or the absolute path of a readable PEM file";
const RULE_TOKEN: &str = "at least 16 characters";

/// Every key of the settings document, in the order of the console form (the seed's order).
pub const KEYS: &[KeyDef] = &[
    dev(
        key(
            "hostname",
            Kind::Text,
            "(required)",
            "a fully qualified host name, not an IP address; replies go to reply.<hostname>",
        ),
        "localhost",
    ),
    key(
        "smtp.enabled",
        Kind::Bool,
        "false",
        "true or false; turns on outbound and inbound email",
    ),
    key(
        "smtp.address",
        Kind::Text,
        "",
        "a host name or IP address; required when smtp.enabled is true",
    ),
    key(
        "smtp.port",
        Kind::Int { min: 1, max: 65535 },
        "587",
        "a whole number from 1 to 65535",
    ),
    key(
        "smtp.domain",
        Kind::Text,
        "",
        "empty (use hostname) or a host name sent in EHLO/HELO",
    ),
    key(
        "smtp.authentication",
        Kind::Choice(&["none", "plain", "login", "cram-md5"]),
        "none",
        "one of none, plain, login, cram-md5; anything but none needs smtp.username and smtp.password",
    ),
    key(
        "smtp.username",
        Kind::Text,
        "",
        "required unless smtp.authentication is none",
    ),
    secret(
        "smtp.password",
        "",
        "required unless smtp.authentication is none; write-only",
    ),
    key(
        "smtp.tls",
        Kind::Choice(&["starttls-auto", "starttls-required", "implicit", "off"]),
        "starttls-auto",
        "one of starttls-auto, starttls-required, implicit (TLS from the first byte), off",
    ),
    key(
        "smtp.tls_verify",
        Kind::Bool,
        "true",
        "true or false; verify the smarthost's certificate and name",
    ),
    key("smtp.ca_file", Kind::Text, "", RULE_PATH),
    key(
        "smtp.noreply_address",
        Kind::Text,
        "noreply@<hostname>",
        "an email address (local@domain); From and To of every notification",
    ),
    key(
        "smtp.discard_to_noreply",
        Kind::Bool,
        "true",
        "true or false; mail to the no-reply address is accepted and dropped",
    ),
    key(
        "smtp.support_type",
        Kind::Choice(&["email", "url"]),
        "url",
        "one of email, url",
    ),
    key(
        "smtp.support_address",
        Kind::Text,
        "",
        "empty, an email address (support_type email) or a URL starting with http:// or https:// (support_type url)",
    ),
    dev(
        key("inbound.listen", Kind::Text, "0.0.0.0:25", RULE_SOCKET),
        "127.0.0.1:2525",
    ),
    key(
        "inbound.tls_enforced",
        Kind::Bool,
        "false",
        "true or false; every inbound session must STARTTLS before MAIL",
    ),
    key(
        "inbound.cert_file",
        Kind::Text,
        "",
        "empty (self-signed, made at first boot) or the absolute path of a readable PEM certificate chain; set together with inbound.key_file",
    ),
    key(
        "inbound.key_file",
        Kind::Text,
        "",
        "empty or the absolute path of a readable PEM private key; set together with inbound.cert_file",
    ),
    key(
        "inbound.max_message_size",
        Kind::Int {
            min: 1024,
            max: 256 << 20,
        },
        "26214400",
        "a whole number of bytes from 1024 to 268435456 (256 MiB; a message is held in memory while it arrives)",
    ),
    key(
        "inbound.max_connections",
        Kind::Int { min: 1, max: 65535 },
        "256",
        "a whole number from 1 to 65535",
    ),
    key(
        "replies.webhook_url",
        Kind::Text,
        "",
        "empty or a URL starting with http:// or https://",
    ),
    secret("replies.webhook_secret", "(made at first boot)", RULE_TOKEN),
    key(
        "replies.ca_file",
        Kind::Text,
        "",
        "empty, or the absolute path of a readable PEM file of CA certificates that the webhook's server certificate may chain to, besides the system's roots",
    ),
    key(
        "retention.days",
        Kind::Int { min: 1, max: 3650 },
        "30",
        "a whole number of days from 1 to 3650; replies and notifications that have finished (processed, discarded, sent, failed) are removed this long after they arrived",
    ),
    key(
        "logs.rotate_mb",
        Kind::Int { min: 1, max: 4096 },
        "64",
        "a whole number of MiB from 1 to 4096: mail.log, metroplex.log and unicorn.log are each rotated once they pass it",
    ),
    key(
        "logs.keep",
        Kind::Int { min: 0, max: 100 },
        "3",
        "a whole number from 0 to 100: how many rotated files of each log are kept (x.log.1 the newest); the logs then take at most (keep + 1) × logs.rotate_mb each",
    ),
    key(
        "diagnostics.nameservers",
        Kind::Text,
        "",
        "empty (the servers of /etc/resolv.conf), or the DNS servers the diagnostics' DNS checks ask, as IP addresses with an optional port, separated by commas (1.1.1.1, [2606:4700:4700::1111]:53): a public resolver shows what sending servers see",
    ),
    secret("api.token", "(made at first boot)", RULE_TOKEN),
    dev(
        key("console.listen", Kind::Text, "0.0.0.0:8443", RULE_SOCKET),
        "127.0.0.1:8443",
    ),
    secret(
        "console.password",
        "(made at first boot)",
        "at least 8 characters; stored only as a salted slow hash",
    ),
];

/// The README's config reference: a Markdown table made from [`KEYS`], so it cannot drift.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "| key | type | default (board) | default (dev) | rule |\n|---|---|---|---|---|\n",
    );
    for d in KEYS {
        let kind = match d.kind {
            Kind::Bool => "bool".to_string(),
            Kind::Int { .. } => "integer".to_string(),
            Kind::Choice(c) => c.join(" \\| "),
            Kind::Text if d.secret => "secret string".to_string(),
            Kind::Text => "string".to_string(),
        };
        let show = |v: &str| {
            if v.is_empty() {
                "`\"\"`".to_string()
            } else if v.starts_with('(') {
                v.to_string()
            } else {
                format!("`{v}`")
            }
        };
        let dev = match (d.key, d.dev_default) {
            (_, Some(v)) => show(v),
            _ => "same".to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            d.key,
            kind,
            show(d.default),
            dev,
            d.rule
                .replace('|', "\\|")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        ));
    }
    out
}

/// Looks a key up in [`KEYS`].
pub fn key_def(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.key == name)
}

impl Settings {
    /// The built-in defaults of a profile. Generated secrets are empty here: the boot fills them.
    pub fn defaults(profile: Profile) -> Settings {
        let mut s = Settings {
            hostname: String::new(),
            smtp: Smtp {
                enabled: false,
                address: String::new(),
                port: 587,
                domain: String::new(),
                authentication: Auth::None,
                username: String::new(),
                password: String::new(),
                tls: TlsMode::StarttlsAuto,
                tls_verify: true,
                ca_file: String::new(),
                noreply_address: String::new(),
                discard_to_noreply: true,
                support_type: SupportType::Url,
                support_address: String::new(),
            },
            inbound: Inbound {
                listen: "0.0.0.0:25".into(),
                tls_enforced: false,
                cert_file: String::new(),
                key_file: String::new(),
                max_message_size: 26_214_400,
                max_connections: 256,
            },
            replies: Replies {
                webhook_url: String::new(),
                webhook_secret: String::new(),
                ca_file: String::new(),
            },
            retention: Retention::default(),
            diagnostics: Diagnostics::default(),
            logs: Logs::default(),
            api: Api {
                token: String::new(),
            },
            console: Console {
                listen: "0.0.0.0:8443".into(),
                password_hash: String::new(),
            },
        };
        if profile == Profile::Dev {
            for def in KEYS {
                if let Some(d) = def.dev_default {
                    s.set(def.key, Value::Str(d.into()))
                        .expect("dev defaults are valid");
                }
            }
        }
        s
    }

    /// `smtp.noreply_address`, with its default filled in.
    pub fn noreply_address(&self) -> String {
        if self.smtp.noreply_address.is_empty() {
            format!("noreply@{}", self.hostname)
        } else {
            self.smtp.noreply_address.clone()
        }
    }

    /// The domain replies are addressed to.
    pub fn reply_domain(&self) -> String {
        format!("reply.{}", self.hostname)
    }

    /// The name herald gives itself in EHLO.
    pub fn ehlo_domain(&self) -> &str {
        if self.smtp.domain.is_empty() {
            &self.hostname
        } else {
            &self.smtp.domain
        }
    }

    /// The value of one key as it is shown: secrets masked (an unset secret shows as empty).
    pub fn get_masked(&self, key: &str) -> Option<Value> {
        let def = key_def(key)?;
        let v = self.get(key)?;
        if def.secret {
            let set = !matches!(&v, Value::Str(s) if s.is_empty());
            return Some(Value::Str(if set { MASK.into() } else { String::new() }));
        }
        Some(v)
    }

    /// Every key with its shown (masked) value, in [`KEYS`] order.
    pub fn masked_pairs(&self) -> Vec<(&'static str, Value)> {
        KEYS.iter()
            .map(|d| {
                (
                    d.key,
                    self.get_masked(d.key).expect("every key has a value"),
                )
            })
            .collect()
    }

    /// The keys whose values differ between two documents, in [`KEYS`] order.
    pub fn changed_keys(&self, other: &Settings) -> Vec<&'static str> {
        KEYS.iter()
            .filter(|d| self.get(d.key) != other.get(d.key))
            .map(|d| d.key)
            .collect()
    }
}

#[cfg(test)]
mod tests;
