//! RFC 5321 paths: `<local@domain>`, `<>`, source routes, quoted local parts.
//!
//! The parser is strict where strictness closes a relay hole and lenient
//! where real mail breaks the RFC harmlessly:
//!
//! - a local part is either a quoted string or a run of atext and dots
//!   (`john..doe` is accepted, as Postfix does); an `@` outside quotes can
//!   only separate the local part from the domain, so `user@evil@relay` is a
//!   syntax error rather than a guess about which `@` counts;
//! - a source route (`<@a,@b:user@d>`) is checked for syntax and dropped, as
//!   RFC 5321 section 4.1.1.3 says a server should;
//! - the domain is a dotted name (letters, digits, `-`, `_`, UTF-8 labels)
//!   with an optional trailing dot, which is removed, or an address literal
//!   `[192.0.2.1]` / `[IPv6:2001:db8::1]`;
//! - an address without a domain (`<postmaster>`) parses; whether it may pass
//!   is the restrictions' decision.
//!
//! The local part is kept unquoted (`"a b"` becomes `a b`), so that the
//! routing tricks hidden in quotes (`"user@evil"@relay`) are visible to
//! `Address::is_routed`, and an address is written back quoted only where
//! it must be.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A mailbox: an unquoted local part and an optional domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    local: String,
    domain: Option<String>,
}

/// What MAIL FROM names: the null sender `<>` or a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Mailbox(Address),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressError {
    Empty,
    /// `<` without its `>`.
    Unterminated,
    /// `<>` where a mailbox is required (RCPT TO).
    NullNotAllowed,
    /// Angle brackets are required (strict_rfc821_envelopes = yes).
    MissingBrackets,
    BadRoute,
    BadLocalPart,
    BadDomain,
    BadLiteral,
    /// Text after the closing `>` that is not separated by a space.
    TrailingText,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::Empty => "empty address",
            AddressError::Unterminated => "missing '>'",
            AddressError::NullNotAllowed => "null address not allowed here",
            AddressError::MissingBrackets => "address not in angle brackets",
            AddressError::BadRoute => "bad source route",
            AddressError::BadLocalPart => "bad local part",
            AddressError::BadDomain => "bad domain name",
            AddressError::BadLiteral => "bad address literal",
            AddressError::TrailingText => "garbage after '>'",
        })
    }
}

impl std::error::Error for AddressError {}

impl Address {
    /// The domain as the client wrote it (case kept, trailing dot removed).
    #[cfg(test)]
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// True when the local part itself names another destination (`%`, `!`
    /// or `@` in it): such an address must never count as addressed to one
    /// of our domains, or a downstream server that honours the old routing
    /// conventions becomes an open relay (Postfix's RESOLVE_FLAG_ROUTED).
    #[cfg(test)]
    pub fn is_routed(&self) -> bool {
        is_routed_local(&self.local)
    }
}

/// A local part that names another destination: `%`, `!` or `@` in it
/// (quoted or not).
pub fn is_routed_local(local: &str) -> bool {
    local.contains(['@', '%', '!'])
}

/// The address in RFC 5321 form, the local part quoted only when needed.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.local.is_empty() && self.local.chars().all(is_dot_string_char) {
            f.write_str(&self.local)?;
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        match &self.domain {
            Some(domain) => write!(f, "@{domain}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Mailbox(a) => a.fmt(f),
        }
    }
}

/// Parses the path at the start of `text` (what follows `MAIL FROM:` or
/// `RCPT TO:`). Returns the path and the rest of the line (the ESMTP
/// parameters, leading spaces included). `allow_null` admits `<>`;
/// `strict` requires angle brackets.
pub fn parse_path(
    text: &str,
    allow_null: bool,
    strict: bool,
) -> Result<(ReversePath, &str), AddressError> {
    if text.is_empty() {
        return Err(AddressError::Empty);
    }
    let Some(inner_and_rest) = text.strip_prefix('<') else {
        if strict {
            return Err(AddressError::MissingBrackets);
        }
        // Postfix accepts `MAIL FROM:user@example.com`; the address ends at
        // the first space.
        let end = text.find(' ').unwrap_or(text.len());
        let address = parse_mailbox(&text[..end])?;
        return Ok((ReversePath::Mailbox(address), &text[end..]));
    };
    let close = closing_bracket(inner_and_rest).ok_or(AddressError::Unterminated)?;
    let inner = &inner_and_rest[..close];
    let rest = &inner_and_rest[close + 1..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return Err(AddressError::TrailingText);
    }
    if inner.is_empty() {
        return if allow_null {
            Ok((ReversePath::Null, rest))
        } else {
            Err(AddressError::NullNotAllowed)
        };
    }
    let mailbox = strip_source_route(inner)?;
    Ok((ReversePath::Mailbox(parse_mailbox(mailbox)?), rest))
}

