//! header_checks, mime_header_checks, nested_header_checks and body_checks
//! with Postfix's semantics (header_checks(5)).
//!
//! Each logical header (with its continuation lines, unfolded for matching)
//! goes to exactly one table, by where it stands, as Postfix's MIME state
//! machine decides: headers of the message itself to header_checks, MIME
//! headers (Content-*, MIME-Version) of the message and every header of a
//! multipart body part to mime_header_checks, non-MIME headers of an
//! attached message/rfc822 to nested_header_checks. Every other line is a
//! body line for body_checks, as it is on the wire (base64 not decoded).

use mailgate_config::Table;
use mailgate_ipc::envelope::SmtpReply;

/// Boundaries nested deeper than this are not tracked: the rest is body.
const MAX_NESTING: usize = 32;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeaderClass {
    Primary,
    Multipart,
    Nested,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    Header(HeaderClass),
    Body,
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

/// What a header section's Content-Type means for the lines after it.
#[derive(Default)]
struct SectionType {
    boundary: Option<String>,
    message: bool,
}

fn section_type(value: &str) -> SectionType {
    let lower = value.to_ascii_lowercase();
    let mut result = SectionType::default();
    let media = lower.split(';').next().unwrap_or("").trim();
    if media == "message/rfc822" {
        result.message = true;
    } else if media.starts_with("multipart/") {
        // The boundary parameter, quoted or not, in its original case.
        if let Some(pos) = lower.find("boundary=") {
            let rest = &value[pos + "boundary=".len()..];
            let boundary = match rest.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or(""),
                None => rest
                    .split([';', ' ', '\t', '\r', '\n'])
                    .next()
                    .unwrap_or(""),
            };
            if !boundary.is_empty() {
                result.boundary = Some(boundary.to_string());
            }
        }
    }
    result
}

impl Run<'_> {
    fn stopped(&self) -> bool {
        self.outcome.reject.is_some() || self.outcome.discard.is_some()
    }

    fn message(&mut self, content: &[u8]) {
        let mut place = Where::Header(HeaderClass::Primary);
        let mut boundaries: Vec<String> = Vec::new();
        // The logical header being collected: its raw lines.
        let mut pending: Vec<&[u8]> = Vec::new();
        let mut section = SectionType::default();
        for line in lines(content) {
            if self.stopped() {
                return;
            }
            let bare = strip_eol(line);
            match place {
                Where::Header(class) => {
                    let continuation = matches!(bare.first(), Some(b' ' | b'\t'));
                    if continuation && !pending.is_empty() {
                        pending.push(line);
                        continue;
                    }
                    if !pending.is_empty() {
                        self.header(class, &pending, &mut section);
                        pending.clear();
                    }
                    let is_header = bare.iter().position(|&b| b == b':').is_some_and(|colon| {
                        colon > 0 && bare[..colon].iter().all(|b| b.is_ascii_graphic())
                    });
                    if is_header {
                        pending.push(line);
                        continue;
                    }
                    // The end of the section: an empty line, or (a message
                    // without the separator) the first line of the body.
                    place = if section.message {
                        Where::Header(HeaderClass::Nested)
                    } else {
                        Where::Body
                    };
                    if let Some(b) = section.boundary.take()
                        && boundaries.len() < MAX_NESTING
                    {
                        boundaries.push(b);
                    }
                    section = SectionType::default();
                    if bare.is_empty() {
                        self.out.extend_from_slice(line);
                    } else {
                        place = Where::Body;
                        self.body_line(line, &mut boundaries, &mut place);
                    }
                }
                Where::Body => self.body_line(line, &mut boundaries, &mut place),
            }
        }
        if !pending.is_empty()
            && let Where::Header(class) = place
        {
            self.header(class, &pending, &mut section);
        }
    }

    fn body_line(&mut self, line: &[u8], boundaries: &mut Vec<String>, place: &mut Where) {
        let bare = strip_eol(line);
        if let Some(rest) = bare.strip_prefix(b"--") {
            let found = boundaries
                .iter()
                .rposition(|b| rest.starts_with(b.as_bytes()));
            if let Some(index) = found {
                let after = &rest[boundaries[index].len()..];
                if after.starts_with(b"--") {
                    boundaries.truncate(index);
                } else {
                    boundaries.truncate(index + 1);
                    *place = Where::Header(HeaderClass::Multipart);
                }
                self.out.extend_from_slice(line);
                return;
            }
        }
        let text = String::from_utf8_lossy(bare);
        let edit = self.lookup(&self.checks.body, &text, "body");
        self.emit(edit, line);
    }

    fn header(&mut self, class: HeaderClass, raw: &[&[u8]], section: &mut SectionType) {
        let joined: Vec<u8> = raw.concat();
        // Matching sees the header unfolded: line ends removed, the
        // continuation's leading white space kept.
        let unfolded: String = raw
            .iter()
            .map(|l| String::from_utf8_lossy(strip_eol(l)))
            .collect();
        let name = unfolded.split(':').next().unwrap_or("").trim().to_string();
        if name.eq_ignore_ascii_case("content-type") {
            let value = unfolded.split_once(':').map(|(_, v)| v).unwrap_or("");
            *section = section_type(value);
        }
        let (tables, label) = match class {
            HeaderClass::Primary if !is_mime_header(&name) => (&self.checks.header, "header"),
            HeaderClass::Nested if !is_mime_header(&name) => (&self.checks.nested, "header"),
            _ => (&self.checks.mime, "header"),
        };
        let edit = self.lookup(tables, &unfolded, label);
        self.emit(edit, &joined);
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
                let reply = reject_reply(arg);
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

/// `REJECT [optional text...]`: 550 5.7.1, as Postfix answers; the text
/// may start with its own enhanced status code.
fn reject_reply(text: &str) -> SmtpReply {
    let mut status = "5.7.1".to_string();
    let mut text = text.trim();
    if let Some((first, rest)) = text.split_once(' ').or(Some((text, "")))
        && is_permanent_status(first)
    {
        status = first.to_string();
        text = rest.trim();
    }
    SmtpReply {
        code: 550,
        status,
        text: if text.is_empty() {
            "message content rejected".to_string()
        } else {
            text.to_string()
        },
    }
}

fn is_permanent_status(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts[0] == "5"
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
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
        /^Subject: custom/ REJECT 5.7.0 we do not want this\n";

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
