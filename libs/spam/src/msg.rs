//! A message taken apart for the rules: headers (decoded and raw), MIME parts with
//! transfer encodings undone, and the texts each kind of rule reads. Works on bytes
//! throughout, as SpamAssassin does by default (no charset normalisation), and
//! bounds every recursion and count so that hostile MIME costs little.

use std::ops::Range;
use std::sync::LazyLock;

use pcre2::bytes::Regex;

use crate::html::{self, HtmlFacts};
use crate::relays::Relays;

/// MIME nesting deeper than this is treated as an opaque body.
const MAX_DEPTH: usize = 20;
/// At most this many MIME parts are looked at.
const MAX_PARTS: usize = 1000;
/// Body "lines" longer than this are split, as SpamAssassin's
/// split_into_array_of_short_lines does, so that regexes see bounded input.
const MAX_LINE: usize = 2048;

/// One header field.
#[derive(Clone, Debug)]
pub struct Header {
    pub name: String,
    /// The value as written, after the colon, folding kept.
    pub raw: Vec<u8>,
}

/// A leaf MIME part with its content decoded from its transfer encoding.
#[derive(Debug)]
pub struct Part {
    /// Lowercase `type/subtype`; `text/plain` when absent.
    pub content_type: String,
    pub body: Vec<u8>,
    /// The undecoded body's size.
    pub raw_len: usize,
    /// Bytes in the longest line of a base64 body, its line end included.
    pub base64_longest_line: usize,
    /// The type SpamAssassin renders the part as: its Content-Type, or text/html
    /// for a file named `.html`.
    pub effective_type: String,
    /// The undecoded lines of a quoted-printable part, as MIMEEval counts them.
    pub qp: QpLines,
    /// Where its facts are in `Message::html`, when rendered as HTML.
    pub html: Option<usize>,
}

/// MIMEEval's statistics of a quoted-printable body's raw lines.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QpLines {
    /// Bytes in lines, line breaks included.
    pub bytes: usize,
    /// `=XX` escapes of characters that need no escaping, less trailing white space.
    pub needless: f64,
    /// A line longer than 78 characters.
    pub long_line: bool,
}

/// A MIME entity, containers included, in the order SpamAssassin's find_parts
/// lists them, with its headers as SpamAssassin's MIME tests read them.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    /// The type as SpamAssassin's parse_content_type gives it.
    pub ctype: String,
    /// Lowercase; `us-ascii` without a Content-Type header, empty without a charset.
    pub charset: String,
    /// Content-Transfer-Encoding and Content-Disposition, lowercase.
    pub encoding: String,
    pub disposition: String,
    /// The leaves at and under it, as indexes into `Message::parts`.
    pub leaves: Range<usize>,
    pub is_leaf: bool,
}

/// A parsed message.
#[derive(Debug, Default)]
pub struct Message {
    /// The message as received, without an mbox `From ` line.
    pub full: Vec<u8>,
    pub headers: Vec<Header>,
    pub parts: Vec<Part>,
    /// Headers of every MIME part below the top level, for mimeheader rules.
    pub part_headers: Vec<Vec<Header>>,
    /// The header block did not end with an empty line.
    pub missing_separator: bool,
    /// Text after the closing boundary of a multipart.
    pub mime_epilogue: bool,
    /// Bytes after the header block, as received.
    pub body_len: usize,
    /// Content types of every part, containers included (`multipart/alternative`).
    pub all_types: Vec<String>,
    /// Every MIME entity, containers included.
    pub entities: Vec<Entity>,
    /// Derived texts, built once.
    pub body_lines: Vec<Vec<u8>>,
    pub rawbody_lines: Vec<Vec<u8>>,
    pub uris: Vec<String>,
    /// The facts of each HTML part (SpamAssassin's html_all).
    pub html: Vec<HtmlFacts>,
    /// Visible text of all text parts, for Bayes.
    pub visible_text: Vec<u8>,
    /// The trust path from the Received headers.
    pub relays: Relays,
}

