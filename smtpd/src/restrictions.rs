//! SMTP access restrictions, evaluated as Postfix does (SMTPD_ACCESS_README).
//!
//! A restriction list is an ordered list; each restriction answers Permit,
//! Reject, Defer or Dunno, and the first answer that is not Dunno ends the
//! list. Permit ends only its own list: at RCPT both
//! smtpd_relay_restrictions and smtpd_recipient_restrictions must let the
//! recipient through. One evaluator serves every list so that the client,
//! HELO, sender and data restrictions, DNSBLs and policy services join it
//! as new `Restriction` variants and `Context` fields.

use std::fmt;
use std::net::IpAddr;

use mailgate_config::{Table, lookup_address};
use mailgate_log::warning;

use crate::address::Address;
use crate::reply::{Reply, status_for};
use crate::settings::Settings;

/// One restriction of a list, as parsed at start-up.
#[derive(Clone, Debug)]
pub enum Restriction {
    Permit,
    Reject,
    Defer,
    PermitMynetworks,
    /// Accepted now; Dunno until SMTP AUTH exists.
    PermitSaslAuthenticated,
    PermitAuthDestination,
    RejectUnauthDestination,
    DeferUnauthDestination,
    CheckRecipientAccess(Table),
}

/// A list refers to this when a parameter value is wrong at start-up.
#[derive(Debug)]
pub enum ListError {
    UnknownRestriction(String),
    MissingTable(String),
    Table {
        restriction: String,
        spec: String,
        error: String,
    },
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListError::UnknownRestriction(name) => write!(f, "unknown restriction \"{name}\""),
            ListError::MissingTable(name) => {
                write!(
                    f,
                    "\"{name}\" needs a lookup table (such as {name} hash:/etc/mailgate/access)"
                )
            }
            ListError::Table {
                restriction,
                spec,
                error,
            } => write!(f, "{restriction} {spec}: {error}"),
        }
    }
}

impl Restriction {
    /// Parses a list parameter's items; a table follows its restriction name
    /// as the next item, as in main.cf.
    pub fn parse_list(
        items: &[String],
        open: &dyn Fn(&str) -> Result<Table, String>,
    ) -> Result<Vec<Restriction>, ListError> {
        let mut list = Vec::new();
        let mut items = items.iter();
        while let Some(item) = items.next() {
            let restriction = match item.to_ascii_lowercase().as_str() {
                "permit" => Restriction::Permit,
                "reject" => Restriction::Reject,
                "defer" => Restriction::Defer,
                "permit_mynetworks" => Restriction::PermitMynetworks,
                "permit_sasl_authenticated" => Restriction::PermitSaslAuthenticated,
                "permit_auth_destination" => Restriction::PermitAuthDestination,
                "reject_unauth_destination" => Restriction::RejectUnauthDestination,
                "defer_unauth_destination" => Restriction::DeferUnauthDestination,
                "check_recipient_access" => {
                    let spec = items
                        .next()
                        .ok_or_else(|| ListError::MissingTable(item.clone()))?;
                    let table = open(spec).map_err(|error| ListError::Table {
                        restriction: item.clone(),
                        spec: spec.clone(),
                        error,
                    })?;
                    Restriction::CheckRecipientAccess(table)
                }
                _ => return Err(ListError::UnknownRestriction(item.clone())),
            };
            list.push(restriction);
        }
        Ok(list)
    }

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

/// A restriction's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Permit,
    Reject(Reply),
    Defer(Reply),
    Dunno,
}

/// What the restrictions may look at.
pub struct Context<'a> {
    pub client_addr: IpAddr,
    /// The recipient under test (RCPT stage).
    pub recipient: &'a Address,
}

pub struct Evaluator<'a> {
    pub settings: &'a Settings,
}

