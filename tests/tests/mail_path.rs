//! The core mail path, end to end: a real master with its real workers on a
//! temporary configuration and spool, real SMTP clients, and Postfix's
//! smtp-sink as the internal mail server.

use std::fs;
use std::process::Command;

use mailgate_tests::{Backend, Client, DnsServer, Gateway, message, wait_for};
use nix::sys::signal::{Signal, kill};

fn queued_id(reply: &str) -> String {
    assert!(
        reply.starts_with("250 2.0.0 Ok: queued as "),
        "not queued: {reply}"
    );
    reply.rsplit(' ').next().expect("queue id").to_string()
}

#[test]
fn inbound_mail_reaches_the_backend_with_a_received_header() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    // 127.0.0.5 is not in mynetworks: an internet client.
    let mut client = Client::connect(gateway.port, "127.0.0.5").expect("connect");
    assert!(
        client.greeting.starts_with("220 gw.example.com ESMTP"),
        "{}",
        client.greeting
    );
    let reply = client.send_message(
        "alice@sender.example",
        &["bob@example.com"],
        &message("inbound", "MARKER-INBOUND"),
    );
    let id = queued_id(&reply);
    assert!(client.send("QUIT").starts_with("221"));

    let got = backend.wait_for_message("MARKER-INBOUND");
    assert_eq!(got.mail_from, "<alice@sender.example>");
    assert_eq!(got.rcpt_to, vec!["<bob@example.com>"]);
    let received = got.header("Received");
    assert!(
        received[0].starts_with("from client.example.org (unknown [127.0.0.5])\n\tby gw.example.com (mailgate) with ESMTP id ")
            && received[0].contains(&id)
            && received[0].contains("for <bob@example.com>;"),
        "Received header: {received:?}"
    );
    assert_eq!(got.header("Message-ID").len(), 1, "Message-ID added");
    assert_eq!(got.header("Date").len(), 1, "Date added");

    for line in [
        "connect from unknown[127.0.0.5]".to_string(),
        format!("{id}: client=unknown[127.0.0.5]"),
        format!("{id}: message-id=<"),
        format!("{id}: from=<alice@sender.example>, size="),
        format!(
            "{id}: to=<bob@example.com>, relay=127.0.0.1[127.0.0.1]:{}",
            backend.port
        ),
        format!("{id}: removed"),
    ] {
        gateway.wait_for_log(&line);
    }
    let sent = gateway.wait_for_log(&format!("{id}: to=<bob@example.com>"));
    assert!(sent.contains("dsn=2.0.0, status=sent (250"), "{sent}");
    assert!(sent.contains(" mailgate/relay["), "{sent}");
    assert!(
        fs::read_dir(gateway.spool("active"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// The client's name comes from /etc/hosts before the DNS, as Postfix's C
/// library gives it (nsswitch.conf `hosts: files dns`): 127.0.0.1 is
/// `localhost` although the DNS server names it otherwise; 127.0.0.7, not
/// in the hosts file, gets its (forward-confirmed) DNS name; with
/// smtpd_peername_lookup = no both are unknown.
#[test]
fn client_names_come_from_the_hosts_file_before_the_dns() {
    let hosts = fs::read_to_string("/etc/hosts").expect("/etc/hosts");
    assert!(
        hosts.lines().any(|l| {
            let mut f = l.split_whitespace();
            f.next() == Some("127.0.0.1") && f.next() == Some("localhost")
        }),
        "this test needs Debian's /etc/hosts line `127.0.0.1 localhost`: {hosts}"
    );
    let dns = DnsServer::with(&[
        mailgate_tests::Record::Ptr("127.0.0.1", "from-dns.example"),
        mailgate_tests::Record::Host("named.example", "127.0.0.7"),
    ]);
    let backend = Backend::start();
    for (lookup, one, seven) in [
        ("yes", "localhost", "named.example"),
        ("no", "unknown", "unknown"),
    ] {
        let gateway = Gateway::start(
            &backend,
            &format!(
                "dns_nameservers = {}\nsmtpd_peername_lookup = {lookup}\n",
                dns.nameserver()
            ),
        );
        for (addr, name) in [("127.0.0.1", one), ("127.0.0.7", seven)] {
            let marker = format!("MARKER-NAME-{lookup}-{addr}");
            let mut client = Client::connect(gateway.port, addr).expect("connect");
            let reply = client.send_message(
                "a@sender.example",
                &["b@example.com"],
                &message("n", &marker),
            );
            assert!(reply.starts_with("250"), "{reply}");
            client.send("QUIT");
            let got = backend.wait_for_message(&marker);
            let received = &got.header("Received")[0];
            assert!(
                received.contains(&format!("({name} [{addr}])")),
                "{lookup} {addr}: {received}"
            );
            gateway.wait_for_log(&format!("connect from {name}[{addr}]"));
        }
    }
}

#[test]
fn mynetworks_clients_relay_anywhere_others_get_relay_access_denied() {
    let backend = Backend::start();
    let extra = format!("relayhost = [127.0.0.1]:{}", backend.port);
    let gateway = Gateway::start(&backend, &extra);

    let mut inside = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = inside.send_message(
        "staff@example.com",
        &["partner@elsewhere.test"],
        &message("outbound", "MARKER-OUTBOUND"),
    );
    queued_id(&reply);
    let got = backend.wait_for_message("MARKER-OUTBOUND");
    assert_eq!(got.rcpt_to, vec!["<partner@elsewhere.test>"]);

    let mut outside = Client::connect(gateway.port, "127.0.0.6").expect("connect");
    assert!(outside.send("EHLO spammer.test").starts_with("250"));
    assert!(
        outside
            .send("MAIL FROM:<spam@spammer.test>")
            .starts_with("250")
    );
    let reply = outside.send("RCPT TO:<victim@elsewhere.test>");
    assert!(
        reply.starts_with("554 5.7.1 <victim@elsewhere.test>: Relay access denied"),
        "{reply}"
    );
    let log = gateway.wait_for_log("NOQUEUE: reject: RCPT from unknown[127.0.0.6]");
    assert!(
        log.contains("554 5.7.1 <victim@elsewhere.test>: Relay access denied; from=<spam@spammer.test> to=<victim@elsewhere.test> proto=ESMTP helo=<spammer.test>"),
        "{log}"
    );
}

#[test]
fn address_tricks_never_relay() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    let mut client = Client::connect(gateway.port, "127.0.0.7").expect("connect");
    assert!(client.send("EHLO trickster.test").starts_with("250"));
    assert!(
        client
            .send("MAIL FROM:<t@trickster.test>")
            .starts_with("250")
    );
    for trick in [
        "<user%elsewhere.test@example.com>",
        "<elsewhere.test!user@example.com>",
        "<\"user@elsewhere.test\"@example.com>",
        "<@example.com:user@elsewhere.test>",
        "<@example.com,@example.com:user@elsewhere.test>",
        "<user@elsewhere.test@example.com>",
        "<user@example.com@elsewhere.test>",
        "<user@[127.0.0.1]>",
        "<user@ELSEWHERE.TEST.>",
        "<user@example.com.elsewhere.test>",
    ] {
        let reply = client.send(&format!("RCPT TO:{trick}"));
        assert!(reply.starts_with('5'), "{trick} was not refused: {reply}");
    }
    // The session is still usable and the real domain still works.
    assert!(client.send("RCPT TO:<user@example.com>").starts_with("250"));
    assert!(client.send("QUIT").starts_with("221"));
}

#[test]
fn relay_recipient_maps_and_sighup_reload() {
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "");
    let table = gateway.path("relay_recipients");
    fs::write(&table, "known@example.com OK\n").unwrap();
    let extra = format!(
        "relay_recipient_maps = hash:{}\ntable_check_interval = 1h\n",
        table.display()
    );
    gateway.add_main_cf(&extra);
    let gateway = gateway.launch();

    let mut client = Client::connect(gateway.port, "127.0.0.8").expect("connect");
    assert!(client.send("EHLO client.example.org").starts_with("250"));
    assert!(
        client
            .send("MAIL FROM:<a@sender.example>")
            .starts_with("250")
    );
    assert!(
        client
            .send("RCPT TO:<known@example.com>")
            .starts_with("250")
    );
    let reply = client.send("RCPT TO:<new@example.com>");
    assert!(
        reply.starts_with("550 5.1.1 <new@example.com>: Recipient address rejected: User unknown in relay recipient table"),
        "{reply}"
    );

    fs::write(&table, "known@example.com OK\nnew@example.com OK\n").unwrap();
    gateway.signal_master(Signal::SIGHUP);
    gateway.wait_for_log("reload -- version");
    // The session that was open when the reload came goes on.
    assert!(client.send("NOOP").starts_with("250"));
    // New sessions are served by the reloaded smtpd.
    wait_for("the reloaded table to be used", || {
        let mut fresh = Client::connect(gateway.port, "127.0.0.8").ok()?;
        fresh.send("HELO client.example.org");
        fresh.send("MAIL FROM:<a@sender.example>");
        fresh
            .send("RCPT TO:<new@example.com>")
            .starts_with("250")
            .then_some(())
    });
}

#[test]
fn a_changed_table_is_reloaded_without_sighup() {
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "");
    let table = gateway.path("access");
    fs::write(&table, "blocked@example.com REJECT no thanks\n").unwrap();
    let extra = format!(
        "smtpd_recipient_restrictions = check_recipient_access hash:{}\n",
        table.display()
    );
    gateway.add_main_cf(&extra);
    let gateway = gateway.launch();
    let rcpt = |address: &str| {
        let mut client = Client::connect(gateway.port, "127.0.0.9").expect("connect");
        client.send("HELO client.example.org");
        client.send("MAIL FROM:<a@sender.example>");
        client.send(&format!("RCPT TO:<{address}>"))
    };
    let reply = rcpt("blocked@example.com");
    assert!(
        reply.starts_with("554 5.7.1 <blocked@example.com>: Recipient address rejected: no thanks"),
        "{reply}"
    );
    assert!(rcpt("other@example.com").starts_with("250"));
    fs::write(&table, "other@example.com REJECT\n").unwrap();
    gateway.wait_for_log("changed -- reload");
    wait_for("the changed table to be used", || {
        (rcpt("other@example.com").starts_with("554")
            && rcpt("blocked@example.com").starts_with("250"))
        .then_some(())
    });
}

