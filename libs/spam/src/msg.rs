//! A message taken apart for the rules: headers (decoded and raw), MIME parts with
//! transfer encodings undone, and the texts each kind of rule reads. Works on bytes
//! throughout, as SpamAssassin does by default (no charset normalisation), and
//! bounds every recursion and count so that hostile MIME costs little.

use std::ops::Range;
use std::sync::LazyLock;

use pcre2::bytes::Regex;

pub use mailgate_mime::decode_header;
use mailgate_mime::{Anomaly, Mime};

use crate::html::{self, HtmlFacts};
use crate::relays::Relays;

mod addr;
mod render;

pub use addr::{display_name, first_addr, split_addresses};
use render::{
    BODY_PART_SCAN_SIZE, RAWBODY_PART_SCAN_SIZE, crlf_to_lf, limit_blank_lines, paragraphs,
    raw_chunks, scan_prefix, split_body_line,
};

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
    /// Its entity in `Message::entities`.
    pub entity: usize,
    /// A hash of the body as mailgate-mime decoded it (before the
    /// rendering above): what the differential tests compare with the
    /// other checks' view of the part.
    pub decoded_hash: u64,
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
    /// The declared type as mailgate-mime reads it, as cleanup's checks
    /// and the banned check see it (`ctype` is SpamAssassin's reading).
    pub mime_type: String,
    /// The file name, as mailgate-mime reads it.
    pub filename: Option<String>,
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

/// All values of a header, by case-insensitive name.
pub fn header_values<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.raw.as_slice())
}

/// An entity as the spam engine reads it: what differential tests compare
/// with cleanup's and the banned check's reading of the same message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityView {
    pub mime_type: String,
    pub filename: Option<String>,
    pub is_leaf: bool,
    /// For a leaf, a hash of its decoded body (`DefaultHasher` over the
    /// byte slice).
    pub decoded_hash: Option<u64>,
}

/// The entities of a message as `Message::parse` records them.
pub fn entity_views(data: &[u8]) -> Vec<EntityView> {
    let msg = Message::parse(data);
    msg.entities
        .iter()
        .enumerate()
        .map(|(index, e)| EntityView {
            mime_type: e.mime_type.clone(),
            filename: e.filename.clone(),
            is_leaf: e.is_leaf,
            decoded_hash: msg
                .parts
                .iter()
                .find(|p| p.entity == index)
                .map(|p| p.decoded_hash),
        })
        .collect()
}

fn headers_of(e: &mailgate_mime::Entity) -> Vec<Header> {
    e.headers
        .iter()
        .map(|f| Header {
            name: f.name.clone(),
            raw: f.raw.clone(),
        })
        .collect()
}

fn hash_of(data: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

/// A leaf as the rules read it: mailgate-mime's decoded body, then
/// SpamAssassin's rendering (LF line ends for decoded text, at most 20
/// lines of a blank run).
fn leaf_part(
    mime: &Mime<'_>,
    e: &mailgate_mime::Entity,
    headers: &[Header],
    sa: &Entity,
    entity: usize,
) -> Part {
    let raw = mime.body(e);
    let decoded = mime.decoded(e);
    let decoded_hash = hash_of(&decoded);
    let ctype = &e.content_type;
    let body = match e.encoding.as_str() {
        "base64" if ctype.starts_with("text/") || ctype.starts_with("message/") => {
            crlf_to_lf(decoded.into_owned())
        }
        "base64" => decoded.into_owned(),
        "quoted-printable" => limit_blank_lines(&crlf_to_lf(decoded.into_owned())).into_owned(),
        _ => limit_blank_lines(&decoded).into_owned(),
    };
    // Lines counted with their line end (CRLF as one), as SpamAssassin reads them.
    let base64_longest_line = if e.encoding == "base64" {
        raw.split_inclusive(|&c| c == b'\n')
            .map(|l| l.len() - usize::from(l.ends_with(b"\r\n")))
            .max()
            .unwrap_or(0)
    } else {
        0
    };
    let qp = if sa.encoding == "quoted-printable" {
        qp_lines(raw)
    } else {
        QpLines::default()
    };
    let effective_type = if html_file_name(headers) {
        "text/html".to_string()
    } else {
        sa.ctype.clone()
    };
    Part {
        content_type: ctype.clone(),
        body,
        raw_len: raw.len(),
        base64_longest_line,
        effective_type,
        qp,
        html: None,
        entity,
        decoded_hash,
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
        mime_type: String::new(),
        filename: None,
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
    /// Parses a message with mailgate-mime, as the banned check and
    /// cleanup's checks read it. Never fails: anything unparsable is body text.
    pub fn parse(data: &[u8]) -> Message {
        let mime = Mime::parse(data, &mailgate_mime::Limits::default());
        let root = &mime.entities[0];
        let mut msg = Message {
            // Without an mbox `From ` line.
            full: data[root.header_span.start..].to_vec(),
            missing_separator: root.anomalies.contains(&Anomaly::MissingSeparator),
            body_len: root.body_span.len(),
            mime_epilogue: mime.epilogue,
            ..Message::default()
        };
        msg.headers = headers_of(root);
        msg.relays = Relays::parse(&msg.headers);
        for (index, e) in mime.entities.iter().enumerate() {
            let headers = if index == 0 {
                msg.headers.clone()
            } else {
                let hs = headers_of(e);
                msg.part_headers.push(hs.clone());
                hs
            };
            msg.all_types.push(e.content_type.clone());
            let mut sa = sa_entity(&headers, &e.content_type, msg.parts.len());
            sa.is_leaf = e.is_leaf;
            sa.mime_type = e.content_type.clone();
            sa.filename = e.filename.clone();
            if e.is_leaf {
                msg.parts.push(leaf_part(&mime, e, &headers, &sa, index));
            }
            msg.entities.push(sa);
        }
        // A container's leaves run to the last leaf of its last descendant.
        for index in (0..mime.entities.len()).rev() {
            let e = &mime.entities[index];
            if e.is_leaf {
                continue;
            }
            let start = msg.entities[index].leaves.start;
            let end = e
                .children
                .iter()
                .map(|&c| msg.entities[c].leaves.end)
                .max()
                .unwrap_or(start);
            msg.entities[index].leaves = start..end.max(start);
        }
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

#[cfg(test)]
mod tests;
