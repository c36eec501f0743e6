//! Differential tests: the same main.cf restrictions and the same SMTP
//! sessions against Debian's stock Postfix and against mailgate, through a
//! real DNS server (dnsmasq) that both use. Every reply to MAIL, RCPT, DATA
//! and the end of data must match in code, enhanced status code and text.
//!
//! Deliberate differences are not compared here and are listed in the
//! README: the greeting's mail_name, EHLO keywords mailgate does not offer
//! (ETRN, DSN, CHUNKING), queue IDs, DNS list lookups that fail
//! (rbl_tempfail_action: mailgate defers, Postfix lets the client through),
//! and a bare RCPT TO:<postmaster> (Postfix delivers it locally without
//! restrictions; mailgate delivers nothing locally).
//!
//! Needs root: Postfix's master runs only as root.

use std::fs;

use mailgate_tests::{
    Backend, Client, DnsServer, Gateway, Postgrey, Record, StockPostfix, is_root,
};

/// The DNS both servers see. Clients connect from these loopback addresses:
/// - 127.0.0.2: PTR mail.good.test, which resolves back (verified name);
/// - 127.0.0.3: PTR forged.good.test, which resolves elsewhere;
/// - 127.0.0.4: no PTR;
/// - 127.0.0.5: listed in zen.test (127.0.0.2) and in bl2.test (127.0.0.10);
/// - 127.0.0.6: listed in zen.test with 127.0.0.11 only;
/// - 127.0.0.7: PTR name in the RHSBL dbl.test.
fn records() -> Vec<Record<'static>> {
    vec![
        Record::Zone("test"),
        Record::Zone("example.com"),
        Record::Host("mail.good.test", "127.0.0.2"),
        Record::Mx("good.test", "mail.good.test", 10),
        Record::Ptr("127.0.0.3", "forged.good.test"),
        Record::Address("forged.good.test", "192.0.2.99"),
        Record::Address("sender.test", "192.0.2.20"),
        Record::Address("example.com", "192.0.2.10"),
        Record::Address("5.0.0.127.zen.test", "127.0.0.2"),
        Record::Txt("5.0.0.127.zen.test", "listed for testing"),
        Record::Address("5.0.0.127.bl2.test", "127.0.0.10"),
        Record::Address("6.0.0.127.zen.test", "127.0.0.11"),
        Record::Ptr("127.0.0.7", "spammy.bad.test"),
        Record::Address("spammy.bad.test", "127.0.0.7"),
        Record::Address("bad.test.dbl.test", "127.0.1.2"),
        Record::Address("spammy.bad.test.dbl.test", "127.0.1.2"),
        Record::Mx("badmx.test", "mx.badmx.test", 10),
        Record::Address("mx.badmx.test", "192.0.2.66"),
        Record::Address("2.0.0.127.wl.test", "127.0.2.1"),
    ]
}

/// One session: the client's address and its commands. "DATA" sends a
/// small message when the server says 354.
struct Session {
    from: &'static str,
    commands: &'static [&'static str],
}

