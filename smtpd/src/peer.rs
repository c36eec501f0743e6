//! Who the client is: its address's PTR name, confirmed by looking the name
//! up again (Postfix's smtpd_peer.c). Only a name that resolves back to the
//! client's address is used in logs, Received headers and host name
//! restrictions; otherwise the client is "unknown", with a status that says
//! whether that may change (a DNS failure) or not.

use std::net::IpAddr;

use mailgate_dns::{Dns, DnsError};
use mailgate_log::warning;

use crate::policy::names::{valid_hostaddr, valid_hostname};
use crate::policy::{Peer, PeerStatus};

/// Looks the client up, or takes it as unknown when
/// smtpd_peername_lookup = no.
pub async fn lookup(dns: &Dns, addr: IpAddr, port: u16, enabled: bool) -> Peer {
    if !enabled {
        return Peer::unknown(addr, port, PeerStatus::Perm);
    }
    let name = match dns.ptr(addr).await {
        Ok(names) => names.into_iter().next().unwrap_or_default(),
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
    match dns.addresses(&name).await {
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

/// IPv4-mapped IPv6 addresses equal their IPv4 form.
fn same_address(a: IpAddr, b: IpAddr) -> bool {
    let plain = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    plain(a) == plain(b)
}
