//! non_smtpd_milters for `mailgate sendmail`: the submitting command
//! itself asks the milters before it commits the message to cleanup, with
//! the SMTP events Postfix's cleanup emulates for local mail
//! (cleanup_milter_emul_*: a connection from localhost/127.0.0.1 that
//! says EHLO localhost, MAIL, RCPT for each recipient, DATA), then the
//! message, with milter_header_checks on what the milters add or change.
//!
//! Why here and not in cleanup: cleanup has no network access by design
//! (it writes the queue), and the only other producer of local mail,
//! qmgr's notices, is mail the gateway makes about mail already checked.
//! `mailgate sendmail` runs as root or mail_owner only (cleanup's socket
//! is theirs), so the process that talks to the milters is one those
//! users already control. See DESIGN.md, "Milters".

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use mailgate_config::milter::{Address, MilterSpec, from_config, parse_macro_defaults};
use mailgate_config::{MainConfig, Table};
use mailgate_ipc::envelope::{Envelope, Recipient};
use mailgate_ipc::protocol::cleanup::Actions;
use mailgate_log::{info, warning};
use mailgate_milter::header_checks::{LogContext, Run};
use mailgate_milter::{MacroLists, Macros, Milters, Verdict};

/// While it lives, the log lines of this process (mailgate_log writes
/// them to standard error) go to maillog_file, where the services' lines
/// are, instead of the caller's terminal or cron mail; dropped, standard
/// error is put back.
pub struct LogToMaillog {
    saved: Option<std::os::fd::OwnedFd>,
}

impl LogToMaillog {
    pub fn start(config: &MainConfig) -> LogToMaillog {
        mailgate_log::init(&config.get("syslog_name"), "sendmail");
        let path = config.get("maillog_file");
        if path.trim().is_empty() {
            return LogToMaillog { saved: None };
        }
        let saved = std::fs::OpenOptions::new()
            .append(true)
            .open(path.trim())
            .ok()
            .and_then(|file| {
                let saved = nix::unistd::dup(std::io::stderr()).ok()?;
                nix::unistd::dup2_stderr(&file).ok()?;
                Some(saved)
            });
        LogToMaillog { saved }
    }
}

impl Drop for LogToMaillog {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = nix::unistd::dup2_stderr(&saved);
        }
    }
}

/// Run by root, the process becomes mail_owner (who may submit too)
/// before it speaks to any milter: their replies are parsed without
/// root's privileges. Must be called while the process has one thread.
pub fn drop_to_mail_owner(config: &MainConfig) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let failed = |e: mailgate_sandbox::SandboxError| format!("cannot become mail_owner: {e}");
    let identity =
        mailgate_sandbox::lookup_user("mail_owner", &config.get("mail_owner")).map_err(failed)?;
    mailgate_sandbox::become_user(&identity).map_err(failed)
}

/// The milters of local submission, read before anything is sent.
pub struct LocalMilters {
    specs: Vec<MilterSpec>,
    lists: MacroLists,
    header_checks: Vec<Table>,
    myhostname: String,
    daemon_name: String,
    v: String,
    max_size: u64,
}

/// Why a message did not pass the milters: a reply (4xx or 5xx).
#[derive(Debug)]
pub struct Refused(pub String);

impl LocalMilters {
    /// None when non_smtpd_milters is empty.
    pub fn load(config: &MainConfig) -> Result<Option<LocalMilters>, String> {
        let mut specs = from_config(config, "non_smtpd_milters").map_err(|e| e.0)?;
        if specs.is_empty() {
            return Ok(None);
        }
        // unix: paths are inside the spool, as smtpd's (a chrooted
        // cleanup's in Postfix).
        let spool = config.get("queue_directory");
        for spec in &mut specs {
            if let Address::Unix(path) = &spec.address {
                let inside = path.strip_prefix("/").unwrap_or(path);
                spec.address = Address::Unix(Path::new(&spool).join(inside));
            }
        }
        let values = mailgate_milter::macros::DEFAULTS.map(|(name, _)| config.get(name));
        let mut lists = MacroLists::from_values(values.each_ref().map(String::as_str));
        lists.defaults =
            parse_macro_defaults(&config.get("milter_macro_defaults")).map_err(|e| e.0)?;
        let header_checks = config
            .list("milter_header_checks")
            .iter()
            .map(|spec| Table::open(spec, config.config_dir()).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(LocalMilters {
            specs,
            lists,
            header_checks,
            myhostname: config.get("myhostname"),
            daemon_name: config.get("milter_macro_daemon_name"),
            v: config.get("milter_macro_v"),
            max_size: config.size("message_size_limit"),
        }))
    }

    /// The message through the milters: on success `envelope`, `actions`
    /// and `content` are as they leave them.
    pub async fn run(
        &self,
        queue_id: &str,
        envelope: &mut Envelope,
        actions: &mut Actions,
        content: &mut Vec<u8>,
    ) -> Result<(), Refused> {
        let mut m = Macros::default();
        m.set("i", queue_id);
        m.set("j", &self.myhostname);
        m.set("daemon_name", &self.daemon_name);
        m.set("v", &self.v);
        m.set("_", "localhost [127.0.0.1]");
        m.set("client_addr", "127.0.0.1");
        m.set("client_name", "localhost");
        m.set("client_ptr", "localhost");
        let mut milters = Milters::open(&self.specs, &self.lists).await;
        let result = self
            .events(&mut milters, &mut m, queue_id, envelope, actions, content)
            .await;
        milters.quit().await;
        result
    }

