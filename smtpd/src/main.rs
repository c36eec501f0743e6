//! smtpd: the SMTP server. Accepts on the socket the master hands over,
//! applies the restrictions, passes each message to cleanup, and answers
//! 250 only once cleanup has the message on stable storage.

mod anvil;
mod anvil_client;
mod auth;
mod conn;
mod milter;
mod peer;
mod policy;
mod session;
mod settings;
mod starttls;
mod transaction;
mod xforward;

use std::future::Future;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mailgate_log::{error, fatal, warning};
use mailgate_sandbox::{Worker, die, profiles};
use tokio::task::JoinSet;

use smtpd::{address, command, data, reply};

use crate::session::Shared;
use crate::settings::Settings;

fn main() -> ExitCode {
    let mut worker = Worker::start("smtpd");
    let mut settings = Settings::load(&worker.config).unwrap_or_else(|e| die(e));
    // smtpd_message_memory_limit bounds the service: each of its processes
    // holds an equal share.
    settings.memory_processes = u64::from(worker.handoff.processes);
    let listener = worker.take_listener();
    let mut worker = worker.enter_sandbox(&profiles::SMTPD);
    let runtime = worker.runtime();
    let shutdown = worker.shutdown();
    // Inside the runtime: the connection to the anvil service is a task.
    let shared = {
        let _runtime = runtime.enter();
        Shared::new(settings, &worker.handoff.service, worker.handoff.sessions)
    };
    runtime.block_on(serve(listener, shared, shutdown.wait()))
}

/// How long to pause after accept fails (out of descriptors, say) before
/// trying again, rather than spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves up to its share of maxproc sessions at once until `shutdown` resolves, then
/// lets the sessions in progress finish (the master kills the process after
/// master_drain_time if they do not).
async fn serve(listener: OwnedFd, shared: Shared, shutdown: impl Future<Output = ()>) -> ExitCode {
    let listener = std::net::TcpListener::from(listener);
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
    {
        Ok(listener) => listener,
        Err(e) => {
            fatal!("cannot use the listening socket: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shared = Arc::new(shared);
    // The permit is taken before accept, so connections beyond maxproc wait
    // in the listen backlog (or go to another smtpd process), as with
    // Postfix's process limit. With no permit left the service is under
    // stress, and the sessions' ${stress?...} limits shrink.
    let slots = Arc::clone(&shared.slots);
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warning!("accept: {e}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        sessions.spawn(async move {
            let _slot = permit;
            let _occupied = shared.enter();
            let local = stream.local_addr().ok();
            session::run(stream, peer, local, &shared).await;
        });
        while let Some(done) = sessions.try_join_next() {
            report_panic(done);
        }
    }
    drop(listener);
    while let Some(done) = sessions.join_next().await {
        report_panic(done);
    }
    ExitCode::SUCCESS
}

/// A session that panicked is a bug; the other sessions go on (invariant 4).
fn report_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        error!("session ended abnormally: {e}");
    }
}

#[cfg(test)]
mod tests;
