//! HTML rendered to text the way SpamAssassin renders it, plus the facts its
//! HTMLEval tests ask about (tag counts and balance, ratios, font sizes, comments,
//! titles, anchor texts). SpamAssassin's HTML.pm renders on the events of
//! HTML::Parser; the tokenizer here follows HTML::Parser 3.8x (literal-mode
//! elements, marked sections, and how it recovers unterminated markup at the end
//! of a document) so that the counts come out as SpamAssassin's do. One pass over
//! the bytes, no recursion, and nothing here fails on any input.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use pcre2::bytes::Regex;

mod colors;
mod css;
mod entities;
mod tokenizer;

use css::{apply_css, name_to_rgb, rgb};
use tokenizer::Tokenizer;

/// What rendering one HTML part found: SpamAssassin's `html_results` for the part.
#[derive(Clone, Debug, Default)]
pub struct HtmlFacts {
    /// The rendered text, invisible text included (what body rules read).
    pub text: Vec<u8>,
    /// The rendered text without text made invisible (what Bayes reads).
    pub visible: Vec<u8>,
    pub uris: Vec<String>,
    /// Per lowercase tag name seen: opening minus closing tags, never below 0.
    pub inside: HashMap<Vec<u8>, i64>,
    /// Sum of the images' width*height, 200 for a dimension not given in pixels.
    pub image_area: u64,
    /// Characters of HTML source.
    pub length: usize,
    /// Characters of rendered text, and those that are not white space.
    pub html_length: usize,
    pub non_space_len: usize,
    /// Largest and smallest font size (HTML sizes 1 to 7; 3 is the default).
    pub max_size: f64,
    pub min_size: f64,
    tags: usize,
    elements: usize,
    tags_seen: usize,
    elements_seen: usize,
    closed_extra: usize,
    /// Text runs split by a tag in the middle of a word (`fr<b></b>ee`).
    obfuscation: usize,
    /// Comments as written, `<!--` and `-->` included.
    pub comments: Vec<Vec<u8>>,
    pub titles: Vec<Vec<u8>>,
    /// The text of each `<a>`, with `<img>\n` for each image in it.
    pub anchors: Vec<Vec<u8>>,
    pub scripts: Vec<Vec<u8>>,
    font_low_contrast: bool,
    font_invalid_color: bool,
    font_face_bad: bool,
    embeds: bool,
    form_action_mailto: bool,
}

impl HtmlFacts {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.inside.contains_key(tag.as_bytes())
    }

    /// A numeric result by SpamAssassin's name, for html_range and html_eval;
    /// `None` where SpamAssassin leaves it undefined (a ratio over no tags).
    pub fn value(&self, name: &str) -> Option<f64> {
        let ratio = |n: usize, d: usize| (d > 0).then(|| n as f64 / d as f64);
        match name {
            "length" => Some(self.length as f64),
            "html_length" => Some(self.html_length as f64),
            "non_space_len" => Some(self.non_space_len as f64),
            "image_area" => Some(self.image_area as f64),
            "max_size" => Some(self.max_size),
            "min_size" => Some(self.min_size),
            "closed_extra_ratio" => ratio(self.closed_extra, self.tags),
            "bad_tag_ratio" if self.elements > 0 => {
                ratio(self.tags.saturating_sub(self.elements), self.tags)
            }
            "non_element_ratio" if self.elements_seen > 0 => ratio(
                self.tags_seen.saturating_sub(self.elements_seen),
                self.tags_seen,
            ),
            "obfuscation_ratio" if self.obfuscation > 0 => ratio(self.obfuscation, self.tags),
            _ => None,
        }
    }

    /// html_test: whether a result is set and true.
    pub fn test(&self, name: &str) -> bool {
        match name {
            "html" => true,
            "font_low_contrast" => self.font_low_contrast,
            "font_invalid_color" => self.font_invalid_color,
            "font_face_bad" => self.font_face_bad,
            "embeds" => self.embeds,
            "form_action_mailto" => self.form_action_mailto,
            _ => self
                .strings(name)
                .map(|s| !s.is_empty())
                .or_else(|| self.value(name).map(|v| v != 0.0))
                .unwrap_or(false),
        }
    }

    /// The string lists html_text_match reads.
    pub fn strings(&self, name: &str) -> Option<&[Vec<u8>]> {
        Some(match name {
            "comment" => &self.comments,
            "title" => &self.titles,
            "anchor" => &self.anchors,
            "script" => &self.scripts,
            _ => return None,
        })
    }
}

