//! STARTTLS in the SMTP client: the stream that is plain until the server
//! agrees to TLS, and the step between the first EHLO and the second.
//!
//! A delivery whose level requires TLS never sends a command after
//! STARTTLS in clear: a server that does not offer it, refuses it, or
//! fails the handshake gets the session ended and the recipients deferred
//! (Postfix's texts), and a certificate that is not good enough for the
//! level is refused after the handshake, before MAIL FROM.

use std::sync::Arc;
use std::time::Duration;

use mailgate_config::ClientLevel;
use mailgate_tls::client::{Findings, Handshake, refusal};
use mailgate_tls::stream::{ClientStream, Stream as TlsOrPlain};
use mailgate_tls::summary::{Details, Trust};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use crate::status::Status;

/// A connection's byte stream: plain, or TLS after STARTTLS.
pub type Stream<S> = ClientStream<S>;

/// What the client is to do about TLS on one connection.
pub struct StartTls {
    pub level: ClientLevel,
    pub handshake: Handshake,
    /// `host[ip]:port`, for the log line.
    pub peer: String,
    pub timeout: Duration,
}

/// Why a connection could not be set up.
#[derive(Debug)]
pub enum OpenError {
    /// Try another server (or defer).
    Refused(Status),
    /// The TLS handshake failed at a level that does not require TLS:
    /// the same server may be tried again without it, as Postfix does.
    TlsHandshake(Status),
}

impl OpenError {
    #[cfg(test)]
    pub fn status(self) -> Status {
        match self {
            OpenError::Refused(s) | OpenError::TlsHandshake(s) => s,
        }
    }
}