/// Index of the `>` that closes the path, skipping quoted strings.
fn closing_bracket(text: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quotes {
            match c {
                '\\' => escaped = true,
                '"' => in_quotes = false,
                _ => {}
            }
        } else {
            match c {
                '"' => in_quotes = true,
                '>' => return Some(i),
                _ => {}
            }
        }
    }
    None
}

/// `@a,@b:mailbox` -> `mailbox`, after checking the route's syntax.
fn strip_source_route(inner: &str) -> Result<&str, AddressError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    // A route holds no quotes, so the first ':' ends it.
    let (route, mailbox) = inner.split_once(':').ok_or(AddressError::BadRoute)?;
    for hop in route.split(',') {
        let domain = hop.strip_prefix('@').ok_or(AddressError::BadRoute)?;
        parse_domain(domain).map_err(|_| AddressError::BadRoute)?;
    }
    Ok(mailbox)
}

fn parse_mailbox(text: &str) -> Result<Address, AddressError> {
    if text.is_empty() {
        return Err(AddressError::Empty);
    }
    let (local, rest) = if let Some(quoted) = text.strip_prefix('"') {
        parse_quoted(quoted)?
    } else {
        let end = text.find('@').unwrap_or(text.len());
        let local = &text[..end];
        if local.is_empty() || !local.chars().all(is_dot_string_char) {
            return Err(AddressError::BadLocalPart);
        }
        (local.to_string(), &text[end..])
    };
    let domain = match rest {
        "" => None,
        _ => {
            let domain = rest.strip_prefix('@').ok_or(AddressError::BadLocalPart)?;
            Some(parse_domain(domain)?)
        }
    };
    Ok(Address { local, domain })
}

/// After the opening quote: the unquoted text and what follows the closing quote.
fn parse_quoted(text: &str) -> Result<(String, &str), AddressError> {
    let mut local = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((local, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e)) if (' '..='~').contains(&e) => local.push(e),
                _ => return Err(AddressError::BadLocalPart),
            },
            // qtextSMTP: printable ASCII (and UTF-8, RFC 6531), no controls.
            c if c == ' ' || c.is_ascii_graphic() || !c.is_ascii() => local.push(c),
            _ => return Err(AddressError::BadLocalPart),
        }
    }
    Err(AddressError::BadLocalPart)
}

/// A domain name or an address literal; a single trailing dot is dropped.
fn parse_domain(text: &str) -> Result<String, AddressError> {
    if let Some(literal) = text.strip_prefix('[') {
        let body = literal.strip_suffix(']').ok_or(AddressError::BadLiteral)?;
        let valid = match body.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => body[5..].parse::<Ipv6Addr>().is_ok(),
            _ => body.parse::<Ipv4Addr>().is_ok(),
        };
        return if valid {
            Ok(text.to_string())
        } else {
            Err(AddressError::BadLiteral)
        };
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
    };
    if name.split('.').all(label_ok) {
        Ok(name.to_string())
    } else {
        Err(AddressError::BadDomain)
    }
}

