//! Where header sections, header fields and multipart body parts begin and
//! end, as byte offsets into the buffer being read.

use std::ops::Range;

use crate::Field;

/// The end of the line starting at `pos` (the offset of its `\n`, or `end`).
fn line_end(data: &[u8], pos: usize, end: usize) -> usize {
    data[pos..end]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(end, |p| pos + p)
}

/// A header line: a name of printable characters (no space, no colon)
/// followed by a colon.
pub fn is_header_line(line: &[u8]) -> bool {
    line.iter()
        .position(|&c| c == b':')
        .is_some_and(|p| p > 0 && line[..p].iter().all(|&c| c.is_ascii_graphic()))
}

/// Where an entity's header section ends and its body starts.
pub struct Head {
    /// The header fields' lines.
    pub fields: Range<usize>,
    /// The fields and the empty line after them.
    pub section: Range<usize>,
    pub body_start: usize,
    /// The section did not end with an empty line (the body starts at the
    /// first line that is neither a header nor a continuation).
    pub missing_separator: bool,
}

/// Splits `data[start..end]` into the header section and the body: the
/// section ends at the first empty line, or before the first line after
/// the first that is neither a header field nor a continuation.
pub fn head(data: &[u8], start: usize, end: usize) -> Head {
    let mut pos = start;
    let mut first = true;
    while pos < end {
        let le = line_end(data, pos, end);
        let line = &data[pos..le];
        let bare = line.strip_suffix(b"\r").unwrap_or(line);
        let next = (le + 1).min(end);
        if bare.is_empty() {
            return Head {
                fields: start..pos,
                section: start..next,
                body_start: next,
                missing_separator: false,
            };
        }
        // The first line belongs to the section whatever it is (as in
        // SpamAssassin and mail-parser): a stray line there is ignored.
        let continuation = matches!(bare[0], b' ' | b'\t');
        if !first && !continuation && !is_header_line(bare) {
            return Head {
                fields: start..pos,
                section: start..pos,
                body_start: pos,
                missing_separator: true,
            };
        }
        first = false;
        pos = next;
        if le == end {
            break;
        }
    }
    Head {
        fields: start..end,
        section: start..end,
        body_start: end,
        missing_separator: true,
    }
}

/// The fields of a header section, each with its continuation lines.
pub fn fields(data: &[u8], range: Range<usize>) -> Vec<Field> {
    let mut out: Vec<Field> = Vec::new();
    let mut pos = range.start;
    while pos < range.end {
        let le = line_end(data, pos, range.end);
        let next = (le + 1).min(range.end);
        let line = &data[pos..le];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(last) = out.last_mut() {
                last.raw.push(b'\n');
                last.raw.extend_from_slice(line);
                last.span.end = next;
            }
        } else if let Some(colon) = line.iter().position(|&c| c == b':') {
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
            let mut value = &line[colon + 1..];
            if value.first() == Some(&b' ') {
                value = &value[1..];
            }
            out.push(Field {
                name,
                raw: value.to_vec(),
                span: pos..next,
            });
        }
        pos = next;
    }
    out
}

/// A multipart body taken apart.
#[derive(Default)]
pub struct Multipart {
    /// Each body part, without the line break before the next delimiter.
    pub parts: Vec<Range<usize>>,
    /// The delimiter lines, line ends included.
    pub delimiters: Vec<Range<usize>>,
    /// The closing delimiter was seen.
    pub closed: bool,
    /// Text (more than white space and dots) after the closing delimiter.
    pub epilogue: bool,
    /// More parts than `max_parts` were there.
    pub cut: bool,
    /// A line some readers take for a delimiter: the boundary followed by
    /// more text, or a delimiter after the closing one.
    pub loose: bool,
}

