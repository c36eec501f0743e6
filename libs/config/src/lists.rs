//! Domain lists (relay_domains, mydestination) and network lists (mynetworks).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Diagnostic, read_file};
use crate::lines::{ORPHAN_MESSAGE, logical_lines, split_list};
use crate::net::{Net, canonical};
use crate::table::{Table, parent_keys};

/// How deep "/file/name" items may include further files (guards against loops).
const MAX_FILE_DEPTH: usize = 8;

/// Reads the items of a list, expanding "/file/name" items; `item` turns every other
/// item into an entry.
struct Collector<'a, T> {
    config_dir: &'a Path,
    item: &'a dyn Fn(&str, &Path) -> Result<T, ConfigError>,
    entries: Vec<(bool, T)>,
    files: Vec<PathBuf>,
    diagnostics: Vec<Diagnostic>,
}

impl<'a, T> Collector<'a, T> {
    fn new(
        config_dir: &'a Path,
        item: &'a dyn Fn(&str, &Path) -> Result<T, ConfigError>,
    ) -> Collector<'a, T> {
        Collector {
            config_dir,
            item,
            entries: Vec::new(),
            files: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    /// `place` is the file and line the items came from, when read from a file.
    fn collect(
        &mut self,
        items: &[String],
        depth: usize,
        place: Option<(&Path, usize)>,
    ) -> Result<(), ConfigError> {
        for raw in items {
            let (negate, text) = match raw.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, raw.as_str()),
            };
            let mut report = |message: String| {
                self.diagnostics.push(match place {
                    Some((file, line)) => Diagnostic::new(file, line, message),
                    None => Diagnostic::unplaced(message),
                });
            };
            if text.is_empty() {
                report(format!("\"{raw}\": nothing after '!'"));
                continue;
            }
            if text.starts_with('/') {
                if depth >= MAX_FILE_DEPTH {
                    report(format!("{text}: files include each other too deeply"));
                    continue;
                }
                if negate {
                    report(format!("\"{raw}\": a file of items cannot be negated"));
                    continue;
                }
                let path = PathBuf::from(text);
                let content = read_file(&path)?;
                self.files.push(path.clone());
                let (lines, orphans) = logical_lines(&content);
                for line in orphans {
                    self.diagnostics
                        .push(Diagnostic::new(&path, line, ORPHAN_MESSAGE));
                }
                for line in lines {
                    self.collect(&split_list(&line.text), depth + 1, Some((&path, line.line)))?;
                }
                continue;
            }
            match (self.item)(text, self.config_dir) {
                Ok(entry) => self.entries.push((negate, entry)),
                Err(ConfigError::Invalid(list)) => {
                    for d in list {
                        self.diagnostics.push(match place {
                            Some((file, line)) => d.place(file, line, ""),
                            None => d,
                        });
                    }
                }
                Err(io) => return Err(io),
            }
        }
        Ok(())
    }
}

fn finish<T>(value: T, diagnostics: Vec<Diagnostic>) -> Result<T, ConfigError> {
    if diagnostics.is_empty() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid(diagnostics))
    }
}

#[derive(Clone, Debug)]
enum DomainItem {
    /// Lowercased; a leading '.' means "subdomains of".
    Name(String),
    Table(Table),
}

/// A list of domains, such as relay_domains.
#[derive(Clone, Debug, Default)]
pub struct DomainList {
    entries: Vec<(bool, DomainItem)>,
    parent_matches_subdomains: bool,
    files: Vec<PathBuf>,
}

impl DomainList {
    /// Items are domain names, ".domain" (subdomains), "/file/name", "type:table",
    /// each optionally negated with '!'.
    pub fn parse(
        items: &[String],
        config_dir: &Path,
        parent_matches_subdomains: bool,
    ) -> Result<DomainList, ConfigError> {
        let item = |text: &str, dir: &Path| -> Result<DomainItem, ConfigError> {
            if text.contains(':') {
                return Table::open(text, dir).map(DomainItem::Table);
            }
            if text.contains('@') || text.contains('/') {
                return Err(ConfigError::Invalid(vec![Diagnostic::unplaced(format!(
                    "\"{text}\" is not a domain name"
                ))]));
            }
            Ok(DomainItem::Name(text.trim_end_matches('.').to_lowercase()))
        };
        let mut collector = Collector::new(config_dir, &item);
        collector.collect(items, 0, None)?;
        let Collector {
            entries,
            files,
            diagnostics,
            ..
        } = collector;
        finish(
            DomainList {
                entries,
                parent_matches_subdomains,
                files,
            },
            diagnostics,
        )
    }

