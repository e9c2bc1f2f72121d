//! The one validator: typed parsing of each key ([`Settings::set`]), each key's rule, and the rules
//! that tie keys together ([`Settings::validate`]). Errors name the key and the rule.

use super::{Auth, Kind, Settings, SupportType, key_def};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A value as it comes in from a file, a JSON body or the command line, or goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

impl Value {
    /// The JSON form of a value.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Str(s) => serde_json::Value::String(s.clone()),
        }
    }

    /// Takes a JSON scalar; objects, arrays and null are not setting values.
    pub fn from_json(v: &serde_json::Value) -> Result<Value, String> {
        match v {
            serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .ok_or_else(|| "must be a whole number".to_string()),
            serde_json::Value::String(s) => Ok(Value::Str(s.clone())),
            serde_json::Value::Null => Err("must not be null".into()),
            _ => Err("must be a single value, not a list or an object".into()),
        }
    }
}

/// Errors by key, each message naming the key and the rule. Never empty when returned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Errors(pub BTreeMap<String, String>);

impl Errors {
    pub fn one(key: &str, message: impl Into<String>) -> Errors {
        let mut e = Errors::default();
        e.add(key, message);
        e
    }

    pub fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0
            .entry(key.to_string())
            .or_insert_with(|| message.into());
    }

    pub fn merge(&mut self, other: Errors) {
        for (k, v) in other.0 {
            self.0.entry(k).or_insert(v);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON body of a `400`: `{"errors":{"key":"message"}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "errors": self.0 })
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, msg)) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{key}: {msg}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// CR, LF and NUL can smuggle a second command or header; no value may carry them.
fn check_chars(s: &str) -> Result<(), String> {
    if s.contains(['\r', '\n', '\0']) {
        return Err("must not contain CR, LF or NUL characters".into());
    }
    Ok(())
}

fn rule_error(key: &str, detail: Option<&str>) -> String {
    let def = key_def(key).expect("known key");
    match detail {
        Some(d) => format!("{d}; must be {}", def.rule),
        None => format!("must be {}", def.rule),
    }
}

/// The longest `hostname` whose `reply.` and `noreply.` names are still DNS names (253 octets).
pub const HOSTNAME_MAX: usize = 253 - "noreply.".len();

/// A DNS host name: dot-separated labels of letters, digits and hyphens (RFC 1123 §2.1), at most
/// 253 octets, and a last label that is not all digits (RFC 3696 §2), so it is not an IPv4 address.
pub fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = s.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    labels.iter().all(label_ok) && !labels.last().unwrap().bytes().all(|b| b.is_ascii_digit())
}

/// An address `local@domain` with a dot-atom local part (RFC 5322 §3.4.1) and a host-name domain.
/// Quoted local parts are not accepted: nothing herald sends needs them.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    const ATEXT: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|a| {
            !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || ATEXT.contains(&b))
        });
    local_ok && is_host_name(domain)
}

/// An absolute `http://` or `https://` URL whose authority is a host name or IP address with an
/// optional port. Credentials in the URL (`user:pass@`) are refused: they would be a secret in a
/// setting that is shown.
pub fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    let Some(rest) = rest else {
        return false;
    };
    if s.contains(char::is_whitespace) {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let (host_ok, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((ip, rest)) => (ip.parse::<std::net::Ipv6Addr>().is_ok(), rest),
            None => return false,
        }
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, _)) => (h, &authority[h.len()..]),
            None => (authority, ""),
        };
        (
            is_host_name(host) || host.parse::<std::net::Ipv4Addr>().is_ok(),
            port,
        )
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

/// What a PEM file must hold.
#[derive(Clone, Copy)]
enum Pem {
    Certificates,
    PrivateKey,
}

/// An absolute path to a readable file holding at least one certificate, or a private key.
/// The error never quotes the file's content.
fn check_pem_path(key: &str, s: &str, want: Pem) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    if s.is_empty() {
        return Ok(());
    }
    if !s.starts_with('/') {
        return Err(rule_error(key, Some("not an absolute path")));
    }
    let bytes = crate::pemfile::read(s).map_err(|e| rule_error(key, Some(&e)))?;
    let ok = match want {
        Pem::Certificates => CertificateDer::pem_slice_iter(&bytes)
            .flatten()
            .next()
            .is_some(),
        Pem::PrivateKey => PrivateKeyDer::from_pem_slice(&bytes).is_ok(),
    };
    if !ok {
        let what = match want {
            Pem::Certificates => "no PEM certificate",
            Pem::PrivateKey => "no PEM private key",
        };
        return Err(rule_error(key, Some(&format!("{s} holds {what}"))));
    }
    Ok(())
}