const fn s(from: &'static str, commands: &'static [&'static str]) -> Session {
    Session { from, commands }
}

/// The replies of one session, comparable across servers: the greeting and
/// EHLO answers reduced to their first line's code, queue IDs masked.
fn play(port: u16, session: &Session) -> Vec<String> {
    let mut client = Client::connect(port, session.from).expect("connect");
    let greeting = if client.greeting.starts_with("220") {
        code_only(&client.greeting)
    } else {
        client.greeting.clone()
    };
    let mut replies = vec![greeting];
    for command in session.commands {
        let reply = client.send(command);
        let shown = if command.starts_with("EHLO") || command.starts_with("HELO") {
            // 250 + our host name, or a rejection worth comparing.
            if reply.starts_with("250") {
                code_only(&reply)
            } else {
                reply.clone()
            }
        } else {
            reply.clone()
        };
        replies.push(format!("{command} -> {}", mask_queue_id(&shown)));
        if *command == "DATA" && reply.starts_with("354") {
            client.write_raw(b"Subject: differential\r\n\r\nhello\r\n");
            let end = client.send(".");
            replies.push(format!(". -> {}", mask_queue_id(&end)));
        }
        if reply.is_empty() {
            break;
        }
    }
    replies
}

fn code_only(reply: &str) -> String {
    reply.get(..3).unwrap_or(reply).to_string()
}

fn mask_queue_id(reply: &str) -> String {
    match reply.split_once("queued as ") {
        Some((head, _)) => format!("{head}queued as ID"),
        None => reply.to_string(),
    }
}

/// Runs every session against both servers with the same settings and
/// compares. `files` are written into both configuration directories, for
/// the tables the settings name.
fn compare(name: &str, main_cf: &str, files: &[(&str, &str)], sessions: &[Session]) -> usize {
    compare_with(name, main_cf, files, &|port, _, _| {
        sessions
            .iter()
            .map(|session| {
                let replies = play(port, session);
                format!("from {}: {replies:?}", session.from)
            })
            .collect()
    })
}

/// Reads a server's log.
type LogReader<'a> = &'a dyn Fn() -> String;

/// Given a server's port, the backend and the server's log: one line per
/// thing seen.
type Scenario<'s> = dyn Fn(u16, &Backend, LogReader) -> Vec<String> + 's;

/// Runs `scenario` (given a server's port, the backend and the server's
/// log, it returns one line per thing it saw) against Postfix and against mailgate with the same settings,
/// and requires the same lines.
fn compare_with(
    name: &str,
    main_cf: &str,
    files: &[(&str, &str)],
    scenario: &Scenario<'_>,
) -> usize {
    compare_with_own(name, main_cf, "", files, scenario)
}

/// `compare_with`, with `ours` added to mailgate's main.cf only.
fn compare_with_own(
    name: &str,
    main_cf: &str,
    ours: &str,
    files: &[(&str, &str)],
    scenario: &Scenario<'_>,
) -> usize {
    let backend = Backend::start();
    let dns = DnsServer::on_port_53(&records());
    let postfix_dir = tempfile::tempdir().expect("tempdir");
    let write_files = |dir: &std::path::Path| {
        for (file, text) in files {
            fs::write(dir.join(file), text).expect("table file");
        }
    };
    // Tables are named relative to each server's own directory.
    let mailgate = Gateway::configure(
        &backend,
        &format!("dns_nameservers = {}\n{main_cf}{ours}", dns.nameserver()),
    );
    write_files(mailgate.dir.path());
    let mailgate = mailgate.launch();
    let postfix = {
        // hash: files need postmap in Postfix; texthash: reads the text.
        // Postfix needs absolute table paths.
        let mut text = main_cf.replace("hash:", "texthash:");
        for (file, _) in files {
            text = text.replace(
                &format!(":{file}"),
                &format!(":{}", postfix_dir.path().join(file).display()),
            );
        }
        write_files(postfix_dir.path());
        mailgate_tests::make_traversable(postfix_dir.path());
        StockPostfix::start(&text, backend.port, &dns)
    };
    let theirs = scenario(postfix.port, &backend, &|| postfix.log());
    let ours = scenario(mailgate.port, &backend, &|| mailgate.log());
    for line in &ours {
        println!("{name}: {line}");
    }
    let differences: Vec<String> = theirs
        .iter()
        .zip(&ours)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("  Postfix:  {a}\n  mailgate: {b}"))
        .collect();
    assert!(
        differences.is_empty() && theirs.len() == ours.len(),
        "{name}: {} of {} results differ:\n{}\n--- Postfix log ---\n{}\n--- mailgate log ---\n{}",
        differences.len(),
        theirs.len(),
        differences.join("\n"),
        postfix.log(),
        mailgate.log()
    );
    theirs.len()
}

#[test]
fn seed_001_helo_sender_and_recipient_blocks() {
    if !is_root() {
        panic!("the differential tests need root (Postfix's master runs as root)");
    }
    // Seed 001's block. Its `reject_unauth_pipelining = yes` line is not a
    // parameter (Postfix ignores it with a warning; mailgate refuses it and
    // says where the restriction goes): here it is where it takes effect.
    let main_cf = "smtpd_delay_reject = yes\n\
        smtpd_data_restrictions = reject_unauth_pipelining\n\
        smtpd_sender_restrictions = reject_non_fqdn_sender, reject_unknown_sender_domain\n\
        smtpd_helo_required = yes\n\
        smtpd_helo_restrictions = reject_non_fqdn_hostname, reject_invalid_hostname\n\
        smtpd_recipient_restrictions = reject_unauth_destination, reject_unknown_recipient_domain\n";
    let sessions = [
        // HELO required.
        s("127.0.0.2", &["MAIL FROM:<a@good.test>", "QUIT"]),
        // Not fully qualified HELO, refused at RCPT (delayed).
        s(
            "127.0.0.2",
            &[
                "EHLO foo",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        // Invalid HELO that is fully qualified.
        s(
            "127.0.0.2",
            &[
                "EHLO bad_host!.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        // Address literal HELO: valid, and invalid.
        s(
            "127.0.0.2",
            &[
                "EHLO [127.0.0.2]",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO [300.1.2.3]",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        // Sender not fully qualified; sender domain unknown; known via MX
        // and via A; null sender.
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@nodomain>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@nx.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "DATA",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@sender.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<>",
                "RCPT TO:<b@example.com>",
                "DATA",
                "QUIT",
            ],
        ),
        // Sender domain lookup fails (the server refuses): a deferral.
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@elsewhere.invalid>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        // SIZE= over message_size_limit.
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test> SIZE=999999999",
                "QUIT",
            ],
        ),
        // Relay refused before the recipient domain is looked up.
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@other.test>",
                "QUIT",
            ],
        ),
        // From mynetworks the recipient domain must still exist.
        s(
            "127.0.0.1",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "RCPT TO:<c@nx.test>",
                "QUIT",
            ],
        ),
    ];
    let n = compare("seed 001", main_cf, &[], &sessions);
    println!("seed 001: {n} sessions identical");
}

