//! reject_*sender_login_mismatch: who may use which envelope sender, by
//! smtpd_sender_login_maps (address or @domain -> the SASL logins that own
//! it), with Postfix's replies.

use mailgate_config::restrictions::LoginMismatch;

use super::{Decision, ErrorClass, Evaluator, State};

impl Evaluator<'_> {
    /// The logins that own `sender`: its full address, then `@domain`.
    fn owners(&self, sender: &str) -> Option<Vec<String>> {
        let lower = sender.to_ascii_lowercase();
        let domain = lower.rsplit_once('@').map(|(_, d)| format!("@{d}"));
        let keys = std::iter::once(lower.clone()).chain(domain);
        for key in keys {
            for table in &self.settings.sender_login_maps {
                if let Some(value) = table.lookup(&key) {
                    return Some(
                        value
                            .split([',', ' ', '\t'])
                            .filter(|o| !o.is_empty())
                            .map(str::to_string)
                            .collect(),
                    );
                }
            }
        }
        None
    }

    pub(super) fn login_mismatch(&self, st: &mut State, kind: LoginMismatch) -> Decision {
        let Some(sender) = st.sender.clone().filter(|s| !s.is_empty()) else {
            return Decision::Dunno;
        };
        let owners = self.owners(&sender);
        match st.sasl_username.clone() {
            Some(login) => {
                let checks = matches!(
                    kind,
                    LoginMismatch::Both | LoginMismatch::Authenticated | LoginMismatch::Known
                );
                let owned = owners
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|owner| owner.eq_ignore_ascii_case(&login)));
                // Known: only addresses the maps list are checked.
                let applies = kind != LoginMismatch::Known || owners.is_some();
                if checks && applies && !owned {
                    return self.reject(
                        st,
                        ErrorClass::Policy,
                        553,
                        "5.7.1",
                        format!("<{sender}>: Sender address rejected: not owned by user {login}"),
                    );
                }
                Decision::Dunno
            }
            None => {
                let checks = matches!(kind, LoginMismatch::Both | LoginMismatch::Unauthenticated);
                if checks && owners.is_some() {
                    return self.reject(
                        st,
                        ErrorClass::Policy,
                        553,
                        "5.7.1",
                        format!("<{sender}>: Sender address rejected: not logged in"),
                    );
                }
                Decision::Dunno
            }
        }
    }
}
