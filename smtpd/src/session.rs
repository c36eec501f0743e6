//! One SMTP session: the dialogue state machine from the greeting to the
//! disconnect line. The mail transaction (MAIL, RCPT, DATA) is in
//! transaction.rs, the restrictions in policy/.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use mailgate_log::{info, warning};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

use crate::anvil::Anvil;
use crate::command::{self, Command, ParseOptions, Verb};
use crate::conn::{Conn, IoError, Line, Wake};
use crate::peer;
use crate::policy::{Evaluator, State};
use crate::reply::Reply;
use crate::settings::{BareNewline, Settings, Timing};
use crate::starttls::TlsSession;
use crate::transaction::Transaction;
use mailgate_config::ServerLevel;
use mailgate_tls::stream::{ServerStream, Stream};

/// What every session of the process shares.
pub struct Shared {
    pub settings: Settings,
    pub anvil: Arc<Anvil>,
    /// The master.cf service name, for the limit warnings.
    pub service: String,
    /// One permit per session (maxproc): connections beyond it wait in the
    /// listen backlog.
    pub slots: Arc<Semaphore>,
    maxproc: usize,
    /// Sessions in progress.
    active: AtomicUsize,
    /// True while every slot is busy: the service is under stress, and the
    /// ${stress?...} limits apply, to waiting sessions too.
    stress: watch::Sender<bool>,
    /// Bytes of message content the sessions hold (smtpd_message_memory_limit).
    memory: AtomicU64,
}

impl Shared {
    pub fn new(settings: Settings, service: &str, maxproc: u32) -> Shared {
        let maxproc = maxproc.max(1) as usize;
        Shared {
            // With a runtime, over every smtpd process through the anvil
            // service; without one (unit tests), in this process.
            anvil: if tokio::runtime::Handle::try_current().is_ok() {
                Anvil::with_service(
                    settings.limits.rate_unit,
                    service,
                    settings.limits.anvil_socket.clone(),
                )
            } else {
                Anvil::new(settings.limits.rate_unit)
            },
            settings,
            service: service.to_string(),
            slots: Arc::new(Semaphore::new(maxproc)),
            maxproc,
            active: AtomicUsize::new(0),
            stress: watch::Sender::new(false),
            memory: AtomicU64::new(0),
        }
    }

    /// Takes `bytes` of the content memory budget; false when that would
    /// pass this process's share of smtpd_message_memory_limit.
    pub fn reserve(&self, bytes: u64) -> bool {
        let limit = self.settings.memory_share();
        self.memory
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                let now = used.checked_add(bytes)?;
                (limit == 0 || now <= limit).then_some(now)
            })
            .is_ok()
    }

    pub fn release(&self, bytes: u64) {
        let _ = self
            .memory
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    pub fn stressed(&self) -> bool {
        *self.stress.borrow()
    }

    pub fn timing(&self) -> Timing {
        if self.stressed() {
            self.settings.stress
        } else {
            self.settings.normal
        }
    }

    /// Counts a session in (it holds a slot) until the guard drops.
    pub fn enter(self: &Arc<Self>) -> Occupied {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.stress.send_if_modified(|stressed| {
            let was = *stressed;
            *stressed = now >= self.maxproc;
            was != *stressed
        });
        Occupied(Arc::clone(self))
    }
}

/// A session in progress; see [`Shared::enter`].
pub struct Occupied(Arc<Shared>);

impl Drop for Occupied {
    fn drop(&mut self) {
        let shared = &self.0;
        let now = shared.active.fetch_sub(1, Ordering::SeqCst) - 1;
        shared.stress.send_if_modified(|stressed| {
            let was = *stressed;
            *stressed = now >= shared.maxproc;
            was != *stressed
        });
    }
}

/// Why a connection ended.
pub(crate) enum End {
    Quit,
    Lost,
    Timeout,
    TooManyErrors,
    /// We ended it (a limit, a protocol violation); already answered.
    Dropped,
}

/// Per-command counts for the disconnect log line: (succeeded, total).
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

