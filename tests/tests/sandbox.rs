//! The sandbox and the supervision, end to end: every worker of a real
//! gateway is confined as its profile says (read from /proc), none is
//! killed by its own filter under load, reload and drain, the master
//! outlives its children and the children outlive no master, and the
//! service files are valid. (The forbidden-call proofs, one child process
//! per profile and call, are libs/sandbox/tests/profiles.rs.)

use std::collections::HashSet;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailgate_tests::{Backend, Client, DnsServer, Gateway, bin_dir, is_root, message, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const WORKERS: [&str; 4] = ["smtpd", "cleanup", "qmgr", "relay"];

/// The fields of /proc/PID/status this file looks at.
fn status_field(pid: Pid, name: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("pid {pid}: no {name} in /proc/{pid}/status"))
}

/// Gone, or a zombie nobody reaps (a container's init may not).
fn has_exited(pid: Pid) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

fn all_workers(gateway: &Gateway) -> Vec<(&'static str, Pid)> {
    wait_for("every kind of worker to run", || {
        let found: Vec<(&'static str, Pid)> = WORKERS
            .iter()
            .flat_map(|program| {
                gateway
                    .worker_pids(program)
                    .into_iter()
                    .map(move |pid| (*program, pid))
            })
            .collect();
        let kinds: HashSet<&str> = found.iter().map(|(p, _)| *p).collect();
        // A worker that has just been forked may not have reached its
        // sandbox yet: wait until all are in it.
        let settled = found.iter().all(|(_, pid)| {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|status| status.contains("\nSeccomp:\t2\n"))
        });
        (kinds.len() == WORKERS.len() && settled).then_some(found)
    })
}

#[test]
fn every_worker_is_confined_and_status_shows_it() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    let spool = fs::canonicalize(gateway.spool("")).expect("spool");
    let workers = all_workers(&gateway);
    for (program, pid) in &workers {
        let what = format!("{program} pid {pid}");
        for name in ["Uid", "Gid"] {
            let ids = status_field(*pid, name);
            if is_root() {
                assert!(
                    ids.split_whitespace().all(|id| id != "0"),
                    "{what}: {name} {ids}"
                );
            } else {
                let me = nix::unistd::getuid().to_string();
                assert!(
                    name == "Gid" || ids.split_whitespace().all(|id| id == me),
                    "{what}: {name} {ids}"
                );
            }
        }
        for caps in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
            assert_eq!(
                status_field(*pid, caps),
                "0000000000000000",
                "{what}: {caps}"
            );
        }
        if is_root() {
            // Dropped as root; an unprivileged process cannot change it.
            assert_eq!(status_field(*pid, "CapBnd"), "0000000000000000", "{what}");
        }
        assert_eq!(status_field(*pid, "NoNewPrivs"), "1", "{what}");
        assert_eq!(status_field(*pid, "Seccomp"), "2", "{what}");
        let root = fs::read_link(format!("/proc/{pid}/root")).expect("root link");
        if is_root() {
            assert_eq!(root, spool, "{what}: chroot");
        } else {
            assert_eq!(root, Path::new("/"), "{what}: no chroot without root");
        }
    }

    let (code, out, err) = gateway.admin(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("service "), "{out}");
    for (program, pid) in &workers {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(&pid.to_string()))
            .unwrap_or_else(|| panic!("status has no line for {program} {pid}:\n{out}"));
        assert!(line.contains(program), "{line}");
        assert!(line.contains(" 1          2 (filter) "), "{line}");
        // This kernel has Landlock (ABI 7 and later): every worker says it
        // enforces its ruleset.
        assert!(line.contains(" enforced (ABI "), "{line}");
        if is_root() {
            assert!(line.contains(&spool.display().to_string()), "{line}");
            assert!(!line.contains(" 0 "), "no uid or gid 0: {line}");
        }
    }
}

