//! The messages each pair of processes exchanges, one module per pair.

/// smtpd -> cleanup, one connection per mail transaction.
///
/// smtpd sends `Begin` when the first recipient is accepted and logs the
/// queue ID it gets back; at the end of DATA it sends `Commit` with the
/// message content as a sealed memfd. cleanup answers `Queued` only after the
/// queue file is durable.
pub mod cleanup {
    use serde::{Deserialize, Serialize};

    use crate::envelope::{Envelope, SmtpReply};

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Request {
        Begin,
        /// Carries one descriptor: the content, CRLF line ends, not
        /// dot-stuffed, in a memfd sealed against any change, of `size`
        /// bytes. cleanup refuses any other descriptor.
        Commit {
            envelope: Box<Envelope>,
            actions: Box<Actions>,
            size: u64,
        },
    }

    /// What smtpd's access restrictions decided about the message besides
    /// accepting it (Postfix's HOLD, DISCARD, REDIRECT, BCC and PREPEND
    /// actions); smtpd has logged each already.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Actions {
        /// Queue the message on hold.
        pub hold: bool,
        /// Accept the message and deliver it nowhere.
        pub discard: bool,
        /// Replace every recipient with this one.
        pub redirect: Option<String>,
        /// Add these recipients.
        pub bcc: Vec<String>,
        /// Header lines ("Name: value") to put above the message.
        pub prepend: Vec<String>,
        /// Comments for the Received header, between its "from" and "by"
        /// parts, one per line: the TLS details
        /// (smtpd_tls_received_header) and the authenticated sender
        /// (smtpd_sasl_authenticated_header).
        pub received_comments: Vec<String>,
        /// Where the message came from and smtpd's SPF results, for the
        /// scanner's DKIM and DMARC checks.
        pub sender_auth: crate::auth::SenderAuth,
        /// content_filter or a FILTER action: the `transport:nexthop`
        /// every recipient goes to after the queue.
        pub filter: Option<String>,
        /// receive_override_options of smtpd's service, for cleanup.
        pub no_header_body_checks: bool,
        pub no_address_mappings: bool,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Reply {
        Started {
            queue_id: String,
        },
        Queued {
            queue_id: String,
        },
        /// Refused for good (header checks, later the scanner): 5xx to the client.
        Rejected(SmtpReply),
        /// Not accepted now (disk full, scanner down): 4xx to the client.
        Deferred(SmtpReply),
    }
}

/// cleanup -> scanner, one request per message.
///
/// The request carries one descriptor: the message content (CRLF line ends,
/// not dot-stuffed), the sealed memfd smtpd made, which nobody can change
/// any more. The scanner reads it with positioned reads only, because the
/// file offset is shared with cleanup's copy of the descriptor.
pub mod scanner {
    use serde::{Deserialize, Serialize};

    use crate::envelope::ClientInfo;

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Request {
        /// For the scanner's log lines.
        pub queue_id: String,
        pub sender: String,
        /// Per-recipient policy (spam lovers, bypass maps) looks at these.
        pub recipients: Vec<String>,
        /// The client as smtpd saw it (address, verified name, HELO,
        /// protocol), as amavisd-new learns it from Postfix's XFORWARD.
        pub client: ClientInfo,
        /// The Received header cleanup adds for that client, exactly as it
        /// will be queued: the spam engine's trust path starts with it.
        pub received: String,
        /// The size of the sealed content the request carries.
        pub size: u64,
        /// Where the message came from and smtpd's SPF results.
        pub sender_auth: crate::auth::SenderAuth,
    }

