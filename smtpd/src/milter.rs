//! smtpd_milters during the SMTP dialogue and at the end of each message,
//! as Postfix's smtpd does it: each event goes to the milters after smtpd's
//! own restrictions accepted it; a milter's refusal is the client's reply
//! (logged as milter-reject), and at the end of the message the milters'
//! header, body and envelope changes are applied to the content before it
//! is handed to cleanup, so the 250 covers the message as the milters left
//! it. cleanup stays without network access: smtpd, which may connect out
//! already, is the one that talks to milters (see DESIGN.md, "Milters").

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::PathBuf;

use mailgate_config::milter::{
    DefaultAction, Defaults, MilterSpec, defaults_from_config, parse_list, parse_macro_defaults,
    parse_map_result,
};
use mailgate_config::{MainConfig, Table};
use mailgate_log::warning;
use mailgate_milter::header_checks::{LogContext, Run as HeaderCheckRun};
use mailgate_milter::{Envelope, MacroLists, Milter, Milters, Verdict};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::reply::Reply;
use crate::session::Session;
use crate::settings::SettingsError;

/// The milter settings smtpd reads at start-up.
#[derive(Clone, Debug, Default)]
pub struct MilterSettings {
    pub specs: Vec<MilterSpec>,
    /// smtpd_milter_maps: per-client lists instead of `specs`.
    pub maps: Vec<Table>,
    pub defaults: Defaults,
    /// milter_header_checks.
    pub header_checks: Vec<Table>,
    pub lists: MacroLists,
    pub daemon_name: String,
    pub v: String,
}

fn problem(parameter: &'static str) -> impl Fn(String) -> SettingsError {
    move |e| SettingsError::Config {
        parameter,
        problems: vec![e],
    }
}

impl MilterSettings {
    pub fn load(config: &MainConfig) -> Result<MilterSettings, SettingsError> {
        let defaults = defaults_from_config(config).map_err(|e| problem("smtpd_milters")(e.0))?;
        let specs = parse_list(&config.get("smtpd_milters"), &defaults)
            .map_err(|e| problem("smtpd_milters")(e.0))?;
        let dir = config.config_dir();
        let tables = |parameter: &'static str| -> Result<Vec<Table>, SettingsError> {
            config
                .list(parameter)
                .iter()
                .map(|spec| Table::open(spec, dir).map_err(|e| problem(parameter)(e.to_string())))
                .collect()
        };
        let maps = tables("smtpd_milter_maps")?;
        // Results known before any look-up must be milter lists (regexp
        // and pcre results are checked when a client matches).
        for table in &maps {
            for result in table.results().unwrap_or_default() {
                parse_map_result(&result, &defaults).map_err(|e| {
                    problem("smtpd_milter_maps")(format!("{}: {}", table.spec(), e.0))
                })?;
            }
        }
        let values = mailgate_milter::macros::DEFAULTS.map(|(name, _)| config.get(name));
        let mut lists = MacroLists::from_values(values.each_ref().map(String::as_str));
        lists.defaults = parse_macro_defaults(&config.get("milter_macro_defaults"))
            .map_err(|e| problem("milter_macro_defaults")(e.0))?;
        Ok(MilterSettings {
            specs,
            maps,
            defaults,
            header_checks: tables("milter_header_checks")?,
            lists,
            daemon_name: config.get("milter_macro_daemon_name"),
            v: config.get("milter_macro_v"),
        })
    }

    /// No milter for anyone (receive_override_options = no_milters).
    pub fn clear(&mut self) {
        self.specs.clear();
        self.maps.clear();
    }

    /// The milters of a client: smtpd_milter_maps' result for its
    /// address (DISABLE: none), or smtpd_milters when no table has one,
    /// as Postfix's setup_milters.
    pub fn for_client(&self, addr: IpAddr) -> Result<Cow<'_, [MilterSpec]>, String> {
        let key = addr.to_string();
        for table in &self.maps {
            if let Some(result) = table.lookup(&key) {
                return parse_map_result(&result, &self.defaults)
                    .map(Cow::Owned)
                    .map_err(|e| {
                        format!("smtpd_milter_maps {} result for {key}: {e}", table.spec())
                    });
            }
        }
        Ok(Cow::Borrowed(&self.specs))
    }
}

