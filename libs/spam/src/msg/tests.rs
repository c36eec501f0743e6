use super::render::MAX_LINE;
use super::*;

#[test]
fn multipart_with_encodings() {
    let m = Message::parse(
        b"From x@y Mon Jan 1 00:00:00 2024\nSubject: =?utf-8?B?SGVsbG8=?= world\n\
          Content-Type: multipart/alternative; boundary=\"b1\"\n\n\
          preamble\n--b1\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n\
          Cheap =3D pills\n--b1\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n\
          PHA+Q2xpY2sgPGEgaHJlZj0iaHR0cDovL3NwYW0uZXhhbXBsZS8iPmhlcmU8L2E+PC9wPg==\n--b1--\n",
    );
    assert_eq!(m.header("subject").unwrap(), b"Hello world");
    assert_eq!(m.parts.len(), 2);
    assert_eq!(m.parts[0].body, b"Cheap = pills");
    // The subject is a line of its own, as in SpamAssassin.
    assert_eq!(m.body_lines[0], b"Hello world\n");
    assert!(m.body_lines[1].starts_with(b"Cheap = pills"));
    assert!(m.uris.contains(&"http://spam.example/".to_string()));
    assert_eq!(m.part_headers.len(), 2);
    assert!(!m.full.starts_with(b"From "));
}

#[test]
fn addresses() {
    assert_eq!(first_addr(b"\"Joe\" <joe@example.com>"), b"joe@example.com");
    assert_eq!(first_addr(b"joe@example.com (Joe)"), b"joe@example.com");
    assert_eq!(
        display_name(b"\"Joe Bloggs\" <joe@example.com>"),
        b"Joe Bloggs"
    );
}

#[test]
fn missing_separator() {
    let m = Message::parse(b"Subject: x\nthis is not a header\nmore\n");
    assert!(m.missing_separator);
    assert_eq!(m.parts[0].body, b"this is not a header\nmore\n");
}

#[test]
fn nested_boundary_extending_the_outer_one() {
    let m = Message::parse(
        b"Content-Type: multipart/related; boundary=\"B\"\n\n--B\n\
          Content-Type: multipart/alternative; boundary=\"BAA\"\n\n--BAA\n\
          Content-Type: text/plain\n\nplain\n--BAA\nContent-Type: text/html\n\n<p>html</p>\n\
          --BAA--\n--B--\nepilogue\n",
    );
    let types: Vec<&str> = m.entities.iter().map(|e| e.ctype.as_str()).collect();
    assert_eq!(
        types,
        [
            "multipart/related",
            "multipart/alternative",
            "text/plain",
            "text/html"
        ]
    );
    assert_eq!(m.entities[1].leaves, 0..2);
    assert!(!m.entities[1].is_leaf);
    assert_eq!(m.parts[0].body, b"plain");
    assert!(m.mime_epilogue);
    assert_eq!(m.html.len(), 1);
    assert_eq!(m.parts[1].html, Some(0));
}

#[test]
fn entities_as_spamassassin_reads_them() {
    let m = Message::parse(
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\
          Content-Type: TEXT/enriched; charset=\"UTF-8\"\n\
          Content-Transfer-Encoding: Base64\n\n\
          --b\nContent-Type: multipart/mixed\n\n--b\n\
          Content-Type: application/octet-stream\n\
          Content-Disposition: attachment; filename=\"page.htm\"\n\nx\n--b--\n",
    );
    let e = &m.entities;
    assert_eq!(e[1].ctype, "text/plain");
    assert_eq!(e[1].charset, "utf-8");
    assert_eq!(e[1].encoding, "base64");
    // A multipart without a boundary is text.
    assert_eq!(e[2].ctype, "text/plain");
    assert_eq!(e[3].disposition, "attachment; filename=\"page.htm\"");
    assert_eq!(m.parts[2].effective_type, "text/html");
    // No Content-Type at all: us-ascii text.
    let plain = Message::parse(b"Subject: x\n\nhi\n");
    assert_eq!(plain.entities[0].charset, "us-ascii");
}

#[test]
fn quoted_printable_as_spamassassin_decodes_it() {
    let m = Message::parse(
        b"Content-Transfer-Encoding: quoted-printable\n\n\
          soft =\r\nbreak   \r\nx=3Dy=20=20 \r\n",
    );
    assert_eq!(m.parts[0].body, b"soft break\nx=y  \n");
    assert_eq!(m.parts[0].qp.bytes, 7 + 9 + 13);
    // =3D is needed; the trailing =20=20 are too.
    assert_eq!(m.parts[0].qp.needless, 0.0);
    assert!(!m.parts[0].qp.long_line);
    let long = format!(
        "Content-Transfer-Encoding: quoted-printable\n\n{}=41\n",
        "a".repeat(77)
    );
    let m = Message::parse(long.as_bytes());
    assert!(m.parts[0].qp.long_line);
    assert_eq!(m.parts[0].qp.needless, 1.0);
}

#[test]
fn body_lines_as_spamassassin_builds_them() {
    let m = Message::parse(b"Subject:  Hello \n\nfirst\nline \n \n\tsecond  para\n\n\n");
    assert_eq!(
        m.body_lines,
        [&b"Hello\n"[..], b"first line \n", b" second para\n"]
    );
    // Runs of more than 20 blank lines keep 20.
    let mut text = b"Subject: x\n\na\n".to_vec();
    text.extend(b" \n".repeat(30));
    text.extend(b"b\n");
    let m = Message::parse(&text);
    assert_eq!(m.parts[0].body.iter().filter(|&&c| c == b'\n').count(), 22);
    assert_eq!(m.body_len, text.len() - 12);
    // Body rules see the first 50 kB of a part, to a line end.
    let big = format!("Subject: x\n\n{}\nrest\n", "word ".repeat(20_000));
    let m = Message::parse(big.as_bytes());
    let seen: usize = m.body_lines.iter().skip(1).map(Vec::len).sum();
    assert!((50_000..51_100).contains(&seen), "{seen}");
    assert!(m.body_lines.iter().all(|l| l.len() <= MAX_LINE + 1));
}

#[test]
fn first_addresses() {
    assert_eq!(
        first_addr(b"\"<Karen\" <karen@example.com>"),
        b"karen@example.com"
    );
    assert_eq!(
        first_addr(b"a@example.com, \"B\" <b@example.org>"),
        b"a@example.com"
    );
    assert_eq!(first_addr(b"\"Doe, J\" <j@example.com>"), b"j@example.com");
}
