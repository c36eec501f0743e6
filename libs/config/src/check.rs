//! `mailgate check`: load everything the services will load and report every problem.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::clamd::ClamdTransfer;
use crate::error::{ConfigError, Diagnostic};
use crate::lists::{DomainList, NetworkList};
use crate::local::{LocalRecipients, is_passwd_table};
use crate::main_cf::{MainConfig, Override};
use crate::master_cf::MasterConfig;
use crate::restrictions::{LIST_PARAMETERS, Restrictions};
use crate::table::Table;
use crate::unimplemented::{self, Severity};

/// Parameters whose items are all lookup tables.
const TABLE_PARAMETERS: &[&str] = &[
    "relay_recipient_maps",
    "transport_maps",
    "header_checks",
    "body_checks",
    "mime_header_checks",
    "nested_header_checks",
    "milter_header_checks",
    "smtpd_milter_maps",
    "rbl_reply_maps",
    "greylist_whitelist_clients",
    "greylist_whitelist_recipients",
    "address_verify_transport_maps",
    "virtual_alias_maps",
    "canonical_maps",
    "sender_canonical_maps",
    "recipient_canonical_maps",
];

/// Parameters whose items are words or lookup tables (Postfix's string
/// lists): the tables must open.
const STRING_LIST_PARAMETERS: &[&str] = &["smtpd_forbidden_commands"];

