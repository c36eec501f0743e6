//! One transaction from smtpd: Begin (reserve a queue ID), Commit (header
//! and body checks, the content scanner, then write the queue file, make it
//! durable, answer).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::arc::{Sealed, Sealer};
use crate::dkim::Signer;
use mailgate_ipc::envelope::{ClientInfo, DeliveryState, Envelope, Recipient, SmtpReply};
use mailgate_ipc::protocol::cleanup::{Actions, Reply, Request};
use mailgate_ipc::protocol::scanner::{Action, Authenticated};
use mailgate_ipc::queue_file::{QueueRecord, write_record};
use mailgate_ipc::spool::{HOLD, INCOMING, PendingFile, QUARANTINE};
use mailgate_ipc::validate::{self, Validate};
use mailgate_ipc::{Channel, IpcError};
use mailgate_log::{info, warning};

use crate::scan_client::{self, FailureAction};
use crate::{Settings, Shared, checks, headers, rewrite, routing};

fn write_error() -> SmtpReply {
    SmtpReply {
        code: 451,
        status: "4.3.0".into(),
        text: "Error: queue file write error".into(),
    }
}

pub async fn run(mut channel: Channel, shared: Arc<Shared>) {
    match channel.recv::<Request>().await {
        Ok((Request::Begin, fds)) if fds.is_empty() => {}
        Ok((Request::Begin, _)) => return channel.log_refusal("Begin with descriptors"),
        Ok((_, _)) => return channel.log_refusal("expected Begin"),
        Err(IpcError::Closed) => return,
        Err(e) => return channel.log_refusal(e),
    }
    let queue_id = shared
        .ids
        .lock()
        .map(|mut ids| ids.next_id())
        .unwrap_or_else(|poisoned| poisoned.into_inner().next_id());
    // Creating an empty file is a directory update in the page cache (no
    // I/O is waited for), done here rather than on a blocking thread: the
    // hand-off would cost more than the call, and smtpd waits for the
    // answer.
    let pending = match PendingFile::create(INCOMING, &queue_id) {
        Ok(pending) => pending,
        Err(e) => {
            warning!("{queue_id}: cannot create queue file: {e}");
            let _ = channel.send(&Reply::Deferred(write_error()), &[]).await;
            return;
        }
    };
    // The file's name is made durable while the message arrives: an fsync
    // of incoming/ that starts now (shared with concurrent sessions), so at
    // the commit only the file's own fsync is left to wait for.
    let dir_synced = tokio::task::spawn_blocking(|| {
        mailgate_ipc::group_sync::for_dir(std::path::Path::new(INCOMING)).sync()
    });
    let reserved = Reserved {
        file: pending,
        dir_synced,
    };
    let started = Reply::Started {
        queue_id: queue_id.clone(),
    };
    if channel.send(&started, &[]).await.is_err() {
        return;
    }
    // Dropping `reserved` anywhere below, without commit, removes the file.
    let (request, fds) = match channel.recv::<Request>().await {
        Ok(received) => received,
        // The client went away or reset the transaction.
        Err(IpcError::Closed) => return,
        Err(e) => return channel.log_refusal(format_args!("{queue_id}: {e}")),
    };
    let (envelope, actions, content) =
        match checked_commit(&request, fds, shared.settings.max_content) {
            Ok(commit) => commit,
            Err((why, reply)) => {
                channel.log_refusal(format_args!("{queue_id}: {why}"));
                let _ = channel.send(&reply, &[]).await;
                return;
            }
        };
    let reply = deliver(&shared, &queue_id, reserved, envelope, actions, content).await;
    let queued = matches!(reply, Reply::Queued { .. });
    if channel.send(&reply, &[]).await.is_err() && queued {
        // The file is durable; the client will not hear 250 and may send
        // again. SMTP allows the duplicate, and losing mail is worse.
        warning!("{queue_id}: smtpd went away after the message was queued");
    }
}

