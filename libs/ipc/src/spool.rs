//! The spool: queue directories, queue IDs and the durable commit.
//!
//! Every worker runs with its current directory at the top of the spool
//! (chrooted there, or chdir'ed there without chroot), so all paths here are
//! relative.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const INCOMING: &str = "incoming";
pub const ACTIVE: &str = "active";
pub const DEFERRED: &str = "deferred";
pub const HOLD: &str = "hold";
pub const QUARANTINE: &str = "quarantine";
pub const CORRUPT: &str = "corrupt";
pub const PRIVATE: &str = "private";
pub const PUBLIC: &str = "public";
pub const PID: &str = "pid";
pub const DATA: &str = "data";

/// The queues that hold messages, in the order a message passes them.
pub const MESSAGE_QUEUES: [&str; 6] = [INCOMING, ACTIVE, DEFERRED, HOLD, QUARANTINE, CORRUPT];

/// Every directory of the spool with its mode; owned by mail_owner except
/// pid/ (root's). private/ and public/ let mail_owner's group through
/// (smtpd runs in it, under a uid of its own) and nobody else; each socket's
/// own mode (0600, or 0660 for those smtpd may call) and each service's
/// check of its peer's uid decide who may connect.
pub const LAYOUT: [(&str, u32); 10] = [
    (INCOMING, 0o700),
    (ACTIVE, 0o700),
    (DEFERRED, 0o700),
    (HOLD, 0o700),
    (QUARANTINE, 0o700),
    (CORRUPT, 0o700),
    (PRIVATE, 0o710),
    (PUBLIC, 0o710),
    (PID, 0o755),
    (DATA, 0o700),
];

/// The socket a service listens on, relative to the spool: in private/,
/// or in public/ when master.cf's private column says n.
pub fn service_socket(service: &str) -> PathBuf {
    let private = Path::new(PRIVATE).join(service);
    if private.exists() {
        private
    } else {
        Path::new(PUBLIC).join(service)
    }
}

pub fn queue_path(queue: &str, queue_id: &str) -> PathBuf {
    Path::new(queue).join(queue_id)
}

/// Queue IDs are the arrival time in microseconds as 14 hex digits followed
/// by the generating process's pid as 6 (Linux pids stay below 2^22): they
/// sort by arrival as strings, are unique within one generator, and two
/// cleanup processes (a service runs several) can never make the same one.
pub struct QueueIdGenerator {
    last: u64,
    pid: u32,
}

impl QueueIdGenerator {
    /// IDs of this process.
    pub fn new() -> QueueIdGenerator {
        QueueIdGenerator::with_pid(std::process::id())
    }

    pub fn with_pid(pid: u32) -> QueueIdGenerator {
        QueueIdGenerator { last: 0, pid }
    }

    pub fn next_id(&mut self) -> String {
        let now = crate::envelope::now_micros();
        // Strictly increasing even when the clock stands still or steps back.
        self.last = now.max(self.last + 1);
        format!("{:014X}{:06X}", self.last, self.pid & 0xFF_FFFF)
    }
}

impl Default for QueueIdGenerator {
    fn default() -> QueueIdGenerator {
        QueueIdGenerator::new()
    }
}

/// True for names that are queue IDs (and not temporary files).
pub fn is_queue_id(name: &str) -> bool {
    !name.is_empty() && name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The mode of a queue file being written: no permission bits at all.
/// Every reader of a queue directory skips such files ([`is_ready`]); the
/// commit gives the file [`READY_MODE`]. (Postfix marks the finished file
/// with its execute bit; mailgate marks the unfinished one instead, so
/// files moved in from elsewhere, and spools from before this mark, are
/// ready as they are.) Creating the file under its final name at once lets
/// the directory's fsync run while the message is still arriving.
pub const WRITING_MODE: u32 = 0o000;
pub const READY_MODE: u32 = 0o600;

/// False for a queue file still being written (see [`WRITING_MODE`]).
pub fn is_ready(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o777 != WRITING_MODE
}

/// The queue IDs of the finished files in `dir`, sorted: files still being
/// written are passed by, and so are files that vanish while it looks.
pub fn ready_queue_ids(dir: &Path) -> io::Result<Vec<String>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if is_queue_id(&name) && entry.metadata().is_ok_and(|m| is_ready(&m)) {
            ids.push(name);
        }
    }
    ids.sort();
    Ok(ids)
}

/// A queue file being written: it has its final name in its queue
/// directory but no permissions, so qmgr and the queue tools pass it by,
/// until [`commit`](Self::commit) marks it ready.
pub struct PendingFile {
    /// None once committed.
    file: Option<File>,
    /// Committed: marked ready and synced.
    committed: bool,
    dir: PathBuf,
    path: PathBuf,
}

