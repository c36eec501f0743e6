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
use mailgate_config::content_action::{self, ContentAction};
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
    /// FILTER: the content filter (`transport:destination`), the last
    /// one that fired.
    pub filter: Option<String>,
    /// REDIRECT: the one recipient instead of all, the last one that fired.
    pub redirect: Option<String>,
    /// BCC: recipients to add.
    pub bcc: Vec<String>,
    /// The content after IGNORE, STRIP, PREPEND and REPLACE; None when
    /// unchanged.
    pub rewritten: Option<Vec<u8>>,
    /// What to log, in order.
    pub log: Vec<Logged>,
}

/// A line for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Logged {
    /// Postfix's cleanup_act_log: `QUEUE_ID: ACTION: WHAT from CLIENT;
    /// from=<S> to=<R> proto=P helo=<H>: TEXT` (no `: TEXT` when empty).
    Act {
        action: &'static str,
        /// `header NAME: value` or `body LINE`, cut at 200 characters.
        what: String,
        text: String,
    },
    /// A table result cleanup cannot act on (Postfix's msg_warn): the
    /// line is treated as if it had not matched.
    Warning(String),
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
            filtering: true,
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
    /// Postfix's CLEANUP_FLAG_FILTER: REDIRECT and PASS turn the checks
    /// off for the rest of the message (REJECT and DISCARD end it).
    filtering: bool,
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
            let edit = self.lookup(&self.checks.body, &text, "body", "body_checks");
            self.emit(edit, line);
        }
    }

    fn header(&mut self, class: HeaderClass, raw: &[u8]) {
        // Matching sees the header unfolded: line ends removed, the
        // continuation's leading white space kept.
        let unfolded = unfold(raw);
        let name = unfolded.split(':').next().unwrap_or("").trim().to_string();
        let (tables, map_class) = match class {
            HeaderClass::Primary if !is_mime_header(&name) => {
                (&self.checks.header, "header_checks")
            }
            HeaderClass::Nested if !is_mime_header(&name) => {
                (&self.checks.nested, "nested_header_checks")
            }
            _ => (&self.checks.mime, "mime_header_checks"),
        };
        let edit = self.lookup(tables, &unfolded, "header", map_class);
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

    fn act(&mut self, action: &'static str, what: &str, text: &str) {
        self.outcome.log.push(Logged::Act {
            action,
            what: what.to_string(),
            text: text.to_string(),
        });
    }

    /// Looks `text` up in the tables and carries out the action found,
    /// as Postfix's cleanup_act does. `context` is "header" or "body",
    /// `map_class` the parameter of the tables.
    fn lookup(&mut self, tables: &[Table], text: &str, context: &str, map_class: &str) -> Edit {
        if !self.filtering {
            return Edit::Keep;
        }
        let Some(result) = tables.iter().find_map(|t| t.lookup(text)) else {
            return Edit::Keep;
        };
        let action = match content_action::parse(&result, map_class, context == "header") {
            Ok(action) => action,
            Err(warning) => {
                self.outcome.log.push(Logged::Warning(warning));
                return Edit::Keep;
            }
        };
        // Long lines make long log lines; Postfix cuts them too.
        let shown: String = text.chars().take(200).collect();
        let what = format!("{context} {shown}");
        match action {
            ContentAction::Reject(arg) => {
                let (reply, warning) = reject_reply(arg);
                if let Some(warning) = warning {
                    self.outcome.log.push(Logged::Warning(warning));
                }
                self.act("reject", &what, &format!("{} {}", reply.status, reply.text));
                self.outcome.reject = Some(reply);
                Edit::Keep
            }
            ContentAction::Discard(arg) => {
                self.act("discard", &what, arg);
                self.outcome.discard = Some(what);
                Edit::Keep
            }
            ContentAction::Hold(arg) => {
                if self.outcome.hold.is_none() {
                    self.act("hold", &what, arg);
                    self.outcome.hold = Some(what);
                }
                Edit::Keep
            }
            ContentAction::Filter(arg) => {
                self.act("filter", &what, arg);
                self.outcome.filter = Some(arg.to_string());
                Edit::Keep
            }
            ContentAction::Redirect(arg) => {
                self.act("redirect", &what, arg);
                self.outcome.redirect = Some(arg.to_string());
                self.filtering = false;
                Edit::Keep
            }
            ContentAction::Bcc(arg) => {
                self.act("bcc", &what, arg);
                self.outcome.bcc.push(arg.to_string());
                Edit::Keep
            }
            ContentAction::Pass(arg) => {
                self.act("pass", &what, arg);
                self.filtering = false;
                Edit::Keep
            }
            ContentAction::Warn(arg) => {
                self.act("warning", &what, arg);
                Edit::Keep
            }
            ContentAction::Info(arg) => {
                self.act("info", &what, arg);
                Edit::Keep
            }
            ContentAction::Strip(arg) => {
                self.act("strip", &what, arg);
                Edit::Delete
            }
            ContentAction::Ignore => Edit::Delete,
            ContentAction::Prepend(arg) => {
                self.act("prepend", &what, arg);
                Edit::Prepend(arg.to_string())
            }
            ContentAction::Replace(arg) => {
                self.act("replace", &what, arg);
                Edit::Replace(arg.to_string())
            }
            ContentAction::Dunno => Edit::Keep,
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
#[path = "checks_tests.rs"]
mod tests;
