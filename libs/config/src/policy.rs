//! `check_policy_service` as written in main.cf: where the policy server
//! listens (`inet:host:port`, `inet:[::1]:port` or `unix:path`, a relative
//! path being relative to the queue directory, the current directory of
//! every mailgate worker) and the per-service settings of Postfix 3.0's
//! `{ endpoint, name=value, ... }` form. Parsed here so that `mailgate
//! check` and smtpd read it the same way; the client is libs/policy.

pub use crate::endpoint::{Endpoint, EndpointError};
use crate::lines::{split_list, strip_braces};
use crate::main_cf::{MainConfig, Override};

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
