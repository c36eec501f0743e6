//! Dates as SpamAssassin reads them (Util::parse_rfc822_date) and the difference
//! between a message's Date header and when its Received headers say it was
//! handled (HeaderEval's `_check_date_diff`), for `check_for_shifted_date`.

use crate::msg::{Message, decode_header, header_values};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// SpamAssassin's %TZ table for named zones, in minutes east of UTC.
fn zone(name: &str) -> Option<i64> {
    Some(match name {
        "UT" | "UTC" | "GMT" | "WET" | "Z" => 0,
        "BST" | "WEST" | "CET" | "MET" => 60,
        "CEST" | "MEST" | "EET" | "SAST" => 120,
        "EEST" | "MSK" => 180,
        "MSD" => 240,
        "IST" => 330,
        "HKT" | "AWST" | "WST" => 480,
        "JST" | "KST" => 540,
        "AEST" | "EAST" => 600,
        "AEDT" => 660,
        "NZST" => 720,
        "NZDT" => 780,
        "HST" => -600,
        "AKST" => -540,
        "AKDT" | "PST" => -480,
        "PDT" | "MST" => -420,
        "MDT" | "CST" => -360,
        "CDT" | "EST" => -300,
        "EDT" | "AST" => -240,
        "ADT" => -180,
        "NST" => -210,
        "NDT" => -150,
        _ => return None,
    })
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn month(word: &str) -> Option<i64> {
    let w = word.to_ascii_lowercase();
    MONTHS.iter().position(|m| *m == w).map(|i| i as i64 + 1)
}

fn number(word: &str) -> Option<i64> {
    (!word.is_empty() && word.len() <= 4 && word.bytes().all(|c| c.is_ascii_digit()))
        .then(|| word.parse().ok())
        .flatten()
}

/// Seconds since the epoch of an RFC 822 date, as SpamAssassin parses them:
/// `d Mon yyyy` (or `Mon d hh:mm:ss yyyy`, or a 2-3 digit year), an optional
/// time, a numeric or named zone (others count as UTC).
#[expect(
    clippy::string_slice,
    reason = "the offset word starts with an ASCII sign"
)]
pub fn parse_rfc822(date: &str) -> Option<i64> {
    let cleaned = date.replace(',', " ");
    let mut words: Vec<&str> = cleaned.split_whitespace().collect();
    let (day, mon, mut year, used) = (0..words.len()).find_map(|i| {
        let w = |k: usize| words.get(i + k).copied().unwrap_or("");
        if let (Some(d), Some(m), Some(y)) = (number(w(0)), month(w(1)), number(w(2))) {
            return Some((d, m, y, vec![i, i + 1, i + 2]));
        }
        if let (Some(m), Some(d), Some(y)) = (month(w(0)), number(w(1)), number(w(3)))
            && w(2).contains(':')
            && w(3).len() == 4
        {
            return Some((d, m, y, vec![i, i + 1, i + 3]));
        }
        None
    })?;
    let year_len = words[used[2]].len();
    if year_len == 2 && year < 50 {
        year += 2000;
    } else if year_len != 4 {
        year += 1900;
    }
    for &i in used.iter().rev() {
        words.remove(i);
    }
    let (mut hh, mut mm, mut ss) = (0, 0, 0);
    if let Some(t) = words.iter().position(|w| {
        let p: Vec<&str> = w.split(':').collect();
        (p.len() == 2 || p.len() == 3) && p.iter().all(|x| number(x).is_some())
    }) {
        let p: Vec<i64> = words[t].split(':').filter_map(number).collect();
        hh = p[0].min(23);
        mm = p[1].min(59);
        ss = p.get(2).copied().unwrap_or(0).min(59);
        words.remove(t);
    }
    let offset = words
        .iter()
        .find_map(|w| {
            let b = w.as_bytes();
            (b.len() == 5 && matches!(b[0], b'+' | b'-') && b[1..].iter().all(u8::is_ascii_digit))
                .then(|| {
                    let n: i64 = w[1..].parse().unwrap_or(0);
                    let mins = n / 100 * 60 + n % 100;
                    if b[0] == b'-' { -mins } else { mins }
                })
        })
        .or_else(|| {
            words
                .iter()
                .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphabetic()))
                .find_map(zone)
        })
        .unwrap_or(0);
    let max_day = match mon {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    };
    let (mut day, mut mon) = (day, mon);
    if day > max_day {
        day = 1;
        mon += 1;
        if mon > 12 {
            mon = 1;
            year += 1;
        }
    }
    let days = days_from_civil(year, mon, day);
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset * 60)
}

