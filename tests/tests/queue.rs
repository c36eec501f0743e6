//! Queue life end to end: bounces and delay notices that qmgr queues
//! through cleanup, and the queue tools (`mailgate queue`, `mailgate
//! sendmail`) against a running gateway and a stopped one.
//!
//! Routing in these tests: example.com and sender.example go to the
//! backend (so notices to the sender arrive there too); reject.example goes
//! to a second smtp-sink that refuses every RCPT with a 5xx; dead.example
//! goes to a port where nothing listens (connection refused: deferred).

use std::process::{Command, Stdio};

use mailgate_tests::{Backend, Client, Gateway, bin_dir, free_port, is_root, message, wait_for};

/// The main.cf lines for the routes above.
fn routes(backend: &Backend, rejecting: Option<&Backend>, dead_port: u16) -> String {
    let good = format!("smtp:[127.0.0.1]:{}", backend.port);
    let bad = rejecting.map_or(dead_port, |b| b.port);
    format!(
        "transport_maps = inline:{{ example.com={good}, sender.example={good}, \
         reject.example=smtp:[127.0.0.1]:{bad}, dead.example=smtp:[127.0.0.1]:{dead_port} }}\n"
    )
}

fn queued_id(reply: &str) -> String {
    assert!(
        reply.starts_with("250 2.0.0 Ok: queued as "),
        "not queued: {reply}"
    );
    reply.rsplit(' ').next().expect("queue id").to_string()
}

