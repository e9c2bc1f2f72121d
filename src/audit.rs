//! The audit trail: who saved which settings, and who retried or dropped which notification,
//! and when, through any way in (the console, the manage API, the CLI over the control socket). Configuration runs keep their own record of who
//! asked for them (`supervisor::runs`); the console's Audit page shows both. Key names only,
//! never values: a secret's change is told, not shown. Kept in sled, the newest [`KEEP`].

use serde::{Deserialize, Serialize};

const TREE: &str = "audit";
/// Entries kept; older ones go as new ones come.
pub const KEEP: usize = 10_000;
/// How often (in entries) the count is looked at: counting walks the tree.
const TRIM_EVERY: u64 = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at: String,
    /// The way in and, over the network, the client's address.
    pub who: String,
    pub what: String,
}

/// Records that `who` did `what`. A failure to record is logged, never an error of the change.
pub fn record(db: &sled::Db, who: &str, what: &str) {
    let entry = Entry {
        at: crate::clock::rfc3339(std::time::SystemTime::now()),
        who: crate::bounded::bounded(who, crate::bounded::FIELD_MAX),
        what: crate::bounded::bounded(what, crate::bounded::FIELD_MAX),
    };
    let kept = db.open_tree(TREE).and_then(|t| {
        let id = db.generate_id()?;
        t.insert(
            id.to_be_bytes(),
            serde_json::to_vec(&entry).expect("serializes"),
        )?;
        if id % TRIM_EVERY == 0 {
            let extra = t.len().saturating_sub(KEEP);
            for k in t.iter().keys().take(extra).flatten() {
                t.remove(k)?;
            }
        }
        Ok(())
    });
    if let Err(e) = kept {
        log::warn!("could not record in the audit trail that {who} {what}: {e}");
    }
}

/// The newest entries first, at most `limit`.
pub fn list(db: &sled::Db, limit: usize) -> Vec<Entry> {
    let Ok(t) = db.open_tree(TREE) else {
        return Vec::new();
    };
    t.iter()
        .values()
        .rev()
        .flatten()
        .filter_map(|v| serde_json::from_slice(&v).ok())
        .take(limit)
        .collect()
}

/// The words for a settings save: its version and the keys it changed.
pub fn saved(version: u64, keys: &[&str]) -> String {
    if keys.is_empty() {
        format!("saved settings version {version} (no change)")
    } else {
        format!("saved settings version {version}: {}", keys.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_newest_first_and_name_keys_only() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        record(&db, "console from 192.0.2.7", &saved(3, &["smtp.password"]));
        record(&db, "control socket (CLI)", &saved(4, &["smtp.domain"]));
        let got = list(&db, 10);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].who, "control socket (CLI)");
        assert_eq!(got[0].what, "saved settings version 4: smtp.domain");
        assert_eq!(got[1].what, "saved settings version 3: smtp.password");
        assert_eq!(list(&db, 1).len(), 1);
    }
}