    /// First matching item wins; a negated item that matches means "no".
    pub fn matches(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.').to_lowercase();
        if domain.is_empty() {
            return false;
        }
        for (negate, item) in &self.entries {
            let hit = match item {
                DomainItem::Name(name) => {
                    if let Some(parent) = name.strip_prefix('.') {
                        is_subdomain(&domain, parent)
                    } else {
                        domain == *name
                            || self.parent_matches_subdomains && is_subdomain(&domain, name)
                    }
                }
                DomainItem::Table(table) => {
                    table.lookup(&domain).is_some()
                        || !table.is_pattern_table()
                            && parent_keys(&domain, self.parent_matches_subdomains)
                                .iter()
                                .any(|key| table.lookup(key).is_some())
                }
            };
            if hit {
                return !negate;
            }
        }
        false
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Files read for this list, including table files.
    pub fn source_files(&self) -> Vec<PathBuf> {
        let mut files = self.files.clone();
        for (_, item) in &self.entries {
            if let DomainItem::Table(t) = item {
                files.extend(t.source_files());
            }
        }
        files
    }
}

fn has_table_prefix(text: &str) -> bool {
    text.split_once(':')
        .is_some_and(|(kind, _)| !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphabetic()))
}

/// True when `domain` is a strict subdomain of `parent`.
fn is_subdomain(domain: &str, parent: &str) -> bool {
    domain
        .strip_suffix(parent)
        .is_some_and(|head| head.ends_with('.') && head.len() > 1)
}

#[derive(Clone, Debug)]
enum NetItem {
    Net(Net),
    Table(Table),
}

/// A list of networks, such as mynetworks.
#[derive(Clone, Debug, Default)]
pub struct NetworkList {
    entries: Vec<(bool, NetItem)>,
    files: Vec<PathBuf>,
}

impl NetworkList {
    /// Items are "192.0.2.0/24", "[2001:db8::]/32", bare addresses, "/file/name" or
    /// "type:table", each optionally negated with '!'.
    pub fn parse(items: &[String], config_dir: &Path) -> Result<NetworkList, ConfigError> {
        let item = |text: &str, dir: &Path| -> Result<NetItem, ConfigError> {
            match Net::parse(text) {
                Ok(net) => Ok(NetItem::Net(net)),
                // Not an address, but a type prefix such as "cidr:" makes it a table.
                Err(_) if has_table_prefix(text) => Table::open(text, dir).map(NetItem::Table),
                Err(message) => Err(ConfigError::Invalid(vec![Diagnostic::unplaced(format!(
                    "bad network \"{text}\": {message} (expected address/prefix such as 192.168.0.0/16 or [2001:db8::]/32)"
                ))])),
            }
        };
        let mut collector = Collector::new(config_dir, &item);
        collector.collect(items, 0, None)?;
        let Collector {
            entries,
            files,
            diagnostics,
            ..
        } = collector;
        finish(NetworkList { entries, files }, diagnostics)
    }