/// One SMTP session from its own loopback address; returns the final reply.
/// Odd sessions write to a domain whose next hop relay finds by MX.
fn deliver(port: u16, n: usize, body: &str) -> String {
    let rcpt = if n % 2 == 1 {
        "bob@mx-domain.test"
    } else {
        "bob@example.com"
    };
    let from = format!("127.0.{}.{}", 1 + n / 200, 1 + n % 200);
    let mut client = match Client::connect(port, &from) {
        Ok(client) => client,
        Err(e) => return format!("connect: {e}"),
    };
    let text = format!(
        "From: a@sender.example\nTo: b@example.com\nSubject: load {n}\n\n{body}LOAD-MARKER-{n}-END\n"
    );
    let reply = client.send_message("load@sender.example", &[rcpt], &text);
    client.send("QUIT");
    reply
}

#[test]
fn no_worker_is_killed_by_its_profile_under_load_reload_and_drain() {
    const SESSIONS: usize = 240;
    const LARGE_EVERY: usize = 20;
    let backend = Backend::start();
    let dns = DnsServer::start(
        &[("mx-domain.test", "mx1.mx-domain.test", 10)],
        &[("mx1.mx-domain.test", "127.0.0.1")],
    );
    let extra = format!(
        "message_size_limit = 20480000\ndns_nameservers = 127.0.0.1:{}\n\
         relay_domains = example.com, mx-domain.test\n\
         transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{port}, mx-domain.test=smtp:mx-domain.test:{port} }}",
        dns.port,
        port = backend.port
    );
    let mut gateway = Gateway::start(&backend, &extra);
    let port = gateway.port;
    let large_body = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\n"
        .repeat(2 * 1024 * 1024 / 73);
    let threads: Vec<_> = (0..SESSIONS)
        .map(|n| {
            let body = if n % LARGE_EVERY == 0 {
                large_body.clone()
            } else {
                "Hello.\n".to_string()
            };
            std::thread::spawn(move || deliver(port, n, &body))
        })
        .collect();
    // A reload while those sessions run: the services restart, the
    // listeners stay.
    wait_for("sessions to be under way", || {
        gateway.log().contains("connect from").then_some(())
    });
    gateway.signal_master(Signal::SIGHUP);
    let mut refused = Vec::new();
    for (n, thread) in threads.into_iter().enumerate() {
        let reply = thread.join().expect("client thread");
        if !reply.starts_with("250 ") {
            refused.push(format!("{n}: {reply}"));
        }
    }
    assert!(refused.is_empty(), "sessions not queued: {refused:?}");
    wait_for("every message at the backend", || {
        let got = backend
            .messages()
            .iter()
            .filter(|m| m.message.contains("LOAD-MARKER-"))
            .count();
        (got >= SESSIONS).then_some(())
    });
    let delivered: HashSet<String> = backend
        .messages()
        .iter()
        .filter_map(|m| {
            let start = m.message.find("LOAD-MARKER-")?;
            Some(m.message[start..].lines().next()?.to_string())
        })
        .collect();
    assert_eq!(delivered.len(), SESSIONS, "each message once");

    // Drain: SIGTERM, the workers finish and exit.
    let status = gateway.stop();
    assert!(status.success(), "master: {status}");
    let log = gateway.log();
    assert!(log.contains("reload -- version"), "the reload happened");
    assert!(
        log.contains("relay=mx1.mx-domain.test[127.0.0.1]"),
        "relay looked the next hop up in DNS"
    );
    for line in log.lines() {
        assert!(
            !line.contains("signal 31") && !line.contains("SIGSYS"),
            "a worker was killed by its seccomp filter: {line}"
        );
        assert!(!line.contains("fatal:"), "{line}");
    }
}

