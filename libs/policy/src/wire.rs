//! The wire format shared by both sides: `name=value` lines ended by LF, a
//! block ended by an empty line. Reading is bounded: a line longer than
//! [`Limits::line_length`] or a block with more than
//! [`Limits::attributes`] lines is an error, never an allocation without
//! end.

use std::fmt;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Bounds on what is read from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest line, in bytes, without its LF. Postfix's attribute
    /// reader allows 4 × line_length_limit (2048): 8192.
    pub line_length: usize,
    /// The most attributes in one block. Postfix sends about 35.
    pub attributes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            line_length: 8192,
            attributes: 100,
        }
    }
}

/// What is wrong with what a peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The peer closed the connection in the middle of a block.
    Truncated,
    LineTooLong {
        limit: usize,
    },
    TooManyAttributes {
        limit: usize,
    },
    /// A line that is not `name=value`.
    NotAnAttribute {
        line: String,
    },
    /// A name with characters other than printable ASCII.
    BadName {
        name: String,
    },
    /// A numeric attribute whose value is not a number.
    BadNumber {
        name: String,
        value: String,
    },
    /// A reply without the `action` attribute.
    NoAction,
    /// An action that is empty, holds control characters, or is not UTF-8.
    BadAction {
        action: String,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Truncated => write!(f, "premature end-of-input"),
            ProtocolError::LineTooLong { limit } => {
                write!(f, "line longer than {limit} bytes")
            }
            ProtocolError::TooManyAttributes { limit } => {
                write!(f, "more than {limit} attributes")
            }
            ProtocolError::NotAnAttribute { line } => {
                write!(f, "line is not name=value: \"{}\"", shorten(line))
            }
            ProtocolError::BadName { name } => {
                write!(f, "bad attribute name \"{}\"", shorten(name))
            }
            ProtocolError::BadNumber { name, value } => {
                write!(
                    f,
                    "attribute {name}: \"{}\" is not a number",
                    shorten(value)
                )
            }
            ProtocolError::NoAction => write!(f, "reply without an action attribute"),
            ProtocolError::BadAction { action } => {
                write!(f, "malformed action \"{}\"", shorten(action))
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// At most 100 characters of what a peer sent, printable, for messages.
pub(crate) fn shorten(text: &str) -> String {
    text.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Reads one line into `line` (without its LF, and without a CR before it).
/// Returns false at end-of-input before any byte of a line.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limits: &Limits,
) -> Result<bool, ReadError> {
    line.clear();
    loop {
        let available = reader.fill_buf().await.map_err(ReadError::Io)?;
        if available.is_empty() {
            return if line.is_empty() {
                Ok(false)
            } else {
                Err(ReadError::Protocol(ProtocolError::Truncated))
            };
        }
        let (taken, done) = match memchr(available) {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        let chunk = &available[..if done { taken - 1 } else { taken }];
        if line.len() + chunk.len() > limits.line_length {
            return Err(ReadError::Protocol(ProtocolError::LineTooLong {
                limit: limits.line_length,
            }));
        }
        line.extend_from_slice(chunk);
        reader.consume(taken);
        if done {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(true);
        }
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// Why a block could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    Protocol(ProtocolError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Protocol(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads one block of attributes, up to and including its empty line.
/// Returns None at end-of-input before the block's first line (the peer
/// closed the connection between requests, which is normal).
pub(crate) async fn read_block<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limits: &Limits,
) -> Result<Option<Vec<(String, String)>>, ReadError> {
    let mut attributes = Vec::new();
    let mut line = Vec::new();
    loop {
        if !read_line(reader, &mut line, limits).await? {
            return if attributes.is_empty() {
                Ok(None)
            } else {
                Err(ReadError::Protocol(ProtocolError::Truncated))
            };
        }
        if line.is_empty() {
            return Ok(Some(attributes));
        }
        if attributes.len() == limits.attributes {
            return Err(ReadError::Protocol(ProtocolError::TooManyAttributes {
                limit: limits.attributes,
            }));
        }
        attributes.push(split_attribute(&line).map_err(ReadError::Protocol)?);
    }
}

/// `name=value`: the name printable ASCII without `=`, the value any text
/// (bytes that are not UTF-8 become U+FFFD).
fn split_attribute(line: &[u8]) -> Result<(String, String), ProtocolError> {
    let text = String::from_utf8_lossy(line);
    let Some((name, value)) = text.split_once('=') else {
        return Err(ProtocolError::NotAnAttribute {
            line: text.into_owned(),
        });
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ProtocolError::BadName {
            name: name.to_string(),
        });
    }
    if value.contains('\0') {
        return Err(ProtocolError::NotAnAttribute {
            line: text.into_owned(),
        });
    }
    Ok((name.to_string(), value.to_string()))
}

/// A value as it may be sent: newline, carriage return and NUL, which the
/// protocol cannot carry, become `?` (as Postfix's printable() would).
pub(crate) fn clean_value(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\n', '\r', '\0']) {
        value
            .chars()
            .map(|c| {
                if matches!(c, '\n' | '\r' | '\0') {
                    '?'
                } else {
                    c
                }
            })
            .collect::<String>()
            .into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(input: &[u8], limits: Limits) -> Result<Option<Vec<(String, String)>>, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut reader = tokio::io::BufReader::with_capacity(7, input);
            read_block(&mut reader, &limits).await.map_err(|e| match e {
                ReadError::Io(e) => e.to_string(),
                ReadError::Protocol(e) => e.to_string(),
            })
        })
    }

    #[test]
    fn blocks_are_read_line_by_line_across_buffer_refills() {
        let got = block(b"a=1\r\nbb=x=y\nempty=\n\nnext=1\n", Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            vec![
                ("a".to_string(), "1".to_string()),
                ("bb".to_string(), "x=y".to_string()),
                ("empty".to_string(), String::new()),
            ]
        );
        assert_eq!(block(b"", Limits::default()).unwrap(), None);
    }

    #[test]
    fn garbage_and_excess_are_refused() {
        let limits = Limits {
            line_length: 10,
            attributes: 2,
        };
        for (input, expected) in [
            (&b"a=1\nb=2\nc=3\n\n"[..], "more than 2 attributes"),
            (b"a=12345678901\n\n", "line longer than 10 bytes"),
            (b"a=1234567890", "line longer than 10 bytes"),
            (b"hello\n\n", "not name=value: \"hello\""),
            (b"=1\n\n", "bad attribute name"),
            (b"a b=1\n\n", "bad attribute name"),
            (b"a=1\n", "premature end-of-input"),
            (b"a=1", "premature end-of-input"),
            (b"a=\0\n\n", "not name=value"),
        ] {
            let e = block(input, limits).unwrap_err();
            assert!(e.contains(expected), "{input:?}: {e}");
        }
        // A line of exactly the limit is fine.
        assert!(block(b"a=12345678\n\n", limits).is_ok());
    }

    #[test]
    fn values_lose_what_the_protocol_cannot_carry() {
        assert_eq!(clean_value("a\nb\rc\0d"), "a?b?c?d");
        assert_eq!(clean_value("plain"), "plain");
    }
}
