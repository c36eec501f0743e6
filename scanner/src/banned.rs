//! Banned attachments: by file name (extension, double extension, the
//! site's `banned_filename_re` tables), by declared MIME type, and by
//! content (PE or ELF executables whatever their name), inside zip, gzip
//! and tar archives too.
//!
//! The check fails closed: what it cannot look into (an encrypted or
//! damaged archive member, an unknown compression method, an archive
//! nested deeper than scanner_archive_depth, an archive that cannot be
//! read at all, MIME parts past mailgate-mime's bounds on nesting, count
//! and decoding) is reported as unchecked, and the caller applies
//! banned_unchecked_action to it. Every name an archive lists is judged,
//! whether or not its member can be read.

use std::collections::HashSet;
use std::time::Instant;

use mailgate_config::Table;
use mailgate_ipc::protocol::scanner::BannedPart;
use mailgate_mime::{Anomaly, Entity, Mime, Role};

use crate::archive::{self, Budget, Content, Limits, Problem};

/// File names and reasons, as they go into the verdict, the 554 text and
/// the log, are at most this long.
const MAX_TEXT: usize = 200;

/// What the banned check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub banned: Vec<BannedPart>,
    /// Parts whose content could not be checked, and why.
    pub unchecked: Vec<BannedPart>,
}

/// The scan's deadline (scanner_timeout) passed: the check stopped.
#[derive(Debug, PartialEq, Eq)]
pub struct TimedOut;

/// Text from a message (a file name, or a reason quoting one) made fit
/// for an SMTP reply and a log line: printable ASCII stays, a backslash
/// and everything else (control characters, non-ASCII) become `\xNN`
/// escapes of their bytes, and the result is cut at MAX_TEXT characters.
pub fn printable(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if out.len() >= MAX_TEXT {
            out.push_str("...");
            break;
        }
        match byte {
            b'\\' => out.push_str("\\x5c"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out
}

fn clean(part: BannedPart) -> BannedPart {
    BannedPart {
        name: printable(&part.name),
        reason: printable(&part.reason),
    }
}

/// The walk's state: the shared unpacking budget, the deadline, and what
/// was found so far.
struct Walk {
    budget: Budget,
    deadline: Option<Instant>,
    report: Report,
}

impl Walk {
    fn check_time(&self) -> Result<(), TimedOut> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(TimedOut),
            _ => Ok(()),
        }
    }

    fn ban(&mut self, name: &str, reason: String) {
        self.report.banned.push(BannedPart {
            name: name.to_string(),
            reason,
        });
    }

    fn unchecked(&mut self, name: &str, reason: String) {
        self.report.unchecked.push(BannedPart {
            name: name.to_string(),
            reason,
        });
    }
}

pub struct Policy {
    /// Lower case, without the dot.
    pub extensions: HashSet<String>,
    /// Lower case `type/subtype`.
    pub mime_types: HashSet<String>,
    /// Looked up with the file name, then with the declared type. A result
    /// of OK or DUNNO allows (an exception to the lists above); anything
    /// else bans, with the result as the reason.
    pub tables: Vec<Table>,
    pub executable_content: bool,
    pub limits: Limits,
}

enum TableAnswer {
    Allow,
    Ban(String),
}

impl Policy {
    fn table_answer(&self, key: &str) -> Option<TableAnswer> {
        self.tables
            .iter()
            .find_map(|t| t.lookup(key))
            .map(|result| {
                let word = result.split_whitespace().next().unwrap_or("");
                if word.eq_ignore_ascii_case("OK") || word.eq_ignore_ascii_case("DUNNO") {
                    TableAnswer::Allow
                } else {
                    TableAnswer::Ban(result)
                }
            })
    }

    /// Why a file name is banned, if it is.
    pub fn judge_name(&self, name: &str) -> Option<String> {
        // Only the last path component counts (archives hold paths).
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        match self.table_answer(base) {
            Some(TableAnswer::Allow) => return None,
            Some(TableAnswer::Ban(reason)) => return Some(format!("file name ({reason})")),
            None => {}
        }
        // Windows ignores trailing dots and spaces: "a.exe . " runs a.exe.
        let trimmed = base.trim_end_matches(['.', ' ', '\t']).to_ascii_lowercase();
        let mut extensions = trimmed.rsplit('.');
        let last = extensions.next()?;
        if trimmed.contains('.') && self.extensions.contains(last.trim()) {
            let previous = extensions
                .next()
                .filter(|_| trimmed.matches('.').count() >= 2);
            return Some(match previous {
                Some(p) if !p.is_empty() && p.len() <= 5 => {
                    format!("double extension .{p}.{}", last.trim())
                }
                _ => format!("extension .{}", last.trim()),
            });
        }
        None
    }

