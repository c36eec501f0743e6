//! DKIM verification (with the ARC chain the message arrived with) and
//! DMARC evaluation of mail from outside (dkim_verify, dmarc_verify), on the mail-auth crate through mailgate-mailauth: the
//! Authentication-Results header (RFC 8601) with the gateway's authserv-id,
//! and what a failed DMARC policy does to the verdict under the local
//! policy (dmarc_reject_action, dmarc_quarantine_action,
//! dmarc_tempfail_action).
//!
//! Mail from mynetworks and authenticated clients is not checked (it is
//! the organisation's own). The checks need DNS: the scanner keeps the
//! `inet` promise while they are on (see the scanner's profiles).

use std::net::IpAddr;

use mailgate_config::MainConfig;
use mailgate_config::sender_auth::{DmarcAction, VerifyPolicy};
use mailgate_ipc::auth::{Origin, SenderAuth};
use mailgate_ipc::envelope::SmtpReply;
use mailgate_ipc::protocol::scanner::{Action, Authenticated, Verdict};
use mailgate_mailauth::verify::{Checks, Envelope};
use mailgate_mailauth::{Authenticator, DmarcDisposition, Verification};

/// The checks and the resolver they use, made before the sandbox.
pub struct SenderChecks {
    authenticator: Authenticator,
    policy: VerifyPolicy,
    /// The author domains' ADSP records are looked up for the spam
    /// rules' DKIM_ADSP_* tests, which run with network tests only.
    adsp: bool,
}

impl SenderChecks {
    /// None when neither check is on.
    pub fn from_config(config: &MainConfig) -> Result<Option<SenderChecks>, String> {
        let policy = VerifyPolicy::load(config);
        if !policy.any() {
            return Ok(None);
        }
        let authenticator = Authenticator::from_nameservers(&config.list("dns_nameservers"))
            .map_err(|e| format!("dkim_verify/dmarc_verify: DNS resolver: {e}"))?;
        Ok(Some(SenderChecks {
            authenticator,
            policy,
            adsp: config.bool("spam_network_tests"),
        }))
    }

    /// Whether a message from this origin is checked.
    pub fn applies(&self, auth: &SenderAuth) -> bool {
        auth.origin == Origin::Remote
    }

    pub async fn verify(
        &self,
        message: &[u8],
        client: IpAddr,
        helo: &str,
        sender: &str,
        auth: &SenderAuth,
    ) -> Verification {
        let envelope = Envelope {
            client,
            helo,
            sender,
            spf_helo: auth.helo.clone(),
            spf_mail_from: auth.mail_from.clone(),
            authserv_id: &self.policy.authserv_id,
            receiver: &self.policy.receiver,
        };
        let checks = Checks {
            dkim: self.policy.dkim,
            // ARC (RFC 8617) with DKIM: arc= in the header.
            arc: self.policy.dkim,
            dmarc: self.policy.dmarc,
            adsp: self.adsp,
        };
        self.authenticator.verify(message, &envelope, checks).await
    }

    /// Adds the Authentication-Results header above the scanner's own,
    /// hands cleanup what ARC sealing needs, and applies the DMARC
    /// outcome under the local policy. A verdict that already rejects (a
    /// virus, say) stays as it is.
    pub fn apply(&self, verification: &Verification, verdict: &mut Verdict) {
        verdict.headers.insert(
            0,
            (
                "Authentication-Results".to_string(),
                verification.results.clone(),
            ),
        );
        // The chain's state is known only when ARC was checked (with
        // dkim_verify); without it there is nothing to seal over.
        if self.policy.dkim {
            verdict.authenticated = Some(Authenticated {
                results: verification.results.clone(),
                arc: verification.arc,
                arc_sets: verification.arc_sets,
            });
        }
        let domain = verification.dmarc_domain.as_deref().unwrap_or("");
        let (action, what) = match verification.dmarc {
            DmarcDisposition::None => return,
            DmarcDisposition::Reject => (self.policy.on_reject, "reject"),
            DmarcDisposition::Quarantine => (self.policy.on_quarantine, "quarantine"),
            DmarcDisposition::TempError => (self.policy.on_tempfail, "temperror"),
        };
        if matches!(verdict.action, Action::Reject | Action::Discard) {
            return;
        }
        let reason = if what == "temperror" {
            format!("DMARC policy of {domain} could not be looked up")
        } else {
            format!("DMARC policy of {domain}: p={what}, failed")
        };
        match action {
            DmarcAction::Tag => {}
            DmarcAction::Reject => {
                verdict.action = Action::Reject;
                verdict.reply = Some(SmtpReply {
                    code: 550,
                    status: "5.7.1".into(),
                    text: format!("Email rejected per DMARC policy for {domain}"),
                });
                verdict.reason = reason;
            }
            DmarcAction::Quarantine => {
                verdict.action = Action::Quarantine;
                verdict.reason = reason;
            }
            DmarcAction::Defer => {
                verdict.action = Action::Defer;
                verdict.reply = Some(SmtpReply {
                    code: 451,
                    status: "4.4.3".into(),
                    text: format!(
                        "DMARC policy of {domain} could not be looked up; try again later"
                    ),
                });
                verdict.reason = reason;
            }
        }
    }
}
