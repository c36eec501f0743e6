//! header_checks, mime_header_checks, nested_header_checks and body_checks
//! with Postfix's semantics (header_checks(5)).
//!
//! Each logical header (with its continuation lines, unfolded for matching)
//! goes to exactly one table, by where it stands in the MIME structure as
//! mailgate-mime reads it (the reading the banned check and the spam
//! engine share), with Postfix's classes: headers of the message itself to header_checks, MIME
//! headers (Content-*, MIME-Version) of the message and every header of a
//! multipart body part to mime_header_checks, non-MIME headers of an
//! attached message/rfc822 to nested_header_checks. Every other line but
//! delimiters and section ends is a body line for body_checks, as it is
//! on the wire (base64 not decoded).

use std::ops::Range;

use mailgate_config::Table;
use mailgate_ipc::envelope::SmtpReply;
use mailgate_mime::{Limits, Mime, Role, Source};

#[derive(Default)]
pub struct Checks {
    pub header: Vec<Table>,
    pub mime: Vec<Table>,
    pub nested: Vec<Table>,
    pub body: Vec<Table>,
}

/// What the checks decided for the message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// REJECT: refuse with this reply; nothing else matters.
    pub reject: Option<SmtpReply>,
    /// DISCARD: accept and drop, with the matched text for the log.
    pub discard: Option<String>,
    /// HOLD: queue to hold/, with the matched text for the log.
    pub hold: Option<String>,
    /// The content after IGNORE, PREPEND and REPLACE; None when unchanged.
    pub rewritten: Option<Vec<u8>>,
    /// Log lines (WARN, INFO and the decisions above), in order.
    pub log: Vec<String>,
}

/// Which table a header goes to (with its MIME headers going to
/// mime_header_checks in every class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderClass {
    /// The message's own headers: header_checks.
    Primary,
    /// A multipart body part's: mime_header_checks.
    Multipart,
    /// An attached message's: nested_header_checks.
    Nested,
}

/// What one table lookup asks for.
enum Edit {
    Keep,
    Delete,
    Prepend(String),
    Replace(String),
}

impl Checks {
    pub fn is_empty(&self) -> bool {
        self.header.is_empty()
            && self.mime.is_empty()
            && self.nested.is_empty()
            && self.body.is_empty()
    }

    pub fn apply(&self, content: &[u8]) -> Outcome {
        let mut run = Run {
            checks: self,
            outcome: Outcome::default(),
            out: Vec::with_capacity(content.len()),
            changed: false,
        };
        run.message(content);
        if run.changed && run.outcome.reject.is_none() && run.outcome.discard.is_none() {
            run.outcome.rewritten = Some(run.out);
        }
        run.outcome
    }
}

struct Run<'a> {
    checks: &'a Checks,
    outcome: Outcome,
    out: Vec<u8>,
    changed: bool,
}

/// Lines with their line ends, so unchanged lines are copied exactly.
fn lines(content: &[u8]) -> impl Iterator<Item = &[u8]> {
    content.split_inclusive(|&b| b == b'\n')
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_mime_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("content-") || name == "mime-version"
}

/// What a stretch of the message is to the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A header field (its continuation lines included) of `entity`, in
    /// mailgate-mime's numbering.
    Header { class: HeaderClass, entity: usize },
    /// A delimiter line or the empty line ending a header section:
    /// copied, checked by no table.
    Copy,
}

