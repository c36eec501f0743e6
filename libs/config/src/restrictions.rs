//! SMTP access restrictions as written in main.cf (SMTPD_ACCESS_README):
//! the lists `smtpd_client_restrictions` ... `smtpd_end_of_data_restrictions`,
//! `smtpd_restriction_classes`, and the restriction names with their
//! arguments. smtpd evaluates what this module parses, and `mailgate check`
//! validates with this same parser, so a configuration `check` passes is one
//! smtpd starts with.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use crate::lines::split_list;
use crate::main_cf::MainConfig;
use crate::policy::PolicySpec;
use crate::table::Table;

/// What an access table or a server-access check looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Client,
    ReverseClient,
    Helo,
    Sender,
    Recipient,
    Etrn,
}

impl Subject {
    /// The words Postfix puts in a reply: "Client host rejected: ...".
    pub fn reply_class(self) -> &'static str {
        match self {
            Subject::Client => "Client host",
            Subject::ReverseClient => "Unverified Client host",
            Subject::Helo => "Helo command",
            Subject::Sender => "Sender address",
            Subject::Recipient => "Recipient address",
            Subject::Etrn => "Etrn command",
        }
    }
}

/// The DNS records a `check_*_{a,mx,ns}_access` restriction looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerRecord {
    A,
    Mx,
    Ns,
}

/// Which way a DNS list query goes and what a listing means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsxlCheck {
    /// reject_rbl_client: the client address, reversed.
    RejectClient,
    /// permit_dnswl_client.
    PermitClient,
    /// reject_rhsbl_client: the verified client host name.
    RejectClientName,
    /// permit_rhswl_client.
    PermitClientName,
    /// reject_rhsbl_reverse_client: the unverified reverse name.
    RejectReverseClientName,
    RejectHelo,
    RejectSender,
    RejectRecipient,
}

/// A DNS list with an optional reply filter: `zen.example=127.0.0.[2..11]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dnsxl {
    /// As written, for logs and rbl_reply_maps keys.
    pub spec: String,
    /// The zone to query under.
    pub domain: String,
    pub filter: Option<IpFilter>,
}

/// One octet pattern: numbers and ranges (`2`, `[2..11]`, `[2;4;6..8]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OctetSet(Vec<(u8, u8)>);

/// Postfix's ip_match pattern for DNSBL replies: four octet sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpFilter(Vec<OctetSet>);

impl IpFilter {
    pub fn parse(text: &str) -> Result<IpFilter, String> {
        let bad = |why: &str| format!("bad DNS reply filter \"{text}\": {why}");
        let mut octets = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (pattern, after) = if let Some(inner) = rest.strip_prefix('[') {
                let end = inner.find(']').ok_or_else(|| bad("missing ']'"))?;
                (&inner[..end], &inner[end + 1..])
            } else {
                let end = rest.find('.').unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            let mut ranges = Vec::new();
            for part in pattern.split(';') {
                let number = |s: &str| {
                    s.parse::<u8>()
                        .ok()
                        .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| bad(&format!("\"{s}\" is not a number from 0 to 255")))
                };
                let range = match part.split_once("..") {
                    Some((lo, hi)) => (number(lo)?, number(hi)?),
                    None => (number(part)?, number(part)?),
                };
                if range.0 > range.1 {
                    return Err(bad("range runs backwards"));
                }
                ranges.push(range);
            }
            octets.push(OctetSet(ranges));
            rest = match after.strip_prefix('.') {
                Some(r) if !r.is_empty() => r,
                Some(_) => return Err(bad("ends with '.'")),
                None if after.is_empty() => after,
                None => return Err(bad("expected '.' between octets")),
            };
        }
        if octets.len() != 4 {
            return Err(bad("expected four octets"));
        }
        Ok(IpFilter(octets))
    }

    pub fn matches(&self, ip: std::net::Ipv4Addr) -> bool {
        ip.octets()
            .iter()
            .zip(&self.0)
            .all(|(o, set)| set.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(o)))
    }
}

impl Dnsxl {
    pub fn parse(spec: &str) -> Result<Dnsxl, String> {
        let (domain, filter) = match spec.split_once('=') {
            Some((domain, filter)) => (domain, Some(IpFilter::parse(filter)?)),
            None => (spec, None),
        };
        let domain = domain.trim_end_matches('.');
        if domain.is_empty()
            || !domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        {
            return Err(format!("\"{spec}\" is not a DNS list domain"));
        }
        Ok(Dnsxl {
            spec: spec.to_string(),
            domain: domain.to_ascii_lowercase(),
            filter,
        })
    }
}