fn split_head_body(data: &[u8]) -> (&[u8], &[u8], bool) {
    // The header block ends at the first empty line.
    let mut i = 0;
    loop {
        let Some(nl) = data[i..].iter().position(|&c| c == b'\n').map(|p| i + p) else {
            return (data, &[], true);
        };
        let next = nl + 1;
        if data.get(next) == Some(&b'\n') {
            return (&data[..next], &data[next + 1..], false);
        }
        if data.get(next) == Some(&b'\r') && data.get(next + 1) == Some(&b'\n') {
            return (&data[..next], &data[next + 2..], false);
        }
        // A line that is neither a header nor a continuation ends the headers too
        // (SpamAssassin flags this as a missing separator).
        if let Some(&c) = data.get(next)
            && c != b' '
            && c != b'\t'
        {
            let line_end = data[next..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(data.len(), |p| next + p);
            let line = &data[next..line_end];
            let colon = line.iter().position(|&c| c == b':');
            let valid = colon.is_some_and(|p| {
                p > 0 && line[..p].iter().all(|&c| c.is_ascii_graphic() && c != b':')
            });
            if !valid && next < data.len() {
                return (&data[..next], &data[next..], true);
            }
        }
        i = next;
        if i >= data.len() {
            return (data, &[], true);
        }
    }
}

fn parse_headers(block: &[u8]) -> Vec<Header> {
    let mut out: Vec<Header> = Vec::new();
    for line in block.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = out.last_mut() {
                last.raw.push(b'\n');
                last.raw.extend_from_slice(line);
            }
            continue;
        }
        if let Some(colon) = line.iter().position(|&c| c == b':') {
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
            let mut value = &line[colon + 1..];
            if value.first() == Some(&b' ') {
                value = &value[1..];
            }
            out.push(Header {
                name,
                raw: value.to_vec(),
            });
        }
    }
    out
}

/// All values of a header, by case-insensitive name.
pub fn header_values<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.raw.as_slice())
}

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

/// Base64 decoding that skips what is not base64, as mail clients do.
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

/// Quoted-printable decoding; `underscore` for RFC 2047's Q encoding.
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

/// What SpamAssassin's body and rawbody rules read of a part (its
/// body_part_scan_size and rawbody_part_scan_size).
const BODY_PART_SCAN_SIZE: usize = 50_000;
const RAWBODY_PART_SCAN_SIZE: usize = 500_000;

/// The first `size` bytes of a part's text, extended to the first of `breaks`
/// found within 1 KB after them.
fn scan_prefix<'a>(text: &'a [u8], size: usize, breaks: &[u8]) -> &'a [u8] {
    let Some(rest) = text.get(size..).filter(|r| !r.is_empty()) else {
        return text;
    };
    breaks
        .iter()
        .find_map(|&b| rest.iter().position(|&c| c == b).filter(|&p| p <= 1024))
        .map_or(&text[..size], |p| &text[..size + p + 1])
}

