//! What each service may do, in one place.
//!
//! Read each profile like an OpenBSD pledge line: where the process lives
//! after start-up, as whom, who may call it, within which resource limits,
//! which groups of system calls ("promises") it keeps, and what its Landlock
//! ruleset leaves it of the file system and the network. `seccomp.rs` turns
//! the promises into the syscall allowlist (anything not promised kills the
//! process); `landlock.rs` turns the Landlock part into a ruleset, a second
//! wall that holds where the kernel has Landlock even if a promise is wider
//! than it should be.
//!
//! ```text
//! service  root     user           callers (SO_PEERCRED)      promises                                files (Landlock)                   TCP (Landlock)
//! smtpd    spool    smtpd_owner*   - (inet)                   stdio accept unix-connect memfd inet    none                               connect DNS, policy, SASL and milter servers' ports
//! cleanup  spool    mail_owner     smtpd_owner mail_owner root stdio accept unix-connect spool-files  incoming hold quarantine           none
//! qmgr     spool    mail_owner     mail_owner root            stdio accept unix-connect spool-files memfd  incoming active deferred hold corrupt  none
//! relay    spool    relay_owner*   mail_owner                 stdio accept unix-connect inet          none                               connect any port, bind none
//! scanner  scanner_directory  scanner_owner  mail_owner       stdio accept unix-connect file-locks    none                               none (connect clamd's port with clamd over TCP; + inet and the DNS servers' port with DKIM/DMARC checks)
//! tlskeys  tlskeys_directory  tlskeys_owner  smtpd_owner relay_owner mail_owner  stdio accept    none                               none
//! stats    spool    mail_owner     - (inet)                   stdio accept                            none                               none
//! web      spool    mail_owner     - (inet)                   stdio accept unix-connect spool-files   read the queues and data, release from quarantine  connect the login backend's port
//! greylist data_directory  mail_owner  smtpd_owner mail_owner root  stdio accept db-file (or inet: Redis)  none            none (connect Redis's port)
//! verify   spool    mail_owner     smtpd_owner mail_owner root stdio accept unix-connect db-file (or inet: Redis, or neither: memory)  none  none (connect Redis's port)
//! anvil    spool    mail_owner     smtpd_owner                stdio accept                            none                               none
//! scan     -        scanner_owner  -                          stdio file-locks                        none                               none
//! learn    -        scanner_owner  -                          stdio file-locks db-file                none                               none
//! ```
//! (* with mail_owner's group, to reach the sockets made for them: cleanup,
//! greylist, verify, tlskeys.) Every profile scopes abstract Unix sockets and
//! signals to its own process.
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
    /// No chroot: a command-line tool that reads its inputs through
    /// descriptors it opened before; Landlock leaves it no file and seccomp
    /// answers open with EACCES.
    Unchanged,
}

/// Whose numeric uid/gid the worker takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// main.cf's mail_owner, with its group.
    MailOwner,
    /// The user a main.cf parameter names, with that user's own group.
    User(&'static str),
    /// The user a main.cf parameter names, with mail_owner's group: the
    /// group that may open the sockets in public/ (mode 0710), as Postfix's
    /// postdrop group may reach its public/ sockets. The uid is its own, so
    /// the services it may not call tell it apart from mail_owner.
    UserInMailGroup(&'static str),
}

/// Who may connect to a service's Unix socket: the peer's effective uid,
/// as SO_PEERCRED reports it, must be one of these. All other peers are
/// refused before a byte is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// uid 0: the administrator's commands (`mailgate queue`, `sendmail`).
    Root,
    /// main.cf's mail_owner: cleanup and qmgr, and the administrator's
    /// commands run as that user.
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
    /// sockets), fstat/stat, and non-executable memory only. Not fcntl
    /// F_SETFL (which could take O_APPEND off the log on stderr) and not
    /// ftruncate (which could empty it).
    Stdio,
    /// accept(2) on the listening socket the master handed over.
    Accept,
    /// socket(AF_UNIX) and connect(2) to the peers' sockets in private/ and
    /// public/.
    UnixConnect,
    /// Create, seal and check the seals of a memfd (the message content
    /// smtpd hands to cleanup).
    Memfd,
    /// Open, create, rename, unlink, fsync, fchmod and list files: the queue
    /// files in the spool (the chroot and Landlock bound where).
    SpoolFiles,
    /// socket(AF_INET, AF_INET6), bind and connect: SMTP to the next hop
    /// and DNS.
    Inet,
    /// Advisory locks (fcntl F_OFD_*/F_*LK, flock) on descriptors it holds:
    /// the Bayes store's reader locks. They change no data.
    FileLocks,
    /// Write, grow, shrink and sync a database file opened before the
    /// sandbox (pwrite, fdatasync/fsync, ftruncate, fallocate), and release
    /// the locks taken on it at open (flock LOCK_UN, open-file-description
    /// record locks). Opens nothing: open still answers EACCES.
    DbFile,
}