/// One restriction, with its argument.
/// Which clients reject_*sender_login_mismatch checks (Postfix's four
/// forms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginMismatch {
    /// reject_sender_login_mismatch: both of the next two.
    Both,
    /// reject_authenticated_sender_login_mismatch: an authenticated client
    /// may use only addresses the maps give its login.
    Authenticated,
    /// reject_known_sender_login_mismatch: the same, but only for addresses
    /// the maps list.
    Known,
    /// reject_unauthenticated_sender_login_mismatch: an address the maps
    /// list needs its owner logged in.
    Unauthenticated,
}

#[derive(Clone, Debug)]
pub enum Restriction {
    // Generic.
    Permit,
    Reject,
    Defer,
    DeferIfPermit,
    DeferIfReject,
    /// warn_if_reject: the next restriction only logs what it would reject.
    WarnIfReject,
    RejectUnauthPipelining,
    Sleep(u32),
    RejectPlaintextSession,
    // Client.
    PermitMynetworks,
    PermitInetInterfaces,
    PermitSaslAuthenticated,
    PermitTlsClientcerts,
    PermitTlsAllClientcerts,
    RejectUnknownClientHostname,
    RejectUnknownReverseClientHostname,
    // HELO.
    RejectInvalidHeloHostname,
    RejectUnknownHeloHostname,
    RejectNonFqdnHeloHostname,
    // Sender.
    RejectNonFqdnSender,
    RejectUnknownSenderDomain,
    RejectUnlistedSender,
    /// reject_unverified_sender: the verify service's probe result.
    RejectUnverifiedSender,
    /// reject_sender_login_mismatch and its three narrower forms
    /// (smtpd_sender_login_maps).
    SenderLoginMismatch(LoginMismatch),
    // Recipient.
    PermitAuthDestination,
    RejectUnauthDestination,
    DeferUnauthDestination,
    RejectNonFqdnRecipient,
    RejectUnknownRecipientDomain,
    RejectUnlistedRecipient,
    RejectMultiRecipientBounce,
    /// reject_unverified_recipient: the verify service's probe result.
    RejectUnverifiedRecipient,
    // DNS lists.
    Dnsxl(DnsxlCheck, Dnsxl),
    /// mailgate: policyd-weight's weighted checks (client_score_*).
    CheckClientScore,
    /// mailgate: SPF for the HELO and MAIL FROM identities, as
    /// policyd-spf does it (spf_* parameters).
    CheckSpf,
    // Tables.
    Access(Subject, Table),
    ServerAccess(Subject, ServerRecord, Table),
    CcertAccess(Table),
    SaslAccess(Table),
    // Delegation.
    PolicyService(Arc<PolicySpec>),
    /// A name from smtpd_restriction_classes.
    Class(String),
}

impl Restriction {
    /// Restrictions that refuse mail to a destination that is not ours:
    /// one of them must be in the RCPT lists, or the server is an open relay.
    pub fn guards_relay(&self) -> bool {
        matches!(
            self,
            Restriction::Reject
                | Restriction::Defer
                | Restriction::RejectUnauthDestination
                | Restriction::DeferUnauthDestination
        )
    }
}

