//! smtpd's DATA reader: the end of the message, dot-unstuffing, line-end
//! normalisation and the size/header/hop limits, for any byte stream and
//! any split of it into reads. The first bytes choose the limits and the
//! split points; the rest is what the client sends after DATA.
//!
//! Invariants: the result does not depend on how the stream was split
//! (CVE-2023-51766-style smuggling needs the opposite); every line end in
//! the stored content is CRLF; nothing is stored beyond
//! message_size_limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpd::data::{DataReader, Feed, Limits};

fn run(limits: Limits, input: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<usize>, String) {
    let mut reader = DataReader::new(limits);
    let mut out = Vec::new();
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.push(input.len());
    for end in points {
        if end < start {
            continue;
        }
        if let Feed::Done { used } = reader.feed(&input[start..end], &mut out) {
            return (out, Some(start + used), format!("{:?}", reader.verdict()));
        }
        start = end;
    }
    (out, None, format!("{:?}", reader.verdict()))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let (head, input) = data.split_at(6);
    let limits = Limits {
        message_size: u64::from(head[0]) * 4,
        header_size: u64::from(head[1]) + 1,
        hop_count: u32::from(head[2] % 8),
    };
    let whole = run(limits, input, &[]);
    let cuts: Vec<usize> = head[3..].iter().map(|&b| usize::from(b)).collect();
    let split = run(limits, input, &cuts);
    assert_eq!(whole, split, "the split changed the result");
    let bytewise: Vec<usize> = (0..input.len().min(64)).collect();
    assert_eq!(
        whole,
        run(limits, input, &bytewise),
        "byte-at-a-time differs"
    );
    let (out, _, _) = whole;
    if limits.message_size != 0 {
        assert!(out.len() as u64 <= limits.message_size);
    }
    for (i, &b) in out.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && out[i - 1] == b'\r', "bare LF stored");
        }
        if b == b'\r' && i + 1 < out.len() {
            assert_eq!(out[i + 1], b'\n', "bare CR stored");
        }
    }
});
