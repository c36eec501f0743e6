//! What the verify service reads from main.cf, once, before its sandbox:
//! the cache and its times, the probe sender, and the routing of probes.

use std::fmt;
use std::time::Duration;

use mailgate_config::verify::ProbeSender;
use mailgate_config::{MainConfig, Router};
use mailgate_store::StoreSpec;

use crate::cache::Times;

pub struct Settings {
    /// address_verify_map; None when empty (the cache lives in memory).
    pub store: Option<StoreSpec>,
    /// address_verify_map_timeout.
    pub store_timeout: Duration,
    pub times: Times,
    /// address_verify_negative_cache.
    pub negative_cache: bool,
    /// address_verify_cache_cleanup_interval (zero: never).
    pub cleanup_interval: Duration,
    pub sender: ProbeSender,
    /// address_verify_pending_request_limit.
    pub pending_limit: usize,
    /// transport_maps, relayhost... or their address_verify_* overrides.
    pub router: Router,
}

/// A setting the service cannot run with.
#[derive(Debug)]
pub struct SettingsError(Vec<String>);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    pub fn load(config: &MainConfig) -> Result<Settings, SettingsError> {
        let mut errors = Vec::new();
        let map = mailgate_config::verify::cache_map(&config.get("address_verify_map"));
        let store = if map.is_empty() {
            None
        } else {
            StoreSpec::parse(&map)
                .map_err(|e| errors.push(format!("address_verify_map = {e}")))
                .ok()
        };
        let secs = |name: &str| config.time(name).as_secs();
        let times = Times {
            positive_expire: secs("address_verify_positive_expire_time"),
            positive_refresh: secs("address_verify_positive_refresh_time"),
            negative_expire: secs("address_verify_negative_expire_time"),
            negative_refresh: secs("address_verify_negative_refresh_time"),
        };
        let sender = ProbeSender::from_config(config).unwrap_or_else(|e| {
            errors.push(e);
            ProbeSender::Null
        });
        let pending_limit = config.int("address_verify_pending_request_limit");
        if pending_limit < 1 {
            errors.push(format!(
                "address_verify_pending_request_limit = {pending_limit}: must be 1 or more"
            ));
        }
        let router = Router::for_probes(config)
            .map_err(|e| errors.push(e.to_string().trim_end().replace('\n', "; ")))
            .ok();
        match router {
            Some(router) if errors.is_empty() => Ok(Settings {
                store,
                store_timeout: config.time("address_verify_map_timeout"),
                times,
                negative_cache: config.bool("address_verify_negative_cache"),
                cleanup_interval: config.time("address_verify_cache_cleanup_interval"),
                sender,
                pending_limit: usize::try_from(pending_limit).unwrap_or(usize::MAX),
                router,
            }),
            _ => Err(SettingsError(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(main_cf: &str) -> Result<Settings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.cf"), main_cf).unwrap();
        Settings::load(&MainConfig::load(dir.path()).unwrap())
    }

    #[test]
    fn defaults_are_postfixs() {
        let s = load("myhostname = gw.example.com\ndata_directory = /var/lib/mg\n").unwrap();
        assert_eq!(
            s.store,
            Some(StoreSpec::Redb("/var/lib/mg/verify_cache.redb".into()))
        );
        assert_eq!(
            s.times,
            Times {
                positive_expire: 31 * 86400,
                positive_refresh: 7 * 86400,
                negative_expire: 3 * 86400,
                negative_refresh: 3 * 3600,
            }
        );
        assert!(s.negative_cache);
        assert_eq!(s.cleanup_interval, Duration::from_secs(12 * 3600));
        assert_eq!(s.sender.at(0), "double-bounce@gw.example.com");
        assert_eq!(s.pending_limit, 5000);
        // A Postfix tutorial's cache file: a redb file beside it.
        let s = load("address_verify_map = btree:/var/spool/postfix/data/verify\n").unwrap();
        assert_eq!(
            s.store,
            Some(StoreSpec::Redb(
                "/var/spool/postfix/data/verify.redb".into()
            ))
        );
        let s = load("address_verify_map =\naddress_verify_sender = <>\n").unwrap();
        assert_eq!((s.store, s.sender), (None, ProbeSender::Null));
    }

    #[test]
    fn mistakes_are_all_reported() {
        let e = load(
            "address_verify_map = cdb:/var/lib/postfix/verify\n\
             address_verify_sender = @example.com\n\
             address_verify_pending_request_limit = 0\n\
             address_verify_transport_maps = nis:transport\n",
        )
        .err()
        .unwrap()
        .to_string();
        for part in [
            "address_verify_map = \"cdb:/var/lib/postfix/verify\": unknown store type",
            "address_verify_sender = @example.com: must not start with '@'",
            "address_verify_pending_request_limit = 0",
            "address_verify_transport_maps",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
    }
}
