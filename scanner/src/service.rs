//! One connection from cleanup: a request with the message descriptor in,
//! a verdict (or a failure) out.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use mailgate_ipc::protocol::scanner::{Action, Reply, Request, Verdict};
use mailgate_ipc::{Channel, IpcError};
use mailgate_log::{info, warning};

use crate::scan::Scanner;
use crate::sender_auth::SenderChecks;

pub struct Shared {
    pub scanner: Scanner,
    /// DKIM and DMARC (dkim_verify, dmarc_verify), when on.
    pub sender_checks: Option<SenderChecks>,
    pub timeout: Duration,
    /// Content larger than this is not read (message_size_limit plus room
    /// for the headers cleanup adds).
    pub max_content: u64,
}

pub async fn run(mut channel: Channel, shared: Arc<Shared>) {
    let (request, fd) = match channel.recv::<Request>().await {
        Ok((request, fds)) if fds.len() == 1 => (request, fds.into_iter().next()),
        Ok((request, fds)) => {
            return warning!(
                "{}: protocol error: expected one descriptor, got {}",
                request.queue_id,
                fds.len()
            );
        }
        Err(IpcError::Closed) => return,
        Err(e) => return warning!("{e}"),
    };
    let Some(fd) = fd else { return };
    let queue_id = request.queue_id.clone();
    let reply = match tokio::time::timeout(shared.timeout, check(&shared, fd, &request)).await {
        Ok(Ok(verdict)) => {
            log_verdict(&queue_id, &verdict);
            Reply::Verdict(Box::new(verdict))
        }
        Ok(Err(reason)) => {
            warning!("{queue_id}: scan failed: {reason}");
            Reply::Failed { reason }
        }
        Err(_) => {
            // A blocking scan cannot be cancelled; it finishes on its own
            // and its result is dropped.
            warning!("{queue_id}: scan timed out (scanner_timeout)");
            Reply::Failed {
                reason: "scan timed out".into(),
            }
        }
    };
    if let Err(e) = channel.send(&reply, &[]).await {
        warning!("{queue_id}: cannot answer cleanup: {e}");
    }
}

/// Reads the message, runs the sender checks (DKIM, DMARC: DNS, so on
/// this task) when they apply, then the content scans on a blocking
/// thread, and puts the results together.
async fn check(shared: &Arc<Shared>, fd: OwnedFd, request: &Request) -> Result<Verdict, String> {
    let work = shared.clone();
    let (file, content) = tokio::task::spawn_blocking(move || read_content(&work, fd))
        .await
        .map_err(|e| format!("internal error in the scanner: {e}"))??;
    let verification = match &shared.sender_checks {
        Some(checks) if checks.applies(&request.sender_auth) => {
            let client = request.client_addr.parse().map_err(|_| {
                format!("client address {:?} is not an address", request.client_addr)
            })?;
            let verification = checks
                .verify(
                    &content,
                    client,
                    &request.helo,
                    &request.sender,
                    &request.sender_auth,
                )
                .await;
            info!(
                "{}: Authentication-Results: {}",
                request.queue_id, verification.results
            );
            Some(verification)
        }
        _ => None,
    };
    let work = shared.clone();
    let recipients = request.recipients.clone();
    let mut verdict =
        tokio::task::spawn_blocking(move || scan_content(&work, &file, &content, &recipients))
            .await
            .map_err(|e| format!("internal error in the scanner: {e}"))??;
    if let (Some(checks), Some(verification)) = (&shared.sender_checks, &verification) {
        checks.apply(verification, &mut verdict);
    }
    Ok(verdict)
}

/// Reads the content with positioned reads (the file offset belongs to
/// cleanup too).
fn read_content(shared: &Shared, fd: OwnedFd) -> Result<(File, Vec<u8>), String> {
    let file = File::from(fd);
    let size = file
        .metadata()
        .map_err(|e| format!("cannot stat the message: {e}"))?
        .len();
    if size > shared.max_content {
        return Err(format!(
            "message of {size} bytes exceeds what the scanner reads ({} bytes)",
            shared.max_content
        ));
    }
    let mut content = vec![0u8; size as usize];
    file.read_exact_at(&mut content, 0)
        .map_err(|e| format!("cannot read the message: {e}"))?;
    Ok((file, content))
}

/// Scans the content; clamd gets the bytes or, with FILDES, the descriptor
/// itself. A panic anywhere in the checks is caught here and costs this
/// message a temporary failure, not the service.
fn scan_content(
    shared: &Shared,
    file: &File,
    content: &[u8],
    recipients: &[String],
) -> Result<Verdict, String> {
    match catch_unwind(AssertUnwindSafe(|| {
        shared.scanner.scan(content, file.as_fd(), recipients)
    })) {
        Ok(Ok(verdict)) => Ok(verdict),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("internal error in the scanner: {what}"))
        }
    }
}

fn log_verdict(queue_id: &str, verdict: &Verdict) {
    let action = match verdict.action {
        Action::Pass => "pass",
        Action::Reject => "reject",
        Action::Quarantine => "quarantine",
        Action::Discard => "discard",
        Action::Defer => "defer",
    };
    let score = verdict
        .score
        .map(|s| format!(" score={s:.1}"))
        .unwrap_or_default();
    let hits: Vec<&str> = verdict.hits.iter().map(|h| h.name.as_str()).collect();
    let reason = if verdict.reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", verdict.reason)
    };
    info!(
        "{queue_id}: scan: action={action}{score} tests=[{}]{reason}",
        hits.join(",")
    );
}
