//! The milter settings beyond smtpd_milters, with real milters
//! (tests/milters/test_milter.py on python3-milter, run privately):
//! smtpd_milter_maps (per-client lists, DISABLE, a malformed result),
//! milter_header_checks (each action on the headers a milter adds or
//! changes, and none on the message's own headers) and
//! milter_macro_defaults.

use std::fs;

use mailgate_tests::milters::TestMilter;
use mailgate_tests::{Backend, Client, Gateway, wait_for};

fn message(subject: &str, marker: &str) -> String {
    format!(
        "From: a@sender.example\nTo: b@example.com\nSubject: {subject}\nX-Marker: {marker}\n\n\
         Hello from the milter settings tests.\n"
    )
}

const TIMEOUTS: &str = "milter_command_timeout = 10s\nmilter_content_timeout = 20s\n";

#[test]
fn smtpd_milter_maps_choose_each_clients_milters() {
    let (global, global_port) = TestMilter::inet();
    let (other, other_port) = TestMilter::inet();
    let backend = Backend::start();
    let gw = Gateway::configure(
        &backend,
        &format!(
            "{TIMEOUTS}smtpd_milters = inet:127.0.0.1:{global_port}\n\
             smtpd_milter_maps = cidr:milter_map, regexp:milter_map_re\n\
             mynetworks = 127.0.0.0/8\n"
        ),
    );
    fs::write(
        gw.path("milter_map"),
        format!(
            "127.0.0.2/32 DISABLE\n\
             127.0.0.3/32 {{ inet:127.0.0.1:{other_port}, default_action = tempfail }}\n"
        ),
    )
    .unwrap();
    // A result that is no milter list, known only when a client matches
    // (it uses $1; literal results are checked at start).
    fs::write(gw.path("milter_map_re"), "/^(127\\.0\\.0\\.5)$/ inet:$1\n").unwrap();
    let gw = gw.launch();

    for (from, marker) in [
        ("127.0.0.1", "map-global"),
        ("127.0.0.2", "map-disabled"),
        ("127.0.0.3", "map-other"),
    ] {
        let mut c = Client::connect(gw.port, from).unwrap();
        let reply = c.send_message(
            "a@sender.example",
            &["b@example.com"],
            &message("plain", marker),
        );
        assert!(
            reply.starts_with("250 2.0.0 Ok"),
            "{from}: {reply}\n{}",
            gw.log()
        );
        c.send("QUIT");
    }
    // Not in the map: smtpd_milters. DISABLE: no milter. The map's list:
    // that milter only.
    let got = backend.wait_for_message("map-global");
    assert_eq!(got.header("X-Test-Milter"), vec!["seen".to_string()]);
    let got = backend.wait_for_message("map-disabled");
    assert!(got.header("X-Test-Milter").is_empty(), "{}", got.message);
    let got = backend.wait_for_message("map-other");
    assert_eq!(got.header("X-Test-Milter"), vec!["seen".to_string()]);
    wait_for("the other milter to see its message", || {
        other.seen().contains("X-Marker: map-other").then_some(())
    });
    let seen = global.seen();
    assert!(seen.contains("X-Marker: map-global"), "{seen}");
    assert!(!seen.contains("map-disabled"), "{seen}");
    assert!(!seen.contains("map-other"), "{seen}");
    assert!(!other.seen().contains("map-global"));
    assert!(!seen.contains("addr=127.0.0.2"), "{seen}");

    // A malformed result fails closed: no mail from that client passes
    // unchecked.
    let mut c = Client::connect(gw.port, "127.0.0.5").unwrap();
    assert!(c.send("EHLO client.example.org").starts_with("250"));
    assert_eq!(
        c.send("MAIL FROM:<a@sender.example>"),
        "451 4.3.5 Server configuration problem - try again later"
    );
    gw.wait_for_log("warning: smtpd_milter_maps regexp:milter_map_re result for 127.0.0.5");
}