/// What the milters decided about the transaction besides refusing it.
#[derive(Clone, Debug, Default)]
pub struct MilterFlags {
    /// Queue on hold (quarantine); the reason.
    pub hold: Option<String>,
    pub discard: bool,
    /// The MAIL event was sent: an abandoned transaction needs SMFIC_ABORT.
    pub pending: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    /// Connects to the milters and sends the connect event. The reply
    /// that replaces the greeting, if any: 554 for a 5xx, 421 for a 421
    /// (a 4xx is remembered by the milter and answers MAIL, as in Postfix).
    pub(crate) async fn milter_connect(&mut self) -> Option<Reply> {
        let ms = &self.settings.milters;
        let specs = match ms.for_client(self.st.peer.addr) {
            Ok(specs) => specs,
            Err(e) => {
                // Postfix's milter8_conf_error: the client's milters
                // cannot be known, milter_default_action answers.
                warning!("{e}");
                let problem = "4.3.5 Server configuration problem - try again later";
                let reply = match ms.defaults.default_action {
                    DefaultAction::Accept => return None,
                    DefaultAction::Shutdown => Verdict::Reply(format!("421 {problem}")),
                    DefaultAction::Quarantine => Verdict::Hold("default_action".into()),
                    DefaultAction::Reject | DefaultAction::Tempfail => {
                        Verdict::Reply(format!("451 {problem}"))
                    }
                };
                let spec = MilterSpec {
                    name: "smtpd_milter_maps".into(),
                    address: mailgate_config::milter::Address::Unix(PathBuf::new()),
                    connect_timeout: ms.defaults.connect_timeout,
                    command_timeout: ms.defaults.command_timeout,
                    content_timeout: ms.defaults.content_timeout,
                    default_action: ms.defaults.default_action,
                };
                self.milters = Some(Milters::from_milters(vec![Milter::unusable(spec, reply)]));
                return None;
            }
        };
        if specs.is_empty() {
            return None;
        }
        let st = &self.st;
        let m = &mut self.macros;
        m.set("j", &self.settings.myhostname);
        m.set("daemon_name", &ms.daemon_name);
        m.set("v", &ms.v);
        if let Some(server) = st.server {
            m.set("daemon_addr", server.ip().to_string());
            m.set("daemon_port", server.port().to_string());
        }
        let mut underscore = format!("{} [{}]", st.peer.reverse_name, st.peer.addr);
        if !st.peer.name.eq_ignore_ascii_case(&st.peer.reverse_name) {
            underscore.push_str(" (may be forged)");
        }
        m.set("_", underscore);
        m.set("client_addr", st.peer.addr.to_string());
        m.set("client_port", st.peer.port.to_string());
        m.set("client_name", &st.peer.name);
        m.set("client_ptr", &st.peer.reverse_name);
        let mut milters = Milters::open(&specs, &ms.lists).await;
        let verdict = milters
            .connect(
                &st.peer.name,
                Some(st.peer.addr),
                st.peer.port,
                &self.macros,
            )
            .await;
        self.milters = Some(milters);
        let reply = self.check_milter_reply(verdict?)?;
        let host = &self.settings.myhostname;
        match reply.code {
            500..=599 => Some(Reply::new(
                554,
                format!("{host} ESMTP not accepting connections"),
            )),
            421 => Some(Reply::new(
                421,
                format!("{host} Service unavailable - try again later"),
            )),
            _ => None,
        }
    }

    /// HELO/EHLO: only a 421 is answered; other refusals persist in the
    /// milter and answer MAIL (Sendmail's behaviour, which Postfix keeps).
    pub(crate) async fn milter_helo(&mut self, name: &str) -> Option<Reply> {
        let milters = self.milters.as_mut()?;
        if let Some(tls) = &self.tls {
            self.macros.set("tls_version", tls.details.protocol);
            self.macros.set("cipher", tls.details.cipher);
            self.macros.set("cipher_bits", tls.details.bits.to_string());
        }
        let verdict = milters.helo(name, &self.macros).await?;
        let saved = self.st.helo.replace(name.to_string());
        let reply = self.check_milter_reply(verdict);
        self.st.helo = saved;
        reply.filter(|r| r.code == 421)
    }

    /// MAIL FROM, after smtpd's own checks accepted it.
    pub(crate) async fn milter_mail(&mut self, sender: &str, size: Option<u64>) -> Option<Reply> {
        let milters = self.milters.as_mut()?;
        self.milter_flags = MilterFlags {
            pending: true,
            ..MilterFlags::default()
        };
        let m = &mut self.macros;
        m.unset("i");
        for name in ["auth_type", "auth_authen", "auth_author"] {
            m.unset(name);
        }
        if let Some(method) = &self.st.sasl_method {
            m.set("auth_type", method);
        }
        if let Some(user) = &self.st.sasl_username {
            m.set("auth_authen", user);
        }
        m.set("mail_addr", sender);
        m.set("mail_mailer", "smtp");
        if let Some((_, domain)) = sender.rsplit_once('@') {
            m.set("mail_host", domain);
        } else {
            m.unset("mail_host");
        }
        let mut args = vec![format!("<{sender}>")];
        if let Some(size) = size {
            args.push(format!("SIZE={size}"));
        }
        let verdict = milters.mail(&args, &self.macros).await?;
        let saved = self.st.sender.replace(sender.to_string());
        let reply = self.check_milter_reply(verdict);
        self.st.sender = saved;
        reply
    }

