//! Everything smtpd takes from the configuration, read and checked once at
//! start-up, before the sandbox closes the filesystem: typed limits, the
//! lists and tables, and the parsed restriction lists.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Arc;

use mailgate_config::client_score::ClientScore;
use mailgate_config::restrictions::{ListError, Restriction, Restrictions};
use mailgate_config::sender_auth::SpfPolicy;
use mailgate_config::{
    DomainList, LocalRecipients, MainConfig, NetworkList, Override, Rewriting, Table,
};
use mailgate_dns::Dns;
use mailgate_dns::hosts::NameSources;
use mailgate_tls::protocol::SERVICE as TLSKEYS_SERVICE;
use mailgate_tls::server::ServerTls;

use crate::auth::Sasl;
use crate::policy::verify::VerifySettings;
use mailgate_policy::{PolicyClient, PolicyService};

/// RFC 5321 section 4.5.3.1.4: a server must accept command lines of 512
/// octets, whatever line_length_limit says.
const MIN_LINE_LENGTH: usize = 512;

/// The reply codes the restrictions use, from their *_code parameters.
#[derive(Clone, Copy, Debug)]
pub struct Codes {
    pub reject: u16,
    pub defer: u16,
    pub relay: u16,
    pub map_reject: u16,
    pub map_defer: u16,
    pub unknown_relay_recipient: u16,
    pub unknown_virtual_alias: u16,
    pub unknown_local_recipient: u16,
    pub unknown_client: u16,
    pub unknown_hostname: u16,
    pub unknown_address: u16,
    pub non_fqdn: u16,
    pub invalid_hostname: u16,
    pub multi_recipient_bounce: u16,
    pub plaintext: u16,
    pub maps_rbl: u16,
}

/// smtpd_forbidden_commands: words, and tables whose keys are words.
#[derive(Clone, Debug, Default)]
pub struct ForbiddenCommands {
    words: Vec<String>,
    tables: Vec<Table>,
}

impl ForbiddenCommands {
    pub fn matches(&self, word: &str) -> bool {
        self.words.iter().any(|w| w.eq_ignore_ascii_case(word))
            || self.tables.iter().any(|t| t.lookup(word).is_some())
    }
}

/// smtpd_forbid_bare_newline: only <CR><LF>.<CR><LF> ever ends DATA; what
/// else happens to a bare LF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareNewline {
    Normalize,
    /// Normalize and note it in the disconnect line.
    Note,
    /// Refuse the command or message.
    Reject,
}

/// What a DNS lookup that fails does to a restriction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TempfailAction {
    /// 4xx unless a later restriction rejects for good.
    DeferIfPermit,
    /// 4xx at once.
    Defer,
    /// Go on as if not listed (rbl_tempfail_action only; Postfix's way).
    Dunno,
}

impl TempfailAction {
    pub(crate) fn from(value: &str) -> TempfailAction {
        match value.to_ascii_lowercase().as_str() {
            "defer" => TempfailAction::Defer,
            "dunno" => TempfailAction::Dunno,
            _ => TempfailAction::DeferIfPermit,
        }
    }
}

/// The limits that change when the service is under stress (every slot
/// busy): Postfix's ${stress?...} defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub timeout: Duration,
    pub hard_error_limit: u32,
    /// smtpd_per_request_deadline: smtpd_timeout bounds a whole command
    /// line or reply, not each read, and DATA must keep up
    /// smtpd_min_data_rate.
    pub per_request_deadline: bool,
}

/// Per-client limits (Postfix's anvil).
#[derive(Clone, Debug)]
pub struct ClientLimits {
    pub connection_count: u32,
    pub connection_rate: u32,
    pub message_rate: u32,
    pub recipient_rate: u32,
    pub rate_unit: Duration,
    pub exceptions: NetworkList,
    /// The anvil service's socket; None: private/anvil in the spool
    /// (tests name another).
    pub anvil_socket: Option<PathBuf>,
}

