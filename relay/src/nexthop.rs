//! Where to connect: the next hop as routing wrote it, and the addresses it
//! resolves to (RFC 5321 §5.1).
//!
//! `[host]:port` and `[host]` name one host, so no MX lookup is done;
//! `host:port` and `host` are a mail domain whose MX records are looked up.
//! DNS answers are input from the network: a malformed or hostile answer
//! turns into an error value, never a panic.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData};
use mailgate_config::InetProtocols;

use crate::status::Status;

const SMTP_PORT: u16 = 25;

/// Which addresses a delivery may try.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    /// smtp_mx_address_limit: at most this many addresses per delivery (0:
    /// no limit), so a domain with hundreds of dead MX hosts cannot hold a
    /// delivery slot for hundreds of connect timeouts.
    pub limit: usize,
    /// This gateway's own addresses (inet_interfaces, proxy_interfaces):
    /// mail to port 25 of one of them loops back to us.
    pub own: Vec<IpAddr>,
    /// inet_protocols: addresses of a version it turns off are not tried.
    pub protocols: InetProtocols,
}

impl AddressPolicy {
    fn limit(&self) -> usize {
        if self.limit == 0 {
            usize::MAX
        } else {
            self.limit
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nexthop {
    /// Host name, domain, or IP address text (brackets and `ipv6:` removed).
    pub host: String,
    pub port: u16,
    /// Whether MX records are looked up (the unbracketed forms).
    pub mx: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NexthopError {
    Empty,
    /// `[host` without the closing bracket, or text after it that is not `:port`.
    Brackets(String),
    BadPort(String),
}

impl fmt::Display for NexthopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NexthopError::Empty => write!(f, "empty next-hop destination"),
            NexthopError::Brackets(n) => write!(f, "malformed next-hop destination \"{n}\""),
            NexthopError::BadPort(n) => write!(f, "bad port in next-hop destination \"{n}\""),
        }
    }
}

impl std::error::Error for NexthopError {}

impl Nexthop {
    pub fn parse(text: &str) -> Result<Nexthop, NexthopError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(NexthopError::Empty);
        }
        let (host, port, mx) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| NexthopError::Brackets(text.to_string()))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| NexthopError::Brackets(text.to_string()))?,
                ),
            };
            // Address literals in RFC 5321 form carry an `IPv6:` tag.
            let inside = match inside.get(..5) {
                Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => &inside[5..],
                _ => inside,
            };
            (inside, port, false)
        } else {
            match text.rsplit_once(':') {
                // A colon inside the host part would be an unbracketed IPv6
                // address: Postfix requires brackets for those too.
                Some((host, _)) if host.contains(':') => {
                    return Err(NexthopError::Brackets(text.to_string()));
                }
                Some((host, port)) => (host, Some(port), true),
                None => (text, None, true),
            }
        };
        if host.is_empty() || host.contains(['[', ']']) {
            return Err(NexthopError::Brackets(text.to_string()));
        }
        let port = match port {
            None => SMTP_PORT,
            Some("smtp") => SMTP_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| NexthopError::BadPort(text.to_string()))?,
        };
        Ok(Nexthop {
            host: host.to_string(),
            port,
            mx,
        })
    }
}

/// One address to try, with the host name it came from for the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
    /// The MX preference of its host (0 without an MX lookup).
    pub pref: u16,
}

impl Target {
    /// `host[ip]`, as Postfix names a peer.
    pub fn host_label(&self) -> String {
        format!("{}[{}]", self.name, self.addr.ip())
    }

    /// `host[ip]:port`, as in `relay=` and connect errors.
    pub fn label(&self) -> String {
        format!("{}:{}", self.host_label(), self.addr.port())
    }
}

/// How names are resolved.
pub enum Dns {
    /// disable_dns_lookups = yes, or smtp_host_lookup = native: names from
    /// the hosts file read at start (the chroot has none), no MX lookups
    /// (a domain is looked up as a host), as Postfix's native lookups.
    Native(mailgate_dns::hosts::Hosts),
    Resolver(Box<TokioResolver>),
}

