//! Starting, watching and restarting the services.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use mailgate_config::{MainConfig, MasterConfig, Override, ServiceEntry};
use mailgate_ipc::handoff::{Handoff, LISTEN_FD, MASTER_WATCH_FD};
use mailgate_log::{error, info, warning};
use mailgate_sandbox::{Identity, Mode, lookup_user};
use nix::fcntl::{FcntlArg, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::listeners::{Endpoint, endpoints, listen_on};
use crate::spool::{self, PidLock};

/// A process that dies sooner than this after it was started died "at
/// start-up": a configuration or environment problem that an immediate
/// restart will not fix.
const STARTUP_GRACE: Duration = Duration::from_secs(2);
/// How many start-up deaths in a row are restarted at once before the
/// service is throttled for service_throttle_time.
const STARTUP_DEATHS_BEFORE_THROTTLE: u32 = 2;
/// Listener and pipe descriptors are kept at or above this number, so that
/// moving them to 3 and 4 in a child never overwrites one with the other.
const HIGH_FD: RawFd = 10;

#[derive(Debug)]
pub enum MasterError {
    Config(String),
    Setup(String),
}

impl std::fmt::Display for MasterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterError::Config(m) => write!(f, "{m}"),
            MasterError::Setup(m) => write!(f, "{m}"),
        }
    }
}

/// Everything read from the configuration directory.
struct Settings {
    config: MainConfig,
    services: Vec<ServiceSpec>,
    table_files: Vec<PathBuf>,
}

/// One process to keep running: a master.cf entry on one endpoint.
struct ServiceSpec {
    /// "127.0.0.1:2525/inet" or "cleanup/unix": stable across reloads.
    key: String,
    endpoint: Endpoint,
    /// A Unix socket's mode, from the program's profile (who may call it).
    socket_mode: u32,
    program: PathBuf,
    handoff: Handoff,
    /// maxproc 1 means one instance: on reload the old process must be gone
    /// before the new one starts (two queue managers would race).
    exclusive: bool,
}

struct Running {
    spec: ServiceSpec,
    listener: OwnedFd,
    pid: Option<Pid>,
    started: Instant,
    startup_deaths: u32,
    restart_at: Option<Instant>,
}

pub struct Master {
    config_dir: PathBuf,
    overrides: Vec<(String, String)>,
    owner: Option<Identity>,
    services: Vec<Running>,
    /// Processes of an earlier configuration, draining after a reload.
    retiring: HashMap<Pid, String>,
    signals: SignalFd,
    /// The read end goes to every child; the write end lives only here, so
    /// a child sees end-of-file when the master is gone.
    watch_read: OwnedFd,
    _watch_write: OwnedFd,
    table_files: Vec<PathBuf>,
    table_stamps: Vec<Option<(SystemTime, u64)>>,
    next_table_check: Instant,
    timing: Timing,
    /// Where the workers leave their sandbox state files (pid/).
    queue_directory: PathBuf,
    _pid_lock: PidLock,
}

/// The master's own time settings, from the configuration last loaded.
struct Timing {
    table_check_interval: Duration,
    service_throttle_time: Duration,
    master_drain_time: Duration,
}

impl Timing {
    fn from(config: &MainConfig) -> Timing {
        Timing {
            table_check_interval: config
                .time("table_check_interval")
                .max(Duration::from_secs(1)),
            service_throttle_time: config.time("service_throttle_time"),
            master_drain_time: config.time("master_drain_time"),
        }
    }
}

impl Master {
    pub fn start(
        config_dir: PathBuf,
        overrides: Vec<(String, String)>,
    ) -> Result<Master, MasterError> {
        let settings = load_settings(&config_dir, &overrides)?;
        mailgate_log::init(&settings.config.get("syslog_name"), "master");
        redirect_log(&settings.config)?;
        let owner = if nix::unistd::geteuid().is_root() {
            Some(
                lookup_user("mail_owner", &settings.config.get("mail_owner"))
                    .map_err(|e| MasterError::Setup(e.to_string()))?,
            )
        } else {
            warning!(
                "not running as root (uid {}): services run unprivileged, without chroot",
                nix::unistd::getuid()
            );
            None
        };
        let queue_directory = PathBuf::from(settings.config.get("queue_directory"));
        spool::create(&queue_directory, owner.as_ref())
            .map_err(|e| MasterError::Setup(e.to_string()))?;
        let pid_lock =
            PidLock::acquire(&queue_directory).map_err(|e| MasterError::Setup(e.to_string()))?;
        spool::remove_stale_state_files(&queue_directory);

        let mut mask = SigSet::empty();
        for signal in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ] {
            mask.add(signal);
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
            .map_err(|e| MasterError::Setup(format!("cannot block signals: {e}")))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| MasterError::Setup(format!("cannot create signalfd: {e}")))?;
        let (watch_read, watch_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| MasterError::Setup(format!("cannot create pipe: {e}")))?;

