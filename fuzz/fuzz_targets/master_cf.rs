//! master.cf's parser: service lines, their columns, `-o` overrides and
//! the listen addresses.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mailgate_config::MasterConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = MasterConfig::parse(text, Path::new("master.cf")) {
        let _ = config.parameter_references();
        for service in &config.services {
            let _ = service.inet_address();
        }
    }
});