/// Sends one message from a mynetworks client and returns its queue ID.
fn send(gateway: &Gateway, from: &str, to: &[&str], subject: &str, marker: &str) -> String {
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(from, to, &message(subject, marker));
    client.send("QUIT");
    queued_id(&reply)
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_permanent_failure_returns_a_dsn_to_the_sender() {
    let backend = Backend::start();
    let rejecting = Backend::start_with(&["-f", "RCPT"]);
    let gateway = Gateway::start(&backend, &routes(&backend, Some(&rejecting), free_port()));
    let id = send(
        &gateway,
        "alice@sender.example",
        &["ok@example.com", "bob@reject.example"],
        "MARKER-BOUNCE-SUBJECT",
        "MARKER-BOUNCE-BODY",
    );

    // The good recipient gets the message once; it is not retried.
    let original = backend.wait_for_message("MARKER-BOUNCE-BODY");
    assert_eq!(original.rcpt_to, vec!["<ok@example.com>"]);

    let notice_line = gateway.wait_for_log(&format!("{id}: sender non-delivery notification: "));
    let notice_id = notice_line
        .rsplit(' ')
        .next()
        .expect("notice id")
        .to_string();
    gateway.wait_for_log(&format!("{notice_id}: from=<>"));

    let dsn = backend.wait_for_message("Final-Recipient: rfc822; bob@reject.example");
    assert_eq!(dsn.mail_from, "<>");
    assert_eq!(dsn.rcpt_to, vec!["<alice@sender.example>"]);
    assert_eq!(
        dsn.header("From"),
        vec!["Mail Delivery System <MAILER-DAEMON@gw.example.com>"]
    );
    assert_eq!(
        dsn.header("Subject"),
        vec!["Undelivered Mail Returned to Sender"]
    );
    let content_type = dsn.header("Content-Type").join(" ");
    assert!(
        content_type.contains("multipart/report; report-type=delivery-status;"),
        "{content_type}"
    );
    assert_eq!(dsn.header("Received").len(), 1, "cleanup's Received header");
    let body = dsn.body();
    for part in [
        "Content-Type: text/plain",
        "Content-Type: message/delivery-status",
        "Reporting-MTA: dns; gw.example.com",
        &format!("X-Mailgate-Queue-ID: {id}"),
        "Arrival-Date: ",
        "Action: failed",
        "Status: 5.",
        "Remote-MTA: dns; 127.0.0.1",
        "Diagnostic-Code: smtp; 5",
        "Content-Type: text/rfc822-headers",
        "Subject: MARKER-BOUNCE-SUBJECT",
        &format!("with ESMTP id {id}"),
    ] {
        assert!(
            body.contains(part),
            "{part:?} missing from the DSN:\n{body}"
        );
    }
    assert!(!body.contains("ok@example.com"), "only failed recipients");
    assert!(!body.contains("MARKER-BOUNCE-BODY"), "headers only");

    gateway.wait_for_log(&format!("{id}: removed"));
    wait_for("the queue to empty", || {
        let (status, out, _) = gateway.admin(&["queue", "list"]);
        (status == 0 && out == "Mail queue is empty\n").then_some(())
    });
    // Exactly one notice, and the good recipient was delivered once.
    let log = gateway.log();
    assert_eq!(count(&log, "sender non-delivery notification"), 1);
    assert_eq!(
        count(&log, &format!("{id}: to=<ok@example.com>")),
        1,
        "{log}"
    );
}

#[test]
fn a_bounce_of_a_null_sender_message_sends_no_dsn() {
    let backend = Backend::start();
    let rejecting = Backend::start_with(&["-f", "RCPT"]);
    let gateway = Gateway::start(&backend, &routes(&backend, Some(&rejecting), free_port()));
    let id = send(
        &gateway,
        "",
        &["bob@reject.example"],
        "null sender",
        "MARKER-NULL",
    );
    gateway.wait_for_log(&format!("{id}: no non-delivery notification: null sender"));
    gateway.wait_for_log(&format!("{id}: removed"));
    let log = gateway.log();
    assert!(
        log.contains(&format!("{id}: to=<bob@reject.example>")) && log.contains("status=bounced")
    );
    assert_eq!(count(&log, "non-delivery notification: "), 1, "{log}");
    assert!(backend.messages().is_empty(), "nothing reaches anyone");
}

#[test]
fn deferred_mail_is_listed_held_released_requeued_and_deleted() {
    let backend = Backend::start();
    let dead = free_port();
    // A long backoff keeps a deferred message where it is while the tools
    // act on it; only the tools (and flush) make it move.
    let extra = format!(
        "{}minimal_backoff_time = 600s\nmaximal_backoff_time = 600s\n",
        routes(&backend, None, dead)
    );
    let gateway = Gateway::start(&backend, &extra);
    let id = send(
        &gateway,
        "alice@sender.example",
        &["bob@dead.example"],
        "deferred",
        "MARKER-DEFERRED",
    );
    gateway.wait_for_log(&format!("{id}: to=<bob@dead.example>"));
    let reason = format!("(connect to 127.0.0.1[127.0.0.1]:{dead}: Connection refused)");
    // Listed once it is in deferred/ (listed while qmgr still moves it,
    // it would show as active, with a '*').
    let listing = wait_for("the message in deferred/", || {
        gateway.spool("deferred").join(&id).exists().then_some(())?;
        let (_, out, _) = gateway.admin(&["queue", "list"]);
        Some(out)
    });
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(
        lines[0],
        "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
    );
    assert!(
        lines[1].starts_with(&format!("{id}  ")) && lines[1].ends_with("  alice@sender.example"),
        "{listing}"
    );
    assert_eq!(lines[2], reason, "{listing}");
    assert_eq!(lines[3], format!("{:41}bob@dead.example", ""));
    assert_eq!(lines.last(), Some(&"-- 1 Kbytes in 1 Request."));

    let (status, json, _) = gateway.admin(&["queue", "list", "--json"]);
    assert_eq!(status, 0);
    assert!(json.contains("\"queue_name\":\"deferred\""), "{json}");
    assert!(json.contains(&format!("\"queue_id\":\"{id}\"")), "{json}");
    assert!(json.contains("Connection refused"), "{json}");

    let (status, shown, _) = gateway.admin(&["queue", "show", &id]);
    assert_eq!(status, 0);
    assert!(shown.starts_with(&format!("*** ENVELOPE RECORDS deferred/{id} ***\n")));
    assert!(shown.contains("sender: alice@sender.example\n"));
    assert!(shown.contains("recipient: bob@dead.example\n"));
    assert!(shown.contains(&format!(
        "*** MESSAGE CONTENTS deferred/{id} ***\nReceived: "
    )));
    assert!(shown.contains("Subject: deferred\n"));
    assert!(shown.ends_with(&format!(
        "MARKER-DEFERRED\n*** MESSAGE FILE END deferred/{id} ***\n"
    )));

    // Hold: nothing is delivered, not even on flush.
    let (status, _, err) = gateway.admin(&["queue", "hold", &id]);
    assert_eq!(
        (status, err.as_str()),
        (0, "mailgate: Placed on hold: 1 message\n")
    );
    assert!(gateway.spool("hold").join(&id).exists());
    gateway.wait_for_log(&format!("{id}: placed on hold"));
    let (_, out, _) = gateway.admin(&["queue", "list"]);
    assert!(out.contains(&format!("{id}! ")), "{out}");

    // Release: back in deferred/, due at once.
    let (status, _, err) = gateway.admin(&["queue", "release", &id]);
    assert_eq!(
        (status, err.as_str()),
        (0, "mailgate: Released from hold: 1 message\n")
    );
    gateway.wait_for_log(&format!("{id}: released from hold"));

    // Requeue: through incoming/ to another attempt (deferred again).
    wait_for(
        "the released message to be tried and deferred again",
        || {
            let log = gateway.log();
            (count(&log, &format!("{id}: to=<bob@dead.example>")) >= 2
                && gateway.spool("deferred").join(&id).exists())
            .then_some(())
        },
    );
    let (status, _, err) = gateway.admin(&["queue", "requeue", "ALL"]);
    assert_eq!(
        (status, err.as_str()),
        (0, "mailgate: Requeued: 1 message\n")
    );
    wait_for("a third attempt", || {
        (count(&gateway.log(), &format!("{id}: to=<bob@dead.example>")) >= 3).then_some(())
    });

    // A second message, then the destination comes back: flush delivers it
    // long before its 600s backoff.
    let id2 = send(
        &gateway,
        "alice@sender.example",
        &["carol@dead.example"],
        "flushed",
        "MARKER-FLUSHED",
    );
    wait_for("the second message in deferred/", || {
        gateway.spool("deferred").join(&id2).exists().then_some(())
    });
    // Delete the first one while it waits.
    wait_for("the first message in deferred/", || {
        gateway.spool("deferred").join(&id).exists().then_some(())
    });
    let (status, _, err) = gateway.admin(&["queue", "delete", &id]);
    assert_eq!(
        (status, err.as_str()),
        (0, "mailgate: Deleted: 1 message\n")
    );
    gateway.wait_for_log(&format!("{id}: removed"));
    assert!(!gateway.spool("deferred").join(&id).exists());

    let revived = Backend::start_on(dead);
    let (status, _, _) = gateway.admin(&["queue", "flush"]);
    assert_eq!(status, 0);
    let got = revived.wait_for_message("MARKER-FLUSHED");
    assert_eq!(got.rcpt_to, vec!["<carol@dead.example>"]);
    gateway.wait_for_log(&format!("{id2}: removed"));
    assert!(
        revived
            .messages()
            .iter()
            .all(|m| !m.message.contains("MARKER-DEFERRED"))
    );

    let (status, out, _) = gateway.admin(&["queue", "list"]);
    assert_eq!((status, out.as_str()), (0, "Mail queue is empty\n"));
    let (status, _, err) = gateway.admin(&["queue", "delete", "0123456789ABCD"]);
    assert_eq!(status, 1);
    assert!(
        err.contains("not found") && err.contains("0123456789ABCD"),
        "{err}"
    );
    let (status, _, err) = gateway.admin(&["queue", "show", "../../etc/passwd"]);
    assert_eq!(status, 1);
    assert!(err.contains("invalid queue ID"), "{err}");
}

#[test]
fn an_active_message_is_held_when_its_delivery_reports_back() {
    let backend = Backend::start();
    // This backend waits 3 seconds before it answers DATA: the delivery is
    // in flight while the tool acts.
    let slow = Backend::start_with(&["-w", "3"]);
    let extra = format!(
        "{}minimal_backoff_time = 600s\nmaximal_backoff_time = 600s\n",
        routes(&backend, Some(&slow), free_port())
    );
    let gateway = Gateway::start(&backend, &extra);
    let id = send(
        &gateway,
        "alice@sender.example",
        &["bob@reject.example", "carol@dead.example"],
        "slow",
        "MARKER-SLOW",
    );
    gateway.wait_for_log(&format!("{id}: to=<carol@dead.example>"));
    let (status, _, err) = gateway.admin(&["queue", "hold", "ALL"]);
    assert_eq!(status, 0);
    assert_eq!(
        err,
        "mailgate: Placed on hold: 1 message (1 as soon as the deliveries in flight report back)\n"
    );
    // The delivery under way completes (it cannot be called back) and is
    // recorded before the message goes on hold.
    slow.wait_for_message("MARKER-SLOW");
    gateway.wait_for_log(&format!("{id}: placed on hold"));
    assert!(gateway.spool("hold").join(&id).exists());
    let (_, shown, _) = gateway.admin(&["queue", "show", &id]);
    assert!(
        shown.contains("done_recipient: bob@reject.example\n"),
        "{shown}"
    );
    assert!(shown.contains("recipient: carol@dead.example\n"), "{shown}");

    // Released and requeued, only the recipient still pending is tried.
    let (status, _, _) = gateway.admin(&["queue", "requeue", &id]);
    assert_eq!(status, 0);
    wait_for("a second attempt for carol", || {
        (count(&gateway.log(), &format!("{id}: to=<carol@dead.example>")) >= 2).then_some(())
    });
    assert_eq!(
        count(&gateway.log(), &format!("{id}: to=<bob@reject.example>")),
        1,
        "delivered once"
    );
    assert_eq!(slow.messages().len(), 1);
}

#[test]
fn delay_notice_once_then_expiry_returns_the_message() {
    let backend = Backend::start();
    let extra = format!(
        "{}delay_warning_time = 1s\nmaximal_queue_lifetime = 8s\n",
        routes(&backend, None, free_port())
    );
    let gateway = Gateway::start(&backend, &extra);
    let id = send(
        &gateway,
        "alice@sender.example",
        &["bob@dead.example"],
        "MARKER-DELAY-SUBJECT",
        "MARKER-DELAY",
    );
    let delayed = backend.wait_for_message("Delayed Mail (still being retried)");
    assert_eq!(delayed.mail_from, "<>");
    assert_eq!(delayed.rcpt_to, vec!["<alice@sender.example>"]);
    let body = delayed.body();
    assert!(body.contains("Action: delayed"), "{body}");
    assert!(body.contains("Status: 4.4.1"), "{body}");
    assert!(body.contains("Will-Retry-Until: "), "{body}");
    assert!(body.contains("Subject: MARKER-DELAY-SUBJECT"), "{body}");

    gateway.wait_for_log(&format!(
        "{id}: from=<alice@sender.example>, status=expired, returned to sender"
    ));
    let failed = backend.wait_for_message("Undelivered Mail Returned to Sender");
    let body = failed.body();
    assert!(
        body.contains("Final-Recipient: rfc822; bob@dead.example"),
        "{body}"
    );
    assert!(body.contains("Action: failed\nStatus: 4.4.1"), "{body}");
    assert!(body.contains("Connection refused"), "{body}");
    gateway.wait_for_log(&format!("{id}: removed"));
    let log = gateway.log();
    assert_eq!(
        count(&log, &format!("{id}: sender delay notification: ")),
        1,
        "{log}"
    );
    assert_eq!(
        count(&log, &format!("{id}: sender non-delivery notification: ")),
        1,
        "{log}"
    );
}

#[test]
fn sendmail_submits_through_cleanup() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, &routes(&backend, None, free_port()));
    let sendmail = |args: &[&str], input: &str| gateway.sendmail(args, input);
    let (status, err) = sendmail(
        &["-f", "cron@sender.example", "-oi", "bob@example.com"],
        "Subject: cron output\n\nline one\n.\nMARKER-SENDMAIL\n",
    );
    assert_eq!((status, err.as_str()), (0, ""));
    let got = backend.wait_for_message("MARKER-SENDMAIL");
    assert_eq!(got.mail_from, "<cron@sender.example>");
    assert_eq!(got.rcpt_to, vec!["<bob@example.com>"]);
    assert_eq!(got.header("From"), vec!["cron@sender.example"]);
    let body = got.body();
    assert!(
        body.contains("line one\n.\nMARKER-SENDMAIL")
            || body.contains("line one\n..\nMARKER-SENDMAIL"),
        "-oi keeps the dot line: {body}"
    );
    assert!(
        got.header("Received")[0].contains("with local id"),
        "{:?}",
        got.header("Received")
    );

    let (status, err) = sendmail(
        &["-t", "-f", "cron@sender.example"],
        "To: Carol <carol@example.com>\nBcc: dave@example.com\nSubject: t\n\nMARKER-EXTRACT\n",
    );
    assert_eq!((status, err.as_str()), (0, ""));
    wait_for("both extracted recipients", || {
        let rcpts: Vec<String> = backend
            .messages()
            .into_iter()
            .filter(|m| m.message.contains("MARKER-EXTRACT"))
            .flat_map(|m| m.rcpt_to)
            .collect();
        (rcpts.contains(&"<carol@example.com>".to_string())
            && rcpts.contains(&"<dave@example.com>".to_string()))
        .then_some(())
    });
    assert!(
        backend
            .messages()
            .iter()
            .filter(|m| m.message.contains("MARKER-EXTRACT"))
            .all(|m| m.header("Bcc").is_empty()),
        "Bcc removed"
    );

    let (status, err) = sendmail(&["-f", "x@sender.example"], "Subject: none\n\nbody\n");
    assert_eq!(status, 64, "no recipients: EX_USAGE");
    assert!(err.contains("no recipient addresses"), "{err}");
}

