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
        /// Carries one descriptor: the content, CRLF line ends, not dot-stuffed.
        Commit {
            envelope: Box<Envelope>,
        },
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

/// anyone -> qmgr: a nudge to look at the queue.
pub mod qmgr {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Request {
        /// New mail in incoming/.
        Wake,
        /// Retry deferred mail now (`mailgate queue flush`).
        Flush,
    }
}

/// qmgr -> relay (any delivery transport), one request per delivery attempt
/// of one message to one next hop.
pub mod delivery {
    use serde::{Deserialize, Serialize};

    use crate::envelope::{BodyType, Micros};

    #[derive(Debug, Serialize, Deserialize)]
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
        // The request carries one descriptor: the queue file, read-only.
    }

    #[derive(Debug, Serialize, Deserialize)]
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
