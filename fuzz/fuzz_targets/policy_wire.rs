//! The policy delegation protocol reader (Postfix's `name=value` lines),
//! as the greylist service reads a request from smtpd or a stock Postfix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailgate_policy::{Limits, read_request};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        line_length: 512,
        attributes: 20,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut reader = data;
        // Every request in the stream, as a server reads them one by one.
        while let Ok(Some(_request)) = read_request(&mut reader, &limits).await {}
    });
});
