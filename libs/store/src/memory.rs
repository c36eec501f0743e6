//! The volatile backend: a map in the owner's memory, lost when the process
//! ends (Postfix's empty address_verify_map). Entries carry their expiry
//! time and are pruned by [`Memory::prune`], as in the embedded backend.
//! The map holds at most a fixed number of entries: when it is full of
//! live ones, a new key is refused (an error its owner fails closed on)
//! rather than memory growing with whatever keys clients make up.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::{StoreError, expiry_after, now_millis};

/// Key -> (expiry in milliseconds since the epoch, value).
type Map = HashMap<String, (u64, Vec<u8>)>;

pub(crate) struct Memory {
    map: Mutex<Map>,
    limit: usize,
}

impl Memory {
    pub(crate) fn new(limit: usize) -> Memory {
        Memory {
            map: Mutex::new(Map::new()),
            limit,
        }
    }

    fn map(&self) -> Result<MutexGuard<'_, Map>, StoreError> {
        self.map.lock().map_err(|_| StoreError::Failed {
            spec: "memory".to_string(),
            reason: "a thread panicked while holding the map".to_string(),
        })
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = now_millis();
        Ok(self
            .map()?
            .get(key)
            .filter(|(expiry, _)| *expiry > now)
            .map(|(_, value)| value.clone()))
    }

    pub(crate) fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut map = self.map()?;
        if map.len() >= self.limit && !map.contains_key(key) {
            let now = now_millis();
            map.retain(|_, (expiry, _)| *expiry > now);
            if map.len() >= self.limit {
                return Err(StoreError::Failed {
                    spec: "memory".to_string(),
                    reason: format!("full ({} entries that have not expired)", self.limit),
                });
            }
        }
        map.insert(key.to_string(), (expiry_after(ttl), value.to_vec()));
        Ok(())
    }

    pub(crate) fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.map()?.remove(key);
        Ok(())
    }

    pub(crate) fn prune(&self) -> Result<u64, StoreError> {
        let now = now_millis();
        let mut map = self.map()?;
        let before = map.len();
        map.retain(|_, (expiry, _)| *expiry > now);
        Ok((before - map.len()) as u64)
    }
}
