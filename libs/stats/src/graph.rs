//! mailgraph's graphs as SVG: for each of day, week, month and year, the
//! traffic (received, delivered) and the trouble (rejected, greylisted,
//! bounced, deferred, viruses, spam, banned), in messages per minute.
//! Plain SVG with no script, so a browser shows it as an image.

use std::fmt::Write;

use crate::counters::{Counter, Reason};
use crate::ring::{ARCHIVES, Snapshot};
use crate::time::MONTHS;

/// Which graph, over which archive (0 day, 1 week, 2 month, 3 year).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Graph {
    Traffic(usize),
    Trouble(usize),
}

impl Graph {
    /// `traffic-day`, `trouble-year`, ...: the file and URL name.
    pub fn name(self) -> String {
        match self {
            Graph::Traffic(a) => format!("traffic-{}", ARCHIVES[a].name),
            Graph::Trouble(a) => format!("trouble-{}", ARCHIVES[a].name),
        }
    }

    /// The graph a name stands for (`traffic-day` ...).
    pub fn parse(name: &str) -> Option<Graph> {
        let (kind, span) = name.split_once('-')?;
        let archive = ARCHIVES.iter().position(|a| a.name == span)?;
        match kind {
            "traffic" => Some(Graph::Traffic(archive)),
            "trouble" => Some(Graph::Trouble(archive)),
            _ => None,
        }
    }

    /// All eight, day first.
    pub fn all() -> Vec<Graph> {
        (0..ARCHIVES.len())
            .flat_map(|a| [Graph::Traffic(a), Graph::Trouble(a)])
            .collect()
    }

    fn archive(self) -> usize {
        match self {
            Graph::Traffic(a) | Graph::Trouble(a) => a,
        }
    }
}

/// A line on a graph: label, colour, the counters it adds up, filled or not.
struct Series {
    label: &'static str,
    colour: &'static str,
    counters: Vec<Counter>,
    area: bool,
}

