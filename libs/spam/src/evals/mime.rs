//! MIMEEval's and BodyEval's tests of the MIME structure and the body text.

use std::collections::HashMap;
use std::sync::LazyLock;

use pcre2::bytes::Regex;

use crate::msg::{self, Message};

/// The check_for_mime tests this engine computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MimeTest {
    Attachment,
    Base64Count,
    Base64EncodedText,
    BodyHtmlCount,
    BodyTextCount,
    MultipartAlternative,
    MultipartRatio,
    QpCount,
    QpLongLine,
    QpRatio,
    BadIsoCharset,
    /// Tests SpamAssassin 4.0.1 never sets: mime_faraway_charset (ok_locales is
    /// `all`), mimepart_limit_exceeded (set on the message, read from the scan)
    /// and mime_base64_blanks (no longer computed).
    Never,
}

impl MimeTest {
    pub fn new(name: &str) -> Option<MimeTest> {
        Some(match name {
            "mime_attachment" => MimeTest::Attachment,
            "mime_base64_count" => MimeTest::Base64Count,
            "mime_base64_encoded_text" => MimeTest::Base64EncodedText,
            "mime_body_html_count" => MimeTest::BodyHtmlCount,
            "mime_body_text_count" => MimeTest::BodyTextCount,
            "mime_multipart_alternative" => MimeTest::MultipartAlternative,
            "mime_multipart_ratio" => MimeTest::MultipartRatio,
            "mime_qp_count" => MimeTest::QpCount,
            "mime_qp_long_line" => MimeTest::QpLongLine,
            "mime_qp_ratio" => MimeTest::QpRatio,
            "mime_bad_iso_charset" => MimeTest::BadIsoCharset,
            "mime_faraway_charset" | "mimepart_limit_exceeded" | "mime_base64_blanks" => {
                MimeTest::Never
            }
            _ => return None,
        })
    }

    pub fn run(self, m: &Message) -> bool {
        let f = MimeFacts::of(m);
        match self {
            MimeTest::Attachment => f.attachment > 0,
            MimeTest::Base64Count => f.base64_count > 0,
            MimeTest::Base64EncodedText => f.base64_encoded_text,
            MimeTest::BodyHtmlCount => f.html_count > 0,
            MimeTest::BodyTextCount => f.text_count > 0,
            MimeTest::MultipartAlternative => f.multipart_alternative,
            MimeTest::MultipartRatio => f.multipart_ratio != 0.0,
            MimeTest::QpCount => f.qp_count != 0.0,
            MimeTest::QpLongLine => f.qp_long_line,
            MimeTest::QpRatio => f.qp_ratio != 0.0,
            MimeTest::BadIsoCharset => f.bad_iso_charset,
            MimeTest::Never => false,
        }
    }
}

/// What MIMEEval's _check_attachments finds, by its names.
#[derive(Debug, Default, PartialEq)]
pub struct MimeFacts {
    pub attachment: u32,
    pub base64_count: u32,
    pub base64_encoded_text: bool,
    pub html_count: u32,
    /// text/* entities other than text/html.
    pub text_count: u32,
    pub multipart_alternative: bool,
    /// Bytes of the last text/plain alternative over the last text/html one.
    pub multipart_ratio: f64,
    /// Needless `=XX` escapes in quoted-printable text (or, without any such
    /// text, quoted-printable entities), and their share of its bytes.
    pub qp_count: f64,
    pub qp_ratio: f64,
    pub qp_long_line: bool,
    pub bad_iso_charset: bool,
}

