//! Local recipients end to end: mydestination domains, alias_maps
//! forwarding their names inward, and local_recipient_maps refusing the
//! others during the SMTP dialogue with Postfix's reply and log line.

use std::fs;

use mailgate_tests::{Backend, Client, Gateway, message};

const LOCAL: &str = "mydestination = $myhostname, localhost\n\
                     alias_maps = hash:aliases\n\
                     recipient_delimiter = +\n";

const ALIASES: &str = "# the names a gateway has\n\
                       postmaster: admin@example.com\n\
                       abuse: security,\n\
                       \tnoc@example.com\n\
                       security: sec@example.com\n";

fn gateway(backend: &Backend, extra: &str, aliases: &str) -> Gateway {
    let gateway = Gateway::configure(backend, extra);
    fs::write(gateway.path("aliases"), aliases).expect("aliases");
    gateway.launch()
}

#[test]
fn aliases_forward_local_names_inward_and_unknown_local_users_are_refused() {
    let backend = Backend::start();
    let gateway = gateway(&backend, LOCAL, ALIASES);

    // From outside (127.0.0.2 is not in mynetworks): a local domain is
    // ours to take, its unknown users are refused.
    let mut client = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert!(client.send("EHLO mail.good.test").starts_with("250"));
    assert!(client.send("MAIL FROM:<a@good.test>").starts_with("250"));
    let reply = client.send("RCPT TO:<nobody@gw.example.com>");
    assert_eq!(
        reply,
        "550 5.1.1 <nobody@gw.example.com>: Recipient address rejected: User unknown in local recipient table"
    );
    let line = gateway.wait_for_log("User unknown in local recipient table");
    assert!(
        line.contains(
            "NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 550 5.1.1 <nobody@gw.example.com>: \
             Recipient address rejected: User unknown in local recipient table; \
             from=<a@good.test> to=<nobody@gw.example.com> proto=ESMTP helo=<mail.good.test>"
        ),
        "{line}"
    );
    // No alias, no account: root is as unknown as anyone.
    assert!(
        client
            .send("RCPT TO:<root@localhost>")
            .starts_with("550 5.1.1")
    );
    // Another domain is still not ours.
    assert!(
        client
            .send("RCPT TO:<x@elsewhere.test>")
            .starts_with("554 5.7.1 <x@elsewhere.test>: Relay access denied")
    );
    for rcpt in [
        "Postmaster@GW.example.com",
        "abuse+spam@localhost",
        "postmaster",
    ] {
        let reply = client.send(&format!("RCPT TO:<{rcpt}>"));
        assert!(reply.starts_with("250 2.1.5"), "{rcpt}: {reply}");
    }
    assert!(client.send("DATA").starts_with("354"));
    client.write_raw(
        message("to the postmaster", "LOCAL-ALIASES")
            .replace('\n', "\r\n")
            .as_bytes(),
    );
    let end = client.send(".");
    assert!(end.starts_with("250"), "{end}");
    client.send("QUIT");

    // The aliases are expanded (nested, with the extension dropped, the
    // unqualified postmaster as postmaster@$myorigin) and each inside
    // address gets the message once.
    let received = backend.wait_for_message("LOCAL-ALIASES");
    let mut all: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while all.len() < 3 && std::time::Instant::now() < deadline {
        all = backend
            .messages()
            .iter()
            .filter(|m| m.message.contains("LOCAL-ALIASES"))
            .flat_map(|m| {
                m.rcpt_to
                    .iter()
                    .map(|r| r.split(' ').next().unwrap_or(r).to_string())
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    all.sort();
    assert_eq!(
        all,
        [
            "<admin@example.com>",
            "<noc@example.com>",
            "<sec@example.com>"
        ],
        "{received:?}"
    );
    assert_eq!(received.mail_from, "<a@good.test>");

    // A changed alias file is read again (table_check_interval), as every
    // table is: the new name is known without a restart.
    assert!(
        rcpt_reply(&gateway, "info@gw.example.com").starts_with("550 5.1.1"),
        "not an alias yet"
    );
    fs::write(
        gateway.path("aliases"),
        format!("{ALIASES}info: info-team@example.com\n"),
    )
    .expect("aliases");
    gateway.wait_for_log("changed -- reload");
    mailgate_tests::wait_for("the new alias", || {
        rcpt_reply(&gateway, "info@gw.example.com")
            .starts_with("250")
            .then_some(())
    });
}

/// The reply to one RCPT from an outside client.
fn rcpt_reply(gateway: &Gateway, rcpt: &str) -> String {
    let mut client = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    client.send("EHLO mail.good.test");
    client.send("MAIL FROM:<a@good.test>");
    let reply = client.send(&format!("RCPT TO:<{rcpt}>"));
    client.send("QUIT");
    reply
}

#[test]
fn an_empty_local_recipient_maps_takes_every_local_user_as_postfix_does() {
    let backend = Backend::start();
    let gateway = gateway(
        &backend,
        &format!("{LOCAL}local_recipient_maps =\n"),
        ALIASES,
    );
    let mut client = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    assert!(client.send("EHLO mail.good.test").starts_with("250"));
    assert!(client.send("MAIL FROM:<>").starts_with("250"));
    assert!(
        client
            .send("RCPT TO:<nobody@gw.example.com>")
            .starts_with("250")
    );
    client.send("QUIT");
    let (code, _, err) = gateway.admin(&["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("local_recipient_maps is empty"), "{err}");
}

#[test]
fn a_command_alias_added_while_running_is_not_loaded() {
    let backend = Backend::start();
    let gateway = gateway(&backend, LOCAL, ALIASES);
    fs::write(
        gateway.path("aliases"),
        format!("{ALIASES}backup: /var/mail/backup\n"),
    )
    .expect("aliases");
    let line = gateway.wait_for_log("reload failed, keeping the running configuration");
    assert!(
        line.contains("delivery to a file is not supported"),
        "{line}"
    );
    assert!(rcpt_reply(&gateway, "backup@gw.example.com").starts_with("550 5.1.1"));
    assert!(rcpt_reply(&gateway, "abuse@gw.example.com").starts_with("250"));
}

#[test]
fn an_alias_to_a_command_or_a_file_stops_the_start() {
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, LOCAL);
    fs::write(
        gateway.path("aliases"),
        "postmaster: admin@example.com\nspam: \"|/usr/bin/sa-learn --spam\"\n",
    )
    .expect("aliases");
    let (code, _, err) = gateway.admin(&["start"]);
    assert_ne!(code, 0, "{err}");
    let aliases = gateway.path("aliases");
    assert!(
        err.contains(&format!(
            "{}:2: alias \"spam\": \"|/usr/bin/sa-learn --spam\": delivery to a command is not supported",
            aliases.display()
        )),
        "{err}"
    );
}
