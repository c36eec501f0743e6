//! The service loop: accept qmgr's connections on the inherited socket and
//! answer each delivery request with one result per recipient, and the
//! verify service's address probes with the next hop's answer (probe.rs).
//!
//! qmgr may open several connections and send several requests on each, one
//! after another. Only qmgr's uid may connect (SO_PEERCRED, the profile's
//! callers), and each request is checked before it is used: a valid
//! envelope slice and exactly one descriptor, a regular file holding the
//! content range it names. At most `maxproc` deliveries run at once
//! (master.cf's maxproc column). On shutdown, no new connection or request
//! is taken, the deliveries in progress finish and are answered, then the
//! process exits.

use std::fs::File;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mailgate_ipc::envelope::now_micros;
use mailgate_ipc::peer::Callers;
use mailgate_ipc::protocol::delivery::{AgentRequest, Reply, Request};
use mailgate_ipc::validate::Validate;
use mailgate_ipc::{Channel, IpcError};
use mailgate_log::{fatal, warning};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::cache::Limits;
use crate::deliver::{Cache, close, deliver};
use crate::settings::Settings;

/// How long kept connections may take to answer QUIT when relay stops.
const QUIT_AT_STOP: Duration = Duration::from_secs(2);

pub async fn serve(
    listener: OwnedFd,
    settings: Settings,
    maxproc: u32,
    callers: Arc<Callers>,
    shutdown: impl Future<Output = ()>,
) -> ExitCode {
    let listener = match mailgate_ipc::server::unix_listener(listener) {
        Ok(listener) => listener,
        Err(e) => {
            fatal!("cannot use the inherited listening socket: {e}");
            return ExitCode::FAILURE;
        }
    };
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(maxproc.max(1) as usize));
    // No more idle connections than deliveries may run at once.
    let cache = Arc::new(Cache::new(Limits::postfix(maxproc.max(1) as usize)));
    let sweeper = tokio::spawn(sweep(Arc::clone(&cache)));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let peer = match callers.check(&stream) {
                        Ok(peer) => peer,
                        Err(refusal) => {
                            warning!(
                                "refusing a connection to service {}: {refusal}",
                                callers.service()
                            );
                            continue;
                        }
                    };
                    connections.spawn(connection(
                        Channel::accepted(stream, peer),
                        Arc::clone(&settings),
                        Arc::clone(&slots),
                        Arc::clone(&cache),
                        stopped.clone(),
                    ));
                }
                Err(e) => {
                    // Out of descriptors, most likely: give connections in
                    // progress a moment to finish instead of spinning.
                    warning!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    warning!("connection task failed: {e}");
                }
            }
        }
    }
    drop(listener);
    // Nobody may still hold the receiver; then nothing waits for the stop.
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    sweeper.abort();
    let mut quits = JoinSet::new();
    for idle in cache.drain() {
        quits.spawn(idle.quit());
    }
    // A server slow to answer QUIT must not hold up the stop; the rest are
    // closed without their answer when `quits` is dropped.
    let _ = tokio::time::timeout(QUIT_AT_STOP, async {
        while quits.join_next().await.is_some() {}
    })
    .await;
    ExitCode::SUCCESS
}

/// Closes the connections that stayed idle for the time limit, as
/// Postfix's scache does, so servers are not held busy for nothing.
async fn sweep(cache: Arc<Cache>) {
    let mut tick = tokio::time::interval(cache.limits().idle / 2);
    loop {
        tick.tick().await;
        for idle in cache.expire(std::time::Instant::now()) {
            close(idle);
        }
    }
}

