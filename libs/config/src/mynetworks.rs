//! mynetworks computed from mynetworks_style, as Postfix's mynetworks.c
//! does when mynetworks is not set: the machine's own addresses (those
//! inet_interfaces names) as hosts (`host`), with their interface's netmask
//! (`subnet`) or with their old address class (`class`; IPv6 has no
//! classes and gets its subnet).
//!
//! mailgate computes it only when mynetworks_style is set: with neither
//! set, mynetworks is its documented default, 127.0.0.0/8 [::1]/128.

use std::net::IpAddr;

/// The styles Postfix knows.
pub(crate) const STYLES: &[&str] = &["host", "subnet", "class"];

/// The networks of one style for the machine's addresses (address and
/// the prefix length of its interface), each once, in order.
pub(crate) fn networks(style: &str, addresses: &[(IpAddr, u8)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for &(ip, subnet) in addresses {
        let text = match ip {
            IpAddr::V4(v4) => {
                let addr = u32::from(v4);
                let prefix = match style {
                    "host" => 32,
                    "subnet" => subnet.min(32),
                    // Classes A, B, C and D.
                    _ => match addr >> 28 {
                        0..=7 => 8,
                        8..=11 => 16,
                        12..=13 => 24,
                        _ => 4,
                    },
                };
                let mask = if prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix)
                };
                format!("{}/{prefix}", std::net::Ipv4Addr::from(addr & mask))
            }
            IpAddr::V6(v6) => {
                let addr = u128::from(v6);
                let prefix = if style == "host" {
                    128
                } else {
                    subnet.min(128)
                };
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(prefix))
                };
                format!("[{}]/{prefix}", std::net::Ipv6Addr::from(addr & mask))
            }
        };
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

/// The machine's addresses that inet_interfaces names, with their
/// interfaces' prefix lengths (a listed address no interface has counts
/// as a host).
pub(crate) fn own_addresses(inet_interfaces: &[String]) -> Vec<(IpAddr, u8)> {
    let mut interfaces: Vec<(IpAddr, u8)> = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifaddr in addrs {
            let (Some(address), Some(mask)) = (ifaddr.address, ifaddr.netmask) else {
                continue;
            };
            if let (Some(a), Some(m)) = (address.as_sockaddr_in(), mask.as_sockaddr_in()) {
                let prefix = u32::from(m.ip()).count_ones() as u8;
                interfaces.push((IpAddr::V4(a.ip()), prefix));
            } else if let (Some(a), Some(m)) = (address.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                let prefix = u128::from(m.ip()).count_ones() as u8;
                interfaces.push((IpAddr::V6(a.ip()), prefix));
            }
        }
    }
    let mut out = Vec::new();
    for item in inet_interfaces {
        let wanted: Vec<IpAddr> = match item.as_str() {
            "all" => {
                out.extend(interfaces.iter().copied());
                continue;
            }
            "loopback-only" => vec![IpAddr::from([127, 0, 0, 1]), "::1".parse().expect("::1")],
            "localhost" => vec![IpAddr::from([127, 0, 0, 1])],
            other => match other.trim_matches(['[', ']']).parse() {
                Ok(ip) => vec![ip],
                Err(_) => continue,
            },
        };
        for ip in wanted {
            let prefix = interfaces
                .iter()
                .find(|(a, _)| *a == ip)
                .map_or(if ip.is_ipv4() { 32 } else { 128 }, |(_, p)| *p);
            out.push((ip, prefix));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<(IpAddr, u8)> {
        vec![
            ("127.0.0.1".parse().unwrap(), 8),
            ("192.0.2.10".parse().unwrap(), 26),
            ("172.20.5.9".parse().unwrap(), 24),
            ("10.1.2.3".parse().unwrap(), 16),
            ("2001:db8::5".parse().unwrap(), 64),
            ("::1".parse().unwrap(), 128),
            ("127.0.0.1".parse().unwrap(), 8),
        ]
    }

    #[test]
    fn the_three_styles_as_postfix_computes_them() {
        assert_eq!(
            networks("host", &addrs()).join(" "),
            "127.0.0.1/32 192.0.2.10/32 172.20.5.9/32 10.1.2.3/32 [2001:db8::5]/128 [::1]/128"
        );
        assert_eq!(
            networks("subnet", &addrs()).join(" "),
            "127.0.0.0/8 192.0.2.0/26 172.20.5.0/24 10.1.0.0/16 [2001:db8::]/64 [::1]/128"
        );
        assert_eq!(
            networks("class", &addrs()).join(" "),
            "127.0.0.0/8 192.0.2.0/24 172.20.0.0/16 10.0.0.0/8 [2001:db8::]/64 [::1]/128"
        );
    }

    #[test]
    fn listed_interfaces_take_their_interface_mask() {
        let own = own_addresses(&["127.0.0.1".to_string()]);
        assert_eq!(own, vec![("127.0.0.1".parse().unwrap(), 8)]);
        let own = own_addresses(&["192.0.2.77".to_string()]);
        assert_eq!(
            own,
            vec![("192.0.2.77".parse().unwrap(), 32)],
            "no such interface"
        );
    }
}
