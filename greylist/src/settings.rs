//! What the greylist service reads from main.cf, once, before its sandbox.

use std::time::Duration;

use mailgate_config::{MainConfig, open_tables};
use mailgate_policy::Action;
use mailgate_store::StoreSpec;

use crate::whitelist::Whitelists;

pub struct Settings {
    /// greylist_delay: how long a new triplet is refused.
    pub delay: u64,
    /// greylist_retry_window: how long a first retry may take; later, the
    /// triplet counts as new again.
    pub retry_window: u64,
    /// greylist_max_age: how long a triplet that passed is remembered.
    pub max_age: u64,
    /// greylist_auto_whitelist_clients: after this many successful retries
    /// a client passes at once (0: never).
    pub auto_whitelist_clients: u64,
    pub whitelists: Whitelists,
    /// greylist_text, with postgrey's %s (seconds left) and %r (recipient
    /// domain).
    pub text: String,
    pub database: StoreSpec,
    pub database_timeout: Duration,
    /// myhostname, for the X-Greylist header.
    pub hostname: String,
}

impl Settings {
    pub fn load(config: &MainConfig) -> Result<Settings, String> {
        let mut errors = Vec::new();
        let dir = config.config_dir();
        let mut tables = |name: &str| {
            open_tables(&config.list(name), dir).unwrap_or_else(|e| {
                errors.push(format!("{name}: {}", e.to_string().trim_end()));
                Vec::new()
            })
        };
        let whitelists = Whitelists {
            clients: tables("greylist_whitelist_clients"),
            recipients: tables("greylist_whitelist_recipients"),
        };
        let text = config.get("greylist_text");
        if Action::new(&format!("DEFER_IF_PERMIT {text}")).is_err() || text.trim().is_empty() {
            errors.push(format!(
                "greylist_text = {text}: must be a non-empty line of text"
            ));
        }
        let auto_whitelist_clients = u64::try_from(config.int("greylist_auto_whitelist_clients"))
            .unwrap_or_else(|_| {
                errors.push("greylist_auto_whitelist_clients: must be 0 or more".to_string());
                0
            });
        let database = StoreSpec::parse(&config.get("greylist_database")).unwrap_or_else(|e| {
            errors.push(format!("greylist_database = {e}"));
            StoreSpec::Redb("/nonexistent".into())
        });
        let delay = config.time("greylist_delay").as_secs();
        let retry_window = config.time("greylist_retry_window").as_secs();
        if retry_window < delay {
            errors.push(format!(
                "greylist_retry_window ({retry_window}s) is shorter than greylist_delay ({delay}s): no retry could ever pass"
            ));
        }
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        Ok(Settings {
            delay,
            retry_window,
            max_age: config.time("greylist_max_age").as_secs(),
            auto_whitelist_clients,
            whitelists,
            text,
            database,
            database_timeout: config.time("greylist_database_timeout"),
            hostname: config.get("myhostname"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(main_cf: &str) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.cf"), main_cf).unwrap();
        Settings::load(&MainConfig::load(dir.path()).unwrap())
    }

    #[test]
    fn defaults_are_postgreys() {
        let s = load("data_directory = /var/lib/mg\n").unwrap();
        assert_eq!(
            (s.delay, s.retry_window, s.max_age),
            (300, 2 * 86400, 35 * 86400)
        );
        assert_eq!(s.auto_whitelist_clients, 5);
        assert_eq!(
            s.text,
            "Greylisted, see http://postgrey.schweikert.ch/help/%r.html"
        );
        assert_eq!(
            s.database,
            StoreSpec::Redb("/var/lib/mg/greylist.redb".into())
        );
        assert!(s.whitelists.clients.is_empty());
    }

    #[test]
    fn mistakes_are_all_reported() {
        let e = load(
            "greylist_database = lmdb:/x\n\
             greylist_whitelist_clients = texthash:/nonexistent/list\n\
             greylist_auto_whitelist_clients = -1\n\
             greylist_delay = 3d\n",
        )
        .err()
        .unwrap();
        for part in [
            "greylist_database = \"lmdb:/x\": unknown store type",
            "greylist_whitelist_clients:",
            "greylist_auto_whitelist_clients: must be 0 or more",
            "greylist_retry_window (172800s) is shorter than greylist_delay (259200s)",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
    }
}
