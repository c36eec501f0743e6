//! Banned attachments: by file name (extension, double extension, the
//! site's `banned_filename_re` tables), by declared MIME type, and by
//! content (PE or ELF executables whatever their name), inside zip, gzip
//! and tar archives too.
//!
//! The check fails closed: what it cannot look into (an encrypted or
//! damaged archive member, an unknown compression method, an archive
//! nested deeper than scanner_archive_depth, an archive that cannot be
//! read at all, message/rfc822 parts nested deeper than
//! MAX_MESSAGE_DEPTH) is reported as unchecked, and the caller applies
//! banned_unchecked_action to it. Every name an archive lists is judged,
//! whether or not its member can be read.

use std::collections::HashSet;
use std::time::Instant;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use mailgate_config::Table;
use mailgate_ipc::protocol::scanner::BannedPart;

use crate::archive::{self, Budget, Content, Limits, Problem};

/// message/rfc822 parts nested deeper than this are not looked into (this
/// bounds our own recursion); what lies deeper is unchecked.
pub const MAX_MESSAGE_DEPTH: usize = 16;

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
    pub fn check_message(&self, raw: &[u8], deadline: Option<Instant>) -> Result<Report, TimedOut> {
        let mut walk = Walk {
            budget: Budget::new(&self.limits),
            deadline,
            report: Report::default(),
        };
        // mail-parser is not ours: a panic in it (one debug assertion fires
        // on a MIME structure its release build handles) makes the message
        // unchecked, not a failed scan retried forever.
        let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw));
        match parsed {
            Err(_) => walk.unchecked("message", "MIME structure the parser failed on".into()),
            Ok(Some(message)) => self.walk_message(&message, "", 0, &mut walk)?,
            // No header section to speak of: the bytes are one part.
            Ok(None) => self.check_content("message", raw, 0, &mut walk)?,
        }
        let Report { banned, unchecked } = walk.report;
        Ok(Report {
            banned: banned.into_iter().map(clean).collect(),
            unchecked: unchecked.into_iter().map(clean).collect(),
        })
    }

    fn walk_message(
        &self,
        message: &mail_parser::Message<'_>,
        prefix: &str,
        depth: usize,
        walk: &mut Walk,
    ) -> Result<(), TimedOut> {
        if depth > MAX_MESSAGE_DEPTH {
            walk.unchecked(
                prefix.trim_end_matches('/'),
                format!("message/rfc822 parts nested deeper than {MAX_MESSAGE_DEPTH}"),
            );
            return Ok(());
        }
        for (index, part) in message.parts.iter().enumerate() {
            walk.check_time()?;
            let filename = part.attachment_name().map(str::to_string);
            let declared = part.content_type().map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            });
            let label = format!(
                "{prefix}{}",
                filename
                    .clone()
                    .or_else(|| declared.clone())
                    .unwrap_or_else(|| format!("part {index}"))
            );
            if let Some(reason) = filename.as_deref().and_then(|n| self.judge_name(n)) {
                walk.ban(&label, reason);
            }
            if let Some(reason) = declared.as_deref().and_then(|t| self.judge_type(t)) {
                walk.ban(&label, reason);
            }
            let is_message = declared.as_deref().is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                t == "message/rfc822" || t == "message/global"
            });
            match &part.body {
                PartType::Message(inner) => {
                    self.walk_message(inner, &format!("{label}/"), depth + 1, walk)?
                }
                PartType::Multipart(_) => {}
                // mail-parser gives up on a message/rfc822 part it will not
                // nest into (it stops at a few levels of encoded messages)
                // and hands over its raw bytes: what is inside is unchecked.
                PartType::Binary(_) | PartType::InlineBinary(_) if is_message => walk.unchecked(
                    &label,
                    "message/rfc822 part that could not be parsed".into(),
                ),
                PartType::Binary(data) | PartType::InlineBinary(data) => {
                    self.check_content(&label, data, 0, walk)?
                }
                PartType::Text(text) | PartType::Html(text) => {
                    self.check_content(&label, text.as_bytes(), 0, walk)?
                }
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
mod tests {
    use super::*;
    use crate::archive::tests::{gzip_of, limits, tar_of, zip_of};

    /// The banned parts, asserting that nothing was left unchecked.
    fn banned(p: &Policy, raw: &[u8]) -> Vec<BannedPart> {
        let report = p.check_message(raw, None).unwrap();
        assert!(report.unchecked.is_empty(), "{report:?}");
        report.banned
    }

    fn policy() -> Policy {
        Policy {
            extensions: ["exe", "scr", "pif", "bat", "js", "lnk"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            mime_types: ["application/x-msdownload".to_string()].into(),
            tables: Vec::new(),
            executable_content: true,
            limits: limits(),
        }
    }

    fn pe() -> Vec<u8> {
        let mut data = vec![0u8; 128];
        data[..2].copy_from_slice(b"MZ");
        data[60] = 64;
        data[64..68].copy_from_slice(b"PE\0\0");
        data
    }

    #[test]
    fn names() {
        let p = policy();
        assert_eq!(p.judge_name("setup.EXE").as_deref(), Some("extension .exe"));
        assert_eq!(
            p.judge_name("invoice.pdf.exe").as_deref(),
            Some("double extension .pdf.exe")
        );
        assert!(p.judge_name("dir/run.bat. . ").is_some());
        assert_eq!(p.judge_name("report.pdf"), None);
        assert_eq!(p.judge_name("exe"), None);
        assert_eq!(p.judge_name(""), None);
        assert_eq!(p.judge_name("..."), None);
    }

    #[test]
    fn tables_override_and_extend() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("banned"),
            "/^allowed\\.exe$/ OK\n/\\.docm$/ REJECT macro documents are not accepted\n",
        )
        .unwrap();
        let mut p = policy();
        p.tables = vec![Table::open("regexp:banned", dir.path()).unwrap()];
        assert_eq!(p.judge_name("allowed.exe"), None);
        assert!(p.judge_name("other.exe").is_some());
        assert_eq!(
            p.judge_name("x.docm").as_deref(),
            Some("file name (REJECT macro documents are not accepted)")
        );
    }

    #[test]
    fn content_magic() {
        assert_eq!(executable_kind(&pe()), Some("PE executable"));
        assert_eq!(executable_kind(b"\x7fELF\x02\x01"), Some("ELF executable"));
        assert_eq!(executable_kind(b"MZ is a short text"), None);
        let mut bad_offset = pe();
        bad_offset[60..64].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(executable_kind(&bad_offset), Some("DOS executable"));
    }

    fn with_attachment(name: &str, ctype: &str, data: &[u8]) -> Vec<u8> {
        let b64 = base64(data);
        format!(
            "From: a@example.org\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n--BB\r\n\
             Content-Type: text/plain\r\n\r\nhello\r\n--BB\r\n\
             Content-Type: {ctype}; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--BB--\r\n"
        )
        .into_bytes()
    }

    pub fn base64(data: &[u8]) -> String {
        const TABLE: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn messages() {
        let p = policy();
        let found = banned(
            &p,
            &with_attachment("invoice.pdf.exe", "application/pdf", b"x"),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].name, "invoice.pdf.exe");

        let found = banned(&p, &with_attachment("notes.txt", "text/plain", &pe()));
        assert_eq!(found[0].reason, "PE executable");

        let found = banned(
            &p,
            &with_attachment("a.bin", "application/x-msdownload", b"data"),
        );
        assert!(found[0].reason.starts_with("declared type"));

        let zip = zip_of(&[("readme.txt", b"hi"), ("docs/run.scr", b"x")]);
        let found = banned(&p, &with_attachment("files.zip", "application/zip", &zip));
        assert_eq!(found[0].name, "files.zip/docs/run.scr");

        let inner = zip_of(&[("payload.dat", &pe())]);
        let outer = tar_of(&[("inner.zip", &inner)]);
        let found = banned(
            &p,
            &with_attachment("x.tar.gz", "application/gzip", &gzip_of(&outer)),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].name.ends_with("inner.zip/payload.dat"),
            "{found:?}"
        );

        assert!(
            banned(
                &p,
                &with_attachment("ok.pdf", "application/pdf", b"%PDF-1.4")
            )
            .is_empty()
        );
    }

    #[test]
    fn depth_limit_applies() {
        let mut p = policy();
        p.limits.depth = 1;
        let inner = zip_of(&[("evil.exe", b"x")]);
        let outer = zip_of(&[("inner.zip", &inner)]);
        let message = with_attachment("outer.zip", "application/zip", &outer);
        // Too deep to open: not a pass but unchecked.
        let report = p.check_message(&message, None).unwrap();
        assert!(report.banned.is_empty(), "{report:?}");
        assert_eq!(report.unchecked.len(), 1, "{report:?}");
        assert_eq!(report.unchecked[0].name, "outer.zip/inner.zip");
        assert!(report.unchecked[0].reason.contains("scanner_archive_depth"));
        p.limits.depth = 2;
        assert_eq!(banned(&p, &message).len(), 1);
    }

    /// A stored zip whose second member's CRC is wrong, as an attacker
    /// makes one so that the whole archive fails to read.
    fn zip_with_bad_crc() -> Vec<u8> {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        writer.start_file("readme.txt", stored).unwrap();
        writer.write_all(b"read me first").unwrap();
        writer.start_file("broken.txt", stored).unwrap();
        writer.write_all(b"CRC will not match").unwrap();
        writer.start_file("evil.exe", stored).unwrap();
        writer.write_all(b"not really a program").unwrap();
        let mut zip = writer.finish().unwrap().into_inner();
        let at = zip
            .windows(18)
            .position(|w| w == b"CRC will not match")
            .unwrap();
        zip[at] ^= 0x20;
        zip
    }

    #[test]
    fn bad_crc_member_does_not_hide_the_other_names() {
        let p = policy();
        let report = p
            .check_message(
                &with_attachment("files.zip", "application/zip", &zip_with_bad_crc()),
                None,
            )
            .unwrap();
        assert_eq!(report.banned.len(), 1, "{report:?}");
        assert_eq!(report.banned[0].name, "files.zip/evil.exe");
        assert_eq!(report.unchecked.len(), 1, "{report:?}");
        assert_eq!(report.unchecked[0].name, "files.zip/broken.txt");
    }

    #[test]
    fn bytes_before_the_zip_signature_do_not_hide_it() {
        let p = policy();
        let mut prefixed = vec![b'x'];
        prefixed.extend(zip_of(&[("evil.exe", b"x")]));
        let found = banned(
            &p,
            &with_attachment("files.zip", "application/zip", &prefixed),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].name, "files.zip/evil.exe");
    }

    #[test]
    fn encrypted_unknown_and_unreadable_are_unchecked() {
        let p = policy();
        // An encrypted member: flag bit 0 in both headers.
        let mut zip = zip_of(&[("invoice.pdf", b"%PDF-1.4 not really")]);
        for at in [
            6,
            zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap() + 8,
        ] {
            zip[at] |= 1;
        }
        let report = p
            .check_message(&with_attachment("a.zip", "application/zip", &zip), None)
            .unwrap();
        assert_eq!(report.unchecked.len(), 1, "{report:?}");
        assert_eq!(report.unchecked[0].reason, "encrypted");
        // An unknown compression method (99, AES in WinZip's scheme; 77 here).
        let mut zip = zip_of(&[("data.bin", b"content")]);
        let central = zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        for at in [8, central + 10] {
            zip[at] = 77;
            zip[at + 1] = 0;
        }
        let report = p
            .check_message(&with_attachment("b.zip", "application/zip", &zip), None)
            .unwrap();
        assert_eq!(report.unchecked.len(), 1, "{report:?}");
        assert!(
            report.unchecked[0].reason.contains("not supported"),
            "{report:?}"
        );
        // Not an archive at all, though it starts like one.
        let report = p
            .check_message(
                &with_attachment("c.zip", "application/zip", b"PK\x03\x04garbage"),
                None,
            )
            .unwrap();
        assert_eq!(report.unchecked.len(), 1, "{report:?}");
        assert!(report.unchecked[0].reason.starts_with("unreadable archive"));
    }

    #[test]
    fn deeply_nested_messages_are_unchecked() {
        let p = policy();
        let mut message = String::from_utf8(with_attachment(
            "evil.exe",
            "application/octet-stream",
            b"x",
        ))
        .unwrap();
        for level in 0..(MAX_MESSAGE_DEPTH + 4) {
            message = format!(
                "From: a@example.org\r\nSubject: level {level}\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/mixed; boundary=\"L{level}\"\r\n\r\n--L{level}\r\n\
                 Content-Type: message/rfc822\r\n\r\n{message}\r\n--L{level}--\r\n"
            );
        }
        let report = p.check_message(message.as_bytes(), None).unwrap();
        assert!(
            !report.banned.is_empty() || !report.unchecked.is_empty(),
            "an .exe beyond the nesting limit passed: {report:?}"
        );
    }

    #[test]
    fn names_are_escaped_for_replies_and_logs() {
        assert_eq!(
            printable("a\r\nb\u{e9}\\.exe"),
            "a\\x0d\\x0ab\\xc3\\xa9\\x5c.exe"
        );
        assert!(printable(&"x".repeat(1000)).len() < 210);
        let p = policy();
        let zip = zip_of(&[("caf\u{e9}\u{7}.exe", b"x")]);
        let found = banned(&p, &with_attachment("files.zip", "application/zip", &zip));
        assert_eq!(found[0].name, "files.zip/caf\\xc3\\xa9\\x07.exe");
        assert!(
            found
                .iter()
                .all(|b| b.name.is_ascii() && b.reason.is_ascii())
        );
    }

    /// Found by fuzz/ (target banned): mail-parser's debug build asserts
    /// on this structure. Whatever the parser does, the check answers.
    #[test]
    fn a_message_the_parser_chokes_on_gets_an_answer() {
        let raw = include_bytes!("testdata/mail-parser-debug-assert.eml");
        let report = policy().check_message(raw, None).unwrap();
        if cfg!(debug_assertions) {
            assert_eq!(report.unchecked.len(), 1, "{report:?}");
        }
    }

    #[test]
    fn a_passed_deadline_stops_the_walk() {
        let p = policy();
        let zip = zip_of(&[("a.txt", b"x")]);
        let past = Instant::now() - std::time::Duration::from_secs(1);
        assert_eq!(
            p.check_message(
                &with_attachment("a.zip", "application/zip", &zip),
                Some(past)
            ),
            Err(TimedOut)
        );
    }

    #[test]
    fn hostile_mime_does_not_panic() {
        let p = policy();
        let mut deep = String::from("Content-Type: multipart/mixed; boundary=a0\r\n\r\n");
        for i in 1..500 {
            deep.push_str(&format!(
                "--a{}\r\nContent-Type: multipart/mixed; boundary=a{i}\r\n\r\n",
                i - 1
            ));
        }
        let _ = p.check_message(deep.as_bytes(), None);
        let mut nested = String::new();
        for _ in 0..200 {
            nested.push_str("Content-Type: message/rfc822\r\n\r\n");
        }
        let _ = p.check_message(nested.as_bytes(), None);
        let _ = p.check_message(b"", None);
        let _ = p.check_message(b"\xff\xfe\r\n\r\n--", None);
        let _ = p.check_message(
            b"Content-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBAoAAAAAA===\r\n", None,
        );
    }
}
