//! After-queue content filtering with Debian's real amavisd-new, set up as
//! the seeds' tutorials set up Postfix for it (seeds 001 and 003):
//! `content_filter = smtp-amavis:[127.0.0.1]:PORT` in main.cf, the
//! `smtp-amavis` (smtp) and `amavisfeed` (lmtp) services with their `-o`
//! overrides, and the re-injection listener with `content_filter=` and
//! `receive_override_options`. amavisd scans with ClamAV (a test clamd)
//! and SpamAssassin, and learns the original client through XFORWARD.

use mailgate_tests::amavis::Amavis;
use mailgate_tests::{Backend, Clamd, Client, EICAR, Gateway, free_port, message, wait_for};

/// The seeds' master.cf blocks, on this test's ports: seed 001's
/// `smtp-amavis`, seed 003's `amavisfeed` and re-injection listener as
/// written, plus `smtpd_authorized_xforward_hosts`, which Postfix's
/// AMAVIS_README adds (without it Postfix, and mailgate, do not offer amavis
/// XFORWARD, and the re-injected mail names 127.0.0.1 as its client).
fn seed_services(reinject_port: u16) -> String {
    format!(
        "smtp-amavis unix - - n - 2 smtp\n\
         \x20-o smtp_data_done_timeout=1200\n\
         \x20-o smtp_send_xforward_command=yes\n\
         \x20-o disable_dns_lookups=yes\n\
         amavisfeed unix - - n - 4 lmtp\n\
         \x20   -o lmtp_data_done_timeout=1200\n\
         \x20   -o lmtp_send_xforward_command=yes\n\
         \x20   -o disable_dns_lookups=yes\n\
         \x20   -o max_use=20\n\
         127.0.0.1:{reinject_port} inet n - n - - smtpd\n\
         \x20   -o content_filter=\n\
         \x20   -o smtpd_delay_reject=no\n\
         \x20   -o smtpd_client_restrictions=permit_mynetworks,reject\n\
         \x20   -o smtpd_helo_restrictions=\n\
         \x20   -o smtpd_sender_restrictions=\n\
         \x20   -o smtpd_recipient_restrictions=permit_mynetworks,reject\n\
         \x20   -o smtpd_data_restrictions=reject_unauth_pipelining\n\
         \x20   -o smtpd_end_of_data_restrictions=\n\
         \x20   -o smtpd_restriction_classes=\n\
         \x20   -o mynetworks=127.0.0.0/8\n\
         \x20   -o smtpd_error_sleep_time=0\n\
         \x20   -o smtpd_soft_error_limit=1001\n\
         \x20   -o smtpd_hard_error_limit=1000\n\
         \x20   -o smtpd_client_connection_count_limit=0\n\
         \x20   -o smtpd_client_connection_rate_limit=0\n\
         \x20   -o receive_override_options=no_header_body_checks,no_unknown_recipient_checks,no_milters,no_address_mappings\n\
         \x20   -o local_header_rewrite_clients=\n\
         \x20   -o smtpd_milters=\n\
         \x20   -o local_recipient_maps=\n\
         \x20   -o relay_recipient_maps=\n\
         \x20   -o smtpd_authorized_xforward_hosts=127.0.0.0/8\n"
    )
}

