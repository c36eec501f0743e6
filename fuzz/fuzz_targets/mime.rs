//! The spam engine's MIME parser and everything that reads its result
//! (headers, decoded and rendered bodies, URIs, the Received trust path,
//! Bayes tokens), on any message.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mailgate_spam::{Engine, EngineConfig};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let config = EngineConfig {
            bayes_enabled: false,
            ..EngineConfig::default()
        };
        Engine::from_rules(include_str!("../rules.cf"), &config).expect("fuzz/rules.cf")
    })
}

fuzz_target!(|data: &[u8]| {
    let report = engine().score(data);
    assert!(report.score.is_finite(), "score {}", report.score);
});
