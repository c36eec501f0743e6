//! Next-hop routing, as Postfix's trivial-rewrite resolves it.

use std::path::PathBuf;

use crate::address::split_address;
use crate::error::{ConfigError, Diagnostic};
use crate::lists::DomainList;
use crate::main_cf::MainConfig;
use crate::table::{Table, open_tables, parent_keys, strip_extension};

/// Where a recipient's mail goes: a master.cf transport and its next hop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub transport: String,
    /// Such as "[10.0.0.5]:25", "[10.0.0.5]", "mx.example.com:2525", "example.com";
    /// for the error transport, the error text.
    pub nexthop: String,
}

/// A "transport:nexthop" value; either part may be empty.
#[derive(Clone, Debug)]
struct TransportValue {
    transport: String,
    nexthop: String,
}

impl TransportValue {
    fn parse(value: &str) -> TransportValue {
        let value = value.trim();
        let (transport, nexthop) = value.split_once(':').unwrap_or((value, ""));
        TransportValue {
            transport: transport.trim().to_string(),
            nexthop: nexthop.trim().to_string(),
        }
    }
}

/// The main.cf parameters a router reads: those of normal mail, or the
/// address_verify_* ones that Postfix lets probes be routed by (each
/// defaults to its normal counterpart).
struct Names {
    transport_maps: &'static str,
    relayhost: &'static str,
    default_transport: &'static str,
    relay_transport: &'static str,
    local_transport: &'static str,
}

const DELIVERY: Names = Names {
    transport_maps: "transport_maps",
    relayhost: "relayhost",
    default_transport: "default_transport",
    relay_transport: "relay_transport",
    local_transport: "local_transport",
};

const PROBES: Names = Names {
    transport_maps: "address_verify_transport_maps",
    relayhost: "address_verify_relayhost",
    default_transport: "address_verify_default_transport",
    relay_transport: "address_verify_relay_transport",
    local_transport: "address_verify_local_transport",
};

/// Resolves recipients to routes.
#[derive(Clone, Debug)]
pub struct Router {
    transport_maps: Vec<Table>,
    relay_domains: DomainList,
    mydestination: DomainList,
    default_transport: TransportValue,
    relay_transport: TransportValue,
    local_transport: TransportValue,
    relayhost: String,
    recipient_delimiter: Option<char>,
    transport_parent_bare: bool,
    myorigin: String,
}

impl Router {
    /// Opens transport_maps, relay_domains and mydestination.
    pub fn new(config: &MainConfig) -> Result<Router, ConfigError> {
        Router::with_names(config, &DELIVERY)
    }

    /// The router of address verification probes: the same, with
    /// address_verify_transport_maps, address_verify_relayhost and the
    /// address_verify_*_transport parameters in place of the normal ones.
    pub fn for_probes(config: &MainConfig) -> Result<Router, ConfigError> {
        Router::with_names(config, &PROBES)
    }

    fn with_names(config: &MainConfig, names: &Names) -> Result<Router, ConfigError> {
        let dir = config.config_dir();
        let parents = config.list("parent_domain_matches_subdomains");
        let listed = |name: &str| parents.iter().any(|p| p == name);
        let mut diagnostics = Vec::new();
        let mut place = |name: &str, e: ConfigError| {
            let (file, line) = config
                .origin(name)
                .map_or_else(|| (dir.join("main.cf"), 0), |(f, l)| (f.to_path_buf(), l));
            diagnostics.extend(
                e.into_diagnostics()
                    .into_iter()
                    .map(|d: Diagnostic| d.place(&file, line, name)),
            );
        };
        let transport_maps = open_tables(&config.list(names.transport_maps), dir)
            .map_err(|e| place(names.transport_maps, e))
            .unwrap_or_default();
        let relay_domains =
            DomainList::parse(&config.list("relay_domains"), dir, listed("relay_domains"))
                .map_err(|e| place("relay_domains", e));
        let mydestination =
            DomainList::parse(&config.list("mydestination"), dir, listed("mydestination"))
                .map_err(|e| place("mydestination", e));
        let (Ok(relay_domains), Ok(mydestination), true) =
            (relay_domains, mydestination, diagnostics.is_empty())
        else {
            return Err(ConfigError::Invalid(diagnostics));
        };
        Ok(Router {
            transport_maps,
            relay_domains,
            mydestination,
            default_transport: TransportValue::parse(&config.get(names.default_transport)),
            relay_transport: TransportValue::parse(&config.get(names.relay_transport)),
            local_transport: TransportValue::parse(&config.get(names.local_transport)),
            relayhost: config.get(names.relayhost),
            recipient_delimiter: config.get("recipient_delimiter").chars().next(),
            transport_parent_bare: listed("transport_maps"),
            myorigin: config.get("myorigin").to_lowercase(),
        })
    }

