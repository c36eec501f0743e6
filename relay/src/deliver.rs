//! One delivery request: take a kept connection to the next hop or pick
//! the servers and open sessions until one takes the mail transaction, and
//! give every recipient a result and a log line.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailgate_ipc::envelope::{BodyType, Micros, now_micros};
use mailgate_ipc::protocol::delivery::{Outcome, RecipientResult, Request};
use tokio::net::TcpStream;

use crate::cache::ConnectionCache;
use crate::client::{self, Connection, Message, Xforward};
use crate::lmtp_unix;
use crate::nexthop::{self, Nexthop};
use crate::settings::{Protocol, Settings};
use crate::status::{Status, Timeline, log_recipient};
use crate::tls::{OpenError, StartTls};
use mailgate_config::ClientLevel;

/// A connection kept for the next delivery to its next hop.
pub struct Idle {
    connection: Connection<TcpStream>,
    /// The `relay=` label of its server.
    relay: String,
}

pub type Cache = ConnectionCache<Idle>;

impl Idle {
    /// Ends the session with QUIT.
    pub async fn quit(mut self) {
        self.connection.quit().await;
    }
}

/// Ends a connection that is not kept, without holding up a delivery.
pub fn close(idle: Idle) {
    tokio::spawn(idle.quit());
}

/// Delivers one request. `file` is the queue file that came with it, if
/// any; `handoff` is when relay received the request.
pub async fn deliver(
    request: &Request,
    file: Option<Arc<File>>,
    settings: &Settings,
    cache: &Cache,
    handoff: Micros,
) -> Vec<RecipientResult> {
    let mut timeline = Timeline {
        arrival: request.arrival,
        active_since: request.active_since,
        handoff,
        setup_done: None,
    };
    let (relay, statuses) = match request.transport.as_str() {
        // Postfix's error(8), retry(8) and discard(8): the next hop is the
        // text to report.
        "error" => (
            "none".to_string(),
            vec![pseudo(&request.nexthop, '5'); request.recipients.len()],
        ),
        "retry" => (
            "none".to_string(),
            vec![pseudo(&request.nexthop, '4'); request.recipients.len()],
        ),
        "discard" => {
            let reason = match request.nexthop.trim() {
                "" => "discarded",
                text => text,
            };
            (
                "none".to_string(),
                vec![Status::sent("2.0.0", reason); request.recipients.len()],
            )
        }
        _ => match file {
            Some(file) => {
                let delivery = smtp(request, file, settings, cache, &mut timeline);
                match tokio::time::timeout(settings.deadline, delivery).await {
                    Ok(done) => done,
                    // Whatever was in flight is dropped (its connection
                    // closed); the recipients are tried again later. At
                    // worst one that a server had just accepted is
                    // delivered twice, never lost.
                    Err(_) => (
                        "none".to_string(),
                        vec![
                            Status::deferred(
                                "4.4.7",
                                format!(
                                    "delivery not completed within smtp_delivery_time_limit ({}s)",
                                    settings.deadline.as_secs()
                                )
                            );
                            request.recipients.len()
                        ],
                    ),
                }
            }
            None => (
                "none".to_string(),
                vec![
                    Status::deferred(
                        "4.3.0",
                        "internal error: the request came without its queue file"
                    );
                    request.recipients.len()
                ],
            ),
        },
    };
    let now = now_micros();
    request
        .recipients
        .iter()
        .zip(statuses)
        .map(|(recipient, status)| {
            log_recipient(
                &request.queue_id,
                &recipient.address,
                &relay,
                &timeline,
                now,
                &status,
            );
            status.into_result(recipient.index)
        })
        .collect()
}

/// The status an error or retry transport reports: its text, with the
/// enhanced status code it may start with (`5.1.1 User unknown`).
pub(crate) fn pseudo(text: &str, class: char) -> Status {
    let text = text.trim();
    let (dsn, reason) = match text.split_once(' ') {
        Some((code, rest)) if mailgate_config::status::class(code) == Some(class) => {
            (code.to_string(), rest.trim())
        }
        _ => (format!("{class}.0.0"), text),
    };
    let reason = if reason.is_empty() {
        "delivery failed"
    } else {
        reason
    };
    Status::failed(dsn, reason)
}

