//! The anvil service counts smtpd's per-client limits over every smtpd
//! process, as Postfix's anvil does: a client over
//! smtpd_client_connection_count_limit gets 421 even when each of its
//! sessions lands on another process; a session that ends, or a process
//! that dies, counts its client down; `mailgate status` lists anvil
//! confined. Without anvil, smtpd counts in each process, logs why, and the
//! limit still holds there.

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use mailgate_tests::{Backend, Client, Gateway, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Three smtpd processes of one session each: the second session of a
/// client can only land on another process than its first.
const PROCESSES: usize = 3;

const LIMITS: &str = "smtpd_client_connection_count_limit = 2\n\
                      smtpd_client_event_limit_exceptions =\n\
                      anvil_status_update_time = 1s\n";

fn gateway_with_smtpd(backend: &Backend, main_cf: &str, line: &str) -> Gateway {
    let gateway = Gateway::configure(backend, main_cf);
    let master_cf = gateway.path("master.cf");
    let text = fs::read_to_string(&master_cf).expect("master.cf");
    let smtpd_line = format!("127.0.0.1:{} inet n - y - 100 smtpd\n", gateway.port);
    assert!(text.contains(&smtpd_line), "{text}");
    let smtpd = format!("127.0.0.1:{} inet n - y - {line}\n", gateway.port);
    fs::write(&master_cf, text.replace(&smtpd_line, &smtpd)).expect("master.cf");
    gateway
}

/// The pids of the smtpd processes that logged `connect from
/// unknown[ADDRESS]`, in order, once there are `count` of them.
fn serving_pids(gateway: &Gateway, address: &str, count: usize) -> Vec<Pid> {
    let needle = format!("]: connect from unknown[{address}]");
    wait_for(&format!("{count} connections from {address}"), || {
        let pids: Vec<Pid> = gateway
            .log()
            .lines()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| {
                let (_, rest) = l.split_once("/smtpd[")?;
                Some(Pid::from_raw(rest.split_once(']')?.0.parse().ok()?))
            })
            .collect();
        (pids.len() >= count).then_some(pids)
    })
}

fn confined_smtpds(gateway: &Gateway) -> BTreeSet<Pid> {
    wait_for(&format!("{PROCESSES} confined smtpd processes"), || {
        let pids = gateway.worker_pids("smtpd");
        let confined = pids.iter().all(|pid| {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|status| status.contains("\nSeccomp:\t2\n"))
        });
        (pids.len() == PROCESSES && confined).then(|| pids.into_iter().collect())
    })
}

