//! Sender authentication as main.cf configures it: check_spf's policy
//! (policyd-spf's settings under Postfix-style names), the scanner's DKIM
//! and DMARC checks, and DKIM signing with opendkim's two tables. Parsed
//! here so that `mailgate check`, smtpd, the scanner, cleanup and tlskeys
//! read them the same way.

use std::fmt;
use std::path::PathBuf;

use crate::main_cf::MainConfig;
use crate::table::{AddressLookup, Table, lookup_address, open_tables};

/// Which results of one SPF identity are refused (policyd-spf's
/// HELO_reject and Mail_From_reject).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpfReject {
    Fail,
    /// Fail and softfail.
    Softfail,
    /// Fail, softfail and neutral.
    NotPass,
    /// HELO only: fail, when the sender is the null sender.
    Null,
    /// Nothing: the header only.
    No,
    /// The identity is not checked at all.
    NoCheck,
}

impl SpfReject {
    fn parse(value: &str) -> SpfReject {
        match value.to_ascii_lowercase().as_str() {
            "softfail" => SpfReject::Softfail,
            "not_pass" => SpfReject::NotPass,
            "null" => SpfReject::Null,
            "no" => SpfReject::No,
            "no_check" => SpfReject::NoCheck,
            _ => SpfReject::Fail,
        }
    }
}

/// check_spf's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpfPolicy {
    pub helo: SpfReject,
    pub mail_from: SpfReject,
    pub permerror_reject: bool,
    pub temperror_defer: bool,
    pub received_header: bool,
    /// spf_reject_reason, with its $names unexpanded.
    pub reason: String,
}

impl SpfPolicy {
    pub fn load(config: &MainConfig) -> SpfPolicy {
        SpfPolicy {
            helo: SpfReject::parse(&config.get("spf_helo_reject")),
            mail_from: SpfReject::parse(&config.get("spf_mail_from_reject")),
            permerror_reject: config.bool("spf_permerror_reject"),
            temperror_defer: config.bool("spf_temperror_defer"),
            received_header: config.bool("spf_received_header"),
            reason: config.get("spf_reject_reason"),
        }
    }
}

/// What mail that fails DMARC (or whose check failed) gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmarcAction {
    Reject,
    Quarantine,
    Tag,
    Defer,
}

impl DmarcAction {
    fn parse(value: &str) -> DmarcAction {
        match value.to_ascii_lowercase().as_str() {
            "reject" => DmarcAction::Reject,
            "quarantine" => DmarcAction::Quarantine,
            "defer" => DmarcAction::Defer,
            _ => DmarcAction::Tag,
        }
    }
}

/// The scanner's checks of mail from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyPolicy {
    pub dkim: bool,
    pub dmarc: bool,
    pub on_reject: DmarcAction,
    pub on_quarantine: DmarcAction,
    pub on_tempfail: DmarcAction,
    pub authserv_id: String,
    /// For SPF's %{r} macro when the scanner runs SPF itself.
    pub receiver: String,
}

impl VerifyPolicy {
    pub fn load(config: &MainConfig) -> VerifyPolicy {
        VerifyPolicy {
            dkim: config.bool("dkim_verify"),
            dmarc: config.bool("dmarc_verify"),
            on_reject: DmarcAction::parse(&config.get("dmarc_reject_action")),
            on_quarantine: DmarcAction::parse(&config.get("dmarc_quarantine_action")),
            on_tempfail: DmarcAction::parse(&config.get("dmarc_tempfail_action")),
            authserv_id: config.get("authserv_id").trim().to_string(),
            receiver: config.get("myhostname"),
        }
    }

    /// Any check at all: the scanner then needs DNS.
    pub fn any(&self) -> bool {
        self.dkim || self.dmarc
    }
}

/// One key of dkim_key_table: `name  domain:selector:/path/to/key.pem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkimKey {
    pub name: String,
    pub domain: String,
    pub selector: String,
    pub path: PathBuf,
}

/// Why the signing configuration cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningError(pub String);

