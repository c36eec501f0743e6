//! Access tables (access(5)): which keys a client, HELO name or address is
//! looked up under, and what each result means.

use std::net::IpAddr;

use mailgate_config::restrictions::{Restriction, Subject};
use mailgate_config::{AddressLookup, Table, lookup_address};
use mailgate_log::warning;

use super::names::valid_hostaddr;
use super::{Decision, ErrorClass, Evaluator, State};

impl Evaluator<'_> {
    /// check_{client,reverse_client_hostname,helo,sender,recipient,etrn}_access.
    pub(super) async fn access(
        &self,
        st: &mut State,
        subject: Subject,
        table: &Table,
        default_access: Option<Subject>,
    ) -> Decision {
        let class = subject.reply_class();
        match subject {
            Subject::Client => {
                let (name, addr) = (st.peer.name.clone(), st.peer.addr);
                let label = st.peer.label();
                self.name_addr_access(st, table, &name, addr, &label, class, default_access)
                    .await
            }
            Subject::ReverseClient => {
                let (name, addr) = (st.peer.reverse_name.clone(), st.peer.addr);
                let decision = self
                    .name_addr_access(st, table, &name, addr, &name, class, default_access)
                    .await;
                // The client controls its PTR name: it may deny, never allow.
                if decision == Decision::Permit && !st.actions.discard {
                    warning!(
                        "restriction check_reverse_client_hostname_access {} returns OK for {name}; \
                         this is not allowed for security reasons; use DUNNO instead of OK if you \
                         want to make an exception",
                        table.spec()
                    );
                    return self.server_error(st);
                }
                decision
            }
            Subject::Helo => match st.helo.clone() {
                Some(helo) => match self.domain_lookup(table, &helo) {
                    Some(value) => {
                        self.table_result(st, table.spec(), &value, &helo, class, default_access)
                            .await
                    }
                    None => Decision::Dunno,
                },
                None => Decision::Dunno,
            },
            Subject::Sender => match st.sender.clone() {
                Some(sender) if sender.is_empty() => {
                    match table.lookup(&self.settings.null_access_key) {
                        Some(value) => {
                            self.table_result(
                                st,
                                table.spec(),
                                &value,
                                &sender,
                                class,
                                default_access,
                            )
                            .await
                        }
                        None => Decision::Dunno,
                    }
                }
                Some(sender) => {
                    self.mail_access(st, table, &sender, class, default_access)
                        .await
                }
                None => Decision::Dunno,
            },
            Subject::Recipient => match st.recipient.clone() {
                Some(rcpt) => {
                    self.mail_access(st, table, &rcpt, class, default_access)
                        .await
                }
                None => Decision::Dunno,
            },
            // ETRN is not implemented: there is never a domain to look up.
            Subject::Etrn => Decision::Dunno,
        }
    }

    pub(super) async fn mail_access(
        &self,
        st: &mut State,
        table: &Table,
        address: &str,
        class: &str,
        default_access: Option<Subject>,
    ) -> Decision {
        let opts = AddressLookup {
            parent_domains: true,
            parent_bare: self.settings.access_parent_bare,
            recipient_delimiter: self.settings.recipient_delimiter,
        };
        match lookup_address(table, address, &opts) {
            Some(value) => {
                self.table_result(st, table.spec(), &value, address, class, default_access)
                    .await
            }
            None => Decision::Dunno,
        }
    }

    /// The host name (and its parent domains), then the address (and its
    /// parent networks). A domain entry can pre-empt a more specific
    /// address entry, as in Postfix.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn name_addr_access(
        &self,
        st: &mut State,
        table: &Table,
        name: &str,
        addr: IpAddr,
        reply_name: &str,
        class: &str,
        default_access: Option<Subject>,
    ) -> Decision {
        let value = self
            .domain_lookup(table, name)
            .or_else(|| addr_lookup(table, addr));
        match value {
            Some(value) => {
                self.table_result(st, table.spec(), &value, reply_name, class, default_access)
                    .await
            }
            None => Decision::Dunno,
        }
    }

    /// A name, then its parent domains ("example.com", "com"; or
    /// ".example.com" unless smtpd_access_maps is in
    /// parent_domain_matches_subdomains). Pattern tables see the name once;
    /// numeric names get no parents.
    pub(super) fn domain_lookup(&self, table: &Table, name: &str) -> Option<String> {
        if name.is_empty() {
            return None;
        }
        if let Some(value) = table.lookup(name) {
            return Some(value);
        }
        if table.is_pattern_table() || valid_hostaddr(name) {
            return None;
        }
        let mut rest = name;
        while let Some(dot) = rest[1..].find('.').map(|i| i + 1) {
            let parent = &rest[dot..];
            let key = if self.settings.access_parent_bare {
                &parent[1..]
            } else {
                parent
            };
            if key.is_empty() || key == "." {
                break;
            }
            if let Some(value) = table.lookup(key) {
                return Some(value);
            }
            rest = &rest[dot..];
        }
        None
    }

    /// What an access table's (or a policy server's) result means
    /// (Postfix's check_table_result); `source` names the table or server
    /// in warnings.
    pub(super) async fn table_result(
        &self,
        st: &mut State,
        source: &str,
        value: &str,
        name: &str,
        class: &str,
        default_access: Option<Subject>,
    ) -> Decision {
        let s = self.settings;
        let value = value.trim();
        let (word, text) = match value.split_once([' ', '\t']) {
            Some((word, text)) => (word, text.trim_start()),
            None => (value, ""),
        };
        let upper = word.to_ascii_uppercase();
        let spec = source;
        match upper.as_str() {
            "DUNNO" => Decision::Dunno,
            "REJECT" => self.refuse(st, s.codes.map_reject, "5.7.1", text, name, class),
            "DEFER" => self.refuse(st, s.codes.map_defer, "4.7.1", text, name, class),
            "INFO" | "WARN" => {
                st.log_whatsup(&upper.to_ascii_lowercase(), text);
                Decision::Dunno
            }
            "FILTER" => {
                if !self.can_delegate(st, spec, "FILTER") {
                    return Decision::Dunno;
                }
                match text.split_once(':') {
                    Some((transport, _)) if !transport.is_empty() && !text.contains(' ') => {}
                    _ => {
                        warning!(
                            "access table {spec} entry \"{value}\" requires transport:destination"
                        );
                        return Decision::Dunno;
                    }
                }
                st.log_whatsup(
                    "filter",
                    &format!("<{name}>: {class} triggers FILTER {text}"),
                );
                st.actions.filter = Some(text.to_string());
                Decision::Dunno
            }
            "HOLD" | "DISCARD" => {
                if !self.can_delegate(st, spec, &upper) {
                    return Decision::Dunno;
                }
                let what = if text.is_empty() {
                    format!("triggers {upper} action")
                } else {
                    text.to_string()
                };
                st.log_whatsup(
                    &upper.to_ascii_lowercase(),
                    &format!("<{name}>: {class} {what}"),
                );
                if upper == "HOLD" {
                    st.actions
                        .hold
                        .get_or_insert(format!("<{name}>: {class} {what}"));
                    Decision::Dunno
                } else {
                    st.actions.discard = true;
                    self.permit(st, "DISCARD", class, name)
                }
            }
            "REDIRECT" | "BCC" => {
                if !self.can_delegate(st, spec, &upper) {
                    return Decision::Dunno;
                }
                if !text.contains('@') {
                    warning!("access table {spec} entry \"{value}\" requires user@domain target");
                    return Decision::Dunno;
                }
                st.log_whatsup(
                    &upper.to_ascii_lowercase(),
                    &format!("<{name}>: {class} triggers {upper} {text}"),
                );
                if upper == "REDIRECT" {
                    st.actions.redirect = Some(text.to_string());
                } else if !st.actions.bcc.iter().any(|b| b == text) {
                    st.actions.bcc.push(text.to_string());
                }
                Decision::Dunno
            }
            "DEFER_IF_PERMIT" => {
                let (dsn, text) = dsn_split("4.7.1", text);
                let text = if text.is_empty() {
                    "Service unavailable"
                } else {
                    text
                };
                self.defer_if_permit(
                    st,
                    true,
                    s.codes.map_defer,
                    &dsn_fix(&dsn, class),
                    format!("<{name}>: {class} rejected: {text}"),
                )
            }
            "DEFER_IF_REJECT" => {
                let (dsn, text) = dsn_split("4.7.1", text);
                let text = if text.is_empty() {
                    "Service unavailable"
                } else {
                    text
                };
                self.defer_if_reject(
                    st,
                    s.codes.map_defer,
                    &dsn_fix(&dsn, class),
                    format!("<{name}>: {class} rejected: {text}"),
                )
            }
            "PREPEND" => {
                if !self.can_delegate(st, spec, "PREPEND") {
                    return Decision::Dunno;
                }
                if st.stage == "END-OF-MESSAGE" {
                    warning!(
                        "access table {spec}: action PREPEND must be used before smtpd_end_of_data_restrictions"
                    );
                    return Decision::Dunno;
                }
                if !is_header(text) {
                    warning!("access table {spec} entry \"{value}\" requires header: text");
                    return Decision::Dunno;
                }
                if !st.actions.prepend.iter().any(|p| p == text) {
                    st.actions.prepend.push(text.to_string());
                }
                Decision::Dunno
            }
            _ if value.bytes().all(|b| b.is_ascii_digit()) => self.permit(st, word, class, name),
            _ if word.len() == 3
                && !text.is_empty()
                && matches!(word.as_bytes()[0], b'4' | b'5')
                && word.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let code: u16 = word.parse().unwrap_or(554);
                let default = format!("{}.7.1", &word[..1]);
                self.refuse(st, code, &default, text, name, class)
            }
            "OK" | "RELAY" => self.permit(st, word, class, name),
            _ => {
                self.result_list(st, spec, value, name, class, default_access)
                    .await
            }
        }
    }

    /// REJECT, DEFER and 4NN/5NN results: an optional enhanced status code
    /// leads the text, which defaults to "Access denied".
    fn refuse(
        &self,
        st: &mut State,
        code: u16,
        default_dsn: &str,
        text: &str,
        name: &str,
        class: &str,
    ) -> Decision {
        let (dsn, text) = dsn_split(default_dsn, text);
        let text = if text.is_empty() {
            "Access denied"
        } else {
            text
        };
        self.reject(
            st,
            ErrorClass::Policy,
            code,
            &dsn_fix(&dsn, class),
            format!("<{name}>: {class} rejected: {text}"),
        )
    }

    /// A result that names restrictions (or a class): evaluated in place.
    async fn result_list(
        &self,
        st: &mut State,
        spec: &str,
        value: &str,
        name: &str,
        class: &str,
        default_access: Option<Subject>,
    ) -> Decision {
        if value.is_empty() {
            warning!("access table {spec} entry has an empty value: treated as OK");
            return Decision::Permit;
        }
        let list = match self
            .settings
            .restrictions
            .parse_action(value, default_access.unwrap_or(Subject::Recipient))
        {
            Ok(list) => list,
            Err(e) => {
                warning!("access table {spec}: result \"{value}\": {e}");
                return self.server_error(st);
            }
        };
        let list: Vec<Restriction> = list.to_vec();
        self.run(st, &list, name, class, default_access).await
    }

    /// HOLD, DISCARD, REDIRECT, BCC and PREPEND act on a transaction; with
    /// smtpd_delay_reject = no a client or HELO restriction runs before
    /// there is one.
    fn can_delegate(&self, st: &State, spec: &str, action: &str) -> bool {
        if st.sender.is_none() {
            warning!(
                "access table {spec}: with smtpd_delay_reject=no, action {action} is always \
                 skipped in client or helo restrictions"
            );
            return false;
        }
        true
    }
}

