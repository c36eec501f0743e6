use super::*;

fn parse(raw: &[u8]) -> Mime<'_> {
    Mime::parse(raw, &Limits::default())
}

fn types(m: &Mime<'_>) -> Vec<String> {
    m.entities.iter().map(|e| e.content_type.clone()).collect()
}

#[test]
fn a_multipart_with_an_attachment() {
    let raw = b"From x@y Mon Jan 1 00:00:00 2024\r\nSubject: hi\r\n\
        Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n\
        Content-Type: text/plain\r\n\r\nhello\r\n--b1\r\n\
        Content-Type: application/octet-stream; name=\"a.bin\"\r\n\
        Content-Disposition: attachment; filename=\"invoice.exe\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nTVqQAA==\r\n--b1--\r\n";
    let m = parse(raw);
    assert_eq!(
        types(&m),
        ["multipart/mixed", "text/plain", "application/octet-stream"]
    );
    assert_eq!(m.headers()[0].name, "Subject");
    assert_eq!(m.entities[0].children, [1, 2]);
    let leaves: Vec<&Entity> = m.leaves().collect();
    assert_eq!(m.body(leaves[0]), b"hello");
    assert_eq!(leaves[1].filename.as_deref(), Some("invoice.exe"));
    assert_eq!(&m.decoded(leaves[1])[..], b"MZ\x90\x00");
    assert_eq!(m.delimiters.len(), 3);
    assert_eq!(leaves[1].role, Role::Part);
    // Field spans cover their lines in the raw message.
    let ct = leaves[1].header("content-type").unwrap();
    assert!(raw[ct.span.clone()].starts_with(b"Content-Type: application"));
    assert!(raw[ct.span.clone()].ends_with(b"\r\n"));
}

#[test]
fn a_boundary_that_extends_the_outer_one_is_not_the_outer_one() {
    let m = parse(
        b"Content-Type: multipart/related; boundary=\"B\"\n\n--B\n\
          Content-Type: multipart/alternative; boundary=\"BAA\"\n\n--BAA\n\
          Content-Type: text/plain\n\nplain\n--BAA\nContent-Type: text/html\n\n<p>html</p>\n\
          --BAA--\n--B--\nepilogue\n",
    );
    assert_eq!(
        types(&m),
        [
            "multipart/related",
            "multipart/alternative",
            "text/plain",
            "text/html"
        ]
    );
    assert!(m.epilogue);
    // An outer delimiter ends an inner part that never closed.
    let m = parse(
        b"Content-Type: multipart/mixed; boundary=o\n\n--o\n\
          Content-Type: multipart/mixed; boundary=i\n\n--i\n\nin\n--o\n\nafter\n--o--\n",
    );
    assert_eq!(m.entities[1].anomalies, [Anomaly::Unterminated]);
    let bodies: Vec<&[u8]> = m.leaves().map(|e| m.body(e)).collect();
    assert_eq!(bodies, [&b"in"[..], b"after"]);
}

#[test]
fn missing_boundaries() {
    let m = parse(b"Content-Type: multipart/mixed\n\n--x\n\nbody\n");
    assert_eq!(m.entities.len(), 1);
    assert_eq!(m.entities[0].anomalies, [Anomaly::NoBoundary]);
    let m = parse(b"Content-Type: multipart/mixed; boundary=zz\n\nno delimiter here\n");
    assert!(m.entities[0].is_leaf);
    assert_eq!(m.entities[0].anomalies, [Anomaly::NoDelimiter]);
    let m = parse(b"Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\nlast part runs on\n");
    assert_eq!(m.entities[0].anomalies, [Anomaly::Unterminated]);
    assert_eq!(m.body(&m.entities[1]), b"last part runs on\n");
}

#[test]
fn the_first_content_type_counts() {
    let m = parse(
        b"Content-Type: multipart/mixed; boundary=q\nContent-Type: text/plain\n\n\
          --q\nContent-Type: application/x-msdownload; name=a.exe\n\nMZ\n--q--\n",
    );
    assert_eq!(m.entities[0].anomalies, [Anomaly::DuplicateContentType]);
    assert_eq!(m.entities[1].filename.as_deref(), Some("a.exe"));
}

