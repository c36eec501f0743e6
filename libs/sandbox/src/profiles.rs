//! What each service may do, in one place.
//!
//! Read each line like an OpenBSD pledge: where the process lives after
//! start-up and as whom. The syscall allowlists join these profiles with the
//! seccomp work; until then a profile is its root and its user.

/// Where a worker's filesystem view is confined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// chroot into queue_directory (unless master.cf's chroot column says n).
    Spool,
}

/// Whose numeric uid/gid the worker takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// main.cf's mail_owner.
    MailOwner,
}

#[derive(Clone, Copy, Debug)]
pub struct Profile {
    pub service: &'static str,
    pub root: Root,
    pub run_as: RunAs,
}

/// SMTP server: accepts on the inherited socket, talks to cleanup.
pub const SMTPD: Profile = Profile {
    service: "smtpd",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
};

/// Writes queue files in incoming/, wakes qmgr.
pub const CLEANUP: Profile = Profile {
    service: "cleanup",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
};

/// Moves queue files, talks to the delivery agents.
pub const QMGR: Profile = Profile {
    service: "qmgr",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
};

/// SMTP client: reads queue files it is handed, connects out, uses DNS.
pub const RELAY: Profile = Profile {
    service: "relay",
    root: Root::Spool,
    run_as: RunAs::MailOwner,
};
