//! `mailgate queue`: see and steer the queue, like postqueue, postsuper and
//! postcat.
//!
//! `list` and `show` read the queue files directly and step over files that
//! vanish or move while they look. Every change goes through qmgr while the
//! mail system runs, because qmgr alone knows which messages have
//! deliveries in flight; when no master runs, the changes are made on the
//! files directly, holding the master's pid lock so that no master can start
//! meanwhile.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use mailgate_config::MainConfig;
use mailgate_ipc::envelope::RecipientState;
use mailgate_ipc::protocol::qmgr::{ActReply, Action, Request, Target};
use mailgate_ipc::queue_file::{QueueFileError, QueueRecord, copy_content, read_record};
use mailgate_ipc::spool::{
    ACTIVE, DEFERRED, HOLD, INCOMING, MESSAGE_QUEUES, PRIVATE, PUBLIC, act_on_file, is_queue_id,
    queue_path, ready_queue_ids,
};
use mailgate_ipc::{Channel, IpcError};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Uid, User, geteuid};

use crate::error::{Error, say};
use crate::locate::{self, Invocation};

/// The queues `list` shows, in postqueue's order.
const LISTED: [&str; 4] = [INCOMING, ACTIVE, DEFERRED, HOLD];

/// How long a queue tool waits for qmgr's answer.
const QMGR_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Subcommand)]
pub enum QueueCmd {
    /// List the queue like `postqueue -p`: ID (`*` active, `!` on hold),
    /// size, arrival time, sender, then each pending recipient with the last
    /// reason it was deferred.
    List {
        /// One JSON object per message and line, like `postqueue -j`.
        #[arg(long)]
        json: bool,
    },
    /// Show one message like `postcat -q ID`: envelope, headers, body.
    Show {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Delete messages (from incoming, active, deferred and hold).
    Delete(Targets),
    /// Put messages on hold: nothing is delivered until they are released.
    Hold(Targets),
    /// Release messages from hold; they are retried at the next queue run.
    Release(Targets),
    /// Requeue messages for delivery at once (held ones too).
    Requeue(Targets),
    /// Retry all deferred mail now (`postqueue -f`).
    Flush,
}

#[derive(Debug, Args)]
pub struct Targets {
    /// Queue IDs, or ALL.
    #[arg(value_name = "ID|ALL", required = true)]
    ids: Vec<String>,
}

impl Targets {
    fn target(&self) -> Result<Target, QueueError> {
        if self.ids.iter().any(|id| id == "ALL") {
            return Ok(Target::All);
        }
        match self.ids.iter().find(|id| !is_queue_id(id)) {
            Some(bad) => Err(QueueError::BadId(bad.clone())),
            None => Ok(Target::Ids(self.ids.clone())),
        }
    }
}

#[derive(Debug)]
pub enum QueueError {
    /// Run by someone who is neither root nor mail_owner.
    NotPermitted {
        mail_owner: String,
    },
    BadId(String),
    NoSuchMessage(String),
    Unreadable {
        path: PathBuf,
        source: QueueFileError,
    },
    ReadDir {
        path: PathBuf,
        source: io::Error,
    },
    /// The master runs, but qmgr did not take the request.
    Qmgr(String),
    FlushDown,
    Lock {
        path: PathBuf,
        source: Errno,
    },
    /// Named messages that were not found (the others were acted on).
    Missing(Vec<String>),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::NotPermitted { mail_owner } => write!(
                f,
                "the queue may be inspected and changed only by root and by mail_owner ({mail_owner})"
            ),
            QueueError::BadId(id) => write!(f, "invalid queue ID: \"{id}\""),
            QueueError::NoSuchMessage(id) => write!(f, "{id}: no such message in the queue"),
            QueueError::Unreadable { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            QueueError::ReadDir { path, source } => {
                write!(
                    f,
                    "cannot read the queue directory {}: {source}",
                    path.display()
                )
            }
            QueueError::Qmgr(why) => write!(
                f,
                "the mail system is running, but the queue manager did not answer ({why}); \
                 nothing was changed, try again"
            ),
            QueueError::FlushDown => {
                write!(
                    f,
                    "cannot flush the mail queue: the mail system is not running"
                )
            }
            QueueError::Lock { path, source } => {
                write!(f, "cannot lock {}: {source}", path.display())
            }
            QueueError::Missing(ids) => {
                write!(
                    f,
                    "not found in the queues this action applies to: {}",
                    ids.join(" ")
                )
            }
        }
    }
}

