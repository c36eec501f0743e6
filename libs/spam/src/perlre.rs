//! Perl regex literals as SpamAssassin rules write them (`/re/i`, `m{re}s`, `m!re!`),
//! compiled with PCRE2, the closest engine to Perl's, JIT-compiled when the platform
//! allows it. Patterns run on bytes (no UTF mode): SpamAssassin's stock rules match
//! raw octets (`\xe1`), not characters.

use pcre2::bytes::{Regex, RegexBuilder};

/// A Perl regex literal split into its pattern and flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Literal {
    pub pattern: String,
    pub flags: String,
}

/// Splits `text`, which starts with a regex literal, into the literal and what
/// follows it (e.g. ` [if-unset: x]`). `None` when the text is not a literal or the
/// closing delimiter is missing.
pub fn split_literal(text: &str) -> Option<(Literal, &str)> {
    let text = text.trim_start();
    let (open, body_start) = match text.as_bytes() {
        [b'/', ..] => (b'/', 1),
        [b'm', d, ..] if !d.is_ascii_alphanumeric() && !d.is_ascii_whitespace() => (*d, 2),
        _ => return None,
    };
    let close = match open {
        b'{' => b'}',
        b'(' => b')',
        b'[' => b']',
        b'<' => b'>',
        other => other,
    };
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = body_start;
    let end = loop {
        let c = *bytes.get(i)?;
        if c == b'\\' {
            i += 2;
            continue;
        }
        if open != close && c == open {
            depth += 1;
        } else if c == close {
            if depth == 0 {
                break i;
            }
            depth -= 1;
        }
        i += 1;
    };
    let pattern = text.get(body_start..end)?;
    let rest = text.get(end + 1..)?;
    let flags_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
    let (flags, rest) = rest.split_at(flags_len);
    // A `/` delimiter escaped inside the pattern (`\/`) means a plain slash to PCRE2
    // as well, so the pattern text can be used as it stands.
    Some((
        Literal {
            pattern: pattern.to_string(),
            flags: flags.to_string(),
        },
        rest,
    ))
}

/// Compiles a pattern with Perl flags. Unknown flags (`g`, `o`) do not change what
/// a match means for a rule and are ignored, as SpamAssassin ignores them.
pub fn compile(pattern: &str, flags: &str) -> Result<Regex, String> {
    let mut builder = RegexBuilder::new();
    builder
        .caseless(flags.contains('i'))
        .multi_line(flags.contains('m'))
        .dotall(flags.contains('s'))
        .extended(flags.contains('x'))
        .utf(false)
        .jit_if_available(true);
    builder.build(pattern).map_err(|e| e.to_string())
}

/// A rule's compiled regex: PCRE2's, or for a pattern too large for PCRE2's
/// compiled-size limit (the stock rules' longest word lists), the regex crate's,
/// which has no such limit but knows neither lookaround nor backreferences.
#[derive(Debug)]
pub enum Matcher {
    Pcre(Regex),
    Large(regex::bytes::Regex),
}

impl Matcher {
    /// Whether the regex matches; a match PCRE2 gives up on (its limits) is none.
    pub fn is_match(&self, text: &[u8]) -> bool {
        match self {
            Matcher::Pcre(r) => r.is_match(text).unwrap_or(false),
            Matcher::Large(r) => r.is_match(text),
        }
    }

    /// How many times the regex matches, counting at most `limit`.
    pub fn count(&self, text: &[u8], limit: u32) -> u32 {
        let mut n = 0;
        match self {
            Matcher::Pcre(r) => {
                for m in r.find_iter(text) {
                    if m.is_err() || n >= limit {
                        break;
                    }
                    n += 1;
                }
            }
            Matcher::Large(r) => {
                for _ in r.find_iter(text) {
                    if n >= limit {
                        break;
                    }
                    n += 1;
                }
            }
        }
        n
    }
}

/// Compiles a literal as written in a rule.
pub fn compile_literal(literal: &Literal) -> Result<Matcher, String> {
    let (pattern, flags) = (&literal.pattern, &literal.flags);
    match compile(pattern, flags) {
        Ok(r) => Ok(Matcher::Pcre(r)),
        Err(e) if e.contains("too large") => regex::bytes::RegexBuilder::new(pattern)
            .unicode(false)
            .case_insensitive(flags.contains('i'))
            .multi_line(flags.contains('m'))
            .dot_matches_new_line(flags.contains('s'))
            .ignore_whitespace(flags.contains('x'))
            .size_limit(64 << 20)
            .dfa_size_limit(16 << 20)
            .build()
            .map(Matcher::Large)
            .map_err(|_| e),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_and_flags() {
        let (l, rest) = split_literal("/foo\\/bar/i [if-unset: x]").unwrap();
        assert_eq!(l.pattern, "foo\\/bar");
        assert_eq!(l.flags, "i");
        assert_eq!(rest, " [if-unset: x]");
        let (l, _) = split_literal("m{a{2}b}s").unwrap();
        assert_eq!(l.pattern, "a{2}b");
        assert_eq!(l.flags, "s");
        let (l, _) = split_literal("m!x/y!").unwrap();
        assert_eq!(l.pattern, "x/y");
        assert!(split_literal("/unterminated").is_none());
        assert!(split_literal("plain").is_none());
    }

    #[test]
    fn patterns_too_large_for_pcre2() {
        let words: Vec<String> = (0..6000).map(|i| format!("w{i}x(?:ab|cd)")).collect();
        let literal = Literal {
            pattern: format!("\\b(?:{})\\b", words.join("|")),
            flags: "i".into(),
        };
        assert!(
            compile(&literal.pattern, "i")
                .unwrap_err()
                .contains("too large")
        );
        let m = compile_literal(&literal).unwrap();
        assert!(matches!(m, Matcher::Large(_)));
        assert!(m.is_match(b"say W5999XCD now"));
        assert!(!m.is_match(b"w6000xab"));
        assert_eq!(m.count(b"w1xab w2xcd w3xab", 2), 2);
        let small = compile_literal(&Literal {
            pattern: "a".into(),
            flags: String::new(),
        })
        .unwrap();
        assert_eq!(small.count(b"aaaa", 10), 4);
    }

    #[test]
    fn flags_change_matching() {
        assert!(compile("viagra", "i").unwrap().is_match(b"VIAGRA").unwrap());
        assert!(!compile("^b", "").unwrap().is_match(b"a\nb").unwrap());
        assert!(compile("^b", "m").unwrap().is_match(b"a\nb").unwrap());
        assert!(compile("a.b", "s").unwrap().is_match(b"a\nb").unwrap());
        assert!(
            compile("a b # comment", "x")
                .unwrap()
                .is_match(b"ab")
                .unwrap()
        );
        assert!(compile("\\xe1", "").unwrap().is_match(&[0xe1]).unwrap());
    }
}
