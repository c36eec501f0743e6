//! check_spf: SPF for the HELO and MAIL FROM identities, decided as
//! policyd-spf (postfix-policyd-spf-python) decides, and answered as its
//! action would be: `550 5.7.23 ...` for a refused result (5.7.24 for a
//! refused permerror), `451 4.4.3 ...` for a temporary error (the sender
//! retries; the check never passes what it could not check), otherwise
//! `PREPEND Received-SPF: ...`.
//! The action goes through the access-table code a policy server's answer
//! takes, so the replies are Postfix's to the letter.
//!
//! Mail from mynetworks and from authenticated clients is not checked. The
//! HELO result is kept for the session and the MAIL FROM result for the
//! transaction, so a message with many recipients costs one set of DNS
//! queries and gets one header.

use mailgate_config::restrictions::Subject;
use mailgate_config::sender_auth::SpfReject;
use mailgate_ipc::auth::SpfResult;
use mailgate_mailauth::SpfOutcome;

use super::dns::expand;
use super::{Decision, Evaluator, State};

/// What one identity's result asks for (policyd-spf's action names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Reject,
    Defer,
    Prepend,
}

impl Evaluator<'_> {
    pub(super) async fn check_spf(
        &self,
        st: &mut State,
        name: &str,
        class: &str,
        default_access: Option<Subject>,
    ) -> Decision {
        let s = self.settings;
        if s.mynetworks.contains(st.peer.addr) || st.sasl_username.is_some() {
            return Decision::Dunno;
        }
        let action = self.spf_action(st).await;
        match action {
            Some(action) => {
                self.table_result(st, "check_spf", &action, name, class, default_access)
                    .await
            }
            None => Decision::Dunno,
        }
    }

    /// policyd-spf's _spfcheck: the HELO identity first (a refused HELO
    /// result ends it), then MAIL FROM; the header is the MAIL FROM
    /// result's, or the HELO result's when MAIL FROM found no record.
    async fn spf_action(&self, st: &mut State) -> Option<String> {
        let policy = &self.settings.spf_policy;
        let sender = st.sender.clone();
        // Without a HELO name policyd-spf takes the sender's domain.
        let helo = match st.helo.clone().filter(|h| !h.is_empty()) {
            Some(helo) => helo,
            None => sender
                .as_deref()
                .and_then(|s| s.rsplit_once('@'))
                .map(|(_, d)| d.to_string())
                .unwrap_or_else(|| "unknown".to_string()),
        };
        let null_sender = sender.as_deref() == Some("");
        let mut header = None;
        if policy.helo != SpfReject::NoCheck {
            let outcome = self.spf_helo(st, &helo).await;
            // "Null": the HELO result counts only for the null sender.
            let act = if policy.helo == SpfReject::Null && !null_sender {
                None
            } else {
                Some(self.act(policy.helo, outcome.result()))
            };
            if matches!(act, Some(Act::Reject | Act::Defer)) {
                return Some(self.refusal(st, &outcome, &helo, act));
            }
            header = Some(outcome.header.clone());
        }
        match sender.as_deref() {
            // At HELO time (no MAIL yet) and for the null sender, the HELO
            // result is all there is.
            None | Some("") => {}
            Some(sender) if policy.mail_from != SpfReject::NoCheck => {
                let outcome = self.spf_mail_from(st, &helo, sender).await;
                let act = self.act(policy.mail_from, outcome.result());
                if matches!(act, Act::Reject | Act::Defer) {
                    return Some(self.refusal(st, &outcome, sender, Some(act)));
                }
                let helo_none = st
                    .spf_helo
                    .as_ref()
                    .is_none_or(|(_, o)| o.result() == SpfResult::None);
                if outcome.result() != SpfResult::None || helo_none {
                    header = Some(outcome.header.clone());
                }
            }
            Some(_) => {}
        }
        match header {
            Some(header) if policy.received_header => Some(format!("PREPEND {header}")),
            _ => None,
        }
    }

    /// The outcome for this HELO name, checked once per session.
    async fn spf_helo(&self, st: &mut State, helo: &str) -> SpfOutcome {
        if let Some((name, outcome)) = &st.spf_helo
            && name == helo
        {
            return outcome.clone();
        }
        let outcome = self
            .settings
            .spf
            .spf_helo(st.peer.addr, helo, &self.settings.myhostname)
            .await;
        st.spf_helo = Some((helo.to_string(), outcome.clone()));
        outcome
    }

    /// The outcome for this sender, checked once per transaction.
    async fn spf_mail_from(&self, st: &mut State, helo: &str, sender: &str) -> SpfOutcome {
        if let Some((name, outcome)) = &st.spf_mail_from
            && name == sender
        {
            return outcome.clone();
        }
        let outcome = self
            .settings
            .spf
            .spf_mail_from(st.peer.addr, helo, sender, &self.settings.myhostname)
            .await;
        st.spf_mail_from = Some((sender.to_string(), outcome.clone()));
        outcome
    }

    /// policyd-spf's _get_resultcodes: which results of an identity are
    /// refused or deferred under its setting.
    fn act(&self, setting: SpfReject, result: SpfResult) -> Act {
        let policy = &self.settings.spf_policy;
        let refused = match setting {
            SpfReject::Fail | SpfReject::Null => matches!(result, SpfResult::Fail),
            SpfReject::Softfail => matches!(result, SpfResult::Fail | SpfResult::SoftFail),
            SpfReject::NotPass => matches!(
                result,
                SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral
            ),
            // "False": every result only gives the header.
            SpfReject::No | SpfReject::NoCheck => return Act::Prepend,
        };
        if refused || (result == SpfResult::PermError && policy.permerror_reject) {
            Act::Reject
        } else if result == SpfResult::TempError && policy.temperror_defer {
            Act::Defer
        } else {
            Act::Prepend
        }
    }

    /// The refusing action: `550 5.7.23 text` (RFC 7372's "SPF validation
    /// failed"; 5.7.24 for a permerror), or `451 4.4.3 text` for a DNS
    /// failure.
    fn refusal(
        &self,
        st: &State,
        outcome: &SpfOutcome,
        identity: &str,
        act: Option<Act>,
    ) -> String {
        let defer = act == Some(Act::Defer);
        let receiver = st
            .recipient
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| r.rsplit_once('@').map_or(r, |(_, d)| d).to_string())
            .unwrap_or_else(|| "none".to_string());
        let reason = outcome.reason();
        let client = st.peer.addr.to_string();
        let text = expand(&self.settings.spf_policy.reason, &|name| {
            Some(match name {
                "rejectdefer" => if defer { "deferred" } else { "rejected" }.to_string(),
                "spf" => reason.clone(),
                "scope" => outcome.scope.short().to_string(),
                "identity" => identity.to_string(),
                "client_address" => client.clone(),
                "receiver" => receiver.clone(),
                _ => return None,
            })
        });
        let error = matches!(
            outcome.result(),
            SpfResult::PermError | SpfResult::TempError
        );
        if defer {
            format!("451 4.4.3 {text}")
        } else if error {
            format!("550 5.7.24 {text}")
        } else {
            format!("550 5.7.23 {text}")
        }
    }
}
