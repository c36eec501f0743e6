//! The decision about one committed message, ending in the reply for
//! smtpd: address rewriting, the header and body checks, FILTER, REDIRECT
//! and BCC, the content scanner, then the queue file, durable before the
//! reply. Without a scanner, reading, checking and writing the message are
//! one job on a blocking thread (one hand-off per message rather than two);
//! with one, the scan runs between them on the runtime.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use mailgate_ipc::envelope::{ClientInfo, Envelope, Recipient, SmtpReply};
use mailgate_ipc::protocol::cleanup::{Actions, Reply};
use mailgate_ipc::protocol::scanner::{Action, Authenticated};
use mailgate_ipc::spool::{HOLD, INCOMING, PendingFile, QUARANTINE};
use mailgate_log::{info, warning};

use crate::queue_file::{Commit, SigningFailed, Top, write_queue_file};
use crate::scan_client::{self, FailureAction};
use crate::session::{Reserved, rejected, write_error};
use crate::{Settings, Shared, checks, headers, rewrite, routing};

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

/// A committed message on its way to the queue.
struct Message {
    shared: Arc<Shared>,
    queue_id: String,
    envelope: Envelope,
    actions: Actions,
    /// The one recipient the Received header names, as the client gave it.
    received_for: Option<String>,
    /// The incoming/ file reserved at Begin; dropped unused, it goes away.
    file: PendingFile,
}

/// A message the checks let through, with where it goes.
struct Decided {
    message: Message,
    content: Vec<u8>,
    destination: Destination,
    filter: Option<String>,
    /// What HOLD matched, for the log.
    hold: Option<String>,
    tail: String,
}

/// What the scanner added.
#[derive(Default)]
struct Scanned {
    quarantine: bool,
    extra: Vec<(String, String)>,
    subject_tag: Option<String>,
    authenticated: Option<Authenticated>,
}

/// A queue file written and its own fsync done.
struct Written {
    message_id: String,
    destination: Destination,
}

/// The whole decision about one message, ending in the reply for smtpd.
pub(crate) async fn deliver(
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
    let Reserved { file, dir_synced } = reserved;
    let message = Message {
        shared: shared.clone(),
        queue_id: queue_id.to_string(),
        envelope,
        actions,
        received_for,
        file,
    };
    let written = if settings.content_scanner.is_none() {
        blocking(queue_id, move || {
            message.decide(reader)?.write(Scanned::default())
        })
        .await
    } else {
        let decided = match blocking(queue_id, move || message.decide(reader)).await {
            Ok(decided) => decided,
            Err(reply) => return reply,
        };
        let scanned = match decided.scan(&content).await {
            Ok(scanned) => scanned,
            Err(reply) => return reply,
        };
        blocking(queue_id, move || decided.write(scanned)).await
    };
    let written = match written {
        Ok(written) => written,
        Err(reply) => return reply,
    };
    // The file is synced; for incoming/, its name too once the directory's
    // fsync begun at Begin has succeeded.
    if written.destination == Destination::Incoming {
        let synced = match dir_synced.await {
            Ok(synced) => synced,
            Err(e) => Err(io::Error::other(e)),
        };
        if let Err(e) = synced {
            let _ = std::fs::remove_file(std::path::Path::new(INCOMING).join(queue_id));
            warning!("{queue_id}: queue file write error: {e}");
            return Reply::Deferred(write_error());
        }
    }
    info!("{queue_id}: message-id={}", written.message_id);
    if written.destination == Destination::Incoming {
        crate::wake::wake_qmgr();
    }
    Reply::Queued {
        queue_id: queue_id.to_string(),
    }
}

/// Runs `job` on a blocking thread; a job that panicked defers the message.
async fn blocking<T: Send + 'static>(
    queue_id: &str,
    job: impl FnOnce() -> Result<T, Reply> + Send + 'static,
) -> Result<T, Reply> {
    match tokio::task::spawn_blocking(job).await {
        Ok(result) => result,
        Err(e) => {
            warning!("{queue_id}: {e}");
            Err(Reply::Deferred(write_error()))
        }
    }
}

