//! The client connection: input and output buffers, and the time limits on
//! reading and writing.
//!
//! Replies are buffered and written only when the session needs more input
//! than it has (RFC 2920): a pipelining client gets its answers in order
//! and in as few packets as possible, and a client that sends one command
//! at a time gets each answer at once.
//!
//! Every read and write is bounded by smtpd_timeout. With
//! smtpd_per_request_deadline (the default while the service is under
//! stress) the limit covers a whole command line or reply instead of each
//! read, so a client that trickles a byte at a time cannot hold a slot for
//! long; the DATA phase then has a budget that grows by one second per
//! smtpd_min_data_rate bytes received, never beyond smtpd_timeout.

use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::reply::Reply;
use crate::settings::Timing;

/// How much the session asks the socket for at a time in the DATA phase.
pub const READ_CHUNK: usize = 16 * 1024;

/// How much it asks for when it waits for a command: an idle session
/// holds no more input buffer than this (a command line is at most
/// line_length_limit; a longer one, or pipelined commands, take more reads).
pub const COMMAND_CHUNK: usize = 1024;

/// Replies are written from a buffer that keeps no more capacity than this
/// between replies.
const OUTPUT_KEPT: usize = 4 * 1024;

pub enum IoError {
    Lost,
    Timeout,
}

pub enum Line {
    Text(Vec<u8>),
    TooLong,
}

/// The socket with its input and output buffers.
pub struct Conn<S> {
    pub stream: S,
    /// The last line read ended with a bare LF.
    pub bare_lf: bool,
    inbuf: Vec<u8>,
    /// Bytes of `inbuf` before this offset are consumed.
    start: usize,
    outbuf: Vec<u8>,
    /// `name[addr]` for the `-v` protocol lines.
    pub label: String,
    /// The dialogue is logged line by line (`-v`, or debug_peer_list).
    pub verbose: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            bare_lf: false,
            inbuf: Vec::new(),
            start: 0,
            outbuf: Vec::new(),
            label: String::new(),
            verbose: mailgate_log::verbose(),
        }
    }

    pub fn buffered(&self) -> &[u8] {
        &self.inbuf[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.inbuf.len());
        if self.start == self.inbuf.len() {
            self.inbuf.clear();
            self.start = 0;
        }
    }

    pub fn queue(&mut self, reply: &Reply) {
        let wire = reply.to_wire();
        if self.verbose {
            for line in String::from_utf8_lossy(&wire).lines() {
                mailgate_log::info!("> {}: {line}", self.label);
            }
        }
        self.outbuf.extend_from_slice(&wire);
    }

    /// Queues a line that is not a Reply (an AUTH challenge, `334 ...`).
    pub fn queue_raw(&mut self, line: &[u8]) {
        self.outbuf.extend_from_slice(line);
    }

    /// Forgets all input read so far (after STARTTLS: it came in clear).
    pub fn discard_input(&mut self) {
        self.inbuf.clear();
        self.start = 0;
    }

    /// Writes the queued replies, within `timeout` for all of them.
    pub async fn flush(&mut self, timeout: Duration) -> Result<(), IoError> {
        if self.outbuf.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.outbuf).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Err(_) => Err(IoError::Timeout),
            Ok(Err(_)) => Err(IoError::Lost),
            Ok(Ok(())) => {
                if self.outbuf.capacity() > OUTPUT_KEPT {
                    self.outbuf = Vec::new();
                } else {
                    self.outbuf.clear();
                }
                Ok(())
            }
        }
    }

    /// Reads more input before `deadline`, first sending the replies the
    /// client waits for; returns early when `wake` fires (the service's
    /// limits changed, so the caller's deadline may have too).
    pub async fn fill_until(
        &mut self,
        deadline: Instant,
        wake: &mut Wake,
    ) -> Result<Filled, IoError> {
        self.fill_chunk(deadline, wake, READ_CHUNK).await
    }

    /// [`Conn::fill_until`] with room for `chunk` bytes. With nothing
    /// buffered, a larger buffer is given back first: a session waiting for
    /// its next command holds only `chunk` bytes of input buffer.
    async fn fill_chunk(
        &mut self,
        deadline: Instant,
        wake: &mut Wake,
        chunk: usize,
    ) -> Result<Filled, IoError> {
        self.flush(deadline.saturating_duration_since(Instant::now()))
            .await?;
        if self.start > 0 {
            self.inbuf.drain(..self.start);
            self.start = 0;
        }
        if self.inbuf.is_empty() && self.inbuf.capacity() > chunk {
            self.inbuf = Vec::new();
        }
        self.inbuf.reserve(chunk);
        let sleep = tokio::time::sleep_until(deadline.into());
        tokio::select! {
            read = self.stream.read_buf(&mut self.inbuf) => match read {
                Err(_) | Ok(0) => Err(IoError::Lost),
                Ok(n) => Ok(Filled::Data(n)),
            },
            () = sleep => Err(IoError::Timeout),
            () = wake.fired() => Ok(Filled::Woken),
        }
    }

    /// True when the client has sent more than it was asked for: input is
    /// buffered, or arrives without waiting. Nothing read is lost.
    pub async fn has_input(&mut self) -> bool {
        if !self.buffered().is_empty() {
            return true;
        }
        self.inbuf.reserve(COMMAND_CHUNK);
        // The read polled once: only input already there. (Not a zero
        // timeout: tokio's timer rounds it up to its next 1 ms tick, which
        // cost every reply that checks for pipelining a millisecond.)
        // Dropping a pending read_buf loses nothing: it only fills the
        // buffer when it is ready.
        let mut read = std::pin::pin!(self.stream.read_buf(&mut self.inbuf));
        let polled = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
        matches!(polled, Poll::Ready(Ok(n)) if n > 0)
    }

    /// One command line without its line end. A bare LF ends a line too
    /// (smtpd_forbid_bare_newline = normalize). Longer than `limit`: the
    /// whole line is read and dropped, holding no more than `limit` plus
    /// one read in memory. The limits are asked of `timing` again whenever
    /// `wake` fires, so a session already waiting gets the shorter ones
    /// when the service comes under stress.
    pub async fn read_line(
        &mut self,
        limit: usize,
        timing: &(dyn Fn() -> Timing + Sync),
        wake: &mut Wake,
    ) -> Result<Line, IoError> {
        let started = Instant::now();
        let mut last_input = started;
        let mut too_long = false;
        loop {
            let buf = self.buffered();
            if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line = &buf[..pos];
                let bare_lf = !line.ends_with(b"\r");
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let result = if too_long || line.len() > limit {
                    Line::TooLong
                } else {
                    Line::Text(line.to_vec())
                };
                self.consume(pos + 1);
                self.bare_lf = bare_lf;
                return Ok(result);
            }
            if buf.len() > limit {
                too_long = true;
                let n = buf.len();
                self.consume(n);
            }
            let now = timing();
            let deadline = if now.per_request_deadline {
                started + now.timeout
            } else {
                last_input + now.timeout
            };
            if let Filled::Data(_) = self.fill_chunk(deadline, wake, COMMAND_CHUNK).await? {
                last_input = Instant::now();
            }
        }
    }
}

