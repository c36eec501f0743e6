//! Sender authentication for mailgate, on the mail-auth crate (SPF, DKIM,
//! ARC, DMARC; no cryptography of our own): SPF as smtpd's check_spf asks
//! it, DKIM, ARC and DMARC verification as the scanner runs it, DKIM
//! signing and ARC sealing with a key held elsewhere (tlskeys), and the
//! SpamAssassin test results the spam rules read.
//!
//! The DNS resolver is mailgate's own (mailgate-dns: `dns_nameservers` or
//! /etc/resolv.conf, no hosts file), built before the sandbox.

pub mod adsp;
pub mod facts;
pub mod seal;
pub mod sign;
pub mod spf;
pub mod verify;

pub use mail_auth;
use mail_auth::MessageAuthenticator;

pub use facts::Facts;
pub use spf::{SpfOutcome, SpfScope};
pub use verify::{DmarcDisposition, Verification};

/// The DNS side of every check: mail-auth's authenticator on mailgate's
/// resolver. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: MessageAuthenticator,
}

impl Authenticator {
    /// On an existing resolver (smtpd shares its own).
    pub fn new(resolver: mailgate_dns::TokioResolver) -> Authenticator {
        Authenticator {
            inner: MessageAuthenticator(resolver),
        }
    }

    /// On a resolver built from dns_nameservers (or /etc/resolv.conf when
    /// empty); opens no socket until the first query.
    pub fn from_nameservers(
        nameservers: &[String],
    ) -> Result<Authenticator, mailgate_dns::SetupError> {
        Ok(Authenticator::new(mailgate_dns::resolver(nameservers)?))
    }

    pub(crate) fn inner(&self) -> &MessageAuthenticator {
        &self.inner
    }
}