#[test]
fn other_users_are_refused_and_a_stopped_gateway_is_edited_directly() {
    let backend = Backend::start();
    let dead = free_port();
    let extra = format!(
        "{}minimal_backoff_time = 600s\nmaximal_backoff_time = 600s\n",
        routes(&backend, None, dead)
    );
    let mut gateway = Gateway::start(&backend, &extra);
    if is_root() {
        use std::os::unix::process::CommandExt;
        let nobody = nix::unistd::User::from_name("nobody")
            .ok()
            .flatten()
            .expect("user nobody");
        let output = Command::new(bin_dir().join("mailgate"))
            .arg("-c")
            .arg(gateway.dir.path())
            .args(["queue", "list"])
            .uid(nobody.uid.as_raw())
            .gid(nobody.gid.as_raw())
            .output()
            .expect("mailgate as nobody");
        assert_eq!(output.status.code(), Some(1));
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(err.contains("only by root and by mail_owner"), "{err}");
        let output = Command::new(bin_dir().join("mailgate"))
            .arg("-c")
            .arg(gateway.dir.path())
            .args(["sendmail", "bob@example.com"])
            .stdin(Stdio::null())
            .uid(nobody.uid.as_raw())
            .gid(nobody.gid.as_raw())
            .output()
            .expect("sendmail as nobody");
        assert_eq!(output.status.code(), Some(77), "EX_NOPERM");
    }

    let id = send(
        &gateway,
        "alice@sender.example",
        &["bob@dead.example"],
        "offline",
        "MARKER-OFFLINE",
    );
    wait_for("the message in deferred/", || {
        gateway.spool("deferred").join(&id).exists().then_some(())
    });
    gateway.stop();
    let (status, _, err) = gateway.admin(&["queue", "flush"]);
    assert_eq!(status, 1);
    assert!(err.contains("not running"), "{err}");
    let (status, _, err) = gateway.admin(&["queue", "hold", "ALL"]);
    assert_eq!(
        (status, err.as_str()),
        (0, "mailgate: Placed on hold: 1 message\n")
    );
    assert!(gateway.spool("hold").join(&id).exists());
    let (_, out, _) = gateway.admin(&["queue", "list"]);
    assert!(out.contains(&format!("{id}! ")), "{out}");
    let (status, _, err) = gateway.admin(&["queue", "delete", &id]);
    assert_eq!(
        (status, err.as_str()),
        (0, "mailgate: Deleted: 1 message\n")
    );
    let (_, out, _) = gateway.admin(&["queue", "list"]);
    assert_eq!(out, "Mail queue is empty\n");
}

