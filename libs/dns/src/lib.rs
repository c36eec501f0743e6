//! DNS for the services that need it (smtpd's client checks, relay's MX
//! routing): the resolver built once from main.cf before the sandbox, and
//! lookups whose answers say clearly whether a name does not exist (a
//! permanent answer) or could not be looked up (a temporary one). Callers
//! decide what each means; none of them may treat "could not look up" as
//! "nothing there".
//!
//! The resolver reads `dns_nameservers`, or `/etc/resolv.conf` when that is
//! empty, at construction time and opens no socket until the first query, so
//! it can be built before chroot. The resolver never reads the hosts file;
//! the services that should (as Postfix does through the C library) read it
//! with [`hosts`] before the sandbox.

pub mod hosts;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use std::sync::Arc;

use futures_util::StreamExt;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsHandle, NetError};
use hickory_resolver::proto::op::{DnsRequestOptions, Query};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};

pub use hickory_resolver::TokioResolver;

/// Why the resolver could not be built; each names what to fix.
#[derive(Debug)]
pub enum SetupError {
    /// A dns_nameservers entry that is neither `ip` nor `ip:port`.
    Nameserver(String),
    /// /etc/resolv.conf could not be read or names no server.
    ResolvConf(String),
    Resolver(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Nameserver(v) => write!(
                f,
                "dns_nameservers: \"{v}\" is not an address or address:port \
                 (write IPv6 with a port as [address]:port)"
            ),
            SetupError::ResolvConf(e) => write!(
                f,
                "cannot use /etc/resolv.conf ({e}); set dns_nameservers in main.cf"
            ),
            SetupError::Resolver(e) => write!(f, "cannot set up the DNS resolver: {e}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// What a lookup that found nothing found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN): a permanent answer.
    NotFound,
    /// The name exists but has no record of the type asked (NODATA):
    /// permanent too.
    NoData,
    /// The name cannot be a DNS name (empty label, too long...): permanent.
    Malformed(String),
    /// No answer could be had (timeout, SERVFAIL, REFUSED, network error):
    /// try again later.
    TempFail(String),
}

impl DnsError {
    /// NXDOMAIN, NODATA or a malformed name: the answer will not change on
    /// retry.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, DnsError::TempFail(_))
    }
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::NotFound => f.write_str("Host not found"),
            DnsError::NoData => f.write_str("No address associated with hostname"),
            DnsError::Malformed(why) => write!(f, "Malformed name ({why})"),
            DnsError::TempFail(why) => write!(f, "Host not found, try again ({why})"),
        }
    }
}

/// One MX record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// Without the trailing dot; empty for the root ("." of a null MX).
    pub exchange: String,
}

/// The resolver. Cheap to share (`&Dns` across sessions); hickory caches
/// answers, positive and negative, for their TTLs.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    /// The same servers without hickory's RFC 6761 special cases, which
    /// answer every loopback PTR query with "localhost" without asking:
    /// a client on a loopback address gets the name the DNS gives it, as
    /// Postfix's resolver (without /etc/hosts) would.
    raw: NameServerPool<TokioRuntimeProvider>,
}

impl Dns {
    /// From dns_nameservers (`ip`, `ip:port`, `[ip]:port`), or
    /// /etc/resolv.conf (its timeout and attempts options included) when
    /// the list is empty.
    pub fn new(nameservers: &[String]) -> Result<Dns, SetupError> {
        let (config, opts) = config(nameservers)?;
        let tls = TlsConfig::new().map_err(|e| SetupError::Resolver(e.to_string()))?;
        let raw = NameServerPool::from_config(
            config.name_servers().to_vec(),
            Arc::new(PoolContext::new(opts.clone(), tls)),
            TokioRuntimeProvider::default(),
        );
        Ok(Dns {
            resolver: build(config, opts)?,
            raw,
        })
    }

    /// The underlying resolver, for callers that need a record type this
    /// module does not wrap.
    pub fn resolver(&self) -> &TokioResolver {
        &self.resolver
    }

    /// PTR names of an address, without trailing dots.
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let names: Vec<String> = if ip.is_loopback() {
            let query = Query::query(Name::from(ip), RecordType::PTR);
            let response = self
                .raw
                .lookup(query, DnsRequestOptions::default())
                .next()
                .await
                .ok_or_else(|| DnsError::TempFail("no answer".into()))?
                .map_err(classify)?;
            let response = hickory_resolver::net::DnsError::from_response(response)
                .map_err(|e| classify(e.into()))?;
            ptr_names(&response.answers)
        } else {
            let lookup = self
                .resolver
                .reverse_lookup(Name::from(ip))
                .await
                .map_err(classify)?;
            ptr_names(lookup.answers())
        };
        non_empty(names)
    }

    /// A and AAAA addresses of a host.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let name = dns_name(host)?;
        let lookup = self.resolver.lookup_ip(name).await.map_err(classify)?;
        non_empty(lookup.iter().collect())
    }

    /// A records only: DNSBL answers (127.0.0.N) are IPv4.
    pub async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        let name = dns_name(name)?;
        let lookup = self.resolver.ipv4_lookup(name).await.map_err(classify)?;
        non_empty(
            lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect(),
        )
    }

    /// MX records, in the order the server gave them.
    pub async fn mx(&self, domain: &str) -> Result<Vec<Mx>, DnsError> {
        let name = dns_name(domain)?;
        let lookup = self.resolver.mx_lookup(name).await.map_err(classify)?;
        non_empty(
            lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some(Mx {
                        preference: mx.preference,
                        exchange: text_of(&mx.exchange),
                    }),
                    _ => None,
                })
                .collect(),
        )
    }

    /// NS host names of a zone.
    pub async fn ns(&self, domain: &str) -> Result<Vec<String>, DnsError> {
        let name = dns_name(domain)?;
        let lookup = self.resolver.ns_lookup(name).await.map_err(classify)?;
        non_empty(
            lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::NS(ns) => Some(text_of(&ns.0)),
                    _ => None,
                })
                .collect(),
        )
    }

    /// TXT records, each one's strings joined.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let name = dns_name(name)?;
        let lookup = self.resolver.txt_lookup(name).await.map_err(classify)?;
        non_empty(
            lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect(),
        )
    }
}