#[test]
fn seed_002_recipient_restrictions_with_helo_checks_sender_access_and_dnsbl() {
    if !is_root() {
        panic!("the differential tests need root (Postfix's master runs as root)");
    }
    // Seed 002's last list, with its helo_checks and no_usar_mi_dominio
    // tables, and zen.test standing in for zen.spamhaus.org.
    let main_cf = "smtpd_helo_required = yes\n\
        smtpd_recipient_restrictions = reject_non_fqdn_recipient, reject_non_fqdn_sender, \
        reject_unknown_sender_domain, reject_unknown_recipient_domain, permit_mynetworks, \
        check_sender_access hash:no_usar_mi_dominio, reject_unauth_destination, \
        reject_multi_recipient_bounce, check_helo_access pcre:helo_checks, \
        reject_non_fqdn_hostname, reject_invalid_hostname, reject_rbl_client zen.test, permit\n";
    let files = [
        (
            "helo_checks",
            "/^gw\\.example\\.com$/ 550 Don't use my own hostname\n\
             /^127\\.0\\.0\\.1$/ 550 Don't use my own IP address\n\
             /^\\[127\\.0\\.0\\.1\\]$/ 550 Don't use my own IP address\n\
             /^[0-9.]+$/ 550 Your software is not RFC 2821 compliant\n",
        ),
        (
            "no_usar_mi_dominio",
            "example.com 554 Go away, you are not from example.com\n",
        ),
    ];
    let sessions = [
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "DATA",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO gw.example.com",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO 10.1.2.3",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<ceo@example.com>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<>",
                "RCPT TO:<b@example.com>",
                "RCPT TO:<c@example.com>",
                "QUIT",
            ],
        ),
        // DNSBL: listed (with its TXT record), and not.
        s(
            "127.0.0.5",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.4",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        // mynetworks passes the HELO and DNSBL checks that come after.
        s(
            "127.0.0.1",
            &[
                "EHLO localhost",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@anywhere.test>",
                "QUIT",
            ],
        ),
    ];
    let n = compare("seed 002", main_cf, &files, &sessions);
    println!("seed 002: {n} sessions identical");
}

fn need_root() {
    assert!(
        is_root(),
        "the differential tests need root (Postfix's master runs as root)"
    );
}

#[test]
fn client_host_names_dns_lists_and_client_access() {
    need_root();
    let main_cf = "smtpd_client_restrictions = check_client_access cidr:client_access, \
        permit_dnswl_client wl.test, reject_rbl_client zen.test=127.0.0.[2..10], \
        reject_rbl_client bl2.test, reject_rhsbl_client dbl.test, \
        reject_unknown_client_hostname\n\
        smtpd_helo_restrictions = reject_unknown_helo_hostname\n\
        smtpd_sender_restrictions = check_sender_mx_access cidr:mx_access\n";
    let files = [
        (
            "client_access",
            "127.0.0.8/32 REJECT You are not welcome here\n127.0.0.9/32 OK\n",
        ),
        ("mx_access", "192.0.2.66/32 REJECT mail server blocked\n"),
    ];
    let mail = |from: &'static str| {
        s(
            from,
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        )
    };
    let sessions = [
        mail("127.0.0.2"),
        mail("127.0.0.3"),
        mail("127.0.0.4"),
        mail("127.0.0.5"),
        mail("127.0.0.6"),
        mail("127.0.0.7"),
        mail("127.0.0.8"),
        mail("127.0.0.9"),
        // 127.0.0.2 is also on the allow list, which outranks the rest.
        s(
            "127.0.0.2",
            &[
                "EHLO nohost.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.9",
            &[
                "EHLO nohost.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.9",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@badmx.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        // The allow list never opens relaying.
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@elsewhere.test>",
                "QUIT",
            ],
        ),
    ];
    let n = compare("client checks", main_cf, &files, &sessions);
    println!("client checks: {n} sessions identical");
}

