//! smtpd_milters with real milters: Debian's opendkim (an added header
//! that verifies), clamav-milter against the tests' clamd (EICAR refused,
//! clamd down answered with its OnFail tempfail), and a libmilter milter
//! on python3-milter (tests/milters/test_milter.py) for replies at each
//! stage, body replacement, header edits, quarantine, discard, envelope
//! changes and the macros Postfix sends. Each milter runs privately on a
//! free port or a socket in the spool.

use std::fs;
use std::process::Command;

use mailgate_tests::milters::{ClamavMilter, OpenDkim, TestMilter};
use mailgate_tests::{Backend, Clamd, Client, EICAR, Gateway, wait_for, with_attachment};

/// A message with a marker in a header that no milter touches.
fn marked(subject: &str, marker: &str) -> String {
    format!(
        "From: a@sender.example\nTo: b@example.com\nSubject: {subject}\nX-Marker: {marker}\n\n\
         Hello from the milter tests.\nA second line.\n"
    )
}

fn milters(spec: &str) -> String {
    format!("smtpd_milters = {spec}\nmilter_command_timeout = 10s\nmilter_content_timeout = 20s\n")
}

#[test]
fn opendkim_signs_and_the_signature_verifies() {
    let dkim = OpenDkim::start("sender.example");
    let backend = Backend::start();
    let gw = Gateway::start(&backend, &milters(&format!("inet:127.0.0.1:{}", dkim.port)));
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    let reply = c.send_message(
        "a@sender.example",
        &["b@example.com"],
        &marked("signed", "dkim-1"),
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let got = backend.wait_for_message("dkim-1");
    let signature = got.header("DKIM-Signature");
    assert_eq!(signature.len(), 1, "{}", got.message);
    assert!(
        signature[0].contains("d=sender.example"),
        "{}",
        signature[0]
    );
    assert!(signature[0].contains("s=test"), "{}", signature[0]);
    // The signature verifies against the message as delivered (dkimpy,
    // with the key opendkim-genkey made as the DNS answer): the headers
    // and body opendkim saw are the ones that went out.
    let path = dkim.dir.path().join("delivered.eml");
    fs::write(&path, &got.message).unwrap();
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import sys, dkim\n\
             data = open(sys.argv[1], 'rb').read().replace(b'\\n', b'\\r\\n')\n\
             key = sys.argv[2].encode()\n\
             ok = dkim.verify(data, dnsfunc=lambda name, timeout=5: key)\n\
             print('verified' if ok else 'FAILED')\n",
        )
        .arg(&path)
        .arg(&dkim.public_key)
        .output()
        .expect("python3-dkim");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        said.trim(),
        "verified",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn clamav_milter_rejects_eicar_and_defers_when_clamd_is_down() {
    let home = tempfile::tempdir().unwrap();
    mailgate_tests::make_traversable(home.path());
    let clamd = Clamd::start(home.path());
    let clamav = ClamavMilter::start(&clamd.socket);
    let backend = Backend::start();
    let gw = Gateway::start(
        &backend,
        &milters(&format!("inet:127.0.0.1:{}", clamav.port)),
    );

    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    let reply = c.send_message(
        "a@sender.example",
        &["b@example.com"],
        &marked("clean", "clam-1"),
    );
    assert!(reply.starts_with("250 2.0.0 Ok"), "{reply}");
    let got = backend.wait_for_message("clam-1");
    assert_eq!(
        got.header("X-Virus-Status"),
        vec!["Clean".to_string()],
        "{}",
        got.message
    );

    let virus = with_attachment(
        "clam-2",
        "eicar.com",
        "application/octet-stream",
        EICAR.as_bytes(),
    );
    let reply = c.transaction("a@sender.example", &["b@example.com"], &virus);
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    let log = gw.wait_for_log("milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 550 5.7.1");
    assert!(
        log.contains(
            "550 5.7.1 Command rejected; from=<a@sender.example> to=<b@example.com> proto=ESMTP"
        ),
        "{log}"
    );
    wait_for("clamav-milter to log the virus", || {
        fs::read_to_string(&clamav.log)
            .ok()
            .filter(|l| l.contains("Mailgate.Test.EICAR"))
    });
    c.send("QUIT");

    // clamd gone: clamav-milter's OnFail Defer is a tempfail, which is
    // Postfix's 451 4.7.1.
    drop(clamd);
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    let reply = c.send_message(
        "a@sender.example",
        &["b@example.com"],
        &marked("clean", "clam-3"),
    );
    assert_eq!(reply, "451 4.7.1 Service unavailable - try again later");
    assert!(
        !backend
            .messages()
            .iter()
            .any(|m| m.message.contains("clam-2"))
    );
}

#[test]
fn replies_at_each_stage_as_postfix_gives_them() {
    let (milter, port) = TestMilter::inet();
    let backend = Backend::start();
    let gw = Gateway::start(&backend, &milters(&format!("inet:127.0.0.1:{port}")));

    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    assert!(c.greeting.starts_with("220"), "{}", c.greeting);
    assert!(c.send("EHLO client.example.org").starts_with("250"));
    // SMFIR_TEMPFAIL at MAIL.
    assert_eq!(
        c.send("MAIL FROM:<refuse-mail@sender.example>"),
        "451 4.7.1 Service unavailable - try again later"
    );
    // SMFIR_REPLYCODE at RCPT, the milter's text as it sent it.
    assert_eq!(c.send("MAIL FROM:<a@sender.example>"), "250 2.1.0 Ok");
    assert_eq!(
        c.send("RCPT TO:<blocked@example.com>"),
        "550 5.1.1 <blocked@example.com>: Recipient refused by the test milter"
    );
    assert_eq!(c.send("RSET"), "250 2.0.0 Ok");
    // SMFIR_REPLYCODE at the end of the message ("%%" is a "%").
    let reply = c.transaction(
        "a@sender.example",
        &["b@example.com"],
        &marked("replycode", "r-1"),
    );
    assert_eq!(reply, "554 5.7.0 Refused by the test milter: 100% sure");
    // SMFIR_TEMPFAIL at the end of the message.
    let reply = c.transaction(
        "a@sender.example",
        &["b@example.com"],
        &marked("tempfail", "r-2"),
    );
    assert_eq!(reply, "451 4.7.1 Service unavailable - try again later");
    // An accepted message gets the milter's header.
    let reply = c.transaction(
        "a@sender.example",
        &["b@example.com"],
        &marked("plain", "r-3"),
    );
    assert!(reply.starts_with("250 2.0.0 Ok"), "{reply}");
    c.send("QUIT");
    let got = backend.wait_for_message("r-3");
    assert_eq!(got.header("X-Test-Milter"), vec!["seen".to_string()]);
    assert!(
        !backend
            .messages()
            .iter()
            .any(|m| m.message.contains("r-1") || m.message.contains("r-2"))
    );

    gw.wait_for_log("milter-reject: RCPT from localhost[127.0.0.1]: 550 5.1.1");
    gw.wait_for_log("milter-reject: END-OF-MESSAGE");
    let log = gw.log();
    assert!(log.contains("milter-reject: MAIL from localhost[127.0.0.1]: 451 4.7.1 Service unavailable - try again later; from=<refuse-mail@sender.example> proto=ESMTP helo=<client.example.org>"), "{log}");
    assert!(log.contains("milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 554 5.7.0 Refused by the test milter: 100% sure; from=<a@sender.example> to=<b@example.com>"), "{log}");

    // A REJECT at HELO answers MAIL (Sendmail's rule, which Postfix keeps).
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    assert!(c.send("EHLO evil.example").starts_with("250"));
    assert_eq!(
        c.send("MAIL FROM:<a@sender.example>"),
        "550 5.7.1 Command rejected"
    );
    c.send("QUIT");

    // The macros, as Postfix sends them.
    let seen = wait_for("the milter's log of the session", || {
        let seen = milter.seen();
        seen.contains("helo evil.example").then_some(seen)
    });
    for want in [
        "connect hostname=localhost addr=127.0.0.1",
        "connect j=gw.example.com",
        "connect {daemon_name}=gw.example.com",
        "connect {daemon_addr}=127.0.0.1",
        "connect v=mailgate",
        "connect _=localhost [127.0.0.1]",
        "mail <a@sender.example>",
        "mail {mail_addr}=a@sender.example",
        "rcpt {rcpt_addr}=b@example.com",
        "rcpt {rcpt_host}=example.com",
        "header Subject: plain",
        "header X-Marker: r-3",
        "abort",
    ] {
        assert!(
            seen.contains(want),
            "{want:?} not in the milter's log:\n{seen}"
        );
    }
    let id = log
        .lines()
        .find(|l| l.contains("client=localhost[127.0.0.1]"))
        .and_then(|l| l.split(": client=").next())
        .and_then(|l| l.rsplit(' ').next())
        .expect("a queue ID");
    assert!(
        seen.contains(&format!("eom i={id}")),
        "i={id} not sent:\n{seen}"
    );
}

#[test]
fn body_headers_and_envelope_changes_reach_the_queue() {
    let (_milter, port) = TestMilter::inet();
    let backend = Backend::start();
    let gw = Gateway::start(&backend, &milters(&format!("inet:127.0.0.1:{port}")));
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();

    let reply = c.send_message(
        "a@sender.example",
        &["b@example.com"],
        &marked("replace-body", "b-1"),
    );
    assert!(reply.starts_with("250 2.0.0 Ok"), "{reply}");
    let got = backend.wait_for_message("b-1");
    assert_eq!(
        got.body(),
        "The test milter replaced this body.\nSecond line.\n"
    );
    assert_eq!(
        got.header("Subject"),
        vec!["body replaced by the milter".to_string()]
    );
    assert_eq!(got.header("X-Test-Milter"), vec!["changed".to_string()]);
    assert_eq!(got.header("X-Test-Top"), vec!["first".to_string()]);
    // INSHEADER at index 0 puts it above the message's own headers
    // (cleanup's Received, and the Message-ID and Date it adds to a
    // message without them, go above everything).
    let order: Vec<&str> = got
        .message
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split(':').next())
        .filter(|n| !matches!(*n, "Received" | "Message-ID" | "Date"))
        .collect();
    assert_eq!(
        order,
        [
            "X-Test-Top",
            "From",
            "To",
            "Subject",
            "X-Marker",
            "X-Test-Milter"
        ],
        "{}",
        got.message
    );

    // CHGFROM, ADDRCPT, DELRCPT.
    let reply = c.transaction(
        "a@sender.example",
        &["b@example.com", "c@example.com"],
        &marked("envelope", "b-2"),
    );
    assert!(reply.starts_with("250 2.0.0 Ok"), "{reply}");
    let got = backend.wait_for_message("b-2");
    assert_eq!(got.mail_from, "<changed-sender@sender.example>");
    let mut rcpts = got.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["<added@example.com>", "<c@example.com>"]);

    // QUARANTINE: accepted, held, not delivered.
    let reply = c.transaction(
        "a@sender.example",
        &["b@example.com"],
        &marked("quarantine", "b-3"),
    );
    assert!(reply.starts_with("250 2.0.0 Ok"), "{reply}");
    gw.wait_for_log(
        "milter-hold: END-OF-MESSAGE from localhost[127.0.0.1]: held by the test milter",
    );
    wait_for("the message in hold/", || {
        (fs::read_dir(gw.spool("hold")).ok()?.count() == 1).then_some(())
    });

    // DISCARD: accepted and delivered nowhere.
    let reply = c.transaction(
        "a@sender.example",
        &["b@example.com"],
        &marked("discard", "b-4"),
    );
    assert!(reply.starts_with("250 2.0.0 Ok"), "{reply}");
    gw.wait_for_log(
        "milter-discard: END-OF-MESSAGE from localhost[127.0.0.1]: milter triggers DISCARD action",
    );
    c.send("QUIT");
    // A later message arrives; the held and discarded ones never do.
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    let reply = c.send_message(
        "a@sender.example",
        &["b@example.com"],
        &marked("plain", "b-5"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    backend.wait_for_message("b-5");
    assert!(
        !backend
            .messages()
            .iter()
            .any(|m| m.message.contains("b-3") || m.message.contains("b-4"))
    );
}

#[test]
fn a_milter_that_is_down_gets_milter_default_action() {
    let backend = Backend::start();
    let dead = mailgate_tests::free_port();
    // The default, tempfail: nothing passes unchecked.
    let gw = Gateway::start(&backend, &milters(&format!("inet:127.0.0.1:{dead}")));
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    assert!(c.greeting.starts_with("220"), "{}", c.greeting);
    assert!(c.send("EHLO client.example.org").starts_with("250"));
    assert_eq!(
        c.send("MAIL FROM:<a@sender.example>"),
        "451 4.7.1 Service unavailable - try again later"
    );
    c.send("QUIT");
    gw.wait_for_log(&format!(
        "warning: connect to Milter service inet:127.0.0.1:{dead}"
    ));

    // accept: as if there were no milter; reject: 550 5.5.0.
    let gw = Gateway::start(
        &backend,
        &format!(
            "{}milter_default_action = accept\n",
            milters(&format!("inet:127.0.0.1:{dead}"))
        ),
    );
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    let reply = c.send_message(
        "a@sender.example",
        &["b@example.com"],
        &marked("plain", "d-1"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    backend.wait_for_message("d-1");
    // reject: the connect event already fails with 550 5.5.0, so the
    // greeting is Postfix's 554, and MAIL gets the milter's reply.
    let gw = Gateway::configure(
        &backend,
        &format!("smtpd_milters = {{ inet:127.0.0.1:{dead}, default_action=reject }}\n"),
    )
    .launch_greeting("554");
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    assert_eq!(
        c.greeting,
        "554 gw.example.com ESMTP not accepting connections"
    );
    assert!(c.send("EHLO client.example.org").starts_with("250"));
    assert_eq!(
        c.send("MAIL FROM:<a@sender.example>"),
        "550 5.5.0 Service unavailable"
    );
    gw.wait_for_log(
        "milter-reject: CONNECT from localhost[127.0.0.1]: 550 5.5.0 Service unavailable",
    );
}

#[test]
fn a_unix_milter_is_reached_inside_the_chroot() {
    let backend = Backend::start();
    let gw = Gateway::configure(&backend, &milters("unix:/milter/test.sock"));
    // The spool is smtpd's root: Postfix's rule for unix: milters of a
    // chrooted smtpd.
    let dir = gw.spool("milter");
    fs::create_dir_all(&dir).unwrap();
    mailgate_tests::make_traversable(&dir);
    let socket = dir.join("test.sock");
    let milter = TestMilter::start(
        &format!("unix:{}", socket.display()),
        &gw.path("milter.log"),
    );
    let gw = gw.launch();
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    let reply = c.send_message(
        "a@sender.example",
        &["b@example.com"],
        &marked("plain", "u-1"),
    );
    assert!(reply.starts_with("250 2.0.0 Ok"), "{reply}");
    let got = backend.wait_for_message("u-1");
    assert_eq!(got.header("X-Test-Milter"), vec!["seen".to_string()]);
    assert!(milter.seen().contains("header X-Marker: u-1"));
}

/// The library against libmilter directly: a QUARANTINE is followed by the
/// milter's final reply, which must be read with it, or every later reply
/// is one step behind (the next message would not be discarded).
#[test]
fn the_client_stays_in_step_with_libmilter() {
    use mailgate_milter::{
        DefaultAction, Defaults, Envelope, MacroLists, Macros, Milters, Verdict,
    };
    use std::time::Duration;
    let (_milter, port) = TestMilter::inet();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let defaults = Defaults {
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            content_timeout: Duration::from_secs(5),
            default_action: DefaultAction::Tempfail,
        };
        let specs =
            mailgate_milter::parse_list(&format!("inet:127.0.0.1:{port}"), &defaults).unwrap();
        let mut milters = Milters::open(&specs, &MacroLists::postfix_defaults()).await;
        let m = Macros::default();
        assert_eq!(
            milters
                .connect("unknown", Some("127.0.0.1".parse().unwrap()), 1, &m)
                .await,
            None
        );
        assert_eq!(milters.helo("client.example.org", &m).await, None);
        let mut outcomes = Vec::new();
        for (sender, subject) in [
            ("a", "quarantine"),
            ("a", "discard"),
            // ACCEPT at MAIL: the rest of that message is not shown...
            ("accept-mail", "replycode"),
            // ...but the next one is.
            ("a", "replycode"),
        ] {
            let sender = format!("<{sender}@sender.example>");
            assert_eq!(milters.mail(&[sender], &m).await, None);
            assert_eq!(milters.rcpt(&["<b@example.com>".into()], &m).await, None);
            assert_eq!(milters.data(&m).await, None);
            let mut envelope = Envelope::default();
            let content = format!("Subject: {subject}\r\n\r\nbody\r\n");
            outcomes.push(
                milters
                    .message(content.as_bytes(), &mut envelope, &m, 0)
                    .await,
            );
        }
        assert_eq!(outcomes[0].hold.as_deref(), Some("held by the test milter"));
        assert_eq!(outcomes[0].verdict, None);
        assert_eq!(outcomes[1].verdict, Some(Verdict::Discard));
        assert_eq!(outcomes[2].verdict, None);
        assert_eq!(
            outcomes[3].verdict,
            Some(Verdict::Reply(
                "554 5.7.0 Refused by the test milter: 100% sure".into()
            ))
        );
        milters.quit().await;
    });
}

/// A milter's replies are peer input: an oversized frame, a modification
/// before the end of the message, an unknown reply code or silence past
/// milter_command_timeout end the conversation with milter_default_action
/// (tempfail), with a warning naming the milter; the session goes on.
#[test]
fn hostile_milter_replies_fail_closed() {
    use mailgate_tests::milters::{HostileMilter, Misbehaviour};
    let backend = Backend::start();
    for (how, why) in [
        (
            Misbehaviour::HugeFrame,
            "reply packet of 2147483647 bytes is larger than 1048576",
        ),
        (
            Misbehaviour::EarlyModification,
            "malformed reply: modification before the end of the message",
        ),
        (
            Misbehaviour::UnknownReply,
            "malformed reply: unknown reply code",
        ),
        (Misbehaviour::Silence, "timeout"),
    ] {
        let milter = HostileMilter::start(how);
        let gw = Gateway::start(
            &backend,
            &format!(
                "smtpd_milters = inet:127.0.0.1:{}\nmilter_command_timeout = 2s\n",
                milter.port
            ),
        );
        let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
        assert!(
            c.send("EHLO client.example.org").starts_with("250"),
            "{how:?}"
        );
        assert_eq!(
            c.send("MAIL FROM:<a@sender.example>"),
            "451 4.7.1 Service unavailable - try again later",
            "{how:?}"
        );
        // The milter is given up for the session: the answer stays, at once.
        assert_eq!(
            c.send("MAIL FROM:<a@sender.example>"),
            "451 4.7.1 Service unavailable - try again later",
            "{how:?}"
        );
        assert_eq!(c.send("QUIT"), "221 2.0.0 Bye");
        gw.wait_for_log(&format!(
            "warning: milter inet:127.0.0.1:{}: SMFIC_MAIL: {why}",
            milter.port
        ));
    }
}

/// Debian's rspamd as a milter (its proxy worker, self_scan): GTUBE is
/// refused with rspamd's own reply, a clean message gets the headers its
/// milter_headers module adds and is delivered, and with rspamd stopped
/// milter_default_action (tempfail) answers.
#[test]
fn rspamd_as_a_milter() {
    use mailgate_tests::rspamd::Rspamd;
    const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
    let rspamd = Rspamd::start();
    let backend = Backend::start();
    let gw = Gateway::start(
        &backend,
        &milters(&format!("inet:127.0.0.1:{}", rspamd.port)),
    );

    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    let spam = format!(
        "From: a@sender.example\nTo: b@example.com\nSubject: gtube\nX-Marker: rs-1\n\n{GTUBE}\n"
    );
    let reply = c.send_message("a@sender.example", &["b@example.com"], &spam);
    assert_eq!(reply, "554 5.7.1 Gtube pattern", "{}", rspamd.log());
    let log = gw.wait_for_log("milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]");
    assert!(
        log.contains("554 5.7.1 Gtube pattern; from=<a@sender.example> to=<b@example.com>"),
        "{log}"
    );
    c.send("QUIT");

    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    let reply = c.send_message(
        "a@sender.example",
        &["b@example.com"],
        &marked("a clean message", "rs-2"),
    );
    assert!(
        reply.starts_with("250 2.0.0 Ok"),
        "{reply}\n{}",
        rspamd.log()
    );
    c.send("QUIT");
    let got = backend.wait_for_message("rs-2");
    let result = got.header("X-Spamd-Result");
    assert_eq!(result.len(), 1, "{}", got.message);
    assert!(result[0].starts_with("default: False ["), "{}", result[0]);
    assert_eq!(got.header("X-Rspamd-Action"), vec!["no action".to_string()]);
    assert_eq!(got.header("X-Rspamd-Server").len(), 1, "{}", got.message);
    assert!(
        !backend
            .messages()
            .iter()
            .any(|m| m.message.contains("rs-1"))
    );

    // rspamd stopped: nothing passes unchecked.
    drop(rspamd);
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    let reply = c.send_message(
        "a@sender.example",
        &["b@example.com"],
        &marked("a clean message", "rs-3"),
    );
    assert_eq!(reply, "451 4.7.1 Service unavailable - try again later");
}
