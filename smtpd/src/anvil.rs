//! Per-client connection, message and recipient limits (Postfix's anvil):
//! how many sessions a client address holds open at once, and how many
//! connections, messages and recipients it asked for in the current
//! anvil_rate_time_unit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entries are swept of idle clients once the table holds this many.
const SWEEP_AT: usize = 4096;

#[derive(Default)]
struct Window {
    start: Option<Instant>,
    count: u32,
}

impl Window {
    /// Counts one event; the window restarts once a unit has passed.
    fn hit(&mut self, now: Instant, unit: Duration) -> u32 {
        match self.start {
            Some(start) if now.duration_since(start) < unit => {}
            _ => {
                self.start = Some(now);
                self.count = 0;
            }
        }
        self.count = self.count.saturating_add(1);
        self.count
    }

    fn expired(&self, now: Instant, unit: Duration) -> bool {
        self.start.is_none_or(|s| now.duration_since(s) >= unit)
    }
}

#[derive(Default)]
struct Client {
    connections: u32,
    connection_rate: Window,
    message_rate: Window,
    recipient_rate: Window,
    auth_rate: Window,
}

/// The counters, shared by every session of the process.
pub struct Anvil {
    unit: Duration,
    clients: Mutex<HashMap<IpAddr, Client>>,
}

/// A connection held open; dropping it counts the client down.
pub struct Connection {
    anvil: Arc<Anvil>,
    addr: IpAddr,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut clients = self.anvil.lock();
        if let Some(client) = clients.get_mut(&self.addr) {
            client.connections = client.connections.saturating_sub(1);
        }
    }
}

impl Anvil {
    pub fn new(unit: Duration) -> Arc<Anvil> {
        Arc::new(Anvil {
            unit: unit.max(Duration::from_secs(1)),
            clients: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Client>> {
        // A panic while holding the lock leaves counters, not invariants.
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection: its guard, the client's open connections
    /// (including this one) and its connection rate.
    pub fn connect(self: &Arc<Self>, addr: IpAddr) -> (Connection, u32, u32) {
        let now = Instant::now();
        let mut clients = self.lock();
        if clients.len() >= SWEEP_AT {
            let unit = self.unit;
            clients.retain(|_, c| {
                c.connections > 0
                    || !c.connection_rate.expired(now, unit)
                    || !c.message_rate.expired(now, unit)
                    || !c.recipient_rate.expired(now, unit)
                    || !c.auth_rate.expired(now, unit)
            });
        }
        let client = clients.entry(addr).or_default();
        client.connections = client.connections.saturating_add(1);
        let rate = client.connection_rate.hit(now, self.unit);
        let count = client.connections;
        drop(clients);
        (
            Connection {
                anvil: Arc::clone(self),
                addr,
            },
            count,
            rate,
        )
    }

    /// A MAIL FROM: the client's message rate including this one.
    pub fn message(&self, addr: IpAddr) -> u32 {
        let now = Instant::now();
        self.lock()
            .entry(addr)
            .or_default()
            .message_rate
            .hit(now, self.unit)
    }

    /// An AUTH command: the client's AUTH rate including this one
    /// (smtpd_client_auth_rate_limit).
    pub fn auth(&self, addr: IpAddr) -> u32 {
        let now = Instant::now();
        self.lock()
            .entry(addr)
            .or_default()
            .auth_rate
            .hit(now, self.unit)
    }

    /// An accepted RCPT TO: the client's recipient rate including this one.
    pub fn recipient(&self, addr: IpAddr) -> u32 {
        let now = Instant::now();
        self.lock()
            .entry(addr)
            .or_default()
            .recipient_rate
            .hit(now, self.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rates() {
        let anvil = Anvil::new(Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let (first, count, rate) = anvil.connect(a);
        assert_eq!((count, rate), (1, 1));
        let (second, count, rate) = anvil.connect(a);
        assert_eq!((count, rate), (2, 2));
        assert_eq!(anvil.connect(b).1, 1);
        drop(first);
        let (_third, count, rate) = anvil.connect(a);
        assert_eq!((count, rate), (2, 3));
        drop(second);
        assert_eq!(anvil.message(a), 1);
        assert_eq!(anvil.message(a), 2);
        assert_eq!(anvil.recipient(b), 1);
    }

    #[test]
    fn windows_restart_after_a_unit() {
        let mut w = Window::default();
        let t0 = Instant::now();
        let unit = Duration::from_secs(60);
        assert_eq!(w.hit(t0, unit), 1);
        assert_eq!(w.hit(t0 + Duration::from_secs(59), unit), 2);
        assert_eq!(w.hit(t0 + Duration::from_secs(61), unit), 1);
    }
}
