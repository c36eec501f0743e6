//! The seccomp allowlist of a profile: its promises turned into system
//! calls, with arguments narrowed where that is cheap.
//!
//! A profile compiles to a stack of filters. The kernel runs every filter
//! and the strictest answer wins, so the main filter (default: kill the
//! process) also allows the calls that the small filters answer with an
//! error:
//! - clone3 gets ENOSYS, so glibc falls back to clone, where the flags can
//!   be checked (clone3 passes them in memory a filter cannot read);
//! - a service without the spool-files promise gets EACCES from open: glibc
//!   may open /proc files lazily (malloc reads overcommit_memory), and a
//!   failed open is handled where a killed process is not.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::privileges::SandboxError;
use crate::profiles::{Profile, Promise};

/// What a call outside the allowlist does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The process is killed (SIGSYS). The production setting.
    Enforce,
    /// The call is allowed and the kernel logs it (audit log / dmesg):
    /// for finding a missing call on an unusual kernel or libc.
    Log,
}

impl Mode {
    /// main.cf's `sandbox_mode`.
    pub fn parse(value: &str) -> Result<Mode, SandboxError> {
        match value.trim() {
            "enforce" => Ok(Mode::Enforce),
            "log" => Ok(Mode::Log),
            other => Err(SandboxError::BadMode {
                value: other.to_string(),
            }),
        }
    }
}

/// The compiled filters of one profile, installed in this order.
pub struct Filters {
    programs: Vec<BpfProgram>,
}

/// How a call is allowed.
enum Allow {
    Always,
    /// When any one rule matches (each rule is a conjunction of conditions).
    When(Vec<SeccompRule>),
}

struct Allowlist {
    calls: BTreeMap<i64, Allow>,
}

impl Allowlist {
    fn always(&mut self, calls: &[i64]) {
        for &call in calls {
            self.calls.insert(call, Allow::Always);
        }
    }

    fn when(&mut self, call: i64, rules: Vec<SeccompRule>) {
        match self.calls.entry(call).or_insert(Allow::When(Vec::new())) {
            Allow::Always => {}
            Allow::When(existing) => existing.extend(rules),
        }
    }

    /// `call` allowed when argument `arg` (a C int) is one of `values`.
    fn when_arg_in(&mut self, call: i64, arg: u8, values: &[u64]) -> Result<(), SandboxError> {
        let rules = values
            .iter()
            .map(|&v| rule(&[(arg, SeccompCmpOp::Eq, v)]))
            .collect::<Result<_, _>>()?;
        self.when(call, rules);
        Ok(())
    }

    fn into_rules(self) -> BTreeMap<i64, Vec<SeccompRule>> {
        self.calls
            .into_iter()
            .map(|(call, allow)| match allow {
                // seccompiler: an empty rule chain matches unconditionally.
                Allow::Always => (call, Vec::new()),
                Allow::When(rules) => (call, rules),
            })
            .collect()
    }
}