/// An address, then its parent networks (`1.2.3.4`, `1.2.3`, `1.2`, `1`;
/// IPv6 cut at each ':'); pattern tables (cidr, regexp) see it once.
pub(super) fn addr_lookup(table: &Table, addr: IpAddr) -> Option<String> {
    let mut key = addr.to_string();
    if let Some(value) = table.lookup(&key) {
        return Some(value);
    }
    if table.is_pattern_table() {
        return None;
    }
    let delimiter = if addr.is_ipv6() { ':' } else { '.' };
    while let Some(cut) = key.rfind(delimiter) {
        key.truncate(cut);
        if key.is_empty() {
            break;
        }
        if let Some(value) = table.lookup(&key) {
            return Some(value);
        }
    }
    None
}

/// A leading enhanced status code in an access result's text, or
/// `default`; the rest is the text.
pub(super) fn dsn_split<'t>(default: &str, text: &'t str) -> (String, &'t str) {
    let (first, rest) = match text.split_once(' ') {
        Some((first, rest)) => (first, rest.trim_start()),
        None => (text, ""),
    };
    if mailgate_config::status::is_valid(first) {
        (first.to_string(), rest)
    } else {
        (default.to_string(), text)
    }
}

/// An address status (X.1.Y) made to fit what is rejected: the sender's
/// codes for a sender, the recipient's for a recipient, 4.0.0 for anything
/// else (Postfix's smtpd_dsn_fix).
pub(super) fn dsn_fix(dsn: &str, class: &str) -> String {
    let Some(detail) = dsn.get(1..).and_then(|d| d.strip_prefix(".1.")) else {
        return dsn.to_string();
    };
    let class_digit = &dsn[..1];
    const MAP: [(&str, &str, &str); 8] = [
        ("1", "4.1.7", "4.1.1"),
        ("2", "4.1.8", "4.1.2"),
        ("3", "4.1.7", "4.1.3"),
        ("4", "4.1.7", "4.1.4"),
        ("5", "4.1.0", "4.1.5"),
        ("6", "4.1.7", "4.1.6"),
        ("7", "4.1.7", "4.1.3"),
        ("8", "4.1.8", "4.1.2"),
    ];
    let (sender, recipient) = MAP
        .iter()
        .find(|(d, _, _)| *d == detail)
        .map_or(("4.1.0", "4.1.0"), |(_, s, r)| (*s, *r));
    let fixed = match class {
        "Sender address" => sender,
        "Recipient address" => recipient,
        _ => "4.0.0",
    };
    format!("{class_digit}{}", &fixed[1..])
}

