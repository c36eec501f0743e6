//! Looking inside zip, gzip and tar archives, with limits against archive
//! bombs: a budget of bytes and entries shared by the whole message, a cap
//! on the expansion ratio of each member, and a depth limit (applied by the
//! caller). Nothing is ever decompressed beyond what the budget allows.

use std::io::{Cursor, Read};

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Archives inside archives are opened this deep (1: only the outer one).
    pub depth: usize,
    /// Total bytes unpacked from all archives of one message.
    pub max_size: u64,
    /// Unpacked size over packed size, per member.
    pub max_ratio: u64,
    /// Total members of all archives of one message.
    pub max_entries: usize,
}

/// What is left to unpack for one message.
#[derive(Debug)]
pub struct Budget {
    bytes: u64,
    entries: usize,
}

impl Budget {
    pub fn new(limits: &Limits) -> Budget {
        Budget {
            bytes: limits.max_size,
            entries: limits.max_entries,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Zip,
    Gzip,
    Tar,
}

/// Recognises an archive by its magic, whatever its name says. A zip is
/// also recognised by its end-of-central-directory record when other bytes
/// come before it (a self-extracting program, or junk put there so that a
/// check reading only the start passes it by): zip readers, Windows'
/// included, open those.
pub fn kind(data: &[u8]) -> Option<Kind> {
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        Some(Kind::Zip)
    } else if data.starts_with(&[0x1f, 0x8b]) {
        Some(Kind::Gzip)
    } else if data.len() >= 262 && &data[257..262] == b"ustar" {
        Some(Kind::Tar)
    } else if has_zip_trailer(data) {
        Some(Kind::Zip)
    } else {
        None
    }
}

/// An end-of-central-directory record whose comment length reaches exactly
/// the end of the data: how zip readers find an archive's directory.
fn has_zip_trailer(data: &[u8]) -> bool {
    const EOCD: usize = 22;
    let earliest = data.len().saturating_sub(EOCD + u16::MAX as usize);
    (earliest..data.len().saturating_sub(EOCD - 1))
        .rev()
        .any(|at| {
            data[at..].starts_with(b"PK\x05\x06")
                && usize::from(u16::from_le_bytes([data[at + 20], data[at + 21]]))
                    == data.len() - at - EOCD
        })
}

#[derive(Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub content: Content,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Content {
    Data(Vec<u8>),
    /// The content cannot be looked at (encrypted, an unknown compression
    /// method, damaged): the name can still be judged, the content is
    /// unchecked, and the caller says so.
    Unchecked(String),
}

impl Member {
    pub fn data(&self) -> Option<&[u8]> {
        match &self.content {
            Content::Data(data) => Some(data),
            Content::Unchecked(_) => None,
        }
    }
}

/// Why an archive was not (fully) unpacked. The first three are what
/// archive bombs look like; the caller treats them as banned content.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    TooLarge,
    TooManyEntries,
    Ratio {
        name: String,
    },
    /// Not a valid archive after all: nothing in it could be listed.
    Corrupt(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::TooLarge => write!(f, "archive unpacks beyond scanner_archive_max_size"),
            Problem::TooManyEntries => {
                write!(
                    f,
                    "archive has more entries than scanner_archive_max_entries"
                )
            }
            Problem::Ratio { name } => write!(
                f,
                "archive member {name} expands beyond scanner_archive_max_ratio"
            ),
            Problem::Corrupt(m) => write!(f, "unreadable archive: {m}"),
        }
    }
}

