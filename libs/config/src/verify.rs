//! Address verification settings that more than one program reads: the
//! probe sender (the verify service), the reply codes of
//! reject_unverified_* (smtpd), and the checks `mailgate check` runs on
//! them, so a configuration it passes is one both programs start with.

use crate::main_cf::MainConfig;

/// The envelope sender of probes (Postfix's make_verify_sender_addr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeSender {
    /// address_verify_sender empty or `<>`.
    Null,
    /// `local@domain`, with a time-dependent part appended to `local`
    /// every `ttl` seconds when ttl is not zero.
    Address {
        local: String,
        domain: String,
        ttl: u64,
    },
}

/// Postfix's safe_ultostr alphabet: no vowels, so no words.
const SAFE_CHARS: &[u8] = b"0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";
const STAMP_BASE: u64 = 31;

impl ProbeSender {
    /// From address_verify_sender, address_verify_sender_ttl and myorigin.
    pub fn from_config(config: &MainConfig) -> Result<ProbeSender, String> {
        let value = config.get("address_verify_sender");
        let value = value.trim();
        if value.is_empty() || value == "<>" {
            return Ok(ProbeSender::Null);
        }
        let bad = |why: &str| format!("address_verify_sender = {value}: {why}");
        if value.starts_with('@') {
            return Err(bad("must not start with '@'"));
        }
        if value.ends_with('@') {
            return Err(bad("must not end with '@'"));
        }
        if value
            .bytes()
            .any(|b| b.is_ascii_control() || b" <>".contains(&b))
        {
            return Err(bad("is not an address"));
        }
        // Qualified as Postfix's local rewriting does: @$myorigin.
        let myorigin = config.get("myorigin");
        let (local, domain) = value.rsplit_once('@').unwrap_or((value, &myorigin));
        Ok(ProbeSender::Address {
            local: local.to_string(),
            domain: domain.to_string(),
            ttl: config.time("address_verify_sender_ttl").as_secs(),
        })
    }

    /// The sender of a probe made at `now` (seconds since the epoch).
    pub fn at(&self, now: u64) -> String {
        match self {
            ProbeSender::Null => String::new(),
            ProbeSender::Address { local, domain, ttl } if *ttl == 0 => {
                format!("{local}@{domain}")
            }
            ProbeSender::Address { local, domain, ttl } => {
                let mut epoch = now / ttl;
                let mut stamp = Vec::new();
                while epoch != 0 {
                    stamp.push(SAFE_CHARS[(epoch % STAMP_BASE) as usize]);
                    epoch /= STAMP_BASE;
                }
                stamp.reverse();
                format!("{local}{}@{domain}", String::from_utf8_lossy(&stamp))
            }
        }
    }
}

/// Postfix's writable table types that address_verify_map may name
/// (`btree:$data_directory/verify_cache` is its default), with or without
/// `proxy:`.
const POSTFIX_CACHE_TYPES: [&str; 4] = ["btree", "hash", "lmdb", "sdbm"];

/// address_verify_map as the store to open: empty for memory; a Postfix
/// cache file (`btree:/path/verify_cache`, `proxy:btree:...`) becomes a
/// redb file beside where Postfix would have kept it (`redb:` + the path +
/// `.redb`): the same persistent cache, in mailgate's format; anything else
/// (`redb:...`, `redis:...`) as it is, for the store to parse.
pub fn cache_map(value: &str) -> String {
    let value = value.trim();
    let table = value.strip_prefix("proxy:").unwrap_or(value);
    match table.split_once(':') {
        Some((kind, path)) if POSTFIX_CACHE_TYPES.contains(&kind) && !path.is_empty() => {
            format!("redb:{path}.redb")
        }
        _ => value.to_string(),
    }
}

