//! SPF (RFC 7208) for the HELO and MAIL FROM identities, with the
//! Received-SPF header and the explanation texts policyd-spf (pyspf) uses.

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{ReceivedSpf, SpfOutput};
use mailgate_ipc::auth::{SpfCheck, SpfResult};

use crate::Authenticator;

/// Which identity a check is about (RFC 7208 section 2.3 and 2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpfScope {
    Helo,
    MailFrom,
}

impl SpfScope {
    /// policyd-spf's names: `helo` and `mfrom`.
    pub fn short(self) -> &'static str {
        match self {
            SpfScope::Helo => "helo",
            SpfScope::MailFrom => "mfrom",
        }
    }
}

/// The result of one check and what to tell about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpfOutcome {
    pub scope: SpfScope,
    pub check: SpfCheck,
    /// The domain's own explanation (the exp= modifier), when it gave one.
    pub explanation: Option<String>,
    /// The Received-SPF header (RFC 7208 section 9.1), on one line.
    pub header: String,
}

impl SpfOutcome {
    pub fn result(&self) -> SpfResult {
        self.check.result
    }

    /// The text a rejection gives: the domain's explanation, or pyspf's
    /// words for the result (what policyd-spf puts in its replies).
    pub fn reason(&self) -> String {
        if let Some(exp) = &self.explanation
            && !exp.trim().is_empty()
        {
            return exp.trim().to_string();
        }
        match self.check.result {
            SpfResult::Pass => "sender SPF authorized",
            SpfResult::Fail => "SPF fail - not authorized",
            SpfResult::SoftFail => "domain owner discourages use of this host",
            SpfResult::Neutral => "access neither permitted nor denied",
            SpfResult::None => "no SPF record",
            SpfResult::TempError => "temporary DNS error in processing",
            SpfResult::PermError => "permanent error in processing",
        }
        .to_string()
    }
}

fn result_of(output: &SpfOutput) -> SpfResult {
    match output.result() {
        mail_auth::SpfResult::Pass => SpfResult::Pass,
        mail_auth::SpfResult::Fail => SpfResult::Fail,
        mail_auth::SpfResult::SoftFail => SpfResult::SoftFail,
        mail_auth::SpfResult::Neutral => SpfResult::Neutral,
        mail_auth::SpfResult::None => SpfResult::None,
        mail_auth::SpfResult::TempError => SpfResult::TempError,
        mail_auth::SpfResult::PermError => SpfResult::PermError,
    }
}

/// mail-auth's result for one of ours, to build its headers.
pub(crate) fn output_of(check: &SpfCheck) -> SpfOutput {
    let result = match check.result {
        SpfResult::Pass => mail_auth::SpfResult::Pass,
        SpfResult::Fail => mail_auth::SpfResult::Fail,
        SpfResult::SoftFail => mail_auth::SpfResult::SoftFail,
        SpfResult::Neutral => mail_auth::SpfResult::Neutral,
        SpfResult::None => mail_auth::SpfResult::None,
        SpfResult::TempError => mail_auth::SpfResult::TempError,
        SpfResult::PermError => mail_auth::SpfResult::PermError,
    };
    SpfOutput::new(check.domain.clone()).with_result(result)
}

/// A header value on one line: mail-auth folds its headers, and an
/// access-table PREPEND (like policyd-spf's) is one line.
pub(crate) fn one_line(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    for (i, piece) in header.trim_end().split("\r\n").enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(piece.trim_start_matches([' ', '\t']));
    }
    out
}

impl Authenticator {
    /// SPF for the HELO identity (postmaster@HELO). A HELO that is not a
    /// domain name (an address literal, a bare word) has no SPF record:
    /// none, without a query.
    pub async fn spf_helo(&self, ip: IpAddr, helo: &str, receiver: &str) -> SpfOutcome {
        let helo = helo.trim_end_matches('.');
        let output = self
            .inner()
            .verify_spf(SpfParameters::verify_ehlo(ip, helo, receiver))
            .await;
        outcome(SpfScope::Helo, &output, ip, helo, "", receiver)
    }

    /// SPF for the MAIL FROM identity; `sender` is not empty (the null
    /// sender's identity is the HELO name: use [`Authenticator::spf_helo`]).
    pub async fn spf_mail_from(
        &self,
        ip: IpAddr,
        helo: &str,
        sender: &str,
        receiver: &str,
    ) -> SpfOutcome {
        let helo = helo.trim_end_matches('.');
        let output = self
            .inner()
            .verify_spf(SpfParameters::verify_mail_from(ip, helo, receiver, sender))
            .await;
        outcome(SpfScope::MailFrom, &output, ip, helo, sender, receiver)
    }
}

fn outcome(
    scope: SpfScope,
    output: &SpfOutput,
    ip: IpAddr,
    helo: &str,
    sender: &str,
    receiver: &str,
) -> SpfOutcome {
    let header = ReceivedSpf::new(output, ip, helo, sender, receiver).to_header();
    SpfOutcome {
        scope,
        check: SpfCheck {
            domain: output.domain().to_string(),
            result: result_of(output),
        },
        explanation: output.explanation().map(str::to_string),
        header: one_line(&header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_one_line() {
        assert_eq!(
            one_line("Received-SPF: pass (a: b)\r\n\treceiver=a; client-ip=192.0.2.1;\r\n"),
            "Received-SPF: pass (a: b) receiver=a; client-ip=192.0.2.1;"
        );
        let check = SpfCheck {
            domain: "example.org".into(),
            result: SpfResult::SoftFail,
        };
        let output = output_of(&check);
        let header = ReceivedSpf::new(
            &output,
            "192.0.2.1".parse().unwrap(),
            "mx.example.org",
            "bob@example.org",
            "gw.example.com",
        )
        .to_header();
        let line = one_line(&header);
        assert!(line.starts_with("Received-SPF: softfail (gw.example.com: domain of bob@example.org reports soft fail for 192.0.2.1) receiver=gw.example.com; client-ip=192.0.2.1; envelope-from=\"bob@example.org\"; helo=mx.example.org;"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn reasons_are_pyspf_words_unless_the_domain_explains() {
        let mut outcome = SpfOutcome {
            scope: SpfScope::MailFrom,
            check: SpfCheck {
                domain: "example.org".into(),
                result: SpfResult::Fail,
            },
            explanation: None,
            header: String::new(),
        };
        assert_eq!(outcome.reason(), "SPF fail - not authorized");
        outcome.explanation = Some("Not our server".into());
        assert_eq!(outcome.reason(), "Not our server");
    }
}
