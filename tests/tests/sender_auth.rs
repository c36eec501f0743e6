//! Sender authentication through a running gateway, against a real DNS
//! server (dnsmasq) publishing the SPF records: check_spf's replies and
//! Received-SPF headers as policyd-spf gives them.

use std::fs;

use mailgate_tests::dkim::{DkimKey, dkim_key, dkim_signed};
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
    // DKIM and DMARC are the scanner's: without one, check says so.
    fs::write(&main_cf, format!("{base}dmarc_verify = yes\n")).unwrap();
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_ne!(status, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "main.cf:{line}: dmarc_verify = yes needs content_scanner"
        )),
        "{stderr}"
    );
    // Signing names keys that tlskeys holds: a key name the key table does
    // not list, and signing without the tlskeys service, are errors.
    let dir = gw.dir.path();
    fs::write(dir.join("keys"), "k1 example.org:sel1:key.pem\n").unwrap();
    fs::write(dir.join("key.pem"), "not checked here: tlskeys reads it\n").unwrap();
    fs::write(dir.join("signing"), "example.org k2\n").unwrap();
    let signing = format!(
        "{base}dkim_signing_table = texthash:{d}/signing\ndkim_key_table = texthash:{d}/keys\n",
        d = dir.display()
    );
    fs::write(&main_cf, &signing).unwrap();
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_ne!(status, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("main.cf:{line}: dkim_signing_table"))
            && stderr.contains("names key \"k2\", which dkim_key_table does not list"),
        "{stderr}"
    );
    fs::write(dir.join("signing"), "example.org k1\n").unwrap();
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_ne!(status, 0, "{stderr}");
    assert!(
        stderr.contains("the signing keys are held by the tlskeys service"),
        "{stderr}"
    );
    fs::remove_file(dir.join("key.pem")).unwrap();
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_ne!(status, 0, "{stderr}");
    assert!(stderr.contains("key.pem does not exist"), "{stderr}");
}

/// A client that authenticated (SMTP AUTH against a real Dovecot) is not
/// checked: the same session is refused before AUTH and accepted after.
#[test]
fn check_spf_skips_authenticated_clients() {
    use mailgate_tests::dovecot::Dovecot;
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
    let (user, password) = ("bob@example.com", "bob's secret");
    let dovecot = Dovecot::builder()
        .user(user, password)
        .auth_socket(gw.spool("private").join("auth"))
        .start();
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

// ---- DKIM and DMARC in the scanner ---------------------------------------

fn author_message(domain: &str, marker: &str) -> String {
    format!(
        "From: Alice <alice@{domain}>\nTo: b@example.com\nSubject: dkim {marker}\n\
         Message-ID: <{marker}@{domain}>\n\nHello.\n{marker}\n"
    )
}

fn scanner_home() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn dkim_gateway(
    backend: &Backend,
    dns: &DnsServer,
    home: &std::path::Path,
    extra: &str,
) -> Gateway {
    Gateway::configure(
        backend,
        &format!(
            "dns_nameservers = {}\ncontent_scanner = scanner\nscanner_directory = {}\n\
             spam_bayes_directory =\nspam_stock_rules_directory =\nscanner_timeout = 20s\n\
             dkim_verify = yes\ndmarc_verify = yes\n{extra}",
            dns.nameserver(),
            home.display()
        ),
    )
    .with_scanner()
    .launch()
}

fn dkim_records(key: &DkimKey) -> Vec<Record<'_>> {
    vec![
        Record::Zone("test"),
        Record::Zone("example.org"),
        Record::Zone("example.com"),
        // good.test: signs, publishes p=reject; its SPF does not cover the
        // test client, so DMARC rests on DKIM.
        Record::Txt("sel1._domainkey.good.test", &key.txt),
        Record::Txt("_dmarc.good.test", "v=DMARC1; p=reject"),
        Record::Txt("good.test", "v=spf1 ip4:192.0.2.1 -all"),
        // lax.test: the same key, p=none.
        Record::Txt("sel1._domainkey.lax.test", &key.txt),
        Record::Txt("_dmarc.lax.test", "v=DMARC1; p=none"),
        // plain.test: no DKIM, no DMARC record.
    ]
}

