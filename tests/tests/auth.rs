//! SMTP AUTH's password backends against a real Dovecot (Debian's
//! dovecot-core and dovecot-imapd, a private instance per test): Dovecot's
//! auth protocol over TCP and a Unix socket, and IMAP logins with
//! STARTTLS and imaps; and AUTH in smtpd end to end.

use std::sync::Arc;
use std::time::Duration;

use mailgate_config::{Endpoint, ImapTls};
use mailgate_sasl::dovecot::{self, Context};
use mailgate_sasl::imap::{self, Target};
use mailgate_sasl::{BackendError, Credentials, Verdict};
use mailgate_tests::dovecot::{Dovecot, Plaintext};

/// The users every test Dovecot here knows: (name, password).
const USERS: [(&str, &str); 2] = [
    ("bob@example.com", "bob's secret"),
    ("alice", "wonder land"),
];

/// Dovecot with the auth service on TCP, IMAP with STARTTLS and imaps.
fn start_dovecot(plaintext: Plaintext) -> Dovecot {
    Dovecot::builder()
        .users(&USERS)
        .plaintext(plaintext)
        .auth_tcp()
        .imap()
        .imaps()
        .start()
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn credentials(user: &str, password: &str) -> Credentials {
    Credentials {
        authzid: String::new(),
        username: user.to_string(),
        password: password.to_string(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A request from client 192.0.2.`n`. Dovecot slows down every request
/// from an address after a failure from it (its auth penalty, a defence
/// against password guessing), so each check comes from its own address.
fn context(n: u8) -> Context<'static> {
    let addr: &'static str = Box::leak(format!("192.0.2.{n}").into_boxed_str());
    Context {
        service: "smtp",
        client_addr: addr,
        local_addr: Some("127.0.0.1"),
        secured: true,
    }
}

#[test]
fn dovecot_auth_protocol_over_tcp_and_unix_socket() {
    let dovecot = Dovecot::builder()
        .users(&USERS)
        .auth_tcp()
        .auth_socket("mailgate-test-auth")
        .start();
    let rt = runtime();
    let (user, password) = USERS[0];
    let n = std::cell::Cell::new(0u8);
    for endpoint in [
        Endpoint::Inet {
            host: "127.0.0.1".into(),
            port: dovecot.auth_port(),
        },
        Endpoint::Unix(dovecot.auth_socket().to_path_buf()),
    ] {
        let check = |c: Credentials| {
            n.set(n.get() + 1);
            rt.block_on(dovecot::check(&endpoint, &c, &context(n.get()), TIMEOUT))
        };
        assert_eq!(
            check(credentials(user, password)).unwrap(),
            Verdict::Accepted { user: user.into() }
        );
        assert_eq!(
            check(credentials(user, "wrong")).unwrap(),
            Verdict::Rejected
        );
        assert_eq!(
            check(credentials("nobody", password)).unwrap(),
            Verdict::Rejected
        );
    }
}

#[test]
fn dovecot_down_is_an_error_not_a_verdict() {
    // Nothing listens there: the check fails, it never passes.
    let port = mailgate_tests::free_port();
    let rt = runtime();
    let endpoint = Endpoint::Inet {
        host: "127.0.0.1".into(),
        port,
    };
    let (user, password) = USERS[0];
    let result = rt.block_on(dovecot::check(
        &endpoint,
        &credentials(user, password),
        &context(1),
        TIMEOUT,
    ));
    assert!(
        matches!(result, Err(BackendError::Connect(_))),
        "{result:?}"
    );
}

fn roots(ca_file: &std::path::Path) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = mailgate_tls_ca(ca_file);
    roots.add_parsable_certificates(certs);
    Arc::new(roots)
}

fn mailgate_tls_ca(path: &std::path::Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn imap_login_with_starttls_as_rimap() {
    // LOGIN works only over TLS here, as on a mail server that refuses
    // plaintext passwords.
    let dovecot = start_dovecot(Plaintext::TlsOnly);
    let rt = runtime();
    let target = |tls, implicit_tls, ca: &std::path::Path| Target {
        host: dovecot.imap_host().into(),
        port: if implicit_tls {
            dovecot.imaps_port()
        } else {
            dovecot.imap_port()
        },
        implicit_tls,
        tls,
        roots: roots(ca),
    };
    let (user, password) = USERS[1];
    let check = |t: &Target, c: Credentials| rt.block_on(imap::check(t, &c, TIMEOUT));
    for t in [
        target(ImapTls::May, false, dovecot.ca_file()),
        target(ImapTls::Verify, false, dovecot.ca_file()),
        target(ImapTls::Verify, true, dovecot.ca_file()),
    ] {
        assert_eq!(
            check(&t, credentials(user, password)).unwrap(),
            Verdict::Accepted { user: user.into() }
        );
    }
    // One wrong password (Dovecot slows down the next login from the same
    // address after each failure).
    let t = target(ImapTls::Verify, true, dovecot.ca_file());
    assert_eq!(
        check(&t, credentials(user, "nope")).unwrap(),
        Verdict::Rejected
    );
    // Without TLS the server will not take the password at all.
    let err = check(
        &target(ImapTls::None, false, dovecot.ca_file()),
        credentials(user, password),
    )
    .unwrap_err();
    assert!(err.to_string().contains("LOGINDISABLED"), "{err}");
    // verify with another CA: no password is sent to an unverified server.
    let other = mailgate_tests::tls::TestPki::new(&["127.0.0.2"]);
    let other_ca = dovecot.dir().join("other-ca.pem");
    std::fs::write(&other_ca, &other.ca_pem).unwrap();
    let err = check(
        &target(ImapTls::Verify, true, &other_ca),
        credentials(user, password),
    )
    .unwrap_err();
    assert!(matches!(err, BackendError::Tls(_)), "{err}");
    assert!(err.to_string().contains("not trusted"), "{err}");
}

// ---- AUTH in smtpd, end to end ------------------------------------------

use base64_plain::plain;
use mailgate_tests::tls::{TestPki, starttls_from};
use mailgate_tests::{Backend, Client, Gateway, message};

mod base64_plain {
    /// PLAIN's initial response: base64 of NUL user NUL password.
    pub fn plain(user: &str, password: &str) -> String {
        mailgate_sasl::mechanism::encode(format!("\0{user}\0{password}").as_bytes())
    }
}

const AUTH_MAIN_CF: &str = "smtpd_sasl_auth_enable = yes\n\
    smtpd_tls_auth_only = yes\n\
    smtpd_sasl_authenticated_header = yes\n\
    smtpd_sasl_failure_delay = 0\n\
    smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\n";

/// A gateway with TLS and AUTH, its clients from 127.0.0.2 (not in
/// mynetworks).
fn auth_gateway(backend: &Backend, sasl: &str) -> (Gateway, TestPki) {
    let pki = TestPki::new(&["gw.example.com"]);
    let gateway = Gateway::configure(backend, &format!("{AUTH_MAIN_CF}{sasl}"))
        .with_tls(&pki, "may")
        .launch();
    (gateway, pki)
}

#[test]
fn auth_against_dovecot_over_its_unix_socket() {
    let backend = Backend::start();
    let (gateway, pki) = auth_gateway(
        &backend,
        "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n",
    );
    let dovecot = Dovecot::builder()
        .users(&USERS)
        .auth_socket(gateway.spool("private").join("auth"))
        .start();
    let (user, password) = USERS[0];

    // In clear: AUTH is neither announced nor accepted.
    let mut clear = Client::connect(gateway.port, "127.0.0.2").unwrap();
    let ehlo = clear.send("EHLO client.example.org");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert_eq!(
        clear.send(&format!("AUTH PLAIN {}", plain(user, password))),
        "504 5.5.4 Encryption required for requested authentication mechanism"
    );
    clear.send("QUIT");

    // Over TLS, without AUTH: no relaying.
    let mut tls = starttls_from(gateway.port, "127.0.0.2", &pki.ca_pem);
    let ehlo = tls.send("EHLO client.example.org");
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN"), "{ehlo}");
    assert_eq!(
        tls.send(&format!("AUTH PLAIN {}", plain(user, "wrong"))),
        "535 5.7.8 Error: authentication failed: authentication failure"
    );
    assert!(tls.send("MAIL FROM:<a@sender.example>").starts_with("250"));
    assert_eq!(
        tls.send("RCPT TO:<someone@elsewhere.example.net>"),
        "554 5.7.1 <someone@elsewhere.example.net>: Relay access denied"
    );
    tls.send("RSET");
    // The right password: 235, and relaying to any domain.
    assert_eq!(
        tls.send(&format!("AUTH PLAIN {}", plain(user, password))),
        "235 2.7.0 Authentication successful"
    );
    assert_eq!(
        tls.send("AUTH PLAIN x"),
        "503 5.5.1 Error: already authenticated"
    );
    assert!(tls.send("MAIL FROM:<bob@example.com>").starts_with("250"));
    assert!(
        tls.send("RCPT TO:<someone@elsewhere.example.net>")
            .starts_with("250")
    );
    assert!(tls.send("RCPT TO:<carol@example.com>").starts_with("250"));
    assert!(tls.send("DATA").starts_with("354"));
    let reply = tls.send("Subject: authenticated\r\n\r\nmarker-auth\r\n.");
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    tls.send("QUIT");
    let line = gateway.wait_for_log("sasl_method=PLAIN");
    assert!(
        line.contains(&format!(
            ": client=unknown[127.0.0.2], sasl_method=PLAIN, sasl_username={user}"
        )),
        "{line}"
    );
    let failed = gateway.wait_for_log("SASL PLAIN authentication failed");
    assert!(failed.contains("warning: unknown[127.0.0.2]"), "{failed}");
    let received = backend.wait_for_message("marker-auth");
    let ours = &received.header("Received")[0];
    assert!(
        ours.contains(&format!("(Authenticated sender: {user})"))
            && ours.contains("with ESMTPSA id"),
        "{ours}"
    );

    // LOGIN, by swaks.
    let out = std::process::Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", gateway.port)])
        .args(["--local-interface", "127.0.0.2", "--tls"])
        .args([
            "--auth",
            "LOGIN",
            "--auth-user",
            USERS[1].0,
            "--auth-password",
            USERS[1].1,
        ])
        .args([
            "--from",
            "alice@example.com",
            "--to",
            "dave@elsewhere.example.net",
        ])
        .args(["--quit-after", "RCPT"])
        .output()
        .expect("swaks");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        transcript.contains("<~  235 2.7.0 Authentication successful"),
        "{transcript}"
    );
    assert!(transcript.contains("<~  250 2.1.5 Ok"), "{transcript}");
    drop(dovecot);
}

#[test]
fn auth_against_dovecot_over_tcp_and_the_imap_server_as_rimap() {
    let dovecot = start_dovecot(Plaintext::TlsOnly);
    let backend = Backend::start();
    let ca = dovecot.ca_file().display().to_string();
    for sasl in [
        format!(
            "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:127.0.0.1:{}\n",
            dovecot.auth_port()
        ),
        // STARTTLS to the IMAP server (it refuses LOGIN in clear), its
        // certificate checked.
        format!(
            "smtpd_sasl_type = imap\nsmtpd_sasl_path = imap:{}:{}\n\
             smtpd_sasl_imap_tls_security_level = verify\nsmtpd_sasl_imap_tls_CAfile = {ca}\n",
            dovecot.imap_host(),
            dovecot.imap_port()
        ),
        format!(
            "smtpd_sasl_type = imap\nsmtpd_sasl_path = imaps:{}:{}\n\
             smtpd_sasl_imap_tls_security_level = verify\nsmtpd_sasl_imap_tls_CAfile = {ca}\n",
            dovecot.imap_host(),
            dovecot.imaps_port()
        ),
    ] {
        let (gateway, pki) = auth_gateway(&backend, &sasl);
        let (user, password) = USERS[1];
        let mut tls = starttls_from(gateway.port, "127.0.0.2", &pki.ca_pem);
        tls.send("EHLO client.example.org");
        assert_eq!(
            tls.send(&format!("AUTH PLAIN {}", plain(user, password))),
            "235 2.7.0 Authentication successful",
            "{sasl}"
        );
        tls.send("QUIT");
        let mut tls = starttls_from(gateway.port, "127.0.0.3", &pki.ca_pem);
        tls.send("EHLO client.example.org");
        // LOGIN: username and password each answer a challenge.
        assert_eq!(tls.send("AUTH LOGIN"), "334 VXNlcm5hbWU6");
        assert_eq!(
            tls.send(&mailgate_sasl::mechanism::encode(user.as_bytes())),
            "334 UGFzc3dvcmQ6"
        );
        assert_eq!(
            tls.send(&mailgate_sasl::mechanism::encode(b"not the password")),
            "535 5.7.8 Error: authentication failed: authentication failure",
            "{sasl}"
        );
        // "*" cancels.
        assert_eq!(tls.send("AUTH LOGIN"), "334 VXNlcm5hbWU6");
        assert_eq!(tls.send("*"), "501 5.7.0 Authentication aborted");
        tls.send("QUIT");
    }
}

#[test]
fn backend_down_is_a_temporary_failure_and_auth_is_rate_limited() {
    let backend = Backend::start();
    let down = mailgate_tests::free_port();
    let (gateway, pki) = auth_gateway(
        &backend,
        &format!(
            "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:127.0.0.1:{down}\n\
             smtpd_client_auth_rate_limit = 2\n"
        ),
    );
    let mut tls = starttls_from(gateway.port, "127.0.0.2", &pki.ca_pem);
    tls.send("EHLO client.example.org");
    let reply = tls.send(&format!("AUTH PLAIN {}", plain("bob", "x")));
    assert!(
        reply.starts_with("454 4.7.0 Temporary authentication failure"),
        "{reply}"
    );
    tls.send(&format!("AUTH PLAIN {}", plain("bob", "x")));
    assert_eq!(
        tls.send(&format!("AUTH PLAIN {}", plain("bob", "x"))),
        "450 4.7.1 Error: too many AUTH commands from 127.0.0.2"
    );
    gateway.wait_for_log("AUTH command rate limit exceeded: 3 from unknown[127.0.0.2]");
}

#[test]
fn sender_login_maps_with_reject_sender_login_mismatch() {
    let dovecot = start_dovecot(Plaintext::Allowed);
    let backend = Backend::start();
    let (gateway, pki) = auth_gateway(
        &backend,
        &format!(
            "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:127.0.0.1:{}\n\
             smtpd_sender_login_maps = inline:{{ bob@example.com=bob@example.com, @example.org=alice }}\n\
             smtpd_sender_restrictions = reject_sender_login_mismatch\n",
            dovecot.auth_port()
        ),
    );
    let (alice, password) = USERS[1];
    let mut tls = starttls_from(gateway.port, "127.0.0.2", &pki.ca_pem);
    tls.send("EHLO client.example.org");
    // Not logged in: an owned address is refused (at RCPT, smtpd_delay_reject).
    tls.send("MAIL FROM:<bob@example.com>");
    assert_eq!(
        tls.send("RCPT TO:<carol@example.com>"),
        "553 5.7.1 <bob@example.com>: Sender address rejected: not logged in"
    );
    tls.send("RSET");
    assert!(
        tls.send(&format!("AUTH PLAIN {}", plain(alice, password)))
            .starts_with("235")
    );
    tls.send("MAIL FROM:<bob@example.com>");
    assert_eq!(
        tls.send("RCPT TO:<carol@example.com>"),
        "553 5.7.1 <bob@example.com>: Sender address rejected: not owned by user alice"
    );
    tls.send("RSET");
    tls.send("MAIL FROM:<alice@example.org>");
    assert!(tls.send("RCPT TO:<carol@example.com>").starts_with("250"));
    tls.send("QUIT");
    let mut client = Client::connect(gateway.port, "127.0.0.1").unwrap();
    let reply = client.send_message(
        "x@unowned.example",
        &["bob@example.com"],
        &message("m", "m1"),
    );
    assert!(reply.starts_with("250"), "{reply}");
}
