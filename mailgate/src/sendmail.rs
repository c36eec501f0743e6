//! `mailgate sendmail`: the sendmail(1) interface for mail made on the
//! gateway itself (cron jobs, monitoring). The message goes to cleanup
//! through the same Begin/Commit protocol smtpd uses, so it is checked,
//! queued and logged like any other.
//!
//! Who may submit: root and mail_owner only, because cleanup's socket is
//! theirs. Postfix lets every user submit through a world-writable maildrop
//! directory and its pickup daemon; mailgate has no maildrop yet, and while
//! the mail system is down a submission fails (exit status 75, EX_TEMPFAIL,
//! so cron and most callers try again) instead of waiting in a maildrop.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mailgate_ipc::envelope::{BodyType, Envelope, Recipient, now_micros};
use mailgate_ipc::protocol::cleanup::Actions;
use mailgate_ipc::spool::{PRIVATE, PUBLIC};
use mailgate_ipc::submit::{
    CleanupSession, Committed, SubmitError, local_client, sealed_content, submit_with,
};
use nix::unistd::{User, getuid};

use crate::error::say;
use crate::locate::Invocation;
use crate::queue::check_user;
use crate::sendmail_milters::{LocalMilters, LogToMaillog, Refused, drop_to_mail_owner};

/// sysexits.h: what sendmail's callers understand.
const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_NOPERM: u8 = 77;
const EX_SOFTWARE: u8 = 70;
const EX_TEMPFAIL: u8 = 75;

/// How long cleanup may take to queue the message.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Args)]
pub struct SendmailArgs {
    /// The envelope sender; `<>` or an empty value for the null sender.
    /// Default: the user's login name at $myorigin.
    #[arg(short = 'f', visible_short_alias = 'r', value_name = "SENDER")]
    sender: Option<String>,

    /// The sender's full name, for the From: header added when the message has none.
    #[arg(short = 'F', value_name = "NAME")]
    full_name: Option<String>,

    /// Take recipients from the To:, Cc: and Bcc: headers too (Bcc: is removed).
    #[arg(short = 't')]
    extract: bool,

    /// A line with a single dot does not end the message.
    #[arg(short = 'i')]
    ignore_dots: bool,

    /// Sendmail options: `-oi` is `-i`; the others (-oem, -odb, ...) are accepted and ignored.
    #[arg(short = 'o', value_name = "OPTION")]
    options: Vec<String>,

    /// Recipient addresses.
    #[arg(value_name = "RECIPIENT")]
    recipients: Vec<String>,
}

#[derive(Debug)]
pub enum SendmailError {
    Config(String),
    NotPermitted(String),
    NoRecipients,
    /// An address with a control character or white space in it.
    BadAddress(String),
    Input(io::Error),
    TooBig(u64),
    Submit(SubmitError),
    /// non_smtpd_milters refused the message (their reply).
    Milter(String),
}

impl fmt::Display for SendmailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendmailError::Config(what) => write!(f, "{what}"),
            SendmailError::NotPermitted(why) => write!(
                f,
                "{why}; local submission is limited to them because mailgate has no \
                 world-writable maildrop (see README)"
            ),
            SendmailError::NoRecipients => write!(f, "no recipient addresses found"),
            SendmailError::BadAddress(a) => write!(f, "bad address syntax: {a:?}"),
            SendmailError::Input(e) => {
                write!(f, "cannot read the message from standard input: {e}")
            }
            SendmailError::TooBig(limit) => {
                write!(
                    f,
                    "message is larger than message_size_limit ({limit} bytes)"
                )
            }
            SendmailError::Submit(SubmitError::Connect(e)) => write!(
                f,
                "cannot connect to the cleanup service ({e}); is the mail system running?"
            ),
            SendmailError::Submit(e) => write!(f, "{e}"),
            SendmailError::Milter(reply) => write!(f, "refused by non_smtpd_milters: {reply}"),
        }
    }
}

impl std::error::Error for SendmailError {}

