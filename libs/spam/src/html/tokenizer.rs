//! HTML::Parser 3.8x's tokenizer, as SpamAssassin drives it: one chunk, then the
//! end of the document. Literal-mode elements (script, style, title, ...), marked
//! sections, declarations and its recovery of markup left open at the end are
//! followed, so that SpamAssassin's handlers see the same events.

use std::borrow::Cow;

use super::{Renderer, entities, is_perl_space};

// HTML::Parser's character classes (its hctype.h).
fn is_space(c: u8) -> bool {
    is_perl_space(c)
}

fn not_space_gt(c: u8) -> bool {
    !is_space(c) && c != b'>'
}

fn name_first(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'.' | b'-')
}

/// Elements HTML::Parser reads as text up to their end tag; whether entities in
/// that text are left as they are (CDATA).
const LITERAL: &[(&[u8], bool)] = &[
    (b"script", true),
    (b"style", true),
    (b"xmp", true),
    (b"iframe", true),
    (b"plaintext", true),
    (b"title", false),
    (b"textarea", false),
];

/// Kinds of marked section (`<![CDATA[ ... ]]>`), in HTML::Parser's precedence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Marked {
    #[default]
    None,
    Include,
    Rcdata,
    Cdata,
    Ignore,
}

type Attrs = Vec<(Vec<u8>, Vec<u8>)>;

