//! Creating the spool and holding the one-master-per-spool lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mailgate_ipc::spool::{LAYOUT, PID};
use mailgate_sandbox::Identity;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::chown;

#[derive(Debug)]
pub enum SpoolError {
    Create { path: PathBuf, source: io::Error },
    Owner { path: PathBuf, source: nix::Error },
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
            SpoolError::AlreadyRunning { pid } => write!(
                f,
                "the mail system is already running on this spool (master pid {pid})"
            ),
        }
    }
}

/// Creates queue_directory and its subdirectories with their modes; the
/// message queues belong to mail_owner (when running as root), pid/ to root.
pub fn create(queue_directory: &Path, owner: Option<&Identity>) -> Result<(), SpoolError> {
    make_dir(queue_directory, 0o755)?;
    for (name, mode) in LAYOUT {
        let path = queue_directory.join(name);
        make_dir(&path, mode)?;
        if let Some(owner) = owner.filter(|_| name != PID) {
            chown(&path, Some(owner.uid), Some(owner.gid))
                .map_err(|source| SpoolError::Owner { path, source })?;
        }
    }
    Ok(())
}

fn make_dir(path: &Path, mode: u32) -> Result<(), SpoolError> {
    let create_error = |source| SpoolError::Create {
        path: path.to_path_buf(),
        source,
    };
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
    {
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(create_error),
        Err(e) => Err(create_error(e)),
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
