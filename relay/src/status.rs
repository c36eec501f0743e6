//! A recipient's delivery result, and the one log line per recipient that
//! Postfix's smtp(8) writes and pflogsumm reads:
//!
//! `ID: to=<rcpt>, relay=host[ip]:port, delay=1.2, delays=0.01/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok)`

use std::time::Duration;

use mailgate_ipc::envelope::Micros;
use mailgate_ipc::protocol::delivery::{Outcome, RecipientResult};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub outcome: Outcome,
    /// Enhanced status code such as "2.0.0".
    pub dsn: String,
    /// What the log shows in parentheses and qmgr puts in a bounce.
    pub reason: String,
}

impl Status {
    pub fn sent(dsn: impl Into<String>, reason: impl Into<String>) -> Status {
        Status {
            outcome: Outcome::Sent,
            dsn: dsn.into(),
            reason: reason.into(),
        }
    }

    pub fn deferred(dsn: impl Into<String>, reason: impl Into<String>) -> Status {
        Status {
            outcome: Outcome::Deferred,
            dsn: dsn.into(),
            reason: reason.into(),
        }
    }

    pub fn bounced(dsn: impl Into<String>, reason: impl Into<String>) -> Status {
        Status {
            outcome: Outcome::Bounced,
            dsn: dsn.into(),
            reason: reason.into(),
        }
    }

    /// Deferred or bounced by the class of `dsn` (4.x.x or 5.x.x).
    pub fn failed(dsn: impl Into<String>, reason: impl Into<String>) -> Status {
        let dsn = dsn.into();
        if dsn.starts_with('5') {
            Status::bounced(dsn, reason)
        } else {
            Status::deferred(dsn, reason)
        }
    }

    fn word(&self) -> &'static str {
        match self.outcome {
            Outcome::Sent => "sent",
            Outcome::Deferred => "deferred",
            Outcome::Bounced => "bounced",
        }
    }

    pub fn into_result(self, index: usize) -> RecipientResult {
        RecipientResult {
            index,
            outcome: self.outcome,
            dsn: self.dsn,
            reason: self.reason,
        }
    }
}

/// The moments behind `delay=` and `delays=a/b/c/d`, as in Postfix's
/// log_adhoc.c: a = waiting before qmgr, b = in qmgr until relay got the
/// request, c = connection setup (DNS, connect, greeting, EHLO),
/// d = transmission.
#[derive(Clone, Copy, Debug)]
pub struct Timeline {
    pub arrival: Micros,
    pub active_since: Micros,
    /// When relay received the request.
    pub handoff: Micros,
    /// When connection setup finished; None when no session was set up.
    pub setup_done: Option<Micros>,
}

impl Timeline {
    fn figures(&self, now: Micros) -> (Duration, [Duration; 4]) {
        let span = |from: Micros, to: Micros| Duration::from_micros(to.saturating_sub(from));
        let (c, d) = match self.setup_done {
            Some(done) => (span(self.handoff, done), span(done, now)),
            None => (Duration::ZERO, span(self.handoff, now)),
        };
        (
            span(self.arrival, now),
            [
                span(self.arrival, self.active_since),
                span(self.active_since, self.handoff),
                c,
                d,
            ],
        )
    }
}

/// Logs one recipient's result. `relay` is `host[ip]:port`, or `none` when
/// no server was reached.
pub fn log_recipient(
    queue_id: &str,
    recipient: &str,
    relay: &str,
    timeline: &Timeline,
    now: Micros,
    status: &Status,
) {
    mailgate_log::info!(
        "{}",
        recipient_line(queue_id, recipient, relay, timeline, now, status)
    );
}