#[test]
fn milter_header_checks_act_on_the_headers_milters_add() {
    let (_milter, port) = TestMilter::inet();
    let backend = Backend::start();
    let gw = Gateway::configure(
        &backend,
        &format!(
            "{TIMEOUTS}smtpd_milters = inet:127.0.0.1:{port}\n\
             milter_header_checks = regexp:milter_header_checks\n"
        ),
    );
    fs::write(
        gw.path("milter_header_checks"),
        "/^X-Echo: reject$/ REJECT 5.7.0 echo refused\n\
         /^X-Echo: defer$/ REJECT 4.7.1 echo deferred\n\
         /^X-Echo: plain-reject$/ REJECT\n\
         /^X-Echo: discard$/ DISCARD\n\
         /^X-Echo: hold$/ HOLD\n\
         /^X-Echo: redirect$/ REDIRECT other@example.com\n\
         /^X-Echo: bcc$/ BCC copy@example.com\n\
         /^X-Echo: ignore$/ IGNORE\n\
         /^X-Echo: replace$/ REPLACE X-Replaced: by the checks\n\
         /^X-Echo: warn$/ WARN echo seen\n\
         /^Subject: body replaced/ REPLACE Subject: changed by the checks\n\
         /^X-Marker:/ REJECT the message's own headers are not checked\n",
    )
    .unwrap();
    let gw = gw.launch();
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    assert!(c.send("EHLO client.example.org").starts_with("250"));
    let mut send = |subject: &str, marker: &str| {
        c.transaction(
            "a@sender.example",
            &["b@example.com"],
            &message(subject, marker),
        )
    };
    assert_eq!(send("echo: reject", "hc-1"), "550 5.7.0 echo refused");
    assert_eq!(send("echo: defer", "hc-2"), "451 4.7.1 echo deferred");
    assert_eq!(
        send("echo: plain-reject", "hc-3"),
        "550 5.7.1 message content rejected"
    );
    for (subject, marker) in [
        ("echo: discard", "hc-4"),
        ("echo: hold", "hc-5"),
        ("echo: redirect", "hc-6"),
        ("echo: bcc", "hc-7"),
        ("echo: ignore", "hc-8"),
        ("echo: replace", "hc-9"),
        ("echo: warn", "hc-10"),
        ("replace-body", "hc-11"),
    ] {
        let reply = send(subject, marker);
        assert!(reply.starts_with("250 2.0.0 Ok"), "{subject}: {reply}");
    }
    c.send("QUIT");

    let log =
        gw.wait_for_log("milter-header-reject: header X-Echo: reject from localhost[127.0.0.1];");
    assert!(
        log.contains(
            "from=<a@sender.example> to=<b@example.com> proto=ESMTP \
             helo=<client.example.org>: 5.7.0 echo refused"
        ),
        "{log}"
    );
    gw.wait_for_log("milter-header-discard: header X-Echo: discard from localhost[127.0.0.1];");
    gw.wait_for_log("milter-header-hold: header X-Echo: hold from localhost[127.0.0.1];");
    gw.wait_for_log("milter-header-redirect: header X-Echo: redirect from localhost[127.0.0.1];");
    gw.wait_for_log("milter-header-bcc: header X-Echo: bcc from localhost[127.0.0.1];");
    let warn =
        gw.wait_for_log("milter-header-warning: header X-Echo: warn from localhost[127.0.0.1];");
    assert!(warn.ends_with(": echo seen"), "{warn}");

    // REDIRECT: the one recipient is other@; BCC: a copy to copy@ too.
    let got = backend.wait_for_message("hc-6");
    assert_eq!(got.rcpt_to, ["<other@example.com>"]);
    let got = backend.wait_for_message("hc-7");
    let mut rcpts = got.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["<b@example.com>", "<copy@example.com>"]);
    assert_eq!(got.header("X-Echo"), vec!["bcc".to_string()]);
    // IGNORE: not added; REPLACE: the checks' header instead.
    let got = backend.wait_for_message("hc-8");
    assert!(got.header("X-Echo").is_empty(), "{}", got.message);
    let got = backend.wait_for_message("hc-9");
    assert!(got.header("X-Echo").is_empty(), "{}", got.message);
    assert_eq!(got.header("X-Replaced"), vec!["by the checks".to_string()]);
    let got = backend.wait_for_message("hc-10");
    assert_eq!(got.header("X-Echo"), vec!["warn".to_string()]);
    // A changed header is checked too (CHGHEADER Subject), and only the
    // milter's headers: X-Marker, the message's own, was not refused.
    let got = backend.wait_for_message("hc-11");
    assert_eq!(
        got.header("Subject"),
        vec!["changed by the checks".to_string()]
    );
    assert_eq!(got.header("X-Test-Milter"), vec!["changed".to_string()]);
    // HOLD: in hold/, not delivered; DISCARD and the refusals: nowhere.
    wait_for("the held message in hold/", || {
        (fs::read_dir(gw.spool("hold")).ok()?.count() == 1).then_some(())
    });
    let delivered = backend.messages();
    for marker in ["hc-1\n", "hc-2\n", "hc-3\n", "hc-4\n", "hc-5\n"] {
        assert!(
            !delivered
                .iter()
                .any(|m| m.message.replace('\r', "").contains(marker)),
            "{marker} was delivered"
        );
    }
}

