//! The sockets the master creates and hands to its services: TCP listeners
//! for inet services, Unix listeners in private/ (or public/) for the rest.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mailgate_config::{MainConfig, ServiceEntry, ServiceKind};
use mailgate_ipc::spool::{PRIVATE, PUBLIC};
use mailgate_sandbox::Identity;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, UnixAddr, bind, listen,
    setsockopt, socket, sockopt,
};

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
                None => interface_addresses(config),
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

fn interface_addresses(config: &MainConfig) -> Vec<String> {
    let items = config.list("inet_interfaces");
    let mut hosts = Vec::new();
    for item in items {
        match item.as_str() {
            "all" => hosts.extend(["0.0.0.0".to_string(), "::".to_string()]),
            "loopback-only" => hosts.extend(["127.0.0.1".to_string(), "::1".to_string()]),
            "localhost" => hosts.push("127.0.0.1".to_string()),
            _ => hosts.push(item),
        }
    }
    hosts
}

/// Creates, binds and listens. Unix sockets are made fresh (a stale one from
/// a previous run is removed) and given to `owner`, mode 0660, so only
/// mailgate's own processes can connect.
pub fn listen_on(endpoint: &Endpoint, owner: Option<&Identity>) -> Result<OwnedFd, ListenError> {
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
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(e)),
            }
            let fd = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(|e| fail(e.into()))?;
            let addr = UnixAddr::new(path.as_path()).map_err(|e| fail(e.into()))?;
            bind(fd.as_raw_fd(), &addr).map_err(|e| fail(e.into()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(fail)?;
            if let Some(owner) = owner {
                nix::unistd::chown(path, Some(owner.uid), Some(owner.gid))
                    .map_err(|e| fail(e.into()))?;
            }
            fd
        }
    };
    listen(&fd, Backlog::new(511).unwrap_or(Backlog::MAXCONN)).map_err(|e| fail(e.into()))?;
    Ok(fd)
}