/// Why a restriction list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    Unknown(String),
    /// Known to Postfix, deliberately not (or not yet) in mailgate.
    NotImplemented {
        name: String,
        why: &'static str,
    },
    MissingArgument {
        name: String,
        wants: &'static str,
    },
    BadArgument {
        name: String,
        error: String,
    },
    /// A bare `type:table` where no default access check applies.
    BareTable(String),
    /// Tables inside an access table's result (Postfix refuses them too).
    TableInAction(String),
    /// A policy service inside an access table's result: its client is
    /// made before the sandbox, from the restriction lists.
    PolicyInAction(String),
    UnknownClass(String),
    ClassLoop(String),
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListError::Unknown(name) if name.starts_with('#') => write!(
                f,
                "unknown restriction \"{name}\": a '#' comment must be on a line of its own \
                 (after a value, '#' and what follows are part of the value, in Postfix too)"
            ),
            ListError::Unknown(name) => write!(f, "unknown restriction \"{name}\""),
            ListError::NotImplemented { name, why } => {
                write!(
                    f,
                    "restriction \"{name}\" is not implemented in mailgate: {why}"
                )
            }
            ListError::MissingArgument { name, wants } => {
                write!(f, "\"{name}\" must be followed by {wants}")
            }
            ListError::BadArgument { name, error } => write!(f, "{name}: {error}"),
            ListError::BareTable(spec) => write!(
                f,
                "lookup table \"{spec}\" without a restriction name: write check_client_access, \
                 check_helo_access, check_sender_access or check_recipient_access before it"
            ),
            ListError::TableInAction(spec) => write!(
                f,
                "\"{spec}\": do not name lookup tables inside access table results; define a \
                 restriction class (smtpd_restriction_classes) and name it instead"
            ),
            ListError::PolicyInAction(spec) => write!(
                f,
                "check_policy_service {spec}: name policy services in a restriction list, \
                 not in an access table result"
            ),
            ListError::UnknownClass(name) => write!(
                f,
                "\"{name}\" is in smtpd_restriction_classes but has no value in main.cf"
            ),
            ListError::ClassLoop(name) => {
                write!(f, "restriction class \"{name}\" refers back to itself")
            }
        }
    }
}

/// How a list is parsed: what a bare table means and how tables open.
pub struct ParseContext<'a> {
    /// The access check a bare `type:table` stands for in this list.
    pub default_access: Option<Subject>,
    /// Opens a table, or refuses (inside access table results).
    pub open: &'a dyn Fn(&str) -> Result<Table, ListError>,
    /// Names that are restriction classes.
    pub classes: &'a dyn Fn(&str) -> bool,
    /// Parses a check_policy_service argument, or refuses.
    pub policy: &'a dyn Fn(&str) -> Result<PolicySpec, ListError>,
}

fn simple(name: &str) -> Option<Restriction> {
    use Restriction as R;
    Some(match name {
        "permit" => R::Permit,
        "reject" => R::Reject,
        "defer" => R::Defer,
        "defer_if_permit" => R::DeferIfPermit,
        "defer_if_reject" => R::DeferIfReject,
        "warn_if_reject" => R::WarnIfReject,
        "reject_unauth_pipelining" => R::RejectUnauthPipelining,
        "reject_plaintext_session" => R::RejectPlaintextSession,
        "permit_mynetworks" => R::PermitMynetworks,
        "permit_inet_interfaces" => R::PermitInetInterfaces,
        "permit_sasl_authenticated" => R::PermitSaslAuthenticated,
        "permit_tls_clientcerts" => R::PermitTlsClientcerts,
        "permit_tls_all_clientcerts" => R::PermitTlsAllClientcerts,
        "reject_unknown_client_hostname" | "reject_unknown_client" => {
            R::RejectUnknownClientHostname
        }
        "reject_unknown_reverse_client_hostname" => R::RejectUnknownReverseClientHostname,
        "reject_invalid_helo_hostname" | "reject_invalid_hostname" => R::RejectInvalidHeloHostname,
        "reject_unknown_helo_hostname" | "reject_unknown_hostname" => R::RejectUnknownHeloHostname,
        "reject_non_fqdn_helo_hostname" | "reject_non_fqdn_hostname" => {
            R::RejectNonFqdnHeloHostname
        }
        "reject_non_fqdn_sender" => R::RejectNonFqdnSender,
        "reject_unknown_sender_domain" | "reject_unknown_address" => R::RejectUnknownSenderDomain,
        "reject_unlisted_sender" => R::RejectUnlistedSender,
        "reject_unverified_sender" => R::RejectUnverifiedSender,
        "reject_sender_login_mismatch" => R::SenderLoginMismatch(LoginMismatch::Both),
        "reject_authenticated_sender_login_mismatch" => {
            R::SenderLoginMismatch(LoginMismatch::Authenticated)
        }
        "reject_known_sender_login_mismatch" => R::SenderLoginMismatch(LoginMismatch::Known),
        "reject_unauthenticated_sender_login_mismatch" => {
            R::SenderLoginMismatch(LoginMismatch::Unauthenticated)
        }
        "permit_auth_destination" => R::PermitAuthDestination,
        "reject_unauth_destination" => R::RejectUnauthDestination,
        "defer_unauth_destination" => R::DeferUnauthDestination,
        "reject_non_fqdn_recipient" => R::RejectNonFqdnRecipient,
        "reject_unknown_recipient_domain" => R::RejectUnknownRecipientDomain,
        "reject_unlisted_recipient" | "check_recipient_maps" => R::RejectUnlistedRecipient,
        "reject_multi_recipient_bounce" => R::RejectMultiRecipientBounce,
        "reject_unverified_recipient" => R::RejectUnverifiedRecipient,
        "check_client_score" => R::CheckClientScore,
        "check_spf" => R::CheckSpf,
        _ => return None,
    })
}

