//! Address rewriting as Postfix's cleanup does it: canonical(5) maps
//! (one-to-one, for the envelope sender and recipients) and virtual(5)
//! alias maps (one-to-many, recipients only, applied after canonical).
//!
//! The lookup order is Postfix's mail_addr_find(): the full address, the
//! address without its extension (recipient_delimiter), the local part
//! alone when the domain is ours (myorigin or mydestination), then
//! `@domain`. Pattern tables (regexp, pcre) see the full address, then the
//! address without its extension. A result that is `@otherdomain` keeps the
//! local part; an unmatched extension is carried over to each result
//! (propagate_unmatched_extensions). Only the envelope is rewritten:
//! Postfix rewrites no header of mail from remote clients by default
//! (remote_header_rewrite_domain is empty).
//!
//! smtpd asks `known` (an address any of these maps lists is a known
//! recipient, as in Postfix's check_rcpt_maps) and `is_alias_domain`
//! (virtual_alias_domains: mail for them is accepted, and a user the maps
//! do not list is refused with "User unknown in virtual alias table").

use std::collections::HashSet;
use std::fmt;

use crate::lists::DomainList;
use crate::table::{Table, open_tables, strip_extension};
use crate::{ConfigError, MainConfig, split_address};

/// The longest address a map may produce (Postfix's
/// virtual_alias_address_length_limit).
const MAX_RESULT_LEN: usize = 1000;

/// How often a one-to-one map is applied to its own result at most
/// (Postfix's cleanup_map11: 10).
const MAX_CANONICAL_NESTING: usize = 10;

/// Why a message cannot be accepted now: Postfix defers it ("4.6.0 Alias
/// expansion error") and logs which map and address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RewriteError {
    /// A map's results lead back into the map more often than the limit.
    Nesting { map: &'static str, address: String },
    /// One address expands into more addresses than the limit.
    Expansion { map: &'static str, address: String },
    /// A map gave a result longer than an address may be, or no address.
    BadResult { map: &'static str, address: String },
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RewriteError::Nesting { map, address } => {
                write!(f, "unreasonable {map} map nesting for {address}")
            }
            RewriteError::Expansion { map, address } => {
                write!(f, "unreasonable {map} map expansion size for {address}")
            }
            RewriteError::BadResult { map, address } => {
                write!(
                    f,
                    "{map} lookup of {address} returns a result that is no address"
                )
            }
        }
    }
}

impl std::error::Error for RewriteError {}

/// One parameter's tables, named as Postfix names them in its warnings.
#[derive(Clone, Debug, Default)]
struct Maps {
    name: &'static str,
    tables: Vec<Table>,
}

/// What a lookup found: the result text and the extension it did not
/// match (to carry over).
struct Found {
    value: String,
    extension: Option<String>,
}

/// The address rewriting main.cf configures, read once at start.
#[derive(Clone, Debug)]
pub struct Rewriting {
    canonical: Maps,
    sender_canonical: Maps,
    recipient_canonical: Maps,
    virtual_alias: Maps,
    virtual_alias_domains: DomainList,
    delimiter: Option<char>,
    propagate_canonical: bool,
    propagate_virtual: bool,
    myorigin: String,
    mydestination: DomainList,
    recursion_limit: usize,
    expansion_limit: usize,
}