#[test]
fn attached_messages_plain_and_encoded() {
    let inner = b"Subject: inner\r\nContent-Type: application/zip; name=x.zip\r\n\r\nPK";
    let b64: String = {
        // A small base64 encoder for the test.
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in inner.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                s.push(if i <= c.len() {
                    T[(n >> (18 - 6 * i) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        s
    };
    let raw = format!(
        "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n\
         Content-Type: message/rfc822\r\n\r\n{}\r\n--m\r\n\
         Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--m--\r\n",
        String::from_utf8_lossy(inner)
    );
    let m = parse(raw.as_bytes());
    assert_eq!(
        types(&m),
        [
            "multipart/mixed",
            "message/rfc822",
            "application/zip",
            "message/rfc822",
            "application/zip"
        ]
    );
    assert_eq!(m.entities[2].role, Role::Attached);
    assert_eq!(m.entities[2].source, Source::Raw);
    assert_eq!(m.entities[4].source, Source::Decoded(0));
    assert_eq!(m.body(&m.entities[4]), b"PK");
    assert_eq!(m.entities[3].anomalies, [Anomaly::EncodedMessage]);
    // Over the decoding budget: the encoded message stays a leaf.
    let small = Limits {
        decoded: 10,
        ..Limits::default()
    };
    let m = Mime::parse(raw.as_bytes(), &small);
    assert!(m.entities[3].is_leaf);
    assert!(m.entities[3].anomalies.contains(&Anomaly::DecodedLimit));
}

#[test]
fn bounds_hold() {
    let mut deep = String::new();
    for i in 0..100 {
        deep.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    let m = parse(deep.as_bytes());
    assert_eq!(m.entities.len(), 21);
    assert_eq!(m.entities[20].anomalies, [Anomaly::TooDeep]);
    let mut nested = String::new();
    for _ in 0..200 {
        nested.push_str("Content-Type: message/rfc822\r\n\r\n");
    }
    let m = parse(nested.as_bytes());
    assert!(
        m.entities
            .last()
            .unwrap()
            .anomalies
            .contains(&Anomaly::TooDeep)
    );
    let mut many = String::from("Content-Type: multipart/mixed; boundary=x\r\n\r\n");
    for _ in 0..5000 {
        many.push_str("--x\r\n\r\np\r\n");
    }
    let m = parse(many.as_bytes());
    assert_eq!(m.entities.len(), 1000);
    assert!(m.entities[0].anomalies.contains(&Anomaly::TooManyParts));
    for input in [
        &b""[..],
        b"\r\n",
        b":\r\n \r\n",
        b"\xff\xfe: \xff\r\n\r\n\xff",
        b"Content-Type: multipart/x; boundary=\"\r\n\r\n--\r\n",
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n====",
        b"From \n",
        b"From ",
    ] {
        let m = parse(input);
        assert!(!m.entities.is_empty());
        for e in &m.entities {
            let _ = m.decoded(e);
        }
    }
}

#[test]
fn the_lenient_reading_sees_what_permissive_readers_see() {
    let dup = b"Content-Type: text/plain\nContent-Type: multipart/mixed; boundary=q\n\n\
        --q\nContent-Type: application/octet-stream; name=a.exe\n\nMZ\n--q--\n";
    let strict = parse(dup);
    assert_eq!(types(&strict), ["text/plain"]);
    assert!(strict.ambiguous());
    let lenient = Mime::parse_lenient(dup, &Limits::default());
    assert_eq!(
        types(&lenient),
        ["multipart/mixed", "application/octet-stream"]
    );
    // A nested multipart that reuses the outer boundary: careful readers
    // close the outer at the inner's closing line.
    let same = b"Content-Type: multipart/mixed; boundary=q\n\n--q\n\
        Content-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n\nhi\n\
        --q--\n--q\nContent-Type: application/octet-stream; name=a.exe\n\nMZ\n--q--\n";
    let strict = parse(same);
    assert!(strict.ambiguous());
    assert!(strict.entities.iter().all(|e| e.filename.is_none()));
    let lenient = Mime::parse_lenient(same, &Limits::default());
    assert!(
        lenient
            .entities
            .iter()
            .any(|e| e.filename.as_deref() == Some("a.exe"))
    );
    // A longer boundary that starts with this one.
    let prefix = b"Content-Type: multipart/mixed; boundary=q\n\n--q\n\nhi\n--qq\n\
        Content-Type: application/octet-stream; name=a.exe\n\nMZ\n--q--\n";
    assert!(parse(prefix).ambiguous());
    assert_eq!(parse(prefix).entities.len(), 2);
    let lenient = Mime::parse_lenient(prefix, &Limits::default());
    assert_eq!(lenient.entities.len(), 3);
    assert!(!parse(b"Subject: plain\n\nbody\n").ambiguous());
}
