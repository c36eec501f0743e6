//! inet_protocols: the IP versions the gateway uses, as Postfix reads it
//! (`all`, `ipv4`, `ipv6`, or both named). It decides which wildcard
//! addresses the master listens on (`inet_interfaces = all` is 0.0.0.0
//! and/or `::`, `loopback-only` 127.0.0.1 and/or ::1) and which addresses of
//! a next hop relay connects to; an address of a version that is off is
//! not used.

use std::net::IpAddr;

use crate::main_cf::MainConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InetProtocols {
    pub ipv4: bool,
    pub ipv6: bool,
}

/// Postfix's default, `all`.
impl Default for InetProtocols {
    fn default() -> InetProtocols {
        InetProtocols {
            ipv4: true,
            ipv6: true,
        }
    }
}

impl InetProtocols {
    /// Err: the message `mailgate check` and the services give.
    pub fn from_config(config: &MainConfig) -> Result<InetProtocols, String> {
        let items = config.list("inet_protocols");
        let mut protocols = InetProtocols {
            ipv4: false,
            ipv6: false,
        };
        for item in &items {
            match item.to_ascii_lowercase().as_str() {
                "all" => {
                    protocols.ipv4 = true;
                    protocols.ipv6 = true;
                }
                "ipv4" => protocols.ipv4 = true,
                "ipv6" => protocols.ipv6 = true,
                _ => {
                    return Err(format!(
                        "inet_protocols: unknown protocol \"{item}\" (expected all, ipv4 or ipv6)"
                    ));
                }
            }
        }
        if !protocols.ipv4 && !protocols.ipv6 {
            return Err("inet_protocols: no IP protocol (expected all, ipv4 or ipv6)".into());
        }
        Ok(protocols)
    }

    /// Whether an address of this version may be used.
    pub fn allows(&self, addr: &IpAddr) -> bool {
        match addr {
            IpAddr::V4(_) => self.ipv4,
            // An IPv4-mapped address is IPv4 on the wire.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(_) => self.ipv4,
                None => self.ipv6,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocols(value: &str) -> Result<InetProtocols, String> {
        let config = MainConfig::parse(
            &format!("inet_protocols = {value}\n"),
            std::path::Path::new("/etc/mg/main.cf"),
            std::path::Path::new("/etc/mg"),
            &[],
        )
        .unwrap();
        InetProtocols::from_config(&config)
    }

    #[test]
    fn postfix_values() {
        let both = InetProtocols {
            ipv4: true,
            ipv6: true,
        };
        assert_eq!(protocols("all").unwrap(), both);
        assert_eq!(protocols("ipv4, ipv6").unwrap(), both);
        let v4 = protocols("IPv4").unwrap();
        assert!(v4.ipv4 && !v4.ipv6);
        assert!(v4.allows(&"192.0.2.1".parse().unwrap()));
        assert!(!v4.allows(&"2001:db8::1".parse().unwrap()));
        assert!(v4.allows(&"::ffff:192.0.2.1".parse().unwrap()));
        let v6 = protocols("ipv6").unwrap();
        assert!(!v6.allows(&"192.0.2.1".parse().unwrap()));
        assert!(protocols("ipx").unwrap_err().contains("ipx"));
        assert!(protocols("").is_err());
    }
}
