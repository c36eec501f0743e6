//! `start`, `stop`, `status` and `reload`: control the master, like `postfix start`.
//!
//! The master writes its pid (decimal, newline) to QUEUE_DIR/pid/master.pid and holds
//! an exclusive flock(2) on that file while it runs. The lock is the authority on
//! whether a master runs; the pid only says which process to signal.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, geteuid};

use crate::check;
use crate::error::{Error, say};
use crate::locate::{self, Invocation};

/// How often `stop` looks whether the master is gone.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long `stop` waits beyond master_drain_time.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long to wait for a master that holds the lock but has not yet written its pid.
const PID_WRITE_WAIT: Duration = Duration::from_secs(1);

/// Whether a master runs, according to its pid file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasterState {
    Running(Pid),
    Stopped,
}

/// What the pid file's lock says.
#[derive(Debug)]
enum LockState {
    /// No pid file: no master ever ran with this spool, or the spool does not exist.
    Missing,
    /// Nobody holds the lock: no master runs (a leftover pid file is stale).
    Free,
    /// A process holds the lock.
    Held(File),
    /// The file system does not support flock(2): only the pid can tell.
    Unsupported(File),
}

fn lock_state(path: &Path) -> Result<LockState, Error> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LockState::Missing),
        Err(source) => {
            return Err(Error::PidFile {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    // flock(2) locks do not care whether the file is open for reading or writing.
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        // Dropping the lock releases it at once, so a starting master is not kept out.
        Ok(_lock) => Ok(LockState::Free),
        Err((file, Errno::EWOULDBLOCK)) => Ok(LockState::Held(file)),
        Err((file, _)) => Ok(LockState::Unsupported(file)),
    }
}

/// The pid in the file's text: decimal digits, a positive number.
fn parse_pid(text: &str) -> Option<Pid> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<i32>()
        .ok()
        .filter(|&n| n > 0)
        .map(Pid::from_raw)
}

fn read_pid(path: &Path) -> Result<Pid, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::PidFile {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    parse_pid(&text).ok_or_else(|| Error::BadPid {
        path: path.to_path_buf(),
        content: text.chars().take(40).collect(),
    })
}

/// Reads the pid of a master that holds the lock, giving one that has just taken the
/// lock a moment to write its pid.
fn read_pid_of_holder(path: &Path) -> Result<Pid, Error> {
    let deadline = Instant::now() + PID_WRITE_WAIT;
    loop {
        match read_pid(path) {
            Err(Error::BadPid { .. }) if Instant::now() < deadline => sleep(POLL_INTERVAL),
            result => return result,
        }
    }
}

/// True when the process exists (EPERM: it exists, but belongs to someone else).
fn alive(pid: Pid) -> bool {
    matches!(kill(pid, None), Ok(()) | Err(Errno::EPERM))
}

/// Whether a master runs with the spool whose pid file is `path`.
pub fn master_state(path: &Path) -> Result<MasterState, Error> {
    match lock_state(path)? {
        LockState::Missing | LockState::Free => Ok(MasterState::Stopped),
        LockState::Held(_file) => {
            let pid = read_pid_of_holder(path)?;
            if alive(pid) {
                Ok(MasterState::Running(pid))
            } else {
                Err(Error::StalePid {
                    path: path.to_path_buf(),
                    pid,
                })
            }
        }
        LockState::Unsupported(_file) => {
            let pid = read_pid(path)?;
            Ok(if alive(pid) {
                MasterState::Running(pid)
            } else {
                MasterState::Stopped
            })
        }
    }
}

fn send(pid: Pid, signal: Signal) -> Result<(), Error> {
    kill(pid, signal).map_err(|errno| Error::Signal { pid, signal, errno })
}

/// The master is gone when its process is, or when it has let go of the pid file's
/// lock (a master that exited but was not yet reaped still answers kill(2)).
fn has_exited(pid: Pid, path: &Path) -> bool {
    !alive(pid) || matches!(lock_state(path), Ok(LockState::Missing | LockState::Free))
}

fn wait_for_exit(pid: Pid, path: &Path, limit: Duration) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        if has_exited(pid, path) {
            return Ok(());
        }
        if started.elapsed() >= limit {
            return Err(Error::StopTimeout { pid, waited: limit });
        }
        sleep(POLL_INTERVAL);
    }
}