impl Evaluator<'_> {
    /// The RCPT decision: both lists, then relay_recipient_maps. Ok means
    /// accept; Err carries the 4xx or 5xx reply.
    pub fn check_recipient(&self, ctx: &Context<'_>) -> Result<(), Reply> {
        for list in [
            &self.settings.relay_restrictions,
            &self.settings.recipient_restrictions,
        ] {
            match self.evaluate(list, ctx) {
                Verdict::Reject(reply) | Verdict::Defer(reply) => return Err(reply),
                Verdict::Permit | Verdict::Dunno => {}
            }
        }
        self.check_relay_recipient(ctx.recipient)
    }

    /// Runs one list to its first answer that is not Dunno.
    pub fn evaluate(&self, list: &[Restriction], ctx: &Context<'_>) -> Verdict {
        list.iter()
            .map(|r| self.apply(r, ctx))
            .find(|v| *v != Verdict::Dunno)
            .unwrap_or(Verdict::Dunno)
    }

    fn apply(&self, restriction: &Restriction, ctx: &Context<'_>) -> Verdict {
        let s = self.settings;
        let rcpt = ctx.recipient;
        match restriction {
            Restriction::Permit => Verdict::Permit,
            Restriction::Reject => Verdict::Reject(rejected(s.reject_code, rcpt, "Access denied")),
            Restriction::Defer => Verdict::Defer(rejected(s.defer_code, rcpt, "Access denied")),
            Restriction::PermitMynetworks if s.mynetworks.contains(ctx.client_addr) => {
                Verdict::Permit
            }
            Restriction::PermitMynetworks | Restriction::PermitSaslAuthenticated => Verdict::Dunno,
            Restriction::PermitAuthDestination if self.is_auth_destination(rcpt) => Verdict::Permit,
            Restriction::PermitAuthDestination => Verdict::Dunno,
            Restriction::RejectUnauthDestination | Restriction::DeferUnauthDestination
                if self.is_auth_destination(rcpt) =>
            {
                Verdict::Dunno
            }
            Restriction::RejectUnauthDestination => {
                Verdict::Reject(relay_denied(s.relay_domains_reject_code, rcpt))
            }
            Restriction::DeferUnauthDestination => Verdict::Defer(relay_denied(s.defer_code, rcpt)),
            Restriction::CheckRecipientAccess(table) => {
                match lookup_address(table, &rcpt.to_string(), &s.access_lookup) {
                    Some(action) => self.access_action(table, &action, rcpt),
                    None => Verdict::Dunno,
                }
            }
        }
    }

    /// Mail for this recipient is ours to take: its domain is in
    /// relay_domains and its local part hides no other destination.
    fn is_auth_destination(&self, rcpt: &Address) -> bool {
        !rcpt.is_routed()
            && rcpt
                .domain()
                .is_some_and(|d| self.settings.relay_domains.matches(d))
    }

    /// access(5) actions.
    fn access_action(&self, table: &Table, action: &str, rcpt: &Address) -> Verdict {
        let s = self.settings;
        let action = action.trim();
        let (word, text) = match action.split_once([' ', '\t']) {
            Some((word, text)) => (word, text.trim()),
            None => (action, ""),
        };
        let text_or = |default: &'static str| if text.is_empty() { default } else { text };
        let upper = word.to_ascii_uppercase();
        match upper.as_str() {
            "OK" | "PERMIT" => Verdict::Permit,
            "DUNNO" => Verdict::Dunno,
            "REJECT" => Verdict::Reject(rejected(
                s.access_map_reject_code,
                rcpt,
                text_or("Access denied"),
            )),
            "DEFER" => Verdict::Defer(rejected(
                s.access_map_defer_code,
                rcpt,
                text_or("Access denied"),
            )),
            // An all-numeric result means OK (access(5)).
            _ if word.bytes().all(|b| b.is_ascii_digit()) && text.is_empty() => Verdict::Permit,
            _ if is_reply_code(word) => {
                let code = word.parse().unwrap_or(554);
                // "550 5.1.1 text": keep the client-visible status but make
                // its class agree with the code.
                let (status, text) = match text.split_once(' ') {
                    Some((status, rest)) if is_status(status) => (status_for(code, status), rest),
                    _ if is_status(text) => (status_for(code, text), ""),
                    _ => (status_for(code, "X.7.1"), text),
                };
                let reply = Reply::new(
                    code,
                    format!("{status} <{rcpt}>: Recipient address rejected: {text}"),
                );
                if code < 500 {
                    Verdict::Defer(reply)
                } else {
                    Verdict::Reject(reply)
                }
            }
            _ => {
                warning!(
                    "{}: unknown access action \"{action}\" for recipient <{rcpt}>: treated as DUNNO",
                    table.spec()
                );
                Verdict::Dunno
            }
        }
    }

    /// With relay_recipient_maps set, a recipient in relay_domains must be
    /// listed as "user@domain" or "@domain".
    fn check_relay_recipient(&self, rcpt: &Address) -> Result<(), Reply> {
        let s = self.settings;
        if s.relay_recipient_maps.is_empty() {
            return Ok(());
        }
        let Some(domain) = rcpt.domain() else {
            return Ok(());
        };
        if !s.relay_domains.matches(domain) {
            return Ok(());
        }
        let address = rcpt.to_string();
        let base = s.recipient_delimiter.and_then(|delim| {
            let (local, _) = address.rsplit_once('@')?;
            let (base, _) = local.split_once(delim)?;
            (!base.is_empty()).then(|| format!("{base}@{domain}"))
        });
        let found = s.relay_recipient_maps.iter().any(|table| {
            if table.is_pattern_table() {
                return table.lookup(&address).is_some();
            }
            table.lookup(&address).is_some()
                || base.as_deref().is_some_and(|b| table.lookup(b).is_some())
                || table
                    .lookup(&format!("@{}", domain.to_lowercase()))
                    .is_some()
        });
        if found {
            return Ok(());
        }
        let code = s.unknown_relay_recipient_reject_code;
        Err(Reply::new(
            code,
            format!(
                "{} <{rcpt}>: Recipient address rejected: User unknown in relay recipient table",
                status_for(code, "X.1.1")
            ),
        ))
    }
}

fn rejected(code: u16, rcpt: &Address, text: &str) -> Reply {
    Reply::new(
        code,
        format!(
            "{} <{rcpt}>: Recipient address rejected: {text}",
            status_for(code, "X.7.1")
        ),
    )
}

fn relay_denied(code: u16, rcpt: &Address) -> Reply {
    Reply::new(
        code,
        format!(
            "{} <{rcpt}>: Relay access denied",
            status_for(code, "X.7.1")
        ),
    )
}

/// 4NN or 5NN.
fn is_reply_code(word: &str) -> bool {
    word.len() == 3
        && word.bytes().all(|b| b.is_ascii_digit())
        && matches!(word.as_bytes()[0], b'4' | b'5')
}

/// An enhanced status code: class.subject.detail, digits (RFC 3463).
fn is_status(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}