impl MimeFacts {
    pub fn of(m: &Message) -> MimeFacts {
        static ASCII: LazyLock<Option<Regex>> = LazyLock::new(|| {
            Regex::new(
                r"us-ascii|ansi_x3\.4-1968|iso-ir-6|ansi_x3\.4-1986|iso_646\.irv:1991|ascii|iso646-us|us|ibm367|cp367|csascii",
            )
            .ok()
        });
        static ISO: LazyLock<Option<Regex>> =
            LazyLock::new(|| Regex::new(r"(?i)iso-\S+-\S+\b").ok());
        static GOOD_ISO: LazyLock<Option<Regex>> =
            LazyLock::new(|| Regex::new(r"iso-(?:8859-\d{1,2}|2022-(?:jp|kr))\b").ok());
        let mut f = MimeFacts {
            multipart_ratio: 1.0,
            ..MimeFacts::default()
        };
        let (mut qp_entities, mut qp_bytes, mut qp_needless) = (0u32, 0usize, 0.0);
        // Per leaf: its type and, unless an attachment, its bytes as counted.
        let mut leaves: Vec<(&str, Option<usize>)> = Vec::new();
        for e in &m.entities {
            if e.ctype == "multipart/alternative" {
                f.multipart_alternative = true;
            }
            if e.ctype == "text/html" {
                f.html_count += 1;
            } else if e.ctype.starts_with("text") {
                f.text_count += 1;
            }
            if e.encoding.contains("base64") {
                f.base64_count += 1;
            } else if e.encoding.contains("quoted-printable") {
                qp_entities += 1;
            }
            let attachment = e.disposition.contains("attachment");
            f.attachment += u32::from(attachment);
            if e.ctype.starts_with("text")
                && e.encoding.contains("base64")
                && (e.charset.is_empty() || is_match(&ASCII, &e.charset))
                && !e.disposition.starts_with("attachment")
                && !e.disposition.starts_with("inline")
            {
                f.base64_encoded_text = true;
            }
            if is_match(&ISO, &e.charset) && !is_match(&GOOD_ISO, &e.charset) {
                f.bad_iso_charset = true;
            }
            let Some(part) = m.parts.get(e.leaves.start).filter(|_| e.is_leaf) else {
                continue;
            };
            let counted =
                f.multipart_alternative && (e.ctype == "text/plain" || e.ctype == "text/html");
            let bytes = (!attachment).then_some(if counted { part.raw_len } else { 0 });
            leaves.push((&e.ctype, bytes));
            if e.encoding == "quoted-printable" {
                qp_bytes += part.qp.bytes;
                qp_needless += part.qp.needless;
                f.qp_long_line |= part.qp.long_line;
            }
        }
        f.qp_count = f64::from(qp_entities);
        if qp_bytes > 0 {
            f.qp_ratio = qp_needless / qp_bytes as f64;
            f.qp_count = qp_needless;
        }
        if f.multipart_alternative {
            // The sizes of the last text and HTML parts (SpamAssassin's bug 4207).
            let last = |t: &str| {
                leaves
                    .iter()
                    .rev()
                    .filter_map(|&(ct, bytes)| Some((ct, bytes?)))
                    .find(|(ct, _)| *ct == t)
                    .map(|(_, b)| b)
            };
            if let (Some(text), Some(html)) = (last("text/plain"), last("text/html"))
                && html > 0
            {
                f.multipart_ratio = text as f64 / html as f64;
            }
        }
        f
    }
}

fn is_match(re: &LazyLock<Option<Regex>>, text: &str) -> bool {
    re.as_ref()
        .is_some_and(|r| r.is_match(text.as_bytes()).unwrap_or(false))
}

/// check_for_mime_html(_only): a top-level text/html type, or a text/html part
/// (and, for `only`, no other text part).
pub fn mime_html(m: &Message, only: bool) -> bool {
    let top = m.header("content-type").unwrap_or_default();
    if top.len() >= 9 && top[..9].eq_ignore_ascii_case(b"text/html") {
        return true;
    }
    let f = MimeFacts::of(m);
    f.html_count > 0 && (!only || f.text_count == 0)
}

/// How much the HTML alternative of a multipart/alternative says that the text
/// one does not (BodyEval's _multipart_alternative_difference): the largest share
/// (percent) of HTML words missing from the text, and the word counts of the last
/// alternative looked at.
#[derive(Debug, Default, PartialEq)]
pub struct AltDifference {
    pub percent: f64,
    pub html_words: usize,
    pub text_words: usize,
}

pub fn alternative_difference(m: &Message) -> AltDifference {
    let mut out = AltDifference::default();
    // Exchange meeting requests (text/html and text/calendar) differ by design.
    if m.all_types == ["multipart/alternative", "text/html", "text/calendar"] {
        return out;
    }
    // The type of each leaf, by its index in `parts`.
    let mut leaf_types: Vec<&str> = vec![""; m.parts.len()];
    for e in m.entities.iter().filter(|e| e.is_leaf) {
        if let Some(t) = leaf_types.get_mut(e.leaves.start) {
            *t = &e.ctype;
        }
    }
    for alt in m.entities.iter().filter(|e| {
        e.ctype
            .strip_prefix("multipart/alternative")
            .is_some_and(|r| r.chars().next().is_none_or(|c| !c.is_alphanumeric()))
    }) {
        let mut html: HashMap<String, usize> = HashMap::new();
        let mut text: HashMap<String, usize> = HashMap::new();
        for i in alt.leaves.clone() {
            let Some(part) = m.parts.get(i) else { continue };
            if !leaf_types.get(i).is_some_and(|t| t.starts_with("text")) {
                continue;
            }
            match part.effective_type.as_str() {
                "text/html" => {
                    let facts = part.html.and_then(|h| m.html.get(h));
                    if let Some(f) = facts {
                        count_words(&f.text, &mut html);
                    }
                    // An HTML part of images only has one word: "\n", which no
                    // text has.
                    if html.is_empty() && facts.is_some_and(|f| f.has_tag("img")) {
                        html.insert("\n".into(), 1);
                    }
                }
                "text/plain" => count_words(&part.body, &mut text),
                _ => {}
            }
        }
        let orig = html.len();
        if orig == 0 {
            continue;
        }
        out.html_words = orig;
        out.text_words = text.len();
        for (word, n) in &text {
            if html.get(word).is_some_and(|h| *h < n + 1) {
                html.remove(word);
            }
        }
        out.percent = out.percent.max(html.len() as f64 / orig as f64 * 100.0);
    }
    out
}