/// The configured certificate and key must belong together (rustls checks the key against the
/// certificate's public key).
fn check_key_pair(cert: &str, key: &str) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(&crate::pemfile::read(cert)?)
        .map(|c| c.map(CertificateDer::into_owned))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("{cert} holds a malformed certificate"))?;
    let key_der = PrivateKeyDer::from_pem_slice(&crate::pemfile::read(key)?)
        .map_err(|_| format!("{key} holds no PEM private key"))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map(|_| ())
        .map_err(|e| format!("the key in {key} does not fit the certificate in {cert}: {e}"))
}

/// A listen address must be one of this machine's (or the wildcard), else the service could
/// not start on it: checked by binding a free port on that address.
fn check_local_address(key: &str, addr: &SocketAddr) -> Result<(), String> {
    if addr.ip().is_unspecified() {
        return Ok(());
    }
    std::net::TcpListener::bind((addr.ip(), 0))
        .map(|_| ())
        .map_err(|e| {
            rule_error(
                key,
                Some(&format!(
                    "{} is not an address of this machine ({e})",
                    addr.ip()
                )),
            )
        })
}

impl Settings {
    /// The current value of a key, unmasked. `console.password` yields its hash.
    pub fn get(&self, key: &str) -> Option<Value> {
        use Value::{Bool, Int, Str};
        let s = |v: &String| Str(v.clone());
        Some(match key {
            "hostname" => s(&self.hostname),
            "smtp.enabled" => Bool(self.smtp.enabled),
            "smtp.address" => s(&self.smtp.address),
            "smtp.port" => Int(self.smtp.port.into()),
            "smtp.domain" => s(&self.smtp.domain),
            "smtp.authentication" => Str(choice_name(&self.smtp.authentication)),
            "smtp.username" => s(&self.smtp.username),
            "smtp.password" => s(&self.smtp.password),
            "smtp.tls" => Str(choice_name(&self.smtp.tls)),
            "smtp.tls_verify" => Bool(self.smtp.tls_verify),
            "smtp.ca_file" => s(&self.smtp.ca_file),
            "smtp.noreply_address" => Str(self.noreply_address()),
            "smtp.discard_to_noreply" => Bool(self.smtp.discard_to_noreply),
            "smtp.support_type" => Str(choice_name(&self.smtp.support_type)),
            "smtp.support_address" => s(&self.smtp.support_address),
            "inbound.listen" => s(&self.inbound.listen),
            "inbound.tls_enforced" => Bool(self.inbound.tls_enforced),
            "inbound.cert_file" => s(&self.inbound.cert_file),
            "inbound.key_file" => s(&self.inbound.key_file),
            "inbound.max_message_size" => Int(self.inbound.max_message_size as i64),
            "inbound.max_connections" => Int(self.inbound.max_connections.into()),
            "replies.webhook_url" => s(&self.replies.webhook_url),
            "replies.webhook_secret" => s(&self.replies.webhook_secret),
            "replies.ca_file" => s(&self.replies.ca_file),
            "retention.days" => Int(self.retention.days.into()),
            "diagnostics.nameservers" => s(&self.diagnostics.nameservers),
            "logs.rotate_mb" => Int(self.logs.rotate_mb.into()),
            "logs.keep" => Int(self.logs.keep.into()),
            "api.token" => s(&self.api.token),
            "console.listen" => s(&self.console.listen),
            "console.password" => s(&self.console.password_hash),
            _ => return None,
        })
    }

