//! SMTP replies from the remote server (RFC 5321 §4.2), parsed defensively.
//!
//! Everything here is input from a peer we do not control: a reply that is
//! not well formed is an error value, never a panic, and the text kept for
//! the logs is made printable so it cannot forge log records.

use std::fmt;

/// Longest reply line accepted, CRLF included. RFC 5321 §4.5.3.1.5 sets 512;
/// real servers exceed it, so this is generous but still bounded.
pub const MAX_LINE: usize = 4096;

/// Most lines one reply may have (EHLO replies are the longest real ones).
pub const MAX_LINES: usize = 100;

/// A complete reply: one code and the text of each line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Each line's text after the code and separator, made printable.
    pub lines: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// A line that does not start with a three-digit reply code.
    BadCode(String),
    /// A continuation line whose code differs from the first line's.
    MixedCodes { first: u16, then: u16 },
    /// More than [`MAX_LINES`] lines.
    TooManyLines,
    /// A line longer than [`MAX_LINE`].
    LineTooLong,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::BadCode(line) => write!(f, "malformed reply line \"{line}\""),
            ReplyError::MixedCodes { first, then } => {
                write!(f, "multi-line reply mixes codes {first} and {then}")
            }
            ReplyError::TooManyLines => write!(f, "reply of more than {MAX_LINES} lines"),
            ReplyError::LineTooLong => write!(f, "reply line longer than {MAX_LINE} bytes"),
        }
    }
}

impl std::error::Error for ReplyError {}

impl Reply {
    /// The first digit: 2 success, 3 intermediate, 4 temporary, 5 permanent.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }

    /// The RFC 3463 enhanced status code at the start of the first line,
    /// when the server gave one whose class agrees with the reply code.
    pub fn enhanced_status(&self) -> Option<&str> {
        let text = self.lines.first()?;
        let candidate = text.split(' ').next()?;
        let mut parts = candidate.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        let numeric = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
        };
        // RFC 3463 §2: the class must agree with the reply's first digit.
        let agrees = class.parse::<u16>().ok() == Some(self.class());
        (parts.next().is_none()
            && numeric(class, 1)
            && agrees
            && numeric(subject, 3)
            && numeric(detail, 3))
        .then_some(candidate)
    }

    /// The status for the delivery result: the server's own enhanced code,
    /// or one derived from the reply class (RFC 3463 §3.1 "x.0.0").
    pub fn dsn(&self) -> String {
        match self.enhanced_status() {
            Some(status) => status.to_string(),
            None => format!("{}.0.0", self.class()),
        }
    }
}

/// As Postfix logs a reply: every line with its code, joined by spaces
/// (`550-5.1.1 first 550 5.1.1 second`).
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.lines.len().saturating_sub(1);
        for (i, text) in self.lines.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let sep = if i == last { ' ' } else { '-' };
            if text.is_empty() && i == last {
                write!(f, "{}", self.code)?;
            } else {
                write!(f, "{}{sep}{text}", self.code)?;
            }
        }
        Ok(())
    }
}