/// One connection from qmgr: requests in sequence until it closes or the
/// service stops.
async fn connection(
    mut channel: Channel,
    settings: Arc<Settings>,
    slots: Arc<Semaphore>,
    cache: Arc<Cache>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let received = tokio::select! {
            received = channel.recv::<AgentRequest>() => received,
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        let (request, fds) = match received {
            Ok((AgentRequest::Deliver(request), fds)) => (request, fds),
            Ok((AgentRequest::Probe(probe), fds)) => {
                // A probe carries no descriptor.
                let checked = match probe.validate() {
                    Ok(()) if fds.is_empty() => Ok(()),
                    Ok(()) => Err(format!("a probe with {} descriptors", fds.len())),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(why) = checked {
                    channel.log_refusal(why);
                    return;
                }
                let reply = {
                    let _slot = slots.acquire().await.ok();
                    crate::probe::probe(&probe, &settings).await
                };
                if let Err(e) = channel.send(&reply, &[]).await {
                    warning!("probe: cannot answer verify: {e}");
                    return;
                }
                continue;
            }
            Err(IpcError::Closed) => return,
            Err(e) => {
                warning!("request from qmgr: {e}");
                return;
            }
        };
        let handoff = now_micros();
        let file = match checked(&request, fds) {
            Ok(file) => Arc::new(file),
            Err(why) => {
                channel.log_refusal(why);
                return;
            }
        };
        let file = Some(file);
        let results = {
            // The semaphore is never closed, so acquiring cannot fail; if it
            // somehow did, delivering without a slot beats not delivering.
            let _slot = slots.acquire().await.ok();
            deliver(&request, file, &settings, &cache, handoff).await
        };
        if let Err(e) = channel.send(&Reply { results }, &[]).await {
            warning!("{}: cannot answer qmgr: {e}", request.queue_id);
            return;
        }
    }
}

/// A request as relay takes it: valid fields and exactly one descriptor,
/// a regular file that holds the content range the request names. Anything
/// else ends the connection (its descriptors are closed).
fn checked(request: &Request, fds: Vec<OwnedFd>) -> Result<File, String> {
    request.validate().map_err(|e| e.to_string())?;
    let [fd]: [OwnedFd; 1] = fds
        .try_into()
        .map_err(|fds: Vec<OwnedFd>| format!("{} descriptors, not the queue file", fds.len()))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| format!("queue file: {e}"))?;
    if !meta.is_file() {
        return Err("the descriptor is not a queue file".into());
    }
    let end = request.content_offset + request.content_length;
    if end > meta.len() {
        return Err(format!(
            "content range ends at {end}, the file holds {} bytes",
            meta.len()
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_ipc::protocol::delivery::{Outcome, RecipientRequest, Request};
    use std::io::Write;
    use std::os::fd::AsFd;

    #[tokio::test]
    async fn answers_probes_on_the_same_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay");
        let std_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (smtp_port, server) = crate::tests::smtp_sink(1).await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let service = tokio::spawn(serve(
            OwnedFd::from(std_listener),
            crate::tests::settings(),
            2,
            Arc::new(Callers::same_user("relay")),
            async {
                let _ = stop_rx.await;
            },
        ));
        let mut channel = Channel::connect(&path).await.unwrap();
        let probe = mailgate_ipc::protocol::delivery::Probe {
            transport: "smtp".into(),
            nexthop: format!("[127.0.0.1]:{smtp_port}"),
            sender: String::new(),
            recipient: "bob@example.com".into(),
        };
        let reply: mailgate_ipc::protocol::delivery::ProbeReply = channel
            .call(&AgentRequest::Probe(probe), &[])
            .await
            .unwrap();
        assert_eq!(reply.outcome, Outcome::Sent, "{reply:?}");
        stop_tx.send(()).unwrap();
        assert_eq!(service.await.unwrap(), ExitCode::SUCCESS);
        let transcript = &server.await.unwrap()[0];
        assert!(
            transcript.ends_with("MAIL FROM:<>\r\nRCPT TO:<bob@example.com>\r\nRSET\r\nQUIT\r\n"),
            "{transcript}"
        );
        assert!(!transcript.contains("DATA"));
    }

    #[tokio::test]
    async fn answers_requests_and_stops_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay");
        let std_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (smtp_port, server) = crate::tests::smtp_sink(1).await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let service = tokio::spawn(serve(
            OwnedFd::from(std_listener),
            crate::tests::settings(),
            2,
            Arc::new(Callers::same_user("relay")),
            async {
                let _ = stop_rx.await;
            },
        ));

        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"XXXXSubject: t\r\n\r\nhello\r\n").unwrap();
        let mut channel = Channel::connect(&path).await.unwrap();
        for round in 0..2 {
            let request = Request {
                queue_id: format!("Q{round}"),
                transport: "relay".into(),
                nexthop: format!("[127.0.0.1]:{smtp_port}"),
                sender: "a@example.org".into(),
                recipients: vec![RecipientRequest {
                    index: 3,
                    address: "b@example.com".into(),
                    original: None,
                }],
                body_type: None,
                smtputf8: false,
                content_offset: 4,
                content_length: 21,
                arrival: now_micros(),
                active_since: now_micros(),
                client: mailgate_ipc::submit::local_client(),
            };
            let reply: Reply = channel
                .call(&AgentRequest::Deliver(request), &[file.as_fd()])
                .await
                .unwrap();
            assert_eq!(reply.results.len(), 1);
            assert_eq!(reply.results[0].index, 3);
            assert_eq!(
                reply.results[0].outcome,
                Outcome::Sent,
                "{:?}",
                reply.results[0]
            );
        }
        // A connection idle between requests does not hold up the stop,
        // and the kept SMTP connection is closed with QUIT.
        stop_tx.send(()).unwrap();
        assert_eq!(service.await.unwrap(), ExitCode::SUCCESS);
        let transcripts = server.await.unwrap();
        let transcript = &transcripts[0];
        assert_eq!(transcript.matches("EHLO").count(), 1);
        assert!(transcript.contains("RSET\r\nMAIL FROM"));
        assert!(transcript.ends_with("Subject: t\r\n\r\nhello\r\n.\r\nQUIT\r\n"));
        assert!(matches!(
            channel.recv::<Reply>().await,
            Err(IpcError::Closed)
        ));
    }
}