/// Unpacks the members of one archive level.
pub fn members(
    kind: Kind,
    data: &[u8],
    limits: &Limits,
    budget: &mut Budget,
) -> Result<Vec<Member>, Problem> {
    match kind {
        Kind::Zip => zip_members(data, limits, budget),
        Kind::Gzip => {
            let mut decoder = flate2::read::GzDecoder::new(data);
            // The name stored in the gzip header, if any; else unknown.
            let name = decoder
                .header()
                .and_then(|h| h.filename())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default();
            take_entry(budget)?;
            let content = unless_damaged(read_limited(
                &mut decoder,
                data.len() as u64,
                &name,
                limits,
                budget,
            ))?;
            Ok(vec![Member { name, content }])
        }
        Kind::Tar => {
            let mut archive = tar::Archive::new(data);
            let entries = archive
                .entries()
                .map_err(|e| Problem::Corrupt(e.to_string()))?;
            let mut out = Vec::new();
            for entry in entries {
                // A damaged header ends the listing; what was listed before
                // it is still judged, and the rest is unchecked.
                let mut entry = match entry {
                    Ok(entry) => entry,
                    Err(e) if out.is_empty() => return Err(Problem::Corrupt(e.to_string())),
                    Err(e) => {
                        out.push(Member {
                            name: String::new(),
                            content: Content::Unchecked(format!("damaged tar entry: {e}")),
                        });
                        break;
                    }
                };
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                take_entry(budget)?;
                let name = entry
                    .path()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // tar does not compress: the ratio cannot be abused, the
                // size budget still applies.
                let packed = entry.size().max(1);
                let content =
                    unless_damaged(read_limited(&mut entry, packed, &name, limits, budget))?;
                out.push(Member { name, content });
            }
            Ok(out)
        }
    }
}

/// Every member the central directory lists is returned with its name, so
/// that each name is judged even when some member cannot be read (a bad
/// CRC, an unknown method, encryption): those come back as unchecked.
fn zip_members(data: &[u8], limits: &Limits, budget: &mut Budget) -> Result<Vec<Member>, Problem> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(data)).map_err(|e| Problem::Corrupt(e.to_string()))?;
    let mut out = Vec::new();
    for index in 0..archive.len() {
        take_entry(budget)?;
        let listed = archive.by_index_raw(index).map(|file| {
            let name = file
                .name()
                .map(|n| n.into_owned())
                .unwrap_or_else(|_| String::from_utf8_lossy(file.name_raw()).into_owned());
            (
                name,
                file.encrypted(),
                file.is_dir(),
                file.compressed_size(),
                file.compression(),
            )
        });
        let (name, encrypted, is_dir, packed, method) = match listed {
            Ok(listed) => listed,
            Err(e) => {
                out.push(Member {
                    name: String::new(),
                    content: Content::Unchecked(format!("damaged zip entry {index}: {e}")),
                });
                continue;
            }
        };
        if is_dir {
            continue;
        }
        if encrypted {
            out.push(Member {
                name,
                content: Content::Unchecked("encrypted".into()),
            });
            continue;
        }
        let content = match archive.by_index(index) {
            Ok(mut file) => unless_damaged(read_limited(
                &mut file,
                packed.max(1),
                &name,
                limits,
                budget,
            ))?,
            Err(
                zip::result::ZipError::UnsupportedArchive(_)
                | zip::result::ZipError::CompressionMethodNotSupported(_),
            ) => Content::Unchecked(format!("compression method {method} not supported")),
            Err(e) => Content::Unchecked(format!("damaged: {e}")),
        };
        out.push(Member { name, content });
    }
    Ok(out)
}

/// A member that could not be read to its end is unchecked; an archive
/// bomb stays an error for the whole message.
fn unless_damaged(read: Result<Vec<u8>, Problem>) -> Result<Content, Problem> {
    match read {
        Ok(data) => Ok(Content::Data(data)),
        Err(Problem::Corrupt(why)) => Ok(Content::Unchecked(format!("damaged: {why}"))),
        Err(bomb) => Err(bomb),
    }
}

fn take_entry(budget: &mut Budget) -> Result<(), Problem> {
    budget.entries = budget
        .entries
        .checked_sub(1)
        .ok_or(Problem::TooManyEntries)?;
    Ok(())
}

