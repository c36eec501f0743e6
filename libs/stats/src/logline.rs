//! Which log lines count as what, read as pflogsumm and mailgraph read
//! Postfix's log, so their totals and the gateway's own agree.

use crate::counters::{Counter, Reason};
use crate::time::SyslogClock;

/// One counted event: when, and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub time: i64,
    pub counter: Counter,
}

/// The event a log line records, if any. Only lines of `syslog_name`'s
/// programs (`mailgate/smtpd[...]`) count.
pub fn classify(line: &str, syslog_name: &str, clock: &SyslogClock) -> Option<Event> {
    let (time, rest) = clock.parse(line)?;
    // "host program[pid]: text"
    let (_host, rest) = rest.split_once(' ')?;
    let (program, text) = rest.split_once(": ")?;
    let service = program
        .strip_prefix(syslog_name)?
        .strip_prefix('/')?
        .split('[')
        .next()?;
    let counter = counter(service, text)?;
    Some(Event { time, counter })
}

fn counter(service: &str, text: &str) -> Option<Counter> {
    // "ID: rest" or "NOQUEUE: rest"; other lines (connect from, warnings)
    // count as nothing.
    let (id, rest) = text.split_once(": ")?;
    let severity = matches!(id, "warning" | "error" | "fatal" | "panic");
    if severity || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match service {
        "smtpd" => {
            if rest.starts_with("client=") {
                Some(Counter::Received)
            } else {
                rest.strip_prefix("reject: ")
                    .map(|why| Counter::Rejected(smtpd_reason(why)))
            }
        }
        "cleanup" => {
            let (kind, what) = rest.split_once(": ")?;
            let checks = what.starts_with("header ") || what.starts_with("body ");
            match kind {
                // Scanner verdicts are counted from the scanner's own line.
                "reject" if checks => Some(Counter::Rejected(Reason::Content)),
                "hold" => Some(Counter::Held),
                "discard" => Some(Counter::Discarded),
                "quarantine" => Some(Counter::Quarantined),
                _ => None,
            }
        }
        "scanner" => {
            let verdict = rest.strip_prefix("scan: ")?;
            let reason = verdict.split_once(" (").map(|(_, r)| r)?;
            if reason.starts_with("virus found") {
                Some(Counter::Virus)
            } else if reason.starts_with("banned attachment") {
                Some(Counter::Banned)
            } else if reason.starts_with("message looks like spam") {
                Some(Counter::Spam)
            } else {
                None
            }
        }
        // Delivery agents, and qmgr for recipients no agent was given.
        _ => {
            if !rest.starts_with("to=<") {
                return None;
            }
            let status = rest.split(", ").find_map(|f| f.strip_prefix("status="))?;
            match status.split([' ', '(']).next()? {
                "sent" => Some(Counter::Delivered),
                "deferred" => Some(Counter::Deferred),
                "bounced" => Some(Counter::Bounced),
                _ => None,
            }
        }
    }
}