/// Stretches of the message that are not body lines, in order: the
/// header fields of every entity mailgate-mime finds in the message (the
/// same reading the banned check and the spam engine use), and the lines
/// that frame them. Everything between them is body. Each stretch runs to
/// the end of its last line.
pub fn layout(content: &[u8], mime: &Mime<'_>) -> Vec<(Range<usize>, Mark)> {
    // A field that ends a body part stops before the line break that
    // belongs to the delimiter after it: the checks take it with its line.
    let to_line_end = |end: usize| {
        if end == 0 || content[end - 1] == b'\n' {
            end
        } else if content[end..].starts_with(b"\r\n") {
            end + 2
        } else if content[end..].starts_with(b"\n") {
            end + 1
        } else {
            end
        }
    };
    let mut marks = Vec::new();
    for (entity, e) in mime.entities.iter().enumerate() {
        // Headers inside an encoded attached message are not in the
        // message as written: there they are body lines, as in Postfix.
        if e.source != Source::Raw {
            continue;
        }
        let class = match e.role {
            Role::Message => HeaderClass::Primary,
            Role::Part => HeaderClass::Multipart,
            Role::Attached => HeaderClass::Nested,
        };
        let mut end = e.header_span.start;
        for field in &e.headers {
            let span = field.span.start..to_line_end(field.span.end);
            end = span.end;
            marks.push((span, Mark::Header { class, entity }));
        }
        if e.header_span.end > end && content[end..e.header_span.end].trim_ascii().is_empty() {
            marks.push((end..e.header_span.end, Mark::Copy));
        }
    }
    marks.extend(mime.delimiters.iter().map(|d| (d.clone(), Mark::Copy)));
    marks.sort_by_key(|(r, _)| r.start);
    marks
}

/// The header fields each entity's section holds, as the checks see them
/// (unfolded), with the table class: cleanup's reading of the structure,
/// for differential tests with the other checks.
pub fn sections(content: &[u8]) -> Vec<(usize, HeaderClass, Vec<String>)> {
    let mime = Mime::parse(content, &Limits::default());
    let mut out: Vec<(usize, HeaderClass, Vec<String>)> = Vec::new();
    for (range, mark) in layout(content, &mime) {
        if let Mark::Header { class, entity } = mark {
            let text = unfold(&content[range]);
            match out.iter_mut().find(|(e, _, _)| *e == entity) {
                Some(section) => section.2.push(text),
                None => out.push((entity, class, vec![text])),
            }
        }
    }
    out
}

/// A header as matched: line ends removed, continuation white space kept.
fn unfold(raw: &[u8]) -> String {
    lines(raw)
        .map(|l| String::from_utf8_lossy(strip_eol(l)))
        .collect()
}

impl Run<'_> {
    fn stopped(&self) -> bool {
        self.outcome.reject.is_some() || self.outcome.discard.is_some()
    }

    fn message(&mut self, content: &[u8]) {
        let mime = Mime::parse(content, &Limits::default());
        let mut pos = 0;
        for (range, mark) in layout(content, &mime) {
            // Stretches never overlap; one that would is body.
            if range.start < pos {
                continue;
            }
            self.body(&content[pos..range.start]);
            if self.stopped() {
                return;
            }
            let raw = &content[range.clone()];
            match mark {
                Mark::Header { class, .. } => self.header(class, raw),
                Mark::Copy => self.out.extend_from_slice(raw),
            }
            pos = range.end;
        }
        self.body(&content[pos..]);
    }

    fn body(&mut self, text: &[u8]) {
        for line in lines(text) {
            if self.stopped() {
                return;
            }
            let text = String::from_utf8_lossy(strip_eol(line));
            let edit = self.lookup(&self.checks.body, &text, "body");
            self.emit(edit, line);
        }
    }

    fn header(&mut self, class: HeaderClass, raw: &[u8]) {
        // Matching sees the header unfolded: line ends removed, the
        // continuation's leading white space kept.
        let unfolded = unfold(raw);
        let name = unfolded.split(':').next().unwrap_or("").trim().to_string();
        let (tables, label) = match class {
            HeaderClass::Primary if !is_mime_header(&name) => (&self.checks.header, "header"),
            HeaderClass::Nested if !is_mime_header(&name) => (&self.checks.nested, "header"),
            _ => (&self.checks.mime, "header"),
        };
        let edit = self.lookup(tables, &unfolded, label);
        self.emit(edit, raw);
    }

    fn emit(&mut self, edit: Edit, original: &[u8]) {
        match edit {
            Edit::Keep => self.out.extend_from_slice(original),
            Edit::Delete => self.changed = true,
            Edit::Prepend(text) => {
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(b"\r\n");
                self.out.extend_from_slice(original);
                self.changed = true;
            }
            Edit::Replace(text) => {
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(b"\r\n");
                self.changed = true;
            }
        }
    }

    /// Looks `text` up in the tables and carries out the action found.
    fn lookup(&mut self, tables: &[Table], text: &str, label: &str) -> Edit {
        let Some(result) = tables.iter().find_map(|t| t.lookup(text)) else {
            return Edit::Keep;
        };
        let result = result.trim();
        let (action, arg) = match result.split_once(char::is_whitespace) {
            Some((a, rest)) => (a, rest.trim()),
            None => (result, ""),
        };
        // Long lines make long log lines; Postfix cuts them too.
        let shown: String = text.chars().take(200).collect();
        let what = format!("{label} {shown}");
        match action.to_ascii_uppercase().as_str() {
            "REJECT" => {
                let (reply, warning) = reject_reply(arg);
                if let Some(warning) = warning {
                    self.outcome.log.push(format!("warning: {warning}"));
                }
                self.outcome
                    .log
                    .push(format!("reject: {what}: {} {}", reply.status, reply.text));
                self.outcome.reject = Some(reply);
                Edit::Keep
            }
            "DISCARD" => {
                let text = if arg.is_empty() { "" } else { arg };
                self.outcome.log.push(format!("discard: {what}: {text}"));
                self.outcome.discard = Some(what);
                Edit::Keep
            }
            "HOLD" => {
                self.outcome.log.push(format!("hold: {what}: {arg}"));
                self.outcome.hold.get_or_insert(what);
                Edit::Keep
            }
            "WARN" => {
                self.outcome.log.push(format!("warning: {what}: {arg}"));
                Edit::Keep
            }
            "INFO" => {
                self.outcome.log.push(format!("info: {what}: {arg}"));
                Edit::Keep
            }
            "IGNORE" => Edit::Delete,
            "PREPEND" if !arg.is_empty() => Edit::Prepend(arg.to_string()),
            "REPLACE" if !arg.is_empty() => Edit::Replace(arg.to_string()),
            "DUNNO" | "OK" => Edit::Keep,
            _ => {
                self.outcome.log.push(format!(
                    "warning: unsupported action \"{result}\" for {what}; ignored"
                ));
                Edit::Keep
            }
        }
    }
}

