//! The SMTP client (RFC 5321): a connection is opened with greeting and
//! EHLO, then carries one mail transaction, or several when relay keeps it
//! for reuse (cache.rs), and ends with QUIT.
//!
//! Generic over the stream so tests can drive it; in production it is a TCP
//! connection. Everything the server sends is checked: a reply that is late,
//! malformed or missing ends the session with a deferral, never a panic.

use std::fmt;
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use mailgate_config::ClientLevel;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::content::{ContentReader, DotStuffer};
use crate::reply::{MAX_LINE, Reply, ReplyBuilder, ReplyError};
use crate::settings::Timeouts;
use crate::status::Status;
use crate::tls::{OpenError, StartTls, Stream, handshake};
use mailgate_tls::stream::{Stream as TlsOrPlain, take_plain};

/// At most this many commands go out in one pipelined write before their
/// replies are read (RFC 2920 §3.1: a client that writes without reading
/// can deadlock with a server whose replies fill the socket buffers).
const PIPELINE_GROUP: usize = 100;

/// How long a server may take to answer RSET on a reused connection
/// (Postfix's smtp_rset_timeout).
const RSET_TIMEOUT: Duration = Duration::from_secs(20);

/// The message to transfer. Recipients are in the order of the request.
pub struct Message<'a> {
    pub sender: &'a str,
    pub recipients: Vec<&'a str>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub content: Arc<File>,
    pub offset: u64,
    pub length: u64,
    /// smtp_line_length_limit (0: none).
    pub line_limit: usize,
    /// For the log line about broken lines.
    pub queue_id: &'a str,
    /// The original client, sent with XFORWARD when the server offers it
    /// (smtp_send_xforward_command).
    pub xforward: Option<&'a Xforward>,
}

/// The attributes of XFORWARD (Postfix's XFORWARD_README): who the
/// original client was, for a content filter's logs and its re-injection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Xforward {
    pub name: String,
    pub addr: String,
    pub port: String,
    pub proto: String,
    pub helo: String,
    pub ident: String,
    pub source: String,
}

/// XFORWARD attribute bits, as offered in the EHLO reply.
const XF_NAME: u8 = 1;
const XF_ADDR: u8 = 2;
const XF_PORT: u8 = 4;
const XF_PROTO: u8 = 8;
const XF_HELO: u8 = 16;
const XF_IDENT: u8 = 32;
const XF_SOURCE: u8 = 64;

impl Xforward {
    /// The XFORWARD command lines for the attributes the server offered:
    /// the client's name, address and port in one, the rest in another,
    /// as Postfix splits them (each stays far below the 512-byte line).
    fn commands(&self, offered: u8) -> Vec<String> {
        let groups: [&[(u8, &str, &str)]; 2] = [
            &[
                (XF_NAME, "NAME", &self.name),
                (XF_ADDR, "ADDR", &self.addr),
                (XF_PORT, "PORT", &self.port),
            ],
            &[
                (XF_PROTO, "PROTO", &self.proto),
                (XF_HELO, "HELO", &self.helo),
                (XF_IDENT, "IDENT", &self.ident),
                (XF_SOURCE, "SOURCE", &self.source),
            ],
        ];
        groups
            .iter()
            .filter_map(|group| {
                let mut line = String::from("XFORWARD");
                for (bit, name, value) in group.iter() {
                    if offered & bit != 0 {
                        line.push_str(&format!(" {name}={}", xtext(value)));
                    }
                }
                (line.len() > "XFORWARD".len()).then(|| line + "\r\n")
            })
            .collect()
    }
}

/// RFC 3461 xtext, with Postfix's `[UNAVAILABLE]` for a missing value;
/// long values are cut so that a command line stays within its limit.
fn xtext(value: &str) -> String {
    if value.is_empty() {
        return "[UNAVAILABLE]".into();
    }
    let mut out = String::new();
    for b in value.bytes().take(255) {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// A transaction that ran: one final status per recipient, in order, and
/// the connection when it may carry another transaction.
pub struct Delivered<S> {
    pub statuses: Vec<Status>,
    pub connection: Option<Connection<S>>,
}

/// What is left of a connection after a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The server accepted the message; the connection is clean and may
    /// be reused.
    Keep,
    /// The dialogue is intact but the transaction failed: end it politely.
    Quit,
    /// The connection broke, timed out, or is mid-transaction: just close
    /// it, so the server throws away what it has.
    Drop,
}

/// What the server offered in its EHLO reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Extensions {
    pipelining: bool,
    /// SIZE was advertised (with or without a limit).
    size: bool,
    /// The advertised limit; none, or 0, means no fixed limit (RFC 1870).
    size_limit: Option<u64>,
    eight_bit_mime: bool,
    smtputf8: bool,
    starttls: bool,
    /// XFORWARD attributes offered (XF_* bits).
    xforward: u8,
}

impl Extensions {
    fn parse(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        // The first line is the server's greeting to us, not a keyword.
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => ext.pipelining = true,
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "STARTTLS" => ext.starttls = true,
                "XFORWARD" => {
                    for attribute in words.by_ref() {
                        ext.xforward |= match attribute.to_ascii_uppercase().as_str() {
                            "NAME" => XF_NAME,
                            "ADDR" => XF_ADDR,
                            "PORT" => XF_PORT,
                            "PROTO" => XF_PROTO,
                            "HELO" => XF_HELO,
                            "IDENT" => XF_IDENT,
                            "SOURCE" => XF_SOURCE,
                            _ => 0,
                        };
                    }
                }
                "SIZE" => {
                    ext.size = true;
                    ext.size_limit = words
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                        .filter(|n| *n > 0);
                }
                _ => {}
            }
        }
        ext
    }
}

