//! qmgr: the one queue manager. It moves new mail from incoming/ to
//! active/, hands each message to the delivery agents per destination with
//! a concurrency limit, removes it when every recipient is done, and puts it
//! in deferred/ with backoff when some are not.

mod queue;
mod scheduler;

use std::process::ExitCode;
use std::time::Duration;

use mailgate_config::{MainConfig, Router};
use mailgate_ipc::protocol::qmgr::Request;
use mailgate_ipc::server::{serve_unix, unix_listener};
use mailgate_sandbox::{Worker, die, profiles};
use tokio::sync::mpsc;

use crate::scheduler::{Scheduler, Wakeup};

/// What qmgr needs from main.cf, read before the sandbox.
pub struct Settings {
    pub router: Router,
    pub queue_run_delay: Duration,
    pub minimal_backoff: Duration,
    pub maximal_backoff: Duration,
    pub maximal_queue_lifetime: Duration,
    pub bounce_queue_lifetime: Duration,
    pub destination_concurrency: usize,
    pub destination_recipients: usize,
    pub active_limit: usize,
}

impl Settings {
    fn load(config: &MainConfig) -> Result<Settings, String> {
        let positive = |name: &str| config.int(name).max(1) as usize;
        Ok(Settings {
            router: Router::new(config).map_err(|e| e.to_string())?,
            queue_run_delay: config.time("queue_run_delay").max(Duration::from_secs(1)),
            minimal_backoff: config
                .time("minimal_backoff_time")
                .max(Duration::from_secs(1)),
            maximal_backoff: config
                .time("maximal_backoff_time")
                .max(Duration::from_secs(1)),
            maximal_queue_lifetime: config.time("maximal_queue_lifetime"),
            bounce_queue_lifetime: config.time("bounce_queue_lifetime"),
            destination_concurrency: positive("default_destination_concurrency_limit"),
            destination_recipients: positive("default_destination_recipient_limit"),
            active_limit: positive("qmgr_message_active_limit"),
        })
    }
}

fn main() -> ExitCode {
    let mut worker = Worker::start("qmgr");
    let settings = Settings::load(&worker.config).unwrap_or_else(|e| die(e));
    let listener = worker.take_listener();
    worker.enter_sandbox(&profiles::QMGR);
    let shutdown = worker.shutdown();
    let runtime = worker.runtime(2);
    runtime.block_on(async move {
        let listener = unix_listener(listener).unwrap_or_else(|e| die(e));
        let (wake_tx, wake_rx) = mpsc::channel(16);
        // Wake-ups from cleanup and the queue tools; many in a burst fold
        // into one scan, so a full channel just drops the extra ones.
        tokio::spawn(serve_unix(
            listener,
            64,
            std::future::pending(),
            move |mut channel| {
                let wake_tx = wake_tx.clone();
                async move {
                    while let Ok((request, _)) = channel.recv::<Request>().await {
                        let wakeup = match request {
                            Request::Wake => Wakeup::Incoming,
                            Request::Flush => Wakeup::Flush,
                        };
                        let _ = wake_tx.try_send(wakeup);
                    }
                }
            },
        ));
        Scheduler::new(settings).run(wake_rx, shutdown.wait()).await;
    });
    ExitCode::SUCCESS
}
