//! Sender authentication as it travels between processes: smtpd's SPF
//! results. Plain data: the checks themselves are in mailgate-mailauth.

use serde::{Deserialize, Serialize};

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
