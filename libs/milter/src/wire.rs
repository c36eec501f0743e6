//! The milter protocol's frames (Sendmail 8.14's version 6, as Postfix's
//! milter8.c speaks it): a 4-byte big-endian length, a command byte, the
//! data. Everything read from a milter is bounded: one frame is at most
//! [`MAX_FRAME`] bytes, and every string in it must end in a NUL inside it.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame accepted from a milter. The MTA offers no larger body
/// chunks than 65535 bytes (no SMFIP_MDS_256K/1M), so a conforming
/// milter's replies stay well below this.
pub const MAX_FRAME: usize = 1 << 20;

/// The largest body chunk sent (Postfix's MILTER_CHUNK_SIZE).
pub const CHUNK: usize = 65535;

pub const VERSION: u32 = 6;

// Commands, MTA to milter.
pub const C_ABORT: u8 = b'A';
pub const C_BODY: u8 = b'B';
pub const C_CONNECT: u8 = b'C';
pub const C_MACRO: u8 = b'D';
pub const C_BODYEOB: u8 = b'E';
pub const C_HELO: u8 = b'H';
pub const C_HEADER: u8 = b'L';
pub const C_MAIL: u8 = b'M';
pub const C_EOH: u8 = b'N';
pub const C_OPTNEG: u8 = b'O';
pub const C_QUIT: u8 = b'Q';
pub const C_RCPT: u8 = b'R';
pub const C_DATA: u8 = b'T';

// Replies, milter to MTA.
pub const R_ADDRCPT: u8 = b'+';
pub const R_DELRCPT: u8 = b'-';
pub const R_ADDRCPT_PAR: u8 = b'2';
pub const R_ACCEPT: u8 = b'a';
pub const R_REPLBODY: u8 = b'b';
pub const R_CONTINUE: u8 = b'c';
pub const R_DISCARD: u8 = b'd';
pub const R_CHGFROM: u8 = b'e';
pub const R_CONN_FAIL: u8 = b'f';
pub const R_ADDHEADER: u8 = b'h';
pub const R_INSHEADER: u8 = b'i';
pub const R_SETSYMLIST: u8 = b'l';
pub const R_CHGHEADER: u8 = b'm';
pub const R_PROGRESS: u8 = b'p';
pub const R_QUARANTINE: u8 = b'q';
pub const R_REJECT: u8 = b'r';
pub const R_SKIP: u8 = b's';
pub const R_TEMPFAIL: u8 = b't';
pub const R_REPLYCODE: u8 = b'y';

// Actions a milter may take (SMFIF_*).
pub const F_ADDHDRS: u32 = 0x01;
pub const F_CHGBODY: u32 = 0x02;
pub const F_ADDRCPT: u32 = 0x04;
pub const F_DELRCPT: u32 = 0x08;
pub const F_CHGHDRS: u32 = 0x10;
pub const F_QUARANTINE: u32 = 0x20;
pub const F_CHGFROM: u32 = 0x40;
pub const F_ADDRCPT_PAR: u32 = 0x80;
pub const F_SETSYMLIST: u32 = 0x100;
/// Every action this client carries out.
pub const ACTIONS: u32 = 0x1ff;

// Protocol steps (SMFIP_*): events a milter does not want, and events it
// does not answer.
pub const P_NOCONNECT: u32 = 0x1;
pub const P_NOHELO: u32 = 0x2;
pub const P_NOMAIL: u32 = 0x4;
pub const P_NORCPT: u32 = 0x8;
pub const P_NOBODY: u32 = 0x10;
pub const P_NOHDRS: u32 = 0x20;
pub const P_NOEOH: u32 = 0x40;
pub const P_NR_HDR: u32 = 0x80;
pub const P_NOUNKNOWN: u32 = 0x100;
pub const P_NODATA: u32 = 0x200;
pub const P_SKIP: u32 = 0x400;
pub const P_NR_CONN: u32 = 0x1000;
pub const P_NR_HELO: u32 = 0x2000;
pub const P_NR_MAIL: u32 = 0x4000;
pub const P_NR_RCPT: u32 = 0x8000;
pub const P_NR_DATA: u32 = 0x10000;
pub const P_NR_UNKN: u32 = 0x20000;
pub const P_NR_EOH: u32 = 0x40000;
pub const P_NR_BODY: u32 = 0x80000;
/// The steps offered: all of version 6's but RCPT_REJ (rejected
/// recipients are not shown to milters), HDR_LEADSPC and the larger data
/// sizes.
pub const PROTOCOL: u32 = P_NOCONNECT
    | P_NOHELO
    | P_NOMAIL
    | P_NORCPT
    | P_NOBODY
    | P_NOHDRS
    | P_NOEOH
    | P_NR_HDR
    | P_NOUNKNOWN
    | P_NODATA
    | P_SKIP
    | P_NR_CONN
    | P_NR_HELO
    | P_NR_MAIL
    | P_NR_RCPT
    | P_NR_DATA
    | P_NR_UNKN
    | P_NR_EOH
    | P_NR_BODY;