#[test]
fn access_actions_classes_and_recipient_tables() {
    need_root();
    let main_cf = "smtpd_restriction_classes = strict\n\
        strict = reject_non_fqdn_sender, reject_unknown_sender_domain\n\
        smtpd_sender_restrictions = check_sender_access hash:senders, reject_rhsbl_sender dbl.test\n\
        smtpd_recipient_restrictions = check_recipient_access hash:recipients, \
        reject_unauth_destination, reject_multi_recipient_bounce\n\
        relay_recipient_maps = hash:relay_recipients\n";
    let files = [
        (
            "senders",
            "blocked@good.test REJECT\n\
             later@good.test DEFER_IF_PERMIT try again later\n\
             soft@good.test defer_if_reject, reject\n\
             hold@good.test HOLD\n\
             discard@good.test DISCARD\n\
             prepend@good.test PREPEND X-Tagged: yes\n\
             coded@good.test 550 5.1.1 no such sender\n\
             temp@good.test 421 4.7.0 closing\n\
             strict.test strict\n\
             allowed@bad.test OK\n",
        ),
        (
            "recipients",
            "closed@example.com REJECT mailbox closed\n\
             picky@example.com reject_unknown_client_hostname\n",
        ),
        (
            "relay_recipients",
            "a@example.com x\nb@example.com x\nclosed@example.com x\npicky@example.com x\n",
        ),
    ];
    let mail = |from: &'static str, sender: &'static str| -> Session {
        let commands: &'static [&'static str] = Box::leak(
            vec![
                "EHLO mail.good.test",
                Box::leak(format!("MAIL FROM:<{sender}>").into_boxed_str()) as &str,
                "RCPT TO:<a@example.com>",
                "DATA",
                "QUIT",
            ]
            .into_boxed_slice(),
        );
        s(from, commands)
    };
    let sessions = [
        mail("127.0.0.2", "blocked@good.test"),
        mail("127.0.0.2", "later@good.test"),
        mail("127.0.0.2", "soft@good.test"),
        mail("127.0.0.2", "hold@good.test"),
        mail("127.0.0.2", "discard@good.test"),
        mail("127.0.0.2", "prepend@good.test"),
        mail("127.0.0.2", "coded@good.test"),
        mail("127.0.0.2", "temp@good.test"),
        mail("127.0.0.2", "x@strict.test"),
        mail("127.0.0.2", "x@spammy.bad.test"),
        mail("127.0.0.2", "allowed@bad.test"),
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<closed@example.com>",
                "RCPT TO:<c@example.com>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<picky@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.4",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<picky@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<>",
                "RCPT TO:<a@example.com>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO mail.good.test",
                "MAIL FROM:<later@good.test>",
                "RCPT TO:<x@elsewhere.test>",
                "QUIT",
            ],
        ),
    ];
    let n = compare("access actions", main_cf, &files, &sessions);
    println!("access actions: {n} sessions identical");
}

#[test]
fn restrictions_that_are_not_delayed() {
    need_root();
    let main_cf = "smtpd_delay_reject = no\n\
        smtpd_client_restrictions = check_client_access cidr:client_access\n\
        smtpd_helo_restrictions = reject_non_fqdn_helo_hostname\n\
        smtpd_sender_restrictions = reject_non_fqdn_sender\n";
    let files = [("client_access", "127.0.0.8/32 REJECT go away\n")];
    let sessions = [
        s(
            "127.0.0.8",
            &["EHLO mail.good.test", "MAIL FROM:<a@good.test>", "QUIT"],
        ),
        s(
            "127.0.0.2",
            &[
                "EHLO foo",
                "EHLO mail.good.test",
                "MAIL FROM:<a@nodomain>",
                "MAIL FROM:<a@good.test>",
                "RCPT TO:<b@example.com>",
                "QUIT",
            ],
        ),
    ];
    let n = compare("not delayed", main_cf, &files, &sessions);
    println!("not delayed: {n} sessions identical");
}

