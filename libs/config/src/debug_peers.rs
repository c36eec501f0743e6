//! debug_peer_list: the clients whose SMTP dialogue smtpd logs line by line
//! (`< name[addr]: COMMAND`, `> name[addr]: reply`), as the `-v` flag does
//! for every client. Entries are Postfix's: addresses and networks
//! (`192.0.2.7`, `192.0.2.0/24`, `[2001:db8::]/32`), host names and domains
//! (`.example.com` for subdomains, and the parent of a domain too while
//! parent_domain_matches_subdomains names debug_peer_list), and tables,
//! asked for the address and for the name.

use std::net::IpAddr;
use std::path::Path;

use crate::error::ConfigError;
use crate::lists::{DomainList, NetworkList};
use crate::main_cf::MainConfig;

/// An empty list (no client or server) is the default.
#[derive(Clone, Debug, Default)]
pub struct DebugPeers {
    networks: NetworkList,
    names: DomainList,
}

impl DebugPeers {
    pub fn load(
        config: &MainConfig,
        dir: &Path,
        parent_matches_subdomains: bool,
    ) -> Result<DebugPeers, Vec<String>> {
        let problems = |e: ConfigError| -> Vec<String> {
            e.into_diagnostics().iter().map(|d| d.to_string()).collect()
        };
        let mut networks = Vec::new();
        let mut names = Vec::new();
        for item in config.list("debug_peer_list") {
            if item.starts_with('/') || item.starts_with("!/") {
                return Err(vec![format!(
                    "\"{item}\": a file of entries is not read in debug_peer_list; \
                     name the entries or use a table"
                )]);
            }
            let is_table =
                item.contains(':') && NetworkList::parse(std::slice::from_ref(&item), dir).is_err();
            if is_table {
                networks.push(item.clone());
                names.push(item);
            } else if NetworkList::parse(std::slice::from_ref(&item), dir).is_ok() {
                networks.push(item);
            } else {
                names.push(item);
            }
        }
        Ok(DebugPeers {
            networks: NetworkList::parse(&networks, dir).map_err(problems)?,
            names: DomainList::parse(&names, dir, parent_matches_subdomains).map_err(problems)?,
        })
    }

    /// Whether the client's address, or its verified name (not
    /// "unknown"), is listed.
    pub fn matches(&self, addr: IpAddr, name: &str) -> bool {
        self.networks.contains(addr) || (name != "unknown" && self.names.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(list: &str) -> Result<DebugPeers, Vec<String>> {
        let config = MainConfig::parse(
            &format!("debug_peer_list = {list}\n"),
            Path::new("/etc/mg/main.cf"),
            Path::new("/etc/mg"),
            &[],
        )
        .unwrap();
        DebugPeers::load(&config, Path::new("/etc/mg"), true)
    }

    fn peer(addr: &str, name: &str) -> (IpAddr, String) {
        (addr.parse().unwrap(), name.to_string())
    }

    fn matches(list: &DebugPeers, (addr, name): (IpAddr, String)) -> bool {
        list.matches(addr, &name)
    }

    #[test]
    fn addresses_networks_and_names() {
        let list = peers("192.0.2.7, 198.51.100.0/24, [2001:db8::]/32, example.com").unwrap();
        assert!(matches(&list, peer("192.0.2.7", "unknown")));
        assert!(matches(&list, peer("198.51.100.9", "unknown")));
        assert!(matches(&list, peer("2001:db8::5", "unknown")));
        assert!(matches(&list, peer("203.0.113.1", "mx.example.com")));
        assert!(!matches(&list, peer("203.0.113.1", "example.org")));
        assert!(!matches(&list, peer("192.0.2.8", "unknown")));
        assert!(peers("/etc/debug_peers").is_err());
        let empty = peers("").unwrap();
        assert!(!matches(&empty, peer("192.0.2.7", "unknown")));
    }
}
