//! greylist: greylisting with postgrey's semantics, as a policy service
//! that mailgate's smtpd and a stock Postfix both query
//! (`check_policy_service unix:private/greylist` or `inet:host:port`).
//!
//! It reads its settings and opens its store (a redb file under
//! data_directory, or a Redis server shared with other gateways) before
//! its sandbox: chrooted into data_directory as mail_owner, it opens no
//! files and, unless the store is Redis, has no network.

mod greylist;
mod server;
mod settings;
mod triplet;
mod whitelist;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mailgate_log::info;
use mailgate_sandbox::{Worker, die, profiles};
use mailgate_store::{Store, StoreOptions};

use crate::greylist::Greylister;
use crate::server::Listener;
use crate::settings::Settings;

/// How often expired triplets leave the embedded database.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

fn main() -> ExitCode {
    let mut worker = Worker::start("greylist");
    let settings = Settings::load(&worker.config).unwrap_or_else(|e| die(e));
    let data_directory = worker.config.get("data_directory");
    if let Err(e) = std::fs::create_dir_all(&data_directory) {
        die(format!(
            "data_directory = {data_directory}: cannot create it: {e}"
        ));
    }
    let options = StoreOptions {
        timeout: settings.database_timeout,
    };
    let store = Store::open(&settings.database, "greylist", options)
        .unwrap_or_else(|e| die(format!("greylist_database: {e}")));
    let listener = worker.take_listener();
    // Network only when the store is a Redis server.
    let profile = if store.is_remote() {
        &profiles::GREYLIST_REDIS
    } else {
        &profiles::GREYLIST
    };
    let mut worker = worker.enter_sandbox(profile);
    let shutdown = worker.shutdown();
    let callers = worker.callers();
    let limit = worker.handoff.maxproc as usize;
    let kind = worker.handoff.kind.clone();
    let runtime = worker.runtime(2);
    runtime.block_on(async move {
        let listener = Listener::from_fd(listener, &kind)
            .unwrap_or_else(|e| die(format!("cannot use the listening socket: {e}")));
        info!(
            "greylisting with {} (delay {}s, auto-whitelist after {} retries)",
            store.describe(),
            settings.delay,
            settings.auto_whitelist_clients
        );
        let embedded = store.is_file();
        let greylister = Arc::new(Greylister::new(settings, store));
        if embedded {
            tokio::spawn(prune(Arc::clone(&greylister)));
        }
        server::serve(listener, limit, greylister, callers, shutdown.wait()).await;
    });
    ExitCode::SUCCESS
}

/// Removes expired triplets now and every PRUNE_INTERVAL.
async fn prune(greylister: Arc<Greylister>) {
    loop {
        match greylister.store().prune().await {
            Ok(0) => {}
            Ok(n) => info!("removed {n} expired entries from the greylist database"),
            Err(e) => mailgate_log::warning!("cannot prune the greylist database: {e}"),
        }
        tokio::time::sleep(PRUNE_INTERVAL).await;
    }
}