/// What Landlock allows beneath one directory of the profile's root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Files {
    /// Read the files and list the directory.
    Read,
    /// Create, write, read, list and remove the queue files of this
    /// directory, renaming only within it.
    Queue,
    /// The same, plus moving files to and from the other `QueueMove`
    /// directories, and truncating a file at open (a record rewritten in
    /// place).
    QueueMove,
}

/// TCP ports a Landlock rule allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ports {
    None,
    /// Any port: the next hop's port comes from the transport map, the MX
    /// lookup or relayhost.
    Any,
    /// The ports these sources name in the configuration (a port rule does
    /// not narrow the host).
    Of(&'static [PortSource]),
}

/// Where a profile's allowed TCP ports come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSource {
    /// The port of the `inet:host:port` (or `redis:`, `imap:`, `imaps:`)
    /// address a main.cf parameter names; none when it names a Unix socket.
    Parameter(&'static str),
    /// The DNS servers' (dns_nameservers, or 53 for those of
    /// /etc/resolv.conf): TCP is DNS's fallback for long answers.
    DnsServers,
    /// Every `check_policy_service inet:host:port` in the configuration.
    PolicyServices,
    /// The port of every `inet:host:port` milter in smtpd_milters and in
    /// the smtpd_milter_maps results known at start (`unix:` milters are
    /// reached through the chroot, as in Postfix).
    Milters,
}

/// The Landlock ruleset of a profile. Whatever is not listed is denied:
/// every file access right the kernel knows is handled, abstract Unix
/// sockets and signals are scoped to the process (it can neither connect
/// to an abstract socket made outside it nor signal a process outside it),
/// and TCP connect and bind are handled unless a field says `Any`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Landlock {
    /// Directories, relative to the root (the spool), and their rights.
    pub dirs: &'static [(&'static str, Files)],
    pub tcp_connect: Ports,
    pub tcp_bind: Ports,
}

/// No file, no TCP.
const NOTHING: Landlock = Landlock {
    dirs: &[],
    tcp_connect: Ports::None,
    tcp_bind: Ports::None,
};

/// A resource limit, set while the process is still root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Core dumps: a worker's memory holds mail; never written to disk.
    CoreSize(u64),
    /// Open descriptors: sessions, peer connections and message files. The
    /// least a worker gets; one serving many sessions gets more
    /// ([`Limit::open_files`]).
    OpenFiles(u64),
}

/// Descriptors one session may hold at once: the client socket, the
/// cleanup connection, the message file, and a milter, policy or DNS socket.
pub const FILES_PER_SESSION: u64 = 4;

/// Descriptors beyond the sessions' own: the listener, the log, anvil and
/// the runtime's own.
pub const FILES_SPARE: u64 = 1024;

impl Limit {
    /// What the limit is on, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Limit::OpenFiles(_) => "open files",
            Limit::CoreSize(_) => "core file size",
        }
    }

    /// The descriptor limit of a process serving `sessions` sessions at
    /// once (its share of master.cf's maxproc): the profile's limit, or
    /// [`FILES_PER_SESSION`] per session and [`FILES_SPARE`] more when that
    /// is higher. Raised only by maxproc, which the administrator sets.
    pub fn open_files(&self, sessions: u32) -> u64 {
        match *self {
            Limit::OpenFiles(n) => n.max(
                u64::from(sessions)
                    .saturating_mul(FILES_PER_SESSION)
                    .saturating_add(FILES_SPARE),
            ),
            Limit::CoreSize(n) => n,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Profile {
    pub service: &'static str,
    pub root: Root,
    pub run_as: RunAs,
    /// Who may connect to its Unix socket (an inet service has none).
    pub callers: &'static [Caller],
    pub limits: &'static [Limit],
    pub promises: &'static [Promise],
    pub landlock: Landlock,
}

impl Profile {
    pub fn keeps(&self, promise: Promise) -> bool {
        self.promises.contains(&promise)
    }

    /// The mode of the service's Unix socket: 0660 when a caller runs in
    /// mail_owner's group under a uid of its own (smtpd calls cleanup and
    /// the greylist service), 0600 (mail_owner and root only) otherwise.
    pub fn socket_mode(&self) -> u32 {
        let group_callers = self.callers.iter().any(|c| matches!(c, Caller::User(_)));
        if group_callers { 0o660 } else { 0o600 }
    }

    /// The profile of the program a master.cf entry runs, when it is one of
    /// mailgate's.
    pub fn of_program(program: &str) -> Option<&'static Profile> {
        ALL.iter().find(|p| p.service == program)
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
                Promise::FileLocks => "file-locks",
                Promise::DbFile => "db-file",
            })
            .collect();
        names.join(" ")
    }
}