fn dnsxl(name: &str) -> Option<DnsxlCheck> {
    Some(match name {
        "reject_rbl_client" | "reject_rbl" => DnsxlCheck::RejectClient,
        "permit_dnswl_client" => DnsxlCheck::PermitClient,
        "reject_rhsbl_client" => DnsxlCheck::RejectClientName,
        "permit_rhswl_client" => DnsxlCheck::PermitClientName,
        "reject_rhsbl_reverse_client" => DnsxlCheck::RejectReverseClientName,
        "reject_rhsbl_helo" => DnsxlCheck::RejectHelo,
        "reject_rhsbl_sender" => DnsxlCheck::RejectSender,
        "reject_rhsbl_recipient" => DnsxlCheck::RejectRecipient,
        _ => return None,
    })
}

fn access(name: &str) -> Option<Subject> {
    Some(match name {
        "check_client_access" => Subject::Client,
        "check_reverse_client_hostname_access" => Subject::ReverseClient,
        "check_helo_access" => Subject::Helo,
        "check_sender_access" => Subject::Sender,
        "check_recipient_access" => Subject::Recipient,
        "check_etrn_access" => Subject::Etrn,
        _ => return None,
    })
}

fn server_access(name: &str) -> Option<(Subject, ServerRecord)> {
    let rest = name.strip_prefix("check_")?.strip_suffix("_access")?;
    let (who, record) = rest.rsplit_once('_')?;
    let record = match record {
        "a" => ServerRecord::A,
        "mx" => ServerRecord::Mx,
        "ns" => ServerRecord::Ns,
        _ => return None,
    };
    let subject = match who {
        "client" => Subject::Client,
        "reverse_client" => Subject::ReverseClient,
        "helo" => Subject::Helo,
        "sender" => Subject::Sender,
        "recipient" => Subject::Recipient,
        _ => return None,
    };
    Some((subject, record))
}

/// Postfix names that mailgate refuses rather than ignore, with the reason.
fn not_implemented(name: &str) -> Option<&'static str> {
    Some(match name {
        "permit_mx_backup" => "mailgate is not a backup MX; list the domains in relay_domains",
        "check_relay_domains" => "removed from Postfix 3.9; use reject_unauth_destination",
        "reject_maps_rbl" => "removed from Postfix too; use reject_rbl_client DOMAIN",
        "permit_naked_ip_address" => "removed from Postfix 3.9; use permit_mynetworks",
        _ => return None,
    })
}

/// True for the name of a restriction (known to mailgate or to Postfix).
pub fn is_restriction_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    simple(&name).is_some()
        || dnsxl(&name).is_some()
        || access(&name).is_some()
        || server_access(&name).is_some()
        || not_implemented(&name).is_some()
        || matches!(
            name.as_str(),
            "check_ccert_access" | "check_sasl_access" | "sleep"
        )
}

