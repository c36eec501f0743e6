//! Sender authentication as it travels between processes: smtpd's SPF
//! results and where the message came from (smtpd -> cleanup -> scanner).
//! Plain data: the checks themselves are in mailgate-mailauth.

use serde::{Deserialize, Serialize};

/// Where a message entered the gateway, which decides what sender
/// authentication does with it: mail from the organisation is signed,
/// mail from the internet is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// Submitted on this machine (notices and bounces the gateway writes
    /// itself).
    #[default]
    Local,
    /// An SMTP client in mynetworks or one that authenticated (SASL).
    Trusted,
    /// Any other SMTP client.
    Remote,
}

impl Origin {
    /// Mail of the organisation: signed (DKIM), not checked.
    pub fn is_outbound(self) -> bool {
        matches!(self, Origin::Local | Origin::Trusted)
    }
}

/// An SPF result (RFC 7208 section 2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpfResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

impl SpfResult {
    /// The result's name as RFC 7208 and RFC 8601 write it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::Neutral => "neutral",
            SpfResult::None => "none",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

/// One SPF check: the domain checked (the HELO name, or the MAIL FROM
/// domain) and its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpfCheck {
    pub domain: String,
    pub result: SpfResult,
}

/// What smtpd knows about the sender's authenticity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderAuth {
    pub origin: Origin,
    /// SPF for the HELO identity, when smtpd checked it (check_spf).
    pub helo: Option<SpfCheck>,
    /// SPF for the MAIL FROM identity, when smtpd checked it; None for
    /// the null sender, whose identity is the HELO name.
    pub mail_from: Option<SpfCheck>,
}