fn authentication_results(received: &mailgate_tests::Received) -> Vec<String> {
    received.header("Authentication-Results")
}

#[test]
fn dkim_and_dmarc_are_checked_before_the_250() {
    let backend = Backend::start();
    let key = dkim_key();
    let dns = DnsServer::with(&dkim_records(&key));
    let home = scanner_home();
    let gw = dkim_gateway(&backend, &dns, home.path(), "");

    // DKIM pass, DMARC pass (aligned signature).
    let signed = dkim_signed(
        &key,
        "good.test",
        &author_message("good.test", "marker-dkim-pass"),
    );
    let reply = send_from_with(&gw, "127.0.0.2", "alice@good.test", &signed);
    assert!(reply.starts_with("250"), "{reply}");
    let received = backend.wait_for_message("marker-dkim-pass");
    let results = authentication_results(&received);
    assert_eq!(results.len(), 1, "{results:?}");
    let ar = &results[0];
    assert!(ar.starts_with("gw.example.com;"), "{ar}");
    assert!(
        ar.contains("dkim=pass header.i=@good.test header.s=sel1"),
        "{ar}"
    );
    assert!(ar.contains("spf=fail"), "{ar}");
    assert!(ar.contains("dmarc=pass"), "{ar}");

    // DKIM fail (body changed after signing) under p=reject: refused
    // before the 250.
    let signed = dkim_signed(&key, "good.test", &author_message("good.test", "marker-x"));
    let tampered = signed.replace("Hello.", "Hello, changed.");
    let reply = send_from_with(&gw, "127.0.0.2", "alice@good.test", &tampered);
    assert_eq!(
        reply,
        "550 5.7.1 Email rejected per DMARC policy for good.test"
    );
    gw.wait_for_log("dkim=fail");

    // DKIM fail under p=none: delivered, marked.
    let signed = dkim_signed(
        &key,
        "lax.test",
        &author_message("lax.test", "marker-dkim-fail"),
    );
    let tampered = signed.replace("Hello.", "Hello, changed.");
    let reply = send_from_with(&gw, "127.0.0.2", "alice@lax.test", &tampered);
    assert!(reply.starts_with("250"), "{reply}");
    let ar = &authentication_results(&backend.wait_for_message("marker-dkim-fail"))[0];
    assert!(ar.contains("dkim=fail"), "{ar}");
    assert!(ar.contains("header.i=@lax.test header.s=sel1"), "{ar}");
    assert!(
        ar.contains("dmarc=fail") && ar.contains("header.from=lax.test"),
        "{ar}"
    );

    // No signature, no DMARC record; and a forged Authentication-Results
    // in our name is removed while another server's stays.
    let message = format!(
        "Authentication-Results: gw.example.com; dkim=pass header.d=bank.example\n\
         Authentication-Results: mx.other.example; spf=pass\n{}",
        author_message("plain.test", "marker-dkim-none")
    );
    let reply = send_from_with(&gw, "127.0.0.2", "alice@plain.test", &message);
    assert!(reply.starts_with("250"), "{reply}");
    let results = authentication_results(&backend.wait_for_message("marker-dkim-none"));
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results[0].starts_with("gw.example.com;"), "{results:?}");
    assert!(results[0].contains("dkim=none"), "{results:?}");
    assert!(results[0].contains("dmarc=none"), "{results:?}");
    assert!(!results[0].contains("bank.example"), "{results:?}");
    assert_eq!(results[1], "mx.other.example; spf=pass");
    gw.wait_for_log("removed a forged Authentication-Results header");

    // The organisation's own mail (mynetworks) is not checked.
    let signed = dkim_signed(
        &key,
        "good.test",
        &author_message("good.test", "marker-dkim-own"),
    );
    let tampered = signed.replace("Hello.", "Hello, changed.");
    let reply = send_from_with(&gw, "127.0.0.1", "alice@good.test", &tampered);
    assert!(reply.starts_with("250"), "{reply}");
    assert!(authentication_results(&backend.wait_for_message("marker-dkim-own")).is_empty());
}