#[derive(Clone)]
pub struct Settings {
    pub myhostname: String,
    pub banner: String,
    pub helo_required: bool,
    pub disable_vrfy: bool,
    pub smtputf8_enable: bool,
    pub strict_rfc821_envelopes: bool,
    pub normal: Timing,
    pub stress: Timing,
    pub min_data_rate: u64,
    pub ipc_timeout: Duration,
    pub soft_error_limit: u32,
    pub error_sleep: Duration,
    pub junk_command_limit: u32,
    pub recipient_limit: usize,
    pub recipient_overshoot_limit: u32,
    pub forbid_unauth_pipelining: bool,
    pub forbidden_commands: ForbiddenCommands,
    pub bare_newline: BareNewline,
    pub bare_newline_exclusions: NetworkList,
    pub bare_newline_code: u16,
    pub strict_smtputf8: bool,
    /// Bytes of message content all sessions of the service may hold
    /// before cleanup has them (smtpd_message_memory_limit)...
    pub memory_limit: u64,
    /// ...over this many processes, each holding an equal share.
    pub memory_processes: u64,
    /// 0 means no limit.
    pub message_size_limit: u64,
    pub header_size_limit: u64,
    pub line_length_limit: usize,
    pub hopcount_limit: u32,
    pub mynetworks: NetworkList,
    /// debug_peer_list: clients whose SMTP dialogue is logged line by line
    /// (as with `-v` for every client).
    pub debug_peers: mailgate_config::DebugPeers,
    pub relay_domains: DomainList,
    pub relay_recipient_maps: Vec<Table>,
    /// canonical and virtual alias maps: an address they list is a known
    /// one; virtual_alias_domains are ours, with the maps' users only.
    pub rewriting: Rewriting,
    /// mydestination, alias_maps and local_recipient_maps: the local
    /// recipients, refused when the tables do not list them.
    pub local: LocalRecipients,
    pub restrictions: Restrictions,
    pub delay_reject: bool,
    pub relay_before_recipient: bool,
    pub reject_unlisted_sender: bool,
    pub reject_unlisted_recipient: bool,
    pub show_unknown_table: bool,
    pub log_permit_actions: Vec<String>,
    pub null_access_key: String,
    /// Parent domains are looked up bare ("example.com", not
    /// ".example.com"): smtpd_access_maps is in
    /// parent_domain_matches_subdomains.
    pub access_parent_bare: bool,
    pub recipient_delimiter: Option<char>,
    pub codes: Codes,
    pub unknown_helo_tempfail: TempfailAction,
    pub unknown_address_tempfail: TempfailAction,
    pub rbl_tempfail: TempfailAction,
    pub default_rbl_reply: String,
    pub client_score: ClientScore,
    pub rbl_reply_maps: Vec<Table>,
    pub peername_lookup: bool,
    /// Where the client's name is looked up (nsswitch.conf's `hosts:`
    /// order, the hosts file read now, and the DNS).
    pub name_sources: NameSources,
    /// The addresses of this host (permit_inet_interfaces).
    pub local_addresses: Vec<IpAddr>,
    pub limits: ClientLimits,
    pub dns: Dns,
    /// SPF (check_spf): mail-auth on the same resolver, and
    /// policyd-spf's settings.
    pub spf: Arc<mailgate_mailauth::Authenticator>,
    pub spf_policy: SpfPolicy,
    /// A client for every check_policy_service of the lists, by its
    /// argument as written; made before the sandbox.
    pub policy_clients: HashMap<String, Arc<PolicyClient>>,
    /// None: the cleanup service's socket in the spool.
    pub cleanup_socket: Option<PathBuf>,
    /// STARTTLS or wrapper mode; None when TLS is off.
    pub tls: Option<Arc<ServerTls>>,
    /// SMTP AUTH; None when smtpd_sasl_auth_enable = no.
    pub sasl: Option<Arc<Sasl>>,
    /// smtpd_sender_login_maps: who may use which sender address.
    pub sender_login_maps: Vec<Table>,
    /// smtpd_milters and the milter_* settings.
    pub milters: crate::milter::MilterSettings,
    /// reject_unverified_*: the verify service and the reply codes.
    pub verify: VerifySettings,
    /// content_filter, receive_override_options, XFORWARD.
    pub filtering: crate::xforward::Filtering,
}