/// What [`Conn::fill_until`] got.
pub enum Filled {
    Data(usize),
    Woken,
}

/// Fires when the service's limits change (it comes under stress or out of
/// it).
pub struct Wake(Option<tokio::sync::watch::Receiver<bool>>);

impl Wake {
    pub fn new(receiver: tokio::sync::watch::Receiver<bool>) -> Wake {
        Wake(Some(receiver))
    }

    async fn fired(&mut self) {
        match &mut self.0 {
            Some(receiver) => {
                if receiver.changed().await.is_err() {
                    // The sender is gone: nothing will change any more.
                    self.0 = None;
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// The time the DATA phase may still wait, per smtpd_min_data_rate.
pub struct DataBudget {
    timing: Timing,
    min_rate: u64,
    left: Duration,
}

impl DataBudget {
    pub fn new(timing: Timing, min_rate: u64) -> DataBudget {
        DataBudget {
            timing,
            min_rate,
            left: timing.timeout,
        }
    }

    /// The limit for the next read.
    pub fn next_timeout(&self) -> Duration {
        if self.timing.per_request_deadline {
            self.left
        } else {
            self.timing.timeout
        }
    }

    /// The service's limits changed: the new timeout caps what is left.
    pub fn retime(&mut self, timing: Timing) {
        self.timing = timing;
        self.left = self.left.min(timing.timeout);
    }

    /// After a read that took `elapsed` and brought `bytes`.
    pub fn spent(&mut self, elapsed: Duration, bytes: usize) {
        if !self.timing.per_request_deadline {
            return;
        }
        let earned = match self.min_rate {
            0 => self.timing.timeout,
            rate => Duration::from_secs_f64(bytes as f64 / rate as f64),
        };
        self.left = (self.left.saturating_sub(elapsed) + earned).min(self.timing.timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a DATA phase's 16 KiB reads, a session waiting for its next
    /// command holds 1 KiB of input buffer, and no large reply buffer.
    #[tokio::test]
    async fn an_idle_session_gives_back_its_large_buffers() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut conn = Conn::new(server);
        let timing = Timing {
            timeout: Duration::from_secs(10),
            hard_error_limit: 1,
            per_request_deadline: false,
        };
        let (_stress, receiver) = tokio::sync::watch::channel(false);
        let mut wake = Wake::new(receiver);
        client.write_all(&[b'x'; 20_000]).await.unwrap();
        let deadline = Instant::now() + timing.timeout;
        while conn.buffered().len() < 20_000 {
            let _ = conn.fill_until(deadline, &mut wake).await;
        }
        assert!(conn.inbuf.capacity() >= READ_CHUNK);
        conn.consume(20_000);
        conn.queue_raw(&[b'2'; 10_000]);
        client.write_all(b"NOOP\r\n").await.unwrap();
        let line = conn.read_line(2048, &|| timing, &mut wake).await;
        assert!(matches!(line, Ok(Line::Text(t)) if t == b"NOOP"));
        assert_eq!(conn.inbuf.capacity(), COMMAND_CHUNK);
        assert_eq!(conn.outbuf.capacity(), 0);
        let mut reply = vec![0; 10_000];
        client.read_exact(&mut reply).await.unwrap();
    }

    #[test]
    fn the_data_budget_grows_with_data_and_never_beyond_the_timeout() {
        let timing = Timing {
            timeout: Duration::from_secs(10),
            hard_error_limit: 1,
            per_request_deadline: true,
        };
        let mut b = DataBudget::new(timing, 500);
        b.spent(Duration::from_secs(4), 1000);
        assert_eq!(b.next_timeout(), Duration::from_secs(8));
        b.spent(Duration::from_secs(1), 100_000);
        assert_eq!(b.next_timeout(), Duration::from_secs(10));
        b.spent(Duration::from_secs(9), 1);
        assert!(b.next_timeout() < Duration::from_secs(2));
        let relaxed = Timing {
            per_request_deadline: false,
            ..timing
        };
        let mut b = DataBudget::new(relaxed, 500);
        b.spent(Duration::from_secs(9), 1);
        assert_eq!(b.next_timeout(), Duration::from_secs(10));
    }
}
