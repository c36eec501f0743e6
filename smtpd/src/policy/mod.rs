//! SMTP access policy, evaluated as Postfix's smtpd_check.c does
//! (SMTPD_ACCESS_README): the restriction lists of each stage, the delayed
//! evaluation of the client, HELO and sender lists at RCPT time
//! (smtpd_delay_reject), defer_if_permit / defer_if_reject, warn_if_reject,
//! restriction classes, access tables and the DNS-based checks, with
//! Postfix's reply codes, texts and `reject:` log lines.
//!
//! The lists come parsed from mailgate_config::restrictions (the parser
//! `mailgate check` uses too). A restriction answers Dunno, Permit or
//! Reject; the first answer that is not Dunno ends its list. Permit ends only
//! its own list.

mod access;
mod checks;
mod delegate;
mod dns;
mod login;
pub mod names;
mod score;
mod spf;
mod state;
pub mod verify;

use std::future::Future;
use std::pin::Pin;

use mailgate_config::restrictions::{Restriction, Subject};
use mailgate_log::warning;

use crate::reply::Reply;
use crate::settings::Settings;

pub use state::{Peer, PeerStatus, State};

/// What a restriction (or a list) decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Dunno,
    Permit,
    Reject(Reply),
}

/// Postfix's error classes: only policy decisions may be turned into
/// warnings by warn_if_reject; configuration and lookup trouble may not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    Policy,
    Protocol,
    /// A table or configuration problem (451 4.3.5, 451 4.3.0).
    Software,
}

/// A deferral held back: defer_if_permit turns a later permit into it,
/// defer_if_reject turns a later reject into it.
#[derive(Clone, Debug, Default)]
pub struct Defer {
    pub active: bool,
    pub class: Option<ErrorClass>,
    pub code: u16,
    pub dsn: String,
    pub text: String,
}

/// Class names of the lists that have no subject of their own.
const DATA_CLASS: &str = "Data command";
const EOD_CLASS: &str = "End-of-data";

/// Recursion through classes and access-table results deeper than this is
/// a configuration loop (Postfix's limit).
const MAX_RECURSION: u32 = 100;

pub struct Evaluator<'a> {
    pub settings: &'a Settings,
}

type Boxed<'f> = Pin<Box<dyn Future<Output = Decision> + Send + 'f>>;

