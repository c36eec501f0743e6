//! An address probe for the verify service, as Postfix's smtp(8) runs one
//! in verify mode: the route's next hop is resolved (MX or address) and
//! its TLS policy applied exactly as for a delivery, then the first server
//! that takes a session gets MAIL FROM and RCPT TO, then RSET and QUIT. No
//! message is sent, nothing is queued, and the result goes back to verify
//! only. One log line per probe, in Postfix's words for verify mode:
//!
//! `probe: to=<bob@example.com>, relay=mx[192.0.2.1]:25, delay=0.05, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)`
//!
//! The error, retry and discard transports answer as Postfix's error(8)
//! and discard(8) do in verify mode: from the next-hop text, with no
//! connection at all.

use std::time::Instant;

use mailgate_config::ClientLevel;
use mailgate_ipc::protocol::delivery::{Outcome, Probe, ProbeReply};

use crate::client;
use crate::deliver::{connect, describe, fits_command, parse_nexthop, pseudo};
use crate::nexthop;
use crate::settings::{Protocol, Settings};
use crate::status::{Status, pretty};
use crate::tls::{OpenError, StartTls};

/// The longest address a probe takes (RFC 5321's path limit is 256
/// octets; Postfix's line_length_limit bounds whole command lines at 2048).
const MAX_ADDRESS: usize = 2048;

/// Runs one probe and logs its result.
pub async fn probe(request: &Probe, settings: &Settings) -> ProbeReply {
    let started = Instant::now();
    let (relay, status) = match request.transport.as_str() {
        "error" => ("none".to_string(), pseudo(&request.nexthop, '5')),
        "retry" => ("none".to_string(), pseudo(&request.nexthop, '4')),
        "discard" => {
            let reason = match request.nexthop.trim() {
                "" => "discarded",
                text => text,
            };
            ("none".to_string(), Status::sent("2.0.0", reason))
        }
        _ => smtp(request, settings).await,
    };
    let word = match status.outcome {
        Outcome::Sent => "deliverable",
        Outcome::Deferred | Outcome::Bounced => "undeliverable",
    };
    mailgate_log::info!(
        "probe: to=<{}>, relay={relay}, delay={}, dsn={}, status={word} ({})",
        printable(&request.recipient),
        pretty(started.elapsed()),
        status.dsn,
        status.reason
    );
    ProbeReply {
        outcome: status.outcome,
        dsn: status.dsn,
        reason: status.reason,
    }
}

