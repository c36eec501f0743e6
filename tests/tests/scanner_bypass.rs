//! The banned check fails closed, end to end: the archive and MIME tricks
//! that once passed an .exe (a bad CRC on any member, nesting beyond
//! scanner_archive_depth, a byte before the zip signature, message/rfc822
//! parts nested past 16) are refused, as are encrypted members and the
//! disk-image extensions; names in replies and log lines are escaped; and
//! the scanner judges the message with the real client's Received header
//! at the top, as SpamAssassin does behind Postfix.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;

use mailgate_tests::{Backend, Client, Gateway, base64, message, with_attachment};

fn scanner_gateway(backend: &Backend, home: &std::path::Path, extra: &str) -> Gateway {
    let settings = format!(
        "content_scanner = scanner\nscanner_directory = {}\nspam_bayes_directory =\n\
         spam_stock_rules_directory =\nscanner_timeout = 20s\n{extra}",
        home.display()
    );
    Gateway::configure(backend, &settings)
        .with_scanner()
        .launch()
}

fn home() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn send(gateway: &Gateway, message: &str) -> String {
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message("a@sender.example", &["b@example.com"], message);
    client.send("QUIT");
    reply
}

fn zip(files: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, data) in files {
        writer.start_file(*name, options).expect("zip entry");
        writer.write_all(data).expect("zip data");
    }
    writer.finish().expect("zip").into_inner()
}

fn stored(files: &[(&str, &[u8])]) -> Vec<u8> {
    zip(files, zip::CompressionMethod::Stored)
}

/// One message/rfc822 level around `inner`.
fn wrap(inner: &str, level: usize) -> String {
    format!(
        "From: a@sender.example\nTo: b@example.com\nSubject: level {level}\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"L{level}\"\n\n--L{level}\n\
         Content-Type: message/rfc822\n\n{inner}\n--L{level}--\n"
    )
}

#[test]
fn archive_and_mime_tricks_are_refused_not_passed() {
    let backend = Backend::start();
    let home = home();
    let gateway = scanner_gateway(&backend, home.path(), "");

    let mut bad_crc = stored(&[
        ("readme.txt", b"read me"),
        ("broken.txt", b"CRC will not match"),
        ("evil.exe", b"not a program"),
    ]);
    let at = bad_crc
        .windows(18)
        .position(|w| w == b"CRC will not match")
        .expect("member data");
    bad_crc[at] ^= 0x20;

    let mut nested = stored(&[("evil.exe", b"x")]);
    for level in 0..3 {
        nested = stored(&[(&format!("level{level}.zip"), &nested)]);
    }

    let mut prefixed = vec![b'!'];
    prefixed.extend(stored(&[("evil.exe", b"x")]));

    let mut encrypted = stored(&[("invoice.pdf", b"%PDF-1.4")]);
    let central = encrypted
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("central directory");
    for at in [6, central + 8] {
        encrypted[at] |= 1;
    }

    let mut deep = with_attachment("DEEP", "evil.exe", "application/octet-stream", b"x");
    for level in 0..20 {
        deep = wrap(&deep, level);
    }

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a bad CRC on one member",
            with_attachment("C1", "files.zip", "application/zip", &bad_crc),
            "banned attachment: files.zip/evil.exe",
        ),
        (
            "nesting beyond scanner_archive_depth",
            with_attachment("C2", "files.zip", "application/zip", &nested),
            "unchecked content: files.zip/level2.zip/level1.zip/level0.zip",
        ),
        (
            "a byte before the zip signature",
            with_attachment("C3", "files.zip", "application/zip", &prefixed),
            "banned attachment: files.zip/evil.exe",
        ),
        (
            "an encrypted member",
            with_attachment("C4", "files.zip", "application/zip", &encrypted),
            "unchecked content: files.zip/invoice.pdf (encrypted)",
        ),
        ("20 nested message/rfc822 parts", deep, "554 5.7.1"),
        (
            "a disk image",
            with_attachment("C6", "invoice.iso", "application/octet-stream", b"CD001"),
            "banned attachment: invoice.iso (extension .iso)",
        ),
        (
            "a OneNote file",
            with_attachment("C7", "notes.one", "application/octet-stream", b"x"),
            "extension .one",
        ),
    ];
    for (what, text, expected) in &cases {
        let reply = send(&gateway, text);
        assert!(reply.starts_with("554 5.7.1"), "{what}: {reply}");
        assert!(reply.contains(expected), "{what}: {reply}");
    }
    let log = gateway.log();
    assert!(!log.contains("action=pass"), "{log}");

    // A harmless zip still passes.
    let fine = stored(&[("report.pdf", b"%PDF-1.4"), ("notes.txt", b"hello")]);
    let reply = send(
        &gateway,
        &with_attachment("FINE-ZIP", "files.zip", "application/zip", &fine),
    );
    assert!(reply.starts_with("250"), "{reply}");
    backend.wait_for_message("FINE-ZIP");
}