/// dmarc_reject_action = quarantine: the message is accepted and kept in
/// quarantine/ instead of being refused; a DMARC policy that cannot be
/// looked up defers.
#[test]
fn dmarc_local_policy_quarantines_and_a_dns_failure_defers() {
    let backend = Backend::start();
    let key = dkim_key();
    let dns = DnsServer::with(&dkim_records(&key));
    let home = scanner_home();
    let gw = dkim_gateway(
        &backend,
        &dns,
        home.path(),
        "dmarc_reject_action = quarantine\n",
    );
    let signed = dkim_signed(
        &key,
        "good.test",
        &author_message("good.test", "marker-dmarc-q"),
    );
    let tampered = signed.replace("Hello.", "Hello, changed.");
    let reply = send_from_with(&gw, "127.0.0.2", "alice@good.test", &tampered);
    assert!(reply.starts_with("250"), "{reply}");
    let line = gw.wait_for_log("quarantine: DMARC policy of good.test");
    assert!(line.contains("p=reject"), "{line}");
    let listing = mailgate_tests::wait_for("the message in quarantine/", || {
        let (status, listing, _) = gw.admin(&["quarantine", "list"]);
        (status == 0 && listing.contains("DMARC policy of good.test")).then_some(listing)
    });
    assert!(listing.contains("p=reject, failed"), "{listing}");
    assert!(
        backend
            .messages()
            .iter()
            .all(|m| !m.message.contains("marker-dmarc-q"))
    );

    // From a domain whose DNS cannot be asked: 451 4.4.3, retried later.
    let reply = send_from_with(
        &gw,
        "127.0.0.2",
        "alice@unreachable.example",
        &author_message("unreachable.example", "marker-dmarc-temp"),
    );
    assert_eq!(
        reply,
        "451 4.4.3 DMARC policy of unreachable.example could not be looked up; try again later"
    );
}

fn send_from_with(gw: &Gateway, client_ip: &str, sender: &str, message: &str) -> String {
    let mut client = Client::connect(gw.port, client_ip).unwrap();
    client.send_message(sender, &["b@example.com"], message)
}

// ---- DKIM signing ----------------------------------------------------------

/// The strings of the TXT record `mailgate dkim keygen` printed, and the
/// name it goes under.
fn keygen(gw: &Gateway, domain: &str, selector: &str, kind: &str) -> (String, Vec<String>) {
    let dir = gw.dir.path().display().to_string();
    let (status, stdout, stderr) =
        gw.admin(&["dkim", "keygen", domain, selector, "-t", kind, "-D", &dir]);
    assert_eq!(status, 0, "{stderr}");
    let (name, rest) = stdout.split_once(" IN TXT ").expect("a TXT record line");
    let strings: Vec<String> = rest
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(strings.iter().all(|s| s.len() <= 255), "{stdout}");
    (name.trim_end_matches('.').to_string(), strings)
}

/// python3-dkim's dkimverify (dkimpy), reading the key from the DNS: run
/// in a private mount namespace whose /etc/resolv.conf names `dns`.
fn dkimverify(dns: &DnsServer, dir: &std::path::Path, message: &str) -> (bool, String) {
    mailgate_tests::dkim::dkimpy_verify("dkimverify", dns, dir, message)
}