#[test]
fn warn_if_reject_and_the_deferring_pseudo_restrictions() {
    need_root();
    let main_cf = "smtpd_recipient_restrictions = warn_if_reject, reject_non_fqdn_sender, \
        reject_unauth_destination, check_sender_access hash:flags, permit\n";
    let files = [(
        "flags",
        "dip@good.test defer_if_permit\n\
         dir@good.test defer_if_reject, reject\n\
         warn@good.test warn_if_reject, reject\n",
    )];
    let mail = |sender: &'static str| -> Session {
        let commands: &'static [&'static str] = Box::leak(
            vec![
                "EHLO mail.good.test",
                Box::leak(format!("MAIL FROM:<{sender}>").into_boxed_str()) as &str,
                "RCPT TO:<a@example.com>",
                "QUIT",
            ]
            .into_boxed_slice(),
        );
        s("127.0.0.2", commands)
    };
    let sessions = [
        mail("a@nodomain"),
        mail("dip@good.test"),
        mail("dir@good.test"),
        mail("warn@good.test"),
    ];
    let n = compare("warn_if_reject", main_cf, &files, &sessions);
    println!("warn_if_reject: {n} sessions identical");
}

#[test]
fn per_client_connection_message_and_recipient_limits() {
    need_root();
    let main_cf = "smtpd_client_event_limit_exceptions =\n\
        smtpd_client_connection_count_limit = 2\n\
        smtpd_client_message_rate_limit = 2\n\
        smtpd_client_recipient_rate_limit = 3\n";
    // Postfix's anvil counts for all smtpd processes, and so does
    // mailgate's: several smtpd processes, whatever the machine's cores.
    let ours = "mailgate_service_processes = 3\n";
    let n = compare_with_own("client limits", main_cf, ours, &[], &|port, _, _| {
        let mut seen = Vec::new();
        // Two connections held open; the third from the same address is
        // refused, one from another address is served.
        let held: Vec<Client> = (0..2)
            .map(|_| Client::connect(port, "127.0.0.2").expect("connect"))
            .collect();
        for client in &held {
            seen.push(code_only(&client.greeting));
        }
        let third = Client::connect(port, "127.0.0.2").expect("connect");
        seen.push(format!("third: {}", third.greeting));
        let other = Client::connect(port, "127.0.0.3").expect("connect");
        seen.push(format!("other: {}", code_only(&other.greeting)));
        drop((held, third, other));
        // Messages and recipients per client and time unit.
        let mut client = Client::connect(port, "127.0.0.9").expect("connect");
        client.send("EHLO mail.good.test");
        for round in 0..3 {
            seen.push(format!(
                "mail {round}: {}",
                client.send("MAIL FROM:<a@good.test>")
            ));
            for rcpt in ["a", "b"] {
                seen.push(format!(
                    "rcpt {round}: {}",
                    client.send(&format!("RCPT TO:<{rcpt}@example.com>"))
                ));
            }
            seen.push(format!("rset {round}: {}", client.send("RSET")));
        }
        seen
    });
    println!("client limits: {n} results identical");
}

#[test]
fn pipelining_rules_and_clients_that_are_not_speaking_smtp() {
    need_root();
    let main_cf = "smtpd_data_restrictions = reject_unauth_pipelining\n";
    let n = compare_with("pipelining", main_cf, &[], &|port, _, _| {
        let mut seen = Vec::new();
        // DATA and the message sent at once, without waiting for 354.
        let mut client = Client::connect(port, "127.0.0.2").expect("connect");
        client.send("EHLO mail.good.test");
        for command in ["MAIL FROM:<a@good.test>", "RCPT TO:<b@example.com>"] {
            seen.push(client.send(command));
        }
        client.write_raw(b"DATA\r\nSubject: piped\r\n\r\nbody\r\n.\r\nQUIT\r\n");
        for _ in 0..3 {
            seen.push(mask_queue_id(&client.reply()));
        }
        // The same client waiting for each answer is fine.
        let mut client = Client::connect(port, "127.0.0.2").expect("connect");
        client.send("EHLO mail.good.test");
        for command in ["MAIL FROM:<a@good.test>", "RCPT TO:<b@example.com>", "DATA"] {
            seen.push(client.send(command));
        }
        client.write_raw(b"Subject: waited\r\n\r\nbody\r\n");
        seen.push(mask_queue_id(&client.send(".")));
        // A browser, a proxy request, a header where a command belongs.
        for line in [
            "GET / HTTP/1.0",
            "CONNECT 10.0.0.1:25 HTTP/1.1",
            "Subject: hello",
            "NOTACOMMAND",
        ] {
            let mut client = Client::connect(port, "127.0.0.3").expect("connect");
            let reply = client.send(line);
            // A closed session answers nothing more.
            let next = client.send("NOOP");
            seen.push(format!("{line} -> {reply}; then NOOP -> {next:?}"));
        }
        seen
    });
    println!("pipelining: {n} results identical");
}