    /// The route for one recipient: transport_maps first (transport(5) order), then the
    /// domain's class: mydestination (local_transport), relay_domains (relay_transport)
    /// or anything else (default_transport).
    pub fn route(&self, recipient: &str) -> Route {
        let (local, domain) = match split_address(recipient) {
            Some((local, domain)) => (local, domain.trim_end_matches('.').to_string()),
            // An unqualified address belongs to $myorigin, as Postfix appends it.
            None => (recipient, self.myorigin.clone()),
        };
        let class_default = self.class_route(&domain);
        let Some(found) = self.lookup_transport(recipient, local, &domain) else {
            return class_default;
        };
        let value = TransportValue::parse(&found);
        match (value.transport.is_empty(), value.nexthop.is_empty()) {
            // ":" means "change nothing": the class's own transport and next hop.
            (true, true) => class_default,
            (true, false) => Route {
                transport: class_default.transport,
                nexthop: value.nexthop,
            },
            (false, true) => Route {
                transport: value.transport,
                nexthop: domain,
            },
            (false, false) => Route {
                transport: value.transport,
                nexthop: value.nexthop,
            },
        }
    }

    /// The route of a recipient of a message with a content filter
    /// (content_filter or FILTER, `transport:nexthop`), which replaces the
    /// recipient's own, as Postfix's qmgr does. Without a next hop, the
    /// recipient's domain is the destination.
    pub fn filter_route(&self, filter: &str, recipient: &str) -> Route {
        let value = TransportValue::parse(filter);
        let nexthop = if value.nexthop.is_empty() {
            match split_address(recipient) {
                Some((_, domain)) => domain.trim_end_matches('.').to_string(),
                None => self.myorigin.clone(),
            }
        } else {
            value.nexthop
        };
        Route {
            transport: value.transport,
            nexthop,
        }
    }

    fn class_route(&self, domain: &str) -> Route {
        let (class, use_relayhost) = if self.mydestination.matches(domain) {
            (&self.local_transport, false)
        } else if self.relay_domains.matches(domain) {
            (&self.relay_transport, true)
        } else {
            (&self.default_transport, true)
        };
        // Postfix: the transport's own next hop, then relayhost, then the domain.
        let nexthop = if !class.nexthop.is_empty() {
            class.nexthop.clone()
        } else if use_relayhost && !self.relayhost.is_empty() {
            self.relayhost.clone()
        } else {
            domain.to_string()
        };
        Route {
            transport: class.transport.clone(),
            nexthop,
        }
    }

    /// transport(5) search order: the full address (with, then without the extension),
    /// the domain, its parents, then "*". Pattern tables see only the full address.
    fn lookup_transport(&self, recipient: &str, local: &str, domain: &str) -> Option<String> {
        if self.transport_maps.is_empty() {
            return None;
        }
        let mut keys = vec![format!("{local}@{domain}")];
        if let Some(base) = strip_extension(local, self.recipient_delimiter) {
            keys.push(format!("{base}@{domain}"));
        }
        keys.push(domain.to_string());
        keys.extend(parent_keys(domain, self.transport_parent_bare));
        keys.push("*".to_string());
        for (i, key) in keys.iter().enumerate() {
            for table in &self.transport_maps {
                let found = if table.is_pattern_table() {
                    if i == 0 {
                        table.lookup(recipient)
                    } else {
                        None
                    }
                } else {
                    table.lookup(key)
                };
                if found.is_some() {
                    return found;
                }
            }
        }
        None
    }