    async fn events(
        &self,
        milters: &mut Milters,
        m: &mut Macros,
        queue_id: &str,
        envelope: &mut Envelope,
        actions: &mut Actions,
        content: &mut Vec<u8>,
    ) -> Result<(), Refused> {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let from = envelope.sender.clone();
        let log = |what: &str, event: &str, text: &str| {
            info!(
                "{queue_id}: {what}: {event} from localhost[127.0.0.1]: {text}; from=<{from}> \
                 proto=ESMTP helo=<localhost>"
            );
        };
        // Postfix's cleanup_milter_apply for the emulated events.
        let decide = |event: &str, verdict: Option<Verdict>, actions: &mut Actions| match verdict {
            None => Ok(()),
            Some(Verdict::Hold(reason)) => {
                log("milter-hold", event, &reason);
                actions.hold = true;
                Ok(())
            }
            Some(Verdict::Discard) => {
                log("milter-discard", event, "milter triggers DISCARD action");
                actions.discard = true;
                Ok(())
            }
            Some(Verdict::Reply(text)) => {
                log("milter-reject", event, text.get(4..).unwrap_or(&text));
                Err(Refused(text))
            }
        };
        let verdict = milters.connect("localhost", Some(localhost), 0, m).await;
        decide("CONNECT", verdict, actions)?;
        let verdict = milters.helo("localhost", m).await;
        decide("EHLO", verdict, actions)?;
        let sender = &envelope.sender;
        m.set("mail_addr", sender);
        m.set("mail_mailer", "local");
        match sender.rsplit_once('@') {
            Some((_, domain)) => m.set("mail_host", domain),
            None => m.unset("mail_host"),
        }
        let verdict = milters.mail(&[format!("<{sender}>")], m).await;
        decide("MAIL", verdict, actions)?;
        for rcpt in &envelope.recipients {
            let address = &rcpt.address;
            m.set("rcpt_addr", address);
            m.set("rcpt_mailer", "smtp");
            match address.rsplit_once('@') {
                Some((_, domain)) => m.set("rcpt_host", domain),
                None => m.unset("rcpt_host"),
            }
            if let Some(verdict) = milters.rcpt(&[format!("<{address}>")], m).await {
                // A recipient cannot be refused in a local submission:
                // Postfix defers the message as a configuration error.
                if matches!(verdict, Verdict::Reply(_)) {
                    warning!(
                        "{queue_id}: milter configuration error: can't reject recipient \
                         in non-smtpd(8) submission"
                    );
                    warning!("{queue_id}: message not accepted, try again later");
                    return Err(Refused("451 4.3.5 Server configuration error".into()));
                }
                decide("RCPT", Some(verdict), actions)?;
            }
        }
        let verdict = milters.data(m).await;
        decide("DATA", verdict, actions)?;
        if actions.discard {
            return Ok(());
        }
        let mut milter_envelope = mailgate_milter::Envelope {
            sender: envelope.sender.clone(),
            recipients: envelope
                .recipients
                .iter()
                .map(|r| r.address.clone())
                .collect(),
        };
        let context = LogContext {
            queue_id: Some(queue_id.to_string()),
            client: "localhost[127.0.0.1]".into(),
            sender: Some(envelope.sender.clone()),
            recipient: envelope.recipients.first().map(|r| r.address.clone()),
            protocol: "ESMTP".into(),
            helo: Some("localhost".into()),
        };
        let mut checks = Run::new(&self.header_checks, context);
        let outcome = milters
            .message_checked(content, &mut milter_envelope, m, self.max_size, &mut checks)
            .await;
        let decided = checks.decided;
        if let Some(reply) = decided.reject {
            return Err(Refused(reply));
        }
        if decided.discard {
            actions.discard = true;
            return Ok(());
        }
        actions.hold |= decided.hold.is_some() || outcome.hold.is_some();
        if let Some(reason) = &outcome.hold {
            log("milter-hold", "END-OF-MESSAGE", reason);
        }
        if decided.filter.is_some() {
            actions.filter = decided.filter;
        }
        if decided.redirect.is_some() {
            actions.redirect = decided.redirect;
        }
        actions.bcc.extend(decided.bcc);
        decide("END-OF-MESSAGE", outcome.verdict, actions)?;
        envelope.sender = milter_envelope.sender;
        let mut kept = Vec::with_capacity(milter_envelope.recipients.len());
        for address in milter_envelope.recipients {
            match envelope
                .recipients
                .iter()
                .position(|r| r.address == address)
            {
                Some(i) => kept.push(envelope.recipients.remove(i)),
                None => kept.push(Recipient::new(address, None)),
            }
        }
        if kept.is_empty() {
            // Every recipient deleted: nothing to deliver.
            actions.discard = true;
            kept = std::mem::take(&mut envelope.recipients);
        }
        envelope.recipients = kept;
        if let Some(new) = outcome.content {
            *content = new;
        }
        Ok(())
    }
}
