//! The list of milters of one SMTP session (smtpd_milters): each event
//! goes to each milter in turn until one decides, as in Postfix's
//! milter.c; at the end of the message each milter sees the message as
//! the ones before it left it.

use std::net::IpAddr;

use mailgate_log::warning;

use crate::client::{Edit, Milter};
use crate::macros::{MacroLists, Macros, Stage};
use crate::message::Message;
use crate::spec::MilterSpec;
use crate::verdict::Verdict;
use crate::wire::{self, Builder};

pub struct Milters {
    list: Vec<Milter>,
}

/// The envelope as the milters leave it (SMFIR_CHGFROM, ADDRCPT, DELRCPT).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Without angle brackets; empty for the null sender.
    pub sender: String,
    pub recipients: Vec<String>,
}

/// The end of a message.
#[derive(Debug, Default)]
pub struct Outcome {
    /// A refusal (4xx/5xx) or DISCARD.
    pub verdict: Option<Verdict>,
    /// SMFIR_QUARANTINE's reason: the message goes on hold.
    pub hold: Option<String>,
    /// The new content, when a milter changed a header or the body.
    pub content: Option<Vec<u8>>,
    /// What each milter changed, for the log.
    pub changes: Vec<String>,
}

/// An address from a milter (`<a@b>` or `a@b`), without its brackets;
/// None for one no envelope may hold (white space, control characters,
/// brackets inside, longer than RFC 5321's path).
fn strip(address: &str) -> Option<String> {
    let a = address.trim();
    let a = a
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(a);
    let bad = a.len() > 256
        || a.chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>'));
    (!bad).then(|| a.to_string())
}

/// What milter_header_checks make of a header a milter adds or changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderVerdict {
    Keep,
    /// IGNORE: the header is not added (a changed header stays as it was).
    Drop,
    /// REPLACE: this header ("Name: value") instead.
    Replace(String),
    /// REJECT or DISCARD: the message will not be received, so the
    /// remaining edits and milters are skipped, as in Postfix.
    Stop,
}

/// milter_header_checks (Postfix's cleanup_milter_header_checks): asked
/// for each header a milter adds, inserts or changes, as "Name: value"
/// unfolded.
pub trait HeaderChecks {
    fn check(&mut self, header: &str) -> HeaderVerdict;
}

/// No milter_header_checks.
pub struct NoHeaderChecks;

impl HeaderChecks for NoHeaderChecks {
    fn check(&mut self, _: &str) -> HeaderVerdict {
        HeaderVerdict::Keep
    }
}

/// A header as the checks see it: `Name: value`, line breaks removed.
fn header_text(name: &str, value: &str) -> String {
    let value = value.replace(['\r', '\n'], "");
    if value.starts_with([' ', '\t']) {
        format!("{name}:{value}")
    } else {
        format!("{name}: {value}")
    }
}

/// A REPLACE text split into name and value; None when it is no header.
fn split_header(text: &str) -> Option<(&str, &str)> {
    let (name, value) = text.split_once(':')?;
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| (name, value.strip_prefix(' ').unwrap_or(value)))
}

impl Milters {
    /// Connects to every milter (each within its milter_connect_timeout).
    pub async fn open(specs: &[MilterSpec], lists: &MacroLists) -> Milters {
        let mut list = Vec::with_capacity(specs.len());
        for spec in specs {
            list.push(Milter::open(spec.clone(), lists).await);
        }
        Milters { list }
    }

