//! Syslog time stamps (`Dec  3 14:49:45`, local time, no year) to Unix time.
//!
//! Uses only localtime_r, which works inside the chroot once
//! mailgate_log::init has loaded the time zone; mktime(3) might try to
//! reread /etc/localtime there.

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days_from_civil).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Turns syslog time stamps into Unix times, choosing the year as
/// pflogsumm does: the current one, or the one before for a month later
/// than this one.
pub struct SyslogClock {
    /// Returns (year, month 1-12) of "now" and the UTC offset in seconds of a
    /// given Unix time.
    now: fn() -> i64,
    offset: fn(i64) -> i64,
}

impl Default for SyslogClock {
    fn default() -> SyslogClock {
        SyslogClock {
            now: unix_now,
            offset: local_offset,
        }
    }
}

fn local_offset(unix: i64) -> i64 {
    mailgate_log::local_time(unix).map_or(0, |tm| tm.tm_gmtoff)
}

/// Year and month (1-12) of a Unix time in local time.
fn year_month(unix: i64, offset: i64) -> (i64, u32) {
    let days = (unix + offset).div_euclid(86_400);
    // civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl SyslogClock {
    #[cfg(test)]
    pub(crate) fn fixed(now: fn() -> i64, offset: fn(i64) -> i64) -> SyslogClock {
        SyslogClock { now, offset }
    }

    /// The Unix time of a line that starts with `Mmm dd hh:mm:ss`, and the
    /// rest of the line after the stamp and its space.
    pub fn parse<'a>(&self, line: &'a str) -> Option<(i64, &'a str)> {
        let stamp = line.get(..15)?;
        let rest = line.get(16..)?;
        let month = MONTHS.iter().position(|m| stamp.starts_with(m))? as u32 + 1;
        let day: u32 = stamp.get(4..6)?.trim_start().parse().ok()?;
        let number = |range: std::ops::Range<usize>| -> Option<i64> {
            let text = stamp.get(range)?;
            text.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| text.parse().ok())?
        };
        let (hour, minute, second) = (number(7..9)?, number(10..12)?, number(13..15)?);
        if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let now = (self.now)();
        let (this_year, this_month) = year_month(now, (self.offset)(now));
        let year = if month > this_month {
            this_year - 1
        } else {
            this_year
        };
        let naive = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
        // The offset of the moment itself (daylight saving time may differ
        // from now's), found from a first guess.
        let guess = naive - (self.offset)(naive);
        Some((naive - (self.offset)(guess), rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-03 14:49:45 UTC
    fn december() -> i64 {
        1_796_309_385
    }
    fn january() -> i64 {
        1_799_107_200
    }
    fn utc(_: i64) -> i64 {
        0
    }
    fn plus_one(_: i64) -> i64 {
        3600
    }

    #[test]
    fn stamps_become_unix_times() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(year_month(december(), 0), (2026, 12));
        let clock = SyslogClock::fixed(december, utc);
        let (t, rest) = clock
            .parse("Dec  3 14:49:45 vm mailgate/smtpd[1]: x")
            .unwrap();
        assert_eq!(t, december());
        assert_eq!(rest, "vm mailgate/smtpd[1]: x");
        // A later month than now belongs to last year.
        let (t, _) = SyslogClock::fixed(january, utc)
            .parse("Dec 31 23:59:59 h p: x")
            .unwrap();
        assert_eq!(t, 1_798_761_599);
        assert_eq!(t, days_from_civil(2026, 12, 31) * 86_400 + 86_399);
        let clock = SyslogClock::fixed(december, plus_one);
        let (t, _) = clock.parse("Dec  3 15:49:45 vm x").unwrap();
        assert_eq!(t, december());
        for bad in [
            "",
            "Foo  3 14:49:45 x",
            "Dec 33 14:49:45 x",
            "Dec  3 14:4x:45 x",
            "Dec  3 25:00:00 x",
        ] {
            assert!(SyslogClock::default().parse(bad).is_none(), "{bad}");
        }
    }
}
