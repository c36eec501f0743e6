//! The same messages through the three consumers' own code: cleanup's
//! header and body checks (`cleanup::checks::sections`), the scanner's
//! banned check (`scanner::banned::read_parts`) and the spam engine
//! (`mailgate_spam::entity_views`). They must yield the same parts in the
//! same order, with the same declared types, file names and decoded
//! bodies, and cleanup must put each part's headers with that part.
//!
//! The messages: hostile shapes (missing boundaries, nested and encoded
//! message/rfc822, duplicate Content-Type, bad encodings, a boundary
//! inside a boundary, bounds), the fuzz seeds in fuzz/seeds/{mime,banned},
//! and the SpamAssassin corpus next to the repository (`../shared/corpus`,
//! or $CORPUS) when it is there.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use cleanup::checks::HeaderClass;
use mailgate_mime::{Limits, Mime, Role};

fn hash(data: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

/// The media type a Content-Type header line names, read from cleanup's
/// unfolded text as a reader would.
fn type_in(header: &str) -> Option<String> {
    let (name, value) = header.split_once(':')?;
    if !name.trim().eq_ignore_ascii_case("content-type") {
        return None;
    }
    let token = value.split(';').next()?.trim().to_ascii_lowercase();
    Some(token)
}

/// Compares the three readings of one message; returns the entities compared.
fn compare(name: &str, raw: &[u8]) -> usize {
    let spam = mailgate_spam::entity_views(raw);
    let banned = scanner::banned::read_parts(raw);
    let cleanup = cleanup::checks::sections(raw);
    let mime = Mime::parse(raw, &Limits::default());
    assert_eq!(
        mime.entities.len(),
        spam.len(),
        "{name}: mailgate-mime's entity count"
    );
    assert_eq!(spam.len(), banned.len(), "{name}: entity count");
    for (i, (s, b)) in spam.iter().zip(&banned).enumerate() {
        assert_eq!(s.mime_type, b.content_type, "{name}: entity {i} type");
        assert_eq!(s.filename, b.filename, "{name}: entity {i} file name");
        assert_eq!(s.is_leaf, b.content.is_some(), "{name}: entity {i} leaf");
        assert_eq!(
            s.decoded_hash,
            b.content.as_deref().map(hash),
            "{name}: entity {i} decoded body"
        );
    }
    // cleanup: sections in order, each for an entity of the message as
    // written, with the declared type the others read.
    let mut last = None;
    for (entity, class, headers) in &cleanup {
        assert!(
            last < Some(*entity),
            "{name}: cleanup's sections out of order"
        );
        last = Some(*entity);
        let b = &banned[*entity];
        assert!(
            b.in_message,
            "{name}: cleanup read headers of entity {entity}"
        );
        let expected = match mime.entities[*entity].role {
            Role::Message => HeaderClass::Primary,
            Role::Part => HeaderClass::Multipart,
            Role::Attached => HeaderClass::Nested,
        };
        assert_eq!(*class, expected, "{name}: entity {entity} table class");
        let first_type = headers.iter().find_map(|h| type_in(h));
        match (&b.declared, first_type) {
            (Some(declared), Some(t)) if t.contains('/') => {
                assert_eq!(*declared, t, "{name}: entity {entity} Content-Type")
            }
            (None, Some(t)) => panic!("{name}: cleanup saw Content-Type {t} in entity {entity}"),
            _ => {}
        }
    }
    // Every entity of the message as written with a Content-Type has its
    // section in cleanup's reading.
    for (i, b) in banned.iter().enumerate() {
        if b.in_message && b.declared.is_some() {
            assert!(
                cleanup.iter().any(|(e, _, _)| *e == i),
                "{name}: cleanup has no section for entity {i} ({})",
                b.content_type
            );
        }
    }
    spam.len()
}

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
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
        if s.len() % 77 == 76 {
            s.push_str("\r\n");
        }
    }
    s
}

const EXE: &str = "Content-Type: application/octet-stream\r\n\
    Content-Disposition: attachment; filename=\"a.exe\"\r\n\
    Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAA=\r\n";

