//! How many processes run one master.cf service, how many sessions each
//! serves, and how many runtime threads each has.
//!
//! master.cf's maxproc column keeps Postfix's meaning: the most sessions
//! (or deliveries) the service handles at once, over all its processes.
//! `mailgate_service_processes` (main.cf, or `-o` on one service) says how
//! many processes share the service's listening socket; each gets a fixed
//! share of maxproc (the shares add up to maxproc exactly, and no process
//! gets none), and takes a session slot before it accepts, so a process
//! whose share is in use leaves the next connection to the others.

use std::path::Path;

use crate::error::Diagnostic;
use crate::main_cf::MainConfig;
use crate::master_cf::{MasterConfig, ServiceEntry};

pub const PROCESSES: &str = "mailgate_service_processes";
pub const THREADS: &str = "mailgate_service_threads";

/// The most processes of one service, and the most runtime threads of one
/// process: bounds against a typo such as 10000.
pub const MAX_PROCESSES: u32 = 256;
pub const MAX_THREADS: i64 = 256;

/// maxproc 0 (no limit) still needs a bound in each process.
pub const UNLIMITED_SESSIONS: u32 = 10_000;

/// The programs that may run as several processes: they keep no state that
/// only one process may own. qmgr owns the queue, verify and greylist a
/// cache file, stats its counts file, tlskeys and web are small; they run
/// as one.
pub const MULTI_PROCESS_PROGRAMS: &[&str] = &["smtpd", "cleanup", "relay", "scanner"];

/// `mailgate_service_processes` as written: `auto` or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessCount {
    /// The number of cores for the programs in [`MULTI_PROCESS_PROGRAMS`],
    /// one for the others.
    Auto,
    Fixed(u32),
}

impl ProcessCount {
    pub fn parse(value: &str) -> Result<ProcessCount, String> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("auto") {
            return Ok(ProcessCount::Auto);
        }
        match value.parse::<u32>() {
            Ok(n) if (1..=MAX_PROCESSES).contains(&n) => Ok(ProcessCount::Fixed(n)),
            _ => Err(format!(
                "{PROCESSES} = {value}: expected auto or a number of processes from 1 to {MAX_PROCESSES}"
            )),
        }
    }
}

/// The processes of one service and the session limit of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessPlan {
    /// One entry per process: how many sessions it serves at once.
    pub sessions: Vec<u32>,
}

/// maxproc as the master applies it: `-` is default_process_limit, 0 means
/// no limit (None).
pub fn service_limit(entry: &ServiceEntry, config: &MainConfig) -> Option<u32> {
    match entry.maxproc {
        Some(0) => None,
        Some(n) => Some(n),
        None => Some(config.int("default_process_limit").clamp(1, 10_000) as u32),
    }
}

/// How many processes run `entry` (whose settings, with its `-o`
/// overrides, are `config`) on a machine with `cores` cores, and each one's
/// share of maxproc. Errors are those `mailgate check` reports.
pub fn plan(entry: &ServiceEntry, config: &MainConfig, cores: u32) -> Result<ProcessPlan, String> {
    let multi = MULTI_PROCESS_PROGRAMS.contains(&entry.program());
    let count = ProcessCount::parse(&config.get(PROCESSES))?;
    // main.cf's value is for the programs that can run several; a service's
    // own -o asking a one-process program for more is a mistake.
    let own = entry.overrides.iter().any(|o| o.name.trim() == PROCESSES);
    let wanted = match count {
        ProcessCount::Fixed(n) if n > 1 && !multi && own => {
            return Err(format!(
                "{PROCESSES} = {n}: {} runs as one process (only {} may run several)",
                entry.program(),
                MULTI_PROCESS_PROGRAMS.join(", ")
            ));
        }
        _ if !multi => 1,
        ProcessCount::Auto => cores.clamp(1, MAX_PROCESSES),
        ProcessCount::Fixed(n) => n,
    };
    let sessions = match service_limit(entry, config) {
        Some(limit) => split(limit, wanted),
        None => vec![UNLIMITED_SESSIONS; wanted as usize],
    };
    Ok(ProcessPlan { sessions })
}

/// `limit` sessions over at most `processes` processes: the shares differ
/// by one at most, add up to `limit`, and none is zero (fewer processes
/// when the limit is smaller than their number).
pub fn split(limit: u32, processes: u32) -> Vec<u32> {
    let limit = limit.max(1);
    let processes = processes.clamp(1, limit);
    let (each, rest) = (limit / processes, limit % processes);
    (0..processes).map(|i| each + u32::from(i < rest)).collect()
}

/// The runtime threads of one process (`mailgate_service_threads`, checked
/// to be in 1..=MAX_THREADS by `mailgate check`).
pub fn runtime_threads(config: &MainConfig) -> usize {
    config.int(THREADS).clamp(1, MAX_THREADS) as usize
}

/// The cores this machine gives the master (its affinity and cgroup).
pub fn cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(MAX_PROCESSES))
        .unwrap_or(1)
}

