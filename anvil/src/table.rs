//! The per-client counts, as Postfix's anvil keeps them: for each
//! (master.cf service, client address), how many sessions it holds open
//! and how many connections, messages, recipients and AUTH commands it
//! asked for in the current anvil_rate_time_unit. A client with no open
//! session whose windows have all run out is forgotten; the table holds at
//! most a fixed number of clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mailgate_ipc::anvil_counts::ClientCounts;
use mailgate_ipc::protocol::anvil::Event;

/// (master.cf service, client address): Postfix's `service:address` key.
pub type Key = (String, IpAddr);

/// The table is full: even after forgetting the expired clients, a new one
/// would pass the bound.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// The highest values seen since the last statistics line, as Postfix's
/// anvil logs them every anvil_status_update_time.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Peaks {
    pub connection_count: Option<Peak>,
    pub connection_rate: Option<Peak>,
    pub message_rate: Option<Peak>,
    pub recipient_rate: Option<Peak>,
    pub auth_rate: Option<Peak>,
    /// The most clients held, and when (Unix time).
    pub cache_size: Option<(usize, i64)>,
}

/// The highest value, whose it was, and when (Unix time).
#[derive(Debug, PartialEq, Eq)]
pub struct Peak {
    pub value: u32,
    pub key: Key,
    pub at: i64,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn peak(slot: &mut Option<Peak>, value: u32, key: &Key) {
    if slot.as_ref().is_none_or(|p| value > p.value) {
        *slot = Some(Peak {
            value,
            key: key.clone(),
            at: unix_now(),
        });
    }
}

pub struct Table {
    unit: Duration,
    max_clients: usize,
    clients: HashMap<Key, ClientCounts>,
    peaks: Peaks,
}

impl Table {
    pub fn new(unit: Duration, max_clients: usize) -> Table {
        Table {
            unit: unit.max(Duration::from_secs(1)),
            max_clients: max_clients.max(1),
            clients: HashMap::new(),
            peaks: Peaks::default(),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// The client's entry, made when there is room.
    fn client(&mut self, key: &Key, now: Instant) -> Result<&mut ClientCounts, Full> {
        if !self.clients.contains_key(key) {
            if self.clients.len() >= self.max_clients {
                self.sweep(now);
            }
            if self.clients.len() >= self.max_clients {
                return Err(Full);
            }
            self.clients.insert(key.clone(), ClientCounts::default());
            let size = self.clients.len();
            if self.peaks.cache_size.is_none_or(|(max, _)| size > max) {
                self.peaks.cache_size = Some((size, unix_now()));
            }
        }
        Ok(self.clients.get_mut(key).expect("inserted above"))
    }

    /// A new session: the client's open sessions (this one included) and
    /// its connection rate.
    pub fn connect(&mut self, key: &Key, now: Instant) -> Result<(u32, u32), Full> {
        let unit = self.unit;
        let (count, rate) = self.client(key, now)?.connect(now, unit);
        peak(&mut self.peaks.connection_count, count, key);
        peak(&mut self.peaks.connection_rate, rate, key);
        Ok((count, rate))
    }

    /// `n` sessions of the client ended.
    pub fn disconnect(&mut self, key: &Key, n: u32) {
        if let Some(client) = self.clients.get_mut(key) {
            client.disconnect(n);
        }
    }

    /// One event of the client: its rate in the current unit.
    pub fn rate(&mut self, key: &Key, event: Event, now: Instant) -> Result<u32, Full> {
        let unit = self.unit;
        let rate = self.client(key, now)?.hit(event, now, unit);
        let slot = match event {
            Event::Message => &mut self.peaks.message_rate,
            Event::Recipient => &mut self.peaks.recipient_rate,
            Event::Auth => &mut self.peaks.auth_rate,
        };
        peak(slot, rate, key);
        Ok(rate)
    }

    /// Forgets the clients with no open session whose windows have all run
    /// out; returns how many.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let before = self.clients.len();
        let unit = self.unit;
        self.clients.retain(|_, c| !c.idle(now, unit));
        before - self.clients.len()
    }

    /// The peaks since the last call, and a fresh start.
    pub fn take_peaks(&mut self) -> Peaks {
        std::mem::take(&mut self.peaks)
    }

    pub fn unit(&self) -> Duration {
        self.unit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(service: &str, addr: &str) -> Key {
        (service.to_string(), addr.parse().unwrap())
    }

    #[test]
    fn counts_sessions_and_rates_per_service_and_client() {
        let mut t = Table::new(Duration::from_secs(60), 100);
        let now = Instant::now();
        let a = key("smtp", "192.0.2.1");
        assert_eq!(t.connect(&a, now), Ok((1, 1)));
        assert_eq!(t.connect(&a, now), Ok((2, 2)));
        // Another service, or another client, is counted apart.
        assert_eq!(t.connect(&key("submission", "192.0.2.1"), now), Ok((1, 1)));
        assert_eq!(t.connect(&key("smtp", "192.0.2.2"), now), Ok((1, 1)));
        t.disconnect(&a, 1);
        assert_eq!(t.connect(&a, now), Ok((2, 3)));
        t.disconnect(&a, 5);
        assert_eq!(t.connect(&a, now), Ok((1, 4)));
        assert_eq!(t.rate(&a, Event::Message, now), Ok(1));
        assert_eq!(t.rate(&a, Event::Message, now), Ok(2));
        assert_eq!(t.rate(&a, Event::Recipient, now), Ok(1));
        assert_eq!(t.rate(&a, Event::Auth, now), Ok(1));
        let later = now + Duration::from_secs(61);
        assert_eq!(t.rate(&a, Event::Message, later), Ok(1));
        assert_eq!(t.connect(&a, later), Ok((2, 1)));
        let peaks = t.take_peaks();
        let value = |p: Option<Peak>| p.map(|p| (p.value, p.key));
        assert_eq!(value(peaks.connection_count), Some((2, a.clone())));
        assert_eq!(value(peaks.connection_rate), Some((4, a.clone())));
        assert_eq!(value(peaks.message_rate), Some((2, a.clone())));
        assert_eq!(peaks.cache_size.map(|(n, _)| n), Some(3));
        assert_eq!(t.take_peaks(), Peaks::default());
    }

    #[test]
    fn idle_clients_expire_and_the_table_is_bounded() {
        let mut t = Table::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        let (a, b, c) = (
            key("smtp", "192.0.2.1"),
            key("smtp", "192.0.2.2"),
            key("smtp", "192.0.2.3"),
        );
        t.connect(&a, now).unwrap();
        t.rate(&b, Event::Message, now).unwrap();
        // Full: a holds a session and b's window runs.
        assert_eq!(t.connect(&c, now), Err(Full));
        assert_eq!(t.rate(&c, Event::Recipient, now), Err(Full));
        // Known clients are still counted.
        assert_eq!(t.rate(&b, Event::Message, now), Ok(2));
        let later = now + Duration::from_secs(60);
        // b's window has run out: it makes room.
        assert_eq!(t.connect(&c, later), Ok((1, 1)));
        assert_eq!(t.len(), 2);
        t.disconnect(&a, 1);
        t.disconnect(&c, 1);
        assert_eq!(t.sweep(later + Duration::from_secs(60)), 2);
        assert_eq!(t.len(), 0);
    }
}