#[test]
fn policy_delegation_to_a_real_postgrey() {
    need_root();
    let postgrey = Postgrey::start(1);
    let main_cf = format!(
        "smtpd_recipient_restrictions = reject_unauth_destination, \
         check_policy_service inet:127.0.0.1:{}\n",
        postgrey.port
    );
    let n = compare_with("policy delegation", &main_cf, &[], &|port, _, _| {
        // Each server its own triplet (the sender is not in the replies).
        let sender = format!("MAIL FROM:<s{port}@good.test>");
        let mut seen = Vec::new();
        for attempt in 0..2 {
            if attempt == 1 {
                std::thread::sleep(std::time::Duration::from_millis(2100));
            }
            let mut client = Client::connect(port, "127.0.0.2").expect("connect");
            client.send("EHLO mail.good.test");
            seen.push(client.send(&sender));
            seen.push(format!(
                "attempt {attempt}: {}",
                client.send("RCPT TO:<b@example.com>")
            ));
            client.send("QUIT");
        }
        seen
    });
    println!("policy delegation: {n} results identical");
}

/// What arrives at the next hop for message content with bare line ends,
/// lone dots and dot-stuffing (the SMTP smuggling cases): both servers
/// store the same lines.
#[test]
fn message_content_with_bare_line_ends_and_dots() {
    need_root();
    let main_cf = "smtpd_forbid_bare_newline = normalize\n";
    let bodies: [&[u8]; 8] = [
        b"a\n.\nMAIL FROM:<x>\r\n",
        b"a\r\n.\nMAIL FROM:<x>\r\n",
        b"a\n.\r\nMAIL FROM:<x>\r\n",
        b"a\n..\nb\r\n",
        b"..stuffed\r\n...two\r\n",
        b"line one\nline two\r\nline three\n",
        b"a\n\n.\n\r\nb\r\n",
        b"x\r\n.\r\n.\r\n",
    ];
    let n = compare_with("content", main_cf, &[], &|port, backend, _| {
        let mut seen = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            let marker = format!("content-{port}-{i}");
            let mut client = Client::connect(port, "127.0.0.2").expect("connect");
            client.send("EHLO mail.good.test");
            client.send("MAIL FROM:<a@good.test>");
            client.send("RCPT TO:<b@example.com>");
            client.send("DATA");
            client.write_raw(format!("Subject: {marker}\r\n\r\n").as_bytes());
            client.write_raw(body);
            let reply = client.send("\r\n.");
            // A body that smuggled an end of data leaves the real one
            // unanswered; the first reply is what counts.
            seen.push(format!("{i}: {}", mask_queue_id(&reply)));
            client.send("QUIT");
            let received = backend.wait_for_message(&format!("Subject: {marker}"));
            seen.push(format!("{i}: body {:?}", received.body()));
        }
        seen
    });
    println!("content: {n} results identical");
}

/// smtpd_forbid_bare_newline = reject (its exclusions: mynetworks) and
/// strict_smtputf8 = yes.
#[test]
fn bare_newlines_refused_and_unicode_addresses_without_smtputf8() {
    need_root();
    let main_cf = "smtpd_forbid_bare_newline = reject\nstrict_smtputf8 = yes\n";
    let n = compare_with("bare LF", main_cf, &[], &|port, _, _| {
        let mut seen = Vec::new();
        // A command line ending in a bare LF.
        let mut client = Client::connect(port, "127.0.0.2").expect("connect");
        client.write_raw(b"EHLO mail.good.test\n");
        seen.push(format!("bare LF command: {}", client.reply()));
        seen.push(format!("then: {:?}", client.send("NOOP")));
        // A message with a bare LF in its body.
        for from in ["127.0.0.2", "127.0.0.1"] {
            let mut client = Client::connect(port, from).expect("connect");
            client.send("EHLO mail.good.test");
            client.send("MAIL FROM:<a@good.test>");
            client.send("RCPT TO:<b@example.com>");
            client.send("DATA");
            client.write_raw(b"Subject: bare\r\n\r\nline\nnext\r\n");
            seen.push(format!(
                "bare LF body from {from}: {}",
                mask_queue_id(&client.send("."))
            ));
        }
        // Unicode addresses without SMTPUTF8, then with it.
        let mut client = Client::connect(port, "127.0.0.2").expect("connect");
        client.send("EHLO mail.good.test");
        seen.push(client.send("MAIL FROM:<jos\u{e9}@good.test>"));
        seen.push(client.send("MAIL FROM:<a@good.test>"));
        seen.push(client.send("RCPT TO:<b\u{fc}cher@example.com>"));
        client.send("RSET");
        seen.push(client.send("MAIL FROM:<jos\u{e9}@good.test> SMTPUTF8"));
        seen.push(client.send("RCPT TO:<b\u{fc}cher@example.com>"));
        seen
    });
    println!("bare LF: {n} results identical");
}

