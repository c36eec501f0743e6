//! A policy server's answer: one `action=...` attribute, which is any
//! action an SMTPD access(5) table may return (`DUNNO`, `OK`,
//! `DEFER_IF_PERMIT text`, `450 text`, `PREPEND header: value`, ...). The
//! caller interprets it as it interprets an access table's result.

use std::fmt;

use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};

use crate::request::Request;
use crate::wire::{Limits, ProtocolError, ReadError, read_block};

/// A well-formed action: not empty, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action(String);

impl Action {
    pub fn new(text: &str) -> Result<Action, ProtocolError> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
            return Err(ProtocolError::BadAction {
                action: text.to_string(),
            });
        }
        Ok(Action(trimmed.to_string()))
    }

    /// The whole action, such as `DEFER_IF_PERMIT Greylisted`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first word: `DEFER_IF_PERMIT`, `DUNNO`, `450`, `PREPEND`, ...
    pub fn verb(&self) -> &str {
        self.0.split_whitespace().next().unwrap_or("")
    }

    /// What follows the first word, such as the reply text or the header.
    pub fn text(&self) -> &str {
        self.0
            .split_once(char::is_whitespace)
            .map(|(_, rest)| rest.trim_start())
            .unwrap_or("")
    }

    /// `action=...` and the empty line, as a server sends it.
    pub fn encode(&self) -> Vec<u8> {
        format!("action={}\n\n", self.0).into_bytes()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads a server's reply block. As Postfix, the first `action` counts and
/// other attributes are skipped.
pub(crate) async fn read_reply<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limits: &Limits,
) -> Result<Action, ReadError> {
    let Some(attributes) = read_block(reader, limits).await? else {
        return Err(ReadError::Protocol(ProtocolError::Truncated));
    };
    let action = attributes
        .into_iter()
        .find(|(name, _)| name == "action")
        .ok_or(ReadError::Protocol(ProtocolError::NoAction))?;
    Action::new(&action.1).map_err(ReadError::Protocol)
}

/// Server side: reads the next request on a connection. None when the
/// client closed the connection between requests (its normal way to end).
pub async fn read_request<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limits: &Limits,
) -> Result<Option<Request>, ReadError> {
    let Some(attributes) = read_block(reader, limits).await? else {
        return Ok(None);
    };
    Request::from_attributes(attributes)
        .map(Some)
        .map_err(ReadError::Protocol)
}

/// Server side: sends one answer.
pub async fn write_action<W: AsyncWrite + Unpin>(
    writer: &mut W,
    action: &Action,
) -> std::io::Result<()> {
    writer.write_all(&action.encode()).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn actions_split_into_verb_and_text() {
        let a = Action::new(" DEFER_IF_PERMIT  Greylisted, see x ").unwrap();
        assert_eq!(a.as_str(), "DEFER_IF_PERMIT  Greylisted, see x");
        assert_eq!(
            (a.verb(), a.text()),
            ("DEFER_IF_PERMIT", "Greylisted, see x")
        );
        let a = Action::new("DUNNO").unwrap();
        assert_eq!((a.verb(), a.text()), ("DUNNO", ""));
        assert_eq!(a.encode(), b"action=DUNNO\n\n");
        for bad in ["", "   ", "OK\u{7}", "REJECT a\tb"] {
            assert!(Action::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replies_take_the_first_action_and_need_one() {
        let read = |input: &'static [u8]| {
            runtime().block_on(async {
                let mut reader = tokio::io::BufReader::new(input);
                read_reply(&mut reader, &Limits::default())
                    .await
                    .map_err(|e| e.to_string())
            })
        };
        assert_eq!(
            read(b"other=1\naction=450 4.7.1 no\naction=OK\n\n").unwrap(),
            Action::new("450 4.7.1 no").unwrap()
        );
        assert_eq!(
            read(b"x=1\n\n").unwrap_err(),
            "reply without an action attribute"
        );
        assert_eq!(read(b"").unwrap_err(), "premature end-of-input");
        assert!(
            read(b"action=\n\n")
                .unwrap_err()
                .contains("malformed action")
        );
    }

    #[test]
    fn a_server_reads_requests_until_the_client_closes() {
        runtime().block_on(async {
            let input =
                b"request=smtpd_access_policy\nsender=a@b\n\nrequest=smtpd_access_policy\n\n";
            let mut reader = tokio::io::BufReader::new(&input[..]);
            let limits = Limits::default();
            let first = read_request(&mut reader, &limits).await.unwrap().unwrap();
            assert_eq!(first.sender, "a@b");
            assert!(read_request(&mut reader, &limits).await.unwrap().is_some());
            assert!(read_request(&mut reader, &limits).await.unwrap().is_none());
            let mut out = Vec::new();
            write_action(&mut out, &Action::new("DUNNO").unwrap())
                .await
                .unwrap();
            assert_eq!(out, b"action=DUNNO\n\n");
        });
    }
}