pub(crate) struct Session<'a, S> {
    /// The client connection: plain until STARTTLS (or TLS from the start
    /// in wrapper mode).
    pub conn: Conn<ServerStream<S>>,
    /// The TLS handshake's details, once TLS is on.
    pub tls: Option<TlsSession>,
    pub shared: &'a Shared,
    pub settings: &'a Settings,
    /// What the restrictions know: the client, HELO, the transaction.
    pub st: State,
    /// Fires when the service comes under stress or out of it.
    pub wake: Wake,
    pub esmtp: bool,
    pub txn: Option<Transaction>,
    stats: Stats,
    pub errors: u32,
    pub junk: u32,
    /// smtpd_delay_reject = no and the client restrictions refused the
    /// client: every command but QUIT gets 503.
    access_denied: Option<Reply>,
    /// Recipients refused over smtpd_recipient_limit, which Postfix does
    /// not count as errors up to smtpd_recipient_overshoot_limit.
    pub rcpt_overshoot: u32,
    /// The next reply is a refusal that counts as neither an error nor a
    /// failed command (a recipient over the limit, within the overshoot).
    pub soft_refusal: bool,
    /// A bare LF was seen (smtpd_forbid_bare_newline = note).
    pub note_bare_lf: bool,
    /// smtpd_milters, connected at the start of the session.
    pub milters: Option<mailgate_milter::Milters>,
    /// The macro values the milters get.
    pub macros: mailgate_milter::Macros,
    pub milter_flags: crate::milter::MilterFlags,
    /// One Begin to cleanup in flight at a time: a client that pipelines
    /// MAIL, RCPT and RSET over and over waits for the Begin of each
    /// abandoned transaction rather than opening any number at once.
    pub begin_slot: Option<std::sync::Arc<tokio::sync::Semaphore>>,
}

