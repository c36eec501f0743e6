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