/// A Commit as cleanup takes it: a valid envelope and exactly one
/// descriptor, a memfd sealed against any change (so the scanner and the
/// queue file get what the checks read), of the announced size and within
/// the size limit. Anything else is refused with the reason for the log
/// and the reply for the peer.
fn checked_commit(
    request: &Request,
    fds: Vec<OwnedFd>,
    max_content: u64,
) -> Result<(Envelope, Actions, OwnedFd), (String, Reply)> {
    let malformed = |why: String| {
        (
            why,
            Reply::Rejected(rejected(
                "5.5.0",
                "Error: malformed message hand-over".into(),
            )),
        )
    };
    let Request::Commit {
        envelope,
        actions,
        size,
    } = request
    else {
        return Err(malformed("expected Commit".into()));
    };
    request.validate().map_err(|e| malformed(e.to_string()))?;
    let [content]: [OwnedFd; 1] = fds
        .try_into()
        .map_err(|fds: Vec<OwnedFd>| malformed(format!("Commit with {} descriptors", fds.len())))?;
    match validate::sealed_content(&content, *size, max_content) {
        Ok(_) => Ok((envelope.as_ref().clone(), actions.as_ref().clone(), content)),
        Err(e) if *size > max_content => Err((
            e.to_string(),
            Reply::Rejected(SmtpReply {
                code: 552,
                status: "5.3.4".into(),
                text: "Error: message file too big".into(),
            }),
        )),
        Err(e) => Err(malformed(e.to_string())),
    }
}

/// Where a message goes once it has passed the checks and the scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Destination {
    Incoming,
    Hold,
    Quarantine,
}

impl Destination {
    fn queue(self) -> &'static str {
        match self {
            Destination::Incoming => INCOMING,
            Destination::Hold => HOLD,
            Destination::Quarantine => QUARANTINE,
        }
    }
}

fn rejected(status: &str, text: String) -> SmtpReply {
    SmtpReply {
        code: 554,
        status: status.into(),
        text,
    }
}

/// The log's tail for a decision about a message, as Postfix writes it.
fn who(envelope: &Envelope) -> String {
    let to = envelope
        .recipients
        .first()
        .map(|r| r.address.as_str())
        .unwrap_or("");
    format!(
        "from {}; from=<{}> to=<{to}> proto={} helo=<{}>",
        envelope.client.label(),
        envelope.sender,
        envelope.client.protocol,
        envelope.client.helo
    )
}