fn hostile_shapes() -> Vec<(String, Vec<u8>)> {
    let mixed = |body: &str| {
        format!(
            "From: a@example.org\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n{body}"
        )
    };
    let inner = format!(
        "Subject: inner\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n{EXE}--i--\r\n"
    );
    let mut deep = String::new();
    for i in 0..40 {
        deep.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    let mut nested = String::from(EXE);
    for level in 0..25 {
        nested = format!(
            "Subject: {level}\r\nContent-Type: multipart/mixed; boundary=L{level}\r\n\r\n--L{level}\r\n\
             Content-Type: message/rfc822\r\n\r\n{nested}\r\n--L{level}--\r\n"
        );
    }
    let mut many = String::from("Content-Type: multipart/mixed; boundary=x\r\n\r\n");
    for _ in 0..1500 {
        many.push_str("--x\r\nContent-Type: text/plain; name=p.txt\r\n\r\np\r\n");
    }
    let shapes: Vec<(&str, String)> = vec![
        ("plain", "Subject: hi\r\n\r\nhello\r\n".into()),
        ("mbox line", "From x@y Mon Jan 1 00:00:00 2024\nSubject: hi\n\nhello\n".into()),
        ("attachment", mixed(&format!("--q\r\nContent-Type: text/plain\r\n\r\nhi\r\n--q\r\n{EXE}--q--\r\n"))),
        ("no boundary parameter", "Content-Type: multipart/mixed\r\n\r\n--q\r\n\r\nx\r\n--q--\r\n".into()),
        ("boundary never appears", mixed("no delimiter\r\n")),
        ("no closing delimiter", mixed(&format!("--q\r\n{EXE}"))),
        ("empty boundary", "Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\nx\r\n".into()),
        ("duplicate Content-Type, multipart first", format!(
            "Content-Type: multipart/mixed; boundary=q\r\nContent-Type: text/plain\r\n\r\n--q\r\n{EXE}--q--\r\n")),
        ("duplicate Content-Type, multipart last", format!(
            "Content-Type: text/plain\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n{EXE}--q--\r\n")),
        ("boundary inside a boundary", mixed(&format!(
            "--q\r\nContent-Type: multipart/alternative; boundary=qq\r\n\r\n--qq\r\n\r\nplain\r\n--qq\r\n{EXE}--qq--\r\n--q--\r\n"))),
        ("inner reuses the outer boundary", mixed(&format!(
            "--q\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nhi\r\n--q--\r\n--q\r\n{EXE}--q--\r\n"))),
        ("delimiter followed by text", mixed(&format!("--q\r\n\r\nhi\r\n--q trailing\r\n{EXE}--q--\r\n"))),
        ("delimiter mid-line", mixed(&format!("--q\r\n\r\nhi --q\r\n{EXE}--q--\r\n"))),
        ("nested message/rfc822", mixed(&format!("--q\r\nContent-Type: message/rfc822\r\n\r\n{inner}--q--\r\n"))),
        ("encoded message/rfc822", mixed(&format!(
            "--q\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--q--\r\n",
            b64(inner.as_bytes())))),
        ("quoted-printable message/rfc822", mixed(
            "--q\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
             Subject: =69nner\r\nContent-Type: application/x-msdownload; name=3D\"b.exe\"\r\n\r\nMZ=\r\n\r\n--q--\r\n")),
        ("message/rfc822 cut in its headers", mixed("--q\r\nContent-Type: message/rfc822\r\n\r\nSubject: cut\r\nContent-Type: multipart/mixed; bou\r\n--q--\r\n")),
        ("bad base64", mixed("--q\r\nContent-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDB!!AoAAA**AAA===garbage\r\n--q--\r\n")),
        ("bad quoted-printable", mixed("--q\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=4=\r\n=\r\n--q--\r\n")),
        ("unknown encoding", mixed("--q\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a.exe\r\n--q--\r\n")),
        ("RFC 2231 file name", mixed("--q\r\nContent-Type: application/octet-stream\r\n\
            Content-Disposition: attachment; filename*0*=utf-8''a%2E; filename*1=exe\r\n\r\nx\r\n--q--\r\n")),
        ("encoded-word file name", mixed("--q\r\nContent-Type: application/octet-stream; name=\"=?utf-8?B?YS5leGU=?=\"\r\n\r\nx\r\n--q--\r\n")),
        ("digest", "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: in digest\r\n\r\nbody\r\n--d--\r\n".into()),
        ("part without headers or blank line", mixed("--q\r\njust text\r\n--q--\r\n")),
        ("missing separator", "Subject: x\r\nnot a header\r\nContent-Type: text/html\r\n".into()),
        ("stray first line", "garbage first line\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain; name=a.exe\r\n\r\nx\r\n--q--\r\n".into()),
        ("folded Content-Type", "Content-Type: multipart/mixed;\r\n\tboundary=\"f o\"\r\n\r\n--f o\r\nContent-Type:\r\n text/html\r\n\r\n<p>x</p>\r\n--f o--\r\n".into()),
        ("LF only", "Content-Type: multipart/mixed; boundary=l\n\n--l\nContent-Type: text/plain\n\nlf\n--l--\n".into()),
        ("40 nested multiparts", deep),
        ("25 nested messages", nested),
        ("1500 parts", many),
        ("empty", String::new()),
        ("binary junk", "\u{ff}\u{fe}: \r\n\r\n--\r\n".into()),
    ];
    shapes
        .into_iter()
        .map(|(n, s)| (n.to_string(), s.into_bytes()))
        .collect()
}

fn files(dir: &Path, every: usize) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.sort();
    out.into_iter().step_by(every).collect()
}