    /// Files whose change should rebuild the router.
    pub fn source_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .transport_maps
            .iter()
            .flat_map(Table::source_files)
            .collect();
        files.extend(self.relay_domains.source_files());
        files.extend(self.mydestination.source_files());
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn router(dir: &Path, main_cf: &str) -> Router {
        let config = MainConfig::parse(main_cf, &dir.join("main.cf"), dir, &[]).unwrap();
        Router::new(&config).unwrap()
    }

    fn route(transport: &str, nexthop: &str) -> Route {
        Route {
            transport: transport.into(),
            nexthop: nexthop.into(),
        }
    }

    #[test]
    fn content_filter_replaces_every_route() {
        let dir = tempfile::tempdir().unwrap();
        let r = router(
            dir.path(),
            "relay_domains = example.com\nrelayhost = [mail.isp.tld]\nmyorigin = example.net\n",
        );
        let filter = "smtp-amavis:[127.0.0.1]:10024";
        for rcpt in ["a@example.com", "b@other.org", "postmaster"] {
            assert_eq!(
                r.filter_route(filter, rcpt),
                route("smtp-amavis", "[127.0.0.1]:10024")
            );
        }
        assert_eq!(
            r.filter_route("amavisfeed:", "a@Example.com."),
            route("amavisfeed", "example.com")
        );
        assert_eq!(
            r.filter_route("scan", "postmaster"),
            route("scan", "example.net")
        );
    }

    #[test]
    fn defaults_without_tables() {
        let dir = tempfile::tempdir().unwrap();
        let r = router(dir.path(), "relay_domains = example.com\n");
        assert_eq!(r.route("a@example.com"), route("relay", "example.com"));
        assert_eq!(
            r.route("a@sub.example.com"),
            route("relay", "sub.example.com")
        );
        assert_eq!(r.route("a@Other.ORG"), route("smtp", "other.org"));
        let r = router(
            dir.path(),
            "relay_domains = example.com\nrelayhost = [mail.isp.tld]\nmydestination = localhost\n",
        );
        assert_eq!(r.route("a@other.org"), route("smtp", "[mail.isp.tld]"));
        assert_eq!(r.route("a@example.com"), route("relay", "[mail.isp.tld]"));
        assert_eq!(
            r.route("root@localhost"),
            route("error", "local mail delivery is disabled")
        );
        let r = router(
            dir.path(),
            "default_transport = smtp:[10.0.0.9]:2525\nrelayhost = ignored\nmyorigin = example.net\n",
        );
        assert_eq!(r.route("a@other.org"), route("smtp", "[10.0.0.9]:2525"));
        assert_eq!(r.route("postmaster"), route("smtp", "[10.0.0.9]:2525"));
        assert!(r.source_files().is_empty());
    }

