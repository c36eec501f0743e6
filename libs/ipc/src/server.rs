//! The accept loop of a service that listens on its inherited Unix socket:
//! only the peers its callers admit (by SO_PEERCRED uid; others are closed
//! at once, with a log line), at most `limit` connections at once (excess
//! ones wait in the listen backlog, like Postfix's process limit), and on
//! shutdown it stops accepting and lets the connections in progress finish.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::channel::Channel;
use crate::peer::Callers;

pub fn unix_listener(fd: OwnedFd) -> std::io::Result<UnixListener> {
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

/// Serves connections until `shutdown` resolves, then waits for the
/// connections in progress.
pub async fn serve_unix<H, F>(
    listener: UnixListener,
    limit: usize,
    shutdown: impl Future<Output = ()>,
    callers: &Callers,
    handler: H,
) where
    H: Fn(Channel) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limit.max(1)));
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    mailgate_log::warning!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let peer = match callers.check(&stream) {
            Ok(peer) => peer,
            Err(refusal) => {
                mailgate_log::warning!(
                    "refusing a connection to service {}: {refusal}",
                    callers.service()
                );
                continue;
            }
        };
        let session = handler(Channel::accepted(stream, peer));
        sessions.spawn(async move {
            session.await;
            drop(permit);
        });
        // Reap finished sessions so the set does not grow without bound.
        while sessions.try_join_next().is_some() {}
    }
    // Close the socket first, so a successor can take over while the
    // connections in progress finish.
    drop(listener);
    while sessions.join_next().await.is_some() {}
}
