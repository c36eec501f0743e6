//! What each service may do, in one place.
//!
//! Read each profile like an OpenBSD pledge line: where the process lives
//! after start-up, as whom, within which resource limits, and which groups of
//! system calls ("promises") it keeps. `seccomp.rs` turns the promises into
//! the syscall allowlist; anything not promised kills the process.
//!
//! ```text
//! service  root   user        promises                                  files after start-up
//! smtpd    spool  mail_owner  stdio accept unix-connect memfd inet      none (open -> EACCES)
//! cleanup  spool  mail_owner  stdio accept unix-connect spool-files     spool
//! qmgr     spool  mail_owner  stdio accept unix-connect spool-files memfd  spool
//! relay    spool  mail_owner  stdio accept unix-connect inet            none (open -> EACCES)
//! scanner  scanner_directory  scanner_owner  stdio accept unix-connect (+ inet for clamd over TCP, DKIM/DMARC DNS)  none (open -> EACCES)
//! tlskeys  tlskeys_directory  tlskeys_owner  stdio accept                 none (open -> EACCES)
//! stats    spool  mail_owner  stdio accept                              none (open -> EACCES)
//! web      spool  mail_owner  stdio accept unix-connect spool-files     spool
//! greylist data_directory  mail_owner  stdio accept db-file (redb), or stdio accept inet (Redis)  none (open -> EACCES)
//! ```
//!
//! Nothing here depends on configuration or on anything a process was told:
//! a profile is a constant.

/// Where a worker's filesystem view is confined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// chroot into queue_directory (unless master.cf's chroot column says n).
    Spool,
    /// chroot into the directory a main.cf parameter names (same rule).
    Directory(&'static str),
}

/// Whose numeric uid/gid the worker takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// main.cf's mail_owner.
    MailOwner,
    /// The user a main.cf parameter names.
    User(&'static str),
}

/// A group of system calls a service keeps, named for what it lets the
/// service do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Promise {
    /// What every tokio worker needs: memory, threads (clone with
    /// CLONE_THREAD only), futexes, epoll, timers, signals, reading and
    /// writing descriptors it holds (including descriptors passed over Unix
    /// sockets), fstat/stat, and non-executable memory only.
    Stdio,
    /// accept(2) on the listening socket the master handed over.
    Accept,
    /// socket(AF_UNIX) and connect(2) to the peers' sockets in private/ and
    /// public/.
    UnixConnect,
    /// Create, seal and check the seals of a memfd (the message content
    /// smtpd hands to cleanup).
    Memfd,
    /// Open, create, rename, unlink, fsync and list files: the queue
    /// files in the spool (the chroot bounds where).
    SpoolFiles,
    /// socket(AF_INET, AF_INET6), bind and connect: SMTP to the next hop
    /// and DNS.
    Inet,
    /// Write, grow, shrink and sync a database file opened before the
    /// sandbox (pwrite, fdatasync/fsync, ftruncate, fallocate), and release
    /// the locks taken on it at open (flock LOCK_UN, open-file-description
    /// record locks). Opens nothing: open still answers EACCES.
    DbFile,
}

/// A resource limit, set while the process is still root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Core dumps: a worker's memory holds mail; never written to disk.
    CoreSize(u64),
    /// Open descriptors: sessions, peer connections and message files.
    OpenFiles(u64),
}

#[derive(Clone, Copy, Debug)]
pub struct Profile {
    pub service: &'static str,
    pub root: Root,
    pub run_as: RunAs,
    pub limits: &'static [Limit],
    pub promises: &'static [Promise],
}

impl Profile {
    pub fn keeps(&self, promise: Promise) -> bool {
        self.promises.contains(&promise)
    }

    /// One line, as `mailgate status` and the log show it.
    pub fn pledge(&self) -> String {
        let names: Vec<&str> = self
            .promises
            .iter()
            .map(|p| match p {
                Promise::Stdio => "stdio",
                Promise::Accept => "accept",
                Promise::UnixConnect => "unix-connect",
                Promise::Memfd => "memfd",
                Promise::SpoolFiles => "spool-files",
                Promise::Inet => "inet",
                Promise::DbFile => "db-file",
            })
            .collect();
        names.join(" ")
    }
}

/// Descriptor limit for the workers: maxproc sessions (100 by default), each
/// with a client socket, a cleanup connection and a message file.
const OPEN_FILES: u64 = 4096;
const LIMITS: &[Limit] = &[Limit::CoreSize(0), Limit::OpenFiles(OPEN_FILES)];

/// SMTP server: accepts on the inherited socket, writes each message into a
/// sealed memfd and passes it to cleanup. No files. Network out only for
/// its DNS queries (client names, the reject_unknown_* checks, DNS lists);
/// the resolver's servers were read before the sandbox.
pub const SMTPD: Profile = Profile {
    service: "smtpd",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::Memfd,
        Promise::Inet,
    ],
};

/// Writes queue files in incoming/, wakes qmgr. No network.
pub const CLEANUP: Profile = Profile {
    service: "cleanup",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::SpoolFiles,
    ],
};

/// Moves queue files, talks to the delivery agents. No network. Builds
/// delivery status notifications in a sealed memfd for cleanup.
pub const QMGR: Profile = Profile {
    service: "qmgr",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::SpoolFiles,
        Promise::Memfd,
    ],
};

