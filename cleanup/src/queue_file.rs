//! The queue file as cleanup writes it: the envelope record, the headers
//! cleanup adds on top (PREPEND, Received, Message-ID, Date, the scanner's,
//! a DKIM signature, an ARC set), the content; then the commit that makes
//! it durable.

use std::io::{self, BufWriter, Write};

use mailgate_ipc::envelope::{DeliveryState, Envelope};
use mailgate_ipc::protocol::scanner::Authenticated;
use mailgate_ipc::queue_file::{QueueRecord, write_record};
use mailgate_ipc::spool::PendingFile;
use mailgate_log::info;

use crate::Settings;
use crate::arc::{Sealed, Sealer};
use crate::dkim::Signer;
use crate::headers;

/// What smtpd asked to add at the top: PREPEND results (above the
/// Received header, as in Postfix) and the Received header's comments;
/// and the content filter to record with the envelope.
#[derive(Clone, Copy, Default)]
pub(crate) struct Top<'a> {
    pub(crate) prepend: &'a [String],
    pub(crate) received_comments: &'a [String],
    /// DKIM-sign the message as queued (the organisation's own mail).
    pub(crate) signer: Option<&'a Signer>,
    /// ARC-seal the message as queued, with what the scanner found.
    pub(crate) sealer: Option<(&'a Sealer, &'a Authenticated)>,
    /// The one recipient the Received header names, if one.
    pub(crate) received_for: Option<&'a str>,
    pub(crate) filter: Option<&'a str>,
}

/// DKIM signing or ARC sealing failed (tlskeys down, a key it does not
/// have): the message is not queued unsigned; the client retries.
#[derive(Debug)]
pub(crate) enum SigningFailed {
    Dkim(String),
    Arc(String),
}

impl std::fmt::Display for SigningFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigningFailed::Dkim(e) | SigningFailed::Arc(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for SigningFailed {}

/// How much of the commit write_queue_file does.
#[derive(Clone, Copy)]
pub(crate) enum Commit {
    /// Mark ready, fsync the file and its directory.
    Whole,
    /// Mark ready and fsync the file; the caller waits for the directory.
    FileOnly,
}

/// Writes record + added headers + content, then commits. Returns the
/// Message-ID (the client's, or the one added).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_queue_file(
    mut pending: PendingFile,
    settings: &Settings,
    envelope: Envelope,
    content: &[u8],
    top: Top<'_>,
    extra: &[(String, String)],
    queue_id: &str,
    commit: Commit,
) -> io::Result<String> {
    let (prepend, comments) = (top.prepend, top.received_comments);
    let facts = headers::scan(content);
    let now = (envelope.arrival / 1_000_000) as i64;
    let mut added = String::new();
    for line in prepend {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        added.push_str(&format!("{}:{}\r\n", name.trim(), one_header_value(value)));
    }
    added.push_str(&headers::received(
        settings,
        &envelope,
        comments,
        top.received_for,
        queue_id,
        now,
    ));
    let message_id = match facts.message_id {
        Some(id) => id,
        None => {
            let id = headers::message_id(settings, queue_id, now);
            added.push_str(&format!("Message-ID: {id}\r\n"));
            id
        }
    };
    if !facts.has_date {
        added.push_str(&format!("Date: {}\r\n", mailgate_log::rfc5322_date(now)));
    }
    for (name, value) in extra {
        added.push_str(&format!("{name}: {}\r\n", one_header_value(value)));
    }
    if let Some(signer) = top.signer {
        let mut whole = Vec::with_capacity(added.len() + content.len());
        whole.extend_from_slice(added.as_bytes());
        whole.extend_from_slice(content);
        match signer.signature(&whole) {
            Ok(Some(signature)) => added.insert_str(0, &signature),
            Ok(None) => {}
            Err(e) => return Err(io::Error::other(SigningFailed::Dkim(e))),
        }
    }
    // The seal comes last: it covers everything above, as delivered.
    if let Some((sealer, authenticated)) = top.sealer {
        let mut whole = Vec::with_capacity(added.len() + content.len());
        whole.extend_from_slice(added.as_bytes());
        whole.extend_from_slice(content);
        match sealer.seal(&whole, authenticated) {
            Ok(Sealed::Set(set)) => added.insert_str(0, &set),
            Ok(Sealed::Unsealable(why)) => info!("{queue_id}: not ARC-sealed: {why}"),
            Err(e) => return Err(io::Error::other(SigningFailed::Arc(e))),
        }
    }
    let record = QueueRecord {
        queue_id: queue_id.to_string(),
        envelope,
        state: DeliveryState::default(),
        message_id: Some(message_id.clone()),
        content_length: (added.len() + content.len()) as u64,
        filter: top.filter.map(str::to_string),
    };
    let mut out = BufWriter::new(pending.file());
    write_record(&mut out, &record).map_err(io::Error::other)?;
    out.write_all(added.as_bytes())?;
    out.write_all(content)?;
    out.flush()?;
    drop(out);
    match commit {
        Commit::Whole => pending.commit()?,
        Commit::FileOnly => pending.commit_file()?,
    };
    Ok(message_id)
}

/// A header value from another process must stay one header: bare line
/// ends are dropped, folds (CRLF + white space) are kept.
fn one_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find(['\r', '\n']) {
        out.push_str(&rest[..pos]);
        let after = rest[pos..].trim_start_matches(['\r', '\n']);
        if after.starts_with([' ', '\t']) {
            out.push_str("\r\n");
        }
        rest = after;
    }
    out.push_str(rest);
    out
}