    /// RCPT TO, after smtpd's own checks accepted it.
    pub(crate) async fn milter_rcpt(&mut self, recipient: &str) -> Option<Reply> {
        if self.milter_flags.discard {
            return None;
        }
        let milters = self.milters.as_mut()?;
        let m = &mut self.macros;
        m.set("rcpt_addr", recipient);
        m.set("rcpt_mailer", "smtp");
        match recipient.rsplit_once('@') {
            Some((_, domain)) => m.set("rcpt_host", domain),
            None => m.unset("rcpt_host"),
        }
        if let Some(id) = &self.st.queue_id {
            m.set("i", id);
        }
        let verdict = milters
            .rcpt(&[format!("<{recipient}>")], &self.macros)
            .await?;
        let saved = self.st.recipient.replace(recipient.to_string());
        let reply = self.check_milter_reply(verdict);
        self.st.recipient = saved;
        reply
    }

    pub(crate) async fn milter_data(&mut self) -> Option<Reply> {
        if self.milter_flags.discard {
            return None;
        }
        let milters = self.milters.as_mut()?;
        if let Some(id) = &self.st.queue_id {
            self.macros.set("i", id);
        }
        let verdict = milters.data(&self.macros).await?;
        self.check_milter_reply(verdict)
    }

    /// The end of the message: the content through every milter. On
    /// success the envelope and `content` are as the milters left them
    /// (`content` is replaced only when a header or the body changed).
    pub(crate) async fn milter_message(
        &mut self,
        content: &[u8],
        envelope: &mut Envelope,
    ) -> Result<Option<Vec<u8>>, Reply> {
        self.milter_flags.pending = false;
        if self.milter_flags.discard {
            return Ok(None);
        }
        let Some(milters) = self.milters.as_mut() else {
            return Ok(None);
        };
        if let Some(id) = &self.st.queue_id {
            self.macros.set("i", id);
        }
        let max = self.settings.message_size_limit;
        let tables = &self.settings.milters.header_checks;
        let st = &self.st;
        let context = LogContext {
            queue_id: st.queue_id.clone(),
            client: st.peer.label(),
            sender: st.sender.clone(),
            recipient: st.recipient.clone(),
            protocol: st.protocol.to_string(),
            helo: st.helo.clone(),
        };
        let mut checks = HeaderCheckRun::new(tables, context);
        let outcome = milters
            .message_checked(content, envelope, &self.macros, max, &mut checks)
            .await;
        let decided = checks.decided;
        // milter_header_checks: REJECT and DISCARD end the message; the
        // others go with it, as cleanup's would in Postfix.
        if let Some(reply) = decided.reject {
            let (code, lines) = Verdict::code_and_lines(&reply);
            return Err(Reply::multi(code, lines));
        }
        if decided.discard {
            self.milter_flags.discard = true;
            return Ok(None);
        }
        if decided.hold.is_some() && self.milter_flags.hold.is_none() {
            self.milter_flags.hold = decided.hold;
        }
        if decided.filter.is_some() {
            self.st.actions.filter = decided.filter;
        }
        if decided.redirect.is_some() {
            self.st.actions.redirect = decided.redirect;
        }
        self.st.actions.bcc.extend(decided.bcc);
        if let Some(reason) = outcome.hold {
            self.check_milter_reply(Verdict::Hold(reason));
        }
        if let Some(verdict) = outcome.verdict
            && let Some(reply) = self.check_milter_reply(verdict)
        {
            return Err(reply);
        }
        Ok(outcome.content)
    }

    /// A transaction ended without its message (RSET, HELO, a refusal, a
    /// lost client): the milters forget it.
    pub(crate) async fn milter_abort(&mut self) {
        if std::mem::take(&mut self.milter_flags.pending)
            && let Some(milters) = self.milters.as_mut()
        {
            milters.abort().await;
        }
        self.milter_flags = MilterFlags::default();
    }

    pub(crate) async fn milter_quit(&mut self) {
        if let Some(milters) = self.milters.as_mut() {
            milters.quit().await;
        }
    }

    /// Postfix's check_milter_reply: logs the decision and turns it into
    /// the client's reply (None: go on).
    fn check_milter_reply(&mut self, verdict: Verdict) -> Option<Reply> {
        match verdict {
            Verdict::Hold(reason) => {
                if self.milter_flags.hold.is_none() {
                    let text = if reason.is_empty() {
                        "milter triggers HOLD action".to_string()
                    } else {
                        reason.clone()
                    };
                    self.st.log_whatsup("milter-hold", &text);
                    self.milter_flags.hold = Some(reason);
                }
                None
            }
            Verdict::Discard => {
                if !self.milter_flags.discard {
                    self.st
                        .log_whatsup("milter-discard", "milter triggers DISCARD action");
                    self.milter_flags.discard = true;
                }
                None
            }
            Verdict::Reply(text) => {
                let (code, lines) = Verdict::code_and_lines(&text);
                let reply = Reply::multi(code, lines);
                self.st.log_whatsup("milter-reject", &reply.to_string());
                Some(reply)
            }
        }
    }
}
