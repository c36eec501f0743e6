//! One SMTP session: the dialogue state machine from the greeting to the
//! disconnect line.
//!
//! Replies are buffered and written only when the session needs more input
//! than it has (RFC 2920): a pipelining client gets its answers in order and
//! in as few packets as possible, and a client that sends one command at a
//! time gets each answer at once. Every read and write is bounded by
//! smtpd_timeout.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mailgate_ipc::envelope::{ClientInfo, Envelope, Recipient, now_micros};
use mailgate_ipc::spool::service_socket;
use mailgate_ipc::submit::{CleanupSession, Committed, Content};
use mailgate_log::{info, warning};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::address::{Address, ReversePath};
use crate::command::{self, Command, MailParams, ParseOptions, RcptParams, Verb};
use crate::data::{DataReader, Feed, Limits, Verdict};
use crate::reply::Reply;
use crate::restrictions::{Context, Evaluator};
use crate::settings::Settings;

/// How much the session asks the socket for at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Why a connection ended.
enum End {
    Quit,
    Lost,
    Timeout,
    TooManyErrors,
}

enum IoError {
    Lost,
    Timeout,
}

enum Line {
    Text(Vec<u8>),
    TooLong,
}

/// The socket with its input and output buffers.
struct Conn<S> {
    stream: S,
    inbuf: Vec<u8>,
    /// Bytes of `inbuf` before this offset are consumed.
    start: usize,
    outbuf: Vec<u8>,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn buffered(&self) -> &[u8] {
        &self.inbuf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.inbuf.len());
        if self.start == self.inbuf.len() {
            self.inbuf.clear();
            self.start = 0;
        }
    }

    fn queue(&mut self, reply: &Reply) {
        self.outbuf.extend_from_slice(&reply.to_wire());
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        if self.outbuf.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.outbuf).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Err(_) => Err(IoError::Timeout),
            Ok(Err(_)) => Err(IoError::Lost),
            Ok(Ok(())) => {
                self.outbuf.clear();
                Ok(())
            }
        }
    }

    /// Reads more input, first sending the replies the client waits for.
    async fn fill(&mut self) -> Result<(), IoError> {
        self.flush().await?;
        if self.start > 0 {
            self.inbuf.drain(..self.start);
            self.start = 0;
        }
        self.inbuf.reserve(READ_CHUNK);
        match tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.inbuf)).await {
            Err(_) => Err(IoError::Timeout),
            Ok(Err(_) | Ok(0)) => Err(IoError::Lost),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// One command line without its line end. A bare LF ends a line too
    /// (smtpd_forbid_bare_newline = normalize). Longer than `limit`: the
    /// whole line is read and dropped, holding no more than `limit` plus
    /// one read in memory.
    async fn read_line(&mut self, limit: usize) -> Result<Line, IoError> {
        let mut too_long = false;
        loop {
            let buf = self.buffered();
            if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line = &buf[..pos];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let result = if too_long || line.len() > limit {
                    Line::TooLong
                } else {
                    Line::Text(line.to_vec())
                };
                self.consume(pos + 1);
                return Ok(result);
            }
            if buf.len() > limit {
                too_long = true;
                let n = buf.len();
                self.consume(n);
            }
            self.fill().await?;
        }
    }
}

/// Per-command counts for the disconnect line: (succeeded, total).
#[derive(Default)]
struct Stats {
    counts: [(u32, u32); Verb::ALL.len()],
}

impl Stats {
    fn record(&mut self, verb: Verb, ok: bool) {
        if let Some(i) = Verb::ALL.iter().position(|v| *v == verb) {
            let (good, total) = &mut self.counts[i];
            *good += u32::from(ok);
            *total += 1;
        }
    }

    /// `ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4`, as Postfix writes it.
    fn summary(&self) -> String {
        let show = |good: u32, total: u32| {
            if good == total {
                good.to_string()
            } else {
                format!("{good}/{total}")
            }
        };
        let mut parts = Vec::new();
        let (mut good_sum, mut total_sum) = (0, 0);
        for (verb, &(good, total)) in Verb::ALL.iter().zip(&self.counts) {
            if total > 0 {
                parts.push(format!(
                    "{}={}",
                    verb.name().to_ascii_lowercase(),
                    show(good, total)
                ));
                good_sum += good;
                total_sum += total;
            }
        }
        parts.push(format!("commands={}", show(good_sum, total_sum)));
        parts.join(" ")
    }
}

