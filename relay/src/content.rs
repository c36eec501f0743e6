//! The message content on its way from the queue file to the DATA stream.
//!
//! The queue file holds the content unstuffed with CRLF line ends (see
//! mailgate_ipc::queue_file). It is read with pread at the offset qmgr
//! named: the descriptor shares its file position with qmgr's, so seeking
//! it would move qmgr's position too.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// How much content is read and sent at a time.
pub const CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub enum ContentError {
    Read(io::Error),
    /// The file ends before offset + length: qmgr and the file disagree.
    CutShort {
        expected: u64,
        got: u64,
    },
}

impl fmt::Display for ContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentError::Read(e) => write!(f, "error reading the queue file: {e}"),
            ContentError::CutShort { expected, got } => {
                write!(f, "queue file content cut short: {got} of {expected} bytes")
            }
        }
    }
}

impl std::error::Error for ContentError {}

/// Reads the content in chunks without blocking the runtime's threads.
pub struct ContentReader {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    length: u64,
}

impl ContentReader {
    pub fn new(file: Arc<File>, offset: u64, length: u64) -> ContentReader {
        ContentReader {
            file,
            offset,
            remaining: length,
            length,
        }
    }

    /// The next chunk, or None at the end of the content.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ContentError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let want = usize::try_from(self.remaining).unwrap_or(CHUNK).min(CHUNK);
        let file = Arc::clone(&self.file);
        let offset = self.offset;
        let chunk = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; want];
            let mut filled = 0;
            while filled < want {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            Ok(buf)
        })
        .await
        .map_err(|e| ContentError::Read(io::Error::other(e)))?
        .map_err(ContentError::Read)?;
        if chunk.is_empty() {
            return Err(ContentError::CutShort {
                expected: self.length,
                got: self.length - self.remaining,
            });
        }
        self.offset += chunk.len() as u64;
        self.remaining -= chunk.len() as u64;
        Ok(Some(chunk))
    }
}

/// Dot-stuffing for DATA (RFC 5321 §4.5.2): a line that starts with "."
/// gets another one, so no content line can end the transfer early.
///
/// Line ends go out as CRLF even if a bare LF slipped into the content: a
/// bare LF that a receiver reads as a line end, next to a dot, is how
/// "SMTP smuggling" hides a second message inside the first.
#[derive(Debug)]
pub struct DotStuffer {
    line_start: bool,
    after_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            line_start: true,
            after_cr: false,
        }
    }
}

impl DotStuffer {
    /// Appends `input`, stuffed, to `out`. Whole lines are copied at once:
    /// only a line's first byte and the byte before its LF need a look.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64 + 2);
        let mut rest = input;
        while let Some(&first) = rest.first() {
            if self.line_start && first == b'.' {
                out.push(b'.');
            }
            match memchr::memchr(b'\n', rest) {
                Some(end) => {
                    let after_cr = match end {
                        0 => self.after_cr,
                        _ => rest[end - 1] == b'\r',
                    };
                    out.extend_from_slice(&rest[..end]);
                    if !after_cr {
                        out.push(b'\r');
                    }
                    out.push(b'\n');
                    self.line_start = true;
                    self.after_cr = false;
                    rest = &rest[end + 1..];
                }
                None => {
                    out.extend_from_slice(rest);
                    self.line_start = false;
                    self.after_cr = rest.last() == Some(&b'\r');
                    rest = &[];
                }
            }
        }
    }

    /// Appends the end of the data: a CRLF if the content did not end with
    /// one, then ".\r\n".
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn stuff(chunks: &[&[u8]]) -> Vec<u8> {
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            stuffer.push(chunk, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    #[test]
    fn leading_dots_are_doubled() {
        assert_eq!(
            stuff(&[b"Subject: x\r\n\r\n.\r\n..two\r\nmid.dle\r\n.end"]),
            b"Subject: x\r\n\r\n..\r\n...two\r\nmid.dle\r\n..end\r\n.\r\n"
        );
        assert_eq!(stuff(&[b".first line\r\n"]), b"..first line\r\n.\r\n");
        assert_eq!(stuff(&[]), b".\r\n");
    }

    #[test]
    fn state_carries_across_chunks() {
        // Chunk boundaries between CR and LF, and between LF and the dot.
        assert_eq!(
            stuff(&[b"a\r", b"\n", b".b\r\n", b".", b"c\r\n"]),
            b"a\r\n..b\r\n..c\r\n.\r\n"
        );
    }

    #[test]
    fn any_split_gives_the_bytewise_result() {
        // The rule, one byte at a time, as the fast path must keep it.
        fn bytewise(input: &[u8]) -> Vec<u8> {
            let (mut line_start, mut after_cr, mut out) = (true, false, Vec::new());
            for &b in input {
                if line_start && b == b'.' {
                    out.push(b'.');
                }
                if b == b'\n' && !after_cr {
                    out.push(b'\r');
                }
                out.push(b);
                after_cr = b == b'\r';
                line_start = b == b'\n';
            }
            if !line_start {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b".\r\n");
            out
        }
        let input: &[u8] = b".a\r\n..b\n\n.\r\r\n.c\rd.\n\r.e";
        for cut in 0..=input.len() {
            for second in cut..=input.len() {
                let chunks = [&input[..cut], &input[cut..second], &input[second..]];
                assert_eq!(stuff(&chunks), bytewise(input), "cuts {cut} {second}");
            }
        }
    }

    #[test]
    fn bare_line_feeds_become_crlf() {
        assert_eq!(stuff(&[b"a\n.\nb\r\n"]), b"a\r\n..\r\nb\r\n.\r\n");
        // A bare CR is not a line end; it stays and gets no stuffing.
        assert_eq!(stuff(&[b"a\r.b\r\n"]), b"a\r.b\r\n.\r\n");
    }

    #[tokio::test]
    async fn reads_only_the_named_range() {
        let mut file = tempfile::tempfile().unwrap();
        let mut data = b"HEADER".to_vec();
        data.extend(std::iter::repeat_n(b'x', CHUNK + 10));
        data.extend_from_slice(b"TRAILER");
        file.write_all(&data).unwrap();
        let file = Arc::new(file);
        let length = (CHUNK + 10) as u64;
        let mut reader = ContentReader::new(Arc::clone(&file), 6, length);
        let mut got = Vec::new();
        while let Some(chunk) = reader.next_chunk().await.unwrap() {
            got.extend(chunk);
        }
        assert_eq!(got, &data[6..6 + CHUNK + 10]);

        let mut short = ContentReader::new(file, 6, length + 100);
        let mut error = None;
        loop {
            match short.next_chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        assert!(matches!(
            error,
            Some(ContentError::CutShort { got, .. }) if got == length + 7
        ));
    }
}