/// Where in the dialogue a session broke, in Postfix's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Greeting,
    Rset,
    Ehlo,
    Lhlo,
    Helo,
    StartTls,
    Xforward,
    Mail,
    Rcpt,
    Data,
    Body,
    Dot,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Greeting => "receiving the initial server greeting",
            Stage::Rset => "sending RSET command",
            Stage::Ehlo => "performing the EHLO handshake",
            Stage::Lhlo => "performing the LHLO handshake",
            Stage::Helo => "performing the HELO handshake",
            Stage::Xforward => "sending XFORWARD name/address",
            Stage::StartTls => "sending STARTTLS command",
            Stage::Mail => "sending MAIL FROM",
            Stage::Rcpt => "sending RCPT TO",
            Stage::Data => "sending DATA command",
            Stage::Body => "sending message body",
            Stage::Dot => "sending end of data -- message may be sent more than once",
        })
    }
}

/// Why talking to the server stopped.
#[derive(Debug)]
enum Fail {
    Timeout,
    /// End of file or a socket error.
    Lost,
    Malformed(ReplyError),
}

/// A command of the mail transaction, for pipelining.
#[derive(Clone, Copy, Debug)]
enum Command {
    Rset,
    /// One of the XFORWARD lines, by its index.
    Xforward(usize),
    Mail,
    Rcpt(usize),
    Data,
}

/// An SMTP session past greeting and EHLO, between transactions.
pub struct Connection<S> {
    stream: BufReader<Stream<S>>,
    /// `host[ip]`, for the texts.
    host: String,
    timeouts: Timeouts,
    ext: Extensions,
    /// LMTP (RFC 2033): LHLO, and one reply per accepted recipient after
    /// the final dot.
    lmtp: bool,
    /// The dialogue is logged line by line (`-v`, or the server is in
    /// debug_peer_list).
    verbose: bool,
}