#[test]
fn message_size_limit_is_enforced() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "message_size_limit = 4000");
    let mut client = Client::connect(gateway.port, "127.0.0.10").expect("connect");
    let ehlo = client.send("EHLO client.example.org");
    assert!(ehlo.contains("250-SIZE 4000"), "{ehlo}");
    let reply = client.send("MAIL FROM:<a@sender.example> SIZE=5000");
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    let big = message("big", &"x".repeat(70).repeat(100));
    let reply = client.transaction("a@sender.example", &["b@example.com"], &big);
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    // Small mail still goes through on the same session.
    let reply = client.transaction(
        "a@sender.example",
        &["b@example.com"],
        &message("small", "MARKER-SMALL"),
    );
    queued_id(&reply);
    backend.wait_for_message("MARKER-SMALL");
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    let mut client = Client::connect(gateway.port, "127.0.0.11").expect("connect");
    let ehlo = client.send("EHLO client.example.org");
    assert!(ehlo.contains("PIPELINING"), "{ehlo}");
    client.write_raw(
        b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<one@example.com>\r\nRCPT TO:<nobody@elsewhere.test>\r\nRCPT TO:<two@example.com>\r\nDATA\r\n",
    );
    assert!(client.reply().starts_with("250"));
    assert!(client.reply().starts_with("250"));
    assert!(client.reply().starts_with("554 5.7.1"));
    assert!(client.reply().starts_with("250"));
    assert!(client.reply().starts_with("354"));
    // The message, its end, and the next transaction in one write.
    client.write_raw(
        b"Subject: piped\r\n\r\nMARKER-PIPE-1\r\n.\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<three@example.com>\r\nDATA\r\n",
    );
    queued_id(&client.reply());
    assert!(client.reply().starts_with("250"));
    assert!(client.reply().starts_with("250"));
    assert!(client.reply().starts_with("354"));
    client.write_raw(b"Subject: piped 2\r\n\r\nMARKER-PIPE-2\r\n.\r\nQUIT\r\n");
    queued_id(&client.reply());
    assert!(client.reply().starts_with("221"));
    let first = backend.wait_for_message("MARKER-PIPE-1");
    let mut rcpts = first.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(rcpts, vec!["<one@example.com>", "<two@example.com>"]);
    backend.wait_for_message("MARKER-PIPE-2");
}