    /// Milters already connected (see [`Milter::over`]).
    pub fn from_milters(list: Vec<Milter>) -> Milters {
        Milters { list }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    #[allow(clippy::too_many_arguments)]
    async fn each(
        &mut self,
        stage: Stage,
        cmd: u8,
        data: &[u8],
        macros: &Macros,
        no: u32,
        nr: u32,
    ) -> Option<Verdict> {
        let mut hold = None;
        for milter in &mut self.list {
            match milter.event(stage, cmd, data, macros, no, nr).await {
                None => {}
                Some(Verdict::Hold(reason)) => hold = hold.or(Some(Verdict::Hold(reason))),
                Some(verdict) => return Some(verdict),
            }
        }
        hold
    }

    /// SMFIC_CONNECT: the client's name ("unknown" without one), address
    /// and port.
    pub async fn connect(
        &mut self,
        name: &str,
        addr: Option<IpAddr>,
        port: u16,
        macros: &Macros,
    ) -> Option<Verdict> {
        let mut b = Builder::default().string(name);
        b = match addr {
            Some(IpAddr::V4(a)) => b.byte(b'4').u16(port).string(&a.to_string()),
            Some(IpAddr::V6(a)) => b.byte(b'6').u16(port).string(&a.to_string()),
            None => b.byte(b'U'),
        };
        self.each(
            Stage::Connect,
            wire::C_CONNECT,
            &b.data,
            macros,
            wire::P_NOCONNECT,
            wire::P_NR_CONN,
        )
        .await
    }

    pub async fn helo(&mut self, name: &str, macros: &Macros) -> Option<Verdict> {
        let b = Builder::default().string(name);
        self.each(
            Stage::Helo,
            wire::C_HELO,
            &b.data,
            macros,
            wire::P_NOHELO,
            wire::P_NR_HELO,
        )
        .await
    }

    /// SMFIC_MAIL: `<sender>` and the ESMTP parameters, one per argument.
    pub async fn mail(&mut self, args: &[String], macros: &Macros) -> Option<Verdict> {
        let b = args.iter().fold(Builder::default(), |b, a| b.string(a));
        self.each(
            Stage::Mail,
            wire::C_MAIL,
            &b.data,
            macros,
            wire::P_NOMAIL,
            wire::P_NR_MAIL,
        )
        .await
    }

    pub async fn rcpt(&mut self, args: &[String], macros: &Macros) -> Option<Verdict> {
        let b = args.iter().fold(Builder::default(), |b, a| b.string(a));
        self.each(
            Stage::Rcpt,
            wire::C_RCPT,
            &b.data,
            macros,
            wire::P_NORCPT,
            wire::P_NR_RCPT,
        )
        .await
    }

    pub async fn data(&mut self, macros: &Macros) -> Option<Verdict> {
        self.each(
            Stage::Data,
            wire::C_DATA,
            &[],
            macros,
            wire::P_NODATA,
            wire::P_NR_DATA,
        )
        .await
    }

    /// The message through every milter. `max_size` bounds the content
    /// the milters' edits may make (0: no bound).
    pub async fn message(
        &mut self,
        content: &[u8],
        envelope: &mut Envelope,
        macros: &Macros,
        max_size: u64,
    ) -> Outcome {
        self.message_checked(content, envelope, macros, max_size, &mut NoHeaderChecks)
            .await
    }

    /// [`Milters::message`], with milter_header_checks on every header a
    /// milter adds or changes. After [`HeaderVerdict::Stop`] the outcome
    /// has no verdict of its own: the checks decided.
    pub async fn message_checked(
        &mut self,
        content: &[u8],
        envelope: &mut Envelope,
        macros: &Macros,
        max_size: u64,
        checks: &mut (dyn HeaderChecks + Send),
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let mut stopped = false;
        let mut message = Message::parse(content);
        let mut changed = false;
        for milter in &mut self.list {
            let headers: Vec<(String, Vec<u8>)> = message
                .headers
                .iter()
                .map(|h| (h.name.clone(), h.milter_value()))
                .collect();
            let (verdict, edits) = milter.message(&headers, &message.body, macros).await;
            let mut new_body: Option<Vec<u8>> = None;
            let mut notes = Vec::new();
            for edit in edits {
                // milter_header_checks: on every header a milter adds or
                // changes (a deletion is no header to check).
                let verdict = match &edit {
                    Edit::AddHeader(name, value)
                    | Edit::InsertHeader(_, name, value)
                    | Edit::ChangeHeader(_, name, value)
                        if !(matches!(edit, Edit::ChangeHeader(..)) && value.is_empty()) =>
                    {
                        checks.check(&header_text(name, value))
                    }
                    _ => HeaderVerdict::Keep,
                };
                let (name, value) = match (&verdict, &edit) {
                    (HeaderVerdict::Stop, _) => {
                        stopped = true;
                        break;
                    }
                    (HeaderVerdict::Drop, _) => continue,
                    (HeaderVerdict::Replace(text), _) => match split_header(text) {
                        Some((n, v)) => (n.to_string(), v.to_string()),
                        None => {
                            warning!(
                                "milter_header_checks: REPLACE text is not a header: {text}; \
                                 kept the milter's"
                            );
                            continue;
                        }
                    },
                    (
                        HeaderVerdict::Keep,
                        Edit::AddHeader(n, v)
                        | Edit::InsertHeader(_, n, v)
                        | Edit::ChangeHeader(_, n, v),
                    ) => (n.clone(), v.clone()),
                    (HeaderVerdict::Keep, _) => (String::new(), String::new()),
                };
                match edit {
                    Edit::AddHeader(..) => {
                        notes.push(format!("add header: {name}"));
                        message.add_header(&name, &value);
                        changed = true;
                    }
                    Edit::InsertHeader(index, ..) => {
                        notes.push(format!("insert header: {name}"));
                        message.insert_header(index as usize, &name, &value);
                        changed = true;
                    }
                    Edit::ChangeHeader(index, old, _) => {
                        notes.push(format!("change header: {name}"));
                        if name.eq_ignore_ascii_case(&old) {
                            message.change_header(index, &old, &value);
                        } else {
                            // REPLACE gave another name: the new header
                            // takes the old one's place.
                            message.replace_header(index, &old, &name, &value);
                        }
                        changed = true;
                    }
                    Edit::ReplaceBody(chunk) => {
                        let body = new_body.get_or_insert_with(Vec::new);
                        if max_size == 0 || (body.len() + chunk.len()) as u64 <= max_size {
                            body.extend_from_slice(&chunk);
                        } else {
                            outcome.verdict =
                                Some(Verdict::Reply("552 5.3.4 Message file too big".into()));
                        }
                    }
                    Edit::AddRecipient(rcpt, _) => match strip(&rcpt) {
                        Some(rcpt) if !rcpt.is_empty() => {
                            notes.push(format!("add rcpt: <{rcpt}>"));
                            if !envelope.recipients.contains(&rcpt) {
                                envelope.recipients.push(rcpt);
                            }
                        }
                        _ => warning!(
                            "milter {}: ignored SMFIR_ADDRCPT of a malformed address",
                            milter.spec.name
                        ),
                    },
                    Edit::DeleteRecipient(rcpt) => {
                        if let Some(rcpt) = strip(&rcpt) {
                            notes.push(format!("delete rcpt: <{rcpt}>"));
                            envelope
                                .recipients
                                .retain(|r| !r.eq_ignore_ascii_case(&rcpt));
                        }
                    }
                    Edit::Quarantine(reason) => {
                        notes.push(format!("quarantine: {reason}"));
                        outcome.hold.get_or_insert(reason);
                    }
                    Edit::ChangeSender(from, _) => match strip(&from) {
                        Some(from) => {
                            notes.push(format!("change sender: <{from}>"));
                            envelope.sender = from;
                        }
                        None => warning!(
                            "milter {}: ignored SMFIR_CHGFROM to a malformed address",
                            milter.spec.name
                        ),
                    },
                }
            }
            if let Some(body) = new_body {
                notes.push("replace body".to_string());
                message.replace_body(&body);
                changed = true;
            }
            for note in notes {
                outcome
                    .changes
                    .push(format!("{}: {note}", milter.spec.name));
            }
            if stopped {
                outcome.verdict = None;
                outcome.content = None;
                return outcome;
            }
            if outcome.verdict.is_some() {
                return outcome;
            }
            match verdict {
                None => {}
                Some(Verdict::Hold(reason)) => {
                    outcome.hold.get_or_insert(reason);
                }
                Some(verdict) => {
                    outcome.verdict = Some(verdict);
                    return outcome;
                }
            }
        }
        if changed {
            let bytes = message.to_bytes();
            if max_size != 0 && bytes.len() as u64 > max_size {
                outcome.verdict = Some(Verdict::Reply("552 5.3.4 Message file too big".into()));
            } else {
                outcome.content = Some(bytes);
            }
        }
        outcome
    }

    /// RSET, or a transaction that ended before its message.
    pub async fn abort(&mut self) {
        for milter in &mut self.list {
            milter.abort().await;
        }
    }

    pub async fn quit(&mut self) {
        for milter in &mut self.list {
            milter.quit().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{header_text, split_header, strip};

    #[test]
    fn headers_are_checked_as_postfix_writes_them() {
        assert_eq!(header_text("X-Spam", "yes"), "X-Spam: yes");
        assert_eq!(header_text("X-Spam", " yes"), "X-Spam: yes");
        assert_eq!(header_text("X-Long", "a\n\tb"), "X-Long: a\tb");
        assert_eq!(split_header("X-New: v"), Some(("X-New", "v")));
        assert_eq!(split_header("no header"), None);
        assert_eq!(split_header("Bad Name: v"), None);
    }

    #[test]
    fn addresses_from_milters_are_checked() {
        assert_eq!(strip("<a@example.com>").as_deref(), Some("a@example.com"));
        assert_eq!(strip("a@example.com").as_deref(), Some("a@example.com"));
        assert_eq!(strip("<>").as_deref(), Some(""));
        assert_eq!(strip("<a@b>\r\nRCPT TO:<c@d>"), None);
        assert_eq!(strip("<a b@c>"), None);
        assert_eq!(strip(&"x".repeat(300)), None);
    }
}
