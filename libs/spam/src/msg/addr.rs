//! Addresses in header values, as SpamAssassin's `:addr` and `:name` read them.

/// Splits an address list at commas outside quotes, comments and angle brackets.
pub fn split_addresses(v: &[u8]) -> Vec<&[u8]> {
    let (mut out, mut start, mut quoted, mut depth, mut angle) =
        (Vec::new(), 0, false, 0u32, false);
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth = depth.saturating_sub(1),
            b'<' if !quoted && depth == 0 => angle = true,
            b'>' if !quoted && depth == 0 => angle = false,
            b',' if !quoted && depth == 0 && !angle => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&v[start.min(v.len())..]);
    out
}

/// The first address in a header value (SpamAssassin's `:addr`).
pub fn first_addr(value: &[u8]) -> Vec<u8> {
    let v = split_addresses(value)
        .into_iter()
        .find(|a| !a.trim_ascii().is_empty())
        .unwrap_or(value);
    // `<addr>`, where the `<` is not inside a quoted display name.
    let mut quoted = false;
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => {
                if let Some(gt) = v[i..].iter().position(|&c| c == b'>') {
                    return v[i + 1..i + gt].trim_ascii().to_vec();
                }
                break;
            }
            _ => {}
        }
        i += 1;
    }
    // Without angle brackets: drop a (comment) and take the first word with an @.
    let no_comment: Vec<u8> = {
        let mut depth = 0;
        v.iter()
            .filter(|&&c| match c {
                b'(' => {
                    depth += 1;
                    false
                }
                b')' => {
                    depth = (depth - 1).max(0);
                    false
                }
                _ => depth == 0,
            })
            .copied()
            .collect()
    };
    let first = no_comment
        .split(|&c| c == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    first
        .split(|c| c.is_ascii_whitespace())
        .find(|w| w.contains(&b'@'))
        .unwrap_or(first)
        .to_vec()
}

/// The display name in a header value (SpamAssassin's `:name`).
pub fn display_name(value: &[u8]) -> Vec<u8> {
    if let Some(lt) = value.iter().position(|&c| c == b'<') {
        let name = value[..lt].trim_ascii();
        return name
            .strip_prefix(b"\"")
            .and_then(|n| n.strip_suffix(b"\""))
            .unwrap_or(name)
            .to_vec();
    }
    if let Some(open) = value.iter().position(|&c| c == b'(')
        && let Some(close) = value.iter().rposition(|&c| c == b')')
        && close > open
    {
        return value[open + 1..close].to_vec();
    }
    Vec::new()
}