/// What went wrong talking to a milter.
#[derive(Debug)]
pub enum WireError {
    Io(io::Error),
    /// The milter closed the connection.
    Closed,
    TooLarge(usize),
    Empty,
    /// A reply that does not parse: what it is, and why.
    Malformed(&'static str),
    Timeout,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Closed => write!(f, "connection closed by the milter"),
            WireError::TooLarge(n) => {
                write!(f, "reply packet of {n} bytes is larger than {MAX_FRAME}")
            }
            WireError::Empty => write!(f, "empty reply packet"),
            WireError::Malformed(what) => write!(f, "malformed reply: {what}"),
            WireError::Timeout => write!(f, "timeout"),
        }
    }
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> WireError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            WireError::Closed
        } else {
            WireError::Io(e)
        }
    }
}

/// One frame: a command byte and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub cmd: u8,
    pub data: Vec<u8>,
}

pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    cmd: u8,
    data: &[u8],
) -> Result<(), WireError> {
    let mut out = Vec::with_capacity(5 + data.len());
    let len = u32::try_from(data.len() + 1).map_err(|_| WireError::TooLarge(data.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.push(cmd);
    out.extend_from_slice(data);
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame, refusing lengths over [`MAX_FRAME`] before reading
/// them.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, WireError> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head).await?;
    let len = u32::from_be_bytes(head) as usize;
    if len == 0 {
        return Err(WireError::Empty);
    }
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    let cmd = buf[0];
    buf.remove(0);
    Ok(Frame { cmd, data: buf })
}

/// Reads the data of a frame field by field.
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(data: &'a [u8]) -> Fields<'a> {
        Fields { rest: data }
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        if self.rest.len() < 4 {
            return Err(WireError::Malformed("short number"));
        }
        let (n, rest) = self.rest.split_at(4);
        self.rest = rest;
        Ok(u32::from_be_bytes([n[0], n[1], n[2], n[3]]))
    }

    /// A NUL-terminated string (lossily made UTF-8).
    pub fn string(&mut self) -> Result<String, WireError> {
        let end = self
            .rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::Malformed("string without its NUL"))?;
        let s = String::from_utf8_lossy(&self.rest[..end]).into_owned();
        self.rest = &self.rest[end + 1..];
        Ok(s)
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// Builds a frame's data: strings with their NULs.
#[derive(Default)]
pub struct Builder {
    pub data: Vec<u8>,
}

impl Builder {
    /// A NUL-terminated string: a NUL inside would split the field, so it
    /// becomes '?'.
    pub fn string(self, s: &str) -> Builder {
        self.bytes(s.as_bytes())
    }

    /// Bytes as a NUL-terminated string (a NUL inside becomes '?').
    pub fn bytes(mut self, s: &[u8]) -> Builder {
        self.data
            .extend(s.iter().map(|&b| if b == 0 { b'?' } else { b }));
        self.data.push(0);
        self
    }

    pub fn byte(mut self, b: u8) -> Builder {
        self.data.push(b);
        self
    }

    pub fn u16(mut self, n: u16) -> Builder {
        self.data.extend_from_slice(&n.to_be_bytes());
        self
    }

    pub fn u32(mut self, n: u32) -> Builder {
        self.data.extend_from_slice(&n.to_be_bytes());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_are_bounded() {
        let mut buf = Vec::new();
        write_frame(&mut buf, C_HELO, b"mx.example\0")
            .await
            .unwrap();
        assert_eq!(&buf[..5], &[0, 0, 0, 12, b'H']);
        let frame = read_frame(&mut buf.as_slice()).await.unwrap();
        assert_eq!(frame.cmd, C_HELO);
        let mut f = Fields::new(&frame.data);
        assert_eq!(f.string().unwrap(), "mx.example");
        assert!(f.is_empty());

        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_frame(&mut huge.as_slice()).await,
            Err(WireError::TooLarge(_))
        ));
        assert!(matches!(
            read_frame(&mut [0u8, 0, 0, 0].as_slice()).await,
            Err(WireError::Empty)
        ));
        assert!(matches!(
            read_frame(&mut [0u8, 0, 0, 9, b'c'].as_slice()).await,
            Err(WireError::Closed)
        ));
        let mut f = Fields::new(b"abc");
        assert!(f.string().is_err());
        assert!(f.u32().is_err());
    }
}
