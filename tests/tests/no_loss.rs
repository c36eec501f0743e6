//! Proof that nothing acknowledged is lost: thousands of messages over many
//! parallel sessions while workers are SIGKILLed at random moments, and
//! once the whole process tree at once. Every message that got a 250 must
//! reach the backend at least once (counted by Message-ID); duplicates are
//! allowed and reported as a figure.

use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailgate_tests::{Backend, Client, Gateway, message, wait_for};
use nix::sys::signal::{Signal, kill};

const MESSAGES: usize = 2000;
const SESSIONS: usize = 16;
const PROGRAMS: [&str; 4] = ["smtpd", "cleanup", "qmgr", "relay"];

/// xorshift64*: a seeded, repeatable source of "random moments".
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn message_id(n: usize) -> String {
    format!("<no-loss-{n}@test.example>")
}

/// One sending session: takes message numbers until they run out; a
/// message counts as acknowledged only on "250 ... queued as".
fn sender(port: u16, next: Arc<AtomicUsize>, acked: Arc<Mutex<Vec<usize>>>) {
    let mut client: Option<Client> = None;
    loop {
        let n = next.fetch_add(1, Ordering::SeqCst);
        if n >= MESSAGES {
            return;
        }
        if client.is_none() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while client.is_none() && Instant::now() < deadline {
                client = Client::connect(port, "127.0.0.1")
                    .ok()
                    .filter(|c| c.greeting.starts_with("220"))
                    .and_then(|mut c| c.send("EHLO loader.test").starts_with("250").then_some(c));
                if client.is_none() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let Some(session) = client.as_mut() else {
            continue;
        };
        let body = format!(
            "Message-ID: {}\n{}",
            message_id(n),
            message("no loss", &format!("NO-LOSS-{n}"))
        );
        let reply = session.transaction("load@sender.example", &["b@example.com"], &body);
        if reply.starts_with("250 2.0.0 Ok: queued as ") {
            acked.lock().unwrap().push(n);
        } else {
            // A killed smtpd or cleanup: this message may be lost, as SMTP
            // allows for one that got no 250. Start a new session.
            client = None;
        }
    }
}

/// Message-IDs the backend received, with how often.
fn delivered(backend: &Backend) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in backend.messages() {
        if let Some(id) = m.header("Message-ID").first() {
            *counts.entry(id.clone()).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn no_acknowledged_message_is_lost_when_processes_are_killed() {
    let seed = std::env::var("MAILGATE_NO_LOSS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("no-loss test seed: {seed} (set MAILGATE_NO_LOSS_SEED to repeat)");
    let backend = Backend::start();
    let mut gateway = Gateway::start(
        &backend,
        "queue_run_delay = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s\nservice_throttle_time = 1s",
    );
    let port = gateway.port;
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..SESSIONS)
        .map(|_| {
            let (next, acked) = (next.clone(), acked.clone());
            std::thread::spawn(move || sender(port, next, acked))
        })
        .collect();

    let sending = Arc::new(AtomicBool::new(true));
    let killer = {
        let sending = sending.clone();
        let next = next.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(seed);
            let mut kills = 0;
            let mut tree_killed = false;
            while sending.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50 + rng.below(250)));
                if !tree_killed && next.load(Ordering::SeqCst) >= MESSAGES / 2 {
                    gateway.kill_all_and_restart();
                    tree_killed = true;
                    continue;
                }
                let program = PROGRAMS[rng.below(PROGRAMS.len() as u64) as usize];
                let pids = gateway.worker_pids(program);
                if let Some(pid) = pids.get(rng.below(pids.len().max(1) as u64) as usize) {
                    let _ = kill(*pid, Signal::SIGKILL);
                    kills += 1;
                }
            }
            assert!(tree_killed, "the whole-tree round never ran");
            (gateway, kills)
        })
    };
    for sender in senders {
        sender.join().expect("sender thread");
    }
    sending.store(false, Ordering::SeqCst);
    let (gateway, kills) = killer.join().expect("killer thread");

    let acked = acked.lock().unwrap().clone();
    let expected: Vec<String> = acked.iter().map(|&n| message_id(n)).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let counts = loop {
        let counts = delivered(&backend);
        let missing = expected
            .iter()
            .filter(|id| !counts.contains_key(*id))
            .count();
        if missing == 0 {
            break counts;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} acknowledged messages never reached the backend (seed {seed})",
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let duplicates: usize = counts.values().map(|&c| c - 1).sum();
    let unacked_delivered = counts.len() - expected.len();
    eprintln!(
        "no-loss: {MESSAGES} attempted, {} acknowledged, all delivered; {kills} workers killed plus one \
         whole-tree kill; {duplicates} duplicate deliveries; {unacked_delivered} delivered without a 250",
        expected.len()
    );
    assert!(
        expected.len() >= MESSAGES / 2,
        "too few messages were acknowledged ({}) for the test to mean anything",
        expected.len()
    );
    drop(gateway);
}

#[test]
fn a_queue_file_cut_short_goes_to_corrupt_and_qmgr_lives_on() {
    let backend = Backend::start();
    let port = backend.port;
    let gateway = Gateway::start(&backend, "");
    drop(backend);
    // A real queue file, kept in deferred/ while the backend is away.
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["b@example.com"],
        &message("cut", "MARKER-CUT"),
    );
    let id = reply.rsplit(' ').next().expect("queue id").to_string();
    let deferred = gateway.spool("deferred").join(&id);
    wait_for("a deferred queue file", || deferred.exists().then_some(()));
    let qmgr = gateway.worker_pids("qmgr");

    // What a power cut in the middle of an unacknowledged write leaves.
    let bytes = fs::read(&deferred).expect("read queue file");
    let torn = "0000000000000A";
    fs::write(
        gateway.spool("incoming").join(torn),
        &bytes[..bytes.len() / 2],
    )
    .expect("write");
    gateway.wait_for_log(&format!("saving corrupt file \"{torn}\""));
    wait_for("the torn file in corrupt/", || {
        gateway.spool("corrupt").join(torn).exists().then_some(())
    });
    assert_eq!(gateway.worker_pids("qmgr"), qmgr, "qmgr must not crash");

    // And the real message still goes out once the backend is back.
    let backend = Backend::start_on(port);
    backend.wait_for_message("MARKER-CUT");
}