/// An unverified_*_code: Postfix takes 2xx (the address passes), 4xx and
/// 5xx.
pub fn reply_code(config: &MainConfig, parameter: &str) -> Result<u16, String> {
    let value = config.int(parameter);
    match u16::try_from(value) {
        Ok(code) if matches!(code / 100, 2 | 4 | 5) => Ok(code),
        _ => Err(format!(
            "{parameter} = {value}: not a 2xx, 4xx or 5xx SMTP reply code"
        )),
    }
}

/// The reply code parameters of reject_unverified_*.
pub const CODE_PARAMETERS: [&str; 4] = [
    "unverified_recipient_reject_code",
    "unverified_recipient_defer_code",
    "unverified_sender_reject_code",
    "unverified_sender_defer_code",
];

/// Every problem with these settings, as (parameter, message).
pub fn problems(config: &MainConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for name in CODE_PARAMETERS {
        if let Err(e) = reply_code(config, name) {
            out.push((name, e));
        }
    }
    if let Err(e) = ProbeSender::from_config(config) {
        out.push(("address_verify_sender", e));
    }
    let limit = config.int("address_verify_pending_request_limit");
    if limit < 1 {
        out.push((
            "address_verify_pending_request_limit",
            format!("address_verify_pending_request_limit = {limit}: must be 1 or more"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(main_cf: &str) -> MainConfig {
        MainConfig::parse(
            main_cf,
            std::path::Path::new("main.cf"),
            std::path::Path::new("/"),
            &[],
        )
        .unwrap()
    }

    #[test]
    fn the_probe_sender_is_postfixs() {
        let c = config("myhostname = gw.example.com\n");
        assert_eq!(
            ProbeSender::from_config(&c).unwrap().at(0),
            "double-bounce@gw.example.com"
        );
        for null in ["address_verify_sender =\n", "address_verify_sender = <>\n"] {
            assert_eq!(
                ProbeSender::from_config(&config(null)),
                Ok(ProbeSender::Null)
            );
        }
        let c = config("address_verify_sender = checker@example.net\n");
        assert_eq!(
            ProbeSender::from_config(&c).unwrap().at(5),
            "checker@example.net"
        );
        // 1800000000 / 3600 = 500000 = 16*31^3 + 24*31^2 + 9*31 + 1: the
        // digits J, S, 9, 1 of Postfix's base-31 alphabet.
        let c = config(
            "myorigin = example.org\naddress_verify_sender = probe\naddress_verify_sender_ttl = 1h\n",
        );
        let sender = ProbeSender::from_config(&c).unwrap();
        assert_eq!(sender.at(1_800_000_000), "probeJS91@example.org");
        assert_eq!(sender.at(1_800_000_000 + 3599), "probeJS91@example.org");
        assert_ne!(sender.at(1_800_000_000 + 3600), sender.at(1_800_000_000));
    }

    #[test]
    fn postfix_cache_files_become_redb_files_beside_them() {
        assert_eq!(
            cache_map("btree:/var/spool/postfix/data/verify"),
            "redb:/var/spool/postfix/data/verify.redb"
        );
        assert_eq!(
            cache_map(" proxy:btree:/var/lib/postfix/verify_cache "),
            "redb:/var/lib/postfix/verify_cache.redb"
        );
        assert_eq!(cache_map("lmdb:/d/verify"), "redb:/d/verify.redb");
        for kept in [
            "",
            "redb:/d/v.redb",
            "redis:127.0.0.1:6379/2",
            "btree:",
            "cdb:/x",
        ] {
            assert_eq!(cache_map(kept), kept);
        }
    }

    #[test]
    fn problems_name_their_parameter() {
        assert!(problems(&config("unverified_recipient_defer_code = 250\n")).is_empty());
        let found = problems(&config(
            "unverified_sender_reject_code = 399\n\
             address_verify_sender = @example.com\n\
             address_verify_pending_request_limit = 0\n",
        ));
        let names: Vec<&str> = found.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "unverified_sender_reject_code",
                "address_verify_sender",
                "address_verify_pending_request_limit"
            ]
        );
        assert!(found[1].1.contains("must not start with '@'"));
    }
}
