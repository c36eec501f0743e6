//! What the restrictions know about a session: the client, the HELO name,
//! the transaction so far, and the bookkeeping of deferrals and warnings.

use std::net::{IpAddr, SocketAddr};

use mailgate_ipc::auth::{Origin, SenderAuth};
use mailgate_log::info;
use mailgate_mailauth::SpfOutcome;

use super::Defer;

/// How the client's host name lookup ended (Postfix's name_status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerStatus {
    Ok,
    /// The lookup failed for now (timeout, SERVFAIL).
    Temp,
    /// There is no PTR record, or the name is not valid.
    Perm,
    /// The PTR name does not resolve back to the address.
    Forged,
}

/// The client as the restrictions see it.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: IpAddr,
    pub port: u16,
    /// Forward-confirmed host name, or "unknown".
    pub name: String,
    pub name_status: PeerStatus,
    /// The PTR name, unverified, or "unknown".
    pub reverse_name: String,
    pub reverse_status: PeerStatus,
}

impl Peer {
    /// A client whose name was not (or could not be) looked up.
    pub fn unknown(addr: IpAddr, port: u16, status: PeerStatus) -> Peer {
        Peer {
            addr,
            port,
            name: "unknown".to_string(),
            name_status: status,
            reverse_name: "unknown".to_string(),
            reverse_status: status,
        }
    }

    /// `name[addr]`, as Postfix names a client.
    pub fn label(&self) -> String {
        format!("{}[{}]", self.name, self.addr)
    }
}

/// Side effects of access-table actions on the current transaction, carried
/// to cleanup with the message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// HOLD: the message goes to hold/ (the reason, for the log).
    pub hold: Option<String>,
    /// DISCARD: accepted and thrown away.
    pub discard: bool,
    /// REDIRECT: every recipient replaced by this address.
    pub redirect: Option<String>,
    /// BCC: recipients added.
    pub bcc: Vec<String>,
    /// PREPEND: header lines put above the message.
    pub prepend: Vec<String>,
    /// FILTER: the content filter (transport:nexthop) instead of
    /// content_filter.
    pub filter: Option<String>,
}

/// A session's policy state (Postfix's SMTPD_STATE, the parts restrictions
/// read and write).
pub struct State {
    pub peer: Peer,
    pub helo: Option<String>,
    /// The sender of the transaction (empty for `<>`), or the one being
    /// checked.
    pub sender: Option<String>,
    /// The recipient being checked, or the first accepted one.
    pub recipient: Option<String>,
    pub rcpt_count: usize,
    /// "SMTP" or "ESMTP".
    pub protocol: &'static str,
    /// The command being handled: RCPT, DATA, END-OF-MESSAGE...
    pub stage: &'static str,
    pub queue_id: Option<String>,
    /// The same for every policy query about one transaction.
    pub instance: String,
    /// SIZE= from MAIL FROM, then the message's size after DATA.
    pub size: u64,
    /// Our end of the connection (policy requests' server_address).
    pub server: Option<SocketAddr>,
    /// The service is under stress (policy requests' stress=yes).
    pub stress: bool,
    pub smtputf8: bool,
    /// The client sent a command before it could know our answer to the
    /// previous one (reject_unauth_pipelining).
    pub ill_pipelining: bool,
    /// The SASL login (AUTH succeeded) and its mechanism.
    pub sasl_username: Option<String>,
    pub sasl_method: Option<String>,
    /// The session is protected by TLS.
    pub tls: bool,
    pub defer_if_permit: Defer,
    pub defer_if_reject: Defer,
    pub(super) dip_client: bool,
    pub(super) dip_helo: bool,
    pub(super) dip_sender: bool,
    pub(super) warn_if_reject: u32,
    pub(super) recursion: u32,
    pub(super) sender_checked: bool,
    pub(super) recipient_checked: bool,
    pub actions: Actions,
    /// check_spf's results: the HELO identity's for the session (with the
    /// name checked), the MAIL FROM identity's for the transaction.
    pub spf_helo: Option<(String, SpfOutcome)>,
    pub spf_mail_from: Option<(String, SpfOutcome)>,
    /// What XFORWARD said about the original client, for this transaction.
    pub xforward: crate::xforward::Forwarded,
}

impl State {
    pub fn new(peer: Peer) -> State {
        State {
            peer,
            helo: None,
            sender: None,
            recipient: None,
            rcpt_count: 0,
            protocol: "SMTP",
            stage: "CONNECT",
            queue_id: None,
            instance: String::new(),
            size: 0,
            server: None,
            stress: false,
            smtputf8: false,
            ill_pipelining: false,
            sasl_username: None,
            sasl_method: None,
            tls: false,
            defer_if_permit: Defer::default(),
            defer_if_reject: Defer::default(),
            dip_client: false,
            dip_helo: false,
            dip_sender: false,
            warn_if_reject: 0,
            recursion: 0,
            sender_checked: false,
            recipient_checked: false,
            actions: Actions::default(),
            spf_helo: None,
            spf_mail_from: None,
            xforward: Default::default(),
        }
    }

    /// A new transaction (MAIL, RSET, HELO): its sender, recipients and
    /// access side effects go.
    pub fn reset_transaction(&mut self) {
        self.sender = None;
        self.recipient = None;
        self.rcpt_count = 0;
        self.queue_id = None;
        self.instance = String::new();
        self.size = 0;
        self.smtputf8 = false;
        self.actions = Actions::default();
        self.dip_sender = false;
        self.spf_mail_from = None;
        // Postfix's mail_reset: XFORWARD holds for one transaction.
        self.xforward = Default::default();
    }

    /// What cleanup and the scanner learn of the sender's authenticity:
    /// where the message came from, and the SPF results check_spf found
    /// for the identities the transaction has now.
    pub fn sender_auth(&self, trusted: bool) -> SenderAuth {
        let helo = self.helo.as_deref().unwrap_or("");
        let sender = self.sender.as_deref().unwrap_or("");
        SenderAuth {
            origin: if trusted {
                Origin::Trusted
            } else {
                Origin::Remote
            },
            helo: self
                .spf_helo
                .as_ref()
                .filter(|(name, _)| name == helo)
                .map(|(_, outcome)| outcome.check.clone()),
            mail_from: self
                .spf_mail_from
                .as_ref()
                .filter(|(name, _)| !sender.is_empty() && name == sender)
                .map(|(_, outcome)| outcome.check.clone()),
        }
    }

    /// `ID: what: STAGE from host[ip]: text; from=<s> to=<r> proto=P
    /// helo=<h>`, Postfix's log_whatsup.
    pub fn log_whatsup(&self, what: &str, text: &str) {
        let mut line = format!(
            "{}: {what}: {} from {}: {text};",
            self.queue_id.as_deref().unwrap_or("NOQUEUE"),
            self.stage,
            self.peer.label()
        );
        if let Some(sender) = &self.sender {
            line.push_str(&format!(" from=<{sender}>"));
        }
        if let Some(recipient) = &self.recipient {
            line.push_str(&format!(" to=<{recipient}>"));
        }
        line.push_str(&format!(" proto={}", self.protocol));
        if let Some(helo) = &self.helo {
            line.push_str(&format!(" helo=<{helo}>"));
        }
        info!("{line}");
    }
}
