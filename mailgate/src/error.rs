//! What can go wrong in a `mailgate` command, and how it is told to the administrator.

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use mailgate_config::Diagnostic;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Writes one `mailgate: ...` line to stderr. When stderr itself fails there is nowhere
/// left to report that, so the write error is ignored.
pub fn say(text: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "mailgate: {text}");
}

/// Why a command failed. Every variant makes `mailgate` exit with status 1.
#[derive(Debug)]
pub enum Error {
    /// The configuration has mistakes; each is printed as `mailgate: error: FILE:LINE: ...`.
    Config(Vec<Diagnostic>),
    /// `config` was asked about parameters that do not exist.
    UnknownParameters(Vec<String>),
    NotRunning,
    AlreadyRunning(Pid),
    NoSuchUser {
        parameter: &'static str,
        name: String,
    },
    UserLookup {
        parameter: &'static str,
        name: String,
        errno: Errno,
    },
    PidFile {
        path: PathBuf,
        source: io::Error,
    },
    BadPid {
        path: PathBuf,
        content: String,
    },
    /// The pid file is locked (so a master runs) but names a process that does not exist.
    StalePid {
        path: PathBuf,
        pid: Pid,
    },
    Signal {
        pid: Pid,
        signal: Signal,
        errno: Errno,
    },
    StopTimeout {
        pid: Pid,
        waited: Duration,
    },
    CurrentExe(io::Error),
    Exec {
        path: PathBuf,
        source: io::Error,
    },
    Output(io::Error),
    Queue(crate::queue::QueueError),
    Quarantine(crate::quarantine::QuarantineError),
    Spam(crate::scan::SpamCmdError),
    Stats(crate::stats::StatsError),
    Imap(crate::imap_learn::ImapLearnError),
    Dkim(crate::dkim::DkimCmdError),
    /// `scan` or `learn` could not give up privilege before reading mail.
    Confine(String),
    /// The sandboxed part of a command failed and has said why.
    Reported,
}

impl Error {
    /// Prints the error to stderr in Postfix's style.
    pub fn report(&self) {
        match self {
            Error::Config(diagnostics) => {
                for d in diagnostics {
                    say(format_args!("error: {d}"));
                }
            }
            Error::UnknownParameters(names) => {
                for name in names {
                    match mailgate_config::suggest_parameter(name) {
                        Some(known) => say(format_args!(
                            "warning: {name}: unknown parameter; did you mean \"{known}\"?"
                        )),
                        None => say(format_args!("warning: {name}: unknown parameter")),
                    }
                }
            }
            Error::NotRunning => say(self),
            Error::Reported => {}
            _ => say(format_args!("fatal: {self}")),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(diagnostics) => {
                write!(f, "{} configuration error(s)", diagnostics.len())
            }
            Error::UnknownParameters(names) => {
                write!(f, "unknown parameter(s): {}", names.join(", "))
            }
            Error::NotRunning => write!(f, "the mail system is not running"),
            Error::AlreadyRunning(pid) => {
                write!(f, "the mail system is already running: PID: {pid}")
            }
            Error::NoSuchUser { parameter, name } => write!(
                f,
                "{parameter} = {name}: no such user; create it with \
                 \"useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin {name}\""
            ),
            Error::UserLookup {
                parameter,
                name,
                errno,
            } => {
                write!(f, "{parameter} = {name}: cannot look up the user: {errno}")
            }
            Error::PidFile { path, source } => write!(
                f,
                "cannot read the master's pid file {}: {source}",
                path.display()
            ),
            Error::BadPid { path, content } => write!(
                f,
                "the master's pid file {} holds no process id (found {content:?})",
                path.display()
            ),
            Error::StalePid { path, pid } => write!(
                f,
                "{} is locked, but the process it names (PID {pid}) does not exist; \
                 is a master running with this queue_directory?",
                path.display()
            ),
            Error::Signal { pid, signal, errno } => {
                write!(f, "cannot send {signal} to the master (PID {pid}): {errno}")?;
                if *errno == Errno::EPERM {
                    write!(f, "; run this command as root")?;
                }
                Ok(())
            }
            Error::StopTimeout { pid, waited } => write!(
                f,
                "the master (PID {pid}) is still running {} seconds after SIGTERM",
                waited.as_secs()
            ),
            Error::CurrentExe(source) => write!(
                f,
                "cannot find the directory of the mailgate program ({source}); \
                 set daemon_directory in main.cf"
            ),
            Error::Exec { path, source } => {
                write!(f, "cannot run {}: {source}", path.display())?;
                if source.kind() == io::ErrorKind::NotFound {
                    write!(f, "; check daemon_directory in main.cf")?;
                }
                Ok(())
            }
            Error::Output(source) => write!(f, "cannot write the output: {source}"),
            Error::Queue(e) => write!(f, "{e}"),
            Error::Quarantine(e) => write!(f, "{e}"),
            Error::Spam(e) => write!(f, "{e}"),
            Error::Stats(e) => write!(f, "{e}"),
            Error::Imap(e) => write!(f, "{e}"),
            Error::Dkim(e) => write!(f, "{e}"),
            Error::Confine(why) => {
                write!(f, "cannot confine the command before reading mail: {why}")
            }
            Error::Reported => write!(f, "failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::PidFile { source, .. }
            | Error::Exec { source, .. }
            | Error::CurrentExe(source)
            | Error::Output(source) => Some(source),
            Error::UserLookup { errno, .. } | Error::Signal { errno, .. } => Some(errno),
            Error::Queue(e) => Some(e),
            Error::Quarantine(e) => Some(e),
            Error::Spam(e) => Some(e),
            Error::Stats(e) => Some(e),
            Error::Imap(e) => Some(e),
            Error::Dkim(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            Error::NoSuchUser {
                parameter: "mail_owner",
                name: "mailgate".into()
            }
            .to_string(),
            "mail_owner = mailgate: no such user; create it with \
             \"useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin mailgate\""
        );
        assert_eq!(
            Error::AlreadyRunning(Pid::from_raw(42)).to_string(),
            "the mail system is already running: PID: 42"
        );
        let e = Error::Signal {
            pid: Pid::from_raw(7),
            signal: Signal::SIGHUP,
            errno: Errno::EPERM,
        };
        assert!(
            e.to_string()
                .starts_with("cannot send SIGHUP to the master (PID 7): ")
        );
        assert!(e.to_string().ends_with("; run this command as root"));
        let e = Error::Exec {
            path: "/x/master".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert!(e.to_string().starts_with("cannot run /x/master: "));
        assert!(e.to_string().ends_with("check daemon_directory in main.cf"));
    }
}
