//! Sender authentication through a running gateway, against a real DNS
//! server (dnsmasq) publishing the SPF records: check_spf's replies and
//! Received-SPF headers as policyd-spf gives them.

use std::fs;

use mailgate_tests::{Backend, Client, DnsServer, Gateway, Record, message};

/// SPF records for every result a test needs. Names outside the zones
/// given here are refused by dnsmasq, which a resolver must take as a
/// temporary failure (temperror).
fn spf_records() -> Vec<Record<'static>> {
    vec![
        Record::Zone("test"),
        Record::Zone("example.org"),
        Record::Zone("example.com"),
        Record::Txt("pass.test", "v=spf1 ip4:127.0.0.2 -all"),
        Record::Txt("fail.test", "v=spf1 ip4:192.0.2.1 -all"),
        Record::Txt("soft.test", "v=spf1 ip4:192.0.2.1 ~all"),
        Record::Txt("badhelo.test", "v=spf1 -all"),
        // none.test: in the zone, no TXT record: SPF none.
    ]
}

fn spf_gateway(backend: &Backend, dns: &DnsServer, extra: &str) -> Gateway {
    Gateway::start(
        backend,
        &format!(
            "dns_nameservers = {}\nsmtpd_sender_restrictions = check_spf\n{extra}",
            dns.nameserver()
        ),
    )
}

fn send_from(gw: &Gateway, client_ip: &str, sender: &str, marker: &str) -> String {
    let mut client = Client::connect(gw.port, client_ip).unwrap();
    client.send_message(sender, &["b@example.com"], &message("spf", marker))
}

#[test]
fn check_spf_refuses_fail_defers_temperror_and_marks_the_rest() {
    let backend = Backend::start();
    let dns = DnsServer::with(&spf_records());
    let gw = spf_gateway(&backend, &dns, "");

    // pass: accepted, with policyd-spf's header above the message.
    let reply = send_from(&gw, "127.0.0.2", "a@pass.test", "marker-spf-pass");
    assert!(reply.starts_with("250"), "{reply}");
    let received = backend.wait_for_message("marker-spf-pass");
    assert_eq!(
        received.header("Received-SPF"),
        vec![
            "pass (gw.example.com: domain of a@pass.test designates 127.0.0.2 as permitted sender) \
             receiver=gw.example.com; client-ip=127.0.0.2; envelope-from=\"a@pass.test\"; \
             helo=client.example.org;"
                .to_string()
        ]
    );

    // fail: 550 5.7.23 (RFC 7372) at RCPT, with policyd-spf's reason.
    let reply = send_from(&gw, "127.0.0.2", "a@fail.test", "marker-spf-fail");
    assert_eq!(
        reply,
        "550 5.7.23 <a@fail.test>: Sender address rejected: Message rejected due to: \
         SPF fail - not authorized. Please see \
         http://www.openspf.net/Why?s=mfrom;id=a@fail.test;ip=127.0.0.2;r=example.com"
    );
    gw.wait_for_log("reject: RCPT from unknown[127.0.0.2]: 550 5.7.23 <a@fail.test>");

    // softfail: accepted by default, marked.
    let reply = send_from(&gw, "127.0.0.2", "a@soft.test", "marker-spf-softfail");
    assert!(reply.starts_with("250"), "{reply}");
    let header = &backend
        .wait_for_message("marker-spf-softfail")
        .header("Received-SPF")[0];
    assert!(
        header.starts_with(
            "softfail (gw.example.com: domain of a@soft.test reports soft fail for 127.0.0.2)"
        ),
        "{header}"
    );

    // none: no record, accepted, marked.
    let reply = send_from(&gw, "127.0.0.2", "a@none.test", "marker-spf-none");
    assert!(reply.starts_with("250"), "{reply}");
    let header = &backend
        .wait_for_message("marker-spf-none")
        .header("Received-SPF")[0];
    assert!(header.starts_with("none (gw.example.com: "), "{header}");
    assert!(header.contains("envelope-from=\"a@none.test\""), "{header}");

    // temperror: the sender's DNS cannot be asked: 451 4.4.3, the sender
    // retries; never accepted unchecked.
    let reply = send_from(&gw, "127.0.0.2", "a@unreachable.example", "x");
    assert!(
        reply.starts_with(
            "451 4.4.3 <a@unreachable.example>: Sender address rejected: Message deferred due to: \
             temporary DNS error in processing."
        ),
        "{reply}"
    );

    // The HELO identity: a HELO name whose record fails every host is
    // refused (policyd-spf's HELO_reject = Fail), scope helo.
    let mut client = Client::connect(gw.port, "127.0.0.2").unwrap();
    assert!(client.send("EHLO badhelo.test").starts_with("250"));
    let reply = client.transaction("a@pass.test", &["b@example.com"], &message("x", "y"));
    assert!(
        reply.starts_with("550 5.7.23 <a@pass.test>: Sender address rejected: Message rejected due to: SPF fail - not authorized. Please see http://www.openspf.net/Why?s=helo;id=badhelo.test;"),
        "{reply}"
    );

    // mynetworks (127.0.0.1) is not checked: a failing domain passes,
    // without a header.
    let reply = send_from(&gw, "127.0.0.1", "a@fail.test", "marker-spf-mynetworks");
    assert!(reply.starts_with("250"), "{reply}");
    let received = backend.wait_for_message("marker-spf-mynetworks");
    assert!(received.header("Received-SPF").is_empty());
}

