//! cleanup: turns what smtpd received into a durable queue file.
//!
//! It applies header_checks and body_checks, asks the content scanner
//! (when content_scanner names one), adds the Received header (and
//! Message-ID and Date when missing) and the scanner's headers, writes the
//! queue file to incoming/ (or hold/, quarantine/), makes it durable, and
//! only then answers smtpd, which only then answers 250. Then it wakes qmgr.

mod arc;
mod deliver;
mod dkim;
mod headers;
mod queue_file;
mod rewrite;
mod routing;
mod scan_client;
mod session;
mod wake;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailgate_config::{LocalRecipients, Rewriting, open_tables};
use mailgate_ipc::server::{serve_unix, unix_listener};
use mailgate_ipc::spool::{HOLD, INCOMING, QUARANTINE, QueueIdGenerator, remove_stale_temporaries};
use mailgate_log::info;
use mailgate_sandbox::{Worker, die, profiles};

use crate::scan_client::FailureAction;
use cleanup::checks::{self, Checks};

/// What a delivery status notice adds around the message it returns.
const NOTICE_ROOM: u64 = 1024 * 1024;

/// What cleanup needs from main.cf, read before the sandbox.
#[derive(Default)]
pub struct Settings {
    pub myhostname: String,
    pub mail_name: String,
    pub myorigin: String,
    pub checks: Checks,
    /// canonical and virtual alias maps; None with no_address_mappings.
    pub rewriting: Option<Rewriting>,
    /// alias_maps for mydestination's recipients; None without local
    /// domains or aliases.
    pub local: Option<LocalRecipients>,
    /// content_scanner: the master.cf service that scans each message
    /// before it is queued; None when content filtering is off.
    pub content_scanner: Option<String>,
    pub scanner_timeout: Duration,
    pub failure_action: FailureAction,
    /// virus_admin: who hears about viruses (never the sender, who is
    /// usually forged).
    pub virus_admin: Option<String>,
    /// authserv_id: Authentication-Results fields with this id that come
    /// from outside are removed.
    pub authserv_id: String,
    /// DKIM signing of the organisation's mail (dkim_signing_table).
    pub signer: Option<dkim::Signer>,
    /// ARC sealing of checked mail from outside (arc_sealing).
    pub sealer: Option<arc::Sealer>,
    /// The largest content a peer may hand over: message_size_limit plus
    /// room for the notices qmgr builds around a message (0: no limit, as
    /// Postfix's; the allocation is still checked).
    pub max_content: u64,
}

impl Settings {
    fn load(config: &mailgate_config::MainConfig) -> Result<Settings, String> {
        let dir = config.config_dir();
        let mut errors = Vec::new();
        // receive_override_options = no_header_body_checks turns the checks
        // off, as in Postfix (for a re-injection service, say).
        let checks_off = config
            .list("receive_override_options")
            .iter()
            .any(|o| o == "no_header_body_checks");
        // no_address_mappings turns canonical and virtual alias mapping
        // off, as in Postfix.
        let rewriting = if config
            .list("receive_override_options")
            .iter()
            .any(|o| o == "no_address_mappings")
        {
            None
        } else {
            Rewriting::from_config(config)
                .map_err(|e| errors.push(format!("address rewriting: {e}")))
                .ok()
        };
        // Postfix's local(8) expands aliases whatever
        // receive_override_options says.
        let local =
            if config.list("mydestination").is_empty() || config.list("alias_maps").is_empty() {
                None
            } else {
                LocalRecipients::from_config(config)
                    .map_err(|e| errors.push(format!("alias_maps: {e}")))
                    .ok()
            };
        let mut tables = |name: &str| {
            if checks_off {
                return Vec::new();
            }
            open_tables(&config.list(name), dir).unwrap_or_else(|e| {
                errors.push(format!("{name}: {e}"));
                Vec::new()
            })
        };
        let checks = Checks {
            header: tables("header_checks"),
            mime: tables("mime_header_checks"),
            nested: tables("nested_header_checks"),
            body: tables("body_checks"),
        };
        let failure_action = FailureAction::parse(&config.get("scanner_failure_action"))
            .unwrap_or_else(|e| {
                errors.push(e);
                FailureAction::Defer
            });
        let signer = dkim::Signer::load(config).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let sealer = arc::Sealer::load(config).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        let nonempty = |name: &str| Some(config.get(name)).filter(|v| !v.trim().is_empty());
        Ok(Settings {
            myhostname: config.get("myhostname"),
            mail_name: config.get("mail_name"),
            myorigin: config.get("myorigin"),
            checks,
            rewriting,
            local,
            content_scanner: nonempty("content_scanner"),
            scanner_timeout: config.time("scanner_timeout"),
            failure_action,
            virus_admin: nonempty("virus_admin"),
            authserv_id: config.get("authserv_id").trim().to_ascii_lowercase(),
            signer,
            sealer,
            max_content: match config.size("message_size_limit") {
                0 => u64::MAX,
                limit => limit.saturating_add(NOTICE_ROOM),
            },
        })
    }
}

pub struct Shared {
    pub settings: Settings,
    pub ids: Mutex<QueueIdGenerator>,
}

fn main() -> ExitCode {
    let mut worker = Worker::start("cleanup");
    let settings = Settings::load(&worker.config).unwrap_or_else(|e| die(e));
    let listener = worker.take_listener();
    let mut worker = worker.enter_sandbox(&profiles::CLEANUP);
    let shutdown = worker.shutdown();
    let callers = worker.callers();
    let limit = worker.handoff.sessions as usize;
    let runtime = worker.runtime();
    runtime.block_on(async move {
        // A crash of an earlier cleanup may have left half-written files;
        // an hour is far longer than any transaction lives.
        for queue in [INCOMING, HOLD, QUARANTINE] {
            match remove_stale_temporaries(queue, Duration::from_secs(3600)) {
                Ok(0) => {}
                Ok(n) => info!("removed {n} stale unfinished files from {queue}"),
                Err(e) => die(format!("cannot read {queue}: {e}")),
            }
        }
        let listener = unix_listener(listener).unwrap_or_else(|e| die(e));
        let shared = Arc::new(Shared {
            settings,
            ids: Mutex::new(QueueIdGenerator::new()),
        });
        serve_unix(listener, limit, shutdown.wait(), &callers, |channel| {
            session::run(channel, shared.clone())
        })
        .await;
    });
    ExitCode::SUCCESS
}