    /// First matching item wins; IPv4-mapped IPv6 addresses match IPv4 items.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        for (negate, item) in &self.entries {
            let hit = match item {
                NetItem::Net(net) => net.contains(ip),
                NetItem::Table(table) => table.lookup(&ip.to_string()).is_some(),
            };
            if hit {
                return !negate;
            }
        }
        false
    }

    /// Files read for this list, including table files.
    pub fn source_files(&self) -> Vec<PathBuf> {
        let mut files = self.files.clone();
        for (_, item) in &self.entries {
            if let NetItem::Table(t) = item {
                files.extend(t.source_files());
            }
        }
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<String> {
        split_list(text)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn domain_names_and_parents() {
        let dir = Path::new("/");
        let l = DomainList::parse(
            &items("Example.com, .sub.org !bad.net.org net.org"),
            dir,
            false,
        )
        .unwrap();
        assert!(!l.is_empty());
        assert!(l.matches("example.com"));
        assert!(l.matches("EXAMPLE.COM."));
        assert!(!l.matches("mail.example.com"));
        assert!(l.matches("a.sub.org"));
        assert!(!l.matches("sub.org"));
        assert!(!l.matches("bad.net.org"));
        assert!(l.matches("net.org"));
        assert!(!l.matches("x.net.org"));
        assert!(!l.matches(""));
        let l = DomainList::parse(&items("example.com !bad.example.com"), dir, true).unwrap();
        assert!(l.matches("mail.example.com"));
        assert!(l.matches("bad.example.com"), "first match wins");
        let l = DomainList::parse(&items("!bad.example.com example.com"), dir, true).unwrap();
        assert!(!l.matches("bad.example.com"));
        assert!(!l.matches("notexample.com"));
        assert!(DomainList::parse(&[], dir, true).unwrap().is_empty());
    }

    #[test]
    fn domain_files_and_tables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay_domains");
        std::fs::write(
            &file,
            "# our domains\njoor.net oriol.joor.net\n  oriolrius.cat\n!bad.cat, .cat\n",
        )
        .unwrap();
        // The relay_domains table of the Catalan tutorial (seed 000).
        std::fs::write(
            dir.path().join("relay_delays"),
            "joor.net\tOK\noriol.joor.net\tOK\n",
        )
        .unwrap();
        let spec = format!("{} hash:relay_delays", file.display());
        let l = DomainList::parse(&items(&spec), dir.path(), false).unwrap();
        assert!(l.matches("oriolrius.cat"));
        assert!(!l.matches("bad.cat"));
        assert!(l.matches("good.cat"));
        let l = DomainList::parse(&items("hash:relay_delays"), dir.path(), true).unwrap();
        assert!(l.matches("joor.net"));
        assert!(l.matches("deep.oriol.joor.net"));
        assert!(!l.matches("example.net"));
        assert_eq!(l.source_files(), vec![dir.path().join("relay_delays")]);
        let l = DomainList::parse(&items(&spec), dir.path(), false).unwrap();
        assert_eq!(
            l.source_files(),
            vec![file.clone(), dir.path().join("relay_delays")]
        );

        std::fs::write(dir.path().join("bad"), "ok.com\nuser@x.com\n").unwrap();
        let bad = format!("{} foo/bar nis:x !", dir.path().join("bad").display());
        let errs: Vec<String> = DomainList::parse(&items(&bad), dir.path(), true)
            .unwrap_err()
            .into_diagnostics()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(
            errs[0].ends_with("bad:2: \"user@x.com\" is not a domain name"),
            "{errs:?}"
        );
        assert!(errs[1].contains("\"foo/bar\" is not a domain name"));
        assert!(errs[2].contains("unsupported table type \"nis\""));
        assert!(errs[3].contains("nothing after '!'"));
        assert!(matches!(
            DomainList::parse(&items("/no/such/file"), dir.path(), true),
            Err(ConfigError::Io { .. })
        ));
    }

    #[test]
    fn networks() {
        let dir = tempfile::tempdir().unwrap();
        let l = NetworkList::parse(&items("127.0.0.0/8 [::1]/128"), dir.path()).unwrap();
        assert!(l.contains(ip("127.0.0.1")));
        assert!(l.contains(ip("::ffff:127.0.0.2")));
        assert!(l.contains(ip("::1")));
        assert!(!l.contains(ip("10.0.0.1")));
        // Seed mynetworks values.
        let l = NetworkList::parse(
            &items("127.0.0.0/8 168.100.189.2/32, 10.0.0.0/24"),
            dir.path(),
        )
        .unwrap();
        assert!(l.contains(ip("168.100.189.2")));
        assert!(!l.contains(ip("168.100.189.3")));
        assert!(l.contains(ip("10.0.0.255")));
        let l = NetworkList::parse(
            &items("!192.168.1.5 192.168.0.0/16 [2001:db8::]/32 2001:db9::1"),
            dir.path(),
        )
        .unwrap();
        assert!(!l.contains(ip("192.168.1.5")));
        assert!(l.contains(ip("192.168.1.6")));
        assert!(l.contains(ip("2001:db8::7")));
        assert!(l.contains(ip("2001:db9::1")));

        std::fs::write(dir.path().join("nets.cidr"), "10.1.0.0/16 OK\n").unwrap();
        let file = dir.path().join("mynets");
        std::fs::write(&file, "# trusted\n172.16.0.0/12\n").unwrap();
        let spec = format!("cidr:nets.cidr {}", file.display());
        let l = NetworkList::parse(&items(&spec), dir.path()).unwrap();
        assert!(l.contains(ip("10.1.2.3")));
        assert!(l.contains(ip("172.16.9.9")));
        assert!(!l.contains(ip("10.2.0.1")));
        assert_eq!(l.source_files(), vec![file, dir.path().join("nets.cidr")]);

        let errs: Vec<String> =
            NetworkList::parse(&items("127.0.0.1/8 example.com 10.0.0.0/40"), dir.path())
                .unwrap_err()
                .into_diagnostics()
                .iter()
                .map(|d| d.to_string())
                .collect();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("perhaps you mean \"127.0.0.0/8\""));
        assert!(errs[1].contains("bad network \"example.com\""));
    }
}
