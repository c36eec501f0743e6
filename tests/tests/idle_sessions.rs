//! Idle sessions are cheap, on the real master: 500 clients that said EHLO
//! and wait cost the smtpd processes and anvil less than 16 KiB each
//! (issue 14 asks 10,000 of them of one gateway; `bench/sessions` measures
//! those, against Postfix), and a new client is still served. A service
//! whose share of maxproc needs more descriptors than the default gets
//! them: the sandbox raises its limit with maxproc.

use std::fs;

use mailgate_tests::{Backend, Client, Gateway, wait_for};
use nix::sys::resource::{Resource, getrlimit};
use nix::unistd::Pid;

const SESSIONS: usize = 500;
/// The budget per idle session (KiB), smtpd processes and anvil together.
const KIB_PER_SESSION: u64 = 16;
/// master.cf's maxproc for smtpd, in one process: its descriptor limit
/// must grow past the 4096 default (4 per session and 1024 spare).
const MAXPROC: u64 = 1100;

/// Pss (KiB) of the processes, from smaps_rollup.
fn pss_kib(pids: &[Pid]) -> u64 {
    pids.iter()
        .map(|pid| {
            let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .unwrap_or_else(|e| panic!("smaps_rollup of {pid}: {e}"));
            rollup
                .lines()
                .find_map(|line| line.strip_prefix("Pss:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<u64>().ok())
                .expect("a Pss line")
        })
        .sum()
}

/// The soft limit on open files of a process.
fn open_files_limit(pid: Pid) -> u64 {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .expect("a Max open files line")
}

#[test]
fn five_hundred_idle_sessions_cost_less_than_16_kib_each() {
    let backend = Backend::start();
    // Every session is counted in anvil (no exception for the loopback
    // clients), under a limit raised for the test, as bench/sessions does.
    let gateway = Gateway::configure(
        &backend,
        "smtpd_client_event_limit_exceptions =\n\
         smtpd_client_connection_count_limit = 2000\n\
         mailgate_service_processes = 1\n\
         smtpd_peername_lookup = no\n",
    );
    let master_cf = fs::read_to_string(gateway.path("master.cf")).expect("master.cf");
    let master_cf = master_cf.replacen(
        " inet n - y - 100 smtpd",
        &format!(" inet n - y - {MAXPROC} smtpd"),
        1,
    );
    fs::write(gateway.path("master.cf"), master_cf).expect("master.cf");
    let gateway = gateway.launch();
    let smtpd = wait_for("one confined smtpd", || {
        let pids = gateway.worker_pids("smtpd");
        (pids.len() == 1
            && fs::read_to_string(format!("/proc/{}/status", pids[0]))
                .is_ok_and(|s| s.contains("\nSeccomp:\t2\n")))
        .then_some(pids)
    });

    // What the sandbox sets, or the hard limit it inherited when that is
    // lower and cannot be raised (not root, or root in a container
    // without CAP_SYS_RESOURCE).
    let wanted = MAXPROC * 4 + 1024;
    let (_, our_hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let limit = open_files_limit(smtpd[0]);
    assert!(
        limit == wanted || (limit == our_hard && our_hard < wanted),
        "smtpd may open {limit} files; {wanted} wanted (hard limit here {our_hard})"
    );

    let processes = || {
        let mut pids = gateway.worker_pids("smtpd");
        pids.extend(gateway.worker_pids("anvil"));
        pids
    };
    // One session first, so that what every process sets up once (the
    // anvil connection, the runtime's first allocations) is not counted.
    let mut first = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    assert!(first.send("EHLO warm.example").starts_with("250"));
    assert!(first.send("QUIT").starts_with("221"));
    let before = pss_kib(&processes());

    let mut held = Vec::with_capacity(SESSIONS);
    for n in 0..SESSIONS {
        let from = format!("127.0.{}.{}", 10 + n / 250, 1 + n % 250);
        let mut client = Client::connect(gateway.port, &from).expect("connect");
        assert!(client.greeting.starts_with("220"), "{}", client.greeting);
        let ehlo = client.send("EHLO idle.example");
        assert!(ehlo.starts_with("250"), "session {n}: {ehlo}");
        held.push(client);
    }
    let after = pss_kib(&processes());
    let per_session = after.saturating_sub(before) / SESSIONS as u64;
    assert!(
        per_session < KIB_PER_SESSION,
        "{per_session} KiB per idle session ({before} KiB before, {after} KiB after {SESSIONS})"
    );

    // A new client is served while they are held, and they are all still
    // there.
    let mut new = Client::connect(gateway.port, "127.0.9.9").expect("connect");
    assert!(new.greeting.starts_with("220"), "{}", new.greeting);
    assert!(new.send("EHLO new.example").starts_with("250"));
    assert!(new.send("QUIT").starts_with("221"));
    for client in held.iter_mut().step_by(50) {
        assert!(client.send("NOOP").starts_with("250"));
    }
}
