//! TLS test material: certificates made for the run (rcgen, and openssl
//! for RSA keys) and a STARTTLS-speaking SMTP server built with rustls that
//! records each message and whether it came over TLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA and a server certificate it signed.
pub struct TestPki {
    pub ca_pem: String,
    /// The server certificate, then the CA (a chain as servers send it).
    pub chain_pem: String,
    pub key_pem: String,
}

impl TestPki {
    /// An ECDSA P-256 key and certificate for `names` (DNS names or IP
    /// addresses).
    pub fn new(names: &[&str]) -> TestPki {
        TestPki::with_key(names, rcgen::KeyPair::generate().expect("key"))
    }

    /// An RSA 2048 key (made by openssl: ring cannot generate RSA keys).
    pub fn rsa(names: &[&str]) -> TestPki {
        let out = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl (Debian package openssl) must be installed");
        assert!(out.status.success(), "openssl genpkey failed");
        let pem = String::from_utf8(out.stdout).expect("PEM");
        let key = rcgen::KeyPair::from_pem(&pem).expect("RSA key");
        TestPki::with_key(names, key)
    }

    fn with_key(names: &[&str], key: rcgen::KeyPair) -> TestPki {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // Each CA its own name, so that a client holding several finds the
        // right one.
        static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("mailgate test CA {}-{serial}-{nanos}", std::process::id()),
        );
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mailgate test server");
        let cert = params.signed_by(&key, &issuer).expect("certificate");
        TestPki {
            chain_pem: format!("{}{}", cert.pem(), ca.pem()),
            ca_pem: ca.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `key.pem`, `cert.pem` (the chain) and `ca.pem` into `dir`.
    pub fn write(&self, dir: &Path, prefix: &str) {
        std::fs::write(dir.join(format!("{prefix}key.pem")), &self.key_pem).expect("key");
        std::fs::write(dir.join(format!("{prefix}cert.pem")), &self.chain_pem).expect("cert");
        std::fs::write(dir.join(format!("{prefix}ca.pem")), &self.ca_pem).expect("ca");
    }

    /// The private key's DER bytes: what must never be found in smtpd's
    /// memory.
    pub fn key_der(&self) -> Vec<u8> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .expect("key")
            .secret_der()
            .to_vec()
    }

    pub fn server_config(&self) -> rustls::ServerConfig {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("chain");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key");
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config")
    }
}

/// One message the TLS sink accepted.
#[derive(Clone, Debug)]
pub struct SinkMessage {
    /// Whether the transaction ran over TLS.
    pub tls: bool,
    pub mail_from: String,
    pub data: String,
}

/// A STARTTLS-speaking SMTP server on 127.0.0.1 (rustls, the given
/// certificate), or one that does not offer STARTTLS.
pub struct TlsSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<SinkMessage>>>,
    /// Every session's commands, for checking what went out in clear.
    pub transcripts: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

impl TlsSink {
    pub fn start(pki: &TestPki, offer_starttls: bool) -> TlsSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let config = Arc::new(pki.server_config());
        let sink = TlsSink {
            port,
            messages: Arc::default(),
            transcripts: Arc::default(),
            stop: Arc::default(),
        };
        let (messages, transcripts, stop) = (
            Arc::clone(&sink.messages),
            Arc::clone(&sink.transcripts),
            Arc::clone(&sink.stop),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (config, messages, transcripts) = (
                            Arc::clone(&config),
                            Arc::clone(&messages),
                            Arc::clone(&transcripts),
                        );
                        std::thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(crate::PATIENCE));
                            let transcript = session(stream, config, offer_starttls, &messages);
                            transcripts.lock().expect("lock").push(transcript);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        sink
    }

    pub fn messages(&self) -> Vec<SinkMessage> {
        self.messages.lock().expect("lock").clone()
    }

    pub fn wait_for_message(&self, marker: &str) -> SinkMessage {
        crate::wait_for(
            &format!("a message with {marker:?} at the TLS sink"),
            || {
                self.messages()
                    .into_iter()
                    .find(|m| m.data.contains(marker))
            },
        )
    }
}

