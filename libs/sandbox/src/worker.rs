//! The start of every worker process, the same in each: take what the
//! master handed over, read the configuration, give up privilege, and only
//! then start the async runtime. The types keep that order: a runtime is
//! built only from a [`Sandboxed`] worker, which only
//! [`Worker::enter_sandbox`] makes.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::exit;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mailgate_config::{MainConfig, MasterConfig, Override};
use mailgate_ipc::handoff::{Handoff, LISTEN_FD, MASTER_WATCH_FD};
use mailgate_ipc::peer::Callers;
use mailgate_ipc::spool::PID;
use mailgate_log::{fatal, info, warning};

use crate::landlock::LandlockState;
use crate::privileges::{Identity, Placement, enter_serving, identity_in_group, lookup_user};
use crate::profiles::{Caller, Profile, Root, RunAs};
use crate::seccomp::Mode;

/// A worker that has taken what the master handed over and read its
/// configuration, and still holds every privilege it started with.
pub struct Worker {
    pub handoff: Handoff,
    /// main.cf with this service's master.cf `-o` overrides applied.
    pub config: MainConfig,
    listener: Option<OwnedFd>,
    master_watch: OwnedFd,
}

/// A worker inside its profile's sandbox: the only thing a runtime can be
/// built from.
pub struct Sandboxed {
    pub handoff: Handoff,
    pub config: MainConfig,
    master_watch: Option<OwnedFd>,
    callers: Arc<Callers>,
    landlock: LandlockState,
}

/// Logs a fatal error and exits: a worker that cannot start is restarted
/// (and throttled) by the master, which is the right place to decide.
pub fn die(message: impl std::fmt::Display) -> ! {
    fatal!("{message}");
    exit(1)
}

/// Set by the one call to [`Worker::start`]: descriptors 3 and 4 are taken
/// once per process.
static STARTED: AtomicBool = AtomicBool::new(false);

/// The file under the spool's pid/ where a worker states how it is
/// confined, for `mailgate status` (the master removes it when the worker
/// has exited).
pub fn sandbox_state_file(queue_directory: &Path, pid: u32) -> PathBuf {
    queue_directory.join(PID).join(format!("sandbox.{pid}"))
}

/// Takes ownership of descriptors 3 and 4, the listening socket and the
/// master-watch pipe the master leaves open. Only the first call in a
/// process takes them; any later one gets an error and touches nothing, so
/// the two can never be owned (and closed) twice.
pub fn take_handoff_descriptors() -> Result<(OwnedFd, OwnedFd), &'static str> {
    if STARTED.swap(true, Ordering::SeqCst) {
        return Err("BUG: the master's descriptors were already taken");
    }
    for fd in [LISTEN_FD, MASTER_WATCH_FD] {
        // SAFETY: only asks the kernel whether the number is open.
        let open = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if nix::fcntl::fcntl(open, nix::fcntl::FcntlArg::F_GETFD).is_err() {
            return Err("started without the descriptors the master hands over");
        }
    }
    // SAFETY: the master leaves exactly these two descriptors open for us
    // (the handoff contract), they are open (checked above), and the STARTED
    // guard makes this the one call in the process that takes ownership of
    // them.
    Ok(unsafe {
        (
            OwnedFd::from_raw_fd(LISTEN_FD),
            OwnedFd::from_raw_fd(MASTER_WATCH_FD),
        )
    })
}