/// Greeting and EHLO (HELO if EHLO is refused) on a connected stream, and
/// STARTTLS with a second EHLO when `tls` asks for it.
/// Err: the server will not take mail on this connection, another server
/// may be tried.
pub async fn open<S>(
    stream: S,
    host: String,
    helo_name: &str,
    timeouts: Timeouts,
    tls: Option<&StartTls>,
    lmtp: bool,
    verbose: bool,
) -> Result<Connection<S>, OpenError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut connection = Connection {
        stream: BufReader::new(TlsOrPlain::Plain(stream)),
        host,
        timeouts,
        ext: Extensions::default(),
        lmtp,
        verbose: verbose || mailgate_log::verbose(),
    };
    connection.ext = connection
        .setup(helo_name)
        .await
        .map_err(OpenError::Refused)?;
    if let Some(tls) = tls {
        connection.starttls(helo_name, tls).await?;
    }
    Ok(connection)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Whether the server's last EHLO reply offered STARTTLS (over TLS it
    /// does not).
    pub fn offers_starttls(&self) -> bool {
        self.ext.starttls
    }

    /// One mail transaction. A `reused` connection has carried one before
    /// and starts with RSET, which also shows that the server is still
    /// there (it may have closed the idle connection).
    ///
    /// Err: no transaction was started because the reused connection is
    /// gone or refused RSET; the connection is dropped, and the message may
    /// go on a new one without anything having been sent for it.
    pub async fn send_mail(
        mut self,
        message: &Message<'_>,
        reused: bool,
    ) -> Result<Delivered<S>, Status> {
        let (statuses, end) = self.transaction(message, reused).await?;
        let connection = match end {
            End::Keep => Some(self),
            End::Quit => {
                self.quit().await;
                None
            }
            End::Drop => None,
        };
        Ok(Delivered {
            statuses,
            connection,
        })
    }

    /// STARTTLS after the first EHLO, as the level wants it, then EHLO
    /// again over TLS.
    async fn starttls(&mut self, helo_name: &str, tls: &StartTls) -> Result<(), OpenError> {
        if tls.level == ClientLevel::None {
            return Ok(());
        }
        if !self.ext.starttls {
            if tls.level.requires_tls() {
                self.quit().await;
                return Err(OpenError::Refused(Status::deferred(
                    "4.7.4",
                    format!("TLS is required, but was not offered by host {}", self.host),
                )));
            }
            return Ok(());
        }
        let reply = self
            .command(b"STARTTLS\r\n", self.timeouts.helo)
            .await
            .map_err(|f| OpenError::Refused(self.broken(f, Stage::StartTls)))?;
        if reply.code != 220 {
            if tls.level.requires_tls() {
                self.quit().await;
                return Err(OpenError::Refused(Status::deferred(
                    format!("4{}", &reply.dsn()[1..]),
                    format!(
                        "TLS is required, but host {} refused to start TLS: {reply}",
                        self.host
                    ),
                )));
            }
            return Ok(());
        }
        let Some(plain) = take_plain(&mut self.stream) else {
            return Err(OpenError::Refused(Status::deferred(
                "4.3.0",
                "internal error: STARTTLS on a TLS connection",
            )));
        };
        let (stream, refused) = handshake(plain, tls, &self.host).await?;
        self.stream = BufReader::new(stream);
        if let Some(status) = refused {
            // A certificate not good enough for the level: the handshake is
            // complete, so the goodbye goes over TLS.
            self.quit().await;
            return Err(OpenError::Refused(status));
        }
        let (verb, stage) = self.hello();
        let ehlo = self
            .command(
                format!("{verb} {helo_name}\r\n").as_bytes(),
                self.timeouts.helo,
            )
            .await
            .map_err(|f| OpenError::Refused(self.broken(f, stage)))?;
        if !ehlo.is_positive() {
            self.quit().await;
            return Err(OpenError::Refused(self.rejected(&ehlo, verb)));
        }
        self.ext = Extensions::parse(&ehlo);
        Ok(())
    }

    /// Ends the session politely; the answer does not matter.
    pub async fn quit(&mut self) {
        if self.send(b"QUIT\r\n", self.timeouts.quit).await.is_ok() {
            let _ = self.read_reply(self.timeouts.quit).await;
        }
    }

    /// The greeting command: EHLO, or LHLO for LMTP.
    fn hello(&self) -> (&'static str, Stage) {
        if self.lmtp {
            ("LHLO", Stage::Lhlo)
        } else {
            ("EHLO", Stage::Ehlo)
        }
    }

    /// Greeting and EHLO (HELO if EHLO is refused).
    async fn setup(&mut self, helo_name: &str) -> Result<Extensions, Status> {
        let greeting = self
            .read_reply(self.timeouts.helo)
            .await
            .map_err(|f| self.broken(f, Stage::Greeting))?;
        if !greeting.is_positive() {
            self.quit().await;
            // As Postfix's smtp_skip_5xx_greeting: a server that will not
            // talk to us is a reason to try another one, not to bounce.
            let dsn = format!("4{}", &greeting.dsn()[1..]);
            return Err(Status::deferred(
                dsn,
                format!("host {} refused to talk to me: {greeting}", self.host),
            ));
        }
        let (verb, stage) = self.hello();
        let ehlo = self
            .command(
                format!("{verb} {helo_name}\r\n").as_bytes(),
                self.timeouts.helo,
            )
            .await
            .map_err(|f| self.broken(f, stage))?;
        if ehlo.is_positive() {
            return Ok(Extensions::parse(&ehlo));
        }
        // LMTP has no HELO to fall back to (RFC 2033 §4.1).
        if ehlo.class() != 5 || self.lmtp {
            self.quit().await;
            return Err(self.rejected(&ehlo, verb));
        }
        // An old server that does not know EHLO (RFC 5321 §3.2).
        let helo = self
            .command(
                format!("HELO {helo_name}\r\n").as_bytes(),
                self.timeouts.helo,
            )
            .await
            .map_err(|f| self.broken(f, Stage::Helo))?;
        if helo.is_positive() {
            return Ok(Extensions::default());
        }
        self.quit().await;
        Err(self.rejected(&helo, "HELO"))
    }

    /// RSET when reused, then MAIL, RCPT, DATA, the content and the final
    /// dot. Err only as [`send_mail`](Self::send_mail) says.
    async fn transaction(
        &mut self,
        message: &Message<'_>,
        reused: bool,
    ) -> Result<(Vec<Status>, End), Status> {
        let ext = self.ext;
        let all = |status: Status| vec![status; message.recipients.len()];
        if let Some(limit) = ext.size_limit
            && message.length > limit
        {
            let status = Status::bounced(
                "5.3.4",
                format!(
                    "message size {} exceeds size limit {limit} of server {}",
                    message.length, self.host
                ),
            );
            return Ok((all(status), End::Quit));
        }
        if message.smtputf8 && !ext.smtputf8 {
            let status = Status::bounced(
                "5.6.7",
                format!(
                    "SMTPUTF8 is required, but was not offered by host {}",
                    self.host
                ),
            );
            return Ok((all(status), End::Quit));
        }

        // Per recipient: None while accepted (or not yet answered).
        let mut outcome: Vec<Option<Status>> = vec![None; message.recipients.len()];
        let mut commands = Vec::with_capacity(message.recipients.len() + 3);
        if reused {
            commands.push(Command::Rset);
        }
        let xforward = match message.xforward {
            Some(attributes) if ext.xforward != 0 => attributes.commands(ext.xforward),
            _ => Vec::new(),
        };
        commands.extend((0..xforward.len()).map(Command::Xforward));
        commands.push(Command::Mail);
        commands.extend((0..message.recipients.len()).map(Command::Rcpt));
        commands.push(Command::Data);
        let group = if ext.pipelining { PIPELINE_GROUP } else { 1 };
        for batch in commands.chunks(group) {
            // Without pipelining, DATA is only sent once a recipient is
            // accepted; with it, the server answers DATA with 5xx itself.
            if matches!(batch[0], Command::Data) && outcome.iter().all(Option::is_some) {
                return Ok((finish(outcome, None), End::Quit));
            }
            let mut text = Vec::new();
            for command in batch {
                let line = match command {
                    Command::Xforward(i) => xforward[*i].clone(),
                    other => self.command_line(*other, &ext, message),
                };
                text.extend_from_slice(line.as_bytes());
            }
            let (first_stage, first_timeout) = self.step(batch[0]);
            self.trace_out(&text);
            if let Err(f) = self.send(&text, first_timeout).await {
                let status = self.broken(f, first_stage);
                if matches!(batch[0], Command::Rset) {
                    return Err(status);
                }
                return Ok((finish(outcome, Some(status)), End::Drop));
            }
            for command in batch {
                let (stage, timeout) = self.step(*command);
                let reply = match self.read_reply(timeout).await {
                    Ok(reply) => reply,
                    Err(f) => {
                        let status = self.broken(f, stage);
                        if matches!(command, Command::Rset) {
                            return Err(status);
                        }
                        return Ok((finish(outcome, Some(status)), End::Drop));
                    }
                };
                match command {
                    // The commands pipelined after it are answered too, but
                    // the connection is dropped unread.
                    Command::Rset if !reply.is_positive() => {
                        return Err(self.rejected(&reply, "RSET"));
                    }
                    Command::Rset => {}
                    Command::Xforward(_) if !reply.is_positive() => {
                        return Ok((all(self.rejected(&reply, "XFORWARD")), End::Quit));
                    }
                    Command::Xforward(_) => {}
                    Command::Mail if !reply.is_positive() => {
                        return Ok((all(self.rejected(&reply, "MAIL FROM")), End::Quit));
                    }
                    Command::Mail => {}
                    Command::Rcpt(i) if !reply.is_positive() => {
                        outcome[*i] = Some(self.rejected(&reply, "RCPT TO"));
                    }
                    Command::Rcpt(_) => {}
                    Command::Data if reply.code != 354 => {
                        let status = self.rejected(&reply, "DATA");
                        return Ok((finish(outcome, Some(status)), End::Quit));
                    }
                    Command::Data => {}
                }
            }
        }
        if outcome.iter().all(Option::is_some) {
            // Pipelined DATA that a server accepted although it accepted no
            // recipient: end the empty message at once (RFC 2920 §3.1).
            let _ = self.send(b".\r\n", self.timeouts.data_done).await;
            let _ = self.read_reply(self.timeouts.data_done).await;
            return Ok((finish(outcome, None), End::Quit));
        }
        // SMTP: one reply for the message; LMTP: one per accepted
        // recipient, in the order of their RCPT commands (RFC 2033 §4.2).
        let accepted: Vec<usize> = (0..outcome.len())
            .filter(|i| outcome[*i].is_none())
            .collect();
        let wanted = if self.lmtp { accepted.len() } else { 1 };
        let (replies, rest, end) = self.send_content(message, wanted).await;
        if self.lmtp {
            for (i, status) in accepted.iter().zip(replies) {
                outcome[*i] = Some(status);
            }
            return Ok((finish(outcome, rest), end));
        }
        Ok((finish(outcome, replies.into_iter().next().or(rest)), end))
    }

    /// The content, the final dot and `wanted` replies to it (one for
    /// SMTP, one per accepted recipient for LMTP): their statuses, in
    /// order, and the status of those not answered when the session broke.
    async fn send_content(
        &mut self,
        message: &Message<'_>,
        wanted: usize,
    ) -> (Vec<Status>, Option<Status>, End) {
        let mut reader =
            ContentReader::new(Arc::clone(&message.content), message.offset, message.length);
        let mut stuffer = DotStuffer::new(message.line_limit);
        let mut out = Vec::new();
        loop {
            out.clear();
            match reader.next_chunk().await {
                Ok(Some(chunk)) => stuffer.push(&chunk, &mut out),
                Ok(None) => break,
                // The connection is dropped without the final dot, so the
                // server throws the partial message away.
                Err(e) => {
                    let status = Status::deferred("4.3.0", e.to_string());
                    return (Vec::new(), Some(status), End::Drop);
                }
            }
            if let Err(f) = self.send(&out, self.timeouts.data_xfer).await {
                return (Vec::new(), Some(self.broken(f, Stage::Body)), End::Drop);
            }
        }
        out.clear();
        if stuffer.broke_line {
            mailgate_log::info!(
                "{}: breaking line > {} bytes with <CR><LF>SPACE",
                message.queue_id,
                message.line_limit
            );
        }
        stuffer.finish(&mut out);
        if let Err(f) = self.send(&out, self.timeouts.data_xfer).await {
            return (Vec::new(), Some(self.broken(f, Stage::Body)), End::Drop);
        }
        let mut statuses = Vec::with_capacity(wanted);
        let mut end = End::Keep;
        for _ in 0..wanted {
            let reply = match self.read_reply(self.timeouts.data_done).await {
                Ok(reply) => reply,
                Err(f) => return (statuses, Some(self.broken(f, Stage::Dot)), End::Drop),
            };
            if reply.is_positive() {
                statuses.push(Status::sent(reply.dsn(), reply.to_string()));
            } else {
                statuses.push(self.rejected(&reply, "end of DATA"));
                end = End::Quit;
            }
        }
        (statuses, None, end)
    }

    /// An address probe (Postfix's verify mode): MAIL FROM and RCPT TO on
    /// this fresh session, then RSET and QUIT; no message is sent. The
    /// status is the recipient's: the server's answer to RCPT TO, or what
    /// stopped the probe before it (a refused MAIL FROM, a broken
    /// connection).
    pub async fn probe(mut self, sender: &str, recipient: &str) -> Status {
        let mut mail = format!("MAIL FROM:<{sender}>");
        if !sender.is_ascii() || !recipient.is_ascii() {
            if !self.ext.smtputf8 {
                self.quit().await;
                return Status::bounced(
                    "5.6.7",
                    format!(
                        "SMTPUTF8 is required, but was not offered by host {}",
                        self.host
                    ),
                );
            }
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let reply = match self.command(mail.as_bytes(), self.timeouts.mail).await {
            Ok(reply) => reply,
            Err(f) => return self.broken(f, Stage::Mail),
        };
        if !reply.is_positive() {
            let status = self.rejected(&reply, "MAIL FROM");
            self.quit().await;
            return status;
        }
        let rcpt = format!("RCPT TO:<{recipient}>\r\n");
        let reply = match self.command(rcpt.as_bytes(), self.timeouts.rcpt).await {
            Ok(reply) => reply,
            Err(f) => return self.broken(f, Stage::Rcpt),
        };
        let status = if reply.is_positive() {
            Status::sent(reply.dsn(), reply.to_string())
        } else {
            self.rejected(&reply, "RCPT TO")
        };
        // The answer to RSET changes nothing about the address.
        if self.command(b"RSET\r\n", RSET_TIMEOUT).await.is_ok() {
            self.quit().await;
        }
        status
    }

    fn command_line(&self, command: Command, ext: &Extensions, message: &Message<'_>) -> String {
        match command {
            Command::Mail => {
                let mut line = format!("MAIL FROM:<{}>", message.sender);
                if message.eight_bit && ext.eight_bit_mime {
                    line.push_str(" BODY=8BITMIME");
                }
                if ext.size {
                    line.push_str(&format!(" SIZE={}", message.length));
                }
                if message.smtputf8 {
                    line.push_str(" SMTPUTF8");
                }
                line + "\r\n"
            }
            Command::Rcpt(i) => format!("RCPT TO:<{}>\r\n", message.recipients[i]),
            Command::Data => "DATA\r\n".to_string(),
            Command::Rset => "RSET\r\n".to_string(),
            // Written by the transaction, which holds the lines.
            Command::Xforward(_) => String::new(),
        }
    }

    fn step(&self, command: Command) -> (Stage, Duration) {
        match command {
            Command::Rset => (Stage::Rset, RSET_TIMEOUT),
            Command::Xforward(_) => (Stage::Xforward, self.timeouts.mail),
            Command::Mail => (Stage::Mail, self.timeouts.mail),
            Command::Rcpt(_) => (Stage::Rcpt, self.timeouts.rcpt),
            Command::Data => (Stage::Data, self.timeouts.data_init),
        }
    }

    /// `host X said: 550 5.1.1 ... (in reply to RCPT TO command)`, deferred
    /// or bounced by the reply's class.
    fn rejected(&self, reply: &Reply, command: &str) -> Status {
        let reason = format!(
            "host {} said: {reply} (in reply to {command} command)",
            self.host
        );
        match reply.class() {
            5 => Status::bounced(reply.dsn(), reason),
            4 => Status::deferred(reply.dsn(), reason),
            // A success or intermediate reply where it makes no sense.
            _ => Status::deferred("4.5.0", reason),
        }
    }

    fn broken(&self, fail: Fail, stage: Stage) -> Status {
        match fail {
            Fail::Timeout => Status::deferred(
                "4.4.2",
                format!("conversation with {} timed out while {stage}", self.host),
            ),
            Fail::Lost => Status::deferred(
                "4.4.2",
                format!("lost connection with {} while {stage}", self.host),
            ),
            Fail::Malformed(e) => Status::deferred(
                "4.5.0",
                format!(
                    "host {} sent a malformed reply while {stage}: {e}",
                    self.host
                ),
            ),
        }
    }

    async fn command(&mut self, line: &[u8], timeout: Duration) -> Result<Reply, Fail> {
        self.trace_out(line);
        self.send(line, timeout).await?;
        self.read_reply(timeout).await
    }

    /// Under master.cf's `-v` or debug_peer_list: each command line sent
    /// (an AUTH argument is a credential and is not shown).
    fn trace_out(&self, data: &[u8]) {
        if !self.verbose {
            return;
        }
        for line in String::from_utf8_lossy(data).lines() {
            let shown = match line.get(..5) {
                Some(v) if v.eq_ignore_ascii_case("AUTH ") => "AUTH ...",
                _ => line,
            };
            mailgate_log::info!("> {}: {shown}", self.host);
        }
    }

    async fn send(&mut self, data: &[u8], timeout: Duration) -> Result<(), Fail> {
        let write = async {
            self.stream.write_all(data).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Fail::Lost),
            Err(_) => Err(Fail::Timeout),
        }
    }

    async fn read_reply(&mut self, timeout: Duration) -> Result<Reply, Fail> {
        let read = async {
            let mut builder = ReplyBuilder::default();
            loop {
                let line = self.read_line().await?;
                if let Some(reply) = builder.push(&line).map_err(Fail::Malformed)? {
                    return Ok(reply);
                }
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .unwrap_or(Err(Fail::Timeout))
    }

    /// One line without its CRLF (or bare LF), at most [`MAX_LINE`] bytes.
    async fn read_line(&mut self) -> Result<Vec<u8>, Fail> {
        let mut line = Vec::new();
        loop {
            let buf = self.stream.fill_buf().await.map_err(|_| Fail::Lost)?;
            if buf.is_empty() {
                return Err(Fail::Lost);
            }
            match buf.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    line.extend_from_slice(&buf[..end]);
                    self.stream.consume(end + 1);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if self.verbose {
                        mailgate_log::info!("< {}: {}", self.host, String::from_utf8_lossy(&line));
                    }
                    if line.len() > MAX_LINE {
                        return Err(Fail::Malformed(ReplyError::LineTooLong));
                    }
                    return Ok(line);
                }
                None => {
                    let n = buf.len();
                    line.extend_from_slice(buf);
                    self.stream.consume(n);
                    if line.len() > MAX_LINE {
                        return Err(Fail::Malformed(ReplyError::LineTooLong));
                    }
                }
            }
        }
    }
}