/// atext (RFC 5322), the dot, and UTF-8 (RFC 6531).
fn is_dot_string_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) || !c.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(text: &str) -> Address {
        match parse_path(text, false, false) {
            Ok((ReversePath::Mailbox(a), "")) => a,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn error(text: &str) -> AddressError {
        parse_path(text, false, false).expect_err(text)
    }

    #[test]
    fn plain_addresses() {
        let a = mailbox("<User@Example.COM>");
        assert_eq!(a.local, "User");
        assert_eq!(a.domain(), Some("Example.COM"));
        assert_eq!(a.to_string(), "User@Example.COM");
        assert!(!a.is_routed());
        assert_eq!(mailbox("<user@example.com.>").domain(), Some("example.com"));
        assert_eq!(mailbox("<john..doe@x.org>").local, "john..doe");
        assert_eq!(mailbox("<postmaster>").domain(), None);
        assert_eq!(mailbox("<postmaster>").to_string(), "postmaster");
        assert_eq!(mailbox("<δοκιμή@παράδειγμα.δοκιμή>").local, "δοκιμή");
        assert_eq!(mailbox("user@example.com").to_string(), "user@example.com");
    }

    #[test]
    fn null_path_and_parameters() {
        assert_eq!(parse_path("<>", true, false), Ok((ReversePath::Null, "")));
        assert_eq!(
            parse_path("<> SIZE=10", true, true),
            Ok((ReversePath::Null, " SIZE=10"))
        );
        assert_eq!(error("<>"), AddressError::NullNotAllowed);
        let (path, rest) = parse_path("<a@b.c> BODY=8BITMIME", false, false).unwrap();
        assert_eq!(path.to_string(), "a@b.c");
        assert_eq!(rest, " BODY=8BITMIME");
        let (_, rest) = parse_path("a@b.c SIZE=1", false, false).unwrap();
        assert_eq!(rest, " SIZE=1");
        assert_eq!(
            parse_path("a@b.c", false, true),
            Err(AddressError::MissingBrackets)
        );
    }

    #[test]
    fn quoted_local_parts_are_unquoted_and_requoted() {
        let a = mailbox("<\"john\"@example.com>");
        assert_eq!(a.local, "john");
        assert_eq!(a.to_string(), "john@example.com");
        let a = mailbox("<\"john doe\"@example.com>");
        assert_eq!(a.to_string(), "\"john doe\"@example.com");
        let a = mailbox(r#"<"a\"b\\c>"@example.com>"#);
        assert_eq!(a.local, r#"a"b\c>"#);
        assert_eq!(a.to_string(), r#""a\"b\\c>"@example.com"#);
        assert_eq!(
            mailbox("<\"\"@example.com>").to_string(),
            "\"\"@example.com"
        );
    }

    #[test]
    fn percent_hack_is_routed() {
        let a = mailbox("<user%evil.com@relay.example>");
        assert_eq!(a.domain(), Some("relay.example"));
        assert!(a.is_routed());
    }

    #[test]
    fn bang_path_is_routed() {
        let a = mailbox("<evil.com!user@relay.example>");
        assert_eq!(a.domain(), Some("relay.example"));
        assert!(a.is_routed());
    }

    #[test]
    fn quoted_at_is_routed() {
        let a = mailbox("<\"user@evil.com\"@relay.example>");
        assert_eq!(a.local, "user@evil.com");
        assert_eq!(a.domain(), Some("relay.example"));
        assert!(a.is_routed());
        assert_eq!(a.to_string(), "\"user@evil.com\"@relay.example");
        // Escaped quotes do not end the quoted string early.
        let a = mailbox("<\"x\\\"@evil.com\"@relay.example>");
        assert_eq!(a.domain(), Some("relay.example"));
        assert!(a.is_routed());
    }

    #[test]
    fn source_route_is_dropped() {
        let a = mailbox("<@relay.example:user@evil.com>");
        assert_eq!(a.local, "user");
        assert_eq!(a.domain(), Some("evil.com"));
        let a = mailbox("<@a.example,@b.example:user@evil.com>");
        assert_eq!(a.to_string(), "user@evil.com");
        assert_eq!(
            error("<@relay.example user@evil.com>"),
            AddressError::BadRoute
        );
        assert_eq!(error("<@:user@evil.com>"), AddressError::BadRoute);
        assert_eq!(error("<@a,b:user@evil.com>"), AddressError::BadRoute);
    }

    #[test]
    fn double_at_is_a_syntax_error() {
        assert_eq!(
            error("<user@evil.com@relay.example>"),
            AddressError::BadDomain
        );
        assert_eq!(
            error("user@evil.com@relay.example"),
            AddressError::BadDomain
        );
    }

    #[test]
    fn address_literals() {
        assert_eq!(mailbox("<user@[1.2.3.4]>").domain(), Some("[1.2.3.4]"));
        assert_eq!(
            mailbox("<user@[IPv6:2001:db8::1]>").domain(),
            Some("[IPv6:2001:db8::1]")
        );
        assert_eq!(error("<user@[1.2.3]>"), AddressError::BadLiteral);
        assert_eq!(error("<user@[999.1.1.1]>"), AddressError::BadLiteral);
        assert_eq!(error("<user@[1.2.3.4>"), AddressError::BadLiteral);
        assert_eq!(error("<user@[tag:x]>"), AddressError::BadLiteral);
    }

    #[test]
    fn case_and_trailing_dot_keep_the_domain_recognisable() {
        let a = mailbox("<user@EVIL.COM.>");
        assert_eq!(a.domain(), Some("EVIL.COM"));
        assert_eq!(error("<user@evil.com..>"), AddressError::BadDomain);
    }

    #[test]
    fn malformed() {
        assert_eq!(error(""), AddressError::Empty);
        assert_eq!(error("<user@example.com"), AddressError::Unterminated);
        assert_eq!(error("<user@example.com>x"), AddressError::TrailingText);
        assert_eq!(error("<@example.com>"), AddressError::BadRoute);
        assert_eq!(error("<user@>"), AddressError::BadDomain);
        assert_eq!(error("<@>"), AddressError::BadRoute);
        assert_eq!(error("<user name@example.com>"), AddressError::BadLocalPart);
        assert_eq!(error("<user@exa mple.com>"), AddressError::BadDomain);
        assert_eq!(error("<user@.example.com>"), AddressError::BadDomain);
        assert_eq!(error("<\"open@example.com>"), AddressError::Unterminated);
        assert_eq!(error("<\"a\"b@example.com>"), AddressError::BadLocalPart);
        assert_eq!(error("<\"a\tb\"@example.com>"), AddressError::BadLocalPart);
        assert_eq!(error("<us\rer@example.com>"), AddressError::BadLocalPart);
        assert_eq!(error("<user@exam\0ple.com>"), AddressError::BadDomain);
        assert_eq!(error("<a@b.c><d@e.f>"), AddressError::TrailingText);
    }
}
