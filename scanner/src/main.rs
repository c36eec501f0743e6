//! scanner: the content filter. cleanup hands it each message as a sealed
//! descriptor before the message is queued; it answers with a verdict:
//! viruses (clamd), banned attachments, spam score, the headers to add and
//! what to do with the message.
//!
//! It runs as its own user (scanner_owner), chrooted into
//! scanner_directory, with no access to the spool: a hostile message that
//! subverts a parser gets a process that can read nothing but its rules.
//! Every scan runs on a blocking thread under catch_unwind, so a panic in
//! one scan costs that message a 4xx, not the service.

mod clamd;
mod policy;
mod scan;
mod sender_auth;
mod service;
mod spam;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use mailgate_ipc::server::{serve_unix, unix_listener};
use mailgate_sandbox::{Worker, die, profiles};

use scanner::{archive, banned};

use crate::scan::Scanner;
use crate::sender_auth::SenderChecks;
use crate::service::Shared;

fn main() -> ExitCode {
    let mut worker = Worker::start("scanner");
    let home = PathBuf::from(worker.config.get("scanner_directory"));
    let chrooted = nix::unistd::geteuid().is_root() && worker.handoff.chroot;
    prepare_home(&home, chrooted);
    let scanner = Scanner::from_config(&worker.config, chrooted.then_some(home.as_path()))
        .unwrap_or_else(|e| die(e));
    let sender_checks = SenderChecks::from_config(&worker.config).unwrap_or_else(|e| die(e));
    // Network for the DNS queries of the DKIM and DMARC checks, and when
    // clamd is reached over TCP.
    let profile = if sender_checks.is_some() {
        &profiles::SCANNER_DNS
    } else if worker.config.get("clamd_socket").starts_with("inet:") {
        &profiles::SCANNER_CLAMD_INET
    } else {
        &profiles::SCANNER
    };
    let shared = Arc::new(Shared {
        scanner,
        sender_checks,
        timeout: worker.config.time("scanner_timeout"),
        max_content: worker.config.size("message_size_limit") + 1024 * 1024,
    });
    let listener = worker.take_listener();
    let mut worker = worker.enter_sandbox(profile);
    let shutdown = worker.shutdown();
    let callers = worker.callers();
    let limit = worker.handoff.sessions as usize;
    let runtime = worker.runtime();
    runtime.block_on(async move {
        let listener = unix_listener(listener).unwrap_or_else(|e| die(e));
        serve_unix(listener, limit, shutdown.wait(), &callers, |channel| {
            service::run(channel, shared.clone())
        })
        .await;
    });
    ExitCode::SUCCESS
}

/// The chroot must exist and, as the root of the scanner's view, must not
/// be writable by the scanner itself: root-owned, mode 755.
fn prepare_home(home: &std::path::Path, chrooted: bool) {
    if let Err(e) = std::fs::create_dir_all(home) {
        die(format!(
            "scanner_directory = {}: cannot create it: {e}",
            home.display()
        ));
    }
    if chrooted
        && let Err(e) = std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o755))
    {
        die(format!(
            "scanner_directory = {}: cannot set its mode: {e}",
            home.display()
        ));
    }
}
