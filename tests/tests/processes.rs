//! Several processes per service, end to end: the real master runs three
//! smtpd processes on one listening socket, master.cf's maxproc limits the
//! service as a whole (each process serves its share), `mailgate status`
//! lists each process confined, and a process killed with SIGKILL costs
//! only its own sessions: the sessions on the other processes finish their
//! mail, and the master starts a new process in its place. Each process
//! runs the runtime threads mailgate_service_threads asks for.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Duration;

use mailgate_tests::{Backend, Client, Gateway, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// smtpd processes, and master.cf's maxproc for the service: two sessions
/// each.
const PROCESSES: usize = 3;
const MAXPROC: usize = 6;

/// The smtpd processes once all of them are inside their sandbox.
fn confined_smtpds(gateway: &Gateway, count: usize) -> BTreeSet<Pid> {
    wait_for(&format!("{count} confined smtpd processes"), || {
        let pids = gateway.worker_pids("smtpd");
        let confined = pids.iter().all(|pid| {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|status| status.contains("\nSeccomp:\t2\n"))
        });
        (pids.len() == count && confined).then(|| pids.into_iter().collect())
    })
}

/// The pid of the smtpd process that logged `connect from ...[ADDRESS]`.
fn serving_pid(gateway: &Gateway, address: &str) -> Pid {
    let needle = format!("]: connect from unknown[{address}]");
    let line = gateway.wait_for_log(&needle);
    let pid = line
        .split_once("/smtpd[")
        .and_then(|(_, rest)| rest.split_once(']'))
        .and_then(|(pid, _)| pid.parse().ok())
        .unwrap_or_else(|| panic!("no smtpd pid in {line:?}"));
    Pid::from_raw(pid)
}

/// A session that has sent its message's first lines and holds the rest.
struct Held {
    client: Client,
    address: String,
    marker: String,
}

fn hold_session(port: u16, n: usize) -> Held {
    let address = format!("127.0.9.{n}");
    let mut client = Client::connect(port, &address).expect("connect");
    assert!(client.greeting.starts_with("220"), "{}", client.greeting);
    for (command, expect) in [
        ("EHLO client.example.org", "250"),
        ("MAIL FROM:<a@sender.example>", "250"),
        ("RCPT TO:<b@example.com>", "250"),
        ("DATA", "354"),
    ] {
        let reply = client.send(command);
        assert!(reply.starts_with(expect), "session {n}: {command}: {reply}");
    }
    let marker = format!("MARKER-HELD-{n}");
    client.write_raw(
        format!("From: a@sender.example\r\nTo: b@example.com\r\nSubject: held {n}\r\n\r\nFirst half.\r\n")
            .as_bytes(),
    );
    Held {
        client,
        address,
        marker,
    }
}

/// Whether a connection is greeted within `patience`.
fn greeted_within(stream: &mut TcpStream, patience: Duration) -> Option<String> {
    stream.set_read_timeout(Some(patience)).expect("timeout");
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        Ok(0) => None,
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) => panic!("read: {e}"),
    }
}

