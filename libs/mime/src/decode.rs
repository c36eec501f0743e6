//! Transfer encodings (base64, quoted-printable) and RFC 2047 encoded
//! words, decoded as mail readers do: leniently, on bytes, never failing.
//! Charsets are not converted: the decoded octets are what the checks read.

fn b64_value(c: u8) -> Option<u8> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    })
}

/// Base64 decoding that skips what is not base64, as mail clients do, and
/// stops at the first `=` (padding).
pub fn decode_base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in data {
        if c == b'=' {
            break;
        }
        let Some(v) = b64_value(c) else { continue };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Quoted-printable decoding; `underscore` for RFC 2047's Q encoding. A
/// malformed escape is kept as written.
pub fn decode_qp(data: &[u8], underscore: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        if c == b'=' {
            match (data.get(i + 1), data.get(i + 2)) {
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(&a), Some(&b)) => {
                    if let (Some(h), Some(l)) = (hex(a), hex(b)) {
                        out.push(h * 16 + l);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(if underscore && c == b'_' { b' ' } else { c });
        i += 1;
    }
    out
}

/// Deletes white space at the ends of lines, as RFC 2045 says to before
/// decoding quoted-printable.
pub fn strip_line_ends(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|&c| c == b'\n') {
        let Some(content) = line.strip_suffix(b"\n") else {
            out.extend_from_slice(line);
            continue;
        };
        let (content, cr) = match content.strip_suffix(b"\r") {
            Some(c) => (c, &b"\r"[..]),
            None => (content, &b""[..]),
        };
        let kept = content.len()
            - content
                .iter()
                .rev()
                .take_while(|&&c| c == b' ' || c == b'\t')
                .count();
        out.extend_from_slice(&content[..kept]);
        out.extend_from_slice(cr);
        out.push(b'\n');
    }
    out
}

/// A body decoded from its Content-Transfer-Encoding (lowercase): base64
/// and quoted-printable are undone, anything else is the body as written.
pub fn decode_body(encoding: &str, body: &[u8]) -> Vec<u8> {
    match encoding {
        "base64" => decode_base64(body),
        "quoted-printable" => decode_qp(&strip_line_ends(body), false),
        _ => body.to_vec(),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes RFC 2047 encoded words and unfolds. Charsets are not converted.
pub fn decode_header(raw: &[u8]) -> Vec<u8> {
    let unfolded: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&c| c != b'\r' && c != b'\n')
        .collect();
    if find(&unfolded, b"=?").is_none() {
        return unfolded;
    }
    let mut out = Vec::with_capacity(unfolded.len());
    let mut i = 0;
    let mut last_was_word = false;
    let mut pending_ws: Vec<u8> = Vec::new();
    while i < unfolded.len() {
        if unfolded[i..].starts_with(b"=?")
            && let Some((decoded, used)) = encoded_word(&unfolded[i..])
        {
            // White space between two encoded words is not part of the text.
            if !last_was_word {
                out.extend_from_slice(&pending_ws);
            }
            pending_ws.clear();
            out.extend_from_slice(&decoded);
            i += used;
            last_was_word = true;
            continue;
        }
        let c = unfolded[i];
        if c == b' ' || c == b'\t' {
            pending_ws.push(c);
        } else {
            out.append(&mut pending_ws);
            out.push(c);
            last_was_word = false;
        }
        i += 1;
    }
    out.extend_from_slice(&pending_ws);
    out
}

fn encoded_word(s: &[u8]) -> Option<(Vec<u8>, usize)> {
    let rest = s.get(2..)?;
    let q1 = rest.iter().take(75).position(|&c| c == b'?')?;
    let enc = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let text_len = find(rest.get(text_start..)?, b"?=")?;
    let text = &rest[text_start..text_start + text_len];
    let decoded = match enc.to_ascii_lowercase() {
        b'b' => decode_base64(text),
        b'q' => decode_qp(text, true),
        _ => return None,
    };
    Some((decoded, 2 + text_start + text_len + 2))
}

/// RFC 2231's `%XX` escapes in an extended parameter value.
pub(crate) fn percent_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%'
            && let (Some(h), Some(l)) = (
                text.get(i + 1).copied().and_then(hex),
                text.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(decode_base64(b"SGVs\r\nbG8=\r\n"), b"Hello");
        assert_eq!(decode_base64(b"S!G*V\x00sbG8"), b"Hello");
        assert_eq!(decode_qp(b"a=3Db=\r\nc=ZZ=", false), b"a=bc=ZZ=");
        assert_eq!(
            decode_body("quoted-printable", b"x  \r\ny=20\r\n"),
            b"x\r\ny \r\n"
        );
        assert_eq!(decode_body("7bit", b"as is"), b"as is");
        assert_eq!(
            decode_header(b"=?utf-8?B?SGVsbG8=?= =?utf-8?Q?_w?=\r\n orld"),
            b"Hello w orld"
        );
        assert_eq!(decode_header(b"=?x?Z?bad?="), b"=?x?Z?bad?=");
        assert_eq!(percent_decode(b"a%2Eexe%zz%"), b"a.exe%zz%");
    }
}
