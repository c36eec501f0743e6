//! DKIM (RFC 6376), ARC (RFC 8617) and DMARC (RFC 7489, and the DMARCbis
//! tree walk mail-auth implements) for a message received from the
//! internet, with the Authentication-Results value (RFC 8601) and the
//! facts the spam rules read.

use std::net::IpAddr;

use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcResult,
    Error,
};
use mailgate_ipc::auth::SpfCheck;

use crate::facts::{DkimFact, DmarcFact, Facts};
use crate::spf::{one_line, output_of};
use crate::{Authenticator, adsp};

/// Signatures verified per message at most; the rest count as signed but
/// are not checked (each costs a DNS query and a public-key operation).
pub const MAX_SIGNATURES: usize = 10;

/// The state of the ARC chain a message arrived with (RFC 8617 section
/// 4.4): the type the scanner hands cleanup's sealer.
pub use mailgate_ipc::protocol::scanner::ArcChain;

/// Which checks to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checks {
    pub dkim: bool,
    pub arc: bool,
    pub dmarc: bool,
    /// Look up the author domains' ADSP records (with dkim or dmarc).
    pub adsp: bool,
}

/// What is known about the message before its content is read.
pub struct Envelope<'a> {
    pub client: IpAddr,
    pub helo: &'a str,
    /// The envelope sender, empty for the null sender.
    pub sender: &'a str,
    /// smtpd's SPF results (check_spf); when it did not check, the
    /// checks that need SPF (DMARC) run it here.
    pub spf_helo: Option<SpfCheck>,
    pub spf_mail_from: Option<SpfCheck>,
    /// This gateway's name in the Authentication-Results header.
    pub authserv_id: &'a str,
    /// This gateway's host name, for SPF's %{r} macro.
    pub receiver: &'a str,
}

/// What the domain asks for mail that fails DMARC, after pct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmarcDisposition {
    /// Passed, no record, or p=none.
    None,
    Quarantine,
    Reject,
    /// The check could not be completed (DNS): the policy is unknown.
    TempError,
}

/// Everything the checks found.
#[derive(Clone, Debug, PartialEq)]
pub struct Verification {
    /// The Authentication-Results value, on one line.
    pub results: String,
    pub arc: ArcChain,
    /// How many ARC sets (ARC-Seal fields) the message had.
    pub arc_sets: u32,
    /// The From domain DMARC evaluated, when it did.
    pub dmarc_domain: Option<String>,
    pub dmarc: DmarcDisposition,
    pub facts: Facts,
}

impl Authenticator {
    /// Runs the checks on one message. Never fails: a message that cannot
    /// be parsed gets results saying so, a lookup that fails a temperror.
    pub async fn verify(
        &self,
        message: &[u8],
        envelope: &Envelope<'_>,
        checks: Checks,
    ) -> Verification {
        let helo_domain = envelope.helo.trim_end_matches('.');
        let spf_helo = match &envelope.spf_helo {
            Some(check) => check.clone(),
            None => {
                self.spf_helo(envelope.client, helo_domain, envelope.receiver)
                    .await
                    .check
            }
        };
        let spf_mail_from = match (&envelope.spf_mail_from, envelope.sender.is_empty()) {
            (_, true) => None,
            (Some(check), false) => Some(check.clone()),
            (None, false) => Some(
                self.spf_mail_from(
                    envelope.client,
                    helo_domain,
                    envelope.sender,
                    envelope.receiver,
                )
                .await
                .check,
            ),
        };
        let mut facts = Facts {
            spf_helo: Some(spf_helo.result),
            spf_mail_from: spf_mail_from.as_ref().map(|c| c.result),
            envelope_domain: domain_of(envelope.sender),
            envelope_sender: envelope.sender.to_string(),
            ..Facts::default()
        };
        let id = envelope.authserv_id;
        let mut results = id.to_string();
        // The identity DMARC aligns SPF with: MAIL FROM, or HELO for <>.
        let spf_identity = spf_mail_from.clone().unwrap_or_else(|| spf_helo.clone());
        let spf_output = output_of(&spf_identity);
        let mut ar = AuthenticationResults::new(id).with_spf_ehlo_result(
            &output_of(&spf_helo),
            envelope.client,
            helo_domain,
        );
        if let Some(check) = &spf_mail_from {
            ar = ar.with_spf_mailfrom_result(
                &output_of(check),
                envelope.client,
                envelope.sender,
                helo_domain,
            );
        }
        push(&mut results, id, &ar);

        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            results.push_str("; dkim=permerror (message could not be parsed)");
            return Verification {
                results,
                arc: ArcChain::Fail,
                arc_sets: 0,
                dmarc_domain: None,
                dmarc: DmarcDisposition::None,
                facts,
            };
        };
        facts.author_domains = parsed
            .from
            .iter()
            .filter_map(|a| domain_of(a))
            .collect::<Vec<_>>();
        facts.author_domains.dedup();