/// What `check` found: errors stop the gateway from starting; warnings are
/// settings that are legal but worth knowing about.
#[derive(Debug, Default)]
pub struct Report {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// Checks master.cf, main.cf (with `command_line` settings, as
/// `mailgate -o` gives them), every service's `-o` overrides, every table
/// the configuration names, the domain and network lists, the restriction
/// lists (with the parser smtpd uses), and every set parameter that mailgate
/// does not implement.
pub fn check(config_dir: &Path, command_line: &[Override]) -> Report {
    let mut diagnostics = Vec::new();
    let master = match MasterConfig::load(config_dir) {
        Ok(m) => Some(m),
        Err(e) => {
            diagnostics.extend(e.into_diagnostics());
            None
        }
    };
    let references = master
        .as_ref()
        .map(MasterConfig::parameter_references)
        .unwrap_or_default();
    let main = match MainConfig::load_with_references(config_dir, &references)
        .and_then(|main| main.with_overrides(command_line))
    {
        Ok(c) => c,
        Err(e) => {
            diagnostics.extend(e.into_diagnostics());
            return Report {
                errors: diagnostics,
                warnings: Vec::new(),
            };
        }
    };
    let mut checker = Checker {
        seen: HashSet::new(),
        tables: HashSet::new(),
        diagnostics,
        warnings: Vec::new(),
    };
    checker.check_values(&main);
    for service in master.iter().flat_map(|m| m.services.iter()) {
        if service.overrides.is_empty() {
            continue;
        }
        match main.with_overrides(&service.overrides) {
            Ok(config) => checker.check_values(&config),
            Err(e) => checker.diagnostics.extend(e.into_diagnostics()),
        }
    }
    if let Some(master) = &master {
        checker.check_content_filter(&main, master);
        for service in &master.services {
            if let Ok(config) = main.with_overrides(&service.overrides) {
                checker.check_content_filter(&config, master);
            }
        }
        checker.check_content_scanner(&main, master);
        checker.check_tlskeys(&main, master);
        checker.check_verify_service(&main, master);
        checker
            .diagnostics
            .extend(crate::processes::problems(&main, master));
        checker.warnings.extend(crate::processes::warnings(
            &main,
            master,
            crate::processes::cores(),
        ));
    }
    Report {
        errors: checker.diagnostics,
        warnings: checker.warnings,
    }
}

/// inet_protocols as the master and relay read it, and inet_interfaces'
/// addresses of a version it turns off (the master would not start).
fn inet_problem(config: &MainConfig) -> Result<(), String> {
    let protocols = crate::InetProtocols::from_config(config)?;
    for item in config.list("inet_interfaces") {
        let bare = item.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<std::net::IpAddr>()
            && !protocols.allows(&ip)
        {
            return Err(format!(
                "inet_interfaces: {item} is of an IP version inet_protocols = {} turns off",
                config.get("inet_protocols")
            ));
        }
    }
    Ok(())
}

impl Checker {
    /// content_filter and receive_override_options, wherever set (once
    /// per place).
    fn check_content_filter(&mut self, config: &MainConfig, master: &MasterConfig) {
        for warning in crate::content_action::filter_warnings(config, master) {
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
        for (name, message) in crate::filter_check::problems(config, master) {
            let (file, line) = self.origin(config, name);
            if self.seen.insert((
                file.clone(),
                line,
                format!("filter:{name}"),
                message.clone(),
            )) {
                self.diagnostics.push(Diagnostic::new(&file, line, message));
            }
        }
    }

    /// content_scanner must name a Unix service of master.cf: otherwise
    /// every message would get a 4xx at run time.
    fn check_content_scanner(&mut self, main: &MainConfig, master: &MasterConfig) {
        let scanner = main.get("content_scanner");
        let scanner = scanner.trim();
        let served = master
            .services
            .iter()
            .any(|s| s.name == scanner && s.kind == crate::ServiceKind::Unix);
        if !scanner.is_empty() && !served {
            let (file, line) = main
                .origin("content_scanner")
                .map(|(f, l)| (f.to_path_buf(), l))
                .unwrap_or_else(|| (main.config_dir().join("main.cf"), 0));
            self.diagnostics.push(Diagnostic::new(
                &file,
                line,
                format!("content_scanner = {scanner}: master.cf has no unix service of that name"),
            ));
        }
        // DKIM and DMARC are checked by the scanner: without one they
        // would silently not happen.
        if scanner.is_empty() {
            for name in ["dkim_verify", "dmarc_verify"] {
                if main.bool(name)
                    && let Some((file, line)) = main.origin(name)
                {
                    self.diagnostics.push(Diagnostic::new(
                        file,
                        line,
                        format!("{name} = yes needs content_scanner: the scanner runs the check"),
                    ));
                }
            }
        }
        // Without an ARC seal over what the gateway changes, a Subject
        // tag breaks signatures for the internal server.
        if !scanner.is_empty()
            && main.bool("dkim_verify")
            && !main.bool("arc_sealing")
            && !main.get("spam_subject_tag").is_empty()
            && let Some((file, line)) = main.origin("dkim_verify")
        {
            self.warnings.push(Diagnostic::new(
                file,
                line,
                "dkim_verify = yes without arc_sealing: a spam_subject_tag put in the Subject \
                 breaks the sender's DKIM signature and ARC chain for the internal server; \
                 set arc_sealing = yes (with arc_seal_key) so that it sees this gateway's ARC \
                 seal over the change, or have it trust this gateway's Authentication-Results"
                    .to_string(),
            ));
        }
        // The spam rules' SPF, DKIM and DMARC results come from the
        // scanner's sender checks: without them those rules never hit.
        if !scanner.is_empty()
            && main.bool("spam_network_tests")
            && !main.bool("dkim_verify")
            && !main.bool("dmarc_verify")
            && let Some((file, line)) = main.origin("spam_network_tests")
        {
            self.warnings.push(Diagnostic::new(
                file,
                line,
                "spam_network_tests = yes: the SPF, DKIM and DMARC spam rules (SPF_PASS, \
                 DKIM_VALID, DMARC_REJECT, the auth welcomelists...) read the scanner's \
                 sender checks, which run with dkim_verify or dmarc_verify only: without \
                 them those rules never hit"
                    .to_string(),
            ));
        }
        // What the scanner would refuse to start with.
        for (name, allowed) in [
            ("virus_action", &["reject", "quarantine", "discard"][..]),
            ("banned_action", &["reject", "quarantine", "discard"]),
            ("spam_kill_action", &["reject", "quarantine", "discard"]),
            (
                "banned_unchecked_action",
                &["reject", "quarantine", "discard", "pass"],
            ),
        ] {
            let value = main.get(name);
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(value.trim())) {
                let (file, line) = main
                    .origin(name)
                    .map(|(f, l)| (f.to_path_buf(), l))
                    .unwrap_or_else(|| (main.config_dir().join("main.cf"), 0));
                self.diagnostics.push(Diagnostic::new(
                    &file,
                    line,
                    format!("{name} = {value}: expected {}", allowed.join(", ")),
                ));
            }
        }
    }
}

impl Checker {
    /// Certificates need the tlskeys service: without it smtpd could
    /// offer no TLS (and mail for `encrypt` would be refused).
    fn check_tlskeys(&mut self, main: &MainConfig, master: &MasterConfig) {
        let served = master
            .services
            .iter()
            .any(|s| s.name == "tlskeys" && s.kind == crate::ServiceKind::Unix && s.private);
        self.check_dkim_signing(main, served);
        self.check_arc_sealing(main, served);
        if served {
            return;
        }
        let needed = crate::tls_check::needs_tlskeys(main)
            || master.services.iter().any(|s| {
                main.with_overrides(&s.overrides)
                    .is_ok_and(|c| crate::tls_check::needs_tlskeys(&c))
            });
        if needed {
            self.diagnostics.push(Diagnostic::new(
                master_cf_path(main),
                0,
                "TLS certificates are configured, but master.cf runs no tlskeys service \
                 (the process that holds the private keys): add \
                 `tlskeys unix - - y - - tlskeys`",
            ));
        }
    }
}

impl Checker {
    /// dkim_signing_table and dkim_key_table as cleanup and tlskeys will
    /// read them; the keys live in tlskeys, which must run.
    fn check_dkim_signing(&mut self, main: &MainConfig, tlskeys_served: bool) {
        let (file, line) = main
            .origin("dkim_signing_table")
            .map(|(f, l)| (f.to_path_buf(), l))
            .unwrap_or_else(|| (main.config_dir().join("main.cf"), 0));
        let signing = match crate::sender_auth::Signing::load(main) {
            Ok(Some(signing)) => signing,
            Ok(None) => return,
            Err(e) => {
                self.diagnostics
                    .push(Diagnostic::new(&file, line, e.to_string()));
                return;
            }
        };
        if !tlskeys_served {
            self.diagnostics.push(Diagnostic::new(
                &file,
                line,
                "dkim_signing_table: the signing keys are held by the tlskeys service, \
                 which master.cf does not run: add `tlskeys unix - - y - - tlskeys`",
            ));
        }
        // tlskeys reads the files as root at start; one that does not
        // exist would stop it. (Their content is its to judge.)
        for key in &signing.keys {
            if !key.path.exists() {
                self.diagnostics.push(Diagnostic::new(
                    &file,
                    line,
                    format!(
                        "dkim_key_table key {}: {} does not exist",
                        key.name,
                        key.path.display()
                    ),
                ));
            }
        }
    }

