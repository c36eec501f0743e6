//! Auto-learning from inside the sandbox, with SpamAssassin's learn journal.
//!
//! The scanner may write no files, and its Bayes store is a snapshot. So when it
//! decides to auto-learn a message it appends the message's token hashes to a
//! journal it created before entering its sandbox, one file per scanner process
//! under `BAYES_DIR/journal/`, held locked (flock) for as long as the process
//! lives. `sync` folds the journals into the real store: at every scanner start,
//! and by `mailgate learn` (`--sync` does only that).
//!
//! A journal whose lock can be taken belongs to a process that has exited: it is
//! learned and removed. One still locked is learned and kept; relearning a message
//! already learned as the same class changes nothing, so reading it again later is
//! harmless. A record torn by a crash fails its checksum and ends the file's
//! reading: what was written before it counts.

use std::fs::{self, File};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::bayes::{self, Store};
use crate::{Class, SpamError};

const DIR: &str = "journal";
const MAGIC: &[u8; 4] = b"MGJ1";
/// Messages learned per store transaction while syncing.
const BATCH: usize = 500;
/// A record claiming more tokens than this is corrupt: a message yields a few
/// thousand at most.
const MAX_TOKENS: usize = 1 << 20;

/// A message the engine judged clear enough to learn from (SpamAssassin's
/// AutoLearnThreshold), with what learning it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoLearn {
    pub class: Class,
    pub(crate) message_id: u64,
    pub(crate) tokens: Vec<u64>,
}

impl AutoLearn {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 1 + 8 + 4 + 8 * self.tokens.len() + 8);
        out.extend_from_slice(MAGIC);
        out.push(match self.class {
            Class::Spam => 1,
            Class::Ham => 2,
        });
        out.extend_from_slice(&self.message_id.to_le_bytes());
        let count = u32::try_from(self.tokens.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for t in self.tokens.iter().take(count as usize) {
            out.extend_from_slice(&t.to_le_bytes());
        }
        let checksum = bayes::hash(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    /// The next record, `None` at the end of the file or at a torn or corrupt
    /// record.
    fn decode(reader: &mut impl Read) -> Option<AutoLearn> {
        let mut head = [0u8; 17];
        reader.read_exact(&mut head).ok()?;
        if &head[..4] != MAGIC {
            return None;
        }
        let class = match head[4] {
            1 => Class::Spam,
            2 => Class::Ham,
            _ => return None,
        };
        let message_id = u64::from_le_bytes(head[5..13].try_into().ok()?);
        let count = u32::from_le_bytes(head[13..17].try_into().ok()?) as usize;
        if count > MAX_TOKENS {
            return None;
        }
        let mut body = vec![0u8; count * 8 + 8];
        reader.read_exact(&mut body).ok()?;
        let (tokens, checksum) = body.split_at(count * 8);
        let mut record = head.to_vec();
        record.extend_from_slice(tokens);
        if bayes::hash(&record).to_le_bytes() != checksum {
            return None;
        }
        Some(AutoLearn {
            class,
            message_id,
            tokens: tokens
                .chunks_exact(8)
                .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
                .collect(),
        })
    }
}

/// This process's journal, open for appending and locked until the process exits.
pub struct Journal {
    file: Mutex<File>,
    path: PathBuf,
}

impl Journal {
    /// Creates a new journal in the Bayes directory `dir`. Call before the sandbox:
    /// afterwards the file is only written.
    pub fn create(dir: &Path) -> Result<Journal, SpamError> {
        let journal_dir = dir.join(DIR);
        fs::create_dir_all(&journal_dir).map_err(|source| io_error(&journal_dir, source))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = journal_dir.join(format!("autolearn-{}-{nanos}", std::process::id()));
        let file = File::options()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| io_error(&path, source))?;
        file.lock().map_err(|source| io_error(&path, source))?;
        Ok(Journal {
            file: Mutex::new(file),
            path,
        })
    }

    /// Appends one message. Records from concurrent scans never interleave: one
    /// is written whole under the lock.
    pub fn append(&self, learn: &AutoLearn) -> Result<(), SpamError> {
        let record = learn.encode();
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(&record)
            .map_err(|source| io_error(&self.path, source))
    }
}

/// What a sync did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Messages newly learned from the journals.
    pub learned: usize,
    /// Journals of exited scanners, now learned and removed.
    pub removed: usize,
}