        let mut dkim: Vec<DkimOutput> = Vec::new();
        if checks.dkim || checks.dmarc {
            facts.dkim_checked = true;
            facts.dkim_signed = !parsed.dkim_headers.is_empty() || parsed.has_dkim_errors;
            let verified = if parsed.dkim_headers.len() > MAX_SIGNATURES {
                Vec::new()
            } else {
                self.inner().verify_dkim(&parsed).await
            };
            dkim = verified
                .into_iter()
                .map(|o| body_hash_fails(o, &parsed))
                .collect();
            for output in &dkim {
                if let Some(sig) = output.signature() {
                    facts.dkim.push(DkimFact {
                        domain: sdid(&sig.i, &sig.d),
                        valid: matches!(output.result(), DkimResult::Pass),
                        temperror: matches!(output.result(), DkimResult::TempError(_)),
                    });
                }
            }
            let from = parsed.from.first().map(String::as_str).unwrap_or("");
            if dkim.is_empty() {
                results.push_str(if parsed.dkim_headers.len() > MAX_SIGNATURES {
                    "; dkim=policy (too many signatures)"
                } else {
                    "; dkim=none"
                });
            } else {
                push(
                    &mut results,
                    id,
                    &AuthenticationResults::new(id).with_dkim_results(&dkim, from),
                );
            }
        }

        if facts.dkim_checked {
            self.adsp_candidates(&mut facts, checks.adsp).await;
        }

        let mut arc = ArcChain::None;
        let arc_sets = u32::try_from(parsed.as_headers.len()).unwrap_or(u32::MAX);
        if checks.arc {
            let mut output: ArcOutput = self.inner().verify_arc(&parsed).await;
            // RFC 8617 knows none, pass and fail: mail-auth's neutral (a
            // body hash that no longer matches, an expired or unparsable
            // set) is a chain that does not validate (section 5.2).
            if let DkimResult::Neutral(error) = output.result() {
                let error = error.clone();
                output = output.with_result(DkimResult::Fail(error));
            }
            arc = match output.result() {
                DkimResult::None => ArcChain::None,
                DkimResult::Pass => ArcChain::Pass,
                _ => ArcChain::Fail,
            };
            facts.arc_signed = arc != ArcChain::None;
            facts.arc_valid = arc == ArcChain::Pass;
            push(
                &mut results,
                id,
                &AuthenticationResults::new(id).with_arc_result(&output, envelope.client),
            );
        }

        let mut dmarc_domain = None;
        let mut disposition = DmarcDisposition::None;
        if checks.dmarc {
            let mail_from_domain = domain_of(envelope.sender).unwrap_or(helo_domain.to_string());
            let output = self
                .inner()
                .verify_dmarc(DmarcParameters::new(
                    &parsed,
                    &dkim,
                    &mail_from_domain,
                    &spf_output,
                ))
                .await;
            if !output.domain().is_empty() {
                dmarc_domain = Some(output.domain().to_string());
                let result = output.result();
                let has_record = output.dmarc_record().is_some();
                let policy = output.policy();
                facts.dmarc = Some(match &result {
                    DmarcResult::Pass => DmarcFact::Pass,
                    DmarcResult::Fail(_) => DmarcFact::Fail(policy_word(policy)),
                    DmarcResult::None if !has_record => DmarcFact::Missing,
                    _ => DmarcFact::Other,
                });
                disposition = match (&result, policy) {
                    (DmarcResult::Fail(_), Policy::Reject) => DmarcDisposition::Reject,
                    (DmarcResult::Fail(_), Policy::Quarantine) => DmarcDisposition::Quarantine,
                    (DmarcResult::TempError(_), _) => DmarcDisposition::TempError,
                    _ => DmarcDisposition::None,
                };
                push(
                    &mut results,
                    id,
                    &AuthenticationResults::new(id).with_dmarc_result(&output),
                );
            } else {
                results.push_str("; dmarc=none");
            }
        }
        Verification {
            results,
            arc,
            arc_sets,
            dmarc_domain,
            dmarc: disposition,
            facts,
        }
    }
}