    /// Sets one key from any way in, checking its type and its own rule. The rules that tie
    /// keys together are checked by [`Settings::validate`] once all keys of an update are set.
    /// The error is the message for that key (without the key's name).
    pub fn set(&mut self, key: &str, value: Value) -> Result<(), String> {
        let def = key_def(key).ok_or_else(|| "unknown setting".to_string())?;
        match def.kind {
            Kind::Bool => {
                let b = match &value {
                    Value::Bool(b) => *b,
                    Value::Str(s) if s == "true" => true,
                    Value::Str(s) if s == "false" => false,
                    other => return Err(format!("{:?} is not true or false", other.to_string())),
                };
                self.set_bool(key, b);
            }
            Kind::Int { min, max } => {
                let n = match &value {
                    Value::Int(i) => u64::try_from(*i).ok(),
                    Value::Str(s) => s.trim().parse::<u64>().ok(),
                    Value::Bool(_) => None,
                };
                match n {
                    Some(n) if (min..=max).contains(&n) => self.set_int(key, n),
                    _ => {
                        return Err(rule_error(
                            key,
                            Some(&format!("{:?} is out of range", value.to_string())),
                        ));
                    }
                }
            }
            Kind::Choice(names) => {
                let Value::Str(s) = &value else {
                    return Err(rule_error(key, None));
                };
                // GHES spells it cram_md5; accept both.
                let s = if s == "cram_md5" {
                    "cram-md5"
                } else {
                    s.as_str()
                };
                if !names.contains(&s) {
                    return Err(rule_error(key, Some(&format!("{s:?} is not a choice"))));
                }
                self.set_choice(key, s);
            }
            Kind::Text => {
                let Value::Str(s) = value else {
                    return Err(rule_error(key, Some("not a string")));
                };
                check_chars(&s)?;
                self.set_text(key, s)?;
            }
        }
        Ok(())
    }

    fn set_bool(&mut self, key: &str, b: bool) {
        *match key {
            "smtp.enabled" => &mut self.smtp.enabled,
            "smtp.tls_verify" => &mut self.smtp.tls_verify,
            "smtp.discard_to_noreply" => &mut self.smtp.discard_to_noreply,
            "inbound.tls_enforced" => &mut self.inbound.tls_enforced,
            _ => unreachable!("{key} is not a bool"),
        } = b;
    }

    fn set_int(&mut self, key: &str, n: u64) {
        // The ranges in KEYS fit the field types.
        match key {
            "smtp.port" => self.smtp.port = n as u16,
            "inbound.max_message_size" => self.inbound.max_message_size = n,
            "inbound.max_connections" => self.inbound.max_connections = n as u32,
            "retention.days" => self.retention.days = n as u32,
            "logs.rotate_mb" => self.logs.rotate_mb = n as u32,
            "logs.keep" => self.logs.keep = n as u32,
            _ => unreachable!("{key} is not an int"),
        }
    }

    fn set_choice(&mut self, key: &str, s: &str) {
        fn parse<T: serde::de::DeserializeOwned>(s: &str) -> T {
            serde_json::from_value(serde_json::Value::String(s.into())).expect("listed choice")
        }
        match key {
            "smtp.authentication" => self.smtp.authentication = parse(s),
            "smtp.tls" => self.smtp.tls = parse(s),
            "smtp.support_type" => self.smtp.support_type = parse(s),
            _ => unreachable!("{key} is not a choice"),
        }
    }

    fn set_text(&mut self, key: &str, s: String) -> Result<(), String> {
        let bad = |detail: &str| Err(rule_error(key, Some(detail)));
        match key {
            "hostname" => {
                if s.parse::<IpAddr>().is_ok() {
                    return bad(&format!("{s:?} is an IP address"));
                }
                if !is_host_name(&s) {
                    return bad(&format!("{s:?} is not a host name"));
                }
                let name = s.trim_end_matches('.');
                if !name.contains('.') && !name.eq_ignore_ascii_case("localhost") {
                    return bad(&format!("{s:?} is a single label (only localhost may be)"));
                }
                if name.len() > HOSTNAME_MAX {
                    return bad(&format!(
                        "{s:?} is longer than {HOSTNAME_MAX} octets, so reply.<hostname> would pass 253"
                    ));
                }
                self.hostname = s.trim_end_matches('.').to_ascii_lowercase();
            }
            "smtp.address" => {
                if !s.is_empty() && !is_host_name(&s) && s.parse::<IpAddr>().is_err() {
                    return bad(&format!("{s:?} is neither a host name nor an IP address"));
                }
                self.smtp.address = s;
            }
            "smtp.domain" => {
                if !s.is_empty() && !is_host_name(&s) {
                    return bad(&format!("{s:?} is not a host name"));
                }
                self.smtp.domain = s;
            }
            "smtp.username" => self.smtp.username = s,
            "smtp.password" => self.smtp.password = s,
            "smtp.ca_file" | "replies.ca_file" => {
                check_pem_path(key, &s, Pem::Certificates)?;
                if key == "smtp.ca_file" {
                    self.smtp.ca_file = s;
                } else {
                    self.replies.ca_file = s;
                }
            }
            "smtp.noreply_address" => {
                if !s.is_empty() && !is_email(&s) {
                    return bad(&format!("{s:?} is not an email address"));
                }
                self.smtp.noreply_address = s;
            }
            "smtp.support_address" => self.smtp.support_address = s,
            "inbound.listen" | "console.listen" => {
                let Ok(addr) = s.parse::<SocketAddr>() else {
                    return bad(&format!("{s:?} is not a socket address"));
                };
                check_local_address(key, &addr)?;
                if key == "inbound.listen" {
                    self.inbound.listen = s;
                } else {
                    self.console.listen = s;
                }
            }
            "inbound.cert_file" => {
                check_pem_path(key, &s, Pem::Certificates)?;
                self.inbound.cert_file = s;
            }
            "inbound.key_file" => {
                check_pem_path(key, &s, Pem::PrivateKey)?;
                self.inbound.key_file = s;
            }
            "diagnostics.nameservers" => {
                if let Err(e) = crate::dns::parse_servers(&s) {
                    return bad(&e);
                }
                self.diagnostics.nameservers = s;
            }
            "replies.webhook_url" => {
                if !s.is_empty() && !is_http_url(&s) {
                    return bad(&format!("{s:?} is not an http:// or https:// URL"));
                }
                self.replies.webhook_url = s;
            }
            "replies.webhook_secret" | "api.token" => {
                if s.chars().count() < 16 {
                    return bad("too short");
                }
                if key == "api.token" {
                    self.api.token = s;
                } else {
                    self.replies.webhook_secret = s;
                }
            }
            "console.password" => {
                if s.chars().count() < 8 {
                    return bad("too short");
                }
                self.console.password_hash = crate::crypto::hash_password(&s);
            }
            _ => unreachable!("{key} is not text"),
        }
        Ok(())
    }

