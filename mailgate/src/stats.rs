//! `mailgate stats`: the traffic counters the stats service keeps, as a
//! table (like a pflogsumm summary over the last hour, day, week, month
//! and year), as JSON, or as mailgraph's graphs in SVG files.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use mailgate_stats::{
    Graph, RingError, STATS_FILE, Snapshot, json_report, svg, text_report, unix_now,
};

use crate::error::Error;
use crate::locate::Invocation;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// One JSON object: the counts of each period.
    #[arg(long, conflicts_with = "graphs")]
    pub json: bool,
    /// Write the eight graphs (traffic-day.svg ... trouble-year.svg) into DIR.
    #[arg(long, value_name = "DIR")]
    pub graphs: Option<PathBuf>,
}

#[derive(Debug)]
pub enum StatsError {
    /// No statistics file: the stats service never ran with this spool.
    Missing(PathBuf),
    Ring(RingError),
    Write {
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatsError::Missing(path) => write!(
                f,
                "no statistics yet ({} does not exist): the stats service writes it; \
                 master.cf needs a line such as \
                 \"127.0.0.1:9155 inet n - y - 1 stats\" and main.cf a maillog_file",
                path.display()
            ),
            StatsError::Ring(e) => write!(f, "{e}"),
            StatsError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for StatsError {}

pub fn run(invocation: &Invocation, args: &StatsArgs) -> Result<(), Error> {
    let config = invocation.load()?;
    let path = Path::new(&config.get("queue_directory")).join(STATS_FILE);
    let snapshot = match Snapshot::read(&path) {
        Ok(snapshot) => snapshot,
        Err(RingError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Err(Error::Stats(StatsError::Missing(path)));
        }
        Err(e) => return Err(Error::Stats(StatsError::Ring(e))),
    };
    let now = unix_now();
    if let Some(dir) = &args.graphs {
        for graph in Graph::all() {
            let file = dir.join(format!("{}.svg", graph.name()));
            std::fs::write(&file, svg(&snapshot, graph, now)).map_err(|source| {
                Error::Stats(StatsError::Write {
                    path: file.clone(),
                    source,
                })
            })?;
        }
        return Ok(());
    }
    let text = if args.json {
        format!("{}\n", json_report(&snapshot, now))
    } else {
        text_report(&snapshot, now)
    };
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Output(e)),
        _ => Ok(()),
    }
}