enum Event<'a> {
    Start(&'a [u8], Attrs),
    End(&'a [u8]),
    Text(&'a [u8]),
    Comment(&'a [u8]),
    Declaration(&'a [u8]),
    /// Markup that produces no event (marked section delimiters, `<?...>`).
    Other,
}

/// HTML::Parser's state, with its defaults as SpamAssassin sets them (marked
/// sections on; strict comments, strict names and XML mode off).
#[derive(Default)]
pub(super) struct Tokenizer {
    literal: Option<&'static [u8]>,
    is_cdata: bool,
    /// Set at the end of the document: comments then end at the first `>`.
    lone_gt_ends_comment: bool,
    /// The strongest kind of each open marked section.
    marked: Vec<Marked>,
    ms: Marked,
    pending_end_tag: Option<&'static [u8]>,
}

impl Tokenizer {
    /// Parses a whole document as SpamAssassin does: one chunk, its closing of an
    /// unterminated `<style>` or `<script>` (its bug 7437), then end of document.
    pub(super) fn run(&mut self, buf: &[u8], r: &mut Renderer) {
        let mut s = self.parse_buf(buf, 0, r);
        if let Some(lit) = self.literal
            && (lit == b"style" || lit == b"script")
            && r.is_inside(lit)
        {
            if s < buf.len() {
                self.report(Event::Text(&buf[s..]), r);
            }
            self.report(Event::End(lit), r);
            self.literal = None;
            self.is_cdata = false;
            s = buf.len();
        }
        self.eof(buf, s, r);
    }

    fn report(&mut self, event: Event, r: &mut Renderer) {
        if !matches!(event, Event::Text(_) | Event::Comment(_))
            && let Some(tag) = self.pending_end_tag.take()
        {
            self.report(Event::End(tag), r);
        }
        if self.ms == Marked::Ignore {
            return;
        }
        match event {
            Event::Start(name, attrs) => r.tag(name, &attrs, true),
            Event::End(name) => r.tag(name, &[], false),
            Event::Text(text) => {
                if self.is_cdata {
                    r.text(text);
                } else {
                    r.text(&decode_entities(text, true));
                }
            }
            Event::Comment(text) => r.comments.push(text.to_vec()),
            Event::Declaration(text) => r.declaration(text),
            Event::Other => {}
        }
    }

    fn update_marked(&mut self) {
        self.ms = self.marked.iter().copied().max().unwrap_or_default();
        self.is_cdata = self.ms == Marked::Cdata;
    }

    /// HTML::Parser's parse_buf: reports what `buf[start..]` holds and returns where
    /// it stopped, which is before the end when the rest needs more input to be
    /// understood (an unterminated tag or comment, a last word).
    fn parse_buf(&mut self, buf: &[u8], start: usize, r: &mut Renderer) -> usize {
        let end = buf.len();
        // HTML::Parser relies on the NUL after its buffer.
        let at = |i: usize| buf.get(i).copied().unwrap_or(0);
        let (mut s, mut t) = (start, start);
        loop {
            while let Some(lit) = self.literal {
                while s < end && buf[s] != b'<' {
                    s += 1;
                }
                if s == end {
                    return t;
                }
                let end_text = s;
                s += 1;
                if at(s) == b'/' {
                    s += 1;
                    let matched = lit.iter().all(|&l| {
                        let hit = at(s).to_ascii_lowercase() == l;
                        if hit {
                            s += 1;
                        }
                        hit
                    });
                    if matched && lit != b"plaintext" {
                        let name_end = s;
                        while is_space(at(s)) {
                            s += 1;
                        }
                        if at(s) == b'>' {
                            s += 1;
                            if t != end_text {
                                self.report(Event::Text(&buf[t..end_text]), r);
                            }
                            self.report(Event::End(&buf[end_text + 2..name_end]), r);
                            self.literal = None;
                            self.is_cdata = false;
                            t = s;
                        }
                    }
                }
            }
            while matches!(self.ms, Marked::Cdata | Marked::Rcdata) {
                while s < end && buf[s] != b']' {
                    s += 1;
                }
                if at(s) == b']' {
                    let end_text = s;
                    s += 1;
                    if at(s) == b']' && at(s + 1) == b'>' {
                        s += 2;
                        if t != end_text {
                            self.report(Event::Text(&buf[t..end_text]), r);
                        }
                        self.report(Event::Other, r);
                        t = s;
                        self.marked.pop();
                        self.update_marked();
                        continue;
                    }
                }
                if s >= end {
                    return t;
                }
            }
            while s < end && buf[s] != b'<' {
                if self.ms != Marked::None && buf[s] == b']' {
                    let end_text = s;
                    s += 1;
                    if at(s) == b']' {
                        s += 1;
                        if at(s) == b'>' {
                            s += 1;
                            self.report(Event::Text(&buf[t..end_text]), r);
                            self.report(Event::Other, r);
                            t = s;
                            self.marked.pop();
                            self.update_marked();
                            continue;
                        }
                    }
                }
                s += 1;
            }
            s = s.min(end);
            if s != t {
                if s < end {
                    self.report(Event::Text(&buf[t..s]), r);
                    t = s;
                } else {
                    // Trailing white space, or a last word that might continue, waits.
                    let mut k = s;
                    if is_space(buf[k - 1]) {
                        while k > t && is_space(buf[k - 1]) {
                            k -= 1;
                        }
                    } else {
                        while k > t && !is_space(buf[k - 1]) {
                            k -= 1;
                        }
                        while k > t && is_space(buf[k - 1]) {
                            k -= 1;
                        }
                    }
                    if k != t {
                        self.report(Event::Text(&buf[t..k]), r);
                    }
                    return k;
                }
            }
            if end - s < 3 {
                return s;
            }
            s += 1;
            let c = at(s);
            let new_pos = if name_first(c) {
                self.parse_start(buf, t, r)
            } else if c == b'/' {
                self.parse_end(buf, t, r)
            } else if c == b'!' {
                self.parse_decl(buf, t, r)
            } else if c == b'?' {
                self.parse_process(buf, t, r)
            } else {
                None
            };
            match new_pos {
                Some(p) if p == t => return t,
                Some(p) => {
                    t = p;
                    s = p;
                }
                // Not markup: the `<` is text.
                None => {}
            }
        }
    }

    /// The end of the document: what is left is recovered as HTML::Parser's eof
    /// does, then the document ends.
    fn eof(&mut self, buf: &[u8], mut s: usize, r: &mut Renderer) {
        let end = buf.len();
        while s < end {
            if let Some(lit) = self.literal {
                match lit {
                    b"plaintext" | b"xmp" | b"iframe" | b"textarea" => break,
                    b"script" | b"style" => self.report(Event::End(lit), r),
                    _ => self.pending_end_tag = Some(lit),
                }
                self.literal = None;
                s = self.parse_buf(buf, s, r);
                continue;
            }
            if !self.lone_gt_ends_comment && buf[s] == b'<' {
                self.lone_gt_ends_comment = true;
                s = self.parse_buf(buf, s, r);
                continue;
            }
            if buf[s] == b'<' {
                let next = buf.get(s + 1).copied();
                if next.is_none_or(|c| name_first(c) || matches!(c, b'/' | b'!' | b'?')) {
                    self.report(Event::Comment(&buf[s..]), r);
                    s = end;
                }
            }
            break;
        }
        if s < end {
            self.report(Event::Text(&buf[s..]), r);
        }
        if let Some(tag) = self.pending_end_tag.take() {
            self.report(Event::End(tag), r);
        }
    }

    /// `<name attr=value ...>`; `Some(beg)` when the tag does not end.
    fn parse_start(&mut self, buf: &[u8], beg: usize, r: &mut Renderer) -> Option<usize> {
        let end = buf.len();
        let at = |i: usize| buf.get(i).copied().unwrap_or(0);
        let mut s = beg + 2;
        while s < end && not_space_gt(buf[s]) {
            s += 1;
        }
        let name = &buf[beg + 1..s];
        while is_space(at(s)) {
            s += 1;
        }
        if s >= end {
            return Some(beg);
        }
        let mut attrs: Attrs = Vec::new();
        while not_space_gt(at(s)) {
            let name_beg = s;
            s += 1;
            while s < end && not_space_gt(buf[s]) && buf[s] != b'=' {
                s += 1;
            }
            if s == end {
                return Some(beg);
            }
            let attr = buf[name_beg..s].to_ascii_lowercase();
            while is_space(at(s)) {
                s += 1;
            }
            if s >= end {
                return Some(beg);
            }
            let value = if buf[s] == b'=' {
                s += 1;
                while is_space(at(s)) {
                    s += 1;
                }
                if s >= end {
                    return Some(beg);
                }
                if buf[s] == b'>' {
                    push_attr(&mut attrs, attr, Vec::new());
                    break;
                }
                let raw = if buf[s] == b'"' || buf[s] == b'\'' {
                    let quote = buf[s];
                    let value_beg = s + 1;
                    s += 1;
                    while s < end && buf[s] != quote {
                        s += 1;
                    }
                    if s == end {
                        return Some(beg);
                    }
                    s += 1;
                    &buf[value_beg..s - 1]
                } else {
                    let value_beg = s;
                    while s < end && not_space_gt(buf[s]) {
                        s += 1;
                    }
                    if s == end {
                        return Some(beg);
                    }
                    &buf[value_beg..s]
                };
                while is_space(at(s)) {
                    s += 1;
                }
                if s >= end {
                    return Some(beg);
                }
                decode_entities(raw, false).into_owned()
            } else {
                // A value-less attribute has its own name as value.
                attr.clone()
            };
            push_attr(&mut attrs, attr, value);
        }
        if at(s) != b'>' {
            return None;
        }
        s += 1;
        self.report(Event::Start(name, attrs), r);
        if let Some(&(lit, cdata)) = LITERAL.iter().find(|(l, _)| name.eq_ignore_ascii_case(l)) {
            self.literal = Some(lit);
            self.is_cdata = cdata;
        }
        Some(s)
    }

    /// `</name>`; a `</` not followed by a name is a comment up to the next `>`.
    fn parse_end(&mut self, buf: &[u8], beg: usize, r: &mut Renderer) -> Option<usize> {
        let end = buf.len();
        let mut s = beg + 2;
        if s < end && not_space_gt(buf[s]) {
            let name_beg = s;
            s += 1;
            while s < end && not_space_gt(buf[s]) {
                s += 1;
            }
            let name_end = s;
            s = skip_until_gt(buf, s);
            if s >= end {
                return Some(beg);
            }
            self.report(Event::End(&buf[name_beg..name_end]), r);
            return Some(s + 1);
        }
        s = skip_until_gt(buf, s);
        if s >= end {
            return Some(beg);
        }
        self.report(Event::Comment(&buf[beg..s + 1]), r);
        Some(s + 1)
    }

    /// `<!...>`: comments, marked sections, DOCTYPE and ENTITY declarations; other
    /// `<!...>` markup is a comment up to the next `>`.
    fn parse_decl(&mut self, buf: &[u8], beg: usize, r: &mut Renderer) -> Option<usize> {
        let end = buf.len();
        let at = |i: usize| buf.get(i).copied().unwrap_or(0);
        let mut s = beg + 2;
        'fail: {
            match at(s) {
                b'-' => {
                    s += 1;
                    if s == end {
                        return Some(beg);
                    }
                    if buf[s] != b'-' {
                        break 'fail;
                    }
                    s += 1;
                    return Some(self.parse_comment(buf, beg, s, r).unwrap_or(beg));
                }
                b'[' => match self.parse_marked_section(buf, beg, r) {
                    Some(p) => return Some(p),
                    None => break 'fail,
                },
                b'>' => {
                    self.report(Event::Comment(&buf[beg..s + 1]), r);
                    return Some(s + 1);
                }
                c if c.is_ascii_alphabetic() => {
                    let id_beg = s;
                    s += 1;
                    while s < end && name_char(buf[s]) {
                        s += 1;
                    }
                    if s == end {
                        return Some(beg);
                    }
                    let id = &buf[id_beg..s];
                    if !id.eq_ignore_ascii_case(b"doctype") && !id.eq_ignore_ascii_case(b"entity") {
                        break 'fail;
                    }
                    loop {
                        while s < end && is_space(buf[s]) {
                            s += 1;
                        }
                        if s == end {
                            return Some(beg);
                        }
                        match buf[s] {
                            b'"' | b'\'' => {
                                let quote = buf[s];
                                s += 1;
                                while s < end && buf[s] != quote {
                                    s += 1;
                                }
                                if s == end {
                                    return Some(beg);
                                }
                                s += 1;
                            }
                            b'-' => {
                                s += 1;
                                if s == end {
                                    return Some(beg);
                                }
                                if buf[s] != b'-' {
                                    break 'fail;
                                }
                                s += 1;
                                loop {
                                    while s < end && buf[s] != b'-' {
                                        s += 1;
                                    }
                                    if s == end {
                                        return Some(beg);
                                    }
                                    s += 1;
                                    if s == end {
                                        return Some(beg);
                                    }
                                    if buf[s] == b'-' {
                                        s += 1;
                                        break;
                                    }
                                }
                            }
                            b'>' => break,
                            _ => {
                                s += 1;
                                while s < end && not_space_gt(buf[s]) {
                                    s += 1;
                                }
                                if s == end {
                                    return Some(beg);
                                }
                            }
                        }
                    }
                    s += 1;
                    self.report(Event::Declaration(&buf[beg..s]), r);
                    return Some(s);
                }
                _ => {}
            }
        }
        while s < end && buf[s] != b'>' {
            s += 1;
        }
        if s >= end {
            return Some(beg);
        }
        self.report(Event::Comment(&buf[beg..s + 1]), r);
        Some(s + 1)
    }

    /// A comment's body from `s` (after `<!--`); `None` when it does not end yet.
    fn parse_comment(
        &mut self,
        buf: &[u8],
        beg: usize,
        mut s: usize,
        r: &mut Renderer,
    ) -> Option<usize> {
        let end = buf.len();
        let at = |i: usize| buf.get(i).copied().unwrap_or(0);
        if self.lone_gt_ends_comment {
            while s < end && buf[s] != b'>' {
                s += 1;
            }
            if s >= end {
                return None;
            }
            self.report(Event::Comment(&buf[beg..s + 1]), r);
            return Some(s + 1);
        }
        // Ends at `--`, optional white space, `>`.
        loop {
            while s < end && buf[s] != b'-' {
                s += 1;
            }
            if s >= end {
                return None;
            }
            let dash = s;
            s += 1;
            if at(s) == b'-' {
                s += 1;
                while is_space(at(s)) {
                    s += 1;
                }
                if at(s) == b'>' {
                    self.report(Event::Comment(&buf[beg..s + 1]), r);
                    return Some(s + 1);
                }
            }
            if s >= end {
                return None;
            }
            s = dash + 1;
        }
    }

    /// `<![keywords[`; `None` when it is not one.
    fn parse_marked_section(&mut self, buf: &[u8], beg: usize, r: &mut Renderer) -> Option<usize> {
        let end = buf.len();
        let at = |i: usize| buf.get(i).copied().unwrap_or(0);
        let mut s = beg + 3;
        let mut kind: Option<Marked> = None;
        loop {
            while is_space(at(s)) {
                s += 1;
            }
            while name_first(at(s)) {
                let name_beg = s;
                s += 1;
                while name_char(at(s)) {
                    s += 1;
                }
                let name = buf[name_beg..s].to_ascii_lowercase();
                while is_space(at(s)) {
                    s += 1;
                }
                if s >= end {
                    return Some(beg);
                }
                let k = match name.as_slice() {
                    b"include" => Marked::Include,
                    b"rcdata" => Marked::Rcdata,
                    b"cdata" => Marked::Cdata,
                    b"ignore" => Marked::Ignore,
                    _ => Marked::None,
                };
                kind = Some(kind.map_or(k, |old| old.max(k)));
            }
            if at(s) != b'-' {
                break;
            }
            s += 1;
            if at(s) != b'-' {
                return None;
            }
            s += 1;
            loop {
                while s < end && buf[s] != b'-' {
                    s += 1;
                }
                if s >= end {
                    return Some(beg);
                }
                s += 1;
                if at(s) == b'-' {
                    s += 1;
                    break;
                }
            }
        }
        if at(s) != b'[' {
            return None;
        }
        s += 1;
        self.marked.push(kind.unwrap_or(Marked::Include));
        self.update_marked();
        self.report(Event::Other, r);
        Some(s)
    }

    /// `<?...>`, which SpamAssassin ignores.
    fn parse_process(&mut self, buf: &[u8], beg: usize, r: &mut Renderer) -> Option<usize> {
        match buf[beg..].iter().position(|&c| c == b'>') {
            Some(gt) => {
                self.report(Event::Other, r);
                Some(beg + gt + 1)
            }
            None => Some(beg),
        }
    }
}

/// HTML::Parser keeps the first of repeated attributes.
fn push_attr(attrs: &mut Attrs, name: Vec<u8>, value: Vec<u8>) {
    if !attrs.iter().any(|(n, _)| *n == name) {
        attrs.push((name, value));
    }
}

/// The next `>` outside quotes (as MSIE reads an end tag), or the end.
fn skip_until_gt(buf: &[u8], mut s: usize) -> usize {
    let mut quote = 0u8;
    let mut prev = b' ';
    while s < buf.len() {
        let c = buf[s];
        if quote == 0 && c == b'>' {
            return s;
        }
        if c == b'"' || c == b'\'' {
            if c == quote {
                quote = 0;
            } else if quote == 0 && (prev == b' ' || prev == b'=') {
                quote = c;
            }
        }
        prev = c;
        s += 1;
    }
    buf.len()
}

/// HTML::Parser's decode_entities: `&#NNN;`, `&#xHH;` and named entities, the
/// `;` optional where HTML 4 allows it; in text (`prefix`) also the longest
/// entity name a word starts with (`&copy2` is `©2`). Characters come out as UTF-8.
fn decode_entities(text: &[u8], prefix: bool) -> Cow<'_, [u8]> {
    if !text.contains(&b'&') {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        i += 1;
        if c != b'&' {
            out.push(c);
            continue;
        }
        let (code, next) = if text.get(i) == Some(&b'#') {
            numeric_entity(text, i + 1)
        } else {
            named_entity(text, i, prefix)
        };
        match code {
            Some(code) => {
                let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                i = if text.get(next) == Some(&b';') {
                    next + 1
                } else {
                    next
                };
            }
            None => out.push(b'&'),
        }
    }
    Cow::Owned(out)
}

fn numeric_entity(text: &[u8], mut i: usize) -> (Option<u32>, usize) {
    let hex = matches!(text.get(i), Some(b'x' | b'X'));
    if hex {
        i += 1;
    }
    let radix = if hex { 16 } else { 10 };
    let mut num: u32 = 0;
    let mut ok = false;
    while let Some(d) = text.get(i).and_then(|&c| (c as char).to_digit(radix)) {
        num = num * radix + d;
        if num > 0x10ffff {
            ok = false;
            break;
        }
        ok = true;
        i += 1;
    }
    if !ok || num == 0 || num == 0xfffe || num == 0xffff {
        return (None, i);
    }
    // Surrogates and non-characters become U+FFFD.
    let bad = (0xd800..0xe000).contains(&num)
        || (0xfdd0..=0xfdef).contains(&num)
        || num & 0xfffe == 0xfffe;
    (Some(if bad { 0xfffd } else { num }), i)
}

fn named_entity(text: &[u8], start: usize, prefix: bool) -> (Option<u32>, usize) {
    let len = text[start..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    let end = start + len;
    if len == 0 {
        return (None, start);
    }
    let semicolon = text.get(end) == Some(&b';');
    let lookup = |name: &[u8], with_semicolon: bool| {
        entities::ENTITIES
            .binary_search_by(|(n, _, _)| n.cmp(&name))
            .ok()
            .map(|k| entities::ENTITIES[k])
            .filter(|(_, _, needs)| !needs || with_semicolon)
            .map(|(_, code, _)| code)
    };
    if let Some(code) = lookup(&text[start..end], semicolon) {
        return (Some(code), end);
    }
    if prefix {
        for cut in (start + 1..end).rev() {
            if let Some(code) = lookup(&text[start..cut], false) {
                return (Some(code), cut);
            }
        }
    }
    (None, start)
}