/// Reads at most what the budget and the ratio allow, plus one byte to
/// tell "exactly at the limit" from "beyond it". The declared sizes in
/// archive headers are not trusted.
fn read_limited(
    reader: &mut impl Read,
    packed: u64,
    name: &str,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<Vec<u8>, Problem> {
    let by_ratio = packed.saturating_mul(limits.max_ratio).max(64 * 1024);
    let cap = by_ratio.min(budget.bytes);
    let mut content = Vec::new();
    let read = reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut content)
        .map_err(|e| Problem::Corrupt(e.to_string()))? as u64;
    if read > cap {
        return Err(if cap == budget.bytes {
            Problem::TooLarge
        } else {
            Problem::Ratio {
                name: name.to_string(),
            }
        });
    }
    budget.bytes -= read;
    Ok(content)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::io::Write;

    pub fn limits() -> Limits {
        Limits {
            depth: 3,
            max_size: 10 * 1024 * 1024,
            max_ratio: 100,
            max_entries: 100,
        }
    }

    pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in files {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    pub fn gzip_of(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn recognises_and_unpacks_each_kind() {
        let zip = zip_of(&[("a.txt", b"hello"), ("b/c.exe", b"MZ")]);
        assert_eq!(kind(&zip), Some(Kind::Zip));
        let mut budget = Budget::new(&limits());
        let got = members(Kind::Zip, &zip, &limits(), &mut budget).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].name, "b/c.exe");
        assert_eq!(got[1].data(), Some(&b"MZ"[..]));

        let gz = gzip_of(b"inner");
        assert_eq!(kind(&gz), Some(Kind::Gzip));
        let got = members(Kind::Gzip, &gz, &limits(), &mut budget).unwrap();
        assert_eq!(got[0].data(), Some(&b"inner"[..]));

        let tar = tar_of(&[("x/evil.scr", b"data")]);
        assert_eq!(kind(&tar), Some(Kind::Tar));
        let got = members(Kind::Tar, &tar, &limits(), &mut budget).unwrap();
        assert_eq!(got[0].name, "x/evil.scr");
        assert_eq!(kind(b"plain text"), None);
    }

    #[test]
    fn bombs_are_stopped() {
        let zeros = vec![0u8; 5 * 1024 * 1024];
        let zip = zip_of(&[("zeros", &zeros)]);
        let mut budget = Budget::new(&limits());
        assert_eq!(
            members(Kind::Zip, &zip, &limits(), &mut budget),
            Err(Problem::Ratio {
                name: "zeros".into()
            })
        );
        let small = Limits {
            max_ratio: 1_000_000,
            max_size: 1024 * 1024,
            ..limits()
        };
        let mut budget = Budget::new(&small);
        assert_eq!(
            members(Kind::Zip, &zip, &small, &mut budget),
            Err(Problem::TooLarge)
        );
        let many: Vec<(String, Vec<u8>)> =
            (0..150).map(|i| (format!("f{i}"), vec![b'x'])).collect();
        let refs: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let zip = zip_of(&refs);
        let mut budget = Budget::new(&limits());
        assert_eq!(
            members(Kind::Zip, &zip, &limits(), &mut budget),
            Err(Problem::TooManyEntries)
        );
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let mut budget = Budget::new(&limits());
        for data in [
            &b"PK\x03\x04garbage"[..],
            &[0x1f, 0x8b, 8, 0, 0, 0],
            &[0u8; 600],
        ] {
            let _ = members(Kind::Zip, data, &limits(), &mut budget);
            let _ = members(Kind::Gzip, data, &limits(), &mut budget);
            let _ = members(Kind::Tar, data, &limits(), &mut budget);
        }
        let mut zip = zip_of(&[("a.txt", b"hello world hello world")]);
        let len = zip.len();
        zip[len / 2] ^= 0xff;
        let _ = members(Kind::Zip, &zip, &limits(), &mut Budget::new(&limits()));
    }
}