impl PendingFile {
    pub fn create(queue: &str, queue_id: &str) -> io::Result<PendingFile> {
        let dir = PathBuf::from(queue);
        let path = dir.join(queue_id);
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(WRITING_MODE)
            .open(&path)?;
        Ok(PendingFile {
            file: Some(file),
            committed: false,
            path,
            dir,
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.file
            .as_mut()
            .expect("a PendingFile holds its file until commit")
    }

    /// Makes the file durable and visible: mark it ready, fsync it, fsync
    /// its directory (one fsync for the files of all concurrent commits:
    /// group_sync).
    /// Invariant: when this returns Ok, the message survives a crash or a
    /// power loss; this is what a 250 after DATA stands on.
    pub fn commit(self) -> io::Result<File> {
        let dir = self.dir.clone();
        let file = self.commit_file()?;
        crate::group_sync::for_dir(&dir).sync()?;
        Ok(file)
    }

    /// [`commit`](Self::commit) without the directory's fsync: the caller
    /// must see a fsync of the directory that started after
    /// [`create`](Self::create) succeed before it counts the file durable
    /// (cleanup starts one at once and waits for it after this).
    pub fn commit_file(mut self) -> io::Result<File> {
        let file = self
            .file
            .take()
            .expect("a PendingFile holds its file until commit");
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(READY_MODE))?;
        file.sync_all()?;
        self.committed = true;
        Ok(file)
    }

    /// The file's directory, for the fsync that makes its name durable.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        // Not committed, or the commit failed: the file is garbage (and
        // never answered for). A failed commit may already have marked it
        // ready; removing it keeps qmgr from delivering what the client
        // was told to send again.
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces a queue file with new content atomically: write a temporary
/// file, fsync, rename over the old one, fsync the directory.
pub fn replace_file(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad queue file name"))?;
    let temp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    let result = write(&mut file).and_then(|()| file.sync_all());
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    std::fs::rename(&temp, path)?;
    sync_dir(dir)
}

/// Carries out a queue tool's action on a message file in `from` under
/// the spool at `spool`, when nothing else uses the file: by qmgr for a
/// message it does not hold in memory, or by `mailgate queue` when no
/// master runs. Each step is one rename or unlink, so the message is always
/// in exactly one queue.
pub fn act_on_file(
    spool: &Path,
    queue_id: &str,
    from: &str,
    action: crate::protocol::qmgr::Action,
) -> io::Result<()> {
    use crate::protocol::qmgr::Action;
    let path = spool.join(queue_path(from, queue_id));
    let to = match action {
        Action::Delete => return std::fs::remove_file(&path),
        Action::Hold => HOLD,
        Action::Release => DEFERRED,
        Action::Requeue => INCOMING,
    };
    if action == Action::Release {
        // In deferred/ the modification time is the next attempt: now.
        File::options()
            .write(true)
            .open(&path)?
            .set_modified(std::time::SystemTime::now())?;
    }
    if from == to {
        return Ok(());
    }
    std::fs::rename(&path, spool.join(queue_path(to, queue_id)))
}

/// Removes what a crash left behind in a queue directory: files still
/// being written (no permissions, see [`WRITING_MODE`]) and the temporary
/// files of earlier versions (`.tmp`), older than `older_than` (so the
/// files of sessions in progress in other processes are left alone).
pub fn remove_stale_temporaries(queue: &str, older_than: std::time::Duration) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(queue)? {
        let entry = entry?;
        let name = entry.file_name();
        // A file can vanish between readdir and stat (its commit failed).
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if !name.to_string_lossy().ends_with(".tmp") && is_ready(&metadata) {
            continue;
        }
        let age = metadata.modified()?.elapsed().unwrap_or_default();
        if age >= older_than && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file being written has no permissions and is listed by nobody;
    /// the commit makes it 0600 and listed; an uncommitted one goes away;
    /// a crash's leftover is removed once old, a finished file never.
    #[test]
    fn pending_files_are_unlisted_until_committed() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().to_str().unwrap();
        let mode = |id: &str| {
            std::fs::metadata(dir.path().join(id))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        let mut pending = PendingFile::create(queue, "A1").unwrap();
        pending.file().write_all(b"message").unwrap();
        assert_eq!(mode("A1"), 0);
        assert!(ready_queue_ids(dir.path()).unwrap().is_empty());
        pending.commit().unwrap();
        assert_eq!(mode("A1"), 0o600);
        assert_eq!(ready_queue_ids(dir.path()).unwrap(), vec!["A1".to_string()]);

        drop(PendingFile::create(queue, "B2").unwrap());
        assert!(!dir.path().join("B2").exists());

        let left = PendingFile::create(queue, "C3").unwrap();
        std::mem::forget(left);
        assert_eq!(
            remove_stale_temporaries(queue, std::time::Duration::from_secs(3600)).unwrap(),
            0
        );
        assert_eq!(
            remove_stale_temporaries(queue, std::time::Duration::ZERO).unwrap(),
            1
        );
        assert!(!dir.path().join("C3").exists());
        assert!(dir.path().join("A1").exists());
    }

    #[test]
    fn ids_increase_and_sort() {
        let mut generator = QueueIdGenerator::default();
        let ids: Vec<String> = (0..1000).map(|_| generator.next_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted);
        assert!(ids.iter().all(|id| is_queue_id(id)));
        assert!(!is_queue_id("X.tmp"));
        // Two processes in the same microsecond still differ.
        let (mut a, mut b) = (
            QueueIdGenerator::with_pid(100),
            QueueIdGenerator::with_pid(101),
        );
        a.last = 1 << 40;
        b.last = 1 << 40;
        assert_ne!(a.next_id(), b.next_id());
    }
}