impl Authenticator {
    /// SpamAssassin's ADSP candidates: each fully qualified author domain
    /// without a valid author signature or one whose key lookup failed,
    /// with its published practices when `lookup` (at most
    /// [`adsp::MAX_LOOKUPS`] lookups).
    async fn adsp_candidates(&self, facts: &mut Facts, lookup: bool) {
        let mut looked_up = 0;
        let mut seen = Vec::new();
        for domain in &facts.author_domains {
            if !adsp::fully_qualified(domain) || seen.contains(domain) {
                continue;
            }
            seen.push(domain.clone());
            let signed = facts
                .dkim
                .iter()
                .any(|s| s.domain == *domain && (s.valid || s.temperror));
            if signed {
                continue;
            }
            let published = if lookup && looked_up < adsp::MAX_LOOKUPS {
                looked_up += 1;
                Some(self.adsp(domain).await.code())
            } else {
                None
            };
            facts.adsp.push((domain.clone(), published));
        }
    }
}

/// mail-auth reports a body that no longer matches its hash as neutral;
/// RFC 6376 (section 6.3) and SpamAssassin call it a failed signature.
fn body_hash_fails<'x>(
    output: DkimOutput<'x>,
    parsed: &'x AuthenticatedMessage<'x>,
) -> DkimOutput<'x> {
    let signature = match (output.result(), output.signature()) {
        (DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch)), Some(sig)) => parsed
            .dkim_headers
            .iter()
            .map(|h| &h.header)
            .find(|h| h.b == sig.b && h.d == sig.d),
        _ => None,
    };
    match signature {
        Some(signature) => {
            DkimOutput::fail(Error::Dkim(DkimError::FailedBodyHashMatch)).with_signature(signature)
        }
        None => output,
    }
}

/// The signing domain SpamAssassin's DKIM plugin matches a signature by:
/// the domain of its i= when it has one, otherwise its d=; lower case.
fn sdid(i: &str, d: &str) -> String {
    match i.rsplit_once('@') {
        Some((_, domain)) if !domain.is_empty() => domain.to_ascii_lowercase(),
        _ => d.to_ascii_lowercase(),
    }
}

fn policy_word(policy: Policy) -> &'static str {
    match policy {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    }
}

/// Appends what mail-auth built after the authserv-id
/// (";\r\n\tmethod=result ...") on one line ("; method=result ...").
fn push(results: &mut String, authserv_id: &str, part: &AuthenticationResults<'_>) {
    let text = part.to_string();
    results.push_str(&one_line(text.strip_prefix(authserv_id).unwrap_or(&text)));
}

/// The domain of an address, lower case, without a trailing dot.
pub(crate) fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim_end_matches('>').trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_ipc::auth::SpfResult;

    #[test]
    fn results_are_joined_on_one_line() {
        let id = "gw.example.com";
        let mut results = id.to_string();
        let spf = output_of(&SpfCheck {
            domain: "example.org".into(),
            result: SpfResult::Pass,
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        push(
            &mut results,
            id,
            &AuthenticationResults::new(id).with_spf_mailfrom_result(
                &spf,
                ip,
                "bob@example.org",
                "mx.example.org",
            ),
        );
        results.push_str("; dkim=none");
        assert_eq!(
            results,
            "gw.example.com; spf=pass (gw.example.com: domain of bob@example.org designates 192.0.2.1 as permitted sender) smtp.mailfrom=bob@example.org; dkim=none"
        );
    }

    #[test]
    fn signing_domain_as_spamassassin_takes_it() {
        assert_eq!(sdid("@News.Example.ORG", "example.org"), "news.example.org");
        assert_eq!(sdid("bob@example.org", "Example.org"), "example.org");
        assert_eq!(sdid("", "Example.org"), "example.org");
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of("bob@Example.ORG."), Some("example.org".into()));
        assert_eq!(domain_of(""), None);
        assert_eq!(domain_of("bob@"), None);
    }
}
