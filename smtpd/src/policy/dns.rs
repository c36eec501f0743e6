//! The restrictions that ask the DNS: unknown HELO names and address
//! domains, DNS block and allow lists, and the access checks on a name's
//! MX, NS or A hosts. Every lookup is async, so a slow DNS server stalls
//! only the session that waits for it. A lookup that fails (rather than
//! answering "no such name") never lets a client through by itself: it
//! defers, as the *_tempfail_action parameters say.

use std::net::IpAddr;

use mailgate_config::Table;
use mailgate_config::restrictions::{Dnsxl, DnsxlCheck, ServerRecord, Subject, reversed_address};
use mailgate_dns::DnsError;
use mailgate_log::warning;

use super::access::{addr_lookup, dsn_fix, dsn_split};
use super::names::{valid_hostaddr, valid_hostname, valid_mailhost_addr, without_trailing_dot};
use super::{Decision, ErrorClass, Evaluator, State};
use crate::settings::TempfailAction;

/// Postfix's dns_rr_list_limit: the most server addresses looked at.
const MAX_SERVER_ADDRESSES: usize = 100;
/// Postfix's limit on the concatenated TXT text of a listing.
const MAX_TXT: usize = 500;

/// The result of a DNS list query.
enum Listing {
    Listed { txt: String },
    NotListed,
    Failed(String),
}

