//! The DATA reader: finds the end of the message, undoes dot-stuffing,
//! normalises line ends and enforces the size, header and hop limits.
//!
//! SMTP smuggling (CVE-2023-51766 and friends) works when two servers
//! disagree on where a message ends. Here only `<CR><LF>.<CR><LF>` ends it;
//! a bare LF or a bare CR never helps: in `\n.\n`, `\n.\r\n`, `\r\n.\n`,
//! `\r.\r` and the like the lone '.' line is dropped, as Postfix's
//! smtpd_forbid_bare_newline = normalize drops it (the differential tests
//! compare what both servers pass on). Every line end in the stored content is
//! CRLF (a bare LF or a bare CR becomes CRLF, Postfix's
//! smtpd_forbid_bare_newline = normalize), so what was one message here is
//! one message to every server after us, which dot-stuff each stored line
//! that starts with '.'.
//!
//! The reader is a byte-at-a-time state machine fed with whatever the
//! socket delivered, so it behaves the same however the stream is split;
//! runs of body bytes without CR or LF, which change nothing but the size,
//! are copied at once.

/// Position in the input, relative to line structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line. `real` when the previous line ended in a
    /// real CRLF (or this is the first line): only then can a '.' be
    /// stuffing or the end of the message.
    LineStart {
        real: bool,
    },
    InLine,
    /// A CR that may or may not be followed by LF.
    Cr,
    /// A '.' at the start of a line that followed a real CRLF.
    Dot,
    /// CRLF '.' CR: one LF away from the end.
    DotCr,
    /// A '.' at the start of a line that followed a bare line end.
    LateDot,
    /// A bare line end, '.', CR.
    LateDotCr,
}

/// The limits the reader enforces; 0 means unlimited for the size.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// message_size_limit: bytes of stored (normalised) content.
    pub message_size: u64,
    /// header_size_limit: bytes of one logical header (with continuations).
    pub header_size: u64,
    /// hopcount_limit: Received: headers allowed.
    pub hop_count: u32,
}

/// What the content amounted to, known once the end has been seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    TooBig,
    HeaderTooBig,
    TooManyHops,
}

/// Progress after a chunk of input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// Everything was consumed; more input is needed.
    More,
    /// The end of the message was found; `used` bytes of this chunk belong to
    /// the message, the rest is the next command.
    Done { used: usize },
}

/// Where the header tracker is in the current stored line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeaderState {
    /// At the start of a line in the header section.
    LineStart,
    /// Reading a field name; `matched` bytes of it equal "received" so far
    /// (None once it cannot be Received:).
    Name { len: usize, matched: Option<usize> },
    /// Spaces between a field name and its colon (obsolete syntax).
    NameSpace { received: bool },
    /// In a header field's value (or continuation line).
    Value,
    /// Past the header section.
    Body,
}

pub struct DataReader {
    state: State,
    limits: Limits,
    /// Bytes of normalised content seen, stored or not.
    size: u64,
    header: HeaderState,
    /// Length of the current logical header so far.
    header_len: u64,
    header_too_big: bool,
    hops: u32,
    /// A line ended with a bare LF (smtpd_forbid_bare_newline = reject).
    bare_lf: bool,
}

const RECEIVED: &[u8] = b"received";

impl DataReader {
    pub fn new(limits: Limits) -> DataReader {
        DataReader {
            // The DATA command line ended with CRLF: a '.' first ends or unstuffs.
            state: State::LineStart { real: true },
            limits,
            size: 0,
            header: HeaderState::LineStart,
            header_len: 0,
            header_too_big: false,
            hops: 0,
            bare_lf: false,
        }
    }

    /// True once a line ended with a bare LF.
    pub fn saw_bare_lf(&self) -> bool {
        self.bare_lf
    }

    pub fn verdict(&self) -> Verdict {
        if self.too_big() {
            Verdict::TooBig
        } else if self.header_too_big {
            Verdict::HeaderTooBig
        } else if self.hops > self.limits.hop_count {
            Verdict::TooManyHops
        } else {
            Verdict::Ok
        }
    }

    fn too_big(&self) -> bool {
        self.limits.message_size != 0 && self.size > self.limits.message_size
    }