#[test]
fn milter_macro_defaults_fill_macros_without_a_value() {
    let (milter, port) = TestMilter::inet();
    let backend = Backend::start();
    let gw = Gateway::start(
        &backend,
        &format!(
            "{TIMEOUTS}smtpd_milters = inet:127.0.0.1:{port}\n\
             milter_macro_defaults = auth_type=none, {{ auth_authen = nobody at all }}, \
             {{mail_addr}}=never-used\n"
        ),
    );
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    let reply = c.send_message(
        "a@sender.example",
        &["b@example.com"],
        &message("plain", "md-1"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    c.send("QUIT");
    let seen = wait_for("the milter's log of the message", || {
        let seen = milter.seen();
        seen.contains("header X-Marker: md-1").then_some(seen)
    });
    // No AUTH: the defaults; the sender has a value: its own.
    for want in [
        "mail {auth_type}=none",
        "mail {auth_authen}=nobody at all",
        "mail {mail_addr}=a@sender.example",
    ] {
        assert!(seen.contains(want), "{want:?} not in:\n{seen}");
    }
    assert!(!seen.contains("never-used"), "{seen}");
}

#[test]
fn non_smtpd_milters_check_mail_from_mailgate_sendmail() {
    let (milter, port) = TestMilter::inet();
    let backend = Backend::start();
    let gw = Gateway::configure(
        &backend,
        &format!(
            "{TIMEOUTS}non_smtpd_milters = inet:127.0.0.1:{port}\n\
             milter_header_checks = regexp:milter_header_checks\n"
        ),
    );
    fs::write(gw.path("milter_header_checks"), "/^X-Echo: hold$/ HOLD\n").unwrap();
    let gw = gw.launch();
    let local = |subject: &str, marker: &str, rcpt: &str| {
        gw.sendmail(
            &["-f", "cron@sender.example", "-oi", rcpt],
            &format!("Subject: {subject}\nX-Marker: {marker}\n\nfrom cron\n"),
        )
    };

    // Accepted: the milter's header is in the delivered message, and it
    // saw the events Postfix emulates for local mail, with the queue ID.
    let (status, err) = local("plain", "ns-1", "bob@example.com");
    assert_eq!((status, err.as_str()), (0, ""));
    let got = backend.wait_for_message("ns-1");
    assert_eq!(got.header("X-Test-Milter"), vec!["seen".to_string()]);
    let seen = wait_for("the milter's log of the message", || {
        let seen = milter.seen();
        seen.contains("header X-Marker: ns-1").then_some(seen)
    });
    for want in [
        "connect hostname=localhost addr=127.0.0.1",
        "helo localhost",
        "mail <cron@sender.example>",
        "rcpt <bob@example.com>",
    ] {
        assert!(seen.contains(want), "{want:?} not in:\n{seen}");
    }
    let log = gw.wait_for_log("from=<cron@sender.example>");
    let id = log
        .split(": from=<")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .expect("a queue ID");
    assert!(
        seen.contains(&format!("eom i={id}")),
        "i={id} not sent:\n{seen}"
    );

    // The milter's refusals: 5xx is EX_DATAERR, 4xx EX_TEMPFAIL; nothing
    // is queued.
    let (status, err) = local("replycode", "ns-2", "bob@example.com");
    assert_eq!(status, 65, "{err}");
    assert!(
        err.contains(
            "refused by non_smtpd_milters: 554 5.7.0 Refused by the test milter: 100% sure"
        ),
        "{err}"
    );
    let (status, err) = local("tempfail", "ns-3", "bob@example.com");
    assert_eq!(status, 75, "{err}");
    assert!(
        err.contains("451 4.7.1 Service unavailable - try again later"),
        "{err}"
    );
    // A refused recipient cannot be in a local submission: Postfix's
    // configuration error, a deferral.
    let (status, err) = local("plain", "ns-4", "blocked@example.com");
    assert_eq!(status, 75, "{err}");
    assert!(
        err.contains("451 4.3.5 Server configuration error"),
        "{err}"
    );
    // Envelope changes and milter_header_checks apply to local mail too;
    // their log lines go to maillog_file, not to the caller.
    let (status, err) = local("envelope", "ns-5", "bob@example.com");
    assert_eq!((status, err.as_str()), (0, ""));
    let got = backend.wait_for_message("ns-5");
    assert_eq!(got.mail_from, "<changed-sender@sender.example>");
    assert_eq!(got.rcpt_to, ["<added@example.com>"]);
    let (status, err) = local("echo: hold", "ns-6", "bob@example.com");
    assert_eq!((status, err.as_str()), (0, ""));
    gw.wait_for_log("milter-header-hold: header X-Echo: hold from localhost[127.0.0.1];");
    wait_for("the held message in hold/", || {
        (fs::read_dir(gw.spool("hold")).ok()?.count() == 1).then_some(())
    });
    gw.wait_for_log("milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 5.7.0 Refused");

    // Mail over SMTP is not theirs (smtpd_milters is empty).
    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    let reply = c.send_message(
        "a@sender.example",
        &["b@example.com"],
        &message("plain", "ns-7"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    c.send("QUIT");
    let got = backend.wait_for_message("ns-7");
    assert!(got.header("X-Test-Milter").is_empty(), "{}", got.message);
    assert!(!milter.seen().contains("ns-7"));
    let delivered = backend.messages();
    for marker in ["ns-2", "ns-3", "ns-4", "ns-6"] {
        assert!(
            !delivered.iter().any(|m| m.message.contains(marker)),
            "{marker} was delivered"
        );
    }

    // The milter gone: milter_default_action (tempfail).
    drop(milter);
    let (status, err) = local("plain", "ns-8", "bob@example.com");
    assert_eq!(status, 75, "{err}");
    assert!(
        err.contains("451 4.7.1 Service unavailable - try again later"),
        "{err}"
    );
}

/// Run by root, `mailgate sendmail` speaks to the milters as mail_owner:
/// a `unix:` milter (inside the spool, as smtpd's) in a directory only
/// root may enter is out of its reach; the same directory given to
/// mail_owner lets the message through.
#[test]
fn mailgate_sendmail_speaks_to_milters_as_mail_owner() {
    use std::os::unix::fs::PermissionsExt;
    assert!(
        mailgate_tests::is_root(),
        "the tests run as root (./run-tests creates the service users)"
    );
    let backend = Backend::start();
    let gw = Gateway::configure(
        &backend,
        &format!("{TIMEOUTS}non_smtpd_milters = unix:/rootonly/milter.sock\n"),
    );
    let dir = gw.spool("rootonly");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let milter = TestMilter::start(
        &format!("unix:{}", dir.join("milter.sock").display()),
        &gw.path("milter.log"),
    );
    let gw = gw.launch();
    let submit = |marker: &str| {
        gw.sendmail(
            &["-f", "cron@sender.example", "bob@example.com"],
            &format!("Subject: plain\nX-Marker: {marker}\n\nfrom cron\n"),
        )
    };
    let (status, err) = submit("own-1");
    assert_eq!(status, 75, "{err}");
    assert!(
        err.contains("451 4.7.1 Service unavailable - try again later"),
        "{err}"
    );
    gw.wait_for_log(
        "warning: connect to Milter service unix:/rootonly/milter.sock: Permission denied",
    );
    let owner = nix::unistd::User::from_name(&mailgate_tests::test_mail_owner())
        .unwrap()
        .expect("mail_owner");
    nix::unistd::chown(&dir, Some(owner.uid), None).unwrap();
    let (status, err) = submit("own-2");
    assert_eq!((status, err.as_str()), (0, ""));
    let got = backend.wait_for_message("own-2");
    assert_eq!(got.header("X-Test-Milter"), vec!["seen".to_string()]);
    assert!(milter.seen().contains("X-Marker: own-2"));
}
