//! `mailgate quarantine`: the messages the content filter kept back
//! (virus_action, banned_action or spam_kill_action = quarantine). They are
//! queue files in the spool's quarantine/, which qmgr never looks at.
//! `release` moves one to incoming/ and wakes qmgr, so the original goes to
//! its original recipients.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use mailgate_ipc::Channel;
use mailgate_ipc::protocol::qmgr::Request;
use mailgate_ipc::queue_file::{QueueFileError, QueueRecord, read_content, read_record};
use mailgate_ipc::spool::{
    INCOMING, PRIVATE, PUBLIC, QUARANTINE, is_queue_id, ready_queue_ids, sync_dir,
};

use crate::error::{Error, say};
use crate::locate::Invocation;

#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    /// List quarantined messages: ID, size, arrival, sender, recipients and
    /// why each was quarantined.
    List,
    /// Print one quarantined message: envelope, then the message.
    Show {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Deliver a quarantined message to its original recipients.
    Release {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Delete a quarantined message.
    Delete {
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug)]
pub enum QuarantineError {
    BadId(String),
    NotFound(String),
    Read {
        path: PathBuf,
        source: QueueFileError,
    },
    Move {
        id: String,
        source: io::Error,
    },
    Delete {
        id: String,
        source: io::Error,
    },
    Output(io::Error),
}

impl fmt::Display for QuarantineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuarantineError::BadId(id) => write!(f, "{id}: not a queue ID"),
            QuarantineError::NotFound(id) => write!(f, "{id}: no such message in quarantine"),
            QuarantineError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            QuarantineError::Move { id, source } => {
                write!(f, "{id}: cannot move it to {INCOMING}: {source}")
            }
            QuarantineError::Delete { id, source } => write!(f, "{id}: cannot delete it: {source}"),
            QuarantineError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for QuarantineError {}

pub fn run(invocation: &Invocation, command: &QuarantineCmd) -> Result<(), Error> {
    let config = invocation.load()?;
    let spool = PathBuf::from(config.get("queue_directory"));
    let result = match command {
        QuarantineCmd::List => list(&spool),
        QuarantineCmd::Show { id } => show(&spool, id),
        QuarantineCmd::Release { id } => release(&spool, id),
        QuarantineCmd::Delete { id } => delete(&spool, id),
    };
    result.map_err(Error::Quarantine)
}

struct Entry {
    record: QueueRecord,
    reason: String,
}

fn open(spool: &Path, id: &str) -> Result<(PathBuf, Entry, File, u64), QuarantineError> {
    if !is_queue_id(id) {
        return Err(QuarantineError::BadId(id.to_string()));
    }
    let path = spool.join(QUARANTINE).join(id);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(QuarantineError::NotFound(id.to_string()));
        }
        Err(e) => {
            return Err(QuarantineError::Read {
                path,
                source: QueueFileError::Io(e),
            });
        }
    };
    let read = |source| QuarantineError::Read {
        path: path.clone(),
        source,
    };
    let (record, offset) = read_record(&file).map_err(read)?;
    // The reason is the X-Quarantine-Reason header cleanup put at the top;
    // the headers before it are a few hundred bytes.
    let head = read_content(&file, offset, record.content_length.min(8192)).map_err(read)?;
    let reason = String::from_utf8_lossy(&head)
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("X-Quarantine-Reason: ").map(str::to_string))
        .unwrap_or_default();
    Ok((path, Entry { record, reason }, file, offset))
}

fn ids(spool: &Path) -> Result<Vec<String>, QuarantineError> {
    let dir = spool.join(QUARANTINE);
    ready_queue_ids(&dir).map_err(|e| QuarantineError::Read {
        path: dir.clone(),
        source: QueueFileError::Io(e),
    })
}

fn format_entry(id: &str, entry: &Entry) -> String {
    let recipients: Vec<&str> = entry
        .record
        .envelope
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    format!(
        "{id} {:>8} {} <{}> -> {}\n    {}\n",
        entry.record.content_length,
        entry.record.envelope.arrival / 1_000_000,
        entry.record.envelope.sender,
        recipients.join(", "),
        if entry.reason.is_empty() {
            "(no reason recorded)"
        } else {
            &entry.reason
        }
    )
}

fn list(spool: &Path) -> Result<(), QuarantineError> {
    let mut out = String::new();
    for id in ids(spool)? {
        match open(spool, &id) {
            Ok((_, entry, _, _)) => out.push_str(&format_entry(&id, &entry)),
            // Released or deleted while we looked.
            Err(QuarantineError::NotFound(_)) => {}
            Err(e) => say(format_args!("warning: {e}")),
        }
    }
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(QuarantineError::Output)
}

fn show(spool: &Path, id: &str) -> Result<(), QuarantineError> {
    let (path, entry, file, offset) = open(spool, id)?;
    let content = read_content(&file, offset, entry.record.content_length)
        .map_err(|source| QuarantineError::Read { path, source })?;
    let mut out = io::stdout().lock();
    out.write_all(format_entry(id, &entry).as_bytes())
        .and_then(|()| out.write_all(b"*** MESSAGE CONTENTS ***\n"))
        .and_then(|()| out.write_all(&content))
        .map_err(QuarantineError::Output)
}

/// Moves the file to incoming/ (never over an existing file), makes the
/// move durable in both directories, then wakes qmgr. If qmgr cannot be
/// reached, its periodic scan of incoming/ picks the message up.
fn release(spool: &Path, id: &str) -> Result<(), QuarantineError> {
    let (from, _, _, _) = open(spool, id)?;
    let to = spool.join(INCOMING).join(id);
    let moved = nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &from,
        nix::fcntl::AT_FDCWD,
        &to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .map_err(io::Error::from)
    .and_then(|()| sync_dir(&spool.join(INCOMING)))
    .and_then(|()| sync_dir(&spool.join(QUARANTINE)));
    moved.map_err(|source| QuarantineError::Move {
        id: id.to_string(),
        source,
    })?;
    if let Err(e) = wake_qmgr(spool) {
        say(format_args!(
            "warning: {id}: released, but qmgr was not woken ({e}); it will find the message at its next queue run"
        ));
    }
    say(format_args!("{id}: released"));
    Ok(())
}

fn delete(spool: &Path, id: &str) -> Result<(), QuarantineError> {
    let (path, _, _, _) = open(spool, id)?;
    std::fs::remove_file(&path)
        .and_then(|()| sync_dir(&spool.join(QUARANTINE)))
        .map_err(|source| QuarantineError::Delete {
            id: id.to_string(),
            source,
        })?;
    say(format_args!("{id}: deleted"));
    Ok(())
}

fn wake_qmgr(spool: &Path) -> Result<(), String> {
    let private = spool.join(PRIVATE).join("qmgr");
    let socket = if private.exists() {
        private
    } else {
        spool.join(PUBLIC).join("qmgr")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let wake = async {
            let mut channel = Channel::connect(&socket).await?;
            channel.send(&Request::Wake, &[]).await
        };
        match tokio::time::timeout(Duration::from_secs(10), wake).await {
            Ok(result) => result.map_err(|e| format!("{}: {e}", socket.display())),
            Err(_) => Err(format!("{}: no answer", socket.display())),
        }
    })
}