impl Worker {
    /// Takes the descriptors the master leaves open (the listening socket
    /// on 3, the master-watch pipe on 4) and reads the configuration. A
    /// second call in the same process exits at once instead of taking
    /// descriptors that now belong to someone else.
    pub fn start(program: &str) -> Worker {
        mailgate_log::init("mailgate", program);
        let args: Vec<String> = std::env::args().skip(1).collect();
        let handoff = Handoff::parse(&args).unwrap_or_else(|e| die(e));
        let config = load_config(&handoff).unwrap_or_else(|e| die(e));
        mailgate_log::init(&config.get("syslog_name"), program);
        // master.cf's -v (check refuses any other argument).
        let verbose = handoff.args.iter().filter(|a| *a == "-v").count();
        mailgate_log::set_verbose(u8::try_from(verbose).unwrap_or(u8::MAX));
        let (listener, master_watch) = take_handoff_descriptors().unwrap_or_else(|e| die(e));
        // Non-blocking now, while fcntl(F_SETFL) is still allowed: the
        // sandbox forbids it (it could take O_APPEND off the log).
        let flags = nix::fcntl::fcntl(&master_watch, nix::fcntl::FcntlArg::F_GETFL)
            .unwrap_or_else(|e| die(format!("master-watch pipe: {e}")));
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&master_watch, nix::fcntl::FcntlArg::F_SETFL(flags))
            .unwrap_or_else(|e| die(format!("master-watch pipe: {e}")));
        Worker {
            handoff,
            config,
            listener: Some(listener),
            master_watch,
        }
    }

    /// The inherited listening socket. Taken once.
    pub fn take_listener(&mut self) -> OwnedFd {
        self.listener
            .take()
            .unwrap_or_else(|| die("BUG: listener taken twice"))
    }

    /// Chroot (as master.cf says), drop to the profile's user and all
    /// capabilities, set no_new_privs, enforce the profile's Landlock
    /// ruleset and install its seccomp filters on every thread. Afterwards
    /// the current directory is the top of the profile's root (the spool,
    /// or the scanner's directory). Exits on failure: a worker never runs
    /// with more privilege than its profile.
    pub fn enter_sandbox(self, profile: &Profile) -> Sandboxed {
        let spool = PathBuf::from(self.config.get("queue_directory"));
        let root_dir = match profile.root {
            Root::Spool | Root::Unchanged => spool.clone(),
            Root::Directory(parameter) => PathBuf::from(self.config.get(parameter)),
        };
        let mode = Mode::parse(&self.config.get("sandbox_mode"))
            .unwrap_or_else(|e| die(format!("{}: {e}", profile.service)));
        let privileged = nix::unistd::geteuid().is_root();
        let identity = privileged
            .then(|| resolve_identity(&self.config, profile.run_as).unwrap_or_else(|e| die(e)));
        let callers = Arc::new(resolve_callers(&self.config, &self.handoff, profile));
        let chroot = identity.is_some() && self.handoff.chroot && profile.root != Root::Unchanged;
        let root = chroot.then_some(root_dir.as_path());
        if identity.is_some() && root.is_none() {
            warning!(
                "service {} runs without chroot (master.cf chroot column is n)",
                self.handoff.service
            );
        }
        if mode == Mode::Log {
            warning!(
                "SANDBOX IN LOG MODE (sandbox_mode = log): service {} ({}) is NOT protected by \
                 its seccomp filter; calls outside its profile are only logged by the kernel. \
                 Set sandbox_mode = enforce once the missing call is found",
                self.handoff.service,
                profile.service
            );
        }
        // Opened while still privileged and outside any chroot; written once
        // the state is known.
        let mut state_file = open_state_file(&spool);
        let place = Placement {
            root,
            chdir_to: &root_dir,
            identity: identity.as_ref(),
            config: Some(&self.config),
        };
        let landlock = enter_serving(profile, &place, mode, self.handoff.sessions)
            .unwrap_or_else(|e| die(format!("{}: {e}", profile.service)));
        match &landlock {
            LandlockState::Enforced { .. } => {}
            other => warning!(
                "service {}: Landlock {other}: confined by chroot and seccomp only",
                self.handoff.service
            ),
        }
        if let Some(file) = state_file.as_mut() {
            let _ = writeln!(file, "landlock={landlock}");
        }
        Sandboxed {
            handoff: self.handoff,
            config: self.config,
            master_watch: Some(self.master_watch),
            callers,
            landlock,
        }
    }
}

impl Sandboxed {
    /// The async runtime, with the thread count the configuration gives
    /// (mailgate_service_threads, maybe this service's `-o`), stated
    /// explicitly so tokio needs no look at /proc after the sandbox is in
    /// place.
    pub fn runtime(&self) -> tokio::runtime::Runtime {
        let threads = mailgate_config::processes::runtime_threads(&self.config);
        // One thread: the sessions of the process run on the thread that
        // drives them, with no hand-off between threads on each step (the
        // machine's cores are used by the service's several processes).
        let mut builder = if threads == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(threads);
            b
        };
        builder
            .enable_all()
            .build()
            .unwrap_or_else(|e| die(format!("cannot start the runtime: {e}")))
    }

    /// Who may connect to this service's socket (the profile's callers).
    pub fn callers(&self) -> Arc<Callers> {
        self.callers.clone()
    }

    pub fn landlock(&self) -> &LandlockState {
        &self.landlock
    }

    /// What ends this worker: SIGTERM from the master, or the master's death.
    pub fn shutdown(&mut self) -> Shutdown {
        Shutdown {
            master_watch: self
                .master_watch
                .take()
                .unwrap_or_else(|| die("BUG: shutdown taken twice")),
        }
    }
}

