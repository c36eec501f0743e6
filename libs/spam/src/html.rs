//! HTML rendered to text the way rules see it, plus the facts the html_* eval tests
//! ask about. A tolerant byte scanner, not a conforming parser: spam HTML is rarely
//! well-formed, and nothing here may fail on it.

use std::collections::HashSet;

/// What rendering an HTML part found.
#[derive(Clone, Debug, Default)]
pub struct HtmlFacts {
    /// Visible text, with blank lines where block elements break paragraphs.
    pub text: Vec<u8>,
    /// Text inside `<title>`.
    pub title: Vec<u8>,
    pub uris: Vec<String>,
    /// Lowercase names of the tags seen.
    pub tags: HashSet<String>,
    pub image_count: usize,
    /// Sum of width*height over images that declare them.
    pub image_area: u64,
    /// Opening minus closing tags, per tag, for html_tag_balance.
    pub balance: Vec<(String, i64)>,
    /// Text made invisible (same colour as background, tiny fonts) is not tracked; the
    /// count of bytes of comments is, since comment stuffing is a spam sign.
    pub comment_bytes: usize,
}

const BLOCK: &[&str] = &[
    "p",
    "div",
    "tr",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "hr",
    "form",
    "center",
    "dl",
    "dt",
    "dd",
    "title",
    "body",
];

fn decode_entity(name: &[u8]) -> Option<Vec<u8>> {
    if let Some(num) = name.strip_prefix(b"#") {
        let s = std::str::from_utf8(num).ok()?;
        let n = match s.strip_prefix(['x', 'X']) {
            Some(h) => u32::from_str_radix(h, 16).ok()?,
            None => s.parse::<u32>().ok()?,
        };
        let c = char::from_u32(n)?;
        let mut buf = [0u8; 4];
        return Some(c.encode_utf8(&mut buf).as_bytes().to_vec());
    }
    let v: &[u8] = match name.to_ascii_lowercase().as_slice() {
        b"nbsp" => b" ",
        b"amp" => b"&",
        b"lt" => b"<",
        b"gt" => b">",
        b"quot" => b"\"",
        b"apos" => b"'",
        b"copy" => "\u{a9}".as_bytes(),
        b"reg" => "\u{ae}".as_bytes(),
        b"trade" => "\u{2122}".as_bytes(),
        b"euro" => "\u{20ac}".as_bytes(),
        b"pound" => "\u{a3}".as_bytes(),
        _ => return None,
    };
    Some(v.to_vec())
}