/// `mailgate start`: check the configuration, then become the master (exec), so the
/// gateway runs in the foreground under whoever started this command. Returns only
/// when it cannot start.
pub fn start(invocation: &Invocation) -> Result<(), Error> {
    check::run(invocation)?;
    let config = invocation.load()?;
    if let MasterState::Running(pid) = master_state(&locate::pid_file(&config))? {
        return Err(Error::AlreadyRunning(pid));
    }
    if geteuid().is_root() {
        for parameter in users_needed(invocation) {
            let name = config.get(parameter);
            match User::from_name(&name) {
                Ok(Some(_)) => {}
                Ok(None) => return Err(Error::NoSuchUser { parameter, name }),
                Err(errno) => {
                    return Err(Error::UserLookup {
                        parameter,
                        name,
                        errno,
                    });
                }
            }
        }
    } else {
        say("warning: not running as root: the gateway runs unprivileged, without chroot");
    }
    let master = locate::daemon_directory(&config)?.join("master");
    let mut command = Command::new(&master);
    command.arg("-c").arg(&invocation.config_dir);
    for setting in &invocation.settings {
        command.arg("-o").arg(setting.to_arg());
    }
    // exec(2) returns only when it fails.
    let source = command.exec();
    Err(Error::Exec {
        path: master,
        source,
    })
}

/// The users the services of master.cf run as (their profiles' users), so
/// that a missing one stops the start with a clear message instead of a
/// service that dies at start-up.
fn users_needed(invocation: &Invocation) -> Vec<&'static str> {
    let mut users = vec!["mail_owner"];
    let commands: Vec<String> = mailgate_config::MasterConfig::load(&invocation.config_dir)
        .map(|m| m.services.iter().map(|s| s.program().to_string()).collect())
        .unwrap_or_default();
    for (command, parameter) in [
        ("smtpd", "smtpd_owner"),
        ("relay", "relay_owner"),
        ("scanner", "scanner_owner"),
    ] {
        if commands.iter().any(|c| c == command) {
            users.push(parameter);
        }
    }
    users
}

/// `mailgate stop`: SIGTERM to the master, then wait until it has drained and exited.
pub fn stop(invocation: &Invocation) -> Result<(), Error> {
    let config = invocation.load()?;
    let path = locate::pid_file(&config);
    let MasterState::Running(pid) = master_state(&path)? else {
        return Err(Error::NotRunning);
    };
    say("stopping the mail system");
    match kill(pid, Signal::SIGTERM) {
        Ok(()) => {}
        // It exited by itself since we looked.
        Err(Errno::ESRCH) => return Ok(()),
        Err(errno) => {
            return Err(Error::Signal {
                pid,
                signal: Signal::SIGTERM,
                errno,
            });
        }
    }
    wait_for_exit(pid, &path, config.time("master_drain_time") + STOP_GRACE)
}

/// `mailgate status`: succeeds when the master runs, and prints on standard
/// output how each of its processes is confined, as /proc shows it, and the
/// Landlock state each worker recorded in the spool's pid/ when it entered
/// its sandbox.
///
/// A configuration that no longer loads (edited since the start) does not
/// hide a running gateway: the spool is then found by reading
/// queue_directory leniently, and the errors are pointed at as a warning.
pub fn status(invocation: &Invocation) -> Result<(), Error> {
    let pid_file = match invocation.load() {
        Ok(config) => locate::pid_file(&config),
        Err(Error::Config(errors)) => {
            let spool = locate::queue_directory_leniently(invocation);
            say(format_args!(
                "warning: the configuration in {} has {} error(s) (mailgate check lists them); \
                 looking for the mail system with queue_directory = {}",
                invocation.config_dir.display(),
                errors.len(),
                spool.display()
            ));
            locate::pid_file_in(&spool)
        }
        Err(e) => return Err(e),
    };
    match master_state(&pid_file)? {
        MasterState::Running(pid) => {
            say(format_args!("the mail system is running: PID: {pid}"));
            // QUEUE_DIR/pid/master.pid
            let spool = pid_file
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("/"))
                .to_path_buf();
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{}", Confinement::HEADER);
            for child in children_of(pid) {
                if let Some(mut confinement) = Confinement::read(child) {
                    confinement.landlock = landlock_state(&spool, child);
                    let _ = writeln!(out, "{confinement}");
                }
            }
            Ok(())
        }
        MasterState::Stopped => Err(Error::NotRunning),
    }
}

