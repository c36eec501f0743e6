//! Banned attachments: by file name (extension, double extension, the
//! site's `banned_filename_re` tables), by declared MIME type, and by
//! content (PE or ELF executables whatever their name), inside zip, gzip
//! and tar archives too.

use std::collections::HashSet;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use mailgate_config::Table;
use mailgate_ipc::protocol::scanner::BannedPart;

use crate::archive::{self, Budget, Limits, Problem};

/// MIME nesting deeper than this is not looked into (mail-parser itself
/// stops far earlier on hostile input; this bounds our own recursion).
const MAX_MESSAGE_DEPTH: usize = 16;

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

    /// Every banned part of a message, archives included.
    pub fn check_message(&self, raw: &[u8]) -> Vec<BannedPart> {
        let mut found = Vec::new();
        let mut budget = Budget::new(&self.limits);
        if let Some(message) = MessageParser::default().parse(raw) {
            self.walk_message(&message, "", 0, &mut budget, &mut found);
        }
        found
    }

    fn walk_message(
        &self,
        message: &mail_parser::Message<'_>,
        prefix: &str,
        depth: usize,
        budget: &mut Budget,
        found: &mut Vec<BannedPart>,
    ) {
        if depth > MAX_MESSAGE_DEPTH {
            return;
        }
        for (index, part) in message.parts.iter().enumerate() {
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
            let mut ban = |reason: String| {
                found.push(BannedPart {
                    name: label.clone(),
                    reason,
                })
            };
            if let Some(reason) = filename.as_deref().and_then(|n| self.judge_name(n)) {
                ban(reason);
            }
            if let Some(reason) = declared.as_deref().and_then(|t| self.judge_type(t)) {
                ban(reason);
            }
            match &part.body {
                PartType::Message(inner) => {
                    self.walk_message(inner, &format!("{label}/"), depth + 1, budget, found)
                }
                PartType::Multipart(_) => {}
                PartType::Binary(data) | PartType::InlineBinary(data) => {
                    self.check_content(&label, data, 0, budget, found)
                }
                PartType::Text(text) | PartType::Html(text) => {
                    self.check_content(&label, text.as_bytes(), 0, budget, found)
                }
            }
        }
    }

    fn check_content(
        &self,
        label: &str,
        data: &[u8],
        depth: usize,
        budget: &mut Budget,
        found: &mut Vec<BannedPart>,
    ) {
        if let Some(reason) = self.judge_content(data) {
            found.push(BannedPart {
                name: label.to_string(),
                reason,
            });
            return;
        }
        let Some(kind) = archive::kind(data) else {
            return;
        };
        if depth >= self.limits.depth {
            return;
        }
        match archive::members(kind, data, &self.limits, budget) {
            Ok(members) => {
                for member in members {
                    let name = if member.name.is_empty() {
                        format!("{label}/(gzip content)")
                    } else {
                        format!("{label}/{}", member.name)
                    };
                    if let Some(reason) = self.judge_name(&member.name) {
                        found.push(BannedPart {
                            name: name.clone(),
                            reason,
                        });
                    }
                    if let Some(data) = member.data {
                        self.check_content(&name, &data, depth + 1, budget, found);
                    }
                }
            }
            // A damaged archive is scanned by clamd as it is; what cannot
            // be opened cannot be run either.
            Err(Problem::Corrupt(_)) => {}
            Err(problem) => found.push(BannedPart {
                name: label.to_string(),
                reason: problem.to_string(),
            }),
        }
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
        let found = p.check_message(&with_attachment("invoice.pdf.exe", "application/pdf", b"x"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].name, "invoice.pdf.exe");

        let found = p.check_message(&with_attachment("notes.txt", "text/plain", &pe()));
        assert_eq!(found[0].reason, "PE executable");

        let found = p.check_message(&with_attachment(
            "a.bin",
            "application/x-msdownload",
            b"data",
        ));
        assert!(found[0].reason.starts_with("declared type"));

        let zip = zip_of(&[("readme.txt", b"hi"), ("docs/run.scr", b"x")]);
        let found = p.check_message(&with_attachment("files.zip", "application/zip", &zip));
        assert_eq!(found[0].name, "files.zip/docs/run.scr");

        let inner = zip_of(&[("payload.dat", &pe())]);
        let outer = tar_of(&[("inner.zip", &inner)]);
        let found = p.check_message(&with_attachment(
            "x.tar.gz",
            "application/gzip",
            &gzip_of(&outer),
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].name.ends_with("inner.zip/payload.dat"),
            "{found:?}"
        );

        assert!(
            p.check_message(&with_attachment("ok.pdf", "application/pdf", b"%PDF-1.4"))
                .is_empty()
        );
    }

    #[test]
    fn depth_limit_applies() {
        let mut p = policy();
        p.limits.depth = 1;
        let inner = zip_of(&[("evil.exe", b"x")]);
        let outer = zip_of(&[("inner.zip", &inner)]);
        assert!(
            p.check_message(&with_attachment("outer.zip", "application/zip", &outer))
                .is_empty()
        );
        p.limits.depth = 2;
        assert_eq!(
            p.check_message(&with_attachment("outer.zip", "application/zip", &outer))
                .len(),
            1
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
        let _ = p.check_message(deep.as_bytes());
        let mut nested = String::new();
        for _ in 0..200 {
            nested.push_str("Content-Type: message/rfc822\r\n\r\n");
        }
        let _ = p.check_message(nested.as_bytes());
        let _ = p.check_message(b"");
        let _ = p.check_message(b"\xff\xfe\r\n\r\n--");
        let _ = p.check_message(
            b"Content-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBAoAAAAAA===\r\n",
        );
    }
}