/// The first `d Mon yyyy hh:mm:ss zone` date in a Received line.
fn received_time(line: &str) -> Option<i64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    (0..words.len()).find_map(|i| {
        let w = words.get(i..i + 5)?;
        (number(w[0].trim_start_matches(|c: char| !c.is_ascii_digit())).is_some()
            && w[1].len() == 3
            && number(w[2]).is_some()
            && w[3].split(':').count() == 3)
            .then(|| parse_rfc822(&w.join(" ")))
            .flatten()
    })
}

/// The Date header minus the closest Received time, in seconds (0 when either
/// is missing), skipping the local delivery and fetchmail hops as SpamAssassin
/// does.
pub fn date_diff(msg: &Message) -> i64 {
    let date = ["resent-date", "date"].iter().find_map(|n| {
        header_values(&msg.headers, n)
            .find_map(|v| parse_rfc822(&String::from_utf8_lossy(&decode_header(v))))
    });
    let Some(date) = date else { return 0 };
    let mut received: Vec<String> = header_values(&msg.headers, "received")
        .map(|v| String::from_utf8_lossy(&decode_header(v)).into_owned())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let local = |l: &str| {
        l.contains("from localhost ")
            || l.contains("127.0.0.1")
                && l.split_whitespace()
                    .take(4)
                    .any(|w| w.contains("127.0.0.1"))
            || l.contains(" invoked by uid ")
    };
    if received.first().is_some_and(|l| local(l)) {
        let first = received.remove(0);
        let fetchmail = received
            .first()
            .is_some_and(|l| l.contains("by localhost with ") && l.contains("(fetchmail-"));
        if fetchmail {
            received.remove(0);
        } else {
            received.insert(0, first);
        }
    }
    let mut diffs: Vec<i64> = received
        .iter()
        .filter_map(|l| received_time(l))
        .map(|t| date - t)
        .collect();
    if diffs.len() > 1 && diffs.last() == Some(&0) {
        diffs.pop();
    }
    diffs.into_iter().min_by_key(|d| d.abs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc822_dates() {
        assert_eq!(parse_rfc822("Thu, 01 Jan 1970 00:00:00 +0000"), Some(0));
        assert_eq!(
            parse_rfc822("Fri, 23 Aug 2002 10:24:21 +0100"),
            Some(1_030_094_661)
        );
        assert_eq!(parse_rfc822("23 Aug 02 09:24:21 GMT"), Some(1_030_094_661));
        assert_eq!(
            parse_rfc822("Fri Aug 23 05:24:21 2002 EDT"),
            Some(1_030_094_661)
        );
        assert_eq!(parse_rfc822("garbage"), None);
        assert_eq!(parse_rfc822("99999 Foo 1 1:1"), None);
    }

    #[test]
    fn shifted_date() {
        let m = Message::parse(
            b"Received: from localhost (localhost [127.0.0.1]) by h; Fri, 23 Aug 2002 12:00:00 +0000\n\
              Received: from h [127.0.0.1] by localhost with IMAP (fetchmail-5.9.0); 23 Aug 2002 12:00:00 +0000\n\
              Received: from x (x [192.0.2.1]) by y; Fri, 23 Aug 2002 10:00:00 +0000\n\
              Date: Sat, 24 Aug 2002 10:00:00 +0000\n\nhi\n",
        );
        assert_eq!(date_diff(&m), 86_400);
        assert_eq!(date_diff(&Message::parse(b"Subject: x\n\nhi\n")), 0);
    }
}