/// Header and body checks, the scanner, then the queue file: the whole
/// decision about one message, ending in the reply for smtpd.
async fn deliver(
    shared: &Arc<Shared>,
    queue_id: &str,
    reserved: Reserved,
    mut envelope: Envelope,
    actions: Actions,
    content: OwnedFd,
) -> Reply {
    let settings = &shared.settings;
    // smtpd's access actions, each logged there already.
    if actions.discard {
        return Reply::Queued {
            queue_id: queue_id.to_string(),
        };
    }
    // The Received header names the one recipient as the client gave it.
    let received_for = match envelope.recipients.as_slice() {
        [only] => Some(only.address.clone()),
        _ => None,
    };
    // receive_override_options of smtpd's service, as Postfix's cleanup
    // takes them from its client.
    if !actions.no_address_mappings
        && let Err(reply) = rewrite::apply(
            settings.rewriting.as_ref(),
            settings.local.as_ref(),
            queue_id,
            &mut envelope,
        )
    {
        return Reply::Deferred(reply);
    }
    let reader = match content.try_clone() {
        Ok(fd) => fd,
        Err(e) => {
            warning!("{queue_id}: cannot duplicate the message descriptor: {e}");
            return Reply::Deferred(write_error());
        }
    };
    let work = shared.clone();
    let checks = !actions.no_header_body_checks;
    let prepared =
        tokio::task::spawn_blocking(move || prepare(&work.settings, reader, checks)).await;
    let (original, outcome) = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(e)) => {
            warning!("{queue_id}: cannot read the message: {e}");
            return Reply::Deferred(write_error());
        }
        Err(e) => {
            warning!("{queue_id}: {e}");
            return Reply::Deferred(write_error());
        }
    };
    let tail = who(&envelope);
    for logged in &outcome.log {
        match logged {
            checks::Logged::Act { action, what, text } if text.is_empty() => {
                info!("{queue_id}: {action}: {what} {tail}")
            }
            checks::Logged::Act { action, what, text } => {
                info!("{queue_id}: {action}: {what} {tail}: {text}")
            }
            checks::Logged::Warning(warning) => warning!("{warning}"),
        }
    }
    if let Some(reply) = outcome.reject {
        // REJECT with a 4.x.x code defers, as in Postfix's cleanup.
        return if reply.code < 500 {
            Reply::Deferred(reply)
        } else {
            Reply::Rejected(reply)
        };
    }
    if outcome.discard.is_some() {
        // Postfix's DISCARD: the client hears 250, nothing is delivered.
        return Reply::Queued {
            queue_id: queue_id.to_string(),
        };
    }
    // FILTER, REDIRECT and BCC: smtpd's, then the checks'.
    let bcc_mapping = |envelope: &Envelope, bcc: Vec<Recipient>| {
        let mut copy = Envelope {
            recipients: bcc,
            ..envelope.clone()
        };
        if !actions.no_address_mappings {
            rewrite::apply(
                settings.rewriting.as_ref(),
                settings.local.as_ref(),
                queue_id,
                &mut copy,
            )?;
        }
        Ok(copy.recipients)
    };
    let filter = match routing::apply(&mut envelope, &actions, &outcome, bcc_mapping) {
        Ok(filter) => filter,
        Err(reply) => return Reply::Deferred(reply),
    };
    let mut destination = if outcome.hold.is_some() || actions.hold {
        Destination::Hold
    } else {
        Destination::Incoming
    };
    let content_bytes = outcome.rewritten.unwrap_or(original);
    // Nothing from outside may speak for this gateway: its own
    // Authentication-Results come from the scanner's checks below.
    let content_bytes =
        headers::strip_our_authentication_results(&content_bytes, &settings.authserv_id)
            .inspect(|_| info!("{queue_id}: removed a forged Authentication-Results header"))
            .unwrap_or(content_bytes);
    let mut extra = Vec::new();
    let mut subject_tag = None;
    let mut authenticated = None;
    if let Some(service) = &settings.content_scanner {
        // The same header write_queue_file adds (same comments: TLS and
        // the authenticated sender; same arrival time).
        let received = headers::received(
            settings,
            &envelope,
            &actions.received_comments,
            received_for.as_deref(),
            queue_id,
            (envelope.arrival / 1_000_000) as i64,
        );
        let verdict = scan_client::scan(
            service,
            queue_id,
            &envelope,
            &content,
            &actions.sender_auth,
            received,
            settings.scanner_timeout,
        )
        .await;
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(reason) => {
                let reply = settings.failure_action.reply();
                warning!("{queue_id}: {reason}; answering {reply}");
                return match settings.failure_action {
                    FailureAction::Defer => Reply::Deferred(reply),
                    FailureAction::Reject => Reply::Rejected(reply),
                };
            }
        };
        if !verdict.viruses.is_empty()
            && let Some(admin) = &settings.virus_admin
        {
            notify_virus_admin(shared, admin, queue_id, &envelope, &verdict.viruses).await;
        }
        match verdict.action {
            Action::Pass => {}
            Action::Reject => {
                info!("{queue_id}: reject: {}; {tail}", verdict.reason);
                return Reply::Rejected(verdict.reply.unwrap_or_else(|| {
                    rejected("5.7.1", format!("Rejected: {}", verdict.reason))
                }));
            }
            Action::Defer => {
                let reply = verdict
                    .reply
                    .filter(|r| (400..500).contains(&r.code))
                    .unwrap_or_else(|| settings.failure_action.reply());
                info!("{queue_id}: defer: {}; {tail}", verdict.reason);
                return Reply::Deferred(reply);
            }
            Action::Discard => {
                info!("{queue_id}: discard: {}; {tail}", verdict.reason);
                return Reply::Queued {
                    queue_id: queue_id.to_string(),
                };
            }
            Action::Quarantine => {
                info!("{queue_id}: quarantine: {}; {tail}", verdict.reason);
                destination = Destination::Quarantine;
                extra.push(("X-Quarantine-Reason".to_string(), verdict.reason.clone()));
            }
        }
        extra.extend(verdict.headers);
        subject_tag = verdict.subject_tag;
        authenticated = verdict.authenticated;
    }
    if destination == Destination::Hold
        && let Some(what) = &outcome.hold
    {
        info!("{queue_id}: hold: {what}");
    }
    let id = queue_id.to_string();
    let work = shared.clone();
    let Reserved {
        file: pending,
        dir_synced,
    } = reserved;
    let written = tokio::task::spawn_blocking(move || {
        let (pending, commit) = match destination {
            // incoming/'s fsync started at Begin: awaited below.
            Destination::Incoming => (pending, Commit::FileOnly),
            other => {
                // The incoming/ file reserved at Begin goes away unused.
                drop(pending);
                (PendingFile::create(other.queue(), &id)?, Commit::Whole)
            }
        };
        let content = match &subject_tag {
            Some(tag) => checks::tag_subject(&content_bytes, tag),
            None => content_bytes,
        };
        write_queue_file(
            pending,
            &work.settings,
            envelope,
            &content,
            Top {
                prepend: &actions.prepend,
                received_comments: &actions.received_comments,
                signer: work
                    .settings
                    .signer
                    .as_ref()
                    .filter(|_| actions.sender_auth.origin.is_outbound()),
                // Mail the scanner checked (from outside, dkim_verify).
                sealer: work.settings.sealer.as_ref().zip(authenticated.as_ref()),
                received_for: received_for.as_deref(),
                filter: filter.as_deref(),
            },
            &extra,
            &id,
            commit,
        )
    })
    .await;
    // The file is synced; for incoming/, its name too once the directory's
    // fsync begun at Begin has succeeded.
    let written = match (written, destination) {
        (Ok(Ok(message_id)), Destination::Incoming) => match dir_synced.await {
            Ok(Ok(())) => Ok(Ok(message_id)),
            Ok(Err(e)) => {
                let _ = std::fs::remove_file(std::path::Path::new(INCOMING).join(queue_id));
                Ok(Err(e))
            }
            Err(e) => Err(e),
        },
        (other, _) => other,
    };
    match written {
        Ok(Ok(message_id)) => {
            info!("{queue_id}: message-id={message_id}");
            if destination == Destination::Incoming {
                crate::wake::wake_qmgr();
            }
            Reply::Queued {
                queue_id: queue_id.to_string(),
            }
        }
        Ok(Err(e)) if e.get_ref().is_some_and(|e| e.is::<SigningFailed>()) => {
            warning!("{queue_id}: {e}");
            let what = match e.get_ref().and_then(|e| e.downcast_ref::<SigningFailed>()) {
                Some(SigningFailed::Arc(_)) => "ARC sealing",
                _ => "DKIM signing",
            };
            Reply::Deferred(SmtpReply {
                code: 451,
                status: "4.7.0".into(),
                text: format!("Error: {what} unavailable, try again later"),
            })
        }
        Ok(Err(e)) => {
            warning!("{queue_id}: queue file write error: {e}");
            Reply::Deferred(write_error())
        }
        Err(e) => {
            warning!("{queue_id}: {e}");
            Reply::Deferred(write_error())
        }
    }
}