    pub fn judge_type(&self, declared: &str) -> Option<String> {
        let declared = declared.to_ascii_lowercase();
        match self.table_answer(&declared) {
            Some(TableAnswer::Allow) => None,
            Some(TableAnswer::Ban(reason)) => Some(format!("declared type ({reason})")),
            None => self
                .mime_types
                .contains(&declared)
                .then(|| format!("declared type {declared}")),
        }
    }

    pub fn judge_content(&self, data: &[u8]) -> Option<String> {
        if !self.executable_content {
            return None;
        }
        executable_kind(data).map(str::to_string)
    }

    /// Every banned and every unchecked part of a message, archives
    /// included; stops with TimedOut once `deadline` has passed.
    ///
    /// The message is read by mailgate-mime as cleanup's checks and the
    /// spam engine read it; where readers may differ (several
    /// Content-Type fields, loose delimiter lines), the most permissive
    /// reading is checked too, so that what any mail reader shows is
    /// judged.
    pub fn check_message(&self, raw: &[u8], deadline: Option<Instant>) -> Result<Report, TimedOut> {
        let mut walk = Walk {
            budget: Budget::new(&self.limits),
            deadline,
            report: Report::default(),
        };
        let limits = mailgate_mime::Limits::default();
        let mime = Mime::parse(raw, &limits);
        self.walk_mime(&mime, &mut walk)?;
        if mime.ambiguous() {
            drop(mime);
            self.walk_mime(&Mime::parse_lenient(raw, &limits), &mut walk)?;
        }
        let Report { banned, unchecked } = walk.report;
        Ok(Report {
            banned: distinct(banned.into_iter().map(clean)),
            unchecked: distinct(unchecked.into_iter().map(clean)),
        })
    }

    fn walk_mime(&self, mime: &Mime<'_>, walk: &mut Walk) -> Result<(), TimedOut> {
        for view in part_views(mime) {
            walk.check_time()?;
            let entity = view.entity;
            let label = view.label.as_str();
            if let Some(reason) = entity.filename.as_deref().and_then(|n| self.judge_name(n)) {
                walk.ban(label, reason);
            }
            // Content-Type's name where Content-Disposition names another
            // file: some readers show that one.
            let other = entity
                .param("name")
                .filter(|n| Some(*n) != entity.filename.as_deref());
            if let Some(name) = other
                && let Some(reason) = self.judge_name(name)
            {
                walk.ban(&format!("{}{name}", view.prefix), reason);
            }
            if let Some(reason) = view.declared.and_then(|t| self.judge_type(t)) {
                walk.ban(label, reason);
            }
            for anomaly in entity.anomalies.iter().filter(|a| a.is_bound()) {
                walk.unchecked(label, bound_reason(*anomaly));
            }
            if entity.is_leaf {
                self.check_content(label, &mime.decoded(entity), 0, walk)?;
            }
        }
        Ok(())
    }

    fn check_content(
        &self,
        label: &str,
        data: &[u8],
        depth: usize,
        walk: &mut Walk,
    ) -> Result<(), TimedOut> {
        walk.check_time()?;
        if let Some(reason) = self.judge_content(data) {
            walk.ban(label, reason);
            return Ok(());
        }
        let Some(kind) = archive::kind(data) else {
            return Ok(());
        };
        if depth >= self.limits.depth {
            walk.unchecked(
                label,
                format!(
                    "archive nested deeper than scanner_archive_depth ({})",
                    self.limits.depth
                ),
            );
            return Ok(());
        }
        match archive::members(kind, data, &self.limits, &mut walk.budget) {
            Ok(members) => {
                for member in members {
                    let name = if member.name.is_empty() {
                        format!("{label}/(unnamed)")
                    } else {
                        format!("{label}/{}", member.name)
                    };
                    if let Some(reason) = self.judge_name(&member.name) {
                        walk.ban(&name, reason);
                    }
                    match member.content {
                        Content::Data(data) => self.check_content(&name, &data, depth + 1, walk)?,
                        Content::Unchecked(why) => walk.unchecked(&name, why),
                    }
                }
            }
            Err(Problem::Corrupt(why)) => {
                walk.unchecked(label, format!("unreadable archive: {why}"))
            }
            Err(problem) => walk.ban(label, problem.to_string()),
        }
        Ok(())
    }
}