impl fmt::Display for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SigningError {}

/// DKIM signing: which key signs what.
#[derive(Clone, Debug)]
pub struct Signing {
    tables: Vec<Table>,
    pub keys: Vec<DkimKey>,
    /// dkim_sign_headers.
    pub headers: Vec<String>,
}

/// Every key of dkim_key_table, sorted by name; none when it is not set.
pub fn load_keys(config: &MainConfig) -> Result<Vec<DkimKey>, SigningError> {
    let key_table = config.get("dkim_key_table");
    let key_table = key_table.trim();
    if key_table.is_empty() {
        return Ok(Vec::new());
    }
    let dir = config.config_dir();
    let table =
        Table::open(key_table, dir).map_err(|e| SigningError(format!("dkim_key_table: {e}")))?;
    let entries = table.entries().ok_or_else(|| {
        SigningError(format!(
            "dkim_key_table = {key_table}: use a table mailgate can list (hash:, texthash:, \
             btree:, lmdb: or inline:), as opendkim's KeyTable is a list"
        ))
    })?;
    let mut keys = Vec::new();
    for (name, value) in entries {
        keys.push(parse_key(&name, &value, dir)?);
    }
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(keys)
}

impl Signing {
    /// None when signing is not configured. Every table entry is checked:
    /// a key name the signing table gives must be in the key table (key
    /// files are read by tlskeys only).
    pub fn load(config: &MainConfig) -> Result<Option<Signing>, SigningError> {
        let table_specs = config.list("dkim_signing_table");
        if table_specs.is_empty() {
            return Ok(None);
        }
        if config.get("dkim_key_table").trim().is_empty() {
            return Err(SigningError(
                "dkim_signing_table names keys of dkim_key_table, which is not set".into(),
            ));
        }
        let dir = config.config_dir();
        let keys = load_keys(config)?;
        let tables = open_tables(&table_specs, dir)
            .map_err(|e| SigningError(format!("dkim_signing_table: {e}")))?;
        // A text table's values can be checked now; a pattern table's only
        // when it matches (smtpd logs then, and the message is deferred).
        for table in &tables {
            for (key, name) in table.entries().unwrap_or_default() {
                if !keys
                    .iter()
                    .any(|k| k.name == name.trim().to_ascii_lowercase())
                {
                    return Err(SigningError(format!(
                        "dkim_signing_table {}: \"{key}\" names key \"{name}\", which dkim_key_table does not list",
                        table.spec()
                    )));
                }
            }
        }
        let headers = config
            .list("dkim_sign_headers")
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect::<Vec<_>>();
        if !headers.iter().any(|h| h.eq_ignore_ascii_case("from")) {
            return Err(SigningError(
                "dkim_sign_headers must include From (RFC 6376 section 5.4)".into(),
            ));
        }
        Ok(Some(Signing {
            tables,
            keys,
            headers,
        }))
    }

    /// The key that signs mail from this From: address, if any.
    pub fn key_for(&self, from: &str) -> Result<Option<&DkimKey>, SigningError> {
        let opts = AddressLookup {
            parent_domains: true,
            parent_bare: true,
            recipient_delimiter: None,
        };
        for table in &self.tables {
            if let Some(name) = lookup_address(table, from, &opts) {
                let name = name.trim().to_ascii_lowercase();
                return match self.keys.iter().find(|k| k.name == name) {
                    Some(key) => Ok(Some(key)),
                    None => Err(SigningError(format!(
                        "dkim_signing_table {} gives key \"{name}\" for {from}, which dkim_key_table does not list",
                        table.spec()
                    ))),
                };
            }
        }
        Ok(None)
    }
}

/// ARC sealing (RFC 8617) of mail from outside: the key that seals and
/// what the ARC-Message-Signature covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArcSealing {
    /// arc_seal_key: its domain and selector are the seal's d= and s=.
    pub key: DkimKey,
    /// arc_seal_headers.
    pub headers: Vec<String>,
}