/// A configuration smtpd cannot run with; each names its parameter.
#[derive(Debug)]
pub enum SettingsError {
    /// A list or table could not be read or parsed.
    Config {
        parameter: &'static str,
        problems: Vec<String>,
    },
    Restriction {
        parameter: String,
        error: ListError,
    },
    /// Neither RCPT list refuses unauthorised destinations.
    OpenRelay,
    /// A reject code that is not 4xx or 5xx.
    Code {
        parameter: &'static str,
        value: i64,
    },
    /// A count that makes no sense below zero.
    Negative {
        parameter: &'static str,
        value: i64,
    },
    Dns(mailgate_dns::SetupError),
    Tls(String),
    Sasl(String),
    Policy {
        argument: String,
        error: String,
    },
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Config {
                parameter,
                problems,
            } => write!(f, "parameter {parameter}: {}", problems.join("; ")),
            SettingsError::Restriction { parameter, error } => {
                write!(f, "parameter {parameter}: {error}")
            }
            SettingsError::OpenRelay => write!(
                f,
                "in parameters smtpd_relay_restrictions and smtpd_recipient_restrictions, \
                 specify at least one working instance of: reject_unauth_destination, \
                 defer_unauth_destination, reject or defer (without one the server is an open relay)"
            ),
            SettingsError::Code { parameter, value } => write!(
                f,
                "parameter {parameter}: {value} is not a 4xx or 5xx SMTP reply code"
            ),
            SettingsError::Negative { parameter, value } => {
                write!(f, "parameter {parameter}: {value} must not be negative")
            }
            SettingsError::Dns(e) => e.fmt(f),
            SettingsError::Tls(e) => write!(f, "{e}"),
            SettingsError::Sasl(e) => write!(f, "{e}"),
            SettingsError::Policy { argument, error } => {
                write!(f, "check_policy_service {argument}: {error}")
            }
        }
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    /// What this process's sessions may hold: its share of
    /// smtpd_message_memory_limit (0: no limit).
    pub fn memory_share(&self) -> u64 {
        self.memory_limit.div_ceil(self.memory_processes.max(1))
    }

    pub fn load(config: &MainConfig) -> Result<Settings, SettingsError> {
        let dir = config.config_dir();
        let parents = config.list("parent_domain_matches_subdomains");
        let parent_matches = |name: &str| parents.iter().any(|p| p == name);
        let problems = |parameter: &'static str| {
            move |e: mailgate_config::ConfigError| SettingsError::Config {
                parameter,
                problems: e.into_diagnostics().iter().map(|d| d.to_string()).collect(),
            }
        };
        let restrictions = Restrictions::load(config).map_err(|mut errors| {
            let (parameter, error) = errors.remove(0);
            SettingsError::Restriction { parameter, error }
        })?;
        if restrictions.is_open_relay() {
            return Err(SettingsError::OpenRelay);
        }
        let mut policy_clients = HashMap::new();
        for list in restrictions.all_lists() {
            for restriction in list.iter() {
                if let Restriction::PolicyService(spec) = restriction
                    && !policy_clients.contains_key(&spec.argument)
                {
                    let service =
                        PolicyService::from_spec(spec).map_err(|e| SettingsError::Policy {
                            argument: spec.argument.clone(),
                            error: e,
                        })?;
                    let client =
                        PolicyClient::new(service.endpoint, service.settings).map_err(|e| {
                            SettingsError::Policy {
                                argument: spec.argument.clone(),
                                error: e.to_string(),
                            }
                        })?;
                    policy_clients.insert(spec.argument.clone(), Arc::new(client));
                }
            }
        }
        let tables = |parameter: &'static str| -> Result<Vec<Table>, SettingsError> {
            config
                .list(parameter)
                .iter()
                .map(|spec| Table::open(spec, dir).map_err(problems(parameter)))
                .collect()
        };
        let stressed = config
            .with_overrides(&[Override {
                name: "stress".into(),
                value: "yes".into(),
                origin: PathBuf::from("stress"),
                line: 0,
            }])
            .map_err(problems("stress"))?;
        let networks = |parameter: &'static str| {
            NetworkList::parse(&config.list(parameter), dir).map_err(problems(parameter))
        };
        let filtering = crate::xforward::Filtering::load(config, dir)?;
        let mut milters = crate::milter::MilterSettings::load(config)?;
        // receive_override_options = no_milters (a content filter's
        // re-injection service): the mail met the milters on its way in.
        if filtering.overrides.no_milters {
            milters.clear();
        }
        let dns = Dns::new(&config.list("dns_nameservers")).map_err(SettingsError::Dns)?;
        Ok(Settings {
            filtering,
            myhostname: config.get("myhostname"),
            banner: config.get("smtpd_banner"),
            helo_required: config.bool("smtpd_helo_required"),
            disable_vrfy: config.bool("disable_vrfy_command"),
            smtputf8_enable: config.bool("smtputf8_enable"),
            strict_rfc821_envelopes: config.bool("strict_rfc821_envelopes"),
            normal: timing(config)?,
            stress: timing(&stressed)?,
            min_data_rate: u64::from(count(config, "smtpd_min_data_rate")?),
            ipc_timeout: config.time("ipc_timeout"),
            soft_error_limit: count(config, "smtpd_soft_error_limit")?,
            error_sleep: config.time("smtpd_error_sleep_time"),
            junk_command_limit: count(config, "smtpd_junk_command_limit")?,
            recipient_limit: count(config, "smtpd_recipient_limit")? as usize,
            recipient_overshoot_limit: count(config, "smtpd_recipient_overshoot_limit")?,
            forbid_unauth_pipelining: config.bool("smtpd_forbid_unauth_pipelining"),
            bare_newline: match config
                .get("smtpd_forbid_bare_newline")
                .to_ascii_lowercase()
                .as_str()
            {
                "note" => BareNewline::Note,
                "reject" => BareNewline::Reject,
                _ => BareNewline::Normalize,
            },
            bare_newline_exclusions: networks("smtpd_forbid_bare_newline_exclusions")?,
            bare_newline_code: code(config, "smtpd_forbid_bare_newline_reject_code")?,
            strict_smtputf8: config.bool("strict_smtputf8"),
            memory_limit: config.size("smtpd_message_memory_limit"),
            memory_processes: 1,
            forbidden_commands: {
                let mut forbidden = ForbiddenCommands::default();
                for item in config.list("smtpd_forbidden_commands") {
                    if item.contains(':') {
                        forbidden.tables.push(
                            Table::open(&item, dir)
                                .map_err(problems("smtpd_forbidden_commands"))?,
                        );
                    } else {
                        forbidden.words.push(item);
                    }
                }
                forbidden
            },
            message_size_limit: config.size("message_size_limit"),
            header_size_limit: config.size("header_size_limit"),
            line_length_limit: (count(config, "line_length_limit")? as usize).max(MIN_LINE_LENGTH),
            hopcount_limit: count(config, "hopcount_limit")?,
            mynetworks: networks("mynetworks")?,
            debug_peers: mailgate_config::DebugPeers::load(
                config,
                dir,
                parent_matches("debug_peer_list"),
            )
            .map_err(|problems| SettingsError::Config {
                parameter: "debug_peer_list",
                problems,
            })?,
            relay_domains: DomainList::parse(
                &config.list("relay_domains"),
                dir,
                parent_matches("relay_domains"),
            )
            .map_err(problems("relay_domains"))?,
            relay_recipient_maps: tables("relay_recipient_maps")?,
            rewriting: Rewriting::from_config(config).map_err(problems("virtual_alias_maps"))?,
            local: LocalRecipients::from_config(config)
                .map_err(problems("local_recipient_maps"))?,
            restrictions,
            delay_reject: config.bool("smtpd_delay_reject"),
            relay_before_recipient: config.bool("smtpd_relay_before_recipient_restrictions"),
            reject_unlisted_sender: config.bool("smtpd_reject_unlisted_sender"),
            reject_unlisted_recipient: config.bool("smtpd_reject_unlisted_recipient"),
            show_unknown_table: config.bool("show_user_unknown_table_name"),
            log_permit_actions: config.list("smtpd_log_access_permit_actions"),
            null_access_key: config.get("smtpd_null_access_lookup_key"),
            access_parent_bare: parent_matches("smtpd_access_maps"),
            recipient_delimiter: config.get("recipient_delimiter").chars().next(),
            codes: Codes {
                reject: code(config, "reject_code")?,
                defer: code(config, "defer_code")?,
                relay: code(config, "relay_domains_reject_code")?,
                map_reject: code(config, "access_map_reject_code")?,
                map_defer: code(config, "access_map_defer_code")?,
                unknown_relay_recipient: code(config, "unknown_relay_recipient_reject_code")?,
                unknown_virtual_alias: code(config, "unknown_virtual_alias_reject_code")?,
                unknown_local_recipient: code(config, "unknown_local_recipient_reject_code")?,
                unknown_client: code(config, "unknown_client_reject_code")?,
                unknown_hostname: code(config, "unknown_hostname_reject_code")?,
                unknown_address: code(config, "unknown_address_reject_code")?,
                non_fqdn: code(config, "non_fqdn_reject_code")?,
                invalid_hostname: code(config, "invalid_hostname_reject_code")?,
                multi_recipient_bounce: code(config, "multi_recipient_bounce_reject_code")?,
                plaintext: code(config, "plaintext_reject_code")?,
                maps_rbl: code(config, "maps_rbl_reject_code")?,
            },
            unknown_helo_tempfail: TempfailAction::from(
                &config.get("unknown_helo_hostname_tempfail_action"),
            ),
            unknown_address_tempfail: TempfailAction::from(
                &config.get("unknown_address_tempfail_action"),
            ),
            rbl_tempfail: TempfailAction::from(&config.get("rbl_tempfail_action")),
            default_rbl_reply: config.get("default_rbl_reply"),
            client_score: ClientScore::load(config).map_err(|e| SettingsError::Config {
                parameter: "client_score_*",
                problems: vec![e],
            })?,
            rbl_reply_maps: tables("rbl_reply_maps")?,
            peername_lookup: config.bool("smtpd_peername_lookup"),
            name_sources: name_sources(config),
            local_addresses: local_addresses(config),
            limits: ClientLimits {
                connection_count: count(config, "smtpd_client_connection_count_limit")?,
                connection_rate: count(config, "smtpd_client_connection_rate_limit")?,
                message_rate: count(config, "smtpd_client_message_rate_limit")?,
                recipient_rate: count(config, "smtpd_client_recipient_rate_limit")?,
                rate_unit: config.time("anvil_rate_time_unit"),
                exceptions: networks("smtpd_client_event_limit_exceptions")?,
                anvil_socket: None,
            },
            dns: dns.clone(),
            spf: Arc::new(mailgate_mailauth::Authenticator::new(
                dns.resolver().clone(),
            )),
            spf_policy: SpfPolicy::load(config),
            policy_clients,
            cleanup_socket: None,
            // tlskeys' socket, relative to the spool (the working directory
            // once the sandbox is in place).
            tls: ServerTls::load(config, PathBuf::from("private").join(TLSKEYS_SERVICE))
                .map_err(|e| SettingsError::Tls(e.to_string()))?
                .map(Arc::new),
            sasl: Sasl::load(config).map_err(SettingsError::Sasl)?,
            sender_login_maps: tables("smtpd_sender_login_maps")?,
            milters,
            verify: VerifySettings::load(config, &stressed)?,
        })
    }
}

