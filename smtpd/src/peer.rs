//! Who the client is: its address's PTR name, confirmed by looking the name
//! up again (Postfix's smtpd_peer.c). Only a name that resolves back to the
//! client's address is used in logs, Received headers and host name
//! restrictions; otherwise the client is "unknown", with a status that says
//! whether that may change (a DNS failure) or not.
//!
//! Postfix asks the C library, which reads the hosts file before the DNS
//! on a stock system; so does this, in nsswitch.conf's order: a client on
//! 127.0.0.1 is `localhost` without a DNS query, as in Postfix.

use std::net::IpAddr;

use mailgate_dns::hosts::{NameSources, Source, plain};
use mailgate_dns::{Dns, DnsError};
use mailgate_log::warning;

use crate::policy::names::{valid_hostaddr, valid_hostname};
use crate::policy::{Peer, PeerStatus};

/// Looks the client up, or takes it as unknown when
/// smtpd_peername_lookup = no.
pub async fn lookup(
    dns: &Dns,
    sources: &NameSources,
    addr: IpAddr,
    port: u16,
    enabled: bool,
) -> Peer {
    if !enabled {
        return Peer::unknown(addr, port, PeerStatus::Perm);
    }
    let name = match reverse(dns, sources, addr).await {
        Ok(name) => name,
        Err(DnsError::TempFail(_)) => return Peer::unknown(addr, port, PeerStatus::Temp),
        Err(_) => return Peer::unknown(addr, port, PeerStatus::Perm),
    };
    // A numeric or malformed name is no name: such a PTR could pose as an
    // address in an access table.
    if !valid_hostname(&name) || valid_hostaddr(&name) {
        return Peer::unknown(addr, port, PeerStatus::Perm);
    }
    let mut peer = Peer {
        addr,
        port,
        name: name.clone(),
        name_status: PeerStatus::Ok,
        reverse_name: name.clone(),
        reverse_status: PeerStatus::Ok,
    };
    let forged = |peer: &mut Peer, status: PeerStatus| {
        peer.name = "unknown".to_string();
        peer.name_status = status;
    };
    match forward(dns, sources, &name).await {
        Ok(addresses) if addresses.iter().any(|a| same_address(*a, addr)) => {}
        Ok(_) => {
            warning!("hostname {name} does not resolve to address {addr}");
            forged(&mut peer, PeerStatus::Forged);
        }
        Err(e) => {
            warning!("hostname {name} does not resolve to address {addr}: {e}");
            let status = if e.is_permanent() {
                PeerStatus::Forged
            } else {
                PeerStatus::Temp
            };
            forged(&mut peer, status);
        }
    }
    peer
}

/// The address's name from the first source that has one: the hosts
/// file's first name for it, or the DNS's first PTR name.
async fn reverse(dns: &Dns, sources: &NameSources, addr: IpAddr) -> Result<String, DnsError> {
    let mut last = DnsError::NotFound;
    for source in &sources.order {
        match source {
            Source::Files => {
                if let Some(name) = sources.hosts.name_of(addr) {
                    return Ok(name.to_string());
                }
            }
            Source::Dns => match dns.ptr(addr).await {
                Ok(names) => return Ok(names.into_iter().next().unwrap_or_default()),
                Err(e) => last = e,
            },
        }
    }
    Err(last)
}

/// The name's addresses from the first source that knows it.
async fn forward(dns: &Dns, sources: &NameSources, name: &str) -> Result<Vec<IpAddr>, DnsError> {
    let mut last = DnsError::NotFound;
    for source in &sources.order {
        match source {
            Source::Files => {
                let addresses = sources.hosts.lookup(name);
                if !addresses.is_empty() {
                    return Ok(addresses.to_vec());
                }
            }
            Source::Dns => match dns.addresses(name).await {
                Ok(addresses) => return Ok(addresses),
                Err(e) => last = e,
            },
        }
    }
    Err(last)
}

/// IPv4-mapped IPv6 addresses equal their IPv4 form.
fn same_address(a: IpAddr, b: IpAddr) -> bool {
    plain(a) == plain(b)
}