/// Folds every journal under the Bayes directory `dir` into its store. The caller
/// holds the exclusive `StoreLock`.
pub fn sync(dir: &Path) -> Result<Synced, SpamError> {
    let journal_dir = dir.join(DIR);
    let mut paths: Vec<PathBuf> = match fs::read_dir(&journal_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("autolearn-"))
            })
            .collect(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Synced::default()),
        Err(source) => return Err(io_error(&journal_dir, source)),
    };
    paths.sort();
    let mut synced = Synced::default();
    if paths.is_empty() {
        return Ok(synced);
    }
    let store = Store::open(dir)?;
    for path in paths {
        let file = File::open(&path).map_err(|source| io_error(&path, source))?;
        // Taken: the writer has exited and the file is complete.
        let writer_gone = file.try_lock().is_ok();
        let mut reader = BufReader::new(file);
        let mut batch: Vec<AutoLearn> = Vec::new();
        loop {
            let record = AutoLearn::decode(&mut reader);
            let end = record.is_none();
            batch.extend(record);
            if batch.len() >= BATCH || (end && !batch.is_empty()) {
                synced.learned += learn(&store, &batch)?;
                batch.clear();
            }
            if end {
                break;
            }
        }
        if writer_gone {
            fs::remove_file(&path).map_err(|source| io_error(&path, source))?;
            synced.removed += 1;
        }
    }
    Ok(synced)
}

/// Learns a batch, each class in one transaction; returns how many were new.
fn learn(store: &Store, batch: &[AutoLearn]) -> Result<usize, SpamError> {
    let mut learned = 0;
    for class in [Class::Spam, Class::Ham] {
        let messages: Vec<(u64, Vec<u64>)> = batch
            .iter()
            .filter(|r| r.class == class)
            .map(|r| (r.message_id, r.tokens.clone()))
            .collect();
        if messages.is_empty() {
            continue;
        }
        learned += store
            .learn(&messages, class == Class::Spam, false)?
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    bayes::LearnOutcome::Learned | bayes::LearnOutcome::Relearned
                )
            })
            .count();
    }
    Ok(learned)
}

fn io_error(path: &Path, source: std::io::Error) -> SpamError {
    SpamError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(class: Class, id: u64) -> AutoLearn {
        AutoLearn {
            class,
            message_id: id,
            tokens: vec![id * 10, id * 10 + 1, id * 10 + 2],
        }
    }

    #[test]
    fn records_round_trip_and_torn_ones_end_the_file() {
        let a = record(Class::Spam, 1);
        let b = record(Class::Ham, 2);
        let mut bytes = a.encode();
        bytes.extend(b.encode());
        let torn = record(Class::Spam, 3).encode();
        bytes.extend_from_slice(&torn[..torn.len() - 3]);
        let mut reader = bytes.as_slice();
        assert_eq!(AutoLearn::decode(&mut reader), Some(a));
        assert_eq!(AutoLearn::decode(&mut reader), Some(b));
        assert_eq!(AutoLearn::decode(&mut reader), None);

        let mut flipped = record(Class::Spam, 4).encode();
        flipped[20] ^= 1;
        assert_eq!(AutoLearn::decode(&mut flipped.as_slice()), None);
    }

    #[test]
    fn sync_learns_every_journal_and_removes_those_of_exited_writers() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(sync(dir.path()).unwrap(), Synced::default());

        let live = Journal::create(dir.path()).unwrap();
        live.append(&record(Class::Spam, 1)).unwrap();
        live.append(&record(Class::Ham, 2)).unwrap();
        // A writer that has exited: its file is unlocked, its last record torn.
        let dead_path = dir.path().join(DIR).join("autolearn-1-1");
        let mut dead = record(Class::Spam, 3).encode();
        dead.extend_from_slice(&record(Class::Spam, 4).encode()[..10]);
        fs::write(&dead_path, dead).unwrap();

        let first = sync(dir.path()).unwrap();
        assert_eq!(
            first,
            Synced {
                learned: 3,
                removed: 1
            }
        );
        assert!(!dead_path.exists());
        assert!(live.path.exists(), "a running writer's journal stays");
        assert_eq!(Store::open(dir.path()).unwrap().counts().unwrap(), (2, 1));

        // Read again: nothing is counted twice.
        live.append(&record(Class::Ham, 5)).unwrap();
        let again = sync(dir.path()).unwrap();
        assert_eq!(
            again,
            Synced {
                learned: 1,
                removed: 0
            }
        );
        assert_eq!(Store::open(dir.path()).unwrap().counts().unwrap(), (2, 2));

        // Once its writer is gone, the journal goes too.
        let path = live.path.clone();
        drop(live);
        assert_eq!(
            sync(dir.path()).unwrap(),
            Synced {
                learned: 0,
                removed: 1
            }
        );
        assert!(!path.exists());
    }
}
