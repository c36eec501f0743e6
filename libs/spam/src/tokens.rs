//! Bayes tokens beyond SpamAssassin's, to be measured by cross-validation
//! (`mailgate scores --cv --bayes-tokens ...`): orthogonal sparse bigrams of
//! the visible text (as CRM114 and rspamd use), the hosts and paths of links,
//! and the MIME structure (part types, charsets, attachment name extensions).
//! On the public corpus none helped on both easy and hard ham (see the
//! README), so the engine keeps SpamAssassin's tokens: these are off unless a
//! measurement asks for them.

use std::collections::HashSet;

use crate::msg::Message;

/// Which extra tokens a message gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenOptions {
    /// Word pairs up to four words apart, with their distance.
    pub osb: bool,
    /// `uh:` link hosts and their parent domains, `up:` first path segments.
    pub links: bool,
    /// `mt:` part types, `cs:` charsets, `an:` attachment name extensions.
    pub mime: bool,
}

impl TokenOptions {
    /// Parses a comma-separated list of `osb`, `links`, `mime` (or `none`).
    pub fn parse(text: &str) -> Result<TokenOptions, String> {
        let mut o = TokenOptions::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "osb" => o.osb = true,
                "links" => o.links = true,
                "mime" => o.mime = true,
                "none" => {}
                other => return Err(format!("unknown Bayes token kind \"{other}\"")),
            }
        }
        Ok(o)
    }
}

/// At most this many words make bigrams, and this many bigrams are kept.
const MAX_OSB_WORDS: usize = 5_000;
const OSB_WINDOW: usize = 4;

/// Adds the chosen extra tokens of a message.
pub fn add(msg: &Message, o: TokenOptions, out: &mut HashSet<Vec<u8>>) {
    if o.osb {
        osb(&msg.visible_text, out);
    }
    if o.links {
        for uri in &msg.uris {
            links(uri.as_bytes(), out);
        }
    }
    if o.mime {
        for e in &msg.entities {
            out.insert(prefixed(b"mt:", e.ctype.as_bytes()));
            if !e.charset.is_empty() {
                out.insert(prefixed(b"cs:", e.charset.as_bytes()));
            }
        }
        for hs in &msg.part_headers {
            for h in hs.iter().filter(|h| {
                h.name.eq_ignore_ascii_case("content-disposition")
                    || h.name.eq_ignore_ascii_case("content-type")
            }) {
                if let Some(ext) = name_extension(&h.raw) {
                    out.insert(prefixed(b"an:", &ext));
                }
            }
        }
    }
}

fn prefixed(prefix: &[u8], t: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + t.len());
    v.extend_from_slice(prefix);
    v.extend_from_slice(t);
    v
}

/// Lowercase words of letters and digits, in order.
fn words(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|c| !(c.is_ascii_alphanumeric() || *c >= 0x80 || *c == b'\''))
        .filter(|w| w.len() >= 2 && w.len() <= 30)
        .take(MAX_OSB_WORDS)
        .map(<[u8]>::to_ascii_lowercase)
        .collect()
}

/// Orthogonal sparse bigrams: each word with each of the next four, the
/// distance part of the token.
fn osb(text: &[u8], out: &mut HashSet<Vec<u8>>) {
    let w = words(text);
    for i in 0..w.len() {
        for d in 1..=OSB_WINDOW {
            let Some(next) = w.get(i + d) else { break };
            let mut t = Vec::with_capacity(w[i].len() + next.len() + 4);
            t.extend_from_slice(b"o");
            t.push(b'0' + d as u8);
            t.push(b':');
            t.extend_from_slice(&w[i]);
            t.push(b' ');
            t.extend_from_slice(next);
            out.insert(t);
        }
    }
}

/// `uh:` for a link's host and each parent domain, `up:` for its first path
/// segment.
fn links(uri: &[u8], out: &mut HashSet<Vec<u8>>) {
    let lower = uri.to_ascii_lowercase();
    let rest = match lower.windows(3).position(|w| w == b"://") {
        Some(p) => &lower[p + 3..],
        None => match lower.strip_prefix(b"mailto:") {
            Some(r) => r,
            None => &lower[..],
        },
    };
    let host_end = rest
        .iter()
        .position(|c| matches!(c, b'/' | b'?' | b'#' | b':'))
        .unwrap_or(rest.len());
    let host = &rest[..host_end];
    let host = host.rsplit(|&c| c == b'@').next().unwrap_or(host);
    if host.is_empty() {
        return;
    }
    let mut h = host;
    loop {
        out.insert(prefixed(b"uh:", h));
        match h.iter().position(|&c| c == b'.') {
            Some(p) if h[p + 1..].contains(&b'.') => h = &h[p + 1..],
            _ => break,
        }
    }
    if let Some(path) = rest[host_end..].strip_prefix(b"/") {
        let seg_end = path
            .iter()
            .position(|c| matches!(c, b'/' | b'?' | b'#'))
            .unwrap_or(path.len());
        if seg_end > 0 {
            out.insert(prefixed(b"up:", &path[..seg_end.min(40)]));
        }
    }
}

/// The extension of a `name=` or `filename=` parameter.
fn name_extension(value: &[u8]) -> Option<Vec<u8>> {
    let lower = value.to_ascii_lowercase();
    let at = lower.windows(5).position(|w| w == b"name=")?;
    let name = lower[at + 5..]
        .split(|&c| c == b';' || c == b'\n')
        .next()?
        .trim_ascii();
    let name = name.strip_prefix(b"\"").unwrap_or(name);
    let name = name.strip_suffix(b"\"").unwrap_or(name);
    let dot = name.iter().rposition(|&c| c == b'.')?;
    let ext = &name[dot + 1..];
    (!ext.is_empty() && ext.len() <= 10).then(|| ext.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_tokens() {
        let m = Message::parse(
            b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\
              Content-Type: text/plain; charset=koi8-r\n\n\
              Click here now: http://user@Shop.Example.co.uk/deals/x.html\n--b\n\
              Content-Type: application/octet-stream; name=\"invoice.PDF.exe\"\n\nMZ\n--b--\n",
        );
        let mut t = HashSet::new();
        let all = TokenOptions {
            osb: true,
            links: true,
            mime: true,
        };
        add(&m, all, &mut t);
        let has = |s: &str| t.contains(s.as_bytes());
        assert!(has("o1:click here"));
        assert!(has("o2:click now"));
        assert!(has("o3:click http"));
        assert!(!has("o5:click http"));
        assert!(has("uh:shop.example.co.uk"));
        assert!(has("uh:example.co.uk"));
        assert!(has("uh:co.uk"));
        assert!(has("up:deals"));
        assert!(has("mt:multipart/mixed"));
        assert!(has("cs:koi8-r"));
        assert!(has("an:exe"));
        assert_eq!(
            TokenOptions::parse("osb, mime").unwrap(),
            TokenOptions {
                osb: true,
                links: false,
                mime: true
            }
        );
        assert!(TokenOptions::parse("bigrams").is_err());
    }
}
