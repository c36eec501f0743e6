//! relay: the SMTP delivery agent, as Postfix's smtp(8).
//!
//! qmgr hands it one message (the queue file descriptor and an envelope
//! slice) for one next hop; relay finds the servers, runs the SMTP dialogue
//! and answers with a result for each recipient, logging each as Postfix
//! does. The same binary serves master.cf's `smtp` and `relay` services,
//! and, speaking LMTP (RFC 2033), the `lmtp` command.
//!
//! A delivery, in reading order: serve.rs (the request) -> deliver.rs
//! (transport, servers, results) -> cache.rs (connections kept for reuse,
//! as Postfix's scache) -> nexthop.rs (MX and address lookup) -> client.rs
//! (the SMTP session, using reply.rs and content.rs) -> status.rs (the
//! result and its log line).

mod cache;
mod client;
mod content;
mod deliver;
mod lmtp_unix;
mod nexthop;
mod probe;
mod reply;
mod serve;
mod settings;
mod status;
mod tls;

use std::process::ExitCode;

use mailgate_sandbox::{Worker, die};

use crate::serve::serve;
use crate::settings::{Protocol, Settings};

fn main() -> ExitCode {
    let mut worker = Worker::start("relay");
    // Everything from files (main.cf, /etc/resolv.conf) is read before the
    // chroot takes them out of reach.
    let protocol = Protocol::of_command(&worker.handoff.command);
    let settings = Settings::load(&worker.config, protocol).unwrap_or_else(|e| die(e));
    let listener = worker.take_listener();
    let mut worker = worker.enter_sandbox(&mailgate_sandbox::profiles::RELAY);
    let shutdown = worker.shutdown();
    let runtime = worker.runtime();
    runtime.block_on(serve(
        listener,
        settings,
        worker.handoff.sessions,
        worker.callers(),
        shutdown.wait(),
    ))
}

#[cfg(test)]
mod tests {
    //! Helpers shared by the tests of several modules: settings without a
    //! main.cf, and a tiny SMTP server on a real TCP socket.

    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use crate::nexthop::Dns;
    use crate::settings::{Settings, Timeouts};

    pub fn settings() -> Settings {
        let t = Duration::from_secs(5);
        let empty = mailgate_config::MainConfig::parse(
            "",
            std::path::Path::new("/nonexistent/main.cf"),
            std::path::Path::new("/nonexistent"),
            &[],
        )
        .unwrap();
        Settings {
            protocol: crate::settings::Protocol::Smtp,
            send_xforward: false,
            note_starttls_offer: false,
            debug_peers: mailgate_config::DebugPeers::default(),
            tls: mailgate_tls::client::ClientTls::load(&empty).unwrap(),
            starttls_timeout: t,
            helo_name: "gw.example.org".into(),
            myhostname: "gw.example.org".into(),
            timeouts: Timeouts {
                connect: t,
                helo: t,
                mail: t,
                rcpt: t,
                data_init: t,
                data_xfer: t,
                data_done: t,
                quit: t,
            },
            dns: Dns::Native(mailgate_dns::hosts::Hosts::default()),
            addresses: crate::nexthop::AddressPolicy {
                limit: 5,
                own: Vec::new(),
                ..crate::nexthop::AddressPolicy::default()
            },
            session_limit: 2,
            deadline: Duration::from_secs(60),
            line_limit: 998,
        }
    }

    /// An SMTP server on 127.0.0.1 that accepts `sessions` sessions, takes
    /// every command (PIPELINING offered) and returns what each client
    /// wrote.
    pub async fn smtp_sink(sessions: usize) -> (u16, JoinHandle<Vec<String>>) {
        smtp_sink_hanging_up(sessions, usize::MAX).await
    }

