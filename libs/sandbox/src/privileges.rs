//! Giving up privilege, in the order that leaves no way back: chroot while
//! still root, drop every capability set, then the groups, gid and uid, then
//! forbid regaining privilege through exec, then Landlock and seccomp.

use std::path::Path;

use caps::CapSet;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::unistd::{Gid, Uid, User};

use mailgate_config::MainConfig;
use mailgate_log::warning;

use crate::landlock::{self, LandlockState};
use crate::profiles::{Limit, Profile};
use crate::seccomp::{self, Mode};

#[derive(Debug)]
pub enum SandboxError {
    NoSuchUser {
        parameter: &'static str,
        user: String,
    },
    UserLookup {
        user: String,
        reason: String,
    },
    RootUser {
        parameter: &'static str,
        user: String,
    },
    Step {
        step: &'static str,
        reason: String,
    },
    Seccomp {
        reason: String,
    },
    Landlock {
        reason: String,
    },
    BadMode {
        value: String,
    },
}

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SandboxError::NoSuchUser { parameter, user } => write!(
                f,
                "{parameter} = {user}: no such user; create it with \
                 `useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin {user}` \
                 or set {parameter} to an existing unprivileged user"
            ),
            SandboxError::UserLookup { user, reason } => {
                write!(f, "cannot look up user {user}: {reason}")
            }
            SandboxError::RootUser { parameter, user } => write!(
                f,
                "{parameter} = {user}: that user has uid 0 or gid 0; it must be an unprivileged user"
            ),
            SandboxError::Step { step, reason } => {
                write!(f, "cannot confine the process ({step}): {reason}")
            }
            SandboxError::Seccomp { reason } => {
                write!(f, "cannot install the seccomp filter: {reason}")
            }
            SandboxError::Landlock { reason } => {
                write!(f, "cannot enforce the Landlock ruleset: {reason}")
            }
            SandboxError::BadMode { value } => {
                write!(f, "sandbox_mode = {value}: expected enforce or log")
            }
        }
    }
}

impl std::error::Error for SandboxError {}

/// A numeric identity, looked up before chroot (NSS is not reachable inside).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