impl Drop for TlsSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One SMTP session; returns its commands (`[TLS]` marks the switch).
fn session(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    offer_starttls: bool,
    messages: &Mutex<Vec<SinkMessage>>,
) -> String {
    let mut transcript = String::new();
    let mut plain = Some(stream.try_clone().expect("clone"));
    let mut conn: BufReader<Box<dyn Conn>> = BufReader::new(Box::new(stream));
    let mut tls = false;
    let mut mail_from = String::new();
    let send = |conn: &mut BufReader<Box<dyn Conn>>, text: &str| {
        let _ = conn.get_mut().write_all(text.as_bytes());
        let _ = conn.get_mut().flush();
    };
    send(&mut conn, "220 tls-sink ESMTP\r\n");
    loop {
        let mut line = String::new();
        match conn.read_line(&mut line) {
            Ok(0) | Err(_) => return transcript,
            Ok(_) => {}
        }
        transcript.push_str(&line);
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            let starttls = if offer_starttls && !tls {
                "250-STARTTLS\r\n"
            } else {
                ""
            };
            send(
                &mut conn,
                &format!("250-tls-sink\r\n{starttls}250 8BITMIME\r\n"),
            );
        } else if upper.starts_with("STARTTLS") && offer_starttls && !tls {
            send(&mut conn, "220 2.0.0 Ready to start TLS\r\n");
            let Some(socket) = plain.take() else {
                return transcript;
            };
            let Ok(server) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                return transcript;
            };
            // Whatever was pipelined after STARTTLS is dropped with the
            // plaintext reader.
            conn = BufReader::new(Box::new(rustls::StreamOwned::new(server, socket)));
            tls = true;
            transcript.push_str("[TLS]\r\n");
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = line[10..].trim().to_string();
            send(&mut conn, "250 2.1.0 Ok\r\n");
        } else if upper.starts_with("DATA") {
            send(&mut conn, "354 End data with <CR><LF>.<CR><LF>\r\n");
            let mut data = String::new();
            loop {
                let mut text = String::new();
                match conn.read_line(&mut text) {
                    Ok(0) | Err(_) => return transcript,
                    Ok(_) => {}
                }
                if text == ".\r\n" {
                    break;
                }
                data.push_str(&text);
            }
            messages.lock().expect("lock").push(SinkMessage {
                tls,
                mail_from: mail_from.clone(),
                data,
            });
            send(&mut conn, "250 2.0.0 Ok: queued\r\n");
        } else if upper.starts_with("QUIT") {
            send(&mut conn, "221 2.0.0 Bye\r\n");
            return transcript;
        } else if upper.starts_with("STARTTLS") {
            send(&mut conn, "502 5.5.1 Error: command not implemented\r\n");
        } else {
            send(&mut conn, "250 2.0.0 Ok\r\n");
        }
    }
}

/// An SMTP client speaking over TLS (after STARTTLS, or from the first
/// byte), trusting the given CA for the name `server_name`.
pub struct TlsClient {
    reader: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

impl TlsClient {
    /// The handshake on a connected socket (after 220 to STARTTLS, or at
    /// once for SMTPS).
    pub fn handshake(socket: TcpStream, ca_pem: &str, server_name: &str) -> TlsClient {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("CA")).expect("CA");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let mut socket = socket;
        while conn.is_handshaking() {
            conn.complete_io(&mut socket).expect("TLS handshake");
        }
        TlsClient {
            reader: BufReader::new(rustls::StreamOwned::new(conn, socket)),
        }
    }

    /// The negotiated protocol ("TLSv1_3").
    pub fn protocol(&self) -> String {
        format!(
            "{:?}",
            self.reader
                .get_ref()
                .conn
                .protocol_version()
                .expect("version")
        )
    }

    pub fn send(&mut self, line: &str) -> String {
        let stream = self.reader.get_mut();
        let _ = stream.write_all(format!("{line}\r\n").as_bytes());
        let _ = stream.flush();
        self.reply()
    }

    /// One reply, lines joined with '\n'; empty at end of file.
    pub fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return lines.join("\n"),
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }
}

/// Reads a line-oriented SMTP reply from a plain socket (before STARTTLS),
/// byte by byte so that nothing after it is consumed.
pub fn plain_reply(socket: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = socket.read(&mut byte) {
        out.push(byte[0]);
        if out.ends_with(b"\n") {
            let text = String::from_utf8_lossy(&out).into_owned();
            let last = text.lines().last().unwrap_or("");
            if last.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).trim_end().to_string()
}

/// Whether `needle` occurs in the readable memory of process `pid`
/// (/proc/PID/maps and /proc/PID/mem; needs root or the same user).
pub fn memory_contains(pid: i32, needle: &[u8]) -> bool {
    use std::io::{Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("mem");
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with('r') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        let len = end.saturating_sub(start) as usize;
        if len == 0 || len > 1 << 30 {
            continue;
        }
        let mut buf = vec![0u8; len];
        if mem.seek(SeekFrom::Start(start)).is_err() {
            continue;
        }
        let mut got = 0;
        while got < len {
            match mem.read(&mut buf[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        if buf[..got].windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}

/// Connects from the loopback address `from`, says EHLO and STARTTLS, and
/// returns the client over TLS (trusting `ca_pem` for gw.example.com).
pub fn starttls_from(port: u16, from: &str, ca_pem: &str) -> TlsClient {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let local: std::net::IpAddr = from.parse().expect("address");
    socket
        .bind(&std::net::SocketAddr::new(local, 0).into())
        .expect("bind");
    socket
        .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .expect("connect");
    let mut socket: TcpStream = socket.into();
    socket
        .set_read_timeout(Some(crate::PATIENCE))
        .expect("timeout");
    assert!(plain_reply(&mut socket).starts_with("220"));
    socket
        .write_all(b"EHLO client.example.org\r\n")
        .expect("write");
    let ehlo = plain_reply(&mut socket);
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    socket.write_all(b"STARTTLS\r\n").expect("write");
    assert!(plain_reply(&mut socket).starts_with("220"));
    TlsClient::handshake(socket, ca_pem, "gw.example.com")
}
