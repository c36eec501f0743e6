//! The hosts file and the order of name sources in nsswitch.conf, read once
//! at start (the services cannot open files once chrooted). Postfix asks
//! the C library, which reads /etc/hosts before the DNS on a stock system
//! (`hosts: files dns`); mailgate reads the same files itself:
//! - relay, for next hops named when DNS lookups are disabled
//!   (disable_dns_lookups, smtp_host_lookup = native);
//! - smtpd, for the client's name (smtpd_peername_lookup), so a client on
//!   127.0.0.1 is `localhost` as in Postfix, without asking the DNS.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

pub const HOSTS_FILE: &str = "/etc/hosts";
pub const NSSWITCH_FILE: &str = "/etc/nsswitch.conf";

/// Names (lowercase, without a trailing dot) and their addresses, in the
/// file's order, and the first name of each address.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    names: HashMap<String, Vec<IpAddr>>,
    first_name: HashMap<IpAddr, String>,
}

impl Hosts {
    /// The file's entries; a file that cannot be read is an error for the
    /// caller to log (it then uses an empty table: every name not found).
    pub fn read(path: &Path) -> Result<Hosts, String> {
        std::fs::read_to_string(path)
            .map(|text| Hosts::parse(&text))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    /// hosts(5): an address, then its names; `#` starts a comment.
    pub fn parse(text: &str) -> Hosts {
        let mut hosts = Hosts::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(Ok(addr)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            let addr = plain(addr);
            for name in fields {
                let key = name.trim_end_matches('.').to_ascii_lowercase();
                if key.is_empty() {
                    continue;
                }
                hosts.first_name.entry(addr).or_insert_with(|| key.clone());
                let list = hosts.names.entry(key).or_default();
                if !list.contains(&addr) {
                    list.push(addr);
                }
            }
        }
        hosts
    }

    /// The addresses of `name`; none when it is not listed.
    pub fn lookup(&self, name: &str) -> &[IpAddr] {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.get(&key).map_or(&[], Vec::as_slice)
    }

    /// The name the C library gives `addr` from this file: the first name
    /// on the first line that lists the address.
    pub fn name_of(&self, addr: IpAddr) -> Option<&str> {
        self.first_name.get(&plain(addr)).map(String::as_str)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is (a client of a
/// dual-stack socket, a hosts file line); others as they are.
pub fn plain(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Where host names are looked up, in nsswitch.conf's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Files,
    Dns,
}

/// The `hosts:` line of nsswitch.conf, reduced to the sources mailgate
/// knows (files, dns; others such as mdns4_minimal or myhostname are not
/// consulted). A missing file or line means `files dns`, glibc's default.
pub fn host_sources(nsswitch: &str) -> Vec<Source> {
    let line = nsswitch.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("").trim();
        line.strip_prefix("hosts:")
    });
    let Some(line) = line else {
        return vec![Source::Files, Source::Dns];
    };
    let mut sources = Vec::new();
    for word in line.split_whitespace() {
        let source = match word {
            "files" => Source::Files,
            "dns" => Source::Dns,
            _ => continue,
        };
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    sources
}

/// nsswitch.conf's host sources and the hosts file, read now.
#[derive(Clone, Debug)]
pub struct NameSources {
    pub order: Vec<Source>,
    pub hosts: Hosts,
}

impl NameSources {
    /// Reads both files; problems are returned as warnings to log (the
    /// sources then fall back to glibc's defaults and an empty table).
    pub fn read() -> (NameSources, Vec<String>) {
        let mut warnings = Vec::new();
        let order = match std::fs::read_to_string(NSSWITCH_FILE) {
            Ok(text) => host_sources(&text),
            Err(_) => vec![Source::Files, Source::Dns],
        };
        let hosts = if order.contains(&Source::Files) {
            Hosts::read(Path::new(HOSTS_FILE)).unwrap_or_else(|e| {
                warnings.push(e);
                Hosts::default()
            })
        } else {
            Hosts::default()
        };
        (NameSources { order, hosts }, warnings)
    }

    /// The DNS alone (tests, and services that never read files).
    pub fn dns_only() -> NameSources {
        NameSources {
            order: vec![Source::Dns],
            hosts: Hosts::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lines() {
        let h = Hosts::parse(
            "127.0.0.1\tlocalhost\n# comment\n10.0.0.5 mail.inside.example Mail # inline\n\
             ::1 localhost ip6-localhost\nbogus line\n127.0.0.1 other\n",
        );
        assert_eq!(
            h.lookup("LOCALHOST."),
            &[
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(h.lookup("mail"), &["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert!(h.lookup("other.example").is_empty());
        assert!(h.lookup("bogus").is_empty());
        assert_eq!(h.name_of("127.0.0.1".parse().unwrap()), Some("localhost"));
        assert_eq!(
            h.name_of("::ffff:10.0.0.5".parse().unwrap()),
            Some("mail.inside.example")
        );
        assert_eq!(h.name_of("::1".parse().unwrap()), Some("localhost"));
        assert_eq!(h.name_of("10.0.0.6".parse().unwrap()), None);
    }

    #[test]
    fn nsswitch_order() {
        use Source::*;
        assert_eq!(host_sources("passwd: files\n"), vec![Files, Dns]);
        assert_eq!(
            host_sources("hosts:          files dns\n"),
            vec![Files, Dns]
        );
        assert_eq!(
            host_sources("hosts: files mdns4_minimal [NOTFOUND=return] dns myhostname\n"),
            vec![Files, Dns]
        );
        assert_eq!(host_sources("hosts: dns files\n"), vec![Dns, Files]);
        assert_eq!(host_sources("# hosts: files\nhosts: dns\n"), vec![Dns]);
        assert_eq!(host_sources("hosts: files\n"), vec![Files]);
    }
}
