//! The spam engine (crate mailgate-spam: SpamAssassin-compatible rules and
//! Bayes) behind the one call the scanner makes per message.

use mailgate_config::MainConfig;
use mailgate_ipc::protocol::scanner::RuleHit;

use crate::policy::SpamScore;

pub struct SpamEngine {
    engine: mailgate_spam::Engine,
}

impl SpamEngine {
    /// Loads the rules and opens the Bayes store; runs before the sandbox,
    /// while the rule files are reachable.
    /// The Bayes store is a snapshot taken now (see mailgate_spam's
    /// snapshot module), so `mailgate learn` can write the real one.
    pub fn load(config: &MainConfig) -> Result<SpamEngine, String> {
        let mut engine_config = mailgate_spam::EngineConfig::from_main_cf(config);
        // Learning writes the store, and the scanner's sandbox allows no
        // file writes: learning is `mailgate learn`'s job.
        if engine_config.auto_learn {
            mailgate_log::warning!(
                "spam_bayes_auto_learn = yes is ignored by the scanner, which may write no \
                 files; train with mailgate learn"
            );
            engine_config.auto_learn = false;
        }
        if let Some(dir) = engine_config
            .bayes_dir
            .take()
            .filter(|_| engine_config.bayes_enabled)
        {
            let snapshot = mailgate_spam::scanner_snapshot(&dir)
                .map_err(|e| format!("cannot take a snapshot of the Bayes store: {e}"))?;
            engine_config.bayes_dir = Some(snapshot);
        }
        mailgate_spam::Engine::load(&engine_config)
            .map(|engine| SpamEngine { engine })
            .map_err(|e| format!("cannot load the spam rules: {e}"))
    }

    pub fn score(&self, message: &[u8]) -> SpamScore {
        let report = self.engine.score(message);
        SpamScore {
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