impl SendmailError {
    fn exit_status(&self) -> u8 {
        match self {
            SendmailError::Config(_) => EX_SOFTWARE,
            SendmailError::NotPermitted(_) => EX_NOPERM,
            SendmailError::NoRecipients | SendmailError::BadAddress(_) => EX_USAGE,
            SendmailError::Input(_) | SendmailError::TooBig(_) => EX_DATAERR,
            SendmailError::Submit(SubmitError::Rejected(_)) => EX_DATAERR,
            SendmailError::Submit(_) => EX_TEMPFAIL,
            SendmailError::Milter(reply) if reply.starts_with('5') => EX_DATAERR,
            SendmailError::Milter(_) => EX_TEMPFAIL,
        }
    }
}

/// Runs the command; the exit status follows sysexits(3), as sendmail's.
pub fn main(invocation: &Invocation, args: &SendmailArgs) -> ExitCode {
    match run(invocation, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(format_args!("fatal: {e}"));
            ExitCode::from(e.exit_status())
        }
    }
}

fn run(invocation: &Invocation, args: &SendmailArgs) -> Result<(), SendmailError> {
    let config = invocation
        .load()
        .map_err(|e| SendmailError::Config(e.to_string()))?;
    check_user(&config).map_err(|e| SendmailError::NotPermitted(e.to_string()))?;
    let milters = LocalMilters::load(&config).map_err(SendmailError::Config)?;
    let limit = config.size("message_size_limit");
    let mut input = Vec::new();
    let read_limit = if limit == 0 { u64::MAX } else { limit + 1 };
    io::stdin()
        .lock()
        .take(read_limit)
        .read_to_end(&mut input)
        .map_err(SendmailError::Input)?;
    if limit != 0 && input.len() as u64 > limit {
        return Err(SendmailError::TooBig(limit));
    }
    let ignore_dots = args.ignore_dots || args.options.iter().any(|o| o == "i");
    let myorigin = config.get("myorigin");
    let sender = match &args.sender {
        Some(s) => qualify(s.trim_start_matches('<').trim_end_matches('>'), &myorigin),
        None => qualify(&login_name(), &myorigin),
    };
    let mut message = Message::parse(&input, ignore_dots);
    let mut recipients: Vec<String> = args
        .recipients
        .iter()
        .flat_map(|r| split_addresses(r))
        .collect();
    if args.extract {
        recipients.extend(message.extract_recipients());
    }
    let mut recipients: Vec<String> = recipients
        .into_iter()
        .filter(|r| !r.is_empty())
        .map(|r| qualify(&r, &myorigin))
        .collect();
    recipients.dedup();
    if recipients.is_empty() {
        return Err(SendmailError::NoRecipients);
    }
    // These go into the queue file, log lines and SMTP commands as they are.
    if let Some(bad) = std::iter::once(&sender)
        .chain(&recipients)
        .find(|a| a.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        return Err(SendmailError::BadAddress(bad.clone()));
    }
    message.add_from(&sender, args.full_name.as_deref());
    let mut content = message.into_content();
    let mut envelope = Envelope {
        sender,
        recipients: recipients
            .into_iter()
            .map(|r| Recipient::new(r, None))
            .collect(),
        client: local_client(),
        body_type: content
            .iter()
            .any(|b| !b.is_ascii())
            .then_some(BodyType::EightBitMime),
        smtputf8: false,
        dsn_ret: None,
        dsn_envid: None,
        arrival: now_micros(),
    };
    let socket = cleanup_socket(Path::new(&config.get("queue_directory")));
    // With milters: the log goes to maillog_file (opened now), and root
    // becomes mail_owner before any milter is spoken to (while the
    // process has one thread).
    let log = match &milters {
        Some(_) => {
            let log = LogToMaillog::start(&config);
            drop_to_mail_owner(&config).map_err(SendmailError::Config)?;
            Some(log)
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SendmailError::Submit(SubmitError::Content(e)))?;
    let mut actions = Actions {
        // As Postfix's pickup: local mail goes through the content
        // filter too.
        filter: Some(config.get("content_filter")).filter(|f| !f.trim().is_empty()),
        ..Actions::default()
    };
    let Some(milters) = milters else {
        return runtime
            .block_on(submit_with(
                &socket,
                envelope,
                actions,
                &content,
                SUBMIT_TIMEOUT,
            ))
            .map(|_| ())
            .map_err(SendmailError::Submit);
    };
    // non_smtpd_milters: the transaction is opened first, so the milters
    // get its queue ID (the i macro), as Postfix's cleanup gives it.
    let result = runtime.block_on(async {
        let session = CleanupSession::begin(&socket, SUBMIT_TIMEOUT)
            .await
            .map_err(SendmailError::Submit)?;
        let queue_id = session.queue_id().to_string();
        milters
            .run(&queue_id, &mut envelope, &mut actions, &mut content)
            .await
            .map_err(|Refused(reply)| SendmailError::Milter(reply))?;
        let sealed =
            sealed_content(&content).map_err(|e| SendmailError::Submit(SubmitError::Content(e)))?;
        match session
            .commit_with(envelope, actions, &sealed)
            .await
            .map_err(SendmailError::Submit)?
        {
            Committed::Queued(_) => Ok(()),
            Committed::Rejected(r) => Err(SendmailError::Submit(SubmitError::Rejected(r))),
            Committed::Deferred(r) => Err(SendmailError::Submit(SubmitError::Deferred(r))),
        }
    });
    // Standard error back before the caller is told anything.
    drop(log);
    result
}

fn cleanup_socket(spool: &Path) -> PathBuf {
    let private = spool.join(PRIVATE).join("cleanup");
    if private.exists() {
        private
    } else {
        spool.join(PUBLIC).join("cleanup")
    }
}

fn login_name() -> String {
    User::from_uid(getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| getuid().to_string())
}

/// A bare local part gets `@myorigin`, as Postfix's append_at_myorigin.
/// The null sender stays empty.
fn qualify(address: &str, myorigin: &str) -> String {
    let address = address.trim();
    if address.is_empty() || address.contains('@') {
        address.to_string()
    } else {
        format!("{address}@{myorigin}")
    }
}

/// The addresses in a header value or argument: `a@x, "B, C" <b@y>, c@z
/// (comment)` gives a@x, b@y, c@z. Group syntax `name: a@x;` is accepted.
fn split_addresses(value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut angle, mut comment) = (false, false, 0usize);
    for c in value.chars() {
        match c {
            '"' if comment == 0 => quoted = !quoted,
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => comment -= 1,
            '<' if !quoted && comment == 0 => angle = true,
            '>' if !quoted && comment == 0 => angle = false,
            ',' | ';' if !quoted && !angle && comment == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts.iter().filter_map(|p| address_of(p)).collect()
}

/// The address of one mailbox: inside the angle brackets, or the text
/// without comments; a group's display name is dropped.
fn address_of(mailbox: &str) -> Option<String> {
    let mailbox = mailbox.trim();
    let address = match (mailbox.rfind('<'), mailbox.rfind('>')) {
        (Some(open), Some(close)) if open < close => mailbox[open + 1..close].to_string(),
        _ => {
            let mut text = String::new();
            let mut depth = 0usize;
            for c in mailbox.chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    _ if depth == 0 => text.push(c),
                    _ => {}
                }
            }
            let text = text.trim().to_string();
            // `Group: a@x` keeps what follows the colon.
            match text.split_once(':') {
                Some((_, rest)) if !text.starts_with('"') => rest.trim().to_string(),
                _ => text,
            }
        }
    };
    let address = address.trim();
    (!address.is_empty() && !address.contains(char::is_whitespace)).then(|| address.to_string())
}

