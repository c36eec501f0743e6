//! SMTP replies: a code and one or more lines of text.

use std::fmt;

use mailgate_ipc::envelope::SmtpReply;

/// One SMTP reply. Every line but the banner and EHLO ones starts with an
/// enhanced status code (RFC 2034); it is part of the text here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply such as the EHLO answer; `lines` must not be empty.
    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        Reply { code, lines }
    }

    /// True for 4xx and 5xx replies: what the error counters count.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// The wire form, every line ending in CRLF.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{sep}", self.code).as_bytes());
            // Text can come from another process (a cleanup reject text) or
            // echo client input: a CR or LF in it would end the reply early
            // and desynchronise the client, so control characters go.
            out.extend(
                line.bytes()
                    .map(|b| if b.is_ascii_control() { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// The last line with its code, as it appears in log lines.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.lines.last().map_or("", String::as_str);
        write!(f, "{} {text}", self.code)
    }
}

impl From<&SmtpReply> for Reply {
    fn from(r: &SmtpReply) -> Reply {
        Reply::new(r.code, format!("{} {}", r.status, r.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() {
        let r = Reply::multi(250, vec!["mx.example".into(), "PIPELINING".into()]);
        assert_eq!(r.to_wire(), b"250-mx.example\r\n250 PIPELINING\r\n");
        assert_eq!(r.to_string(), "250 PIPELINING");
        let r = Reply::new(554, "5.7.1 evil\r\n250 ok");
        assert_eq!(r.to_wire(), b"554 5.7.1 evil  250 ok\r\n");
        assert!(r.is_error());
    }
}