/// Whether an address can go inside `<...>` on a command line: no line
/// ends (command injection) and no angle brackets.
pub(crate) fn fits_command(address: &str) -> bool {
    !address
        .bytes()
        .any(|b| b.is_ascii_control() || b == b'<' || b == b'>')
}

/// Delivery over SMTP. Returns the `relay=` label and one status per
/// recipient, in request order.
async fn smtp(
    request: &Request,
    file: Arc<File>,
    settings: &Settings,
    cache: &Cache,
    timeline: &mut Timeline,
) -> (String, Vec<Status>) {
    let count = request.recipients.len();
    let none = |status: Status| ("none".to_string(), vec![status; count]);
    if !fits_command(&request.sender) {
        return none(Status::bounced("5.1.7", "bad sender address syntax"));
    }
    let lmtp = settings.protocol == Protocol::Lmtp;
    // lmtp(8) also reaches a server on a Unix socket (`unix:PATH`).
    let hop = match lmtp
        .then(|| lmtp_unix::socket_path(&request.nexthop))
        .flatten()
    {
        Some(Ok(path)) => Hop::Unix(path),
        Some(Err(reason)) => return none(Status::deferred("4.3.5", reason)),
        None => match parse_nexthop(&request.nexthop, lmtp) {
            Ok(nexthop) => Hop::Inet(nexthop),
            Err(reason) => return none(Status::deferred("4.3.5", reason)),
        },
    };
    let xforward = settings.send_xforward.then(|| xforward_attributes(request));

    // Recipients that cannot be written as a command are refused here;
    // the others go to the server, remembered by their position.
    let mut statuses: Vec<Option<Status>> = request
        .recipients
        .iter()
        .map(|r| {
            (!fits_command(&r.address)).then(|| Status::bounced("5.1.3", "bad address syntax"))
        })
        .collect();
    let sendable: Vec<usize> = (0..count).filter(|i| statuses[*i].is_none()).collect();
    if sendable.is_empty() {
        return ("none".to_string(), statuses.into_iter().flatten().collect());
    }
    let message_for = |indices: &[usize]| Message {
        sender: &request.sender,
        recipients: indices
            .iter()
            .map(|i| request.recipients[*i].address.as_str())
            .collect(),
        eight_bit: request.body_type == Some(BodyType::EightBitMime),
        smtputf8: request.smtputf8,
        content: Arc::clone(&file),
        offset: request.content_offset,
        length: request.content_length,
        line_limit: settings.line_limit,
        queue_id: &request.queue_id,
        xforward: xforward.as_ref(),
    };
    let keep = |connection: Option<Connection<TcpStream>>, relay: &str, born: Instant| {
        if let Some(connection) = connection {
            let idle = Idle {
                connection,
                relay: relay.to_string(),
            };
            if let Some(refused) = cache.put(&request.nexthop, idle, born, Instant::now()) {
                close(refused);
            }
        }
    };

    let mut last = Status::deferred("4.4.1", "no server to connect to");

    let nexthop = match hop {
        Hop::Inet(nexthop) => nexthop,
        Hop::Unix(path) => {
            return match lmtp_unix::deliver(&path, settings, &message_for(&sendable)).await {
                Ok(delivered) => {
                    timeline.setup_done = Some(now_micros());
                    for (i, status) in sendable.iter().zip(delivered) {
                        statuses[*i] = Some(status);
                    }
                    (lmtp_unix::label(settings, &path), fill(statuses, &last))
                }
                Err(status) => {
                    mailgate_log::info!("{}: {}", request.queue_id, status.reason);
                    ("none".to_string(), fill(statuses, &status))
                }
            };
        }
    };

    // A kept connection needs no lookup and no setup: Postfix logs c=0
    // for it. One the server closed while it was idle fails its RSET
    // before anything is sent, and the next (or a new one) is used.
    while let Some((idle, born)) = cache.take(&request.nexthop, Instant::now()) {
        let setup_done = now_micros();
        if let Ok(delivered) = idle
            .connection
            .send_mail(&message_for(&sendable), true)
            .await
        {
            timeline.setup_done = Some(setup_done);
            for (i, status) in sendable.iter().zip(delivered.statuses) {
                statuses[*i] = Some(status);
            }
            keep(delivered.connection, &idle.relay, born);
            return (idle.relay, fill(statuses, &last));
        }
    }

    // The TLS policy is looked up before any connection: a destination
    // whose policy cannot be used gets nothing, in clear or otherwise.
    let policy = match settings.tls.policy(&request.nexthop, &nexthop.host) {
        Ok(policy) => policy,
        Err(reason) => {
            mailgate_log::warning!("{}: {reason}", request.queue_id);
            return none(Status::deferred("4.7.5", reason));
        }
    };
    let targets = match nexthop::resolve(&nexthop, &settings.dns, &settings.addresses).await {
        Ok(targets) => targets,
        Err(status) => return none(status),
    };
    let mut relay = "none".to_string();
    // Postfix's smtp_mx_session_limit: sessions that got past the greeting
    // and EHLO (and STARTTLS) count; connect and handshake failures do
    // not. As in Postfix, a recipient that gets a temporary failure from a
    // server that is not the last one allowed is kept for the next server.
    let mut sessions = 0;
    let mut remaining = sendable;
    for (n, target) in targets.iter().enumerate() {
        if settings.session_limit != 0 && sessions >= settings.session_limit {
            break;
        }
        // lmtp_tls_* are not parameters mailgate knows (`check` refuses
        // them): LMTP goes in clear, as with Postfix's default.
        let mut use_tls = !lmtp && policy.level > ClientLevel::None;
        // At most twice: again without TLS when the handshake failed at a
        // level that does not require it.
        loop {
            let stream = match connect(target.addr, settings.timeouts.connect).await {
                Ok(stream) => stream,
                Err(e) => {
                    let reason = format!("connect to {}: {}", target.label(), describe(&e));
                    mailgate_log::info!("{reason}");
                    last = Status::deferred("4.4.1", reason);
                    break;
                }
            };
            relay = target.label();
            let born = Instant::now();
            let starttls = if use_tls {
                match settings.tls.handshake(&policy, &target.name, &nexthop.host) {
                    Ok(handshake) => Some(StartTls {
                        level: policy.level,
                        handshake,
                        peer: target.label(),
                        timeout: settings.starttls_timeout,
                    }),
                    Err(reason) => {
                        let status = Status::deferred("4.7.5", format!("TLS setup: {reason}"));
                        return none(status);
                    }
                }
            } else {
                None
            };
            let opened = client::open(
                stream,
                target.host_label(),
                &settings.helo_name,
                settings.timeouts,
                starttls.as_ref(),
                lmtp,
                settings.debug_peers.matches(target.addr.ip(), &target.name),
            )
            .await;
            let setup_done = now_micros();
            // A new connection always starts its transaction, so send_mail
            // fails only after a failed setup; both mean: try the next server.
            let sent = match opened {
                Ok(connection) => {
                    sessions += 1;
                    // Postfix's smtp_proto.c: an unused STARTTLS opportunity.
                    if settings.note_starttls_offer
                        && policy.level == ClientLevel::None
                        && connection.offers_starttls()
                    {
                        mailgate_log::info!("Host offered STARTTLS: [{}]", target.name);
                    }
                    connection.send_mail(&message_for(&remaining), false).await
                }
                Err(OpenError::TlsHandshake(status)) => {
                    mailgate_log::info!("{}: {}", request.queue_id, status.reason);
                    last = status;
                    use_tls = false;
                    continue;
                }
                Err(OpenError::Refused(status)) => Err(status),
            };
            match sent {
                Ok(delivered) => {
                    timeline.setup_done = Some(setup_done);
                    let final_server = n + 1 == targets.len()
                        || (settings.session_limit != 0 && sessions >= settings.session_limit);
                    let mut again = Vec::new();
                    for (i, status) in remaining.iter().zip(delivered.statuses) {
                        if status.outcome == Outcome::Deferred && !final_server {
                            mailgate_log::info!("{}: {}", request.queue_id, status.reason);
                            last = status;
                            again.push(*i);
                        } else {
                            statuses[*i] = Some(status);
                        }
                    }
                    keep(delivered.connection, &relay, born);
                    if again.is_empty() {
                        return (relay, fill(statuses, &last));
                    }
                    remaining = again;
                    break;
                }
                Err(status) => {
                    mailgate_log::info!("{}: {}", request.queue_id, status.reason);
                    last = status;
                    break;
                }
            }
        }
    }
    (relay, fill(statuses, &last))
}