    /// What to do with the message as a whole.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Action {
        /// Deliver, with `Verdict::headers` added.
        Pass,
        /// 554 5.7.1 with `Verdict::reason`.
        Reject,
        /// Accept (250) and keep it in quarantine/.
        Quarantine,
        /// Accept (250) and drop it.
        Discard,
        /// Not now (a check could not be completed, such as DMARC on a DNS
        /// failure): `Verdict::reply`, a 4xx.
        Defer,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct RuleHit {
        pub name: String,
        pub score: f64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct BannedPart {
        /// The part's file name, or its declared type when it has none;
        /// inside archives `outer.zip/inner.exe`.
        pub name: String,
        /// Why it is banned, e.g. "file name", "declared type", "PE executable".
        pub reason: String,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Verdict {
        pub action: Action,
        /// Short text for the SMTP reply and the log, e.g.
        /// "virus found: Eicar-Signature".
        pub reason: String,
        /// None when spam scoring was bypassed or is not configured.
        pub score: Option<f64>,
        pub required: Option<f64>,
        pub hits: Vec<RuleHit>,
        pub viruses: Vec<String>,
        pub banned: Vec<BannedPart>,
        /// Header fields to add at the top, name and value, in order.
        pub headers: Vec<(String, String)>,
        /// Prefix for the Subject (spam_subject_tag), when tagged as spam.
        pub subject_tag: Option<String>,
        /// The SMTP reply for Reject or Defer when the check that decided
        /// has its own (DMARC: 550 5.7.1); otherwise 554 5.7.1 with
        /// `reason`.
        pub reply: Option<crate::envelope::SmtpReply>,
        /// What the sender checks found, when they ran (dkim_verify):
        /// cleanup ARC-seals the message with it (arc_sealing).
        pub authenticated: Option<Authenticated>,
    }

    /// The state of the ARC chain a message arrived with (RFC 8617
    /// section 4.4), as the scanner verified it.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ArcChain {
        /// No ARC set, or not checked.
        #[default]
        None,
        Pass,
        /// Broken, or not verifiable.
        Fail,
    }

    /// The sender checks' results an ARC sealer needs.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Authenticated {
        /// The Authentication-Results value (after the header name), on
        /// one line: the seal's ARC-Authentication-Results.
        pub results: String,
        pub arc: ArcChain,
        /// How many ARC sets the verified message had.
        pub arc_sets: u32,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Reply {
        Verdict(Box<Verdict>),
        /// The scan could not be completed (clamd down, a crash in a scan,
        /// unreadable content): cleanup applies scanner_failure_action.
        Failed {
            reason: String,
        },
    }
}

/// anyone -> qmgr: a nudge to look at the queue, or (from `mailgate
/// queue`) an action on queued messages.
///
/// qmgr is the one owner of queue state while it runs: every change the
/// queue tools make goes through it, so no message is moved under a
/// delivery in flight. `Wake` and `Flush` get no answer; `Act` gets one
/// `ActReply`.
pub mod qmgr {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Request {
        /// New mail in incoming/.
        Wake,
        /// Retry deferred mail now (`mailgate queue flush`).
        Flush,
        Act {
            action: Action,
            target: Target,
        },
    }

    /// postsuper's -d, -h, -H and -r.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Action {
        /// Remove the message from whichever queue holds it.
        Delete,
        /// Move it to hold/, where nothing is delivered.
        Hold,
        /// Move it from hold/ to deferred/, due at once.
        Release,
        /// Move it to incoming/, for delivery at once (hold/ included).
        Requeue,
    }

    impl Action {
        /// The queues the action looks in, as postsuper's defaults.
        pub fn queues(self) -> &'static [&'static str] {
            use crate::spool::{ACTIVE, DEFERRED, HOLD, INCOMING};
            match self {
                Action::Delete | Action::Requeue => &[INCOMING, ACTIVE, DEFERRED, HOLD],
                Action::Hold => &[INCOMING, ACTIVE, DEFERRED],
                Action::Release => &[HOLD],
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Target {
        All,
        Ids(Vec<String>),
    }

    #[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ActReply {
        /// Messages the action was applied to.
        pub done: Vec<String>,
        /// Messages with deliveries in flight: the action is applied when
        /// they report back (so what they delivered is not delivered again).
        pub deferred_until_idle: Vec<String>,
        /// Named messages not found in any queue the action applies to.
        pub missing: Vec<String>,
    }
}

/// qmgr -> relay (any delivery transport), one request per delivery attempt
/// of one message to one next hop; and verify -> relay, one address probe
/// per request.
///
/// A delivery agent's socket takes an [`AgentRequest`]: a `Deliver` (with
/// the queue file as its one descriptor) is answered with a [`Reply`], a
/// `Probe` (no descriptor) with a [`ProbeReply`].
pub mod delivery {
    use serde::{Deserialize, Serialize};

    use crate::envelope::{BodyType, ClientInfo, Micros};

    /// What a delivery agent is asked.
    #[derive(Debug, Serialize, Deserialize)]
    pub enum AgentRequest {
        Deliver(Request),
        Probe(Probe),
    }

    /// An address probe (Postfix's verify mode): the agent resolves
    /// `nexthop` and applies the TLS policy as for a delivery, then says
    /// EHLO, MAIL FROM:<sender>, RCPT TO:<recipient>, RSET and QUIT, and
    /// reports the server's answer to the recipient. No message is sent.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Probe {
        /// The transport of the route, as for a delivery (smtp, relay,
        /// error, discard...).
        pub transport: String,
        pub nexthop: String,
        /// address_verify_sender, qualified; empty for the null sender.
        pub sender: String,
        pub recipient: String,
    }