impl ArcSealing {
    /// None when arc_sealing = no. The settings must agree: a key that
    /// dkim_key_table lists, dkim_verify on (the seal's cv= is the
    /// result of the ARC check it runs), From among the signed headers.
    pub fn load(config: &MainConfig) -> Result<Option<ArcSealing>, SigningError> {
        if !config.bool("arc_sealing") {
            return Ok(None);
        }
        if !config.bool("dkim_verify") {
            return Err(SigningError(
                "arc_sealing = yes needs dkim_verify = yes: the seal's cv= is the result of \
                 the ARC check the scanner runs with it"
                    .into(),
            ));
        }
        let name = config.get("arc_seal_key").trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err(SigningError(
                "arc_sealing = yes needs arc_seal_key, the name of a key of dkim_key_table".into(),
            ));
        }
        if config.get("dkim_key_table").trim().is_empty() {
            return Err(SigningError(format!(
                "arc_seal_key = {name} names a key of dkim_key_table, which is not set"
            )));
        }
        let key = load_keys(config)?
            .into_iter()
            .find(|k| k.name == name)
            .ok_or_else(|| {
                SigningError(format!(
                    "arc_seal_key = {name}: dkim_key_table does not list that key"
                ))
            })?;
        let headers = config
            .list("arc_seal_headers")
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect::<Vec<_>>();
        if !headers.iter().any(|h| h.eq_ignore_ascii_case("from")) {
            return Err(SigningError(
                "arc_seal_headers must include From (RFC 8617 section 4.1.2)".into(),
            ));
        }
        if let Some(h) = headers
            .iter()
            .find(|h| h.to_ascii_lowercase().starts_with("arc-"))
        {
            return Err(SigningError(format!(
                "arc_seal_headers: {h}: the ARC header fields are not signed by the \
                 ARC-Message-Signature (RFC 8617)"
            )));
        }
        Ok(Some(ArcSealing { key, headers }))
    }
}

