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

/// Compiles a literal as written in a rule.
pub fn compile_literal(literal: &Literal) -> Result<Regex, String> {
    compile(&literal.pattern, &literal.flags)
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