impl Evaluator<'_> {
    /// reject_unknown_helo_hostname: no A, AAAA or MX record.
    pub(super) async fn unknown_helo(&self, st: &mut State, helo: &str) -> Decision {
        if helo.starts_with('[') {
            return self.invalid_helo_literal(st, helo);
        }
        let name = without_trailing_dot(helo);
        let s = self.settings;
        let result = match s.dns.addresses(name).await {
            Ok(_) => return Decision::Dunno,
            Err(e) if e.is_permanent() => match s.dns.mx(name).await {
                Ok(_) => return Decision::Dunno,
                Err(mx) if mx.is_permanent() => e,
                Err(mx) => mx,
            },
            Err(e) => e,
        };
        match result {
            DnsError::TempFail(_) => self.defer_if_permit(
                st,
                s.unknown_helo_tempfail == TempfailAction::DeferIfPermit,
                450,
                "4.7.1",
                format!("<{helo}>: Helo command rejected: Host not found"),
            ),
            other => self.reject(
                st,
                ErrorClass::Policy,
                s.codes.unknown_hostname,
                "4.7.1",
                format!(
                    "<{helo}>: Helo command rejected: {}",
                    if matches!(other, DnsError::Malformed(_)) {
                        "Malformed DNS server reply"
                    } else {
                        "Host not found"
                    }
                ),
            ),
        }
    }

    /// reject_unknown_sender_domain, reject_unknown_recipient_domain: the
    /// domain has no MX and no address record (or a null MX).
    pub(super) async fn unknown_address(
        &self,
        st: &mut State,
        address: &str,
        who: Subject,
    ) -> Decision {
        let Some((_, domain)) = mailgate_config::split_address(address) else {
            return Decision::Dunno;
        };
        if domain.is_empty() || domain.starts_with('[') {
            return Decision::Dunno;
        }
        let domain = without_trailing_dot(&domain).to_string();
        let s = self.settings;
        let class = who.reply_class();
        let sender = who == Subject::Sender;
        let dsn = if sender { "4.1.8" } else { "4.1.2" };
        let failure = match s.dns.mx(&domain).await {
            Ok(mx) if mx.iter().any(|m| m.exchange.is_empty()) => {
                return self.reject(
                    st,
                    ErrorClass::Policy,
                    if sender { 550 } else { 556 },
                    if sender { "4.7.27" } else { "4.1.10" },
                    format!(
                        "<{address}>: {class} rejected: Domain {domain} does not accept mail (nullMX)"
                    ),
                );
            }
            Ok(_) => return Decision::Dunno,
            Err(DnsError::TempFail(e)) => DnsError::TempFail(e),
            Err(mx) => match s.dns.addresses(&domain).await {
                Ok(_) => return Decision::Dunno,
                Err(DnsError::TempFail(e)) => DnsError::TempFail(e),
                Err(_) => mx,
            },
        };
        match failure {
            DnsError::TempFail(_) => self.defer_if_permit(
                st,
                s.unknown_address_tempfail == TempfailAction::DeferIfPermit,
                450,
                dsn,
                format!("<{address}>: {class} rejected: Domain not found"),
            ),
            other => self.reject(
                st,
                ErrorClass::Policy,
                s.codes.unknown_address,
                dsn,
                format!(
                    "<{address}>: {class} rejected: {}",
                    if matches!(other, DnsError::Malformed(_)) {
                        "Malformed DNS server reply"
                    } else {
                        "Domain not found"
                    }
                ),
            ),
        }
    }

    /// The DNS list restrictions.
    pub(super) async fn dnsxl(&self, st: &mut State, check: DnsxlCheck, list: &Dnsxl) -> Decision {
        use DnsxlCheck as C;
        let (what, class) = match check {
            C::RejectClient | C::PermitClient => (st.peer.addr.to_string(), "Client host"),
            C::RejectClientName | C::PermitClientName => (st.peer.name.clone(), "Client host"),
            C::RejectReverseClientName => (st.peer.reverse_name.clone(), "Unverified Client host"),
            C::RejectHelo => match &st.helo {
                Some(helo) => (helo.clone(), "Helo command"),
                None => return Decision::Dunno,
            },
            C::RejectSender => match &st.sender {
                Some(sender) if !sender.is_empty() => (sender.clone(), "Sender address"),
                _ => return Decision::Dunno,
            },
            C::RejectRecipient => match &st.recipient {
                Some(rcpt) => (rcpt.clone(), "Recipient address"),
                None => return Decision::Dunno,
            },
        };
        let by_address = matches!(check, C::RejectClient | C::PermitClient);
        let permits = matches!(check, C::PermitClient | C::PermitClientName);
        if !by_address && what == "unknown" && class != "Helo command" {
            return Decision::Dunno;
        }
        // Safety: an allow list never lets mail through to a destination
        // that is not ours.
        if permits
            && st.stage == "RCPT"
            && let Some(rcpt) = &st.recipient
            && !self.is_auth_destination(rcpt)
        {
            return Decision::Dunno;
        }
        let query = if by_address {
            format!("{}.{}", reversed_address(st.peer.addr), list.domain)
        } else {
            match domain_query(&what) {
                Some(name) => format!("{name}.{}", list.domain),
                None => return Decision::Dunno,
            }
        };
        match self.query_list(&query, list).await {
            Listing::NotListed => Decision::Dunno,
            Listing::Listed { .. } if permits => {
                let label = st.peer.label();
                self.permit(
                    st,
                    if by_address {
                        "permit_dnswl_client"
                    } else {
                        "permit_rhswl_client"
                    },
                    "Client host",
                    &label,
                )
            }
            Listing::Listed { txt } => self.rbl_reply(st, list, &what, class, &txt),
            Listing::Failed(e) if permits => {
                warning!("{query}: DNS allow list lookup error: {e}");
                self.defer_if_reject(
                    st,
                    450,
                    "4.7.1",
                    format!("<{what}>: {class} rejected: Service unavailable"),
                )
            }
            Listing::Failed(e) => {
                warning!("{query}: RBL lookup error: {e}");
                let text = format!(
                    "<{what}>: {class} rejected: Service unavailable; cannot check {}",
                    list.domain
                );
                match self.settings.rbl_tempfail {
                    TempfailAction::DeferIfPermit => {
                        self.defer_if_permit(st, true, 450, "4.7.1", text)
                    }
                    TempfailAction::Defer => {
                        self.reject(st, ErrorClass::Policy, 450, "4.7.1", text)
                    }
                    TempfailAction::Dunno => Decision::Dunno,
                }
            }
        }
    }

    async fn query_list(&self, query: &str, list: &Dnsxl) -> Listing {
        let dns = &self.settings.dns;
        let addresses = match dns.a(query).await {
            Ok(addresses) => addresses,
            Err(DnsError::TempFail(e)) => return Listing::Failed(e),
            Err(_) => return Listing::NotListed,
        };
        if let Some(filter) = &list.filter
            && !addresses.iter().any(|a| filter.matches(*a))
        {
            return Listing::NotListed;
        }
        let mut txt = String::new();
        if let Ok(records) = dns.txt(query).await {
            for (i, record) in records.iter().enumerate() {
                if i > 0 {
                    txt.push_str(" / ");
                }
                txt.push_str(record);
                if txt.len() >= MAX_TXT {
                    break;
                }
            }
        }
        let mut end = txt.len().min(MAX_TXT);
        while !txt.is_char_boundary(end) {
            end -= 1;
        }
        txt.truncate(end);
        Listing::Listed { txt }
    }

    /// The reply for a listed client: rbl_reply_maps or default_rbl_reply,
    /// with $rbl_code, $rbl_domain, $rbl_reason, $rbl_what and $rbl_class.
    fn rbl_reply(
        &self,
        st: &mut State,
        list: &Dnsxl,
        what: &str,
        class: &str,
        txt: &str,
    ) -> Decision {
        let s = self.settings;
        let template = s
            .rbl_reply_maps
            .iter()
            .find_map(|t| t.lookup(&list.spec).or_else(|| t.lookup(&list.domain)))
            .unwrap_or_else(|| s.default_rbl_reply.clone());
        let code = s.codes.maps_rbl.to_string();
        let lookup = |name: &str| -> Option<String> {
            Some(match name {
                "rbl_code" => code.clone(),
                "rbl_domain" => list.domain.clone(),
                "rbl_reason" | "rbl_txt" => txt.to_string(),
                "rbl_what" => what.to_string(),
                "rbl_class" => class.to_string(),
                "client_address" => st.peer.addr.to_string(),
                "client_name" => st.peer.name.clone(),
                "reverse_client_name" => st.peer.reverse_name.clone(),
                "helo_name" => st.helo.clone().unwrap_or_default(),
                "sender" => st.sender.clone().unwrap_or_default(),
                "recipient" => st.recipient.clone().unwrap_or_default(),
                _ => return None,
            })
        };
        let text = expand(&template, &lookup);
        let bytes = text.as_bytes();
        let well_formed = bytes.len() > 4
            && matches!(bytes[0], b'4' | b'5')
            && bytes[1].is_ascii_digit()
            && bytes[2].is_ascii_digit()
            && bytes[3] == b' ';
        if !well_formed {
            warning!("rbl response code configuration error: {text}");
            return self.reject(
                st,
                ErrorClass::Policy,
                450,
                "4.7.1",
                "Service unavailable".into(),
            );
        }
        let code: u16 = text[..3].parse().unwrap_or(450);
        let (dsn, rest) = dsn_split("4.7.1", &text[4..]);
        let rest = if rest.is_empty() {
            "Service unavailable"
        } else {
            rest
        };
        self.reject(
            st,
            ErrorClass::Policy,
            code,
            &dsn_fix(&dsn, class),
            rest.to_string(),
        )
    }

    /// check_*_{a,mx,ns}_access: the hosts that serve a name, looked up in
    /// an access table by name and by address.
    pub(super) async fn server_access(
        &self,
        st: &mut State,
        subject: Subject,
        record: ServerRecord,
        table: &Table,
        default_access: Option<Subject>,
    ) -> Decision {
        let (target, reply_name) = match subject {
            Subject::Client if st.peer.name != "unknown" => (st.peer.name.clone(), st.peer.label()),
            Subject::ReverseClient if st.peer.reverse_name != "unknown" => {
                (st.peer.reverse_name.clone(), st.peer.reverse_name.clone())
            }
            Subject::Helo => match &st.helo {
                Some(helo) => (helo.clone(), helo.clone()),
                None => return Decision::Dunno,
            },
            Subject::Sender => match &st.sender {
                Some(sender) if !sender.is_empty() => (sender.clone(), sender.clone()),
                _ => return Decision::Dunno,
            },
            Subject::Recipient => match &st.recipient {
                Some(rcpt) if !rcpt.is_empty() => (rcpt.clone(), rcpt.clone()),
                _ => return Decision::Dunno,
            },
            _ => return Decision::Dunno,
        };
        let class = subject.reply_class();
        let decision = self
            .server_access_of(
                st,
                &target,
                record,
                table,
                &reply_name,
                class,
                default_access,
            )
            .await;
        // An access table may deny by the servers, never allow: a client
        // controls which servers its names point at.
        if decision == Decision::Permit && !st.actions.discard {
            warning!(
                "restriction {} returns OK for {target}; this is not allowed for security \
                 reasons; use DUNNO instead of OK if you want to make an exception",
                table.spec()
            );
            return self.server_error(st);
        }
        decision
    }

    #[allow(clippy::too_many_arguments)]
    async fn server_access_of(
        &self,
        st: &mut State,
        target: &str,
        record: ServerRecord,
        table: &Table,
        reply_name: &str,
        class: &str,
        default_access: Option<Subject>,
    ) -> Decision {
        let dns = &self.settings.dns;
        let domain = target.rsplit_once('@').map_or(target, |(_, d)| d);
        if let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            if record == ServerRecord::Ns || !valid_mailhost_addr(inner) {
                return Decision::Dunno;
            }
            let bare = inner
                .get(5..)
                .filter(|_| inner.len() > 5 && inner[..5].eq_ignore_ascii_case("IPv6:"))
                .unwrap_or(inner);
            return match bare
                .parse::<IpAddr>()
                .ok()
                .and_then(|ip| addr_lookup(table, ip))
            {
                Some(value) => {
                    self.table_result(st, table.spec(), &value, reply_name, class, default_access)
                        .await
                }
                None => Decision::Dunno,
            };
        }
        let domain = without_trailing_dot(domain).to_string();
        let servers: Vec<String> = match record {
            ServerRecord::A => vec![domain.clone()],
            ServerRecord::Mx => match dns.mx(&domain).await {
                Ok(mx) if mx.iter().any(|m| m.exchange.is_empty()) => return Decision::Dunno,
                Ok(mx) => mx.into_iter().map(|m| m.exchange).collect(),
                Err(DnsError::NotFound | DnsError::NoData) => vec![domain.clone()],
                Err(e) => {
                    warning!("Unable to look up MX host for {domain}: {e}");
                    return Decision::Dunno;
                }
            },
            ServerRecord::Ns => {
                let mut zone = domain.as_str();
                loop {
                    match dns.ns(zone).await {
                        Ok(ns) => break ns,
                        Err(DnsError::NotFound | DnsError::NoData) => match zone.split_once('.') {
                            Some((_, parent)) if !parent.is_empty() => zone = parent,
                            _ => return Decision::Dunno,
                        },
                        Err(e) => {
                            warning!("Unable to look up NS host for {zone}: {e}");
                            return Decision::Dunno;
                        }
                    }
                }
            }
        };
        let mut seen_addresses = 0;
        for server in servers {
            if valid_hostaddr(&server) {
                if let Ok(ip) = server.parse::<IpAddr>()
                    && let Some(value) = addr_lookup(table, ip)
                {
                    return self
                        .table_result(st, table.spec(), &value, reply_name, class, default_access)
                        .await;
                }
                continue;
            }
            if record != ServerRecord::A
                && let Some(value) = self.domain_lookup(table, &server)
            {
                return self
                    .table_result(st, table.spec(), &value, reply_name, class, default_access)
                    .await;
            }
            let addresses = match dns.addresses(&server).await {
                Ok(addresses) => addresses,
                Err(e) => {
                    if record != ServerRecord::A {
                        warning!(
                            "Unable to look up {record:?} host {server} for {class} {reply_name}: {e}"
                        );
                    }
                    continue;
                }
            };
            for ip in addresses {
                seen_addresses += 1;
                if seen_addresses > MAX_SERVER_ADDRESSES {
                    warning!(
                        "{record:?} server address count limit ({MAX_SERVER_ADDRESSES}) exceeded for {class} {reply_name} -- ignoring the remainder"
                    );
                    return Decision::Dunno;
                }
                if let Some(value) = addr_lookup(table, ip) {
                    return self
                        .table_result(st, table.spec(), &value, reply_name, class, default_access)
                        .await;
                }
            }
        }
        Decision::Dunno
    }
}

