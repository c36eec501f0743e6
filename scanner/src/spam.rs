//! The spam engine (crate mailgate-spam: SpamAssassin-compatible rules and
//! Bayes) behind the one call the scanner makes per message.

use mailgate_config::MainConfig;
use mailgate_ipc::protocol::scanner::RuleHit;
use mailgate_mailauth::facts::Facts;
use mailgate_spam::{Class, SenderAuth};

use crate::policy::SpamScore;

pub struct SpamEngine {
    engine: mailgate_spam::Engine,
    /// Where auto-learned messages go, when auto-learn is on.
    journal: Option<mailgate_spam::Journal>,
}

impl SpamEngine {
    /// Loads the rules and opens the Bayes store; runs before the sandbox,
    /// while the rule files are reachable.
    /// The Bayes store is a snapshot taken now (see mailgate_spam's
    /// snapshot module), so `mailgate learn` can write the real one; with
    /// auto-learn on, this process's journal is created now, for the same
    /// reason (see mailgate_spam's journal module).
    pub fn load(config: &MainConfig) -> Result<SpamEngine, String> {
        let mut engine_config = mailgate_spam::EngineConfig::from_main_cf(config);
        let mut journal = None;
        if let Some(dir) = engine_config
            .bayes_dir
            .take()
            .filter(|_| engine_config.bayes_enabled)
        {
            let snapshot = mailgate_spam::scanner_snapshot(&dir)
                .map_err(|e| format!("cannot take a snapshot of the Bayes store: {e}"))?;
            engine_config.bayes_dir = Some(snapshot);
            if engine_config.auto_learn {
                journal = Some(
                    mailgate_spam::Journal::create(&dir)
                        .map_err(|e| format!("cannot create the auto-learn journal: {e}"))?,
                );
            }
        }
        mailgate_spam::Engine::load_read_only(&engine_config)
            .map(|engine| SpamEngine { engine, journal })
            .map_err(|e| format!("cannot load the spam rules: {e}"))
    }

    /// Scores a message; `auth` is what the DKIM/DMARC checks found (with
    /// smtpd's SPF results), for the SPF, DKIM and DMARC rules.
    pub fn score(&self, message: &[u8], auth: Option<&Facts>) -> SpamScore {
        let auth = auth.map(AuthFacts);
        let report = self
            .engine
            .score_with(message, auth.as_ref().map(|a| a as &dyn SenderAuth));
        let autolearn = self
            .journal
            .as_ref()
            .map(|journal| match &report.auto_learn {
                None => "no",
                Some(learn) => match journal.append(learn) {
                    Ok(()) if learn.class == Class::Spam => "spam",
                    Ok(()) => "ham",
                    Err(e) => {
                        mailgate_log::warning!("auto-learn: {e}");
                        "failed"
                    }
                },
            });
        SpamScore {
            autolearn,
            score: report.score,
            hits: report
                .hits
                .into_iter()
                .map(|h| RuleHit {
                    name: h.name,
                    score: h.score,
                })
                .collect(),
        }
    }
}

/// The sender checks' results as the spam rules ask for them.
struct AuthFacts<'a>(&'a Facts);

impl SenderAuth for AuthFacts<'_> {
    fn eval(&self, function: &str, args: &[String]) -> bool {
        self.0.eval(function, args)
    }
    fn valid_dkim_domains(&self) -> Vec<String> {
        self.0.valid_dkim_domains()
    }
    fn spf_pass_sender(&self) -> Option<String> {
        self.0.spf_pass_sender()
    }
    fn adsp(&self) -> mailgate_spam::Adsp {
        mailgate_spam::Adsp {
            authors: self.0.author_domains.clone(),
            candidates: self.0.adsp.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The spam engine hands the facts every function it takes for a
    /// sender-authentication test, and the facts answer each of them.
    #[test]
    fn the_engine_and_the_facts_know_the_same_functions() {
        assert_eq!(
            mailgate_spam::SENDER_AUTH_FUNCTIONS,
            mailgate_mailauth::facts::FUNCTIONS
        );
    }
}