#[test]
fn a_killed_smtpd_process_costs_only_its_own_sessions() {
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "");
    // Only smtpd runs three processes (its own -o); the other services run
    // mailgate_service_processes' default.
    let master_cf = gateway.path("master.cf");
    let text = fs::read_to_string(&master_cf).expect("master.cf");
    let smtpd_line = format!("127.0.0.1:{} inet n - y - 100 smtpd\n", gateway.port);
    assert!(text.contains(&smtpd_line), "{text}");
    fs::write(
        &master_cf,
        text.replace(
            &smtpd_line,
            &format!(
                "127.0.0.1:{} inet n - y - {MAXPROC} smtpd -o mailgate_service_processes={PROCESSES} -o mailgate_service_threads=3\n",
                gateway.port
            ),
        ),
    )
    .expect("master.cf");
    let gateway = gateway.launch();
    let before = confined_smtpds(&gateway, PROCESSES);
    // Each runs the runtime threads its -o asks for (the sandbox comes
    // first, the runtime's threads a moment later).
    for pid in &before {
        let workers = || {
            fs::read_dir(format!("/proc/{pid}/task"))
                .expect("tasks")
                .flatten()
                .filter(|task| {
                    fs::read_to_string(task.path().join("comm"))
                        .is_ok_and(|comm| comm.trim() == "tokio-rt-worker")
                })
                .count()
        };
        wait_for(&format!("smtpd {pid} to run 3 runtime threads"), || {
            (workers() == 3).then_some(())
        });
    }

    // `mailgate status` lists each process of the service, confined.
    let (code, status, err) = gateway.admin(&["status"]);
    assert_eq!(code, 0, "{err}");
    let service = format!("127.0.0.1:{}", gateway.port);
    let lines: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with(&format!("{service} ")))
        .collect();
    assert_eq!(lines.len(), PROCESSES, "{status}");
    for (index, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[1], "smtpd", "{line}");
        let pid = Pid::from_raw(fields[2].parse().expect("pid"));
        assert!(before.contains(&pid), "{line}");
        assert_eq!(fields[3], format!("{}/{PROCESSES}", index + 1), "{line}");
        assert!(
            line.contains(" 1          2 (filter) enforced (ABI "),
            "{line}"
        );
    }

    // maxproc sessions in all: each process takes its share (two) and then
    // leaves the next connection to the others.
    let mut held: Vec<Held> = (1..=MAXPROC)
        .map(|n| hold_session(gateway.port, n))
        .collect();
    let mut by_pid: BTreeMap<Pid, Vec<usize>> = BTreeMap::new();
    for (i, session) in held.iter().enumerate() {
        by_pid
            .entry(serving_pid(&gateway, &session.address))
            .or_default()
            .push(i);
    }
    assert_eq!(
        by_pid.keys().copied().collect::<BTreeSet<Pid>>(),
        before,
        "every process serves sessions"
    );
    assert!(
        by_pid
            .values()
            .all(|sessions| sessions.len() == MAXPROC / PROCESSES),
        "each process serves its share of maxproc: {by_pid:?}"
    );
    // The service is at maxproc: one more client waits in the backlog.
    let mut waiting = TcpStream::connect(("127.0.0.1", gateway.port)).expect("connect");
    assert_eq!(
        greeted_within(&mut waiting, Duration::from_secs(2)),
        None,
        "a session beyond maxproc was served"
    );

    // SIGKILL to one process: its sessions are lost, no other.
    let (&victim, lost) = by_pid.iter().next().expect("a process");
    let lost: BTreeSet<usize> = lost.iter().copied().collect();
    kill(victim, Signal::SIGKILL).expect("kill");
    gateway.wait_for_log(&format!("pid {victim} killed by signal 9"));
    for (i, session) in held.iter_mut().enumerate() {
        session
            .client
            .write_raw(format!("{}\r\n.\r\n", session.marker).as_bytes());
        let reply = session.client.reply();
        if lost.contains(&i) {
            assert_eq!(reply, "", "session {i} of the killed process answered");
        } else {
            assert!(
                reply.starts_with("250 2.0.0 Ok: queued as "),
                "session {i}: {reply}"
            );
            assert!(session.client.send("QUIT").starts_with("221"));
        }
    }
    for (i, session) in held.iter().enumerate() {
        if !lost.contains(&i) {
            backend.wait_for_message(&session.marker);
        }
    }

    // The master starts a new process in place of the killed one; it
    // serves the client that was waiting.
    let after = confined_smtpds(&gateway, PROCESSES);
    assert!(!after.contains(&victim), "{after:?}");
    assert_eq!(before.intersection(&after).count(), PROCESSES - 1);
    let greeting = greeted_within(&mut waiting, Duration::from_secs(30))
        .expect("the waiting client is served");
    assert!(greeting.starts_with("220 "), "{greeting}");
    drop(waiting);
    let mut client = Client::connect(gateway.port, "127.0.9.20").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["b@example.com"],
        &mailgate_tests::message("after", "MARKER-AFTER-RESTART"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(client.send("QUIT").starts_with("221"));
    backend.wait_for_message("MARKER-AFTER-RESTART");
    // The held messages of the killed process never arrive.
    let delivered = backend.messages();
    for i in &lost {
        let marker = &held[*i].marker;
        assert!(
            !delivered
                .iter()
                .any(|m| m.message.contains(marker.as_str())),
            "{marker} was delivered"
        );
    }

    // A reload with another count replaces the processes on the same
    // socket.
    let text = fs::read_to_string(&master_cf).expect("master.cf");
    fs::write(
        &master_cf,
        text.replace(
            &format!("mailgate_service_processes={PROCESSES}"),
            "mailgate_service_processes=2",
        ),
    )
    .expect("master.cf");
    gateway.signal_master(Signal::SIGHUP);
    let reloaded = wait_for("two new smtpd processes, the old ones gone", || {
        let pids = confined_smtpds_now(&gateway);
        (pids.len() == 2 && pids.is_disjoint(&after)).then_some(pids)
    });
    let (_, status, _) = gateway.admin(&["status"]);
    for pid in &reloaded {
        assert!(
            status.lines().any(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                fields.get(2) == Some(&pid.to_string().as_str())
                    && fields.get(3).is_some_and(|p| p.ends_with("/2"))
            }),
            "{status}"
        );
    }
    let mut client = Client::connect(gateway.port, "127.0.9.21").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["b@example.com"],
        &mailgate_tests::message("reloaded", "MARKER-AFTER-RELOAD"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    backend.wait_for_message("MARKER-AFTER-RELOAD");
}

