//! SMTP AUTH's password backends against a real Dovecot (Debian's
//! dovecot-core and dovecot-imapd, a private instance per test): Dovecot's
//! auth protocol over TCP and a Unix socket, and IMAP logins with
//! STARTTLS and imaps, as the sasl service uses them.

use std::sync::Arc;
use std::time::Duration;

use mailgate_config::{Endpoint, ImapTls};
use mailgate_sasl::dovecot::{self, Context};
use mailgate_sasl::imap::{self, Target};
use mailgate_sasl::{BackendError, Credentials, Verdict};
use mailgate_tests::dovecot::{Dovecot, Plaintext, USERS};

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
    let dovecot = Dovecot::start(Plaintext::Allowed);
    let rt = runtime();
    let (user, password) = USERS[0];
    let n = std::cell::Cell::new(0u8);
    for endpoint in [
        Endpoint::Inet {
            host: "127.0.0.1".into(),
            port: dovecot.auth_port,
        },
        Endpoint::Unix(dovecot.auth_socket.clone()),
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
    let dovecot = Dovecot::start(Plaintext::TlsOnly);
    let rt = runtime();
    let target = |tls, implicit_tls, ca: &std::path::Path| Target {
        host: dovecot.imap_host.into(),
        port: if implicit_tls {
            dovecot.imaps_port
        } else {
            dovecot.imap_port
        },
        implicit_tls,
        tls,
        roots: roots(ca),
    };
    let (user, password) = USERS[1];
    let check = |t: &Target, c: Credentials| rt.block_on(imap::check(t, &c, TIMEOUT));
    for t in [
        target(ImapTls::May, false, &dovecot.ca_file),
        target(ImapTls::Verify, false, &dovecot.ca_file),
        target(ImapTls::Verify, true, &dovecot.ca_file),
    ] {
        assert_eq!(
            check(&t, credentials(user, password)).unwrap(),
            Verdict::Accepted { user: user.into() }
        );
    }
    // One wrong password (Dovecot slows down the next login from the same
    // address after each failure).
    let t = target(ImapTls::Verify, true, &dovecot.ca_file);
    assert_eq!(
        check(&t, credentials(user, "nope")).unwrap(),
        Verdict::Rejected
    );
    // Without TLS the server will not take the password at all.
    let err = check(
        &target(ImapTls::None, false, &dovecot.ca_file),
        credentials(user, password),
    )
    .unwrap_err();
    assert!(err.to_string().contains("LOGINDISABLED"), "{err}");
    // verify with another CA: no password is sent to an unverified server.
    let other = mailgate_tests::tls::TestPki::new(&["127.0.0.2"]);
    let other_ca = dovecot.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other.ca_pem).unwrap();
    let err = check(
        &target(ImapTls::Verify, true, &other_ca),
        credentials(user, password),
    )
    .unwrap_err();
    assert!(matches!(err, BackendError::Tls(_)), "{err}");
    assert!(err.to_string().contains("not trusted"), "{err}");
}
