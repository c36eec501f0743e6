//! A small key-value store with expiry, for the state a gateway keeps
//! between messages (greylisting now; Bayes, rate counters and the
//! verification cache later), with two backends:
//!
//! - `redb:/path/file.redb`: an embedded, crash-safe database file under
//!   `data_directory`, opened once before the sandbox; expired entries are
//!   pruned by [`Store::prune`], which the owner calls periodically.
//! - `redis:host:port[/db]` (cargo feature `redis`): a Redis server that
//!   several gateways share, which expires entries itself. Only a process
//!   whose sandbox allows the network enables the feature.
//! - [`Store::in_memory`]: a map in the owner's memory, lost when it ends
//!   (for state that Postfix too keeps in memory when told to, such as an
//!   empty address_verify_map).
//!
//! Each user of a store works in its own namespace (a redb table, or a
//! `mailgate:NAMESPACE:` key prefix in Redis), so one Redis database can hold
//! several kinds of state. Every operation either succeeds or returns a
//! [`StoreError`]; callers decide how to fail closed.

mod embedded;
mod memory;
#[cfg(feature = "redis")]
mod remote;
mod spec;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use spec::{REDIS_PORT, StoreSpec};

#[derive(Debug)]
pub enum StoreError {
    /// The `type:name` does not name a store.
    BadSpec { spec: String, reason: String },
    /// The store cannot be opened (at start-up).
    Open { spec: String, reason: String },
    /// An operation failed: the database or the server is unavailable.
    Failed { spec: String, reason: String },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::BadSpec { spec, reason } => write!(f, "\"{spec}\": {reason}"),
            StoreError::Open { spec, reason } => write!(f, "cannot open {spec}: {reason}"),
            StoreError::Failed { spec, reason } => write!(f, "{spec}: {reason}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Settings that apply to every backend.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// The longest a remote operation (connect, command) may take.
    pub timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            timeout: Duration::from_secs(5),
        }
    }
}

enum Backend {
    Embedded(embedded::Embedded),
    Memory(memory::Memory),
    #[cfg(feature = "redis")]
    Remote(Box<remote::Remote>),
}

/// A namespace of a store. Opened before the sandbox; used inside a tokio
/// runtime.
pub struct Store {
    backend: Backend,
    namespace: String,
    spec: Option<StoreSpec>,
}

impl Store {
    /// Opens `spec` for `namespace`. The redb file is created when missing;
    /// a Redis server is not contacted yet (its host name is resolved now).
    pub fn open(
        spec: &StoreSpec,
        namespace: &str,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let backend =
            match spec {
                StoreSpec::Redb(path) => Backend::Embedded(embedded::Embedded::open(path)?),
                #[cfg(feature = "redis")]
                StoreSpec::Redis { host, port, db } => Backend::Remote(Box::new(
                    remote::Remote::open(spec.to_string(), host, *port, *db, options.timeout)?,
                )),
                #[cfg(not(feature = "redis"))]
                StoreSpec::Redis { .. } => {
                    let _ = options;
                    return Err(StoreError::Open {
                        spec: spec.to_string(),
                        reason: "this program is built without Redis support".to_string(),
                    });
                }
            };
        Ok(Store {
            backend,
            namespace: namespace.to_string(),
            spec: Some(spec.clone()),
        })
    }

    /// A store in this process's memory only, for `namespace`, holding at
    /// most `limit` entries that have not expired.
    pub fn in_memory(namespace: &str, limit: usize) -> Store {
        Store {
            backend: Backend::Memory(memory::Memory::new(limit)),
            namespace: namespace.to_string(),
            spec: None,
        }
    }

    /// Where the store lives; None for one in memory.
    pub fn spec(&self) -> Option<&StoreSpec> {
        self.spec.as_ref()
    }

    /// Where the store lives, for log lines: its spec, or "memory".
    pub fn describe(&self) -> String {
        self.spec
            .as_ref()
            .map_or_else(|| "memory".to_string(), StoreSpec::to_string)
    }

    /// True when the store is on the network (its owner needs the network).
    pub fn is_remote(&self) -> bool {
        matches!(self.spec, Some(StoreSpec::Redis { .. }))
    }

    /// True when the store is a database file opened before the sandbox
    /// (its owner needs the db-file promise).
    pub fn is_file(&self) -> bool {
        matches!(self.spec, Some(StoreSpec::Redb(_)))
    }

    #[cfg(feature = "redis")]
    fn remote_key(&self, key: &str) -> String {
        format!("mailgate:{}:{key}", self.namespace)
    }

