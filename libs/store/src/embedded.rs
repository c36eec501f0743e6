//! The embedded backend: one redb file, one table per namespace. redb
//! commits are durable (fsync) and survive a crash at any moment; entries
//! carry their expiry time and are pruned by [`Embedded::prune`].
//!
//! The file is opened once, before the owning process enters its sandbox;
//! afterwards redb only reads, writes, grows and syncs that descriptor and
//! takes byte-range locks on it (the `db-file` promise of the sandbox).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{Builder, Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{StoreError, expiry_after, now_millis};

/// How many expired entries one prune transaction removes at most, so that
/// pruning a large table never holds the write lock for long.
const PRUNE_BATCH: usize = 10_000;

pub(crate) struct Embedded {
    db: Arc<Database>,
    path: PathBuf,
}

impl Embedded {
    /// Opens or creates the database file (mode 0600: it holds addresses).
    pub(crate) fn open(path: &Path) -> Result<Embedded, StoreError> {
        let fail = |reason: String| StoreError::Open {
            spec: format!("redb:{}", path.display()),
            reason,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| fail(e.to_string()))?;
        let backend = FileBackend::new(file).map_err(|e| fail(e.to_string()))?;
        let db = Builder::new()
            .create_with_backend(backend)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Embedded {
            db: Arc::new(db),
            path: path.to_path_buf(),
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Failed {
            spec: format!("redb:{}", self.path.display()),
            reason: e.to_string(),
        }
    }

    /// Runs a blocking database operation off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, String> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        match tokio::task::spawn_blocking(move || op(&db)).await {
            Ok(result) => result.map_err(|e| self.error(e)),
            Err(e) => Err(self.error(format!("database task failed: {e}"))),
        }
    }

    pub(crate) async fn get(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (namespace, key) = (namespace.to_string(), key.to_string());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| e.to_string())?;
            let table = match txn.open_table(TableDefinition::<&str, &[u8]>::new(&namespace)) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.to_string()),
            };
            let Some(stored) = table.get(key.as_str()).map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            Ok(decode(stored.value(), now_millis()).map(<[u8]>::to_vec))
        })
        .await
    }

    pub(crate) async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: std::time::Duration,
    ) -> Result<(), StoreError> {
        let (namespace, key) = (namespace.to_string(), key.to_string());
        let mut stored = expiry_after(ttl).to_be_bytes().to_vec();
        stored.extend_from_slice(value);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            {
                let mut table = txn
                    .open_table(TableDefinition::<&str, &[u8]>::new(&namespace))
                    .map_err(|e| e.to_string())?;
                table
                    .insert(key.as_str(), stored.as_slice())
                    .map_err(|e| e.to_string())?;
            }
            txn.commit().map_err(|e| e.to_string())
        })
        .await
    }

    pub(crate) async fn remove(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        let (namespace, key) = (namespace.to_string(), key.to_string());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            {
                let mut table = txn
                    .open_table(TableDefinition::<&str, &[u8]>::new(&namespace))
                    .map_err(|e| e.to_string())?;
                table.remove(key.as_str()).map_err(|e| e.to_string())?;
            }
            txn.commit().map_err(|e| e.to_string())
        })
        .await
    }

    /// Removes the expired entries of a namespace; returns how many.
    pub(crate) async fn prune(&self, namespace: &str) -> Result<u64, StoreError> {
        let namespace = namespace.to_string();
        self.blocking(move |db| {
            let mut removed = 0u64;
            loop {
                let now = now_millis();
                let txn = db.begin_write().map_err(|e| e.to_string())?;
                let batch = {
                    let mut table = txn
                        .open_table(TableDefinition::<&str, &[u8]>::new(&namespace))
                        .map_err(|e| e.to_string())?;
                    let mut expired = Vec::new();
                    for entry in table.iter().map_err(|e| e.to_string())? {
                        let (key, value) = entry.map_err(|e| e.to_string())?;
                        if decode(value.value(), now).is_none() {
                            expired.push(key.value().to_string());
                            if expired.len() == PRUNE_BATCH {
                                break;
                            }
                        }
                    }
                    for key in &expired {
                        table.remove(key.as_str()).map_err(|e| e.to_string())?;
                    }
                    expired.len()
                };
                txn.commit().map_err(|e| e.to_string())?;
                removed += batch as u64;
                if batch < PRUNE_BATCH {
                    return Ok(removed);
                }
            }
        })
        .await
    }
}

/// The payload of a stored value, or None when it has expired (or is too
/// short to hold an expiry time, which only a damaged file could give).
fn decode(stored: &[u8], now: u64) -> Option<&[u8]> {
    let (expiry, payload) = stored.split_first_chunk::<8>()?;
    (u64::from_be_bytes(*expiry) > now).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_expiry() {
        let mut stored = 1000u64.to_be_bytes().to_vec();
        stored.extend_from_slice(b"v");
        assert_eq!(decode(&stored, 999), Some(&b"v"[..]));
        assert_eq!(decode(&stored, 1000), None);
        assert_eq!(decode(b"short", 0), None);
    }
}
