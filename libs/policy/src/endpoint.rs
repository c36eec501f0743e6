//! Where a policy server listens, as Postfix writes it:
//! `inet:host:port` (`inet:[::1]:port` for IPv6) or `unix:path`, where a
//! relative path is relative to the queue directory (the current directory
//! of every mailgate worker, chrooted or not).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::PolicyError;

/// The longest Unix socket path (sun_path holds 108 bytes with its NUL).
const UNIX_PATH_MAX: usize = 107;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Inet { host: String, port: u16 },
    Unix(PathBuf),
}

impl Endpoint {
    pub fn parse(spec: &str) -> Result<Endpoint, PolicyError> {
        let spec = spec.trim();
        let bad = |reason: &str| PolicyError::BadEndpoint {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = spec.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("the socket path is missing"));
            }
            if path.len() > UNIX_PATH_MAX {
                return Err(bad("the socket path is longer than 107 bytes"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let Some(address) = spec.strip_prefix("inet:") else {
            return Err(bad("expected inet:host:port or unix:path"));
        };
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| bad("expected inet:host:port"))?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .ok_or_else(|| bad("unbalanced [ in the host"))?,
            None => host,
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
        Ok(Endpoint::Inet {
            host: host.to_string(),
            port,
        })
    }

    /// The addresses of an inet endpoint, looked up now (before the
    /// sandbox, which has no resolver files); empty for a Unix endpoint.
    pub(crate) fn resolve(&self) -> Result<Vec<SocketAddr>, PolicyError> {
        let Endpoint::Inet { host, port } = self else {
            return Ok(Vec::new());
        };
        let addresses: Vec<SocketAddr> = (host.as_str(), *port)
            .to_socket_addrs()
            .map_err(|e| PolicyError::Resolve {
                endpoint: self.to_string(),
                reason: e.to_string(),
            })?
            .collect();
        if addresses.is_empty() {
            return Err(PolicyError::Resolve {
                endpoint: self.to_string(),
                reason: "no address".to_string(),
            });
        }
        Ok(addresses)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Inet { host, port } if host.contains(':') => {
                write!(f, "inet:[{host}]:{port}")
            }
            Endpoint::Inet { host, port } => write!(f, "inet:{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_as_postfix_writes_them() {
        for (spec, expected) in [
            (
                "inet:127.0.0.1:10023",
                Endpoint::Inet {
                    host: "127.0.0.1".into(),
                    port: 10023,
                },
            ),
            (
                "inet:[::1]:9998",
                Endpoint::Inet {
                    host: "::1".into(),
                    port: 9998,
                },
            ),
            (
                "unix:private/greylist",
                Endpoint::Unix("private/greylist".into()),
            ),
            (
                "unix:/run/policy.sock",
                Endpoint::Unix("/run/policy.sock".into()),
            ),
        ] {
            let parsed = Endpoint::parse(spec).unwrap();
            assert_eq!(parsed, expected);
            assert_eq!(parsed.to_string(), spec);
        }
    }

    #[test]
    fn bad_endpoints_are_refused_with_a_reason() {
        let long = format!("unix:{}", "x".repeat(108));
        for (spec, reason) in [
            ("127.0.0.1:10023", "expected inet:host:port or unix:path"),
            ("inet:127.0.0.1", "expected inet:host:port"),
            ("inet::10023", "host is missing"),
            ("inet:localhost:postgrey", "port must be a number"),
            ("inet:[::1:10023", "unbalanced"),
            ("unix:", "path is missing"),
            (long.as_str(), "longer than 107"),
        ] {
            let e = Endpoint::parse(spec).unwrap_err().to_string();
            assert!(e.contains(reason), "{spec}: {e}");
        }
    }

    #[test]
    fn inet_endpoints_resolve_before_the_sandbox() {
        let endpoint = Endpoint::parse("inet:127.0.0.1:10023").unwrap();
        assert_eq!(
            endpoint.resolve().unwrap(),
            vec!["127.0.0.1:10023".parse::<SocketAddr>().unwrap()]
        );
        assert!(
            Endpoint::parse("unix:x")
                .unwrap()
                .resolve()
                .unwrap()
                .is_empty()
        );
    }
}