#[test]
fn file_names_are_escaped_in_replies_and_logs_and_unchecked_can_pass() {
    let backend = Backend::start();
    let home = home();
    let gateway = scanner_gateway(&backend, home.path(), "banned_unchecked_action = pass\n");
    // An RFC 2231 name with UTF-8 and a control character in it.
    let text = format!(
        "From: a@sender.example\nTo: b@example.com\nSubject: x\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"XX\"\n\n--XX\nContent-Type: text/plain\n\n\
         NAMES\n--XX\nContent-Type: application/octet-stream\n\
         Content-Disposition: attachment; filename*=utf-8''fact%C3%A9%01ura.exe\n\
         Content-Transfer-Encoding: base64\n\n{}\n--XX--\n",
        base64(b"data")
    );
    let reply = send(&gateway, &text);
    assert!(reply.starts_with("554 5.7.1"), "{reply}");
    assert!(reply.contains("fact\\xc3\\xa9\\x01ura.exe"), "{reply}");
    assert!(
        reply
            .bytes()
            .all(|b| b == b'\n' || (0x20..0x7f).contains(&b)),
        "{reply:?}"
    );
    let log = gateway.wait_for_log("fact\\xc3\\xa9\\x01ura.exe");
    assert!(
        !log.contains('\u{1}') && !log.contains('\u{e9}'),
        "raw name in the log"
    );

    // banned_unchecked_action = pass: delivered, and said so in a header.
    let mut encrypted = stored(&[("secret.pdf", b"%PDF-1.4")]);
    let central = encrypted
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("central directory");
    for at in [6, central + 8] {
        encrypted[at] |= 1;
    }
    let reply = send(
        &gateway,
        &with_attachment("ENCRYPTED-PASS", "a.zip", "application/zip", &encrypted),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let got = backend.wait_for_message("ENCRYPTED-PASS");
    assert_eq!(
        got.header("X-Unchecked-Content"),
        ["a.zip/secret.pdf (encrypted)"]
    );
}

#[test]
fn the_spam_engine_sees_the_real_client_first() {
    let backend = Backend::start();
    let home = home();
    let rules = home.path().join("local.cf");
    // Hits only when the topmost relay SpamAssassin sees is the client
    // that really connected, with the HELO it really gave.
    fs::write(
        &rules,
        "header REAL_CLIENT_FIRST X-Spam-Relays-Trusted =~ /^\\[ ip=127\\.0\\.0\\.1 rdns=\\S* helo=client\\.example\\.org /\n\
         score REAL_CLIENT_FIRST 0.01\n\
         header FORGED_HOP_TRUSTED X-Spam-Relays-Trusted =~ /^\\[ ip=10\\.9\\.8\\.7 /\n\
         score FORGED_HOP_TRUSTED 0.01\n",
    )
    .expect("local.cf");
    let extra = format!("spam_rules_files = {}\n", rules.display());
    let gateway = scanner_gateway(&backend, home.path(), &extra);
    let forged = format!(
        "Received: from trusted.example (trusted.example [10.9.8.7])\n\tby mx.example.com; \
         Mon, 1 Jan 2024 00:00:00 +0000\n{}",
        message("relayed", "REAL-CLIENT")
    );
    assert!(send(&gateway, &forged).starts_with("250"));
    let got = backend.wait_for_message("REAL-CLIENT");
    let status = got.header("X-Spam-Status").join(" ");
    assert!(status.contains("REAL_CLIENT_FIRST"), "{status}");
    assert!(!status.contains("FORGED_HOP_TRUSTED"), "{status}");
}
