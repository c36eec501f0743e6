//! smtpd's command line parser (and the address parser under MAIL and
//! RCPT): any line a client can send, under each combination of the
//! options that change parsing. An error reply must be one well-formed
//! SMTP reply: no line end inside a line, so a hostile argument cannot
//! inject a reply of its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpd::address::parse_path;
use smtpd::command::{ParseOptions, parse};

fuzz_target!(|data: &[u8]| {
    // smtpd hands the parser the line as text only when it is UTF-8.
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    for (smtputf8_enable, strict_rfc821_envelopes) in
        [(false, false), (false, true), (true, false), (true, true)]
    {
        let opts = ParseOptions {
            smtputf8_enable,
            strict_rfc821_envelopes,
        };
        let (_verb, parsed) = parse(line, opts);
        if let Err(reply) = parsed {
            let wire = reply.to_wire();
            assert!(wire.ends_with(b"\r\n"), "{wire:?}");
            let body = &wire[..wire.len() - 2];
            for segment in body.split(|&b| b == b'\n') {
                let segment = segment.strip_suffix(b"\r").unwrap_or(segment);
                assert!(!segment.contains(&b'\r'), "bare CR in {wire:?}");
            }
        }
    }
    for (allow_null, strict) in [(false, false), (true, true)] {
        if let Ok((path, rest)) = parse_path(line, allow_null, strict) {
            assert!(rest.is_empty() || rest.starts_with(' ') || !strict);
            let shown = path.to_string();
            assert!(!shown.contains(['\r', '\n']), "{shown:?}");
        }
    }
});