/// Where a delivery goes: a host (or its MX hosts) over TCP, or, for
/// lmtp(8), a Unix socket.
enum Hop {
    Inet(Nexthop),
    Unix(std::path::PathBuf),
}

/// The next hop as smtp(8) or lmtp(8) reads it: lmtp(8) takes
/// `inet:host:port` too, never looks up MX records and defaults to port 24.
pub(crate) fn parse_nexthop(text: &str, lmtp: bool) -> Result<Nexthop, String> {
    if !lmtp {
        return Nexthop::parse(text).map_err(|e| e.to_string());
    }
    let text = text.trim();
    let text = text.strip_prefix("inet:").unwrap_or(text);
    let mut nexthop = Nexthop::parse(text).map_err(|e| e.to_string())?;
    let explicit_port = text
        .rsplit_once(']')
        .map_or(text, |(_, after)| after)
        .contains(':');
    if !explicit_port {
        nexthop.port = LMTP_PORT;
    }
    nexthop.mx = false;
    Ok(nexthop)
}

const LMTP_PORT: u16 = 24;

/// What XFORWARD tells the next hop about the message's client, as
/// Postfix's smtp(8) fills it from the queue file: mail submitted locally
/// has no client and SOURCE=LOCAL.
fn xforward_attributes(request: &Request) -> Xforward {
    let client = &request.client;
    let ident = request.queue_id.clone();
    if client.protocol == "local" {
        return Xforward {
            ident,
            source: "LOCAL".into(),
            ..Xforward::default()
        };
    }
    let proto = if client.protocol.starts_with("ESMTP") {
        "ESMTP"
    } else {
        "SMTP"
    };
    Xforward {
        name: client.name.clone(),
        addr: client.addr.clone(),
        port: match client.port {
            0 => String::new(),
            port => port.to_string(),
        },
        proto: proto.into(),
        helo: client.helo.clone(),
        ident,
        source: "REMOTE".into(),
    }
}

