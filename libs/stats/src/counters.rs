//! What is counted. The order is the file's column order: new counters go
//! at the end (with a new file version), never in between.

/// Why a message or recipient was refused during the SMTP dialogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Relay access denied (not our domain, not our client).
    Relay,
    /// Recipient address rejected (unknown user, access table).
    Recipient,
    Sender,
    Client,
    Helo,
    /// A DNS block list.
    Rbl,
    /// Greylisting (a 4xx the sender retries).
    Greylist,
    Size,
    /// header_checks and body_checks in cleanup.
    Content,
    Other,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::Relay,
        Reason::Recipient,
        Reason::Sender,
        Reason::Client,
        Reason::Helo,
        Reason::Rbl,
        Reason::Greylist,
        Reason::Size,
        Reason::Content,
        Reason::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Relay => "relay",
            Reason::Recipient => "recipient",
            Reason::Sender => "sender",
            Reason::Client => "client",
            Reason::Helo => "helo",
            Reason::Rbl => "rbl",
            Reason::Greylist => "greylist",
            Reason::Size => "size",
            Reason::Content => "content",
            Reason::Other => "other",
        }
    }
}

/// One counted event kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    /// A message accepted from an SMTP client (smtpd's `client=` line).
    Received,
    /// A recipient delivered (`status=sent`).
    Delivered,
    /// A delivery attempt deferred (`status=deferred`, one per recipient and attempt).
    Deferred,
    /// A recipient bounced (`status=bounced`).
    Bounced,
    /// The scanner found a virus (whatever virus_action did with it).
    Virus,
    /// The scanner scored mail at spam_kill_level.
    Spam,
    /// The scanner found a banned attachment.
    Banned,
    Quarantined,
    /// Put on hold by header or body checks.
    Held,
    Discarded,
    /// Refused during the SMTP dialogue (or by header/body checks), as
    /// pflogsumm counts "rejected".
    Rejected(Reason),
}

/// Every counter in column order.
pub const COUNTERS: [Counter; 20] = [
    Counter::Received,
    Counter::Delivered,
    Counter::Deferred,
    Counter::Bounced,
    Counter::Virus,
    Counter::Spam,
    Counter::Banned,
    Counter::Quarantined,
    Counter::Held,
    Counter::Discarded,
    Counter::Rejected(Reason::Relay),
    Counter::Rejected(Reason::Recipient),
    Counter::Rejected(Reason::Sender),
    Counter::Rejected(Reason::Client),
    Counter::Rejected(Reason::Helo),
    Counter::Rejected(Reason::Rbl),
    Counter::Rejected(Reason::Greylist),
    Counter::Rejected(Reason::Size),
    Counter::Rejected(Reason::Content),
    Counter::Rejected(Reason::Other),
];

/// How many columns the file has.
pub const COLUMNS: usize = COUNTERS.len();

impl Counter {
    /// The column of this counter.
    pub fn index(self) -> usize {
        COUNTERS
            .iter()
            .position(|c| *c == self)
            .unwrap_or(COLUMNS - 1)
    }

    /// The name in reports, JSON and metrics; rejections by reason are
    /// `rejected_<reason>`.
    pub fn name(self) -> String {
        match self {
            Counter::Rejected(reason) => format!("rejected_{}", reason.name()),
            other => other.simple_name().to_string(),
        }
    }

    fn simple_name(self) -> &'static str {
        match self {
            Counter::Received => "received",
            Counter::Delivered => "delivered",
            Counter::Deferred => "deferred",
            Counter::Bounced => "bounced",
            Counter::Virus => "virus",
            Counter::Spam => "spam",
            Counter::Banned => "banned",
            Counter::Quarantined => "quarantined",
            Counter::Held => "held",
            Counter::Discarded => "discarded",
            Counter::Rejected(_) => "rejected",
        }
    }
}

/// Counts per column, with the derived totals reports show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts(pub [u64; COLUMNS]);

impl Counts {
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter.index()]
    }

    /// Every rejection, whatever its reason.
    pub fn rejected(&self) -> u64 {
        Reason::ALL
            .iter()
            .map(|r| self.get(Counter::Rejected(*r)))
            .sum()
    }

    /// Greylisting deferrals (a subset of rejected, as pflogsumm counts them).
    pub fn greylisted(&self) -> u64 {
        self.get(Counter::Rejected(Reason::Greylist))
    }

    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_unique_and_named() {
        let mut names = std::collections::HashSet::new();
        for (i, c) in COUNTERS.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert!(names.insert(c.name()), "{}", c.name());
        }
        assert_eq!(Counter::Rejected(Reason::Rbl).name(), "rejected_rbl");
        let mut counts = Counts::default();
        counts.0[Counter::Rejected(Reason::Relay).index()] = 2;
        counts.0[Counter::Rejected(Reason::Greylist).index()] = 3;
        assert_eq!((counts.rejected(), counts.greylisted()), (5, 3));
    }
}