/// The message read from standard input, split into header fields (with
/// their continuation lines) and body lines, without line ends.
struct Message {
    headers: Vec<Vec<String>>,
    body: Vec<String>,
}

impl Message {
    fn parse(input: &[u8], ignore_dots: bool) -> Message {
        let text = String::from_utf8_lossy(input);
        let mut lines: Vec<String> = Vec::new();
        for line in text.split_inclusive('\n') {
            let line = line.trim_end_matches('\n').trim_end_matches('\r');
            if !ignore_dots && line == "." {
                break;
            }
            lines.push(line.to_string());
        }
        // split_inclusive leaves no empty last piece; an input without a
        // final newline still has its last line.
        let mut headers: Vec<Vec<String>> = Vec::new();
        let mut rest = lines.into_iter().peekable();
        while let Some(line) = rest.peek() {
            if line.is_empty() {
                rest.next();
                break;
            }
            if line.starts_with([' ', '\t']) {
                match headers.last_mut() {
                    Some(field) => field.push(line.clone()),
                    None => break,
                }
            } else if line
                .split_once(':')
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
            {
                headers.push(vec![line.clone()]);
            } else {
                // Not a header: the body starts here (no empty line).
                break;
            }
            rest.next();
        }
        Message {
            headers,
            body: rest.collect(),
        }
    }