fn timing(config: &MainConfig) -> Result<Timing, SettingsError> {
    Ok(Timing {
        timeout: config.time("smtpd_timeout"),
        hard_error_limit: count(config, "smtpd_hard_error_limit")?,
        per_request_deadline: config.bool("smtpd_per_request_deadline"),
    })
}

/// The client name's sources, read before the sandbox; none of the files
/// is read when smtpd_peername_lookup = no.
fn name_sources(config: &MainConfig) -> NameSources {
    if !config.bool("smtpd_peername_lookup") {
        return NameSources::dns_only();
    }
    let (sources, warnings) = NameSources::read();
    for warning in warnings {
        mailgate_log::warning!("{warning}");
    }
    sources
}

/// This host's addresses as inet_interfaces names them: every interface's
/// for "all", read now (before the sandbox).
fn local_addresses(config: &MainConfig) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for item in config.list("inet_interfaces") {
        match item.as_str() {
            "all" => {
                if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
                    for ifaddr in addrs {
                        let Some(address) = ifaddr.address else {
                            continue;
                        };
                        if let Some(v4) = address.as_sockaddr_in() {
                            out.push(IpAddr::V4(v4.ip()));
                        } else if let Some(v6) = address.as_sockaddr_in6() {
                            out.push(IpAddr::V6(v6.ip()));
                        }
                    }
                }
            }
            "loopback-only" => out.extend(
                ["127.0.0.1", "::1"].map(|a| a.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
            ),
            "localhost" => out.push(IpAddr::from([127, 0, 0, 1])),
            other => {
                if let Ok(ip) = other.trim_matches(['[', ']']).parse() {
                    out.push(ip);
                }
            }
        }
    }
    out
}

