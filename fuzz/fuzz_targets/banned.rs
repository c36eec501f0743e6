//! The scanner's banned-attachment check on any message: mailgate-mime's
//! careful and permissive readings, nested message/rfc822 parts, attachment names, and the
//! archives found inside, with the scanner's default limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanner::archive::Limits;
use scanner::banned::Policy;

fn policy() -> Policy {
    Policy {
        extensions: ["exe", "scr", "pif", "bat", "js", "lnk", "iso"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        mime_types: ["application/x-msdownload".to_string()].into(),
        tables: Vec::new(),
        executable_content: true,
        limits: Limits {
            depth: 3,
            max_size: 8 * 1024 * 1024,
            max_ratio: 100,
            max_entries: 1000,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let report = policy().check_message(data, None).expect("no deadline");
    for part in report.banned.iter().chain(&report.unchecked) {
        // What goes into a 554 text and a log line: printable ASCII only.
        assert!(
            part.name
                .bytes()
                .chain(part.reason.bytes())
                .all(|b| (0x20..0x7f).contains(&b)),
            "{part:?}"
        );
    }
});