impl std::error::Error for QueueError {}

/// Only root and mail_owner may see or change the queue: the files hold
/// other people's mail.
pub fn check_user(config: &MainConfig) -> Result<(), QueueError> {
    let mail_owner = config.get("mail_owner");
    let me = geteuid();
    let owner_uid = User::from_name(&mail_owner).ok().flatten().map(|u| u.uid);
    if permitted(me, owner_uid) {
        Ok(())
    } else {
        Err(QueueError::NotPermitted { mail_owner })
    }
}

fn permitted(me: Uid, mail_owner: Option<Uid>) -> bool {
    me.is_root() || Some(me) == mail_owner
}

pub fn run(invocation: &Invocation, command: &QueueCmd) -> Result<(), Error> {
    let config = invocation.load()?;
    check_user(&config).map_err(Error::Queue)?;
    let spool = PathBuf::from(config.get("queue_directory"));
    let result = match command {
        QueueCmd::List { json } => list(&spool, *json),
        QueueCmd::Show { id } => show(&spool, id),
        QueueCmd::Delete(t) => act(&config, &spool, Action::Delete, t),
        QueueCmd::Hold(t) => act(&config, &spool, Action::Hold, t),
        QueueCmd::Release(t) => act(&config, &spool, Action::Release, t),
        QueueCmd::Requeue(t) => act(&config, &spool, Action::Requeue, t),
        QueueCmd::Flush => flush(&config, &spool),
    };
    match result {
        Err(QueueError::Unreadable {
            source: QueueFileError::Io(e),
            ..
        }) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(Error::Queue),
    }
}

/// One message as `list` shows it.
#[derive(Debug)]
struct Entry {
    queue: &'static str,
    record: QueueRecord,
}

/// Reads every message in the listed queues, skipping files that vanish
/// (delivered or moved meanwhile) and reporting unreadable ones.
fn read_queues(spool: &Path) -> Result<Vec<Entry>, QueueError> {
    let mut entries = Vec::new();
    for queue in LISTED {
        let dir = spool.join(queue);
        let ids = match ready_queue_ids(&dir) {
            Ok(ids) => ids,
            Err(source) => return Err(QueueError::ReadDir { path: dir, source }),
        };
        for id in ids {
            let path = dir.join(&id);
            match File::open(&path)
                .map_err(QueueFileError::Io)
                .and_then(|f| read_record(&f))
            {
                Ok((record, _)) => entries.push(Entry { queue, record }),
                Err(QueueFileError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => say(format_args!("warning: {}: {e}", path.display())),
            }
        }
    }
    Ok(entries)
}

fn list(spool: &Path, json: bool) -> Result<(), QueueError> {
    let entries = read_queues(spool)?;
    let text = if json {
        format_json(&entries)
    } else {
        format_list(&entries)
    };
    write_stdout(text.as_bytes())
}

fn write_stdout(bytes: &[u8]) -> Result<(), QueueError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| QueueError::Unreadable {
            path: PathBuf::from("standard output"),
            source: QueueFileError::Io(e),
        })
}

