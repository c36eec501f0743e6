//! The client's settings: Postfix's `smtpd_policy_service_*` parameters,
//! and the per-service overrides of `check_policy_service { endpoint,
//! name=value, ... }` (Postfix 3.0 and later).

use std::time::Duration;

use mailgate_config::MainConfig;

use crate::action::Action;
use crate::endpoint::Endpoint;
use crate::wire::Limits;

/// How a client talks to one policy server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySettings {
    /// smtpd_policy_service_timeout: the time limit to connect, and to send
    /// a request and read its reply.
    pub timeout: Duration,
    /// smtpd_policy_service_max_idle: an unused connection is closed after this.
    pub max_idle: Duration,
    /// smtpd_policy_service_max_ttl: a connection is not reused after this age.
    pub max_ttl: Duration,
    /// smtpd_policy_service_request_limit: requests per connection (0: no limit).
    pub request_limit: u32,
    /// smtpd_policy_service_try_limit: attempts per request (at least 1).
    pub try_limit: u32,
    /// smtpd_policy_service_retry_delay: the pause between attempts.
    pub retry_delay: Duration,
    /// smtpd_policy_service_default_action: what the caller applies when the
    /// request fails.
    pub default_action: Action,
    /// smtpd_policy_service_policy_context: sent as policy_context when the
    /// request carries none.
    pub policy_context: String,
    /// Bounds on the server's reply.
    pub limits: Limits,
    /// Idle connections kept for reuse (mailgate serves many sessions per
    /// process, where Postfix keeps one connection per smtpd process).
    pub pool_size: usize,
}

impl Default for PolicySettings {
    /// Postfix's defaults.
    fn default() -> PolicySettings {
        PolicySettings {
            timeout: Duration::from_secs(100),
            max_idle: Duration::from_secs(300),
            max_ttl: Duration::from_secs(1000),
            request_limit: 0,
            try_limit: 2,
            retry_delay: Duration::from_secs(1),
            default_action: Action::new("451 4.3.5 Server configuration problem")
                .unwrap_or_else(|_| unreachable!("a constant, well-formed action")),
            policy_context: String::new(),
            limits: Limits::default(),
            pool_size: 8,
        }
    }
}

use mailgate_config::policy::{PolicySpec, SETTING_PREFIX as PREFIX};

impl PolicySettings {
    /// The `smtpd_policy_service_*` parameters of a configuration.
    pub fn from_config(config: &MainConfig) -> Result<PolicySettings, String> {
        let name = |n: &str| format!("{PREFIX}{n}");
        let count = |n: &str| -> Result<u32, String> {
            u32::try_from(config.int(&name(n)))
                .map_err(|_| format!("{}: must be a number from 0 to 4294967295", name(n)))
        };
        let default_action = config.get(&name("default_action"));
        Ok(PolicySettings {
            timeout: config.time(&name("timeout")),
            max_idle: config.time(&name("max_idle")),
            max_ttl: config.time(&name("max_ttl")),
            request_limit: count("request_limit")?,
            try_limit: count("try_limit")?.max(1),
            retry_delay: config.time(&name("retry_delay")),
            default_action: Action::new(&default_action).map_err(|_| {
                format!(
                    "{}: \"{default_action}\" is not an action",
                    name("default_action")
                )
            })?,
            policy_context: config.get(&name("policy_context")),
            ..PolicySettings::default()
        })
    }
}

/// One `check_policy_service` target: where, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyService {
    pub endpoint: Endpoint,
    pub settings: PolicySettings,
}

impl PolicyService {
    /// Parses the argument of `check_policy_service` (see
    /// [`PolicySpec::parse`]) and reads its settings.
    pub fn parse(argument: &str, config: &MainConfig) -> Result<PolicyService, String> {
        PolicyService::from_spec(&PolicySpec::parse(argument, config)?)
    }

    pub fn from_spec(spec: &PolicySpec) -> Result<PolicyService, String> {
        Ok(PolicyService {
            endpoint: spec.endpoint.clone(),
            settings: PolicySettings::from_config(&spec.config)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(main_cf: &str) -> (tempfile::TempDir, MainConfig) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.cf"), main_cf).unwrap();
        let config = MainConfig::load(dir.path()).unwrap();
        (dir, config)
    }

    #[test]
    fn defaults_are_postfixs() {
        let (_dir, config) = config("");
        assert_eq!(
            PolicySettings::from_config(&config).unwrap(),
            PolicySettings::default()
        );
        let d = PolicySettings::default();
        assert_eq!(
            d.default_action.as_str(),
            "451 4.3.5 Server configuration problem"
        );
        assert_eq!((d.try_limit, d.request_limit), (2, 0));
    }

    #[test]
    fn main_cf_and_per_service_settings_apply() {
        let (_dir, config) = config(
            "smtpd_policy_service_timeout = 20s\nsmtpd_policy_service_policy_context = gw\n",
        );
        let plain = PolicyService::parse("inet:127.0.0.1:10023", &config).unwrap();
        assert_eq!(plain.settings.timeout, Duration::from_secs(20));
        assert_eq!(plain.settings.policy_context, "gw");
        let special = PolicyService::parse(
            "{ unix:private/greylist, timeout=10s, try_limit=1, { default_action = 450 4.7.1 Try again later } }",
            &config,
        )
        .unwrap();
        assert_eq!(special.endpoint, Endpoint::Unix("private/greylist".into()));
        assert_eq!(special.settings.timeout, Duration::from_secs(10));
        assert_eq!(special.settings.try_limit, 1);
        assert_eq!(
            special.settings.default_action.as_str(),
            "450 4.7.1 Try again later"
        );
        assert_eq!(special.settings.policy_context, "gw");
    }

    #[test]
    fn mistakes_are_named() {
        let (_dir, config) = config("");
        for (argument, hint) in [
            ("{ }", "no policy server endpoint"),
            (
                "{ inet:127.0.0.1:1, colour=blue }",
                "unknown setting \"colour\"",
            ),
            ("{ inet:127.0.0.1:1, timeout }", "not name=value"),
            ("{ inet:127.0.0.1:1, timeout=soon }", "invalid time value"),
            (
                "{ inet:127.0.0.1:1, {default_action = } }",
                "is not an action",
            ),
            ("tcp:127.0.0.1:1", "expected inet:host:port"),
        ] {
            let e = PolicyService::parse(argument, &config).unwrap_err();
            assert!(e.contains(hint), "{argument}: {e}");
        }
    }
}
