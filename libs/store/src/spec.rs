//! Where a store lives, written as a Postfix-style `type:name`:
//! `redb:/var/lib/mailgate/greylist.redb` or `redis:host:port[/db]`.

use std::fmt;
use std::path::PathBuf;

use crate::StoreError;

/// The Redis port when a spec names none.
pub const REDIS_PORT: u16 = 6379;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// An embedded database file (redb): one process opens it.
    Redb(PathBuf),
    /// A Redis server, shared by every gateway that names it.
    Redis { host: String, port: u16, db: i64 },
}

impl StoreSpec {
    /// Parses `redb:PATH` (an absolute path) or `redis:HOST[:PORT][/DB]`,
    /// where HOST may be an IPv6 address in brackets (`redis:[::1]:6379/2`).
    pub fn parse(value: &str) -> Result<StoreSpec, StoreError> {
        let value = value.trim();
        let bad = |reason: &str| StoreError::BadSpec {
            spec: value.to_string(),
            reason: reason.to_string(),
        };
        let Some((kind, rest)) = value.split_once(':') else {
            return Err(bad(
                "expected redb:/path/to/file.redb or redis:host:port[/db]",
            ));
        };
        match kind {
            "redb" => {
                let path = PathBuf::from(rest);
                if !path.is_absolute() {
                    return Err(bad("the database file must be an absolute path"));
                }
                Ok(StoreSpec::Redb(path))
            }
            "redis" => {
                let (address, db) = match rest.rsplit_once('/') {
                    Some((address, db)) => {
                        let db = db
                            .parse::<i64>()
                            .ok()
                            .filter(|db| *db >= 0)
                            .ok_or_else(|| bad("the database after / must be a number"))?;
                        (address, db)
                    }
                    None => (rest, 0),
                };
                let (host, port) = split_host_port(address).map_err(bad)?;
                Ok(StoreSpec::Redis { host, port, db })
            }
            other => Err(bad(&format!(
                "unknown store type \"{other}\" (mailgate has redb and redis)"
            ))),
        }
    }
}

fn split_host_port(address: &str) -> Result<(String, u16), &'static str> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unbalanced [ in the address")?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or("expected :port after ]")?),
            ),
        }
    } else {
        match address.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err("the Redis host is missing");
    }
    let port = match port {
        None => REDIS_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("the port must be a number from 1 to 65535")?,
    };
    Ok((host.to_string(), port))
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Redb(path) => write!(f, "redb:{}", path.display()),
            StoreSpec::Redis { host, port, db } if host.contains(':') => {
                write!(f, "redis:[{host}]:{port}/{db}")
            }
            StoreSpec::Redis { host, port, db } => write!(f, "redis:{host}:{port}/{db}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        assert_eq!(
            StoreSpec::parse("redb:/var/lib/mailgate/greylist.redb").unwrap(),
            StoreSpec::Redb("/var/lib/mailgate/greylist.redb".into())
        );
        for (text, host, port, db, shown) in [
            (
                "redis:10.0.0.5:6380/2",
                "10.0.0.5",
                6380,
                2,
                "redis:10.0.0.5:6380/2",
            ),
            (
                "redis:cache.example",
                "cache.example",
                6379,
                0,
                "redis:cache.example:6379/0",
            ),
            ("redis:[::1]:7000", "::1", 7000, 0, "redis:[::1]:7000/0"),
            ("redis:[::1]/3", "::1", 6379, 3, "redis:[::1]:6379/3"),
        ] {
            let spec = StoreSpec::parse(text).unwrap();
            assert_eq!(
                spec,
                StoreSpec::Redis {
                    host: host.into(),
                    port,
                    db
                },
                "{text}"
            );
            assert_eq!(spec.to_string(), shown);
        }
    }

    #[test]
    fn bad_specs_say_what_is_expected() {
        for (text, hint) in [
            ("greylist.redb", "expected redb:"),
            ("redb:greylist.redb", "absolute path"),
            ("lmdb:/x", "unknown store type \"lmdb\""),
            ("redis:", "host is missing"),
            ("redis:h:0", "port must be"),
            ("redis:h:70000", "port must be"),
            ("redis:h:6379/x", "database after /"),
            ("redis:[::1", "unbalanced"),
        ] {
            let e = StoreSpec::parse(text).unwrap_err().to_string();
            assert!(e.contains(hint), "{text}: {e}");
            assert!(e.contains(text.trim()), "{text}: {e}");
        }
    }
}
