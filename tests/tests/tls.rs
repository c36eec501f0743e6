//! TLS end to end: real gateways with certificates made for the run, real
//! clients (Python's smtplib, swaks, openssl s_client, a rustls client),
//! a STARTTLS-speaking test server for relay, and the private key kept out
//! of smtpd's memory.

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;

use mailgate_tests::tls::{TestPki, TlsClient, TlsSink, memory_contains, plain_reply};
use mailgate_tests::{Backend, Client, Gateway, is_root, message, wait_for};

/// Python's smtplib: STARTTLS trusting the test CA, then one message.
/// Prints the TLS version and the final reply.
const SMTPLIB: &str = r#"
import smtplib, ssl, sys
port, ca, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.org", timeout=30)
s.ehlo()
assert s.has_extn("starttls"), "no STARTTLS offered"
s.starttls(context=ctx)
print(s.sock.version())
s.ehlo()
msg = "From: a@sender.example\r\nTo: bob@example.com\r\nSubject: tls\r\n\r\n" + marker + "\r\n"
s.sendmail("a@sender.example", ["bob@example.com"], msg)
s.quit()
print("sent")
"#;

fn smtplib(port: u16, ca: &std::path::Path, marker: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", SMTPLIB, &port.to_string()])
        .arg(ca)
        .arg(marker)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "smtplib failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn starttls_with_smtplib_and_swaks_over_tls13() {
    let backend = Backend::start();
    let pki = TestPki::new(&["gw.example.com", "127.0.0.1"]);
    let gateway = Gateway::configure(&backend, "")
        .with_tls(&pki, "may")
        .launch();
    let ca = gateway.path("ca.pem");

    let out = smtplib(gateway.port, &ca, "marker-smtplib");
    assert!(out.starts_with("TLSv1.3\n"), "{out}");
    let received = backend.wait_for_message("marker-smtplib");
    let ours = &received.header("Received")[0];
    assert!(
        ours.contains("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)")
            && ours.contains("server-signature ECDSA (prime256v1) server-digest SHA256)")
            && ours.contains("(No client certificate requested)")
            && ours.contains("with ESMTPS id"),
        "{ours}"
    );
    let line = gateway.wait_for_log("Anonymous TLS connection established from");
    assert!(
        line.contains("from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256"),
        "{line}"
    );

    let swaks = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", gateway.port)])
        .args(["--tls", "--tls-verify", "--tls-ca-path"])
        .arg(&ca)
        .args(["--tls-protocol", "tlsv1_3"])
        .args(["--helo", "client.example.org"])
        .args(["--from", "a@sender.example", "--to", "bob@example.com"])
        .args(["--body", "marker-swaks"])
        .output()
        .expect("swaks");
    let transcript = String::from_utf8_lossy(&swaks.stdout);
    assert!(swaks.status.success(), "{transcript}");
    assert!(
        transcript.contains("TLS started with cipher TLSv1.3:TLS_AES_256_GCM_SHA384:256"),
        "{transcript}"
    );
    backend.wait_for_message("marker-swaks");
    // The disconnect line counts STARTTLS as Postfix does.
    gateway.wait_for_log("ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7");
}

