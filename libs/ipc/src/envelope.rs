//! The envelope of a message: what smtpd learned in the SMTP dialogue, what
//! cleanup stores in the queue file, and what qmgr and relay work from.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch: the unit of every timestamp in the
/// queue file and the IPC messages.
pub type Micros = u64;

pub fn now_micros() -> Micros {
    to_micros(SystemTime::now())
}

pub fn to_micros(t: SystemTime) -> Micros {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as Micros
}

pub fn from_micros(m: Micros) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(m)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Verified host name, or "unknown".
    pub name: String,
    pub addr: String,
    pub port: u16,
    pub helo: String,
    /// "SMTP" or "ESMTP" (later "ESMTPS", "ESMTPA", ...), as in the Received header.
    pub protocol: String,
}

impl ClientInfo {
    /// `host[ip]`, as Postfix names a peer in its logs.
    pub fn label(&self) -> String {
        format!("{}[{}]", self.name, self.addr)
    }
}

/// The body type declared with MAIL FROM BODY=.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyType {
    SevenBit,
    EightBitMime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecipientState {
    Pending,
    Delivered,
    Bounced,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    /// ORCPT as given by the client (RFC 3461), if any.
    pub original: Option<String>,
    pub state: RecipientState,
    /// The last temporary or permanent failure, for `queue list` and bounces.
    pub last_reason: Option<String>,
    /// The enhanced status code of the last result ("4.4.1", "5.1.1"), for
    /// the Status field of a delivery status notification.
    pub last_status: Option<String>,
    /// A non-delivery notice for this recipient is queued (or none is due:
    /// null sender). Until then a Bounced recipient keeps the message in
    /// the queue, so a bounce that could not be queued is retried.
    pub notified: bool,
    /// The sender is never told about this recipient (RFC 3461
    /// NOTIFY=NEVER), as Postfix adds the recipients of header/body_checks
    /// BCC actions: no non-delivery or delay notice names it.
    pub notify_never: bool,
}

impl Recipient {
    pub fn new(address: String, original: Option<String>) -> Recipient {
        Recipient {
            address,
            original,
            state: RecipientState::Pending,
            last_reason: None,
            last_status: None,
            notified: false,
            notify_never: false,
        }
    }

    /// A recipient the sender is never told about (NOTIFY=NEVER).
    pub fn never_notify(address: String) -> Recipient {
        Recipient {
            notify_never: true,
            ..Recipient::new(address, None)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The reverse path without angle brackets; empty for the null sender.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub client: ClientInfo,
    pub body_type: Option<BodyType>,
    pub smtputf8: bool,
    /// RET= and ENVID= from MAIL FROM, kept for the DSN work.
    pub dsn_ret: Option<String>,
    pub dsn_envid: Option<String>,
    pub arrival: Micros,
}

/// Where a message is in its delivery life; lives in the queue file beside
/// the envelope and is rewritten (atomically) by qmgr only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState {
    pub attempts: u32,
    pub last_attempt: Option<Micros>,
    pub next_attempt: Option<Micros>,
    /// The delay notice (delay_warning_time) was sent; it is sent once.
    pub delay_warned: bool,
}

/// An SMTP reply that one process asks another to give: a rejection decided
/// by cleanup (or, later, the scanner) goes back to the client as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpReply {
    pub code: u16,
    /// Enhanced status code such as "5.7.1".
    pub status: String,
    pub text: String,
}

impl std::fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.code, self.status, self.text)
    }
}