#[test]
fn amavisd_new_scans_after_the_queue_and_mail_comes_back_through_the_reinjection_listener() {
    let backend = Backend::start();
    let scratch = tempfile::tempdir().expect("tempdir");
    mailgate_tests::make_traversable(scratch.path());
    let clamd = Clamd::start(scratch.path());
    let reinject_port = free_port();
    let amavis = Amavis::start(&clamd.socket, reinject_port);
    // main.cf as seed 001 writes it; one sender goes to the LMTP service
    // of seed 003 instead, by a FILTER action.
    let gateway = Gateway::configure(
        &backend,
        &format!(
            "content_filter = smtp-amavis:[127.0.0.1]:{port}\n\
             header_checks = regexp:{{ {{/^Subject: clean over smtp/ PREPEND X-Header-Checked: yes}} }}\n\
             smtpd_sender_restrictions = check_sender_access inline:{{ {{lmtp@sender.example=FILTER amavisfeed:[127.0.0.1]:{port}}} }}\n",
            port = amavis.port
        ),
    )
    .with_master_cf(&seed_services(reinject_port));
    let (status, out, err) = gateway.admin(&["check"]);
    assert_eq!(status, 0, "mailgate check: {out}{err}");
    let gateway = gateway.launch();

    // A clean message from an outside client (127.0.0.2).
    let mut client = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    let reply = client.send_message(
        "alice@sender.example",
        &["bob@example.com"],
        &message("clean over smtp", "CLEAN-SMTP-MARKER"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let first_id = reply.rsplit(' ').next().unwrap().to_string();
    let delivered = backend.wait_for_message("CLEAN-SMTP-MARKER");
    // Scanned: amavis's headers, SpamAssassin's among them.
    let scanned = delivered.header("X-Virus-Scanned");
    assert_eq!(scanned, vec!["amavis at example.com"], "{delivered:?}");
    assert!(
        !delivered.header("X-Spam-Status").is_empty(),
        "SpamAssassin ran: {delivered:?}"
    );
    // header_checks ran on the way in, not again on re-injection
    // (receive_override_options = no_header_body_checks).
    assert_eq!(
        delivered.header("X-Header-Checked"),
        vec!["yes"],
        "{delivered:?}"
    );
    // amavis knew the original client and queue ID (XFORWARD from relay).
    let passed = amavis.wait_for_log(&["Passed CLEAN", &format!("Queue-ID: {first_id}")]);
    // amavis logs the SMTP client's address and port first: 127.0.0.1
    // (relay) without XFORWARD, the original client's with it.
    assert!(passed.contains("}, [127.0.0.2]:"), "{passed}");
    amavis.wait_for_log(&["ESMTP :", "<alice@sender.example>"]);
    // ... and passed them on when it re-injected (XFORWARD to smtpd): the
    // re-injection's client= line and Received header name it.
    let reinjected = gateway.wait_for_log(&format!("orig_queue_id={first_id}"));
    assert!(
        reinjected.contains("orig_client=unknown[127.0.0.2]"),
        "{reinjected}"
    );
    let received = delivered.header("Received");
    assert!(
        received
            .iter()
            .filter(|r| r.contains("[127.0.0.2]"))
            .count()
            == 2,
        "both Received headers of the gateway name the original client: {received:#?}"
    );
    // The re-injected copy was routed normally, not back to amavis: one
    // delivery to amavis for this message, one to the backend. amavis
    // answers relay only after its re-injection was accepted, so relay's
    // line for the first hop may come after the copy's delivery: waited for.
    let to_amavis = format!("127.0.0.1[127.0.0.1]:{}", amavis.port);
    let to_backend = format!("127.0.0.1[127.0.0.1]:{}", backend.port);
    wait_for("relay's line for the delivery to amavis", || {
        gateway
            .log()
            .lines()
            .any(|l| l.contains(&first_id) && l.contains(&to_amavis) && l.contains("status=sent"))
            .then_some(())
    });
    let log = gateway.log();
    assert!(
        log.lines()
            .any(|l| l.contains(&to_backend) && l.contains("status=sent")),
        "{log}"
    );

    // EICAR: amavis blocks it (the seeds' D_DISCARD); nothing reaches the
    // backend.
    let reply = client.transaction(
        "alice@sender.example",
        &["bob@example.com"],
        &format!("{}\n{EICAR}\n", message("infected", "EICAR-MARKER")),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let infected_id = reply.rsplit(' ').next().unwrap().to_string();
    let blocked = amavis.wait_for_log(&["Blocked INFECTED", &format!("Queue-ID: {infected_id}")]);
    assert!(blocked.contains("Mailgate.Test.EICAR"), "{blocked}");
    gateway.wait_for_log(&format!("{infected_id}: removed"));

    // The FILTER action's LMTP service: amavis answers each recipient
    // after the data, and the mail comes back the same way.
    let reply = client.transaction(
        "lmtp@sender.example",
        &["carol@example.com", "dave@example.com"],
        &message("clean over lmtp", "CLEAN-LMTP-MARKER"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let lmtp_id = reply.rsplit(' ').next().unwrap().to_string();
    let delivered = backend.wait_for_message("CLEAN-LMTP-MARKER");
    assert_eq!(
        delivered.header("X-Virus-Scanned").len(),
        1,
        "{delivered:?}"
    );
    let mut rcpts = delivered.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(rcpts, vec!["<carol@example.com>", "<dave@example.com>"]);
    let passed = amavis.wait_for_log(&["Passed CLEAN", &format!("Queue-ID: {lmtp_id}")]);
    assert!(passed.contains("}, [127.0.0.2]:"), "{passed}");
    // It came in over LMTP (amavis names the protocol of each session).
    amavis.wait_for_log(&["LMTP :", "<lmtp@sender.example>"]);
    // Two recipients, two LMTP replies: each logged as sent by relay.
    // relay logs them once amavis has answered, which may be after amavis
    // has written its own line.
    mailgate_tests::wait_for("two LMTP deliveries logged as sent", || {
        let log = gateway.log();
        let sent = log
            .lines()
            .filter(|l| l.contains(&lmtp_id) && l.contains(&to_amavis) && l.contains("status=sent"))
            .count();
        (sent == 2).then_some(())
    });

    // The public listener neither offers XFORWARD nor takes it: only the
    // re-injection listener's smtpd_authorized_xforward_hosts may say who
    // the client was.
    let mut outsider = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    let ehlo = outsider.send("EHLO client.example.org");
    assert!(
        ehlo.starts_with("250") && !ehlo.contains("XFORWARD"),
        "{ehlo}"
    );
    let refused = outsider.send("XFORWARD ADDR=192.0.2.1");
    assert_eq!(refused, "550 5.7.0 Error: insufficient authorization");

    drop(clamd);
}

/// With the filter down, mail waits in the queue for it: it is never
/// delivered unscanned, and each retry goes to the filter again.
#[test]
fn mail_waits_for_a_filter_that_is_down() {
    let backend = Backend::start();
    let filter_port = free_port();
    let gateway = Gateway::configure(
        &backend,
        &format!("content_filter = smtp-amavis:[127.0.0.1]:{filter_port}\n"),
    )
    .with_master_cf(&seed_services(free_port()));
    let (status, out, err) = gateway.admin(&["check"]);
    assert_eq!(status, 0, "mailgate check: {out}{err}");
    let gateway = gateway.launch();

    let mut client = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    let reply = client.send_message(
        "alice@sender.example",
        &["bob@example.com"],
        &message("filter down", "FILTER-DOWN-MARKER"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let id = reply.rsplit(' ').next().unwrap().to_string();
    let refused = format!(
        "status=deferred (connect to 127.0.0.1[127.0.0.1]:{filter_port}: Connection refused)"
    );
    // Two attempts (the first and a retry), both at the filter.
    mailgate_tests::wait_for("two deferrals at the filter", || {
        let log = gateway.log();
        let attempts = log
            .lines()
            .filter(|l| l.contains(&format!("{id}: to=<bob@example.com>")))
            .collect::<Vec<_>>();
        (attempts.len() >= 2).then(|| {
            assert!(attempts.iter().all(|l| l.contains(&refused)), "{log}");
        })
    });
    assert!(backend.messages().is_empty(), "delivered unscanned");
    assert_eq!(
        std::fs::read_dir(gateway.spool("deferred"))
            .map(|d| d.count())
            .unwrap_or(0),
        1,
        "the message waits in deferred/"
    );
}