    /// The rules that tie keys together, checked after every update and before every save.
    pub fn validate(&self) -> Result<(), Errors> {
        let mut e = Errors::default();
        if self.hostname.is_empty() {
            e.add("hostname", rule_error("hostname", Some("missing")));
        }
        if self.smtp.enabled && self.smtp.address.is_empty() {
            e.add(
                "smtp.address",
                "required when smtp.enabled is true; must be a host name or IP address",
            );
        }
        if self.smtp.authentication != Auth::None {
            let auth = choice_name(&self.smtp.authentication);
            if self.smtp.username.is_empty() {
                e.add(
                    "smtp.username",
                    format!("required because smtp.authentication is {auth}"),
                );
            }
            if self.smtp.password.is_empty() {
                e.add(
                    "smtp.password",
                    format!("required because smtp.authentication is {auth}"),
                );
            }
        }
        let support = &self.smtp.support_address;
        if !support.is_empty() {
            match self.smtp.support_type {
                SupportType::Url if !is_http_url(support) => e.add(
                    "smtp.support_address",
                    format!("{support:?} must be a URL starting with http:// or https:// because smtp.support_type is url"),
                ),
                SupportType::Email if !is_email(support) => e.add(
                    "smtp.support_address",
                    format!("{support:?} must be an email address because smtp.support_type is email"),
                ),
                _ => {}
            }
        }
        if !self.inbound.cert_file.is_empty()
            && !self.inbound.key_file.is_empty()
            && let Err(why) = check_key_pair(&self.inbound.cert_file, &self.inbound.key_file)
        {
            e.add("inbound.key_file", why);
        }
        if self.inbound.cert_file.is_empty() != self.inbound.key_file.is_empty() {
            let missing = if self.inbound.cert_file.is_empty() {
                "inbound.cert_file"
            } else {
                "inbound.key_file"
            };
            e.add(
                missing,
                "inbound.cert_file and inbound.key_file must be set together (or both left empty for the self-signed certificate)",
            );
        }
        if e.is_empty() { Ok(()) } else { Err(e) }
    }

    /// Sets several keys at once, then validates the whole document. All errors are collected;
    /// on any error `self` is left unchanged.
    pub fn update(&mut self, changes: &[(String, Value)]) -> Result<(), Errors> {
        let mut next = self.clone();
        let mut e = Errors::default();
        for (key, value) in changes {
            if let Err(msg) = next.set(key, value.clone()) {
                e.add(key, msg);
            }
        }
        // The rules between keys too, in the same pass, so one bad value does not hide the
        // others (a key already refused keeps its own message).
        if let Err(cross) = next.validate() {
            for (k, m) in cross.0 {
                if !e.0.contains_key(&k) {
                    e.add(&k, m);
                }
            }
        }
        if e.is_empty() {
            *self = next;
            Ok(())
        } else {
            Err(e)
        }
    }
}

/// The kebab-case name of a choice enum.
fn choice_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => unreachable!("choices serialize to strings"),
    }
}
