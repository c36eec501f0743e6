//! RFC 5321 address helpers.

/// Splits "local@domain" at the last '@' outside double quotes. The domain is
/// lowercased. None when there is no such '@'.
pub fn split_address(address: &str) -> Option<(&str, String)> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut at = None;
    for (i, c) in address.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '@' if !in_quotes => at = Some(i),
            _ => {}
        }
    }
    let at = at?;
    Some((&address[..at], address[at + 1..].to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_last_unquoted_at() {
        assert_eq!(
            split_address("User@Example.COM"),
            Some(("User", "example.com".to_string()))
        );
        assert_eq!(
            split_address("\"a@b\"@example.com"),
            Some(("\"a@b\"", "example.com".to_string()))
        );
        assert_eq!(
            split_address("\"a\\\"@b\"@x.org"),
            Some(("\"a\\\"@b\"", "x.org".to_string()))
        );
        assert_eq!(
            split_address("a@b@c.org"),
            Some(("a@b", "c.org".to_string()))
        );
        assert_eq!(split_address("\"only@quoted\""), None);
        assert_eq!(split_address("postmaster"), None);
        assert_eq!(split_address("user@"), Some(("user", String::new())));
        assert_eq!(split_address(""), None);
    }
}