fn rule(conditions: &[(u8, SeccompCmpOp, u64)]) -> Result<SeccompRule, SandboxError> {
    let conditions = conditions
        .iter()
        .map(|(arg, op, value)| {
            SeccompCondition::new(*arg, SeccompCmpArgLen::Dword, op.clone(), *value)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(seccomp_error)?;
    SeccompRule::new(conditions).map_err(seccomp_error)
}

fn seccomp_error(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Seccomp {
        reason: e.to_string(),
    }
}

fn c(value: libc::c_int) -> u64 {
    value as u64
}

/// Calls every tokio worker makes (traced under load): memory, threads,
/// futexes, epoll, timers, signals, I/O on descriptors it holds.
const STDIO: &[i64] = &[
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_pread64,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_shutdown,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_futex,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sigaltstack,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_yield,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_getrandom,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_restart_syscall,
];
#[cfg(target_arch = "x86_64")]
const STDIO_LEGACY: &[i64] = &[libc::SYS_epoll_wait];
#[cfg(not(target_arch = "x86_64"))]
const STDIO_LEGACY: &[i64] = &[];

const OPEN: &[i64] = &[libc::SYS_openat, libc::SYS_openat2];
#[cfg(target_arch = "x86_64")]
const OPEN_LEGACY: &[i64] = &[libc::SYS_open];
#[cfg(not(target_arch = "x86_64"))]
const OPEN_LEGACY: &[i64] = &[];

/// Working with queue files, beyond open. No ftruncate: a queue file is
/// written once, or rewritten whole under a new name, and the log every
/// worker holds on stderr must not be emptied. (fchmod is allowed apart,
/// with one mode: see SPOOL_FILE_READY.)
const SPOOL_FILES: &[i64] = &[
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_unlinkat,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_getdents64,
    libc::SYS_utimensat,
];

/// The one mode fchmod may set: a queue file cleanup finished writing is
/// marked ready (mailgate_ipc::spool::READY_MODE, 0600, the mode every
/// queue file has), so no worker can make a file readable by others or
/// executable.
const SPOOL_FILE_READY: u64 = 0o600;

#[cfg(target_arch = "x86_64")]
const SPOOL_FILES_LEGACY: &[i64] = &[libc::SYS_rename, libc::SYS_unlink];
#[cfg(not(target_arch = "x86_64"))]
const SPOOL_FILES_LEGACY: &[i64] = &[];

/// Working with a database file opened before the sandbox, beyond the
/// pread that stdio has.
const DB_FILE: &[i64] = &[
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
];

/// fcntl commands any worker uses (tokio, std, descriptor passing). Not
/// F_SETFL: it could take O_APPEND off the log on stderr, after which a
/// worker could write over what is logged.
const FCNTL_COMMANDS: &[libc::c_int] = &[
    libc::F_GETFD,
    libc::F_SETFD,
    libc::F_GETFL,
    libc::F_DUPFD_CLOEXEC,
    libc::F_GET_SEALS,
];

/// Advisory record locks (the Bayes store's readers take them).
const LOCK_COMMANDS: &[libc::c_int] = &[
    libc::F_GETLK,
    libc::F_SETLK,
    libc::F_SETLKW,
    libc::F_OFD_GETLK,
    libc::F_OFD_SETLK,
    libc::F_OFD_SETLKW,
];

fn allowlist(profile: &Profile) -> Result<Allowlist, SandboxError> {
    let mut list = Allowlist {
        calls: BTreeMap::new(),
    };
    for promise in profile.promises {
        match promise {
            Promise::Stdio => {
                list.always(STDIO);
                list.always(STDIO_LEGACY);
                // Threads only: a new process (fork) is never allowed.
                let thread = c(libc::CLONE_THREAD);
                list.when(
                    libc::SYS_clone,
                    vec![rule(&[(0, SeccompCmpOp::MaskedEq(thread), thread)])?],
                );
                // Answered with ENOSYS by its own filter.
                list.always(&[libc::SYS_clone3]);
                // No executable memory after start-up.
                let exec = c(libc::PROT_EXEC);
                for call in [libc::SYS_mmap, libc::SYS_mprotect] {
                    list.when(call, vec![rule(&[(2, SeccompCmpOp::MaskedEq(exec), 0)])?]);
                }
                let commands: Vec<u64> = FCNTL_COMMANDS.iter().map(|&cmd| c(cmd)).collect();
                list.when_arg_in(libc::SYS_fcntl, 1, &commands)?;
                list.when_arg_in(libc::SYS_ioctl, 1, &[libc::FIONBIO, libc::FIOCLEX])?;
                list.when_arg_in(libc::SYS_prctl, 0, &[c(libc::PR_SET_NAME)])?;
                // tokio's signal handling.
                list.when_arg_in(libc::SYS_socketpair, 0, &[c(libc::AF_UNIX)])?;
                // abort(3) signals its own process, nothing else.
                list.when_arg_in(libc::SYS_tgkill, 0, &[u64::from(std::process::id())])?;
                // Without spool-files, open is answered EACCES by its own
                // filter; with it, open is allowed below.
                list.always(OPEN);
                list.always(OPEN_LEGACY);
            }
            Promise::Accept => list.always(&[libc::SYS_accept4, libc::SYS_accept]),
            Promise::UnixConnect => {
                list.when_arg_in(libc::SYS_socket, 0, &[c(libc::AF_UNIX)])?;
                list.always(&[libc::SYS_connect]);
            }
            Promise::Memfd => {
                list.always(&[libc::SYS_memfd_create]);
                list.when_arg_in(libc::SYS_fcntl, 1, &[c(libc::F_ADD_SEALS)])?;
            }
            Promise::SpoolFiles => {
                list.always(SPOOL_FILES);
                list.always(SPOOL_FILES_LEGACY);
                list.when_arg_in(libc::SYS_fchmod, 1, &[SPOOL_FILE_READY])?;
            }
            Promise::Inet => {
                list.when_arg_in(libc::SYS_socket, 0, &[c(libc::AF_INET), c(libc::AF_INET6)])?;
                list.always(&[libc::SYS_connect, libc::SYS_bind]);
            }
            Promise::FileLocks => {
                let commands: Vec<u64> = LOCK_COMMANDS.iter().map(|&cmd| c(cmd)).collect();
                list.when_arg_in(libc::SYS_fcntl, 1, &commands)?;
                list.always(&[libc::SYS_flock]);
            }
            Promise::DbFile => {
                list.always(DB_FILE);
                // redb releases, when the database closes, the locks it took
                // when it opened: flock and open-file-description locks.
                list.when_arg_in(libc::SYS_flock, 1, &[c(libc::LOCK_UN)])?;
                list.when_arg_in(
                    libc::SYS_fcntl,
                    1,
                    &[c(libc::F_OFD_SETLK), c(libc::F_OFD_GETLK)],
                )?;
            }
        }
    }
    Ok(list)
}

fn compile_filter(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SandboxError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|_| SandboxError::Seccomp {
        reason: format!(
            "seccomp filters are not supported on {}",
            std::env::consts::ARCH
        ),
    })?;
    let filter = SeccompFilter::new(rules, mismatch, matched, arch).map_err(seccomp_error)?;
    BpfProgram::try_from(filter).map_err(seccomp_error)
}

/// An "answer these calls with this error" filter.
fn errno_filter(calls: &[i64], errno: libc::c_int) -> Result<BpfProgram, SandboxError> {
    let rules = calls.iter().map(|&call| (call, Vec::new())).collect();
    compile_filter(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
    )
}

/// Compiles a profile's filters. Allocates; call before [`install`].
pub fn compile(profile: &Profile, mode: Mode) -> Result<Filters, SandboxError> {
    let mut programs = vec![errno_filter(&[libc::SYS_clone3], libc::ENOSYS)?];
    if !profile.keeps(Promise::SpoolFiles) {
        let open: Vec<i64> = OPEN.iter().chain(OPEN_LEGACY).copied().collect();
        programs.push(errno_filter(&open, libc::EACCES)?);
    }
    let outside = match mode {
        Mode::Enforce => SeccompAction::KillProcess,
        Mode::Log => SeccompAction::Log,
    };
    let main = allowlist(profile)?.into_rules();
    programs.push(compile_filter(main, outside, SeccompAction::Allow)?);
    Ok(Filters { programs })
}

/// Installs the filters on every thread of the process (TSYNC). The small
/// filters go first: the main one does not allow seccomp(2) itself.
pub fn install(filters: &Filters) -> Result<(), SandboxError> {
    for program in &filters.programs {
        seccompiler::apply_filter_all_threads(program).map_err(seccomp_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::ALL;

    #[test]
    fn every_profile_compiles_in_both_modes() {
        for profile in ALL {
            for mode in [Mode::Enforce, Mode::Log] {
                let filters = compile(profile, mode).unwrap();
                let expected = if profile.keeps(Promise::SpoolFiles) {
                    2
                } else {
                    3
                };
                assert_eq!(filters.programs.len(), expected, "{}", profile.service);
            }
        }
    }

    #[test]
    fn modes_parse_and_a_bad_one_says_what_is_allowed() {
        assert_eq!(Mode::parse("enforce").unwrap(), Mode::Enforce);
        assert_eq!(Mode::parse(" log ").unwrap(), Mode::Log);
        let e = Mode::parse("off").unwrap_err().to_string();
        assert!(
            e.contains("sandbox_mode = off") && e.contains("enforce or log"),
            "{e}"
        );
    }
}