#[test]
fn the_three_consumers_read_the_same_parts() {
    let mut messages = hostile_shapes();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for seeds in ["fuzz/seeds/mime", "fuzz/seeds/banned"] {
        for path in files(&repo.join(seeds), 1) {
            messages.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    let corpus = std::env::var_os("CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("../shared/corpus"));
    let mut from_corpus = 0;
    for class in ["ham", "hard-ham", "spam"] {
        // Every 10th message keeps the test quick.
        for path in files(&corpus.join(class), 10) {
            if let Ok(raw) = std::fs::read(&path) {
                messages.push((path.display().to_string(), raw));
                from_corpus += 1;
            }
        }
    }
    if from_corpus == 0 {
        eprintln!(
            "no corpus at {}: shapes and fuzz seeds only",
            corpus.display()
        );
    }
    let mut entities = 0;
    for (name, raw) in &messages {
        entities += compare(name, raw);
    }
    eprintln!(
        "{} messages ({from_corpus} from the corpus), {entities} entities read alike",
        messages.len()
    );
    // The shapes and fuzz seeds are 50 and always there; the corpus (beside
    // the checkout, as ../shared/corpus) adds to them where it is.
    assert!(messages.len() >= 50, "{} messages read", messages.len());
}

/// What the careful reading finds in the hostile shapes: the banned check
/// judges a.exe wherever some reader shows it.
#[test]
fn the_banned_check_judges_every_reading() {
    let policy = scanner::banned::Policy {
        extensions: ["exe".to_string()].into(),
        mime_types: Default::default(),
        tables: Vec::new(),
        executable_content: true,
        limits: scanner::archive::Limits {
            depth: 4,
            max_size: 8 << 20,
            max_ratio: 100,
            max_entries: 1000,
        },
    };
    for (name, raw) in hostile_shapes() {
        let report = policy.check_message(&raw, None).unwrap();
        let shows_exe = raw.windows(5).any(|w| w == b"a.exe")
            && !name.contains("mid-line")
            && !name.contains("unknown encoding")
            && !name.contains("nested messages")
            && !name.contains("nested multiparts");
        if shows_exe {
            assert!(
                report.banned.iter().any(|b| b.name.ends_with("a.exe")),
                "{name}: {report:?}"
            );
        }
    }
}