/// spf_mail_from_reject = softfail refuses softfail too; temperror can be
/// let through marked (spf_temperror_defer = no), as policyd-spf's
/// TempError_Defer = False does.
#[test]
fn check_spf_follows_policyd_spf_settings() {
    let backend = Backend::start();
    let dns = DnsServer::with(&spf_records());
    let gw = spf_gateway(
        &backend,
        &dns,
        "spf_mail_from_reject = softfail\nspf_temperror_defer = no\n",
    );
    let reply = send_from(&gw, "127.0.0.2", "a@soft.test", "x");
    assert!(reply.starts_with("550 5.7.23 <a@soft.test>"), "{reply}");
    assert!(
        reply.contains("domain owner discourages use of this host"),
        "{reply}"
    );
    let reply = send_from(
        &gw,
        "127.0.0.2",
        "a@unreachable.example",
        "marker-spf-temperror",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let header = &backend
        .wait_for_message("marker-spf-temperror")
        .header("Received-SPF")[0];
    assert!(header.starts_with("temperror "), "{header}");
}

/// `mailgate check` knows check_spf and its parameters, and names a value
/// it would not carry out.
#[test]
fn check_knows_check_spf_and_its_parameters() {
    let backend = Backend::start();
    let gw = Gateway::configure(
        &backend,
        "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, check_spf\n\
         spf_helo_reject = null\nspf_mail_from_reject = not_pass\nspf_permerror_reject = yes\n",
    );
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_eq!(status, 0, "{stderr}");
    let main_cf = gw.path("main.cf");
    let base = fs::read_to_string(&main_cf).unwrap();
    let line = base.lines().count() + 1;
    fs::write(
        &main_cf,
        format!("{base}spf_mail_from_reject = sometimes\n"),
    )
    .unwrap();
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_ne!(status, 0, "{stderr}");
    assert!(stderr.contains(&format!("main.cf:{line}")), "{stderr}");
    assert!(stderr.contains("spf_mail_from_reject"), "{stderr}");
}

/// A client that authenticated (SMTP AUTH against a real Dovecot) is not
/// checked: the same session is refused before AUTH and accepted after.
#[test]
fn check_spf_skips_authenticated_clients() {
    use mailgate_tests::dovecot::{Dovecot, Plaintext, USERS};
    use mailgate_tests::tls::{TestPki, starttls_from};

    let backend = Backend::start();
    let dns = DnsServer::with(&spf_records());
    let pki = TestPki::new(&["gw.example.com"]);
    let gw = Gateway::configure(
        &backend,
        &format!(
            "dns_nameservers = {}\nsmtpd_sender_restrictions = check_spf\n\
             smtpd_sasl_auth_enable = yes\nsmtpd_sasl_failure_delay = 0\n\
             smtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n\
             smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n",
            dns.nameserver()
        ),
    )
    .with_tls(&pki, "may")
    .launch();
    let dovecot =
        Dovecot::start_with_socket(Plaintext::Allowed, Some(gw.spool("private").join("auth")));
    let (user, password) = USERS[0];
    let mut tls = starttls_from(gw.port, "127.0.0.2", &pki.ca_pem);
    assert!(tls.send("EHLO client.example.org").starts_with("250"));
    assert!(tls.send("MAIL FROM:<a@fail.test>").starts_with("250"));
    let reply = tls.send("RCPT TO:<b@example.com>");
    assert!(reply.starts_with("550 5.7.23 <a@fail.test>"), "{reply}");
    tls.send("RSET");
    let auth = mailgate_sasl::mechanism::encode(format!("\0{user}\0{password}").as_bytes());
    assert_eq!(
        tls.send(&format!("AUTH PLAIN {auth}")),
        "235 2.7.0 Authentication successful"
    );
    assert!(tls.send("MAIL FROM:<a@fail.test>").starts_with("250"));
    assert!(tls.send("RCPT TO:<b@example.com>").starts_with("250"));
    assert!(tls.send("DATA").starts_with("354"));
    let reply = tls.send("Subject: authenticated\r\n\r\nmarker-spf-sasl\r\n.");
    assert!(reply.starts_with("250"), "{reply}");
    let received = backend.wait_for_message("marker-spf-sasl");
    assert!(received.header("Received-SPF").is_empty());
    drop(dovecot);
}