/// Parses one list's items; an argument (table, DNS list, number) follows
/// its restriction as the next item.
pub fn parse_list(items: &[String], ctx: &ParseContext) -> Result<Vec<Restriction>, ListError> {
    let mut list = Vec::new();
    let mut items = items.iter();
    while let Some(item) = items.next() {
        let name = item.to_ascii_lowercase();
        let mut argument = |wants: &'static str| {
            items.next().ok_or_else(|| ListError::MissingArgument {
                name: item.clone(),
                wants,
            })
        };
        let restriction = if let Some(r) = simple(&name) {
            r
        } else if let Some(check) = dnsxl(&name) {
            let spec = argument("a DNS list domain")?;
            Restriction::Dnsxl(
                check,
                Dnsxl::parse(spec).map_err(|error| ListError::BadArgument {
                    name: item.clone(),
                    error,
                })?,
            )
        } else if let Some(subject) = access(&name) {
            Restriction::Access(subject, (ctx.open)(argument("a lookup table")?)?)
        } else if let Some((subject, record)) = server_access(&name) {
            Restriction::ServerAccess(subject, record, (ctx.open)(argument("a lookup table")?)?)
        } else if name == "check_ccert_access" {
            Restriction::CcertAccess((ctx.open)(argument("a lookup table")?)?)
        } else if name == "check_sasl_access" {
            Restriction::SaslAccess((ctx.open)(argument("a lookup table")?)?)
        } else if name == "sleep" {
            let seconds = argument("a number of seconds")?;
            Restriction::Sleep(seconds.parse().map_err(|_| ListError::BadArgument {
                name: item.clone(),
                error: format!("\"{seconds}\" is not a number of seconds"),
            })?)
        } else if name == "check_policy_service" {
            let spec = argument("a policy server (inet:host:port or unix:path)")?;
            Restriction::PolicyService(Arc::new((ctx.policy)(spec)?))
        } else if let Some(why) = not_implemented(&name) {
            return Err(ListError::NotImplemented {
                name: name.clone(),
                why,
            });
        } else if item.contains(':') {
            let subject = ctx
                .default_access
                .ok_or_else(|| ListError::BareTable(item.clone()))?;
            Restriction::Access(subject, (ctx.open)(item)?)
        } else if (ctx.classes)(item) {
            Restriction::Class(item.clone())
        } else {
            return Err(ListError::Unknown(item.clone()));
        };
        list.push(restriction);
    }
    Ok(list)
}

/// The restriction lists, in the order of the SMTP dialogue.
pub const LIST_PARAMETERS: [(&str, Option<Subject>); 8] = [
    ("smtpd_client_restrictions", Some(Subject::Client)),
    ("smtpd_helo_restrictions", Some(Subject::Helo)),
    ("smtpd_sender_restrictions", Some(Subject::Sender)),
    ("smtpd_relay_restrictions", Some(Subject::Recipient)),
    ("smtpd_recipient_restrictions", Some(Subject::Recipient)),
    ("smtpd_data_restrictions", None),
    ("smtpd_end_of_data_restrictions", None),
    ("smtpd_etrn_restrictions", Some(Subject::Etrn)),
];

pub type List = Arc<[Restriction]>;

/// Every restriction list smtpd evaluates, and the classes they name.
#[derive(Clone, Debug)]
pub struct Restrictions {
    pub client: List,
    pub helo: List,
    pub sender: List,
    pub relay: List,
    pub recipient: List,
    pub data: List,
    pub end_of_data: List,
    pub etrn: List,
    pub classes: HashMap<String, List>,
}

