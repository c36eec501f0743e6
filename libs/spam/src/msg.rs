//! A message taken apart for the rules: headers (decoded and raw), MIME parts with
//! transfer encodings undone, and the texts each kind of rule reads. Works on bytes
//! throughout, as SpamAssassin does by default (no charset normalisation), and
//! bounds every recursion and count so that hostile MIME costs little.

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
    /// Bytes in the longest line of a base64 body.
    pub base64_longest_line: usize,
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
    /// Content types of every part, containers included (`multipart/alternative`).
    pub all_types: Vec<String>,
    /// Derived texts, built once.
    pub body_lines: Vec<Vec<u8>>,
    pub rawbody_lines: Vec<Vec<u8>>,
    pub uris: Vec<String>,
    pub html: Option<HtmlFacts>,
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
        if ctype.starts_with("multipart/")
            && depth < MAX_DEPTH
            && let Some(boundary) = param("boundary").filter(|b| !b.is_empty())
        {
            let child_default = if ctype == "multipart/digest" {
                "message/rfc822"
            } else {
                "text/plain"
            };
            for part in split_multipart(body, boundary.as_bytes()) {
                let (head, pbody, _) = split_part(part);
                let hs = parse_headers(head);
                self.msg.part_headers.push(hs.clone());
                self.entity(&hs, pbody, depth + 1, child_default);
            }
            return;
        }
        let encoding = header_values(headers, "content-transfer-encoding")
            .next()
            .map(|v| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
            .unwrap_or_default();
        if ctype == "message/rfc822" && depth < MAX_DEPTH {
            let (head, inner, _) = split_head_body(body);
            let hs = parse_headers(head);
            self.msg.part_headers.push(hs.clone());
            self.entity(&hs, inner, depth + 1, "text/plain");
            return;
        }
        let decoded = match encoding.as_str() {
            "base64" => decode_base64(body),
            "quoted-printable" => decode_qp(body, false),
            _ => body.to_vec(),
        };
        let base64_longest_line = if encoding == "base64" {
            body.split(|&c| c == b'\n')
                .map(|l| l.len())
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        self.msg.parts.push(Part {
            content_type: ctype,
            body: decoded,
            raw_len: body.len(),
            base64_longest_line,
        });
    }
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

/// The parts between `--boundary` lines.
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
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
        if line.starts_with(&delim) {
            // The line break before a delimiter belongs to the delimiter.
            if let Some(s) = start {
                let mut end = pos.saturating_sub(1).max(s);
                if end > s && body.get(end - 1) == Some(&b'\r') {
                    end -= 1;
                }
                parts.push(&body[s..end]);
            }
            let rest = &line[delim.len()..];
            if rest.starts_with(b"--") {
                return parts;
            }
            start = Some((line_end + 1).min(body.len()));
            if parts.len() >= MAX_PARTS {
                return parts;
            }
        }
        pos = line_end + 1;
    }
    if let Some(s) = start
        && s < body.len()
    {
        parts.push(&body[s..]);
    }
    parts
}

/// Collapses whitespace as SpamAssassin does for body rules: blank-line runs become
/// paragraph breaks, all other whitespace a single space; paragraphs are the lines
/// body rules run on.
fn paragraphs(text: &[u8], out: &mut Vec<Vec<u8>>) {
    let mut para: Vec<u8> = Vec::new();
    let mut i = 0;
    let n = text.len();
    let flush = |para: &mut Vec<u8>, out: &mut Vec<Vec<u8>>| {
        if para.last() == Some(&b' ') {
            para.pop();
        }
        if !para.is_empty() {
            para.push(b'\n');
            push_short_lines(std::mem::take(para), out);
        }
    };
    while i < n {
        let c = text[i];
        if c.is_ascii_whitespace() || c == 0x0b {
            let start = i;
            let mut newlines = 0;
            while i < n && (text[i].is_ascii_whitespace() || text[i] == 0x0b) {
                if text[i] == b'\n' {
                    newlines += 1;
                }
                i += 1;
            }
            let _ = start;
            if newlines >= 2 {
                flush(&mut para, out);
            } else if !para.is_empty() {
                para.push(b' ');
            }
            continue;
        }
        para.push(c);
        i += 1;
    }
    flush(&mut para, out);
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
        msg.headers = parse_headers(head);
        msg.relays = Relays::parse(&msg.headers);
        let headers = msg.headers.clone();
        let mut w = Walker {
            msg: &mut msg,
            count: 0,
        };
        w.entity(&headers, body, 0, "text/plain");
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
        let subject = self.header("subject").unwrap_or_default();
        let mut body_text = subject.clone();
        let mut html_facts: Option<HtmlFacts> = None;
        let mut rawbody = Vec::new();
        let mut uris = Vec::new();
        for part in &self.parts {
            let is_html = part.content_type == "text/html";
            let is_text = part.content_type.starts_with("text/");
            if !is_text {
                continue;
            }
            body_text.push(b'\n');
            raw_chunks(&part.body, &mut rawbody);
            if is_html {
                let facts = html::render(&part.body);
                body_text.extend_from_slice(&facts.text);
                self.visible_text.extend_from_slice(&facts.text);
                self.visible_text.push(b'\n');
                uris.extend(facts.uris.iter().cloned());
                text_uris(&facts.text, &mut uris);
                match &mut html_facts {
                    None => html_facts = Some(facts),
                    Some(h) => {
                        h.image_count += facts.image_count;
                        h.image_area += facts.image_area;
                        h.text.extend_from_slice(&facts.text);
                        h.tags.extend(facts.tags);
                    }
                }
            } else {
                body_text.extend_from_slice(&part.body);
                self.visible_text.extend_from_slice(&part.body);
                self.visible_text.push(b'\n');
                text_uris(&part.body, &mut uris);
            }
        }
        paragraphs(&body_text, &mut self.body_lines);
        if self.body_lines.is_empty() {
            self.body_lines.push(b"\n".to_vec());
        }
        // SpamAssassin also lists `www.example.com` as `http://www.example.com`.
        let mut all = Vec::with_capacity(uris.len());
        for u in uris {
            if u.len() > 4 && u[..4].eq_ignore_ascii_case("www.") {
                all.push(format!("http://{u}"));
            }
            all.push(u);
        }
        all.sort();
        all.dedup();
        self.uris = all;
        self.rawbody_lines = rawbody;
        self.html = html_facts;
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

/// The first address in a header value (SpamAssassin's `:addr`).
pub fn first_addr(value: &[u8]) -> Vec<u8> {
    let v = value;
    if let Some(lt) = v.iter().position(|&c| c == b'<')
        && let Some(gt) = v[lt..].iter().position(|&c| c == b'>')
    {
        return v[lt + 1..lt + gt].trim_ascii().to_vec();
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
        assert!(m.body_lines[0].starts_with(b"Hello world Cheap = pills"));
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
}
