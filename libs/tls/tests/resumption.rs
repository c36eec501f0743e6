//! A resumed TLS session carries no certificate in its handshake, so a
//! certificate check would not run during it, and relay's Findings would
//! say nothing (Postfix keeps the verification status in its session cache
//! for this). relay's handshakes are never resumed: each has a verifier of
//! its own and rustls resumes a session only under the verifier that
//! checked it. This holds that fact, so that a change that makes sessions
//! resume also has to keep the verdict. Handshakes run in memory between
//! relay's client setup and a rustls server that issues session tickets.

use std::io::{Read, Write};
use std::sync::Arc;

use mailgate_config::MainConfig;
use mailgate_tls::client::{ClientTls, refusal};
use mailgate_tls::summary::Trust;
use rustls::HandshakeKind;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Moves what one side has to send into the other side.
macro_rules! transfer {
    ($from:expr, $to:expr) => {{
        let mut buf = Vec::new();
        while $from.wants_write() {
            $from.write_tls(&mut buf).unwrap();
        }
        let mut slice = &buf[..];
        while !slice.is_empty() {
            $to.read_tls(&mut slice).unwrap();
            $to.process_new_packets().unwrap();
        }
    }};
}

/// One TLS session in memory: the handshake, then a line from the server
/// (so that its session tickets reach the client). Returns how the
/// client's handshake went.
fn session(
    client_config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
    server: &Arc<rustls::ServerConfig>,
) -> Option<HandshakeKind> {
    let mut client = rustls::ClientConnection::new(client_config, name).unwrap();
    let mut srv = rustls::ServerConnection::new(Arc::clone(server)).unwrap();
    while client.is_handshaking() || srv.is_handshaking() {
        transfer!(client, srv);
        transfer!(srv, client);
    }
    srv.writer().write_all(b"220 ok\r\n").unwrap();
    transfer!(srv, client);
    let mut line = [0u8; 8];
    client.reader().read_exact(&mut line).unwrap();
    client.handshake_kind()
}

#[test]
fn every_relay_handshake_checks_the_certificate() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mx.example.com".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let server = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let config = MainConfig::parse(
        "smtp_tls_CAfile = ca.pem\nsmtp_tls_security_level = verify\n",
        &dir.path().join("main.cf"),
        dir.path(),
        &[],
    )
    .unwrap();
    let tls = ClientTls::load(&config).unwrap();
    let policy = tls.policy("example.com", "example.com").unwrap();
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let handshake = tls
            .handshake(&policy, "mx.example.com", "example.com")
            .unwrap();
        let kind = session(
            handshake.config.clone(),
            handshake.server_name.clone(),
            &server,
        );
        let findings = handshake.findings.lock().unwrap().clone();
        kinds.push(kind);
        assert_eq!(findings.trust, Some(Trust::Verified), "{kind:?}");
        assert_eq!(refusal(policy.level, &findings), None);
    }
    // The server does resume sessions: a client that keeps one config (one
    // verifier) gets its second handshake resumed.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let shared = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let mut control = Vec::new();
    for _ in 0..2 {
        let name = rustls::pki_types::ServerName::try_from("mx.example.com").unwrap();
        control.push(session(Arc::clone(&shared), name, &server));
    }
    assert_eq!(
        control,
        [Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)]
    );
    assert_eq!(
        kinds,
        [Some(HandshakeKind::Full), Some(HandshakeKind::Full)],
        "a resumed handshake skips the certificate check: its verdict must be kept"
    );
}
