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
    pub fn load(config: &MainConfig) -> Result<SpamEngine, String> {
        let engine_config = mailgate_spam::EngineConfig::from_main_cf(config);
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