/// Appends text with entities decoded.
fn push_text(out: &mut Vec<u8>, text: &[u8]) {
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'&' {
            let end = text[i + 1..]
                .iter()
                .take(12)
                .position(|&c| c == b';')
                .map(|p| i + 1 + p);
            if let Some(end) = end
                && let Some(v) = decode_entity(&text[i + 1..end])
            {
                out.extend_from_slice(&v);
                i = end + 1;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
}

/// Attributes of a tag as (lowercase name, value with entities decoded).
fn attributes(tag: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = tag.len();
    while i < n {
        while i < n && (tag[i].is_ascii_whitespace() || tag[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < n && !tag[i].is_ascii_whitespace() && tag[i] != b'=' && tag[i] != b'/' {
            i += 1;
        }
        if start == i {
            i += 1;
            continue;
        }
        let name = String::from_utf8_lossy(&tag[start..i]).to_ascii_lowercase();
        while i < n && tag[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        if i < n && tag[i] == b'=' {
            i += 1;
            while i < n && tag[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < n && (tag[i] == b'"' || tag[i] == b'\'') {
                let q = tag[i];
                i += 1;
                let s = i;
                while i < n && tag[i] != q {
                    i += 1;
                }
                push_text(&mut value, &tag[s..i]);
                i += 1;
            } else {
                let s = i;
                while i < n && !tag[i].is_ascii_whitespace() {
                    i += 1;
                }
                push_text(&mut value, &tag[s..i]);
            }
        }
        out.push((name, String::from_utf8_lossy(&value).trim().to_string()));
    }
    out
}

/// Renders HTML bytes.
pub fn render(html: &[u8]) -> HtmlFacts {
    let mut f = HtmlFacts::default();
    let mut balance: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut i = 0;
    let n = html.len();
    // Inside <script>/<style>, text is code, not words a reader sees.
    let mut skip_until: Option<&'static [u8]> = None;
    let mut in_title = false;
    while i < n {
        if html[i] != b'<' {
            let end = html[i..]
                .iter()
                .position(|&c| c == b'<')
                .map_or(n, |p| i + p);
            if skip_until.is_none() {
                if in_title {
                    push_text(&mut f.title, &html[i..end]);
                } else {
                    push_text(&mut f.text, &html[i..end]);
                }
            }
            i = end;
            continue;
        }
        if html[i..].starts_with(b"<!--") {
            let end = find(&html[i + 4..], b"-->").map_or(n, |p| i + 4 + p + 3);
            f.comment_bytes += end - i;
            i = end;
            continue;
        }
        let end = html[i..]
            .iter()
            .position(|&c| c == b'>')
            .map_or(n, |p| i + p);
        let inner = &html[(i + 1).min(end)..end];
        i = (end + 1).min(n);
        let closing = inner.first() == Some(&b'/');
        let inner = if closing { &inner[1..] } else { inner };
        let name_len = inner
            .iter()
            .position(|c| c.is_ascii_whitespace() || *c == b'/')
            .unwrap_or(inner.len());
        let name = String::from_utf8_lossy(&inner[..name_len]).to_ascii_lowercase();
        if name.is_empty() || !name.as_bytes()[0].is_ascii_alphabetic() {
            continue;
        }
        if let Some(until) = skip_until {
            if closing && name.as_bytes() == until {
                skip_until = None;
            }
            continue;
        }
        *balance.entry(name.clone()).or_default() += if closing { -1 } else { 1 };
        match (name.as_str(), closing) {
            ("script", false) => skip_until = Some(b"script"),
            ("style", false) => skip_until = Some(b"style"),
            ("title", c) => in_title = !c,
            _ => {}
        }
        if BLOCK.contains(&name.as_str()) {
            f.text.extend_from_slice(b"\n\n");
        } else if name == "br" {
            f.text.push(b'\n');
        } else if name == "td" || name == "th" {
            f.text.push(b' ');
        }
        if !closing {
            let attrs = attributes(&inner[name_len..]);
            let get = |k: &str| attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
            match name.as_str() {
                "a" | "area" | "link" | "base" => {
                    if let Some(h) = get("href") {
                        f.uris.push(h.to_string());
                    }
                }
                "img" => {
                    f.image_count += 1;
                    if let Some(s) = get("src") {
                        f.uris.push(s.to_string());
                    }
                    let dim = |k| get(k).and_then(|v| v.trim_end_matches("px").parse::<u64>().ok());
                    if let (Some(w), Some(h)) = (dim("width"), dim("height")) {
                        f.image_area = f.image_area.saturating_add(w.saturating_mul(h));
                    }
                }
                "form" => {
                    if let Some(a) = get("action") {
                        f.uris.push(a.to_string());
                    }
                }
                "iframe" | "frame" | "embed" | "script" => {
                    if let Some(s) = get("src") {
                        f.uris.push(s.to_string());
                    }
                }
                _ => {}
            }
            f.tags.insert(name);
        }
    }
    let mut balance: Vec<(String, i64)> = balance.into_iter().collect();
    balance.sort();
    f.balance = balance;
    f
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_links_and_images() {
        let f = render(
            b"<html><head><title>Hi</title><style>p{color:red}</style></head>\
              <body><p>Buy &amp; save</p><!-- hidden --><a href=\"http://x.example/a\">here</a>\
              <img src='http://img.example/i.gif' width=10 height=20><script>var a;</script></body>",
        );
        let text = String::from_utf8_lossy(&f.text);
        assert!(text.contains("Buy & save"), "{text}");
        assert!(text.contains("here"));
        assert!(!text.contains("color") && !text.contains("var a"));
        assert_eq!(f.title, b"Hi");
        assert_eq!(f.uris, ["http://x.example/a", "http://img.example/i.gif"]);
        assert_eq!(f.image_count, 1);
        assert_eq!(f.image_area, 200);
        assert!(f.tags.contains("img"));
    }

    #[test]
    fn survives_broken_markup() {
        for input in [
            &b"<"[..],
            b"<a href=",
            b"<!--",
            b"&#99999999;",
            b"</>",
            b"<a\"'=>",
        ] {
            render(input);
        }
    }
}
