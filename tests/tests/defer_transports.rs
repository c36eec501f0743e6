//! defer_transports end to end: mail for a listed transport stays in the
//! queue through every queue run, logged as Postfix logs it, until
//! `mailgate queue flush` (Postfix's `postqueue -f`) delivers it.

use mailgate_tests::{Backend, Client, Gateway, message};

#[test]
fn a_deferred_transport_waits_for_a_flush() {
    let backend = Backend::start();
    // example.com goes through the smtp transport (the base transport_maps).
    let gateway = Gateway::start(&backend, "defer_transports = smtp\n");
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["b@example.com"],
        &message("held back", "DEFER-TRANSPORTS"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    client.send("QUIT");
    let queue_id = reply.rsplit(' ').next().expect("queue id").to_string();

    let line = gateway.wait_for_log("status=deferred (deferred transport)");
    assert!(
        line.contains(&format!(
            "{queue_id}: to=<b@example.com>, relay=none, delay="
        )) && line.contains("dsn=4.3.2, status=deferred (deferred transport)"),
        "{line}"
    );
    // Queue runs (every 2 s, backoff 2-4 s) defer it again; nothing is sent.
    mailgate_tests::wait_for("a second deferral", || {
        (gateway
            .log()
            .matches(&format!("{queue_id}: to=<b@example.com>, relay=none"))
            .count()
            >= 2)
            .then_some(())
    });
    assert!(
        !backend
            .messages()
            .iter()
            .any(|m| m.message.contains("DEFER-TRANSPORTS")),
        "delivered before the flush"
    );
    assert!(
        gateway.spool("deferred").join(&queue_id).exists()
            || gateway.spool("active").join(&queue_id).exists()
    );

    let (status, _, err) = gateway.admin(&["queue", "flush"]);
    assert_eq!(status, 0, "{err}");
    let received = backend.wait_for_message("DEFER-TRANSPORTS");
    assert_eq!(received.rcpt_to.len(), 1);
    gateway.wait_for_log(&format!("{queue_id}: removed"));
}

/// The same message through stock Postfix with the same setting: the
/// deferral's log line has the same shape, and `postqueue -f` delivers.
#[test]
fn the_deferral_is_logged_as_postfix_logs_it() {
    assert!(
        mailgate_tests::is_root(),
        "the differential tests need root (Postfix's master runs as root)"
    );
    let backend = Backend::start();
    let dns = mailgate_tests::DnsServer::on_port_53(&[mailgate_tests::Record::Zone("test")]);
    let postfix =
        mailgate_tests::StockPostfix::start("defer_transports = smtp\n", backend.port, &dns);
    let mut client = Client::connect(postfix.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["b@example.com"],
        &message("held back", "POSTFIX-DEFER"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    client.send("QUIT");
    let queue_id = reply.rsplit(' ').next().expect("queue id").to_string();
    let theirs = mailgate_tests::wait_for("Postfix's deferral", || {
        postfix
            .log()
            .lines()
            .find(|l| l.contains(&format!("{queue_id}: to=<b@example.com>")))
            .map(str::to_string)
    });

    let gateway = Gateway::start(&backend, "defer_transports = smtp\n");
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["b@example.com"],
        &message("held back", "MAILGATE-DEFER"),
    );
    client.send("QUIT");
    let our_id = reply.rsplit(' ').next().expect("queue id").to_string();
    let ours = gateway.wait_for_log(&format!("{our_id}: to=<b@example.com>"));

    // The line from the queue ID on, with the timings masked.
    let shape = |line: &str, id: &str| {
        let tail = &line[line.find(id).expect("queue id")..];
        let tail = tail.replacen(id, "ID", 1);
        tail.split(", ")
            .map(|field| match field.split_once('=') {
                Some(("delay" | "delays", _)) => {
                    field.split('=').next().unwrap_or("").to_string() + "=T"
                }
                _ => field.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert_eq!(shape(&ours, &our_id), shape(&theirs, &queue_id));
    assert_eq!(
        shape(&ours, &our_id),
        "ID: to=<b@example.com>, relay=none, delay=T, delays=T, dsn=4.3.2, status=deferred (deferred transport)"
    );
    assert!(
        !backend
            .messages()
            .iter()
            .any(|m| m.message.contains("POSTFIX-DEFER")),
        "Postfix delivered before the flush"
    );
    let status = std::process::Command::new("postqueue")
        .arg("-c")
        .arg(postfix.path("etc"))
        .arg("-f")
        .status()
        .expect("postqueue");
    assert!(status.success());
    backend.wait_for_message("POSTFIX-DEFER");
}