impl Message {
    /// Reads the content, runs the header and body checks and applies
    /// what they and smtpd decided. Err is the reply when the message is
    /// not to be queued (REJECT, DISCARD, a read error).
    fn decide(mut self, reader: OwnedFd) -> Result<Decided, Reply> {
        let queue_id = self.queue_id.clone();
        let settings = &self.shared.settings;
        let checks = !self.actions.no_header_body_checks;
        let (original, outcome) = prepare(settings, reader, checks).map_err(|e| {
            warning!("{queue_id}: cannot read the message: {e}");
            Reply::Deferred(write_error())
        })?;
        let tail = who(&self.envelope);
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
            return Err(if reply.code < 500 {
                Reply::Deferred(reply)
            } else {
                Reply::Rejected(reply)
            });
        }
        if outcome.discard.is_some() {
            // Postfix's DISCARD: the client hears 250, nothing is delivered.
            return Err(Reply::Queued { queue_id });
        }
        // FILTER, REDIRECT and BCC: smtpd's, then the checks'.
        let mapped = !self.actions.no_address_mappings;
        let bcc_mapping = |envelope: &Envelope, bcc: Vec<Recipient>| {
            let mut copy = Envelope {
                recipients: bcc,
                ..envelope.clone()
            };
            if mapped {
                rewrite::apply(
                    settings.rewriting.as_ref(),
                    settings.local.as_ref(),
                    &queue_id,
                    &mut copy,
                )?;
            }
            Ok(copy.recipients)
        };
        let filter = routing::apply(&mut self.envelope, &self.actions, &outcome, bcc_mapping)
            .map_err(Reply::Deferred)?;
        let destination = if outcome.hold.is_some() || self.actions.hold {
            Destination::Hold
        } else {
            Destination::Incoming
        };
        let content = outcome.rewritten.unwrap_or(original);
        // Nothing from outside may speak for this gateway: its own
        // Authentication-Results come from the scanner's checks.
        let content = headers::strip_our_authentication_results(&content, &settings.authserv_id)
            .inspect(|_| info!("{queue_id}: removed a forged Authentication-Results header"))
            .unwrap_or(content);
        Ok(Decided {
            message: self,
            content,
            destination,
            filter,
            hold: outcome.hold,
            tail,
        })
    }
}