#[test]
fn workers_exit_when_the_master_is_killed() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    let workers = all_workers(&gateway);
    kill(gateway.master_pid(), Signal::SIGKILL).expect("kill master");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<_> = workers
            .iter()
            .filter(|(_, pid)| !has_exited(*pid))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 5s after the master died: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_master_outlives_its_children_and_throttles_one_that_cannot_start() {
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "service_throttle_time = 60s");
    // A service that dies at start-up, every time: its spool does not exist.
    let master_cf = gateway.path("master.cf");
    let mut text = fs::read_to_string(&master_cf).expect("master.cf");
    text.push_str("broken unix - - y - - relay -o queue_directory=/nonexistent/spool\n");
    fs::write(&master_cf, text).expect("master.cf");
    let gateway = gateway.launch();
    gateway.wait_for_log("bad command startup -- throttling for 60s");

    // Every kind of worker killed outright is restarted; the master stays.
    for program in ["smtpd", "cleanup", "qmgr"] {
        let old: HashSet<Pid> = gateway.worker_pids(program).into_iter().collect();
        assert!(!old.is_empty(), "{program} runs");
        for pid in &old {
            kill(*pid, Signal::SIGKILL).expect("kill worker");
        }
        wait_for(&format!("a new {program}"), || {
            let now = gateway.worker_pids(program);
            (!now.is_empty() && now.iter().all(|p| !old.contains(p))).then_some(())
        });
    }
    assert!(kill(gateway.master_pid(), None).is_ok(), "master alive");
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["bob@example.com"],
        &message("after kills", "MARKER-AFTER-KILLS"),
    );
    assert!(reply.starts_with("250 "), "{reply}");
    backend.wait_for_message("MARKER-AFTER-KILLS");
}

#[test]
fn log_mode_says_so_loudly_and_mail_still_flows() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "sandbox_mode = log");
    gateway.wait_for_log("SANDBOX IN LOG MODE");
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["bob@example.com"],
        &message("log mode", "MARKER-LOG-MODE"),
    );
    assert!(reply.starts_with("250 "), "{reply}");
    backend.wait_for_message("MARKER-LOG-MODE");
}

#[test]
fn a_bad_sandbox_mode_is_refused_at_start() {
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "sandbox_mode = off");
    let output = Command::new(bin_dir().join("master"))
        .arg("-c")
        .arg(gateway.dir.path())
        .output()
        .expect("run master");
    assert!(!output.status.success());
    // The configuration is refused before the log is redirected.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sandbox_mode = off: expected enforce or log"),
        "{stderr}"
    );
}

#[test]
fn the_master_tells_systemd_ready_and_stopping() {
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "");
    let socket_path = gateway.path("notify");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut master = Command::new(bin_dir().join("mailgate"))
        .arg("-c")
        .arg(gateway.dir.path())
        .arg("start")
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .spawn()
        .expect("start");
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 within 30s");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means serving.
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    assert!(client.greeting.starts_with("220"), "{}", client.greeting);
    client.send("QUIT");
    kill(Pid::from_raw(master.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let n = socket.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(master.wait().expect("wait").success());
    // The workers were not handed the variable.
    assert!(!gateway.log().contains("cannot notify"));
}

fn packaging(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(name)
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = fs::read_to_string(packaging("mailgate.service")).expect("unit file");
    assert!(unit.contains("Type=notify"));
    assert!(unit.contains("ExecStart=/usr/sbin/mailgate -c /etc/mailgate start"));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    // verify checks that ExecStart's program exists: point it at the one
    // just built, and check everything else as shipped.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("mailgate.service");
    let built = bin_dir().join("mailgate");
    fs::write(
        &copy,
        unit.replace("/usr/sbin/mailgate", &built.display().to_string()),
    )
    .expect("copy");
    let output = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!(
            "systemd-analyze cannot run ({e}): install the Debian package systemd \
             (./run-tests does); this test does not pass without it"
        ),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify: {stderr}");
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("mailgate.service"))
        .collect();
    assert!(complaints.is_empty(), "{stderr}");
}

#[test]
fn the_rc_script_is_valid_sh() {
    let script = packaging("mailgate.rc");
    let status = Command::new("sh")
        .arg("-n")
        .arg(&script)
        .status()
        .expect("sh");
    assert!(status.success(), "sh -n {}", script.display());
    let text = fs::read_to_string(&script).expect("rc script");
    for needle in [
        "# PROVIDE: mailgate",
        ". /etc/rc.subr",
        "load_rc_config $name",
        "run_rc_command \"$1\"",
    ] {
        assert!(text.contains(needle), "rc script lacks {needle:?}");
    }
}