fn fill(statuses: Vec<Option<Status>>, rest: &Status) -> Vec<Status> {
    statuses
        .into_iter()
        .map(|s| s.unwrap_or_else(|| rest.clone()))
        .collect()
}

pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    // Commands are written whole; waiting to coalesce them only adds delay.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The system's words for a connect error, as Postfix shows them
/// ("Connection refused"), without Rust's "(os error 111)".
pub(crate) fn describe(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        return "Connection timed out".to_string();
    }
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_ipc::protocol::delivery::{Outcome, RecipientRequest};
    use std::io::Write;

    #[test]
    fn lmtp_next_hops() {
        let hop = |text: &str| parse_nexthop(text, true);
        let one = hop("[127.0.0.1]:10024").unwrap();
        assert_eq!(
            (one.host.as_str(), one.port, one.mx),
            ("127.0.0.1", 10024, false)
        );
        assert_eq!(hop("inet:[::1]:2003").unwrap().port, 2003);
        let bare = hop("lmtp.example.com").unwrap();
        assert_eq!((bare.port, bare.mx), (24, false));
        assert_eq!(hop("[10.0.0.1]").unwrap().port, 24);
        // smtp(8) keeps its own defaults.
        let smtp = parse_nexthop("example.com", false).unwrap();
        assert_eq!((smtp.port, smtp.mx), (25, true));
    }

    #[test]
    fn xforward_attributes_of_remote_and_local_clients() {
        let mut request = request("smtp-amavis", "[127.0.0.1]:10024", &["a@x"]);
        request.client = mailgate_ipc::envelope::ClientInfo {
            name: "unknown".into(),
            addr: "192.0.2.9".into(),
            port: 40000,
            helo: "client.example".into(),
            protocol: "ESMTPSA".into(),
        };
        let x = xforward_attributes(&request);
        assert_eq!(x.addr, "192.0.2.9");
        assert_eq!(x.port, "40000");
        assert_eq!(x.proto, "ESMTP");
        assert_eq!(x.source, "REMOTE");
        assert_eq!(x.ident, request.queue_id);
        request.client = mailgate_ipc::submit::local_client();
        let x = xforward_attributes(&request);
        assert_eq!((x.source.as_str(), x.addr.as_str()), ("LOCAL", ""));
    }

    #[test]
    fn error_and_retry_texts() {
        assert_eq!(
            pseudo("5.1.1 User unknown in virtual table", '5'),
            Status::bounced("5.1.1", "User unknown in virtual table")
        );
        assert_eq!(
            pseudo("local mail delivery is disabled", '5'),
            Status::bounced("5.0.0", "local mail delivery is disabled")
        );
        // A code of the wrong class is text, not a status.
        assert_eq!(
            pseudo("4.1.1 odd", '5'),
            Status::bounced("5.0.0", "4.1.1 odd")
        );
        assert_eq!(
            pseudo("", '4'),
            Status::deferred("4.0.0", "delivery failed")
        );
    }

    #[test]
    fn addresses_that_cannot_be_commands() {
        assert!(fits_command("bob@example.com"));
        assert!(fits_command(""));
        assert!(!fits_command("bob@example.com>\r\nRCPT TO:<x"));
        assert!(!fits_command("a\nb"));
    }

    #[test]
    fn connect_errors_read_like_postfix() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(describe(&refused), "Connection refused");
        assert_eq!(
            describe(&io::Error::from(io::ErrorKind::TimedOut)),
            "Connection timed out"
        );
    }

    fn cache() -> Cache {
        Cache::new(crate::cache::Limits::postfix(10))
    }

    fn request(transport: &str, nexthop: &str, recipients: &[&str]) -> Request {
        Request {
            queue_id: "4ABC123".into(),
            transport: transport.into(),
            nexthop: nexthop.into(),
            sender: "alice@example.org".into(),
            recipients: recipients
                .iter()
                .enumerate()
                .map(|(i, a)| RecipientRequest {
                    index: i * 2,
                    address: a.to_string(),
                    original: None,
                })
                .collect(),
            body_type: None,
            smtputf8: false,
            content_offset: 0,
            content_length: 0,
            arrival: now_micros(),
            active_since: now_micros(),
            client: mailgate_ipc::submit::local_client(),
        }
    }

    #[tokio::test]
    async fn pseudo_transports() {
        let settings = crate::tests::settings();
        let results = deliver(
            &request("error", "5.1.1 no such user", &["a@x", "b@x"]),
            None,
            &settings,
            &cache(),
            now_micros(),
        )
        .await;
        assert_eq!(results.len(), 2);
        assert_eq!(results[1].index, 2);
        assert_eq!(results[1].outcome, Outcome::Bounced);
        assert_eq!(results[1].dsn, "5.1.1");
        let results = deliver(
            &request("discard", "", &["a@x"]),
            None,
            &settings,
            &cache(),
            now_micros(),
        )
        .await;
        assert_eq!(
            (results[0].outcome, results[0].reason.as_str()),
            (Outcome::Sent, "discarded")
        );
        let results = deliver(
            &request("smtp", "[127.0.0.1]", &["a@x"]),
            None,
            &settings,
            &cache(),
            now_micros(),
        )
        .await;
        assert_eq!(results[0].outcome, Outcome::Deferred);
    }

    #[tokio::test]
    async fn next_mx_is_tried_and_content_arrives() {
        let dns_port = crate::tests::dns_server().await;
        let resolver = mailgate_dns::resolver(&[format!("127.0.0.1:{dns_port}")]).unwrap();
        let settings = Settings {
            dns: crate::nexthop::Dns::Resolver(Box::new(resolver)),
            ..crate::tests::settings()
        };
        let (smtp_port, server) = crate::tests::smtp_sink(1).await;
        let mut file = tempfile::tempfile().unwrap();
        let content = b"Subject: x\r\n\r\n.leading dot\r\nend\r\n";
        file.write_all(b"HEAD").unwrap();
        file.write_all(content).unwrap();
        let mut request = request(
            "smtp",
            &format!("fallback.test:{smtp_port}"),
            &["bob@example.com", "bad\r\nRCPT TO:<x>@example.com"],
        );
        request.content_offset = 4;
        request.content_length = content.len() as u64;
        request.body_type = Some(BodyType::EightBitMime);
        let cache = cache();
        let results = deliver(
            &request,
            Some(Arc::new(file)),
            &settings,
            &cache,
            now_micros(),
        )
        .await;
        // The connection was kept; relay closes it when it stops.
        for idle in cache.drain() {
            idle.quit().await;
        }
        assert_eq!(results[0].outcome, Outcome::Sent, "{:?}", results[0]);
        assert_eq!(results[0].reason, "250 2.0.0 Ok: queued as SINK1");
        assert_eq!(
            (results[1].outcome, results[1].dsn.as_str()),
            (Outcome::Bounced, "5.1.3")
        );
        let transcript = &server.await.unwrap()[0];
        assert_eq!(
            transcript,
            &format!(
                "EHLO gw.example.org\r\n\
                 MAIL FROM:<alice@example.org> BODY=8BITMIME SIZE={}\r\n\
                 RCPT TO:<bob@example.com>\r\n\
                 DATA\r\n\
                 Subject: x\r\n\r\n..leading dot\r\nend\r\n.\r\n\
                 QUIT\r\n",
                content.len()
            )
        );
    }

    #[tokio::test]
    async fn refused_connection_defers_with_postfix_text() {
        // A port nobody listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = crate::tests::settings();
        let file = Arc::new(tempfile::tempfile().unwrap());
        let nexthop = format!("[127.0.0.1]:{port}");
        let results = deliver(
            &request("smtp", &nexthop, &["a@x"]),
            Some(file),
            &settings,
            &cache(),
            now_micros(),
        )
        .await;
        assert_eq!(results[0].outcome, Outcome::Deferred);
        assert_eq!(results[0].dsn, "4.4.1");
        assert_eq!(
            results[0].reason,
            format!("connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused")
        );
    }

    fn content_file() -> (Arc<File>, u64) {
        let mut file = tempfile::tempfile().unwrap();
        let content = b"Subject: x\r\n\r\nhi\r\n";
        file.write_all(content).unwrap();
        (Arc::new(file), content.len() as u64)
    }

    #[tokio::test]
    async fn kept_connection_carries_the_next_message() {
        let settings = crate::tests::settings();
        let (port, server) = crate::tests::smtp_sink(1).await;
        let cache = cache();
        let (file, length) = content_file();
        let mut request = request("smtp", &format!("[127.0.0.1]:{port}"), &["a@x"]);
        request.content_length = length;
        for _ in 0..3 {
            let results = deliver(
                &request,
                Some(Arc::clone(&file)),
                &settings,
                &cache,
                now_micros(),
            )
            .await;
            assert_eq!(results[0].outcome, Outcome::Sent, "{:?}", results[0]);
        }
        for idle in cache.drain() {
            idle.quit().await;
        }
        // One session: one EHLO, RSET before each later transaction.
        let transcript = &server.await.unwrap()[0];
        assert_eq!(transcript.matches("EHLO").count(), 1);
        assert_eq!(transcript.matches("RSET\r\nMAIL FROM").count(), 2);
        assert!(transcript.ends_with(".\r\nQUIT\r\n"), "{transcript}");
    }

    #[tokio::test]
    async fn connection_closed_while_idle_is_replaced() {
        let settings = crate::tests::settings();
        let (port, server) = crate::tests::smtp_sink_hanging_up(2, 1).await;
        let cache = cache();
        let (file, length) = content_file();
        let mut request = request("smtp", &format!("[127.0.0.1]:{port}"), &["a@x"]);
        request.content_length = length;
        for _ in 0..2 {
            let results = deliver(
                &request,
                Some(Arc::clone(&file)),
                &settings,
                &cache,
                now_micros(),
            )
            .await;
            assert_eq!(results[0].outcome, Outcome::Sent, "{:?}", results[0]);
        }
        let transcripts = server.await.unwrap();
        // The second message went on a new connection after the RSET on
        // the dead one failed.
        assert_eq!(transcripts.len(), 2);
        assert!(transcripts[1].starts_with("EHLO"));
        assert!(transcripts[1].contains("Subject: x"));
    }
}