/// The domain an RHSBL is asked about: after the last '@', not an address
/// literal, not ending in a numeric label, a valid host name.
fn domain_query(what: &str) -> Option<String> {
    let domain = what.rsplit_once('@').map_or(what, |(_, d)| d);
    let domain = without_trailing_dot(domain);
    if domain.is_empty() || domain.starts_with('[') {
        return None;
    }
    let last = domain.rsplit('.').next().unwrap_or(domain);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    valid_hostname(domain).then(|| domain.to_ascii_lowercase())
}

/// `$name`, `${name}`, `${name?text}` (text when name is set),
/// `${name:text}` (text when it is not); `$$` is a dollar. Unknown names are
/// empty.
pub(crate) fn expand(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut end = None;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(end) = end else {
                out.push_str(&rest[pos..]);
                return out;
            };
            let body = &inner[..end];
            let name_len = body
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(body.len());
            let value = lookup(&body[..name_len]).unwrap_or_default();
            match body[name_len..].chars().next() {
                Some('?') if !value.is_empty() => {
                    out.push_str(&expand(&body[name_len + 1..], lookup))
                }
                Some(':') if value.is_empty() => {
                    out.push_str(&expand(&body[name_len + 1..], lookup))
                }
                Some(_) => {}
                None => out.push_str(&value),
            }
            rest = &inner[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&after[..len]).unwrap_or_default());
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rbl_reply_expands_as_postfix() {
        let template = "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}";
        let with = |reason: &'static str| {
            move |name: &str| -> Option<String> {
                Some(match name {
                    "rbl_code" => "554".into(),
                    "rbl_class" => "Client host".into(),
                    "rbl_what" => "192.0.2.1".into(),
                    "rbl_domain" => "zen.example".into(),
                    "rbl_reason" => reason.into(),
                    _ => return None,
                })
            }
        };
        assert_eq!(
            expand(template, &with("listed for spam")),
            "554 Service unavailable; Client host [192.0.2.1] blocked using zen.example; listed for spam"
        );
        assert_eq!(
            expand(template, &with("")),
            "554 Service unavailable; Client host [192.0.2.1] blocked using zen.example"
        );
        assert_eq!(
            expand("$$x ${nothing:none} $unknown.", &with("")),
            "$x none ."
        );
    }

    #[test]
    fn rhsbl_queries() {
        assert_eq!(
            domain_query("user@Spam.Example"),
            Some("spam.example".into())
        );
        assert_eq!(domain_query("host.example."), Some("host.example".into()));
        assert_eq!(domain_query("user@[192.0.2.1]"), None);
        assert_eq!(domain_query("1.2.3.4"), None);
        assert_eq!(domain_query("bad..name"), None);
    }
}
