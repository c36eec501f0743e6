//! What relay takes from main.cf, read once at start-up while the
//! configuration directory and /etc/resolv.conf are still reachable (before
//! the chroot).

use std::fmt;
use std::time::Duration;

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
    Dns(mailgate_dns::SetupError),
    HeloName(String),
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
        Ok(Settings {
            helo_name,
            tls: ClientTls::load(config).map_err(SettingsError::Tls)?,
            starttls_timeout: config.time("smtp_starttls_timeout"),
            timeouts,
            dns,
        })
    }
}
