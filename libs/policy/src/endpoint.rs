//! Where a policy server listens (parsed by mailgate_config::policy), and
//! its addresses, looked up before the sandbox.

use std::net::{SocketAddr, ToSocketAddrs};

pub use mailgate_config::policy::Endpoint;

use crate::PolicyError;

/// The addresses of an inet endpoint, looked up now (before the sandbox,
/// which has no resolver files); empty for a Unix endpoint.
pub(crate) fn resolve(endpoint: &Endpoint) -> Result<Vec<SocketAddr>, PolicyError> {
    let Endpoint::Inet { host, port } = endpoint else {
        return Ok(Vec::new());
    };
    let addresses: Vec<SocketAddr> = (host.as_str(), *port)
        .to_socket_addrs()
        .map_err(|e| PolicyError::Resolve {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        })?
        .collect();
    if addresses.is_empty() {
        return Err(PolicyError::Resolve {
            endpoint: endpoint.to_string(),
            reason: "no address".to_string(),
        });
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_endpoints_resolve_before_the_sandbox() {
        let endpoint = Endpoint::parse("inet:127.0.0.1:10023").unwrap();
        assert_eq!(
            resolve(&endpoint).unwrap(),
            vec!["127.0.0.1:10023".parse::<SocketAddr>().unwrap()]
        );
        assert!(
            resolve(&Endpoint::parse("unix:x").unwrap())
                .unwrap()
                .is_empty()
        );
    }
}