    /// The probe's result for its recipient: `Sent` means the next hop
    /// accepted the address (deliverable), `Bounced` that it refused it
    /// for good, `Deferred` that it could not tell (4xx, no server).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ProbeReply {
        pub outcome: Outcome,
        /// Enhanced status such as "2.1.5" or "5.1.1".
        pub dsn: String,
        /// As in the log's parentheses: the next hop's reply, or why there
        /// was none.
        pub reason: String,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct Request {
        pub queue_id: String,
        /// Transport name from the routing decision (smtp, relay, ...).
        pub transport: String,
        /// `[host]:port`, `[host]`, `host:port` or `domain`.
        pub nexthop: String,
        pub sender: String,
        pub recipients: Vec<RecipientRequest>,
        pub body_type: Option<BodyType>,
        pub smtputf8: bool,
        pub content_offset: u64,
        pub content_length: u64,
        /// For the delays=a/b/c/d figures in the log.
        pub arrival: Micros,
        pub active_since: Micros,
        /// The client the message came from, for XFORWARD.
        pub client: ClientInfo,
        // The request carries one descriptor: the queue file, read-only.
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct RecipientRequest {
        /// Index into the envelope's recipient list.
        pub index: usize,
        pub address: String,
        pub original: Option<String>,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Outcome {
        Sent,
        Deferred,
        Bounced,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct RecipientResult {
        pub index: usize,
        pub outcome: Outcome,
        /// Enhanced status such as "2.0.0" or "4.4.1".
        pub dsn: String,
        /// What happened, as in the log's parentheses.
        pub reason: String,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Reply {
        pub results: Vec<RecipientResult>,
    }
}

/// smtpd -> verify: what is known about an address (Postfix's verify(8)
/// query). The service answers at once, from its cache; an address it
/// knows nothing about (or whose entry needs refreshing) gets a probe
/// started in the background, and `InProgress` until its result is in.
pub mod verify {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Request {
        Query { address: String },
    }

    /// Postfix's DEL_RCPT_STAT_* for a verified address.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Status {
        /// The next hop accepted it (OK).
        Deliverable,
        /// The next hop could not say (4xx, unreachable): DEFER.
        Deferred,
        /// The next hop refused it for good (5xx): BOUNCE.
        Undeliverable,
        /// Nothing known yet; a probe is on its way: ask again.
        InProgress,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Reply {
        pub status: Status,
        /// The next hop's answer, or "Address verification in progress".
        pub text: String,
    }
}

/// smtpd -> anvil, one connection per smtpd process held open while it
/// runs (Postfix's anvil(8)): the per-client counts over every smtpd
/// process. A connection counted with `Connect` stays counted until the
/// same smtpd connection sends `Disconnect` or closes (a crashed smtpd's
/// clients are counted down with it). One reply per request, in order.
pub mod anvil {
    use std::net::IpAddr;

    use serde::{Deserialize, Serialize};

    /// Which limit a rate request counts for.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum Event {
        /// MAIL FROM (smtpd_client_message_rate_limit).
        Message,
        /// An accepted RCPT TO (smtpd_client_recipient_rate_limit).
        Recipient,
        /// AUTH (smtpd_client_auth_rate_limit).
        Auth,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Request {
        /// A new session of `client` on master.cf service `service`: count
        /// it as open and as one connection in the rate window.
        Connect { service: String, client: IpAddr },
        /// That session ended.
        Disconnect { service: String, client: IpAddr },
        /// Count one event of the client in the rate window.
        Rate {
            service: String,
            client: IpAddr,
            event: Event,
        },
    }

    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Reply {
        /// Sessions the client holds open (this one included), and its
        /// connections in the current anvil_rate_time_unit.
        Connected {
            count: u32,
            rate: u32,
        },
        Disconnected,
        /// The client's events of that kind in the current unit, this one
        /// included.
        Rate(u32),
        /// anvil holds as many clients as it may: the smtpd counts this
        /// one itself.
        Full,
    }
}

#[cfg(test)]
mod tests {
    use super::cleanup::Request;
    use crate::Channel;

    #[tokio::test]
    async fn begin_crosses() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (Channel::new(a), Channel::new(b));
        a.send(&Request::Begin, &[]).await.unwrap();
        let (got, _) = b.recv::<Request>().await.unwrap();
        assert!(matches!(got, Request::Begin));
    }
}
