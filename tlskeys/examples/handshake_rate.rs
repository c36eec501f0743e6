//! TLS handshakes per second with the key split (the signature made by a
//! real tlskeys process over its Unix socket) and without it (the same key
//! in the server's own memory), in one run, for ECDSA P-256 and RSA 2048.
//! Run by `bench/tls-handshake`; not part of the tests.
//!
//! Usage: handshake_rate TLSKEYS_BINARY [HANDSHAKES] [CONCURRENCY]

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailgate_config::{KeySource, Side};
use mailgate_tls::protocol::Source;
use mailgate_tls::remote::KeyClient;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .get(1)
        .expect("usage: handshake_rate TLSKEYS_BINARY [N] [C]");
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let concurrency: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(8);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let ec = rcgen::KeyPair::generate().expect("key");
    let rsa_pem = String::from_utf8(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl")
            .stdout,
    )
    .expect("PEM");
    let rsa = rcgen::KeyPair::from_pem(&rsa_pem).expect("RSA key");
    let mut pairs = Vec::new();
    for (name, key) in [("ecdsa", &ec), ("rsa", &rsa)] {
        let cert = rcgen::CertificateParams::new(vec!["bench.example".into()])
            .expect("params")
            .self_signed(key)
            .expect("cert");
        let path = dir.path().join(format!("{name}.pem"));
        std::fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).expect("write");
        pairs.push((name, path, cert.der().clone()));
    }
    std::fs::write(
        dir.path().join("main.cf"),
        format!(
            "smtpd_tls_chain_files = {}, {}\ntlskeys_directory = {}/empty\ntlskeys_owner = {}\n",
            pairs[0].1.display(),
            pairs[1].1.display(),
            dir.path().display(),
            std::env::var("TLSKEYS_OWNER").unwrap_or_else(|_| "mailgate-tls".into()),
        ),
    )
    .expect("main.cf");
    std::fs::write(
        dir.path().join("master.cf"),
        "tlskeys unix - - y - - tlskeys\n",
    )
    .expect("master.cf");
    let socket = dir.path().join("tlskeys.sock");
    let (mut child, _watch) = spawn_tlskeys(binary, dir.path(), &socket);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = KeyClient::new(socket, Duration::from_secs(10));
    println!("handshakes: {n}, concurrent clients: {concurrency}, TLS 1.3, no resumption");
    println!("| key | in the server | via tlskeys | ratio |");
    println!("|---|---|---|---|");
    for (i, (name, path, cert)) in pairs.iter().enumerate() {
        let source = KeySource {
            key: path.clone(),
            cert: path.clone(),
            chain_file: true,
        };
        let _ = i;
        let keys = client
            .certified_keys(vec![Source::new(Side::Server, &source)])
            .expect("tlskeys");
        let remote = keys[0].0.clone();
        let local_key = PrivateKeyDer::from_pem_file(path).expect("key");
        let local = Arc::new(CertifiedKey::new(
            vec![cert.clone()],
            rustls::crypto::ring::sign::any_supported_type(&local_key).expect("key"),
        ));
        // Alternated, three rounds each, the median kept: the first runs
        // warm the machine up, and the order must not favour either.
        let (mut locals, mut remotes) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            locals.push(runtime.block_on(rate(local.clone(), cert.clone(), n, concurrency)));
            remotes.push(runtime.block_on(rate(remote.clone(), cert.clone(), n, concurrency)));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (local_rate, remote_rate) = (median(&mut locals), median(&mut remotes));
        println!(
            "| {name} | {local_rate:.0}/s | {remote_rate:.0}/s | {:.2}x |",
            remote_rate / local_rate
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Handshakes per second against a server that signs with `key`.
async fn rate(key: Arc<CertifiedKey>, cert: CertificateDer<'static>, n: usize, c: usize) -> f64 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(key)));
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"220\r\n").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    let started = Instant::now();
    let per_client = n / c;
    let mut clients = Vec::new();
    for _ in 0..c {
        let connector = connector.clone();
        clients.push(tokio::spawn(async move {
            for _ in 0..per_client {
                let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let name = rustls::pki_types::ServerName::try_from("bench.example").expect("name");
                let mut tls = connector.connect(name, tcp).await.expect("handshake");
                let mut buf = [0u8; 5];
                let _ = tls.read_exact(&mut buf).await;
            }
        }));
    }
    for client in clients {
        client.await.expect("client");
    }
    let rate = (per_client * c) as f64 / started.elapsed().as_secs_f64();
    server.abort();
    rate
}

/// Starts tlskeys as the master would: its listening socket on descriptor
/// 3, the master-watch pipe on 4.
fn spawn_tlskeys(binary: &str, config_dir: &Path, socket: &Path) -> (std::process::Child, OwnedFd) {
    let listener = std::os::unix::net::UnixListener::bind(socket).expect("bind");
    let (watch_read, watch_write) = nix::unistd::pipe().expect("pipe");
    // Above 4, so that neither dup2 below lands on the other's source (as
    // the master does).
    let high = |fd: &dyn AsRawFd| {
        nix::fcntl::fcntl(
            // SAFETY: the descriptor is open for the whole call.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) },
            nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10),
        )
        .expect("dup")
    };
    let (listen_fd, watch_fd) = (high(&listener), high(&watch_read));
    let mut command = Command::new(binary);
    command
        .arg("-c")
        .arg(config_dir)
        .args(["-n", "tlskeys", "-t", "unix", "-m", "100"]);
    // As in production (master.cf chroot column y), when there is a root
    // to leave.
    if nix::unistd::geteuid().is_root() {
        command.arg("-r");
    }
    command.arg("--").stdout(Stdio::null());
    // SAFETY: between fork and exec the closure only calls dup2 (async-
    // signal-safe) on descriptors this process owns.
    unsafe {
        command.pre_exec(move || {
            for (from, to) in [(listen_fd, 3), (watch_fd, 4)] {
                if libc::dup2(from, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command.spawn().expect("tlskeys");
    drop(watch_read);
    (child, watch_write)
}