#[test]
fn dot_stuffing_round_trips() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    let mut client = Client::connect(gateway.port, "127.0.0.12").expect("connect");
    let body = "Subject: dots\n\n.\n..\n...leading\n. space\nmiddle . dot\n.MARKER-DOTS\n";
    queued_id(&client.send_message("a@sender.example", &["b@example.com"], body));
    let got = backend.wait_for_message("MARKER-DOTS");
    assert_eq!(
        got.body(),
        ".\n..\n...leading\n. space\nmiddle . dot\n.MARKER-DOTS\n"
    );
}

#[test]
fn only_crlf_dot_crlf_ends_data() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    // Each variant tries to end DATA early and smuggle a second message
    // from a forged sender; none may.
    let variants: [(&str, &[u8]); 5] = [
        ("lf-dot-lf", b"\n.\n"),
        ("lf-dot-crlf", b"\n.\r\n"),
        ("crlf-dot-lf", b"\r\n.\n"),
        ("cr-dot-cr", b"\r.\r"),
        ("cr-dot-crlf", b"\r.\r\n"),
    ];
    for (name, terminator) in variants {
        let mut client = Client::connect(gateway.port, "127.0.0.13").expect("connect");
        assert!(client.send("EHLO client.example.org").starts_with("250"));
        assert!(
            client
                .send("MAIL FROM:<honest@sender.example>")
                .starts_with("250")
        );
        assert!(client.send("RCPT TO:<b@example.com>").starts_with("250"));
        assert!(client.send("DATA").starts_with("354"));
        let mut data = format!("Subject: {name}\r\n\r\nbefore-{name}").into_bytes();
        data.extend_from_slice(terminator);
        data.extend_from_slice(
            format!("MAIL FROM:<forged@bank.example>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: SMUGGLED-{name}\r\n\r\nevil\r\n").as_bytes(),
        );
        data.extend_from_slice(format!("after-{name}\r\n.\r\n").as_bytes());
        client.write_raw(&data);
        queued_id(&client.reply());
        assert!(
            client.send("QUIT").starts_with("221"),
            "{name}: one reply for one message"
        );
        let got = backend.wait_for_message(&format!("after-{name}"));
        assert!(got.message.contains(&format!("before-{name}")), "{name}");
        assert!(
            got.message.contains(&format!("SMUGGLED-{name}")),
            "{name}: the smuggled text stays content"
        );
        assert_eq!(got.mail_from, "<honest@sender.example>");
    }
    assert!(
        backend
            .messages()
            .iter()
            .all(|m| !m.mail_from.contains("forged")),
        "a smuggled transaction reached the backend"
    );
}