    #[test]
    fn transport_maps_order_and_values() {
        let dir = tempfile::tempdir().unwrap();
        // Seed 002's transport table plus the transport(5) forms.
        std::fs::write(
            dir.path().join("transport"),
            "example.com smtp:[mail.example.com]\n\
             boss@example.com smtp:[10.0.0.5]:25\n\
             list@example.com discard:\n\
             .example.com relay:[sub-mx.example.com]\n\
             old.example.org error:5.1.1 domain retired\n\
             keep.example.org :\n\
             hop.example.org :[10.1.1.1]\n\
             bare.example.org lmtp\n\
             joor.net smtp:10.138.0.2:25\n",
        )
        .unwrap();
        let r = router(
            dir.path(),
            "transport_maps = hash:transport\nrelay_domains = example.com example.org\nrecipient_delimiter = +\nrelayhost = [isp]\n",
        );
        assert_eq!(
            r.route("u@example.com"),
            route("smtp", "[mail.example.com]")
        );
        assert_eq!(r.route("Boss@Example.com"), route("smtp", "[10.0.0.5]:25"));
        assert_eq!(
            r.route("boss+x@example.com"),
            route("smtp", "[10.0.0.5]:25")
        );
        assert_eq!(r.route("list@example.com"), route("discard", "example.com"));
        assert_eq!(
            r.route("u@a.b.example.com"),
            route("relay", "[sub-mx.example.com]")
        );
        assert_eq!(
            r.route("u@old.example.org"),
            route("error", "5.1.1 domain retired")
        );
        assert_eq!(r.route("u@keep.example.org"), route("relay", "[isp]"));
        assert_eq!(r.route("u@hop.example.org"), route("relay", "[10.1.1.1]"));
        assert_eq!(
            r.route("u@bare.example.org"),
            route("lmtp", "bare.example.org")
        );
        assert_eq!(r.route("u@joor.net"), route("smtp", "10.138.0.2:25"));
        assert_eq!(r.route("u@elsewhere.net"), route("smtp", "[isp]"));
        assert_eq!(r.source_files(), vec![dir.path().join("transport")]);
    }

    #[test]
    fn wildcard_pattern_tables_and_bare_parents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t"),
            "* smtp:[outbound.example.com]\nexample.com :\nparent.org smtp:[p]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("re"), "/^vip@/ smtp:[vip.example.com]\n").unwrap();
        let r = router(dir.path(), "transport_maps = regexp:re, hash:t\n");
        assert_eq!(r.route("u@example.com"), route("smtp", "example.com"));
        assert_eq!(
            r.route("u@any.net"),
            route("smtp", "[outbound.example.com]")
        );
        assert_eq!(r.route("vip@any.net"), route("smtp", "[vip.example.com]"));
        assert_eq!(
            r.route("u@x.parent.org"),
            route("smtp", "[outbound.example.com]")
        );
        let r = router(
            dir.path(),
            "transport_maps = hash:t\nparent_domain_matches_subdomains = transport_maps\n",
        );
        assert_eq!(r.route("u@x.parent.org"), route("smtp", "[p]"));
    }

    #[test]
    fn probes_follow_mail_unless_the_address_verify_parameters_say_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "example.com smtp:[10.0.0.5]:25\n").unwrap();
        let main_cf = "transport_maps = hash:t\nrelay_domains = example.com\nrelayhost = [isp]\n";
        let config =
            MainConfig::parse(main_cf, &dir.path().join("main.cf"), dir.path(), &[]).unwrap();
        let mail = Router::new(&config).unwrap();
        let probes = Router::for_probes(&config).unwrap();
        for address in ["u@example.com", "u@other.org", "u@sub.example.com"] {
            assert_eq!(probes.route(address), mail.route(address), "{address}");
        }
        let main_cf = format!(
            "{main_cf}address_verify_relayhost =\naddress_verify_transport_maps =\n\
             address_verify_default_transport = direct\n"
        );
        let config =
            MainConfig::parse(&main_cf, &dir.path().join("main.cf"), dir.path(), &[]).unwrap();
        let probes = Router::for_probes(&config).unwrap();
        assert_eq!(probes.route("u@example.com"), route("relay", "example.com"));
        assert_eq!(probes.route("u@other.org"), route("direct", "other.org"));
    }

    #[test]
    fn errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let config = MainConfig::parse(
            "\ntransport_maps = nis:transport\nrelay_domains = bad@domain\n",
            Path::new("main.cf"),
            dir.path(),
            &[],
        )
        .unwrap();
        let errs: Vec<String> = Router::new(&config)
            .unwrap_err()
            .into_diagnostics()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("main.cf:2: transport_maps: unsupported table type \"nis\""));
        assert!(
            errs[1].starts_with("main.cf:3: relay_domains: \"bad@domain\" is not a domain name")
        );
    }
}
