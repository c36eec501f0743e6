//! qmgr's file operations on the spool. Each is a rename or an atomic
//! replace, so a crash at any point leaves every message in some queue.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use mailgate_ipc::queue_file::{
    QueueFileError, QueueRecord, copy_content, read_record, write_record,
};
use mailgate_ipc::spool::{ACTIVE, CORRUPT, is_queue_id, queue_path, replace_file};
use mailgate_log::warning;

/// Queue IDs in a queue directory, oldest first, with their modification
/// time (for deferred/, the time of the next attempt).
pub fn list(queue: &str) -> io::Result<Vec<(String, SystemTime)>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(queue)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_queue_id(&name) {
            continue;
        }
        // A file can vanish between readdir and stat (a queue tool removed
        // it); one still being written (by cleanup) is not mail yet.
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if !mailgate_ipc::spool::is_ready(&metadata) {
            continue;
        }
        if let Ok(modified) = metadata.modified() {
            ids.push((name, modified));
        }
    }
    ids.sort();
    Ok(ids)
}

pub fn move_to(queue_id: &str, from: &str, to: &str) -> io::Result<()> {
    fs::rename(queue_path(from, queue_id), queue_path(to, queue_id))
}

/// A message loaded into active/.
pub struct Loaded {
    pub record: QueueRecord,
    pub content_offset: u64,
}

/// Reads the record of a file in active/. A corrupt file (cut short, not
/// ours) goes to corrupt/ with a log line, and is never delivered.
pub fn load_active(queue_id: &str) -> Option<Loaded> {
    let path = queue_path(ACTIVE, queue_id);
    let result = File::open(&path)
        .map_err(QueueFileError::Io)
        .and_then(|file| read_record(&file));
    match result {
        Ok((record, content_offset)) => Some(Loaded {
            record,
            content_offset,
        }),
        Err(QueueFileError::Corrupt(why)) => {
            warning!(
                "saving corrupt file \"{queue_id}\" from queue \"{ACTIVE}\" to queue \"{CORRUPT}\": {why}"
            );
            if let Err(e) = move_to(queue_id, ACTIVE, CORRUPT) {
                warning!("{queue_id}: cannot move to {CORRUPT}: {e}");
            }
            None
        }
        Err(QueueFileError::Io(e)) => {
            warning!("{queue_id}: cannot read {}: {e}", path.display());
            None
        }
    }
}

/// Writes the updated record (recipient states, attempts) in place of the
/// file in active/, keeping the content, then moves it to `to` with its
/// modification time set to `not_before` (the next attempt).
pub fn save_and_move(loaded: &Loaded, to: &str, not_before: SystemTime) -> io::Result<()> {
    let queue_id = &loaded.record.queue_id;
    let path = queue_path(ACTIVE, queue_id);
    let old = File::open(&path)?;
    replace_file(&path, |file| {
        let mut out = io::BufWriter::new(file);
        write_record(&mut out, &loaded.record).map_err(io::Error::other)?;
        copy_content(
            &old,
            loaded.content_offset,
            loaded.record.content_length,
            &mut out,
        )
        .map_err(io::Error::other)?;
        out.flush()
    })?;
    File::options()
        .write(true)
        .open(&path)?
        .set_modified(not_before)?;
    move_to(queue_id, ACTIVE, to)
}

pub fn remove_active(queue_id: &str) -> io::Result<()> {
    fs::remove_file(queue_path(ACTIVE, queue_id))
}

pub fn active_path(queue_id: &str) -> PathBuf {
    queue_path(ACTIVE, queue_id)
}
