//! A mail transaction: MAIL, RCPT, DATA, and the hand-over to cleanup. A
//! 250 after the final dot means cleanup has the message on stable
//! storage (invariant 1).

use std::time::Instant;

use mailgate_ipc::envelope::{ClientInfo, Envelope, Recipient, now_micros};
use mailgate_ipc::protocol::cleanup::Actions;
use mailgate_ipc::spool::service_socket;
use mailgate_ipc::submit::{CleanupSession, Committed, Content};
use mailgate_log::{info, warning};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::address::{Address, ReversePath};
use crate::command::{MailParams, RcptParams};
use crate::conn::{DataBudget, Filled, IoError, READ_CHUNK};
use crate::data::{DataReader, Feed, Limits, Verdict};
use crate::policy::Evaluator;
use crate::reply::Reply;
use crate::session::{Session, Shared};
use crate::settings::BareNewline;
use crate::xforward::Forwarded;

/// From MAIL to the end of DATA or its abandonment.
pub(crate) struct Transaction {
    sender: ReversePath,
    params: MailParams,
    recipients: Vec<Recipient>,
    /// Asked for at the first accepted recipient; dropping it discards the
    /// transaction in cleanup.
    cleanup: Option<CleanupState>,
    /// The sender a milter set (SMFIR_CHGFROM).
    milter_sender: Option<String>,
}