/// Reads the content (positioned reads: the descriptor's offset is shared
/// with the scanner's copy) and runs the header and body checks. The size
/// was checked against the limit, and the memfd is sealed, so it is still
/// that size; the allocation is checked all the same, so a size the process
/// cannot hold costs this message a 4xx, not the process.
fn prepare(
    settings: &Settings,
    content: OwnedFd,
    checks: bool,
) -> io::Result<(Vec<u8>, checks::Outcome)> {
    let file = File::from(content);
    let size = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
    let mut original = Vec::new();
    original
        .try_reserve_exact(size)
        .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e))?;
    original.resize(size, 0);
    file.read_exact_at(&mut original, 0)?;
    let outcome = if !checks || settings.checks.is_empty() {
        checks::Outcome::default()
    } else {
        settings.checks.apply(&original)
    };
    Ok((original, outcome))
}

/// What smtpd asked to add at the top: PREPEND results (above the
/// Received header, as in Postfix) and the Received header's comments;
/// and the content filter to record with the envelope.
#[derive(Clone, Copy, Default)]
struct Top<'a> {
    prepend: &'a [String],
    received_comments: &'a [String],
    /// DKIM-sign the message as queued (the organisation's own mail).
    signer: Option<&'a Signer>,
    /// ARC-seal the message as queued, with what the scanner found.
    sealer: Option<(&'a Sealer, &'a Authenticated)>,
    /// The one recipient the Received header names, if one.
    received_for: Option<&'a str>,
    filter: Option<&'a str>,
}

