//! Per-client connection, message, recipient and AUTH limits (Postfix's
//! anvil): how many sessions a client address holds open at once, and how
//! many connections, messages, recipients and AUTH commands it asked for in
//! the current anvil_rate_time_unit.
//!
//! The anvil service counts them over every smtpd process of the service
//! (anvil_client.rs); this process counts them too, for itself, and uses
//! its own counts when anvil cannot answer (down, too slow, full): a limit
//! still holds, per process, never none.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailgate_ipc::anvil_counts::ClientCounts;
use mailgate_ipc::protocol::anvil::Event;

use crate::anvil_client::Remote;

/// Entries are swept of idle clients once the table holds this many.
const SWEEP_AT: usize = 4096;

/// The counters, shared by every session of the process.
pub struct Anvil {
    unit: Duration,
    clients: Mutex<HashMap<IpAddr, ClientCounts>>,
    /// The anvil service; None when not asked (unit tests).
    remote: Option<Remote>,
}

/// A connection held open; dropping it counts the client down, here and
/// in the anvil service when it was counted there.
pub struct Connection {
    anvil: Arc<Anvil>,
    addr: IpAddr,
    /// The anvil connection it was counted on.
    remote: Option<u64>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut clients = self.anvil.lock();
        if let Some(client) = clients.get_mut(&self.addr) {
            client.disconnect(1);
        }
        drop(clients);
        if let (Some(remote), Some(generation)) = (&self.anvil.remote, self.remote) {
            remote.disconnect(self.addr, generation);
        }
    }
}

impl Anvil {
    /// Counts in this process only.
    pub fn new(unit: Duration) -> Arc<Anvil> {
        Arc::new(Anvil {
            unit: unit.max(Duration::from_secs(1)),
            clients: Mutex::new(HashMap::new()),
            remote: None,
        })
    }

    /// Counts with the anvil service (`socket` None: its socket in the
    /// spool) for master.cf service `service`; must run inside a tokio
    /// runtime.
    pub fn with_service(unit: Duration, service: &str, socket: Option<PathBuf>) -> Arc<Anvil> {
        Arc::new(Anvil {
            unit: unit.max(Duration::from_secs(1)),
            clients: Mutex::new(HashMap::new()),
            remote: Some(Remote::start(service, socket)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, ClientCounts>> {
        // A panic while holding the lock leaves counters, not invariants.
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection: its guard, the client's open connections
    /// (including this one) and its connection rate, over every smtpd
    /// process when anvil answers.
    pub async fn connect(self: &Arc<Self>, addr: IpAddr) -> (Connection, u32, u32) {
        let (count, rate) = self.connect_here(addr);
        let mut connection = Connection {
            anvil: Arc::clone(self),
            addr,
            remote: None,
        };
        if let Some(remote) = &self.remote
            && let Some((all_count, all_rate, generation)) = remote.connect(addr).await
        {
            connection.remote = Some(generation);
            return (connection, all_count, all_rate);
        }
        (connection, count, rate)
    }

    fn connect_here(&self, addr: IpAddr) -> (u32, u32) {
        let now = Instant::now();
        let mut clients = self.lock();
        if clients.len() >= SWEEP_AT {
            let unit = self.unit;
            clients.retain(|_, c| !c.idle(now, unit));
        }
        clients.entry(addr).or_default().connect(now, self.unit)
    }

    fn hit_here(&self, addr: IpAddr, event: Event) -> u32 {
        let now = Instant::now();
        let mut clients = self.lock();
        clients.entry(addr).or_default().hit(event, now, self.unit)
    }

    async fn hit(&self, addr: IpAddr, event: Event) -> u32 {
        let here = self.hit_here(addr, event);
        if let Some(remote) = &self.remote
            && let Some(all) = remote.rate(addr, event).await
        {
            return all;
        }
        here
    }

    /// A MAIL FROM: the client's message rate including this one.
    pub async fn message(&self, addr: IpAddr) -> u32 {
        self.hit(addr, Event::Message).await
    }

    /// An AUTH command: the client's AUTH rate including this one
    /// (smtpd_client_auth_rate_limit).
    pub async fn auth(&self, addr: IpAddr) -> u32 {
        self.hit(addr, Event::Auth).await
    }

    /// An accepted RCPT TO: the client's recipient rate including this one.
    pub async fn recipient(&self, addr: IpAddr) -> u32 {
        self.hit(addr, Event::Recipient).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_and_rates() {
        let anvil = Anvil::new(Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let (first, count, rate) = anvil.connect(a).await;
        assert_eq!((count, rate), (1, 1));
        let (second, count, rate) = anvil.connect(a).await;
        assert_eq!((count, rate), (2, 2));
        assert_eq!(anvil.connect(b).await.1, 1);
        drop(first);
        let (_third, count, rate) = anvil.connect(a).await;
        assert_eq!((count, rate), (2, 3));
        drop(second);
        assert_eq!(anvil.message(a).await, 1);
        assert_eq!(anvil.message(a).await, 2);
        assert_eq!(anvil.recipient(b).await, 1);
        assert_eq!(anvil.auth(b).await, 1);
    }

    /// With no anvil service to ask, the counts of this process hold: a
    /// limit per process, never none.
    #[tokio::test]
    async fn without_the_service_it_counts_here() {
        let anvil = Anvil::with_service(
            Duration::from_secs(60),
            "smtp",
            Some("/nonexistent/private/anvil".into()),
        );
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let (_first, count, rate) = anvil.connect(a).await;
        assert_eq!((count, rate), (1, 1));
        let (second, count, rate) = anvil.connect(a).await;
        assert_eq!((count, rate), (2, 2));
        drop(second);
        assert_eq!(anvil.connect(a).await.1, 2);
        assert_eq!(anvil.message(a).await, 1);
        assert_eq!(anvil.recipient(a).await, 1);
    }
}