fn recipient_line(
    queue_id: &str,
    recipient: &str,
    relay: &str,
    timeline: &Timeline,
    now: Micros,
    status: &Status,
) -> String {
    let (delay, [a, b, c, d]) = timeline.figures(now);
    format!(
        "{queue_id}: to=<{recipient}>, relay={relay}, delay={}, delays={}/{}/{}/{}, dsn={}, status={} ({})",
        pretty(delay),
        pretty(a),
        pretty(b),
        pretty(c),
        pretty(d),
        status.dsn,
        status.word(),
        status.reason
    )
}

/// Postfix's format_tv() with two significant digits and 10ms resolution
/// (delay_max_res = 2): `36`, `1.2`, `0.23`, `0.01`, `0`.
pub(crate) fn pretty(t: Duration) -> String {
    const MILLION: u64 = 1_000_000;
    const SIG_WIDTH: u64 = 100;
    let mut sec = t.as_secs();
    let mut usec = u64::from(t.subsec_micros());
    let mut ures = MILLION / 100;
    if sec > 0 {
        let mut n = 1;
        while sec >= n && n <= SIG_WIDTH / 10 {
            n *= 10;
        }
        ures = (MILLION / SIG_WIDTH) * n;
    } else {
        while usec >= SIG_WIDTH * ures {
            ures *= 10;
        }
    }
    if ures > 1 {
        usec += ures / 2;
        if usec >= MILLION {
            sec += 1;
            usec -= MILLION;
        }
    }
    let mut out = sec.to_string();
    if usec >= ures {
        out.push('.');
        let mut rem = usec;
        let mut n = MILLION / 10;
        while rem >= ures && n > 0 {
            out.push(char::from(b'0' + (rem / n) as u8));
            rem %= n;
            n /= 10;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_look_like_postfix() {
        let ms = Duration::from_millis;
        assert_eq!(pretty(Duration::ZERO), "0");
        assert_eq!(pretty(ms(3)), "0");
        assert_eq!(pretty(ms(6)), "0.01");
        assert_eq!(pretty(ms(60)), "0.06");
        assert_eq!(pretty(ms(234)), "0.23");
        assert_eq!(pretty(ms(680)), "0.68");
        assert_eq!(pretty(ms(1234)), "1.2");
        assert_eq!(pretty(ms(1000)), "1");
        assert_eq!(pretty(ms(9990)), "10");
        assert_eq!(pretty(ms(36_400)), "36");
        assert_eq!(pretty(Duration::from_secs(3600)), "3600");
    }

    #[test]
    fn recipient_line_shape() {
        let s = 1_000_000;
        let timeline = Timeline {
            arrival: 100 * s,
            active_since: 100 * s + 10_000,
            handoff: 100 * s + 20_000,
            setup_done: Some(100 * s + 520_000),
        };
        let line = recipient_line(
            "4F2A1B",
            "bob@example.com",
            "mx.example.com[192.0.2.1]:25",
            &timeline,
            101 * s + 200_000,
            &Status::sent("2.0.0", "250 2.0.0 Ok: queued as XYZ"),
        );
        assert_eq!(
            line,
            "4F2A1B: to=<bob@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=1.2, \
             delays=0.01/0.01/0.5/0.68, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as XYZ)"
        );
        let none = Timeline {
            setup_done: None,
            ..timeline
        };
        let line = recipient_line(
            "4F2A1B",
            "bob@example.com",
            "none",
            &none,
            100 * s + 20_000,
            &Status::deferred("4.4.1", "connect to x[192.0.2.1]:25: Connection refused"),
        );
        assert!(line.ends_with(
            "relay=none, delay=0.02, delays=0.01/0.01/0/0, dsn=4.4.1, status=deferred \
             (connect to x[192.0.2.1]:25: Connection refused)"
        ));
        // A clock stepping backwards gives zeros, not a panic.
        let back = recipient_line(
            "Q",
            "r",
            "none",
            &timeline,
            0,
            &Status::bounced("5.0.0", "x"),
        );
        assert!(back.contains("delay=0, delays=0.01/0.01/0.5/0,"));
    }
}