/// The `postqueue -p` listing.
fn format_list(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".to_string();
    }
    let mut out =
        String::from("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    let mut bytes = 0u64;
    for entry in entries {
        let record = &entry.record;
        let flag = match entry.queue {
            ACTIVE => "*",
            HOLD => "!",
            _ => " ",
        };
        let sender = match record.envelope.sender.as_str() {
            "" => "MAILER-DAEMON",
            s => s,
        };
        bytes += record.content_length;
        out.push_str(&format!(
            "{:<11} {:>7} {:<20.20} {}\n",
            format!("{}{flag}", record.queue_id),
            record.content_length,
            ctime((record.envelope.arrival / 1_000_000) as i64),
            printable(sender)
        ));
        let mut last_reason: Option<&str> = None;
        for recipient in &record.envelope.recipients {
            if recipient.state != RecipientState::Pending {
                continue;
            }
            let reason = recipient.last_reason.as_deref();
            if reason.is_some() && reason != last_reason {
                out.push_str(&format!("({})\n", printable(reason.unwrap_or_default())));
            }
            last_reason = reason;
            out.push_str(&format!("{:41}{}\n", "", printable(&recipient.address)));
        }
        out.push('\n');
    }
    let count = entries.len();
    out.push_str(&format!(
        "-- {} Kbytes in {count} Request{}.\n",
        bytes.div_ceil(1024),
        if count == 1 { "" } else { "s" }
    ));
    out
}

/// `postqueue -j`: one JSON object per message and line.
fn format_json(entries: &[Entry]) -> String {
    let mut out = String::new();
    for entry in entries {
        let record = &entry.record;
        let recipients: Vec<serde_json::Value> = record
            .envelope
            .recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
            .map(|r| {
                let mut o = serde_json::json!({ "address": r.address });
                if let Some(reason) = &r.last_reason {
                    o["delay_reason"] = reason.clone().into();
                }
                o
            })
            .collect();
        let object = serde_json::json!({
            "queue_name": entry.queue,
            "queue_id": record.queue_id,
            "arrival_time": record.envelope.arrival / 1_000_000,
            "message_size": record.content_length,
            "sender": record.envelope.sender,
            "recipients": recipients,
        });
        out.push_str(&object.to_string());
        out.push('\n');
    }
    out
}

/// Addresses and reasons come from outside: no control characters on the
/// administrator's terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `Tue Jan 28 06:58:20` in local time, as ctime(3) without the year.
fn ctime(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    match mailgate_log::local_time(unix) {
        Some(tm) => format!(
            "{} {} {:>2} {:02}:{:02}:{:02}",
            DAYS[tm.tm_wday.clamp(0, 6) as usize],
            mailgate_log::MONTHS[tm.tm_mon.clamp(0, 11) as usize],
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        ),
        None => "Thu Jan  1 00:00:00".to_string(),
    }
}

/// Finds a message in any queue; it may move between looking and opening,
/// so the search is tried a few times.
fn open_message(spool: &Path, id: &str) -> Result<(&'static str, File), QueueError> {
    for _ in 0..3 {
        for queue in MESSAGE_QUEUES {
            match File::open(spool.join(queue_path(queue, id))) {
                Ok(file) => return Ok((queue, file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(QueueError::Unreadable {
                        path: spool.join(queue_path(queue, id)),
                        source: QueueFileError::Io(e),
                    });
                }
            }
        }
    }
    Err(QueueError::NoSuchMessage(id.to_string()))
}

/// `postcat -q ID`: envelope records, then the content as stored.
fn show(spool: &Path, id: &str) -> Result<(), QueueError> {
    if !is_queue_id(id) {
        return Err(QueueError::BadId(id.to_string()));
    }
    let (queue, file) = open_message(spool, id)?;
    let path = spool.join(queue_path(queue, id));
    let unreadable = |source| QueueError::Unreadable {
        path: path.clone(),
        source,
    };
    let (record, offset) = read_record(&file).map_err(unreadable)?;
    let mut content = Vec::new();
    copy_content(&file, offset, record.content_length, &mut content).map_err(unreadable)?;
    let mut out = format_envelope(queue, &record).into_bytes();
    // The terminal gets LF line ends, as postcat shows them.
    out.extend(content.iter().copied().filter(|&b| b != b'\r'));
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("*** MESSAGE FILE END {queue}/{id} ***\n").as_bytes());
    write_stdout(&out)
}

