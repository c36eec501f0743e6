//! What relay takes from main.cf, read once at start-up while the
//! configuration directory and /etc/resolv.conf are still reachable (before
//! the chroot).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use mailgate_config::MainConfig;
use mailgate_tls::client::{ClientTls, ClientTlsError};

use crate::nexthop::Dns;

/// The smtp_*_timeout parameters: how long each step of the dialogue may
/// take before the session is given up.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub helo: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    pub data_xfer: Duration,
    pub data_done: Duration,
    pub quit: Duration,
}

pub struct Settings {
    /// smtp_helo_name, sent with EHLO/HELO.
    pub helo_name: String,
    /// smtp_tls_*: the level, policy table, CAs, protocols.
    pub tls: ClientTls,
    /// smtp_starttls_timeout: the limit on the TLS handshake.
    pub starttls_timeout: Duration,
    pub timeouts: Timeouts,
    pub dns: Dns,
}

#[derive(Debug)]
pub enum SettingsError {
    /// A dns_nameservers entry that is neither `ip` nor `ip:port`.
    Nameserver(String),
    /// /etc/resolv.conf could not be read or names no server.
    ResolvConf(String),
    Resolver(String),
    HeloName(String),
    Tls(ClientTlsError),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Nameserver(v) => write!(
                f,
                "dns_nameservers: \"{v}\" is not an address or address:port \
                 (write IPv6 with a port as [address]:port)"
            ),
            SettingsError::ResolvConf(e) => write!(
                f,
                "cannot use /etc/resolv.conf ({e}); set dns_nameservers in main.cf"
            ),
            SettingsError::Resolver(e) => write!(f, "cannot set up the DNS resolver: {e}"),
            SettingsError::HeloName(v) => write!(
                f,
                "smtp_helo_name: \"{v}\" is not a host name or address literal"
            ),
            SettingsError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    pub fn load(config: &MainConfig) -> Result<Settings, SettingsError> {
        let helo_name = config.get("smtp_helo_name");
        // It goes into a command line: nothing that could end the command
        // or split it.
        if helo_name.is_empty() || helo_name.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(SettingsError::HeloName(helo_name));
        }
        let timeouts = Timeouts {
            connect: config.time("smtp_connect_timeout"),
            helo: config.time("smtp_helo_timeout"),
            mail: config.time("smtp_mail_timeout"),
            rcpt: config.time("smtp_rcpt_timeout"),
            data_init: config.time("smtp_data_init_timeout"),
            data_xfer: config.time("smtp_data_xfer_timeout"),
            data_done: config.time("smtp_data_done_timeout"),
            quit: config.time("smtp_quit_timeout"),
        };
        // Only the DNS method is implemented; "native" (getaddrinfo) would
        // need /etc/hosts and NSS modules inside the chroot.
        let dns_allowed = !config.bool("disable_dns_lookups")
            && config
                .list("smtp_host_lookup")
                .iter()
                .any(|m| m.eq_ignore_ascii_case("dns"));
        let dns = if dns_allowed {
            Dns::Resolver(Box::new(resolver(&config.list("dns_nameservers"))?))
        } else {
            Dns::Disabled
        };
        Ok(Settings {
            helo_name,
            tls: ClientTls::load(config).map_err(SettingsError::Tls)?,
            starttls_timeout: config.time("smtp_starttls_timeout"),
            timeouts,
            dns,
        })
    }
}

/// Builds the resolver from dns_nameservers, or /etc/resolv.conf when that
/// is empty. No sockets are opened here; the hosts file is never consulted
/// (Postfix's smtp looks up MX and A records in the DNS only).
pub(crate) fn resolver(
    nameservers: &[String],
) -> Result<Resolver<TokioRuntimeProvider>, SettingsError> {
    let (config, mut opts) = if nameservers.is_empty() {
        let (system, opts) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| SettingsError::ResolvConf(e.to_string()))?;
        if system.name_servers().is_empty() {
            return Err(SettingsError::ResolvConf("no nameserver line".into()));
        }
        // Search domains are dropped: every query relay makes is for a
        // fully qualified name.
        let (_, _, servers) = system.into_parts();
        (ResolverConfig::from_parts(None, Vec::new(), servers), opts)
    } else {
        let servers = nameservers
            .iter()
            .map(|entry| nameserver(entry))
            .collect::<Result<Vec<_>, _>>()?;
        (
            ResolverConfig::from_name_servers(servers),
            ResolverOpts::default(),
        )
    };
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| SettingsError::Resolver(e.to_string()))
}

/// `ip`, `ip:port`, `[ip]` or `[ip]:port`: UDP with TCP fallback, port 53
/// unless given.
fn nameserver(entry: &str) -> Result<NameServerConfig, SettingsError> {
    let bad = || SettingsError::Nameserver(entry.to_string());
    let addr = if let Ok(ip) = entry.parse::<IpAddr>() {
        SocketAddr::new(ip, 53)
    } else if let Ok(addr) = entry.parse::<SocketAddr>() {
        addr
    } else {
        let inner = entry
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .ok_or_else(bad)?;
        SocketAddr::new(inner.parse().map_err(|_| bad())?, 53)
    };
    let with_port = |mut c: ConnectionConfig| {
        c.port = addr.port();
        c
    };
    Ok(NameServerConfig::new(
        addr.ip(),
        true,
        vec![
            with_port(ConnectionConfig::udp()),
            with_port(ConnectionConfig::tcp()),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_forms() {
        let port = |e: &str| nameserver(e).unwrap().connections[0].port;
        let ip = |e: &str| nameserver(e).unwrap().ip.to_string();
        assert_eq!(
            (ip("192.0.2.53"), port("192.0.2.53")),
            ("192.0.2.53".into(), 53)
        );
        assert_eq!(port("127.0.0.1:5353"), 5353);
        assert_eq!(
            nameserver("127.0.0.1:5353").unwrap().connections[1].port,
            5353
        );
        assert_eq!(ip("2001:db8::53"), "2001:db8::53");
        assert_eq!(port("[2001:db8::53]:54"), 54);
        assert_eq!(port("[::1]"), 53);
        for bad in ["", "dns.example", "1.2.3.4:x", "[::1", "1.2.3.4:99999"] {
            assert!(
                matches!(nameserver(bad), Err(SettingsError::Nameserver(_))),
                "{bad}"
            );
        }
    }
}
