//! The sockets the master creates and hands to its services: TCP listeners
//! for inet services, Unix listeners in private/ (or public/) for the rest.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use mailgate_config::{InetProtocols, MainConfig, ServiceEntry, ServiceKind};
use mailgate_ipc::spool::{PRIVATE, PUBLIC};
use mailgate_sandbox::Identity;
use nix::fcntl::OFlag;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, UnixAddr, bind, listen,
    setsockopt, socket, sockopt,
};
use nix::sys::stat::Mode;

/// Where a service listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug)]
pub enum ListenError {
    Unsupported {
        service: String,
        kind: String,
    },
    BadAddress {
        service: String,
        address: String,
    },
    Socket {
        endpoint: Endpoint,
        source: io::Error,
    },
    /// inet_protocols is malformed, or turns off the version of an address
    /// inet_interfaces names.
    Protocols(String),
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenError::Unsupported { service, kind } => {
                write!(f, "service {service}: type {kind} is not supported")
            }
            ListenError::BadAddress { service, address } => {
                write!(f, "service {service}: cannot listen on {address:?}")
            }
            ListenError::Socket { endpoint, source } => {
                write!(f, "cannot listen on {endpoint}: {source}")
            }
            ListenError::Protocols(why) => write!(f, "{why}"),
        }
    }
}

/// The endpoints of one master.cf entry; an inet service without a host
/// listens on every address of inet_interfaces.
pub fn endpoints(
    service: &ServiceEntry,
    config: &MainConfig,
    queue_directory: &Path,
) -> Result<Vec<Endpoint>, ListenError> {
    match service.kind {
        ServiceKind::Inet => {
            let (host, port) = service
                .inet_address()
                .ok_or_else(|| ListenError::BadAddress {
                    service: service.name.clone(),
                    address: service.name.clone(),
                })?;
            let hosts = match host {
                Some(host) => vec![host],
                None => interface_addresses(config)?,
            };
            hosts
                .iter()
                .map(|host| {
                    let bare = host.trim_start_matches('[').trim_end_matches(']');
                    bare.parse::<IpAddr>()
                        .map(|ip| Endpoint::Tcp(SocketAddr::new(ip, port)))
                        .map_err(|_| ListenError::BadAddress {
                            service: service.name.clone(),
                            address: host.clone(),
                        })
                })
                .collect()
        }
        ServiceKind::Unix => {
            let dir = if service.private { PRIVATE } else { PUBLIC };
            Ok(vec![Endpoint::Unix(
                queue_directory.join(dir).join(&service.name),
            )])
        }
        ref other => Err(ListenError::Unsupported {
            service: service.name.clone(),
            kind: format!("{other:?}").to_lowercase(),
        }),
    }
}

/// inet_interfaces as addresses: `all` and `loopback-only` are the
/// wildcard and loopback addresses of the versions inet_protocols allows;
/// a named address of a version it turns off is an error.
fn interface_addresses(config: &MainConfig) -> Result<Vec<String>, ListenError> {
    let protocols = InetProtocols::from_config(config).map_err(ListenError::Protocols)?;
    let items = config.list("inet_interfaces");
    let mut hosts = Vec::new();
    let mut both = |v4: &str, v6: &str| {
        if protocols.ipv4 {
            hosts.push(v4.to_string());
        }
        if protocols.ipv6 {
            hosts.push(v6.to_string());
        }
    };
    let mut named = Vec::new();
    for item in items {
        match item.as_str() {
            "all" => both("0.0.0.0", "::"),
            "loopback-only" => both("127.0.0.1", "::1"),
            "localhost" if protocols.ipv4 => named.push("127.0.0.1".to_string()),
            "localhost" => named.push("::1".to_string()),
            _ => named.push(item),
        }
    }
    for host in &named {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>()
            && !protocols.allows(&ip)
        {
            return Err(ListenError::Protocols(format!(
                "inet_interfaces: {host} is of an IP version inet_protocols = {} turns off",
                config.get("inet_protocols")
            )));
        }
    }
    hosts.extend(named);
    Ok(hosts)
}

