//! IP networks as written in mynetworks and cidr tables.

use std::net::IpAddr;

/// An address with a prefix length; host bits are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Parses "192.0.2.0/24", "192.0.2.1", "2001:db8::/32", "[2001:db8::]/32", "[::1]".
    pub fn parse(text: &str) -> Result<Net, String> {
        let (addr_text, prefix_text) = if let Some(rest) = text.strip_prefix('[') {
            let Some((addr, after)) = rest.split_once(']') else {
                return Err(format!("missing ']' in \"{text}\""));
            };
            match after {
                "" => (addr, None),
                _ => match after.strip_prefix('/') {
                    Some(prefix) => (addr, Some(prefix)),
                    None => return Err(format!("unexpected text after ']' in \"{text}\"")),
                },
            }
        } else {
            match text.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix)),
                None => (text, None),
            }
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("\"{addr_text}\" is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "bad prefix length \"/{p}\" in \"{text}\" (0 to {max})"
                    ));
                }
            },
        };
        let net = Net { addr, prefix };
        let masked = net.masked(addr);
        if masked != addr {
            return Err(format!(
                "non-zero host bits in \"{text}\"; perhaps you mean \"{masked}/{prefix}\""
            ));
        }
        Ok(net)
    }

    fn masked(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && self.masked(ip) == self.addr
    }
}

/// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) become plain IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_matches() {
        let n = Net::parse("127.0.0.0/8").unwrap();
        assert!(n.contains(ip("127.1.2.3")));
        assert!(n.contains(ip("::ffff:127.0.0.1")));
        assert!(!n.contains(ip("128.0.0.1")));
        let n = Net::parse("[::1]/128").unwrap();
        assert!(n.contains(ip("::1")));
        assert!(!n.contains(ip("::2")));
        let n = Net::parse("[2001:db8::]/32").unwrap();
        assert!(n.contains(ip("2001:db8:1::5")));
        assert!(!n.contains(ip("127.0.0.1")));
        let n = Net::parse("2001:db8::/32").unwrap();
        assert!(n.contains(ip("2001:db8::1")));
        assert!(
            Net::parse("192.168.40.2")
                .unwrap()
                .contains(ip("192.168.40.2"))
        );
        assert!(Net::parse("[::1]").unwrap().contains(ip("::1")));
        assert!(Net::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Net::parse("::/0").unwrap().contains(ip("2001::1")));
    }

    #[test]
    fn rejects_bad_networks() {
        assert!(
            Net::parse("127.0.0.1/8")
                .unwrap_err()
                .contains("127.0.0.0/8")
        );
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(Net::parse("10.0.0.0/").is_err());
        assert!(Net::parse("example.com").is_err());
        assert!(Net::parse("[::1").is_err());
        assert!(Net::parse("[::1]x").is_err());
    }
}
