//! Framed messages over a Unix stream socket, with file descriptors.
//!
//! A frame is a 4-byte little-endian length, a 1-byte descriptor count and
//! that many bytes of postcard. Descriptors travel with SCM_RIGHTS in the same
//! sendmsg as the frame's first byte, so they have always arrived by the time
//! the frame is complete; the receiver queues them and hands each frame the
//! count its header names. Descriptors no frame announced are closed and the
//! connection refused: a peer cannot make the receiver hold descriptors it
//! never asked for.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
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

/// How much one recvmsg reads: frames are small (contents travel as
/// descriptors); a larger one takes several reads.
const SCRATCH: usize = 16 * 1024;

/// One end of a connection between two mailgate processes.
pub struct Channel {
    stream: UnixStream,
    inbuf: Vec<u8>,
    /// Where recvmsg reads to; on the heap so futures holding a Channel
    /// stay small, and made on the first receive (a channel that only
    /// sends, or sits idle, costs nothing for it).
    scratch: Vec<u8>,
    fds: VecDeque<OwnedFd>,
    /// Who connected, when a service checked it on accept.
    peer: Option<crate::peer::PeerCred>,
}

impl Channel {
    pub fn new(stream: UnixStream) -> Channel {
        Channel {
            stream,
            inbuf: Vec::new(),
            scratch: Vec::new(),
            fds: VecDeque::new(),
            peer: None,
        }
    }

    /// A connection a service accepted from `peer` (checked by its callers).
    pub fn accepted(stream: UnixStream, peer: crate::peer::PeerCred) -> Channel {
        let mut channel = Channel::new(stream);
        channel.peer = Some(peer);
        channel
    }

    /// The peer checked on accept, for log lines.
    pub fn peer(&self) -> Option<crate::peer::PeerCred> {
        self.peer
    }

    /// Logs that a request from this connection's peer is refused, and why.
    pub fn log_refusal(&self, why: impl std::fmt::Display) {
        let peer = self
            .peer
            .map(|p| p.to_string())
            .unwrap_or_else(|| "an unknown peer".into());
        mailgate_log::warning!("refusing a request from {peer}: {why}");
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

    /// The stream, for the peer's credentials.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
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
                // Descriptors travel with the first byte of their frame: with
                // no next frame begun, any left over were never announced.
                if self.inbuf.is_empty() && !self.fds.is_empty() {
                    self.fds.clear();
                    return Err(IpcError::Protocol(
                        "descriptors that no frame announced".into(),
                    ));
                }
                return Ok((message, fds));
            }
            let socket = self.stream.as_raw_fd();
            if self.scratch.is_empty() {
                self.scratch = vec![0; SCRATCH];
            }
            let scratch = &mut self.scratch;
            let (n, fds, truncated) = self
                .stream
                .async_io(Interest::READABLE, || recv_with_fds(socket, scratch))
                .await?;
            self.fds.extend(fds);
            if truncated || self.fds.len() > MAX_FDS_PER_FRAME {
                self.fds.clear();
                return Err(IpcError::Protocol(
                    "more descriptors than a frame may carry".into(),
                ));
            }
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

/// One recvmsg: the bytes, the descriptors, and whether the kernel had to
/// drop descriptors that did not fit (it closes those). Written on libc
/// rather than nix's recvmsg because that one reports a truncated control
/// buffer as an error before handing over the descriptors that did arrive,
/// which would then stay open in this process for good.
fn recv_with_fds(socket: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>, bool)> {
    // Room for one SCM_RIGHTS message of MAX_FDS_PER_FRAME descriptors,
    // in u64s so the buffer is aligned for cmsghdr.
    let mut control = [0u64; 8];
    const _: () = assert!(
        (MAX_FDS_PER_FRAME * std::mem::size_of::<RawFd>()) + 16 <= 8 * 8,
        "the control buffer holds a full frame's descriptors"
    );
    let space = std::mem::size_of_val(&control);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid (no name, no iov, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space.min(cmsg_space()) as _;
    // SAFETY: msg points at buffers (iov over `buf`, `control`) that outlive
    // the call and whose lengths it states.
    let n = unsafe { libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR/CMSG_NXTHDR walk the
    // control buffer within msg_controllen, and each SCM_RIGHTS message
    // holds (cmsg_len - CMSG_LEN(0)) / size_of::<c_int>() descriptors.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    // The kernel just installed this descriptor in our table
                    // for us; nothing else owns it.
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, fds, msg.msg_flags & libc::MSG_CTRUNC != 0))
}

/// CMSG_SPACE of a full frame's descriptors.
fn cmsg_space() -> usize {
    // SAFETY: CMSG_SPACE only computes a length.
    unsafe { libc::CMSG_SPACE((MAX_FDS_PER_FRAME * std::mem::size_of::<RawFd>()) as u32) as usize }
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

    /// Raw frame bytes with descriptors, as a hostile peer might send them.
    fn send_raw(socket: &UnixStream, bytes: &[u8], fds: &[RawFd]) {
        let iov = [IoSlice::new(bytes)];
        let rights = [ControlMessage::ScmRights(fds)];
        sendmsg::<()>(socket.as_raw_fd(), &iov, &rights, MsgFlags::empty(), None).unwrap();
    }

    #[tokio::test]
    async fn unannounced_descriptors_are_closed_and_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut b = Channel::new(b);
        let file = tempfile::tempfile().unwrap();
        // A frame that announces no descriptor, sent with two.
        let frame = encode(&Msg::Hello("x".into()), 0).unwrap();
        a.writable().await.unwrap();
        send_raw(&a, &frame, &[file.as_raw_fd(), file.as_raw_fd()]);
        let got = b.recv::<Msg>().await;
        assert!(
            matches!(&got, Err(IpcError::Protocol(m)) if m.contains("no frame announced")),
            "{:?}",
            got.map(|(m, _)| m)
        );
        assert!(b.fds.is_empty(), "the descriptors are not kept");
    }

    #[tokio::test]
    async fn more_descriptors_than_a_frame_carries_are_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut b = Channel::new(b);
        let file = tempfile::tempfile().unwrap();
        let frame = encode(&Msg::Hello("x".into()), 1).unwrap();
        a.writable().await.unwrap();
        let many = [file.as_raw_fd(); MAX_FDS_PER_FRAME + 1];
        send_raw(&a, &frame[..1], &many);
        let got = b.recv::<Msg>().await;
        assert!(
            matches!(&got, Err(IpcError::Protocol(m)) if m.contains("more descriptors")),
            "{:?}",
            got.map(|(m, _)| m)
        );
        assert!(b.fds.is_empty());
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
