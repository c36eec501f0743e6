//! Local submission: a message made on this host (a delivery status
//! notification from qmgr, a `mailgate sendmail` from a cron job) enters the
//! queue through cleanup with the same Begin/Commit protocol smtpd uses, so
//! it gets its Received header, its queue file and its log lines like any
//! other message.

use std::fmt;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::Duration;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::envelope::{ClientInfo, Envelope, SmtpReply};
use crate::protocol::cleanup::{Actions, Reply, Request};
use crate::spool::is_queue_id;
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

/// The message content being written: an anonymous memory file, so the
/// writer needs no file system and the reader gets a descriptor.
pub struct Content {
    file: File,
}

/// The content, sealed and rewound: nobody can change it after the
/// hand-over, and cleanup (which shares the file offset) reads it from the
/// start.
pub struct SealedContent {
    file: File,
}

impl SealedContent {
    /// Its size in bytes, as the request announces it.
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

impl AsFd for SealedContent {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Content {
    pub fn new() -> io::Result<Content> {
        let fd = memfd_create(
            c"message",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        Ok(Content {
            file: File::from(fd),
        })
    }

    /// Writing to a memfd copies into page cache; it does not block on I/O.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    /// Everything written so far (the writer goes on at the end).
    pub fn contents(&mut self) -> io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        self.file.rewind()?;
        let mut out = Vec::new();
        let read = self.file.read_to_end(&mut out);
        self.file.seek(SeekFrom::End(0))?;
        read?;
        Ok(out)
    }

    pub fn seal(mut self) -> io::Result<SealedContent> {
        self.file.rewind()?;
        let seals = SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_WRITE
            | SealFlag::F_SEAL_SEAL;
        fcntl(&self.file, FcntlArg::F_ADD_SEALS(seals))?;
        Ok(SealedContent { file: self.file })
    }
}

/// `bytes` in a sealed memfd.
pub fn sealed_content(bytes: &[u8]) -> io::Result<SealedContent> {
    let mut content = Content::new()?;
    content.write(bytes)?;
    content.seal()
}

/// What cleanup made of a committed message. Only `Queued` means the queue
/// file is durable; a reply of the wrong class is an error, never turned
/// into an acceptance or into a refusal cleanup did not mean.
#[derive(Debug, PartialEq, Eq)]
pub enum Committed {
    Queued(String),
    Rejected(SmtpReply),
    Deferred(SmtpReply),
}

/// One transaction with cleanup. Dropping it closes the connection, which
/// tells cleanup to discard the transaction (RSET, a lost client).
pub struct CleanupSession {
    channel: Channel,
    queue_id: String,
    timeout: Duration,
}

impl CleanupSession {
    /// Connects to `socket` and opens a transaction; cleanup names its
    /// queue ID.
    pub async fn begin(socket: &Path, timeout: Duration) -> Result<CleanupSession, SubmitError> {
        // Boxed: a Channel call future is large, and inlined into every
        // caller's future it would be copied about on the stack at each
        // level of polling.
        let connect = Box::pin(async {
            let mut channel = Channel::connect(socket)
                .await
                .map_err(SubmitError::Connect)?;
            let reply = channel
                .call::<_, Reply>(&Request::Begin, &[])
                .await
                .map_err(SubmitError::Ipc)?;
            Ok((channel, reply))
        });
        let (channel, reply) = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| SubmitError::Timeout)??;
        match reply {
            Reply::Started { queue_id } if is_queue_id(&queue_id) => Ok(CleanupSession {
                channel,
                queue_id,
                timeout,
            }),
            other => Err(SubmitError::Unexpected(format!(
                "answer to Begin: {other:?}"
            ))),
        }
    }

    pub fn queue_id(&self) -> &str {
        &self.queue_id
    }

    /// Hands over the envelope and the sealed content and waits for
    /// cleanup's verdict.
    pub async fn commit(
        self,
        envelope: Envelope,
        content: &SealedContent,
    ) -> Result<Committed, SubmitError> {
        self.commit_with(envelope, Actions::default(), content)
            .await
    }

    /// [`CleanupSession::commit`] with what smtpd's access restrictions
    /// decided besides accepting the message.
    pub async fn commit_with(
        mut self,
        envelope: Envelope,
        actions: Actions,
        content: &SealedContent,
    ) -> Result<Committed, SubmitError> {
        let size = content.size().map_err(SubmitError::Content)?;
        let request = Request::Commit {
            envelope: Box::new(envelope),
            actions: Box::new(actions),
            size,
        };
        let fds = [content.file.as_fd()];
        // Boxed for the reason given in `begin`.
        let call = Box::pin(self.channel.call::<_, Reply>(&request, &fds));
        let reply = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| SubmitError::Timeout)?
            .map_err(SubmitError::Ipc)?;
        match reply {
            Reply::Queued { queue_id } if is_queue_id(&queue_id) => Ok(Committed::Queued(queue_id)),
            Reply::Rejected(r) if (500..600).contains(&r.code) => Ok(Committed::Rejected(r)),
            Reply::Deferred(r) if (400..500).contains(&r.code) => Ok(Committed::Deferred(r)),
            other => Err(SubmitError::Unexpected(format!(
                "answer to Commit: {other:?}"
            ))),
        }
    }
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
    submit_with(socket, envelope, Actions::default(), content, timeout).await
}

/// [`submit`] with actions for cleanup (the content filter of locally
/// submitted mail, as Postfix's pickup applies content_filter).
pub async fn submit_with(
    socket: &Path,
    envelope: Envelope,
    actions: Actions,
    content: &[u8],
    timeout: Duration,
) -> Result<String, SubmitError> {
    let content = sealed_content(content).map_err(SubmitError::Content)?;
    let session = CleanupSession::begin(socket, timeout).await?;
    match session.commit_with(envelope, actions, &content).await? {
        Committed::Queued(queue_id) => Ok(queue_id),
        Committed::Rejected(r) => Err(SubmitError::Rejected(r)),
        Committed::Deferred(r) => Err(SubmitError::Deferred(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn content_is_sealed_and_rewound() {
        let mut sealed = sealed_content(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let mut text = String::new();
        sealed.file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "Subject: x\r\n\r\nbody\r\n");
        assert!(sealed.file.write_all(b"more").is_err());
        assert!(sealed.file.set_len(0).is_err());
    }
}
