//! Local recipients against Debian's stock Postfix: the same mydestination,
//! alias file and recipient_delimiter, the same SMTP sessions. Compared are
//! every reply and the envelope each server hands the internal server (in
//! Postfix, local(8) forwards the aliases; in mailgate, cleanup does).
//!
//! Deliberate difference, not compared: Postfix's default
//! local_recipient_maps finds the machine's system accounts
//! (unix:passwd.byname, root, daemon, ...); a gateway has none, so mailgate
//! knows only the aliases.
//!
//! Needs root: Postfix's master runs only as root.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use mailgate_tests::{Backend, Client, DnsServer, Gateway, Record, StockPostfix, is_root};

const MAIN_CF: &str = "mydestination = $myhostname, localhost\n\
                       recipient_delimiter = +\n";

const ALIASES: &str = "postmaster: admin@example.com\n\
                       abuse: security,\n\
                       \tnoc@example.com\n\
                       security: sec@example.com\n\
                       info: info@example.com, sec@example.com\n";

/// (sender, recipients, how many envelope recipients reach the backend)
const CASES: &[(&str, &[&str], usize)] = &[
    ("a@good.test", &["nosuchuser@gw.example.com"], 0),
    ("a@good.test", &["postmaster@gw.example.com"], 1),
    (
        "a@good.test",
        &["Abuse+spam@localhost", "nosuchuser@localhost"],
        2,
    ),
    ("a@good.test", &["postmaster"], 1),
    ("", &["info@gw.example.com", "security@gw.example.com"], 2),
    (
        "a@good.test",
        &["x@elsewhere.test", "mailer-daemon@gw.example.com"],
        0,
    ),
];

fn run(port: u16, backend: &Backend) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, (sender, recipients, expected)) in CASES.iter().enumerate() {
        let marker = format!("LOCAL-{port}-{i}");
        let mut client = Client::connect(port, "127.0.0.2").expect("connect");
        let ehlo = client.send("EHLO mail.good.test");
        let mut replies = vec![ehlo[..3].to_string()];
        replies.push(client.send(&format!("MAIL FROM:<{sender}>")));
        let mut accepted = 0;
        for rcpt in *recipients {
            let reply = client.send(&format!("RCPT TO:<{rcpt}>"));
            accepted += usize::from(reply.starts_with("250"));
            replies.push(reply);
        }
        if accepted > 0 {
            replies.push(client.send("DATA"));
            client.write_raw(format!("Subject: local\r\n\r\n{marker}\r\n").as_bytes());
            let end = client.send(".");
            replies.push(end.split(" queued as").next().unwrap_or(&end).to_string());
        }
        client.send("QUIT");
        lines.push(format!("{sender} {recipients:?}: {replies:?}"));
        if *expected == 0 {
            continue;
        }
        // Postfix forwards an alias as a new message: wait for the
        // recipients to arrive rather than for the queue to empty.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut rcpts: Vec<String>;
        let mut from: Vec<String>;
        loop {
            rcpts = Vec::new();
            from = Vec::new();
            for m in backend.messages() {
                if m.message.contains(&marker) {
                    from.push(m.mail_from.clone());
                    rcpts.extend(
                        m.rcpt_to
                            .iter()
                            .map(|r| r.split(' ').next().unwrap_or(r).to_string()),
                    );
                }
            }
            let mut unique = rcpts.clone();
            unique.sort();
            unique.dedup();
            if unique.len() >= *expected || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Postfix delivers one address reached from two original
        // recipients twice (its duplicate filter keys on ORCPT); mailgate
        // once (README: differences).
        rcpts.sort();
        rcpts.dedup();
        from.sort();
        from.dedup();
        lines.push(format!("  delivered: from {from:?} to {rcpts:?}"));
    }
    lines
}

#[test]
fn local_recipients_and_aliases_as_postfix() {
    assert!(
        is_root(),
        "the differential tests need root (Postfix's master runs as root)"
    );
    let backend = Backend::start();
    let dns = DnsServer::on_port_53(&[
        Record::Zone("test"),
        Record::Host("mail.good.test", "127.0.0.2"),
    ]);
    let mailgate = Gateway::configure(
        &backend,
        &format!(
            "dns_nameservers = {}\n{MAIN_CF}alias_maps = hash:aliases\n",
            dns.nameserver()
        ),
    );
    fs::write(mailgate.path("aliases"), ALIASES).expect("aliases");
    let mailgate = mailgate.launch();

    // Postfix reads aliases from the database postalias builds.
    let postfix_dir = tempfile::tempdir().expect("tempdir");
    mailgate_tests::make_traversable(postfix_dir.path());
    let aliases = postfix_dir.path().join("aliases");
    fs::write(&aliases, ALIASES).expect("aliases");
    // postalias reads a main.cf; an empty one gives Postfix's defaults.
    fs::write(postfix_dir.path().join("main.cf"), "").expect("main.cf");
    let status = Command::new("postalias")
        .arg("-c")
        .arg(postfix_dir.path())
        .arg(format!("hash:{}", aliases.display()))
        .status()
        .expect("postalias (Debian package postfix)");
    assert!(status.success());
    let postfix = StockPostfix::start(
        &format!("{MAIN_CF}alias_maps = hash:{}\n", aliases.display()),
        backend.port,
        &dns,
    );

    let theirs = run(postfix.port, &backend);
    let ours = run(mailgate.port, &backend);
    for line in &ours {
        println!("local: {line}");
    }
    let differences: Vec<String> = theirs
        .iter()
        .zip(&ours)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("  Postfix:  {a}\n  mailgate: {b}"))
        .collect();
    assert!(
        differences.is_empty() && theirs.len() == ours.len(),
        "{} of {} results differ:\n{}\n--- Postfix log ---\n{}\n--- mailgate log ---\n{}",
        differences.len(),
        theirs.len(),
        differences.join("\n"),
        postfix.log(),
        mailgate.log()
    );
    // Every delivering case delivered something.
    let delivered = ours.iter().filter(|l| l.contains("delivered:")).count();
    assert_eq!(delivered, 4);
    assert!(!ours.iter().any(|l| l.ends_with("to []")), "{ours:#?}");
}
