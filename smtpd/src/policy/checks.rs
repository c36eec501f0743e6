//! The restrictions that judge names without asking the DNS: the client's
//! host name status, HELO syntax, fully qualified addresses, and the
//! recipient tables.

use mailgate_config::restrictions::Subject;

use super::names::{
    literal_inside, valid_hostaddr, valid_hostname, valid_mailhost_addr, valid_utf8_hostname,
    without_trailing_dot,
};
use super::{Decision, ErrorClass, Evaluator, PeerStatus, State};

impl Evaluator<'_> {
    /// reject_unknown_client_hostname: no forward-confirmed name.
    pub(super) fn unknown_client(&self, st: &mut State) -> Decision {
        if st.peer.name_status == PeerStatus::Ok {
            return Decision::Dunno;
        }
        let code = if st.peer.name_status >= PeerStatus::Perm {
            self.settings.codes.unknown_client
        } else {
            450
        };
        let addr = st.peer.addr;
        self.reject(
            st,
            ErrorClass::Policy,
            code,
            "4.7.25",
            format!("Client host rejected: cannot find your hostname, [{addr}]"),
        )
    }

    /// reject_unknown_reverse_client_hostname: no PTR name at all.
    pub(super) fn unknown_reverse_client(&self, st: &mut State) -> Decision {
        if st.peer.reverse_status == PeerStatus::Ok {
            return Decision::Dunno;
        }
        let code = if st.peer.reverse_status == PeerStatus::Perm {
            self.settings.codes.unknown_client
        } else {
            450
        };
        let addr = st.peer.addr;
        self.reject(
            st,
            ErrorClass::Policy,
            code,
            "4.7.1",
            format!("Client host rejected: cannot find your reverse hostname, [{addr}]"),
        )
    }

    /// An address literal HELO must hold a valid address.
    pub(super) fn invalid_helo_literal(&self, st: &mut State, helo: &str) -> Decision {
        let inner = literal_inside(helo).unwrap_or(helo);
        if valid_mailhost_addr(inner) {
            return Decision::Dunno;
        }
        self.reject(
            st,
            ErrorClass::Policy,
            self.settings.codes.invalid_hostname,
            "5.5.2",
            format!("<{helo}>: Helo command rejected: invalid ip address"),
        )
    }

    /// reject_invalid_helo_hostname.
    pub(super) fn invalid_helo(&self, st: &mut State, helo: &str) -> Decision {
        if helo.starts_with('[') {
            return self.invalid_helo_literal(st, helo);
        }
        let name = without_trailing_dot(helo);
        if valid_hostname(name) || valid_hostaddr(name) {
            return Decision::Dunno;
        }
        self.reject(
            st,
            ErrorClass::Policy,
            self.settings.codes.invalid_hostname,
            "5.5.2",
            format!("<{helo}>: Helo command rejected: Invalid name"),
        )
    }

    /// reject_non_fqdn_helo_hostname.
    pub(super) fn non_fqdn_helo(&self, st: &mut State, helo: &str) -> Decision {
        if helo.starts_with('[') {
            return self.invalid_helo_literal(st, helo);
        }
        let name = without_trailing_dot(helo);
        if valid_utf8_hostname(name, st.smtputf8) && name.contains('.') {
            return Decision::Dunno;
        }
        self.reject(
            st,
            ErrorClass::Policy,
            self.settings.codes.non_fqdn,
            "5.5.2",
            format!("<{helo}>: Helo command rejected: need fully-qualified hostname"),
        )
    }

    /// reject_non_fqdn_sender, reject_non_fqdn_recipient.
    pub(super) fn non_fqdn_address(&self, st: &mut State, address: &str, who: Subject) -> Decision {
        let domain = mailgate_config::split_address(address)
            .map(|(_, d)| d)
            .unwrap_or_default();
        if domain.starts_with('[') && domain.ends_with(']') {
            return Decision::Dunno;
        }
        let name = without_trailing_dot(&domain);
        if !name.is_empty() && valid_utf8_hostname(name, st.smtputf8) && name.contains('.') {
            return Decision::Dunno;
        }
        self.reject(
            st,
            ErrorClass::Policy,
            self.settings.codes.non_fqdn,
            "4.5.2",
            format!(
                "<{address}>: {} rejected: need fully-qualified address",
                who.reply_class()
            ),
        )
    }

    /// The recipient tables: a local address (mydestination) must be in
    /// local_recipient_maps; with relay_recipient_maps set, an address in
    /// relay_domains must be listed (as user@domain, user+ext's base, or
    /// @domain). Used by reject_unlisted_{sender,recipient} and
    /// smtpd_reject_unlisted_{sender,recipient}.
    pub(super) fn unlisted(&self, st: &mut State, address: &str, who: Subject) -> Decision {
        // receive_override_options = no_unknown_recipient_checks (behind a
        // content filter: the recipients were checked on the way in).
        if who != Subject::Sender
            && self
                .settings
                .filtering
                .overrides
                .no_unknown_recipient_checks
        {
            return Decision::Dunno;
        }
        if st.warn_if_reject == 0 {
            match who {
                Subject::Sender => st.sender_checked = true,
                _ => st.recipient_checked = true,
            }
        }
        let s = self.settings;
        let dsn = if who == Subject::Sender {
            "5.1.0"
        } else {
            "5.1.1"
        };
        // An address the canonical or virtual alias maps list is known
        // (Postfix's check_rcpt_maps asks them first).
        if s.rewriting.known(address, who == Subject::Sender) {
            return Decision::Dunno;
        }
        // A local address (mydestination, or no domain): the local
        // recipient tables decide. Without a local myorigin an address
        // without a domain has nowhere to go either.
        let is_local = s.local.is_local(address);
        let domainless = mailgate_config::split_address(address).is_none();
        if (is_local && !s.local.known(address)) || (domainless && !is_local) {
            let table = if s.show_unknown_table {
                " in local recipient table"
            } else {
                ""
            };
            return self.reject(
                st,
                ErrorClass::Policy,
                s.codes.unknown_local_recipient,
                dsn,
                format!(
                    "<{address}>: {} rejected: User unknown{table}",
                    who.reply_class()
                ),
            );
        }
        let Some((local, domain)) = mailgate_config::split_address(address) else {
            return Decision::Dunno;
        };
        if is_local {
            return Decision::Dunno;
        }
        if s.rewriting.is_alias_domain(&domain) {
            let table = if s.show_unknown_table {
                " in virtual alias table"
            } else {
                ""
            };
            return self.reject(
                st,
                ErrorClass::Policy,
                s.codes.unknown_virtual_alias,
                dsn,
                format!(
                    "<{address}>: {} rejected: User unknown{table}",
                    who.reply_class()
                ),
            );
        }
        if s.relay_recipient_maps.is_empty() {
            return Decision::Dunno;
        }
        if !s.relay_domains.matches(&domain) {
            return Decision::Dunno;
        }
        let base = s.recipient_delimiter.and_then(|delim| {
            let (base, _) = local.split_once(delim)?;
            (!base.is_empty()).then(|| format!("{base}@{domain}"))
        });
        let full = format!("{local}@{domain}");
        let found = s.relay_recipient_maps.iter().any(|table| {
            if table.is_pattern_table() {
                return table.lookup(address).is_some();
            }
            table.lookup(&full).is_some()
                || base.as_deref().is_some_and(|b| table.lookup(b).is_some())
                || table.lookup(&format!("@{domain}")).is_some()
        });
        if found {
            return Decision::Dunno;
        }
        let dsn = if who == Subject::Sender {
            "5.1.0"
        } else {
            "5.1.1"
        };
        let table = if s.show_unknown_table {
            " in relay recipient table"
        } else {
            ""
        };
        self.reject(
            st,
            ErrorClass::Policy,
            s.codes.unknown_relay_recipient,
            dsn,
            format!(
                "<{address}>: {} rejected: User unknown{table}",
                who.reply_class()
            ),
        )
    }
}