/// Address rewriting: canonical maps (sender, recipient, both), virtual
/// aliases (one-to-many, nested, an address that expands into itself,
/// extensions carried over, duplicates delivered once) and a virtual alias
/// domain whose unknown users are refused. Compared are the SMTP replies
/// and the envelope each server hands the internal server.
#[test]
fn address_rewriting_canonical_and_virtual_aliases() {
    need_root();
    let main_cf = "myorigin = example.com\n\
        recipient_delimiter = +\n\
        virtual_alias_maps = hash:virtual\n\
        sender_canonical_maps = hash:sender_canonical\n\
        recipient_canonical_maps = regexp:recipient_canonical\n\
        canonical_maps = hash:canonical\n";
    let files = [
        (
            "virtual",
            "alias.test anything\n\
             info@alias.test alice@example.com, bob@example.com\n\
             sales@alias.test team@alias.test\n\
             team@alias.test carol@example.com alice@example.com\n\
             old@example.com new@example.com\n\
             list@example.com list@example.com, archive@example.com\n\
             abuse@alias.test security\n",
        ),
        (
            "sender_canonical",
            "jdoe@inside.test john.doe@example.com\n",
        ),
        (
            "recipient_canonical",
            "/^(.+)\\.old@example\\.com$/ ${1}@example.com\n",
        ),
        ("canonical", "john.doe@example.com John.Doe@example.com\n"),
    ];
    let cases: &[(&str, &[&str])] = &[
        ("a@good.test", &["info@alias.test"]),
        ("a@good.test", &["sales@alias.test"]),
        ("a@good.test", &["nobody@alias.test", "b@example.com"]),
        ("a@good.test", &["info+tag@alias.test"]),
        ("a@good.test", &["old@example.com", "new@example.com"]),
        ("a@good.test", &["list@example.com"]),
        ("jdoe@inside.test", &["b@example.com"]),
        ("a@good.test", &["x.old@example.com"]),
        ("a@good.test", &["abuse@alias.test"]),
        ("", &["info@alias.test"]),
    ];
    let n = compare_with(
        "address rewriting",
        main_cf,
        &files,
        &|port, backend, log| {
            let mut lines = Vec::new();
            for (i, (sender, recipients)) in cases.iter().enumerate() {
                let marker = format!("REWRITE-{port}-{i}");
                let mut client = Client::connect(port, "127.0.0.2").expect("connect");
                let mut replies = vec![code_only(&client.send("EHLO mail.good.test"))];
                replies.push(client.send(&format!("MAIL FROM:<{sender}>")));
                let mut accepted = 0;
                for rcpt in *recipients {
                    let reply = client.send(&format!("RCPT TO:<{rcpt}>"));
                    accepted += usize::from(reply.starts_with("250"));
                    replies.push(reply);
                }
                let mut queued = None;
                if accepted > 0 {
                    replies.push(client.send("DATA"));
                    client.write_raw(format!("Subject: rewriting\r\n\r\n{marker}\r\n").as_bytes());
                    let end = client.send(".");
                    queued = end.rsplit(' ').next().map(str::to_string);
                    replies.push(mask_queue_id(&end));
                }
                client.send("QUIT");
                lines.push(format!("{sender} {recipients:?}: {replies:?}"));
                let Some(id) = queued else { continue };
                // Every delivery of the message is done once it has left
                // the queue.
                mailgate_tests::wait_for(&format!("{id} removed"), || {
                    log().contains(&format!("{id}: removed")).then_some(())
                });
                let mut rcpts: Vec<String> = Vec::new();
                let mut from = Vec::new();
                for m in backend.messages() {
                    if m.message.contains(&marker) {
                        from.push(m.mail_from.clone());
                        rcpts.extend(m.rcpt_to.iter().cloned());
                    }
                }
                // mailgate offers and sends no DSN (README: differences), so
                // Postfix's ORCPT parameters are not compared, and neither is
                // its second delivery to one address reached from two
                // original recipients (its duplicate filter keys on ORCPT).
                let mut rcpts: Vec<String> = rcpts
                    .iter()
                    .map(|r| r.split(" ORCPT=").next().unwrap_or(r).to_string())
                    .collect();
                rcpts.sort();
                rcpts.dedup();
                from.dedup();
                lines.push(format!("  delivered: from {from:?} to {rcpts:?}"));
            }
            lines
        },
    );
    assert_eq!(n, 2 * cases.len(), "every case delivers to some recipient");
}