/// Creates, binds and listens. A Unix socket is made in its directory by
/// name, relative to a descriptor of that directory, with the file system
/// identity (fsuid/fsgid) of `owner` and a umask that leaves `mode`: the
/// node belongs to `owner` from the moment bind() makes it, and the master
/// never touches the path again (no chmod or chown by name after bind, which
/// a link planted in `owner`'s directory between the two calls could turn
/// into a chown of any file). A stale socket of an earlier run is removed
/// the same way, as `owner`.
pub fn listen_on(
    endpoint: &Endpoint,
    owner: Option<&Identity>,
    mode: u32,
) -> Result<OwnedFd, ListenError> {
    let fail = |source: io::Error| ListenError::Socket {
        endpoint: endpoint.clone(),
        source,
    };
    let fd = match endpoint {
        Endpoint::Tcp(addr) => {
            let family = if addr.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
                .map_err(|e| fail(e.into()))?;
            setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| fail(e.into()))?;
            if addr.is_ipv6() {
                // Keep IPv4 on its own socket when both are configured.
                setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(|e| fail(e.into()))?;
            }
            bind(fd.as_raw_fd(), &SockaddrStorage::from(*addr)).map_err(|e| fail(e.into()))?;
            fd
        }
        Endpoint::Unix(path) => {
            let (dir, name) = match (path.parent(), path.file_name()) {
                (Some(dir), Some(name)) => (dir, name),
                _ => return Err(fail(io::Error::other("not a socket path"))),
            };
            let dir = open_dir(dir).map_err(fail)?;
            let fd = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(|e| fail(e.into()))?;
            in_dir_as(&dir, owner, mode, || {
                match nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
                    Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                    Err(e) => return Err(io::Error::from(e)),
                }
                let addr = UnixAddr::new(Path::new(name)).map_err(io::Error::from)?;
                bind(fd.as_raw_fd(), &addr).map_err(io::Error::from)
            })
            .map_err(fail)?;
            fd
        }
    };
    listen(&fd, Backlog::new(511).unwrap_or(Backlog::MAXCONN)).map_err(|e| fail(e.into()))?;
    Ok(fd)
}

/// A directory of the spool, opened without following a link in its last
/// step (the steps above are queue_directory's, which is root's).
fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    nix::fcntl::open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Runs `f` with `dir` as the current directory, the file system identity
/// of `owner` (when the master is root) and a umask that leaves `mode`;
/// everything is put back afterwards. The master is single-threaded, so
/// nothing else runs with these settings.
fn in_dir_as<T>(
    dir: &OwnedFd,
    owner: Option<&Identity>,
    mode: u32,
    f: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let back = open_dir(Path::new("."))?;
    nix::unistd::fchdir(dir).map_err(io::Error::from)?;
    let mask = nix::sys::stat::umask(Mode::from_bits_truncate(0o777 & !mode));
    let switched = match owner {
        Some(owner) => FsIdentity::switch(owner),
        None => Ok(None),
    };
    let result = switched.and_then(|guard| {
        let result = f();
        drop(guard);
        result
    });
    nix::sys::stat::umask(mask);
    nix::unistd::fchdir(&back).map_err(io::Error::from)?;
    result
}

/// The master's fsuid/fsgid switched to another user's until dropped.
struct FsIdentity {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl FsIdentity {
    fn switch(owner: &Identity) -> io::Result<Option<FsIdentity>> {
        // SAFETY: setfsgid/setfsuid take and return plain ids; they change
        // only this (single) thread's file system identity.
        let (old_gid, old_uid) = unsafe {
            let gid = libc::setfsgid(owner.gid.as_raw()) as libc::gid_t;
            let uid = libc::setfsuid(owner.uid.as_raw()) as libc::uid_t;
            (gid, uid)
        };
        let guard = FsIdentity {
            uid: old_uid,
            gid: old_gid,
        };
        // setfs*id cannot report failure; an invalid id (-1) changes nothing
        // and returns the current one, which must now be owner's.
        // SAFETY: as above.
        let (now_gid, now_uid) = unsafe {
            (
                libc::setfsgid(libc::gid_t::MAX) as libc::gid_t,
                libc::setfsuid(libc::uid_t::MAX) as libc::uid_t,
            )
        };
        if now_uid != owner.uid.as_raw() || now_gid != owner.gid.as_raw() {
            return Err(io::Error::other(format!(
                "cannot take the file system identity of {}",
                owner.name
            )));
        }
        Ok(Some(guard))
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        // SAFETY: as in `switch`: plain ids, this thread only.
        unsafe {
            libc::setfsuid(self.uid);
            libc::setfsgid(self.gid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_config::MasterConfig;

    fn tcp_endpoints(main_cf: &str) -> Result<Vec<String>, String> {
        let config = MainConfig::parse(
            main_cf,
            Path::new("/etc/mg/main.cf"),
            Path::new("/etc/mg"),
            &[],
        )
        .unwrap();
        let master = MasterConfig::parse(
            "smtp inet n - y - - smtpd\n",
            Path::new("/etc/mg/master.cf"),
        )
        .unwrap();
        endpoints(&master.services[0], &config, Path::new("/q"))
            .map(|e| e.iter().map(ToString::to_string).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn inet_protocols_choose_the_wildcard_addresses() {
        assert_eq!(
            tcp_endpoints("inet_interfaces = all\n").unwrap(),
            ["0.0.0.0:25", "[::]:25"]
        );
        assert_eq!(
            tcp_endpoints("inet_interfaces = all\ninet_protocols = ipv4\n").unwrap(),
            ["0.0.0.0:25"]
        );
        assert_eq!(
            tcp_endpoints("inet_interfaces = loopback-only\ninet_protocols = ipv6\n").unwrap(),
            ["[::1]:25"]
        );
        let refused =
            tcp_endpoints("inet_interfaces = 2001:db8::1\ninet_protocols = ipv4\n").unwrap_err();
        assert!(refused.contains("inet_protocols"), "{refused}");
    }
}
