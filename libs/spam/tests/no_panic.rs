//! Property test: the engine scores any mutation of real mail without
//! panicking. Each case takes a message of the SpamAssassin public corpus (a
//! sample is in tests/corpus, with one that once made the engine panic) and
//! applies random truncations, byte insertions and overwrites, invalid UTF-8
//! in a header field or a body line, and MIME fragments; the engine, with the
//! stock rules and a Bayes store (so the tokenizer runs), must return a finite
//! score for every one.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use mailgate_spam::{Engine, EngineConfig};
use proptest::prelude::*;

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

static MESSAGES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(corpus);

struct Fixture {
    engine: Engine,
    _bayes: tempfile::TempDir,
}

static ENGINE: LazyLock<Fixture> = LazyLock::new(|| {
    let stock = PathBuf::from("/usr/share/spamassassin");
    assert!(
        stock.join("72_active.cf").is_file(),
        "SpamAssassin's stock rules are missing: install Debian's spamassassin package"
    );
    let bayes = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        stock_rules_dir: Some(stock),
        bayes_dir: Some(bayes.path().to_path_buf()),
        ..EngineConfig::default()
    };
    Fixture {
        engine: Engine::load(&config).unwrap(),
        _bayes: bayes,
    }
});

/// Text that steers the parsers into their corners.
const FRAGMENTS: &[&[u8]] = &[
    b"\nContent-Type: multipart/mixed; boundary=\"zz\"\n\n--zz\n",
    b"\n--zz--\n",
    b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n",
    b"Content-Type: text/html; charset=windows-1252\n",
    b"Content-Type: message/rfc822\n\n",
    b"=?utf-8?B?5pel5pys?=",
    b"=?iso-2022-jp?Q?=1B$B?=",
    b"<a href=\"./\xe9s.files/x.xml\">",
    b"<img src=x width=\xff height=9999999999999999999>",
    b"www.\xe9\xe9.com/",
    b"http://\xc3(/",
    b"&#x110000;&#99999999999;&",
    b"<!-- ",
    b"=\n=4",
    b"\r\n\r\n",
    b"Received: from \xe4\xb8 ([1.2.3.4]) by \xff\n",
    b"\xe4\xb8\xad",
    b"\xf0\x9f",
];

#[derive(Clone, Debug)]
enum Mutation {
    /// Keep only a prefix (position as a share of the length, per mille).
    Truncate(u16),
    /// Put these bytes at a position.
    Insert(u16, Vec<u8>),
    /// Overwrite bytes at a position with these.
    Overwrite(u16, Vec<u8>),
    /// Invalid UTF-8 into the n-th line (header field or body line).
    BadLine(usize, Vec<u8>),
    /// One of the fragments above at a position.
    Fragment(u16, usize),
    /// Remove a range.
    Delete(u16, u16),
}

fn at(len: usize, per_mille: u16) -> usize {
    len * usize::from(per_mille.min(1000)) / 1000
}

impl Mutation {
    fn apply(&self, m: &mut Vec<u8>) {
        match self {
            Mutation::Truncate(p) => m.truncate(at(m.len(), *p)),
            Mutation::Insert(p, bytes) => {
                let i = at(m.len(), *p);
                m.splice(i..i, bytes.iter().copied());
            }
            Mutation::Overwrite(p, bytes) => {
                let i = at(m.len(), *p);
                for (k, b) in bytes.iter().enumerate() {
                    if let Some(c) = m.get_mut(i + k) {
                        *c = *b;
                    }
                }
            }
            Mutation::BadLine(n, bytes) => {
                let starts: Vec<usize> = std::iter::once(0)
                    .chain(
                        m.iter()
                            .enumerate()
                            .filter(|(_, c)| **c == b'\n')
                            .map(|(i, _)| i + 1),
                    )
                    .collect();
                let line = starts[n % starts.len()];
                // After the field name's colon when there is one, so the field stays a field.
                let colon = m[line..]
                    .iter()
                    .take(80)
                    .take_while(|c| **c != b'\n')
                    .position(|c| *c == b':')
                    .map_or(line, |c| line + c + 1);
                m.splice(colon..colon, bytes.iter().copied());
            }
            Mutation::Fragment(p, f) => {
                let i = at(m.len(), *p);
                m.splice(i..i, FRAGMENTS[f % FRAGMENTS.len()].iter().copied());
            }
            Mutation::Delete(p, len) => {
                let i = at(m.len(), *p);
                let end = (i + usize::from(*len)).min(m.len());
                m.drain(i..end);
            }
        }
    }
}

fn high_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![0x80u8..=0xff, any::<u8>()], 1..12)
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0u16..=1000).prop_map(Mutation::Truncate),
        (0u16..=1000, prop::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        (0u16..=1000, high_bytes()).prop_map(|(p, b)| Mutation::Overwrite(p, b)),
        (any::<usize>(), high_bytes()).prop_map(|(n, b)| Mutation::BadLine(n, b)),
        (0u16..=1000, any::<usize>()).prop_map(|(p, f)| Mutation::Fragment(p, f)),
        (0u16..=1000, 0u16..400).prop_map(|(p, l)| Mutation::Delete(p, l)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_mutation_of_real_mail_gets_a_score(
        which in any::<usize>(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let mut m = MESSAGES[which % MESSAGES.len()].clone();
        for mutation in &mutations {
            mutation.apply(&mut m);
        }
        let report = ENGINE.engine.score(&m);
        prop_assert!(report.score.is_finite());
    }
}

/// Each sample message as it is, and with invalid UTF-8 in every one of its
/// lines at once, scores.
#[test]
fn every_field_with_invalid_utf8() {
    for original in MESSAGES.iter() {
        assert!(ENGINE.engine.score(original).score.is_finite());
        let mut m = Vec::new();
        for line in original.split_inclusive(|&c| c == b'\n') {
            let colon = line
                .iter()
                .take(80)
                .position(|&c| c == b':')
                .map_or(0, |c| c + 1);
            m.extend_from_slice(&line[..colon]);
            m.extend_from_slice(b"\xe9\xc3(\xff");
            m.extend_from_slice(&line[colon..]);
        }
        assert!(ENGINE.engine.score(&m).score.is_finite());
    }
}
