//! `mailgate scan` and `mailgate learn` read mail that may be hostile. Run
//! by root, they must not parse it with root's privileges: the message
//! files are opened first (as root, so root-only mailboxes can be read),
//! the rules are loaded and the Bayes store opened, and then the process
//! drops to `scanner_owner` under the `scan` or `learn` profile (seccomp,
//! Landlock: no file may be opened any more, no network, no signal to
//! anyone) before any message is parsed. The messages are then read
//! through the descriptors opened before.
//!
//! Finding the messages happens as root: walking the directories, opening
//! each file, and splitting mbox files at their `From ` lines (a byte
//! search, no parsing). Everything that parses a message runs after the
//! drop.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use mailgate_config::MainConfig;
use mailgate_sandbox::profiles::Profile;
use mailgate_sandbox::{Mode, Placement, lookup_user};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

use crate::error::{Error, say};

/// What opening a message file gave: the file, or the error number (kept,
/// so the error reported after the sandbox is the one the open met before
/// it, not the sandbox's EACCES).
type Opened = Result<Arc<File>, i32>;

/// The message files opened so far, by the path `scan::collect` names
/// them with.
fn opened() -> &'static Mutex<HashMap<PathBuf, Opened>> {
    static OPENED: OnceLock<Mutex<HashMap<PathBuf, Opened>>> = OnceLock::new();
    OPENED.get_or_init(|| {
        // Every input stays open until it is read: a corpus of thousands of
        // files needs the hard limit.
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
        Mutex::new(HashMap::new())
    })
}

/// The bytes of a message file: through the descriptor opened for it
/// before the sandbox, or, the first time (before the sandbox), opened now
/// and kept for later.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let file = {
        let mut files = opened().lock().unwrap_or_else(|e| e.into_inner());
        let entry = files.entry(path.to_path_buf()).or_insert_with(|| {
            File::open(path)
                .map(Arc::new)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
        });
        entry.clone().map_err(io::Error::from_raw_os_error)?
    };
    let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
    let mut data = Vec::new();
    data.try_reserve_exact(len)
        .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e))?;
    data.resize(len, 0);
    file.read_exact_at(&mut data, 0)?;
    Ok(data)
}

/// Gives up privilege for good: as root, drops to scanner_owner; in any
/// case enters `profile`'s seccomp filter and Landlock ruleset. Call once
/// the inputs are open, the rules loaded and the store open, while the
/// process is single-threaded.
pub fn enter(config: &MainConfig, profile: &Profile) -> Result<(), Error> {
    // The time zone, read while /etc/localtime can still be opened.
    mailgate_log::init(&config.get("syslog_name"), profile.service);
    let identity = if nix::unistd::geteuid().is_root() {
        Some(
            lookup_user("scanner_owner", &config.get("scanner_owner"))
                .map_err(|e| Error::Confine(e.to_string()))?,
        )
    } else {
        None
    };
    let place = Placement {
        root: None,
        chdir_to: Path::new("/"),
        identity: identity.as_ref(),
        config: Some(config),
    };
    let landlock = mailgate_sandbox::enter(profile, &place, Mode::Enforce)
        .map_err(|e| Error::Confine(e.to_string()))?;
    if !matches!(landlock, mailgate_sandbox::LandlockState::Enforced { .. }) {
        say(format_args!(
            "warning: Landlock {landlock}: {} runs under seccomp only",
            profile.service
        ));
    }
    Ok(())
}

/// Runs `work` in a child process and waits for it: the child gives up its
/// privileges, the parent keeps them for what comes after (`learn` reloads
/// the gateway). The child reports its own error; the parent only learns
/// that it failed. Call while single-threaded.
pub fn in_child(work: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
    use std::io::Write;
    // Nothing buffered may be written twice.
    let _ = io::stdout().flush();
    // SAFETY: the process is single-threaded here (the commands start no
    // thread before this), so the child may run any code.
    match unsafe { fork() }.map_err(|e| Error::Confine(format!("fork: {e}")))? {
        ForkResult::Child => {
            let code = match work() {
                Ok(()) => 0,
                Err(e) => {
                    e.report();
                    1
                }
            };
            let _ = io::stdout().flush();
            std::process::exit(code)
        }
        ForkResult::Parent { child } => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(WaitStatus::Exited(_, _)) => Err(Error::Reported),
            Ok(WaitStatus::Signaled(_, signal, _)) => Err(Error::Confine(format!(
                "the confined process was killed by {signal}"
            ))),
            Ok(other) => Err(Error::Confine(format!("the confined process: {other:?}"))),
            Err(e) => Err(Error::Confine(format!("waitpid: {e}"))),
        },
    }
}