/// The addresses of a next hop, best first, at most `policy.limit`.
/// An error is the result for every recipient of the delivery.
///
/// As Postfix's smtp_addr.c, for port 25 only (a content filter on another
/// port of this host is not a loop): when one of the addresses is this
/// gateway's own, it and every address of its MX preference or worse are
/// dropped, and when nothing is left the mail "loops back to myself"
/// (5.4.6), or, when the best MX hosts had no address, there is no primary
/// relay (4.4.4).
pub async fn resolve(
    nexthop: &Nexthop,
    dns: &Dns,
    policy: &AddressPolicy,
) -> Result<Vec<Target>, Status> {
    let looping = || loops_back(&nexthop.host);
    if let Ok(ip) = nexthop.host.parse::<IpAddr>() {
        if nexthop.port == SMTP_PORT && policy.own.contains(&ip) {
            return Err(looping());
        }
        if !policy.protocols.allows(&ip) {
            return Err(Status::deferred(
                "4.4.4",
                format!(
                    "unable to connect to {ip}: its IP version is turned off by inet_protocols"
                ),
            ));
        }
        return Ok(vec![Target {
            name: ip.to_string(),
            addr: SocketAddr::new(ip, nexthop.port),
            pref: 0,
        }]);
    }
    let resolver = match dns {
        Dns::Native(hosts) => {
            let found: Vec<IpAddr> = hosts
                .lookup(&nexthop.host)
                .iter()
                .copied()
                .filter(|ip| policy.protocols.allows(ip))
                .collect();
            if found.is_empty() {
                return Err(Status::deferred(
                    "4.4.3",
                    format!(
                        "Host or domain name not found. Name service error for name={} \
                         type=A: Host not found in the hosts file (DNS lookups are disabled)",
                        nexthop.host
                    ),
                ));
            }
            let targets: Vec<Target> = found
                .iter()
                .map(|ip| Target {
                    name: nexthop.host.clone(),
                    addr: SocketAddr::new(*ip, nexthop.port),
                    pref: 0,
                })
                .take(policy.limit())
                .collect();
            if nexthop.port == SMTP_PORT
                && targets.iter().any(|t| policy.own.contains(&t.addr.ip()))
            {
                return Err(looping());
            }
            return Ok(targets);
        }
        Dns::Resolver(resolver) => resolver,
    };
    let hosts = if nexthop.mx {
        mx_hosts(&nexthop.host, resolver).await?
    } else {
        vec![(0, nexthop.host.clone())]
    };
    let best_pref = hosts.first().map(|(pref, _)| *pref);
    let mut targets = Vec::new();
    let mut last_error = None;
    for (pref, host) in hosts {
        if targets.len() >= policy.limit() {
            break;
        }
        let allowed = host_addresses(&host, resolver).await.and_then(|mut addrs| {
            addrs.retain(|ip| policy.protocols.allows(ip));
            if addrs.is_empty() {
                Err(not_found(
                    &host,
                    "A",
                    "No address of an IP version inet_protocols allows",
                ))
            } else {
                Ok(addrs)
            }
        });
        match allowed {
            Ok(mut addrs) => {
                // Postfix's smtp_randomize_addresses: spread load over a
                // host's addresses.
                fastrand::shuffle(&mut addrs);
                targets.extend(addrs.into_iter().map(|ip| Target {
                    name: host.clone(),
                    addr: SocketAddr::new(ip, nexthop.port),
                    pref,
                }));
            }
            // A temporary failure for one MX host outweighs "not found"
            // for another: the delivery is retried rather than bounced.
            Err(e) => match &last_error {
                Some(Status { dsn, .. }) if dsn.starts_with('4') => {}
                _ => last_error = Some(e),
            },
        }
    }
    if nexthop.port == SMTP_PORT
        && let Some(own) = targets.iter().find(|t| policy.own.contains(&t.addr.ip()))
    {
        let best_found = targets.first().map(|t| t.pref);
        let cut = own.pref;
        targets.retain(|t| t.pref < cut);
        if targets.is_empty() {
            return Err(if best_found == best_pref {
                looping()
            } else {
                Status::deferred(
                    "4.4.4",
                    format!("unable to find primary relay for {}", nexthop.host),
                )
            });
        }
    }
    targets.truncate(policy.limit());
    match (targets.is_empty(), last_error) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(not_found(&nexthop.host, "A", "no address")),
        (false, _) => Ok(targets),
    }
}

