//! Host name and address syntax, as Postfix's valid_hostname(3) judges it:
//! what reject_invalid_helo_hostname and reject_non_fqdn_* accept.

use std::net::{Ipv4Addr, Ipv6Addr};

const MAX_LABEL: usize = 63;
const MAX_NAME: usize = 255;

/// Drops one trailing dot ("host.example." but not "host.example..").
pub fn without_trailing_dot(name: &str) -> &str {
    match name.strip_suffix('.') {
        Some(rest) if !rest.is_empty() && !rest.ends_with('.') => rest,
        _ => name,
    }
}

/// Letters, digits, '-' and '_' in labels of at most 63 octets, no empty
/// label, no label starting or ending with '-', not all numeric, at most
/// 255 octets.
pub fn valid_hostname(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_NAME {
        return false;
    }
    let mut non_numeric = false;
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL {
            return false;
        }
        if label.starts_with('-') || label.ends_with('-') {
            return false;
        }
        for b in label.bytes() {
            match b {
                b'0'..=b'9' => {}
                b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'-' => non_numeric = true,
                _ => return false,
            }
        }
    }
    non_numeric
}

/// Like [`valid_hostname`], also allowing UTF-8 labels when the client
/// asked for SMTPUTF8.
pub fn valid_utf8_hostname(name: &str, smtputf8: bool) -> bool {
    if !smtputf8 || name.is_ascii() {
        return valid_hostname(name);
    }
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
        })
}

/// A dotted quad or an IPv6 address in text form.
pub fn valid_hostaddr(addr: &str) -> bool {
    if addr.contains(':') {
        addr.parse::<Ipv6Addr>().is_ok()
    } else {
        valid_ipv4(addr)
    }
}

/// Four decimal octets; 0.x.y.z only as 0.0.0.0 (as Postfix).
fn valid_ipv4(addr: &str) -> bool {
    let Ok(ip) = addr.parse::<Ipv4Addr>() else {
        return false;
    };
    ip.octets()[0] != 0 || ip.is_unspecified()
}

/// The inside of an address literal as HELO or a mail domain gives it:
/// `192.0.2.1` or `IPv6:2001:db8::1`.
pub fn valid_mailhost_addr(inner: &str) -> bool {
    match inner
        .get(..5)
        .filter(|prefix| prefix.eq_ignore_ascii_case("IPv6:"))
    {
        Some(_) => inner[5..].parse::<Ipv6Addr>().is_ok(),
        None => valid_ipv4(inner),
    }
}

/// `[...]` around an address literal, stripped.
pub fn literal_inside(name: &str) -> Option<&str> {
    name.strip_prefix('[')?.strip_suffix(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        for good in [
            "mx.example.com",
            "a",
            "host_1.example",
            "xn--bcher-kva.example",
            "1a.2b",
        ] {
            assert!(valid_hostname(good), "{good}");
        }
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "-a.example",
            "a-.example",
            "a b",
            "a@b",
            "1.2.3.4",
            "123",
            "exa!mple.com",
        ] {
            assert!(!valid_hostname(bad), "{bad}");
        }
        assert!(!valid_hostname(&format!("{}.com", "a".repeat(64))));
        assert!(!valid_hostname(&"a.".repeat(128)));
        assert_eq!(without_trailing_dot("host.example."), "host.example");
        assert_eq!(without_trailing_dot("host.example.."), "host.example..");
        assert_eq!(without_trailing_dot("."), ".");
        assert!(valid_utf8_hostname("bücher.example", true));
        assert!(!valid_utf8_hostname("bücher.example", false));
    }

    #[test]
    fn addresses() {
        assert!(valid_hostaddr("192.0.2.1"));
        assert!(valid_hostaddr("2001:db8::1"));
        assert!(!valid_hostaddr("0.1.2.3"));
        assert!(valid_hostaddr("0.0.0.0"));
        assert!(!valid_hostaddr("256.1.1.1"));
        assert!(!valid_hostaddr("1.2.3"));
        assert!(valid_mailhost_addr("IPv6:::1"));
        assert!(valid_mailhost_addr("ipv6:2001:db8::1"));
        assert!(!valid_mailhost_addr("2001:db8::1"));
        assert!(valid_mailhost_addr("192.0.2.1"));
        assert_eq!(literal_inside("[192.0.2.1]"), Some("192.0.2.1"));
        assert_eq!(literal_inside("192.0.2.1"), None);
    }
}
