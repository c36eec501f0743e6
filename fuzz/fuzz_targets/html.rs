//! The spam engine's HTML tokenizer and renderer (entities, CSS colours,
//! the html_* evals), on any HTML body.
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

const HEAD: &[u8] = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: x\r\n\
MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let mut message = HEAD.to_vec();
    message.extend_from_slice(data);
    let report = engine().score(&message);
    assert!(report.score.is_finite(), "score {}", report.score);
});
