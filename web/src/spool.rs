//! The queue and the quarantine as the web page sees them, with what
//! `mailgate queue` and `mailgate quarantine` do: queue files are read
//! directly (list, show); changes to queued mail go through qmgr (the one
//! owner of queue state); a quarantined message is released by moving it
//! to incoming/ and waking qmgr. Paths are relative: the service runs at
//! the top of the spool (its chroot).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailgate_ipc::Channel;
use mailgate_ipc::envelope::RecipientState;
use mailgate_ipc::protocol::qmgr::{ActReply, Action, Request, Target};
use mailgate_ipc::queue_file::{QueueFileError, QueueRecord, copy_content, read_record};
use mailgate_ipc::spool::{
    ACTIVE, DEFERRED, HOLD, INCOMING, MESSAGE_QUEUES, QUARANTINE, is_queue_id, service_socket,
    sync_dir,
};

/// The queues the queue page lists, in postqueue's order.
const LISTED: [&str; 4] = [INCOMING, ACTIVE, DEFERRED, HOLD];
/// How much of a message the page shows.
pub const SHOW_LIMIT: u64 = 512 * 1024;
/// How many messages a listing shows at most.
pub const LIST_LIMIT: usize = 1000;
const QMGR_TIMEOUT: Duration = Duration::from_secs(30);

/// One queued (or quarantined) message in a listing.
#[derive(Clone, Debug)]
pub struct Entry {
    pub queue: &'static str,
    pub record: QueueRecord,
    /// Why it was quarantined (X-Quarantine-Reason), for quarantine listings.
    pub reason: String,
}

impl Entry {
    /// Recipients still to be delivered, each with its last deferral reason.
    pub fn pending(&self) -> Vec<(&str, Option<&str>)> {
        self.record
            .envelope
            .recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
            .map(|r| (r.address.as_str(), r.last_reason.as_deref()))
            .collect()
    }
}

/// A whole message: envelope and content (up to SHOW_LIMIT).
pub struct Message {
    pub entry: Entry,
    pub content: Vec<u8>,
    pub truncated: bool,
}

fn ids(dir: &Path) -> io::Result<Vec<String>> {
    mailgate_ipc::spool::ready_queue_ids(dir)
}