/// The numeric identity a profile runs as.
fn resolve_identity(
    config: &MainConfig,
    run_as: RunAs,
) -> Result<Identity, crate::privileges::SandboxError> {
    match run_as {
        RunAs::MailOwner => lookup_user("mail_owner", &config.get("mail_owner")),
        RunAs::User(parameter) => lookup_user(parameter, &config.get(parameter)),
        RunAs::UserInMailGroup(parameter) => {
            let mail = lookup_user("mail_owner", &config.get("mail_owner"))?;
            identity_in_group(parameter, &config.get(parameter), &mail)
        }
    }
}

/// The uids a profile's callers stand for. Without root every process runs
/// as the one user who started the gateway, so that user is the only
/// caller. A caller whose user does not exist is left out (it cannot
/// connect).
fn resolve_callers(config: &MainConfig, handoff: &Handoff, profile: &Profile) -> Callers {
    if !nix::unistd::geteuid().is_root() {
        return Callers::same_user(&handoff.service);
    }
    let mut allowed = Vec::new();
    for caller in profile.callers {
        let (parameter, name) = match caller {
            Caller::Root => {
                allowed.push((0, "root".to_string()));
                continue;
            }
            Caller::MailOwner => ("mail_owner", config.get("mail_owner")),
            Caller::User(parameter) => (*parameter, config.get(parameter)),
        };
        match nix::unistd::User::from_name(&name) {
            Ok(Some(user)) => allowed.push((user.uid.as_raw(), format!("{parameter} ({name})"))),
            _ => warning!(
                "service {}: {parameter} = {name}: no such user; it cannot call this service",
                handoff.service
            ),
        }
    }
    Callers::new(&handoff.service, allowed)
}

/// The state file, created fresh (never through a link) while the worker
/// is still root; None (with a warning) when pid/ cannot take it.
fn open_state_file(spool: &Path) -> Option<File> {
    let path = sandbox_state_file(spool, std::process::id());
    let _ = std::fs::remove_file(&path);
    match File::options()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(file) => Some(file),
        Err(e) => {
            info!("cannot record the sandbox state in {}: {e}", path.display());
            None
        }
    }
}

fn load_config(handoff: &Handoff) -> Result<MainConfig, String> {
    let master = MasterConfig::load(&handoff.config_dir).map_err(|e| e.to_string())?;
    let config =
        MainConfig::load_with_references(&handoff.config_dir, &master.parameter_references())
            .map_err(|e| e.to_string())?;
    let origin = handoff.config_dir.join("master.cf");
    let overrides: Vec<Override> = handoff
        .overrides
        .iter()
        .map(|(name, value, line)| Override {
            name: name.clone(),
            value: value.clone(),
            origin: origin.clone(),
            line: *line,
        })
        .collect();
    config.with_overrides(&overrides).map_err(|e| e.to_string())
}

pub struct Shutdown {
    master_watch: OwnedFd,
}

impl Shutdown {
    /// Resolves on SIGTERM or when the master's end of the watch pipe
    /// closes. Call inside the runtime.
    pub async fn wait(self) {
        use tokio::io::Interest;
        use tokio::io::unix::AsyncFd;
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())
            .unwrap_or_else(|e| die(format!("cannot watch for SIGTERM: {e}")));
        // The pipe was made non-blocking in `start`; AsyncFd needs no fcntl.
        // SAFETY: an OwnedFd's descriptor is open, and it stays the same
        // open descriptor for as long as the AsyncFd owns it.
        let pipe =
            unsafe { AsyncFd::register_with_interest(self.master_watch, Interest::READABLE) }
                .unwrap_or_else(|e| die(format!("cannot watch the master: {e}")));
        let master_gone = async move {
            // The master never writes; readable means it is gone.
            loop {
                let Ok(mut ready) = pipe.readable().await else {
                    return;
                };
                let mut buf = [0u8; 16];
                // SAFETY: reads into a local buffer of the stated length from
                // a descriptor this future owns.
                let n = unsafe {
                    libc::read(
                        pipe.get_ref().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    )
                };
                if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
                {
                    ready.clear_ready();
                    continue;
                }
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = master_gone => warning!("the master is gone; exiting"),
        }
    }
}
