//! Address verification end to end: reject_unverified_recipient and
//! reject_unverified_sender in a real gateway, whose verify service probes
//! through relay the internal server, here a private stock Postfix (Debian's)
//! that refuses unknown users at RCPT (relay_recipient_maps) and relays the
//! known ones to smtp-sink. Probes are counted twice: relay's `probe:` log
//! lines, and the probe sessions in the internal Postfix's log (the only
//! sessions there that say RSET). Also: the cache shared by two gateways
//! through a real redis-server, a verify service that hangs or is killed,
//! the negative cache turned off, and the replies compared with a stock
//! Postfix gateway's in front of the same internal server.
//!
//! Needs root: Postfix's master runs only as root.

use std::fs;

use mailgate_tests::{
    Backend, Client, DnsServer, Gateway, Redis, StockPostfix, is_root, message, wait_for,
};
use nix::sys::signal::{Signal, kill};

/// The users the internal server knows.
const KNOWN: &str = "relay_recipient_maps = inline:{ bob@example.com=ok, carol@example.com=ok }";

/// Postfix's answer for anyone else, as a probe's RCPT gets it.
fn refused(address: &str) -> String {
    format!(
        "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <{address}>: Recipient address rejected: \
         User unknown in relay recipient table (in reply to RCPT TO command)"
    )
}

/// The internal mail server: a stock Postfix in front of smtp-sink.
fn internal_server(backend: &Backend) -> (StockPostfix, DnsServer) {
    let dns = DnsServer::on_port_53(&[]);
    let postfix = StockPostfix::start(KNOWN, backend.port, &dns);
    (postfix, dns)
}

/// A gateway whose mail for example.com goes to `internal`, verifying
/// recipients (and senders), with its verify service in master.cf.
fn gateway(backend: &Backend, internal: &StockPostfix, extra: &str) -> Gateway {
    let gateway = Gateway::configure(backend, "");
    gateway.add_main_cf(&format!(
        "data_directory = {data}\n\
         transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{port} }}\n\
         smtpd_sender_restrictions = reject_unverified_sender\n\
         smtpd_recipient_restrictions = reject_unauth_destination, reject_unverified_recipient\n\
         address_verify_poll_delay = 1s\n\
         {extra}",
        data = gateway.path("data").display(),
        port = internal.port,
    ));
    gateway.add_master_cf("verify unix - - y - 1 verify");
    gateway.launch()
}

/// Probes relay made, by the `probe:` lines of the gateway's log.
fn probes(gateway: &Gateway, address: &str) -> usize {
    let needle = format!("probe: to=<{address}>, ");
    gateway
        .log()
        .lines()
        .filter(|l| l.contains("/relay[") && l.contains(&needle))
        .count()
}

/// Probe sessions the internal Postfix served: its disconnect lines that
/// count an RSET (a delivery says no RSET).
fn probe_sessions(postfix: &StockPostfix) -> usize {
    postfix
        .log()
        .lines()
        .filter(|l| l.contains(" disconnect from ") && l.contains(" rset=1 "))
        .count()
}

fn wait_for_sessions(postfix: &StockPostfix, n: usize) {
    wait_for(&format!("{n} probe sessions in Postfix's log"), || {
        (probe_sessions(postfix) >= n).then_some(())
    });
    assert_eq!(probe_sessions(postfix), n, "{}", postfix.log());
}

/// RCPT TO, DATA and the message (no line starts with a dot): the first
/// refusal or the final reply.
fn rcpt_and_data(client: &mut Client, to: &str, message: &str) -> String {
    let reply = client.send(&format!("RCPT TO:<{to}>"));
    if !reply.starts_with("250") {
        return reply;
    }
    let reply = client.send("DATA");
    if !reply.starts_with("354") {
        return reply;
    }
    client.write_raw(message.replace('\n', "\r\n").as_bytes());
    client.send(".")
}

/// Stops a process (SIGSTOP) until dropped, even when the test fails.
struct Stopped(nix::unistd::Pid);