/// `Name: value` with a name of printable characters but ':'.
fn is_header(text: &str) -> bool {
    match text.split_once(':') {
        Some((name, _)) => {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_fit_what_is_rejected() {
        assert_eq!(dsn_fix("5.1.1", "Sender address"), "5.1.7");
        assert_eq!(dsn_fix("5.1.1", "Recipient address"), "5.1.1");
        assert_eq!(dsn_fix("4.1.8", "Recipient address"), "4.1.2");
        assert_eq!(dsn_fix("5.1.1", "Client host"), "5.0.0");
        assert_eq!(dsn_fix("5.7.1", "Sender address"), "5.7.1");
        assert_eq!(
            dsn_split("5.7.1", "5.7.9 go away"),
            ("5.7.9".into(), "go away")
        );
        assert_eq!(dsn_split("5.7.1", "go away"), ("5.7.1".into(), "go away"));
        assert_eq!(dsn_split("5.7.1", ""), ("5.7.1".into(), ""));
        assert!(is_header("X-Test: yes"));
        assert!(!is_header("no header"));
        assert!(!is_header(": empty"));
    }

    #[test]
    fn addresses_and_their_networks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "192.0.2 net\n2001:db8 six\n").unwrap();
        let t = Table::open("hash:t", dir.path()).unwrap();
        assert_eq!(
            addr_lookup(&t, "192.0.2.7".parse().unwrap()).as_deref(),
            Some("net")
        );
        assert_eq!(addr_lookup(&t, "192.0.3.7".parse().unwrap()), None);
        assert_eq!(
            addr_lookup(&t, "2001:db8::1".parse().unwrap()).as_deref(),
            Some("six")
        );
    }
}