#[test]
fn a_killed_service_is_restarted_by_the_master() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    for program in ["smtpd", "cleanup", "qmgr", "relay"] {
        let before = wait_for(&format!("a running {program}"), || {
            let pids = gateway.worker_pids(program);
            (!pids.is_empty()).then_some(pids)
        });
        kill(before[0], Signal::SIGKILL).expect("kill");
        gateway.wait_for_log(&format!("pid {} killed by signal 9", before[0]));
        wait_for(&format!("{program} to be restarted"), || {
            let now = gateway.worker_pids(program);
            (now.len() == before.len() && !now.contains(&before[0])).then_some(())
        });
        // Mail still flows through the restarted service.
        let marker = format!("MARKER-AFTER-KILL-{program}");
        let reply = wait_for("a session after the restart", || {
            let mut client = Client::connect(gateway.port, "127.0.0.14").ok()?;
            let reply = client.send_message(
                "a@sender.example",
                &["b@example.com"],
                &message("restart", &marker),
            );
            reply.starts_with("250").then_some(reply)
        });
        queued_id(&reply);
        backend.wait_for_message(&marker);
    }
    assert_eq!(
        nix::sys::wait::waitpid(
            gateway.master_pid(),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG)
        )
        .ok(),
        Some(nix::sys::wait::WaitStatus::StillAlive),
        "the master itself never exits because of a child"
    );
}