        let mut master = Master {
            config_dir,
            overrides,
            owner,
            services: Vec::new(),
            retiring: HashMap::new(),
            signals,
            watch_read: high_fd(watch_read)?,
            _watch_write: watch_write,
            table_stamps: stamps(&settings.table_files),
            table_files: settings.table_files.clone(),
            next_table_check: Instant::now(),
            timing: Timing::from(&settings.config),
            queue_directory,
            _pid_lock: pid_lock,
        };
        let log_mode = matches!(
            Mode::parse(&settings.config.get("sandbox_mode")),
            Ok(Mode::Log)
        );
        master.install(settings)?;
        info!(
            "daemon started -- version {}, configuration {}",
            env!("CARGO_PKG_VERSION"),
            master.config_dir.display()
        );
        if log_mode {
            warning!(
                "SANDBOX IN LOG MODE (sandbox_mode = log): calls outside a service's seccomp \
                 profile are logged, not stopped; the services are NOT fully confined"
            );
        }
        sd_notify("READY=1");
        Ok(master)
    }

    /// Starts the services of a (new) configuration, reusing listeners that
    /// already exist for the same endpoint.
    fn install(&mut self, settings: Settings) -> Result<(), MasterError> {
        self.timing = Timing::from(&settings.config);
        let mut old: HashMap<String, Running> = self
            .services
            .drain(..)
            .map(|r| (r.spec.key.clone(), r))
            .collect();
        let mut listeners: HashMap<Endpoint, OwnedFd> = HashMap::new();
        for (_, running) in old.drain() {
            if let Some(pid) = running.pid {
                self.retiring.insert(pid, running.spec.key.clone());
                let _ = kill(pid, Signal::SIGTERM);
            }
            listeners.insert(running.spec.endpoint.clone(), running.listener);
        }
        let mut fresh = Vec::new();
        for spec in settings.services {
            let listener = match listeners.remove(&spec.endpoint) {
                Some(fd) => fd,
                None => high_fd(
                    listen_on(&spec.endpoint, self.owner.as_ref(), spec.socket_mode)
                        .map_err(|e| MasterError::Setup(e.to_string()))?,
                )?,
            };
            fresh.push(Running {
                spec,
                listener,
                pid: None,
                started: Instant::now(),
                startup_deaths: 0,
                restart_at: Some(Instant::now()),
            });
        }
        self.services = fresh;
        self.table_files = settings.table_files;
        self.table_stamps = stamps(&self.table_files);
        self.start_due();
        Ok(())
    }

    pub fn run(&mut self) -> ExitCode {
        loop {
            let timeout = self.poll_timeout();
            let mut fds = [PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    error!("poll: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            let mut stop = None;
            let mut reload = false;
            while let Ok(Some(info)) = self.signals.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGTERM) => stop = Some(Signal::SIGTERM),
                    Ok(Signal::SIGINT) => stop = Some(Signal::SIGINT),
                    Ok(Signal::SIGHUP) => reload = true,
                    _ => {}
                }
            }
            self.reap();
            if let Some(signal) = stop {
                info!("terminating on signal {}", signal as i32);
                return self.drain();
            }
            if reload {
                self.reload("reload");
            } else if Instant::now() >= self.next_table_check {
                self.check_tables();
            }
            self.start_due();
        }
    }

    fn poll_timeout(&self) -> PollTimeout {
        let now = Instant::now();
        let mut next = self.next_table_check;
        for running in &self.services {
            if let Some(at) = running.restart_at {
                next = next.min(at);
            }
        }
        let wait = next
            .saturating_duration_since(now)
            .min(Duration::from_secs(5));
        PollTimeout::try_from(wait.as_millis() as i32 + 1).unwrap_or(PollTimeout::MAX)
    }

    fn reload(&mut self, why: &str) {
        match load_settings(&self.config_dir, &self.overrides) {
            Ok(settings) => {
                mailgate_log::init(&settings.config.get("syslog_name"), "master");
                info!(
                    "{why} -- version {}, configuration {}",
                    env!("CARGO_PKG_VERSION"),
                    self.config_dir.display()
                );
                if let Err(e) = self.install(settings) {
                    error!("reload failed: {e}");
                }
            }
            Err(e) => error!("reload failed, keeping the running configuration: {e}"),
        }
    }

    fn check_tables(&mut self) {
        self.next_table_check = Instant::now() + self.timing.table_check_interval;
        let now = stamps(&self.table_files);
        if now != self.table_stamps {
            let changed: Vec<String> = self
                .table_files
                .iter()
                .zip(now.iter().zip(&self.table_stamps))
                .filter(|(_, (a, b))| a != b)
                .map(|(path, _)| path.display().to_string())
                .collect();
            self.table_stamps = now;
            self.reload(&format!("table {} changed -- reload", changed.join(", ")));
        }
    }

    /// Collects exited children and decides what to do about each.
    fn reap(&mut self) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => status,
            };
            let Some((pid, abnormal)) = how_it_ended(status) else {
                continue;
            };
            let _ = std::fs::remove_file(mailgate_sandbox::sandbox_state_file(
                &self.queue_directory,
                pid.as_raw() as u32,
            ));
            if let Some(key) = self.retiring.remove(&pid) {
                if let Some(why) = abnormal {
                    warning!("process {key} pid {pid} {why} while draining");
                }
                self.release_successor(&key);
                continue;
            }
            let Some(running) = self.services.iter_mut().find(|r| r.pid == Some(pid)) else {
                continue;
            };
            running.pid = None;
            let program = running.spec.program.display().to_string();
            if let Some(why) = &abnormal {
                warning!("process {program} pid {pid} {why}");
            }
            let died_at_startup = running.started.elapsed() < STARTUP_GRACE;
            running.startup_deaths = if died_at_startup {
                running.startup_deaths + 1
            } else {
                0
            };
            if running.startup_deaths >= STARTUP_DEATHS_BEFORE_THROTTLE {
                let throttle = self.timing.service_throttle_time;
                warning!(
                    "{program}: bad command startup -- throttling for {}s",
                    throttle.as_secs()
                );
                running.restart_at = Some(Instant::now() + throttle);
            } else {
                running.restart_at = Some(Instant::now());
            }
        }
    }

    /// A one-instance service waits for its predecessor to exit.
    fn release_successor(&mut self, key: &str) {
        let still_draining = self.retiring.values().any(|k| k == key);
        if !still_draining {
            for running in &mut self.services {
                if running.spec.key == key && running.pid.is_none() && running.restart_at.is_none()
                {
                    running.restart_at = Some(Instant::now());
                }
            }
        }
    }

    fn start_due(&mut self) {
        let now = Instant::now();
        for index in 0..self.services.len() {
            let running = &self.services[index];
            let due = running.pid.is_none() && running.restart_at.is_some_and(|at| at <= now);
            if !due {
                continue;
            }
            let key = running.spec.key.clone();
            if running.spec.exclusive && self.retiring.values().any(|k| *k == key) {
                self.services[index].restart_at = None;
                continue;
            }
            let result = spawn(&self.services[index], &self.watch_read);
            let running = &mut self.services[index];
            running.restart_at = None;
            running.started = Instant::now();
            match result {
                Ok(pid) => running.pid = Some(pid),
                Err(e) => {
                    error!("cannot start {}: {e}", running.spec.program.display());
                    running.restart_at = Some(Instant::now() + Duration::from_secs(10));
                }
            }
        }
    }

    /// SIGTERM to every child, a bounded wait for sessions to finish, then
    /// SIGKILL for what is left. A child that ends otherwise than by exit
    /// status 0 is logged, as at any other time.
    fn drain(&mut self) -> ExitCode {
        sd_notify("STOPPING=1");
        let drain_time = self.timing.master_drain_time;
        let mut children: Vec<Pid> = self.services.iter().filter_map(|r| r.pid).collect();
        children.extend(self.retiring.keys().copied());
        for pid in &children {
            let _ = kill(*pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + drain_time;
        while !children.is_empty() && Instant::now() < deadline {
            children.retain(|pid| match waitpid(*pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => true,
                Ok(status) => {
                    if let Some((_, Some(why))) = how_it_ended(status) {
                        warning!("process pid {pid} {why} while stopping");
                    }
                    let _ = std::fs::remove_file(mailgate_sandbox::sandbox_state_file(
                        &self.queue_directory,
                        pid.as_raw() as u32,
                    ));
                    false
                }
                Err(_) => false,
            });
            if !children.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        for pid in &children {
            warning!(
                "pid {pid} did not stop within {}s; killing it",
                drain_time.as_secs()
            );
            let _ = kill(*pid, Signal::SIGKILL);
            let _ = waitpid(*pid, None);
        }
        ExitCode::SUCCESS
    }
}

/// The pid of a child that ended, and why when it was not exit status 0.
fn how_it_ended(status: WaitStatus) -> Option<(Pid, Option<String>)> {
    match status {
        WaitStatus::Exited(pid, code) => {
            Some((pid, (code != 0).then(|| format!("exit status {code}"))))
        }
        WaitStatus::Signaled(pid, signal, _) => {
            Some((pid, Some(format!("killed by signal {}", signal as i32))))
        }
        _ => None,
    }
}

/// fork+exec of one service. The child gets the listener on descriptor 3,
/// the master-watch pipe on 4, an empty signal mask, and stderr (the log).
fn spawn(running: &Running, watch_read: &OwnedFd) -> std::io::Result<Pid> {
    let listener = running.listener.as_raw_fd();
    let watch = watch_read.as_raw_fd();
    let mut command = Command::new(&running.spec.program);
    command
        .args(running.spec.handoff.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Only the master talks to the service manager.
        .env_remove(NOTIFY_SOCKET);
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe calls (dup2, sigprocmask) on descriptors the
    // child inherited. The master is single-threaded, so no lock can be held
    // by another thread at fork.
    unsafe {
        command.pre_exec(move || {
            // Both sources are >= HIGH_FD, so neither dup2 overwrites the
            // other's source; dup2 clears close-on-exec on the copies.
            for (from, to) in [(listener, LISTEN_FD), (watch, MASTER_WATCH_FD)] {
                if libc::dup2(from, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            Ok(())
        });
    }
    let child = command.spawn()?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// The service manager's notification socket (systemd's Type=notify).
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells the service manager about the master's state (sd_notify(3)): one
/// datagram to $NOTIFY_SOCKET, a path or, with a leading `@`, an abstract
/// name. Without the variable (not started by systemd) it does nothing; a
/// failure is logged and is never fatal.
fn sd_notify(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    let result = UnixDatagram::unbound().and_then(|socket| {
        let address = match target.as_bytes().strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None => SocketAddr::from_pathname(&target)?,
        };
        socket.send_to_addr(state.as_bytes(), &address)
    });
    if let Err(e) = result {
        warning!(
            "cannot notify the service manager at {} ({state}): {e}",
            target.to_string_lossy()
        );
    }
}

fn high_fd(fd: OwnedFd) -> Result<OwnedFd, MasterError> {
    let raw = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(HIGH_FD))
        .map_err(|e| MasterError::Setup(format!("cannot move descriptor: {e}")))?;
    // SAFETY: F_DUPFD_CLOEXEC just returned a new descriptor that nothing
    // else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}

/// With maillog_file set, the master's stderr (and so every child's) goes
/// to that file, opened for appending so concurrent lines never interleave
/// and no worker can write anywhere but at its end (the workers may neither
/// clear O_APPEND nor truncate). Opened without following a link, and only
/// when it is a regular file.
fn redirect_log(config: &MainConfig) -> Result<(), MasterError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = config.get("maillog_file");
    if path.is_empty() {
        return Ok(());
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(&path)
        .map_err(|e| MasterError::Setup(format!("cannot open maillog_file {path}: {e}")))?;
    let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
    if !is_file {
        return Err(MasterError::Setup(format!(
            "maillog_file {path} is not a regular file"
        )));
    }
    nix::unistd::dup2_stderr(&file)
        .map_err(|e| MasterError::Setup(format!("cannot redirect the log: {e}")))?;
    Ok(())
}

fn load_settings(
    config_dir: &Path,
    overrides: &[(String, String)],
) -> Result<Settings, MasterError> {
    let master_cf =
        MasterConfig::load(config_dir).map_err(|e| MasterError::Config(e.to_string()))?;
    let config = MainConfig::load_with_references(config_dir, &master_cf.parameter_references())
        .map_err(|e| MasterError::Config(e.to_string()))?;
    let command_line: Vec<Override> = overrides
        .iter()
        .map(|(name, value)| Override {
            name: name.clone(),
            value: value.clone(),
            origin: PathBuf::from("command line"),
            line: 0,
        })
        .collect();
    let config = config
        .with_overrides(&command_line)
        .map_err(|e| MasterError::Config(e.to_string()))?;
    // The same check as `mailgate check`: nothing it refuses ever runs,
    // including a setting mailgate would not carry out.
    let report = mailgate_config::check(config_dir, &command_line);
    if !report.errors.is_empty() {
        let list: Vec<String> = report.errors.iter().map(|d| d.to_string()).collect();
        return Err(MasterError::Config(list.join("\n")));
    }
    let daemon_directory = match config.get("daemon_directory") {
        dir if dir.is_empty() => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .ok_or_else(|| {
                MasterError::Setup("cannot find the directory of the master binary".into())
            })?,
        dir => PathBuf::from(dir),
    };
    let queue_directory = PathBuf::from(config.get("queue_directory"));
    let mut services = Vec::new();
    let mut table_files = Vec::new();
    collect_table_files(&config, &mut table_files);
    for entry in &master_cf.services {
        let service_config = config
            .with_overrides(&entry.overrides)
            .map_err(|e| MasterError::Config(e.to_string()))?;
        collect_table_files(&service_config, &mut table_files);
        // A bad value would only show as workers dying at start-up.
        Mode::parse(&service_config.get("sandbox_mode"))
            .map_err(|e| MasterError::Config(format!("service {}: {e}", entry.name)))?;
        let program = daemon_directory.join(entry.program());
        if !program.is_file() {
            return Err(MasterError::Config(format!(
                "{}:{}: service {}: no program {}",
                entry.file.display(),
                entry.line,
                entry.name,
                program.display()
            )));
        }
        for endpoint in endpoints(entry, &config, &queue_directory)
            .map_err(|e| MasterError::Config(e.to_string()))?
        {
            let socket_mode = mailgate_sandbox::profiles::Profile::of_program(entry.program())
                .map_or(0o660, |profile| profile.socket_mode());
            services.push(ServiceSpec {
                socket_mode,
                key: format!("{}/{:?}/{endpoint}", entry.name, entry.kind),
                handoff: handoff_for(entry, config_dir, &command_line, &config),
                endpoint,
                program: program.clone(),
                exclusive: entry.maxproc == Some(1),
            });
        }
    }
    table_files.sort();
    table_files.dedup();
    Ok(Settings {
        config,
        services,
        table_files,
    })
}

fn handoff_for(
    entry: &ServiceEntry,
    config_dir: &Path,
    command_line: &[Override],
    config: &MainConfig,
) -> Handoff {
    let maxproc = match entry.maxproc {
        // 0 means no limit in master.cf; a process still needs a bound.
        Some(0) => 10_000,
        Some(n) => n,
        None => config.int("default_process_limit").clamp(1, 10_000) as u32,
    };
    let overrides = command_line
        .iter()
        .chain(entry.overrides.iter())
        .map(|o| (o.name.clone(), o.value.clone(), o.line))
        .collect();
    Handoff {
        config_dir: config_dir.to_path_buf(),
        service: entry.name.clone(),
        kind: format!("{:?}", entry.kind).to_lowercase(),
        command: entry.command.clone(),
        chroot: entry.chroot,
        unprivileged: entry.unprivileged,
        maxproc,
        overrides,
        args: entry.args.clone(),
    }
}

const FILE_TABLE_TYPES: [&str; 7] = [
    "hash", "btree", "lmdb", "texthash", "cidr", "regexp", "pcre",
];

/// Source files of every file-backed lookup table named in any parameter,
/// so the master can reload when one changes.
fn collect_table_files(config: &MainConfig, out: &mut Vec<PathBuf>) {
    for (name, _) in config.all() {
        if !config.is_known(&name) {
            continue;
        }
        for item in config.list(&name) {
            let Some((kind, path)) = item.split_once(':') else {
                continue;
            };
            let kind = kind.trim_start_matches("proxy:");
            if FILE_TABLE_TYPES.contains(&kind) && !path.is_empty() {
                let path = Path::new(path);
                out.push(if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    config.config_dir().join(path)
                });
            }
        }
    }
}

fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}
