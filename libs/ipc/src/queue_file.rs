//! The queue file: one file per message, holding everything needed to
//! deliver it.
//!
//! Layout: the magic `MGQ1`, a 4-byte little-endian length, that many bytes
//! of postcard-encoded [`QueueRecord`], then the message content exactly as it
//! will be sent (CRLF line ends, not dot-stuffed). The content is never
//! rewritten after commit, so relay can stream it from the descriptor at
//! `content_offset`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use crate::envelope::{DeliveryState, Envelope};

const MAGIC: &[u8; 4] = b"MGQ1";
const PREFIX: usize = 8;
/// A record this large is not one mailgate wrote.
const MAX_RECORD: usize = 64 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRecord {
    pub queue_id: String,
    pub envelope: Envelope,
    pub state: DeliveryState,
    pub message_id: Option<String>,
    /// Length of the content that follows the record.
    pub content_length: u64,
}

#[derive(Debug)]
pub enum QueueFileError {
    Io(io::Error),
    /// Not a queue file, or cut short: such a file goes to corrupt/.
    Corrupt(String),
}

impl std::fmt::Display for QueueFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueFileError::Io(e) => write!(f, "{e}"),
            QueueFileError::Corrupt(m) => write!(f, "corrupt queue file: {m}"),
        }
    }
}

impl std::error::Error for QueueFileError {}

impl From<io::Error> for QueueFileError {
    fn from(e: io::Error) -> Self {
        QueueFileError::Io(e)
    }
}

/// Writes the record header; the caller writes `record.content_length`
/// content bytes after it.
pub fn write_record(out: &mut impl Write, record: &QueueRecord) -> Result<(), QueueFileError> {
    let body = postcard::to_stdvec(record)
        .map_err(|e| QueueFileError::Corrupt(format!("cannot encode record: {e}")))?;
    out.write_all(MAGIC)?;
    out.write_all(&(body.len() as u32).to_le_bytes())?;
    out.write_all(&body)?;
    Ok(())
}

/// Reads the record and checks that the file holds all its content.
/// Returns the record and the offset where the content starts.
pub fn read_record(file: &File) -> Result<(QueueRecord, u64), QueueFileError> {
    let mut prefix = [0u8; PREFIX];
    read_exact_at(file, &mut prefix, 0)?;
    if &prefix[..4] != MAGIC {
        return Err(QueueFileError::Corrupt("bad magic".into()));
    }
    let len = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]) as usize;
    if len > MAX_RECORD {
        return Err(QueueFileError::Corrupt(format!("record of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    read_exact_at(file, &mut body, PREFIX as u64)?;
    let record: QueueRecord = postcard::from_bytes(&body)
        .map_err(|e| QueueFileError::Corrupt(format!("undecodable record: {e}")))?;
    let content_offset = (PREFIX + len) as u64;
    let size = file.metadata()?.len();
    if size != content_offset + record.content_length {
        return Err(QueueFileError::Corrupt(format!(
            "size {size}, expected {}",
            content_offset + record.content_length
        )));
    }
    Ok((record, content_offset))
}

/// Reads the whole content into memory (for `queue show` and bounces).
pub fn read_content(file: &File, offset: u64, length: u64) -> Result<Vec<u8>, QueueFileError> {
    let mut content = vec![0u8; length as usize];
    read_exact_at(file, &mut content, offset)?;
    Ok(content)
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> Result<(), QueueFileError> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            QueueFileError::Corrupt("file cut short".into())
        } else {
            QueueFileError::Io(e)
        }
    })
}

/// Copies `length` bytes of content from `src` at `offset` to `out`.
pub fn copy_content(
    src: &File,
    offset: u64,
    length: u64,
    out: &mut impl Write,
) -> Result<(), QueueFileError> {
    let mut reader = io::BufReader::new(OffsetReader { file: src, offset });
    let copied = io::copy(&mut (&mut reader).take(length), out)?;
    if copied != length {
        return Err(QueueFileError::Corrupt("content cut short".into()));
    }
    Ok(())
}

struct OffsetReader<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for OffsetReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{ClientInfo, Recipient};

    fn record(content_length: u64) -> QueueRecord {
        QueueRecord {
            queue_id: "ABC".into(),
            envelope: Envelope {
                sender: "a@example.org".into(),
                recipients: vec![Recipient::new("b@example.com".into(), None)],
                client: ClientInfo {
                    name: "localhost".into(),
                    addr: "127.0.0.1".into(),
                    port: 1234,
                    helo: "client".into(),
                    protocol: "ESMTP".into(),
                },
                body_type: None,
                smtputf8: false,
                dsn_ret: None,
                dsn_envid: None,
                arrival: 1,
            },
            state: DeliveryState::default(),
            message_id: Some("<x@y>".into()),
            content_length,
        }
    }

    #[test]
    fn round_trip_and_truncation() {
        let mut file = tempfile::tempfile().unwrap();
        let content = b"Subject: hi\r\n\r\nbody\r\n";
        write_record(&mut file, &record(content.len() as u64)).unwrap();
        file.write_all(content).unwrap();
        let (back, offset) = read_record(&file).unwrap();
        assert_eq!(back, record(content.len() as u64));
        assert_eq!(
            read_content(&file, offset, back.content_length).unwrap(),
            content
        );
        let mut copy = Vec::new();
        copy_content(&file, offset, back.content_length, &mut copy).unwrap();
        assert_eq!(copy, content);

        file.set_len(offset + 3).unwrap();
        assert!(matches!(
            read_record(&file),
            Err(QueueFileError::Corrupt(_))
        ));
        file.set_len(5).unwrap();
        assert!(matches!(
            read_record(&file),
            Err(QueueFileError::Corrupt(_))
        ));
    }
}