fn format_envelope(queue: &str, record: &QueueRecord) -> String {
    let id = &record.queue_id;
    let e = &record.envelope;
    let mut out = format!("*** ENVELOPE RECORDS {queue}/{id} ***\n");
    let mut field = |name: &str, value: &str| {
        out.push_str(&format!("{name}: {}\n", printable(value)));
    };
    field("message_size", &record.content_length.to_string());
    field(
        "message_arrival_time",
        &ctime((e.arrival / 1_000_000) as i64),
    );
    field("sender", &e.sender);
    field("client", &e.client.label());
    field("helo_name", &e.client.helo);
    field("protocol_name", &e.client.protocol);
    if let Some(id) = &record.message_id {
        field("message_id", id);
    }
    field("delivery_attempts", &record.state.attempts.to_string());
    if let Some(next) = record.state.next_attempt {
        field("next_attempt_time", &ctime((next / 1_000_000) as i64));
    }
    for r in &e.recipients {
        if let Some(original) = &r.original {
            field("original_recipient", original);
        }
        match r.state {
            RecipientState::Pending => field("recipient", &r.address),
            RecipientState::Delivered => field("done_recipient", &r.address),
            RecipientState::Bounced => field("bounced_recipient", &r.address),
        }
        if let Some(reason) = &r.last_reason {
            field("reason", reason);
        }
    }
    out.push_str(&format!("*** MESSAGE CONTENTS {queue}/{id} ***\n"));
    out
}

/// Where the master listens for qmgr's clients.
fn qmgr_socket(spool: &Path) -> PathBuf {
    let private = spool.join(PRIVATE).join("qmgr");
    if private.exists() {
        private
    } else {
        spool.join(PUBLIC).join("qmgr")
    }
}

/// Whether a master runs with this spool, by its pid file lock; when none
/// runs, the lock is kept (and with it any master from starting) for as
/// long as the returned guard lives.
enum Master {
    Running,
    Stopped(Option<Flock<File>>),
}

fn master(config: &MainConfig) -> Result<Master, QueueError> {
    let path = locate::pid_file(config);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Master::Stopped(None)),
        Err(e) => {
            return Err(QueueError::Lock {
                path,
                source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            });
        }
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Master::Stopped(Some(lock))),
        Err((_, Errno::EWOULDBLOCK)) => Ok(Master::Running),
        Err((_, source)) => Err(QueueError::Lock { path, source }),
    }
}

fn qmgr_request(
    spool: &Path,
    request: &Request,
    answer: bool,
) -> Result<Option<ActReply>, QueueError> {
    let socket = qmgr_socket(spool);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| QueueError::Qmgr(e.to_string()))?;
    runtime.block_on(async {
        let exchange = async {
            let mut channel = Channel::connect(&socket).await?;
            if answer {
                let (reply, _) = {
                    channel.send(request, &[]).await?;
                    channel.recv::<ActReply>().await?
                };
                Ok::<_, IpcError>(Some(reply))
            } else {
                channel.send(request, &[]).await?;
                Ok(None)
            }
        };
        match tokio::time::timeout(QMGR_TIMEOUT, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(QueueError::Qmgr(format!("{}: {e}", socket.display()))),
            Err(_) => Err(QueueError::Qmgr("no answer within 30 seconds".into())),
        }
    })
}

fn act(
    config: &MainConfig,
    spool: &Path,
    action: Action,
    targets: &Targets,
) -> Result<(), QueueError> {
    let target = targets.target()?;
    let reply = match master(config)? {
        Master::Running => {
            qmgr_request(spool, &Request::Act { action, target }, true)?.unwrap_or_default()
        }
        Master::Stopped(_lock) => act_offline(spool, action, &target)?,
    };
    say(summary(action, &reply));
    if reply.missing.is_empty() {
        Ok(())
    } else {
        Err(QueueError::Missing(reply.missing))
    }
}