/// Serves one client until it quits or is dropped, logging as Postfix does.
/// `local` is our end of the connection, when known.
pub async fn run<S>(stream: S, peer: SocketAddr, local: Option<SocketAddr>, shared: &Shared)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let settings = &shared.settings;
    let client_addr = mailgate_dns::hosts::plain(peer.ip());
    // Boxed, as every step but the wait for a command is: a session's
    // future is as large as its largest step, and an idle session should
    // hold only what waiting for a command takes (see `dialogue`).
    let peer = Box::pin(peer::lookup(
        &settings.dns,
        &settings.name_sources,
        client_addr,
        peer.port(),
        settings.peername_lookup,
    ))
    .await;
    let mut session = Session {
        conn: Conn::new(Stream::Plain(stream)),
        tls: None,
        shared,
        settings,
        st: State::new(peer),
        wake: Wake::new(shared.stress.subscribe()),
        esmtp: false,
        txn: None,
        stats: Stats::default(),
        errors: 0,
        junk: 0,
        access_denied: None,
        rcpt_overshoot: 0,
        soft_refusal: false,
        note_bare_lf: false,
        milters: None,
        begin_slot: None,
        macros: mailgate_milter::Macros::default(),
        milter_flags: crate::milter::MilterFlags::default(),
    };
    session.st.server = local;
    session.conn.label = session.st.peer.label();
    session.conn.verbose |= settings
        .debug_peers
        .matches(session.st.peer.addr, &session.st.peer.name);
    info!("connect from {}", session.st.peer.label());
    // SMTPS: TLS before the greeting.
    let wrapped = match &settings.tls {
        Some(tls) if tls.wrapper => Box::pin(session.handshake()).await,
        _ => Ok(()),
    };
    // Held for the whole session: the client's open-connection count.
    let (end, _connection) = match wrapped {
        Err(end) => (end, None),
        Ok(()) => match Box::pin(session.open()).await {
            Ok(connection) => (session.dialogue().await, connection),
            Err(end) => (end, None),
        },
    };
    let label = session.st.peer.label();
    let stage = session.st.stage;
    match end {
        End::Quit | End::Dropped => {}
        End::Lost => info!("lost connection after {stage} from {label}"),
        End::Timeout => {
            let reply = Reply::new(
                421,
                format!("4.4.2 {} Error: timeout exceeded", settings.myhostname),
            );
            session.conn.queue(&reply);
            let _ = Box::pin(session.conn.flush(shared.timing().timeout)).await;
            info!("timeout after {stage} from {label}");
        }
        End::TooManyErrors => info!("too many errors after {stage} from {label}"),
    }
    let _ = session.conn.stream.shutdown().await;
    // The transaction, if any, is abandoned here: cleanup sees its
    // connection close and discards the queue file.
    session.txn = None;
    Box::pin(session.milter_abort()).await;
    Box::pin(session.milter_quit()).await;
    let notes = if session.note_bare_lf {
        " notes=bare_lf"
    } else {
        ""
    };
    info!("disconnect from {label} {}{notes}", session.stats.summary());
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    /// The protocol for the Received header, with RFC 3848's suffixes:
    /// ESMTPS over TLS, ESMTPA when authenticated, ESMTPSA for both.
    pub(crate) fn received_protocol(&self) -> String {
        let mut protocol = self.protocol().to_string();
        if self.esmtp {
            if self.tls.is_some() {
                protocol.push('S');
            }
            if self.st.sasl_username.is_some() {
                protocol.push('A');
            }
        }
        protocol
    }

    /// Everything before the dialogue: a client that speaks before the
    /// greeting, the per-client connection limits, the client
    /// restrictions when they are not delayed, then the greeting.
    async fn open(&mut self) -> Result<Option<crate::anvil::Connection>, End> {
        let s = self.settings;
        if self.pipelined("CONNECT").await && s.forbid_unauth_pipelining {
            return Err(self.refuse_pipelining().await);
        }
        let addr = self.st.peer.addr;
        let mut connection = None;
        let limited = s.limits.connection_count > 0 || s.limits.connection_rate > 0;
        if limited && !s.limits.exceptions.contains(addr) {
            let (guard, count, rate) = self.shared.anvil.connect(addr).await;
            connection = Some(guard);
            let limits = &s.limits;
            let over = if limits.connection_count > 0 && count > limits.connection_count {
                Some(("Connection concurrency", count))
            } else if limits.connection_rate > 0 && rate > limits.connection_rate {
                Some(("Connection rate", rate))
            } else {
                None
            };
            if let Some((what, n)) = over {
                warning!(
                    "{what} limit exceeded: {n} from {} for service {}",
                    self.st.peer.label(),
                    self.shared.service
                );
                self.conn.queue(&Reply::new(
                    421,
                    format!(
                        "4.7.0 {} Error: too many connections from {addr}",
                        s.myhostname
                    ),
                ));
                let _ = self.conn.flush(self.shared.timing().timeout).await;
                return Err(End::Dropped);
            }
        }
        if !s.delay_reject
            && let Some(reply) = Evaluator::new(s).check_client(&mut self.st).await
        {
            self.conn.queue(&reply);
            self.errors += 1;
            self.access_denied = Some(reply);
            return Ok(connection);
        }
        if let Some(reply) = self.milter_connect().await {
            self.conn.queue(&reply);
            if reply.code == 421 {
                let _ = self.conn.flush(self.shared.timing().timeout).await;
                return Err(End::Dropped);
            }
            self.errors += 1;
            return Ok(connection);
        }
        self.conn.queue(&Reply::new(220, s.banner.clone()));
        Ok(connection)
    }

    async fn dialogue(&mut self) -> End {
        let opts = ParseOptions {
            smtputf8_enable: self.settings.smtputf8_enable,
            strict_rfc821_envelopes: self.settings.strict_rfc821_envelopes,
        };
        loop {
            let timing = self.shared.timing();
            self.st.stress = self.shared.stressed();
            if self.errors >= timing.hard_error_limit {
                let reply = Reply::new(
                    421,
                    format!("4.7.0 {} Error: too many errors", self.settings.myhostname),
                );
                self.conn.queue(&reply);
                let _ = self.conn.flush(timing.timeout).await;
                return End::TooManyErrors;
            }
            let shared = self.shared;
            let line = match self
                .conn
                .read_line(
                    self.settings.line_length_limit,
                    &|| shared.timing(),
                    &mut self.wake,
                )
                .await
            {
                Ok(Line::Text(line)) => line,
                Ok(Line::TooLong) => {
                    self.finish(Verb::Unknown, Reply::new(500, "5.5.0 Error: line too long"))
                        .await;
                    continue;
                }
                Err(e) => return io_end(e),
            };
            if self.conn.bare_lf && self.bare_lf_matters() {
                if self.settings.bare_newline == BareNewline::Reject {
                    return self.refuse_bare_lf().await;
                }
                self.note_bare_lf = true;
            }
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
            if self.conn.verbose {
                // AUTH's initial response is a credential: not logged.
                let shown = match text.get(..5) {
                    Some(v) if v.eq_ignore_ascii_case("AUTH ") => {
                        let mech = text[5..].split_whitespace().next().unwrap_or("");
                        format!("AUTH {mech} ...")
                    }
                    _ => text.clone(),
                };
                mailgate_log::info!("< {}: {shown}", self.st.peer.label());
            }
            let (verb, parsed) = command::parse(&text, opts);
            if verb == Verb::Unknown && self.is_not_smtp(&text) {
                warning!(
                    "non-SMTP command from {}: {}",
                    self.st.peer.label(),
                    text.chars().take(100).collect::<String>()
                );
                self.st.stage = "UNKNOWN";
                self.finish(
                    verb,
                    Reply::new(221, "2.7.0 Error: I can break rules, too. Goodbye."),
                )
                .await;
                let _ = self.conn.flush(timing.timeout).await;
                return End::Dropped;
            }
            if let Some(denied) = &self.access_denied
                && verb != Verb::Quit
            {
                let reply = if denied.code == 421 {
                    denied.clone()
                } else {
                    Reply::new(
                        503,
                        format!("5.7.0 Error: access denied for {}", self.st.peer.label()),
                    )
                };
                self.finish(verb, reply).await;
                continue;
            }
            if verb.is_junk() {
                self.junk = self.junk.saturating_add(1);
                if self.junk > self.settings.junk_command_limit {
                    self.errors = self.errors.saturating_add(1);
                }
            }
            let command = match parsed {
                Ok(command) => command,
                Err(reply) => {
                    self.st.stage = verb.name();
                    self.finish(verb, reply).await;
                    continue;
                }
            };
            self.st.stage = verb.name();
            // RFC 2920: HELO, EHLO, DATA, NOOP and VRFY end a group of
            // pipelined commands, and a client that did not say EHLO may not
            // pipeline at all.
            let last_in_group = matches!(
                verb,
                Verb::Helo
                    | Verb::Ehlo
                    | Verb::Data
                    | Verb::Noop
                    | Verb::Vrfy
                    | Verb::Starttls
                    | Verb::Auth
            );
            if (!self.esmtp || last_in_group)
                && !self.st.ill_pipelining
                && self.pipelined(verb.name()).await
                && self.settings.forbid_unauth_pipelining
            {
                return self.refuse_pipelining().await;
            }
            // smtpd_tls_security_level = encrypt: nothing but the
            // commands that lead to TLS, before TLS.
            let tls_required = self
                .settings
                .tls
                .as_ref()
                .is_some_and(|t| t.level == ServerLevel::Encrypt);
            if tls_required
                && !self.conn.stream.is_tls()
                && !matches!(
                    verb,
                    Verb::Helo | Verb::Ehlo | Verb::Starttls | Verb::Noop | Verb::Rset | Verb::Quit
                )
            {
                self.finish(
                    verb,
                    Reply::new(530, "5.7.0 Must issue a STARTTLS command first"),
                )
                .await;
                continue;
            }
            let reply = match command {
                Command::Starttls => match Box::pin(self.starttls()).await {
                    Ok(Some(reply)) => reply,
                    Ok(None) => {
                        self.stats.record(Verb::Starttls, true);
                        continue;
                    }
                    Err(end) => {
                        self.stats.record(Verb::Starttls, false);
                        return end;
                    }
                },
                Command::Auth(arg) => match Box::pin(self.auth(&arg)).await {
                    Ok(reply) => reply,
                    Err(end) => {
                        self.stats.record(Verb::Auth, false);
                        return end;
                    }
                },
                Command::Xforward(arg) => self.xforward(&arg),
                Command::Helo(name) => Box::pin(self.helo(name, false)).await,
                Command::Ehlo(name) => Box::pin(self.helo(name, true)).await,
                Command::Mail(path, params) => Box::pin(self.mail(path, params)).await,
                Command::Rcpt(address, params) => Box::pin(self.rcpt(address, params)).await,
                Command::Data => match Box::pin(self.data()).await {
                    Ok(reply) => reply,
                    Err(e) => {
                        self.stats.record(Verb::Data, false);
                        return io_end(e);
                    }
                },
                Command::Rset => {
                    self.txn = None;
                    self.st.reset_transaction();
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
                    let _ = self.conn.flush(self.shared.timing().timeout).await;
                    return End::Quit;
                }
            };
            // A 421 (from an access table, say) closes the session, as in
            // Postfix.
            let hang_up = reply.code == 421;
            self.finish(verb, reply).await;
            if self.milter_flags.pending && self.txn.is_none() {
                Box::pin(self.milter_abort()).await;
            }
            if hang_up {
                let _ = self.conn.flush(self.shared.timing().timeout).await;
                return End::Dropped;
            }
        }
    }

    /// smtpd_forbid_bare_newline is note or reject, and the client is not
    /// one of its exclusions.
    pub(crate) fn bare_lf_matters(&self) -> bool {
        self.settings.bare_newline != BareNewline::Normalize
            && !self
                .settings
                .bare_newline_exclusions
                .contains(self.st.peer.addr)
    }

    /// smtpd_forbid_bare_newline = reject, for a command line: Postfix's
    /// reply, then the session ends.
    async fn refuse_bare_lf(&mut self) -> End {
        self.st.log_whatsup("reject", "bare <LF> received");
        self.conn.queue(&self.bare_lf_reply());
        let _ = self.conn.flush(self.shared.timing().timeout).await;
        End::Dropped
    }

    pub(crate) fn bare_lf_reply(&self) -> Reply {
        Reply::new(
            self.settings.bare_newline_code,
            format!(
                "5.5.2 {} Error: bare <LF> received",
                self.settings.myhostname
            ),
        )
    }

    /// A message header or an HTTP request where a command should be:
    /// a client that is not speaking SMTP (smtpd_forbidden_commands).
    fn is_not_smtp(&self, line: &str) -> bool {
        let word = line.split([' ', '\t']).next().unwrap_or("");
        let header = word.len() > 1
            && word.ends_with(':')
            && word[..word.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b':');
        header || self.settings.forbidden_commands.matches(word)
    }

    /// Checks whether the client sent more than it should have before our
    /// answer; logs it once, as Postfix does.
    async fn pipelined(&mut self, after: &str) -> bool {
        if !self.conn.has_input().await {
            return false;
        }
        let sample: String = self
            .conn
            .buffered()
            .iter()
            .take(100)
            .flat_map(|&b| std::ascii::escape_default(b))
            .map(char::from)
            .collect();
        info!(
            "improper command pipelining after {after} from {}: {sample}",
            self.st.peer.label()
        );
        self.st.ill_pipelining = true;
        true
    }

    /// smtpd_forbid_unauth_pipelining = yes.
    async fn refuse_pipelining(&mut self) -> End {
        self.conn.queue(&Reply::new(
            554,
            "5.5.0 Error: SMTP protocol synchronization",
        ));
        let _ = self.conn.flush(self.shared.timing().timeout).await;
        End::Dropped
    }

    /// Counts the command and queues its reply. Past smtpd_soft_error_limit
    /// every reply is delayed by smtpd_error_sleep_time, which slows down
    /// dictionary attacks and broken clients alike.
    pub(crate) async fn finish(&mut self, verb: Verb, reply: Reply) {
        let error = reply.is_error() && !std::mem::take(&mut self.soft_refusal);
        self.stats.record(verb, !error);
        if self.errors >= self.settings.soft_error_limit {
            tokio::time::sleep(self.settings.error_sleep).await;
        }
        if error {
            self.errors = self.errors.saturating_add(1);
        }
        self.conn.queue(&reply);
    }

    async fn helo(&mut self, name: String, esmtp: bool) -> Reply {
        let s = self.settings;
        if !s.delay_reject
            && let Some(reply) = Evaluator::new(s)
                .check_helo(&mut self.st, Some(&name))
                .await
        {
            return reply;
        }
        // RFC 5321 4.1.4: a HELO or EHLO during a transaction resets it.
        self.txn = None;
        self.st.reset_transaction();
        self.milter_abort().await;
        if let Some(reply) = self.milter_helo(&name).await {
            return reply;
        }
        self.st.helo = Some(name);
        self.esmtp = esmtp;
        self.st.protocol = self.protocol();
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
        // Postfix's order: ... VRFY, ETRN, STARTTLS, AUTH, ENHANCEDSTATUSCODES ...
        if self.starttls_offered() {
            lines.push("STARTTLS".to_string());
        }
        lines.extend(self.auth_ehlo_lines());
        lines.push("ENHANCEDSTATUSCODES".to_string());
        lines.push("8BITMIME".to_string());
        if s.smtputf8_enable {
            lines.push("SMTPUTF8".to_string());
        }
        if self.xforward_allowed() {
            lines.push(crate::xforward::EHLO_LINE.to_string());
        }
        Reply::multi(250, lines)
    }

    /// smtpd_authorized_xforward_hosts lists the client.
    fn xforward_allowed(&self) -> bool {
        self.settings
            .filtering
            .xforward_hosts
            .contains(self.st.peer.addr)
    }

    /// XFORWARD: an authorized client (a content filter re-injecting)
    /// names the original client of the next transaction.
    fn xforward(&mut self, arg: &str) -> Reply {
        if !self.xforward_allowed() {
            return Reply::new(550, "5.7.0 Error: insufficient authorization");
        }
        if self.txn.is_some() {
            return Reply::new(503, "5.5.1 Error: MAIL transaction in progress");
        }
        match self.st.xforward.apply(arg) {
            Ok(()) => Reply::new(250, "2.0.0 Ok"),
            Err(reply) => reply,
        }
    }

    pub(crate) fn protocol(&self) -> &'static str {
        if self.esmtp { "ESMTP" } else { "SMTP" }
    }
}

pub(crate) fn io_end(e: IoError) -> End {
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