/// A mail transaction, from MAIL to the end of DATA or its abandonment.
struct Transaction {
    sender: ReversePath,
    params: MailParams,
    recipients: Vec<Recipient>,
    /// Opened at the first accepted recipient; dropping it discards the
    /// transaction in cleanup.
    cleanup: Option<CleanupSession>,
}

impl Transaction {
    fn queue_id(&self) -> Option<&str> {
        self.cleanup.as_ref().map(CleanupSession::queue_id)
    }
}

struct Session<'a, S> {
    conn: Conn<S>,
    settings: &'a Settings,
    client_addr: IpAddr,
    client_port: u16,
    /// `host[ip]`; the host is "unknown" until reverse DNS is implemented.
    label: String,
    helo: Option<String>,
    esmtp: bool,
    txn: Option<Transaction>,
    stats: Stats,
    errors: u32,
    junk: u32,
    /// The last command, for "lost connection after DATA".
    stage: &'static str,
}

/// Serves one client until it quits or is dropped, logging as Postfix does.
pub async fn run<S>(stream: S, peer: SocketAddr, settings: &Settings)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let client_addr = match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer.ip(), IpAddr::V4),
        ip => ip,
    };
    let mut session = Session {
        conn: Conn {
            stream,
            inbuf: Vec::new(),
            start: 0,
            outbuf: Vec::new(),
            timeout: settings.timeout,
        },
        settings,
        client_addr,
        client_port: peer.port(),
        label: format!("unknown[{client_addr}]"),
        helo: None,
        esmtp: false,
        txn: None,
        stats: Stats::default(),
        errors: 0,
        junk: 0,
        stage: "CONNECT",
    };
    info!("connect from {}", session.label);
    session
        .conn
        .queue(&Reply::new(220, settings.banner.clone()));
    let end = session.dialogue().await;
    match end {
        End::Quit => {}
        End::Lost => info!(
            "lost connection after {} from {}",
            session.stage, session.label
        ),
        End::Timeout => {
            let reply = Reply::new(
                421,
                format!("4.4.2 {} Error: timeout exceeded", settings.myhostname),
            );
            session.conn.queue(&reply);
            let _ = session.conn.flush().await;
            info!("timeout after {} from {}", session.stage, session.label);
        }
        End::TooManyErrors => info!(
            "too many errors after {} from {}",
            session.stage, session.label
        ),
    }
    let _ = session.conn.stream.shutdown().await;
    // The transaction, if any, is abandoned here: cleanup sees its
    // connection close and discards the queue file.
    session.txn = None;
    info!(
        "disconnect from {} {}",
        session.label,
        session.stats.summary()
    );
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    async fn dialogue(&mut self) -> End {
        let opts = ParseOptions {
            smtputf8_enable: self.settings.smtputf8_enable,
            strict_rfc821_envelopes: self.settings.strict_rfc821_envelopes,
        };
        loop {
            if self.errors >= self.settings.hard_error_limit {
                let reply = Reply::new(
                    421,
                    format!("4.7.0 {} Error: too many errors", self.settings.myhostname),
                );
                self.conn.queue(&reply);
                let _ = self.conn.flush().await;
                return End::TooManyErrors;
            }
            let line = match self.conn.read_line(self.settings.line_length_limit).await {
                Ok(Line::Text(line)) => line,
                Ok(Line::TooLong) => {
                    self.finish(Verb::Unknown, Reply::new(500, "5.5.0 Error: line too long"))
                        .await;
                    continue;
                }
                Err(e) => return io_end(e),
            };
            // A control character in a command (a bare CR, a NUL) is never
            // legitimate, and would reach log lines and the Received header.
            let text = match String::from_utf8(line) {
                Ok(text) if !text.chars().any(|c| c.is_control() && c != '\t') => text,
                Ok(_) => {
                    self.finish(Verb::Unknown, Reply::new(500, "5.5.2 Error: bad syntax"))
                        .await;
                    continue;
                }
                Err(_) => {
                    let reply = Reply::new(500, "5.5.2 Error: bad UTF-8 syntax");
                    self.finish(Verb::Unknown, reply).await;
                    continue;
                }
            };
            let (verb, parsed) = command::parse(&text, opts);
            self.stage = verb.name();
            if verb.is_junk() {
                self.junk = self.junk.saturating_add(1);
                if self.junk > self.settings.junk_command_limit {
                    self.errors = self.errors.saturating_add(1);
                }
            }
            let command = match parsed {
                Ok(command) => command,
                Err(reply) => {
                    self.finish(verb, reply).await;
                    continue;
                }
            };
            let reply = match command {
                Command::Helo(name) => self.helo(name, false),
                Command::Ehlo(name) => self.helo(name, true),
                Command::Mail(path, params) => self.mail(path, params),
                Command::Rcpt(address, params) => self.rcpt(address, params).await,
                Command::Data => match self.data().await {
                    Ok(reply) => reply,
                    Err(e) => {
                        self.stats.record(Verb::Data, false);
                        return io_end(e);
                    }
                },
                Command::Rset => {
                    self.txn = None;
                    Reply::new(250, "2.0.0 Ok")
                }
                Command::Noop => Reply::new(250, "2.0.0 Ok"),
                Command::Vrfy(_) if self.settings.disable_vrfy => {
                    Reply::new(502, "5.5.1 VRFY command is disabled")
                }
                Command::Vrfy(_) => Reply::new(
                    252,
                    "2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
                ),
                Command::Help => Reply::new(
                    214,
                    "2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
                ),
                Command::Quit => {
                    self.finish(Verb::Quit, Reply::new(221, "2.0.0 Bye")).await;
                    let _ = self.conn.flush().await;
                    return End::Quit;
                }
            };
            self.finish(verb, reply).await;
        }
    }

    /// Counts the command and queues its reply. Past smtpd_soft_error_limit
    /// every reply is delayed by smtpd_error_sleep_time, which slows down
    /// dictionary attacks and broken clients alike.
    async fn finish(&mut self, verb: Verb, reply: Reply) {
        self.stats.record(verb, !reply.is_error());
        if self.errors >= self.settings.soft_error_limit {
            tokio::time::sleep(self.settings.error_sleep).await;
        }
        if reply.is_error() {
            self.errors = self.errors.saturating_add(1);
        }
        self.conn.queue(&reply);
    }

    fn helo(&mut self, name: String, esmtp: bool) -> Reply {
        // RFC 5321 4.1.4: a HELO or EHLO during a transaction resets it.
        self.txn = None;
        self.helo = Some(name);
        self.esmtp = esmtp;
        let s = self.settings;
        if !esmtp {
            return Reply::new(250, s.myhostname.clone());
        }
        let mut lines = vec![s.myhostname.clone(), "PIPELINING".to_string()];
        lines.push(match s.message_size_limit {
            0 => "SIZE".to_string(),
            limit => format!("SIZE {limit}"),
        });
        if !s.disable_vrfy {
            lines.push("VRFY".to_string());
        }
        lines.push("ENHANCEDSTATUSCODES".to_string());
        lines.push("8BITMIME".to_string());
        if s.smtputf8_enable {
            lines.push("SMTPUTF8".to_string());
        }
        Reply::multi(250, lines)
    }

    fn mail(&mut self, sender: ReversePath, params: MailParams) -> Reply {
        let s = self.settings;
        if s.helo_required && self.helo.is_none() {
            return Reply::new(503, "5.5.1 Error: send HELO/EHLO first");
        }
        if self.txn.is_some() {
            return Reply::new(503, "5.5.1 Error: nested MAIL command");
        }
        if let Some(size) = params.size
            && s.message_size_limit != 0
            && size > s.message_size_limit
        {
            return Reply::new(552, "5.3.4 Message size exceeds fixed maximum message size");
        }
        self.txn = Some(Transaction {
            sender,
            params,
            recipients: Vec::new(),
            cleanup: None,
        });
        Reply::new(250, "2.1.0 Ok")
    }

    async fn rcpt(&mut self, address: Address, params: RcptParams) -> Reply {
        let s = self.settings;
        let Some(txn) = &self.txn else {
            return Reply::new(503, "5.5.1 Error: need MAIL command");
        };
        if txn.recipients.len() >= s.recipient_limit {
            return Reply::new(452, "4.5.3 Error: too many recipients");
        }
        let ctx = Context {
            client_addr: self.client_addr,
            recipient: &address,
        };
        if let Err(reply) = (Evaluator { settings: s }).check_recipient(&ctx) {
            self.log_reject(
                self.txn.as_ref(),
                "RCPT",
                &reply,
                Some(&address.to_string()),
            );
            return reply;
        }
        let label = &self.label;
        let Some(txn) = self.txn.as_mut() else {
            return Reply::new(503, "5.5.1 Error: need MAIL command");
        };
        if txn.cleanup.is_none() {
            let socket = s
                .cleanup_socket
                .clone()
                .unwrap_or_else(|| service_socket("cleanup"));
            match CleanupSession::begin(&socket, s.ipc_timeout).await {
                Ok(cleanup) => {
                    info!("{}: client={label}", cleanup.queue_id());
                    txn.cleanup = Some(cleanup);
                }
                Err(e) => {
                    warning!("{e}");
                    return Reply::new(451, "4.3.0 Error: queue file write error");
                }
            }
        }
        txn.recipients
            .push(Recipient::new(address.to_string(), params.orcpt));
        Reply::new(250, "2.1.5 Ok")
    }

    /// DATA through the end of the message. Err means the connection is gone.
    async fn data(&mut self) -> Result<Reply, IoError> {
        match &self.txn {
            None => return Ok(Reply::new(503, "5.5.1 Error: need RCPT command")),
            Some(txn) if txn.recipients.is_empty() => {
                return Ok(Reply::new(554, "5.5.1 Error: no valid recipients"));
            }
            Some(_) => {}
        }
        let queue_error = || Reply::new(451, "4.3.0 Error: queue file write error");
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
        let s = self.settings;
        self.conn
            .queue(&Reply::new(354, "End data with <CR><LF>.<CR><LF>"));
        let mut reader = DataReader::new(Limits {
            message_size: s.message_size_limit,
            header_size: s.header_size_limit,
            hop_count: s.hopcount_limit,
        });
        let mut out = Vec::with_capacity(READ_CHUNK * 2);
        let mut write_error = None;
        loop {
            let buffered = self.conn.buffered();
            let feed = reader.feed(buffered, &mut out);
            let used = match feed {
                Feed::Done { used } => used,
                Feed::More => buffered.len(),
            };
            self.conn.consume(used);
            if write_error.is_none()
                && !out.is_empty()
                && let Err(e) = content.write(&out)
            {
                write_error = Some(e);
            }
            out.clear();
            if matches!(feed, Feed::Done { .. }) {
                break;
            }
            self.conn.fill().await?;
        }
        self.stage = "END-OF-MESSAGE";
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
        if let Some(reply) = refusal {
            self.log_reject(Some(&txn), "END-OF-MESSAGE", &reply, None);
            return Ok(reply);
        }
        let id = txn.queue_id().unwrap_or("NOQUEUE").to_string();
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
        let Some(cleanup) = txn.cleanup.take() else {
            return Ok(queue_error());
        };
        let envelope = Envelope {
            sender: txn.sender.to_string(),
            recipients: txn.recipients,
            client: ClientInfo {
                name: "unknown".to_string(),
                addr: self.client_addr.to_string(),
                port: self.client_port,
                helo: self.helo.clone().unwrap_or_default(),
                protocol: self.protocol().to_string(),
            },
            body_type: txn.params.body,
            smtputf8: txn.params.smtputf8,
            dsn_ret: txn.params.ret,
            dsn_envid: txn.params.envid,
            arrival,
        };
        // Invariant 1: 250 only for Queued, which cleanup sends once the
        // queue file is durable.
        match cleanup.commit(envelope, &sealed).await {
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

    fn protocol(&self) -> &'static str {
        if self.esmtp { "ESMTP" } else { "SMTP" }
    }

    /// `NOQUEUE: reject: RCPT from host[ip]: 554 5.7.1 <x@y>: Relay access
    /// denied; from=<s> to=<x@y> proto=ESMTP helo=<h>`
    fn log_reject(
        &self,
        txn: Option<&Transaction>,
        stage: &str,
        reply: &Reply,
        recipient: Option<&str>,
    ) {
        let id = txn.and_then(Transaction::queue_id).unwrap_or("NOQUEUE");
        let mut details = Vec::new();
        if let Some(txn) = txn {
            details.push(format!("from=<{}>", txn.sender));
            if let Some(first) = recipient.or(txn.recipients.first().map(|r| r.address.as_str())) {
                details.push(format!("to=<{first}>"));
            }
        } else if let Some(rcpt) = recipient {
            details.push(format!("to=<{rcpt}>"));
        }
        details.push(format!("proto={}", self.protocol()));
        if let Some(helo) = &self.helo {
            details.push(format!("helo=<{helo}>"));
        }
        info!(
            "{id}: reject: {stage} from {}: {reply}; {}",
            self.label,
            details.join(" ")
        );
    }
}

fn io_end(e: IoError) -> End {
    match e {
        IoError::Lost => End::Lost,
        IoError::Timeout => End::Timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_counters_in_postfix_form() {
        let mut stats = Stats::default();
        assert_eq!(stats.summary(), "commands=0");
        stats.record(Verb::Ehlo, true);
        stats.record(Verb::Mail, true);
        stats.record(Verb::Rcpt, false);
        stats.record(Verb::Rcpt, true);
        stats.record(Verb::Data, true);
        stats.record(Verb::Quit, true);
        assert_eq!(
            stats.summary(),
            "ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6"
        );
    }
}
