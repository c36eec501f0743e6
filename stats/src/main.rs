//! stats: the gateway's own traffic counters, kept as mailgraph keeps
//! them. It follows maillog_file (the log every service writes), counts
//! each event line per minute into the round-robin file in the spool
//! (data/stats), and answers `GET /metrics` in Prometheus's format on its
//! listener. `mailgate stats` and the web page read the file.
//!
//! Reading the log rather than being told by each service keeps every
//! other sandbox as it is: no service gains a socket or a file for this.
//! The log and the statistics file are opened before the sandbox; after
//! it, the process opens nothing and connects nowhere.

mod follow;
mod metrics;

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailgate_sandbox::{Worker, die, profiles};
use mailgate_stats::{Ring, STATS_FILE, unix_now};

use crate::follow::Follower;

/// How often the log is looked at for new lines.
const POLL: Duration = Duration::from_millis(250);

fn main() -> ExitCode {
    let mut worker = Worker::start("stats");
    let log_path = worker.config.get("maillog_file");
    if log_path.trim().is_empty() {
        die(
            "maillog_file is empty: the stats service counts the lines of the log file; \
             set maillog_file (mailgate check says so too)",
        );
    }
    let log = std::fs::File::open(&log_path)
        .unwrap_or_else(|e| die(format!("maillog_file = {log_path}: cannot open it: {e}")));
    let spool = PathBuf::from(worker.config.get("queue_directory"));
    let path = spool.join(STATS_FILE);
    let ring = Ring::open(&path, unix_now()).unwrap_or_else(|e| die(e));
    give_to_mail_owner(&path, &worker.config.get("mail_owner"));
    let follower = Follower::new(log, ring, worker.config.get("syslog_name"));
    let listener = worker.take_listener();
    let mut worker = worker.enter_sandbox(&profiles::STATS);
    let shutdown = worker.shutdown();
    let runtime = worker.runtime(1);
    let follower = Arc::new(Mutex::new(follower));
    runtime.block_on(async move {
        let counting = follow::run(follower.clone(), POLL);
        let serving = metrics::serve(listener, follower);
        tokio::select! {
            _ = counting => {}
            _ = serving => {}
            _ = shutdown.wait() => {}
        }
    });
    ExitCode::SUCCESS
}

/// The web page reads the file as mail_owner; as root the file was just
/// made by root.
fn give_to_mail_owner(path: &Path, owner: &str) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let identity = mailgate_sandbox::lookup_user("mail_owner", owner).unwrap_or_else(|e| die(e));
    // By descriptor, never through a link: data/ is mail_owner's.
    let file = match std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) => die(format!("{}: {e}", path.display())),
    };
    let owned = file
        .metadata()
        .map(|m| m.uid() == identity.uid.as_raw() && m.gid() == identity.gid.as_raw())
        .unwrap_or(false);
    if !owned && let Err(e) = nix::unistd::fchown(&file, Some(identity.uid), Some(identity.gid)) {
        die(format!(
            "{}: cannot give it to mail_owner: {e}",
            path.display()
        ));
    }
}
