//! `check_policy_service` as written in main.cf: where the policy server
//! listens (`inet:host:port`, `inet:[::1]:port` or `unix:path`, a relative
//! path being relative to the queue directory, the current directory of
//! every mailgate worker) and the per-service settings of Postfix 3.0's
//! `{ endpoint, name=value, ... }` form. Parsed here so that `mailgate
//! check` and smtpd read it the same way; the client is libs/policy.

use std::fmt;
use std::path::PathBuf;

use crate::lines::{split_list, strip_braces};
use crate::main_cf::{MainConfig, Override};

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

/// The per-service names, which are the main.cf names without this prefix.
pub const SETTING_PREFIX: &str = "smtpd_policy_service_";
pub const SETTING_NAMES: [&str; 8] = [
    "timeout",
    "max_idle",
    "max_ttl",
    "request_limit",
    "try_limit",
    "retry_delay",
    "default_action",
    "policy_context",
];

/// One `check_policy_service` argument, parsed: the endpoint, and main.cf
/// with the service's own settings applied.
#[derive(Clone, Debug)]
pub struct PolicySpec {
    /// As written, for log lines.
    pub argument: String,
    pub endpoint: Endpoint,
    pub config: MainConfig,
}

impl PolicySpec {
    /// Parses the argument of `check_policy_service`: an endpoint, or
    /// `{ endpoint, name=value, { name = value with spaces }, ... }` whose
    /// settings override main.cf's for this service only.
    pub fn parse(argument: &str, config: &MainConfig) -> Result<PolicySpec, String> {
        let Some(inner) = strip_braces(argument.trim()) else {
            let endpoint = Endpoint::parse(argument).map_err(|e| e.to_string())?;
            return PolicySpec::checked(argument, endpoint, config.clone());
        };
        let items = split_list(inner);
        let Some((first, rest)) = items.split_first() else {
            return Err(format!("\"{argument}\": no policy server endpoint"));
        };
        let endpoint = Endpoint::parse(first).map_err(|e| e.to_string())?;
        let mut overrides = Vec::new();
        for item in rest {
            let setting = strip_braces(item).unwrap_or(item);
            let Some((name, value)) = setting.split_once('=') else {
                return Err(format!(
                    "check_policy_service {first}: \"{item}\" is not name=value (enclose a setting with spaces in {{ }})"
                ));
            };
            let name = name.trim();
            if !SETTING_NAMES.contains(&name) {
                return Err(format!(
                    "check_policy_service {first}: unknown setting \"{name}\" (known: {})",
                    SETTING_NAMES.join(", ")
                ));
            }
            overrides.push(Override {
                name: format!("{SETTING_PREFIX}{name}"),
                value: value.trim().to_string(),
                origin: config.config_dir().join("main.cf"),
                line: 0,
            });
        }
        let config = config
            .with_overrides(&overrides)
            .map_err(|e| format!("check_policy_service {first}: {}", e.to_string().trim_end()))?;
        PolicySpec::checked(argument, endpoint, config)
    }

    /// The settings that the parameter table cannot check by kind.
    fn checked(
        argument: &str,
        endpoint: Endpoint,
        config: MainConfig,
    ) -> Result<PolicySpec, String> {
        for name in ["request_limit", "try_limit"] {
            let name = format!("{SETTING_PREFIX}{name}");
            if u32::try_from(config.int(&name)).is_err() {
                return Err(format!("{name}: must be a number from 0 to 4294967295"));
            }
        }
        let action = config.get(&format!("{SETTING_PREFIX}default_action"));
        if action.trim().is_empty() || action.chars().any(char::is_control) {
            return Err(format!(
                "{SETTING_PREFIX}default_action: \"{action}\" is not an action"
            ));
        }
        Ok(PolicySpec {
            argument: argument.to_string(),
            endpoint,
            config,
        })
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
