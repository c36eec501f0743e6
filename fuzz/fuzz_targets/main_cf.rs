//! main.cf's parser: logical lines, continuations, `$name` and
//! `${name?...}` expansion (bounded depth), every parameter's value check,
//! and the typed getters each service calls at start.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mailgate_config::MainConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = Path::new("/nonexistent-mailgate-fuzz");
    let Ok(config) = MainConfig::parse(text, &dir.join("main.cf"), dir, &[]) else {
        return;
    };
    for (name, _) in config.explicit() {
        let _ = config.get(&name);
        let _ = config.list(&name);
    }
    let _ = config.all();
    let _ = config.size("message_size_limit");
    let _ = config.time("scanner_timeout");
    let _ = config.int("smtpd_recipient_limit");
    let _ = config.bool("smtpd_delay_reject");
    let _ = config.score("spam_kill_level");
});
