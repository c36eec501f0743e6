//! The statistics as text (`mailgate stats`), JSON (`--json`) and
//! Prometheus's text exposition format (the stats service's `/metrics`).

use std::fmt::Write;

use crate::counters::{COUNTERS, Counter, Counts, Reason};
use crate::ring::Snapshot;

/// A span the reports sum over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
    /// Since the statistics file was made.
    Total,
}

impl Period {
    pub const ALL: [Period; 6] = [
        Period::Hour,
        Period::Day,
        Period::Week,
        Period::Month,
        Period::Year,
        Period::Total,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Year => "year",
            Period::Total => "total",
        }
    }

    fn heading(self) -> &'static str {
        match self {
            Period::Hour => "last hour",
            Period::Day => "24 hours",
            Period::Week => "7 days",
            Period::Month => "31 days",
            Period::Year => "366 days",
            Period::Total => "all time",
        }
    }

    /// The counts of this period ending `now`.
    pub fn counts(self, snapshot: &Snapshot, now: i64) -> Counts {
        match self {
            Period::Hour => snapshot.sum(0, 60, now),
            Period::Day => snapshot.sum(0, 1440, now),
            Period::Week => snapshot.sum(1, 7 * 288, now),
            Period::Month => snapshot.sum(2, 31 * 48, now),
            Period::Year => snapshot.sum(3, 1464, now),
            Period::Total => snapshot.totals,
        }
    }
}

/// The rows of the report: (label, value) for each counter, rejections
/// with their reasons indented under their total.
fn rows(counts: &Counts) -> Vec<(String, u64)> {
    let mut rows = Vec::new();
    for counter in COUNTERS {
        if let Counter::Rejected(_) = counter {
            continue;
        }
        rows.push((counter.name(), counts.get(counter)));
    }
    rows.push(("rejected".to_string(), counts.rejected()));
    for reason in Reason::ALL {
        rows.push((
            format!("  {}", reason.name()),
            counts.get(Counter::Rejected(reason)),
        ));
    }
    rows.push(("greylisted".to_string(), counts.greylisted()));
    rows
}

/// A table: one row per counter, one column per period.
pub fn text_report(snapshot: &Snapshot, now: i64) -> String {
    let columns: Vec<Vec<(String, u64)>> = Period::ALL
        .iter()
        .map(|p| rows(&p.counts(snapshot, now)))
        .collect();
    let mut out = format!("{:<14}", "");
    for period in Period::ALL {
        let _ = write!(out, "{:>11}", period.heading());
    }
    out.push('\n');
    for (row, (label, _)) in columns[0].iter().enumerate() {
        let _ = write!(out, "{label:<14}");
        for column in &columns {
            let _ = write!(out, "{:>11}", column[row].1);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "counted since {}, last event {}",
        local(snapshot.created),
        if snapshot.updated > snapshot.created {
            local(snapshot.updated)
        } else {
            "none yet".to_string()
        }
    );
    out
}

fn local(unix: i64) -> String {
    match mailgate_log::local_time(unix) {
        Some(tm) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min
        ),
        None => unix.to_string(),
    }
}

fn counts_json(counts: &Counts) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for counter in COUNTERS {
        if let Counter::Rejected(_) = counter {
            continue;
        }
        object.insert(counter.name(), counts.get(counter).into());
    }
    let mut rejected = serde_json::Map::new();
    rejected.insert("total".into(), counts.rejected().into());
    for reason in Reason::ALL {
        rejected.insert(
            reason.name().into(),
            counts.get(Counter::Rejected(reason)).into(),
        );
    }
    object.insert("rejected".into(), rejected.into());
    object.insert("greylisted".into(), counts.greylisted().into());
    object.into()
}

/// `{"created": ..., "updated": ..., "periods": {"hour": {...}, ...}}`.
pub fn json_report(snapshot: &Snapshot, now: i64) -> serde_json::Value {
    let mut periods = serde_json::Map::new();
    for period in Period::ALL {
        periods.insert(
            period.name().into(),
            counts_json(&period.counts(snapshot, now)),
        );
    }
    serde_json::json!({
        "created": snapshot.created,
        "updated": snapshot.updated,
        "now": now,
        // How far into maillog_file the counts go.
        "log_offset": snapshot.log.offset,
        "periods": periods,
    })
}

fn help(counter: Counter) -> &'static str {
    match counter {
        Counter::Received => "Messages received from SMTP clients.",
        Counter::Delivered => "Recipients delivered to the next hop.",
        Counter::Deferred => "Delivery attempts deferred (per recipient and attempt).",
        Counter::Bounced => "Recipients bounced.",
        Counter::Virus => "Messages in which the scanner found a virus.",
        Counter::Spam => "Messages the scanner scored at spam_kill_level.",
        Counter::Banned => "Messages with a banned attachment.",
        Counter::Quarantined => "Messages put in quarantine.",
        Counter::Held => "Messages put on hold by header or body checks.",
        Counter::Discarded => "Messages accepted and discarded.",
        Counter::Rejected(_) => "Refusals during the SMTP dialogue and by header or body checks.",
    }
}

/// Prometheus's text format: counters since the statistics file was made.
pub fn prometheus(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    for counter in COUNTERS {
        if let Counter::Rejected(_) = counter {
            continue;
        }
        let name = format!("mailgate_{}_total", counter.name());
        let _ = writeln!(out, "# HELP {name} {}", help(counter));
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", snapshot.totals.get(counter));
    }
    let name = "mailgate_rejected_total";
    let _ = writeln!(
        out,
        "# HELP {name} {} By reason.",
        help(Counter::Rejected(Reason::Other))
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for reason in Reason::ALL {
        let _ = writeln!(
            out,
            "{name}{{reason=\"{}\"}} {}",
            reason.name(),
            snapshot.totals.get(Counter::Rejected(reason))
        );
    }
    let _ = writeln!(
        out,
        "# HELP mailgate_stats_updated_timestamp_seconds When the last event was counted.\n\
         # TYPE mailgate_stats_updated_timestamp_seconds gauge\n\
         mailgate_stats_updated_timestamp_seconds {}",
        snapshot.updated
    );
    out
}