/// What a worker recorded about Landlock (`landlock=...` in
/// pid/sandbox.PID); `-` when it recorded nothing (a process that has not
/// reached its sandbox yet, or not a worker).
fn landlock_state(spool: &Path, pid: Pid) -> String {
    let path = mailgate_sandbox::sandbox_state_file(spool, pid.as_raw() as u32);
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("landlock=").map(str::to_string))
        })
        .unwrap_or_else(|| "-".to_string())
}

/// How one process is confined, from /proc/PID/{status,root,cmdline,comm}.
#[derive(Debug, PartialEq, Eq)]
struct Confinement {
    /// master.cf's service name (the worker's `-n`), or `-`.
    service: String,
    program: String,
    pid: Pid,
    /// Real, effective, saved and filesystem ids, as the kernel lists them.
    uid: String,
    gid: String,
    /// The root directory; `?` when /proc does not tell us (not root).
    root: String,
    cap_eff: String,
    cap_prm: String,
    cap_bnd: String,
    no_new_privs: String,
    /// 0 disabled, 1 strict, 2 filter.
    seccomp: String,
    /// As the worker recorded it: `enforced (ABI 7)`, `partial (...)`,
    /// `not enforced (...)`, or `-`.
    landlock: String,
}

impl Confinement {
    const HEADER: &str = "service              program  pid      uid      gid      root                                CapEff           CapPrm           CapBnd           NoNewPrivs Seccomp    Landlock";

    fn read(pid: Pid) -> Option<Confinement> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let root = std::fs::read_link(format!("/proc/{pid}/root"))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "?".to_string());
        let mut confinement = Confinement::parse(pid, &status, &cmdline);
        confinement.root = root;
        Some(confinement)
    }

    fn parse(pid: Pid, status: &str, cmdline: &[u8]) -> Confinement {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(","))
                .unwrap_or_else(|| "?".to_string())
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let service = args
            .iter()
            .position(|a| a == "-n")
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| "-".to_string());
        let seccomp = match field("Seccomp").as_str() {
            "0" => "0 (off)".to_string(),
            "1" => "1 (strict)".to_string(),
            "2" => "2 (filter)".to_string(),
            other => other.to_string(),
        };
        Confinement {
            service,
            program: field("Name"),
            pid,
            uid: field("Uid"),
            gid: field("Gid"),
            root: "?".to_string(),
            cap_eff: field("CapEff"),
            cap_prm: field("CapPrm"),
            cap_bnd: field("CapBnd"),
            no_new_privs: field("NoNewPrivs"),
            seccomp,
            landlock: "-".to_string(),
        }
    }
}

impl std::fmt::Display for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids are shown once when all four agree, as they do in a worker.
        let ids = |list: &str| {
            let mut parts = list.split(',');
            let first = parts.next().unwrap_or("?");
            if parts.all(|p| p == first) {
                first.to_string()
            } else {
                list.to_string()
            }
        };
        write!(
            f,
            "{:<20} {:<8} {:<8} {:<8} {:<8} {:<35} {:<16} {:<16} {:<16} {:<10} {:<10} {}",
            self.service,
            self.program,
            self.pid,
            ids(&self.uid),
            ids(&self.gid),
            self.root,
            self.cap_eff,
            self.cap_prm,
            self.cap_bnd,
            self.no_new_privs,
            self.seccomp,
            self.landlock
        )
    }
}

/// The processes whose parent is `parent`, from /proc/PID/stat.
fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: Vec<Pid> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parent_in_stat(&stat))
                == Some(parent.as_raw())
        })
        .map(Pid::from_raw)
        .collect();
    children.sort_by_key(|p| p.as_raw());
    children
}

