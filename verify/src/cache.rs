//! The verification cache's entries and rules, as Postfix's verify(8) keeps
//! them: what a query answers, when it starts a probe, what a probe's
//! result replaces. Pure functions of the stored entry and the time, so
//! the rules are tested without a store or a clock.
//!
//! An entry is stored as Postfix writes it, `status:probed:updated:text`
//! (readable with `redis-cli GET mailgate:verify:ADDRESS`): status 0 is
//! deliverable, 1 deferred, 2 undeliverable, 3 in progress; `probed` is
//! when the probe now in flight started (0: none), `updated` when the last
//! result came in (0: none yet), both in seconds since the epoch.

use std::time::Duration;

use mailgate_ipc::protocol::verify::Status;

/// A probe with no answer after this many seconds is taken as lost, and
/// the address may be probed again (Postfix's PROBE_TTL).
pub const PROBE_TTL: u64 = 1000;

pub const IN_PROGRESS: &str = "Address verification in progress";
pub const UNAVAILABLE: &str = "Address verification status unavailable";

/// The longest text an entry keeps (the next hop's reply).
const MAX_TEXT: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub status: Status,
    pub probed: u64,
    pub updated: u64,
    pub text: String,
}

/// The four expiry and refresh times, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Times {
    pub positive_expire: u64,
    pub positive_refresh: u64,
    pub negative_expire: u64,
    pub negative_refresh: u64,
}

fn code(status: Status) -> u8 {
    match status {
        Status::Deliverable => 0,
        Status::Deferred => 1,
        Status::Undeliverable => 2,
        Status::InProgress => 3,
    }
}

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{}:{}:{}:{}",
            code(self.status),
            self.probed,
            self.updated,
            self.text
        )
        .into_bytes()
    }

    /// None for anything Postfix would call a bad entry (which is then
    /// treated as absent): wrong fields, an unknown status, or both times
    /// zero.
    pub fn decode(raw: &[u8]) -> Option<Entry> {
        let raw = std::str::from_utf8(raw).ok()?;
        let mut fields = raw.splitn(4, ':');
        let mut number = || {
            let field = fields.next()?;
            if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            field.parse::<u64>().ok()
        };
        let status = match number()? {
            0 => Status::Deliverable,
            1 => Status::Deferred,
            2 => Status::Undeliverable,
            3 => Status::InProgress,
            _ => return None,
        };
        let (probed, updated) = (number()?, number()?);
        let text = fields.next()?.to_string();
        (probed != 0 || updated != 0).then_some(Entry {
            status,
            probed,
            updated,
            text,
        })
    }

    fn positive(&self) -> bool {
        self.status == Status::Deliverable
    }

    fn expired(&self, times: &Times, now: u64) -> bool {
        let lifetime = if self.positive() {
            times.positive_expire
        } else {
            times.negative_expire
        };
        self.updated.saturating_add(lifetime) < now
    }

    fn needs_refresh(&self, times: &Times, now: u64) -> bool {
        let refresh = if self.positive() {
            times.positive_refresh
        } else {
            times.negative_refresh
        };
        self.updated.saturating_add(refresh) < now
    }

    fn probe_in_flight(&self, now: u64) -> bool {
        now.saturating_sub(self.probed) <= PROBE_TTL
    }

    /// How long the store keeps the entry: until it has expired and no
    /// probe of it can still be in flight, when a query would treat it as
    /// absent anyway.
    pub fn ttl(&self, times: &Times, now: u64) -> Duration {
        let lifetime = if self.updated == 0 {
            0
        } else if self.positive() {
            times.positive_expire
        } else {
            times.negative_expire
        };
        let until = self
            .updated
            .saturating_add(lifetime)
            .max(self.probed.saturating_add(PROBE_TTL));
        Duration::from_secs(until.saturating_sub(now).max(1))
    }
}