/// An entity as the banned check names and judges it.
pub struct PartView<'m> {
    /// The name in reports: the file name, else the declared type, else
    /// `part N`, under the label of the message/rfc822 part it is in.
    pub label: String,
    /// The declared Content-Type (`type/subtype`), judged against
    /// banned_mime_types; None without a Content-Type field.
    pub declared: Option<&'m str>,
    pub entity: &'m Entity,
    /// The label of the message/rfc822 part it is in, and a slash.
    pub prefix: String,
}

/// The entities of a message in the order the check walks them, with
/// their labels. Leaves' decoded bodies (`Mime::decoded`) are what the
/// content and archive checks read.
pub fn part_views<'m>(mime: &'m Mime<'_>) -> Vec<PartView<'m>> {
    let mut views: Vec<PartView<'m>> = Vec::with_capacity(mime.entities.len());
    let mut prefixes: Vec<String> = Vec::with_capacity(mime.entities.len());
    for (index, entity) in mime.entities.iter().enumerate() {
        let prefix = match entity.parent {
            Some(p) if entity.role == Role::Attached => format!("{}/", views[p].label),
            Some(p) => prefixes[p].clone(),
            None => String::new(),
        };
        let declared = entity.declared.then_some(entity.content_type.as_str());
        let label = format!(
            "{prefix}{}",
            entity
                .filename
                .clone()
                .or_else(|| declared.map(str::to_string))
                .unwrap_or_else(|| format!("part {index}"))
        );
        prefixes.push(prefix.clone());
        views.push(PartView {
            label,
            declared,
            entity,
            prefix,
        });
    }
    views
}

/// A part as the check reads it, for differential tests with cleanup's
/// checks and the spam engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadPart {
    pub label: String,
    pub content_type: String,
    pub declared: Option<String>,
    pub filename: Option<String>,
    /// In the message as written (not inside an encoded attached message).
    pub in_message: bool,
    /// For a leaf, the bytes the content and archive checks read.
    pub content: Option<Vec<u8>>,
}

/// The parts of a message in the order check_message walks them (its
/// careful reading).
pub fn read_parts(raw: &[u8]) -> Vec<ReadPart> {
    let mime = Mime::parse(raw, &mailgate_mime::Limits::default());
    part_views(&mime)
        .into_iter()
        .map(|v| ReadPart {
            label: v.label,
            content_type: v.entity.content_type.clone(),
            declared: v.declared.map(str::to_string),
            filename: v.entity.filename.clone(),
            in_message: v.entity.source == mailgate_mime::Source::Raw,
            content: v
                .entity
                .is_leaf
                .then(|| mime.decoded(v.entity).into_owned()),
        })
        .collect()
}

fn bound_reason(anomaly: Anomaly) -> String {
    let limits = mailgate_mime::Limits::default();
    match anomaly {
        Anomaly::TooDeep => format!("MIME parts nested deeper than {}", limits.depth),
        Anomaly::TooManyParts => format!("more than {} MIME parts", limits.parts),
        Anomaly::DecodedLimit => "attached message too large to decode".to_string(),
        other => format!("{other:?}"),
    }
}

/// The parts in order, each (name, reason) once: the careful and the
/// permissive reading often find the same.
fn distinct(parts: impl Iterator<Item = BannedPart>) -> Vec<BannedPart> {
    let mut seen = HashSet::new();
    parts
        .filter(|p| seen.insert((p.name.clone(), p.reason.clone())))
        .collect()
}

/// "PE executable" for a Windows program (MZ header pointing at a PE
/// header, or a bare MZ DOS program), "ELF executable" for a Unix one.
pub fn executable_kind(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x7fELF") {
        return Some("ELF executable");
    }
    if data.len() >= 64 && data.starts_with(b"MZ") {
        let offset = u32::from_le_bytes([data[60], data[61], data[62], data[63]]) as usize;
        let pe = offset
            .checked_add(4)
            .and_then(|end| data.get(offset..end))
            .is_some_and(|sig| sig == b"PE\0\0");
        return Some(if pe {
            "PE executable"
        } else {
            "DOS executable"
        });
    }
    None
}

#[cfg(test)]
mod tests;
