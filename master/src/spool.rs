//! Creating the spool and holding the one-master-per-spool lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use mailgate_ipc::spool::{LAYOUT, PID};
use mailgate_sandbox::Identity;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{Mode, fchmod, mkdirat};
use nix::unistd::{Gid, Uid, fchown};

#[derive(Debug)]
pub enum SpoolError {
    Create { path: PathBuf, source: io::Error },
    Owner { path: PathBuf, source: nix::Error },
    NotADirectory { path: PathBuf },
    AlreadyRunning { pid: String },
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolError::Create { path, source } => {
                write!(f, "cannot create {}: {source}", path.display())
            }
            SpoolError::Owner { path, source } => {
                write!(f, "cannot set the owner of {}: {source}", path.display())
            }
            SpoolError::NotADirectory { path } => write!(
                f,
                "{} is a link or not a directory; the spool's directories must be real \
                 directories (remove it and start again)",
                path.display()
            ),
            SpoolError::AlreadyRunning { pid } => write!(
                f,
                "the mail system is already running on this spool (master pid {pid})"
            ),
        }
    }
}

/// Creates queue_directory and its subdirectories with their modes; the
/// message queues belong to mail_owner (when running as root), pid/ and
/// queue_directory itself to root. Nothing here follows a link: each
/// directory is made and then opened by name relative to its parent with
/// O_NOFOLLOW, and its owner and mode are set on that descriptor. A
/// queue_directory not owned by root is taken back (mail_owner must not be
/// able to replace its subdirectories), and a subdirectory that is a link
/// stops the start.
pub fn create(queue_directory: &Path, owner: Option<&Identity>) -> Result<(), SpoolError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(queue_directory)
        .map_err(|source| SpoolError::Create {
            path: queue_directory.to_path_buf(),
            source,
        })?;
    let top = open_dir(None, queue_directory)?;
    let root = owner.map(|_| (Uid::from_raw(0), Gid::from_raw(0)));
    settle(&top, queue_directory, root, 0o755)?;
    for (name, mode) in LAYOUT {
        let path = queue_directory.join(name);
        match mkdirat(&top, name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(SpoolError::Create {
                    path,
                    source: e.into(),
                });
            }
        }
        let dir = open_dir(Some(&top), Path::new(name)).map_err(|e| match e {
            SpoolError::Create { source, .. }
                if matches!(source.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) =>
            {
                SpoolError::NotADirectory { path: path.clone() }
            }
            other => other,
        })?;
        let ids = if name == PID {
            root
        } else {
            owner.map(|o| (o.uid, o.gid))
        };
        settle(&dir, &path, ids, mode)?;
    }
    Ok(())
}

/// Opens a directory without following a link in its last step.
fn open_dir(at: Option<&OwnedFd>, path: &Path) -> Result<OwnedFd, SpoolError> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let opened = match at {
        Some(dir) => openat(dir, path, flags, Mode::empty()),
        None => nix::fcntl::open(path, flags, Mode::empty()),
    };
    opened.map_err(|e| SpoolError::Create {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Sets the owner (when running as root) and mode of an open directory.
fn settle(
    dir: &OwnedFd,
    path: &Path,
    ids: Option<(Uid, Gid)>,
    mode: u32,
) -> Result<(), SpoolError> {
    if let Some((uid, gid)) = ids {
        fchown(dir, Some(uid), Some(gid)).map_err(|source| SpoolError::Owner {
            path: path.to_path_buf(),
            source,
        })?;
    }
    fchmod(dir, Mode::from_bits_truncate(mode)).map_err(|e| SpoolError::Create {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Removes the sandbox state files of workers of an earlier run (pid/ is
/// root's; nobody else writes there).
pub fn remove_stale_state_files(queue_directory: &Path) {
    let Ok(entries) = fs::read_dir(queue_directory.join(PID)) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("sandbox.") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The pid file, locked for as long as this master lives: a second master
/// on the same spool fails to take the lock and is refused.
pub struct PidLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl PidLock {
    pub fn acquire(queue_directory: &Path) -> Result<PidLock, SpoolError> {
        let path = queue_directory.join(PID).join("master.pid");
        let create_error = |source| SpoolError::Create {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(create_error)?;
        // `mailgate status` takes the lock for an instant to see whether it
        // is held; a few tries keep that from refusing a starting master.
        let mut file = file;
        let mut tries = 0;
        let mut lock = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => break lock,
                Err((back, _)) if tries < 5 => {
                    file = back;
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(_) => {
                    let pid = fs::read_to_string(&path).unwrap_or_default();
                    return Err(SpoolError::AlreadyRunning {
                        pid: pid.trim().to_string(),
                    });
                }
            }
        };
        lock.set_len(0).map_err(create_error)?;
        writeln!(*lock, "{}", std::process::id()).map_err(create_error)?;
        Ok(PidLock { _lock: lock, path })
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