    /// arc_sealing's settings as cleanup and tlskeys will read them: a key
    /// of dkim_key_table, dkim_verify on (with a scanner, checked above),
    /// and the tlskeys service that holds the key.
    fn check_arc_sealing(&mut self, main: &MainConfig, tlskeys_served: bool) {
        let (file, line) = main
            .origin("arc_sealing")
            .map(|(f, l)| (f.to_path_buf(), l))
            .unwrap_or_else(|| (main.config_dir().join("main.cf"), 0));
        let sealing = match crate::sender_auth::ArcSealing::load(main) {
            Ok(Some(sealing)) => sealing,
            Ok(None) => {
                if !main.get("arc_seal_key").trim().is_empty()
                    && let Some((file, line)) = main.origin("arc_seal_key")
                {
                    self.warnings.push(Diagnostic::new(
                        file,
                        line,
                        "arc_seal_key is set but arc_sealing = no: nothing is sealed".to_string(),
                    ));
                }
                return;
            }
            Err(e) => {
                self.diagnostics
                    .push(Diagnostic::new(&file, line, e.to_string()));
                return;
            }
        };
        if !tlskeys_served {
            self.diagnostics.push(Diagnostic::new(
                &file,
                line,
                "arc_sealing = yes: the sealing key is held by the tlskeys service, which \
                 master.cf does not run: add `tlskeys unix - - y - - tlskeys`",
            ));
        }
        if !sealing.key.path.exists() {
            self.diagnostics.push(Diagnostic::new(
                &file,
                line,
                format!(
                    "arc_seal_key {}: {} does not exist",
                    sealing.key.name,
                    sealing.key.path.display()
                ),
            ));
        }
    }