/// What a query does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The answer: a status and its text.
    pub status: Status,
    pub text: String,
    /// Start a probe now.
    pub probe: bool,
    /// Write this entry (the one answered, marked as being probed since
    /// now) before the probe starts, so that other gateways sharing the
    /// cache see the probe in flight and start none of their own.
    pub store: Option<Entry>,
    /// Remove the stored entry (expired, and failures are not cached).
    pub remove: bool,
}

/// Postfix's verify_query_service: `found` is what the store holds for
/// the address.
pub fn query(found: Option<&[u8]>, times: &Times, negative_cache: bool, now: u64) -> Query {
    let entry = found.and_then(Entry::decode);
    let usable = entry
        .as_ref()
        .filter(|e| e.probe_in_flight(now) || !e.expired(times, now));
    let remove = found.is_some() && usable.is_none() && !negative_cache;
    let current = usable.cloned().unwrap_or(Entry {
        status: Status::InProgress,
        probed: 0,
        updated: 0,
        text: IN_PROGRESS.to_string(),
    });
    let probe = !current.probe_in_flight(now) && current.needs_refresh(times, now);
    let store = (probe && (current.updated != 0 || negative_cache)).then(|| Entry {
        probed: now,
        ..current.clone()
    });
    Query {
        status: current.status,
        text: current.text,
        probe,
        store,
        remove,
    }
}

/// Postfix's verify_update_service and verify_append: the entry a probe's
/// result leaves in the store, if any. A failure does not replace a
/// deliverable entry (the next query probes again; as long as some probes
/// succeed the address stays deliverable), and without the negative cache
/// failures are not stored at all.
pub fn update(
    existing: Option<&[u8]>,
    status: Status,
    text: &str,
    negative_cache: bool,
    now: u64,
) -> Option<Entry> {
    let positive = status == Status::Deliverable;
    if !positive && !negative_cache {
        return None;
    }
    let keeps_positive = existing
        .and_then(Entry::decode)
        .is_some_and(|e| e.positive());
    (positive || !keeps_positive).then(|| Entry {
        status,
        probed: 0,
        updated: now,
        text: printable(text),
    })
}

