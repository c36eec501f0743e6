//! The message as milters see and change it: its header fields and body,
//! parsed from the CRLF text smtpd received, edited by SMFIR_ADDHEADER,
//! INSHEADER, CHGHEADER and REPLBODY, and written back.

/// One header field: its name and everything after the colon, continuation
/// lines included (CRLF between them, none at the end). The value stays
/// bytes: a header in 8-bit text goes out as it came in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

impl Header {
    /// The value as milters get it: without the one space after the colon
    /// (there is no SMFIP_HDR_LEADSPC), with LF between folded lines, as
    /// Sendmail and Postfix send it.
    pub fn milter_value(&self) -> Vec<u8> {
        let v = self.value.strip_prefix(b" ").unwrap_or(&self.value);
        let mut out = Vec::with_capacity(v.len());
        let mut i = 0;
        while i < v.len() {
            if v[i] == b'\r' && v.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            out.push(v[i]);
            i += 1;
        }
        out
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<Header>,
    /// Everything after the empty line (CRLF line ends).
    pub body: Vec<u8>,
    /// The header block ended with an empty line (not a message that is
    /// all header).
    separator: bool,
}

fn header_name(line: &[u8]) -> Option<usize> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    (!name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() && b != b':')).then_some(colon)
}

impl Message {
    pub fn parse(content: &[u8]) -> Message {
        let mut headers: Vec<Header> = Vec::new();
        let mut pos = 0;
        let mut separator = false;
        while pos < content.len() {
            let end = memchr(b'\n', &content[pos..]).map_or(content.len(), |i| pos + i + 1);
            let raw = &content[pos..end];
            let line = raw
                .strip_suffix(b"\r\n")
                .or_else(|| raw.strip_suffix(b"\n"))
                .unwrap_or(raw);
            if line.is_empty() {
                separator = true;
                pos = end;
                break;
            }
            if matches!(line[0], b' ' | b'\t') {
                if let Some(last) = headers.last_mut() {
                    last.value.extend_from_slice(b"\r\n");
                    last.value.extend_from_slice(line);
                    pos = end;
                    continue;
                }
                break;
            }
            match header_name(line) {
                Some(colon) => headers.push(Header {
                    name: String::from_utf8_lossy(&line[..colon]).into_owned(),
                    value: line[colon + 1..].to_vec(),
                }),
                None => break,
            }
            pos = end;
        }
        Message {
            headers,
            body: content[pos..].to_vec(),
            separator,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64 * self.headers.len() + 2);
        for h in &self.headers {
            out.extend_from_slice(h.name.as_bytes());
            out.push(b':');
            out.extend_from_slice(&h.value);
            out.extend_from_slice(b"\r\n");
        }
        if self.separator || !self.body.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// The body in CRLF lines, as milters get it.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn add_header(&mut self, name: &str, value: &str) {
        self.headers.push(make_header(name, value));
    }

    /// Inserts at `index` (0 is the top), or at the end when past it.
    pub fn insert_header(&mut self, index: usize, name: &str, value: &str) {
        let at = index.min(self.headers.len());
        self.headers.insert(at, make_header(name, value));
    }

    /// The `index`th (from 1) field called `name` changes; an empty value
    /// deletes it; a field that is not there is added (Sendmail's rule,
    /// which Postfix follows).
    pub fn change_header(&mut self, index: u32, name: &str, value: &str) {
        let found = self
            .headers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.name.eq_ignore_ascii_case(name))
            .nth(index.max(1) as usize - 1)
            .map(|(i, _)| i);
        match (found, value.is_empty()) {
            (Some(i), true) => {
                self.headers.remove(i);
            }
            (Some(i), false) => {
                let name = self.headers[i].name.clone();
                self.headers[i] = make_header(&name, value);
            }
            (None, true) => {}
            (None, false) => self.add_header(name, value),
        }
    }

    /// The `index`th (from 1) field called `old` becomes `name: value`
    /// in its place (added when it is not there).
    pub fn replace_header(&mut self, index: u32, old: &str, name: &str, value: &str) {
        let found = self
            .headers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.name.eq_ignore_ascii_case(old))
            .nth(index.max(1) as usize - 1)
            .map(|(i, _)| i);
        match found {
            Some(i) => self.headers[i] = make_header(name, value),
            None => self.add_header(name, value),
        }
    }

    pub fn replace_body(&mut self, body: &[u8]) {
        self.body = crlf(body);
        self.separator = true;
    }
}

/// A header from a milter: a name it may send only printable, and a value
/// whose line breaks become CRLF followed by white space, so no value can
/// start a header field or the body of its own.
fn make_header(name: &str, value: &str) -> Header {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != ':' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let mut out = String::new();
    if !value.starts_with([' ', '\t']) {
        out.push(' ');
    }
    let mut lines = value.split('\n').map(|l| l.trim_end_matches('\r'));
    if let Some(first) = lines.next() {
        out.push_str(first);
    }
    for line in lines {
        out.push_str("\r\n");
        if !line.starts_with([' ', '\t']) {
            out.push('\t');
        }
        out.push_str(line);
    }
    let out = out.replace(
        |c: char| c.is_control() && c != '\t' && c != '\r' && c != '\n',
        "?",
    );
    Header {
        name,
        value: out.into_bytes(),
    }
}

/// Bare LFs (and bare CRs) become CRLF.
pub fn crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 32);
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\r' if text.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"From: a@example.org\r\nSubject: hello\r\n  world\r\nX-A: 1\r\n\r\nbody\r\n";

    #[test]
    fn parses_and_writes_back_unchanged() {
        let m = Message::parse(MSG);
        assert_eq!(m.headers.len(), 3);
        assert_eq!(m.headers[1].milter_value(), b"hello\n  world");
        // 8-bit header text survives an edit elsewhere.
        let mut latin = Message::parse(b"Subject: caf\xe9\r\n\r\nb\r\n");
        latin.add_header("X-A", "1");
        assert_eq!(latin.to_bytes(), b"Subject: caf\xe9\r\nX-A: 1\r\n\r\nb\r\n");
        assert_eq!(m.body, b"body\r\n");
        assert_eq!(m.to_bytes(), MSG);
        let headless = Message::parse(b"just text\r\n");
        assert!(headless.headers.is_empty());
        assert_eq!(headless.to_bytes(), b"\r\njust text\r\n");
    }

    #[test]
    fn edits_as_sendmail_defines_them() {
        let mut m = Message::parse(MSG);
        m.add_header("X-Added", "yes\nsecond line");
        m.insert_header(0, "X-Top", "1");
        m.change_header(1, "x-a", "2");
        m.change_header(1, "Subject", "");
        m.change_header(3, "X-Missing", "new");
        m.replace_body(b"new\nbody\n");
        assert_eq!(
            String::from_utf8(m.to_bytes()).unwrap(),
            "X-Top: 1\r\nFrom: a@example.org\r\nX-A: 2\r\nX-Added: yes\r\n\tsecond line\r\n\
             X-Missing: new\r\n\r\nnew\r\nbody\r\n"
        );
    }

    #[test]
    fn a_milter_cannot_smuggle_a_header_or_body() {
        let mut m = Message::parse(MSG);
        m.add_header("Bad:\r\nName", "v\r\n\r\nInjected: yes");
        let text = String::from_utf8(m.to_bytes()).unwrap();
        assert!(
            text.contains("Bad???Name: v\r\n\t\r\n\tInjected: yes\r\n"),
            "{text}"
        );
        assert_eq!(Message::parse(text.as_bytes()).headers.len(), 4);
    }
}
