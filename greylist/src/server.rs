//! The policy server: accepts on the socket the master handed over — a
//! Unix socket in private/ (`greylist unix ...` in master.cf, for mailgate's
//! smtpd) or a TCP socket (`127.0.0.1:10023 inet ...`, for a stock Postfix)
//! — and answers each request on a connection in turn, as long as the
//! client keeps it open.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailgate_log::warning;
use mailgate_policy::{Limits, ReadError, SMTPD_ACCESS_POLICY, read_request, write_action};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::greylist::Greylister;

/// A connection with no request for this long is closed (the client side,
/// Postfix's or mailgate's, closes its own after 300 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The pause after a failed accept (out of descriptors, say).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// The inherited socket, as master.cf's type column says it is.
    pub fn from_fd(fd: OwnedFd, kind: &str) -> std::io::Result<Listener> {
        match kind {
            "inet" => {
                let listener = std::net::TcpListener::from(fd);
                listener.set_nonblocking(true)?;
                TcpListener::from_std(listener).map(Listener::Tcp)
            }
            "unix" => {
                let listener = std::os::unix::net::UnixListener::from(fd);
                listener.set_nonblocking(true)?;
                UnixListener::from_std(listener).map(Listener::Unix)
            }
            other => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("service type {other} is not supported (use unix or inet)"),
            )),
        }
    }
}

/// Serves until `shutdown` resolves, at most `limit` connections at once
/// (more wait in the listen backlog), then lets the open ones finish their
/// request in progress.
pub async fn serve(
    listener: Listener,
    limit: usize,
    greylister: Arc<Greylister>,
    callers: Arc<mailgate_ipc::peer::Callers>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limit.max(1)));
    let mut connections = JoinSet::new();
    // Tells open connections to close once their request in progress is
    // answered.
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => accepted,
        };
        let greylister = Arc::clone(&greylister);
        let stopping = stopping.clone();
        match accepted {
            Ok(Accepted::Tcp(stream, peer)) => {
                connections.spawn(async move {
                    serve_connection(stream, &peer, &greylister, stopping).await;
                    drop(permit);
                });
            }
            Ok(Accepted::Unix(stream)) => {
                // On a Unix socket only the profile's callers (smtpd, the
                // tools) are heard; a TCP client is a stock Postfix.
                if let Err(refusal) = callers.check(&stream) {
                    warning!(
                        "refusing a connection to service {}: {refusal}",
                        callers.service()
                    );
                    continue;
                }
                connections.spawn(async move {
                    serve_connection(stream, "local client", &greylister, stopping).await;
                    drop(permit);
                });
            }
            Err(e) => {
                warning!("accept: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
        while let Some(done) = connections.try_join_next() {
            report_panic(done);
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while let Some(done) = connections.join_next().await {
        report_panic(done);
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream, String),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Tcp(l) => l
            .accept()
            .await
            .map(|(s, peer)| Accepted::Tcp(s, peer.to_string())),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

fn report_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        mailgate_log::error!("connection ended abnormally: {e}");
    }
}

/// Answers requests until the client closes the connection. A malformed
/// request gets no answer: the connection is closed with a warning, as
/// SMTPD_POLICY_README asks of a server in trouble (the client then applies
/// its default action, a 4xx).
async fn serve_connection<S>(
    stream: S,
    peer: &str,
    greylister: &Greylister,
    mut stopping: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = BufReader::new(stream);
    let limits = Limits::default();
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(IDLE_TIMEOUT, read_request(&mut io, &limits)) => next,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        let request = match next {
            Err(_) => return,
            Ok(Ok(None)) => return,
            Ok(Ok(Some(request))) => request,
            Ok(Err(ReadError::Io(_))) => return,
            Ok(Err(ReadError::Protocol(e))) => {
                warning!("{peer}: bad policy request: {e}; closing the connection");
                return;
            }
        };
        if request.request != SMTPD_ACCESS_POLICY {
            warning!(
                "{peer}: unsupported request type \"{}\" (expected {SMTPD_ACCESS_POLICY}); closing the connection",
                request.request
            );
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let action = greylister.decide(&request, now).await;
        if write_action(io.get_mut(), &action).await.is_err() {
            return;
        }
    }
}