/// Text as an entry keeps it: control characters (and ':' needs no care,
/// being the last field) as '?', at most MAX_TEXT bytes.
pub fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if out.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const TIMES: Times = Times {
        positive_expire: 31 * DAY,
        positive_refresh: 7 * DAY,
        negative_expire: 3 * DAY,
        negative_refresh: 3 * 3600,
    };
    const NOW: u64 = 1_800_000_000;

    fn entry(status: Status, probed: u64, updated: u64, text: &str) -> Vec<u8> {
        Entry {
            status,
            probed,
            updated,
            text: text.into(),
        }
        .encode()
    }

    #[test]
    fn entries_read_as_postfix_writes_them() {
        let raw = entry(
            Status::Undeliverable,
            0,
            NOW,
            "host x said: 550 5.1.1 no: such",
        );
        assert_eq!(
            std::str::from_utf8(&raw).unwrap(),
            "2:0:1800000000:host x said: 550 5.1.1 no: such"
        );
        let back = Entry::decode(&raw).unwrap();
        assert_eq!(back.text, "host x said: 550 5.1.1 no: such");
        for bad in [
            &b"4:0:1:x"[..],
            b"0:0:0:x",
            b"0:x:1:y",
            b"0:1:2",
            b"",
            b"-1:0:1:x",
            b"\xff:0:1:x",
        ] {
            assert_eq!(Entry::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_unknown_address_is_probed_once_and_in_progress_meanwhile() {
        let q = query(None, &TIMES, true, NOW);
        assert_eq!(
            (q.status, q.text.as_str()),
            (Status::InProgress, IN_PROGRESS)
        );
        assert!(q.probe && !q.remove);
        let stored = q.store.unwrap();
        assert_eq!((stored.probed, stored.updated), (NOW, 0));
        // The next query (here or on another gateway) sees the probe in
        // flight: no second probe.
        let again = query(Some(&stored.encode()), &TIMES, true, NOW + 3);
        assert_eq!(again.status, Status::InProgress);
        assert!(!again.probe && again.store.is_none());
        // A probe lost for longer than PROBE_TTL is sent again.
        let lost = query(Some(&stored.encode()), &TIMES, true, NOW + PROBE_TTL + 1);
        assert!(lost.probe);
        // Without the negative cache nothing is written for a new address.
        let q = query(None, &TIMES, false, NOW);
        assert!(q.probe && q.store.is_none());
    }

    #[test]
    fn results_are_answered_until_they_need_a_refresh_then_probed_in_the_background() {
        let ok = entry(Status::Deliverable, 0, NOW, "250 2.1.5 Ok");
        let q = query(Some(&ok), &TIMES, true, NOW + 6 * DAY);
        assert_eq!((q.status, q.probe), (Status::Deliverable, false));
        // After the refresh time: still deliverable, and a probe starts.
        let q = query(Some(&ok), &TIMES, true, NOW + 8 * DAY);
        assert_eq!((q.status, q.probe), (Status::Deliverable, true));
        assert_eq!(q.store.as_ref().map(|e| e.probed), Some(NOW + 8 * DAY));
        // After the expiry time: as if unknown.
        let q = query(Some(&ok), &TIMES, true, NOW + 32 * DAY);
        assert_eq!((q.status, q.probe), (Status::InProgress, true));
        let bad = entry(Status::Undeliverable, 0, NOW, "host x said: 550 no");
        let q = query(Some(&bad), &TIMES, true, NOW + 3600);
        assert_eq!((q.status, q.probe), (Status::Undeliverable, false));
        assert_eq!(q.text, "host x said: 550 no");
        let q = query(Some(&bad), &TIMES, true, NOW + 4 * 3600);
        assert_eq!((q.status, q.probe), (Status::Undeliverable, true));
        let q = query(Some(&bad), &TIMES, false, NOW + 4 * DAY);
        assert_eq!(
            (q.status, q.probe, q.remove),
            (Status::InProgress, true, true)
        );
        // A bad entry counts as none.
        assert_eq!(
            query(Some(b"junk"), &TIMES, true, NOW).status,
            Status::InProgress
        );
    }

    #[test]
    fn a_failed_probe_does_not_replace_a_deliverable_address() {
        let ok = entry(Status::Deliverable, NOW, NOW - 8 * DAY, "250 Ok");
        assert_eq!(
            update(Some(&ok), Status::Deferred, "lost connection", true, NOW),
            None
        );
        let fresh = update(Some(&ok), Status::Deliverable, "250 Ok", true, NOW).unwrap();
        assert_eq!((fresh.probed, fresh.updated), (0, NOW));
        let bad = update(None, Status::Undeliverable, "550\r\nno", true, NOW).unwrap();
        assert_eq!(bad.text, "550??no");
        assert_eq!(update(None, Status::Undeliverable, "550", false, NOW), None);
        assert!(update(None, Status::Deliverable, "250", false, NOW).is_some());
    }

    #[test]
    fn the_store_keeps_an_entry_as_long_as_a_query_could_use_it() {
        let at = |e: &[u8]| Entry::decode(e).unwrap().ttl(&TIMES, NOW).as_secs();
        assert_eq!(at(&entry(Status::Deliverable, 0, NOW, "")), 31 * DAY);
        assert_eq!(at(&entry(Status::Deferred, 0, NOW, "")), 3 * DAY);
        assert_eq!(at(&entry(Status::InProgress, NOW, 0, "")), PROBE_TTL);
        assert_eq!(
            at(&entry(Status::Deliverable, NOW, NOW - 40 * DAY, "")),
            PROBE_TTL
        );
        assert_eq!(at(&entry(Status::Deferred, 0, NOW - 9 * DAY, "")), 1);
        assert_eq!(printable(&"é".repeat(600)).len(), 1024);
    }
}