pub fn lookup_user(parameter: &'static str, name: &str) -> Result<Identity, SandboxError> {
    let user = User::from_name(name)
        .map_err(|e| SandboxError::UserLookup {
            user: name.to_string(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| SandboxError::NoSuchUser {
            parameter,
            user: name.to_string(),
        })?;
    if user.uid.is_root() || user.gid.as_raw() == 0 {
        return Err(SandboxError::RootUser {
            parameter,
            user: name.to_string(),
        });
    }
    Ok(Identity {
        name: name.to_string(),
        uid: user.uid,
        gid: user.gid,
    })
}

fn step<T, E: std::fmt::Display>(step: &'static str, r: Result<T, E>) -> Result<T, SandboxError> {
    r.map_err(|e| SandboxError::Step {
        step,
        reason: e.to_string(),
    })
}

/// The identity a profile runs as: `user`'s uid with `group`'s gid (the
/// same user for most; mail_owner's group for a service that must reach
/// the sockets in public/ under a uid of its own).
pub fn identity_in_group(
    parameter: &'static str,
    user: &str,
    group_of: &Identity,
) -> Result<Identity, SandboxError> {
    let mut identity = lookup_user(parameter, user)?;
    identity.gid = group_of.gid;
    Ok(identity)
}

/// Where and as whom a profile puts a process; decided by the caller from
/// the configuration (queue_directory, mail_owner, master.cf's chroot column).
pub struct Placement<'a> {
    /// The chroot, or None when master.cf turns it off.
    pub root: Option<&'a Path>,
    /// The working directory when there is no chroot (the spool).
    pub chdir_to: &'a Path,
    /// The identity to drop to; None when the process is not root and has
    /// nothing to drop.
    pub identity: Option<&'a Identity>,
    /// Where a profile's Landlock rules find the ports they name
    /// (`Ports::Of`); None allows no such port.
    pub config: Option<&'a MainConfig>,
}

/// Applies a profile to the calling process, in the order that leaves no way
/// back: resource limits, chroot, capabilities, ids, no_new_privs, the
/// Landlock ruleset, then the seccomp filters on every thread. Call while
/// single-threaded. This is the one way into a sandbox: workers, the tools
/// and the tests that prove the profiles all use it. Returns how far
/// Landlock could confine the process (the kernel may not have it).
pub fn enter(
    profile: &Profile,
    place: &Placement<'_>,
    mode: Mode,
) -> Result<LandlockState, SandboxError> {
    enter_serving(profile, place, mode, 0)
}

/// [`enter`] for a process that serves `sessions` sessions at once (its
/// share of maxproc): its descriptor limit grows with them (see
/// [`Limit::open_files`]), so a large maxproc is not refused by a limit
/// made for the default one.
pub fn enter_serving(
    profile: &Profile,
    place: &Placement<'_>,
    mode: Mode,
    sessions: u32,
) -> Result<LandlockState, SandboxError> {
    // Compiling allocates; done before anything is taken away.
    let filters = seccomp::compile(profile, mode)?;
    set_limits(profile.limits, sessions)?;
    let ports = landlock::net_ports(profile, place.config);
    match place.identity {
        Some(identity) => confine(place.root, place.chdir_to, identity)?,
        None => confine_unprivileged(place.chdir_to)?,
    }
    let landlock = landlock::restrict(profile, ports)?;
    seccomp::install(&filters)?;
    Ok(landlock)
}

/// Sets a profile's resource limits. As root a limit may be raised; as
/// another user it is capped at the hard limit the process already has.
fn set_limits(limits: &[Limit], sessions: u32) -> Result<(), SandboxError> {
    for limit in limits {
        let (resource, want) = match *limit {
            Limit::CoreSize(n) => (Resource::RLIMIT_CORE, n),
            Limit::OpenFiles(_) => (Resource::RLIMIT_NOFILE, limit.open_files(sessions)),
        };
        let (_, hard) = step("getrlimit", getrlimit(resource))?;
        let set = if nix::unistd::geteuid().is_root() {
            // Root without CAP_SYS_RESOURCE (in a container) cannot raise
            // the hard limit: it gets as much as that allows.
            setrlimit(resource, want, want).or_else(|e| {
                if want <= hard {
                    return Err(e);
                }
                warning!(
                    "cannot raise the limit on {} to {want} ({e}): the hard limit {hard} stays",
                    limit.name()
                );
                setrlimit(resource, hard, hard)
            })
        } else {
            if want > hard {
                warning!(
                    "the limit on {} is {hard} for this user, not the {want} wanted; \
                     raise its hard limit (ulimit -H) or lower maxproc",
                    limit.name()
                );
            }
            setrlimit(resource, want.min(hard), hard)
        };
        step("setrlimit", set)?;
    }
    Ok(())
}

/// Confines a process that runs as root. Must run while the process is
/// still single-threaded: capability sets and ids are per thread.
fn confine(root: Option<&Path>, chdir_to: &Path, identity: &Identity) -> Result<(), SandboxError> {
    match root {
        Some(root) => {
            step("chroot", nix::unistd::chroot(root))?;
            step("chdir", nix::unistd::chdir("/"))?;
        }
        None => step("chdir", nix::unistd::chdir(chdir_to))?,
    }
    become_user(identity)
}

/// Root becomes `identity` for good: no capability left in any set, no
/// supplementary group but its own, real, effective and saved ids all
/// its, checked by a setuid(0) that must fail, and no_new_privs. The
/// workers do it in their sandbox; `mailgate sendmail` before it speaks
/// to non_smtpd_milters. Must run while the process is single-threaded
/// (capability sets and ids are per thread).
pub fn become_user(identity: &Identity) -> Result<(), SandboxError> {
    step("clear bounding set", caps::clear(None, CapSet::Bounding))?;
    step("clear ambient set", caps::clear(None, CapSet::Ambient))?;
    step(
        "clear inheritable set",
        caps::clear(None, CapSet::Inheritable),
    )?;
    step("setgroups", nix::unistd::setgroups(&[identity.gid]))?;
    step(
        "setresgid",
        nix::unistd::setresgid(identity.gid, identity.gid, identity.gid),
    )?;
    step(
        "setresuid",
        nix::unistd::setresuid(identity.uid, identity.uid, identity.uid),
    )?;
    step("clear effective set", caps::clear(None, CapSet::Effective))?;
    step("clear permitted set", caps::clear(None, CapSet::Permitted))?;
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(SandboxError::Step {
            step: "verify",
            reason: "setuid(0) still succeeds after dropping privileges".into(),
        });
    }
    no_new_privs()
}

/// For a process that is not root: there is nothing to drop, but it still
/// forbids gaining privilege through exec.
fn confine_unprivileged(chdir_to: &Path) -> Result<(), SandboxError> {
    step("chdir", nix::unistd::chdir(chdir_to))?;
    no_new_privs()
}

fn no_new_privs() -> Result<(), SandboxError> {
    step("no_new_privs", nix::sys::prctl::set_no_new_privs())
}
