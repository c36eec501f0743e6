//! The hosts file, for next hops named when DNS lookups are disabled
//! (disable_dns_lookups, smtp_host_lookup = native): read once at start,
//! as relay cannot open files once it is chrooted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

pub const HOSTS_FILE: &str = "/etc/hosts";

/// Names (lowercase, without a trailing dot) and their addresses, in the
/// file's order.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    names: HashMap<String, Vec<IpAddr>>,
}

impl Hosts {
    /// The file's entries; a file that cannot be read is an empty table
    /// (every name is then not found, and the delivery deferred).
    pub fn read(path: &Path) -> Hosts {
        match std::fs::read_to_string(path) {
            Ok(text) => Hosts::parse(&text),
            Err(e) => {
                mailgate_log::warning!("cannot read {}: {e}", path.display());
                Hosts::default()
            }
        }
    }

    /// hosts(5): an address, then its names; `#` starts a comment.
    pub fn parse(text: &str) -> Hosts {
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(Ok(addr)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for name in fields {
                let key = name.trim_end_matches('.').to_ascii_lowercase();
                let list = names.entry(key).or_default();
                if !list.contains(&addr) {
                    list.push(addr);
                }
            }
        }
        Hosts { names }
    }

    /// The addresses of `name`; none when it is not listed.
    pub fn lookup(&self, name: &str) -> &[IpAddr] {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.get(&key).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lines() {
        let h = Hosts::parse(
            "127.0.0.1\tlocalhost\n# comment\n10.0.0.5 mail.inside.example Mail # inline\n\
             ::1 localhost ip6-localhost\nbogus line\n",
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
    }
}