    /// reject_unverified_recipient and reject_unverified_sender ask the
    /// verify service: without it in master.cf every such check would
    /// answer 4xx.
    fn check_verify_service(&mut self, main: &MainConfig, master: &MasterConfig) {
        let smtpd_configs = master
            .services
            .iter()
            .filter(|s| s.command == "smtpd" && !s.overrides.is_empty())
            .filter_map(|s| main.with_overrides(&s.overrides).ok());
        for config in std::iter::once(main.clone()).chain(smtpd_configs) {
            let uses = Restrictions::load(&config).is_ok_and(|r| r.uses_address_verification());
            let name = config.get("address_verify_service_name");
            let served = master
                .services
                .iter()
                .any(|s| s.name == name && s.kind == crate::ServiceKind::Unix);
            if uses && !served {
                self.diagnostics.push(Diagnostic::new(
                    master_cf_path(main),
                    0,
                    format!(
                        "reject_unverified_recipient and reject_unverified_sender ask the \
                         address verification service, but master.cf has no unix service \
                         \"{name}\" (address_verify_service_name): add \
                         `{name} unix - - y - 1 verify`"
                    ),
                ));
                return;
            }
        }
    }
}

fn master_cf_path(main: &MainConfig) -> PathBuf {
    main.config_dir().join("master.cf")
}

struct Checker {
    /// (parameter origin, value) pairs already checked, so a table named in main.cf is
    /// not reported again for every service that inherits it.
    seen: HashSet<(PathBuf, usize, String, String)>,
    /// Table specs already opened.
    tables: HashSet<String>,
    diagnostics: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Checker {
    fn check_values(&mut self, config: &MainConfig) {
        let dir = config.config_dir();
        for name in TABLE_PARAMETERS {
            for spec in config.list(name) {
                self.table(config, name, &spec);
            }
        }
        for name in STRING_LIST_PARAMETERS {
            for item in config.list(name) {
                if item.contains(':') {
                    self.table(config, name, &item);
                }
            }
        }
        self.check_local(config);
        self.check_restrictions(config);
        self.check_milters(config);
        self.check_unimplemented(config);
        self.check_host_lookup(config);
        self.check_client_score(config);
        for (name, message) in crate::verify::problems(config) {
            let value = config.get(name);
            let (file, line) = self.origin(config, name);
            if self
                .seen
                .insert((file.clone(), line, format!("verify:{name}"), value))
            {
                self.diagnostics.push(Diagnostic::new(&file, line, message));
            }
        }
        for (name, message) in crate::tls_check::problems(config) {
            let value = config.get(&name);
            let (file, line) = self.origin(config, &name);
            if self
                .seen
                .insert((file.clone(), line, format!("tls:{name}"), value + &message))
            {
                let message = if message.starts_with(&name) {
                    message
                } else {
                    format!("{name}: {message}")
                };
                self.diagnostics.push(Diagnostic::new(&file, line, message));
            }
        }
        for warning in crate::content_action::table_warnings(config) {
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
        let parents = config.list("parent_domain_matches_subdomains");
        for name in ["relay_domains", "mydestination", "virtual_alias_domains"] {
            let listed = parents.iter().any(|p| p == name);
            let value = config.get(name);
            self.once(config, name, &value, |_| {
                DomainList::parse(&config.list(name), dir, listed).map(drop)
            });
        }
        for name in ["mynetworks", "smtpd_client_event_limit_exceptions"] {
            // The exceptions default to $mynetworks, checked already.
            if name != "mynetworks" && config.origin(name).is_none() {
                continue;
            }
            let value = config.get(name);
            self.once(config, name, &value, |_| {
                NetworkList::parse(&config.list(name), dir).map(drop)
            });
        }
        let value = config.get("debug_peer_list");
        let parents = config.list("parent_domain_matches_subdomains");
        let listed = parents.iter().any(|p| p == "debug_peer_list");
        self.once(config, "debug_peer_list", &value, |_| {
            crate::DebugPeers::load(config, dir, listed)
                .map(drop)
                .map_err(|problems| {
                    ConfigError::Invalid(problems.into_iter().map(Diagnostic::unplaced).collect())
                })
        });
        // What the master binds: inet_interfaces' addresses must be of a
        // version inet_protocols allows.
        let value = format!(
            "{} with {}",
            config.get("inet_protocols"),
            config.get("inet_interfaces")
        );
        self.once(config, "inet_protocols", &value, |_| {
            inet_problem(config).map_err(|e| ConfigError::Invalid(vec![Diagnostic::unplaced(e)]))
        });
        // Whether it fits depends on clamd_socket too (fildes needs a Unix socket).
        let value = format!(
            "{} with {}",
            config.get("clamd_transfer"),
            config.get("clamd_socket")
        );
        self.once(config, "clamd_transfer", &value, |_| {
            ClamdTransfer::from_main_cf(config)
                .map(drop)
                .map_err(|e| ConfigError::Invalid(vec![Diagnostic::unplaced(e.to_string())]))
        });
    }

    /// The restriction lists, parsed as smtpd parses them, and the guard
    /// against an open relay.
    fn check_restrictions(&mut self, config: &MainConfig) {
        let mut key = String::new();
        for (name, _) in LIST_PARAMETERS {
            key.push_str(&config.get(name));
            key.push('\n');
        }
        for name in config.list("smtpd_restriction_classes") {
            if config.is_known(&name) {
                key.push_str(&config.get(&name));
            }
            key.push('\n');
        }
        let (file, line) = self.origin(config, "smtpd_recipient_restrictions");
        if !self
            .seen
            .insert((file, line, "restrictions".to_string(), key))
        {
            return;
        }
        match Restrictions::load(config) {
            Ok(restrictions) if restrictions.is_open_relay() => {
                let name = if config.origin("smtpd_relay_restrictions").is_some() {
                    "smtpd_relay_restrictions"
                } else {
                    "smtpd_recipient_restrictions"
                };
                let (file, line) = self.origin(config, name);
                self.diagnostics.push(Diagnostic::new(
                    &file,
                    line,
                    "smtpd_relay_restrictions and smtpd_recipient_restrictions: specify at least \
                     one working instance of reject_unauth_destination, defer_unauth_destination, \
                     reject or defer (without one the server is an open relay)",
                ));
            }
            Ok(_) => {}
            Err(errors) => {
                for (name, error) in errors {
                    let (file, line) = self.origin(config, &name);
                    self.diagnostics
                        .push(Diagnostic::new(&file, line, format!("{name}: {error}")));
                }
            }
        }
    }

    /// alias_maps (in aliases(5) syntax, with only addresses as targets),
    /// local_recipient_maps, and what a gateway's local domains need.
    fn check_local(&mut self, config: &MainConfig) {
        let dir = config.config_dir();
        let alias_specs = config.list("alias_maps");
        for spec in &alias_specs {
            if self.tables.insert(format!("aliases {spec}")) {
                self.once(config, "alias_maps", spec, |spec| {
                    Table::open_aliases(spec, dir).map(drop)
                });
            }
        }
        for item in config.list("local_recipient_maps") {
            if !is_passwd_table(&item) && !alias_specs.contains(&item) {
                self.table(config, "local_recipient_maps", &item);
            }
        }
        let Ok(local) = LocalRecipients::from_config(config) else {
            return;
        };
        if config.list("mydestination").is_empty() {
            return;
        }
        let warn = |this: &mut Checker, name: &str, message: String| {
            let (file, line) = this.origin(config, name);
            if this
                .seen
                .insert((file.clone(), line, format!("local:{name}"), message.clone()))
            {
                this.warnings.push(Diagnostic::new(&file, line, message));
            }
        };
        let items = config.list("local_recipient_maps");
        if items.is_empty() {
            warn(
                self,
                "local_recipient_maps",
                "local_recipient_maps is empty: mail for any user in mydestination is \
                 accepted, and what alias_maps does not forward is then bounced by \
                 local_transport (backscatter)"
                    .to_string(),
            );
        } else if config.origin("local_recipient_maps").is_some()
            && items.iter().any(|i| is_passwd_table(i))
        {
            warn(
                self,
                "local_recipient_maps",
                "local_recipient_maps: unix:passwd.byname lists no one: mailgate has no \
                 system accounts; the local recipients are those alias_maps and the \
                 other tables list"
                    .to_string(),
            );
        }
        if !local.has_alias("postmaster") {
            warn(
                self,
                "mydestination",
                "mydestination: alias_maps forwards no postmaster: mail to postmaster in \
                 these domains is accepted (RFC 5321) and then bounced by local_transport; \
                 alias postmaster to an address inside"
                    .to_string(),
            );
        }
    }

    /// The client_score_* settings check_client_score uses.
    fn check_client_score(&mut self, config: &MainConfig) {
        if let Err(message) = crate::client_score::ClientScore::load(config) {
            let name = message
                .split([':', ' ', '('])
                .find(|w| w.starts_with("client_score_"))
                .unwrap_or("client_score_reject_level")
                .to_string();
            let (file, line) = self.origin(config, &name);
            if self
                .seen
                .insert((file.clone(), line, name.clone(), message.clone()))
            {
                self.diagnostics.push(Diagnostic::new(&file, line, message));
            }
        }
    }

    /// Every set parameter that mailgate accepts without implementing it.
    fn check_unimplemented(&mut self, config: &MainConfig) {
        for (name, _) in config.explicit() {
            let Some(entry) = unimplemented::find(&name) else {
                continue;
            };
            let value = config.get(&name);
            if entry
                .inert
                .iter()
                .any(|v| v.eq_ignore_ascii_case(value.trim()))
            {
                continue;
            }
            let (file, line) = self.origin(config, &name);
            if !self
                .seen
                .insert((file.clone(), line, name.clone(), value.clone()))
            {
                continue;
            }
            let diagnostic = Diagnostic::new(
                &file,
                line,
                format!(
                    "{name} = {value}: not implemented in mailgate: {}",
                    entry.why
                ),
            );
            match entry.severity {
                Severity::Error => self.diagnostics.push(diagnostic),
                Severity::Warning => self.warnings.push(diagnostic),
            }
        }
    }

    /// smtp_host_lookup: relay asks the DNS ("dns") or reads the hosts
    /// file ("native", or disable_dns_lookups); not one after the other.
    fn check_host_lookup(&mut self, config: &MainConfig) {
        let methods = config.list("smtp_host_lookup");
        let has = |m: &str| methods.iter().any(|x| x.eq_ignore_ascii_case(m));
        let (file, line) = self.origin(config, "smtp_host_lookup");
        if let Some(other) = methods
            .iter()
            .find(|m| !m.eq_ignore_ascii_case("dns") && !m.eq_ignore_ascii_case("native"))
        {
            self.diagnostics.push(Diagnostic::new(
                &file,
                line,
                format!("smtp_host_lookup: unknown method \"{other}\" (dns or native)"),
            ));
        } else if has("dns") && has("native") && !config.bool("disable_dns_lookups") {
            self.warnings.push(Diagnostic::new(
                &file,
                line,
                "smtp_host_lookup = dns, native: not implemented in mailgate: names are looked \
                 up in the DNS only, the hosts file is not asked after it"
                    .to_string(),
            ));
        }
    }

    fn origin(&self, config: &MainConfig, name: &str) -> (PathBuf, usize) {
        config.origin(name).map_or_else(
            || (config.config_dir().join("main.cf"), 0),
            |(f, l)| (f.to_path_buf(), l),
        )
    }

    /// Opens a table once per spec: defaults such as mime_header_checks = $header_checks
    /// name the same table again.
    fn table(&mut self, config: &MainConfig, name: &str, spec: &str) {
        if self.tables.insert(spec.to_string()) {
            let dir = config.config_dir();
            self.once(config, name, spec, |spec| Table::open(spec, dir).map(drop));
        }
    }

    /// Runs one check unless the same value from the same place was already checked,
    /// placing its diagnostics at the parameter's setting.
    /// smtpd_milters and non_smtpd_milters parse as the services will
    /// parse them, with main.cf's milter_* settings; so do the results of
    /// smtpd_milter_maps that are known before a look-up, and
    /// milter_macro_defaults.
    fn check_milters(&mut self, config: &MainConfig) {
        let invalid =
            |e: crate::milter::SpecError| ConfigError::Invalid(vec![Diagnostic::unplaced(e.0)]);
        for name in ["smtpd_milters", "non_smtpd_milters"] {
            let value = config.get(name);
            if value.trim().is_empty() {
                continue;
            }
            self.once(config, name, &value, |_| {
                crate::milter::from_config(config, name)
                    .map(drop)
                    .map_err(invalid)
            });
        }
        let value = config.get("smtpd_milter_maps");
        if !value.trim().is_empty() {
            let dir = config.config_dir();
            // Keyed apart from the tables' own check of the same value.
            let key = format!("results of {value}");
            self.once(config, "smtpd_milter_maps", &key, |_| {
                let defaults = crate::milter::defaults_from_config(config).map_err(invalid)?;
                for spec in config.list("smtpd_milter_maps") {
                    let Ok(table) = Table::open(&spec, dir) else {
                        continue; // reported with the other tables
                    };
                    for result in table.results().unwrap_or_default() {
                        crate::milter::parse_map_result(&result, &defaults).map_err(|e| {
                            ConfigError::Invalid(vec![Diagnostic::unplaced(format!("{spec}: {e}"))])
                        })?;
                    }
                }
                Ok(())
            });
        }
        let value = config.get("milter_macro_defaults");
        if !value.trim().is_empty() {
            self.once(config, "milter_macro_defaults", &value, |value| {
                crate::milter::parse_macro_defaults(value)
                    .map(drop)
                    .map_err(invalid)
            });
        }
    }

    fn once(
        &mut self,
        config: &MainConfig,
        name: &str,
        value: &str,
        check: impl FnOnce(&str) -> Result<(), ConfigError>,
    ) {
        let (file, line) = config.origin(name).map_or_else(
            || (config.config_dir().join("main.cf"), 0),
            |(f, l)| (f.to_path_buf(), l),
        );
        if !self
            .seen
            .insert((file.clone(), line, name.to_string(), value.to_string()))
        {
            return;
        }
        match check(value) {
            Ok(()) => {}
            Err(ConfigError::Io { path, source }) => self.diagnostics.push(Diagnostic::new(
                &file,
                line,
                format!("{name}: cannot read {}: {source}", path.display()),
            )),
            Err(ConfigError::Invalid(list)) => self
                .diagnostics
                .extend(list.into_iter().map(|d| d.place(&file, line, name))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER_CF: &str = "\
127.0.0.1:2525 inet n   -       y       -       100     smtpd
  -o smtpd_recipient_restrictions=check_recipient_access,hash:svc_access,$extra_checks
cleanup   unix  n       -       y       -       0       cleanup
relay     unix  -       -       y       -       -       relay
  -o smtp_helo_timeout=5s
anvil     unix  -       -       y       -       1       anvil
";

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn run(dir: &Path) -> Vec<String> {
        check(dir, &[])
            .errors
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    /// The errors of MASTER_CF (its table present) with this main.cf.
    fn errors_with(main_cf: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "master.cf", MASTER_CF);
        write(d, "svc_access", "example.com OK\n");
        write(d, "main.cf", main_cf);
        run(d)
    }

    /// Client certificates are not requested: asking for or requiring
    /// them is refused at its line, not silently skipped.
    #[test]
    fn client_certificate_settings_are_refused() {
        let errors = errors_with("smtpd_tls_ask_ccert = no\nsmtpd_tls_req_ccert = yes\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("main.cf:2:") && errors[0].contains("smtpd_tls_req_ccert"),
            "{errors:?}"
        );
    }

    #[test]
    fn inet_protocols_must_allow_the_addresses_listened_on() {
        assert_eq!(
            errors_with("inet_protocols = ipv4\ninet_interfaces = all\n"),
            Vec::<String>::new()
        );
        let errors =
            errors_with("inet_protocols = ipv4\ninet_interfaces = 127.0.0.1, 2001:db8::1\n");
        assert!(
            errors.len() == 1 && errors[0].contains("2001:db8::1 is of an IP version"),
            "{errors:?}"
        );
        let errors = errors_with("inet_protocols = ipx\n");
        assert!(
            errors.len() == 1 && errors[0].contains("unknown protocol \"ipx\""),
            "{errors:?}"
        );
    }

    #[test]
    fn debug_peer_list_entries_are_checked() {
        assert_eq!(
            errors_with("debug_peer_list = 127.0.0.1, .example.com\n"),
            Vec::<String>::new()
        );
        let errors = errors_with("debug_peer_list = /etc/peers\n");
        assert!(
            errors.len() == 1 && errors[0].contains("debug_peer_list"),
            "{errors:?}"
        );
    }

    #[test]
    fn good_configuration_has_no_diagnostics() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "master.cf", MASTER_CF);
        write(
            d,
            "main.cf",
            "myhostname = spam.example.com\n\
             relay_domains = example.com, hash:relay_domains\n\
             relay_recipient_maps = hash:relay_recipients\n\
             transport_maps = hash:transport\n\
             extra_checks = check_sender_access regexp:sender_checks\n\
             smtpd_helo_restrictions = check_helo_access pcre:helo_checks, permit\n\
             header_checks = regexp:header_checks\n\
             mynetworks = 127.0.0.0/8 cidr:mynetworks.cidr\n",
        );
        write(d, "relay_domains", "example.org OK\n");
        write(
            d,
            "relay_recipients",
            "usuario1@example.com OK\nusuario2@example.com OK\n",
        );
        write(d, "transport", "example.com smtp:[mail.example.com]\n");
        write(d, "svc_access", "spammer@ REJECT\n");
        write(d, "sender_checks", "/@example\\.com$/ REJECT spoofed\n");
        write(
            d,
            "helo_checks",
            "/^spam\\.example\\.com$/ REJECT You are not in the server room\n",
        );
        write(d, "header_checks", "/^Subject: retire early/ REJECT\n");
        write(d, "mynetworks.cidr", "192.168.40.2/32 OK\n");
        assert_eq!(run(d), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\n  -o smtpd_delay_reject=sometimes\n  -o smtpd_client_restrictions=check_client_access,hash:nowhere\n",
        );
        write(
            d,
            "main.cf",
            "transport_maps = hash:transport\n\
             relay_recipient_maps = nis:relay\n\
             header_checks = regexp:header_checks\n\
             mynetworks = 10.0.0.1/8\n\
             relay_domains = user@example.com\n",
        );
        write(d, "transport", "example.com\n");
        write(d, "header_checks", "/unterminated REJECT\n");
        let errs = run(d);
        let master = d.join("master.cf").display().to_string();
        let main = d.join("main.cf").display().to_string();
        let transport = d.join("transport").display().to_string();
        let headers = d.join("header_checks").display().to_string();
        let expected = [
            format!("{main}:2: relay_recipient_maps: unsupported table type \"nis\""),
            format!("{transport}:1: expected \"key whitespace value\""),
            format!("{headers}:1: missing closing '/'"),
            format!("{main}:5: relay_domains: \"user@example.com\" is not a domain name"),
            format!("{main}:4: mynetworks: bad network \"10.0.0.1/8\""),
            format!("{master}:2: smtpd_delay_reject: invalid boolean"),
        ];
        assert_eq!(errs.len(), expected.len(), "{errs:#?}");
        for (err, want) in errs.iter().zip(&expected) {
            assert!(
                err.starts_with(want.as_str()),
                "{err}\n  should start with\n{want}"
            );
        }

        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\n  -o smtpd_client_restrictions=check_client_access,hash:nowhere\n",
        );
        write(d, "main.cf", "\n");
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].starts_with(&format!(
            "{master}:2: smtpd_client_restrictions: hash:nowhere: cannot read {}",
            d.join("nowhere").display()
        )));
    }