/// `domain:selector:/path` (opendkim's KeyTable value).
fn parse_key(name: &str, value: &str, dir: &std::path::Path) -> Result<DkimKey, SigningError> {
    let bad = |why: &str| {
        SigningError(format!(
            "dkim_key_table entry \"{name}\": \"{value}\" {why} (expected domain:selector:/path/to/key.pem)"
        ))
    };
    let mut parts = value.trim().splitn(3, ':');
    let domain = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let selector = parts.next().unwrap_or("").trim().to_string();
    let path = parts.next().unwrap_or("").trim();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if domain.is_empty() || !domain.trim_end_matches('.').split('.').all(label_ok) {
        return Err(bad("has no valid domain"));
    }
    if selector.is_empty() || !selector.split('.').all(label_ok) {
        return Err(bad("has no valid selector"));
    }
    if path.is_empty() {
        return Err(bad("names no key file"));
    }
    Ok(DkimKey {
        name: name.to_ascii_lowercase(),
        domain: domain.trim_end_matches('.').to_string(),
        selector,
        path: dir.join(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, text: &str) -> MainConfig {
        std::fs::write(dir.join("main.cf"), text).unwrap();
        MainConfig::load(dir).unwrap()
    }

    #[test]
    fn tables_in_opendkims_shape() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("keys"),
            "default._domainkey.example.com example.com:default:/etc/keys/example.pem\n\
             ed  example.org:ed2024:keys/ed.pem\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("signing"),
            "example.com default._domainkey.example.com\n\
             bob@example.org ed\n",
        )
        .unwrap();
        let c = config(
            dir.path(),
            "dkim_signing_table = hash:signing\ndkim_key_table = hash:keys\n",
        );
        let signing = Signing::load(&c).unwrap().unwrap();
        assert_eq!(signing.keys.len(), 2);
        let key = signing.key_for("alice@example.com").unwrap().unwrap();
        assert_eq!(
            (key.domain.as_str(), key.selector.as_str()),
            ("example.com", "default")
        );
        assert_eq!(key.path, PathBuf::from("/etc/keys/example.pem"));
        // Subdomains sign with the parent's key; other addresses not at all.
        assert!(signing.key_for("a@mail.example.com").unwrap().is_some());
        assert_eq!(
            signing
                .key_for("bob@example.org")
                .unwrap()
                .unwrap()
                .selector,
            "ed2024"
        );
        assert!(signing.key_for("carol@example.org").unwrap().is_none());
        assert_eq!(
            signing.key_for("bob@example.org").unwrap().unwrap().path,
            dir.path().join("keys/ed.pem")
        );

        std::fs::write(dir.path().join("signing"), "example.net nosuchkey\n").unwrap();
        assert!(Signing::load(&c).unwrap_err().0.contains("nosuchkey"));
        let c = config(dir.path(), "dkim_signing_table = hash:signing\n");
        assert!(Signing::load(&c).is_err());
        std::fs::write(dir.path().join("keys"), "k example.com:sel\n").unwrap();
        let c = config(
            dir.path(),
            "dkim_signing_table = hash:signing\ndkim_key_table = hash:keys\n",
        );
        assert!(
            Signing::load(&c)
                .unwrap_err()
                .0
                .contains("names no key file")
        );
        assert!(Signing::load(&config(dir.path(), "")).unwrap().is_none());
    }

    #[test]
    fn arc_sealing_needs_a_listed_key_and_dkim_verify() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("keys"),
            "arc gw.example.com:arc2026:keys/arc.pem\n",
        )
        .unwrap();
        let base = "dkim_key_table = hash:keys\ndkim_verify = yes\n";
        assert_eq!(ArcSealing::load(&config(dir.path(), base)).unwrap(), None);
        let sealing = ArcSealing::load(&config(
            dir.path(),
            &format!("{base}arc_sealing = yes\narc_seal_key = ARC\n"),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            (sealing.key.domain.as_str(), sealing.key.selector.as_str()),
            ("gw.example.com", "arc2026")
        );
        assert!(sealing.headers.iter().any(|h| h == "Subject"));
        assert!(sealing.headers.iter().any(|h| h == "DKIM-Signature"));
        let refused = |text: &str| ArcSealing::load(&config(dir.path(), text)).unwrap_err().0;
        assert!(
            refused("dkim_key_table = hash:keys\narc_sealing = yes\narc_seal_key = arc\n")
                .contains("needs dkim_verify = yes")
        );
        assert!(refused(&format!("{base}arc_sealing = yes\n")).contains("needs arc_seal_key"));
        assert!(
            refused(&format!("{base}arc_sealing = yes\narc_seal_key = other\n"))
                .contains("does not list that key")
        );
        assert!(
            refused("dkim_verify = yes\narc_sealing = yes\narc_seal_key = arc\n")
                .contains("dkim_key_table, which is not set")
        );
        assert!(
            refused(&format!(
                "{base}arc_sealing = yes\narc_seal_key = arc\narc_seal_headers = Subject\n"
            ))
            .contains("must include From")
        );
        assert!(
            refused(&format!(
                "{base}arc_sealing = yes\narc_seal_key = arc\narc_seal_headers = From, ARC-Seal\n"
            ))
            .contains("ARC-Seal")
        );
    }

    #[test]
    fn policies() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(
            dir.path(),
            "spf_mail_from_reject = softfail\nspf_helo_reject = no_check\ndmarc_verify = yes\n\
             dmarc_reject_action = quarantine\n",
        );
        let spf = SpfPolicy::load(&c);
        assert_eq!(spf.mail_from, SpfReject::Softfail);
        assert_eq!(spf.helo, SpfReject::NoCheck);
        assert!(spf.temperror_defer && !spf.permerror_reject && spf.received_header);
        let verify = VerifyPolicy::load(&c);
        assert!(verify.any() && verify.dmarc && !verify.dkim);
        assert_eq!(verify.on_reject, DmarcAction::Quarantine);
        assert_eq!(verify.on_quarantine, DmarcAction::Quarantine);
        assert_eq!(verify.on_tempfail, DmarcAction::Defer);
    }
}
