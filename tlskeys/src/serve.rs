//! The accept loop: each connection's peer is checked against the
//! profile's callers (smtpd's and relay's uids), then served one request at
//! a time until it closes.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mailgate_ipc::peer::Callers;
use mailgate_ipc::{Channel, IpcError};
use mailgate_log::{fatal, warning};
use mailgate_tls::protocol::{Reply, Request};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::store::Store;

/// Which callers may ask for what: TLS handshake signatures for smtpd and
/// relay, DKIM signatures for cleanup (mail_owner). The profile's callers
/// decide who may connect at all.
#[derive(Clone, Debug, Default)]
pub struct Roles {
    pub tls: Vec<u32>,
    pub dkim: u32,
}

/// A connection that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(300);
/// How long requests in progress may take when the service stops.
const STOP_GRACE: Duration = Duration::from_secs(1);

pub async fn serve(
    listener: OwnedFd,
    store: Store,
    callers: Arc<Callers>,
    roles: Roles,
    limit: usize,
    shutdown: impl Future<Output = ()>,
) -> ExitCode {
    let listener = match mailgate_ipc::server::unix_listener(listener) {
        Ok(listener) => listener,
        Err(e) => {
            fatal!("cannot use the inherited listening socket: {e}");
            return ExitCode::FAILURE;
        }
    };
    run(listener, Arc::new(store), &callers, &roles, limit, shutdown).await;
    ExitCode::SUCCESS
}

async fn run(
    listener: UnixListener,
    store: Arc<Store>,
    callers: &Callers,
    roles: &Roles,
    limit: usize,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limit.max(1)));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warning!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let uid = match callers.check(&stream) {
            Ok(peer) => peer.uid,
            Err(refusal) => {
                warning!(
                    "refusing a connection to service {}: {refusal}",
                    callers.service()
                );
                continue;
            }
        };
        let may = May {
            tls: roles.tls.contains(&uid),
            dkim: roles.dkim == uid,
        };
        let store = Arc::clone(&store);
        connections.spawn(async move {
            connection(stream, &store, may).await;
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    // Idle connections from smtpd and relay stay open for reuse; a request
    // in progress gets a moment to finish, then the rest are closed (their
    // owners reconnect to the successor).
    let _ = tokio::time::timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.shutdown().await;
}

/// What one connection's peer may ask.
#[derive(Clone, Copy)]
struct May {
    tls: bool,
    dkim: bool,
}

async fn connection(stream: UnixStream, store: &Store, may: May) {
    let mut channel = Channel::new(stream);
    loop {
        let request = match tokio::time::timeout(IDLE, channel.recv::<Request>()).await {
            Err(_) | Ok(Err(IpcError::Closed)) => return,
            Ok(Err(e)) => {
                warning!("request: {e}");
                return;
            }
            Ok(Ok((request, _fds))) => request,
        };
        let dkim = matches!(
            request,
            Request::DkimAlgorithm { .. } | Request::DkimSign { .. } | Request::ArcSign { .. }
        );
        let reply = if dkim && !may.dkim {
            warning!(
                "refusing a DKIM or ARC request from a process that is not cleanup (mail_owner)"
            );
            Reply::Refused("only cleanup may ask for DKIM signatures and ARC seals".into())
        } else if !dkim && !may.tls {
            warning!("refusing a TLS request from a process that is neither smtpd nor relay");
            Reply::Refused("only smtpd and relay may ask for TLS keys".into())
        } else {
            store.answer(request)
        };
        if let Err(e) = channel.send(&reply, &[]).await {
            warning!("cannot answer: {e}");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_config::{KeySource, Side as ConfigSide};
    use mailgate_tls::protocol::{Side, Source};
    use mailgate_tls::remote::KeyClient;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rustls_handshake_signed_by_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example.com".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let path = dir.path().join("pair.pem");
        std::fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();
        let source = KeySource {
            key: path.clone(),
            cert: path,
            chain_file: false,
        };
        let store =
            Store::load(&[(ConfigSide::Server, source.clone())], Default::default()).unwrap();
        let socket = dir.path().join("tlskeys");
        let listener = UnixListener::bind(&socket).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let callers = Callers::same_user("tlskeys");
            // This process may ask for TLS signatures, not for DKIM ones.
            let me = nix::unistd::geteuid().as_raw();
            let roles = Roles {
                tls: vec![me],
                dkim: me + 1,
            };
            run(listener, Arc::new(store), &callers, &roles, 4, async {
                let _ = stopped.await;
            })
            .await
        });

        let client = KeyClient::new(socket, Duration::from_secs(5));
        let keys = {
            let client = Arc::clone(&client);
            let source = Source::new(ConfigSide::Server, &source);
            assert_eq!(source.side, Side::Server);
            client.certified_keys(vec![source]).unwrap()
        };
        assert_eq!(keys.len(), 1);
        // A real handshake over a real TCP socket, the server's key in the
        // store: the client verifies the signature against the certificate.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let certified = keys[0].0.clone();
        let accept = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Single(certified)));
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            let mut tls = acceptor.accept(tcp).await.unwrap();
            use tokio::io::AsyncWriteExt;
            tls.write_all(b"hello over tls").await.unwrap();
            tls.shutdown().await.unwrap();
        });
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("mx.example.com").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let mut text = String::new();
        use tokio::io::AsyncReadExt;
        tls.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "hello over tls");
        accept.await.unwrap();
        let reply = client
            .call(&Request::DkimAlgorithm { key: "k".into() })
            .unwrap();
        assert!(
            matches!(&reply, Reply::Refused(why) if why.contains("only cleanup")),
            "{reply:?}"
        );
        // Nor may it have an ARC set sealed.
        let reply = client
            .call(&Request::ArcSign {
                key: "k".into(),
                data: b"arc-seal:i=1; s=s; d=example.com; cv=none; b=;".to_vec(),
            })
            .unwrap();
        assert!(
            matches!(&reply, Reply::Refused(why) if why.contains("only cleanup")),
            "{reply:?}"
        );
        stop.send(()).unwrap();
        server.await.unwrap();
    }

    #[derive(Debug)]
    struct Single(Arc<rustls::sign::CertifiedKey>);

    impl rustls::server::ResolvesServerCert for Single {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }
}
