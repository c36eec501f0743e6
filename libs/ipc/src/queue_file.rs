//! The queue file: one file per message, holding everything needed to
//! deliver it.
//!
//! Layout: the magic `MGQ4`, a 4-byte little-endian length, that many bytes
//! of postcard-encoded [`QueueRecord`], then the message content exactly as it
//! will be sent (CRLF line ends, not dot-stuffed). The content is never
//! rewritten after commit, so relay can stream it from the descriptor at
//! `content_offset`.
//!
//! postcard is not self-describing, so every change to the record is a new
//! magic. Files of an older version are still read (and converted); qmgr
//! writes them back in the current version the next time it saves them.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use crate::envelope::{DeliveryState, Envelope};

const MAGIC: &[u8; 4] = b"MGQ4";
/// Version 3: recipients without the NOTIFY=NEVER flag.
const MAGIC_V3: &[u8; 4] = b"MGQ3";
/// Version 2: no content filter.
const MAGIC_V2: &[u8; 4] = b"MGQ2";
/// Version 1: recipients without status code and notice flag, no delay
/// warning flag.
const MAGIC_V1: &[u8; 4] = b"MGQ1";
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
    /// The after-queue content filter (`transport:nexthop`, from
    /// content_filter or a FILTER action): qmgr sends every recipient
    /// there instead of its own route.
    pub filter: Option<String>,
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
    let version = match &prefix[..4] {
        m if m == MAGIC => 4,
        m if m == MAGIC_V3 => 3,
        m if m == MAGIC_V2 => 2,
        m if m == MAGIC_V1 => 1,
        _ => return Err(QueueFileError::Corrupt("bad magic".into())),
    };
    let len = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]) as usize;
    if len > MAX_RECORD {
        return Err(QueueFileError::Corrupt(format!("record of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    read_exact_at(file, &mut body, PREFIX as u64)?;
    let undecodable =
        |e: postcard::Error| QueueFileError::Corrupt(format!("undecodable record: {e}"));
    let record: QueueRecord = match version {
        1 => postcard::from_bytes::<v1::QueueRecord>(&body)
            .map_err(undecodable)?
            .into(),
        2 => postcard::from_bytes::<v2::QueueRecord>(&body)
            .map_err(undecodable)?
            .into(),
        3 => postcard::from_bytes::<v3::QueueRecord>(&body)
            .map_err(undecodable)?
            .into(),
        _ => postcard::from_bytes(&body).map_err(undecodable)?,
    };
    let content_offset = (PREFIX + len) as u64;
    let size = file.metadata()?.len();
    // A corrupt record may claim any length: add without overflowing.
    let expected = content_offset.checked_add(record.content_length);
    if expected != Some(size) {
        return Err(QueueFileError::Corrupt(match expected {
            Some(expected) => format!("size {size}, expected {expected}"),
            None => format!("content length {} out of range", record.content_length),
        }));
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

/// The version 3 record, kept only to read old files: version 4 added the
/// NOTIFY=NEVER flag at the end of each recipient.
mod v3 {
    use serde::Deserialize;

    use crate::envelope::{self, BodyType, ClientInfo, DeliveryState, Micros, RecipientState};

    #[derive(Deserialize)]
    pub struct QueueRecord {
        queue_id: String,
        envelope: Envelope,
        state: DeliveryState,
        message_id: Option<String>,
        content_length: u64,
        filter: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Envelope {
        sender: String,
        recipients: Vec<Recipient>,
        client: ClientInfo,
        body_type: Option<BodyType>,
        smtputf8: bool,
        dsn_ret: Option<String>,
        dsn_envid: Option<String>,
        arrival: Micros,
    }

    #[derive(Deserialize)]
    struct Recipient {
        address: String,
        original: Option<String>,
        state: RecipientState,
        last_reason: Option<String>,
        last_status: Option<String>,
        notified: bool,
    }

    impl From<Envelope> for envelope::Envelope {
        fn from(e: Envelope) -> Self {
            envelope::Envelope {
                sender: e.sender,
                recipients: e
                    .recipients
                    .into_iter()
                    .map(|r| envelope::Recipient {
                        address: r.address,
                        original: r.original,
                        state: r.state,
                        last_reason: r.last_reason,
                        last_status: r.last_status,
                        notified: r.notified,
                        notify_never: false,
                    })
                    .collect(),
                client: e.client,
                body_type: e.body_type,
                smtputf8: e.smtputf8,
                dsn_ret: e.dsn_ret,
                dsn_envid: e.dsn_envid,
                arrival: e.arrival,
            }
        }
    }

    impl From<QueueRecord> for super::QueueRecord {
        fn from(old: QueueRecord) -> Self {
            super::QueueRecord {
                queue_id: old.queue_id,
                envelope: old.envelope.into(),
                state: old.state,
                message_id: old.message_id,
                content_length: old.content_length,
                filter: old.filter,
            }
        }
    }
}

/// The version 2 record, kept only to read old files: version 3 added
/// the content filter at the end.
mod v2 {
    use serde::Deserialize;

    use crate::envelope::DeliveryState;

    #[derive(Deserialize)]
    pub struct QueueRecord {
        queue_id: String,
        envelope: super::v3::Envelope,
        state: DeliveryState,
        message_id: Option<String>,
        content_length: u64,
    }

    impl From<QueueRecord> for super::QueueRecord {
        fn from(old: QueueRecord) -> Self {
            super::QueueRecord {
                queue_id: old.queue_id,
                envelope: old.envelope.into(),
                state: old.state,
                message_id: old.message_id,
                content_length: old.content_length,
                filter: None,
            }
        }
    }
}

/// The version 1 record, kept only to read old files.
mod v1 {
    use serde::Deserialize;

    use crate::envelope::{self, BodyType, ClientInfo, Micros, RecipientState};

    #[derive(Deserialize)]
    pub struct QueueRecord {
        queue_id: String,
        envelope: Envelope,
        state: DeliveryState,
        message_id: Option<String>,
        content_length: u64,
    }

    #[derive(Deserialize)]
    struct Envelope {
        sender: String,
        recipients: Vec<Recipient>,
        client: ClientInfo,
        body_type: Option<BodyType>,
        smtputf8: bool,
        dsn_ret: Option<String>,
        dsn_envid: Option<String>,
        arrival: Micros,
    }

    #[derive(Deserialize)]
    struct Recipient {
        address: String,
        original: Option<String>,
        state: RecipientState,
        last_reason: Option<String>,
    }

    #[derive(Deserialize)]
    struct DeliveryState {
        attempts: u32,
        last_attempt: Option<Micros>,
        next_attempt: Option<Micros>,
    }

    impl From<QueueRecord> for super::QueueRecord {
        fn from(old: QueueRecord) -> Self {
            let e = old.envelope;
            super::QueueRecord {
                queue_id: old.queue_id,
                envelope: envelope::Envelope {
                    sender: e.sender,
                    recipients: e
                        .recipients
                        .into_iter()
                        .map(|r| envelope::Recipient {
                            address: r.address,
                            original: r.original,
                            state: r.state,
                            last_reason: r.last_reason,
                            last_status: None,
                            // Version 1 sent no notices; a recipient it
                            // marked Bounced was logged then, and is not
                            // reported a second time now.
                            notified: r.state == RecipientState::Bounced,
                            notify_never: false,
                        })
                        .collect(),
                    client: e.client,
                    body_type: e.body_type,
                    smtputf8: e.smtputf8,
                    dsn_ret: e.dsn_ret,
                    dsn_envid: e.dsn_envid,
                    arrival: e.arrival,
                },
                state: envelope::DeliveryState {
                    attempts: old.state.attempts,
                    last_attempt: old.state.last_attempt,
                    next_attempt: old.state.next_attempt,
                    delay_warned: false,
                },
                message_id: old.message_id,
                content_length: old.content_length,
                filter: None,
            }
        }
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
            filter: Some("smtp-amavis:[127.0.0.1]:10024".into()),
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

    /// A record claiming a content length near u64::MAX is corrupt, not an
    /// overflow (found by the queue_file fuzz target).
    #[test]
    fn an_impossible_content_length_is_corrupt() {
        let mut file = tempfile::tempfile().unwrap();
        write_record(&mut file, &record(u64::MAX - 3)).unwrap();
        file.write_all(b"x").unwrap();
        match read_record(&file) {
            Err(QueueFileError::Corrupt(reason)) => {
                assert!(reason.contains("out of range"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// A version 1 file, as the first release wrote it, still reads.
    #[test]
    fn version_1_files_still_read() {
        #[derive(Serialize)]
        struct RecipientV1<'a> {
            address: &'a str,
            original: Option<&'a str>,
            state: crate::envelope::RecipientState,
            last_reason: Option<&'a str>,
        }
        let current = record(4);
        let e = &current.envelope;
        // postcard writes a struct as its fields in order, so a tuple of
        // the version 1 fields encodes exactly as the version 1 struct did.
        let old = (
            &current.queue_id,
            (
                &e.sender,
                vec![RecipientV1 {
                    address: "b@example.com",
                    original: None,
                    state: crate::envelope::RecipientState::Bounced,
                    last_reason: Some("550 no"),
                }],
                &e.client,
                e.body_type,
                e.smtputf8,
                &e.dsn_ret,
                &e.dsn_envid,
                e.arrival,
            ),
            (3u32, Some(7u64), None::<u64>),
            &current.message_id,
            4u64,
        );
        let body = postcard::to_stdvec(&old).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(MAGIC_V1).unwrap();
        file.write_all(&(body.len() as u32).to_le_bytes()).unwrap();
        file.write_all(&body).unwrap();
        file.write_all(b"x\r\n\r").unwrap();
        let (back, _) = read_record(&file).unwrap();
        assert_eq!(back.state.attempts, 3);
        assert_eq!(back.state.last_attempt, Some(7));
        assert!(!back.state.delay_warned);
        let r = &back.envelope.recipients[0];
        assert_eq!(r.last_reason.as_deref(), Some("550 no"));
        assert!(r.notified);
        assert_eq!(back.envelope.sender, "a@example.org");
    }

    /// A version 2 file (before content filters) still reads, without a
    /// filter.
    /// The envelope as versions 2 and 3 wrote it: recipients without the
    /// NOTIFY=NEVER flag (postcard writes a struct as its fields in order).
    fn envelope_v3(e: &Envelope) -> impl Serialize + '_ {
        let recipients: Vec<_> = e
            .recipients
            .iter()
            .map(|r| {
                (
                    &r.address,
                    &r.original,
                    r.state,
                    &r.last_reason,
                    &r.last_status,
                    r.notified,
                )
            })
            .collect();
        (
            &e.sender,
            recipients,
            &e.client,
            e.body_type,
            e.smtputf8,
            &e.dsn_ret,
            &e.dsn_envid,
            e.arrival,
        )
    }

    fn old_file(magic: &[u8; 4], record: &impl Serialize) -> File {
        let body = postcard::to_stdvec(record).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(magic).unwrap();
        file.write_all(&(body.len() as u32).to_le_bytes()).unwrap();
        file.write_all(&body).unwrap();
        file.write_all(b"x\r\n\r").unwrap();
        file
    }

    /// A version 3 file (before NOTIFY=NEVER) still reads, every recipient
    /// notified as before.
    #[test]
    fn version_3_files_still_read() {
        let mut current = record(4);
        current.envelope.recipients[0].notified = true;
        current.envelope.recipients[0].last_status = Some("5.1.1".into());
        let old = (
            &current.queue_id,
            envelope_v3(&current.envelope),
            &current.state,
            &current.message_id,
            4u64,
            &current.filter,
        );
        let (back, _) = read_record(&old_file(MAGIC_V3, &old)).unwrap();
        assert_eq!(back, current);
        assert!(!back.envelope.recipients[0].notify_never);
    }

    /// The flag is kept in the current version.
    #[test]
    fn never_notify_recipients_round_trip() {
        let mut current = record(1);
        current
            .envelope
            .recipients
            .push(Recipient::never_notify("bcc@example.com".into()));
        let mut file = tempfile::tempfile().unwrap();
        write_record(&mut file, &current).unwrap();
        file.write_all(b"x").unwrap();
        let (back, _) = read_record(&file).unwrap();
        assert!(back.envelope.recipients[1].notify_never);
        assert!(!back.envelope.recipients[0].notify_never);
    }

    #[test]
    fn version_2_files_still_read() {
        let current = record(4);
        let old = (
            &current.queue_id,
            envelope_v3(&current.envelope),
            &current.state,
            &current.message_id,
            4u64,
        );
        let (back, _) = read_record(&old_file(MAGIC_V2, &old)).unwrap();
        assert_eq!(back.filter, None);
        assert_eq!(back.envelope, current.envelope);
        assert_eq!(back.message_id, current.message_id);
    }
}