#[test]
fn deferred_mail_is_retried_until_the_backend_answers() {
    let backend = Backend::start();
    let port = backend.port;
    let gateway = Gateway::start(&backend, "");
    drop(backend);
    let mut client = Client::connect(gateway.port, "127.0.0.15").expect("connect");
    let id = queued_id(&client.send_message(
        "a@sender.example",
        &["b@example.com"],
        &message("retry", "MARKER-RETRY"),
    ));
    let deferred = gateway.wait_for_log(&format!("{id}: to=<b@example.com>"));
    assert!(deferred.contains("status=deferred"), "{deferred}");
    wait_for("the message in deferred/", || {
        gateway.spool("deferred").join(&id).exists().then_some(())
    });
    let backend = Backend::start_on(port);
    backend.wait_for_message("MARKER-RETRY");
    gateway.wait_for_log(&format!("{id}: removed"));
}

#[test]
fn a_stock_client_delivers_through_the_gateway() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    let script = format!(
        "import smtplib\n\
         from email.message import EmailMessage\n\
         m = EmailMessage()\n\
         m['From'] = 'py@sender.example'\n\
         m['To'] = 'b@example.com'\n\
         m['Subject'] = 'smtplib'\n\
         m.set_content('MARKER-SMTPLIB')\n\
         with smtplib.SMTP('127.0.0.1', {}) as s:\n    s.send_message(m)\n",
        gateway.port
    );
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .status()
        .expect("python3");
    assert!(status.success());
    let got = backend.wait_for_message("MARKER-SMTPLIB");
    assert_eq!(got.header("Subject"), vec!["smtplib"]);

    let status = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", gateway.port)])
        .args(["--from", "swaks@sender.example", "--to", "b@example.com"])
        .args(["--body", "MARKER-SWAKS", "--silent", "2"])
        .status()
        .expect("swaks");
    assert!(status.success());
    backend.wait_for_message("MARKER-SWAKS");
}

#[test]
fn admin_commands_status_stop_and_a_second_master() {
    let backend = Backend::start();
    let mut gateway = Gateway::start(&backend, "");
    let (code, _, err) = gateway.admin(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("the mail system is running"), "{err}");

    let (code, _, err) = gateway.admin(&["start"]);
    assert_ne!(code, 0, "a second master must be refused");
    assert!(err.contains("already running"), "{err}");

    let (code, _, err) = gateway.admin(&["stop"]);
    assert_eq!(code, 0, "{err}");
    let status = gateway.stop();
    assert!(status.success(), "master exit: {status:?}");
    let (code, _, _) = gateway.admin(&["status"]);
    assert_eq!(code, 1);
}

#[test]
fn check_reports_every_error_with_file_and_line() {
    let backend = Backend::start();
    let gateway = Gateway::configure(
        &backend,
        "no_such_parameter = 1\nsmtpd_helo_required = perhaps",
    );
    let (code, _, _) = gateway.admin(&["check"]);
    assert_eq!(code, 1);
    let main_lines = fs::read_to_string(gateway.path("main.cf"))
        .unwrap()
        .lines()
        .count();
    let (_, _, err) = gateway.admin(&["check"]);
    assert!(
        err.contains(&format!("main.cf:{}:", main_lines - 1)),
        "{err}"
    );
    assert!(err.contains("no_such_parameter"), "{err}");
    assert!(err.contains(&format!("main.cf:{main_lines}:")), "{err}");

    fs::write(
        gateway.path("master.cf"),
        "smtp inet n - y - - smtpd\nbroken unix n\n",
    )
    .unwrap();
    let (code, _, err) = gateway.admin(&["check"]);
    assert_eq!(code, 1);
    assert!(err.contains("master.cf:2:"), "{err}");
}

