//! The client and recipient whitelists: Postfix lookup tables, read as
//! check_client_access and check_recipient_access read an access table.
//!
//! A result of `OK` whitelists; `DUNNO` ends the search without
//! whitelisting (an exception inside a whitelisted domain). Any other
//! result cannot be meant for a whitelist: it is logged and does not
//! whitelist, so a mistake greylists rather than lets mail through.

use std::net::IpAddr;

use mailgate_config::{AddressLookup, Table, lookup_address};
use mailgate_log::warning;

/// What one whitelist says about a client or recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    Yes,
    No,
}

pub struct Whitelists {
    pub clients: Vec<Table>,
    pub recipients: Vec<Table>,
}

impl Whitelists {
    /// The client by name (and its parent domains) in text tables and in
    /// pattern tables, then by address (and its partial addresses in text
    /// tables, networks in cidr tables).
    pub fn client(&self, name: &str, address: IpAddr) -> Listed {
        let address_text = address.to_string();
        for table in &self.clients {
            let mut keys: Vec<String> = Vec::new();
            if !name.is_empty() && name != "unknown" {
                keys.push(name.to_lowercase());
                if !table.is_pattern_table() {
                    keys.extend(parent_domains(&name.to_lowercase()));
                }
            }
            keys.push(address_text.clone());
            if !table.is_pattern_table() {
                keys.extend(partial_addresses(&address_text, address.is_ipv4()));
            }
            if let Some(result) = keys.iter().find_map(|key| table.lookup(key)) {
                return verdict(table, &result);
            }
        }
        Listed::No
    }

    /// The recipient: user@domain, domain and its parents, user@ (an
    /// address extension after `+` ignored, as postgrey does).
    pub fn recipient(&self, recipient: &str) -> Listed {
        let options = AddressLookup {
            parent_domains: true,
            parent_bare: true,
            recipient_delimiter: Some('+'),
        };
        for table in &self.recipients {
            if let Some(result) = lookup_address(table, recipient, &options) {
                return verdict(table, &result);
            }
        }
        Listed::No
    }
}

fn verdict(table: &Table, result: &str) -> Listed {
    let action = result.split_whitespace().next().unwrap_or("");
    if action.eq_ignore_ascii_case("OK") {
        Listed::Yes
    } else if action.eq_ignore_ascii_case("DUNNO") {
        Listed::No
    } else {
        warning!(
            "{}: result \"{result}\" is neither OK nor DUNNO: not whitelisted",
            table.spec()
        );
        Listed::No
    }
}

/// "a.b.example.com" -> "b.example.com", "example.com", "com".
fn parent_domains(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = name;
    while let Some((_, parent)) = rest.split_once('.') {
        if parent.is_empty() {
            break;
        }
        out.push(parent.to_string());
        rest = parent;
    }
    out
}

/// Postfix's partial address keys: "1.2.3.4" -> "1.2.3", "1.2", "1"; for
/// IPv6 the trailing `:`-separated fields are stripped the same way.
fn partial_addresses(address: &str, ipv4: bool) -> Vec<String> {
    let separator = if ipv4 { '.' } else { ':' };
    let mut out = Vec::new();
    let mut rest = address;
    while let Some((head, _)) = rest.rsplit_once(separator) {
        if head.is_empty() {
            break;
        }
        out.push(head.to_string());
        rest = head;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn etc() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../etc"))
    }

    fn shipped() -> Whitelists {
        let clients = [
            "texthash:greylist_whitelist_clients",
            "pcre:greylist_whitelist_clients.pcre",
            "cidr:greylist_whitelist_clients.cidr",
        ]
        .iter()
        .map(|spec| Table::open(spec, etc()).unwrap())
        .collect();
        let recipients =
            vec![Table::open("texthash:greylist_whitelist_recipients", etc()).unwrap()];
        Whitelists {
            clients,
            recipients,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_shipped_postgrey_lists_load_and_match_as_postgrey_does() {
        let lists = shipped();
        for (name, address, expected) in [
            // Host name entries match the name and its subdomains.
            ("amazon.com", "192.0.2.1", Listed::Yes),
            ("smtp-out.eu.Amazon.com", "192.0.2.1", Listed::Yes),
            ("notamazon.com", "192.0.2.1", Listed::No),
            // A regular expression entry.
            ("smtp12-g34.free.fr", "192.0.2.1", Listed::Yes),
            // Exact and partial addresses.
            ("unknown", "66.216.126.174", Listed::Yes),
            ("unknown", "195.235.39.200", Listed::Yes),
            ("unknown", "195.235.40.1", Listed::No),
            // Networks, IPv4 and IPv6.
            ("unknown", "205.201.130.9", Listed::Yes),
            ("unknown", "2a01:4180:4051:800::25", Listed::Yes),
            ("mx.example.org", "192.0.2.1", Listed::No),
        ] {
            assert_eq!(
                lists.client(name, ip(address)),
                expected,
                "{name}[{address}]"
            );
        }
        assert_eq!(lists.recipient("postmaster@example.com"), Listed::Yes);
        assert_eq!(lists.recipient("abuse+spam@example.com"), Listed::Yes);
        assert_eq!(lists.recipient("bob@example.com"), Listed::No);
    }

    #[test]
    fn dunno_makes_an_exception_and_other_results_do_not_whitelist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("clients"),
            "bad.example.com DUNNO\nexample.com OK\nodd.example REJECT\n",
        )
        .unwrap();
        let lists = Whitelists {
            clients: vec![Table::open("texthash:clients", dir.path()).unwrap()],
            recipients: vec![Table::open("inline:{ example.com=OK }", dir.path()).unwrap()],
        };
        let any = ip("192.0.2.1");
        assert_eq!(lists.client("mx.example.com", any), Listed::Yes);
        assert_eq!(lists.client("mx.bad.example.com", any), Listed::No);
        assert_eq!(lists.client("odd.example", any), Listed::No);
        assert_eq!(lists.recipient("anyone@sub.example.com"), Listed::Yes);
    }

    #[test]
    fn partial_keys() {
        assert_eq!(partial_addresses("1.2.3.4", true), ["1.2.3", "1.2", "1"]);
        assert_eq!(
            partial_addresses("2001:db8::1", false),
            ["2001:db8:", "2001:db8", "2001"]
        );
        assert_eq!(parent_domains("a.b.c"), ["b.c", "c"]);
    }
}