/// header_checks and body_checks actions that decide where the message
/// goes or stop the checks: REDIRECT (overriding BCC), BCC (its address
/// mapped by virtual_alias_maps), BCC from body_checks, a bad BCC and an
/// unknown action (ignored), PASS (no REJECT after it), STRIP. Compared
/// are the replies and the envelope and headers the internal server gets.
#[test]
fn header_checks_redirect_bcc_pass_and_strip() {
    need_root();
    let main_cf = "header_checks = regexp:header_checks\n\
        body_checks = regexp:body_checks\n\
        virtual_alias_maps = hash:virtual\n";
    let files = [
        (
            "header_checks",
            "/^Subject: redirect/ REDIRECT other@example.com\n\
             /^Subject: bcc/ BCC copy@alias.test\n\
             /^Subject: both/ BCC copy@example.com\n\
             /^X-Redirect: yes/ REDIRECT other@example.com\n\
             /^Subject: bad/ BCC nobody\n\
             /^Subject: unknown/ FROBNICATE now\n\
             /^Subject: pass/ PASS trusted\n\
             /^X-Reject:/ REJECT not after PASS\n\
             /^X-Strip:/ STRIP stripped\n",
        ),
        ("body_checks", "/^BODY-BCC/ BCC body@example.com\n"),
        ("virtual", "copy@alias.test audit@example.com\n"),
    ];
    let cases: &[(&str, &str, &str)] = &[
        ("redirect", "", ""),
        ("bcc", "", ""),
        ("both", "X-Redirect: yes\r\n", ""),
        ("bad", "", ""),
        ("unknown", "", ""),
        ("pass", "X-Reject: 1\r\n", ""),
        ("plain", "X-Reject: 1\r\n", ""),
        ("strip", "X-Strip: 1\r\n", ""),
        ("body", "", "BODY-BCC\r\n"),
    ];
    compare_with("header checks", main_cf, &files, &|port, backend, log| {
        let mut lines = Vec::new();
        for (i, (subject, headers, body)) in cases.iter().enumerate() {
            let marker = format!("HBC-{port}-{i}");
            let mut client = Client::connect(port, "127.0.0.2").expect("connect");
            client.send("EHLO mail.good.test");
            client.send("MAIL FROM:<a@good.test>");
            client.send("RCPT TO:<b@example.com>");
            client.send("DATA");
            client.write_raw(
                format!("Subject: {subject}\r\n{headers}\r\n{body}{marker}\r\n").as_bytes(),
            );
            let end = client.send(".");
            client.send("QUIT");
            lines.push(format!("{subject}: {}", mask_queue_id(&end)));
            if !end.starts_with("250") {
                continue;
            }
            let id = end.rsplit(' ').next().unwrap_or_default().to_string();
            mailgate_tests::wait_for(&format!("{id} removed"), || {
                log().contains(&format!("{id}: removed")).then_some(())
            });
            let mut rcpts: Vec<String> = Vec::new();
            let mut stripped = Vec::new();
            for m in backend.messages() {
                if m.message.contains(&marker) {
                    rcpts.extend(
                        m.rcpt_to
                            .iter()
                            .map(|r| r.split(' ').next().unwrap_or(r).to_string()),
                    );
                    stripped.push(m.header("X-Strip").is_empty());
                }
            }
            rcpts.sort();
            lines.push(format!(
                "  delivered to {rcpts:?}, X-Strip gone: {stripped:?}"
            ));
            // cleanup's log lines for the actions, queue ID masked.
            for line in log().lines() {
                let Some((_, text)) = line.split_once(&format!("{id}: ")) else {
                    continue;
                };
                if ["redirect: ", "bcc: ", "pass: ", "strip: "]
                    .iter()
                    .any(|a| text.starts_with(a))
                {
                    lines.push(format!("  log: ID: {text}"));
                }
            }
        }
        // The warnings for the entries cleanup ignores.
        for line in log().lines() {
            if let Some((_, text)) = line.split_once("warning: ")
                && (text.contains("header_checks map") || text.contains("body_checks map"))
            {
                lines.push(format!("warning: {text}"));
            }
        }
        lines
    });
}
