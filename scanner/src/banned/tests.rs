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
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
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
    // 20 levels of multipart + message/rfc822: 40 deep, past the bound.
    for level in 0..20 {
        message = format!(
            "From: a@example.org\r\nSubject: level {level}\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"L{level}\"\r\n\r\n--L{level}\r\n\
             Content-Type: message/rfc822\r\n\r\n{message}\r\n--L{level}--\r\n"
        );
    }
    let report = p.check_message(message.as_bytes(), None).unwrap();
    assert!(report.banned.is_empty(), "{report:?}");
    assert_eq!(report.unchecked.len(), 1, "{report:?}");
    assert!(
        report.unchecked[0].reason.contains("nested deeper than 20"),
        "{report:?}"
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

/// Found by fuzz/ (target banned): mail-parser's debug build asserted
/// on this structure (a message/rfc822 part cut inside its headers).
/// mailgate-mime reads it: the attached message is all header.
#[test]
fn a_message_the_parser_chokes_on_gets_an_answer() {
    let raw = include_bytes!("../testdata/mail-parser-debug-assert.eml");
    let report = policy().check_message(raw, None).unwrap();
    assert!(report.unchecked.is_empty(), "{report:?}");
}

fn shape(headers: &str, body: &str) -> Vec<u8> {
    format!("From: a@example.org\r\nSubject: x\r\n{headers}\r\n{body}").into_bytes()
}

const EXE_PART: &str = "Content-Type: application/octet-stream\r\n\
    Content-Disposition: attachment; filename=\"a.exe\"\r\n\r\nxx\r\n";

/// Fails on the code before mailgate-mime: mail-parser took the last
/// Content-Type (text/plain) and saw no attachment, where the spam
/// engine (and Thunderbird) take the first and see a.exe.
#[test]
fn a_second_content_type_does_not_hide_an_attachment() {
    let raw = shape(
        "Content-Type: multipart/mixed; boundary=q\r\nContent-Type: text/plain\r\n",
        &format!("--q\r\nContent-Type: text/plain\r\n\r\nhi\r\n--q\r\n{EXE_PART}--q--\r\n"),
    );
    let found = banned(&policy(), &raw);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].name, "a.exe");
    // The other order: readers that take the last see it, so it is judged.
    let raw = shape(
        "Content-Type: text/plain\r\nContent-Type: multipart/mixed; boundary=q\r\n",
        &format!("--q\r\n{EXE_PART}--q--\r\n"),
    );
    assert_eq!(banned(&policy(), &raw).len(), 1);
}

/// Shapes careful and permissive readers split differently: each
/// attachment some reader shows is judged.
#[test]
fn what_permissive_readers_show_is_judged() {
    // A delimiter followed by more text.
    let prefix = shape(
        "Content-Type: multipart/mixed; boundary=q\r\n",
        &format!("--q\r\n\r\nhi\r\n--qq\r\n{EXE_PART}--q--\r\n"),
    );
    // A nested multipart reusing the outer boundary.
    let reused = shape(
        "Content-Type: multipart/mixed; boundary=q\r\n",
        &format!(
            "--q\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nhi\r\n\
             --q--\r\n--q\r\n{EXE_PART}--q--\r\n"
        ),
    );
    // An encoded message/rfc822 (readers decode it).
    let encoded = shape(
        "Content-Type: multipart/mixed; boundary=q\r\n",
        &format!(
            "--q\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--q--\r\n",
            base64(EXE_PART.as_bytes())
        ),
    );
    // RFC 2231 continuations.
    let continued = shape(
        "Content-Type: multipart/mixed; boundary=q\r\n",
        "--q\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename*0=\"a.\"; filename*1=\"exe\"\r\n\r\nxx\r\n--q--\r\n",
    );
    // Content-Disposition names one file, Content-Type another.
    let two_names = shape(
        "Content-Type: multipart/mixed; boundary=q\r\n",
        "--q\r\nContent-Type: application/octet-stream; name=\"a.exe\"\r\n\
         Content-Disposition: attachment; filename=\"report.pdf\"\r\n\r\nxx\r\n--q--\r\n",
    );
    for raw in [prefix, reused, encoded, continued, two_names] {
        let found = banned(&policy(), &raw);
        assert_eq!(
            found.len(),
            1,
            "{found:?} in {}",
            String::from_utf8_lossy(&raw)
        );
        assert!(found[0].name.ends_with("a.exe"), "{found:?}");
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