/// An address as the log may show it: control characters as '?'.
fn printable(address: &str) -> String {
    address
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The addresses must fit on a command line: no line ends, no brackets,
/// bounded; the recipient not empty.
fn refusal(request: &Probe) -> Option<Status> {
    let fits = |a: &str| a.len() <= MAX_ADDRESS && fits_command(a);
    if !fits(&request.sender) {
        return Some(Status::bounced("5.1.7", "bad sender address syntax"));
    }
    if request.recipient.is_empty() || !fits(&request.recipient) {
        return Some(Status::bounced("5.1.3", "bad address syntax"));
    }
    None
}

/// The probe over SMTP: `relay=` label and the recipient's status.
async fn smtp(request: &Probe, settings: &Settings) -> (String, Status) {
    let none = |status: Status| ("none".to_string(), status);
    if let Some(status) = refusal(request) {
        return none(status);
    }
    // lmtp(8) probes speak LMTP (LHLO, port 24, no MX lookups); over a
    // Unix socket they are not implemented and defer, never pass.
    let lmtp = settings.protocol == Protocol::Lmtp;
    if lmtp && crate::lmtp_unix::socket_path(&request.nexthop).is_some() {
        return none(Status::deferred(
            "4.3.5",
            "address probes over an LMTP Unix socket are not implemented",
        ));
    }
    let nexthop = match parse_nexthop(&request.nexthop, lmtp) {
        Ok(nexthop) => nexthop,
        Err(e) => return none(Status::deferred("4.3.5", e)),
    };
    // The same TLS policy as a delivery to this next hop: a probe that
    // went in clear where mail may not would prove nothing about it.
    let policy = match settings.tls.policy(&request.nexthop, &nexthop.host) {
        Ok(policy) => policy,
        Err(reason) => {
            mailgate_log::warning!("probe: {reason}");
            return none(Status::deferred("4.7.5", reason));
        }
    };
    let targets = match nexthop::resolve(&nexthop, &settings.dns, &settings.addresses).await {
        Ok(targets) => targets,
        Err(status) => return none(status),
    };
    let mut last = Status::deferred("4.4.1", "no server to connect to");
    let mut relay = "none".to_string();
    // As for a delivery: at most smtp_mx_session_limit sessions, and a
    // temporary failure from a server that is not the last one allowed
    // sends the probe on to the next.
    let mut sessions = 0;
    for (n, target) in targets.iter().enumerate() {
        if settings.session_limit != 0 && sessions >= settings.session_limit {
            break;
        }
        let mut use_tls = !lmtp && policy.level > ClientLevel::None;
        // At most twice: again without TLS when the handshake failed at a
        // level that does not require it.
        loop {
            let stream = match connect(target.addr, settings.timeouts.connect).await {
                Ok(stream) => stream,
                Err(e) => {
                    let reason = format!("connect to {}: {}", target.label(), describe(&e));
                    mailgate_log::info!("probe: {reason}");
                    last = Status::deferred("4.4.1", reason);
                    break;
                }
            };
            relay = target.label();
            let starttls = if use_tls {
                match settings.tls.handshake(&policy, &target.name, &nexthop.host) {
                    Ok(handshake) => Some(StartTls {
                        level: policy.level,
                        handshake,
                        peer: target.label(),
                        timeout: settings.starttls_timeout,
                    }),
                    Err(reason) => {
                        return none(Status::deferred("4.7.5", format!("TLS setup: {reason}")));
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
            match opened {
                Ok(connection) => {
                    sessions += 1;
                    // Postfix's smtp_proto.c: an unused STARTTLS opportunity.
                    if settings.note_starttls_offer
                        && policy.level == ClientLevel::None
                        && connection.offers_starttls()
                    {
                        mailgate_log::info!("Host offered STARTTLS: [{}]", target.name);
                    }
                    let status = connection.probe(&request.sender, &request.recipient).await;
                    let final_server = n + 1 == targets.len()
                        || (settings.session_limit != 0 && sessions >= settings.session_limit);
                    if status.outcome == Outcome::Deferred && !final_server {
                        mailgate_log::info!("probe: {}", status.reason);
                        last = status;
                        break;
                    }
                    return (relay, status);
                }
                Err(OpenError::TlsHandshake(status)) => {
                    // Tried again in clear, which decides the outcome.
                    mailgate_log::info!("probe: {}", status.reason);
                    use_tls = false;
                }
                Err(OpenError::Refused(status)) => {
                    mailgate_log::info!("probe: {}", status.reason);
                    last = status;
                    break;
                }
            }
        }
    }
    (relay, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    fn probe_to(nexthop: &str, recipient: &str) -> Probe {
        Probe {
            transport: "smtp".into(),
            nexthop: nexthop.into(),
            sender: "double-bounce@gw.example.org".into(),
            recipient: recipient.into(),
        }
    }

    /// A server that refuses unknown users at RCPT, as a real internal
    /// server does; returns the transcript of its one session.
    async fn server() -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut transcript = String::new();
            write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
            let mut line = String::new();
            loop {
                line.clear();
                if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                transcript.push_str(&line);
                let upper = line.to_ascii_uppercase();
                let reply: &[u8] = if upper.starts_with("EHLO") {
                    b"250-sink\r\n250 PIPELINING\r\n"
                } else if upper.starts_with("RCPT TO:<BOB@") {
                    b"250 2.1.5 Ok\r\n"
                } else if upper.starts_with("RCPT") {
                    b"550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown\r\n"
                } else if upper.starts_with("QUIT") {
                    write.write_all(b"221 2.0.0 Bye\r\n").await.unwrap();
                    break;
                } else {
                    b"250 2.0.0 Ok\r\n"
                };
                write.write_all(reply).await.unwrap();
            }
            transcript
        });
        (port, handle)
    }

    #[tokio::test]
    async fn a_known_user_is_deliverable_and_nothing_is_sent() {
        let (port, server) = server().await;
        let settings = crate::tests::settings();
        let reply = probe(
            &probe_to(&format!("[127.0.0.1]:{port}"), "bob@example.com"),
            &settings,
        )
        .await;
        assert_eq!(
            reply,
            ProbeReply {
                outcome: Outcome::Sent,
                dsn: "2.1.5".into(),
                reason: "250 2.1.5 Ok".into()
            }
        );
        assert_eq!(
            server.await.unwrap(),
            "EHLO gw.example.org\r\n\
             MAIL FROM:<double-bounce@gw.example.org>\r\n\
             RCPT TO:<bob@example.com>\r\n\
             RSET\r\n\
             QUIT\r\n"
        );
    }

    #[tokio::test]
    async fn a_refused_user_bounces_with_the_servers_words() {
        let (port, server) = server().await;
        let settings = crate::tests::settings();
        let mut request = probe_to(&format!("[127.0.0.1]:{port}"), "nobody@example.com");
        request.sender = String::new();
        let reply = probe(&request, &settings).await;
        assert_eq!(reply.outcome, Outcome::Bounced);
        assert_eq!(reply.dsn, "5.1.1");
        assert_eq!(
            reply.reason,
            "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <nobody@example.com>: \
             Recipient address rejected: User unknown (in reply to RCPT TO command)"
        );
        let transcript = server.await.unwrap();
        assert!(transcript.contains("MAIL FROM:<>\r\n"), "{transcript}");
        assert!(transcript.ends_with("RSET\r\nQUIT\r\n"), "{transcript}");
    }

    #[tokio::test]
    async fn no_server_defers_and_pseudo_transports_need_none() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = crate::tests::settings();
        let reply = probe(
            &probe_to(&format!("[127.0.0.1]:{port}"), "bob@example.com"),
            &settings,
        )
        .await;
        assert_eq!(reply.outcome, Outcome::Deferred);
        assert_eq!(
            reply.reason,
            format!("connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused")
        );
        let mut error = probe_to("5.1.1 no such user here", "bob@example.com");
        error.transport = "error".into();
        let reply = probe(&error, &settings).await;
        assert_eq!(
            (reply.outcome, reply.dsn.as_str(), reply.reason.as_str()),
            (Outcome::Bounced, "5.1.1", "no such user here")
        );
        let mut discard = probe_to("", "bob@example.com");
        discard.transport = "discard".into();
        assert_eq!(probe(&discard, &settings).await.outcome, Outcome::Sent);
    }

    #[tokio::test]
    async fn addresses_that_would_break_the_dialogue_are_refused_unsent() {
        let settings = crate::tests::settings();
        let injected = probe_to("[127.0.0.1]:9", "a@b>\r\nDATA\r\n<c@d");
        let reply = probe(&injected, &settings).await;
        assert_eq!(
            (reply.outcome, reply.dsn.as_str()),
            (Outcome::Bounced, "5.1.3")
        );
        let mut sender = probe_to("[127.0.0.1]:9", "bob@example.com");
        sender.sender = "x\n".into();
        let reply = probe(&sender, &settings).await;
        assert_eq!(
            (reply.outcome, reply.dsn.as_str()),
            (Outcome::Bounced, "5.1.7")
        );
        let empty = probe_to("[127.0.0.1]:9", "");
        assert_eq!(probe(&empty, &settings).await.dsn, "5.1.3");
    }
}