fn code(config: &MainConfig, parameter: &'static str) -> Result<u16, SettingsError> {
    let value = config.int(parameter);
    match u16::try_from(value) {
        Ok(c) if (400..600).contains(&c) => Ok(c),
        _ => Err(SettingsError::Code { parameter, value }),
    }
}

/// A non-negative count; values beyond u32 are as good as unlimited.
fn count(config: &MainConfig, parameter: &'static str) -> Result<u32, SettingsError> {
    let value = config.int(parameter);
    if value < 0 {
        return Err(SettingsError::Negative { parameter, value });
    }
    Ok(u32::try_from(value).unwrap_or(u32::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;

    /// Settings from main.cf text, tables relative to `dir`. Client names
    /// are not looked up (no DNS server here) unless the text says so.
    pub(crate) fn settings_in(dir: &Path, main_cf: &str) -> Result<Settings, SettingsError> {
        let main_cf = if main_cf.contains("smtpd_peername_lookup") {
            main_cf.to_string()
        } else {
            format!("smtpd_peername_lookup = no\n{main_cf}")
        };
        let config = MainConfig::parse(&main_cf, &dir.join("main.cf"), dir, &[])
            .unwrap_or_else(|e| panic!("main.cf: {e}"));
        Settings::load(&config)
    }

    pub(crate) fn settings(main_cf: &str) -> Settings {
        settings_in(Path::new("/"), main_cf).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults() {
        let s = settings("myhostname = mx.example.com\n");
        assert_eq!(s.banner, "mx.example.com ESMTP mailgate");
        assert_eq!(s.message_size_limit, 10_240_000);
        assert_eq!(s.normal.timeout, Duration::from_secs(300));
        assert_eq!(s.stress.timeout, Duration::from_secs(10));
        assert_eq!(s.stress.hard_error_limit, 1);
        assert!(s.stress.per_request_deadline && !s.normal.per_request_deadline);
        assert_eq!(s.restrictions.relay.len(), 3);
        assert!(s.restrictions.recipient.is_empty());
        assert_eq!(s.line_length_limit, 2048);
        assert_eq!(s.cleanup_socket, None);
        assert!(s.access_parent_bare);
    }

    /// A re-injection service with receive_override_options = no_milters
    /// asks no milter, as Postfix's; the others ask smtpd_milters.
    #[test]
    fn no_milters_turns_the_milters_off_for_that_service() {
        let milters = "smtpd_milters = inet:127.0.0.1:8891, unix:/run/m.sock\n";
        assert_eq!(settings(milters).milters.specs.len(), 2);
        let s = settings(&format!(
            "{milters}receive_override_options = no_header_body_checks, no_milters\n"
        ));
        assert!(s.milters.specs.is_empty());
        let s = settings(&format!(
            "{milters}receive_override_options = no_header_body_checks\n"
        ));
        assert_eq!(s.milters.specs.len(), 2);
    }

    #[test]
    fn unknown_restriction_is_an_error() {
        let e = settings_in(
            Path::new("/"),
            "smtpd_recipient_restrictions = permit_mynetworks, reject_unath_destination\n",
        )
        .err()
        .unwrap();
        assert_eq!(
            e.to_string(),
            "parameter smtpd_recipient_restrictions: unknown restriction \"reject_unath_destination\""
        );
        let e = settings_in(
            Path::new("/"),
            "smtpd_recipient_restrictions = check_recipient_access\n",
        )
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("must be followed by a lookup table"),
            "{e}"
        );
        let e = settings_in(
            Path::new("/"),
            "smtpd_recipient_restrictions = check_recipient_access hash:/no/such/file\n",
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("/no/such/file"), "{e}");
    }

    #[test]
    fn an_open_relay_does_not_start() {
        let e = settings_in(
            Path::new("/"),
            "smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit_mynetworks, permit_auth_destination\n",
        )
        .err()
        .unwrap();
        assert!(matches!(e, SettingsError::OpenRelay));
        assert!(settings_in(
            Path::new("/"),
            "smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination\n",
        )
        .is_ok());
    }

    #[test]
    fn bad_codes_and_counts() {
        let e = settings_in(Path::new("/"), "reject_code = 250\n")
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "parameter reject_code: 250 is not a 4xx or 5xx SMTP reply code"
        );
        let e = settings_in(Path::new("/"), "smtpd_recipient_limit = -1\n")
            .err()
            .unwrap();
        assert!(matches!(e, SettingsError::Negative { .. }));
        let s = settings("line_length_limit = 80\n");
        assert_eq!(s.line_length_limit, 512);
    }
}