fn ptr_names(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(ptr) => Some(text_of(&ptr.0)),
            _ => None,
        })
        .collect()
}

fn non_empty<T>(items: Vec<T>) -> Result<Vec<T>, DnsError> {
    if items.is_empty() {
        Err(DnsError::NoData)
    } else {
        Ok(items)
    }
}

/// A fully qualified name: resolv.conf search domains must never turn a
/// missing domain into a host in the local domain.
pub fn dns_name(host: &str) -> Result<Name, DnsError> {
    if host.is_empty() {
        return Err(DnsError::Malformed("empty name".to_string()));
    }
    let mut name = Name::from_utf8(host).map_err(|e| DnsError::Malformed(e.to_string()))?;
    name.set_fqdn(true);
    Ok(name)
}

/// A name as text, without the root's trailing dot.
fn text_of(name: &Name) -> String {
    let mut text = name.to_utf8();
    if text.ends_with('.') {
        text.pop();
    }
    text
}

/// NXDOMAIN and NODATA are answers; everything else (timeouts, SERVFAIL,
/// REFUSED, I/O) means the question is still open.
pub fn classify(error: NetError) -> DnsError {
    if error.is_nx_domain() {
        DnsError::NotFound
    } else if error.is_no_records_found() {
        DnsError::NoData
    } else {
        DnsError::TempFail(error.to_string())
    }
}

/// Builds the resolver from dns_nameservers, or /etc/resolv.conf when that
/// is empty. No sockets are opened here.
pub fn resolver(nameservers: &[String]) -> Result<TokioResolver, SetupError> {
    let (config, opts) = config(nameservers)?;
    build(config, opts)
}

fn build(config: ResolverConfig, opts: ResolverOpts) -> Result<TokioResolver, SetupError> {
    hickory_resolver::Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| SetupError::Resolver(e.to_string()))
}

/// The servers and options: dns_nameservers, or /etc/resolv.conf.
fn config(nameservers: &[String]) -> Result<(ResolverConfig, ResolverOpts), SetupError> {
    let (config, mut opts) = if nameservers.is_empty() {
        let (system, opts) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| SetupError::ResolvConf(e.to_string()))?;
        if system.name_servers().is_empty() {
            return Err(SetupError::ResolvConf("no nameserver line".into()));
        }
        // Search domains are dropped: every query is for a fully qualified
        // name.
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
    Ok((config, opts))
}

/// `ip`, `ip:port`, `[ip]` or `[ip]:port`: UDP with TCP fallback, port 53
/// unless given.
pub fn nameserver(entry: &str) -> Result<NameServerConfig, SetupError> {
    let bad = || SetupError::Nameserver(entry.to_string());
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
                matches!(nameserver(bad), Err(SetupError::Nameserver(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_are_fully_qualified_and_checked() {
        assert!(dns_name("example.com").unwrap().is_fqdn());
        assert!(matches!(dns_name(""), Err(DnsError::Malformed(_))));
        assert!(matches!(dns_name("a..b"), Err(DnsError::Malformed(_))));
        assert!(DnsError::NotFound.is_permanent());
        assert!(!DnsError::TempFail("timeout".into()).is_permanent());
    }

    /// A server that answers nothing: every lookup is a temporary failure,
    /// never "not found".
    #[test]
    fn an_unreachable_server_is_a_temporary_failure() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A bound socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let mut dns = Dns::new(&[format!("127.0.0.1:{port}")]).unwrap();
        // Keep the test short: one quick attempt.
        let mut opts = ResolverOpts::default();
        opts.timeout = std::time::Duration::from_millis(200);
        opts.attempts = 1;
        let servers = vec![nameserver(&format!("127.0.0.1:{port}")).unwrap()];
        dns.resolver = hickory_resolver::Resolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .unwrap();
        let result = runtime.block_on(dns.a("2.0.0.127.zen.example"));
        assert!(matches!(result, Err(DnsError::TempFail(_))), "{result:?}");
        let result = runtime.block_on(dns.ptr("192.0.2.1".parse().unwrap()));
        assert!(matches!(result, Err(DnsError::TempFail(_))), "{result:?}");
    }
}
