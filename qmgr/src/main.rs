//! qmgr: the one queue manager. It moves new mail from incoming/ to
//! active/, hands each message to the delivery agents per destination with
//! a concurrency limit, removes it when every recipient is done, and puts it
//! in deferred/ with backoff when some are not.

mod dsn;
mod queue;
mod scheduler;

use std::process::ExitCode;
use std::time::Duration;

use mailgate_config::{MainConfig, Router};
use mailgate_ipc::protocol::qmgr::Request;
use mailgate_ipc::server::{serve_unix, unix_listener};
use mailgate_ipc::validate::Validate;
use mailgate_ipc::{Channel, IpcError};
use mailgate_sandbox::{Worker, die, profiles};
use tokio::sync::{mpsc, oneshot};

use crate::scheduler::{Command, Scheduler, Wakeup};

/// What qmgr needs from main.cf, read before the sandbox.
pub struct Settings {
    pub router: Router,
    pub myhostname: String,
    pub delay_warning: Duration,
    /// How long a notice may take to reach cleanup.
    pub ipc_timeout: Duration,
    pub queue_run_delay: Duration,
    pub minimal_backoff: Duration,
    pub maximal_backoff: Duration,
    pub maximal_queue_lifetime: Duration,
    pub bounce_queue_lifetime: Duration,
    pub destination_concurrency: usize,
    pub destination_recipients: usize,
    pub active_limit: usize,
    /// defer_transports: mail for these transports stays queued until a
    /// flush (`mailgate queue flush`).
    pub defer_transports: Vec<String>,
}

impl Settings {
    fn load(config: &MainConfig) -> Result<Settings, String> {
        let positive = |name: &str| config.int(name).max(1) as usize;
        Ok(Settings {
            router: Router::new(config).map_err(|e| e.to_string())?,
            myhostname: config.get("myhostname"),
            delay_warning: config.time("delay_warning_time"),
            ipc_timeout: config.time("ipc_timeout").max(Duration::from_secs(1)),
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
            defer_transports: config.list("defer_transports"),
        })
    }
}

fn main() -> ExitCode {
    let mut worker = Worker::start("qmgr");
    let settings = Settings::load(&worker.config).unwrap_or_else(|e| die(e));
    let listener = worker.take_listener();
    let mut worker = worker.enter_sandbox(&profiles::QMGR);
    let shutdown = worker.shutdown();
    let callers = worker.callers();
    let runtime = worker.runtime(2);
    runtime.block_on(async move {
        let listener = unix_listener(listener).unwrap_or_else(|e| die(e));
        let (command_tx, command_rx) = mpsc::channel(16);
        tokio::spawn(async move {
            serve_unix(
                listener,
                64,
                std::future::pending(),
                &callers,
                move |channel| serve(channel, command_tx.clone()),
            )
            .await
        });
        Scheduler::new(settings)
            .run(command_rx, shutdown.wait())
            .await;
    });
    ExitCode::SUCCESS
}

/// One client of qmgr's socket: cleanup's wake-ups, or a queue tool. (Its
/// uid was checked on accept: mail_owner or root.) A request with a
/// descriptor, or naming anything but queue IDs, ends the connection.
async fn serve(mut channel: Channel, commands: mpsc::Sender<Command>) {
    loop {
        let request = match channel.recv::<Request>().await {
            Ok((request, fds)) if fds.is_empty() => request,
            Ok(_) => return channel.log_refusal("a request with descriptors"),
            Err(IpcError::Closed) => return,
            Err(e) => return channel.log_refusal(e),
        };
        if let Err(e) = request.validate() {
            return channel.log_refusal(e);
        }
        match request {
            // Many wake-ups in a burst fold into one scan, so a full
            // channel just drops the extra ones.
            Request::Wake => {
                let _ = commands.try_send(Command::Wake(Wakeup::Incoming));
            }
            Request::Flush => {
                let _ = commands.try_send(Command::Wake(Wakeup::Flush));
            }
            // An action is never dropped: the tool waits for its answer.
            Request::Act { action, target } => {
                let (reply_tx, reply_rx) = oneshot::channel();
                let command = Command::Act {
                    action,
                    target,
                    reply: reply_tx,
                };
                if commands.send(command).await.is_err() {
                    return;
                }
                let Ok(reply) = reply_rx.await else { return };
                if channel.send(&reply, &[]).await.is_err() {
                    return;
                }
            }
        }
    }
}
