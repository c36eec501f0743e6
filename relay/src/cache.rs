//! Idle SMTP connections kept for the next delivery to the same next hop,
//! as Postfix's scache(8) does for its smtp(8) processes.
//!
//! A connection whose transaction went well goes back here, keyed by the
//! next hop it was opened for, instead of being closed with QUIT. The next
//! delivery to that next hop takes it and skips DNS, connect, greeting and
//! EHLO. A connection is kept for [`Limits::idle`] at most
//! (smtp_connection_cache_time_limit) and reused only while it is younger
//! than [`Limits::lifetime`] (smtp_connection_reuse_time_limit); at most
//! [`Limits::capacity`] connections are idle at once, so the cache can never
//! hold more sockets than relay runs deliveries.
//!
//! The cache only stores; closing what it gives back (expired, over
//! capacity, at shutdown) is the caller's job, since that is async I/O.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long and how many connections are kept.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The longest a connection stays idle before it is closed.
    pub idle: Duration,
    /// No connection older than this goes back into the cache.
    pub lifetime: Duration,
    /// The most connections idle at once, over all next hops.
    pub capacity: usize,
}

impl Limits {
    /// Postfix's defaults: smtp_connection_cache_time_limit = 2s,
    /// smtp_connection_reuse_time_limit = 300s.
    pub fn postfix(capacity: usize) -> Limits {
        Limits {
            idle: Duration::from_secs(2),
            lifetime: Duration::from_secs(300),
            capacity,
        }
    }
}

struct Idle<C> {
    connection: C,
    /// When the connection was opened.
    born: Instant,
    /// When it went idle.
    since: Instant,
}

pub struct ConnectionCache<C> {
    limits: Limits,
    /// Per next hop, oldest idle first: each put appends, so the newest,
    /// the likeliest to be alive, is at the end.
    idle: Mutex<HashMap<String, Vec<Idle<C>>>>,
}

impl<C> ConnectionCache<C> {
    pub fn new(limits: Limits) -> ConnectionCache<C> {
        ConnectionCache {
            limits,
            idle: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The most recently idle connection to `nexthop` that has not been
    /// idle too long, with the time it was opened.
    pub fn take(&self, nexthop: &str, now: Instant) -> Option<(C, Instant)> {
        let mut idle = self.lock();
        let list = idle.get_mut(nexthop)?;
        let newest = list.last()?;
        if now.saturating_duration_since(newest.since) >= self.limits.idle {
            // The newest is expired, so are the others: the sweep closes them.
            return None;
        }
        let entry = list.pop()?;
        if list.is_empty() {
            idle.remove(nexthop);
        }
        Some((entry.connection, entry.born))
    }

    /// Offers a connection opened at `born` back for reuse. Gives it back
    /// when it may not be kept (too old, or the cache is full) so the
    /// caller closes it.
    pub fn put(&self, nexthop: &str, connection: C, born: Instant, now: Instant) -> Option<C> {
        if now.saturating_duration_since(born) >= self.limits.lifetime {
            return Some(connection);
        }
        let mut idle = self.lock();
        if idle.values().map(Vec::len).sum::<usize>() >= self.limits.capacity {
            return Some(connection);
        }
        idle.entry(nexthop.to_string()).or_default().push(Idle {
            connection,
            born,
            since: now,
        });
        None
    }

    /// Removes the connections idle for the time limit or longer, for the
    /// caller to close.
    pub fn expire(&self, now: Instant) -> Vec<C> {
        let mut expired = Vec::new();
        let mut idle = self.lock();
        idle.retain(|_, list| {
            let fresh = list
                .iter()
                .position(|e| now.saturating_duration_since(e.since) < self.limits.idle)
                .unwrap_or(list.len());
            expired.extend(list.drain(..fresh).map(|e| e.connection));
            !list.is_empty()
        });
        expired
    }

    /// Removes every connection, for the caller to close (at shutdown).
    pub fn drain(&self) -> Vec<C> {
        self.lock()
            .drain()
            .flat_map(|(_, list)| list.into_iter().map(|e| e.connection))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Idle<C>>>> {
        // Nothing in the critical sections can panic half-way through an
        // update, so a poisoned map is still consistent.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize) -> ConnectionCache<u32> {
        ConnectionCache::new(Limits {
            idle: Duration::from_secs(2),
            lifetime: Duration::from_secs(300),
            capacity,
        })
    }

    #[test]
    fn reuses_the_newest_connection_of_the_same_next_hop() {
        let cache = cache(10);
        let t0 = Instant::now();
        assert!(cache.put("[a]:25", 1, t0, t0).is_none());
        assert!(
            cache
                .put("[a]:25", 2, t0, t0 + Duration::from_millis(10))
                .is_none()
        );
        assert!(cache.put("[b]:25", 3, t0, t0).is_none());
        let now = t0 + Duration::from_secs(1);
        assert_eq!(cache.take("[a]:25", now), Some((2, t0)));
        assert_eq!(cache.take("[a]:25", now), Some((1, t0)));
        assert_eq!(cache.take("[a]:25", now), None);
        assert_eq!(cache.take("[c]:25", now), None);
        assert_eq!(cache.drain(), vec![3]);
    }

    #[test]
    fn idle_connections_expire() {
        let cache = cache(10);
        let t0 = Instant::now();
        cache.put("mx", 1, t0, t0);
        cache.put("mx", 2, t0, t0 + Duration::from_secs(1));
        // At the time limit a connection is no longer handed out.
        assert_eq!(cache.take("mx", t0 + Duration::from_secs(3)), None);
        // The sweep gives back only the expired one.
        assert_eq!(cache.expire(t0 + Duration::from_secs(2)), vec![1]);
        assert_eq!(cache.expire(t0 + Duration::from_secs(2)), Vec::<u32>::new());
        assert_eq!(cache.expire(t0 + Duration::from_secs(3)), vec![2]);
        assert!(cache.drain().is_empty());
    }

    #[test]
    fn old_connections_and_a_full_cache_are_refused() {
        let cache = cache(2);
        let t0 = Instant::now();
        let late = t0 + Duration::from_secs(300);
        assert_eq!(cache.put("mx", 1, t0, late), Some(1));
        assert!(cache.put("mx", 2, t0, t0).is_none());
        assert!(cache.put("other", 3, t0, t0).is_none());
        assert_eq!(cache.put("mx", 4, t0, t0), Some(4));
        // Taking one makes room again.
        assert_eq!(cache.take("other", t0), Some((3, t0)));
        assert!(cache.put("mx", 4, t0, t0).is_none());
    }
}