/// SMTP client: reads the queue files qmgr hands it as descriptors,
/// connects out, uses DNS. Opens no files.
pub const RELAY: Profile = Profile {
    service: "relay",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::Inet,
    ],
};

/// Content scanner: its own user, chrooted into scanner_directory (its
/// rules and data, loaded before the sandbox), no spool. Reads the message
/// descriptors cleanup passes and connects only to clamd through a Unix
/// socket under its directory, passing it those same descriptors with
/// SCM_RIGHTS (clamd_transfer = fildes): sendmsg and lseek, already in
/// stdio. Opens no files, no network.
pub const SCANNER: Profile = Profile {
    service: "scanner",
    root: Root::Directory("scanner_directory"),
    run_as: RunAs::User("scanner_owner"),
    limits: LIMITS,
    promises: &[Promise::Stdio, Promise::Accept, Promise::UnixConnect],
};

/// The scanner when clamd_socket = inet:host:port, or when it checks DKIM
/// and DMARC (dkim_verify, dmarc_verify: DNS queries for the keys and
/// policies): the same, plus UDP and TCP out (which a seccomp filter
/// cannot narrow to clamd's or the resolver's address).
pub const SCANNER_INET: Profile = Profile {
    service: "scanner",
    root: Root::Directory("scanner_directory"),
    run_as: RunAs::User("scanner_owner"),
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::Inet,
    ],
};

/// The TLS and DKIM key holder: its own user, an empty chroot
/// (tlskeys_directory), the keys read before. Accepts on its inherited socket and answers on the
/// connections it accepted; it connects nowhere, opens nothing, and has no
/// network at all.
pub const TLSKEYS: Profile = Profile {
    service: "tlskeys",
    root: Root::Directory("tlskeys_directory"),
    run_as: RunAs::User("tlskeys_owner"),
    limits: LIMITS,
    promises: &[Promise::Stdio, Promise::Accept],
};

/// Traffic statistics: follows maillog_file through a descriptor opened
/// read-only before the sandbox, counts into the statistics file (opened
/// before too, written with lseek and write) and answers GET /metrics on
/// its listener. Opens nothing, connects nowhere.
pub const STATS: Profile = Profile {
    service: "stats",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    limits: LIMITS,
    promises: &[Promise::Stdio, Promise::Accept],
};

/// The web page: HTTP(S) on its listener; reads queue files and the
/// statistics file and moves quarantined messages in the spool (what
/// `mailgate queue` and `quarantine` do as mail_owner); asks qmgr to act on
/// queued mail and the login backend (Dovecot's auth socket under
/// private/) to check passwords, over Unix sockets. No network out, no
/// memfd; the log is a descriptor opened before the sandbox.
pub const WEB: Profile = Profile {
    service: "web",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::SpoolFiles,
    ],
};

/// Greylisting policy service (postgrey's job): accepts policy queries on
/// its inherited socket (Unix, or TCP for a stock Postfix), keeps its
/// triplets in a redb file under data_directory opened before the sandbox.
/// No network, no files to open.
pub const GREYLIST: Profile = Profile {
    service: "greylist",
    root: Root::Directory("data_directory"),
    run_as: RunAs::MailOwner,
    limits: LIMITS,
    promises: &[Promise::Stdio, Promise::Accept, Promise::DbFile],
};

/// The greylist service when greylist_database = redis:...: TCP out to
/// the Redis server (which a seccomp filter cannot narrow to that address),
/// and no database file.
pub const GREYLIST_REDIS: Profile = Profile {
    service: "greylist",
    root: Root::Directory("data_directory"),
    run_as: RunAs::MailOwner,
    limits: LIMITS,
    promises: &[Promise::Stdio, Promise::Accept, Promise::Inet],
};

/// Every profile, for tests and tools.
pub const ALL: &[Profile] = &[
    SMTPD,
    CLEANUP,
    QMGR,
    RELAY,
    SCANNER,
    SCANNER_INET,
    TLSKEYS,
    STATS,
    WEB,
    GREYLIST,
    GREYLIST_REDIS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_keeps_stdio_and_no_service_without_network_has_inet() {
        for profile in ALL {
            assert!(profile.keeps(Promise::Stdio), "{}", profile.service);
        }
        for profile in [CLEANUP, QMGR, SCANNER, GREYLIST, STATS, WEB, TLSKEYS] {
            assert!(!profile.keeps(Promise::Inet), "{}", profile.service);
        }
        for profile in [GREYLIST, GREYLIST_REDIS] {
            assert!(
                !profile.keeps(Promise::SpoolFiles),
                "greylist opens no files"
            );
            assert!(
                !profile.keeps(Promise::UnixConnect),
                "greylist connects to no peer"
            );
        }
        assert_eq!(GREYLIST.pledge(), "stdio accept db-file");
        assert_eq!(TLSKEYS.pledge(), "stdio accept");
        for profile in [SMTPD, RELAY, STATS] {
            assert!(!profile.keeps(Promise::SpoolFiles), "{}", profile.service);
        }
        assert_eq!(SMTPD.pledge(), "stdio accept unix-connect memfd inet");
    }
}