/// The action on the files, with no master (and so no qmgr) running.
fn act_offline(spool: &Path, action: Action, target: &Target) -> Result<ActReply, QueueError> {
    let queues = action.queues();
    let mut found: Vec<(String, &str)> = Vec::new();
    let mut reply = ActReply::default();
    match target {
        Target::All => {
            for &queue in queues {
                let dir = spool.join(queue);
                let ids = ready_queue_ids(&dir)
                    .map_err(|source| QueueError::ReadDir { path: dir, source })?;
                found.extend(ids.into_iter().map(|id| (id, queue)));
            }
        }
        Target::Ids(ids) => {
            for id in ids {
                match queues
                    .iter()
                    .find(|q| spool.join(queue_path(q, id)).exists())
                {
                    Some(queue) => found.push((id.clone(), queue)),
                    None => reply.missing.push(id.clone()),
                }
            }
        }
    }
    for (id, queue) in found {
        match act_on_file(spool, &id, queue, action) {
            Ok(()) => reply.done.push(id),
            Err(e) => {
                say(format_args!("warning: {id}: {e}"));
                reply.missing.push(id);
            }
        }
    }
    Ok(reply)
}

/// postsuper's summary line: `Deleted: 2 messages`.
fn summary(action: Action, reply: &ActReply) -> String {
    let words = match action {
        Action::Delete => "Deleted",
        Action::Hold => "Placed on hold",
        Action::Release => "Released from hold",
        Action::Requeue => "Requeued",
    };
    let n = reply.done.len() + reply.deferred_until_idle.len();
    let mut line = format!("{words}: {n} message{}", if n == 1 { "" } else { "s" });
    if !reply.deferred_until_idle.is_empty() {
        line.push_str(&format!(
            " ({} as soon as the deliveries in flight report back)",
            reply.deferred_until_idle.len()
        ));
    }
    line
}

