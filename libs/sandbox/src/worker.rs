//! The start of every worker process, the same in each: take what the
//! master handed over, read the configuration, give up privilege, and only
//! then start the async runtime.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::exit;

use mailgate_config::{MainConfig, MasterConfig, Override};
use mailgate_ipc::handoff::{Handoff, LISTEN_FD, MASTER_WATCH_FD};
use mailgate_log::{fatal, warning};

use crate::privileges::{Placement, enter, lookup_user};
use crate::profiles::{Profile, Root, RunAs};
use crate::seccomp::Mode;

pub struct Worker {
    pub handoff: Handoff,
    /// main.cf with this service's master.cf `-o` overrides applied.
    pub config: MainConfig,
    listener: Option<OwnedFd>,
    master_watch: Option<OwnedFd>,
}

/// Logs a fatal error and exits: a worker that cannot start is restarted
/// (and throttled) by the master, which is the right place to decide.
pub fn die(message: impl std::fmt::Display) -> ! {
    fatal!("{message}");
    exit(1)
}

impl Worker {
    pub fn start(program: &str) -> Worker {
        mailgate_log::init("mailgate", program);
        let args: Vec<String> = std::env::args().skip(1).collect();
        let handoff = Handoff::parse(&args).unwrap_or_else(|e| die(e));
        let config = load_config(&handoff).unwrap_or_else(|e| die(e));
        mailgate_log::init(&config.get("syslog_name"), program);
        // SAFETY: the master leaves exactly these two descriptors open for us
        // (the handoff contract); we take ownership once, here, before any
        // other code could have used or closed them.
        let (listener, master_watch) = unsafe {
            (
                OwnedFd::from_raw_fd(LISTEN_FD),
                OwnedFd::from_raw_fd(MASTER_WATCH_FD),
            )
        };
        for fd in [&listener, &master_watch] {
            if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
                die("started without the descriptors the master hands over");
            }
        }
        Worker {
            handoff,
            config,
            listener: Some(listener),
            master_watch: Some(master_watch),
        }
    }

    /// The inherited listening socket. Taken once.
    pub fn take_listener(&mut self) -> OwnedFd {
        self.listener
            .take()
            .unwrap_or_else(|| die("BUG: listener taken twice"))
    }

    /// Chroot (as master.cf says), drop to the profile's user and all
    /// capabilities, set no_new_privs, and install the profile's seccomp
    /// filters on every thread. Afterwards the current directory is the top
    /// of the profile's root (the spool, or the scanner's directory). Exits on failure: a worker never runs with more
    /// privilege than its profile. Call before [`Worker::runtime`].
    pub fn enter_sandbox(&mut self, profile: &Profile) {
        let queue_directory = PathBuf::from(match profile.root {
            Root::Spool => self.config.get("queue_directory"),
            Root::Directory(parameter) => self.config.get(parameter),
        });
        let owner = match profile.run_as {
            RunAs::MailOwner => "mail_owner",
            RunAs::User(parameter) => parameter,
        };
        let mode = Mode::parse(&self.config.get("sandbox_mode"))
            .unwrap_or_else(|e| die(format!("{}: {e}", profile.service)));
        let identity = nix::unistd::geteuid()
            .is_root()
            .then(|| lookup_user(owner, &self.config.get(owner)).unwrap_or_else(|e| die(e)));
        let root = (identity.is_some() && self.handoff.chroot).then_some(queue_directory.as_path());
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
        let place = Placement {
            root,
            chdir_to: &queue_directory,
            identity: identity.as_ref(),
        };
        if let Err(e) = enter(profile, &place, mode) {
            die(format!("{}: {e}", profile.service));
        }
    }

    /// The async runtime, with an explicit thread count (so tokio needs no
    /// look at /proc after the sandbox is in place).
    pub fn runtime(&self, threads: usize) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build()
            .unwrap_or_else(|e| die(format!("cannot start the runtime: {e}")))
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
        use tokio::io::AsyncReadExt;
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())
            .unwrap_or_else(|e| die(format!("cannot watch for SIGTERM: {e}")));
        let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(self.master_watch)
            .unwrap_or_else(|e| die(format!("cannot watch the master: {e}")));
        let master_gone = async move {
            let mut buf = [0u8; 16];
            // The master never writes; any return means it is gone.
            let _ = pipe.read(&mut buf).await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = master_gone => warning!("the master is gone; exiting"),
        }
    }
}