    /// Consumes `input`, appending normalised content to `out`. Once the
    /// message is over the size limit nothing more is appended, but the
    /// input is still read to its end so the dialogue stays in step.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Feed {
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            let plain = match self.state {
                State::InLine => true,
                State::LineStart { .. } => b != b'.',
                _ => false,
            };
            if plain && self.header == HeaderState::Body {
                // In the body, the bytes up to the next CR or LF change
                // nothing but the size: copy them at once.
                let run = memchr::memchr2(b'\r', b'\n', &input[i..]).unwrap_or(input.len() - i);
                if run > 0 {
                    self.emit_run(&input[i..i + run], out);
                    self.state = State::InLine;
                    i += run;
                    continue;
                }
            }
            if self.step(b, out) {
                return Feed::Done { used: i + 1 };
            }
            i += 1;
        }
        Feed::More
    }

    /// [`emit`](Self::emit) for body bytes that hold no CR or LF.
    fn emit_run(&mut self, run: &[u8], out: &mut Vec<u8>) {
        let room = match self.limits.message_size {
            0 => run.len() as u64,
            limit => limit.saturating_sub(self.size),
        };
        let stored = usize::try_from(room).map_or(run.len(), |room| room.min(run.len()));
        out.extend_from_slice(&run[..stored]);
        self.size += run.len() as u64;
    }

    /// One input byte; true at the end of the message.
    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> bool {
        match (self.state, b) {
            (State::LineStart { real: true }, b'.') => self.state = State::Dot,
            (State::LineStart { real: false }, b'.') => self.state = State::LateDot,
            (State::LineStart { .. } | State::InLine, b'\r') => self.state = State::Cr,
            (State::LineStart { .. } | State::InLine, b'\n') => {
                self.bare_lf = true;
                self.end_line(false, out);
            }
            (State::LineStart { .. } | State::InLine, _) => {
                self.emit(b, out);
                self.state = State::InLine;
            }
            (State::Cr, b'\n') => self.end_line(true, out),
            // A bare CR ends its line; the byte after it starts a new line
            // that did not follow a real CRLF.
            (State::Cr, _) => {
                self.end_line(false, out);
                return self.step(b, out);
            }
            // CRLF '.': the '.' is stuffing or the start of the end.
            (State::Dot, b'\r') => self.state = State::DotCr,
            // A lone '.' next to a bare LF is neither the end nor content:
            // Postfix (normalize) drops the line, and so do we, so that
            // what one server stores is what the other stores.
            (State::Dot, b'\n') | (State::LateDot, b'\n') => {
                self.bare_lf = true;
                self.state = State::LineStart { real: false };
            }
            (State::LateDot, b'\r') => self.state = State::LateDotCr,
            (State::LateDotCr, b'\n') => self.state = State::LineStart { real: true },
            // Otherwise the '.' is stuffing, whatever ended the line before.
            (State::LateDot, _) => {
                self.state = State::InLine;
                return self.step(b, out);
            }
            (State::Dot, _) => {
                self.state = State::InLine;
                return self.step(b, out);
            }
            (State::DotCr, b'\n') => return true,
            // CRLF '.' CR x: a lone '.' ended by a bare CR, dropped as the
            // lone dots next to a bare LF are.
            (State::DotCr, _) | (State::LateDotCr, _) => {
                self.state = State::LineStart { real: false };
                return self.step(b, out);
            }
        }
        false
    }

    fn end_line(&mut self, real: bool, out: &mut Vec<u8>) {
        self.emit(b'\r', out);
        self.emit(b'\n', out);
        self.state = State::LineStart { real };
    }

    fn emit(&mut self, b: u8, out: &mut Vec<u8>) {
        self.size += 1;
        self.track_header(b);
        if !self.too_big() {
            out.push(b);
        }
    }

    /// Follows the header section of the stored content, in which every
    /// line ends in CRLF and no other CR or LF occurs.
    fn track_header(&mut self, b: u8) {
        if self.header == HeaderState::Body {
            return;
        }
        if b == b'\n' {
            self.header = HeaderState::LineStart;
            return;
        }
        self.header = match (self.header, b) {
            (HeaderState::LineStart, b'\r') => HeaderState::Body,
            (HeaderState::LineStart, b' ' | b'\t') => {
                self.add_header_bytes(1);
                HeaderState::Value
            }
            (HeaderState::LineStart, _) => {
                self.header_len = 0;
                self.add_header_bytes(1);
                HeaderState::Name {
                    len: 1,
                    matched: (b.to_ascii_lowercase() == RECEIVED[0]).then_some(1),
                }
            }
            (HeaderState::Name { .. }, b':') | (HeaderState::NameSpace { .. }, b':') => {
                let received = match self.header {
                    HeaderState::Name { matched, .. } => matched == Some(RECEIVED.len()),
                    HeaderState::NameSpace { received } => received,
                    _ => false,
                };
                if received {
                    self.hops = self.hops.saturating_add(1);
                }
                self.add_header_bytes(1);
                HeaderState::Value
            }
            (HeaderState::Name { matched, .. }, b' ' | b'\t') => {
                self.add_header_bytes(1);
                HeaderState::NameSpace {
                    received: matched == Some(RECEIVED.len()),
                }
            }
            (HeaderState::Name { len, matched }, 33..=126) => {
                self.add_header_bytes(1);
                let matched = matched.and_then(|m| {
                    (RECEIVED.get(m) == Some(&b.to_ascii_lowercase())).then_some(m + 1)
                });
                HeaderState::Name {
                    len: len + 1,
                    matched,
                }
            }
            (HeaderState::NameSpace { received }, b' ' | b'\t') => {
                self.add_header_bytes(1);
                HeaderState::NameSpace { received }
            }
            // A line that is neither a header field nor a continuation
            // starts the body (RFC 5322 leaves no other reading).
            (HeaderState::Name { .. } | HeaderState::NameSpace { .. }, _) => HeaderState::Body,
            (HeaderState::Value, _) => {
                self.add_header_bytes(1);
                HeaderState::Value
            }
            (HeaderState::Body, _) => HeaderState::Body,
        };
    }

    fn add_header_bytes(&mut self, n: u64) {
        self.header_len += n;
        if self.header_len > self.limits.header_size {
            self.header_too_big = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        message_size: 0,
        header_size: 102_400,
        hop_count: 50,
    };

    /// Feeds `input` whole and split at every position (and byte by byte),
    /// checks that all agree, and returns the content, the bytes used and
    /// the verdict (None when the end was not found).
    fn read(input: &[u8], limits: Limits) -> (Vec<u8>, Option<usize>, Verdict) {
        let whole = read_chunks(&[input], limits);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(read_chunks(&[a, b], limits), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(read_chunks(&bytes, limits), whole, "byte by byte");
        // The bulk copy of body runs agrees with the state machine alone.
        let mut reader = DataReader::new(limits);
        let mut out = Vec::new();
        let used = input
            .iter()
            .position(|&b| reader.step(b, &mut out))
            .map(|i| i + 1);
        assert_eq!((out, used, reader.verdict()), whole, "state machine only");
        whole
    }

    fn read_chunks(chunks: &[&[u8]], limits: Limits) -> (Vec<u8>, Option<usize>, Verdict) {
        let mut reader = DataReader::new(limits);
        let mut out = Vec::new();
        let mut offset = 0;
        for chunk in chunks {
            if let Feed::Done { used } = reader.feed(chunk, &mut out) {
                return (out, Some(offset + used), reader.verdict());
            }
            offset += chunk.len();
        }
        (out, None, reader.verdict())
    }

    fn content(input: &[u8]) -> Vec<u8> {
        let (out, used, verdict) = read(input, LIMITS);
        assert_eq!(used, Some(input.len()), "end not at the end of {input:?}");
        assert_eq!(verdict, Verdict::Ok);
        out
    }

    #[test]
    fn plain_message() {
        assert_eq!(
            content(b"Subject: x\r\n\r\nhello\r\n.\r\n"),
            b"Subject: x\r\n\r\nhello\r\n"
        );
        assert_eq!(content(b".\r\n"), b"");
    }

    #[test]
    fn unstuffs_after_any_line_end() {
        assert_eq!(content(b"..x\r\n...\r\n.\r\n"), b".x\r\n..\r\n");
        // After a bare LF too, as Postfix: what servers after us store is
        // what we store, once they stuff it again.
        assert_eq!(content(b"a\n..x\r\n.\r\n"), b"a\r\n.x\r\n");
    }

    #[test]
    fn leaves_what_follows_the_end_unread() {
        let input = b"hi\r\n.\r\nQUIT\r\n";
        let (out, used, _) = read(input, LIMITS);
        assert_eq!(out, b"hi\r\n");
        assert_eq!(used, Some(7));
    }

    #[test]
    fn normalises_bare_line_ends() {
        assert_eq!(
            content(b"a\nb\rc\r\r\nd\r\n.\r\n"),
            b"a\r\nb\r\nc\r\n\r\nd\r\n"
        );
    }

    /// Every non-standard end-of-data form is content; only the real one
    /// that follows ends the message, and what was inside stays inside as
    /// CRLF lines.
    #[test]
    fn smuggling_sequences_do_not_end_the_message() {
        let cases: &[(&[u8], &[u8])] = &[
            // A line of only '.' next to a bare line end is dropped, as
            // Postfix (smtpd_forbid_bare_newline = normalize) drops it.
            (b"a\n.\nMAIL FROM:<x>\r\n.\r\n", b"a\r\nMAIL FROM:<x>\r\n"),
            (b"a\n.\r\nb\r\n.\r\n", b"a\r\nb\r\n"),
            (b"a\r\n.\nb\r\n.\r\n", b"a\r\nb\r\n"),
            (b"a\r.\rb\r\n.\r\n", b"a\r\nb\r\n"),
            (b"a\r\n.\rb\r\n.\r\n", b"a\r\nb\r\n"),
            (b"a\r.\r\nb\r\n.\r\n", b"a\r\nb\r\n"),
            (b"a\n.\rb\r\n.\r\n", b"a\r\nb\r\n"),
            (b"a\r\n.\r\r\nb\r\n.\r\n", b"a\r\n\r\nb\r\n"),
            (b"\n.\n\r\n.\r\n", b"\r\n\r\n"),
            // Otherwise a leading '.' is stuffing, whatever ended the line
            // before (Postfix's too).
            (b"a\n..\nb\r\n.\r\n", b"a\r\n.\r\nb\r\n"),
        ];
        for (input, expected) in cases {
            let (out, used, verdict) = read(input, LIMITS);
            assert_eq!(used, Some(input.len()), "{input:?}");
            assert_eq!(verdict, Verdict::Ok);
            assert_eq!(&out, expected, "{input:?}");
            assert_no_bare_line_ends(&out);
        }
    }

    /// Content that never has a real end is never finished.
    #[test]
    fn no_end_without_crlf_dot_crlf() {
        for input in [
            &b"a\n.\n"[..],
            b"a\r.\r",
            b"a\r\n.\n",
            b"a\n.\r\n",
            b"a\r\n. \r\n",
            b"a\r\n.\r",
            b"a\r\n..\r\n",
        ] {
            let (out, used, _) = read(input, LIMITS);
            assert_eq!(used, None, "{input:?}");
            assert_no_bare_line_ends(&out);
        }
    }

    fn assert_no_bare_line_ends(out: &[u8]) {
        for (i, &b) in out.iter().enumerate() {
            match b {
                b'\r' => assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR in {out:?}"),
                b'\n' => assert_eq!(
                    out.get(i.wrapping_sub(1)),
                    Some(&b'\r'),
                    "bare LF in {out:?}"
                ),
                _ => {}
            }
        }
    }

    #[test]
    fn size_limit_stops_storing_but_reads_to_the_end() {
        let limits = Limits {
            message_size: 10,
            ..LIMITS
        };
        let input = b"0123456789abcdef\r\nmore\r\n.\r\nQUIT\r\n";
        let (out, used, verdict) = read(input, limits);
        assert_eq!(verdict, Verdict::TooBig);
        assert_eq!(used, Some(input.len() - 6));
        assert_eq!(out, b"0123456789");
        let (_, _, verdict) = read(b"0123456\r\n.\r\n", limits);
        assert_eq!(verdict, Verdict::Ok, "exactly at the limit");
    }

    #[test]
    fn counts_received_headers() {
        let limits = Limits {
            hop_count: 2,
            ..LIMITS
        };
        let two = b"Received: a\r\nreceived : b\r\n\tcont\r\nX: y\r\n\r\nReceived: body\r\n.\r\n";
        assert_eq!(read(two, limits).2, Verdict::Ok);
        let three = b"RECEIVED: a\r\nReceived: b\r\nX-Received: no\r\nReceived:c\r\n\r\n.\r\n";
        assert_eq!(read(three, limits).2, Verdict::TooManyHops);
        // A line that is not a header ends the header section.
        let body = b"Received: a\r\nnot a header\r\nReceived: b\r\nReceived: c\r\n.\r\n";
        assert_eq!(read(body, limits).2, Verdict::Ok);
        let receivedx = b"Receivedx: a\r\nReceive: b\r\nReceived: c\r\nReceived: d\r\n.\r\n";
        assert_eq!(read(receivedx, limits).2, Verdict::Ok);
    }

    #[test]
    fn header_size_limit_applies_to_one_logical_header() {
        let limits = Limits {
            header_size: 20,
            ..LIMITS
        };
        let fine =
            b"Subject: 0123456789\r\nX: 0123456789\r\n\r\n0123456789012345678901234\r\n.\r\n";
        assert_eq!(read(fine, limits).2, Verdict::Ok);
        let folded = b"Subject: 0123456789\r\n 0123456789\r\n\r\n.\r\n";
        assert_eq!(read(folded, limits).2, Verdict::HeaderTooBig);
    }
}