/// Renders the HTML of one part.
pub fn render(html: &[u8]) -> HtmlFacts {
    let mut r = Renderer::new(char_count(html).0);
    let source = normalize(html);
    Tokenizer::default().run(&source, &mut r);
    r.finish()
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    let mut from = 0;
    while let Some(p) = hay.get(from..)?.iter().position(|&c| c == first) {
        let at = from + p;
        if hay[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Characters in text, and how many of them are white space, as SpamAssassin
/// counts them in text it decoded from its charset: UTF-8 characters, and each
/// other byte as a character of a single-byte charset (0xA0 a space).
pub fn char_count(text: &[u8]) -> (usize, usize) {
    if text.is_ascii() {
        let space = text
            .iter()
            .filter(|c| c.is_ascii_whitespace() || **c == 0x0b)
            .count();
        return (text.len(), space);
    }
    let (mut chars, mut space) = (0, 0);
    for chunk in text.utf8_chunks() {
        for c in chunk.valid().chars() {
            chars += 1;
            space += usize::from(c.is_whitespace());
        }
        for &b in chunk.invalid() {
            chars += 1;
            space += usize::from(b == 0xa0);
        }
    }
    (chars, space)
}

/// SpamAssassin's rewrites before parsing: `&nbsp;` to a space, `<br/>` to
/// `<br>` (HTML::Parser would read the tag name `br/`), typographic double quotes
/// to `"` (they would break attribute parsing). SpamAssassin decodes the text from
/// its charset first; text that is not UTF-8 is taken as Windows-1252 here, the
/// charset of the quotes 0x93 and 0x94 (and what SpamAssassin reads ISO-8859-1 as).
fn normalize(html: &[u8]) -> Cow<'_, [u8]> {
    let utf8 = html.is_ascii() || std::str::from_utf8(html).is_ok();
    let needs = |c: &u8| match c {
        b'&' => true,
        0xe2 => utf8,
        0x93 | 0x94 => !utf8,
        _ => false,
    };
    let mut out = Cow::Borrowed(html);
    if html.iter().any(needs) {
        let mut v = Vec::with_capacity(html.len());
        let mut i = 0;
        while i < html.len() {
            let rest = &html[i..];
            if rest.starts_with(b"&nbsp;") {
                v.push(b' ');
                i += 6;
            } else if utf8
                && (rest.starts_with(b"\xe2\x80\x9c") || rest.starts_with(b"\xe2\x80\x9d"))
            {
                v.push(b'"');
                i += 3;
            } else if !utf8 && (rest[0] == 0x93 || rest[0] == 0x94) {
                v.push(b'"');
                i += 1;
            } else {
                v.push(rest[0]);
                i += 1;
            }
        }
        out = Cow::Owned(v);
    }
    if find(&out, b"/>").is_some() {
        out = Cow::Owned(close_empty_tags(&out));
    }
    out
}

/// `s/<(\w+)\s*\/>/<$1>/g`.
fn close_empty_tags(text: &[u8]) -> Vec<u8> {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'<' {
            let name_end = i + 1 + text[i + 1..].iter().take_while(|&&c| word(c)).count();
            let mut j = name_end;
            while text.get(j).is_some_and(|&c| is_perl_space(c)) {
                j += 1;
            }
            if name_end > i + 1 && text.get(j..j + 2) == Some(b"/>") {
                out.extend_from_slice(&text[i..name_end]);
                out.push(b'>');
                i = j + 2;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// Perl's `\s` on bytes.
fn is_perl_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The elements that open a text style, and the default style's name.
const STYLE_TAGS: [&[u8]; 13] = [
    b"default",
    b"body",
    b"font",
    b"table",
    b"tr",
    b"td",
    b"big",
    b"small",
    b"basefont",
    b"span",
    b"p",
    b"div",
    b"a",
];

/// A text style in effect: SpamAssassin's text_style entries.
#[derive(Clone, Debug)]
struct Style {
    /// Its element, as an index into STYLE_TAGS.
    tag: usize,
    fg: String,
    bg: String,
    size: f64,
    /// `display: none` and `visibility: hidden`.
    undisplayed: bool,
    hidden: bool,
}

/// The last piece of rendered text, as SpamAssassin's text array tracks it.
#[derive(Clone, Copy)]
struct Piece {
    start: usize,
    whitespace: bool,
    invisible: bool,
}

/// SpamAssassin's HTML.pm handlers, collecting facts and text.
struct Renderer {
    f: HtmlFacts,
    styles: Vec<Style>,
    /// How many entries of each STYLE_TAGS element `styles` holds, so that
    /// closing one costs no search.
    open_styles: [usize; 13],
    basefont: f64,
    last: Option<Piece>,
}

impl std::ops::Deref for Renderer {
    type Target = HtmlFacts;
    fn deref(&self) -> &HtmlFacts {
        &self.f
    }
}

impl std::ops::DerefMut for Renderer {
    fn deref_mut(&mut self) -> &mut HtmlFacts {
        &mut self.f
    }
}

/// Elements of HTML 4.01 and XHTML 1.0 and a few common non-standard ones; other
/// tags count as bad tags.
fn is_element(tag: &[u8]) -> bool {
    matches!(
        tag,
        b"a" | b"abbr"
            | b"acronym"
            | b"address"
            | b"area"
            | b"b"
            | b"base"
            | b"bdo"
            | b"big"
            | b"blockquote"
            | b"body"
            | b"br"
            | b"button"
            | b"caption"
            | b"cite"
            | b"code"
            | b"col"
            | b"colgroup"
            | b"dd"
            | b"del"
            | b"dfn"
            | b"div"
            | b"dl"
            | b"dt"
            | b"em"
            | b"fieldset"
            | b"form"
            | b"h1"
            | b"h2"
            | b"h3"
            | b"h4"
            | b"h5"
            | b"h6"
            | b"head"
            | b"hr"
            | b"html"
            | b"i"
            | b"img"
            | b"input"
            | b"ins"
            | b"kbd"
            | b"label"
            | b"legend"
            | b"li"
            | b"link"
            | b"map"
            | b"meta"
            | b"noscript"
            | b"object"
            | b"ol"
            | b"optgroup"
            | b"option"
            | b"p"
            | b"param"
            | b"pre"
            | b"q"
            | b"samp"
            | b"script"
            | b"select"
            | b"small"
            | b"span"
            | b"strong"
            | b"style"
            | b"sub"
            | b"sup"
            | b"table"
            | b"tbody"
            | b"td"
            | b"textarea"
            | b"tfoot"
            | b"th"
            | b"thead"
            | b"title"
            | b"tr"
            | b"tt"
            | b"ul"
            | b"var"
            | b"applet"
            | b"basefont"
            | b"center"
            | b"dir"
            | b"font"
            | b"frame"
            | b"frameset"
            | b"iframe"
            | b"isindex"
            | b"menu"
            | b"noframes"
            | b"s"
            | b"strike"
            | b"u"
            | b"nobr"
            | b"x-sigsep"
            | b"x-tab"
    )
}

/// Non-standard tags that are rendered but do not count as elements.
fn is_trick(tag: &[u8]) -> bool {
    matches!(
        tag,
        b"bgsound" | b"embed" | b"listing" | b"plaintext" | b"xmp"
    )
}

/// Office's namespaced tags (`o:p`, `st1:place`), which count as elements.
fn is_namespaced(tag: &[u8]) -> bool {
    let rest = match tag {
        [b'o', b':', rest @ ..] => rest,
        [b's', b't', d, b':', rest @ ..] if d.is_ascii_digit() => rest,
        _ => return false,
    };
    let rest = rest.strip_suffix(b"/").unwrap_or(rest);
    !rest.is_empty()
        && rest
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// Attributes that change a text style, by element.
fn styles_attribute(tag: &[u8], attr: &[u8]) -> bool {
    match tag {
        b"basefont" | b"font" => matches!(attr, b"color" | b"face" | b"size"),
        b"body" => matches!(
            attr,
            b"text" | b"bgcolor" | b"link" | b"alink" | b"vlink" | b"background"
        ),
        b"table" | b"td" | b"th" | b"tr" => matches!(attr, b"bgcolor" | b"style"),
        b"span" | b"p" | b"div" | b"a" => attr == b"style",
        _ => false,
    }
}

/// `^\s*(\d+)` and `^\s*([+-]\d+)`: a font size, and whether it is relative.
fn font_size(value: &[u8]) -> Option<(f64, bool)> {
    let v = value.trim_ascii_start();
    let (sign, digits) = match v.first() {
        Some(b'+') => (1.0, &v[1..]),
        Some(b'-') => (-1.0, &v[1..]),
        _ => (0.0, v),
    };
    let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let num: f64 = std::str::from_utf8(&digits[..n]).ok()?.parse().ok()?;
    Some(if sign == 0.0 {
        (num, false)
    } else {
        (sign * num, true)
    })
}

/// `^(\d+)(%)?$`: an image dimension, a percentage of an 800x600 screen.
fn dimension(value: &[u8], percent_scale: u64) -> u64 {
    let v = value.strip_suffix(b"\n").unwrap_or(value);
    let (digits, scale) = match v.strip_suffix(b"%") {
        Some(d) => (d, percent_scale),
        None => (v, 1),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let n = digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    n.saturating_mul(scale)
}

/// Not white space and not ASCII punctuation: what a word is made of when
/// looking for words split by tags.
fn wordish(c: char) -> bool {
    !c.is_whitespace() && !c.is_ascii_punctuation()
}

/// The first or last character of text: UTF-8 where it decodes, else a byte of
/// a single-byte charset (as Latin-1).
fn edge_char(text: &[u8], last: bool) -> Option<char> {
    let n = text.len().min(4);
    (1..=n)
        .find_map(|k| {
            let bytes = if last {
                &text[text.len() - k..]
            } else {
                &text[..k]
            };
            std::str::from_utf8(bytes).ok()?.chars().next()
        })
        .or_else(|| {
            let b = if last { text.last() } else { text.first() };
            b.map(|&b| char::from(b))
        })
}

impl Renderer {
    fn new(length: usize) -> Renderer {
        Renderer {
            f: HtmlFacts {
                length,
                max_size: 3.0,
                min_size: 3.0,
                ..HtmlFacts::default()
            },
            styles: vec![Style {
                tag: 0,
                fg: "#000000".into(),
                bg: "#ffffff".into(),
                size: 3.0,
                undisplayed: false,
                hidden: false,
            }],
            open_styles: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            basefont: 3.0,
            last: None,
        }
    }

    fn is_inside(&self, tag: &[u8]) -> bool {
        self.inside.get(tag).is_some_and(|&n| n > 0)
    }

    fn finish(mut self) -> HtmlFacts {
        let (len, space) = char_count(&self.f.text);
        self.f.html_length = len;
        self.f.non_space_len = len - space;
        self.f
    }

    /// A start or end tag (html_tag).
    fn tag(&mut self, name: &[u8], attrs: &[(Vec<u8>, Vec<u8>)], open: bool) {
        let lower: Cow<[u8]> = if name.iter().any(u8::is_ascii_uppercase) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        let tag: &[u8] = &lower;
        let namespaced = is_namespaced(tag);
        let element = is_element(tag);
        let seen = self.inside.contains_key(tag);
        if element || namespaced {
            self.elements += 1;
            self.elements_seen += usize::from(!seen);
        }
        self.tags += 1;
        self.tags_seen += usize::from(!seen);
        if !seen {
            self.f.inside.insert(tag.to_vec(), 0);
        }
        if let Some(count) = self.f.inside.get_mut(tag) {
            *count += if open { 1 } else { -1 };
            if *count < 0 {
                *count = 0;
                self.f.closed_extra += 1;
            }
        }
        if namespaced || !(element || is_trick(tag)) {
            return;
        }
        if matches!(
            tag,
            b"body"
                | b"font"
                | b"table"
                | b"tr"
                | b"th"
                | b"td"
                | b"big"
                | b"small"
                | b"basefont"
                | b"span"
                | b"p"
                | b"div"
                | b"a"
        ) {
            self.text_style(tag, attrs, open);
        }
        self.whitespace(tag);
        if open {
            self.uris_of(tag, attrs);
            self.tests(tag, attrs);
        }
    }

    fn whitespace(&mut self, tag: &[u8]) {
        let ws: &[u8] = match tag {
            b"br" | b"div" => b"\n",
            b"li" | b"th" | b"td" | b"dt" | b"dd" | b"embed" | b"h1" | b"h2" | b"h3" | b"h4"
            | b"h5" | b"h6" => b" ",
            b"p" | b"hr" | b"blockquote" | b"pre" | b"listing" | b"plaintext" | b"xmp"
            | b"title" => b"\n\n",
            _ => return,
        };
        self.display(ws, true, false);
    }

    fn uris_of(&mut self, tag: &[u8], attrs: &[(Vec<u8>, Vec<u8>)]) {
        let key: &[u8] = match tag {
            b"a" | b"area" | b"link" | b"base" => b"href",
            b"img" | b"iframe" | b"frame" | b"embed" | b"script" => b"src",
            b"form" => b"action",
            _ => return,
        };
        if let Some(v) = get(attrs, key) {
            let uri = String::from_utf8_lossy(v).trim().to_string();
            self.uris.push(uri);
        }
    }

    /// html_tests: the per-tag facts.
    fn tests(&mut self, tag: &[u8], attrs: &[(Vec<u8>, Vec<u8>)]) {
        static FONT_FACE: LazyLock<Option<Regex>> = LazyLock::new(|| {
            Regex::new(
                r#"(?i)^\s*["'.]?[a-z ][a-z -]*[a-z]\d?["']?(?:,\s*["']?[a-z][a-z -]*[a-z]\d?["']?)*;?$"#,
            )
            .ok()
        });
        match tag {
            b"font" => {
                if let Some(face) = get(attrs, b"face") {
                    let good = FONT_FACE
                        .as_ref()
                        .is_some_and(|re| re.is_match(face).unwrap_or(false));
                    self.font_face_bad |= !good;
                }
            }
            b"img" => {
                if self.is_inside(b"a")
                    && let Some(anchor) = self.anchors.last_mut()
                {
                    anchor.extend_from_slice(b"<img>\n");
                }
                if let (Some(w), Some(h)) = (get(attrs, b"width"), get(attrs, b"height")) {
                    // A dimension that is not a number of pixels is guessed as 200.
                    let w = Some(dimension(w, 8)).filter(|&d| d > 0).unwrap_or(200);
                    let h = Some(dimension(h, 6)).filter(|&d| d > 0).unwrap_or(200);
                    self.image_area = self.image_area.saturating_add(w.saturating_mul(h));
                }
            }
            b"form" => {
                if let Some(action) = get(attrs, b"action") {
                    self.form_action_mailto |= action
                        .windows(7)
                        .any(|w| w.eq_ignore_ascii_case(b"mailto:"));
                }
            }
            b"object" | b"embed" => self.embeds = true,
            b"a" => self.anchors.push(Vec::new()),
            b"title" => self.titles.push(Vec::new()),
            _ => {}
        }
    }

    fn push_style(&mut self, style: Style) {
        if let Some(n) = self.open_styles.get_mut(style.tag) {
            *n += 1;
        }
        self.styles.push(style);
    }

    fn pop_style(&mut self) -> Option<Style> {
        let style = self.styles.pop()?;
        if let Some(n) = self.open_styles.get_mut(style.tag) {
            *n = n.saturating_sub(1);
        }
        Some(style)
    }

    fn style_open(&self, slot: usize) -> bool {
        self.open_styles.get(slot).is_some_and(|&n| n > 0)
    }

    /// text_style: the font size and colours in effect, for invisible text.
    fn text_style(&mut self, tag: &[u8], attrs: &[(Vec<u8>, Vec<u8>)], open: bool) {
        let tag: &[u8] = if tag == b"th" { b"td" } else { tag };
        let Some(slot) = STYLE_TAGS.iter().position(|t| *t == tag) else {
            return;
        };
        let (font, tr, td) = (2, 4, 5);
        if !open {
            // Browsers render text after </body> as body text.
            if tag != b"body" && self.style_open(slot) {
                while let Some(top) = self.pop_style() {
                    if top.tag == slot {
                        break;
                    }
                }
            }
            return;
        }
        if tag == b"basefont"
            && let Some((size, false)) = get(attrs, b"size").and_then(font_size)
        {
            self.basefont = size;
            return;
        }
        if (slot == td || slot == tr) && self.style_open(slot) {
            // Cells and rows close the cells, rows and fonts left open in them.
            while let Some(top) = self.styles.last()
                && (top.tag == font || top.tag == td || (slot == tr && top.tag == tr))
            {
                self.pop_style();
            }
        }
        let Some(parent) = self.styles.last() else {
            return;
        };
        let mut new = parent.clone();
        new.tag = slot;
        if tag == b"big" || tag == b"small" {
            new.size += if tag == b"big" { 1.0 } else { -1.0 };
            self.push_style(new);
            return;
        }
        for (name, value) in attrs {
            if !styles_attribute(tag, name) {
                continue;
            }
            match name.as_slice() {
                b"text" | b"color" => new.fg = name_to_rgb(value),
                b"size" => match font_size(value) {
                    Some((n, true)) => new.size = self.basefont + n,
                    Some((n, false)) => new.size = n,
                    None => {}
                },
                b"style" => apply_css(&mut new, value, &parent.bg),
                // SpamAssassin rewrites the bgcolor attribute but never the style's
                // background, so bgcolor changes nothing.
                _ => {}
            }
            if new.size > self.f.max_size {
                self.f.max_size = new.size;
            } else if new.size < self.f.min_size {
                self.f.min_size = new.size;
            }
        }
        self.push_style(new);
    }

    /// html_font_invisible: whether text in the current style cannot be seen.
    fn invisible(&mut self) -> bool {
        let Some(style) = self.styles.last() else {
            return false;
        };
        let tail = |c: &str| c.get(c.len().saturating_sub(6)..).unwrap_or(c).to_string();
        if tail(&style.fg) == tail(&style.bg) {
            self.f.font_low_contrast = true;
            return true;
        }
        if let (Some(fg), Some(bg)) = (rgb(&style.fg), rgb(&style.bg)) {
            let d = |a: u8, b: u8, w: f64| (w * (f64::from(a) - f64::from(b))).powi(2);
            let distance =
                (d(fg[0], bg[0], 0.2126) + d(fg[1], bg[1], 0.7152) + d(fg[2], bg[2], 0.0722))
                    .sqrt();
            if distance < 12.0 {
                self.f.font_low_contrast = true;
                return true;
            }
        }
        if style.fg == "invalid" || style.bg == "invalid" {
            self.f.font_invalid_color = true;
            return true;
        }
        style.size <= 1.0 || style.undisplayed || style.hidden
    }

    /// Text between tags (html_text).
    fn text(&mut self, text: &[u8]) {
        if self.is_inside(b"script") {
            self.scripts.push(text.to_vec());
            return;
        }
        if self.is_inside(b"style") {
            return;
        }
        if self.is_inside(b"a")
            && let Some(anchor) = self.anchors.last_mut()
        {
            anchor.extend_from_slice(text);
        }
        if self.is_inside(b"title")
            && let Some(title) = self.titles.last_mut()
        {
            title.extend_from_slice(text);
        }
        // Only text with something to see can be invisible. (SpamAssassin's test
        // also skips UTF-8 non-breaking spaces, but it runs on decoded characters,
        // where it never finds them.)
        let invisible = !text.iter().all(|&c| is_perl_space(c)) && self.invisible();
        if let Some(last) = self.last {
            let before = self.f.text.get(last.start..).unwrap_or_default();
            if edge_char(text, false).is_some_and(wordish)
                && edge_char(before, true).is_some_and(wordish)
            {
                self.obfuscation += 1;
            }
        }
        self.display(text, false, invisible);
    }

    /// display_text: appends a piece of text with SpamAssassin's white-space rules.
    fn display(&mut self, text: &[u8], whitespace: bool, invisible: bool) {
        let start = self.f.text.len();
        if whitespace {
            // Trailing white space before a break is dropped.
            if let Some(last) = self.last
                && !last.whitespace
                && !last.invisible
                && start > last.start
                && self.f.text.last() == Some(&b' ')
            {
                self.f.text.pop();
                self.f.visible.pop();
            }
            let start = self.f.text.len();
            self.f.text.extend_from_slice(text);
            self.f.visible.extend_from_slice(text);
            self.last = Some(Piece {
                start,
                whitespace,
                invisible,
            });
            return;
        }
        let mut collapsed = Vec::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            if is_perl_space(text[i]) {
                while i < text.len() && is_perl_space(text[i]) {
                    i += 1;
                }
                collapsed.push(b' ');
            } else if text[i..].starts_with(b"\xc2\xa0") {
                collapsed.push(b' ');
                i += 2;
            } else {
                collapsed.push(text[i]);
                i += 1;
            }
        }
        let after_break = self.last.is_some_and(|l| l.whitespace);
        let piece = match collapsed.strip_prefix(b" ") {
            Some(rest) if after_break && !invisible => rest,
            _ => &collapsed[..],
        };
        self.f.text.extend_from_slice(piece);
        if !invisible {
            self.f.visible.extend_from_slice(piece);
        }
        self.last = Some(Piece {
            start,
            whitespace,
            invisible,
        });
    }

    /// html_declaration: a DOCTYPE counts as an element.
    fn declaration(&mut self, text: &[u8]) {
        if text.len() >= 9 && text[..9].eq_ignore_ascii_case(b"<!doctype") {
            self.elements += 1;
            self.tags += 1;
            self.inside.insert(b"!doctype".to_vec(), 0);
        }
    }
}

fn get<'a>(attrs: &'a [(Vec<u8>, Vec<u8>)], key: &[u8]) -> Option<&'a [u8]> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_slice())
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
        assert_eq!(f.titles, [b"Hi"]);
        assert_eq!(f.uris, ["http://x.example/a", "http://img.example/i.gif"]);
        assert!(f.has_tag("img"));
        assert_eq!(f.image_area, 200);
        assert_eq!(f.comments, [b"<!-- hidden -->"]);
        assert_eq!(f.scripts, [b"var a;"]);
        assert_eq!(f.anchors, [b"here"]);
    }

    /// Random soup of the markup HTML::Parser and the style code react to, and
    /// of multi-byte text: nothing panics, and visible text is part of all text.
    #[test]
    fn survives_random_markup() {
        let pieces: &[&[u8]] = &[
            b"<",
            b">",
            b"</",
            b"/>",
            b"<!--",
            b"-->",
            b"--",
            b"<!",
            b"<![CDATA[",
            b"]]>",
            b"<![if x]>",
            b"<?",
            b"&",
            b"&#",
            b"&#x",
            b";",
            b"amp",
            b"\"",
            b"'",
            b"=",
            b" ",
            b"\n",
            b"p",
            b"a href",
            b"font size=",
            b"+9",
            b"color=",
            b"style=\"",
            b"color:",
            b"background:",
            b"rgb(",
            b"%,",
            b"display:none",
            b"title",
            b"script",
            b"style",
            b"textarea",
            b"plaintext",
            b"img width=",
            b"height=",
            b"50%",
            b"\xc3\xa9",
            b"\xe2\x80\x9c",
            b"\x93",
            b"\xa0",
            b"\xc2\xa0",
            b"o:p",
            b"td",
            b"tr",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            let mut doc = Vec::new();
            for _ in 0..(seed % 60) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                doc.extend_from_slice(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let f = render(&doc);
            assert!(f.visible.len() <= f.text.len());
            assert!(f.non_space_len <= f.html_length);
        }
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
            b"<![CDATA[",
            b"<![ x -- y",
            b"]]>",
            b"<!DOCTYPE -- x",
            b"<style>",
            b"<title>x",
            b"<p style='color:rgb(1%,'>x",
            b"<font color=#>x</font>",
            b"<span style=\"background: (\">x",
        ] {
            render(input);
        }
        // Styles left open are closed without searching the stack each time.
        let deep = [b"<span>".repeat(20_000), b"<td>x".repeat(20_000)].concat();
        assert_eq!(render(&deep).text.len(), 2 * 20_000);
    }

    #[test]
    fn tokenizes_as_html_parser() {
        // Unterminated markup at the end: a comment ends at the first `>`, and a
        // tag with an unclosed quote swallows the rest as a comment.
        let f = render(b"<p>x<!--unterminated <b>bold</b> end");
        assert_eq!(f.comments, [&b"<!--unterminated <b>"[..]]);
        assert_eq!(f.inside.get(&b"b"[..]), Some(&0));
        let f = render(b"<a href='x>y</a> tail");
        assert_eq!(f.comments, [&b"<a href='x>y</a> tail"[..]]);
        assert!(!f.has_tag("a"));
        // Word's conditional markup and `</ x>` are comments; CDATA is text.
        let f = render(b"<![if !supportLists]>x<![endif]></ x><![CDATA[a<b>]]>");
        assert_eq!(f.comments.len(), 3);
        assert_eq!(f.text, b"xa<b>");
        // Entities: `;` optional, prefixes in text, numeric as UTF-8.
        assert_eq!(
            render(b"x &amp &copy2 &#65&#x42; &#0; &foo;").text,
            "x & \u{a9}2 AB &#0; &foo;".as_bytes()
        );
    }

    #[test]
    fn counts_tags_and_balance() {
        let f = render(b"<!DOCTYPE html><html><body><center><foo>a</b></b></center></html>");
        // doctype, html, body, center, foo, </b>, </b>, </center>, </html>
        assert_eq!(f.value("closed_extra_ratio"), Some(2.0 / 9.0));
        assert_eq!(f.value("bad_tag_ratio"), Some(1.0 / 9.0));
        // Seen for the first time: html, body, center, foo, b; foo is no element.
        assert_eq!(f.value("non_element_ratio"), Some(1.0 / 5.0));
        assert_eq!(f.inside.get(&b"body"[..]), Some(&1));
        assert_eq!(f.inside.get(&b"center"[..]), Some(&0));
        assert_eq!(f.inside.get(&b"b"[..]), Some(&0));
        assert_eq!(f.value("obfuscation_ratio"), None);
        let f = render(b"<p>fr<b>ee</b> mo<i>ney</i></p>");
        assert_eq!(f.value("obfuscation_ratio"), Some(2.0 / 6.0));
        assert_eq!(f.text, b"\n\nfree money\n\n");
        assert_eq!(f.value("length"), Some(31.0));
    }

    #[test]
    fn tracks_font_sizes_and_invisible_text() {
        let f = render(b"<font size=+4>big</font><font size=1>tiny</font>");
        assert_eq!(f.max_size, 7.0);
        assert_eq!(f.min_size, 1.0);
        assert_eq!(f.text, b"bigtiny");
        assert_eq!(f.visible, b"big");
        let f = render(b"<body text=white>x<span style='color: #fffffe'>y</span></body>");
        assert!(f.test("font_low_contrast"));
        let f = render(b"<font color=#0000ff>a</font><p style='color:red'>b</p>");
        assert!(!f.test("font_low_contrast"));
        assert!(!f.test("font_invalid_color"));
        let f = render(b"<font color=blurple>x</font>");
        assert!(f.test("font_invalid_color"));
        let f = render(b"<div style=\"display:none\">hidden</div>shown");
        assert_eq!(f.visible, b"\n\nshown");
        let f = render(b"<font face=\"Arial, Helvetica\">x</font>");
        assert!(!f.test("font_face_bad"));
        let f = render(b"<font face=\"@#$%\">x</font>");
        assert!(f.test("font_face_bad"));
    }

    #[test]
    fn images_and_anchors() {
        let f = render(b"<a href=x><img src=a width=50% height=10></a><img width=x height=3>");
        assert_eq!(f.image_area, 400 * 10 + 200 * 3);
        assert_eq!(f.anchors, [b"<img>\n"]);
        assert!(!f.test("embeds"));
        assert!(render(b"<embed src=x>").test("embeds"));
        assert!(render(b"<form action='MAILTO:x@y'>").test("form_action_mailto"));
    }
}