#[test]
fn encrypt_refuses_mail_before_starttls() {
    let backend = Backend::start();
    let pki = TestPki::new(&["gw.example.com"]);
    let gateway = Gateway::configure(&backend, "")
        .with_tls(&pki, "encrypt")
        .launch();
    let mut client = Client::connect(gateway.port, "127.0.0.1").unwrap();
    let ehlo = client.send("EHLO client.example.org");
    assert!(ehlo.contains("250-STARTTLS"), "{ehlo}");
    assert_eq!(
        client.send("MAIL FROM:<a@sender.example>"),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    client.send("QUIT");
}

#[test]
fn plaintext_pipelined_after_starttls_is_discarded() {
    let backend = Backend::start();
    let pki = TestPki::new(&["gw.example.com"]);
    let gateway = Gateway::configure(&backend, "")
        .with_tls(&pki, "may")
        .launch();
    let mut socket = TcpStream::connect(("127.0.0.1", gateway.port)).unwrap();
    socket
        .set_read_timeout(Some(mailgate_tests::PATIENCE))
        .unwrap();
    assert!(plain_reply(&mut socket).starts_with("220 "));
    socket.write_all(b"EHLO attacker.example\r\n").unwrap();
    assert!(plain_reply(&mut socket).contains("STARTTLS"));
    // CVE-2011-0411: commands sent in clear right behind STARTTLS must not
    // be read as if they came over TLS.
    socket
        .write_all(b"STARTTLS\r\nMAIL FROM:<injected@example.net>\r\nRSET\r\n")
        .unwrap();
    let r = plain_reply(&mut socket);
    assert_eq!(r, "220 2.0.0 Ready to start TLS");
    let mut tls = TlsClient::handshake(socket, &pki.ca_pem, "gw.example.com");
    assert_eq!(tls.protocol(), "TLSv1_3");
    // The first reply over TLS answers EHLO: nothing injected ran.
    let ehlo = tls.send("EHLO client.example.org");
    assert!(ehlo.starts_with("250-gw.example.com"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    // No transaction was started by the injected MAIL.
    assert_eq!(
        tls.send("RCPT TO:<bob@example.com>"),
        "503 5.5.1 Error: need MAIL command"
    );
    tls.send("QUIT");
    let line = gateway.wait_for_log("disconnect from localhost[127.0.0.1]");
    assert!(!line.contains("mail="), "{line}");
}

#[test]
fn smtps_wrapper_mode_and_submission_as_in_postfix_s_master_cf() {
    let backend = Backend::start();
    let pki = TestPki::new(&["gw.example.com", "127.0.0.1"]);
    let smtps = mailgate_tests::free_port();
    let submission = mailgate_tests::free_port();
    let gateway = Gateway::configure(&backend, "")
        .with_tls(&pki, "may")
        .with_master_cf(&format!(
            "127.0.0.1:{smtps} inet n - y - - smtpd\n  \
               -o syslog_name=mailgate/smtps\n  \
               -o smtpd_tls_wrappermode=yes\n\
             127.0.0.1:{submission} inet n - y - - smtpd\n  \
               -o syslog_name=mailgate/submission\n  \
               -o smtpd_tls_security_level=encrypt\n"
        ))
        .launch();
    let script = r#"
import smtplib, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
s = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, local_hostname="client.example.org", timeout=30)
print(s.sock.version())
s.sendmail("a@sender.example", ["bob@example.com"], "Subject: smtps\r\n\r\nmarker-smtps\r\n")
s.quit()
"#;
    wait_for("the SMTPS service", || {
        TcpStream::connect(("127.0.0.1", smtps)).ok()
    });
    let out = Command::new("python3")
        .args(["-c", script, &smtps.to_string()])
        .arg(gateway.path("ca.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "TLSv1.3");
    backend.wait_for_message("marker-smtps");
    gateway.wait_for_log("mailgate/smtps/smtpd");
    // The submission service's override: TLS is required there only.
    wait_for("the submission service", || {
        TcpStream::connect(("127.0.0.1", submission)).ok()
    });
    let mut client = Client::connect(submission, "127.0.0.1").unwrap();
    client.send("EHLO client.example.org");
    assert_eq!(
        client.send("MAIL FROM:<a@sender.example>"),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
}

#[test]
fn rsa_and_ecdsa_chain_files_and_reload_on_sighup() {
    let backend = Backend::start();
    let rsa = TestPki::rsa(&["gw.example.com"]);
    let ecdsa = TestPki::new(&["gw.example.com"]);
    let gateway = Gateway::configure(&backend, "").with_tls(&ecdsa, "may");
    std::fs::write(
        gateway.path("chain.pem"),
        format!(
            "{}{}{}{}",
            rsa.key_pem, rsa.chain_pem, ecdsa.key_pem, ecdsa.chain_pem
        ),
    )
    .unwrap();
    std::fs::write(
        gateway.path("both-ca.pem"),
        format!("{}{}", rsa.ca_pem, ecdsa.ca_pem),
    )
    .unwrap();
    gateway.add_main_cf("smtpd_tls_chain_files = chain.pem\n");
    let gateway = gateway.launch();
    let s_client = |sigalgs: &str| {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", gateway.port),
            ])
            .args([
                "-starttls",
                "smtp",
                "-sigalgs",
                sigalgs,
                "-verify_return_error",
            ])
            .arg("-CAfile")
            .arg(gateway.path("both-ca.pem"))
            .args(["-verify_hostname", "gw.example.com"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let out = s_client("RSA-PSS+SHA256");
    assert!(out.contains("Peer signature type: RSA-PSS"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let out = s_client("ECDSA+SHA256");
    assert!(out.contains("Peer signature type: ECDSA"), "{out}");
    let line = gateway.wait_for_log("server-signature RSA-PSS (2048 bits) server-digest SHA256");
    assert!(
        line.contains("Anonymous TLS connection established"),
        "{line}"
    );

    // A new certificate, and a reload: new sessions get it.
    let renewed = TestPki::new(&["gw.example.com"]);
    std::fs::write(
        gateway.path("chain.pem"),
        format!("{}{}", renewed.key_pem, renewed.chain_pem),
    )
    .unwrap();
    std::fs::write(gateway.path("both-ca.pem"), &renewed.ca_pem).unwrap();
    gateway.signal_master(nix::sys::signal::Signal::SIGHUP);
    let out = wait_for("the renewed certificate", || {
        let out = s_client("ECDSA+SHA256");
        out.contains("Verify return code: 0 (ok)").then_some(out)
    });
    assert!(out.contains("Peer signature type: ECDSA"), "{out}");
}

#[test]
fn smtpd_memory_holds_no_private_key() {
    assert!(is_root(), "reading another process's memory needs root");
    let backend = Backend::start();
    let pki = TestPki::new(&["gw.example.com", "127.0.0.1"]);
    let gateway = Gateway::configure(&backend, "")
        .with_tls(&pki, "may")
        .launch();
    smtplib(gateway.port, &gateway.path("ca.pem"), "marker-memory");
    backend.wait_for_message("marker-memory");
    let key_der = pki.key_der();
    // The private scalar alone (PKCS#8 EC key: version 1, then the 32-byte
    // OCTET STRING), in whatever structure a process might keep it.
    let at = key_der
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .expect("an EC private key")
        + 5;
    let scalar = &key_der[at..at + 32];
    let pem_line = pki.key_pem.lines().nth(1).unwrap().as_bytes().to_vec();
    let smtpd = gateway.worker_pids("smtpd");
    assert!(!smtpd.is_empty());
    // The search works: smtpd holds the certificate (public), which came
    // from tlskeys with the key's public half.
    let cert_der = rustls::pki_types::pem::PemObject::from_pem_slice(pki.chain_pem.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    assert!(
        smtpd
            .iter()
            .any(|pid| memory_contains(pid.as_raw(), &cert_der)),
        "the certificate should be in smtpd's memory"
    );
    for pid in smtpd {
        for (what, needle) in [("DER", &key_der[..]), ("PEM", &pem_line[..])] {
            assert!(
                !memory_contains(pid.as_raw(), needle),
                "the private key ({what}) is in smtpd's memory"
            );
        }
        assert!(
            !memory_contains(pid.as_raw(), scalar),
            "the private scalar is in smtpd"
        );
    }
}

#[test]
fn relay_encrypt_reaches_a_tls_server_and_defers_without_starttls() {
    let pki = TestPki::new(&["127.0.0.1"]);
    let with_tls = TlsSink::start(&pki, true);
    let without = TlsSink::start(&pki, false);
    let backend = Backend::start();
    let gateway = Gateway::start(
        &backend,
        &format!(
            "transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{}, example.org=smtp:[127.0.0.1]:{} }}\n\
             relay_domains = example.com, example.org\n\
             smtp_tls_security_level = encrypt\n",
            with_tls.port, without.port
        ),
    );
    let mut client = Client::connect(gateway.port, "127.0.0.1").unwrap();
    let reply = client.send_message(
        "a@sender.example",
        &["bob@example.com"],
        &message("encrypted", "marker-encrypt"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let got = with_tls.wait_for_message("marker-encrypt");
    assert!(got.tls, "the message went in clear");
    gateway.wait_for_log("TLS connection established to 127.0.0.1[127.0.0.1]:");

    let reply = client.transaction(
        "a@sender.example",
        &["carol@example.org"],
        &message("not offered", "marker-clear"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let line =
        gateway.wait_for_log("status=deferred (TLS is required, but was not offered by host");
    assert!(line.contains("to=<carol@example.org>"), "{line}");
    assert!(without.messages().is_empty(), "sent in clear");
    let transcripts = without.transcripts.lock().unwrap().clone();
    assert!(
        transcripts.iter().all(|t| !t.contains("MAIL FROM")),
        "{transcripts:?}"
    );
}

/// smtp_tls_note_starttls_offer: at TLS level none the relay goes in
/// clear and logs the server's unused offer, as Postfix's smtp does.
#[test]
fn relay_notes_an_unused_starttls_offer() {
    let pki = TestPki::new(&["127.0.0.1"]);
    let offering = TlsSink::start(&pki, true);
    let backend = Backend::start();
    let gateway = Gateway::start(
        &backend,
        &format!(
            "transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{} }}\n\
             relay_domains = example.com\n\
             smtp_tls_security_level = none\n\
             smtp_tls_note_starttls_offer = yes\n",
            offering.port
        ),
    );
    let (status, out, err) = gateway.admin(&["check"]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        !format!("{out}{err}").contains("smtp_tls_note_starttls_offer"),
        "check still names it: {out}{err}"
    );
    let mut client = Client::connect(gateway.port, "127.0.0.1").unwrap();
    let reply = client.send_message(
        "a@sender.example",
        &["bob@example.com"],
        &message("clear", "marker-offer"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let got = offering.wait_for_message("marker-offer");
    assert!(!got.tls, "level none went over TLS");
    gateway.wait_for_log("Host offered STARTTLS: [127.0.0.1]");
}

/// The fingerprint level: a server whose certificate's SHA-256
/// fingerprint (as `openssl x509 -fingerprint -sha256` prints it, what an
/// administrator pastes) is listed gets the message over a "Verified"
/// connection, whoever issued it; another is deferred.
#[test]
fn relay_fingerprint_level_accepts_only_the_listed_certificate() {
    let pinned = TestPki::new(&["127.0.0.1"]);
    let other = TestPki::new(&["127.0.0.1"]);
    let good = TlsSink::start(&pinned, true);
    let bad = TlsSink::start(&other, true);
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, &pinned.chain_pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl (Debian package openssl) must be installed");
    let printed = String::from_utf8_lossy(&out.stdout);
    let fingerprint = printed
        .trim()
        .split_once('=')
        .map(|(_, f)| f.to_string())
        .unwrap_or_else(|| panic!("openssl printed {printed:?}"));
    let backend = Backend::start();
    let gateway = Gateway::start(
        &backend,
        &format!(
            "transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{}, example.org=smtp:[127.0.0.1]:{} }}\n\
             relay_domains = example.com, example.org\n\
             smtp_tls_security_level = fingerprint\n\
             smtp_tls_fingerprint_cert_match = {fingerprint}\n",
            good.port, bad.port
        ),
    );
    let (status, out, err) = gateway.admin(&["check"]);
    assert_eq!(status, 0, "{out}{err}");
    let mut client = Client::connect(gateway.port, "127.0.0.1").unwrap();
    let reply = client.send_message(
        "a@sender.example",
        &["bob@example.com"],
        &message("pinned", "marker-pinned"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let got = good.wait_for_message("marker-pinned");
    assert!(got.tls, "the message went in clear");
    gateway.wait_for_log("Verified TLS connection established to 127.0.0.1[127.0.0.1]:");

    let reply = client.transaction(
        "a@sender.example",
        &["carol@example.org"],
        &message("unpinned", "marker-unpinned"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let line = gateway.wait_for_log("status=deferred (Server certificate not verified");
    assert!(line.contains("to=<carol@example.org>"), "{line}");
    assert!(
        bad.messages().is_empty(),
        "delivered to an unlisted certificate"
    );
}

#[test]
fn relay_verify_refuses_a_certificate_for_another_name() {
    let pki = TestPki::new(&["other.example.net"]);
    let sink = TlsSink::start(&pki, true);
    let backend = Backend::start();
    let gateway = Gateway::configure(
        &backend,
        &format!(
            "transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{} }}\n\
             smtp_tls_security_level = verify\n\
             smtp_tls_CAfile = ca.pem\n",
            sink.port
        ),
    );
    pki.write(gateway.dir.path(), "");
    let gateway = gateway.launch();
    let mut client = Client::connect(gateway.port, "127.0.0.1").unwrap();
    let reply = client.send_message(
        "a@sender.example",
        &["bob@example.com"],
        &message("verify", "marker-verify"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    gateway.wait_for_log("status=deferred (Server certificate not verified)");
    assert!(sink.messages().is_empty());
}

#[test]
fn pflogsumm_reads_the_log() {
    let backend = Backend::start();
    let pki = TestPki::new(&["gw.example.com", "127.0.0.1"]);
    let gateway = Gateway::configure(&backend, "")
        .with_tls(&pki, "may")
        .launch();
    smtplib(gateway.port, &gateway.path("ca.pem"), "marker-pflogsumm");
    backend.wait_for_message("marker-pflogsumm");
    gateway.wait_for_log("status=sent");
    let out = Command::new("pflogsumm")
        .args(["--problems-first", "--syslog_name=mailgate"])
        .arg(gateway.path("maillog"))
        .output()
        .expect("pflogsumm (Debian package pflogsumm)");
    let report = String::from_utf8_lossy(&out.stdout);
    let count = |label: &str| -> u32 {
        report
            .lines()
            .find(|l| l.trim_end().ends_with(label))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(count("received"), 1, "{report}");
    assert_eq!(count("delivered"), 1, "{report}");
}