impl Restrictions {
    /// Parses every list and class; errors come with the parameter they
    /// are in.
    pub fn load(config: &MainConfig) -> Result<Restrictions, Vec<(String, ListError)>> {
        let dir = config.config_dir();
        let class_names: Vec<String> = config.list("smtpd_restriction_classes");
        let is_class = |name: &str| class_names.iter().any(|c| c == name);
        let open = |spec: &str| open_table(spec, dir);
        let policy = |argument: &str| {
            PolicySpec::parse(argument, config).map_err(|error| ListError::BadArgument {
                name: "check_policy_service".to_string(),
                error,
            })
        };
        let mut errors = Vec::new();
        let mut classes = HashMap::new();
        for name in &class_names {
            if !config.is_known(name) {
                errors.push((
                    "smtpd_restriction_classes".to_string(),
                    ListError::UnknownClass(name.clone()),
                ));
                continue;
            }
            // A class's bare tables are client, helo, sender or recipient
            // checks depending on where it is used; Postfix takes the
            // caller's. Recipient is the place classes are used.
            let ctx = ParseContext {
                default_access: Some(Subject::Recipient),
                open: &open,
                classes: &is_class,
                policy: &policy,
            };
            match parse_list(&config.list(name), &ctx) {
                Ok(list) => {
                    classes.insert(name.clone(), List::from(list));
                }
                Err(e) => errors.push((name.clone(), e)),
            }
        }
        for name in class_names.iter().filter(|n| classes.contains_key(*n)) {
            if refers_to(name, &classes[name], &classes, &mut Vec::new()) {
                errors.push((name.clone(), ListError::ClassLoop(name.clone())));
            }
        }
        let mut lists = Vec::new();
        for (parameter, default_access) in LIST_PARAMETERS {
            let ctx = ParseContext {
                default_access,
                open: &open,
                classes: &is_class,
                policy: &policy,
            };
            match parse_list(&config.list(parameter), &ctx) {
                Ok(list) => lists.push(List::from(list)),
                Err(e) => {
                    errors.push((parameter.to_string(), e));
                    lists.push(List::from(Vec::new()));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let [
            client,
            helo,
            sender,
            relay,
            recipient,
            data,
            end_of_data,
            etrn,
        ] = <[List; 8]>::try_from(lists).unwrap_or_else(|_| unreachable!("eight lists"));
        Ok(Restrictions {
            client,
            helo,
            sender,
            relay,
            recipient,
            data,
            end_of_data,
            etrn,
            classes,
        })
    }

    /// Neither RCPT list (nor a class they use) refuses unauthorised
    /// destinations: the server would be an open relay.
    pub fn is_open_relay(&self) -> bool {
        let guarded = |list: &List| self.any(list, &mut Vec::new(), &Restriction::guards_relay);
        !guarded(&self.relay) && !guarded(&self.recipient)
    }

    /// True when `test` holds for a restriction of `list` or of a class it
    /// names.
    pub fn any(
        &self,
        list: &[Restriction],
        seen: &mut Vec<String>,
        test: &dyn Fn(&Restriction) -> bool,
    ) -> bool {
        list.iter().any(|r| match r {
            Restriction::Class(name) if !seen.contains(name) => {
                seen.push(name.clone());
                self.classes
                    .get(name)
                    .is_some_and(|class| self.any(class, seen, test))
            }
            other => test(other),
        })
    }

    /// True when a list or class asks the verify service
    /// (reject_unverified_recipient or reject_unverified_sender).
    pub fn uses_address_verification(&self) -> bool {
        self.all_lists().any(|list| {
            list.iter().any(|r| {
                matches!(
                    r,
                    Restriction::RejectUnverifiedRecipient | Restriction::RejectUnverifiedSender
                )
            })
        })
    }

    /// Every list, for walking all restrictions.
    pub fn all_lists(&self) -> impl Iterator<Item = &List> {
        [
            &self.client,
            &self.helo,
            &self.sender,
            &self.relay,
            &self.recipient,
            &self.data,
            &self.end_of_data,
            &self.etrn,
        ]
        .into_iter()
        .chain(self.classes.values())
    }

    /// Parses an access table's result that names restrictions
    /// ("reject_unknown_sender_domain, permit" or a class name), as smtpd
    /// does at run time. Tables are refused there.
    pub fn parse_action(&self, text: &str, default_access: Subject) -> Result<List, ListError> {
        let refuse = |spec: &str| Err(ListError::TableInAction(spec.to_string()));
        let no_policy = |spec: &str| Err(ListError::PolicyInAction(spec.to_string()));
        let is_class = |name: &str| self.classes.contains_key(name);
        let ctx = ParseContext {
            default_access: Some(default_access),
            open: &refuse,
            classes: &is_class,
            policy: &no_policy,
        };
        parse_list(&split_list(text), &ctx).map(List::from)
    }
}

fn refers_to(
    target: &str,
    list: &[Restriction],
    classes: &HashMap<String, List>,
    seen: &mut Vec<String>,
) -> bool {
    list.iter().any(|r| match r {
        Restriction::Class(name) if name == target => true,
        Restriction::Class(name) if !seen.contains(name) => {
            seen.push(name.clone());
            classes
                .get(name)
                .is_some_and(|class| refers_to(target, class, classes, seen))
        }
        _ => false,
    })
}

fn open_table(spec: &str, dir: &Path) -> Result<Table, ListError> {
    Table::open(spec, dir).map_err(|e| ListError::BadArgument {
        name: spec.to_string(),
        error: e.to_string().replace('\n', "; "),
    })
}

/// An address's own form for a DNS list or access lookup: the
/// octet-reversed name under a zone (`4.3.2.1.zen.example`).
pub fn reversed_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut parts = Vec::with_capacity(32);
            for byte in v6.octets().iter().rev() {
                parts.push(format!("{:x}", byte & 0xf));
                parts.push(format!("{:x}", byte >> 4));
            }
            parts.join(".")
        }
    }
}

#[cfg(test)]
mod tests;