impl Decided {
    /// The content scanner's verdict. Err is the reply when the message is
    /// not to be queued (reject, defer, discard, the scanner unreachable).
    async fn scan(&self, content: &OwnedFd) -> Result<Scanned, Reply> {
        let message = &self.message;
        let (settings, queue_id, tail) = (&message.shared.settings, &message.queue_id, &self.tail);
        let Some(service) = &settings.content_scanner else {
            return Ok(Scanned::default());
        };
        let envelope = &message.envelope;
        // The same header write_queue_file adds (same comments: TLS and
        // the authenticated sender; same arrival time).
        let received = headers::received(
            settings,
            envelope,
            &message.actions.received_comments,
            message.received_for.as_deref(),
            queue_id,
            (envelope.arrival / 1_000_000) as i64,
        );
        let verdict = scan_client::scan(
            service,
            queue_id,
            envelope,
            content,
            &message.actions.sender_auth,
            received,
            settings.scanner_timeout,
        )
        .await;
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(reason) => {
                let reply = settings.failure_action.reply();
                warning!("{queue_id}: {reason}; answering {reply}");
                return Err(match settings.failure_action {
                    FailureAction::Defer => Reply::Deferred(reply),
                    FailureAction::Reject => Reply::Rejected(reply),
                });
            }
        };
        if !verdict.viruses.is_empty()
            && let Some(admin) = &settings.virus_admin
        {
            notify_virus_admin(&message.shared, admin, queue_id, envelope, &verdict.viruses).await;
        }
        let mut scanned = Scanned::default();
        match verdict.action {
            Action::Pass => {}
            Action::Reject => {
                info!("{queue_id}: reject: {}; {tail}", verdict.reason);
                return Err(Reply::Rejected(verdict.reply.unwrap_or_else(|| {
                    rejected("5.7.1", format!("Rejected: {}", verdict.reason))
                })));
            }
            Action::Defer => {
                let reply = verdict
                    .reply
                    .filter(|r| (400..500).contains(&r.code))
                    .unwrap_or_else(|| settings.failure_action.reply());
                info!("{queue_id}: defer: {}; {tail}", verdict.reason);
                return Err(Reply::Deferred(reply));
            }
            Action::Discard => {
                info!("{queue_id}: discard: {}; {tail}", verdict.reason);
                return Err(Reply::Queued {
                    queue_id: queue_id.clone(),
                });
            }
            Action::Quarantine => {
                info!("{queue_id}: quarantine: {}; {tail}", verdict.reason);
                scanned.quarantine = true;
                scanned
                    .extra
                    .push(("X-Quarantine-Reason".to_string(), verdict.reason.clone()));
            }
        }
        scanned.extra.extend(verdict.headers);
        scanned.subject_tag = verdict.subject_tag;
        scanned.authenticated = verdict.authenticated;
        Ok(scanned)
    }

    /// Writes the queue file and fsyncs it (and, outside incoming/, its
    /// directory: incoming/'s fsync was started at Begin and is waited
    /// for by the caller).
    fn write(self, scanned: Scanned) -> Result<Written, Reply> {
        let Decided {
            message,
            content,
            destination,
            filter,
            hold,
            ..
        } = self;
        let Message {
            shared,
            queue_id,
            envelope,
            actions,
            received_for,
            file,
        } = message;
        let settings = &shared.settings;
        let destination = if scanned.quarantine {
            Destination::Quarantine
        } else {
            destination
        };
        if destination == Destination::Hold
            && let Some(what) = &hold
        {
            info!("{queue_id}: hold: {what}");
        }
        let written = (|| {
            let (file, commit) = match destination {
                Destination::Incoming => (file, Commit::FileOnly),
                other => {
                    // The incoming/ file reserved at Begin goes away unused.
                    drop(file);
                    (
                        PendingFile::create(other.queue(), &queue_id)?,
                        Commit::Whole,
                    )
                }
            };
            let content = match &scanned.subject_tag {
                Some(tag) => checks::tag_subject(&content, tag),
                None => content,
            };
            write_queue_file(
                file,
                settings,
                envelope,
                &content,
                Top {
                    prepend: &actions.prepend,
                    received_comments: &actions.received_comments,
                    signer: settings
                        .signer
                        .as_ref()
                        .filter(|_| actions.sender_auth.origin.is_outbound()),
                    // Mail the scanner checked (from outside, dkim_verify).
                    sealer: settings.sealer.as_ref().zip(scanned.authenticated.as_ref()),
                    received_for: received_for.as_deref(),
                    filter: filter.as_deref(),
                },
                &scanned.extra,
                &queue_id,
                commit,
            )
        })();
        match written {
            Ok(message_id) => Ok(Written {
                message_id,
                destination,
            }),
            Err(e) => Err(write_failed(&queue_id, &e)),
        }
    }
}

/// The reply for a queue file that could not be written, and its log line.
fn write_failed(queue_id: &str, e: &io::Error) -> Reply {
    match e.get_ref().and_then(|e| e.downcast_ref::<SigningFailed>()) {
        Some(failed) => {
            warning!("{queue_id}: {e}");
            let what = match failed {
                SigningFailed::Arc(_) => "ARC sealing",
                SigningFailed::Dkim(_) => "DKIM signing",
            };
            Reply::Deferred(SmtpReply {
                code: 451,
                status: "4.7.0".into(),
                text: format!("Error: {what} unavailable, try again later"),
            })
        }
        None => {
            warning!("{queue_id}: queue file write error: {e}");
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