/// The ppid field of /proc/PID/stat; the command name before it may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parent_in_stat(stat: &str) -> Option<i32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `mailgate reload`: SIGHUP to the master, which rereads its configuration. A
/// configuration with errors is refused, so the running gateway keeps its old one.
pub fn reload(invocation: &Invocation) -> Result<(), Error> {
    let config = invocation.load()?;
    let MasterState::Running(pid) = master_state(&locate::pid_file(&config))? else {
        return Err(Error::NotRunning);
    };
    check::run(invocation)?;
    say("refreshing the mail system");
    match send(pid, Signal::SIGHUP) {
        Err(Error::Signal {
            errno: Errno::ESRCH,
            ..
        }) => Err(Error::NotRunning),
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use std::process::Child;

    fn locked(path: &Path) -> Flock<File> {
        Flock::lock(File::open(path).unwrap(), FlockArg::LockExclusiveNonblock).unwrap()
    }

    fn sleeper() -> Child {
        Command::new("sleep").arg("30").spawn().unwrap()
    }

    fn pid_of(child: &Child) -> Pid {
        Pid::from_raw(i32::try_from(child.id()).unwrap())
    }

    #[test]
    fn confinement_is_read_from_proc_text() {
        let status = "Name:\tsmtpd\nUid:\t999\t999\t999\t999\nGid:\t995\t995\t995\t995\n\
                      CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
                      CapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";
        let cmdline = b"/usr/lib/mailgate/smtpd\0-c\0/etc/mailgate\0-n\x00127.0.0.1:25\0-t\0inet\0";
        let c = Confinement::parse(Pid::from_raw(42), status, cmdline);
        assert_eq!(c.service, "127.0.0.1:25");
        assert_eq!(c.program, "smtpd");
        assert_eq!(c.uid, "999,999,999,999");
        assert_eq!(c.seccomp, "2 (filter)");
        assert_eq!(c.no_new_privs, "1");
        let line = c.to_string();
        assert!(
            line.starts_with("127.0.0.1:25         smtpd    42       999      995 "),
            "{line}"
        );
        let unknown = Confinement::parse(Pid::from_raw(1), "", b"");
        assert_eq!(
            (unknown.service.as_str(), unknown.seccomp.as_str()),
            ("-", "?")
        );
        assert_eq!(parent_in_stat("7 (a) b) S 1 7 7"), Some(1));
        assert_eq!(parent_in_stat("garbage"), None);
    }

    #[test]
    fn pids_parse() {
        assert_eq!(parse_pid("1234\n"), Some(Pid::from_raw(1234)));
        assert_eq!(parse_pid(" 1\n"), Some(Pid::from_raw(1)));
        for bad in ["", "\n", "0", "-1", "+5", "12a", "99999999999", "1 2"] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_lock_decides() {
        let dir = TestDir::new();
        let path = dir.path().join("master.pid");
        assert_eq!(master_state(&path).unwrap(), MasterState::Stopped);

        let me = Pid::this();
        std::fs::write(&path, format!("{me}\n")).unwrap();
        // A pid file nobody locks is stale, even though the process exists.
        assert_eq!(master_state(&path).unwrap(), MasterState::Stopped);

        let lock = locked(&path);
        assert_eq!(master_state(&path).unwrap(), MasterState::Running(me));

        std::fs::write(&path, "garbage").unwrap();
        assert!(
            matches!(master_state(&path), Err(Error::BadPid { content, .. }) if content == "garbage")
        );

        let mut child = Command::new("true").spawn().unwrap();
        let dead = pid_of(&child);
        child.wait().unwrap();
        std::fs::write(&path, format!("{dead}\n")).unwrap();
        assert!(matches!(master_state(&path), Err(Error::StalePid { pid, .. }) if pid == dead));
        drop(lock);
        assert_eq!(master_state(&path).unwrap(), MasterState::Stopped);
    }

    #[test]
    fn waiting_for_the_master_to_exit() {
        let dir = TestDir::new();
        let path = dir.path().join("master.pid");
        let mut child = sleeper();
        let pid = pid_of(&child);
        std::fs::write(&path, format!("{pid}\n")).unwrap();
        let lock = locked(&path);
        assert!(matches!(
            wait_for_exit(pid, &path, Duration::from_millis(250)),
            Err(Error::StopTimeout { .. })
        ));
        send(pid, Signal::SIGTERM).unwrap();
        // Reap it, as the master's parent would.
        let reaper = std::thread::spawn(move || child.wait());
        wait_for_exit(pid, &path, Duration::from_secs(10)).unwrap();
        reaper.join().unwrap().unwrap();
        drop(lock);

        // A master that let go of its lock counts as gone, even before it is reaped.
        let mut child = sleeper();
        let pid = pid_of(&child);
        std::fs::write(&path, format!("{pid}\n")).unwrap();
        wait_for_exit(pid, &path, Duration::from_secs(1)).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
