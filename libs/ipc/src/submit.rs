//! Local submission: a message made on this host (a delivery status
//! notification from qmgr, a `mailgate sendmail` from a cron job) enters the
//! queue through cleanup with the same Begin/Commit protocol smtpd uses, so
//! it gets its Received header, its queue file and its log lines like any
//! other message.

use std::fmt;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::envelope::{ClientInfo, Envelope, SmtpReply};
use crate::protocol::cleanup::{Reply, Request};
use crate::{Channel, IpcError};

#[derive(Debug)]
pub enum SubmitError {
    /// The content could not be put in a sealed memory file.
    Content(io::Error),
    Connect(IpcError),
    Ipc(IpcError),
    /// cleanup did not answer in time.
    Timeout,
    /// cleanup refused the message for good.
    Rejected(SmtpReply),
    /// cleanup could not take the message now.
    Deferred(SmtpReply),
    /// cleanup answered what the protocol does not allow here.
    Unexpected(String),
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Content(e) => write!(f, "cannot hold the message in memory: {e}"),
            SubmitError::Connect(e) => write!(f, "cannot connect to the cleanup service: {e}"),
            SubmitError::Ipc(e) => write!(f, "cleanup service: {e}"),
            SubmitError::Timeout => write!(f, "cleanup service: no answer in time"),
            SubmitError::Rejected(r) => write!(f, "message rejected: {r}"),
            SubmitError::Deferred(r) => write!(f, "message not queued now: {r}"),
            SubmitError::Unexpected(what) => write!(f, "cleanup service: unexpected {what}"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// The client of a message made on this host, as the Received header and
/// the logs name it.
pub fn local_client() -> ClientInfo {
    ClientInfo {
        name: "localhost".into(),
        addr: "127.0.0.1".into(),
        port: 0,
        helo: "localhost".into(),
        protocol: "local".into(),
    }
}

/// The content in a sealed memfd, rewound: cleanup reads it and nobody can
/// change it after the hand-over.
pub fn sealed_content(content: &[u8]) -> io::Result<File> {
    let fd = memfd_create(
        c"local-message",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut file = File::from(fd);
    file.write_all(content)?;
    file.rewind()?;
    let seals = SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_SEAL;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(file)
}

/// Queues `content` (CRLF line ends, not dot-stuffed) with `envelope`
/// through the cleanup service at `socket`. Returns the new queue ID once
/// the queue file is durable.
pub async fn submit(
    socket: &Path,
    envelope: Envelope,
    content: &[u8],
    timeout: Duration,
) -> Result<String, SubmitError> {
    let file = sealed_content(content).map_err(SubmitError::Content)?;
    // Boxed: a Channel call holds a large receive buffer (see smtpd's
    // cleanup client).
    let exchange = Box::pin(async {
        let mut channel = Channel::connect(socket)
            .await
            .map_err(SubmitError::Connect)?;
        match channel
            .call::<_, Reply>(&Request::Begin, &[])
            .await
            .map_err(SubmitError::Ipc)?
        {
            Reply::Started { .. } => {}
            other => {
                return Err(SubmitError::Unexpected(format!(
                    "answer to Begin: {other:?}"
                )));
            }
        }
        let request = Request::Commit {
            envelope: Box::new(envelope),
        };
        channel
            .call::<_, Reply>(&request, &[file.as_fd()])
            .await
            .map_err(SubmitError::Ipc)
    });
    let reply = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| SubmitError::Timeout)??;
    match reply {
        Reply::Queued { queue_id } if crate::spool::is_queue_id(&queue_id) => Ok(queue_id),
        Reply::Rejected(r) => Err(SubmitError::Rejected(r)),
        Reply::Deferred(r) => Err(SubmitError::Deferred(r)),
        other => Err(SubmitError::Unexpected(format!(
            "answer to Commit: {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn content_is_sealed_and_rewound() {
        let mut file = sealed_content(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "Subject: x\r\n\r\nbody\r\n");
        assert!(file.write_all(b"more").is_err());
    }
}