    /// The value of `key`, or None when it is absent or expired.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Embedded(db) => db.get(&self.namespace, key).await,
            Backend::Memory(map) => map.get(key),
            #[cfg(feature = "redis")]
            Backend::Remote(redis) => redis.get(&self.remote_key(key)).await,
        }
    }

    /// Stores `value` under `key` for `ttl` from now, replacing any value.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Embedded(db) => db.set(&self.namespace, key, value, ttl).await,
            Backend::Memory(map) => map.set(key, value, ttl),
            #[cfg(feature = "redis")]
            Backend::Remote(redis) => redis.set(&self.remote_key(key), value, ttl).await,
        }
    }

    pub async fn remove(&self, key: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Embedded(db) => db.remove(&self.namespace, key).await,
            Backend::Memory(map) => map.remove(key),
            #[cfg(feature = "redis")]
            Backend::Remote(redis) => redis.remove(&self.remote_key(key)).await,
        }
    }

    /// Removes expired entries and returns how many went. Redis expires
    /// entries itself: nothing to do there.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Embedded(db) => db.prune(&self.namespace).await,
            Backend::Memory(map) => map.prune(),
            #[cfg(feature = "redis")]
            Backend::Remote(_) => Ok(0),
        }
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The expiry time, in milliseconds since the epoch, of an entry written
/// now with `ttl`.
fn expiry_after(ttl: Duration) -> u64 {
    now_millis().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn embedded_store_keeps_values_until_they_expire_and_prunes_them() {
        let dir = tempfile::tempdir().unwrap();
        let spec = StoreSpec::Redb(dir.path().join("state.redb"));
        runtime().block_on(async {
            let store = Store::open(&spec, "greylist", StoreOptions::default()).unwrap();
            let other = Store::open(&spec, "other", StoreOptions::default());
            // One process holds the file.
            assert!(other.is_err());
            assert_eq!(store.get("absent").await.unwrap(), None);
            store
                .set("long", b"1", Duration::from_secs(3600))
                .await
                .unwrap();
            store
                .set("short", b"2", Duration::from_millis(1))
                .await
                .unwrap();
            store
                .set("gone", b"3", Duration::from_secs(3600))
                .await
                .unwrap();
            store.remove("gone").await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(store.get("long").await.unwrap(), Some(b"1".to_vec()));
            assert_eq!(store.get("short").await.unwrap(), None);
            assert_eq!(store.get("gone").await.unwrap(), None);
            assert_eq!(store.prune().await.unwrap(), 1);
            assert_eq!(store.prune().await.unwrap(), 0);
            assert_eq!(store.get("long").await.unwrap(), Some(b"1".to_vec()));
        });
        // Reopened (as after a restart or a crash), the data is there.
        runtime().block_on(async {
            let store = Store::open(&spec, "greylist", StoreOptions::default()).unwrap();
            assert_eq!(store.get("long").await.unwrap(), Some(b"1".to_vec()));
            let mode = std::fs::metadata(dir.path().join("state.redb"))
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
                .unwrap();
            assert_eq!(mode, 0o600);
        });
    }

    #[test]
    fn a_store_in_memory_expires_and_prunes_too() {
        runtime().block_on(async {
            let store = Store::in_memory("verify", 2);
            assert!(!store.is_remote() && !store.is_file() && store.spec().is_none());
            assert_eq!(store.describe(), "memory");
            store.set("a", b"1", Duration::from_secs(60)).await.unwrap();
            store
                .set("b", b"2", Duration::from_millis(1))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(store.get("a").await.unwrap(), Some(b"1".to_vec()));
            assert_eq!(store.get("b").await.unwrap(), None);
            assert_eq!(store.prune().await.unwrap(), 1);
            store.remove("a").await.unwrap();
            assert_eq!(store.get("a").await.unwrap(), None);
            // Full of live entries: a new key is refused, a known one is
            // replaced, and room made by expiry is used.
            for key in ["a", "b"] {
                store.set(key, b"1", Duration::from_secs(60)).await.unwrap();
            }
            let full = store.set("c", b"3", Duration::from_secs(60)).await;
            assert!(
                full.unwrap_err().to_string().contains("full (2 entries"),
                "a full store refuses"
            );
            store
                .set("b", b"2", Duration::from_millis(1))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            store.set("c", b"3", Duration::from_secs(60)).await.unwrap();
            assert_eq!(store.get("c").await.unwrap(), Some(b"3".to_vec()));
        });
    }

    #[test]
    fn a_missing_directory_is_an_open_error_naming_the_spec() {
        let spec = StoreSpec::parse("redb:/nonexistent/dir/state.redb").unwrap();
        let e = Store::open(&spec, "x", StoreOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("cannot open redb:/nonexistent/dir/state.redb"),
            "{e}"
        );
    }
}