/// DKIM signing or ARC sealing failed (tlskeys down, a key it does not
/// have): the message is not queued unsigned; the client retries.
#[derive(Debug)]
enum SigningFailed {
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

/// The incoming/ file made at Begin, and the fsync of incoming/ started
/// right after it.
struct Reserved {
    file: PendingFile,
    dir_synced: tokio::task::JoinHandle<io::Result<()>>,
}

/// How much of the commit write_queue_file does.
#[derive(Clone, Copy)]
enum Commit {
    /// Mark ready, fsync the file and its directory.
    Whole,
    /// Mark ready and fsync the file; the caller waits for the directory.
    FileOnly,
}

/// Writes record + added headers + content, then commits. Returns the
/// Message-ID (the client's, or the one added).
#[allow(clippy::too_many_arguments)]
fn write_queue_file(
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

/// Queues a notice to virus_admin from the null sender (so it can never
/// bounce back to anyone), naming the message and what was found.
async fn notify_virus_admin(
    shared: &Arc<Shared>,
    admin: &str,
    queue_id: &str,
    envelope: &Envelope,
    viruses: &[String],
) {
    let notice_id = shared
        .ids
        .lock()
        .map(|mut ids| ids.next_id())
        .unwrap_or_else(|poisoned| poisoned.into_inner().next_id());
    let work = shared.clone();
    let admin = admin.to_string();
    let about = format!(
        "A message was stopped because it contains a virus.\r\n\r\n\
         Queue ID:  {queue_id}\r\n\
         Virus:     {}\r\n\
         Client:    {}\r\n\
         Sender:    <{}> (as given; senders of viruses are usually forged)\r\n\
         Recipients: {}\r\n",
        viruses.join(", "),
        envelope.client.label(),
        envelope.sender,
        envelope
            .recipients
            .iter()
            .map(|r| format!("<{}>", r.address))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let id = notice_id.clone();
    let subject = format!("VIRUS found in mail ({queue_id})");
    let written = tokio::task::spawn_blocking(move || {
        let settings = &work.settings;
        let now_micros = mailgate_ipc::envelope::now_micros();
        let content = format!(
            "From: Content filter <MAILER-DAEMON@{origin}>\r\n\
             To: <{admin}>\r\n\
             Subject: {subject}\r\n\
             Auto-Submitted: auto-generated\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{about}",
            origin = settings.myorigin
        );
        let notice = Envelope {
            sender: String::new(),
            recipients: vec![Recipient::new(admin, None)],
            client: ClientInfo {
                name: "localhost".into(),
                addr: "127.0.0.1".into(),
                port: 0,
                helo: settings.myhostname.clone(),
                protocol: "local".into(),
            },
            body_type: None,
            smtputf8: false,
            dsn_ret: None,
            dsn_envid: None,
            arrival: now_micros,
        };
        let pending = PendingFile::create(INCOMING, &id)?;
        write_queue_file(
            pending,
            settings,
            notice,
            content.as_bytes(),
            Top::default(),
            &[],
            &id,
            Commit::Whole,
        )
    })
    .await;
    match written {
        Ok(Ok(_)) => {
            info!("{notice_id}: virus notice for {queue_id} queued");
            crate::wake::wake_qmgr();
        }
        Ok(Err(e)) => warning!("{queue_id}: cannot queue the virus notice: {e}"),
        Err(e) => warning!("{queue_id}: cannot queue the virus notice: {e}"),
    }
}
