//! verify: address verification, as Postfix's verify(8). smtpd's
//! reject_unverified_recipient and reject_unverified_sender ask it what is
//! known about an address; it answers from its cache (a redb file under
//! data_directory, a Redis server shared by several gateways, or memory)
//! and probes unknown addresses through the delivery agent of their route
//! (relay, the only process with the network), which asks the next hop
//! MAIL FROM / RCPT TO / RSET / QUIT without sending mail.
//!
//! It reads its settings and opens its store before its sandbox: chrooted
//! into the spool (where the delivery agents' sockets are) as mail_owner,
//! it opens no files and, unless the store is Redis, has no network.

mod cache;
mod service;
mod settings;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mailgate_ipc::server::{serve_unix, unix_listener};
use mailgate_log::info;
use mailgate_sandbox::{Worker, die, profiles};
use mailgate_store::{Store, StoreOptions};

use crate::service::Verifier;
use crate::settings::Settings;

/// At most this many smtpd connections are served at once (each asks one
/// question and goes); master.cf's maxproc is 1, as in Postfix: one
/// process, the one writer of the cache.
const CONNECTIONS: usize = 256;

/// With an empty address_verify_map, the cache in memory holds at most this
/// many live entries; past it new addresses are not cached (their queries
/// answer "in progress", then 4xx) until entries expire.
const MEMORY_ENTRIES: usize = 100_000;

fn main() -> ExitCode {
    let mut worker = Worker::start("verify");
    let settings = Settings::load(&worker.config).unwrap_or_else(|e| die(e));
    let store = match &settings.store {
        Some(spec) => {
            if let mailgate_store::StoreSpec::Redb(path) = spec
                && let Some(dir) = path.parent()
                && let Err(e) = std::fs::create_dir_all(dir)
            {
                die(format!(
                    "address_verify_map: cannot create {}: {e}",
                    dir.display()
                ));
            }
            let options = StoreOptions {
                timeout: settings.store_timeout,
            };
            Store::open(spec, "verify", options)
                .unwrap_or_else(|e| die(format!("address_verify_map: {e}")))
        }
        None => Store::in_memory("verify", MEMORY_ENTRIES),
    };
    let listener = worker.take_listener();
    // Network only when the cache is a Redis server; a file only when it
    // is a redb file.
    let profile = if store.is_remote() {
        &profiles::VERIFY_REDIS
    } else if store.is_file() {
        &profiles::VERIFY
    } else {
        &profiles::VERIFY_MEMORY
    };
    let mut worker = worker.enter_sandbox(profile);
    let shutdown = worker.shutdown();
    let callers = worker.callers();
    let runtime = worker.runtime(2);
    runtime.block_on(async move {
        let listener = unix_listener(listener)
            .unwrap_or_else(|e| die(format!("cannot use the listening socket: {e}")));
        info!(
            "address verification with {} (probes from <{}>)",
            store.describe(),
            settings.sender.at(0)
        );
        let cleanup = settings.cleanup_interval;
        let prunes = !store.is_remote() && !cleanup.is_zero();
        let verifier = Arc::new(Verifier::new(settings, store));
        if prunes {
            tokio::spawn(prune(Arc::clone(&verifier), cleanup));
        }
        serve_unix(
            listener,
            CONNECTIONS,
            shutdown.wait(),
            &callers,
            move |channel| Arc::clone(&verifier).serve(channel),
        )
        .await;
    });
    ExitCode::SUCCESS
}

/// Removes expired entries every address_verify_cache_cleanup_interval
/// (Redis expires them itself).
async fn prune(verifier: Arc<Verifier>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match verifier.store().prune().await {
            Ok(0) => {}
            Ok(n) => info!("removed {n} expired entries from the address verification cache"),
            Err(e) => mailgate_log::warning!("cannot clean the address verification cache: {e}"),
        }
    }
}