/// The smtpd processes that are inside their sandbox now.
fn confined_smtpds_now(gateway: &Gateway) -> BTreeSet<Pid> {
    gateway
        .worker_pids("smtpd")
        .into_iter()
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|status| status.contains("\nSeccomp:\t2\n"))
        })
        .collect()
}

/// Established TCP connections to 127.0.0.1:`port` (client ends), from
/// /proc/net/tcp.
fn connections_to(port: u16) -> usize {
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// The pids of the processes of master.cf service `name`.
fn service_pids(gateway: &Gateway, program: &str, name: &str) -> BTreeSet<Pid> {
    gateway
        .worker_pids(program)
        .into_iter()
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.windows(2)
                .any(|w| w[0] == b"-n" && w[1] == name.as_bytes())
        })
        .collect()
}

/// maxproc of a delivery service counts deliveries over all its processes:
/// relay maxproc 3 over two processes (shares 2 and 1) never has more than
/// three sessions with a slow next hop, reaches three only with both
/// processes delivering, and both do.
#[test]
fn maxproc_limits_deliveries_across_relay_processes() {
    let slow = Backend::start_with(&["-w", "2"]);
    let gateway = Gateway::configure(&slow, "");
    let master_cf = gateway.path("master.cf");
    let text = fs::read_to_string(&master_cf).expect("master.cf");
    let smtp_line = "smtp unix - - y - - relay\n";
    assert!(text.contains(smtp_line), "{text}");
    fs::write(
        &master_cf,
        text.replace(
            smtp_line,
            "smtp unix - - y - 3 relay -o mailgate_service_processes=2\n",
        ),
    )
    .expect("master.cf");
    let gateway = gateway.launch();
    let relays = wait_for("two smtp relay processes", || {
        let pids = service_pids(&gateway, "relay", "smtp");
        (pids.len() == 2).then_some(pids)
    });
    const MESSAGES: usize = 8;
    for n in 0..MESSAGES {
        let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
        let reply = client.send_message(
            "a@sender.example",
            &["b@example.com"],
            &mailgate_tests::message("slow", &format!("MARKER-SLOW-{n}")),
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut most = 0;
    while slow.messages().len() < MESSAGES {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {MESSAGES} delivered",
            slow.messages().len()
        );
        most = most.max(connections_to(slow.port));
        assert!(most <= 3, "{most} sessions with the next hop: maxproc is 3");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(most, 3, "both processes deliver at once");
    for n in 0..MESSAGES {
        slow.wait_for_message(&format!("MARKER-SLOW-{n}"));
    }
    let log = gateway.log();
    for pid in &relays {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("/relay[{pid}]: ")) && l.contains("status=sent")),
            "relay process {pid} delivered nothing:\n{log}"
        );
    }
}