/// Descriptor limit for the workers: maxproc sessions (100 by default), each
/// with a client socket, a cleanup connection and a message file. A larger
/// share of maxproc raises it ([`Limit::open_files`]).
const OPEN_FILES: u64 = 4096;
const LIMITS: &[Limit] = &[Limit::CoreSize(0), Limit::OpenFiles(OPEN_FILES)];

/// SMTP server: accepts on the inherited socket, writes each message into a
/// sealed memfd and passes it to cleanup. No files. Network out only for
/// its DNS queries (client names, the reject_unknown_* checks, DNS lists),
/// its policy and SASL servers and its milters (smtpd_milters): the
/// resolver's servers were read before the sandbox, and Landlock allows TCP
/// (DNS's fallback) to the ports of these only. `unix:` milters are
/// sockets inside the chroot, connected with unix-connect. Its own uid: the services it
/// must not call (qmgr, relay, scanner) refuse it by uid, and in
/// mail_owner's group it reaches only public/'s sockets.
pub const SMTPD: Profile = Profile {
    service: "smtpd",
    root: Root::Spool,
    run_as: RunAs::UserInMailGroup("smtpd_owner"),
    callers: &[],
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::Memfd,
        Promise::Inet,
    ],
    landlock: Landlock {
        dirs: &[],
        tcp_connect: Ports::Of(&[
            PortSource::DnsServers,
            PortSource::PolicyServices,
            PortSource::Parameter("smtpd_sasl_path"),
            PortSource::Milters,
        ]),
        tcp_bind: Ports::None,
    },
};

/// Writes queue files in incoming/ (hold/, quarantine/), wakes qmgr. No
/// network. Called by smtpd, by qmgr (notices) and by `mailgate sendmail`.
pub const CLEANUP: Profile = Profile {
    service: "cleanup",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    callers: &[Caller::User("smtpd_owner"), Caller::MailOwner, Caller::Root],
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::SpoolFiles,
    ],
    landlock: Landlock {
        dirs: &[
            ("incoming", Files::Queue),
            ("hold", Files::Queue),
            ("quarantine", Files::Queue),
        ],
        tcp_connect: Ports::None,
        tcp_bind: Ports::None,
    },
};

/// Moves queue files, talks to the delivery agents. No network. Builds
/// delivery status notifications in a sealed memfd for cleanup. Called by
/// cleanup (wake-ups) and by the queue tools (root or mail_owner).
pub const QMGR: Profile = Profile {
    service: "qmgr",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    callers: &[Caller::MailOwner, Caller::Root],
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::SpoolFiles,
        Promise::Memfd,
    ],
    landlock: Landlock {
        dirs: &[
            ("incoming", Files::QueueMove),
            ("active", Files::QueueMove),
            ("deferred", Files::QueueMove),
            ("hold", Files::QueueMove),
            ("corrupt", Files::QueueMove),
        ],
        tcp_connect: Ports::None,
        tcp_bind: Ports::None,
    },
};

/// SMTP client: reads the queue files qmgr hands it as descriptors,
/// connects out, uses DNS, asks tlskeys to sign its TLS handshakes (over
/// private/tlskeys, which is why it runs in mail_owner's group). Opens no
/// files and, by Landlock, can make no socket in the spool. Its own uid: the
/// services it must not call (cleanup, qmgr, greylist) refuse it, and the
/// one it serves refuses everyone but qmgr's uid.
pub const RELAY: Profile = Profile {
    service: "relay",
    root: Root::Spool,
    run_as: RunAs::UserInMailGroup("relay_owner"),
    callers: &[Caller::MailOwner],
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::Inet,
    ],
    landlock: Landlock {
        dirs: &[],
        tcp_connect: Ports::Any,
        tcp_bind: Ports::None,
    },
};