impl Rewriting {
    pub fn from_config(config: &MainConfig) -> Result<Rewriting, ConfigError> {
        let dir = config.config_dir();
        let maps = |name: &'static str| -> Result<Maps, ConfigError> {
            Ok(Maps {
                name,
                tables: open_tables(&config.list(name), dir)?,
            })
        };
        let propagate = config.list("propagate_unmatched_extensions");
        let has = |what: &str| propagate.iter().any(|p| p.eq_ignore_ascii_case(what));
        let parents = config.list("parent_domain_matches_subdomains");
        let domains = |name: &str| {
            DomainList::parse(&config.list(name), dir, parents.iter().any(|p| p == name))
        };
        Ok(Rewriting {
            canonical: maps("canonical_maps")?,
            sender_canonical: maps("sender_canonical_maps")?,
            recipient_canonical: maps("recipient_canonical_maps")?,
            virtual_alias: maps("virtual_alias_maps")?,
            virtual_alias_domains: domains("virtual_alias_domains")?,
            delimiter: config.get("recipient_delimiter").chars().next(),
            propagate_canonical: has("canonical"),
            propagate_virtual: has("virtual"),
            myorigin: config.get("myorigin").to_lowercase(),
            mydestination: domains("mydestination")?,
            recursion_limit: usize::try_from(config.int("virtual_alias_recursion_limit"))
                .unwrap_or(1000),
            expansion_limit: usize::try_from(config.int("virtual_alias_expansion_limit"))
                .unwrap_or(1000),
        })
    }

    /// No map is configured: every address stays as it is.
    pub fn is_empty(&self) -> bool {
        [
            &self.canonical,
            &self.sender_canonical,
            &self.recipient_canonical,
            &self.virtual_alias,
        ]
        .iter()
        .all(|m| m.tables.is_empty())
    }

    /// The envelope sender after sender_canonical_maps, then canonical_maps.
    /// The null sender stays null.
    pub fn sender(&self, address: &str) -> Result<String, RewriteError> {
        if address.is_empty() {
            return Ok(String::new());
        }
        let address = self.one_to_one(&self.sender_canonical, address)?;
        self.one_to_one(&self.canonical, &address)
    }

    /// What one envelope recipient becomes: recipient_canonical_maps, then
    /// canonical_maps, then the virtual alias expansion (duplicates
    /// removed, in order).
    pub fn recipient(&self, address: &str) -> Result<Vec<String>, RewriteError> {
        let address = self.one_to_one(&self.recipient_canonical, address)?;
        let address = self.one_to_one(&self.canonical, &address)?;
        self.virtual_expand(&address)
    }

    /// An address one of the maps lists (smtpd takes it as a known
    /// recipient, or sender, before looking at the recipient tables).
    pub fn known(&self, address: &str, as_sender: bool) -> bool {
        let specific = if as_sender {
            &self.sender_canonical
        } else {
            &self.recipient_canonical
        };
        [specific, &self.canonical, &self.virtual_alias]
            .iter()
            .any(|maps| self.find(maps, address).is_some())
    }

    /// A domain in virtual_alias_domains: mail for it is accepted, and its
    /// users are those virtual_alias_maps lists.
    pub fn is_alias_domain(&self, domain: &str) -> bool {
        self.virtual_alias_domains.matches(domain)
    }

    /// The domain counts as ours for the local-part lookup.
    fn is_local(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.').to_lowercase();
        domain == self.myorigin || self.mydestination.matches(&domain)
    }

    /// mail_addr_find(): the first table with an answer, in Postfix's key
    /// order.
    fn find(&self, maps: &Maps, address: &str) -> Option<Found> {
        if maps.tables.is_empty() {
            return None;
        }
        let (local, domain) = match split_address(address) {
            Some((l, d)) => (l.to_string(), Some(d)),
            None => (address.to_string(), None),
        };
        let base = strip_extension(&local, self.delimiter).map(str::to_string);
        let extension = base.as_ref().map(|b| local[b.len()..].to_string());
        for table in &maps.tables {
            let mut keys: Vec<(String, bool)> = Vec::new();
            let full = match &domain {
                Some(d) => format!("{local}@{d}"),
                None => local.clone(),
            };
            keys.push((full, false));
            if let Some(base) = &base {
                keys.push((
                    match &domain {
                        Some(d) => format!("{base}@{d}"),
                        None => base.clone(),
                    },
                    true,
                ));
            }
            if !table.is_pattern_table() {
                if domain.as_deref().is_some_and(|d| self.is_local(d)) {
                    keys.push((local.clone(), false));
                    if let Some(base) = &base {
                        keys.push((base.clone(), true));
                    }
                }
                if let Some(d) = &domain {
                    // The extension is unmatched here too (and carried over).
                    keys.push((format!("@{d}"), true));
                }
            }
            for (key, stripped) in keys {
                if let Some(value) = table.lookup(&key) {
                    return Some(Found {
                        value,
                        extension: if stripped { extension.clone() } else { None },
                    });
                }
            }
        }
        None
    }

    /// The addresses a lookup result names, as mail_addr_map() makes them:
    /// `@otherdomain` keeps the local part (without its extension), bare
    /// names get @myorigin, and the unmatched extension is carried over
    /// when `propagate`.
    fn results(
        &self,
        maps: &Maps,
        address: &str,
        found: Found,
        propagate: bool,
    ) -> Result<Vec<String>, RewriteError> {
        let bad = || RewriteError::BadResult {
            map: maps.name,
            address: address.to_string(),
        };
        let local = split_address(address).map_or(address, |(l, _)| l);
        let local = match &found.extension {
            Some(ext) => &local[..local.len() - ext.len()],
            None => local,
        };
        let mut out = Vec::new();
        for item in found
            .value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let item = item.trim_start_matches('<').trim_end_matches('>');
            let mut result = if let Some(domain) = item.strip_prefix('@') {
                format!("{local}@{domain}")
            } else if item.contains('@') {
                item.to_string()
            } else {
                format!("{item}@{}", self.myorigin)
            };
            if let (true, Some(ext)) = (propagate, &found.extension)
                && let Some(at) = result.rfind('@')
            {
                result.insert_str(at, ext);
            }
            if result.len() > MAX_RESULT_LEN {
                return Err(bad());
            }
            out.push(result);
        }
        if out.is_empty() {
            return Err(bad());
        }
        Ok(out)
    }

    /// cleanup_map11: a canonical map applied until the address maps to
    /// itself or to nothing.
    fn one_to_one(&self, maps: &Maps, address: &str) -> Result<String, RewriteError> {
        let mut current = address.to_string();
        for _ in 0..MAX_CANONICAL_NESTING {
            let Some(found) = self.find(maps, &current) else {
                return Ok(current);
            };
            let next = self
                .results(maps, &current, found, self.propagate_canonical)?
                .swap_remove(0);
            if next.eq_ignore_ascii_case(&current) {
                return Ok(next);
            }
            current = next;
        }
        Err(RewriteError::Nesting {
            map: maps.name,
            address: address.to_string(),
        })
    }

    /// cleanup_map1n: each address expanded in place until none expands
    /// any more; an address that expands into itself is kept once.
    fn virtual_expand(&self, address: &str) -> Result<Vec<String>, RewriteError> {
        let maps = &self.virtual_alias;
        let mut list = vec![address.to_string()];
        let mut been_here: HashSet<String> = HashSet::new();
        let mut i = 0;
        while i < list.len() {
            if list.len() > self.expansion_limit {
                return Err(RewriteError::Expansion {
                    map: maps.name,
                    address: address.to_string(),
                });
            }
            let mut count = 0;
            loop {
                if been_here.contains(&list[i].to_lowercase()) {
                    break;
                }
                if count >= self.recursion_limit {
                    return Err(RewriteError::Nesting {
                        map: maps.name,
                        address: address.to_string(),
                    });
                }
                count += 1;
                let Some(found) = self.find(maps, &list[i]) else {
                    break;
                };
                let lhs = list[i].clone();
                let results = self.results(maps, &lhs, found, self.propagate_virtual)?;
                for (n, result) in results.into_iter().enumerate() {
                    if result.eq_ignore_ascii_case(&lhs) {
                        been_here.insert(lhs.to_lowercase());
                    }
                    if n == 0 {
                        list[i] = result;
                    } else {
                        list.push(result);
                    }
                }
            }
            i += 1;
        }
        let mut seen = HashSet::new();
        list.retain(|a| seen.insert(a.to_lowercase()));
        Ok(list)
    }
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