    /// The same, but the server hangs up on each connection after
    /// `transactions` messages, as a server closing an idle connection.
    pub async fn smtp_sink_hanging_up(
        sessions: usize,
        transactions: usize,
    ) -> (u16, JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let mut transcripts = Vec::new();
            for _ in 0..sessions {
                let (stream, _) = listener.accept().await.unwrap();
                transcripts.push(sink_session(stream, transactions).await);
            }
            transcripts
        });
        (port, handle)
    }

    async fn sink_session(stream: tokio::net::TcpStream, mut transactions: usize) -> String {
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut transcript = String::new();
        write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
        let mut in_data = false;
        let mut line = String::new();
        loop {
            line.clear();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                break;
            }
            transcript.push_str(&line);
            let reply: &[u8] = if in_data {
                if line != ".\r\n" {
                    continue;
                }
                in_data = false;
                transactions -= 1;
                if transactions == 0 {
                    write
                        .write_all(b"250 2.0.0 Ok: queued as SINK1\r\n")
                        .await
                        .unwrap();
                    break;
                }
                b"250 2.0.0 Ok: queued as SINK1\r\n"
            } else {
                let upper = line.to_ascii_uppercase();
                if upper.starts_with("EHLO") {
                    b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000\r\n"
                } else if upper.starts_with("DATA") {
                    in_data = true;
                    b"354 End data with <CR><LF>.<CR><LF>\r\n"
                } else if upper.starts_with("QUIT") {
                    write.write_all(b"221 2.0.0 Bye\r\n").await.unwrap();
                    break;
                } else {
                    b"250 2.1.0 Ok\r\n"
                }
            };
            write.write_all(reply).await.unwrap();
        }
        transcript
    }

    /// How the TLS test server treats STARTTLS.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum StartTlsMode {
        /// Offered, and a real handshake follows.
        Offer,
        /// Not in the EHLO reply; refused if sent anyway.
        NotOffered,
        /// Offered and answered 220, then the server talks nonsense.
        BrokenHandshake,
    }

    /// What one session at the TLS test server carried: the commands before
    /// STARTTLS, and those after it (over TLS).
    #[derive(Debug, Default)]
    pub struct TlsTranscript {
        pub plain: String,
        pub tls: String,
    }

    /// An SMTP server on 127.0.0.1 with STARTTLS (rustls, the given
    /// certificate chain and key): accepts `sessions` sessions, one message
    /// each at most.
    pub async fn tls_sink(
        sessions: usize,
        mode: StartTlsMode,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> (u16, JoinHandle<Vec<TlsTranscript>>) {
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..sessions {
                let (stream, _) = listener.accept().await.unwrap();
                let mut transcript = TlsTranscript::default();
                let mut plain = BufReader::new(stream);
                plain
                    .get_mut()
                    .write_all(b"220 sink ESMTP\r\n")
                    .await
                    .unwrap();
                let ehlo = if mode == StartTlsMode::NotOffered {
                    "250-sink\r\n250 PIPELINING\r\n"
                } else {
                    "250-sink\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
                };
                let upgrade =
                    tls_sink_dialogue(&mut plain, &mut transcript.plain, ehlo, mode).await;
                if upgrade {
                    if mode == StartTlsMode::BrokenHandshake {
                        let _ = plain.get_mut().write_all(b"this is not TLS\r\n").await;
                    } else if let Ok(tls) = acceptor.accept(plain.into_inner()).await {
                        let mut tls = BufReader::new(tls);
                        tls_sink_dialogue(
                            &mut tls,
                            &mut transcript.tls,
                            "250-sink\r\n250 PIPELINING\r\n",
                            StartTlsMode::NotOffered,
                        )
                        .await;
                    }
                }
                out.push(transcript);
            }
            out
        });
        (port, handle)
    }

    /// Serves commands until QUIT or end of file; true when the client
    /// asked for STARTTLS and got 220.
    async fn tls_sink_dialogue<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        stream: &mut BufReader<S>,
        transcript: &mut String,
        ehlo: &str,
        mode: StartTlsMode,
    ) -> bool {
        let mut in_data = false;
        let mut line = String::new();
        loop {
            line.clear();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return false;
            }
            transcript.push_str(&line);
            let upper = line.to_ascii_uppercase();
            let reply: &str = if in_data {
                if line != ".\r\n" {
                    continue;
                }
                in_data = false;
                "250 2.0.0 Ok: queued as TLS1\r\n"
            } else if upper.starts_with("EHLO") {
                ehlo
            } else if upper.starts_with("STARTTLS") {
                if mode == StartTlsMode::NotOffered {
                    "502 5.5.1 Error: command not implemented\r\n"
                } else {
                    let _ = stream
                        .get_mut()
                        .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                        .await;
                    return true;
                }
            } else if upper.starts_with("DATA") {
                in_data = true;
                "354 End data with <CR><LF>.<CR><LF>\r\n"
            } else if upper.starts_with("QUIT") {
                let _ = stream.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                let _ = stream.get_mut().shutdown().await;
                return false;
            } else {
                "250 2.1.0 Ok\r\n"
            };
            if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
                return false;
            }
        }
    }

    /// A tiny authoritative DNS server on a real UDP socket:
    /// `mx.test` has three MX hosts (one without an address), `plain.test`
    /// has no MX but an address, `null.test` has a null MX, `broken.test`
    /// fails (SERVFAIL), `fallback.test` prefers an MX host where nothing
    /// listens over 127.0.0.1, and anything else does not exist.
    pub async fn dns_server() -> u16 {
        use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
        use hickory_resolver::proto::rr::rdata::{A, MX};
        use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let name = |s: &str| Name::from_ascii(s).unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut answer = Message::response(query.metadata.id, OpCode::Query);
                answer.metadata.recursion_desired = query.metadata.recursion_desired;
                answer.metadata.recursion_available = true;
                answer.metadata.authoritative = true;
                let Some(q) = query.queries.first().cloned() else {
                    continue;
                };
                let owner = q.name().to_ascii().to_ascii_lowercase();
                let mx = |pref, host: &str| RData::MX(MX::new(pref, name(host)));
                let a = |ip: [u8; 4]| RData::A(A(ip.into()));
                let records: Option<Vec<RData>> = match (owner.as_str(), q.query_type()) {
                    ("mx.test.", RecordType::MX) => Some(vec![
                        mx(20, "c.mx.test."),
                        mx(10, "b.mx.test."),
                        mx(10, "a.mx.test."),
                    ]),
                    ("a.mx.test.", RecordType::A) => Some(vec![a([127, 0, 0, 2])]),
                    ("b.mx.test.", RecordType::A) => Some(vec![a([127, 0, 0, 3])]),
                    ("plain.test.", RecordType::A) => Some(vec![a([127, 0, 0, 4])]),
                    ("fallback.test.", RecordType::MX) => {
                        Some(vec![mx(20, "live.test."), mx(10, "dead.test.")])
                    }
                    // Nothing listens on 127.0.0.2; the in-test SMTP server
                    // binds 127.0.0.1 only.
                    ("dead.test.", RecordType::A) => Some(vec![a([127, 0, 0, 2])]),
                    ("live.test.", RecordType::A) => Some(vec![a([127, 0, 0, 1])]),
                    ("null.test.", RecordType::MX) => Some(vec![mx(0, ".")]),
                    (
                        "mx.test." | "a.mx.test." | "b.mx.test." | "plain.test." | "null.test."
                        | "fallback.test." | "dead.test." | "live.test.",
                        _,
                    ) => Some(Vec::new()),
                    ("broken.test.", _) => {
                        answer.metadata.response_code = ResponseCode::ServFail;
                        Some(Vec::new())
                    }
                    _ => None,
                };
                match records {
                    Some(records) => {
                        for data in records {
                            answer.add_answer(Record::from_rdata(q.name().clone(), 60, data));
                        }
                    }
                    None => answer.metadata.response_code = ResponseCode::NXDomain,
                }
                answer.add_query(q);
                if let Ok(bytes) = answer.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        port
    }
}
