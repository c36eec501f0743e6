//! One client's counts as Postfix's anvil keeps them: the sessions it holds
//! open, and how many connections, messages, recipients and AUTH commands
//! it asked for in the current anvil_rate_time_unit. The anvil service
//! keeps them per (service, client) over every smtpd process; each smtpd
//! process keeps them too, for itself, to fall back on when anvil cannot
//! answer. Both count with this.

use std::time::{Duration, Instant};

use crate::protocol::anvil::Event;

/// One rate window: events since `start`, restarted once a unit has passed.
#[derive(Default, Clone, Copy, Debug)]
struct Window {
    start: Option<Instant>,
    count: u32,
}

impl Window {
    fn hit(&mut self, now: Instant, unit: Duration) -> u32 {
        match self.start {
            Some(start) if now.saturating_duration_since(start) < unit => {}
            _ => {
                self.start = Some(now);
                self.count = 0;
            }
        }
        self.count = self.count.saturating_add(1);
        self.count
    }

    fn expired(&self, now: Instant, unit: Duration) -> bool {
        self.start
            .is_none_or(|s| now.saturating_duration_since(s) >= unit)
    }
}

/// One client's open sessions and rate windows.
#[derive(Default, Debug)]
pub struct ClientCounts {
    connections: u32,
    connection_rate: Window,
    message_rate: Window,
    recipient_rate: Window,
    auth_rate: Window,
}

impl ClientCounts {
    /// A new session: the open sessions (this one included) and the
    /// connection rate.
    pub fn connect(&mut self, now: Instant, unit: Duration) -> (u32, u32) {
        self.connections = self.connections.saturating_add(1);
        (self.connections, self.connection_rate.hit(now, unit))
    }

    /// `n` sessions ended.
    pub fn disconnect(&mut self, n: u32) {
        self.connections = self.connections.saturating_sub(n);
    }

    /// One event: its rate in the current unit, this one included.
    pub fn hit(&mut self, event: Event, now: Instant, unit: Duration) -> u32 {
        let window = match event {
            Event::Message => &mut self.message_rate,
            Event::Recipient => &mut self.recipient_rate,
            Event::Auth => &mut self.auth_rate,
        };
        window.hit(now, unit)
    }

    /// No open session and every window run out: the client can be
    /// forgotten.
    pub fn idle(&self, now: Instant, unit: Duration) -> bool {
        self.connections == 0
            && [
                self.connection_rate,
                self.message_rate,
                self.recipient_rate,
                self.auth_rate,
            ]
            .iter()
            .all(|w| w.expired(now, unit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_restart_after_a_unit() {
        let mut c = ClientCounts::default();
        let t0 = Instant::now();
        let unit = Duration::from_secs(60);
        assert_eq!(c.hit(Event::Message, t0, unit), 1);
        assert_eq!(c.hit(Event::Message, t0 + Duration::from_secs(59), unit), 2);
        assert_eq!(c.hit(Event::Recipient, t0, unit), 1);
        assert_eq!(c.hit(Event::Message, t0 + Duration::from_secs(61), unit), 1);
    }

    #[test]
    fn sessions_and_idleness() {
        let mut c = ClientCounts::default();
        let t0 = Instant::now();
        let unit = Duration::from_secs(60);
        assert!(c.idle(t0, unit));
        assert_eq!(c.connect(t0, unit), (1, 1));
        assert_eq!(c.connect(t0, unit), (2, 2));
        c.disconnect(5);
        assert!(!c.idle(t0, unit), "the connection window still runs");
        assert!(c.idle(t0 + unit, unit));
        assert_eq!(c.connect(t0 + unit, unit), (1, 1));
    }
}
