//! What relay takes from main.cf, read once at start-up while the
//! configuration directory and /etc/resolv.conf are still reachable (before
//! the chroot).

use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use mailgate_config::MainConfig;
use mailgate_tls::client::{ClientTls, ClientTlsError};

use crate::nexthop::{AddressPolicy, Dns};

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
    /// smtp_mx_address_limit and this gateway's own addresses.
    pub addresses: AddressPolicy,
    /// smtp_mx_session_limit: sessions (that got past the greeting and
    /// EHLO) per delivery; 0: no limit.
    pub session_limit: usize,
    /// smtp_delivery_time_limit: the most one delivery request may take,
    /// all its lookups, connections and sessions together.
    pub deadline: Duration,
    /// smtp_line_length_limit: longer lines are broken (0: never).
    pub line_limit: usize,
}

#[derive(Debug)]
pub enum SettingsError {
    Dns(mailgate_dns::SetupError),
    HeloName(String),
    Interface {
        parameter: &'static str,
        value: String,
        why: String,
    },
    Tls(ClientTlsError),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Dns(e) => e.fmt(f),
            SettingsError::HeloName(v) => write!(
                f,
                "smtp_helo_name: \"{v}\" is not a host name or address literal"
            ),
            SettingsError::Interface {
                parameter,
                value,
                why,
            } => write!(f, "{parameter}: \"{value}\": {why}"),
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
            Dns::Resolver(Box::new(
                mailgate_dns::resolver(&config.list("dns_nameservers"))
                    .map_err(SettingsError::Dns)?,
            ))
        } else {
            Dns::Disabled
        };
        let count = |name: &str| usize::try_from(config.int(name).max(0)).unwrap_or(usize::MAX);
        Ok(Settings {
            helo_name,
            tls: ClientTls::load(config).map_err(SettingsError::Tls)?,
            starttls_timeout: config.time("smtp_starttls_timeout"),
            timeouts,
            dns,
            addresses: AddressPolicy {
                limit: count("smtp_mx_address_limit"),
                own: own_addresses(config)?,
            },
            session_limit: count("smtp_mx_session_limit"),
            deadline: config.time("smtp_delivery_time_limit"),
            line_limit: count("smtp_line_length_limit"),
        })
    }
}

/// The addresses this gateway receives mail on, as Postfix's
/// own_inet_addr_list and proxy_inet_addr_list: inet_interfaces ("all":
/// every address of every interface of the host) and proxy_interfaces.
/// Read before the sandbox (interface list, host names).
fn own_addresses(config: &MainConfig) -> Result<Vec<IpAddr>, SettingsError> {
    let mut own = Vec::new();
    for (parameter, item) in config
        .list("inet_interfaces")
        .into_iter()
        .map(|i| ("inet_interfaces", i))
        .chain(
            config
                .list("proxy_interfaces")
                .into_iter()
                .map(|i| ("proxy_interfaces", i)),
        )
    {
        let fail = |why: String| SettingsError::Interface {
            parameter,
            value: item.clone(),
            why,
        };
        match item.to_ascii_lowercase().as_str() {
            "all" => {
                let interfaces = nix::ifaddrs::getifaddrs()
                    .map_err(|e| fail(format!("cannot list interfaces: {e}")))?;
                own.extend(interfaces.filter_map(|i| {
                    let address = i.address?;
                    address
                        .as_sockaddr_in()
                        .map(|a| IpAddr::V4(a.ip()))
                        .or_else(|| address.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
                }));
            }
            "loopback-only" => {
                own.extend(["127.0.0.1", "::1"].map(|a| a.parse::<IpAddr>().expect("literal")))
            }
            "localhost" => own.push(IpAddr::from([127, 0, 0, 1])),
            _ => {
                let bare = item.trim_start_matches('[').trim_end_matches(']');
                match bare.parse::<IpAddr>() {
                    Ok(ip) => own.push(ip),
                    Err(_) => own.extend(
                        (bare, 0)
                            .to_socket_addrs()
                            .map_err(|e| fail(format!("cannot look it up: {e}")))?
                            .map(|a| a.ip()),
                    ),
                }
            }
        }
    }
    own.sort();
    own.dedup();
    Ok(own)
}