#[test]
fn relay_finds_the_next_hop_by_mx_through_a_real_dns_server() {
    let backend = Backend::start();
    let dns = DnsServer::start(
        &[("mx-domain.test", "mx1.mx-domain.test", 10)],
        &[("mx1.mx-domain.test", "127.0.0.1")],
    );
    // "smtp:domain:port" asks DNS for the domain's MX, then connects to port.
    let extra = format!(
        "dns_nameservers = 127.0.0.1:{}\nrelay_domains = example.com, mx-domain.test\n\
         transport_maps = inline:{{ mx-domain.test=smtp:mx-domain.test:{} }}",
        dns.port, backend.port
    );
    let gateway = Gateway::start(&backend, &extra);
    let mut client = Client::connect(gateway.port, "127.0.0.16").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["user@mx-domain.test"],
        &message("mx", "MARKER-MX"),
    );
    let id = queued_id(&reply);
    backend.wait_for_message("MARKER-MX");
    let sent = gateway.wait_for_log(&format!("{id}: to=<user@mx-domain.test>"));
    assert!(
        sent.contains(&format!(
            "relay=mx1.mx-domain.test[127.0.0.1]:{}",
            backend.port
        )),
        "{sent}"
    );

    // A domain DNS has never heard of bounces with Postfix's wording.
    let reply = client.transaction(
        "a@sender.example",
        &["user@nowhere.mx-domain.test"],
        &message("nx", "MARKER-NX"),
    );
    let id = queued_id(&reply);
    let bounced = gateway.wait_for_log(&format!("{id}: to=<user@nowhere.mx-domain.test>"));
    assert!(
        bounced.contains("status=bounced (Host or domain name not found"),
        "{bounced}"
    );
}