/// The reason in `RCPT from host[ip]: 554 5.7.1 <rcpt>: Relay access denied; from=...`.
fn smtpd_reason(why: &str) -> Reason {
    let text = why.split("; from=<").next().unwrap_or(why);
    let lower = text.to_ascii_lowercase();
    if lower.contains("greylist") {
        Reason::Greylist
    } else if text.contains("Relay access denied") {
        Reason::Relay
    } else if text.contains("blocked using") {
        Reason::Rbl
    } else if text.contains("Recipient address rejected") {
        Reason::Recipient
    } else if text.contains("Sender address rejected") {
        Reason::Sender
    } else if text.contains("Client host rejected") {
        Reason::Client
    } else if text.contains("Helo command rejected") {
        Reason::Helo
    } else if lower.contains("size exceeds") {
        Reason::Size
    } else {
        Reason::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        1_796_309_385
    }
    fn utc(_: i64) -> i64 {
        0
    }

    fn what(text: &str) -> Option<Counter> {
        let clock = SyslogClock::fixed(now, utc);
        classify(&format!("Dec  3 14:49:45 vm {text}"), "mailgate", &clock).map(|e| {
            assert_eq!(e.time, now());
            e.counter
        })
    }

    #[test]
    fn lines_count_as_pflogsumm_counts_them() {
        use Counter::*;
        let cases: &[(&str, Option<Counter>)] = &[
            (
                "mailgate/smtpd[1]: 0661BBDEF576C4: client=unknown[127.0.0.1]",
                Some(Received),
            ),
            ("mailgate/smtpd[1]: connect from unknown[127.0.0.1]", None),
            (
                "mailgate/relay[2]: 0661BBDEF576C4: to=<bob@example.com>, relay=127.0.0.1[127.0.0.1]:39526, delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
                Some(Delivered),
            ),
            (
                "mailgate/relay[2]: 06: to=<bob@bad.example>, relay=none, delay=0, delays=0/0/0/0, dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:39599: Connection refused)",
                Some(Deferred),
            ),
            (
                "mailgate/qmgr[3]: 06: to=<b@c>, relay=none, delay=0.00, delays=0.00/0.00/0/0, dsn=4.3.0, status=deferred (no transport)",
                Some(Deferred),
            ),
            (
                "mailgate/relay[2]: 06: to=<b@c>, relay=x[1.2.3.4]:25, delay=1, delays=0/0/0/1, dsn=5.1.1, status=bounced (host x said: 550 no)",
                Some(Bounced),
            ),
            (
                "mailgate/qmgr[3]: 06: from=<a@b>, status=expired, returned to sender",
                None,
            ),
            (
                "mailgate/smtpd[1]: NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 <bob@other.org>: Relay access denied; from=<a@x.org> to=<bob@other.org> proto=ESMTP helo=<vm>",
                Some(Rejected(Reason::Relay)),
            ),
            (
                "mailgate/smtpd[1]: NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 550 5.1.1 <u@example.com>: Recipient address rejected: User unknown in relay recipient table; from=<a@x.org>",
                Some(Rejected(Reason::Recipient)),
            ),
            (
                "mailgate/smtpd[1]: NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 450 4.2.0 <u@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/; from=<a@x.org>",
                Some(Rejected(Reason::Greylist)),
            ),
            (
                "mailgate/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 5.7.1 Service unavailable; Client host [1.2.3.4] blocked using zen.spamhaus.org; from=<a@x.org>",
                Some(Rejected(Reason::Rbl)),
            ),
            (
                "mailgate/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 5.7.1 <x>: Helo command rejected: go away; from=<a@x.org>",
                Some(Rejected(Reason::Helo)),
            ),
            (
                "mailgate/smtpd[1]: NOQUEUE: reject: MAIL from x[1.2.3.4]: 552 5.3.4 Message size exceeds fixed limit; from=<a@x.org>",
                Some(Rejected(Reason::Size)),
            ),
            (
                "mailgate/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 5.7.1 <a@x.org>: Sender address rejected: Access denied; from=<a@x.org>",
                Some(Rejected(Reason::Sender)),
            ),
            (
                "mailgate/cleanup[4]: 06: reject: header Subject: buy now from unknown[127.0.0.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<x>: 5.7.1 spam",
                Some(Rejected(Reason::Content)),
            ),
            (
                "mailgate/cleanup[4]: 06: reject: virus found: Eicar; from=<a@b>",
                None,
            ),
            (
                "mailgate/cleanup[4]: 06: hold: header Subject: x from y; from=<a@b>",
                Some(Held),
            ),
            (
                "mailgate/cleanup[4]: 06: discard: body x; from=<a@b>",
                Some(Discarded),
            ),
            (
                "mailgate/cleanup[4]: 06: quarantine: banned attachment: a.exe (file name); from=<a@b>",
                Some(Quarantined),
            ),
            (
                "mailgate/scanner[5]: 06: scan: action=reject score=1.0 tests=[] (virus found: Eicar-Signature)",
                Some(Virus),
            ),
            (
                "mailgate/scanner[5]: 06: scan: action=quarantine tests=[] (banned attachment: a.exe (file name))",
                Some(Banned),
            ),
            (
                "mailgate/scanner[5]: 06: scan: action=reject score=9.1 tests=[X,Y] (message looks like spam (score 9.1))",
                Some(Spam),
            ),
            (
                "mailgate/scanner[5]: 06: scan: action=pass score=1.0 tests=[X]",
                None,
            ),
            ("postfix/smtpd[1]: 06: client=unknown[127.0.0.1]", None),
            ("mailgate/smtpd[1]: warning: 06: client=fake", None),
            (
                "mailgate/smtpd[1]: warning: reject: RCPT from x: 554 no",
                None,
            ),
            (
                "mailgate-other/smtpd[1]: 06: client=unknown[127.0.0.1]",
                None,
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(what(line), *expected, "{line}");
        }
        assert_eq!(what("garbage"), None);
        assert!(classify("short", "mailgate", &SyslogClock::default()).is_none());
    }
}