impl<'a> Evaluator<'a> {
    pub fn new(settings: &'a Settings) -> Evaluator<'a> {
        Evaluator { settings }
    }

    fn reset(st: &mut State) {
        st.recursion = 0;
        st.warn_if_reject = 0;
        st.defer_if_reject.active = false;
    }

    /// smtpd_client_restrictions. None: go on.
    pub async fn check_client(&self, st: &mut State) -> Option<Reply> {
        st.defer_if_permit.active = false;
        Self::reset(st);
        let list = self.settings.restrictions.client.clone();
        let name = st.peer.label();
        let decision = self
            .run(
                st,
                &list,
                &name,
                Subject::Client.reply_class(),
                Some(Subject::Client),
            )
            .await;
        st.dip_client = st.defer_if_permit.active;
        rejected(decision)
    }

    /// smtpd_helo_restrictions, for `helo` (the client's, or the one being
    /// given).
    pub async fn check_helo(&self, st: &mut State, helo: Option<&str>) -> Option<Reply> {
        let helo = helo?.to_string();
        let saved = st.helo.replace(helo.clone());
        st.defer_if_permit.active = st.dip_client;
        Self::reset(st);
        let list = self.settings.restrictions.helo.clone();
        let decision = self
            .run(
                st,
                &list,
                &helo,
                Subject::Helo.reply_class(),
                Some(Subject::Helo),
            )
            .await;
        st.dip_helo = st.defer_if_permit.active;
        st.helo = saved;
        rejected(decision)
    }

    /// smtpd_sender_restrictions, then reject_unlisted_sender when
    /// smtpd_reject_unlisted_sender is set.
    pub async fn check_mail(&self, st: &mut State, sender: Option<&str>) -> Option<Reply> {
        let sender = sender?.to_string();
        let saved = st.sender.replace(sender.clone());
        st.defer_if_permit.active = st.dip_client || st.dip_helo;
        st.sender_checked = false;
        Self::reset(st);
        let list = self.settings.restrictions.sender.clone();
        let mut decision = self
            .run(
                st,
                &list,
                &sender,
                Subject::Sender.reply_class(),
                Some(Subject::Sender),
            )
            .await;
        st.dip_sender = st.defer_if_permit.active;
        if self.settings.reject_unlisted_sender
            && !matches!(decision, Decision::Reject(_))
            && !st.sender_checked
            && !st.actions.discard
            && !sender.is_empty()
        {
            decision = self.unlisted(st, &sender, Subject::Sender);
        }
        st.sender = saved;
        rejected(decision)
    }

    /// The RCPT decision: the delayed lists, then smtpd_relay_restrictions
    /// and smtpd_recipient_restrictions, then the recipient tables.
    pub async fn check_rcpt(&self, st: &mut State, recipient: &str) -> Option<Reply> {
        // Postfix accepts a bare "postmaster" (RFC 5321 4.5.1) without any
        // restriction and delivers it locally. mailgate delivers nothing
        // locally: the restrictions and the recipient tables decide, as for
        // any address without a domain.
        let saved = st.recipient.replace(recipient.to_string());
        let result = self.rcpt_lists(st, recipient).await;
        st.recipient = saved;
        result
    }

    async fn rcpt_lists(&self, st: &mut State, recipient: &str) -> Option<Reply> {
        let s = self.settings;
        st.recipient_checked = false;
        if s.delay_reject {
            if let Some(reply) = self.check_client(st).await {
                return Some(reply);
            }
            let helo = st.helo.clone();
            if let Some(reply) = self.check_helo(st, helo.as_deref()).await {
                return Some(reply);
            }
            let sender = st.sender.clone();
            if let Some(reply) = self.check_mail(st, sender.as_deref()).await {
                return Some(reply);
            }
        }
        st.defer_if_permit.active = st.dip_sender;
        Self::reset(st);
        let lists = if s.relay_before_recipient {
            [
                s.restrictions.relay.clone(),
                s.restrictions.recipient.clone(),
            ]
        } else {
            [
                s.restrictions.recipient.clone(),
                s.restrictions.relay.clone(),
            ]
        };
        let class = Subject::Recipient.reply_class();
        let mut decision = Decision::Dunno;
        for list in &lists {
            decision = self
                .run(st, list, recipient, class, Some(Subject::Recipient))
                .await;
            if matches!(decision, Decision::Reject(_)) {
                break;
            }
        }
        if !matches!(decision, Decision::Reject(_)) && st.defer_if_permit.active {
            decision = self.release_defer_if_permit(st);
        }
        if s.reject_unlisted_recipient
            && !matches!(decision, Decision::Reject(_))
            && !st.recipient_checked
            && !st.actions.discard
        {
            decision = self.unlisted(st, recipient, Subject::Recipient);
        }
        rejected(decision)
    }

    /// smtpd_data_restrictions at the DATA command.
    pub async fn check_data(&self, st: &mut State) -> Option<Reply> {
        let list = self.settings.restrictions.data.clone();
        self.check_message(st, &list, "DATA", DATA_CLASS).await
    }

    /// smtpd_end_of_data_restrictions after the final dot.
    pub async fn check_eod(&self, st: &mut State) -> Option<Reply> {
        let list = self.settings.restrictions.end_of_data.clone();
        self.check_message(st, &list, "END-OF-MESSAGE", EOD_CLASS)
            .await
    }

    async fn check_message(
        &self,
        st: &mut State,
        list: &[Restriction],
        name: &str,
        class: &str,
    ) -> Option<Reply> {
        // With several recipients no one of them is the subject, and
        // naming one in the log would mislead.
        let saved = (st.rcpt_count > 1).then(|| st.recipient.take());
        st.defer_if_permit.active = false;
        Self::reset(st);
        let mut decision = self.run(st, list, name, class, None).await;
        if !matches!(decision, Decision::Reject(_)) && st.defer_if_permit.active {
            decision = self.release_defer_if_permit(st);
        }
        if let Some(recipient) = saved {
            st.recipient = recipient;
        }
        rejected(decision)
    }

    /// A permit overruled by an earlier temporary problem: the deferral it
    /// was holding back.
    fn release_defer_if_permit(&self, st: &mut State) -> Decision {
        let d = st.defer_if_permit.clone();
        self.reject(
            st,
            d.class.unwrap_or(ErrorClass::Policy),
            d.code,
            &d.dsn,
            d.text,
        )
    }

    /// Runs a list to its first answer that is not Dunno (generic_checks).
    /// `name` and `class` are what a bare reject or defer names.
    pub fn run<'f>(
        &'f self,
        st: &'f mut State,
        list: &'f [Restriction],
        name: &'f str,
        class: &'f str,
        default_access: Option<Subject>,
    ) -> Boxed<'f> {
        Box::pin(async move {
            st.recursion += 1;
            let depth = st.recursion;
            let mut decision = Decision::Dunno;
            for restriction in list {
                if st.actions.discard {
                    break;
                }
                if matches!(restriction, Restriction::WarnIfReject) {
                    if st.warn_if_reject == 0 {
                        st.warn_if_reject = depth;
                    }
                    continue;
                }
                decision = if st.recursion > MAX_RECURSION {
                    warning!(
                        "restriction recursion is unreasonably deep: check smtpd_restriction_classes and access table results"
                    );
                    self.server_error(st)
                } else {
                    self.apply(st, restriction, name, class, default_access)
                        .await
                };
                if st.warn_if_reject >= depth {
                    st.warn_if_reject = 0;
                }
                if decision != Decision::Dunno {
                    break;
                }
                if st.defer_if_permit.active && st.defer_if_reject.active {
                    break;
                }
            }
            st.recursion = depth - 1;
            if st.warn_if_reject >= depth {
                st.warn_if_reject = 0;
            }
            decision
        })
    }

    async fn apply(
        &self,
        st: &mut State,
        restriction: &Restriction,
        name: &str,
        class: &str,
        default_access: Option<Subject>,
    ) -> Decision {
        use Restriction as R;
        let s = self.settings;
        match restriction {
            R::Permit => self.permit(st, "permit", class, name),
            R::Reject => self.reject(
                st,
                ErrorClass::Policy,
                s.codes.reject,
                "5.7.1",
                format!("<{name}>: {class} rejected: Access denied"),
            ),
            R::Defer => self.reject(
                st,
                ErrorClass::Policy,
                s.codes.defer,
                "4.3.2",
                format!("<{name}>: {class} rejected: Try again later"),
            ),
            R::DeferIfPermit => self.defer_if_permit(
                st,
                true,
                450,
                "4.7.0",
                format!("<{name}>: {class} rejected: defer_if_permit requested"),
            ),
            R::DeferIfReject => self.defer_if_reject(
                st,
                450,
                "4.7.0",
                format!("<{name}>: {class} rejected: defer_if_reject requested"),
            ),
            R::WarnIfReject => Decision::Dunno,
            R::RejectUnauthPipelining if st.ill_pipelining => self.reject(
                st,
                ErrorClass::Protocol,
                503,
                "5.5.0",
                format!("<{name}>: {class} rejected: Improper use of SMTP command pipelining"),
            ),
            R::RejectUnauthPipelining => Decision::Dunno,
            R::Sleep(seconds) => {
                tokio::time::sleep(std::time::Duration::from_secs(u64::from(*seconds))).await;
                Decision::Dunno
            }
            R::RejectPlaintextSession if st.tls => Decision::Dunno,
            R::RejectPlaintextSession => self.reject(
                st,
                ErrorClass::Policy,
                s.codes.plaintext,
                "4.7.1",
                "Session encryption is required".to_string(),
            ),
            R::PermitMynetworks if s.mynetworks.contains(st.peer.addr) => {
                self.permit(st, "permit_mynetworks", "Client host", &st.peer.label())
            }
            R::PermitInetInterfaces if s.local_addresses.contains(&st.peer.addr) => self.permit(
                st,
                "permit_inet_interfaces",
                "Client host",
                &st.peer.label(),
            ),
            R::PermitSaslAuthenticated if st.sasl_username.is_some() => self.permit(
                st,
                "permit_sasl_authenticated",
                "Client host",
                &st.peer.label(),
            ),
            R::SenderLoginMismatch(kind) => self.login_mismatch(st, *kind),
            // smtpd asks for no client certificates: these never match,
            // as in Postfix when no certificate was presented.
            R::PermitMynetworks
            | R::PermitInetInterfaces
            | R::PermitSaslAuthenticated
            | R::PermitTlsClientcerts
            | R::PermitTlsAllClientcerts
            | R::CcertAccess(_)
            | R::SaslAccess(_) => Decision::Dunno,
            R::RejectUnknownClientHostname => self.unknown_client(st),
            R::RejectUnknownReverseClientHostname => self.unknown_reverse_client(st),
            R::RejectInvalidHeloHostname => match st.helo.clone() {
                Some(helo) => self.invalid_helo(st, &helo),
                None => Decision::Dunno,
            },
            R::RejectNonFqdnHeloHostname => match st.helo.clone() {
                Some(helo) => self.non_fqdn_helo(st, &helo),
                None => Decision::Dunno,
            },
            R::RejectUnknownHeloHostname => match st.helo.clone() {
                Some(helo) => self.unknown_helo(st, &helo).await,
                None => Decision::Dunno,
            },
            R::RejectNonFqdnSender => match st.sender.clone() {
                Some(sender) if !sender.is_empty() => {
                    self.non_fqdn_address(st, &sender, Subject::Sender)
                }
                _ => Decision::Dunno,
            },
            R::RejectUnknownSenderDomain => match st.sender.clone() {
                Some(sender) if !sender.is_empty() => {
                    self.unknown_address(st, &sender, Subject::Sender).await
                }
                _ => Decision::Dunno,
            },
            R::RejectUnlistedSender => match st.sender.clone() {
                Some(sender) if !sender.is_empty() => self.unlisted(st, &sender, Subject::Sender),
                _ => Decision::Dunno,
            },
            R::PermitAuthDestination => match st.recipient.clone() {
                Some(rcpt) if self.is_auth_destination(&rcpt) => {
                    self.permit(st, "permit_auth_destination", "Recipient address", &rcpt)
                }
                _ => Decision::Dunno,
            },
            R::RejectUnauthDestination | R::DeferUnauthDestination => {
                let Some(rcpt) = st.recipient.clone() else {
                    return Decision::Dunno;
                };
                if self.is_auth_destination(&rcpt) {
                    return Decision::Dunno;
                }
                let (code, dsn) = if matches!(restriction, R::RejectUnauthDestination) {
                    (s.codes.relay, "5.7.1")
                } else {
                    (s.codes.relay.saturating_sub(100), "4.7.1")
                };
                self.reject(
                    st,
                    ErrorClass::Policy,
                    code,
                    dsn,
                    format!("<{rcpt}>: Relay access denied"),
                )
            }
            R::RejectNonFqdnRecipient => match st.recipient.clone() {
                Some(rcpt) => self.non_fqdn_address(st, &rcpt, Subject::Recipient),
                None => Decision::Dunno,
            },
            R::RejectUnknownRecipientDomain => match st.recipient.clone() {
                Some(rcpt) => self.unknown_address(st, &rcpt, Subject::Recipient).await,
                None => Decision::Dunno,
            },
            R::RejectUnlistedRecipient => match st.recipient.clone() {
                Some(rcpt) if !rcpt.is_empty() => self.unlisted(st, &rcpt, Subject::Recipient),
                _ => Decision::Dunno,
            },
            R::RejectUnverifiedRecipient => match st.recipient.clone() {
                Some(rcpt) if !rcpt.is_empty() => {
                    self.unverified(st, &rcpt, Subject::Recipient).await
                }
                _ => Decision::Dunno,
            },
            R::RejectUnverifiedSender => match st.sender.clone() {
                Some(sender) if !sender.is_empty() => {
                    self.unverified(st, &sender, Subject::Sender).await
                }
                _ => Decision::Dunno,
            },
            R::RejectMultiRecipientBounce => {
                let already = usize::from(st.stage != "RCPT");
                if st.sender.as_deref() == Some("") && st.rcpt_count > already {
                    self.reject(
                        st,
                        ErrorClass::Policy,
                        s.codes.multi_recipient_bounce,
                        "5.5.3",
                        format!("<{name}>: {class} rejected: Multi-recipient bounce"),
                    )
                } else {
                    Decision::Dunno
                }
            }
            R::Dnsxl(check, list) => self.dnsxl(st, *check, list).await,
            R::CheckClientScore => self.client_score(st).await,
            R::CheckSpf => self.check_spf(st, name, class, default_access).await,
            R::Access(subject, table) => self.access(st, *subject, table, default_access).await,
            R::ServerAccess(subject, record, table) => {
                self.server_access(st, *subject, *record, table, default_access)
                    .await
            }
            R::PolicyService(spec) => {
                self.policy_service(st, spec, name, class, default_access)
                    .await
            }
            R::Class(class_name) => match s.restrictions.classes.get(class_name) {
                Some(list) => {
                    let list = list.clone();
                    self.run(st, &list, name, class, default_access).await
                }
                None => self.server_error(st),
            },
        }
    }

    /// Mail for this recipient is ours to take: its domain is in
    /// mydestination, relay_domains or virtual_alias_domains and its local
    /// part hides no other destination. An address without a domain is
    /// local, as Postfix resolves it; the recipient tables then decide.
    fn is_auth_destination(&self, rcpt: &str) -> bool {
        match mailgate_config::split_address(rcpt) {
            Some((local, domain)) => {
                !crate::address::is_routed_local(local)
                    && (self.settings.relay_domains.matches(&domain)
                        || self.settings.local.is_local_domain(&domain)
                        || self.settings.rewriting.is_alias_domain(&domain))
            }
            None => !crate::address::is_routed_local(rcpt),
        }
    }

    /// smtpd_acl_permit: a permit, logged when smtpd_log_access_permit_actions
    /// names the action.
    fn permit(&self, st: &State, action: &str, class: &str, name: &str) -> Decision {
        if !st.defer_if_permit.active
            && self
                .settings
                .log_permit_actions
                .iter()
                .any(|a| a.eq_ignore_ascii_case(action) || a.eq_ignore_ascii_case("static:all"))
        {
            st.log_whatsup("permit", &format!("action={action} for {class}={name}"));
        }
        Decision::Permit
    }

    /// smtpd_check_reject: formats the reply, turns it into a warning under
    /// warn_if_reject, into the held deferral under defer_if_reject, and
    /// logs `reject:` with the transaction's details.
    pub fn reject(
        &self,
        st: &mut State,
        error: ErrorClass,
        code: u16,
        dsn: &str,
        text: String,
    ) -> Decision {
        let warn = st.warn_if_reject > 0 && error != ErrorClass::Software;
        let (mut code, mut dsn, mut text) = (code, dsn.to_string(), text);
        if !(400..600).contains(&code) {
            warning!("SMTP reply code configuration error: {code} {dsn} {text}");
            (code, dsn, text) = (450, "4.7.1".into(), "Service unavailable".into());
        } else if !mailgate_config::status::is_valid(&dsn) {
            warning!("DSN detail code configuration error: {code} {dsn} {text}");
            (code, dsn, text) = (450, "4.7.1".into(), "Service unavailable".into());
        }
        if !warn && st.defer_if_reject.active && code >= 500 {
            st.warn_if_reject = 0;
            st.defer_if_reject.active = false;
            let d = st.defer_if_reject.clone();
            return self.reject(
                st,
                d.class.unwrap_or(ErrorClass::Policy),
                d.code,
                &d.dsn,
                d.text,
            );
        }
        // The status class follows the reply code.
        let class_digit = if code >= 500 { '5' } else { '4' };
        dsn.replace_range(..1, &class_digit.to_string());
        let mut line = format!("{dsn} {text}");
        // RFC 5321 limits a reply line; the code and a space come first.
        truncate_at_char(&mut line, 506);
        let reply = Reply::new(code, line);
        st.log_whatsup(
            if warn { "reject_warning" } else { "reject" },
            &reply.to_string(),
        );
        if warn {
            Decision::Dunno
        } else {
            Decision::Reject(reply)
        }
    }

    /// DEFER_IF_PERMIT: hold a deferral that turns a later permit into a
    /// 4xx. With warn_if_reject (or when `configurable` is off because the
    /// tempfail action is plain defer), reject at once instead.
    pub fn defer_if_permit(
        &self,
        st: &mut State,
        configurable: bool,
        code: u16,
        dsn: &str,
        text: String,
    ) -> Decision {
        if st.warn_if_reject == 0 && configurable {
            hold(&mut st.defer_if_permit, code, dsn, text);
            Decision::Dunno
        } else {
            self.reject(st, ErrorClass::Policy, code, dsn, text)
        }
    }

    pub fn defer_if_reject(&self, st: &mut State, code: u16, dsn: &str, text: String) -> Decision {
        hold(&mut st.defer_if_reject, code, dsn, text);
        Decision::Dunno
    }

    /// A configuration problem found while evaluating: 451 4.3.5.
    pub fn server_error(&self, st: &mut State) -> Decision {
        self.reject(
            st,
            ErrorClass::Software,
            451,
            "4.3.5",
            "Server configuration error".to_string(),
        )
    }
}

/// The first reason of a kind is kept, to keep the story simple.
fn hold(defer: &mut Defer, code: u16, dsn: &str, text: String) {
    if !defer.active {
        *defer = Defer {
            active: true,
            class: Some(ErrorClass::Policy),
            code,
            dsn: dsn.to_string(),
            text,
        };
    }
}

fn rejected(decision: Decision) -> Option<Reply> {
    match decision {
        Decision::Reject(reply) => Some(reply),
        _ => None,
    }
}

fn truncate_at_char(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}