/// Collects reply lines until the last one (`250 ...` after `250-...`).
#[derive(Debug, Default)]
pub struct ReplyBuilder {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyBuilder {
    /// Takes one line without its line end. Returns the reply once its last
    /// line has arrived.
    pub fn push(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        if line.len() > MAX_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let (code, last, text) = parse_line(line)?;
        match self.code {
            Some(first) if first != code => {
                return Err(ReplyError::MixedCodes { first, then: code });
            }
            _ => self.code = Some(code),
        }
        if self.lines.len() == MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
        self.lines.push(text);
        if !last {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        Ok(Some(Reply { code, lines }))
    }
}

/// Splits `250-text`, `250 text` or `250` into (code, is-last-line, text).
fn parse_line(line: &[u8]) -> Result<(u16, bool, String), ReplyError> {
    let bad = || ReplyError::BadCode(printable(&line[..line.len().min(80)]));
    let digits = line.get(..3).ok_or_else(bad)?;
    // Only classes 2 to 5 exist in SMTP; 1yz is defined but never sent.
    let valid = matches!(digits[0], b'2'..=b'5')
        && matches!(digits[1], b'0'..=b'5')
        && digits[2].is_ascii_digit();
    if !valid {
        return Err(bad());
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None => Ok((code, true, String::new())),
        Some(b' ') => Ok((code, true, printable(&line[4..]))),
        Some(b'-') => Ok((code, false, printable(&line[4..]))),
        Some(_) => Err(bad()),
    }
}

/// Text fit for a log line and a bounce: control characters become `?`
/// (as Postfix's printable() does), invalid UTF-8 the replacement character.
pub fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&[u8]]) -> Result<Vec<Reply>, ReplyError> {
        let mut builder = ReplyBuilder::default();
        let mut out = Vec::new();
        for line in lines {
            if let Some(reply) = builder.push(line)? {
                out.push(reply);
            }
        }
        Ok(out)
    }

    #[test]
    fn single_and_multi_line() {
        let replies = parse(&[
            b"250-mx.example.com Hello",
            b"250-PIPELINING",
            b"250 SIZE 1000",
            b"354 End data with <CR><LF>.<CR><LF>",
            b"221",
        ])
        .unwrap();
        assert_eq!(replies.len(), 3);
        assert_eq!(replies[0].code, 250);
        assert_eq!(
            replies[0].lines,
            ["mx.example.com Hello", "PIPELINING", "SIZE 1000"]
        );
        assert_eq!(
            replies[0].to_string(),
            "250-mx.example.com Hello 250-PIPELINING 250 SIZE 1000"
        );
        assert_eq!(replies[1].class(), 3);
        assert_eq!(replies[2].to_string(), "221");
        assert!(replies[2].lines == [""]);
    }

    #[test]
    fn enhanced_status_codes() {
        let reply = |code, text: &str| Reply {
            code,
            lines: vec![text.to_string()],
        };
        assert_eq!(reply(550, "5.1.1 User unknown").dsn(), "5.1.1");
        assert_eq!(reply(250, "2.0.0").dsn(), "2.0.0");
        assert_eq!(reply(451, "4.7.1 Try later").dsn(), "4.7.1");
        // Class disagreeing with the reply code, or no code at all: derived.
        assert_eq!(reply(550, "4.1.1 confused").dsn(), "5.0.0");
        assert_eq!(reply(550, "User unknown").dsn(), "5.0.0");
        assert_eq!(reply(421, "5.").dsn(), "4.0.0");
        assert_eq!(reply(550, "5.1.1.1 too many").dsn(), "5.0.0");
        assert_eq!(reply(550, "5.1234.1 long").dsn(), "5.0.0");
        assert_eq!(reply(550, "").dsn(), "5.0.0");
        assert_eq!(reply(250, "2.a.0 x").dsn(), "2.0.0");
        assert_eq!(reply(550, "!.1.1 x").dsn(), "5.0.0");
        assert_eq!(reply(550, "+5.1.1 x").dsn(), "5.0.0");
    }

    #[test]
    fn junk_is_an_error_not_a_panic() {
        for junk in [
            &b""[..],
            b"2",
            b"25",
            b"abc",
            b"250x",
            b"150 old",
            b"650 no",
            b"2\xff0 x",
            b"\xff\xfe\xfd\xfc",
            b"299 second digit above 5",
        ] {
            let result = parse(&[junk]);
            assert!(matches!(result, Err(ReplyError::BadCode(_))), "{junk:?}");
        }
        // A continuation line alone is not yet a reply.
        assert_eq!(parse(&[b"250-"]), Ok(Vec::new()));
        assert_eq!(
            parse(&[b"250-a", b"550 b"]),
            Err(ReplyError::MixedCodes {
                first: 250,
                then: 550
            })
        );
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(parse(&[&long]), Err(ReplyError::LineTooLong));
        let many = vec![&b"250-x"[..]; MAX_LINES + 1];
        assert_eq!(parse(&many), Err(ReplyError::TooManyLines));
    }

    #[test]
    fn text_is_made_printable() {
        let replies = parse(&[b"550 bad\x1b[31m \x00\xc3\xa9\xff"]).unwrap();
        assert_eq!(replies[0].lines[0], "bad?[31m ?\u{e9}\u{fffd}");
    }
}