/// Content scanner: its own user, chrooted into scanner_directory (its
/// rules and data, loaded before the sandbox), no spool. Reads the message
/// descriptors cleanup passes and connects only to clamd through a Unix
/// socket under its directory, passing it those same descriptors with
/// SCM_RIGHTS (clamd_transfer = fildes): sendmsg and lseek, already in
/// stdio. Opens no files, no network. Called by cleanup only.
pub const SCANNER: Profile = Profile {
    service: "scanner",
    root: Root::Directory("scanner_directory"),
    run_as: RunAs::User("scanner_owner"),
    callers: &[Caller::MailOwner],
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::FileLocks,
    ],
    landlock: NOTHING,
};

/// The scanner when clamd_socket = inet:host:port: the same, plus TCP out,
/// which seccomp cannot narrow to clamd's address and Landlock narrows to
/// clamd's port.
pub const SCANNER_CLAMD_INET: Profile = Profile {
    service: "scanner",
    root: Root::Directory("scanner_directory"),
    run_as: RunAs::User("scanner_owner"),
    callers: &[Caller::MailOwner],
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::Inet,
        Promise::FileLocks,
    ],
    landlock: Landlock {
        dirs: &[],
        tcp_connect: Ports::Of(&[PortSource::Parameter("clamd_socket")]),
        tcp_bind: Ports::None,
    },
};

/// The scanner when it checks DKIM and DMARC (dkim_verify, dmarc_verify):
/// DNS queries for the keys and policies, over UDP and, for long answers,
/// TCP to the DNS servers' port (Landlock), plus clamd's port when clamd
/// is reached over TCP. Neither seccomp nor Landlock can narrow UDP.
pub const SCANNER_DNS: Profile = Profile {
    service: "scanner",
    root: Root::Directory("scanner_directory"),
    run_as: RunAs::User("scanner_owner"),
    callers: &[Caller::MailOwner],
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::Inet,
        Promise::FileLocks,
    ],
    landlock: Landlock {
        dirs: &[],
        tcp_connect: Ports::Of(&[
            PortSource::DnsServers,
            PortSource::Parameter("clamd_socket"),
        ]),
        tcp_bind: Ports::None,
    },
};

/// `mailgate scan` run by root: the scanner's user and limits on what it
/// may call, once the message files are open and the rules loaded. It
/// reads the messages through those descriptors and writes its report to
/// the standard output it inherited.
pub const SCAN: Profile = Profile {
    service: "scan",
    root: Root::Unchanged,
    run_as: RunAs::User("scanner_owner"),
    callers: &[],
    limits: &[Limit::CoreSize(0)],
    promises: &[Promise::Stdio, Promise::FileLocks],
    landlock: NOTHING,
};

/// `mailgate learn` run by root: as `scan`, plus writing the Bayes store it
/// opened before (and nothing else: it opens no file).
pub const LEARN: Profile = Profile {
    service: "learn",
    root: Root::Unchanged,
    run_as: RunAs::User("scanner_owner"),
    callers: &[],
    limits: &[Limit::CoreSize(0)],
    promises: &[Promise::Stdio, Promise::FileLocks, Promise::DbFile],
    landlock: NOTHING,
};

/// The TLS and DKIM key holder: its own user, an empty chroot
/// (tlskeys_directory), the keys read before. Accepts on its inherited
/// socket and answers on the connections it accepted (smtpd and relay for
/// TLS, cleanup, as mail_owner, for DKIM); it connects nowhere, opens
/// nothing, and has no network at all.
pub const TLSKEYS: Profile = Profile {
    service: "tlskeys",
    root: Root::Directory("tlskeys_directory"),
    run_as: RunAs::User("tlskeys_owner"),
    callers: &[
        Caller::User("smtpd_owner"),
        Caller::User("relay_owner"),
        Caller::MailOwner,
    ],
    limits: LIMITS,
    promises: &[Promise::Stdio, Promise::Accept],
    landlock: NOTHING,
};

