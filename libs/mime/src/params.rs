//! Content-Type and Content-Disposition values: the media type and the
//! parameters, with RFC 2045 quoting, RFC 2231 continuations and charsets
//! (`filename*0*=utf-8''evil%2E; filename*1=exe`) and RFC 2047 encoded
//! words inside quoted values (not standard, but what mail readers decode).

use crate::decode::{decode_header, percent_decode};

/// A header value split into its first token (lowercase, trimmed) and its
/// parameters: lowercase names, decoded values, the first of each name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Value {
    pub token: String,
    pub params: Vec<(String, String)>,
}

impl Value {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits on `;` outside double quotes (a backslash escapes in quotes).
fn split_params(v: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut i) = (0, false, 0);
    while i < v.len() {
        match v[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b';' if !quoted => {
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

fn unquote(v: &[u8]) -> Vec<u8> {
    let v = v.trim_ascii();
    let Some(inner) = v.strip_prefix(b"\"") else {
        return v.to_vec();
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            b'\\' if i + 1 < inner.len() => {
                out.push(inner[i + 1]);
                i += 2;
                continue;
            }
            b'"' => break,
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// One RFC 2231 section of a parameter: `name*N` or `name*N*`.
struct Section {
    name: String,
    index: u32,
    extended: bool,
    value: Vec<u8>,
}

/// Parses `token; a=b; c="d"` (folding removed first).
pub fn parse(raw: &[u8]) -> Value {
    let unfolded: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&c| c != b'\r' && c != b'\n')
        .collect();
    let mut pieces = split_params(&unfolded).into_iter();
    let token = String::from_utf8_lossy(pieces.next().unwrap_or_default().trim_ascii())
        .to_ascii_lowercase();
    let mut plain: Vec<(String, String)> = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    for piece in pieces {
        let Some(eq) = piece.iter().position(|&c| c == b'=') else {
            continue;
        };
        let name = String::from_utf8_lossy(piece[..eq].trim_ascii()).to_ascii_lowercase();
        let value = unquote(&piece[eq + 1..]);
        if name.is_empty() {
            continue;
        }
        if let Some((base, rest)) = name.split_once('*') {
            let extended = rest.ends_with('*') || rest.is_empty();
            let digits = rest.trim_end_matches('*');
            let index = if digits.is_empty() {
                0
            } else {
                match digits.parse() {
                    Ok(n) => n,
                    Err(_) => continue,
                }
            };
            sections.push(Section {
                name: base.to_string(),
                index,
                extended,
                value,
            });
            continue;
        }
        if !plain.iter().any(|(n, _)| *n == name) {
            let decoded = if value.windows(2).any(|w| w == b"=?") {
                decode_header(&value)
            } else {
                value
            };
            plain.push((name, String::from_utf8_lossy(&decoded).into_owned()));
        }
    }
    // RFC 2231 values win over plain ones of the same name, as in readers.
    let mut names: Vec<String> = sections.iter().map(|s| s.name.clone()).collect();
    names.dedup();
    for name in names {
        let mut parts: Vec<&Section> = sections.iter().filter(|s| s.name == name).collect();
        parts.sort_by_key(|s| s.index);
        let mut bytes = Vec::new();
        for (n, s) in parts.iter().enumerate() {
            if s.index as usize != n {
                break;
            }
            if !s.extended {
                bytes.extend_from_slice(&s.value);
                continue;
            }
            let mut text = &s.value[..];
            // The first extended section starts with charset'language'.
            if n == 0 {
                let quotes: Vec<usize> = text
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == b'\'')
                    .map(|(i, _)| i)
                    .take(2)
                    .collect();
                if let [_, second] = quotes[..] {
                    text = &text[second + 1..];
                }
            }
            bytes.extend(percent_decode(text));
        }
        // Sections without a first one are no value: a plain one stays.
        if parts.first().is_none_or(|s| s.index != 0) {
            continue;
        }
        let value = String::from_utf8_lossy(&bytes).into_owned();
        match plain.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => plain.push((name, value)),
        }
    }
    Value {
        token,
        params: plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let v = parse(b"Multipart/Mixed;\r\n boundary=\"a;b\\\"c\"; x=1; x=2");
        assert_eq!(v.token, "multipart/mixed");
        assert_eq!(v.param("boundary"), Some("a;b\"c"));
        assert_eq!(v.param("x"), Some("1"));
        let v = parse(b"attachment; filename*0*=utf-8''evil%2E; filename*1=exe; filename=ok.txt");
        assert_eq!(v.param("filename"), Some("evil.exe"));
        let v = parse(b"attachment; filename*=UTF-8''caf%C3%A9.exe");
        assert_eq!(v.param("filename"), Some("caf\u{e9}.exe"));
        let v = parse(b"application/x; name=\"=?utf-8?B?YS5leGU=?=\"");
        assert_eq!(v.param("name"), Some("a.exe"));
        let v = parse(b"attachment; filename=\"a.exe\"; filename*5=x");
        assert_eq!(v.param("filename"), Some("a.exe"));
        assert_eq!(parse(b"").token, "");
        assert_eq!(
            parse(b";;=;a=").params,
            vec![("a".to_string(), String::new())]
        );
    }
}