fn open(queue: &'static str, id: &str) -> Result<Option<(File, QueueRecord, u64)>, String> {
    let path = PathBuf::from(queue).join(id);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    match read_record(&file) {
        Ok((record, offset)) => Ok(Some((file, record, offset))),
        Err(QueueFileError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The X-Quarantine-Reason header cleanup put at the top of the message.
fn quarantine_reason(file: &File, offset: u64, record: &QueueRecord) -> String {
    let mut head = Vec::new();
    if copy_content(file, offset, record.content_length.min(8192), &mut head).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&head)
        .lines()
        .take_while(|l| !l.trim_end().is_empty())
        .find_map(|l| {
            l.strip_prefix("X-Quarantine-Reason: ")
                .map(|r| r.trim_end().to_string())
        })
        .unwrap_or_default()
}

/// Messages in `queues`, skipping files that move away while we look;
/// unreadable ones are reported in the second list.
pub fn list(queues: &[&'static str]) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for &queue in queues {
        let names = match ids(Path::new(queue)) {
            Ok(names) => names,
            Err(e) => {
                problems.push(format!("{queue}: {e}"));
                continue;
            }
        };
        for id in names {
            if entries.len() >= LIST_LIMIT {
                problems.push(format!("only the first {LIST_LIMIT} messages are listed"));
                return (entries, problems);
            }
            match open(queue, &id) {
                Ok(Some((file, record, offset))) => {
                    let reason = if queue == QUARANTINE {
                        quarantine_reason(&file, offset, &record)
                    } else {
                        String::new()
                    };
                    entries.push(Entry {
                        queue,
                        record,
                        reason,
                    });
                }
                Ok(None) => {}
                Err(e) => problems.push(e),
            }
        }
    }
    (entries, problems)
}

pub fn queue() -> (Vec<Entry>, Vec<String>) {
    list(&LISTED)
}

pub fn quarantine() -> (Vec<Entry>, Vec<String>) {
    list(&[QUARANTINE])
}

/// One message, looked for in `queues` (it may move while we look).
pub fn show(id: &str, queues: &[&'static str]) -> Result<Message, String> {
    if !is_queue_id(id) {
        return Err(format!("{id}: not a queue ID"));
    }
    for _ in 0..3 {
        for &queue in queues {
            if let Some((file, record, offset)) = open(queue, id)? {
                let length = record.content_length.min(SHOW_LIMIT);
                let mut content = Vec::new();
                copy_content(&file, offset, length, &mut content)
                    .map_err(|e| format!("{queue}/{id}: {e}"))?;
                let reason = if queue == QUARANTINE {
                    quarantine_reason(&file, offset, &record)
                } else {
                    String::new()
                };
                let truncated = record.content_length > length;
                return Ok(Message {
                    entry: Entry {
                        queue,
                        record,
                        reason,
                    },
                    content,
                    truncated,
                });
            }
        }
    }
    Err(format!("{id}: no such message"))
}

pub fn show_queued(id: &str) -> Result<Message, String> {
    show(id, &MESSAGE_QUEUES[..4])
}

pub fn show_quarantined(id: &str) -> Result<Message, String> {
    show(id, &[QUARANTINE])
}

async fn ask_qmgr(request: &Request, answer: bool) -> Result<Option<ActReply>, String> {
    let socket = service_socket("qmgr");
    let exchange = async {
        let mut channel = Channel::connect(&socket).await?;
        channel.send(request, &[]).await?;
        if answer {
            let (reply, _) = channel.recv::<ActReply>().await?;
            Ok::<_, mailgate_ipc::IpcError>(Some(reply))
        } else {
            Ok(None)
        }
    };
    match tokio::time::timeout(QMGR_TIMEOUT, exchange).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(format!(
            "the queue manager did not take it ({e}); nothing was changed"
        )),
        Err(_) => Err("the queue manager did not answer; nothing was changed".into()),
    }
}

/// Hold, release, delete or requeue one queued message through qmgr.
pub async fn act(action: Action, id: &str) -> Result<String, String> {
    if !is_queue_id(id) {
        return Err(format!("{id}: not a queue ID"));
    }
    let request = Request::Act {
        action,
        target: Target::Ids(vec![id.to_string()]),
    };
    let reply = ask_qmgr(&request, true).await?.unwrap_or_default();
    let verb = match action {
        Action::Delete => "deleted",
        Action::Hold => "placed on hold",
        Action::Release => "released from hold",
        Action::Requeue => "requeued",
    };
    if !reply.done.is_empty() {
        Ok(format!("{id}: {verb}"))
    } else if !reply.deferred_until_idle.is_empty() {
        Ok(format!(
            "{id}: {verb} as soon as its deliveries in flight report back"
        ))
    } else {
        Err(format!(
            "{id}: not found in the queues this action applies to"
        ))
    }
}

/// Moves a quarantined message to incoming/ (never over a file there),
/// durably, and wakes qmgr, which delivers it to its original recipients.
pub async fn release(id: &str) -> Result<String, String> {
    if !is_queue_id(id) {
        return Err(format!("{id}: not a queue ID"));
    }
    let from = Path::new(QUARANTINE).join(id);
    let to = Path::new(INCOMING).join(id);
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &from,
        nix::fcntl::AT_FDCWD,
        &to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .map_err(|e| match e {
        nix::errno::Errno::ENOENT => format!("{id}: no such message in quarantine"),
        e => format!("{id}: cannot move it to {INCOMING}: {e}"),
    })?;
    sync_dir(Path::new(INCOMING))
        .and_then(|()| sync_dir(Path::new(QUARANTINE)))
        .map_err(|e| format!("{id}: moved, but not yet durable: {e}"))?;
    match ask_qmgr(&Request::Wake, false).await {
        Ok(_) => Ok(format!("{id}: released to its recipients")),
        Err(_) => Ok(format!(
            "{id}: released; qmgr will find it at its next queue run"
        )),
    }
}

pub fn delete_quarantined(id: &str) -> Result<String, String> {
    if !is_queue_id(id) {
        return Err(format!("{id}: not a queue ID"));
    }
    let path = Path::new(QUARANTINE).join(id);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            let _ = sync_dir(Path::new(QUARANTINE));
            Ok(format!("{id}: deleted from quarantine"))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(format!("{id}: no such message in quarantine"))
        }
        Err(e) => Err(format!("{id}: cannot delete it: {e}")),
    }
}