    fn name_is(field: &[String], name: &str) -> bool {
        field
            .first()
            .and_then(|l| l.split_once(':'))
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
    }

    fn value(field: &[String]) -> String {
        let joined = field.join(" ");
        joined
            .split_once(':')
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    }

    /// The recipients in To:, Cc: and Bcc:, and Bcc: removed (sendmail -t).
    fn extract_recipients(&mut self) -> Vec<String> {
        let mut found = Vec::new();
        for field in &self.headers {
            if ["to", "cc", "bcc"]
                .iter()
                .any(|n| Message::name_is(field, n))
            {
                found.extend(split_addresses(&Message::value(field)));
            }
        }
        self.headers.retain(|f| !Message::name_is(f, "bcc"));
        found
    }

    /// A From: header when the message has none, as Postfix's cleanup adds
    /// for local submissions.
    fn add_from(&mut self, sender: &str, full_name: Option<&str>) {
        if self.headers.iter().any(|f| Message::name_is(f, "from")) {
            return;
        }
        let from = match (sender, full_name) {
            ("", _) => "From: MAILER-DAEMON".to_string(),
            (s, Some(name)) if !name.trim().is_empty() => {
                let name: String = name
                    .chars()
                    .filter(|c| !c.is_control() && *c != '"')
                    .collect();
                format!("From: \"{name}\" <{s}>")
            }
            (s, _) => format!("From: {s}"),
        };
        self.headers.insert(0, vec![from]);
    }

    /// CRLF line ends, not dot-stuffed: what cleanup stores.
    fn into_content(self) -> Vec<u8> {
        let mut out = String::new();
        for line in self.headers.iter().flatten() {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        for line in &self.body {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            split_addresses("a@x, \"B, C\" <b@y>, c@z (the c), Group: d@w, e@v;"),
            vec!["a@x", "b@y", "c@z", "d@w", "e@v"]
        );
        assert_eq!(split_addresses("  "), Vec::<String>::new());
        assert_eq!(qualify("root", "gw.example.com"), "root@gw.example.com");
        assert_eq!(qualify("a@b", "gw.example.com"), "a@b");
        assert_eq!(qualify("", "gw.example.com"), "");
    }

    #[test]
    fn message_handling() {
        let input = b"To: a@x\nBcc: secret@y\nSubject: s\n  folded\n\nline\n.\nafter\n";
        let mut m = Message::parse(input, false);
        assert_eq!(m.extract_recipients(), vec!["a@x", "secret@y"]);
        m.add_from("root@gw", Some("Cron \"Daemon\""));
        let text = String::from_utf8(m.into_content()).unwrap();
        assert_eq!(
            text,
            "From: \"Cron Daemon\" <root@gw>\r\nTo: a@x\r\nSubject: s\r\n  folded\r\n\r\nline\r\n"
        );

        let m = Message::parse(b"From: me\r\n\r\n.\r\nafter", true);
        let text = String::from_utf8(m.into_content()).unwrap();
        assert_eq!(text, "From: me\r\n\r\n.\r\nafter\r\n");

        // No header at all: everything is body, and a From: is added.
        let mut m = Message::parse(b"just text\n", false);
        m.add_from("", None);
        let text = String::from_utf8(m.into_content()).unwrap();
        assert_eq!(text, "From: MAILER-DAEMON\r\n\r\njust text\r\n");
    }

    #[test]
    fn arguments() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: SendmailArgs,
        }
        let cli = Cli::try_parse_from(["sendmail", "-f", "a@b", "-t", "-oi", "-oem", "x@y", "z"])
            .unwrap();
        let a = cli.args;
        assert_eq!(a.sender.as_deref(), Some("a@b"));
        assert!(a.extract && !a.ignore_dots);
        assert_eq!(a.options, vec!["i", "em"]);
        assert_eq!(a.recipients, vec!["x@y", "z"]);
        let cli = Cli::try_parse_from(["sendmail", "-i", "-r", "<>", "x@y"]).unwrap();
        assert!(cli.args.ignore_dots);
        assert_eq!(cli.args.sender.as_deref(), Some("<>"));
    }
}