/// SpamAssassin keeps at most 20 lines of a run of blank (white-space) lines in
/// a body: the first and the last 19.
fn limit_blank_lines(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const MAX_BLANK: usize = 20;
    let blank = |l: &[u8]| l.iter().all(|c| c.is_ascii_whitespace() || *c == 0x0b);
    // Most bodies have no such run: find one before copying anything.
    let mut run = 0;
    let long_run = body.split_inclusive(|&c| c == b'\n').any(|l| {
        run = if blank(l) { run + 1 } else { 0 };
        run > MAX_BLANK
    });
    if !long_run {
        return std::borrow::Cow::Borrowed(body);
    }
    let lines: Vec<&[u8]> = body.split_inclusive(|&c| c == b'\n').collect();
    let mut keep = vec![true; lines.len()];
    let mut i = 0;
    let mut changed = false;
    while i < lines.len() {
        if !blank(lines[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && blank(lines[i]) {
            i += 1;
        }
        // A run at the very start keeps one line more, as SpamAssassin counts it.
        let (first_kept, run) = if start == 0 {
            (2, i.saturating_sub(1))
        } else {
            (start + 1, i - start)
        };
        if run > MAX_BLANK {
            keep[first_kept..first_kept + run - MAX_BLANK].fill(false);
            changed = true;
        }
    }
    if !changed {
        return std::borrow::Cow::Borrowed(body);
    }
    std::borrow::Cow::Owned(
        lines
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .flat_map(|(l, _)| l.iter().copied())
            .collect(),
    )
}

/// Deletes white space at the ends of lines, as RFC 2045 says to before decoding
/// quoted-printable.
fn strip_line_ends(data: &[u8]) -> Vec<u8> {
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

fn crlf_to_lf(mut data: Vec<u8>) -> Vec<u8> {
    let mut w = 0;
    for r in 0..data.len() {
        if data[r] == b'\r' && data.get(r + 1) == Some(&b'\n') {
            continue;
        }
        data[w] = data[r];
        w += 1;
    }
    data.truncate(w);
    data
}

/// Decodes RFC 2047 encoded words and unfolds. Charsets are not converted: the
/// decoded octets are what the rules match, as in SpamAssassin.
pub fn decode_header(raw: &[u8]) -> Vec<u8> {
    let mut unfolded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\r' {
            i += 1;
            continue;
        }
        if raw[i] == b'\n' {
            i += 1;
            continue;
        }
        unfolded.push(raw[i]);
        i += 1;
    }
    if html::find(&unfolded, b"=?").is_none() {
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
            // Whitespace between two encoded words is not part of the text.
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
    let text_len = html::find(rest.get(text_start..)?, b"?=")?;
    let text = &rest[text_start..text_start + text_len];
    let decoded = match enc.to_ascii_lowercase() {
        b'b' => decode_base64(text),
        b'q' => decode_qp(text, true),
        _ => return None,
    };
    Some((decoded, 2 + text_start + text_len + 2))
}

/// A Content-Type value split into lowercase type and parameters.
fn parse_content_type(value: &[u8]) -> (String, Vec<(String, String)>) {
    let v = String::from_utf8_lossy(&decode_header(value)).to_string();
    let mut pieces = split_params(&v).into_iter();
    let ctype = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let params = pieces
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect();
    (ctype, params)
}

/// Splits on `;` outside double quotes.
fn split_params(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in v.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

struct Walker<'a> {
    msg: &'a mut Message,
    count: usize,
}

impl Walker<'_> {
    fn entity(&mut self, headers: &[Header], body: &[u8], depth: usize, default_type: &str) {
        self.count += 1;
        if self.count > MAX_PARTS {
            return;
        }
        let (ctype, params) = match header_values(headers, "content-type").next() {
            Some(v) => parse_content_type(v),
            None => (default_type.to_string(), Vec::new()),
        };
        let ctype = if ctype.contains('/') {
            ctype
        } else {
            "text/plain".to_string()
        };
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        self.msg.all_types.push(ctype.clone());
        let entity = self.msg.entities.len();
        let first_leaf = self.msg.parts.len();
        self.msg
            .entities
            .push(sa_entity(headers, default_type, first_leaf));
        let nested = if ctype.starts_with("multipart/")
            && depth < MAX_DEPTH
            && let Some(boundary) = param("boundary").filter(|b| !b.is_empty())
        {
            let child_default = if ctype == "multipart/digest" {
                "message/rfc822"
            } else {
                "text/plain"
            };
            let (parts, epilogue) = split_multipart(body, boundary.as_bytes());
            self.msg.mime_epilogue |= epilogue;
            for part in parts {
                let (head, pbody, _) = split_part(part);
                let hs = parse_headers(head);
                self.msg.part_headers.push(hs.clone());
                self.entity(&hs, pbody, depth + 1, child_default);
            }
            true
        } else if ctype == "message/rfc822" && depth < MAX_DEPTH {
            let (head, inner, _) = split_head_body(body);
            let hs = parse_headers(head);
            self.msg.part_headers.push(hs.clone());
            self.entity(&hs, inner, depth + 1, "text/plain");
            true
        } else {
            false
        };
        if nested {
            let end = self.msg.parts.len();
            if let Some(e) = self.msg.entities.get_mut(entity) {
                e.leaves = first_leaf..end;
                e.is_leaf = false;
            }
            return;
        }
        let encoding = header_values(headers, "content-transfer-encoding")
            .next()
            .map(|v| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
            .unwrap_or_default();
        // Decoded text has LF line ends, as SpamAssassin decodes it.
        let decoded = match encoding.as_str() {
            "base64" if ctype.starts_with("text/") || ctype.starts_with("message/") => {
                crlf_to_lf(decode_base64(body))
            }
            "base64" => decode_base64(body),
            "quoted-printable" => crlf_to_lf(decode_qp(&strip_line_ends(body), false)),
            _ => body.to_vec(),
        };
        // Lines counted with their line end (CRLF as one), as SpamAssassin reads them.
        let base64_longest_line = if encoding == "base64" {
            body.split_inclusive(|&c| c == b'\n')
                .map(|l| l.len() - usize::from(l.ends_with(b"\r\n")))
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        let sa = &self.msg.entities[entity];
        let qp = if sa.encoding == "quoted-printable" {
            qp_lines(body)
        } else {
            QpLines::default()
        };
        let effective_type = if html_file_name(headers) {
            "text/html".to_string()
        } else {
            sa.ctype.clone()
        };
        self.msg.parts.push(Part {
            content_type: ctype,
            body: decoded,
            raw_len: body.len(),
            base64_longest_line,
            effective_type,
            qp,
            html: None,
        });
    }
}

/// The value of the last instance of a header, decoded, unfolded and trimmed, as
/// SpamAssassin's get_header reads one.
fn last_header(headers: &[Header], name: &str) -> Option<String> {
    header_values(headers, name).last().map(|v| {
        String::from_utf8_lossy(&decode_header(v))
            .trim()
            .to_string()
    })
}

/// An entity as SpamAssassin's parse_content_type and MIMEEval see it.
fn sa_entity(headers: &[Header], default_type: &str, leaf: usize) -> Entity {
    static CHARSET: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r#"(?i)\bcharset\s*=\s*["']?(.*?)["']?(?:;|$)"#).ok());
    static BOUNDARY: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r#"(?i)\bboundary\s*=\s*("[^"]+|[^\s";]+(?=[\s;]|$))"#).ok());
    let value = last_header(headers, "content-type");
    let ct = value.as_deref().unwrap_or("text/plain; charset=us-ascii");
    let capture = |re: &LazyLock<Option<Regex>>| {
        let caps = re.as_ref()?.captures(ct.as_bytes()).ok()??;
        Some(String::from_utf8_lossy(caps.get(1)?.as_bytes()).to_lowercase())
    };
    let charset = capture(&CHARSET).unwrap_or_default();
    let head = ct.trim_start();
    let head = head.split(';').next().unwrap_or_default();
    // `type/subtype`, without anything after white space or a second slash.
    let mut ctype = match head.split_once('/') {
        Some((t, rest)) => {
            let sub: String = rest
                .chars()
                .take_while(|c| *c != '/' && !c.is_whitespace())
                .collect();
            format!("{t}/{sub}")
        }
        None => head.to_string(),
    }
    .to_lowercase();
    let text_like = ctype.strip_prefix("text").is_some_and(|r| {
        r.chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_')
    });
    if ctype.is_empty()
        || (text_like
            && !matches!(
                ctype.as_str(),
                "text/x-vcard" | "text/calendar" | "text/html"
            ))
    {
        ctype = "text/plain".to_string();
    }
    if value.is_none() {
        ctype = default_type.to_string();
    } else if ctype.starts_with("multipart/") && capture(&BOUNDARY).is_none() {
        ctype = "text/plain".to_string();
    }
    let lower = |name: &str| {
        last_header(headers, name)
            .unwrap_or_default()
            .to_lowercase()
    };
    Entity {
        ctype,
        charset,
        encoding: lower("content-transfer-encoding"),
        disposition: lower("content-disposition"),
        leaves: leaf..leaf + 1,
        is_leaf: true,
    }
}

/// Whether the part is a file named `.html` (or `.htm`, `.shtml`), which
/// SpamAssassin renders as HTML whatever its type.
fn html_file_name(headers: &[Header]) -> bool {
    static DISPOSITION: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r#"(?i)name=\s*"?([^";]+)"?"#).ok());
    static CT_NAME: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r#"(?i)\b(?:file)?name\s*=\s*["']?(.*?)["']?(?:;|$)"#).ok());
    let name = |re: &LazyLock<Option<Regex>>, header: &str| {
        let value = last_header(headers, header)?;
        let caps = re.as_ref()?.captures(value.as_bytes()).ok()??;
        Some(caps.get(1)?.as_bytes().to_ascii_lowercase())
    };
    name(&DISPOSITION, "content-disposition")
        .filter(|n| !n.is_empty())
        .or_else(|| name(&CT_NAME, "content-type"))
        .is_some_and(|n| {
            [&b".html"[..], b".htm", b".shtml", b".shtm"]
                .iter()
                .any(|ext| n.ends_with(ext))
        })
}

/// MIMEEval's pass over a quoted-printable body: bytes, long lines, and `=XX`
/// escapes of printable characters that need none.
fn qp_lines(body: &[u8]) -> QpLines {
    let mut out = QpLines::default();
    for line in body.split_inclusive(|&c| c == b'\n') {
        if line.starts_with(b"SPAM: ") {
            continue;
        }
        // SpamAssassin reads lines with LF ends.
        let len = line.len() - usize::from(line.ends_with(b"\r\n"));
        out.long_line |= len > 78 + 1;
        out.bytes += len;
        if !line.contains(&b'=') {
            continue;
        }
        let needless = line
            .windows(3)
            .filter(|w| {
                w[0] == b'='
                    && matches!(
                        (w[1], w[2]),
                        (b'0', b'9')
                            | (b'3', b'0'..=b'9' | b'A' | b'B' | b'C' | b'E' | b'F')
                            | (b'2' | b'4' | b'5' | b'6', b'0'..=b'9' | b'A'..=b'F')
                            | (b'7', b'0'..=b'9' | b'A'..=b'E')
                    )
            })
            .count();
        if needless == 0 {
            continue;
        }
        // Escaped tabs and spaces at the end of a line are needed.
        let trimmed = line.trim_ascii_end();
        let mut trailing = 0;
        let mut rest = trimmed;
        while let Some(r) = rest
            .strip_suffix(b"=20")
            .or_else(|| rest.strip_suffix(b"=09"))
        {
            trailing += 1;
            rest = r;
        }
        out.needless += needless as f64 - f64::from(trailing);
    }
    out
}

/// A part's own header block and body; a part with no blank line is all body when
/// its first line is not a header.
fn split_part(part: &[u8]) -> (&[u8], &[u8], bool) {
    if part.first() == Some(&b'\n') {
        return (&[], &part[1..], false);
    }
    if part.starts_with(b"\r\n") {
        return (&[], &part[2..], false);
    }
    split_head_body(part)
}

/// The parts between `--boundary` lines, and whether text follows the closing
/// one (an epilogue of more than white space and dots).
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> (Vec<&'a [u8]>, bool) {
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos <= body.len() {
        let line_end = body[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(body.len(), |p| pos + p);
        let line = &body[pos..line_end];
        // A delimiter line is the boundary, maybe `--`, then only white space (a
        // nested part's boundary may extend this one).
        let delimiter = line.strip_prefix(&delim[..]).and_then(|r| {
            let (last, r) = match r.strip_prefix(b"--") {
                Some(r) => (true, r),
                None => (false, r),
            };
            r.iter().all(u8::is_ascii_whitespace).then_some(last)
        });
        if let Some(last) = delimiter {
            // The line break before a delimiter belongs to the delimiter.
            if let Some(s) = start {
                let mut end = pos.saturating_sub(1).max(s);
                if end > s && body.get(end - 1) == Some(&b'\r') {
                    end -= 1;
                }
                parts.push(&body[s..end]);
            }
            if last {
                let epilogue = body.get(line_end + 1..).is_some_and(|rest| {
                    rest.iter().any(|c| !c.is_ascii_whitespace() && *c != b'.')
                });
                return (parts, epilogue);
            }
            start = Some((line_end + 1).min(body.len()));
            if parts.len() >= MAX_PARTS {
                return (parts, false);
            }
        }
        pos = line_end + 1;
    }
    if let Some(s) = start
        && s < body.len()
    {
        parts.push(&body[s..]);
    }
    (parts, false)
}

/// Collapses white space as SpamAssassin does for body rules: a run of white
/// space with two or more line breaks becomes one line break (white space on
/// either side of them a space), any other run a space. The lines are what body
/// rules run on.
fn paragraphs(text: &[u8], out: &mut Vec<Vec<u8>>) {
    let is_space = |c: u8| c.is_ascii_whitespace() || c == 0x0b;
    let mut line: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !is_space(text[i]) {
            line.push(text[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && is_space(text[i]) {
            i += 1;
        }
        let run = &text[start..i];
        let first = run.iter().position(|&c| c == b'\n');
        let last = run.iter().rposition(|&c| c == b'\n');
        match (first, last) {
            (Some(f), Some(l)) if f < l => {
                if f > 0 {
                    line.push(b' ');
                }
                line.push(b'\n');
                split_body_line(std::mem::take(&mut line), out);
                if l + 1 < run.len() {
                    line.push(b' ');
                }
            }
            _ => line.push(b' '),
        }
    }
    if !line.is_empty() {
        split_body_line(line, out);
    }
}

/// SpamAssassin's split_into_array_of_short_lines: a line over 2 KB is cut after
/// its last space in the first 2 KB, so that regexes see bounded input.
fn split_body_line(mut line: Vec<u8>, out: &mut Vec<Vec<u8>>) {
    while line.len() > MAX_LINE {
        let cut = line[..=MAX_LINE]
            .iter()
            .rposition(|&c| c == b' ')
            .map_or(MAX_LINE, |p| p + 1);
        let rest = line.split_off(cut);
        out.push(line);
        line = rest;
    }
    out.push(line);
}

fn push_short_lines(mut line: Vec<u8>, out: &mut Vec<Vec<u8>>) {
    while line.len() > MAX_LINE {
        // Split after whitespace past 1 KB so that a URL is rarely cut in half.
        let cut = line[1024..]
            .iter()
            .position(|&c| c == b' ' || c == b'-')
            .map_or(1024, |p| 1024 + p + 1)
            .min(line.len());
        let rest = line.split_off(cut);
        out.push(line);
        line = rest;
    }
    out.push(line);
}

fn text_uris(text: &[u8], out: &mut Vec<String>) {
    let lower = text.to_ascii_lowercase();
    let mut i = 0;
    while i < lower.len() {
        let rest = &lower[i..];
        let scheme = [&b"http://"[..], b"https://", b"ftp://", b"mailto:", b"www."]
            .into_iter()
            .find(|s| rest.starts_with(s));
        let boundary = i == 0 || !lower[i - 1].is_ascii_alphanumeric();
        if let Some(s) = scheme
            && boundary
        {
            let end = text[i..]
                .iter()
                .position(|&c| {
                    c.is_ascii_whitespace() || matches!(c, b'"' | b'<' | b'>' | b')' | b'\'')
                })
                .map_or(text.len(), |p| i + p);
            let uri = String::from_utf8_lossy(&text[i..end])
                .trim_end_matches(['.', ',', ';', ':', '!', '?'])
                .to_string();
            if uri.len() > s.len() {
                out.push(uri);
            }
            i = end;
            continue;
        }
        i += 1;
    }
}

impl Message {
    /// Parses a message. Never fails: anything unparsable is taken as body text.
    pub fn parse(data: &[u8]) -> Message {
        let data = if data.starts_with(b"From ") {
            let nl = data
                .iter()
                .position(|&c| c == b'\n')
                .map_or(data.len(), |p| p + 1);
            &data[nl..]
        } else {
            data
        };
        let mut msg = Message {
            full: data.to_vec(),
            ..Message::default()
        };
        let (head, body, missing) = split_head_body(data);
        msg.missing_separator = missing;
        msg.body_len = body.len();
        msg.headers = parse_headers(head);
        msg.relays = Relays::parse(&msg.headers);
        let headers = msg.headers.clone();
        let mut w = Walker {
            msg: &mut msg,
            count: 0,
        };
        w.entity(&headers, &limit_blank_lines(body), 0, "text/plain");
        msg.derive();
        msg
    }

    /// The decoded value of a header (all instances joined by newlines).
    pub fn header(&self, name: &str) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for v in header_values(&self.headers, name) {
            let o = out.get_or_insert_with(Vec::new);
            if !o.is_empty() {
                o.push(b'\n');
            }
            o.extend_from_slice(&decode_header(v));
        }
        out
    }

    fn derive(&mut self) {
        let mut body_text = Vec::new();
        let mut rawbody = Vec::new();
        let mut uris = Vec::new();
        for part in &mut self.parts {
            // SpamAssassin separates each part from the text before it.
            if !body_text.is_empty() {
                body_text.push(b'\n');
            }
            let is_html = part.content_type == "text/html" || part.effective_type == "text/html";
            let is_text = part.content_type.starts_with("text/");
            if !is_text && !is_html {
                continue;
            }
            raw_chunks(
                scan_prefix(&part.body, RAWBODY_PART_SCAN_SIZE, b"\n> "),
                &mut rawbody,
            );
            if is_html {
                // An empty HTML part has no HTML facts in SpamAssassin.
                if part.body.is_empty() {
                    continue;
                }
                let facts = html::render(&part.body);
                body_text.extend_from_slice(scan_prefix(&facts.text, BODY_PART_SCAN_SIZE, b"\n "));
                self.visible_text.extend_from_slice(&facts.visible);
                self.visible_text.push(b'\n');
                uris.extend(facts.uris.iter().cloned());
                text_uris(&facts.text, &mut uris);
                part.html = Some(self.html.len());
                self.html.push(facts);
            } else {
                // Of other text, SpamAssassin renders only plain text (not calendars
                // or vCards).
                if part.effective_type == "text/plain" {
                    body_text.extend_from_slice(scan_prefix(
                        &part.body,
                        BODY_PART_SCAN_SIZE,
                        b"\n ",
                    ));
                    self.visible_text.extend_from_slice(&part.body);
                    self.visible_text.push(b'\n');
                }
                text_uris(&part.body, &mut uris);
            }
        }
        // The subject is the first line body rules read, as it was written; the
        // paragraphs of the text follow.
        let mut subject = header_values(&self.headers, "subject")
            .last()
            .map(|v| decode_header(v).trim_ascii().to_vec())
            .unwrap_or_default();
        subject.push(b'\n');
        split_body_line(subject, &mut self.body_lines);
        paragraphs(&body_text, &mut self.body_lines);
        // SpamAssassin also lists `www.example.com` as `http://www.example.com`.
        let mut all = Vec::with_capacity(uris.len());
        for u in uris {
            if u.len() > 4 && u.as_bytes()[..4].eq_ignore_ascii_case(b"www.") {
                all.push(format!("http://{u}"));
            }
            all.push(u);
        }
        all.sort();
        all.dedup();
        self.uris = all;
        self.rawbody_lines = rawbody;
    }
}

/// rawbody rules see decoded text in chunks of up to about 2 KB, broken at lines.
fn raw_chunks(text: &[u8], out: &mut Vec<Vec<u8>>) {
    let mut cur = Vec::new();
    for line in text.split_inclusive(|&c| c == b'\n') {
        if !cur.is_empty() && cur.len() + line.len() > MAX_LINE {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(line);
        if cur.len() > MAX_LINE {
            push_short_lines(std::mem::take(&mut cur), out);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_with_encodings() {
        let m = Message::parse(
            b"From x@y Mon Jan 1 00:00:00 2024\nSubject: =?utf-8?B?SGVsbG8=?= world\n\
              Content-Type: multipart/alternative; boundary=\"b1\"\n\n\
              preamble\n--b1\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n\
              Cheap =3D pills\n--b1\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n\
              PHA+Q2xpY2sgPGEgaHJlZj0iaHR0cDovL3NwYW0uZXhhbXBsZS8iPmhlcmU8L2E+PC9wPg==\n--b1--\n",
        );
        assert_eq!(m.header("subject").unwrap(), b"Hello world");
        assert_eq!(m.parts.len(), 2);
        assert_eq!(m.parts[0].body, b"Cheap = pills");
        // The subject is a line of its own, as in SpamAssassin.
        assert_eq!(m.body_lines[0], b"Hello world\n");
        assert!(m.body_lines[1].starts_with(b"Cheap = pills"));
        assert!(m.uris.contains(&"http://spam.example/".to_string()));
        assert_eq!(m.part_headers.len(), 2);
        assert!(!m.full.starts_with(b"From "));
    }

    #[test]
    fn addresses() {
        assert_eq!(first_addr(b"\"Joe\" <joe@example.com>"), b"joe@example.com");
        assert_eq!(first_addr(b"joe@example.com (Joe)"), b"joe@example.com");
        assert_eq!(
            display_name(b"\"Joe Bloggs\" <joe@example.com>"),
            b"Joe Bloggs"
        );
    }

    #[test]
    fn missing_separator() {
        let m = Message::parse(b"Subject: x\nthis is not a header\nmore\n");
        assert!(m.missing_separator);
        assert_eq!(m.parts[0].body, b"this is not a header\nmore\n");
    }

    #[test]
    fn nested_boundary_extending_the_outer_one() {
        let m = Message::parse(
            b"Content-Type: multipart/related; boundary=\"B\"\n\n--B\n\
              Content-Type: multipart/alternative; boundary=\"BAA\"\n\n--BAA\n\
              Content-Type: text/plain\n\nplain\n--BAA\nContent-Type: text/html\n\n<p>html</p>\n\
              --BAA--\n--B--\nepilogue\n",
        );
        let types: Vec<&str> = m.entities.iter().map(|e| e.ctype.as_str()).collect();
        assert_eq!(
            types,
            [
                "multipart/related",
                "multipart/alternative",
                "text/plain",
                "text/html"
            ]
        );
        assert_eq!(m.entities[1].leaves, 0..2);
        assert!(!m.entities[1].is_leaf);
        assert_eq!(m.parts[0].body, b"plain");
        assert!(m.mime_epilogue);
        assert_eq!(m.html.len(), 1);
        assert_eq!(m.parts[1].html, Some(0));
    }

    #[test]
    fn entities_as_spamassassin_reads_them() {
        let m = Message::parse(
            b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\
              Content-Type: TEXT/enriched; charset=\"UTF-8\"\n\
              Content-Transfer-Encoding: Base64\n\n\
              --b\nContent-Type: multipart/mixed\n\n--b\n\
              Content-Type: application/octet-stream\n\
              Content-Disposition: attachment; filename=\"page.htm\"\n\nx\n--b--\n",
        );
        let e = &m.entities;
        assert_eq!(e[1].ctype, "text/plain");
        assert_eq!(e[1].charset, "utf-8");
        assert_eq!(e[1].encoding, "base64");
        // A multipart without a boundary is text.
        assert_eq!(e[2].ctype, "text/plain");
        assert_eq!(e[3].disposition, "attachment; filename=\"page.htm\"");
        assert_eq!(m.parts[2].effective_type, "text/html");
        // No Content-Type at all: us-ascii text.
        let plain = Message::parse(b"Subject: x\n\nhi\n");
        assert_eq!(plain.entities[0].charset, "us-ascii");
    }

    #[test]
    fn quoted_printable_as_spamassassin_decodes_it() {
        let m = Message::parse(
            b"Content-Transfer-Encoding: quoted-printable\n\n\
              soft =\r\nbreak   \r\nx=3Dy=20=20 \r\n",
        );
        assert_eq!(m.parts[0].body, b"soft break\nx=y  \n");
        assert_eq!(m.parts[0].qp.bytes, 7 + 9 + 13);
        // =3D is needed; the trailing =20=20 are too.
        assert_eq!(m.parts[0].qp.needless, 0.0);
        assert!(!m.parts[0].qp.long_line);
        let long = format!(
            "Content-Transfer-Encoding: quoted-printable\n\n{}=41\n",
            "a".repeat(77)
        );
        let m = Message::parse(long.as_bytes());
        assert!(m.parts[0].qp.long_line);
        assert_eq!(m.parts[0].qp.needless, 1.0);
    }

    #[test]
    fn body_lines_as_spamassassin_builds_them() {
        let m = Message::parse(b"Subject:  Hello \n\nfirst\nline \n \n\tsecond  para\n\n\n");
        assert_eq!(
            m.body_lines,
            [&b"Hello\n"[..], b"first line \n", b" second para\n"]
        );
        // Runs of more than 20 blank lines keep 20.
        let mut text = b"Subject: x\n\na\n".to_vec();
        text.extend(b" \n".repeat(30));
        text.extend(b"b\n");
        let m = Message::parse(&text);
        assert_eq!(m.parts[0].body.iter().filter(|&&c| c == b'\n').count(), 22);
        assert_eq!(m.body_len, text.len() - 12);
        // Body rules see the first 50 kB of a part, to a line end.
        let big = format!("Subject: x\n\n{}\nrest\n", "word ".repeat(20_000));
        let m = Message::parse(big.as_bytes());
        let seen: usize = m.body_lines.iter().skip(1).map(Vec::len).sum();
        assert!((50_000..51_100).contains(&seen), "{seen}");
        assert!(m.body_lines.iter().all(|l| l.len() <= MAX_LINE + 1));
    }

    #[test]
    fn first_addresses() {
        assert_eq!(
            first_addr(b"\"<Karen\" <karen@example.com>"),
            b"karen@example.com"
        );
        assert_eq!(
            first_addr(b"a@example.com, \"B\" <b@example.org>"),
            b"a@example.com"
        );
        assert_eq!(first_addr(b"\"Doe, J\" <j@example.com>"), b"j@example.com");
    }
}
