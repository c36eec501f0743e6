//! Who is calling: the peer of a Unix socket connection as the kernel saw
//! it at connect(2) (SO_PEERCRED), and the services' rule for whom they
//! answer. A service refuses every other peer before it reads a byte, so a
//! compromised worker cannot order another to do what it could not do
//! itself: smtpd's uid is refused by qmgr, relay and the scanner; relay's
//! by everyone.

use std::fmt;
use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};

/// The credentials of a connected peer: its effective ids when it called
/// connect(2), and its pid then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

impl fmt::Display for PeerCred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "uid {} gid {} pid {}", self.uid, self.gid, self.pid)
    }
}

/// The peer of a connected Unix stream socket.
pub fn peer_cred(socket: &impl AsFd) -> std::io::Result<PeerCred> {
    let cred = getsockopt(socket, sockopt::PeerCredentials).map_err(std::io::Error::from)?;
    Ok(PeerCred {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    })
}

/// Whom a service answers: a list of uids, each with the name the log
/// gives it. Made by the sandbox from the profile's callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callers {
    service: String,
    allowed: Vec<(u32, String)>,
}

/// Why a connection was refused, for the log line.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The kernel could not tell who is calling: refused, never assumed.
    Unknown(String),
    /// A peer whose uid may not call this service.
    NotAllowed { peer: PeerCred, expected: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unknown(e) => write!(f, "cannot tell who is calling ({e})"),
            Refusal::NotAllowed { peer, expected } => {
                write!(f, "{peer} may not call it (only {expected} may)")
            }
        }
    }
}

impl Callers {
    /// `allowed`: (uid, name for the log).
    pub fn new(service: &str, allowed: Vec<(u32, String)>) -> Callers {
        Callers {
            service: service.to_string(),
            allowed,
        }
    }

    /// Only processes of the calling process's own effective uid: what a
    /// service admits when every process runs as one user (a gateway
    /// started without root), and what tests use.
    pub fn same_user(service: &str) -> Callers {
        let me = nix::unistd::geteuid().as_raw();
        Callers::new(service, vec![(me, format!("uid {me}"))])
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn admits(&self, uid: u32) -> bool {
        self.allowed.iter().any(|(allowed, _)| *allowed == uid)
    }

    /// The peer of `socket`, when it may call this service.
    pub fn check(&self, socket: &impl AsFd) -> Result<PeerCred, Refusal> {
        let peer = peer_cred(socket).map_err(|e| Refusal::Unknown(e.to_string()))?;
        if self.admits(peer.uid) {
            Ok(peer)
        } else {
            Err(Refusal::NotAllowed {
                peer,
                expected: self.expected(),
            })
        }
    }

    fn expected(&self) -> String {
        let mut names: Vec<&str> = self.allowed.iter().map(|(_, n)| n.as_str()).collect();
        names.dedup();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_known_by_uid() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let cred = peer_cred(&a).unwrap();
        assert_eq!(cred.uid, me);
        assert_eq!(cred.pid, std::process::id() as i32);
        assert!(Callers::same_user("qmgr").check(&a).is_ok());
        let others = Callers::new("qmgr", vec![(me + 1, "mail_owner (mailgate)".into())]);
        let refusal = others.check(&a).unwrap_err();
        assert!(
            refusal
                .to_string()
                .ends_with("may not call it (only mail_owner (mailgate) may)"),
            "{refusal}"
        );
    }
}