/// Splits a multipart body at its delimiter lines: `--boundary`, maybe
/// `--`, then only white space (RFC 2046, and what Thunderbird's libmime
/// matches: a longer boundary that starts with this one is not this one).
///
/// `lenient` reads as the most permissive readers do (mail-parser, for
/// one): any line that starts with `--boundary` is a delimiter, and a
/// closing delimiter closes only when no delimiter follows it.
pub fn multipart(
    data: &[u8],
    body: Range<usize>,
    boundary: &[u8],
    max_parts: usize,
    lenient: bool,
) -> Multipart {
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let mut out = Multipart::default();
    let mut start: Option<usize> = None;
    let mut closing = false;
    let mut pos = body.start;
    while pos < body.end {
        let le = line_end(data, pos, body.end);
        let next = (le + 1).min(body.end);
        let line = &data[pos..le];
        let delimiter = line.strip_prefix(&delim[..]).and_then(|r| {
            let (last, r) = match r.strip_prefix(b"--") {
                Some(r) => (true, r),
                None => (false, r),
            };
            let exact = r.iter().all(u8::is_ascii_whitespace);
            out.loose |= !exact;
            (exact || lenient).then_some(last)
        });
        if let Some(last) = delimiter {
            // The line break before a delimiter belongs to the delimiter.
            if let Some(s) = start {
                let mut end = pos.saturating_sub(1).max(s);
                if end > s && data.get(end - 1) == Some(&b'\r') {
                    end -= 1;
                }
                out.parts.push(s..end);
            }
            out.delimiters.push(pos..next);
            closing = last;
            if last && !lenient {
                out.closed = true;
                let rest = &data[next..body.end];
                out.epilogue = rest.iter().any(|c| !c.is_ascii_whitespace() && *c != b'.');
                out.loose |= rest
                    .split(|&c| c == b'\n')
                    .any(|l| l.starts_with(&delim[..]));
                return out;
            }
            if out.parts.len() >= max_parts {
                out.cut = true;
                return out;
            }
            start = Some(next);
        }
        pos = next;
    }
    out.closed = closing;
    if let Some(s) = start
        && !closing
    {
        out.parts.push(s..body.end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections() {
        let m = b"A: 1\r\n b\r\nC: 2\r\n\r\nbody";
        let h = head(m, 0, m.len());
        assert_eq!((h.fields, h.body_start), (0..16, 18));
        let f = fields(m, 0..16);
        assert_eq!(f[0].raw, b"1\n b");
        assert_eq!(f[0].span, 0..10);
        assert_eq!(f[1].name, "C");
        let m = b"not a header\nA: 1\n\nbody";
        let h = head(m, 0, m.len());
        assert!(!h.missing_separator);
        assert_eq!(h.body_start, 19);
        assert_eq!(fields(m, h.fields)[0].name, "A");
        let m = b"A: 1\nstray line\n";
        assert_eq!(head(m, 0, m.len()).body_start, 5);
        let m = b"\r\nbody";
        assert_eq!(head(m, 0, m.len()).body_start, 2);
        let m = b"A: 1";
        assert_eq!(head(m, 0, m.len()).body_start, 4);
    }

    #[test]
    fn delimiters() {
        let m = b"pre\r\n--b\r\none\r\n--bb\r\n--b \r\ntwo\r\n--b--\r\nepi";
        let mp = multipart(m, 0..m.len(), b"b", 10, false);
        assert!(mp.loose);
        let parts: Vec<&[u8]> = mp.parts.iter().map(|r| &m[r.clone()]).collect();
        assert_eq!(parts, [&b"one\r\n--bb"[..], b"two"]);
        assert_eq!(mp.delimiters.len(), 3);
        assert!(mp.closed && mp.epilogue);
        let lenient = multipart(m, 0..m.len(), b"b", 10, true);
        let parts: Vec<&[u8]> = lenient.parts.iter().map(|r| &m[r.clone()]).collect();
        assert_eq!(parts, [&b"one"[..], b"", b"two"]);
        let m = b"--b\n\none\n--b--\n--b\n\ntwo\n--b--\nepilogue";
        assert_eq!(multipart(m, 0..m.len(), b"b", 10, false).parts.len(), 1);
        // The text between a closing delimiter and the next is a part too.
        assert_eq!(multipart(m, 0..m.len(), b"b", 10, true).parts.len(), 3);
        let mp = multipart(b"--b\nx", 0..5, b"b", 10, false);
        assert_eq!(mp.parts, vec![4..5]);
        assert!(!mp.closed);
    }
}
