//! The gateway's traffic statistics, as mailgraph keeps them: events read
//! from the gateway's own log lines, counted per minute into a round-robin
//! file that keeps a day at one-minute resolution and a year at six hours,
//! and shown as text, JSON, Prometheus metrics and SVG graphs.
//!
//! The stats service (stats/) is the one writer; `mailgate stats` and the
//! web page read the file.

mod counters;
mod export;
mod graph;
mod logline;
mod ring;
mod time;

pub use counters::{COUNTERS, Counter, Counts, Reason};
pub use export::{Period, json_report, prometheus, text_report};
pub use graph::{Graph, svg};
pub use logline::{Event, classify};
pub use ring::{ARCHIVES, Archive, LogPosition, Ring, RingError, Snapshot};
pub use time::{SyslogClock, unix_now};

/// The statistics file inside the spool (queue_directory).
pub const STATS_FILE: &str = "data/stats";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_and_graphs_show_the_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats");
        let now = unix_now();
        let mut ring = Ring::open(&path, now - 100).unwrap();
        for counter in [
            Counter::Received,
            Counter::Received,
            Counter::Delivered,
            Counter::Rejected(Reason::Relay),
            Counter::Rejected(Reason::Greylist),
        ] {
            ring.count(
                Event {
                    time: now - 5,
                    counter,
                },
                now,
            );
        }
        ring.flush().unwrap();
        let snap = Snapshot::read(&path).unwrap();
        let json = json_report(&snap, now);
        for period in ["hour", "day", "week", "month", "year", "total"] {
            assert_eq!(json["periods"][period]["received"], 2, "{period}");
            assert_eq!(json["periods"][period]["rejected"]["total"], 2);
            assert_eq!(json["periods"][period]["rejected"]["relay"], 1);
            assert_eq!(json["periods"][period]["greylisted"], 1);
        }
        let text = text_report(&snap, now);
        let received = text.lines().find(|l| l.starts_with("received ")).unwrap();
        assert_eq!(
            received.split_whitespace().collect::<Vec<_>>(),
            ["received", "2", "2", "2", "2", "2", "2"]
        );
        let metrics = prometheus(&snap);
        assert!(
            metrics.contains("\nmailgate_received_total 2\n"),
            "{metrics}"
        );
        assert!(metrics.contains("\nmailgate_rejected_total{reason=\"relay\"} 1\n"));
        for graph in Graph::all() {
            let svg = svg(&snap, graph, now);
            assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
            match graph {
                Graph::Traffic(_) => assert!(svg.contains(">received 2 (max "), "{svg}"),
                Graph::Trouble(_) => {
                    assert!(svg.contains(">rejected 1 (max "));
                    assert!(svg.contains(">greylisted 1 (max "));
                }
            }
        }
    }
}
