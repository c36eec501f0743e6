//! anvil: the per-client connection and rate counts of every smtpd process
//! (Postfix's anvil(8)). smtpd runs as several processes; a client's
//! sessions may land on any of them, so smtpd_client_connection_count_limit
//! and the rate limits are counted here, over all of them. Each smtpd
//! process keeps one connection open; the sessions it counted are counted
//! down when that connection closes.
//!
//! One process (master.cf maxproc 1), chrooted into the spool as
//! mail_owner, answering only smtpd's uid: it opens no file, connects
//! nowhere, has no network. It holds at most MAX_CLIENTS clients and
//! forgets each one anvil_rate_time_unit after its last event once it has
//! no session open. Every anvil_status_update_time it logs the highest
//! counts it saw, as Postfix's anvil does.

mod serve;
mod table;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailgate_ipc::server::{serve_unix, unix_listener};
use mailgate_log::info;
use mailgate_sandbox::{Worker, die, profiles};

use crate::serve::Shared;
use crate::table::{Peak, Peaks, Table};

/// The most smtpd connections served at once: one per smtpd process.
const CONNECTIONS: usize = 1024;

/// The most clients counted at once (about 100 bytes each); past it a new
/// client is answered `Full` and the smtpd process counts it itself.
const MAX_CLIENTS: usize = 100_000;

fn main() -> ExitCode {
    let mut worker = Worker::start("anvil");
    let unit = worker.config.time("anvil_rate_time_unit");
    let status_every = worker.config.time("anvil_status_update_time");
    let listener = worker.take_listener();
    let mut worker = worker.enter_sandbox(&profiles::ANVIL);
    let shutdown = worker.shutdown();
    let callers = worker.callers();
    let runtime = worker.runtime();
    runtime.block_on(async move {
        let listener = unix_listener(listener)
            .unwrap_or_else(|e| die(format!("cannot use the listening socket: {e}")));
        let shared = Shared::new(Table::new(unit, MAX_CLIENTS));
        let unit = shared.table().unit();
        info!(
            "counting per-client limits for smtpd (anvil_rate_time_unit {}s)",
            unit.as_secs()
        );
        let sweeper = tokio::spawn(sweep(Arc::clone(&shared), unit));
        let status = (!status_every.is_zero())
            .then(|| tokio::spawn(statistics(Arc::clone(&shared), status_every, unit)));
        {
            let shared = Arc::clone(&shared);
            serve_unix(
                listener,
                CONNECTIONS,
                shutdown.wait(),
                &callers,
                move |channel| serve::serve(Arc::clone(&shared), channel),
            )
            .await;
        }
        sweeper.abort();
        if let Some(status) = status {
            status.abort();
        }
        log_peaks(shared.table().take_peaks(), unit);
    });
    ExitCode::SUCCESS
}

/// Forgets idle clients every anvil_rate_time_unit.
async fn sweep(shared: Arc<Shared>, unit: Duration) {
    loop {
        tokio::time::sleep(unit).await;
        shared.table().sweep(Instant::now());
    }
}

async fn statistics(shared: Arc<Shared>, every: Duration, unit: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let peaks = shared.table().take_peaks();
        log_peaks(peaks, unit);
    }
}

/// Postfix's anvil statistics lines.
fn log_peaks(peaks: Peaks, unit: Duration) {
    let secs = unit.as_secs();
    let line = |what: &str, peak: Option<Peak>, per_unit: bool| {
        if let Some(Peak { value, key, at }) = peak {
            let value = if per_unit {
                format!("{value}/{secs}s")
            } else {
                value.to_string()
            };
            info!(
                "statistics: max {what} {value} for ({}:{}) at {}",
                key.0,
                key.1,
                when(at)
            );
        }
    };
    line("connection rate", peaks.connection_rate, true);
    line("connection count", peaks.connection_count, false);
    line("message rate", peaks.message_rate, true);
    line("recipient rate", peaks.recipient_rate, true);
    line("auth rate", peaks.auth_rate, true);
    if let Some((size, at)) = peaks.cache_size {
        info!("statistics: max cache size {size} at {}", when(at));
    }
}

/// `Dec  3 19:04:05`, as Postfix writes the time in these lines.
fn when(unix: i64) -> String {
    match mailgate_log::local_time(unix) {
        Some(tm) => format!(
            "{} {:2} {:02}:{:02}:{:02}",
            mailgate_log::MONTHS[tm.tm_mon.clamp(0, 11) as usize],
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        ),
        None => unix.to_string(),
    }
}