fn series(graph: Graph) -> Vec<Series> {
    match graph {
        Graph::Traffic(_) => vec![
            Series {
                label: "received",
                colour: "#00c000",
                counters: vec![Counter::Received],
                area: true,
            },
            Series {
                label: "delivered",
                colour: "#0000ff",
                counters: vec![Counter::Delivered],
                area: false,
            },
        ],
        Graph::Trouble(_) => vec![
            Series {
                label: "rejected",
                colour: "#aa0000",
                counters: Reason::ALL
                    .iter()
                    .filter(|r| **r != Reason::Greylist)
                    .map(|r| Counter::Rejected(*r))
                    .collect(),
                area: true,
            },
            Series {
                label: "greylisted",
                colour: "#999999",
                counters: vec![Counter::Rejected(Reason::Greylist)],
                area: false,
            },
            Series {
                label: "bounced",
                colour: "#000000",
                counters: vec![Counter::Bounced],
                area: false,
            },
            Series {
                label: "deferred",
                colour: "#ff8c00",
                counters: vec![Counter::Deferred],
                area: false,
            },
            Series {
                label: "virus",
                colour: "#dd00dd",
                counters: vec![Counter::Virus],
                area: false,
            },
            Series {
                label: "spam",
                colour: "#00aaaa",
                counters: vec![Counter::Spam],
                area: false,
            },
            Series {
                label: "banned",
                colour: "#8b4513",
                counters: vec![Counter::Banned],
                area: false,
            },
        ],
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 262.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const PLOT_HEIGHT: f64 = 150.0;

/// The smallest 1, 2 or 5 times a power of ten at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|v| *v >= value)
        .unwrap_or(10.0 * power)
}

fn number(value: f64) -> String {
    if value == value.trunc() && value.abs() < 1e9 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Where the x axis gets a labelled tick: the first bin of each new
/// 2 hours (day), day (week), week (month) or month (year), local time.
fn tick(archive: usize, time: i64) -> Option<(i64, String)> {
    let tm = mailgate_log::local_time(time)?;
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    Some(match archive {
        0 => (i64::from(tm.tm_hour / 2), format!("{:02}:00", tm.tm_hour)),
        1 => (
            i64::from(tm.tm_yday),
            DAYS[tm.tm_wday.clamp(0, 6) as usize].to_string(),
        ),
        2 => (
            (time + tm.tm_gmtoff).div_euclid(86_400 * 7),
            format!(
                "{} {:02}",
                MONTHS[tm.tm_mon.clamp(0, 11) as usize],
                tm.tm_mday
            ),
        ),
        _ => (
            i64::from(tm.tm_mon),
            MONTHS[tm.tm_mon.clamp(0, 11) as usize].to_string(),
        ),
    })
}

/// The graph as an SVG document, ending at `now`.
pub fn svg(snapshot: &Snapshot, graph: Graph, now: i64) -> String {
    let archive = graph.archive();
    let spec = ARCHIVES[archive];
    let per_minute = spec.width as f64 / 60.0;
    let lines: Vec<(Series, Vec<u64>)> = series(graph)
        .into_iter()
        .map(|s| {
            let mut values = vec![0u64; spec.rows];
            for counter in &s.counters {
                for (v, c) in values
                    .iter_mut()
                    .zip(snapshot.series(archive, *counter, now))
                {
                    *v += c;
                }
            }
            (s, values)
        })
        .collect();
    let peak = lines
        .iter()
        .flat_map(|(_, v)| v.iter())
        .map(|v| *v as f64 / per_minute)
        .fold(0.0, f64::max);
    let top = nice_ceiling(peak);
    let plot_width = WIDTH - LEFT - RIGHT;
    let step = plot_width / spec.rows as f64;
    let x = |i: usize| LEFT + (i as f64 + 0.5) * step;
    let y = |v: u64| TOP + PLOT_HEIGHT - (v as f64 / per_minute) / top * PLOT_HEIGHT;
    let title = match graph {
        Graph::Traffic(_) => "messages",
        Graph::Trouble(_) => "refused and failed",
    };
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"11\">\n\
         <title>mailgate: {title}, last {}</title>\n\
         <rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#f8f8f8\"/>\n\
         <rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_width}\" height=\"{PLOT_HEIGHT}\" fill=\"#ffffff\" stroke=\"#cccccc\"/>\n\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">{title} per minute, last {}</text>\n",
        spec.name,
        WIDTH / 2.0,
        spec.name
    );
    // Horizontal grid with the rate scale.
    for i in 0..=4 {
        let value = top * f64::from(i) / 4.0;
        let gy = TOP + PLOT_HEIGHT - PLOT_HEIGHT * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{gy:.1}\" x2=\"{:.1}\" y2=\"{gy:.1}\" stroke=\"#e0e0e0\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + plot_width,
            LEFT - 5.0,
            gy + 4.0,
            number(value)
        );
    }
    // Time ticks.
    let first = now.div_euclid(spec.width) - spec.rows as i64 + 1;
    let mut last_key = None;
    for i in 0..spec.rows {
        let Some((key, label)) = tick(archive, (first + i as i64) * spec.width) else {
            continue;
        };
        if last_key.is_some_and(|k| k != key) {
            let tx = x(i);
            let _ = writeln!(
                out,
                "<line x1=\"{tx:.1}\" y1=\"{TOP}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#eeeeee\"/>\
                 <text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
                TOP + PLOT_HEIGHT,
                TOP + PLOT_HEIGHT + 14.0
            );
        }
        last_key = Some(key);
    }
    for (s, values) in &lines {
        let mut path = String::new();
        for (i, v) in values.iter().enumerate() {
            let _ = write!(
                path,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                x(i),
                y(*v)
            );
        }
        if s.area {
            let _ = writeln!(
                out,
                "<path d=\"{path} L{:.1},{:.1} L{:.1},{:.1} Z\" fill=\"{}\" fill-opacity=\"0.6\" stroke=\"none\"/>",
                x(values.len() - 1),
                TOP + PLOT_HEIGHT,
                x(0),
                TOP + PLOT_HEIGHT,
                s.colour
            );
        } else {
            let _ = writeln!(
                out,
                "<path d=\"{path}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.2\"/>",
                s.colour
            );
        }
    }
    // Legend: totals and peaks over the period.
    for (n, (s, values)) in lines.iter().enumerate() {
        let total: u64 = values.iter().sum();
        let max = values.iter().copied().max().unwrap_or(0) as f64 / per_minute;
        let lx = LEFT + (n % 3) as f64 * 215.0;
        let ly = TOP + PLOT_HEIGHT + 36.0 + (n / 3) as f64 * 16.0;
        let _ = writeln!(
            out,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{ly:.1}\" class=\"legend\" data-series=\"{}\" data-total=\"{total}\">{} {total} (max {}/min)</text>",
            ly - 9.0,
            s.colour,
            lx + 14.0,
            s.label,
            s.label,
            number(max)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_scales_are_nice() {
        for graph in Graph::all() {
            assert_eq!(Graph::parse(&graph.name()), Some(graph));
        }
        assert_eq!(Graph::parse("traffic-century"), None);
        assert_eq!(Graph::parse("x"), None);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(0.12), 0.2);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(number(2.0), "2");
        assert_eq!(number(0.25), "0.25");
    }
}