/// Each recipient's final status: its own RCPT rejection, or `rest`.
/// `rest` is None only when no recipient is without a status.
fn finish(outcome: Vec<Option<Status>>, rest: Option<Status>) -> Vec<Status> {
    outcome
        .into_iter()
        .map(|status| {
            status
                .or_else(|| rest.clone())
                .unwrap_or_else(|| Status::deferred("4.3.0", "internal error: no result"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_ipc::protocol::delivery::Outcome;
    use std::io::Write;
    use tokio::io::{AsyncReadExt, DuplexStream};

    /// How a one-transaction session ended.
    #[derive(Debug)]
    enum SessionResult {
        Setup(Status),
        Transaction { statuses: Vec<Status> },
    }

    /// A session as relay ran it before connections were kept: open, one
    /// transaction, QUIT.
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        stream: S,
        host: &str,
        helo_name: &str,
        timeouts: Timeouts,
        message: &Message<'_>,
    ) -> SessionResult {
        run_as(stream, host, helo_name, timeouts, message, false).await
    }

    /// The same, speaking LMTP when `lmtp`.
    async fn run_as<S: AsyncRead + AsyncWrite + Unpin>(
        stream: S,
        host: &str,
        helo_name: &str,
        timeouts: Timeouts,
        message: &Message<'_>,
        lmtp: bool,
    ) -> SessionResult {
        let connection = match open(
            stream,
            host.to_string(),
            helo_name,
            timeouts,
            None,
            lmtp,
            false,
        )
        .await
        {
            Ok(connection) => connection,
            Err(e) => return SessionResult::Setup(e.status()),
        };
        match connection.send_mail(message, false).await {
            Ok(Delivered {
                statuses,
                connection,
            }) => {
                if let Some(mut connection) = connection {
                    connection.quit().await;
                }
                SessionResult::Transaction { statuses }
            }
            Err(status) => SessionResult::Setup(status),
        }
    }

    fn timeouts(t: Duration) -> Timeouts {
        Timeouts {
            connect: t,
            helo: t,
            mail: t,
            rcpt: t,
            data_init: t,
            data_xfer: t,
            data_done: t,
            quit: t,
        }
    }

    fn content(text: &[u8]) -> Arc<File> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"RECORD").unwrap();
        file.write_all(text).unwrap();
        Arc::new(file)
    }

    fn message<'a>(recipients: Vec<&'a str>, body: &[u8]) -> Message<'a> {
        Message {
            sender: "alice@example.org",
            recipients,
            eight_bit: true,
            smtputf8: false,
            content: content(body),
            offset: 6,
            length: body.len() as u64,
            line_limit: 998,
            queue_id: "4ABC123",
            xforward: None,
        }
    }

    /// A scripted server: sends each reply after reading what the client
    /// wrote up to then, and returns everything the client wrote.
    async fn scripted(mut server: DuplexStream, replies: Vec<&'static str>) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        for (i, reply) in replies.iter().enumerate() {
            if i > 0 {
                // Wait for at least one more line from the client.
                let before = seen.iter().filter(|b| **b == b'\n').count();
                while seen.iter().filter(|b| **b == b'\n').count() == before {
                    let n = server.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return String::from_utf8_lossy(&seen).into_owned();
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
            }
            server.write_all(reply.as_bytes()).await.unwrap();
        }
        // The script is over: the server hangs up (the client sees EOF).
        let _ = server.shutdown().await;
        loop {
            match server.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    async fn session(replies: Vec<&'static str>, message: Message<'_>) -> (SessionResult, String) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(scripted(server, replies));
        let result = run(
            client,
            "mx.example.com[192.0.2.1]",
            "gw.example.org",
            timeouts(Duration::from_secs(5)),
            &message,
        )
        .await;
        (result, server.await.unwrap())
    }

    fn statuses(result: SessionResult) -> Vec<Status> {
        match result {
            SessionResult::Transaction { statuses } => statuses,
            SessionResult::Setup(status) => panic!("setup failed: {status:?}"),
        }
    }

    #[tokio::test]
    async fn mixed_recipients_without_pipelining() {
        let (result, dialogue) = session(
            vec![
                "220 mx ESMTP\r\n",
                "250-mx\r\n250-8BITMIME\r\n250 SIZE\r\n",
                "250 2.1.0 Ok\r\n",
                "250 2.1.5 Ok\r\n",
                "550 5.1.1 <nobody@example.com>: User unknown\r\n",
                "450 4.2.0 Greylisted\r\n",
                "354 go\r\n",
                "250 2.0.0 Ok: queued as ABC\r\n",
                "221 bye\r\n",
            ],
            message(
                vec!["bob@example.com", "nobody@example.com", "carol@example.com"],
                b"Subject: hi\r\n\r\n.dot\r\nlast",
            ),
        )
        .await;
        let s = statuses(result);
        assert_eq!(s[0], Status::sent("2.0.0", "250 2.0.0 Ok: queued as ABC"));
        assert_eq!(s[1].outcome, Outcome::Bounced);
        assert_eq!(s[1].dsn, "5.1.1");
        assert_eq!(
            s[1].reason,
            "host mx.example.com[192.0.2.1] said: 550 5.1.1 <nobody@example.com>: \
             User unknown (in reply to RCPT TO command)"
        );
        assert_eq!(s[2].outcome, Outcome::Deferred);
        assert_eq!(s[2].dsn, "4.2.0");
        assert_eq!(
            dialogue,
            "EHLO gw.example.org\r\n\
             MAIL FROM:<alice@example.org> BODY=8BITMIME SIZE=25\r\n\
             RCPT TO:<bob@example.com>\r\n\
             RCPT TO:<nobody@example.com>\r\n\
             RCPT TO:<carol@example.com>\r\n\
             DATA\r\n\
             Subject: hi\r\n\r\n..dot\r\nlast\r\n.\r\n\
             QUIT\r\n"
        );
    }

    #[tokio::test]
    async fn pipelined_commands_go_in_one_write() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let message = message(vec!["a@x", "b@x"], b"body\r\n");
        let driver = async {
            server.write_all(b"220 hi\r\n").await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = server.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"EHLO gw.example.org\r\n");
            server
                .write_all(b"250-mx\r\n250 PIPELINING\r\n")
                .await
                .unwrap();
            let n = server.read(&mut buf).await.unwrap();
            // MAIL, both RCPTs and DATA arrive together, before any reply.
            assert_eq!(
                &buf[..n],
                b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n"
            );
            server
                .write_all(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
                .await
                .unwrap();
            let n = server.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"body\r\n.\r\n");
            server
                .write_all(b"250 queued\r\n221 bye\r\n")
                .await
                .unwrap();
        };
        let (result, ()) = tokio::join!(
            run(
                client,
                "h[ip]",
                "gw.example.org",
                timeouts(Duration::from_secs(5)),
                &message
            ),
            driver
        );
        let s = statuses(result);
        assert_eq!(s, vec![Status::sent("2.0.0", "250 queued"); 2]);
    }

    #[tokio::test]
    async fn all_recipients_refused_pipelined() {
        let (result, dialogue) = session(
            vec![
                "220 mx\r\n",
                "250-mx\r\n250 PIPELINING\r\n",
                "250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n",
                "221 bye\r\n",
            ],
            message(vec!["a@x"], b"body\r\n"),
        )
        .await;
        let s = statuses(result);
        assert_eq!(s[0].outcome, Outcome::Bounced);
        assert!(s[0].reason.contains("(in reply to RCPT TO command)"));
        assert!(!dialogue.contains("body"));
        assert!(dialogue.ends_with("QUIT\r\n"));
    }

    #[tokio::test]
    async fn ehlo_refused_falls_back_to_helo() {
        let (result, dialogue) = session(
            vec![
                "220 old\r\n",
                "502 what\r\n",
                "250 hello\r\n",
                "250 ok\r\n",
                "250 ok\r\n",
                "354 go\r\n",
                "250 ok\r\n",
                "221 bye\r\n",
            ],
            message(vec!["a@x"], b"x\r\n"),
        )
        .await;
        assert_eq!(statuses(result)[0].outcome, Outcome::Sent);
        // No SIZE or BODY parameters for a server without extensions.
        assert!(dialogue.contains("HELO gw.example.org\r\nMAIL FROM:<alice@example.org>\r\n"));
    }

    #[tokio::test]
    async fn size_and_smtputf8_are_checked_before_sending() {
        let (result, dialogue) = session(
            vec!["220 mx\r\n", "250-mx\r\n250 SIZE 10\r\n", "221 bye\r\n"],
            message(vec!["a@x"], b"more than ten bytes\r\n"),
        )
        .await;
        let s = statuses(result);
        assert_eq!(s[0].dsn, "5.3.4");
        assert_eq!(
            s[0].reason,
            "message size 21 exceeds size limit 10 of server mx.example.com[192.0.2.1]"
        );
        assert!(!dialogue.contains("MAIL"));

        let mut utf8 = message(vec!["a@x"], b"x\r\n");
        utf8.smtputf8 = true;
        let (result, _) = session(vec!["220 mx\r\n", "250 mx\r\n", "221 bye\r\n"], utf8).await;
        let s = statuses(result);
        assert_eq!(
            (s[0].outcome, s[0].dsn.as_str()),
            (Outcome::Bounced, "5.6.7")
        );
    }

    #[tokio::test]
    async fn refusals_and_breakage() {
        // 5xx greeting: soft, so the next server is tried.
        let (result, _) = session(
            vec!["554 5.7.1 go away\r\n", "221 bye\r\n"],
            message(vec!["a@x"], b"x"),
        )
        .await;
        match result {
            SessionResult::Setup(s) => {
                assert_eq!(s.outcome, Outcome::Deferred);
                assert_eq!(s.dsn, "4.7.1");
                assert_eq!(
                    s.reason,
                    "host mx.example.com[192.0.2.1] refused to talk to me: 554 5.7.1 go away"
                );
            }
            other => panic!("{other:?}"),
        }
        // MAIL FROM refused: every recipient gets that reply.
        let (result, _) = session(
            vec![
                "220 mx\r\n",
                "250 mx\r\n",
                "553 5.7.1 sender rejected\r\n",
                "221 bye\r\n",
            ],
            message(vec!["a@x", "b@x"], b"x"),
        )
        .await;
        let s = statuses(result);
        assert!(s.iter().all(|s| s.outcome == Outcome::Bounced
            && s.reason.ends_with("(in reply to MAIL FROM command)")));
        // Junk instead of a reply, and a connection lost after DATA.
        let (result, _) = session(
            vec!["220 mx\r\n", "hello there\r\n"],
            message(vec!["a@x"], b"x"),
        )
        .await;
        match result {
            SessionResult::Setup(s) => {
                assert_eq!((s.outcome, s.dsn.as_str()), (Outcome::Deferred, "4.5.0"));
                assert!(
                    s.reason
                        .contains("malformed reply while performing the EHLO handshake")
                );
            }
            other => panic!("{other:?}"),
        }
        let (result, _) = session(
            vec![
                "220 mx\r\n",
                "250 mx\r\n",
                "250 ok\r\n",
                "250 ok\r\n",
                "354 go\r\n",
            ],
            message(vec!["a@x"], b"x\r\n"),
        )
        .await;
        let s = statuses(result);
        assert_eq!(s[0].outcome, Outcome::Deferred);
        assert_eq!(
            s[0].reason,
            "lost connection with mx.example.com[192.0.2.1] while sending end of data -- \
             message may be sent more than once"
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let (client, _server) = tokio::io::duplex(1024);
        let result = run(
            client,
            "h[ip]",
            "gw",
            timeouts(Duration::from_millis(50)),
            &message(vec!["a@x"], b"x"),
        )
        .await;
        match result {
            SessionResult::Setup(s) => assert_eq!(
                s.reason,
                "conversation with h[ip] timed out while receiving the initial server greeting"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn endless_line_is_refused() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let flood = tokio::spawn(async move {
            let junk = vec![b'2'; 1024];
            while server.write_all(&junk).await.is_ok() {}
        });
        let result = run(
            client,
            "h[ip]",
            "gw",
            timeouts(Duration::from_secs(5)),
            &message(vec!["a@x"], b"x"),
        )
        .await;
        match result {
            SessionResult::Setup(s) => assert!(s.reason.contains("longer than"), "{s:?}"),
            other => panic!("{other:?}"),
        }
        flood.abort();
    }

    #[tokio::test]
    async fn only_an_accepted_message_leaves_the_connection_reusable() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(scripted(
            server,
            vec![
                "220 mx\r\n",
                "250-mx\r\n250 PIPELINING\r\n",
                "250 ok\r\n250 ok\r\n354 go\r\n",
                "250 2.0.0 queued\r\n",
                // Reused: RSET, MAIL, RCPT, DATA in one write.
                "250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n",
                "554 5.7.1 content refused\r\n",
                "221 bye\r\n",
            ],
        ));
        let t = timeouts(Duration::from_secs(5));
        let first = open(client, "h[ip]".into(), "gw", t, None, false, false)
            .await
            .unwrap();
        let message = message(vec!["a@x"], b"x\r\n");
        let delivered = first.send_mail(&message, false).await.unwrap();
        assert_eq!(delivered.statuses[0].outcome, Outcome::Sent);
        let kept = delivered.connection.expect("kept after 250");
        let delivered = kept.send_mail(&message, true).await.unwrap();
        assert_eq!(delivered.statuses[0].outcome, Outcome::Bounced);
        // A refused message ends the session with QUIT.
        assert!(delivered.connection.is_none());
        let dialogue = server.await.unwrap();
        assert!(dialogue.contains(".\r\nRSET\r\nMAIL FROM:<alice@example.org>\r\n"));
        assert!(dialogue.ends_with("QUIT\r\n"));
    }

    #[tokio::test]
    async fn refused_rset_starts_no_transaction() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(scripted(
            server,
            vec![
                "220 mx\r\n",
                "250 mx\r\n",
                "421 4.4.2 idle too long, closing\r\n",
            ],
        ));
        let t = timeouts(Duration::from_secs(5));
        let connection = open(client, "h[ip]".into(), "gw", t, None, false, false)
            .await
            .unwrap();
        let status = match connection
            .send_mail(&message(vec!["a@x"], b"x\r\n"), true)
            .await
        {
            Err(status) => status,
            Ok(_) => panic!("a refused RSET must not count as a transaction"),
        };
        assert!(
            status.reason.contains("(in reply to RSET command)"),
            "{status:?}"
        );
        // Without pipelining nothing but RSET went out.
        assert_eq!(server.await.unwrap(), "EHLO gw\r\nRSET\r\n");
    }

    async fn lmtp_session(
        replies: Vec<&'static str>,
        message: Message<'_>,
    ) -> (SessionResult, String) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(scripted(server, replies));
        let t = timeouts(Duration::from_secs(5));
        let result = run_as(client, "lmtp[127.0.0.1]", "gw", t, &message, true).await;
        (result, server.await.unwrap())
    }

    #[tokio::test]
    async fn lmtp_gives_each_accepted_recipient_its_own_reply() {
        let (result, dialogue) = lmtp_session(
            vec![
                "220 lmtp ready\r\n",
                "250-lmtp\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n",
                "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no such user\r\n250 2.1.5 Ok\r\n354 go\r\n",
                "250 2.0.0 <a@x> delivered\r\n452 4.2.2 <c@x> mailbox full\r\n",
                "221 bye\r\n",
            ],
            message(vec!["a@x", "b@x", "c@x"], b"body\r\n"),
        )
        .await;
        let s = statuses(result);
        assert_eq!(s[0], Status::sent("2.0.0", "250 2.0.0 <a@x> delivered"));
        assert_eq!(s[1].outcome, Outcome::Bounced);
        assert_eq!(s[2].outcome, Outcome::Deferred);
        assert_eq!(
            s[2].reason,
            "host lmtp[127.0.0.1] said: 452 4.2.2 <c@x> mailbox full (in reply to end of DATA command)"
        );
        assert!(dialogue.starts_with("LHLO gw\r\n"), "{dialogue}");
    }

    #[tokio::test]
    async fn lmtp_refused_lhlo_has_no_helo_fallback() {
        let (result, dialogue) = lmtp_session(
            vec!["220 lmtp\r\n", "500 5.5.1 what\r\n", "221 bye\r\n"],
            message(vec!["a@x"], b"body\r\n"),
        )
        .await;
        let SessionResult::Setup(status) = result else {
            panic!("LHLO refused, yet a transaction ran")
        };
        assert!(
            status.reason.contains("in reply to LHLO command"),
            "{status:?}"
        );
        assert_eq!(dialogue, "LHLO gw\r\nQUIT\r\n");
    }

    #[tokio::test]
    async fn lmtp_connection_lost_between_replies_defers_the_rest() {
        let (result, _) = lmtp_session(
            vec![
                "220 lmtp\r\n",
                "250-lmtp\r\n250 PIPELINING\r\n",
                "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
                "250 2.0.0 first done\r\n",
            ],
            message(vec!["a@x", "b@x"], b"body\r\n"),
        )
        .await;
        let s = statuses(result);
        assert_eq!(s[0].outcome, Outcome::Sent);
        assert_eq!(s[1].outcome, Outcome::Deferred);
        assert!(s[1].reason.contains("lost connection"), "{:?}", s[1]);
    }

    #[tokio::test]
    async fn xforward_goes_before_mail_with_only_the_offered_attributes() {
        let xforward = Xforward {
            name: "mail.example.com".into(),
            addr: "192.0.2.7".into(),
            port: "4321".into(),
            proto: "ESMTP".into(),
            helo: "helo name+x".into(),
            ident: "4ABC123".into(),
            source: "REMOTE".into(),
        };
        let mut m = message(vec!["a@x"], b"body\r\n");
        m.xforward = Some(&xforward);
        let (result, dialogue) = session(
            vec![
                "220 mx\r\n",
                "250-mx\r\n250 XFORWARD NAME ADDR PROTO HELO\r\n",
                "250 2.0.0 Ok\r\n",
                "250 2.0.0 Ok\r\n",
                "250 ok\r\n",
                "250 ok\r\n",
                "354 go\r\n",
                "250 queued\r\n",
                "221 bye\r\n",
            ],
            m,
        )
        .await;
        assert_eq!(statuses(result)[0].outcome, Outcome::Sent);
        assert!(
            dialogue.starts_with(
                "EHLO gw.example.org\r\n\
                 XFORWARD NAME=mail.example.com ADDR=192.0.2.7\r\n\
                 XFORWARD PROTO=ESMTP HELO=helo+20name+2Bx\r\n\
                 MAIL FROM:<alice@example.org>"
            ),
            "{dialogue}"
        );
        // Not offered: not sent.
        let mut m = message(vec!["a@x"], b"body\r\n");
        m.xforward = Some(&xforward);
        let (_, dialogue) = session(
            vec![
                "220 mx\r\n",
                "250 mx\r\n",
                "250 ok\r\n",
                "250 ok\r\n",
                "354 go\r\n",
                "250 queued\r\n",
                "221 bye\r\n",
            ],
            m,
        )
        .await;
        assert!(!dialogue.contains("XFORWARD"), "{dialogue}");
    }

    #[tokio::test]
    async fn refused_xforward_fails_the_transaction() {
        let xforward = Xforward {
            addr: "192.0.2.7".into(),
            ..Xforward::default()
        };
        let mut m = message(vec!["a@x"], b"body\r\n");
        m.xforward = Some(&xforward);
        let (result, _) = session(
            vec![
                "220 mx\r\n",
                "250-mx\r\n250 XFORWARD ADDR\r\n",
                "550 5.7.0 not authorized\r\n",
                "221 bye\r\n",
            ],
            m,
        )
        .await;
        let s = statuses(result);
        assert_eq!(s[0].outcome, Outcome::Bounced);
        assert!(s[0].reason.contains("in reply to XFORWARD command"));
    }
}