/// Text fit inside a header comment (Postfix's comment_sanitize): no
/// parentheses, backslashes or control characters.
fn comment_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '(' | ')' | '\\') {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// The transaction in cleanup. Begin is sent at the first accepted
/// recipient but its answer is not waited for there: the RCPT reply goes
/// out while cleanup creates the queue file, and the answer is taken up
/// before anything needs the queue ID (the next RCPT, DATA). The task logs
/// Postfix's `ID: client=` line itself, so a client that leaves after RCPT
/// still gets it, in the order Postfix writes it.
enum CleanupState {
    Starting(tokio::task::JoinHandle<Option<CleanupSession>>),
    Open(CleanupSession),
}

/// Opens the transaction in cleanup in its own task; `client` is the
/// `client=` line's text after the queue ID. The task holds the session's
/// Begin slot until cleanup has answered.
fn start_cleanup(
    socket: std::path::PathBuf,
    timeout: std::time::Duration,
    client: String,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> CleanupState {
    CleanupState::Starting(tokio::spawn(async move {
        let begun = CleanupSession::begin(&socket, timeout).await;
        drop(slot);
        match begun {
            Ok(cleanup) => {
                info!("{}: {client}", cleanup.queue_id());
                Some(cleanup)
            }
            Err(e) => {
                warning!("{e}");
                None
            }
        }
    }))
}

fn queue_error() -> Reply {
    Reply::new(451, "4.3.0 Error: queue file write error")
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    pub(crate) async fn mail(&mut self, sender: ReversePath, params: MailParams) -> Reply {
        let s = self.settings;
        if s.helo_required && self.st.helo.is_none() {
            return Reply::new(503, "5.5.1 Error: send HELO/EHLO first");
        }
        if self.txn.is_some() {
            return Reply::new(503, "5.5.1 Error: nested MAIL command");
        }
        if let Some(size) = params.size
            && s.message_size_limit != 0
            && size > s.message_size_limit
        {
            // Logged with the sender, as Postfix's smtpd_check_size does.
            self.st.sender = Some(sender.to_string());
            let decision = Evaluator::new(s).reject(
                &mut self.st,
                crate::policy::ErrorClass::Policy,
                552,
                "5.3.4",
                "Message size exceeds fixed limit".to_string(),
            );
            self.st.sender = None;
            if let crate::policy::Decision::Reject(reply) = decision {
                return reply;
            }
        }
        let addr = self.st.peer.addr;
        if s.limits.message_rate > 0 && !s.limits.exceptions.contains(addr) {
            let rate = self.shared.anvil.message(addr).await;
            if rate > s.limits.message_rate {
                warning!(
                    "Message delivery request rate limit exceeded: {rate} from {} for service {}",
                    self.st.peer.label(),
                    self.shared.service
                );
                return Reply::new(450, format!("4.7.1 Error: too much mail from {addr}"));
            }
        }
        let sender_text = sender.to_string();
        if s.strict_smtputf8 && !params.smtputf8 && !sender_text.is_ascii() {
            return Reply::new(553, "5.6.7 Must declare SMTPUTF8 to send unicode address");
        }
        self.st.smtputf8 = params.smtputf8;
        self.st.instance = mailgate_policy::new_instance();
        self.st.size = params.size.unwrap_or(0);
        if !s.delay_reject
            && let Some(reply) = Evaluator::new(s)
                .check_mail(&mut self.st, Some(&sender_text))
                .await
        {
            self.st.reset_transaction();
            return reply;
        }
        if let Some(reply) = self.milter_mail(&sender_text, params.size).await {
            self.st.reset_transaction();
            return reply;
        }
        self.st.sender = Some(sender_text);
        self.txn = Some(Transaction {
            sender,
            params,
            recipients: Vec::new(),
            cleanup: None,
            milter_sender: None,
        });
        Reply::new(250, "2.1.0 Ok")
    }

    pub(crate) async fn rcpt(&mut self, address: Address, params: RcptParams) -> Reply {
        let s = self.settings;
        if self.txn.is_none() {
            return Reply::new(503, "5.5.1 Error: need MAIL command");
        }
        // The queue ID, for this recipient's log lines.
        if let Err(reply) = self.cleanup_open().await {
            return reply;
        }
        let Some(txn) = &self.txn else {
            return Reply::new(503, "5.5.1 Error: need MAIL command");
        };
        if txn.recipients.len() >= s.recipient_limit {
            self.rcpt_overshoot = self.rcpt_overshoot.saturating_add(1);
            self.soft_refusal = self.rcpt_overshoot <= s.recipient_overshoot_limit;
            return Reply::new(452, "4.5.3 Error: too many recipients");
        }
        let addr = self.st.peer.addr;
        if s.limits.recipient_rate > 0 && !s.limits.exceptions.contains(addr) {
            let rate = self.shared.anvil.recipient(addr).await;
            if rate > s.limits.recipient_rate {
                warning!(
                    "Recipient address rate limit exceeded: {rate} from {} for service {}",
                    self.st.peer.label(),
                    self.shared.service
                );
                return Reply::new(450, format!("4.7.1 Error: too many recipients from {addr}"));
            }
        }
        let recipient = address.to_string();
        if s.strict_smtputf8 && !txn.params.smtputf8 && !recipient.is_ascii() {
            return Reply::new(553, "5.6.7 Must declare SMTPUTF8 to send unicode address");
        }
        if let Some(reply) = Evaluator::new(s).check_rcpt(&mut self.st, &recipient).await {
            return reply;
        }
        if let Some(reply) = self.milter_rcpt(&recipient).await {
            return reply;
        }
        let label = self.st.peer.label();
        // A Begin still in flight for an abandoned transaction of this
        // session is waited for first (it answers within ipc_timeout).
        let slot = if self.txn.as_ref().is_some_and(|t| t.cleanup.is_none()) {
            let slot = self
                .begin_slot
                .get_or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(1)))
                .clone();
            match slot.acquire_owned().await {
                Ok(permit) => Some(permit),
                Err(_) => return queue_error(),
            }
        } else {
            None
        };
        let Some(txn) = self.txn.as_mut() else {
            return Reply::new(503, "5.5.1 Error: need MAIL command");
        };
        if let Some(slot) = slot {
            let socket = s
                .cleanup_socket
                .clone()
                .unwrap_or_else(|| service_socket("cleanup"));
            // Postfix's line, with the login for an authenticated client
            // (pflogsumm reads both forms).
            let sasl = match (&self.st.sasl_method, &self.st.sasl_username) {
                (Some(method), Some(user)) => {
                    format!(", sasl_method={method}, sasl_username={user}")
                }
                _ => String::new(),
            };
            let forwarded = self.st.xforward.log_suffix();
            let client = format!("client={label}{sasl}{forwarded}");
            txn.cleanup = Some(start_cleanup(socket, s.ipc_timeout, client, slot));
        }
        txn.recipients
            .push(Recipient::new(recipient.clone(), params.orcpt));
        self.st.rcpt_count = txn.recipients.len();
        self.st.recipient.get_or_insert(recipient);
        Reply::new(250, "2.1.5 Ok")
    }

    /// Takes up cleanup's answer to Begin, if it is still to come, and
    /// learns the queue ID. A transaction cleanup could not open loses its
    /// recipients (they were accepted with 250; the client hears 451 now
    /// and will send again), so nothing reaches DATA without a queue file.
    async fn cleanup_open(&mut self) -> Result<(), Reply> {
        let Some(txn) = self.txn.as_mut() else {
            return Ok(());
        };
        let task = match txn.cleanup.take() {
            Some(CleanupState::Starting(task)) => task,
            other => {
                txn.cleanup = other;
                return Ok(());
            }
        };
        match task.await {
            Ok(Some(cleanup)) => {
                self.st.queue_id = Some(cleanup.queue_id().to_string());
                txn.cleanup = Some(CleanupState::Open(cleanup));
                Ok(())
            }
            // The task logged why.
            Ok(None) | Err(_) => {
                txn.recipients.clear();
                self.st.rcpt_count = 0;
                self.st.recipient = None;
                Err(queue_error())
            }
        }
    }

    /// DATA through the end of the message. Err means the connection is gone.
    pub(crate) async fn data(&mut self) -> Result<Reply, IoError> {
        match &self.txn {
            None => return Ok(Reply::new(503, "5.5.1 Error: need RCPT command")),
            Some(txn) if txn.recipients.is_empty() => {
                return Ok(Reply::new(554, "5.5.1 Error: no valid recipients"));
            }
            Some(_) => {}
        }
        let s = self.settings;
        // The queue ID, for the log lines and the milters' {i} from here on.
        if let Err(reply) = self.cleanup_open().await {
            return Ok(reply);
        }
        if let Some(reply) = Evaluator::new(s).check_data(&mut self.st).await {
            return Ok(reply);
        }
        if let Some(reply) = self.milter_data().await {
            return Ok(reply);
        }
        let mut content = match Content::new() {
            Ok(content) => content,
            Err(e) => {
                warning!("cannot create a memory file for the message: {e}");
                return Ok(queue_error());
            }
        };
        // The envelope's arrival time is when the client started sending
        // the message: what the queue's delay figures should measure from.
        let arrival = now_micros();
        self.conn
            .queue(&Reply::new(354, "End data with <CR><LF>.<CR><LF>"));
        let mut reader = DataReader::new(Limits {
            message_size: s.message_size_limit,
            header_size: s.header_size_limit,
            hop_count: s.hopcount_limit,
        });
        let mut budget = DataBudget::new(self.shared.timing(), s.min_data_rate);
        let mut out = Vec::with_capacity(READ_CHUNK * 2);
        let mut write_error = None;
        let mut written: u64 = 0;
        // The content stays in memory until cleanup has it: every byte is
        // counted against smtpd_message_memory_limit, and given back when
        // this transaction ends, whatever the outcome.
        let mut held = Held {
            shared: self.shared,
            bytes: 0,
        };
        let mut out_of_memory = false;
        loop {
            let buffered = self.conn.buffered();
            let feed = reader.feed(buffered, &mut out);
            let used = match feed {
                Feed::Done { used } => used,
                Feed::More => buffered.len(),
            };
            self.conn.consume(used);
            written += out.len() as u64;
            if !out.is_empty() && !out_of_memory && write_error.is_none() {
                if held.take(out.len() as u64) {
                    if let Err(e) = content.write(&out) {
                        write_error = Some(e);
                    }
                } else {
                    // Read on to the end, keeping nothing more.
                    out_of_memory = true;
                    content = match Content::new() {
                        Ok(empty) => empty,
                        Err(e) => {
                            write_error = Some(e);
                            content
                        }
                    };
                    held.give_back();
                }
            }
            out.clear();
            if matches!(feed, Feed::Done { .. }) {
                break;
            }
            let started = Instant::now();
            match self
                .conn
                .fill_until(started + budget.next_timeout(), &mut self.wake)
                .await?
            {
                Filled::Data(bytes) => budget.spent(started.elapsed(), bytes),
                Filled::Woken => {
                    budget.spent(started.elapsed(), 0);
                    budget.retime(self.shared.timing());
                }
            }
        }
        self.st.stage = "END-OF-MESSAGE";
        self.st.size = written;
        // From here on the transaction ends whatever happens.
        let Some(mut txn) = self.txn.take() else {
            return Ok(queue_error());
        };
        let refusal = match reader.verdict() {
            Verdict::Ok => None,
            Verdict::TooBig => Some(Reply::new(552, "5.3.4 Error: message file too big")),
            Verdict::HeaderTooBig => Some(Reply::new(
                552,
                "5.6.0 Error: message header size exceeds limit",
            )),
            Verdict::TooManyHops => Some(Reply::new(554, "5.4.6 Too many hops")),
        };
        let bare_lf = reader.saw_bare_lf() && self.bare_lf_matters();
        let refusal = if let Some(reply) = refusal {
            self.st.log_whatsup("reject", &reply.to_string());
            Some(reply)
        } else if bare_lf && s.bare_newline == BareNewline::Reject {
            self.st.log_whatsup("reject", "bare <LF> received");
            Some(self.bare_lf_reply())
        } else if out_of_memory {
            let share = match s.memory_processes {
                0 | 1 => String::new(),
                n => format!(", {} for each of its {n} processes", s.memory_share()),
            };
            warning!(
                "{}: not enough memory for the message from {}: the sessions hold \
                 smtpd_message_memory_limit ({} bytes{share}) of message content",
                self.st.queue_id.as_deref().unwrap_or("NOQUEUE"),
                self.st.peer.label(),
                s.memory_limit
            );
            Some(Reply::new(452, "4.3.1 Insufficient system storage"))
        } else {
            self.note_bare_lf |= bare_lf;
            Evaluator::new(s).check_eod(&mut self.st).await
        };
        // The milters' end of message: a refusal, or the content and
        // envelope as they leave them.
        let refusal = match refusal {
            None if write_error.is_none() && self.milters.is_some() => self
                .milter_end(&mut txn, &mut content, &mut held)
                .await
                .err(),
            refusal => refusal,
        };
        let actions = std::mem::take(&mut self.st.actions);
        let trusted = self.trusted_origin(&self.st.xforward);
        let sender_auth = self.st.sender_auth(trusted);
        let forwarded = std::mem::take(&mut self.st.xforward);
        let queue_id = self.st.queue_id.clone();
        self.st.reset_transaction();
        if let Some(reply) = refusal {
            return Ok(reply);
        }
        let id = queue_id.unwrap_or_else(|| "NOQUEUE".to_string());
        if let Some(e) = write_error {
            warning!("{id}: cannot store the message content: {e}");
            return Ok(queue_error());
        }
        let sealed = match content.seal() {
            Ok(sealed) => sealed,
            Err(e) => {
                warning!("{id}: cannot seal the message content: {e}");
                return Ok(queue_error());
            }
        };
        let Some(CleanupState::Open(cleanup)) = txn.cleanup.take() else {
            return Ok(queue_error());
        };
        let envelope = Envelope {
            sender: txn
                .milter_sender
                .take()
                .unwrap_or_else(|| txn.sender.to_string()),
            recipients: txn.recipients,
            client: self.envelope_client(&forwarded),
            body_type: txn.params.body,
            smtputf8: txn.params.smtputf8,
            dsn_ret: txn.params.ret,
            dsn_envid: txn.params.envid,
            arrival,
        };
        let mut received_comments = Vec::new();
        if let Some(tls) = &self.tls
            && s.tls.as_ref().is_some_and(|t| t.received_header)
        {
            received_comments.extend(tls.received_comments());
        }
        if let (Some(user), Some(sasl)) = (&self.st.sasl_username, &s.sasl)
            && sasl.authenticated_header
        {
            received_comments.push(format!("(Authenticated sender: {})", comment_safe(user)));
        }
        let milter = std::mem::take(&mut self.milter_flags);
        let actions = Actions {
            hold: actions.hold.is_some() || milter.hold.is_some(),
            discard: actions.discard || milter.discard,
            redirect: actions.redirect,
            bcc: actions.bcc,
            prepend: actions.prepend,
            received_comments,
            sender_auth,
            // A FILTER action overrides content_filter, as in Postfix.
            filter: actions
                .filter
                .or_else(|| s.filtering.content_filter.clone()),
            no_header_body_checks: s.filtering.overrides.no_header_body_checks,
            no_address_mappings: s.filtering.overrides.no_address_mappings,
        };
        // Invariant 1: 250 only for Queued, which cleanup sends once the
        // queue file is durable.
        match cleanup.commit_with(envelope, actions, &sealed).await {
            Ok(Committed::Queued(queue_id)) => {
                // "without delivering mail": the error counters restart.
                self.errors = 0;
                self.junk = 0;
                Ok(Reply::new(250, format!("2.0.0 Ok: queued as {queue_id}")))
            }
            // cleanup logs its own rejections with the queue ID.
            Ok(Committed::Rejected(reply) | Committed::Deferred(reply)) => Ok(Reply::from(&reply)),
            Err(e) => {
                warning!("{id}: {e}");
                Ok(queue_error())
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    /// Runs the message through the milters and applies what they
    /// changed: the envelope to `txn`, a new content to `content`.
    async fn milter_end(
        &mut self,
        txn: &mut Transaction,
        content: &mut Content,
        held: &mut Held<'_>,
    ) -> Result<(), Reply> {
        let id = self.st.queue_id.clone().unwrap_or_else(|| "NOQUEUE".into());
        let size = self.st.size;
        // The milters work on copies (the content read back, and the
        // message parsed from it): they count against
        // smtpd_message_memory_limit too, until the transaction ends.
        if !held.take(size.saturating_mul(2)) {
            warning!(
                "{id}: not enough memory to show the message from {} to the milters: \
                 the sessions hold smtpd_message_memory_limit ({} bytes) of message content",
                self.st.peer.label(),
                self.settings.memory_limit
            );
            return Err(Reply::new(452, "4.3.1 Insufficient system storage"));
        }
        let bytes = match content.contents() {
            Ok(bytes) => bytes,
            Err(e) => {
                warning!("{id}: cannot read the message content: {e}");
                return Err(queue_error());
            }
        };
        let mut envelope = mailgate_milter::Envelope {
            sender: txn.sender.to_string(),
            recipients: txn.recipients.iter().map(|r| r.address.clone()).collect(),
        };
        let new = self.milter_message(&bytes, &mut envelope).await?;
        drop(bytes);
        if envelope.sender != txn.sender.to_string() {
            txn.milter_sender = Some(envelope.sender);
        }
        let mut kept: Vec<Recipient> = Vec::with_capacity(envelope.recipients.len());
        for address in envelope.recipients {
            match txn.recipients.iter().position(|r| r.address == address) {
                Some(i) => kept.push(txn.recipients.remove(i)),
                None => kept.push(Recipient::new(address, None)),
            }
        }
        if kept.is_empty() {
            // Every recipient deleted: nothing to deliver, as Postfix's
            // cleanup discards a message without recipients.
            self.milter_flags.discard = true;
            kept = std::mem::take(&mut txn.recipients);
        }
        txn.recipients = kept;
        if let Some(new) = new {
            if !held.take(new.len() as u64) {
                warning!("{id}: not enough memory for the message as the milters changed it");
                return Err(Reply::new(452, "4.3.1 Insufficient system storage"));
            }
            let mut replaced = Content::new().map_err(|e| {
                warning!("{id}: cannot create a memory file for the message: {e}");
                queue_error()
            })?;
            replaced.write(&new).map_err(|e| {
                warning!("{id}: cannot store the message content: {e}");
                queue_error()
            })?;
            *content = replaced;
        }
        Ok(())
    }
}

/// Content memory held by one transaction, given back when it ends.
struct Held<'a> {
    shared: &'a Shared,
    bytes: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    /// Whether the message is the organisation's own (mynetworks or an
    /// authenticated client): DKIM-signed by cleanup, not checked by the
    /// scanner. Behind a content filter (XFORWARD) the original client
    /// counts, not the filter that re-injects: a forwarded address in
    /// mynetworks, or SOURCE=LOCAL without one. (A login is not forwarded:
    /// authenticated mail re-injected from outside mynetworks is not
    /// signed.)
    fn trusted_origin(&self, forwarded: &Forwarded) -> bool {
        let s = self.settings;
        let local = forwarded
            .source
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("LOCAL"));
        match forwarded.addr {
            Some(addr) => s.mynetworks.contains(addr),
            None if forwarded.source.is_some() || forwarded.name.is_some() => local,
            None => s.mynetworks.contains(self.st.peer.addr) || self.st.sasl_username.is_some(),
        }
    }

    /// The client the queue file records (for the Received header, the
    /// scanner and the next hop's XFORWARD): the forwarded one where
    /// XFORWARD named it, as Postfix's FORWARD_* macros (the address group
    /// and the HELO group each replace the session's as a whole).
    fn envelope_client(&self, forwarded: &Forwarded) -> ClientInfo {
        let peer = &self.st.peer;
        let mut client = ClientInfo {
            name: peer.name.clone(),
            addr: peer.addr.to_string(),
            port: peer.port,
            helo: self.st.helo.clone().unwrap_or_default(),
            protocol: self.received_protocol(),
        };
        if forwarded.name.is_some() || forwarded.addr.is_some() || forwarded.port.is_some() {
            client.name = forwarded.name.clone().unwrap_or_else(|| "unknown".into());
            client.addr = forwarded
                .addr
                .map_or_else(|| "unknown".into(), |a| a.to_string());
            client.port = forwarded.port.unwrap_or(0);
        }
        if forwarded.helo.is_some() || forwarded.proto.is_some() {
            client.helo = forwarded.helo.clone().unwrap_or_default();
            client.protocol = forwarded.proto.clone().unwrap_or_else(|| "SMTP".into());
        }
        client
    }
}

impl Held<'_> {
    fn take(&mut self, bytes: u64) -> bool {
        if self.shared.reserve(bytes) {
            self.bytes += bytes;
            true
        } else {
            false
        }
    }

    fn give_back(&mut self) {
        self.shared.release(self.bytes);
        self.bytes = 0;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.give_back();
    }
}
