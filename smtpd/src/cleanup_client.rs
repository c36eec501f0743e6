//! The conversation with cleanup, one connection per mail transaction
//! (libs/ipc protocol::cleanup), and the sealed memfd that carries the
//! message content to it.
//!
//! Dropping a `CleanupSession` closes the connection, which tells cleanup
//! to discard the transaction: that is how RSET, a new MAIL, QUIT and a lost
//! client abandon one.

use std::fmt;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use mailgate_ipc::envelope::Envelope;
use mailgate_ipc::protocol::cleanup::{Reply as CleanupReply, Request};
use mailgate_ipc::{Channel, IpcError};
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::reply::Reply;

#[derive(Debug)]
pub enum CleanupError {
    Connect(IpcError),
    Ipc(IpcError),
    /// cleanup did not answer within ipc_timeout.
    Timeout,
    /// cleanup answered something the protocol does not allow here.
    Unexpected(String),
}

impl fmt::Display for CleanupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CleanupError::Connect(e) => write!(f, "cannot connect to the cleanup service: {e}"),
            CleanupError::Ipc(e) => write!(f, "cleanup service: {e}"),
            CleanupError::Timeout => write!(f, "cleanup service: no answer within ipc_timeout"),
            CleanupError::Unexpected(what) => write!(f, "cleanup service: unexpected {what}"),
        }
    }
}

impl std::error::Error for CleanupError {}

/// What cleanup made of a committed message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Durable in the queue: the only case that earns a 250.
    Queued(String),
    Rejected(Reply),
    Deferred(Reply),
}

/// One transaction's connection to cleanup.
pub struct CleanupSession {
    channel: Channel,
    queue_id: String,
    timeout: Duration,
}

impl CleanupSession {
    /// Connects to `socket` and opens a transaction; cleanup names its queue ID.
    pub async fn begin(socket: &Path, timeout: Duration) -> Result<CleanupSession, CleanupError> {
        // Boxed: a Channel call future holds a 64 KiB receive buffer, and
        // inlined into every session future it would be copied about on the
        // stack at each level of polling (enough, in debug builds, to
        // overflow a 2 MiB thread stack).
        let connect = Box::pin(async {
            let mut channel = Channel::connect(socket)
                .await
                .map_err(CleanupError::Connect)?;
            let reply = channel
                .call(&Request::Begin, &[])
                .await
                .map_err(CleanupError::Ipc)?;
            Ok((channel, reply))
        });
        let (channel, reply) = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| CleanupError::Timeout)??;
        match reply {
            CleanupReply::Started { queue_id } if is_queue_id(&queue_id) => Ok(CleanupSession {
                channel,
                queue_id,
                timeout,
            }),
            other => Err(CleanupError::Unexpected(format!(
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
        mut self,
        envelope: Envelope,
        content: &SealedContent,
    ) -> Result<Outcome, CleanupError> {
        let request = Request::Commit {
            envelope: Box::new(envelope),
        };
        let fds = [content.file.as_fd()];
        // Boxed for the reason given in `begin`.
        let call = Box::pin(self.channel.call(&request, &fds));
        let reply = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| CleanupError::Timeout)?
            .map_err(CleanupError::Ipc)?;
        // A reply of the wrong class must never turn into an acceptance or
        // into a permanent refusal cleanup did not mean.
        match reply {
            CleanupReply::Queued { queue_id } if is_queue_id(&queue_id) => {
                Ok(Outcome::Queued(queue_id))
            }
            CleanupReply::Rejected(r) if (500..600).contains(&r.code) => {
                Ok(Outcome::Rejected(Reply::from(&r)))
            }
            CleanupReply::Deferred(r) if (400..500).contains(&r.code) => {
                Ok(Outcome::Deferred(Reply::from(&r)))
            }
            other => Err(CleanupError::Unexpected(format!(
                "answer to Commit: {other:?}"
            ))),
        }
    }
}

/// A queue ID goes into replies and log lines: letters and digits only.
fn is_queue_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The message content being written during DATA: an anonymous memory file.
pub struct Content {
    file: File,
}

/// The content, sealed: neither smtpd nor cleanup can change it any more.
pub struct SealedContent {
    file: File,
}

impl Content {
    pub fn new() -> io::Result<Content> {
        let fd = memfd_create(
            c"smtpd-message",
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

    /// Seals the content against every change and rewinds it, so cleanup
    /// (which shares the file offset) reads it from the start.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn sealed_content_cannot_change() {
        let mut content = Content::new().unwrap();
        content.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let mut sealed = content.seal().unwrap();
        let mut text = String::new();
        sealed.file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "Subject: x\r\n\r\nbody\r\n");
        assert!(sealed.file.write_all(b"more").is_err());
        assert!(sealed.file.set_len(0).is_err());
    }

    #[test]
    fn queue_ids() {
        assert!(is_queue_id("4Xq2Lp0ABC"));
        assert!(!is_queue_id(""));
        assert!(!is_queue_id("A B"));
        assert!(!is_queue_id("A\r\n250 ok"));
    }
}