/// Whitespace-separated tokens with a word character in them.
fn count_words(text: &[u8], out: &mut HashMap<String, usize>) {
    let text = String::from_utf8_lossy(text);
    for w in text.split(char::is_whitespace) {
        if w.chars().any(|c| c.is_alphanumeric() || c == '_') {
            *out.entry(w.to_string()).or_default() += 1;
        }
    }
}

/// check_for_uppercase's measure: the percentage of capitals among letters and
/// digits on body lines with words, 0 for bodies under 200 bytes or in charsets
/// without case (where it would misfire).
pub fn uppercase_percent(m: &Message) -> f64 {
    static BASE64_LINE: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"^(?:[A-Za-z0-9+/=]{60,76} ){2}").ok());
    static SHIFT_JIS: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?s)\x1b\$B.*\x1b\(B").ok());
    if charset_fp_as_caps(m) {
        return 0.0;
    }
    let (mut len, mut lower, mut upper) = (0usize, 0usize, 0usize);
    for line in &m.body_lines {
        if !words_apart(line) || matches_bytes(&BASE64_LINE, line) {
            continue;
        }
        let stripped;
        let line: &[u8] = match SHIFT_JIS.as_ref().map(|re| re.find(line)) {
            Some(Ok(Some(found))) => {
                let mut s = line[..found.start()].to_vec();
                s.extend_from_slice(&line[found.end()..]);
                stripped = s;
                &stripped
            }
            _ => line,
        };
        len += line.len();
        lower += line
            .iter()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            .count();
        upper += line.iter().filter(|c| c.is_ascii_uppercase()).count();
    }
    if len < 200 || upper + lower == 0 {
        return 0.0;
    }
    upper as f64 / (upper + lower) as f64 * 100.0
}

/// `\S\s+\S`: two words on the line.
fn words_apart(line: &[u8]) -> bool {
    let (mut word, mut gap) = (false, false);
    for &c in line {
        if !is_space(c) {
            if gap {
                return true;
            }
            word = true;
        } else if word {
            gap = true;
        }
    }
    false
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn matches_bytes(re: &LazyLock<Option<Regex>>, text: &[u8]) -> bool {
    re.as_ref()
        .is_some_and(|r| r.is_match(text).unwrap_or(false))
}

/// body_charset_is_likely_to_fp: the message's or a part's charset is one of
/// those (Japanese, Chinese, Cyrillic, Thai, ...) where capitals are not capitals.
fn charset_fp_as_caps(m: &Message) -> bool {
    static CT_CHARSET: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r#"(?i)charset="([^"]+)"|charset='([^']+)'|charset=(\S+)"#).ok()
    });
    static FP: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(
            r"(?i)^[-_a-z0-9]*(?:koi|jp|jis|euc|gb|big5|isoir|cp1251|windows-1251|georgianps|pt154|tis)[-_a-z0-9]*$",
        )
        .ok()
    });
    let top = msg::header_values(&m.headers, "content-type")
        .map(|v| msg::decode_header(v).trim_ascii().to_vec())
        .collect::<Vec<_>>()
        .join(&b'\n');
    let top_charset = CT_CHARSET
        .as_ref()
        .and_then(|re| re.captures(&top).ok().flatten())
        .and_then(|c| {
            c.get(1)
                .or(c.get(2))
                .or(c.get(3))
                .map(|g| g.as_bytes().to_vec())
        });
    top_charset.iter().any(|c| matches_bytes(&FP, c))
        || m.entities
            .iter()
            .filter(|e| e.charset.bytes().any(|c| c.is_ascii_alphabetic()))
            .any(|e| matches_bytes(&FP, e.charset.as_bytes()))
}

/// tvd_vertical_words' measure: the highest share (percent) of spaces to other
/// characters on a body line longer than 5, or -1 without such lines. Text
/// written one word per line, or spaced out, scores high.
pub fn vertical_words(m: &Message) -> f64 {
    let mut highest = -1.0f64;
    for line in &m.body_lines {
        let l = line.len();
        if l <= 5 {
            continue;
        }
        let spaces = line.iter().filter(|&&c| c == b' ').count();
        let other = l - spaces;
        let pct = if spaces > other || other == 0 {
            100.0
        } else {
            (100 * spaces / other) as f64
        };
        highest = highest.max(pct);
    }
    highest
}
