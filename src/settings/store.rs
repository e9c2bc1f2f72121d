//! Settings in sled: an *applied* and a *pending* document, each with the version number it was
//! saved under, and the digest of the last imported boot file. Every save goes through
//! [`Settings::update`], so nothing invalid is ever stored.

use super::{Errors, Settings, Value};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

const TREE: &str = "settings";
const APPLIED: &[u8] = b"applied";
const PENDING: &[u8] = b"pending";
const IMPORT_DIGEST: &[u8] = b"import_digest";

/// Keys in force as soon as they are saved: no listener or worker holds them, and waiting for a
/// run to change the console password would leave the old one working.
pub const IMMEDIATE: &[&str] = &["console.password", "api.token", "replies.webhook_secret"];

/// A settings document and the version it was saved as. Versions only grow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub version: u64,
    pub settings: Settings,
}

/// The settings tree, with a lock so that read-modify-write updates do not interleave.
pub struct SettingsStore {
    tree: sled::Tree,
    write: Mutex<()>,
    /// The applied document as last read, with the bytes it was parsed from: every API request
    /// and worker round reads the settings, and parsing them was most of that.
    applied: Mutex<Option<(sled::IVec, Stored)>>,
    /// The same for the pending document.
    pending: Mutex<Option<(sled::IVec, Stored)>>,
}

/// A storage failure, said plainly.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "settings store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// What can go wrong saving an update: the input, or the disk.
#[derive(Debug)]
pub enum SaveError {
    Invalid(Errors),
    Store(StoreError),
}

impl SettingsStore {
    pub fn open(db: &sled::Db) -> Result<SettingsStore, StoreError> {
        Ok(SettingsStore {
            tree: db.open_tree(TREE)?,
            write: Mutex::new(()),
            applied: Mutex::new(None),
            pending: Mutex::new(None),
        })
    }

    fn write_doc(&self, key: &[u8], doc: &Stored) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(doc).expect("settings serialize");
        self.tree.insert(key, bytes)?;
        self.tree.flush()?;
        Ok(())
    }

    /// The settings in force. Parsed again only when the stored bytes changed.
    pub fn applied(&self) -> Result<Option<Stored>, StoreError> {
        self.cached(APPLIED, &self.applied)
    }

    /// The saved settings not yet applied, if any. Parsed again only when the stored bytes
    /// changed (every console page reads them).
    pub fn pending(&self) -> Result<Option<Stored>, StoreError> {
        self.cached(PENDING, &self.pending)
    }

    /// The document under `key`, through `cache` (the bytes it was parsed from, and it).
    fn cached(
        &self,
        key: &[u8],
        cache: &Mutex<Option<(sled::IVec, Stored)>>,
    ) -> Result<Option<Stored>, StoreError> {
        let Some(bytes) = self.tree.get(key)? else {
            return Ok(None);
        };
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, doc)) = cache.as_ref()
            && *seen == bytes
        {
            return Ok(Some(doc.clone()));
        }
        let doc: Stored = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError(format!("stored settings unreadable: {e}")))?;
        *cache = Some((bytes, doc.clone()));
        Ok(Some(doc))
    }

    /// The latest saved document: pending if there is one, else applied.
    pub fn latest(&self) -> Result<Option<Stored>, StoreError> {
        match self.pending()? {
            Some(p) => Ok(Some(p)),
            None => self.applied(),
        }
    }

    /// Saves a whole document as pending, under the next version number.
    pub fn save_pending(&self, settings: Settings) -> Result<Stored, StoreError> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.save_pending_locked(settings)
    }

    fn save_pending_locked(&self, settings: Settings) -> Result<Stored, StoreError> {
        let version = self.latest()?.map_or(0, |s| s.version) + 1;
        let doc = Stored { version, settings };
        self.write_doc(PENDING, &doc)?;
        Ok(doc)
    }

    /// Applies a partial update to the latest document and saves the result as pending. The
    /// keys that no service holds ([`IMMEDIATE`]: the console password and the two tokens) are
    /// put in force at once as well: a new console password ends every console session now,
    /// not at the next configuration run.
    pub fn update(&self, changes: &[(String, Value)]) -> Result<Stored, SaveError> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut settings = self
            .latest()
            .map_err(SaveError::Store)?
            .ok_or_else(|| SaveError::Store(StoreError("no settings yet".into())))?
            .settings;
        settings.update(changes).map_err(SaveError::Invalid)?;
        let stored = self
            .save_pending_locked(settings)
            .map_err(SaveError::Store)?;
        if changes.iter().any(|(k, _)| IMMEDIATE.contains(&k.as_str()))
            && let Some(mut applied) = self.applied().map_err(SaveError::Store)?
        {
            let new = &stored.settings;
            applied.settings.console.password_hash = new.console.password_hash.clone();
            applied.settings.api.token = new.api.token.clone();
            applied.settings.replies.webhook_secret = new.replies.webhook_secret.clone();
            if applied.settings == stored.settings {
                // Nothing else is pending: the new version is the one in force.
                self.write_doc(APPLIED, &stored).map_err(SaveError::Store)?;
                self.tree
                    .remove(PENDING)
                    .map_err(|e| SaveError::Store(e.into()))?;
                self.tree.flush().map_err(|e| SaveError::Store(e.into()))?;
            } else {
                self.write_doc(APPLIED, &applied)
                    .map_err(SaveError::Store)?;
            }
        }
        Ok(stored)
    }

    /// Makes the pending document the applied one. Returns the applied document.
    pub fn apply_pending(&self) -> Result<Option<Stored>, StoreError> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = self.pending()? else {
            return self.applied();
        };
        self.write_doc(APPLIED, &p)?;
        self.tree.remove(PENDING)?;
        self.tree.flush()?;
        Ok(Some(p))
    }

    /// Makes `doc` (a document a configuration run checked) the applied one; the pending
    /// document goes if it is still that version (one saved during the run stays pending).
    pub fn apply(&self, doc: &Stored) -> Result<(), StoreError> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.write_doc(APPLIED, doc)?;
        if self.pending()?.is_some_and(|p| p.version == doc.version) {
            self.tree.remove(PENDING)?;
            self.tree.flush()?;
        }
        Ok(())
    }

    /// The digest of the boot file imported last.
    pub fn import_digest(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .tree
            .get(IMPORT_DIGEST)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn set_import_digest(&self, digest: &str) -> Result<(), StoreError> {
        self.tree.insert(IMPORT_DIGEST, digest.as_bytes())?;
        self.tree.flush()?;
        Ok(())
    }
}