/// Postfix's words for mail whose next hop is this gateway itself.
fn loops_back(host: &str) -> Status {
    Status::bounced("5.4.6", format!("mail for {host} loops back to myself"))
}

fn dns_name(host: &str) -> Option<Name> {
    // Fully qualified: resolv.conf search domains must not turn a missing
    // domain into a host in the local domain.
    let mut name = Name::from_utf8(host).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// The MX hosts of a domain in preference order, equal preferences in random
/// order (RFC 5321 §5.1); the domain itself when it has no MX records.
async fn mx_hosts(domain: &str, resolver: &TokioResolver) -> Result<Vec<(u16, String)>, Status> {
    let name = dns_name(domain).ok_or_else(|| not_found(domain, "MX", "malformed domain name"))?;
    let records = match resolver.mx_lookup(name).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Err(e) if e.is_nx_domain() => return Err(not_found(domain, "MX", "Host not found")),
        Err(e) if e.is_no_records_found() => Vec::new(),
        Err(e) => return Err(try_again(domain, "MX", &e)),
    };
    if records.is_empty() {
        return Ok(vec![(0, domain.to_string())]);
    }
    // RFC 7505: a single MX of "." says the domain accepts no mail.
    if records.iter().any(|(_, exchange)| exchange.is_root()) {
        return Err(Status::bounced(
            "5.1.10",
            format!("Domain {domain} does not accept mail (nullMX)"),
        ));
    }
    Ok(order_mx(records))
}

/// Sorts by preference, shuffling within each preference, and keeps each
/// host once (at its best preference).
fn order_mx(mut records: Vec<(u16, Name)>) -> Vec<(u16, String)> {
    fastrand::shuffle(&mut records);
    // A stable sort keeps the shuffled order among equal preferences.
    records.sort_by_key(|(preference, _)| *preference);
    let mut seen = std::collections::HashSet::with_capacity(records.len());
    let mut hosts = Vec::with_capacity(records.len());
    for (preference, exchange) in records {
        let mut host = exchange.to_utf8();
        if host.ends_with('.') {
            host.pop();
        }
        if seen.insert(host.clone()) {
            hosts.push((preference, host));
        }
    }
    hosts
}

async fn host_addresses(host: &str, resolver: &TokioResolver) -> Result<Vec<IpAddr>, Status> {
    let name = dns_name(host).ok_or_else(|| not_found(host, "A", "malformed host name"))?;
    match resolver.lookup_ip(name).await {
        Ok(lookup) => {
            let addrs: Vec<IpAddr> = lookup.iter().collect();
            if addrs.is_empty() {
                Err(not_found(host, "A", "No address associated with hostname"))
            } else {
                Ok(addrs)
            }
        }
        Err(e) if e.is_nx_domain() => Err(not_found(host, "A", "Host not found")),
        Err(e) if e.is_no_records_found() => {
            Err(not_found(host, "A", "No address associated with hostname"))
        }
        Err(e) => Err(try_again(host, "A", &e)),
    }
}

/// The name does not exist: the mail cannot be delivered. Postfix reports
/// this as 5.4.4 (unable to route), so mailgate does too.
fn not_found(name: &str, kind: &str, detail: &str) -> Status {
    Status::bounced(
        "5.4.4",
        format!(
            "Host or domain name not found. Name service error for name={name} type={kind}: {detail}"
        ),
    )
}