fn flush(config: &MainConfig, spool: &Path) -> Result<(), QueueError> {
    match master(config)? {
        Master::Running => qmgr_request(spool, &Request::Flush, false).map(|_| ()),
        Master::Stopped(_) => Err(QueueError::FlushDown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_ipc::envelope::{DeliveryState, Envelope, Recipient};
    use mailgate_ipc::submit::local_client;

    fn entry(queue: &'static str, id: &str, sender: &str, recipients: Vec<Recipient>) -> Entry {
        Entry {
            queue,
            record: QueueRecord {
                queue_id: id.into(),
                envelope: Envelope {
                    sender: sender.into(),
                    recipients,
                    client: local_client(),
                    body_type: None,
                    smtputf8: false,
                    dsn_ret: None,
                    dsn_envid: None,
                    arrival: 1_700_000_000_000_000,
                },
                state: DeliveryState::default(),
                message_id: None,
                content_length: 1500,
                filter: None,
            },
        }
    }

    fn deferred(address: &str, reason: &str) -> Recipient {
        let mut r = Recipient::new(address.into(), None);
        r.last_reason = Some(reason.into());
        r
    }

    #[test]
    fn listing_looks_like_postqueue() {
        assert_eq!(format_list(&[]), "Mail queue is empty\n");
        let mut done = Recipient::new("done@example.com".into(), None);
        done.state = RecipientState::Delivered;
        let entries = [
            entry(
                DEFERRED,
                "18F0A1B2C3D4E5",
                "alice@example.org",
                vec![
                    deferred(
                        "bob@example.com",
                        "connect to x[192.0.2.1]:25: Connection refused",
                    ),
                    deferred(
                        "carol@example.com",
                        "connect to x[192.0.2.1]:25: Connection refused",
                    ),
                    done,
                    deferred("dave@example.net", "host y said: 451 try\nlater"),
                ],
            ),
            entry(
                ACTIVE,
                "18F0A1B2C3D4E6",
                "",
                vec![Recipient::new("x@example.com".into(), None)],
            ),
            entry(HOLD, "18F0A1B2C3D4E7", "s@example.org", vec![]),
        ];
        let text = format_list(&entries);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
        );
        let date = ctime(1_700_000_000);
        assert_eq!(
            lines[1],
            format!("18F0A1B2C3D4E5     1500 {date:<20} alice@example.org")
        );
        assert_eq!(lines[2], "(connect to x[192.0.2.1]:25: Connection refused)");
        assert_eq!(lines[3], format!("{:41}bob@example.com", ""));
        assert_eq!(lines[4], format!("{:41}carol@example.com", ""));
        assert_eq!(lines[5], "(host y said: 451 try?later)");
        assert_eq!(lines[6], format!("{:41}dave@example.net", ""));
        assert_eq!(lines[7], "");
        assert!(lines[8].starts_with("18F0A1B2C3D4E6*    1500 "));
        assert!(lines[8].ends_with("  MAILER-DAEMON"));
        assert!(lines[11].starts_with("18F0A1B2C3D4E7!    1500 "));
        assert_eq!(lines.last(), Some(&"-- 5 Kbytes in 3 Requests."));
        assert!(!text.contains("done@example.com"));

        let one = format_list(&entries[2..]);
        assert!(one.ends_with("\n\n-- 2 Kbytes in 1 Request.\n"), "{one}");
    }

    #[test]
    fn json_lines() {
        let entries = [entry(
            DEFERRED,
            "18F0A1B2C3D4E5",
            "a@example.org",
            vec![deferred("b@example.com", "why")],
        )];
        let text = format_json(&entries);
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(value["queue_name"], "deferred");
        assert_eq!(value["queue_id"], "18F0A1B2C3D4E5");
        assert_eq!(value["arrival_time"], 1_700_000_000);
        assert_eq!(value["message_size"], 1500);
        assert_eq!(value["recipients"][0]["address"], "b@example.com");
        assert_eq!(value["recipients"][0]["delay_reason"], "why");
    }

    #[test]
    fn targets_and_users() {
        let t = |ids: &[&str]| Targets {
            ids: ids.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(t(&["ALL"]).target().unwrap(), Target::All);
        assert_eq!(
            t(&["ABC", "DEF"]).target().unwrap(),
            Target::Ids(vec!["ABC".into(), "DEF".into()])
        );
        assert!(matches!(t(&["../etc"]).target(), Err(QueueError::BadId(_))));
        assert!(permitted(Uid::from_raw(0), None));
        assert!(permitted(Uid::from_raw(105), Some(Uid::from_raw(105))));
        assert!(!permitted(Uid::from_raw(1000), Some(Uid::from_raw(105))));
        assert!(!permitted(Uid::from_raw(1000), None));
    }

    #[test]
    fn offline_actions_move_files() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path();
        for queue in MESSAGE_QUEUES {
            std::fs::create_dir(spool.join(queue)).unwrap();
        }
        std::fs::write(spool.join("deferred/AAA"), b"x").unwrap();
        std::fs::write(spool.join("active/BBB"), b"x").unwrap();
        let ids = |v: &[&str]| Target::Ids(v.iter().map(|s| s.to_string()).collect());

        let r = act_offline(spool, Action::Hold, &Target::All).unwrap();
        assert_eq!(r.done.len(), 2);
        assert!(spool.join("hold/AAA").exists() && spool.join("hold/BBB").exists());

        let r = act_offline(spool, Action::Release, &ids(&["AAA", "ZZZ"])).unwrap();
        assert_eq!(
            (r.done, r.missing),
            (vec!["AAA".into()], vec!["ZZZ".into()])
        );
        assert!(spool.join("deferred/AAA").exists());

        act_offline(spool, Action::Requeue, &ids(&["BBB"])).unwrap();
        assert!(spool.join("incoming/BBB").exists());

        let r = act_offline(spool, Action::Delete, &Target::All).unwrap();
        assert_eq!(r.done.len(), 2);
        assert!(!spool.join("incoming/BBB").exists() && !spool.join("deferred/AAA").exists());
    }
}