    #[test]
    fn set_parameters_that_nothing_implements_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\n  -o smtpd_milters=inet:127.0.0.1:8891\nanvil unix - - y - 1 anvil\n",
        );
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\n\
             smtpd_tls_security_level = none\n\
             content_filter = smtp-amavis:[127.0.0.1]:10024\n\
             html_directory = /usr/share/doc/postfix/html\n\
             smtp_tls_wrappermode = yes\n",
        );
        let main = d.join("main.cf").display().to_string();
        let master = d.join("master.cf").display().to_string();
        let report = check(d, &[]);
        let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        let warnings: Vec<String> = report.warnings.iter().map(|e| e.to_string()).collect();
        // smtpd_milters is implemented: no longer named; content_filter is
        // checked against master.cf.
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("{main}:5: smtp_tls_wrappermode = yes"))),
            "{errors:#?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with(&format!(
                "{main}:3: content_filter = smtp-amavis:[127.0.0.1]:10024: master.cf has no unix service \"smtp-amavis\""
            ))),
            "{errors:#?}"
        );
        let _ = master;
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(warnings[0].starts_with(&format!("{main}:4: html_directory")));
    }

    #[test]
    fn milter_lists_are_parsed_and_what_is_missing_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\n  -o smtpd_milters=inet:127.0.0.1\n",
        );
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\n\
             non_smtpd_milters = unix:/var/run/milter.sock\n\
             milter_default_action = bounce\n",
        );
        let main = d.join("main.cf").display().to_string();
        let master = d.join("master.cf").display().to_string();
        let errors: Vec<String> = check(d, &[]).errors.iter().map(|e| e.to_string()).collect();
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("{main}:3: milter_default_action"))),
            "{errors:#?}"
        );
        // non_smtpd_milters, smtpd_milter_maps, milter_header_checks and
        // milter_macro_defaults are implemented: what is wrong in them is
        // named, with file and line.
        write(
            d,
            "milter_map",
            "127.0.0.2/32 DISABLE\n10.0.0.0/8 tcp:1.2.3.4:5\n",
        );
        write(d, "milter_header_checks", "/^X-Spam: yes/ REJECT\n");
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\n\
             non_smtpd_milters = unix:/var/run/milter.sock, inet:bad\n\
             smtpd_milter_maps = cidr:milter_map\n\
             milter_header_checks = regexp:milter_header_checks\n\
             milter_macro_defaults = auth_type=none, novalue\n",
        );
        let report = check(d, &[]);
        let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("{master}:2: smtpd_milters"))
                    && e.contains("milter inet:127.0.0.1: expected inet:host:port")),
            "{errors:#?}"
        );
        for (line, name, text) in [
            (
                2,
                "non_smtpd_milters",
                "milter inet:bad: expected inet:host:port",
            ),
            (
                3,
                "smtpd_milter_maps",
                "cidr:milter_map: milter tcp:1.2.3.4:5",
            ),
            (5, "milter_macro_defaults", "malformed entry \"novalue\""),
        ] {
            assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(&format!("{main}:{line}: {name}")) && e.contains(text)),
                "{name}: {errors:#?}"
            );
        }
        assert!(
            !report
                .warnings
                .iter()
                .any(|w| w.to_string().contains("milter")),
            "{:#?}",
            report.warnings
        );
    }

    #[test]
    fn content_filter_services_from_the_seeds_pass() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\n\
             amavisfeed unix - - n - 4 lmtp\n  -o lmtp_data_done_timeout=1200\n  \
             -o lmtp_send_xforward_command=yes\n  -o disable_dns_lookups=yes\n\
             smtp-amavis unix - - n - 2 smtp\n  -o smtp_data_done_timeout=1200\n  \
             -o smtp_send_xforward_command=yes\n\
             127.0.0.1:10025 inet n - n - - smtpd\n  -o content_filter=\n  \
             -o receive_override_options=no_header_body_checks,no_unknown_recipient_checks,no_milters,no_address_mappings\n  \
             -o smtpd_authorized_xforward_hosts=127.0.0.0/8\n\
             10026 inet n - n - - smtpd\n  -o content_filter=nowhere:[127.0.0.1]:1\n  \
             -o receive_override_options=no_fun\n",
        );
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\ncontent_filter = amavisfeed:[127.0.0.1]:10024\n",
        );
        let master = d.join("master.cf").display().to_string();
        let errors: Vec<String> = check(d, &[]).errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].starts_with(&format!(
            "{master}:14: content_filter = nowhere:[127.0.0.1]:1: master.cf has no unix service"
        )));
        assert!(errors[1].starts_with(&format!(
            "{master}:15: receive_override_options: unknown option \"no_fun\""
        )));
    }

    #[test]
    fn tls_and_auth_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "master.cf", "smtp inet n - y - - smtpd\n");
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\n\
             smtpd_tls_security_level = may\n\
             smtpd_tls_cert_file = /nonexistent/cert.pem\n\
             smtp_tls_security_level = dane\n\
             smtp_tls_mandatory_protocols = !TLSv1.2, !TLSv1.3\n\
             smtpd_sasl_auth_enable = yes\n\
             smtpd_sasl_type = cyrus\n",
        );
        let errors: Vec<String> = check(d, &[]).errors.iter().map(|e| e.to_string()).collect();
        let all = errors.join("\n");
        for expected in [
            "main.cf:4: smtp_tls_security_level = dane: not implemented by mailgate",
            "main.cf:5: smtp_tls_mandatory_protocols",
            "cannot read /nonexistent/cert.pem",
            "main.cf:7: smtpd_sasl_type: cyrus is not implemented",
            "master.cf: TLS certificates are configured, but master.cf runs no tlskeys service",
        ] {
            assert!(all.contains(expected), "{expected}\n{all}");
        }
        assert_eq!(errors.len(), 5, "{all}");
    }

    #[test]
    fn restriction_lists_use_smtpd_s_parser() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "master.cf", "smtp inet n - y - - smtpd\n");
        write(
            d,
            "main.cf",
            "smtpd_recipient_restrictions = permit_mynetworks,\n  reject_unknown_recipient_domain,\n  reject_unath_destination\n",
        );
        let main = d.join("main.cf").display().to_string();
        assert_eq!(
            run(d),
            [format!(
                "{main}:1: smtpd_recipient_restrictions: unknown restriction \"reject_unath_destination\""
            )]
        );
        write(
            d,
            "main.cf",
            "smtpd_relay_restrictions = permit_mynetworks\nsmtpd_recipient_restrictions = permit_auth_destination\n",
        );
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].starts_with(&format!("{main}:1: smtpd_relay_restrictions and")),
            "{errs:#?}"
        );
        assert!(errs[0].contains("open relay"));
        // A command-line override counts.
        let fixed = Override {
            name: "smtpd_recipient_restrictions".into(),
            value: "reject_unauth_destination".into(),
            origin: "command line".into(),
            line: 0,
        };
        assert!(check(d, &[fixed]).errors.is_empty());
    }

    #[test]
    fn scanner_actions_must_be_known() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "main.cf",
            "myhostname = gw.example.com\nbanned_unchecked_action = deliver\nbanned_action = pass\n",
        );
        write(dir.path(), "master.cf", "smtp inet n - y - - smtpd\n");
        let errs = run(dir.path());
        assert!(
            errs.iter().any(|e| e.contains(
                "main.cf:2: banned_unchecked_action = deliver: expected reject, quarantine, discard, pass"
            )),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("main.cf:3: banned_action = pass")),
            "{errs:?}"
        );
    }

    #[test]
    fn content_scanner_must_name_a_service() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "master.cf", "smtp inet n - y - - smtpd\n");
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\ncontent_scanner = scanner\n",
        );
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("main.cf:2: content_scanner = scanner: master.cf has no unix service")
        );
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\nscanner unix n - y - 8 scanner\n",
        );
        assert!(run(d).is_empty());
    }

    #[test]
    fn address_verification_needs_the_verify_service() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "master.cf", "smtp inet n - y - - smtpd\n");
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\nrelay_domains = example.com\n\
             smtpd_recipient_restrictions = reject_unauth_destination, reject_unverified_recipient\n",
        );
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("master.cf has no unix service \"verify\""),
            "{errs:?}"
        );
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\nverify unix - - y - 1 verify\n",
        );
        assert!(run(d).is_empty());
        // Only in one smtpd's -o settings, and with another service name.
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\nrelay_domains = example.com\n\
             address_verify_service_name = probe\n",
        );
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\n  -o smtpd_sender_restrictions=reject_unverified_sender\n\
             verify unix - - y - 1 verify\n",
        );
        assert!(run(d)[0].contains("no unix service \"probe\""));
    }

    #[test]
    fn clamd_transfer_must_be_known_and_fit_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let main = d.join("main.cf").display().to_string();
        write(d, "master.cf", "smtp inet n - y - - smtpd\n");
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\nclamd_socket = unix:/srv/clamd.ctl\nclamd_transfer = fdpass\n",
        );
        assert_eq!(
            run(d),
            [format!(
                "{main}:3: clamd_transfer: invalid value \"fdpass\" (expected auto, instream or fildes)"
            )]
        );
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\nclamd_transfer = fildes\nclamd_socket = inet:127.0.0.1:3310\n",
        );
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].starts_with(&format!("{main}:2: clamd_transfer: fildes passes"))
                && errs[0].contains("clamd_socket = inet:127.0.0.1:3310"),
            "{errs:#?}"
        );
        // A service's -o counts too; auto and instream fit both sockets.
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\nscanner unix n - y - 8 scanner\n  -o clamd_transfer=fildes\n",
        );
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\nclamd_socket = inet:127.0.0.1:3310\n",
        );
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("master.cf:3: clamd_transfer: fildes passes"),
            "{errs:#?}"
        );
        write(d, "master.cf", "smtp inet n - y - - smtpd\n");
        for transfer in ["auto", "instream", "INSTREAM"] {
            write(
                d,
                "main.cf",
                &format!(
                    "myhostname = gw.example.com\nclamd_socket = inet:127.0.0.1:3310\nclamd_transfer = {transfer}\n"
                ),
            );
            assert_eq!(run(d), Vec::<String>::new(), "{transfer}");
        }
    }

    #[test]
    fn missing_files_and_broken_main_cf() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let errs = run(d);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].contains("master.cf: cannot read"));
        assert!(errs[1].contains("main.cf: cannot read"));
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd -o smtpd_banner=$my_banner\n",
        );
        write(d, "main.cf", "my_banner = hello\nunused_thing = 1\n");
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].contains("main.cf:2: unknown parameter \"unused_thing\""));
    }

    #[test]
    fn local_domains_aliases_and_their_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "master.cf", MASTER_CF);
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\nmydestination = $myhostname\nalias_maps = hash:aliases\n",
        );
        write(d, "svc_access", "spammer@ REJECT\n");
        write(
            d,
            "aliases",
            "abuse: sec@inside.example\nbackup: /var/backup/mbox\n",
        );
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("aliases:2: alias \"backup\": \"/var/backup/mbox\": delivery to a file is not supported"),
            "{errs:#?}"
        );
        write(d, "aliases", "abuse: sec@inside.example\n");
        assert_eq!(run(d), Vec::<String>::new());
        let warnings: Vec<String> = check(d, &[])
            .warnings
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(
            warnings[0].contains("main.cf:2: mydestination: alias_maps forwards no postmaster")
        );
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\nmydestination = $myhostname\nalias_maps = hash:aliases\n\
             local_recipient_maps =\n",
        );
        write(d, "aliases", "postmaster: admin@inside.example\n");
        let warnings: Vec<String> = check(d, &[])
            .warnings
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(warnings[0].contains("main.cf:4: local_recipient_maps is empty"));
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\nmydestination = $myhostname\nalias_maps = hash:aliases\n\
             local_recipient_maps = proxy:unix:passwd.byname $alias_maps\n",
        );
        let warnings: Vec<String> = check(d, &[])
            .warnings
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(
            warnings[0]
                .contains("main.cf:4: local_recipient_maps: unix:passwd.byname lists no one")
        );
    }
}
