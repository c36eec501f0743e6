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
///
/// Lines longer than smtp_line_length_limit (RFC 5321 §4.5.3.1.6: 998
/// octets before the CRLF) are broken as Postfix's smtp_text_out breaks
/// them: after `limit` bytes comes CRLF and a space, so a long header
/// becomes a folded one, and each further piece holds `limit - 1` bytes
/// after its space. A stuffing dot is not counted, as in Postfix.
#[derive(Debug)]
pub struct DotStuffer {
    line_start: bool,
    /// A CR was the last byte seen; whether it ends a line depends on the
    /// next byte.
    pending_cr: bool,
    /// Content bytes on the current output line.
    column: usize,
    /// 0: no limit.
    limit: usize,
    /// Whether a line was broken.
    pub broke_line: bool,
}

impl DotStuffer {
    pub fn new(limit: usize) -> DotStuffer {
        DotStuffer {
            line_start: true,
            pending_cr: false,
            column: 0,
            limit,
            broke_line: false,
        }
    }

    /// Appends `input`, stuffed, to `out`. Runs of bytes without CR or LF
    /// that fit on the current line are copied at once.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64 + 2);
        let mut rest = input;
        while !rest.is_empty() {
            if !self.pending_cr {
                let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                if run > 0 && (self.limit == 0 || self.column + run <= self.limit) {
                    if self.line_start && rest[0] == b'.' {
                        out.push(b'.');
                    }
                    out.extend_from_slice(&rest[..run]);
                    self.line_start = false;
                    self.column += run;
                    rest = &rest[run..];
                    continue;
                }
            }
            self.byte(rest[0], out);
            rest = &rest[1..];
        }
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        if b == b'\n' {
            self.pending_cr = false;
            out.extend_from_slice(b"\r\n");
            self.line_start = true;
            self.column = 0;
            return;
        }
        if std::mem::take(&mut self.pending_cr) {
            // A bare CR: content, not a line end.
            self.content(b'\r', out);
        }
        if b == b'\r' {
            self.pending_cr = true;
        } else {
            self.content(b, out);
        }
    }

    fn content(&mut self, b: u8, out: &mut Vec<u8>) {
        if self.line_start && b == b'.' {
            out.push(b'.');
        }
        self.line_start = false;
        if self.limit != 0 && self.column >= self.limit {
            out.extend_from_slice(b"\r\n ");
            self.column = 1;
            self.broke_line = true;
        }
        out.push(b);
        self.column += 1;
    }

    /// Appends the end of the data: a CRLF if the content did not end with
    /// one, then ".\r\n".
    pub fn finish(mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            self.content(b'\r', out);
        }
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
        stuff_at(998, chunks)
    }

    fn stuff_at(limit: usize, chunks: &[&[u8]]) -> Vec<u8> {
        let mut stuffer = DotStuffer::new(limit);
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

    #[test]
    fn long_lines_are_broken_as_postfix_breaks_them() {
        // Exactly the limit: untouched.
        let line = vec![b'a'; 998];
        let mut expected = line.clone();
        expected.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(stuff(&[&line, b"\r\n"]), expected);
        // 998 + 997 + 5: CRLF SPACE after 998, then after 997 more.
        let long: Vec<u8> = (0..2000).map(|i| b'a' + (i % 26) as u8).collect();
        let out = stuff(&[&long[..700], &long[700..], b"\r\nnext\r\n"]);
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        assert_eq!(lines[0].len(), 999, "998 and the CR");
        assert_eq!(lines[1][0], b' ');
        assert_eq!(lines[1].len(), 999);
        assert_eq!(lines[2], [&b" "[..], &long[1995..], b"\r"].concat());
        assert_eq!(lines[3], b"next\r");
        let mut rejoined = Vec::new();
        for (i, piece) in lines[..3].iter().enumerate() {
            let piece = piece.strip_suffix(b"\r").unwrap();
            rejoined.extend_from_slice(if i == 0 { piece } else { &piece[1..] });
        }
        assert_eq!(rejoined, long);
        // A stuffed dot does not count; the CR of a CRLF at the limit
        // does not either, whatever the chunks.
        let mut dotted = vec![b'.'];
        dotted.extend(vec![b'x'; 997]);
        let out = stuff_at(998, &[&dotted, b"\r", b"\n"]);
        assert_eq!(out.len(), 999 + 2 + 3);
        // 0: no limit.
        assert_eq!(stuff_at(0, &[&long]).len(), 2000 + 2 + 3);
        // Every line of the output fits, for any limit and split.
        for limit in [1, 2, 5] {
            let input = b"abcdefgh\r\n.ijklmno\rpq\nrs\r\r\ntuvwxyz";
            for cut in 0..input.len() {
                let out = stuff_at(limit, &[&input[..cut], &input[cut..]]);
                assert_eq!(out, stuff_at(limit, &[input]), "limit {limit} cut {cut}");
                for line in out.split(|&b| b == b'\n') {
                    let body = line.strip_suffix(b"\r").unwrap_or(line);
                    let body = body.strip_prefix(b".").unwrap_or(body);
                    assert!(
                        body.len() <= limit + 1,
                        "{limit}: {:?}",
                        String::from_utf8_lossy(line)
                    );
                }
            }
        }
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
