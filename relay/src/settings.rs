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

/// The protocol a relay process speaks: master.cf's command `smtp` (and
/// mailgate's own `relay`) or `lmtp` (RFC 2033).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Lmtp,
}

impl Protocol {
    /// From master.cf's command column.
    pub fn of_command(command: &str) -> Protocol {
        match command {
            "lmtp" => Protocol::Lmtp,
            _ => Protocol::Smtp,
        }
    }

    /// The prefix of its parameters, as Postfix's smtp(8) and lmtp(8).
    pub fn prefix(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "lmtp",
        }
    }
}

pub struct Settings {
    pub protocol: Protocol,
    /// smtp_send_xforward_command (lmtp_...): send the original client's
    /// attributes with XFORWARD when the server offers it.
    pub send_xforward: bool,
    /// smtp_tls_note_starttls_offer: log a server's unused offer of STARTTLS
    /// (at TLS level none; SMTP only, as lmtp_tls_* are not known).
    pub note_starttls_offer: bool,
    /// debug_peer_list: servers whose SMTP dialogue is logged line by line.
    pub debug_peers: mailgate_config::DebugPeers,
    /// smtp_helo_name (lmtp_lhlo_name), sent with EHLO/HELO (LHLO).
    pub helo_name: String,
    /// myhostname: the host part of a Unix-socket peer's `relay=` label.
    pub myhostname: String,
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
    Protocols(String),
    DebugPeers(Vec<String>),
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
            SettingsError::Protocols(why) => write!(f, "{why}"),
            SettingsError::DebugPeers(problems) => {
                write!(f, "debug_peer_list: {}", problems.join("; "))
            }
        }
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    pub fn load(config: &MainConfig, protocol: Protocol) -> Result<Settings, SettingsError> {
        let prefix = protocol.prefix();
        let param = |name: &str| format!("{prefix}_{name}");
        let hello = match protocol {
            Protocol::Smtp => "helo",
            Protocol::Lmtp => "lhlo",
        };
        let helo_name = config.get(&param(&format!("{hello}_name")));
        // It goes into a command line: nothing that could end the command
        // or split it.
        if helo_name.is_empty() || helo_name.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(SettingsError::HeloName(helo_name));
        }
        let deadline = config.time("smtp_delivery_time_limit");
        let time = |name: &str| config.time(&param(name));
        let timeouts = Timeouts {
            // lmtp_connect_timeout = 0 (its default): no limit of its own,
            // only the delivery's.
            connect: Some(time("connect_timeout"))
                .filter(|t| !t.is_zero())
                .unwrap_or(deadline),
            helo: time(&format!("{hello}_timeout")),
            mail: time("mail_timeout"),
            rcpt: time("rcpt_timeout"),
            data_init: time("data_init_timeout"),
            data_xfer: time("data_xfer_timeout"),
            data_done: time("data_done_timeout"),
            quit: time("quit_timeout"),
        };
        // "dns" asks the DNS servers; "native" (alone, or forced by
        // disable_dns_lookups) reads the hosts file, now, before the chroot
        // (getaddrinfo would need it and NSS modules inside). "dns, native"
        // uses DNS only: `check` says so.
        let lookup = config.list(&param("host_lookup"));
        let dns_allowed = !config.bool("disable_dns_lookups")
            && lookup.iter().any(|m| m.eq_ignore_ascii_case("dns"));
        let dns = if dns_allowed {
            Dns::Resolver(Box::new(
                mailgate_dns::resolver(&config.list("dns_nameservers"))
                    .map_err(SettingsError::Dns)?,
            ))
        } else {
            let path = std::path::Path::new(mailgate_dns::hosts::HOSTS_FILE);
            Dns::Native(mailgate_dns::hosts::Hosts::read(path).unwrap_or_else(|e| {
                mailgate_log::warning!("{e}");
                mailgate_dns::hosts::Hosts::default()
            }))
        };
        let count = |name: &str| usize::try_from(config.int(name).max(0)).unwrap_or(usize::MAX);
        Ok(Settings {
            protocol,
            send_xforward: config.bool(&param("send_xforward_command")),
            note_starttls_offer: protocol == Protocol::Smtp
                && config.bool("smtp_tls_note_starttls_offer"),
            debug_peers: mailgate_config::DebugPeers::load(
                config,
                config.config_dir(),
                config
                    .list("parent_domain_matches_subdomains")
                    .iter()
                    .any(|p| p == "debug_peer_list"),
            )
            .map_err(SettingsError::DebugPeers)?,
            helo_name,
            myhostname: config.get("myhostname"),
            tls: ClientTls::load(config).map_err(SettingsError::Tls)?,
            starttls_timeout: config.time("smtp_starttls_timeout"),
            timeouts,
            dns,
            addresses: AddressPolicy {
                limit: count(&param("mx_address_limit")),
                own: own_addresses(config)?,
                protocols: mailgate_config::InetProtocols::from_config(config)
                    .map_err(SettingsError::Protocols)?,
            },
            session_limit: count(&param("mx_session_limit")),
            deadline,
            line_limit: count(&param("line_length_limit")),
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
