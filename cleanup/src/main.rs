//! cleanup: turns what smtpd received into a durable queue file.
//!
//! It adds the Received header (and Message-ID and Date when missing),
//! writes the queue file to incoming/, makes it durable, and only then
//! answers smtpd, which only then answers 250. Then it wakes qmgr.

mod headers;
mod session;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailgate_ipc::server::{serve_unix, unix_listener};
use mailgate_ipc::spool::{INCOMING, QueueIdGenerator, remove_stale_temporaries};
use mailgate_log::info;
use mailgate_sandbox::{Worker, die, profiles};

/// What cleanup needs from main.cf, read before the sandbox.
pub struct Settings {
    pub myhostname: String,
    pub mail_name: String,
    pub myorigin: String,
}

impl Settings {
    fn load(config: &mailgate_config::MainConfig) -> Settings {
        Settings {
            myhostname: config.get("myhostname"),
            mail_name: config.get("mail_name"),
            myorigin: config.get("myorigin"),
        }
    }
}

pub struct Shared {
    pub settings: Settings,
    pub ids: Mutex<QueueIdGenerator>,
}

fn main() -> ExitCode {
    let mut worker = Worker::start("cleanup");
    let settings = Settings::load(&worker.config);
    let listener = worker.take_listener();
    worker.enter_sandbox(&profiles::CLEANUP);
    let shutdown = worker.shutdown();
    let limit = worker.handoff.maxproc as usize;
    let runtime = worker.runtime(2);
    runtime.block_on(async move {
        // A crash of an earlier cleanup may have left half-written files;
        // an hour is far longer than any transaction lives.
        match remove_stale_temporaries(INCOMING, Duration::from_secs(3600)) {
            Ok(0) => {}
            Ok(n) => info!("removed {n} stale temporary files from {INCOMING}"),
            Err(e) => die(format!("cannot read {INCOMING}: {e}")),
        }
        let listener = unix_listener(listener).unwrap_or_else(|e| die(e));
        let shared = Arc::new(Shared {
            settings,
            ids: Mutex::new(QueueIdGenerator::default()),
        });
        serve_unix(listener, limit, shutdown.wait(), |channel| {
            session::run(channel, shared.clone())
        })
        .await;
    });
    ExitCode::SUCCESS
}