impl Stopped {
    fn new(pid: nix::unistd::Pid) -> Stopped {
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

#[test]
fn unverified_recipients_and_senders_are_refused_by_what_the_internal_server_says() {
    assert!(is_root(), "the internal Postfix needs root");
    let backend = Backend::start();
    let (internal, _dns) = internal_server(&backend);
    // Postfix's parameters, with their default values but one, written
    // out: `mailgate check` takes them all.
    let gateway = gateway(
        &backend,
        &internal,
        "unverified_recipient_reject_code = 550\n\
         unverified_recipient_defer_code = 450\n\
         unverified_recipient_tempfail_action = defer_if_permit\n\
         unverified_sender_reject_code = 450\n\
         address_verify_positive_expire_time = 31d\n\
         address_verify_positive_refresh_time = 7d\n\
         address_verify_negative_expire_time = 3d\n\
         address_verify_negative_refresh_time = 3h\n\
         address_verify_negative_cache = yes\n\
         address_verify_cache_cleanup_interval = 12h\n\
         address_verify_poll_count = 3\n\
         address_verify_sender = $double_bounce_sender\n\
         address_verify_service_name = verify\n",
    );
    let (code, out, err) = gateway.admin(&["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("verif"), "{err}");

    // First time: each address is probed (smtpd polls the verify service
    // meanwhile), then answered by what the internal server said.
    let mut client = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert!(client.send("EHLO client.example.org").starts_with("250"));
    assert!(
        client
            .send("MAIL FROM:<carol@example.com>")
            .starts_with("250")
    );
    let nobody = client.send("RCPT TO:<nobody@example.com>");
    assert_eq!(
        nobody,
        format!(
            "550 5.1.1 <nobody@example.com>: Recipient address rejected: undeliverable address: {}",
            refused("nobody@example.com")
        )
    );
    let reply = rcpt_and_data(
        &mut client,
        "bob@example.com",
        &message("verified", "MARKER-VERIFIED"),
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    client.send("QUIT");
    backend.wait_for_message("MARKER-VERIFIED");
    for address in ["carol@example.com", "nobody@example.com", "bob@example.com"] {
        assert_eq!(
            probes(&gateway, address),
            1,
            "{address}:\n{}",
            gateway.log()
        );
    }
    wait_for_sessions(&internal, 3);
    gateway.wait_for_log(&format!(
        "probe: to=<nobody@example.com>, relay=127.0.0.1[127.0.0.1]:{}, ",
        internal.port
    ));
    let line = gateway.wait_for_log("probe: to=<nobody@example.com>, ");
    assert!(
        line.ends_with(&format!(
            "dsn=5.1.1, status=undeliverable ({})",
            refused("nobody@example.com")
        )),
        "{line}"
    );
    gateway.wait_for_log("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 550 5.1.1 <nobody@example.com>: Recipient address rejected: undeliverable address: ");

    // Second time: the cache answers, nothing is probed again. The sender
    // check reads the same cache (450 by default: unverified_sender_reject_code).
    let mut client = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert!(client.send("EHLO client.example.org").starts_with("250"));
    assert!(
        client
            .send("MAIL FROM:<nobody@example.com>")
            .starts_with("250")
    );
    assert_eq!(
        client.send("RCPT TO:<bob@example.com>"),
        format!(
            "450 4.1.7 <nobody@example.com>: Sender address rejected: unverified address: {}",
            refused("nobody@example.com")
        )
    );
    assert!(client.send("RSET").starts_with("250"));
    assert!(
        client
            .send("MAIL FROM:<carol@example.com>")
            .starts_with("250")
    );
    assert!(
        client
            .send("RCPT TO:<nobody@example.com>")
            .starts_with("550 5.1.1 ")
    );
    assert!(client.send("RCPT TO:<bob@example.com>").starts_with("250"));
    client.send("QUIT");
    for address in ["carol@example.com", "nobody@example.com", "bob@example.com"] {
        assert_eq!(
            probes(&gateway, address),
            1,
            "{address}:\n{}",
            gateway.log()
        );
    }
    assert_eq!(probe_sessions(&internal), 3, "{}", internal.log());

    // The verify process runs confined, and `mailgate status` shows it.
    let spool = fs::canonicalize(gateway.spool("")).expect("spool");
    let pids = gateway.worker_pids("verify");
    assert_eq!(pids.len(), 1, "{pids:?}");
    let (code, status, err) = gateway.admin(&["status"]);
    assert_eq!(code, 0, "{err}");
    let line = status
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(&pids[0].to_string()))
        .unwrap_or_else(|| panic!("status has no line for verify {}:\n{status}", pids[0]));
    assert!(line.contains(" verify "), "{line}");
    assert!(
        line.contains(" 1          2 (filter) enforced (ABI "),
        "seccomp filter and Landlock: {line}"
    );
    assert!(
        line.contains(spool.to_string_lossy().trim_end_matches('/')),
        "{line}"
    );
    assert!(
        line.contains(" 0000000000000000 0000000000000000 0000000000000000 "),
        "{line}"
    );
    assert!(!line.contains(" 0 "), "no uid or gid 0: {line}");
    assert!(
        !gateway.log().contains("killed by signal"),
        "{}",
        gateway.log()
    );
}

#[test]
fn a_verify_service_that_hangs_or_is_killed_defers_and_never_passes() {
    assert!(is_root(), "the internal Postfix needs root");
    let backend = Backend::start();
    let (internal, _dns) = internal_server(&backend);
    let gateway = gateway(
        &backend,
        &internal,
        "smtpd_sender_restrictions =\naddress_verify_service_timeout = 2s\n",
    );
    let pid = wait_for("the verify process", || {
        gateway.worker_pids("verify").first().copied()
    });
    // Hung: it takes the question and never answers.
    let stopped = Stopped::new(pid);
    let mut client = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert!(client.send("EHLO client.example.org").starts_with("250"));
    assert!(
        client
            .send("MAIL FROM:<carol@example.com>")
            .starts_with("250")
    );
    assert_eq!(
        client.send("RCPT TO:<bob@example.com>"),
        "450 4.1.1 <bob@example.com>: Recipient address rejected: address verification problem"
    );
    gateway.wait_for_log("warning: verify service failure: no answer within 2s");
    drop(stopped);
    // Back: the same recipient is verified and accepted.
    let accepted = wait_for("the recipient to be accepted", || {
        let reply = client.send("RCPT TO:<bob@example.com>");
        reply.starts_with("250").then_some(reply)
    });
    assert!(accepted.starts_with("250"), "{accepted}");
    assert_eq!(probes(&gateway, "bob@example.com"), 1, "{}", gateway.log());

    // Killed, and it cannot come back (its cache file is gone, a directory
    // in its place): the master's restarts die at start-up and are
    // throttled. smtpd's question waits on the socket the master keeps and
    // is deferred, although the cache had said bob was deliverable.
    let cache = gateway.path("data").join("verify_cache.redb");
    fs::rename(&cache, gateway.path("data").join("verify_cache.moved")).expect("rename");
    fs::create_dir(&cache).expect("mkdir");
    kill(pid, Signal::SIGKILL).expect("SIGKILL");
    gateway.wait_for_log(&format!("pid {pid} killed by signal 9"));
    gateway.wait_for_log("verify: bad command startup -- throttling for 60s");
    assert!(gateway.worker_pids("verify").is_empty());
    assert_eq!(
        client.send("RCPT TO:<bob@example.com>"),
        "450 4.1.1 <bob@example.com>: Recipient address rejected: address verification problem"
    );
    client.send("QUIT");
}

#[test]
fn two_gateways_share_the_cache_through_redis_and_probe_once() {
    assert!(is_root(), "the internal Postfix needs root");
    let mut redis = Redis::start();
    let backend = Backend::start();
    let (internal, _dns) = internal_server(&backend);
    let extra = format!(
        "address_verify_map = {}\nunverified_recipient_reject_code = 550\nsmtpd_sender_restrictions =\n",
        redis.spec(4)
    );
    let gateways = [
        gateway(&backend, &internal, &extra),
        gateway(&backend, &internal, &extra),
    ];
    let rcpt = |gateway: &Gateway, address: &str| {
        rcpt_in_a_session(gateway.port, "carol@example.com", address)
    };
    // The first gateway probes; the second finds the result in Redis.
    assert!(rcpt(&gateways[0], "bob@example.com").starts_with("250"));
    assert!(rcpt(&gateways[0], "nobody@example.com").starts_with("550 5.1.1 "));
    assert!(rcpt(&gateways[1], "bob@example.com").starts_with("250"));
    assert_eq!(
        rcpt(&gateways[1], "nobody@example.com"),
        format!(
            "550 5.1.1 <nobody@example.com>: Recipient address rejected: undeliverable address: {}",
            refused("nobody@example.com")
        )
    );
    for address in ["bob@example.com", "nobody@example.com"] {
        assert_eq!(probes(&gateways[0], address), 1, "{}", gateways[0].log());
        assert_eq!(probes(&gateways[1], address), 0, "{}", gateways[1].log());
    }
    wait_for_sessions(&internal, 2);

    // Redis dies: a 4xx, never a pass, and no process dies.
    let pids = gateways[1].worker_pids("verify");
    redis.kill();
    assert_eq!(
        rcpt(&gateways[1], "bob@example.com"),
        "450 4.1.1 <bob@example.com>: Recipient address rejected: unverified address: Address verification status unavailable"
    );
    gateways[1].wait_for_log(&format!(
        "warning: address verification cache redis:127.0.0.1:{}/4: ",
        redis.port
    ));
    assert_eq!(gateways[1].worker_pids("verify"), pids);
    assert!(
        !gateways[1].log().contains("killed by signal"),
        "{}",
        gateways[1].log()
    );
}

#[test]
fn without_the_negative_cache_a_refused_address_is_probed_at_every_lookup() {
    assert!(is_root(), "the internal Postfix needs root");
    let backend = Backend::start();
    let (internal, _dns) = internal_server(&backend);
    let gateway = gateway(
        &backend,
        &internal,
        "address_verify_negative_cache = no\nunverified_recipient_reject_code = 550\n\
         smtpd_sender_restrictions =\n",
    );
    let rcpt = |address: &str| rcpt_in_a_session(gateway.port, "carol@example.com", address);
    // As in Postfix: the refusal is never kept, so every lookup finds
    // nothing, probes again and answers "in progress" (never the 550).
    let in_progress = "450 4.1.1 <nobody@example.com>: Recipient address rejected: \
                       unverified address: Address verification in progress";
    assert_eq!(rcpt("nobody@example.com"), in_progress);
    let first = wait_for("the first probes to be logged", || {
        let n = probes(&gateway, "nobody@example.com");
        (n >= 1).then_some(n)
    });
    assert_eq!(rcpt("nobody@example.com"), in_progress);
    wait_for("more probes of the same address", || {
        (probes(&gateway, "nobody@example.com") > first).then_some(())
    });
    // A deliverable address is cached all the same: probed once.
    assert!(rcpt("bob@example.com").starts_with("250"));
    assert!(rcpt("bob@example.com").starts_with("250"));
    assert_eq!(probes(&gateway, "bob@example.com"), 1, "{}", gateway.log());
    assert!(!gateway.log().contains("undeliverable address:"));
}

/// One session's reply to RCPT TO (after MAIL FROM), asked again in new
/// sessions while the address is still being verified.
fn verified_reply(port: u16, from: &str, to: &str) -> String {
    wait_for(&format!("a verified answer for <{from}> -> <{to}>"), || {
        let reply = rcpt_in_a_session(port, from, to);
        (!reply.contains("Address verification in progress")).then_some(reply)
    })
}

/// The reply to RCPT TO in a session of its own from 127.0.0.2.
fn rcpt_in_a_session(port: u16, from: &str, to: &str) -> String {
    let mut client = Client::connect(port, "127.0.0.2").expect("connect");
    assert!(client.send("EHLO client.example.org").starts_with("250"));
    assert!(
        client
            .send(&format!("MAIL FROM:<{from}>"))
            .starts_with("250"),
        "MAIL FROM:<{from}>"
    );
    let reply = client.send(&format!("RCPT TO:<{to}>"));
    client.send("QUIT");
    reply
}

#[test]
fn replies_are_a_stock_postfix_gateways_word_for_word() {
    assert!(is_root(), "Postfix needs root");
    let backend = Backend::start();
    let (internal, dns) = internal_server(&backend);
    let settings = "smtpd_sender_restrictions = reject_unverified_sender\n\
                    smtpd_recipient_restrictions = reject_unauth_destination, reject_unverified_recipient\n\
                    unverified_recipient_reject_code = 550\n\
                    address_verify_poll_delay = 1s\n";
    // Postfix as the gateway, in front of the same internal server (its
    // transport_maps sends example.com there), with its own verify(8).
    let postfix = StockPostfix::start(
        &format!("myhostname = postfix-gw.example.com\n{settings}"),
        internal.port,
        &dns,
    );
    let mailgate = gateway(
        &backend,
        &internal,
        "unverified_recipient_reject_code = 550\n",
    );
    for (from, to, expected) in [
        ("carol@example.com", "bob@example.com", "250 2.1.5 Ok"),
        (
            "carol@example.com",
            "nobody@example.com",
            "550 5.1.1 <nobody@example.com>: Recipient address rejected: undeliverable address: ",
        ),
        (
            "nobody@example.com",
            "bob@example.com",
            "450 4.1.7 <nobody@example.com>: Sender address rejected: unverified address: ",
        ),
    ] {
        let theirs = verified_reply(postfix.port, from, to);
        let ours = verified_reply(mailgate.port, from, to);
        assert!(theirs.starts_with(expected), "Postfix: {theirs}");
        assert_eq!(ours, theirs, "{from} -> {to}");
    }
}
