//! One transaction from smtpd: Begin (reserve a queue ID and its incoming/
//! file), Commit (a checked hand-over, then the decision in `deliver`, then
//! the answer).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use mailgate_ipc::envelope::{Envelope, SmtpReply};
use mailgate_ipc::protocol::cleanup::{Actions, Reply, Request};
use mailgate_ipc::spool::{INCOMING, PendingFile};
use mailgate_ipc::validate::{self, Validate};
use mailgate_ipc::{Channel, IpcError};
use mailgate_log::warning;

use crate::Shared;

pub(crate) fn write_error() -> SmtpReply {
    SmtpReply {
        code: 451,
        status: "4.3.0".into(),
        text: "Error: queue file write error".into(),
    }
}

pub async fn run(mut channel: Channel, shared: Arc<Shared>) {
    match channel.recv::<Request>().await {
        Ok((Request::Begin, fds)) if fds.is_empty() => {}
        Ok((Request::Begin, _)) => return channel.log_refusal("Begin with descriptors"),
        Ok((_, _)) => return channel.log_refusal("expected Begin"),
        Err(IpcError::Closed) => return,
        Err(e) => return channel.log_refusal(e),
    }
    let queue_id = shared
        .ids
        .lock()
        .map(|mut ids| ids.next_id())
        .unwrap_or_else(|poisoned| poisoned.into_inner().next_id());
    // Creating an empty file is a directory update in the page cache (no
    // I/O is waited for), done here rather than on a blocking thread: the
    // hand-off would cost more than the call, and smtpd waits for the
    // answer.
    let pending = match PendingFile::create(INCOMING, &queue_id) {
        Ok(pending) => pending,
        Err(e) => {
            warning!("{queue_id}: cannot create queue file: {e}");
            let _ = channel.send(&Reply::Deferred(write_error()), &[]).await;
            return;
        }
    };
    // The file's name is made durable while the message arrives: an fsync
    // of incoming/ that starts now (shared with concurrent sessions), so at
    // the commit only the file's own fsync is left to wait for.
    let dir_synced = tokio::spawn(
        mailgate_ipc::group_sync::for_dir(std::path::Path::new(INCOMING)).sync_async(),
    );
    let reserved = Reserved {
        file: pending,
        dir_synced,
    };
    let started = Reply::Started {
        queue_id: queue_id.clone(),
    };
    if channel.send(&started, &[]).await.is_err() {
        return;
    }
    // Dropping `reserved` anywhere below, without commit, removes the file.
    let (request, fds) = match channel.recv::<Request>().await {
        Ok(received) => received,
        // The client went away or reset the transaction.
        Err(IpcError::Closed) => return,
        Err(e) => return channel.log_refusal(format_args!("{queue_id}: {e}")),
    };
    let (envelope, actions, content) =
        match checked_commit(&request, fds, shared.settings.max_content) {
            Ok(commit) => commit,
            Err((why, reply)) => {
                channel.log_refusal(format_args!("{queue_id}: {why}"));
                let _ = channel.send(&reply, &[]).await;
                return;
            }
        };
    let reply =
        crate::deliver::deliver(&shared, &queue_id, reserved, envelope, actions, content).await;
    let queued = matches!(reply, Reply::Queued { .. });
    if channel.send(&reply, &[]).await.is_err() && queued {
        // The file is durable; the client will not hear 250 and may send
        // again. SMTP allows the duplicate, and losing mail is worse.
        warning!("{queue_id}: smtpd went away after the message was queued");
    }
}

/// A Commit as cleanup takes it: a valid envelope and exactly one
/// descriptor, a memfd sealed against any change (so the scanner and the
/// queue file get what the checks read), of the announced size and within
/// the size limit. Anything else is refused with the reason for the log
/// and the reply for the peer.
fn checked_commit(
    request: &Request,
    fds: Vec<OwnedFd>,
    max_content: u64,
) -> Result<(Envelope, Actions, OwnedFd), (String, Reply)> {
    let malformed = |why: String| {
        (
            why,
            Reply::Rejected(rejected(
                "5.5.0",
                "Error: malformed message hand-over".into(),
            )),
        )
    };
    let Request::Commit {
        envelope,
        actions,
        size,
    } = request
    else {
        return Err(malformed("expected Commit".into()));
    };
    request.validate().map_err(|e| malformed(e.to_string()))?;
    let [content]: [OwnedFd; 1] = fds
        .try_into()
        .map_err(|fds: Vec<OwnedFd>| malformed(format!("Commit with {} descriptors", fds.len())))?;
    match validate::sealed_content(&content, *size, max_content) {
        Ok(_) => Ok((envelope.as_ref().clone(), actions.as_ref().clone(), content)),
        Err(e) if *size > max_content => Err((
            e.to_string(),
            Reply::Rejected(SmtpReply {
                code: 552,
                status: "5.3.4".into(),
                text: "Error: message file too big".into(),
            }),
        )),
        Err(e) => Err(malformed(e.to_string())),
    }
}

pub(crate) fn rejected(status: &str, text: String) -> SmtpReply {
    SmtpReply {
        code: 554,
        status: status.into(),
        text,
    }
}

/// The incoming/ file made at Begin, and the fsync of incoming/ started
/// right after it.
pub(crate) struct Reserved {
    pub(crate) file: PendingFile,
    pub(crate) dir_synced: tokio::task::JoinHandle<io::Result<()>>,
}