/// What `mailgate check` says about the two parameters, for main.cf and
/// every service's `-o`: a value that is not a count, a thread count out
/// of range, several processes of a program that must run as one.
pub fn problems(main: &MainConfig, master: &MasterConfig) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let place = |config: &MainConfig, name: &str| {
        config
            .origin(name)
            .map(|(file, line)| (file.to_path_buf(), line))
            .unwrap_or_else(|| (main.config_dir().join("main.cf"), 0))
    };
    let mut seen = std::collections::HashSet::new();
    let mut report = |file: &Path, line: usize, message: String| {
        if seen.insert((file.to_path_buf(), line, message.clone())) {
            out.push(Diagnostic::new(file, line, message));
        }
    };
    let threads_ok = |config: &MainConfig| (1..=MAX_THREADS).contains(&config.int(THREADS));
    if let Err(e) = ProcessCount::parse(&main.get(PROCESSES)) {
        let (file, line) = place(main, PROCESSES);
        report(&file, line, e);
    }
    if !threads_ok(main) {
        let (file, line) = place(main, THREADS);
        report(&file, line, threads_message(main));
    }
    for entry in &master.services {
        let Ok(config) = main.with_overrides(&entry.overrides) else {
            continue;
        };
        // main.cf's bad value is reported once, above.
        let inherited_error = ProcessCount::parse(&config.get(PROCESSES)).is_err()
            && config.get(PROCESSES) == main.get(PROCESSES);
        match plan(entry, &config, 1) {
            Err(e) if !inherited_error => {
                let (file, line) = place(&config, PROCESSES);
                report(&file, line, format!("service {}: {e}", entry.name));
            }
            _ => {}
        }
        if !threads_ok(&config) {
            let (file, line) = place(&config, THREADS);
            report(&file, line, threads_message(&config));
        }
    }
    out
}

/// smtpd's per-client limits (Postfix's anvil): the anvil service counts
/// them over every smtpd process. Without an `anvil` service in master.cf
/// each smtpd process counts them for itself, so with several processes a
/// client may reach each limit in every one: `mailgate check` says so for
/// each smtpd service that runs several while a limit is in force.
pub const PER_CLIENT_LIMITS: &[&str] = &[
    "smtpd_client_connection_count_limit",
    "smtpd_client_connection_rate_limit",
    "smtpd_client_message_rate_limit",
    "smtpd_client_recipient_rate_limit",
    "smtpd_client_auth_rate_limit",
];

pub fn warnings(main: &MainConfig, master: &MasterConfig, cores: u32) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let anvil = master
        .services
        .iter()
        .any(|e| e.program() == "anvil" && e.name == "anvil");
    if anvil {
        return out;
    }
    for entry in master.services.iter().filter(|e| e.program() == "smtpd") {
        let Ok(config) = main.with_overrides(&entry.overrides) else {
            continue;
        };
        let Ok(plan) = plan(entry, &config, cores) else {
            continue;
        };
        let processes = plan.sessions.len();
        if processes < 2 {
            continue;
        }
        let limits: Vec<String> = PER_CLIENT_LIMITS
            .iter()
            .filter(|name| config.int(name) > 0)
            .map(|name| format!("{name} = {}", config.get(name)))
            .collect();
        if limits.is_empty() {
            continue;
        }
        out.push(Diagnostic::new(
            &entry.file,
            entry.line,
            format!(
                "service {} runs {processes} smtpd processes and master.cf has \
                 no anvil service: {} counted in each process, so a client may reach the \
                 limit in each; add \"anvil unix - - y - 1 anvil\" to master.cf",
                entry.name,
                limits.join(", ")
            ),
        ));
    }
    out
}

fn threads_message(config: &MainConfig) -> String {
    format!(
        "{THREADS} = {}: expected a number of threads from 1 to {MAX_THREADS}",
        config.int(THREADS)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_maxproc_and_none_is_empty() {
        assert_eq!(split(100, 3), vec![34, 33, 33]);
        assert_eq!(split(100, 1), vec![100]);
        assert_eq!(split(2, 4), vec![1, 1]);
        assert_eq!(split(1, 8), vec![1]);
        for limit in 1..60 {
            for processes in 1..20 {
                let shares = split(limit, processes);
                assert_eq!(shares.iter().sum::<u32>(), limit);
                assert!(shares.iter().all(|&s| s > 0));
                assert!(shares.len() as u32 <= processes);
            }
        }
    }

    #[test]
    fn counts_are_auto_or_a_bounded_number() {
        assert_eq!(ProcessCount::parse("auto"), Ok(ProcessCount::Auto));
        assert_eq!(ProcessCount::parse("AUTO"), Ok(ProcessCount::Auto));
        assert_eq!(ProcessCount::parse("4"), Ok(ProcessCount::Fixed(4)));
        for bad in ["0", "-1", "4x", "", "autp", "257"] {
            assert!(ProcessCount::parse(bad).is_err(), "{bad}");
        }
    }
}
