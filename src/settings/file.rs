//! The boot config file: TOML whose tables are the dotted keys of [`super::KEYS`]. Parsing
//! flattens it to `(key, value, line)` and runs every value through the one validator, so a bad
//! file is refused with the key, the rule and the line, before anything is written.

use super::{Profile, Settings, Value, key_def};
use std::fmt;

/// Why a boot file was refused.
#[derive(Debug)]
pub enum ImportError {
    /// The file could not be read.
    Read(String),
    /// Not TOML; the message has toml's line and column.
    Syntax(String),
    /// One or more keys broke a rule: (line, key, message).
    Invalid(Vec<(Option<usize>, String, String)>),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Read(m) | ImportError::Syntax(m) => f.write_str(m),
            ImportError::Invalid(list) => {
                for (i, (line, key, msg)) in list.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    match line {
                        Some(l) => write!(f, "line {l}: {key}: {msg}")?,
                        None => write!(f, "{key}: {msg}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// A parsed, validated boot file: the values it sets, in file order.
#[derive(Debug)]
pub struct BootFile {
    pub changes: Vec<(String, Value)>,
    /// The SHA-256 of the file's bytes, to tell a changed file from an unchanged one.
    pub digest: String,
}

/// Reads and checks a boot file against the board defaults. `base` supplies what the file does
/// not (generated secrets, the console password hash).
pub fn parse_file(text: &str, base: &Settings) -> Result<(BootFile, Settings), ImportError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // toml's Display quotes the offending line, which may hold a secret: say where, not what.
        let at = e.span().map(|s| line_col(text, s.start));
        ImportError::Syntax(match at {
            Some((l, c)) => format!("not valid TOML at line {l}, column {c}: {}", e.message()),
            None => format!("not valid TOML: {}", e.message()),
        })
    })?;
    let mut flat = Vec::new();
    let mut unknown = Vec::new();
    flatten("", &table, &mut flat, &mut unknown);
    let mut problems: Vec<(Option<usize>, String, String)> = unknown
        .into_iter()
        .map(|k| {
            let line = find_line(text, &k);
            (line, k, "unknown setting".to_string())
        })
        .collect();
    let mut changes = Vec::new();
    for (key, value) in flat {
        match value {
            Ok(v) => changes.push((key, v)),
            Err(msg) => problems.push((find_line(text, &key), key, msg)),
        }
    }
    // A file describes the whole document: start from the board defaults, keep only what was
    // generated at first boot, then apply the file. Run the validator even when some keys were
    // already refused, so one pass reports every problem.
    let mut settings = Settings::defaults(Profile::Board);
    settings.replies.webhook_secret = base.replies.webhook_secret.clone();
    settings.api.token = base.api.token.clone();
    settings.console.password_hash = base.console.password_hash.clone();
    if let Err(errors) = settings.update(&changes) {
        for (key, msg) in errors.0 {
            if !problems.iter().any(|(_, k, _)| *k == key) {
                problems.push((find_line(text, &key), key, msg));
            }
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|(line, _, _)| line.unwrap_or(usize::MAX));
        return Err(ImportError::Invalid(problems));
    }
    let digest = crate::crypto::sha256_hex(text.as_bytes());
    Ok((BootFile { changes, digest }, settings))
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Turns nested tables into dotted keys; keys not in the table of settings are collected apart.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut Vec<(String, Result<Value, String>)>,
    unknown: &mut Vec<String>,
) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out, unknown),
            _ if key_def(&key).is_none() => unknown.push(key),
            toml::Value::String(s) => out.push((key, Ok(Value::Str(s.clone())))),
            toml::Value::Integer(i) => out.push((key, Ok(Value::Int(*i)))),
            toml::Value::Boolean(b) => out.push((key, Ok(Value::Bool(*b)))),
            _ => out.push((
                key,
                Err("must be a string, a whole number or true/false".into()),
            )),
        }
    }
}

/// The 1-based line on which a dotted key is set, following `[table]` headers and dotted keys.
/// Good enough for the files people write; `None` when the key is not written out.
fn find_line(text: &str, dotted: &str) -> Option<usize> {
    let unquote = |s: &str| s.trim().trim_matches('"').trim_matches('\'').to_string();
    let mut table = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix('[') {
            let h = h.split(']').next().unwrap_or("");
            table = h.split('.').map(unquote).collect::<Vec<_>>().join(".");
            continue;
        }
        let Some((lhs, _)) = line.split_once('=') else {
            continue;
        };
        if line.starts_with('#') {
            continue;
        }
        let key: Vec<String> = lhs.split('.').map(unquote).collect();
        let full = if table.is_empty() {
            key.join(".")
        } else {
            format!("{table}.{}", key.join("."))
        };
        if full == dotted {
            return Some(i + 1);
        }
    }
    None
}
