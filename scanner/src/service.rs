//! One connection from cleanup (only its uid gets this far): a request with
//! the message descriptor in, a verdict (or a failure) out. The request is
//! checked first: valid fields, and exactly one descriptor, a memfd sealed
//! against any change, of the announced size, within the size limit.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailgate_ipc::protocol::scanner::{Action, Reply, Request, Verdict};
use mailgate_ipc::validate::{self, Validate};
use mailgate_ipc::{Channel, IpcError};
use mailgate_log::{info, warning};

use crate::scan::Scanner;
use crate::sender_auth::SenderChecks;
use mailgate_mailauth::facts::Facts;

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
    let (request, fds) = match channel.recv::<Request>().await {
        Ok(received) => received,
        Err(IpcError::Closed) => return,
        Err(e) => return warning!("{e}"),
    };
    let fd = match checked(&request, fds, shared.max_content) {
        Ok(fd) => fd,
        Err(why) => {
            channel.log_refusal(why);
            let reply = Reply::Failed {
                reason: "malformed scan request".into(),
            };
            let _ = channel.send(&reply, &[]).await;
            return;
        }
    };
    let queue_id = request.queue_id.clone();
    let deadline = Instant::now() + shared.timeout;
    // DKIM and DMARC first (DNS, on this task), within the same deadline.
    let verification = match &shared.sender_checks {
        Some(checks) if checks.applies(&request.sender_auth) => {
            match tokio::time::timeout(shared.timeout, verify(checks, &fd, &request)).await {
                Ok(Ok(verification)) => Some(verification),
                Ok(Err(reason)) => {
                    warning!("{queue_id}: sender checks failed: {reason}");
                    let _ = channel.send(&Reply::Failed { reason }, &[]).await;
                    return;
                }
                Err(_) => {
                    warning!("{queue_id}: DKIM/DMARC checks timed out (scanner_timeout)");
                    let reply = Reply::Failed {
                        reason: "DKIM/DMARC checks timed out".into(),
                    };
                    let _ = channel.send(&reply, &[]).await;
                    return;
                }
            }
        }
        _ => None,
    };
    let work = shared.clone();
    let facts = verification.as_ref().map(|v| v.facts.clone());
    let mut scan = tokio::task::spawn_blocking(move || {
        scan_descriptor(&work, fd, &request, facts.as_ref(), deadline)
    });
    let mut abandoned = false;
    let left = deadline.saturating_duration_since(Instant::now());
    let reply = match tokio::time::timeout(left, &mut scan).await {
        Ok(Ok(Ok(mut verdict))) => {
            if let (Some(checks), Some(verification)) = (&shared.sender_checks, &verification) {
                checks.apply(verification, &mut verdict);
            }
            log_verdict(&queue_id, &verdict);
            Reply::Verdict(Box::new(verdict))
        }
        Ok(Ok(Err(reason))) => {
            warning!("{queue_id}: scan failed: {reason}");
            Reply::Failed { reason }
        }
        Ok(Err(join_error)) => {
            warning!("{queue_id}: scan task failed: {join_error}");
            Reply::Failed {
                reason: "internal error in the scanner".into(),
            }
        }
        Err(_) => {
            warning!("{queue_id}: scan timed out (scanner_timeout)");
            abandoned = true;
            Reply::Failed {
                reason: "scan timed out".into(),
            }
        }
    };
    if let Err(e) = channel.send(&reply, &[]).await {
        warning!("{queue_id}: cannot answer cleanup: {e}");
    }
    if abandoned {
        // The scan checks its deadline and stops by itself; this
        // connection (one of the service's maxproc slots) is held until
        // it has, so timed-out scans cannot pile up threads.
        let started = Instant::now();
        let _ = scan.await;
        info!(
            "{queue_id}: timed-out scan abandoned after another {} ms",
            started.elapsed().as_millis()
        );
    }
}

/// The DKIM and DMARC checks of the message (read again here: the scan
/// reads it on its own thread).
async fn verify(
    checks: &SenderChecks,
    fd: &OwnedFd,
    request: &Request,
) -> Result<mailgate_mailauth::Verification, String> {
    let file = File::from(
        fd.try_clone()
            .map_err(|e| format!("cannot duplicate: {e}"))?,
    );
    let content = tokio::task::spawn_blocking(move || {
        let mut content = vec![0u8; file.metadata()?.len() as usize];
        file.read_exact_at(&mut content, 0).map(|()| content)
    })
    .await
    .map_err(|e| format!("internal error in the scanner: {e}"))?
    .map_err(|e| format!("cannot read the message: {e}"))?;
    let client = request
        .client
        .addr
        .parse()
        .map_err(|_| format!("client address {:?} is not an address", request.client.addr))?;
    let verification = checks
        .verify(
            &content,
            client,
            &request.client.helo,
            &request.sender,
            &request.sender_auth,
        )
        .await;
    info!(
        "{}: Authentication-Results: {}",
        request.queue_id, verification.results
    );
    Ok(verification)
}

/// Messages at least this large are followed by a malloc_trim.
const TRIM_AFTER: u64 = 256 * 1024;

/// The request's one descriptor, when the request is valid and the
/// descriptor is sealed content of the announced size within `max`.
fn checked(request: &Request, fds: Vec<OwnedFd>, max: u64) -> Result<OwnedFd, String> {
    request.validate().map_err(|e| e.to_string())?;
    let [fd]: [OwnedFd; 1] = fds
        .try_into()
        .map_err(|fds: Vec<OwnedFd>| format!("{} descriptors, not one", fds.len()))?;
    validate::sealed_content(&fd, request.size, max).map_err(|e| e.to_string())?;
    Ok(fd)
}

/// Reads the content with positioned reads (the file offset belongs to
/// cleanup too) and scans it; clamd gets the bytes or, with FILDES, the
/// descriptor itself. A panic anywhere in the checks is caught
/// here and costs this message a temporary failure, not the service.
fn scan_descriptor(
    shared: &Shared,
    fd: OwnedFd,
    request: &Request,
    facts: Option<&Facts>,
    deadline: Instant,
) -> Result<Verdict, String> {
    let result = scan_content(shared, fd, request, facts, deadline);
    // The content and everything parsed from it were freed; after a large
    // message, give the memory back to the system rather than keep the peak
    // of the largest message scanned so far (glibc keeps freed memory in its
    // arenas). After a small one there is little to give back, and trimming
    // costs the next scans the page faults of growing the heap again.
    if request.size >= TRIM_AFTER {
        // SAFETY: malloc_trim only releases free memory; it is safe to call
        // at any time from any thread.
        unsafe {
            libc::malloc_trim(0);
        }
    }
    result
}

fn scan_content(
    shared: &Shared,
    fd: OwnedFd,
    request: &Request,
    facts: Option<&Facts>,
    deadline: Instant,
) -> Result<Verdict, String> {
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
    match catch_unwind(AssertUnwindSafe(|| {
        shared
            .scanner
            .scan(&content, file.as_fd(), request, facts, deadline)
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