/// master.cf's `-v` makes smtpd and relay log their SMTP dialogue (as
/// Postfix's `-v` does), an AUTH credential excepted; without it they do
/// not.
#[test]
fn verbose_services_log_their_protocol() {
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "");
    let path = gateway.path("master.cf");
    let text = fs::read_to_string(&path).expect("master.cf");
    let text = text.replace(" smtpd\n", " smtpd -v\n").replace(
        "smtp unix - - y - - relay\n",
        "smtp unix - - y - - relay -v\n",
    );
    fs::write(&path, text).expect("master.cf");
    let gateway = gateway.launch();
    let mut client = Client::connect(gateway.port, "127.0.0.5").expect("connect");
    let reply = client.send_message(
        "alice@sender.example",
        &["bob@example.com"],
        &message("verbose", "MARKER-VERBOSE"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(
        client
            .send("AUTH PLAIN AGFsaWNlAHNlY3JldA==")
            .starts_with('5')
    );
    backend.wait_for_message("MARKER-VERBOSE");
    gateway.wait_for_log("< 127.0.0.1[127.0.0.1]:");
    let log = gateway.log();
    for line in [
        "smtpd[",
        "< unknown[127.0.0.5]: MAIL FROM:<alice@sender.example>",
        "> unknown[127.0.0.5]: 250 2.1.0 Ok",
        "< unknown[127.0.0.5]: AUTH PLAIN ...",
    ] {
        assert!(log.contains(line), "{line}:\n{log}");
    }
    gateway.wait_for_log("> 127.0.0.1[127.0.0.1]:");
    let log = gateway.log();
    assert!(log.contains("RCPT TO:<bob@example.com>"), "{log}");
    assert!(
        !log.contains("AGFsaWNlAHNlY3JldA"),
        "a credential in the log"
    );
}

#[test]
fn without_verbose_no_protocol_lines() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    let mut client = Client::connect(gateway.port, "127.0.0.5").expect("connect");
    let reply = client.send_message(
        "alice@sender.example",
        &["bob@example.com"],
        &message("quiet", "MARKER-QUIET"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    backend.wait_for_message("MARKER-QUIET");
    gateway.wait_for_log(": removed");
    let log = gateway.log();
    assert!(!log.contains("< unknown[127.0.0.5]:"), "{log}");
}

/// disable_dns_lookups = yes (seed 003's re-injection services): relay
/// finds a next hop named by host name in the hosts file, read before its
/// chroot, as Postfix's native lookups do; a name the file lacks defers.
#[test]
fn without_dns_next_hops_come_from_the_hosts_file() {
    let backend = Backend::start();
    let gateway = Gateway::start(
        &backend,
        &format!(
            "disable_dns_lookups = yes\n\
             transport_maps = inline:{{ example.com=smtp:[localhost]:{port}, \
             example.org=smtp:[no-such-host.invalid]:{port} }}\n\
             relay_domains = example.com example.org\n",
            port = backend.port
        ),
    );
    let mut client = Client::connect(gateway.port, "127.0.0.5").expect("connect");
    let reply = client.send_message(
        "alice@sender.example",
        &["bob@example.com", "carol@example.org"],
        &message("hosts file", "MARKER-HOSTS"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let got = backend.wait_for_message("MARKER-HOSTS");
    assert_eq!(got.rcpt_to, vec!["<bob@example.com>"]);
    let line = gateway.wait_for_log("to=<carol@example.org>");
    assert!(
        line.contains("status=deferred") && line.contains("no-such-host.invalid"),
        "{line}"
    );
}

/// debug_peer_list: the SMTP dialogue with a listed client (smtpd) and a
/// listed server (relay) is logged line by line, as Postfix's verbose
/// logging for those peers does; a peer not listed gets none.
#[test]
fn debug_peer_list_logs_the_dialogue_of_listed_peers() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "debug_peer_list = 127.0.0.1\n");
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "dbg@sender.example",
        &["bob@example.com"],
        &message("debug", "marker-debug-peer"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    backend.wait_for_message("marker-debug-peer");
    // smtpd: the client's command and smtpd's reply.
    gateway.wait_for_log("[127.0.0.1]: MAIL FROM:<dbg@sender.example>");
    let line = gateway.wait_for_log("]: 250 2.1.0 Ok");
    assert!(
        line.contains("mailgate/smtpd") && line.contains("> "),
        "{line}"
    );
    // relay: the command to the backend and the backend's reply.
    let line = gateway.wait_for_log("> 127.0.0.1[127.0.0.1]: MAIL FROM:<dbg@sender.example>");
    assert!(line.contains("mailgate/relay"), "{line}");
    gateway.wait_for_log("< 127.0.0.1[127.0.0.1]: 250");

    let quiet = Gateway::start(&backend, "debug_peer_list = 192.0.2.1\n");
    let mut client = Client::connect(quiet.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "quiet@sender.example",
        &["bob@example.com"],
        &message("quiet", "marker-quiet-peer"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    backend.wait_for_message("marker-quiet-peer");
    quiet.wait_for_log("status=sent");
    assert!(
        !quiet.log().contains("MAIL FROM:<quiet@sender.example>"),
        "{}",
        quiet.log()
    );
}

/// The harness itself: free_port's port can be taken by another test
/// before the master binds it, by something that accepts and never greets.
/// The master stops ("cannot listen"), and the gateway must move to another
/// port rather than wait out its patience on the silent listener (a
/// clean-checkout run once failed so).
#[test]
fn a_port_taken_by_a_silent_listener_moves_the_gateway() {
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "");
    let taken = gateway.port;
    let silent = std::net::TcpListener::bind(("127.0.0.1", taken)).expect("bind");
    let gateway = gateway.launch();
    assert_ne!(gateway.port, taken);
    gateway.wait_for_log("cannot listen on 127.0.0.1:");
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    assert!(client.greeting.starts_with("220"), "{}", client.greeting);
    client.send("QUIT");
    drop(silent);
}