/// `REJECT [optional text...]`, as Postfix's cleanup answers it: 550
/// 5.7.1, or the text's own code (4.x.x defers with 451).
fn reject_reply(text: &str) -> (SmtpReply, Option<String>) {
    let r = mailgate_config::content_reject::reject_reply(text);
    (
        SmtpReply {
            code: r.code,
            status: r.status,
            text: r.text,
        },
        r.warning,
    )
}

/// Puts `tag` in front of the message's own Subject (spam_subject_tag),
/// or adds a Subject holding only the tag.
pub fn tag_subject(content: &[u8], tag: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + tag.len() + 16);
    let mut tagged = false;
    let mut in_header = true;
    for line in lines(content) {
        let bare = strip_eol(line);
        if in_header && bare.is_empty() {
            in_header = false;
            if !tagged {
                out.extend_from_slice(format!("Subject: {tag}\r\n").as_bytes());
                tagged = true;
            }
        }
        if in_header && !tagged && bare.len() >= 8 && bare[..8].eq_ignore_ascii_case(b"subject:") {
            out.extend_from_slice(&line[..8]);
            out.extend_from_slice(b" ");
            out.extend_from_slice(tag.as_bytes());
            let rest = &line[8..];
            if !rest.starts_with(b" ") && !rest.starts_with(b"\t") {
                out.push(b' ');
            }
            out.extend_from_slice(rest);
            tagged = true;
            continue;
        }
        out.extend_from_slice(line);
    }
    if !tagged {
        // A message that is all header: the tag goes at its end.
        out.extend_from_slice(format!("Subject: {tag}\r\n").as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dir: &std::path::Path, name: &str, text: &str) -> Vec<Table> {
        std::fs::write(dir.join(name), text).unwrap();
        vec![Table::open(&format!("regexp:{name}"), dir).unwrap()]
    }

    const SEED_HEADERS: &str = "/^Subject: .*retire early/ REJECT\n\
        /^Subject: Got Debt? [7xkeh].*/ REJECT\n\
        /^From: \"Martina & Laura\" <blackgirls@libero.it>/ REJECT\n\
        /.+name=.+\\.(hta|com|pif|vbs|vbe|js|jse|exe|bat|cmd|vxd|scr|shm|eml|hlp|spl|swf|shb|vba|dll|reg|ocx|wsf|wsh|lnkr|cpl)\"?$/ REJECT\n\
        /^X-Warn-Me:/ WARN watch this\n\
        /^X-Hold-Me:/ HOLD\n\
        /^X-Drop-Me:/ DISCARD\n\
        /^X-Strip-Me:/ IGNORE\n\
        /^X-Old: (.*)/ REPLACE X-New: $1\n\
        /^X-Tagged:/ PREPEND X-Note: seen\n\
        /^Subject: custom/ REJECT 5.7.0 we do not want this\n\
        /^Subject: later/ REJECT 4.7.1 not now\n";

    const SEED_BODY: &str = "/^TV[nopqr]....[AB]..A.A....*AAAA...*AAAA/ REJECT\n\
        /^M35[GHIJK].`..`..*````/ REJECT\n\
        /^UEsDBAoAAAAAA/ REJECT\n\
        /^remove this line$/ IGNORE\n";

    fn checks(dir: &std::path::Path) -> Checks {
        let header = table(dir, "header_checks", SEED_HEADERS);
        Checks {
            mime: header.clone(),
            nested: header.clone(),
            header,
            body: table(dir, "body_checks", SEED_BODY),
        }
    }

    #[test]
    fn seed_examples_work_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let c = checks(dir.path());
        let out = c.apply(b"From: a@b\r\nSubject: How to retire early\r\n\r\nhi\r\n");
        let reject = out.reject.unwrap();
        assert_eq!((reject.code, reject.status.as_str()), (550, "5.7.1"));
        assert_eq!(reject.text, "message content rejected");

        // A folded Subject is matched unfolded.
        let out = c.apply(b"Subject: plan to\r\n retire early\r\n\r\nhi\r\n");
        assert!(out.reject.is_some());

        let exe = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
            --b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1\r\n\
            Content-Type: application/octet-stream; name=\"a.exe\"\r\n\
            Content-Transfer-Encoding: base64\r\n\r\n\
            TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA4fug4AtAnNIbgBTM0hVGhpcyBwcm9ncmFt\r\n\
            --b1--\r\n";
        let out = c.apply(exe);
        assert!(out.reject.is_some(), "{:?}", out.log);
        assert!(out.log[0].contains("header Content-Type:"), "{:?}", out.log);

        // The same body without the name: the body check still catches it.
        let body_only = String::from_utf8_lossy(exe).replace("; name=\"a.exe\"", "");
        let out = c.apply(body_only.as_bytes());
        assert!(out.log[0].starts_with("reject: body TVqQ"), "{:?}", out.log);

        let clean = b"From: a@b\r\nSubject: lunch\r\n\r\nsee you\r\n";
        assert_eq!(c.apply(clean), Outcome::default());
    }

    #[test]
    fn actions() {
        let dir = tempfile::tempdir().unwrap();
        let c = checks(dir.path());
        let out = c.apply(
            b"X-Warn-Me: 1\r\nX-Strip-Me: 2\r\nX-Old: value\r\nX-Tagged: 3\r\nX-Hold-Me: 4\r\n\r\n\
              keep\r\nremove this line\r\nend\r\n",
        );
        assert_eq!(out.reject, None);
        assert!(out.hold.is_some());
        assert_eq!(out.log[0], "warning: header X-Warn-Me: 1: watch this");
        assert_eq!(
            String::from_utf8(out.rewritten.unwrap()).unwrap(),
            "X-Warn-Me: 1\r\nX-New: value\r\nX-Note: seen\r\nX-Tagged: 3\r\nX-Hold-Me: 4\r\n\r\nkeep\r\nend\r\n"
        );
        let out = c.apply(b"X-Drop-Me: yes\r\n\r\nbody\r\n");
        assert!(out.discard.is_some());
        let out = c.apply(b"Subject: custom\r\n\r\nbody\r\n");
        let reply = out.reject.unwrap();
        assert_eq!(reply.status, "5.7.0");
        assert_eq!(reply.text, "we do not want this");
        // A code of class 4 defers, as in Postfix's cleanup.
        let reply = c.apply(b"Subject: later\r\n\r\nbody\r\n").reject.unwrap();
        assert_eq!((reply.code, reply.status.as_str()), (451, "4.7.1"));
        assert_eq!(reply.text, "not now");
    }

    #[test]
    fn each_header_meets_one_table() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checks {
            header: table(
                dir.path(),
                "h",
                "/^X-A:/ WARN primary\n/^Content-/ WARN wrong\n",
            ),
            mime: table(
                dir.path(),
                "m",
                "/^Content-Type:/ WARN mime\n/^X-A:/ WARN part\n",
            ),
            nested: table(
                dir.path(),
                "n",
                "/^X-A:/ WARN nested\n/^Content-/ WARN wrong\n",
            ),
            body: Vec::new(),
        };
        let message = b"X-A: 1\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n\
            preamble\r\n--zz\r\nX-A: 2\r\nContent-Type: message/rfc822\r\n\r\n\
            X-A: 3\r\nContent-Type: text/plain\r\n\r\nbody\r\n--zz--\r\n";
        let out = c.apply(message);
        let warned: Vec<&str> = out
            .log
            .iter()
            .map(|l| l.rsplit(": ").next().unwrap())
            .collect();
        assert_eq!(
            warned,
            ["primary", "mime", "part", "mime", "nested", "mime"],
            "{:?}",
            out.log
        );
    }

    /// Fails on the code before mailgate-mime: cleanup matched a
    /// boundary as a prefix and took the last Content-Type, so lines the
    /// banned check and the spam engine read as body text went to
    /// mime_header_checks, and a part they read went unchecked.
    #[test]
    fn parts_are_the_ones_the_other_checks_read() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checks {
            mime: table(dir.path(), "m", "/^Content-Type:.*name=/ WARN mime\n"),
            body: table(dir.path(), "b", "/^Content-Type:.*name=/ WARN body\n"),
            ..Checks::default()
        };
        let warned = |message: &[u8]| -> Vec<String> {
            c.apply(message)
                .log
                .iter()
                .map(|l| l.rsplit(": ").next().unwrap().to_string())
                .collect()
        };
        // `--qq` is not a delimiter of boundary q: the line after it is text.
        let prefix = b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nhi\r\n\
            --qq\r\nContent-Type: application/x; name=a.exe\r\n\r\n--q--\r\n";
        assert_eq!(warned(prefix), ["body"]);
        // Of two Content-Types the first counts: a multipart, whose part
        // header goes to mime_header_checks.
        let twice =
            b"Content-Type: multipart/mixed; boundary=q\r\nContent-Type: text/plain\r\n\r\n\
            --q\r\nContent-Type: application/x; name=a.exe\r\n\r\nx\r\n--q--\r\n";
        assert_eq!(warned(twice), ["mime"]);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let c = checks(dir.path());
        let mut deep = String::new();
        for i in 0..100 {
            deep.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        let _ = c.apply(deep.as_bytes());
        for input in [
            &b""[..],
            b"\r\n",
            b":\r\n \r\n",
            b"\xff\xfe: \xff\r\n\r\n\xff",
            b"Content-Type: multipart/x; boundary=\"\r\n\r\n--\r\n",
            b"no header\r\nSubject: retire early\r\n",
        ] {
            let _ = c.apply(input);
        }
    }

    #[test]
    fn subject_tag() {
        assert_eq!(
            tag_subject(
                b"From: a\r\nSubject: hi\r\n\r\nSubject: body\r\n",
                "***SPAM***"
            ),
            b"From: a\r\nSubject: ***SPAM*** hi\r\n\r\nSubject: body\r\n"
        );
        assert_eq!(
            tag_subject(b"From: a\r\n\r\nbody\r\n", "[S]"),
            b"From: a\r\nSubject: [S]\r\n\r\nbody\r\n"
        );
        assert_eq!(
            tag_subject(b"SUBJECT:x\r\n\r\n", "[S]"),
            b"SUBJECT: [S] x\r\n\r\n"
        );
    }
}