fn try_again(name: &str, kind: &str, error: &NetError) -> Status {
    Status::deferred(
        "4.4.3",
        format!(
            "Host or domain name not found. Name service error for name={name} type={kind}: \
             Host not found, try again ({error})"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_ipc::protocol::delivery::Outcome;

    fn hop(host: &str, port: u16, mx: bool) -> Nexthop {
        Nexthop {
            host: host.to_string(),
            port,
            mx,
        }
    }

    #[test]
    fn nexthop_forms() {
        let ok = |s| Nexthop::parse(s).unwrap();
        assert_eq!(ok("example.com"), hop("example.com", 25, true));
        assert_eq!(ok("mx.example.com:2525"), hop("mx.example.com", 2525, true));
        assert_eq!(ok("[10.0.0.5]"), hop("10.0.0.5", 25, false));
        assert_eq!(ok("[10.0.0.5]:587"), hop("10.0.0.5", 587, false));
        assert_eq!(
            ok("[mail.example.com]:smtp"),
            hop("mail.example.com", 25, false)
        );
        assert_eq!(ok("[2001:db8::1]:26"), hop("2001:db8::1", 26, false));
        assert_eq!(ok("[IPv6:2001:db8::1]"), hop("2001:db8::1", 25, false));
        assert_eq!(ok("  example.com "), hop("example.com", 25, true));
    }

    #[test]
    fn bad_nexthops() {
        let err = |s| Nexthop::parse(s).unwrap_err();
        assert_eq!(err(""), NexthopError::Empty);
        assert!(matches!(err("[10.0.0.5"), NexthopError::Brackets(_)));
        assert!(matches!(err("[10.0.0.5]x"), NexthopError::Brackets(_)));
        assert!(matches!(err("[]"), NexthopError::Brackets(_)));
        assert!(matches!(err("[a]]:25"), NexthopError::Brackets(_)));
        assert!(matches!(err("2001:db8::1"), NexthopError::Brackets(_)));
        assert!(matches!(err("example.com:"), NexthopError::BadPort(_)));
        assert!(matches!(err("example.com:0"), NexthopError::BadPort(_)));
        assert!(matches!(err("example.com:65536"), NexthopError::BadPort(_)));
        assert!(matches!(err("[::1]:x"), NexthopError::BadPort(_)));
        assert!(matches!(err(":25"), NexthopError::Brackets(_)));
    }

    #[test]
    fn mx_order_is_by_preference() {
        let name = |s: &str| Name::from_ascii(s).unwrap();
        for _ in 0..20 {
            let hosts: Vec<String> = order_mx(vec![
                (20, name("c.example.")),
                (10, name("a.example.")),
                (10, name("b.example.")),
                (30, name("d.example.")),
                (20, name("c.example.")),
            ])
            .into_iter()
            .map(|(_, host)| host)
            .collect();
            assert_eq!(hosts.len(), 4);
            let mut first_two = hosts[..2].to_vec();
            first_two.sort();
            assert_eq!(first_two, ["a.example", "b.example"]);
            assert_eq!(hosts[2..], ["c.example", "d.example"]);
        }
    }

    async fn resolve_any(nexthop: &Nexthop, dns: &Dns) -> Result<Vec<Target>, Status> {
        let policy = AddressPolicy {
            limit: 5,
            own: Vec::new(),
            ..AddressPolicy::default()
        };
        resolve(nexthop, dns, &policy).await
    }

    #[tokio::test]
    async fn own_addresses_on_port_25_loop_back() {
        let policy = AddressPolicy {
            limit: 5,
            own: vec!["192.0.2.1".parse().unwrap()],
            ..AddressPolicy::default()
        };
        let looped = resolve(
            &hop("192.0.2.1", 25, false),
            &Dns::Native(mailgate_dns::hosts::Hosts::default()),
            &policy,
        )
        .await
        .unwrap_err();
        assert_eq!(
            (looped.outcome, looped.dsn.as_str(), looped.reason.as_str()),
            (
                Outcome::Bounced,
                "5.4.6",
                "mail for 192.0.2.1 loops back to myself"
            )
        );
        // Another port of this host is a content filter, not a loop.
        assert!(
            resolve(
                &hop("192.0.2.1", 10025, false),
                &Dns::Native(mailgate_dns::hosts::Hosts::default()),
                &policy
            )
            .await
            .is_ok()
        );
    }

    /// inet_protocols = ipv4: a host's IPv6 addresses are not tried, a
    /// host with only IPv6 ones has none, an IPv6 literal is deferred.
    #[tokio::test]
    async fn addresses_of_a_version_turned_off_are_not_tried() {
        let policy = AddressPolicy {
            limit: 5,
            protocols: InetProtocols {
                ipv4: true,
                ipv6: false,
            },
            ..AddressPolicy::default()
        };
        let hosts = Dns::Native(mailgate_dns::hosts::Hosts::parse(
            "192.0.2.7 both.test\n2001:db8::7 both.test\n2001:db8::8 six.test\n",
        ));
        let both = resolve(&hop("both.test", 25, false), &hosts, &policy)
            .await
            .unwrap();
        let addrs: Vec<String> = both.iter().map(|t| t.addr.ip().to_string()).collect();
        assert_eq!(addrs, ["192.0.2.7"]);
        let six = resolve(&hop("six.test", 25, false), &hosts, &policy)
            .await
            .unwrap_err();
        assert_eq!(six.dsn, "4.4.3", "{six:?}");
        let literal = resolve(&hop("2001:db8::9", 25, false), &hosts, &policy)
            .await
            .unwrap_err();
        assert_eq!(
            (literal.outcome, literal.dsn.as_str()),
            (Outcome::Deferred, "4.4.4")
        );
        // With both versions on, both addresses.
        let all = resolve(
            &hop("both.test", 25, false),
            &hosts,
            &AddressPolicy {
                limit: 5,
                ..AddressPolicy::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(all.len(), 2);
    }

    #[tokio::test]
    async fn mx_and_address_lookups_against_a_local_server() {
        let port = crate::tests::dns_server().await;
        let resolver = mailgate_dns::resolver(&[format!("127.0.0.1:{port}")]).unwrap();
        let dns = Dns::Resolver(Box::new(resolver));
        let labels = |targets: Vec<Target>| targets.iter().map(Target::label).collect::<Vec<_>>();

        // Preference 10 first (either order), the host without an address
        // skipped.
        let mut got = labels(
            resolve_any(&hop("mx.test", 2525, true), &dns)
                .await
                .unwrap(),
        );
        got.sort();
        assert_eq!(
            got,
            ["a.mx.test[127.0.0.2]:2525", "b.mx.test[127.0.0.3]:2525"]
        );
        // No MX: the domain's own address. Brackets: no MX lookup at all.
        assert_eq!(
            labels(
                resolve_any(&hop("plain.test", 25, true), &dns)
                    .await
                    .unwrap()
            ),
            ["plain.test[127.0.0.4]:25"]
        );
        assert_eq!(
            labels(
                resolve_any(&hop("a.mx.test", 26, false), &dns)
                    .await
                    .unwrap()
            ),
            ["a.mx.test[127.0.0.2]:26"]
        );
        let null = resolve_any(&hop("null.test", 25, true), &dns)
            .await
            .unwrap_err();
        assert_eq!(
            (null.outcome, null.dsn.as_str()),
            (Outcome::Bounced, "5.1.10")
        );
        assert_eq!(
            null.reason,
            "Domain null.test does not accept mail (nullMX)"
        );
        let missing = resolve_any(&hop("nowhere.test", 25, true), &dns)
            .await
            .unwrap_err();
        assert_eq!(
            (missing.outcome, missing.dsn.as_str()),
            (Outcome::Bounced, "5.4.4")
        );
        assert_eq!(
            missing.reason,
            "Host or domain name not found. Name service error for name=nowhere.test type=MX: \
             Host not found"
        );
        let no_address = resolve_any(&hop("mx.test", 25, false), &dns)
            .await
            .unwrap_err();
        assert_eq!(no_address.outcome, Outcome::Bounced);
        // A server failure is temporary: deferred, not bounced.
        let failed = resolve_any(&hop("broken.test", 25, true), &dns)
            .await
            .unwrap_err();
        assert_eq!(
            (failed.outcome, failed.dsn.as_str()),
            (Outcome::Deferred, "4.4.3")
        );
    }

    #[tokio::test]
    async fn literals_need_no_dns() {
        let targets = resolve_any(
            &hop("192.0.2.1", 2525, false),
            &Dns::Native(mailgate_dns::hosts::Hosts::default()),
        )
        .await
        .unwrap();
        assert_eq!(targets[0].label(), "192.0.2.1[192.0.2.1]:2525");
        let refused = resolve_any(
            &hop("example.com", 25, true),
            &Dns::Native(mailgate_dns::hosts::Hosts::default()),
        )
        .await
        .unwrap_err();
        assert_eq!(refused.dsn, "4.4.3");
    }
}