/// Mail from mynetworks is DKIM-signed with the key dkim_signing_table
/// names for its From: domain (RSA and Ed25519), the key held by tlskeys;
/// the TXT record `mailgate dkim keygen` printed verifies it in dkimpy.
/// Mail from outside is not signed.
#[test]
fn outbound_mail_is_signed_and_verifies_with_dkimpy() {
    if !mailgate_tests::is_root() {
        panic!("this test needs root (dkimverify runs in a mount namespace of its own)");
    }
    let backend = Backend::start();
    let gw = Gateway::configure(&backend, "").with_master_cf("tlskeys unix - - y - - tlskeys\n");
    let (rsa_name, rsa_txt) = keygen(&gw, "example.org", "sel1", "rsa");
    let (ed_name, ed_txt) = keygen(&gw, "ed.example.org", "ed1", "ed25519");
    assert_eq!(rsa_name, "sel1._domainkey.example.org");
    let dir = gw.dir.path().to_path_buf();
    let dir = dir.as_path();
    fs::write(
        dir.join("dkim_keys"),
        format!(
            "rsa example.org:sel1:{}\ned ed.example.org:ed1:{}\n",
            dir.join("sel1.example.org.pem").display(),
            dir.join("ed1.ed.example.org.pem").display()
        ),
    )
    .unwrap();
    fs::write(
        dir.join("dkim_signing"),
        "example.org rsa\ned.example.org ed\n",
    )
    .unwrap();
    let dns = DnsServer::on_port_53(&[
        Record::Zone("example.org"),
        Record::Txt(&rsa_name, &rsa_txt.join(",")),
        Record::Txt(&ed_name, &ed_txt.join(",")),
    ]);
    gw.add_main_cf(&format!(
        "dkim_signing_table = texthash:{d}/dkim_signing\ndkim_key_table = texthash:{d}/dkim_keys\n\
         tlskeys_directory = {d}/tlskeys\n",
        d = dir.display()
    ));
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_eq!(status, 0, "{stderr}");
    let gw = gw.launch();

    let message = "From: Alice <alice@example.org>\nTo: b@example.com\nSubject: signed\n\n\
                   Hello from the inside.\nmarker-dkim-signed\n";
    let reply = send_from_with(&gw, "127.0.0.1", "alice@example.org", message);
    assert!(reply.starts_with("250"), "{reply}\n{}", gw.log());
    let received = backend.wait_for_message("marker-dkim-signed");
    let signature = &received.header("DKIM-Signature")[0];
    assert!(
        signature.contains("d=example.org") && signature.contains("s=sel1"),
        "{signature}"
    );
    let (ok, out) = dkimverify(&dns, dir, &received.message);
    assert!(ok, "dkimverify: {out}\n{}", received.message);

    let message = "From: Eve <eve@ed.example.org>\nTo: b@example.com\nSubject: signed\n\n\
                   Hello.\nmarker-dkim-ed25519\n";
    let reply = send_from_with(&gw, "127.0.0.1", "eve@ed.example.org", message);
    assert!(reply.starts_with("250"), "{reply}");
    let received = backend.wait_for_message("marker-dkim-ed25519");
    assert!(received.header("DKIM-Signature")[0].contains("a=ed25519-sha256"));
    let (ok, out) = dkimverify(&dns, dir, &received.message);
    assert!(ok, "dkimverify: {out}\n{}", received.message);
    // The same message changed after signing does not verify: the check
    // above can fail.
    let (ok, _) = dkimverify(&dns, dir, &received.message.replace("Hello.", "Hello!"));
    assert!(!ok);

    // From outside: not signed, even with a From: of a signing domain.
    let message = "From: Mallory <m@example.org>\nTo: b@example.com\nSubject: x\n\n\
                   marker-dkim-outside\n";
    let reply = send_from_with(&gw, "127.0.0.2", "m@example.org", message);
    assert!(reply.starts_with("250"), "{reply}");
    assert!(
        backend
            .wait_for_message("marker-dkim-outside")
            .header("DKIM-Signature")
            .is_empty()
    );
    gw.wait_for_log("2 DKIM key(s)");
}