/// A header_checks BCC recipient is added with NOTIFY=NEVER, as Postfix
/// adds it: when it fails, the sender gets no notice naming it (the BCC
/// stays hidden); the sender's own failed recipient is still reported.
#[test]
fn a_failed_bcc_recipient_is_never_reported_to_the_sender() {
    let backend = Backend::start();
    let rejecting = Backend::start_with(&["-f", "RCPT"]);
    let gateway = Gateway::configure(
        &backend,
        &format!(
            "{}header_checks = regexp:header_checks\n",
            routes(&backend, Some(&rejecting), free_port())
        ),
    );
    std::fs::write(
        gateway.path("header_checks"),
        "/^Subject: audit me/ BCC audit@reject.example\n",
    )
    .unwrap();
    let gateway = gateway.launch();

    // Only the BCC recipient fails: no notice at all.
    let quiet = send(
        &gateway,
        "alice@sender.example",
        &["ok@example.com"],
        "audit me",
        "MARKER-BCC-ONLY",
    );
    backend.wait_for_message("MARKER-BCC-ONLY");
    gateway.wait_for_log(&format!("{quiet}: to=<audit@reject.example>"));
    gateway.wait_for_log(&format!("{quiet}: removed"));

    // The sender's own recipient fails too: one notice, naming only it.
    let both = send(
        &gateway,
        "alice@sender.example",
        &["ok@example.com", "bob@reject.example"],
        "audit me",
        "MARKER-BCC-AND-BOB",
    );
    let dsn = backend.wait_for_message("Final-Recipient: rfc822; bob@reject.example");
    assert!(
        !dsn.body().contains("audit@reject.example"),
        "the notice names the BCC recipient:\n{}",
        dsn.body()
    );
    gateway.wait_for_log(&format!("{both}: removed"));
    let log = gateway.log();
    assert!(
        log.lines().any(
            |l| l.contains(&format!("{quiet}: to=<audit@reject.example>"))
                && l.contains("status=bounced")
        ),
        "{log}"
    );
    assert_eq!(
        count(&log, &format!("{quiet}: sender non-delivery notification")),
        0,
        "{log}"
    );
    assert_eq!(
        count(&log, &format!("{both}: sender non-delivery notification")),
        1,
        "{log}"
    );
}
