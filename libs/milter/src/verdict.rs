//! What the milters decided, in Postfix's terms (milter8.c's reply
//! strings and the H/D/S codes of check_milter_reply).

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An SMTP reply, code first ("550 5.7.1 Command rejected"); lines of
    /// a multi-line reply are joined by CRLF.
    Reply(String),
    /// Put the message on hold (SMFIR_QUARANTINE, or the quarantine default
    /// action), with the reason.
    Hold(String),
    /// Accept the message and deliver it nowhere.
    Discard,
}

impl Verdict {
    /// The reply's code and the text lines after it, for SMTP.
    pub fn code_and_lines(text: &str) -> (u16, Vec<String>) {
        let code = text.get(..3).and_then(|c| c.parse().ok()).unwrap_or(451);
        let lines = text
            .split("\r\n")
            .map(|l| l.get(4..).unwrap_or("").to_string())
            .collect();
        (code, lines)
    }
}