#[test]
fn the_connection_count_limit_holds_across_smtpd_processes() {
    let backend = Backend::start();
    let gateway = gateway_with_smtpd(
        &backend,
        LIMITS,
        &format!("{PROCESSES} smtpd -o mailgate_service_processes={PROCESSES}"),
    )
    .launch();
    let smtpds = confined_smtpds(&gateway);

    // anvil runs confined, as `mailgate status` shows.
    let anvil = wait_for("a confined anvil process", || {
        let pids = gateway.worker_pids("anvil");
        let pid = *pids.first()?;
        fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|status| status.contains("\nSeccomp:\t2\n"))
            .then_some(pid)
    });
    let (code, status, err) = gateway.admin(&["status"]);
    assert_eq!(code, 0, "{err}");
    let line = status
        .lines()
        .find(|l| l.starts_with("anvil "))
        .unwrap_or_else(|| panic!("no anvil line in:\n{status}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[1], "anvil", "{line}");
    assert_eq!(fields[2], anvil.to_string(), "{line}");
    assert!(
        line.contains(" 1          2 (filter) enforced (ABI "),
        "{line}"
    );

    // Two sessions of one client, each on its own process (each process
    // has one slot), are within the limit; the third, on the last
    // process, is over it although that process has none of the client's
    // sessions.
    let first = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert!(first.greeting.starts_with("220"), "{}", first.greeting);
    let second = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert!(second.greeting.starts_with("220"), "{}", second.greeting);
    let third = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert_eq!(
        third.greeting,
        "421 4.7.0 gw.example.com Error: too many connections from 127.0.0.2"
    );
    let pids = serving_pids(&gateway, "127.0.0.2", 3);
    let distinct: BTreeSet<Pid> = pids.iter().copied().collect();
    assert_eq!(
        distinct, smtpds,
        "each session on its own process: {pids:?}"
    );
    let warning = gateway.wait_for_log("Connection concurrency limit exceeded");
    assert!(
        warning.contains(&format!(
            "/smtpd[{}]: warning: Connection concurrency limit exceeded: 3 from unknown[127.0.0.2] for service 127.0.0.1:{}",
            pids[2], gateway.port
        )),
        "{warning}"
    );
    drop(third);
    // anvil logs the highest counts as Postfix's does.
    let statistics = gateway.wait_for_log(&format!(
        "statistics: max connection count 3 for (127.0.0.1:{}:127.0.0.2) at ",
        gateway.port
    ));
    assert!(
        statistics.contains(&format!("/anvil[{anvil}]: statistics: ")),
        "{statistics}"
    );

    // A session that ends counts its client down in anvil: the next one,
    // on whichever process, is within the limit again.
    drop(first);
    let again = wait_for("a session within the limit after one ended", || {
        let client = Client::connect(gateway.port, "127.0.0.2").ok()?;
        client.greeting.starts_with("220").then_some(client)
    });

    // A process that dies takes its sessions' counts with it (anvil counts
    // down what its connection counted), so a client is not locked out.
    let second_pid = pids[1];
    kill(second_pid, Signal::SIGKILL).expect("kill");
    let _fourth = wait_for("a session within the limit after a process died", || {
        let client = Client::connect(gateway.port, "127.0.0.2").ok()?;
        client.greeting.starts_with("220").then_some(client)
    });
    drop((second, again));
    let log = gateway.log();
    assert!(
        !log.contains("counting the per-client limits in this smtpd process only"),
        "{log}"
    );
}

/// The message rate is counted across processes too: three sessions of
/// one client held at once, each on its own process, share
/// smtpd_client_message_rate_limit.
#[test]
fn the_message_rate_limit_holds_across_smtpd_processes() {
    let backend = Backend::start();
    let gateway = gateway_with_smtpd(
        &backend,
        "smtpd_client_message_rate_limit = 2\n\
         smtpd_client_event_limit_exceptions =\n",
        &format!("{PROCESSES} smtpd -o mailgate_service_processes={PROCESSES}"),
    )
    .launch();
    let smtpds = confined_smtpds(&gateway);
    let mut sessions: Vec<Client> = (0..PROCESSES)
        .map(|_| {
            let client = Client::connect(gateway.port, "127.0.0.2").expect("connect");
            assert!(client.greeting.starts_with("220"), "{}", client.greeting);
            client
        })
        .collect();
    let pids: BTreeSet<Pid> = serving_pids(&gateway, "127.0.0.2", PROCESSES)
        .into_iter()
        .collect();
    assert_eq!(pids, smtpds, "each session on its own process");
    let mut replies = Vec::new();
    for client in &mut sessions {
        client.send("EHLO client.example.org");
        replies.push(client.send("MAIL FROM:<a@sender.example>"));
    }
    assert!(replies[0].starts_with("250"), "{replies:?}");
    assert!(replies[1].starts_with("250"), "{replies:?}");
    assert_eq!(replies[2], "450 4.7.1 Error: too much mail from 127.0.0.2");
    gateway.wait_for_log(
        "warning: Message delivery request rate limit exceeded: 3 from unknown[127.0.0.2]",
    );
}

/// anvil killed and restarted by the master: the smtpd processes connect
/// to the new one on the same socket at their next question, without
/// falling back to their own counts, and the limit holds across them again.
#[test]
fn smtpd_reconnects_to_a_restarted_anvil() {
    let backend = Backend::start();
    let gateway = gateway_with_smtpd(
        &backend,
        LIMITS,
        &format!("{PROCESSES} smtpd -o mailgate_service_processes={PROCESSES}"),
    )
    .launch();
    confined_smtpds(&gateway);
    let confined_anvil = || {
        let pids = gateway.worker_pids("anvil");
        let pid = *pids.first()?;
        fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|status| status.contains("\nSeccomp:\t2\n"))
            .then_some(pid)
    };
    let anvil = wait_for("a confined anvil process", confined_anvil);
    // Every smtpd process has its connection to the first anvil.
    for n in 0..PROCESSES {
        let client = Client::connect(gateway.port, &format!("127.0.1.{n}")).expect("connect");
        assert!(client.greeting.starts_with("220"), "{}", client.greeting);
    }
    kill(anvil, Signal::SIGKILL).expect("kill anvil");
    wait_for("a new confined anvil process", || {
        confined_anvil().filter(|&pid| pid != anvil)
    });
    let first = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert!(first.greeting.starts_with("220"), "{}", first.greeting);
    let second = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert!(second.greeting.starts_with("220"), "{}", second.greeting);
    let third = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert_eq!(
        third.greeting,
        "421 4.7.0 gw.example.com Error: too many connections from 127.0.0.2"
    );
    let pids: BTreeSet<Pid> = serving_pids(&gateway, "127.0.0.2", 3).into_iter().collect();
    assert_eq!(pids.len(), PROCESSES, "each session on its own process");
    let log = gateway.log();
    assert!(
        !log.contains("counting the per-client limits in this smtpd process only"),
        "{log}"
    );
}

#[test]
fn without_anvil_each_smtpd_process_still_counts() {
    let backend = Backend::start();
    let gateway = gateway_with_smtpd(
        &backend,
        "smtpd_client_connection_count_limit = 1\n\
         smtpd_client_event_limit_exceptions =\n",
        "100 smtpd -o mailgate_service_processes=1",
    );
    let master_cf = gateway.path("master.cf");
    let text = fs::read_to_string(&master_cf).expect("master.cf");
    assert!(text.contains("anvil unix - - y - 1 anvil\n"), "{text}");
    fs::write(&master_cf, text.replace("anvil unix - - y - 1 anvil\n", "")).expect("master.cf");
    let gateway = gateway.launch();
    let first = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert!(first.greeting.starts_with("220"), "{}", first.greeting);
    let second = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert_eq!(
        second.greeting,
        "421 4.7.0 gw.example.com Error: too many connections from 127.0.0.2"
    );
    let line = gateway.wait_for_log("counting the per-client limits in this smtpd process only");
    assert!(
        line.contains("warning: anvil service private/anvil: cannot connect"),
        "{line}"
    );
    // Said once, not for every session.
    let _third = Client::connect(gateway.port, "127.0.0.3").expect("connect");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        gateway
            .log()
            .matches("counting the per-client limits in this smtpd process only")
            .count(),
        1
    );
}
