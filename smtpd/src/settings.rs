//! Everything smtpd takes from the configuration, read and checked once at
//! start-up, before the sandbox closes the filesystem: typed limits, the
//! lists and tables, and the parsed restriction lists.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mailgate_config::{AddressLookup, DomainList, MainConfig, NetworkList, Table};

use crate::restrictions::{ListError, Restriction};

/// RFC 5321 section 4.5.3.1.4: a server must accept command lines of 512
/// octets, whatever line_length_limit says.
const MIN_LINE_LENGTH: usize = 512;

pub struct Settings {
    pub myhostname: String,
    pub banner: String,
    pub helo_required: bool,
    pub disable_vrfy: bool,
    pub smtputf8_enable: bool,
    pub strict_rfc821_envelopes: bool,
    pub timeout: Duration,
    pub ipc_timeout: Duration,
    pub hard_error_limit: u32,
    pub soft_error_limit: u32,
    pub error_sleep: Duration,
    pub junk_command_limit: u32,
    pub recipient_limit: usize,
    /// 0 means no limit.
    pub message_size_limit: u64,
    pub header_size_limit: u64,
    pub line_length_limit: usize,
    pub hopcount_limit: u32,
    pub mynetworks: NetworkList,
    pub relay_domains: DomainList,
    pub relay_recipient_maps: Vec<Table>,
    pub relay_restrictions: Vec<Restriction>,
    pub recipient_restrictions: Vec<Restriction>,
    pub access_lookup: AddressLookup,
    pub recipient_delimiter: Option<char>,
    pub reject_code: u16,
    pub defer_code: u16,
    pub relay_domains_reject_code: u16,
    pub access_map_reject_code: u16,
    pub access_map_defer_code: u16,
    pub unknown_relay_recipient_reject_code: u16,
    /// None: the cleanup service's socket in the spool.
    pub cleanup_socket: Option<PathBuf>,
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
        parameter: &'static str,
        error: ListError,
    },
    /// Neither RCPT list refuses unauthorised destinations.
    OpenRelay,
    /// A reject code that is not 4xx or 5xx.
    Code { parameter: &'static str, value: i64 },
    /// A count that makes no sense below zero.
    Negative { parameter: &'static str, value: i64 },
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
        }
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
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
        let open =
            |spec: &str| Table::open(spec, dir).map_err(|e| e.to_string().replace('\n', "; "));
        let restrictions = |parameter: &'static str| {
            Restriction::parse_list(&config.list(parameter), &open)
                .map_err(|error| SettingsError::Restriction { parameter, error })
        };
        let relay_restrictions = restrictions("smtpd_relay_restrictions")?;
        let recipient_restrictions = restrictions("smtpd_recipient_restrictions")?;
        if !relay_restrictions
            .iter()
            .chain(&recipient_restrictions)
            .any(Restriction::guards_relay)
        {
            return Err(SettingsError::OpenRelay);
        }
        let mut relay_recipient_maps = Vec::new();
        for spec in config.list("relay_recipient_maps") {
            relay_recipient_maps
                .push(Table::open(&spec, dir).map_err(problems("relay_recipient_maps"))?);
        }
        Ok(Settings {
            myhostname: config.get("myhostname"),
            banner: config.get("smtpd_banner"),
            helo_required: config.bool("smtpd_helo_required"),
            disable_vrfy: config.bool("disable_vrfy_command"),
            smtputf8_enable: config.bool("smtputf8_enable"),
            strict_rfc821_envelopes: config.bool("strict_rfc821_envelopes"),
            timeout: config.time("smtpd_timeout"),
            ipc_timeout: config.time("ipc_timeout"),
            hard_error_limit: count(config, "smtpd_hard_error_limit")?,
            soft_error_limit: count(config, "smtpd_soft_error_limit")?,
            error_sleep: config.time("smtpd_error_sleep_time"),
            junk_command_limit: count(config, "smtpd_junk_command_limit")?,
            recipient_limit: count(config, "smtpd_recipient_limit")? as usize,
            message_size_limit: config.size("message_size_limit"),
            header_size_limit: config.size("header_size_limit"),
            line_length_limit: (count(config, "line_length_limit")? as usize).max(MIN_LINE_LENGTH),
            hopcount_limit: count(config, "hopcount_limit")?,
            mynetworks: NetworkList::parse(&config.list("mynetworks"), dir)
                .map_err(problems("mynetworks"))?,
            relay_domains: DomainList::parse(
                &config.list("relay_domains"),
                dir,
                parent_matches("relay_domains"),
            )
            .map_err(problems("relay_domains"))?,
            relay_recipient_maps,
            relay_restrictions,
            recipient_restrictions,
            access_lookup: AddressLookup {
                parent_domains: true,
                parent_bare: parent_matches("smtpd_access_maps"),
                recipient_delimiter: config.get("recipient_delimiter").chars().next(),
            },
            recipient_delimiter: config.get("recipient_delimiter").chars().next(),
            reject_code: code(config, "reject_code")?,
            defer_code: code(config, "defer_code")?,
            relay_domains_reject_code: code(config, "relay_domains_reject_code")?,
            access_map_reject_code: code(config, "access_map_reject_code")?,
            access_map_defer_code: code(config, "access_map_defer_code")?,
            unknown_relay_recipient_reject_code: code(
                config,
                "unknown_relay_recipient_reject_code",
            )?,
            cleanup_socket: None,
        })
    }
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

    /// Settings from main.cf text, tables relative to `dir`.
    pub(crate) fn settings_in(dir: &Path, main_cf: &str) -> Result<Settings, SettingsError> {
        let config = MainConfig::parse(main_cf, &dir.join("main.cf"), dir, &[])
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
        assert_eq!(s.timeout, Duration::from_secs(300));
        assert_eq!(s.relay_restrictions.len(), 3);
        assert!(s.recipient_restrictions.is_empty());
        assert_eq!(s.line_length_limit, 2048);
        assert_eq!(s.cleanup_socket, None);
        assert!(s.access_lookup.parent_bare);
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
        assert!(e.to_string().contains("needs a lookup table"), "{e}");
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