/// The handshake on a connection whose server answered STARTTLS with 220.
/// `plain` is the socket with nothing buffered: whatever the server sent
/// after its 220 was dropped with the plaintext reader (a man in the middle
/// cannot inject replies that would be read as coming over TLS).
///
/// Ok carries the TLS stream and, when the certificate is not good enough
/// for the level, the deferral to report after ending the session.
pub async fn handshake<S>(
    plain: S,
    tls: &StartTls,
    host: &str,
) -> Result<(Stream<S>, Option<Status>), OpenError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connector = TlsConnector::from(Arc::clone(&tls.handshake.config));
    let name = tls.handshake.server_name.clone();
    let failed = |why: String| {
        mailgate_log::info!("SSL_connect error to {}: {why}", tls.peer);
        let status = Status::deferred("4.7.5", "Cannot start TLS: handshake failure");
        if tls.level.requires_tls() {
            OpenError::Refused(status)
        } else {
            OpenError::TlsHandshake(Status::deferred(
                "4.7.5",
                format!("{} with host {host}", status.reason),
            ))
        }
    };
    let stream = match tokio::time::timeout(tls.timeout, connector.connect(name, plain)).await {
        Err(_) => return Err(failed("timed out".into())),
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Ok(Ok(stream)) => stream,
    };
    let findings: Findings = tls
        .handshake
        .findings
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let trust = findings.trust.unwrap_or(Trust::Untrusted);
    if let Some(mut details) = Details::of(stream.get_ref().1) {
        details.server_signature = findings.server_signature.clone();
        mailgate_log::info!("{}", details.log_line(trust, "to", &tls.peer));
    }
    let refused = refusal(tls.level, &findings).map(|reason| {
        mailgate_log::info!(
            "server certificate verification failed for {}: {}",
            tls.peer,
            findings.problem.as_deref().unwrap_or("no certificate")
        );
        Status::deferred("4.7.5", reason)
    });
    Ok((TlsOrPlain::Tls(Box::new(stream)), refused))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use mailgate_ipc::envelope::now_micros;
    use mailgate_ipc::protocol::delivery::{Outcome, RecipientRequest, RecipientResult, Request};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    use crate::deliver::{Cache, deliver};
    use crate::settings::Settings;
    use crate::tests::{StartTlsMode, TlsTranscript, tls_sink};

    /// A CA and a server certificate it signed for `name`.
    struct Pki {
        dir: tempfile::TempDir,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    }

    fn pki(name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir,
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    fn settings(pki: &Pki, main_cf: &str) -> Settings {
        let text = format!(
            "smtp_tls_CAfile = {}\n{main_cf}",
            pki.dir.path().join("ca.pem").display()
        );
        let config = mailgate_config::MainConfig::parse(
            &text,
            &pki.dir.path().join("main.cf"),
            pki.dir.path(),
            &[],
        )
        .unwrap();
        Settings {
            tls: mailgate_tls::client::ClientTls::load(&config).unwrap(),
            ..crate::tests::settings()
        }
    }

    async fn send(settings: &Settings, port: u16) -> RecipientResult {
        let mut file = tempfile::tempfile().unwrap();
        let content = b"Subject: t\r\n\r\nsecret\r\n";
        file.write_all(content).unwrap();
        let request = Request {
            queue_id: "4TLS".into(),
            transport: "smtp".into(),
            nexthop: format!("[127.0.0.1]:{port}"),
            sender: "a@example.org".into(),
            recipients: vec![RecipientRequest {
                index: 0,
                address: "b@example.com".into(),
                original: None,
            }],
            body_type: None,
            smtputf8: false,
            content_offset: 0,
            content_length: content.len() as u64,
            arrival: now_micros(),
            active_since: now_micros(),
            client: mailgate_ipc::submit::local_client(),
        };
        let cache = Cache::new(crate::cache::Limits::postfix(4));
        let mut results = deliver(
            &request,
            Some(Arc::new(file)),
            settings,
            &cache,
            now_micros(),
        )
        .await;
        for idle in cache.drain() {
            idle.quit().await;
        }
        results.remove(0)
    }

    async fn run(
        mode: StartTlsMode,
        cert_name: &str,
        main_cf: &str,
        sessions: usize,
    ) -> (RecipientResult, Vec<TlsTranscript>) {
        let pki = pki(cert_name);
        let (port, server) = tls_sink(sessions, mode, pki.chain.clone(), pki.key.clone_key()).await;
        let result = send(&settings(&pki, main_cf), port).await;
        (result, server.await.unwrap())
    }

    #[tokio::test]
    async fn encrypt_sends_only_over_tls() {
        let (result, sessions) = run(
            StartTlsMode::Offer,
            "127.0.0.1",
            "smtp_tls_security_level = encrypt\n",
            1,
        )
        .await;
        assert_eq!(result.outcome, Outcome::Sent, "{result:?}");
        let session = &sessions[0];
        assert_eq!(session.plain, "EHLO gw.example.org\r\nSTARTTLS\r\n");
        assert!(
            session
                .tls
                .starts_with("EHLO gw.example.org\r\nMAIL FROM:<a@example.org>")
        );
        assert!(session.tls.contains("secret"));
    }

    #[tokio::test]
    async fn encrypt_without_starttls_defers_and_sends_nothing() {
        let (result, sessions) = run(
            StartTlsMode::NotOffered,
            "127.0.0.1",
            "smtp_tls_security_level = encrypt\n",
            1,
        )
        .await;
        assert_eq!(result.outcome, Outcome::Deferred);
        assert_eq!(result.dsn, "4.7.4");
        assert!(
            result
                .reason
                .starts_with("TLS is required, but was not offered by host "),
            "{result:?}"
        );
        assert_eq!(sessions[0].plain, "EHLO gw.example.org\r\nQUIT\r\n");
    }

    #[tokio::test]
    async fn verify_refuses_a_certificate_for_another_name() {
        let (result, sessions) = run(
            StartTlsMode::Offer,
            "other.example.net",
            "smtp_tls_security_level = verify\n",
            1,
        )
        .await;
        assert_eq!(result.outcome, Outcome::Deferred);
        assert_eq!(result.reason, "Server certificate not verified");
        // The session ended right after the handshake: no envelope, no content.
        assert_eq!(sessions[0].tls, "QUIT\r\n");
        // The right name (an address literal next hop: the IP is the name).
        let (result, _) = run(
            StartTlsMode::Offer,
            "127.0.0.1",
            "smtp_tls_security_level = verify\n",
            1,
        )
        .await;
        assert_eq!(result.outcome, Outcome::Sent, "{result:?}");
    }

    #[tokio::test]
    async fn verify_refuses_an_untrusted_certificate() {
        let pki_server = pki("127.0.0.1");
        let other = pki("127.0.0.1");
        let (port, server) = tls_sink(
            1,
            StartTlsMode::Offer,
            pki_server.chain.clone(),
            pki_server.key.clone_key(),
        )
        .await;
        // The CA file is another CA's.
        let result = send(
            &settings(&other, "smtp_tls_security_level = verify\n"),
            port,
        )
        .await;
        assert_eq!(result.reason, "Server certificate not trusted");
        assert_eq!(server.await.unwrap()[0].tls, "QUIT\r\n");
    }

    #[tokio::test]
    async fn may_falls_back_to_plaintext_after_a_failed_handshake() {
        let (result, sessions) = run(
            StartTlsMode::BrokenHandshake,
            "127.0.0.1",
            "smtp_tls_security_level = may\n",
            2,
        )
        .await;
        assert_eq!(result.outcome, Outcome::Sent, "{result:?}");
        assert_eq!(sessions[0].plain, "EHLO gw.example.org\r\nSTARTTLS\r\n");
        assert!(sessions[1].plain.contains("MAIL FROM"));
        // encrypt never falls back.
        let (result, sessions) = run(
            StartTlsMode::BrokenHandshake,
            "127.0.0.1",
            "smtp_tls_security_level = encrypt\n",
            1,
        )
        .await;
        assert_eq!(result.outcome, Outcome::Deferred);
        assert_eq!(result.reason, "Cannot start TLS: handshake failure");
        assert!(!sessions[0].plain.contains("MAIL"));
    }

    #[tokio::test]
    async fn a_policy_table_raises_the_level_per_destination() {
        let pki = pki("127.0.0.1");
        let (port, server) = tls_sink(
            1,
            StartTlsMode::NotOffered,
            pki.chain.clone(),
            pki.key.clone_key(),
        )
        .await;
        let settings = settings(
            &pki,
            &format!("smtp_tls_policy_maps = inline:{{ [127.0.0.1]:{port}=encrypt }}\n"),
        );
        let result = send(&settings, port).await;
        assert_eq!(result.dsn, "4.7.4");
        server.await.unwrap();
    }
}
