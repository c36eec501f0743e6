//! Framed messages over a Unix stream socket, with file descriptors.
//!
//! A frame is a 4-byte little-endian length, a 1-byte descriptor count and
//! that many bytes of postcard. Descriptors travel with SCM_RIGHTS in the same
//! sendmsg as the frame's first byte, so they have always arrived by the time
//! the frame is complete; the receiver queues them and hands each frame the
//! count its header names.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::Interest;
use tokio::net::UnixStream;

/// Frames larger than this are refused: no legitimate message between two
/// mailgate processes comes near it, and a corrupt length must not make the
/// receiver allocate gigabytes.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
const MAX_FDS_PER_FRAME: usize = 4;
const HEADER: usize = 5;

#[derive(Debug)]
pub enum IpcError {
    Io(io::Error),
    /// The peer closed the connection (between frames).
    Closed,
    /// The peer sent something that is not a frame of the expected protocol.
    Protocol(String),
}

impl std::fmt::Display for IpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpcError::Io(e) => write!(f, "internal socket error: {e}"),
            IpcError::Closed => write!(f, "internal peer closed the connection"),
            IpcError::Protocol(m) => write!(f, "internal protocol error: {m}"),
        }
    }
}

impl std::error::Error for IpcError {}

impl From<io::Error> for IpcError {
    fn from(e: io::Error) -> Self {
        IpcError::Io(e)
    }
}

impl From<nix::Error> for IpcError {
    fn from(e: nix::Error) -> Self {
        IpcError::Io(io::Error::from(e))
    }
}

/// One end of a connection between two mailgate processes.
pub struct Channel {
    stream: UnixStream,
    inbuf: Vec<u8>,
    /// Where recvmsg reads to; on the heap so futures holding a Channel
    /// stay small.
    scratch: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

impl Channel {
    pub fn new(stream: UnixStream) -> Channel {
        Channel {
            stream,
            inbuf: Vec::new(),
            scratch: vec![0; 64 * 1024],
            fds: VecDeque::new(),
        }
    }

    /// Connects to a service socket such as `private/cleanup`.
    pub async fn connect(path: &Path) -> Result<Channel, IpcError> {
        Ok(Channel::new(UnixStream::connect(path).await?))
    }

    /// Sends one message, with descriptors.
    pub async fn send<M: Serialize>(
        &mut self,
        message: &M,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), IpcError> {
        if fds.len() > MAX_FDS_PER_FRAME {
            return Err(IpcError::Protocol(format!(
                "{} descriptors in one frame",
                fds.len()
            )));
        }
        let frame = encode(message, fds.len())?;
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let mut sent = 0;
        while sent < frame.len() {
            let chunk = &frame[sent..];
            let with_fds = sent == 0 && !raw.is_empty();
            let n = self
                .stream
                .async_io(Interest::WRITABLE, || {
                    let iov = [IoSlice::new(chunk)];
                    let rights = [ControlMessage::ScmRights(&raw)];
                    let cmsgs: &[ControlMessage] = if with_fds { &rights } else { &[] };
                    sendmsg::<()>(
                        self.stream.as_raw_fd(),
                        &iov,
                        cmsgs,
                        MsgFlags::MSG_NOSIGNAL,
                        None,
                    )
                    .map_err(io::Error::from)
                })
                .await?;
            sent += n;
        }
        Ok(())
    }

    /// Receives one message and the descriptors that came with it.
    pub async fn recv<M: DeserializeOwned>(&mut self) -> Result<(M, Vec<OwnedFd>), IpcError> {
        loop {
            if let Some((message, nfds, used)) = self.decode_buffered::<M>()? {
                self.inbuf.drain(..used);
                if self.fds.len() < nfds {
                    return Err(IpcError::Protocol(
                        "frame announced descriptors that did not arrive".into(),
                    ));
                }
                let fds = self.fds.drain(..nfds).collect();
                return Ok((message, fds));
            }
            let socket = self.stream.as_raw_fd();
            let scratch = &mut self.scratch;
            let (n, fds) = self
                .stream
                .async_io(Interest::READABLE, || recv_with_fds(socket, scratch))
                .await?;
            self.fds.extend(fds);
            if n == 0 {
                return Err(if self.inbuf.is_empty() {
                    IpcError::Closed
                } else {
                    IpcError::Protocol("connection closed inside a frame".into())
                });
            }
            self.inbuf.extend_from_slice(&self.scratch[..n]);
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn call<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        request: &Q,
        fds: &[BorrowedFd<'_>],
    ) -> Result<A, IpcError> {
        self.send(request, fds).await?;
        Ok(self.recv().await?.0)
    }

    fn decode_buffered<M: DeserializeOwned>(&self) -> Result<Option<(M, usize, usize)>, IpcError> {
        if self.inbuf.len() < HEADER {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.inbuf[0], self.inbuf[1], self.inbuf[2], self.inbuf[3]])
            as usize;
        let nfds = self.inbuf[4] as usize;
        if len > MAX_FRAME || nfds > MAX_FDS_PER_FRAME {
            return Err(IpcError::Protocol(format!(
                "frame of {len} bytes with {nfds} descriptors"
            )));
        }
        if self.inbuf.len() < HEADER + len {
            return Ok(None);
        }
        let message = postcard::from_bytes(&self.inbuf[HEADER..HEADER + len])
            .map_err(|e| IpcError::Protocol(format!("undecodable message: {e}")))?;
        Ok(Some((message, nfds, HEADER + len)))
    }
}

fn encode<M: Serialize>(message: &M, nfds: usize) -> Result<Vec<u8>, IpcError> {
    let body = postcard::to_stdvec(message)
        .map_err(|e| IpcError::Protocol(format!("unencodable message: {e}")))?;
    if body.len() > MAX_FRAME {
        return Err(IpcError::Protocol(format!(
            "message of {} bytes",
            body.len()
        )));
    }
    let mut frame = Vec::with_capacity(HEADER + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.push(nfds as u8);
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn recv_with_fds(socket: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS_PER_FRAME]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut cmsg_space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            for fd in received {
                // SAFETY: the kernel just installed this descriptor in our
                // table for us with SCM_RIGHTS; nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Msg {
        Hello(String),
        Big(Vec<u8>),
    }

    #[tokio::test]
    async fn frames_and_descriptors_cross() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a, mut b) = (Channel::new(a), Channel::new(b));
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"content").unwrap();
        file.rewind().unwrap();
        // The large frame fills the socket buffer: send while receiving.
        let sender = tokio::spawn(async move {
            a.send(&Msg::Hello("x".into()), &[file.as_fd()])
                .await
                .unwrap();
            a.send(&Msg::Big(vec![7; 300_000]), &[]).await.unwrap();
            a
        });
        let (first, fds) = b.recv::<Msg>().await.unwrap();
        assert_eq!(first, Msg::Hello("x".into()));
        assert_eq!(fds.len(), 1);
        let mut text = String::new();
        std::fs::File::from(fds.into_iter().next().unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "content");
        let (second, fds) = b.recv::<Msg>().await.unwrap();
        assert_eq!(second, Msg::Big(vec![7; 300_000]));
        assert!(fds.is_empty());
        drop(sender.await.unwrap());
        assert!(matches!(b.recv::<Msg>().await, Err(IpcError::Closed)));
    }

    #[tokio::test]
    async fn corrupt_length_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut b = Channel::new(b);
        a.writable().await.unwrap();
        a.try_write(&[0xff, 0xff, 0xff, 0x7f, 0]).unwrap();
        assert!(matches!(b.recv::<Msg>().await, Err(IpcError::Protocol(_))));
    }
}
