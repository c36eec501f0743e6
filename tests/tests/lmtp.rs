//! relay delivering inward over LMTP (master.cf command `lmtp`) to
//! Debian's Dovecot LMTP server: one reply per recipient, so one message
//! can be delivered to one mailbox, refused after DATA for another (over
//! quota) and refused at RCPT TO for a third (unknown user), each logged
//! with Dovecot's own reply and the refused ones bounced to the sender.

use mailgate_tests::lmtpd::{DovecotLmtp, Mailbox};
use mailgate_tests::{Backend, Client, Gateway, message};

#[test]
fn lmtp_delivery_to_dovecot_gets_a_reply_per_recipient() {
    let backend = Backend::start();
    let lmtp = DovecotLmtp::start(&[
        Mailbox {
            user: "alice",
            quota_bytes: None,
        },
        Mailbox {
            user: "carol",
            quota_bytes: None,
        },
        Mailbox {
            user: "dave",
            quota_bytes: Some(100),
        },
    ]);
    let gateway = Gateway::configure(
        &backend,
        &format!(
            "transport_maps = inline:{{ example.com=lmtp:[127.0.0.1]:{} }}\n",
            lmtp.port
        ),
    )
    .with_master_cf("lmtp unix - - y - - lmtp\n");
    let (status, out, err) = gateway.admin(&["check"]);
    assert_eq!(status, 0, "mailgate check: {out}{err}");
    let gateway = gateway.launch();

    let mut client = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    let reply = client.send_message(
        "alice@example.com",
        &[
            "carol@example.com",
            "dave@example.com",
            "nosuch@example.com",
        ],
        &message("inward over lmtp", "LMTP-INWARD-MARKER"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let id = reply.rsplit(' ').next().unwrap().to_string();

    // carol's mailbox has it; Dovecot said so for her alone.
    let delivered = lmtp.wait_for_message("carol", "LMTP-INWARD-MARKER");
    assert!(
        delivered.contains("Subject: inward over lmtp"),
        "{delivered}"
    );
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{}", lmtp.port);
    let sent = gateway.wait_for_log(&format!("{id}: to=<carol@example.com>"));
    assert!(sent.contains(&relay), "{sent}");
    assert!(
        sent.contains("status=sent (250 2.0.0 <carol@example.com>"),
        "{sent}"
    );
    assert!(sent.contains("Saved)"), "{sent}");

    // dave is over quota: Dovecot accepted him at RCPT TO and refused him
    // after the data, in his own reply.
    let full = gateway.wait_for_log(&format!("{id}: to=<dave@example.com>"));
    assert!(full.contains(&relay), "{full}");
    assert!(full.contains("status=bounced"), "{full}");
    assert!(
        full.contains("said: 552 5.2.2 <dave@example.com> Quota exceeded"),
        "{full}"
    );
    assert!(full.contains("(in reply to end of DATA command)"), "{full}");
    assert!(
        lmtp.messages("dave")
            .iter()
            .all(|m| !m.contains("LMTP-INWARD-MARKER")),
        "dave's full mailbox got the message"
    );

    // nosuch is not a user: refused at RCPT TO, not counted among the
    // replies after DATA.
    let unknown = gateway.wait_for_log(&format!("{id}: to=<nosuch@example.com>"));
    assert!(unknown.contains("status=bounced"), "{unknown}");
    assert!(
        unknown.contains("said: 550 5.1.1 <nosuch@example.com> User doesn't exist"),
        "{unknown}"
    );
    assert!(
        unknown.contains("(in reply to RCPT TO command)"),
        "{unknown}"
    );

    // One LMTP session did it all, and the sender learns of both refusals
    // (the bounce comes back to her mailbox over LMTP too).
    let bounce = lmtp.wait_for_message("alice", "Undelivered Mail Returned to Sender");
    assert!(bounce.contains("<dave@example.com>"), "{bounce}");
    assert!(bounce.contains("<nosuch@example.com>"), "{bounce}");
    assert!(!bounce.contains("<carol@example.com>: "), "{bounce}");
    let log = lmtp.log();
    assert!(
        log.contains("carol") && log.contains("saved mail to INBOX"),
        "{log}"
    );
    assert!(
        backend.messages().is_empty(),
        "nothing went to the SMTP backend"
    );
}

/// `lmtp:unix:private/dovecot-lmtp`, as Postfix sites hand mail to
/// Dovecot: the path is relative to the queue directory (relay's chroot).
/// Mail for a socket nobody listens on yet is deferred with the system's
/// reason, and goes out once Dovecot is there.
#[test]
fn lmtp_delivery_over_a_unix_socket_in_the_queue_directory() {
    let backend = Backend::start();
    let gateway = Gateway::configure(
        &backend,
        "transport_maps = inline:{ example.com=lmtp:unix:private/dovecot-lmtp }\n",
    )
    .with_master_cf("lmtp unix - - y - - lmtp\n");
    let (status, out, err) = gateway.admin(&["check"]);
    assert_eq!(status, 0, "mailgate check: {out}{err}");
    let gateway = gateway.launch();

    let mut client = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    let reply = client.send_message(
        "alice@example.com",
        &["carol@example.com"],
        &message("over a unix socket", "LMTP-UNIX-MARKER"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let id = reply.rsplit(' ').next().unwrap().to_string();
    let deferred = gateway.wait_for_log(&format!("{id}: to=<carol@example.com>"));
    assert!(deferred.contains("relay=none"), "{deferred}");
    assert!(
        deferred.contains(
            "status=deferred (connect to private/dovecot-lmtp: No such file or directory)"
        ),
        "{deferred}"
    );

    let socket = gateway.spool("private").join("dovecot-lmtp");
    let lmtp = DovecotLmtp::start_on_socket(
        &[Mailbox {
            user: "carol",
            quota_bytes: None,
        }],
        &socket,
    );
    let delivered = lmtp.wait_for_message("carol", "LMTP-UNIX-MARKER");
    assert!(
        delivered.contains("Subject: over a unix socket"),
        "{delivered}"
    );
    let sent = gateway.wait_for_log("relay=gw.example.com[private/dovecot-lmtp]");
    assert!(
        sent.contains(&format!("{id}: to=<carol@example.com>")),
        "{sent}"
    );
    assert!(
        sent.contains("status=sent (250 2.0.0 <carol@example.com>"),
        "{sent}"
    );
}
