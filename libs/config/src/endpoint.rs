//! Where a service listens, as Postfix writes it: `inet:host:port`
//! (`inet:[::1]:port` for IPv6) or `unix:path`, a relative path being
//! relative to the queue directory (the current directory of every
//! mailgate worker). Policy servers and SASL backends are named so.

use std::fmt;
use std::path::PathBuf;

/// The longest Unix socket path (sun_path holds 108 bytes with its NUL).
const UNIX_PATH_MAX: usize = 107;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Inet { host: String, port: u16 },
    Unix(PathBuf),
}

/// An endpoint that is not `inet:host:port` or `unix:path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointError {
    pub spec: String,
    pub reason: String,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad policy server \"{}\": {}", self.spec, self.reason)
    }
}

impl std::error::Error for EndpointError {}

impl Endpoint {
    pub fn parse(spec: &str) -> Result<Endpoint, EndpointError> {
        let spec = spec.trim();
        let bad = |reason: &str| EndpointError {
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
}