/// Traffic statistics: follows maillog_file through a descriptor opened
/// read-only before the sandbox, counts into the statistics file (opened
/// before too, written with lseek and write) and answers GET /metrics on
/// its listener. Opens nothing, connects nowhere.
pub const STATS: Profile = Profile {
    service: "stats",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    callers: &[],
    limits: LIMITS,
    promises: &[Promise::Stdio, Promise::Accept],
    landlock: NOTHING,
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
    callers: &[],
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::SpoolFiles,
    ],
    landlock: Landlock {
        dirs: &[
            ("incoming", Files::QueueMove),
            ("quarantine", Files::QueueMove),
            ("active", Files::Read),
            ("deferred", Files::Read),
            ("hold", Files::Read),
            ("corrupt", Files::Read),
            ("data", Files::Read),
        ],
        tcp_connect: Ports::Of(&[PortSource::Parameter("web_sasl_path")]),
        tcp_bind: Ports::None,
    },
};

/// Greylisting policy service (postgrey's job): accepts policy queries on
/// its inherited socket (Unix, or TCP for a stock Postfix), keeps its
/// triplets in a redb file under data_directory opened before the sandbox.
/// No network, no files to open.
pub const GREYLIST: Profile = Profile {
    service: "greylist",
    root: Root::Directory("data_directory"),
    run_as: RunAs::MailOwner,
    callers: GREYLIST_CALLERS,
    limits: LIMITS,
    promises: &[Promise::Stdio, Promise::Accept, Promise::DbFile],
    landlock: NOTHING,
};

/// On a Unix socket the greylist service answers smtpd, and the tools.
const GREYLIST_CALLERS: &[Caller] = &[Caller::User("smtpd_owner"), Caller::MailOwner, Caller::Root];

/// The greylist service when greylist_database = redis:...: TCP out to
/// the Redis server (which a seccomp filter cannot narrow to that address),
/// and no database file.
pub const GREYLIST_REDIS: Profile = Profile {
    service: "greylist",
    root: Root::Directory("data_directory"),
    run_as: RunAs::MailOwner,
    callers: GREYLIST_CALLERS,
    limits: LIMITS,
    promises: &[Promise::Stdio, Promise::Accept, Promise::Inet],
    landlock: Landlock {
        dirs: &[],
        tcp_connect: Ports::Of(&[PortSource::Parameter("greylist_database")]),
        tcp_bind: Ports::None,
    },
};

/// Address verification (Postfix's verify(8)): answers smtpd's queries on
/// its inherited socket from a cache kept in a redb file under
/// data_directory, opened before the sandbox; probes an address by asking
/// the delivery agent of its route (a Unix socket in private/, which
/// answers mail_owner: relay does the SMTP). Chrooted into the spool, where
/// those sockets are. No network, no files to open.
pub const VERIFY: Profile = Profile {
    service: "verify",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    callers: VERIFY_CALLERS,
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::DbFile,
    ],
    landlock: NOTHING,
};

/// The verify service answers smtpd, and the tools.
const VERIFY_CALLERS: &[Caller] = &[Caller::User("smtpd_owner"), Caller::MailOwner, Caller::Root];

/// The verify service when address_verify_map = redis:...: TCP out to the
/// Redis server (which seccomp cannot narrow to that address and Landlock
/// narrows to its port), and no database file. Probes still go through
/// relay.
pub const VERIFY_REDIS: Profile = Profile {
    service: "verify",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    callers: VERIFY_CALLERS,
    limits: LIMITS,
    promises: &[
        Promise::Stdio,
        Promise::Accept,
        Promise::UnixConnect,
        Promise::Inet,
    ],
    landlock: Landlock {
        dirs: &[],
        tcp_connect: Ports::Of(&[PortSource::Parameter("address_verify_map")]),
        tcp_bind: Ports::None,
    },
};

/// The verify service with its cache in memory (address_verify_map empty):
/// neither a database file nor the network.
pub const VERIFY_MEMORY: Profile = Profile {
    service: "verify",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    callers: VERIFY_CALLERS,
    limits: LIMITS,
    promises: &[Promise::Stdio, Promise::Accept, Promise::UnixConnect],
    landlock: NOTHING,
};

