//! SMTP policy through a running gateway, for what the differential tests
//! against Postfix cannot show: the log, the Received header, mailgate's
//! deliberate differences, the stress limits, and what `check` and `start`
//! refuse.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use mailgate_tests::{Backend, Client, DnsServer, Gateway, Record, message};

fn records() -> Vec<Record<'static>> {
    vec![
        Record::Zone("test"),
        Record::Zone("example.com"),
        Record::Host("mail.good.test", "127.0.0.2"),
        Record::Ptr("127.0.0.3", "forged.good.test"),
        Record::Address("forged.good.test", "192.0.2.99"),
        Record::Address("example.com", "192.0.2.10"),
        Record::Address("good.test", "192.0.2.11"),
        Record::Address("5.0.0.127.zen.test", "127.0.0.2"),
        Record::Address("5.0.0.127.bl2.test", "127.0.0.10"),
        Record::Address("6.0.0.127.zen.test", "127.0.0.11"),
    ]
}

#[test]
fn client_names_are_forward_confirmed_and_used_in_logs_and_received_headers() {
    let backend = Backend::start();
    let dns = DnsServer::with(&records());
    let gw = Gateway::start(&backend, &format!("dns_nameservers = {}", dns.nameserver()));
    let mut client = Client::connect(gw.port, "127.0.0.2").unwrap();
    let reply = client.send_message(
        "a@good.test",
        &["b@example.com"],
        &message("named", "marker-named-client"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let received = backend.wait_for_message("marker-named-client");
    let header = &received.header("Received")[0];
    assert!(
        header.starts_with("from client.example.org (mail.good.test [127.0.0.2])"),
        "{header}"
    );
    gw.wait_for_log("connect from mail.good.test[127.0.0.2]");
    // A PTR name that does not resolve back is not used.
    let client = Client::connect(gw.port, "127.0.0.3").unwrap();
    drop(client);
    gw.wait_for_log("warning: hostname forged.good.test does not resolve to address 127.0.0.3");
    gw.wait_for_log("connect from unknown[127.0.0.3]");
}

/// mailgate fails closed where Postfix lets a client through: a DNS list
/// that cannot be asked (here the server refuses) defers the client,
/// unless rbl_tempfail_action = dunno asks for Postfix's way.
#[test]
fn a_dns_list_that_cannot_be_asked_defers_unless_told_otherwise() {
    let backend = Backend::start();
    let dns = DnsServer::with(&records());
    let base = format!(
        "dns_nameservers = {}\nsmtpd_client_restrictions = reject_rbl_client unreachable.example\n",
        dns.nameserver()
    );
    let gw = Gateway::start(&backend, &base);
    let mut client = Client::connect(gw.port, "127.0.0.2").unwrap();
    let reply = client.send_message("a@good.test", &["b@example.com"], &message("x", "y"));
    assert_eq!(
        reply,
        "450 4.7.1 <127.0.0.2>: Client host rejected: Service unavailable; cannot check unreachable.example"
    );
    gw.wait_for_log("warning: 2.0.0.127.unreachable.example: RBL lookup error");
    drop(gw);
    let gw = Gateway::start(&backend, &format!("{base}rbl_tempfail_action = dunno\n"));
    let mut client = Client::connect(gw.port, "127.0.0.2").unwrap();
    let reply = client.send_message(
        "a@good.test",
        &["b@example.com"],
        &message("x", "marker-rbl-dunno"),
    );
    assert!(reply.starts_with("250"), "{reply}");
}

/// Clients that send a byte now and then, never a whole command, take every
/// slot of the service: it is then under stress, and its
/// ${stress?...} limits (a short smtpd_timeout for a whole request) drop
/// them, so the next client is served.
#[test]
fn trickling_clients_cannot_starve_the_listener() {
    let backend = Backend::start();
    let gw = Gateway::configure(
        &backend,
        "smtpd_timeout = ${stress?{2}:{300}}s\nsmtpd_client_connection_count_limit = 0\n",
    );
    // Four sessions at most.
    let master_cf = gw.path("master.cf");
    let text = fs::read_to_string(&master_cf).unwrap();
    fs::write(&master_cf, text.replacen(" 100 smtpd", " 4 smtpd", 1)).unwrap();
    let gw = gw.launch();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tricklers: Vec<_> = (0..4)
        .map(|i| {
            let port = gw.port;
            let stop = stop.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let handle = thread::spawn(move || {
                let from = format!("127.0.0.{}", 11 + i);
                let mut client = Client::connect(port, &from).unwrap();
                ready_tx.send(client.greeting.clone()).unwrap();
                // One byte every 300 ms: every read succeeds, no line ends.
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    client.write_raw(b"E");
                    thread::sleep(Duration::from_millis(300));
                }
            });
            let greeting = ready_rx.recv().unwrap();
            assert!(greeting.starts_with("220"), "{greeting}");
            handle
        })
        .collect();
    let started = Instant::now();
    let client = Client::connect(gw.port, "127.0.0.20").unwrap();
    let waited = started.elapsed();
    assert!(client.greeting.starts_with("220"), "{}", client.greeting);
    assert!(
        waited < Duration::from_secs(10),
        "the fifth client waited {waited:?} for its greeting"
    );
    gw.wait_for_log(
        "timeout after CONNECT from unknown[127.0.0.1", /* 127.0.0.11 to .14 */
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tricklers {
        t.join().unwrap();
    }
}

#[test]
fn the_per_client_connection_limit_is_logged_as_postfix_logs_it() {
    let backend = Backend::start();
    // Several smtpd processes: the anvil service counts over all of them,
    // whichever process each connection lands on.
    let gw = Gateway::start(
        &backend,
        "smtpd_client_connection_count_limit = 1\nmailgate_service_processes = 3\n",
    );
    let first = Client::connect(gw.port, "127.0.0.2").unwrap();
    assert!(first.greeting.starts_with("220"));
    let second = Client::connect(gw.port, "127.0.0.2").unwrap();
    assert_eq!(
        second.greeting,
        "421 4.7.0 gw.example.com Error: too many connections from 127.0.0.2"
    );
    // mynetworks is exempt by default (smtpd_client_event_limit_exceptions).
    let _inside = Client::connect(gw.port, "127.0.0.1").unwrap();
    let _inside2 = Client::connect(gw.port, "127.0.0.1").unwrap();
    assert!(_inside2.greeting.starts_with("220"));
    let line = gw.wait_for_log("Connection concurrency limit exceeded");
    assert!(
        line.contains("warning: Connection concurrency limit exceeded: 2 from unknown[127.0.0.2] for service 127.0.0.1:"),
        "{line}"
    );
}

/// `check` parses every restriction list with smtpd's own parser and names
/// what the gateway would not carry out; `start` refuses the same.
#[test]
fn check_and_start_refuse_what_smtpd_would_not_do() {
    let backend = Backend::start();
    let gw = Gateway::configure(&backend, "");
    let main_cf = gw.path("main.cf");
    let base = fs::read_to_string(&main_cf).unwrap();
    let lines_before = base.lines().count();
    let cases: [(&str, &str); 4] = [
        (
            "smtpd_recipient_restrictions = permit_mynetworks,\n  reject_unknown_recipient_domian\n",
            "smtpd_recipient_restrictions: unknown restriction \"reject_unknown_recipient_domian\"",
        ),
        (
            "content_filter = smtp-amavis:[127.0.0.1]:10024\n",
            "content_filter = smtp-amavis:[127.0.0.1]:10024: master.cf has no unix service \"smtp-amavis\"",
        ),
        (
            "smtpd_delay_reject = yes\nreject_unauth_pipelining = yes\n",
            "reject_unauth_pipelining is a restriction, not a parameter",
        ),
        (
            "smtpd_sender_restrictions = check_sender_access hash:missing_table\n",
            "missing_table",
        ),
    ];
    for (lines, expected) in cases {
        fs::write(&main_cf, format!("{base}{lines}")).unwrap();
        let (status, _, stderr) = gw.admin(&["check"]);
        assert_ne!(status, 0, "check passed:\n{lines}");
        let first_line = lines_before + 1;
        assert!(
            stderr.contains(&format!("main.cf:{first_line}"))
                || stderr.contains(&format!("main.cf:{}", first_line + 1)),
            "{stderr}"
        );
        assert!(stderr.contains(expected), "{stderr}");
        let (status, _, stderr) = gw.admin(&["start"]);
        assert_ne!(status, 0, "start did not refuse:\n{lines}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    // A warning only: Postfix installation paths.
    fs::write(
        &main_cf,
        format!("{base}html_directory = /usr/share/doc/postfix/html\n"),
    )
    .unwrap();
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("html_directory"),
        "{stderr}"
    );
}

/// Every variant of seed 002's smtpd_recipient_restrictions, and seed
/// 001's block (its stray parameter line moved into a list), pass `check`
/// and start.
#[test]
fn the_seeds_restriction_blocks_load() {
    let backend = Backend::start();
    let gw = Gateway::configure(&backend, "");
    let dir = gw.dir.path();
    fs::write(
        dir.join("helo_checks"),
        "/^gw\\.example\\.com$/ 550 Don't use my own hostname\n/^[0-9.]+$/ 550 Not RFC 2821 compliant\n",
    )
    .unwrap();
    fs::write(dir.join("no_usar_mi_dominio"), "example.com 554 Go away\n").unwrap();
    fs::write(dir.join("access_clients"), "192.0.2.1 REJECT\n").unwrap();
    let seed_002 = [
        "permit_mynetworks, reject_unauth_destination",
        "permit_mynetworks reject_unauth_destination permit",
        "permit_mynetworks reject_unauth_destination reject_non_fqdn_hostname permit",
        "reject_non_fqdn_sender permit_mynetworks reject_unauth_destination reject_non_fqdn_hostname reject_invalid_hostname permit",
        "reject_non_fqdn_sender reject_unknown_sender_domain reject_unknown_recipient_domain permit_mynetworks reject_unauth_destination reject_non_fqdn_hostname reject_invalid_hostname permit",
        "reject_non_fqdn_recipient reject_non_fqdn_sender reject_unknown_sender_domain reject_unknown_recipient_domain permit_mynetworks reject_unauth_destination reject_multi_recipient_bounce check_helo_access pcre:helo_checks reject_non_fqdn_hostname reject_invalid_hostname reject_rbl_client zen.spamhaus.org permit",
        "reject_non_fqdn_recipient reject_non_fqdn_sender reject_unknown_sender_domain reject_unknown_recipient_domain permit_mynetworks check_sender_access hash:no_usar_mi_dominio reject_unauth_destination reject_multi_recipient_bounce check_helo_access pcre:helo_checks reject_non_fqdn_hostname reject_invalid_hostname reject_rbl_client zen.spamhaus.org permit",
    ];
    let main_cf = gw.path("main.cf");
    let base = fs::read_to_string(&main_cf).unwrap();
    for list in seed_002 {
        fs::write(
            &main_cf,
            format!(
                "{base}smtpd_helo_required = yes\n\
                 smtpd_client_restrictions = check_client_access hash:access_clients permit\n\
                 smtpd_recipient_restrictions =\n    {}\n",
                list.replace(' ', "\n    ")
            ),
        )
        .unwrap();
        let (status, stdout, stderr) = gw.admin(&["check"]);
        assert_eq!(status, 0, "{list}\n{stdout}{stderr}");
    }
    // Seed 001 as written: Postfix would load it, ignore the stray
    // parameter, and answer every RCPT with 451 4.3.5 (it takes
    // "#required" for a restriction name). check says both.
    fs::write(
        &main_cf,
        format!(
            "{base}smtpd_delay_reject = yes\n\
             reject_unauth_pipelining = yes\n\
             smtpd_sender_restrictions =\n    reject_non_fqdn_sender,           #required by the RFC.\n    reject_unknown_sender_domain     #MAIL FROM address has no DNS A or MX record\n"
        ),
    )
    .unwrap();
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_ne!(status, 0);
    assert!(
        stderr.contains("reject_unauth_pipelining is a restriction"),
        "{stderr}"
    );
    let text = fs::read_to_string(&main_cf).unwrap();
    fs::write(
        &main_cf,
        text.replace("reject_unauth_pipelining = yes\n", ""),
    )
    .unwrap();
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_ne!(status, 0);
    assert!(
        stderr.contains("a '#' comment must be on a line of its own"),
        "{stderr}"
    );
    // As meant.
    fs::write(
        &main_cf,
        format!(
            "{base}smtpd_delay_reject = yes\n\
             smtpd_data_restrictions = reject_unauth_pipelining\n\
             # required by the RFC; MAIL FROM address has no DNS A or MX record\n\
             smtpd_sender_restrictions =\n    reject_non_fqdn_sender,\n    reject_unknown_sender_domain\n\
             smtpd_helo_required = yes\n\
             # HELO or EHLO hostname syntax is invalid\n\
             smtpd_helo_restrictions =\n    reject_non_fqdn_hostname\n    reject_invalid_hostname\n\
             smtpd_recipient_restrictions =\n    reject_unauth_destination,\n    reject_unknown_recipient_domain\n"
        ),
    )
    .unwrap();
    let (status, stdout, stderr) = gw.admin(&["check"]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    let gw = gw.launch();
    let mut client = Client::connect(gw.port, "127.0.0.2").unwrap();
    client.send("EHLO foo");
    client.send("MAIL FROM:<a@good.test>");
    assert_eq!(
        client.send("RCPT TO:<b@example.com>"),
        "504 5.5.2 <foo>: Helo command rejected: need fully-qualified hostname"
    );
}

/// Message content waits in memory until cleanup has it: all sessions
/// together hold no more than smtpd_message_memory_limit (each of the two
/// smtpd processes half of it), a message past it gets 452 4.3.1 (its
/// sender tries again), and the memory is given back.
#[test]
fn message_content_in_memory_is_bounded_across_sessions() {
    let backend = Backend::start();
    let gw = Gateway::start(
        &backend,
        "smtpd_message_memory_limit = 200000\nmailgate_service_processes = 2\n",
    );
    let big = format!(
        "Subject: big\r\n\r\n{}marker-too-big\r\n",
        "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n".repeat(2000)
    );
    let mut client = Client::connect(gw.port, "127.0.0.2").unwrap();
    let reply = client.send_message("a@good.test", &["b@example.com"], &big);
    assert_eq!(reply, "452 4.3.1 Insufficient system storage");
    gw.wait_for_log(
        "smtpd_message_memory_limit (200000 bytes, 100000 for each of its 2 processes)",
    );
    // The same session and others go on, the memory given back.
    let reply = client.transaction(
        "a@good.test",
        &["b@example.com"],
        &message("small", "marker-small-after-big"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    backend.wait_for_message("marker-small-after-big");
    // Two sessions that each fit, one after the other, both pass: nothing
    // stays counted after a transaction.
    for i in 0..3 {
        let body = format!(
            "Subject: fits\r\n\r\n{}marker-fits-{i}\r\n",
            "x".repeat(60_000)
        );
        let mut client = Client::connect(gw.port, "127.0.0.3").unwrap();
        let reply = client.send_message("a@good.test", &["b@example.com"], &body);
        assert!(reply.starts_with("250"), "{i}: {reply}");
    }
}

/// policyd-weight's job: weights from DNS lists, the client's name, the HELO
/// name and the sender's domain; refused at the reject level, deferred at
/// the defer level, logged with its parts.
#[test]
fn check_client_score_weighs_dns_lists_helo_and_names() {
    let backend = Backend::start();
    let dns = DnsServer::with(&records());
    let gw = Gateway::start(
        &backend,
        &format!(
            "dns_nameservers = {}\n\
             client_score_dnsbl_sites = zen.test*2.5, bl2.test*2\n\
             smtpd_recipient_restrictions = reject_unauth_destination, check_client_score\n",
            dns.nameserver()
        ),
    );
    let mail = |from: &str, helo: &str| {
        let mut client = Client::connect(gw.port, from).unwrap();
        client.send(&format!("EHLO {helo}"));
        client.send("MAIL FROM:<a@good.test>");
        client.send("RCPT TO:<b@example.com>")
    };
    // Listed twice, no PTR name, a HELO name that is someone else's.
    assert_eq!(
        mail("127.0.0.5", "mail.good.test"),
        "550 5.7.1 Mail appeared to be SPAM or forged. Ask your Mail/DNS-Administrator to correct HELO and DNS MX settings or to get removed from DNSBLs"
    );
    let line = gw.wait_for_log("score: RCPT from unknown[127.0.0.5]");
    assert!(
        line.contains(
            "client score 6.00: IN_zen.test=2.5 IN_bl2.test=2 NO_REVERSE_NAME=1 HELO_MISMATCH=0.5"
        ),
        "{line}"
    );
    // Listed once (2.5), no PTR name (1), someone else's HELO name (0.5):
    // deferred.
    assert_eq!(
        mail("127.0.0.6", "mail.good.test"),
        "450 4.7.1 Mail appeared to be SPAM or forged; please try again later"
    );
    // A clean client whose HELO name is its own.
    assert_eq!(mail("127.0.0.2", "mail.good.test"), "250 2.1.5 Ok");
    let line = gw.wait_for_log("score: RCPT from mail.good.test[127.0.0.2]");
    assert!(
        line.contains("client score -1.00: HELO_IS_CLIENT=-1"),
        "{line}"
    );
}