/// Per-client counts for every smtpd process (Postfix's anvil): accepts on
/// its inherited socket and answers smtpd only; opens nothing, connects
/// nowhere, no network.
pub const ANVIL: Profile = Profile {
    service: "anvil",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
    callers: &[Caller::User("smtpd_owner")],
    limits: LIMITS,
    promises: &[Promise::Stdio, Promise::Accept],
    landlock: NOTHING,
};

/// Every profile, for tests and tools.
pub const ALL: &[Profile] = &[
    SMTPD,
    CLEANUP,
    QMGR,
    RELAY,
    SCANNER,
    SCANNER_CLAMD_INET,
    SCANNER_DNS,
    TLSKEYS,
    STATS,
    WEB,
    GREYLIST,
    GREYLIST_REDIS,
    VERIFY,
    VERIFY_REDIS,
    VERIFY_MEMORY,
    ANVIL,
    SCAN,
    LEARN,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_keeps_stdio_and_no_service_without_network_has_inet() {
        for profile in ALL {
            assert!(profile.keeps(Promise::Stdio), "{}", profile.service);
        }
        for profile in [
            CLEANUP,
            QMGR,
            SCANNER,
            GREYLIST,
            STATS,
            WEB,
            TLSKEYS,
            SCAN,
            LEARN,
            VERIFY,
            VERIFY_MEMORY,
        ] {
            assert!(!profile.keeps(Promise::Inet), "{}", profile.service);
        }
        for profile in [
            CLEANUP,
            QMGR,
            SCANNER,
            GREYLIST,
            STATS,
            TLSKEYS,
            SCAN,
            LEARN,
            VERIFY,
            VERIFY_MEMORY,
        ] {
            assert_eq!(profile.landlock.tcp_connect, Ports::None);
        }
        // verify reaches the network only through relay (and its Redis).
        for profile in [VERIFY, VERIFY_REDIS, VERIFY_MEMORY] {
            assert!(!profile.keeps(Promise::SpoolFiles), "verify opens no files");
            assert!(!profile.keeps(Promise::Memfd));
            assert!(profile.landlock.dirs.is_empty());
            assert_eq!(profile.socket_mode(), 0o660, "smtpd calls it");
        }
        assert_eq!(VERIFY.pledge(), "stdio accept unix-connect db-file");
        assert_eq!(VERIFY_REDIS.pledge(), "stdio accept unix-connect inet");
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
        assert_eq!(ANVIL.pledge(), "stdio accept");
        assert_eq!(ANVIL.landlock, NOTHING);
        assert_eq!(ANVIL.callers, &[Caller::User("smtpd_owner")]);
        assert_eq!(ANVIL.socket_mode(), 0o660, "smtpd calls it");
        for profile in [SMTPD, RELAY, STATS, SCANNER, TLSKEYS, SCAN, LEARN] {
            assert!(!profile.keeps(Promise::SpoolFiles), "{}", profile.service);
            assert!(profile.landlock.dirs.is_empty(), "{}", profile.service);
        }
        for profile in ALL {
            assert_eq!(profile.landlock.tcp_bind, Ports::None);
        }
        assert!(matches!(SMTPD.landlock.tcp_connect, Ports::Of(_)));
        assert_eq!(SMTPD.pledge(), "stdio accept unix-connect memfd inet");
    }

    #[test]
    fn no_network_facing_service_may_call_qmgr_relay_or_the_scanner() {
        for profile in [QMGR, RELAY, SCANNER, SCANNER_CLAMD_INET, SCANNER_DNS] {
            assert!(
                !profile.callers.contains(&Caller::User("smtpd_owner"))
                    && !profile.callers.contains(&Caller::User("relay_owner")),
                "{}",
                profile.service
            );
        }
        for profile in [RELAY, SCANNER] {
            assert_eq!(profile.callers, &[Caller::MailOwner], "{}", profile.service);
        }
    }

    #[test]
    fn the_descriptor_limit_grows_with_the_sessions_only_past_the_default() {
        let limit = Limit::OpenFiles(OPEN_FILES);
        assert_eq!(limit.open_files(0), OPEN_FILES);
        assert_eq!(limit.open_files(100), OPEN_FILES);
        assert_eq!(limit.open_files(5_050), 5_050 * 4 + 1024);
        assert_eq!(limit.open_files(u32::MAX), u64::from(u32::MAX) * 4 + 1024);
        assert_eq!(Limit::CoreSize(0).open_files(5_050), 0);
    }
}
